/*
 * Redis connections for posgate (hiredis 0.14: blocking, no TLS, one context = one connection,
 * not thread-safe).
 *
 * Model: every thread owns at most one hiredis context, kept in a pthread key whose destructor
 * frees it when the thread exits. Contexts are created lazily by the first command, so the
 * gateway starts (and answers /healthz, 503s) while Redis is down.
 *
 * Failure handling:
 *  - After any I/O error, timeout or protocol error a context is dead (hiredis cannot resync a
 *    half-read reply): it is freed, the error is counted, and the call returns PG_ETIMEDOUT (a
 *    timeout) or PG_EUNAVAIL (anything else). The next call reconnects.
 *  - Consecutive failures put the process in a shared exponential backoff (reconnect_min_ms,
 *    doubling up to reconnect_max_ms). While in backoff, a thread that needs a new connection
 *    fails fast with PG_EUNAVAIL without touching the network; when the window ends exactly one
 *    thread probes. So a dead Redis costs one connect timeout per window, not one per request.
 *    Threads whose connection is still alive keep using it. The first successful reply resets it.
 *  - An error reply (REDIS_REPLY_ERROR) is not a connection failure: the call returns PG_EPROTO
 *    with the reply in *out so callers can look at it (NOGROUP, BUSYGROUP, WRONGTYPE...).
 *
 * Reply size: hiredis 0.14 has no reply cap (reader->maxbuf only bounds the *idle* read buffer
 * kept between replies; we set it to 64 KiB so one big reply does not pin memory per thread).
 * We drive the socket ourselves and count the bytes read for each reply: past
 * PG_REDIS_MAX_REPLY_BYTES the connection is dropped and the call returns PG_ETOOLARGE.
 * The command timeout bounds each whole command (write + reply), not just each read().
 *
 * SIGPIPE: hiredis writes with write(2); pg_redis_init sets SIGPIPE to SIG_IGN if it is still
 * SIG_DFL, so writing to a connection Redis closed returns EPIPE instead of killing the process.
 *
 * pg_redis_init and pg_redis_shutdown must not run concurrently with commands (call them from
 * main before starting / after joining worker threads). Everything else is thread-safe.
 */
#ifndef PG_STORE_REDIS_H
#define PG_STORE_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "server/error.h"

/** Largest reply (bytes on the wire) accepted for one command. */
#define PG_REDIS_MAX_REPLY_BYTES (16u << 20)

struct pg_redis_opts {
    const char *url;      /* borrowed; copied by pg_redis_init */
    const char *password; /* NULL or "": use the URL's; else overrides it; copied */
    int connect_timeout_ms;
    int command_timeout_ms;
    int reconnect_min_ms;
    int reconnect_max_ms;
};

/*
 * A parsed Redis address. Accepted URL forms:
 *   redis://[[user]:password@]host[:port][/db]     host may be [ipv6]; port 1..65535 (default
 *                                                  6379); db 0..INT_MAX (default 0)
 *   unix:///absolute/path.sock[?db=N&password=P&user=U]   parameters in any order, each once
 * user and password may be percent-encoded (%40 for '@'). rediss:// (TLS) is rejected: hiredis
 * 0.14 has no TLS.
 */
struct pg_redis_addr {
    int is_unix;
    char host[256]; /* TCP only, without brackets */
    int port;       /* TCP only */
    char path[108]; /* unix only (sun_path size) */
    int db;
    char user[128];     /* empty: none (AUTH password) */
    char password[256]; /* empty: none (no AUTH) */
};

/** Parse url into *out (fully overwritten). Returns PG_EINVAL on anything malformed. */
int pg_redis_url_parse(const char *url, struct pg_redis_addr *out) PG_WARN_UNUSED;

/**
 * Validate and copy the options into process-global state. Does not connect. Timeouts <= 0 get
 * defaults (connect 1000, command 1000, reconnect 100..5000 ms). Returns PG_EINVAL on a bad URL
 * or reconnect_min_ms > reconnect_max_ms. Calling it again replaces the settings; threads
 * drop connections made under the old settings on their next command.
 */
int pg_redis_init(const struct pg_redis_opts *o) PG_WARN_UNUSED;

/** Free the global state and the calling thread's connection. Other threads' connections are
 * freed when those threads exit or run their next command. */
void pg_redis_shutdown(void);

/** PING with the command timeout. PG_OK when Redis answered PONG. */
int pg_redis_ping(void) PG_WARN_UNUSED;

/**
 * Run one command on the calling thread's connection, hiredis format (%s C string, %b
 * pointer+size_t length, %lld...). Not printf-checked because of %b.
 * Ownership: on PG_OK and PG_EPROTO *out is a new reply the caller frees with
 * freeReplyObject(); on every other code *out is NULL. out may be NULL to discard the reply.
 */
int pg_redis_command(redisReply **out, const char *fmt, ...) PG_WARN_UNUSED;

/** Same with an argument vector (binary-safe). argv/argvlen are borrowed for the call.
 * argvlen may be NULL when every argument is a C string. Ownership of *out as above. */
int pg_redis_command_argv(redisReply **out, int argc, const char **argv, const size_t *argvlen)
    PG_WARN_UNUSED;

/**
 * Same with a per-call timeout instead of the command timeout, for blocking commands
 * (XREADGROUP BLOCK n uses n + command timeout so Redis's own block is not cut short).
 */
int pg_redis_command_argv_timeout(redisReply **out,
                                  int timeout_ms,
                                  int argc,
                                  const char **argv,
                                  const size_t *argvlen) PG_WARN_UNUSED;

/**
 * Cap every Redis wait of the calling thread (connect and each command) at ms; 0 removes the cap.
 * For a thread that must not wait long, like an HTTP I/O thread answering a cache hit inline. A
 * timeout caused only by the cap drops the connection (its reply is still due) without counting
 * against Redis's health.
 */
void pg_redis_thread_bound_ms(int ms);

/**
 * A new connection of the caller's own (not the thread's), AUTH and SELECT done, the command
 * timeout set on its socket: for a subscriber that reads pushed messages. Not subject to the
 * backoff; failures are counted like any other.
 * Ownership: *out is new; release with redisFree.
 */
int pg_redis_connect_new(redisContext **out) PG_WARN_UNUSED;

/** The configured command timeout in ms (for callers computing per-call timeouts). */
int pg_redis_command_timeout_ms(void);

/** Total I/O errors, timeouts and failed connects since start (for /metrics). */
unsigned long long pg_redis_error_count(void);

/** True when an error reply starts with the given code ("NOGROUP", "BUSYGROUP"). */
int pg_redis_reply_is_error(const redisReply *r, const char *code);

#endif
