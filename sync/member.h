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

/**
 * One round trip: count a request against rate_key (when non-NULL: INCR, window set on the first
 * hit; *count receives the count) and read the member for kind/value (normalised).
 * Ownership: on PG_MEMBER_FOUND *member is new (json_decref) and includes cached_at_ms.
 */
int pg_member_get(enum pg_member_kind kind,
                  const char *value,
                  const char *rate_key,
                  int64_t rate_window_ms,
                  long long *count,
                  enum pg_member_hit *hit,
                  json_t **member) PG_WARN_UNUSED;

#endif
