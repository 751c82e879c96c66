/*
 * sObject Collections upsert by external id (salesforce-wire.md §4.4, §4.6, §4.7):
 *
 *     PATCH {instance_url}/services/data/v<ver>/composite/sobjects/<sobject>/<ext_field>
 *     {"allOrNone": <bool>, "records": [...]}
 *
 * One call for up to 200 records of one object; Salesforce answers HTTP 200 with one result per
 * record, in input order. Token handling, deadlines and the whole-call error mapping follow
 * salesforce/rest.h (same pg_sf_rest_config, same return codes):
 *  PG_OK         200 with one result per record: *results is set (the caller then looks at each).
 *  PG_EUNAVAIL   403 REQUEST_LIMIT_EXCEEDED (err->code says so: the caller pauses the sync until
 *                the allocation resets), 429, 5xx (err->code e.g. "SERVER_UNAVAILABLE",
 *                "UNABLE_TO_LOCK_ROW" for a whole-call lock error), connection failure or no token
 *                endpoint. Retryable later; nothing is known about what was written.
 *  PG_ETIMEDOUT  the deadline passed (retryable; the upsert may or may not have been applied,
 *                which is why upserts by external id are used).
 *  PG_EAUTH      no token, or 401 again after one renewal.
 *  PG_EFORBIDDEN 403 other than REQUEST_LIMIT_EXCEEDED.
 *  PG_ENOTFOUND  404: the object or external id field does not exist (configuration).
 *  PG_EPROTO     400 (EXCEEDED_ID_LIMIT, JSON_PARSER_ERROR, INVALID_TYPE...: err->code), another
 *                status, or a 200 whose body is not one result per record.
 *  PG_EINVAL     bad arguments: sobject / ext_field not identifiers, records not a 1..200 array of
 *                objects, a record whose attributes.type is not sobject. Nothing is sent.
 * err (may be NULL) is always filled as in rest.h.
 */
#ifndef PG_SF_COLLECTIONS_H
#define PG_SF_COLLECTIONS_H

#include <stdint.h>

#include <jansson.h>

#include "salesforce/oauth.h"
#include "salesforce/rest.h"
#include "server/error.h"

#define PG_SF_COLLECTION_MAX 200

/**
 * Upsert records (array of 1..200 objects, borrowed; a record without "attributes" is sent with
 * {"type": sobject} added, the caller's JSON is not changed) by ext_field.
 * On PG_OK *results is a new array, one object per input record, in input order:
 *   {"ok": bool, "created": bool, "id": "18-char id" | null,
 *    "retryable": bool, "code": "" | statusCode, "message": "", "fields": [...]}
 * retryable is true for UNABLE_TO_LOCK_ROW (lock contention: retry with jitter) and for
 * ALL_OR_NONE_OPERATION_ROLLED_BACK (the record was valid, another one failed); any other
 * per-record error is a validation error (dead-letter it). Otherwise *results is NULL.
 * c may be NULL (defaults as in rest.h); oauth is borrowed. Thread-safe.
 */
int pg_sf_upsert(struct pg_sf_oauth *oauth,
                 const struct pg_sf_rest_config *c,
                 const char *sobject,
                 const char *ext_field,
                 json_t *records,
                 int all_or_none,
                 int64_t deadline_ms,
                 json_t **results,
                 struct pg_sf_error *err) PG_WARN_UNUSED;

/**
 * Delete up to 200 records by Id, of any objects (salesforce-wire.md §4.4):
 *     DELETE {instance_url}/services/data/v<ver>/composite/sobjects?ids=<id>,...&allOrNone=<bool>
 * ids: a 1..200 array of 15/18-character ids (anything else: PG_EINVAL, nothing sent).
 * Return codes, *results and err as for pg_sf_upsert (created is always false). A record that is
 * already gone answers ENTITY_IS_DELETED (or INVALID_CROSS_REFERENCE_KEY when it never existed):
 * the caller decides whether that is success.
 */
int pg_sf_delete(struct pg_sf_oauth *oauth,
                 const struct pg_sf_rest_config *c,
                 const json_t *ids,
                 int all_or_none,
                 int64_t deadline_ms,
                 json_t **results,
                 struct pg_sf_error *err) PG_WARN_UNUSED;

/** 1 when a per-record statusCode is worth retrying (see above), else 0. */
int pg_sf_upsert_code_retryable(const char *status_code);

#endif
