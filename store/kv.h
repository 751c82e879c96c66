/*
 * Key/value primitives on Redis strings: a TTL cache (POS lookups, negative answers) and
 * claim keys (SET NX PX) for deduplication (notification ids, EventUuids) and partner
 * Idempotency-Keys. Values are binary-safe byte strings with explicit lengths.
 *
 * Every function returns PG_OK or a PG_E* code; PG_EUNAVAIL / PG_ETIMEDOUT come from the
 * connection module (store/redis.h) when Redis is unreachable.
 */
#ifndef PG_STORE_KV_H
#define PG_STORE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"

/** Largest value stored or returned by these functions (1 MiB). */
#define PG_STORE_VALUE_MAX (1u << 20)

/**
 * SET key value PX ttl_ms. ttl_ms must be > 0 (a cache entry that never expires is a leak).
 * key and val are borrowed. PG_ETOOLARGE when len > PG_STORE_VALUE_MAX.
 */
int pg_store_cache_set(const char *key, const void *val, size_t len, int64_t ttl_ms) PG_WARN_UNUSED;

/**
 * GET key. PG_ENOTFOUND on a miss, PG_ETOOLARGE when the stored value exceeds the cap.
 * Ownership: *val is new (len bytes plus a NUL for convenience); caller frees with free().
 */
int pg_store_cache_get(const char *key, char **val, size_t *len) PG_WARN_UNUSED;

/** DEL key. PG_OK whether or not it existed. */
int pg_store_cache_del(const char *key) PG_WARN_UNUSED;

/**
 * SET key value NX PX ttl_ms: *claimed = 1 when this caller created the key, 0 when it already
 * existed (a duplicate, or a request in flight). key and val are borrowed.
 */
int pg_store_claim(const char *key, const void *val, size_t len, int64_t ttl_ms, int *claimed)
    PG_WARN_UNUSED;

/** The value stored by whoever claimed key. Same contract as pg_store_cache_get. */
int pg_store_claim_get(const char *key, char **val, size_t *len) PG_WARN_UNUSED;

/** Release a claim (DEL), e.g. when the work failed and the sender must be able to retry. */
int pg_store_claim_release(const char *key) PG_WARN_UNUSED;

#endif
