/* Retry delays: exponential backoff with full jitter (AWS architecture blog's "Full Jitter"). */
#ifndef PG_SYNC_BACKOFF_H
#define PG_SYNC_BACKOFF_H

#include <stdint.h>

/**
 * Delay before retry number `attempt` (1 = the first retry): a uniform draw in
 * [0, min(cap_ms, base_ms * 2^(attempt-1))], using rnd as the random source. When the peer said
 * Retry-After, the delay is at least that (but never above cap_ms).
 */
int64_t
pg_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd, int retry_after_s);

#endif
