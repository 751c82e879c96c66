/*
 * Durable intake of customer updates: deduplicate, keep the newest state, enqueue, audit — in one
 * Redis script per message, so a batch is either fully recorded or not at all, and the reply
 * (after appendfsync always) means it is on disk. Only then may the caller acknowledge.
 */
#ifndef PG_SYNC_INGEST_H
#define PG_SYNC_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/error.h"

struct pg_ingest_item {
    const char *dedupe_key; /* full Redis key, e.g. PG_KEY_DEDUPE_OM "00D...:04l..." */
    const json_t *update;   /* canonical update (sync/update.h); borrowed */
    int64_t version;        /* epoch ms; -1: none (ordered by arrival, see README) */
    const char *msg_id;     /* notification id or EventUuid, for the audit trail */
    const char *source;     /* "outbound_message" | "platform_event" */
};

enum pg_ingest_result {
    PG_INGEST_QUEUED = 0, /* new and newest: queued for delivery */
    PG_INGEST_DUPLICATE,  /* seen before (within the dedupe window): nothing to do */
    PG_INGEST_STALE,      /* older than what we already hold: recorded as skipped */
};

/** Name of a result for replies and logs ("queued", "duplicate", "stale"). */
const char *pg_ingest_result_name(enum pg_ingest_result r);

/**
 * Record n items atomically. results[i] receives each item's outcome. Returns PG_OK, or the
 * Redis error (PG_EUNAVAIL, PG_ETIMEDOUT, PG_EPROTO...) in which case nothing may be acked.
 * rid is the request id (kept in the audit trail).
 */
int pg_ingest(const struct pg_ingest_item *items,
              size_t n,
              int64_t dedupe_ttl_ms,
              const char *rid,
              enum pg_ingest_result *results) PG_WARN_UNUSED;

#endif
