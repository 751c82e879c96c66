/*
 * Per-key request counting for the POS lookups' rate limit, off the Redis write path.
 *
 * Why: counting every lookup with INCR made every cache hit a Redis *write*, and with
 * appendfsync always (the project's durability setting) each write waits for an fsync of the AOF
 * (bench/README.md, "What bounds the lookup figures"). Here a lookup is counted in process memory;
 * a background thread adds the counts to Redis (INCRBY on pg:rl:<key id>:<minute>, one script
 * round trip for all keys) every PG_RATE_FLUSH_MS and reads back the shared totals. So a hit is
 * read-only for Redis, and only the flusher's round trip waits for an fsync.
 *
 * The count a request is judged by is: the shared total Redis returned at the last flush (every
 * instance's flushed counts) + this instance's counts not yet flushed (or being flushed).
 *   - One instance: exact, as before (every one of its own requests is counted at once).
 *   - N instances: each sees the others' counts at most one flush interval plus one round trip
 *     late, so all instances together may admit up to the requests the *other* instances admit in
 *     that time beyond the limit (at 100 ms: r·0.1 s per other instance at r lookups/s each).
 *   - Redis down: the counts stay in memory and are enforced per instance (the limit then holds
 *     per instance instead of across them); they are added to Redis when it returns, if the
 *     minute has not ended.
 * Windows are fixed minutes (key id:minute), as before.
 */
#ifndef PG_SYNC_RATELIMIT_H
#define PG_SYNC_RATELIMIT_H

#include <stdint.h>

#include "server/error.h"

/** How often the counts are added to Redis (ms). */
#define PG_RATE_FLUSH_MS 100

/**
 * Count one request for key_id (at most 140 bytes; longer ids are cut) at wall time now_ms and
 * return the count it is judged by (including itself). Never touches the network; starts the
 * flusher on first use.
 */
long long pg_rate_count(const char *key_id, int64_t now_ms);

/**
 * Add the pending counts to Redis now and read back the shared totals (what the flusher does
 * every PG_RATE_FLUSH_MS). For tests and shutdown; thread-safe.
 */
int pg_rate_flush(void) PG_WARN_UNUSED;

/** Stop the flusher (one last flush first) and free the counts. Call before pg_redis_shutdown,
 * with no lookup running. */
void pg_rate_stop(void);

/** Flushes that failed (Redis unreachable), for /metrics. */
unsigned long long pg_rate_flush_failures(void);

#endif
