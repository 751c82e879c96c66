/*
 * Audit trail: every sync decision is appended as one JSON event to a capped Redis stream
 * (approximate MAXLEN, so trimming stays O(1)), and can be read back by id range.
 */
#ifndef PG_STORE_AUDIT_H
#define PG_STORE_AUDIT_H

#include <jansson.h>

#include "server/error.h"

/** Largest serialised event accepted (64 KiB). */
#define PG_STORE_AUDIT_EVENT_MAX (64u << 10)

/**
 * XADD stream MAXLEN ~ maxlen * event <compact JSON>. maxlen <= 0: no trimming.
 * event is borrowed (any JSON value). id_out (may be NULL, else PG_STORE_ID_MAX bytes from
 * store/stream.h) receives the entry id. PG_ETOOLARGE when the JSON exceeds the cap.
 */
int pg_store_audit_append(const char *stream, const json_t *event, long long maxlen, char *id_out)
    PG_WARN_UNUSED;

/**
 * Read up to count events with ids in [start, end] (NULL: "-" / "+"), oldest first.
 * Ownership: *out is a new JSON array of {"id": "...", "event": <json>} (caller json_decref's).
 * An entry whose payload is not valid JSON comes back with "event": null and "invalid": true.
 */
int pg_store_audit_range(
    const char *stream, const char *start, const char *end, int count, json_t **out) PG_WARN_UNUSED;

#endif
