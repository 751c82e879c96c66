/*
 * The durable guest-check queue of the MICROS → Salesforce flow. Both intake paths (the BI
 * poller, sync/poll.h, and POST /v1/micros/guest-checks, handlers/micros.c) put checks here; the
 * loader (sync/loader.h) takes them off and upserts them into Salesforce.
 *
 * A check is identified by (locRef, guestCheckId) and stored whole: the newest version received
 * replaces the one before (BI's getGuestChecks always returns the full current check), so the
 * queue carries only "load this check" and the loader always loads the newest version held.
 *
 * REDIS LAYOUT (all keys in sync/keys.h, PG_KEY_CHK_*)
 *   pg:chk:<loc>:<gcid>          hash: check (JSON as received), digest (SHA-1 hex of the check
 *                                serialised with sorted keys, compact), upd (lastUpdatedUTC or ""),
 *                                busdt (the business date: clsdBusDt, else opnBusDt, else busDt),
 *                                src ("bi" | "push"), rcv_ms, and for the loader: state
 *                                ("queued" | "synced" | "dead"), synced_digest, order_id, error.
 *   pg:chk:queue                 stream, group "load": {loc, gcid, rid, enq_ms}
 *   pg:chk:dead                  dead-letter stream: {loc, gcid, code, error, ts}
 *   pg:chk:lines:<loc>:<gcid>    hash: external id of each OrderItem/payment synced → its
 * Salesforce Id (so a re-sync omits create-only fields and deletes stale lines)
 *   pg:chk:synced:<loc>:<busdt>  hash: gcid → JSON {"total": minor units (chkTtl), "rvc": rvcNum,
 *                                "closed": bool, "order": Order external id, "digest": ...}
 *                                written by the loader after a check is fully in Salesforce;
 *                                read by reconciliation (sync/recon.h).
 *   pg:chk:cursor:<loc>          the poller's changedSinceUTC cursor (the last saved curUTC)
 *   pg:chk:review                stream of ambiguous customer matches (sync/match.h)
 *   pg:chk:pause                 set (with a TTL) while Salesforce answers REQUEST_LIMIT_EXCEEDED
 *
 * PUT SEMANTICS (one Lua script per call, so the batch is recorded whole or not at all, and with
 * appendfsync always the reply means it is on disk: only then may a caller ack or save a cursor)
 *   - same digest as the stored check            → PG_CHECKQ_UNCHANGED (nothing queued)
 *   - stored upd newer than the incoming upd     → PG_CHECKQ_STALE (kept: newest wins; upd values
 *     compare as strings, "YYYY-MM-DDTHH:MM:SS"; an empty upd never counts as older)
 *   - otherwise the check replaces the stored one, state = "queued", a job is XADDed
 *                                                → PG_CHECKQ_QUEUED
 */
#ifndef PG_SYNC_CHECKQ_H
#define PG_SYNC_CHECKQ_H

#include <stddef.h>

#include <jansson.h>

#include "server/error.h"

/* Checks per Redis script call; pg_checkq_put splits larger batches (each chunk is atomic). */
#define PG_CHECKQ_CHUNK 100
/* Longest locRef accepted ([A-Za-z0-9._-]). */
#define PG_CHECKQ_LOC_MAX 64

struct pg_checkq_item {
    const char *loc_ref; /* borrowed */
    const json_t *check; /* one BI guest check object; borrowed */
};

enum pg_checkq_result {
    PG_CHECKQ_QUEUED = 0,
    PG_CHECKQ_UNCHANGED,
    PG_CHECKQ_STALE,
};

/** "queued", "unchanged", "stale". */
const char *pg_checkq_result_name(enum pg_checkq_result r);

/**
 * Validate one check before it is put: an object with guestCheckId (a non-negative integer, or a
 * string of 1..20 digits), loc_ref of 1..PG_CHECKQ_LOC_MAX chars of [A-Za-z0-9._-]. Writes the
 * decimal guestCheckId into gcid (>= 21 bytes). PG_EINVAL with a reason in why.
 */
int pg_checkq_validate(const char *loc_ref,
                       const json_t *check,
                       char *gcid,
                       size_t gcidsz,
                       char *why,
                       size_t whysz) PG_WARN_UNUSED;

/**
 * The digest the queue stores for a check: SHA-1 hex of json_dumps(check, JSON_COMPACT |
 * JSON_SORT_KEYS) into out (>= 41 bytes).
 */
int pg_checkq_digest(const json_t *check, char *out, size_t outsz) PG_WARN_UNUSED;

/**
 * Record n checks (each validated first: PG_EINVAL names the index of the first bad one and
 * nothing is written). source: "bi" | "push"; rid: request id (may be NULL). results[i] gets each
 * check's outcome. Returns PG_OK, PG_EINVAL, or the Redis error (PG_EUNAVAIL, PG_ETIMEDOUT...),
 * in which case chunks before the failing one may have been recorded (harmless: a re-put of the
 * same check is UNCHANGED) and the caller must neither ack nor move its cursor.
 */
int pg_checkq_put(const struct pg_checkq_item *items,
                  size_t n,
                  const char *source,
                  const char *rid,
                  enum pg_checkq_result *results,
                  char *why,
                  size_t whysz) PG_WARN_UNUSED;

#endif
