/*
 * The member cache that POS lookups read and the push path writes through.
 *
 * One record per member (pg:member:sf:<salesforce id>, the canonical update plus cached_at_ms)
 * and one small index key per identifier a cashier may type (loyalty id, card, e-mail lower-cased,
 * phone in E.164) pointing at it. So a member has one copy, refreshed in one place whichever way
 * it is looked up, and a lookup is one Redis round trip (a script follows the index).
 *
 * Entries live for the stale-if-error window; freshness (the cache TTL) is judged from
 * cached_at_ms by the reader, so an entry past its TTL can still be served when Salesforce fails.
 * Not-found answers are cached under the identifier as "!nf" for a short TTL.
 */
#ifndef PG_SYNC_MEMBER_H
#define PG_SYNC_MEMBER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/error.h"

/* The identifier kinds a lookup can use. */
enum pg_member_kind {
    PG_MEMBER_BY_SF,
    PG_MEMBER_BY_LOYALTY,
    PG_MEMBER_BY_CARD,
    PG_MEMBER_BY_EMAIL,
    PG_MEMBER_BY_PHONE
};

/** "sf", "lid", "card", "email", "phone": the index key's middle part. */
const char *pg_member_kind_name(enum pg_member_kind k);

enum pg_member_hit { PG_MEMBER_MISS, PG_MEMBER_FOUND, PG_MEMBER_NEGATIVE };

/**
 * Store a member (a canonical update: salesforce_id required; loyalty_id, card, email, phone
 * indexed when present, e-mail and phone normalised first with default_country) for ttl_ms, and
 * refresh every identifier that points at it. cached_at_ms is set to now.
 */
int pg_member_put(const json_t *member, const char *default_country, int64_t ttl_ms) PG_WARN_UNUSED;

/** Remember that no member has this identifier (value already normalised), for ttl_ms. */
int pg_member_put_negative(enum pg_member_kind kind,
                           const char *value,
                           int64_t ttl_ms) PG_WARN_UNUSED;

/** A member record as Redis holds it (JSON bytes, not NUL-terminated), owned by reply. */
struct pg_member_rec {
    const char *json;
    size_t len;
    void *reply; /* the hiredis reply holding json; released by pg_member_rec_free */
};

/**
 * One round trip, read-only: the member for kind/value (normalised) as stored. timeout_ms bounds
 * the call (0: the Redis command timeout). Ownership: on PG_MEMBER_FOUND *rec holds the record;
 * release it with pg_member_rec_free (safe to call whatever the outcome).
 */
int pg_member_read(enum pg_member_kind kind,
                   const char *value,
                   int timeout_ms,
                   enum pg_member_hit *hit,
                   struct pg_member_rec *rec) PG_WARN_UNUSED;

void pg_member_rec_free(struct pg_member_rec *rec);

/**
 * The same, parsed. Ownership: on PG_MEMBER_FOUND *member is new (json_decref) and includes
 * cached_at_ms.
 */
int pg_member_get(enum pg_member_kind kind,
                  const char *value,
                  enum pg_member_hit *hit,
                  json_t **member) PG_WARN_UNUSED;

/*
 * Near cache: member records kept in process memory, so that a cache hit needs no Redis round
 * trip at all. Coherent through Redis's own invalidation messages (CLIENT TRACKING, BCAST mode,
 * on the member and index key prefixes, from a subscriber thread): any write to such a key by
 * any client (another instance's push path, a miss fill, an expiry, FLUSHALL), and any loss of
 * the subscription, drops every entry; while there is no subscription it is off and every
 * lookup reads Redis. pg_member_put also drops them at once, so this instance's next lookup
 * sees its own write. Bound: another instance's write is seen here once Redis's message arrives
 * (it is sent in the same event-loop pass that answers the write; loopback: well under a ms).
 * Records only (not "not found"), one entry per identifier (kind:value) holding a copy of the
 * record; 262,144 direct-mapped slots (a collision replaces the older entry: with the 40,000
 * identifiers of 10,000 members, ~14 % share a slot) of at most 8 KiB each.
 */

/** The generation to store under: read it before the Redis read whose record is stored. */
uint64_t pg_member_near_gen(void);

/** Copy the record for kind/value into buf when held (1), else 0. */
int pg_member_near_get(
    enum pg_member_kind kind, const char *value, char *buf, size_t bufsz, size_t *len);

/** Store a record read from Redis (stored only when gen is still current). */
void pg_member_near_put(
    enum pg_member_kind kind, const char *value, const char *rec, size_t len, uint64_t gen);

void pg_member_near_stats(unsigned long long *hits, unsigned long long *invalidations, int *on);

/** Stop the subscriber and free the entries (before pg_redis_shutdown). */
void pg_member_near_stop(void);

#endif
