/* Small helpers shared by every module: time, number parsing, random ids, files. */
#ifndef PG_UTIL_H
#define PG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"

/** Monotonic clock in milliseconds (for timeouts and durations). */
int64_t pg_now_ms(void);

/** Monotonic clock in microseconds (for latency measurement). */
int64_t pg_now_us(void);

/** Wall clock in milliseconds since the epoch (for timestamps in logs and records). */
int64_t pg_wall_ms(void);

/** Format the wall clock as RFC 3339 UTC with milliseconds into out (at least 32 bytes). */
void pg_wall_iso8601(char *out, size_t outsz);

/**
 * Parse a whole decimal integer in [min, max]. Rejects empty strings, trailing garbage and
 * overflow with PG_EINVAL. This is the only place that calls strtoll.
 */
int pg_strtonum(const char *s, long long min, long long max, long long *out) PG_WARN_UNUSED;

/** Fill out with n cryptographically random bytes (OpenSSL RAND_bytes). */
int pg_random_bytes(void *out, size_t n) PG_WARN_UNUSED;

/** Write a random 32-hex-character id plus NUL into out (at least 33 bytes). */
int pg_random_hex_id(char *out, size_t outsz) PG_WARN_UNUSED;

/**
 * Read a whole file of at most max bytes.
 * Ownership: *out is new, NUL-terminated; caller frees with free().
 */
int pg_read_file(const char *path, size_t max, char **out, size_t *len) PG_WARN_UNUSED;

/**
 * Write data to path atomically (temporary file in the same directory, then rename), so a reader
 * polling for the file never sees it half written.
 */
int pg_write_file_atomic(const char *path, const char *data, size_t len) PG_WARN_UNUSED;

/** Sleep for ms milliseconds (restarting on EINTR until the time has passed). */
void pg_sleep_ms(int64_t ms);

/**
 * Name the calling thread (at most 15 bytes are kept), so `top -H`, `ps -L`, perf and gdb tell
 * the worker pools apart; libmicrohttpd's I/O threads keep the process name.
 */
void pg_thread_name(const char *name);

#endif
