/*
 * The push worker pool: delivers queued customer updates to MICROS (the Gift & Loyalty CRM API
 * or a signed JSON webhook), newest state wins.
 *
 * A queue entry only says "customer X changed". The worker takes the customer's delivery lease,
 * reads the newest state posgate holds for X, and delivers that state unless a version at least
 * as new was already applied. So duplicates, reordering, retries and concurrent workers (in this
 * process or others sharing the consumer group) all end with MICROS holding the newest version,
 * and an older version is never applied after a newer one.
 *
 * Failures: timeouts, connection errors, 5xx, 429 and retryable host codes are retried with
 * exponential backoff and full jitter (a sorted set holds jobs until they are due, so one failing
 * customer never blocks the others); other failures and exhausted retries go to the dead-letter
 * stream with the last error. Entries held by a worker that died are reclaimed after
 * push.reclaim_idle_ms.
 */
#ifndef PG_SYNC_PUSH_H
#define PG_SYNC_PUSH_H

#include <jansson.h>

#include "server/buf.h"
#include "server/config.h"
#include "server/error.h"

struct pg_push;

/**
 * Start push.workers threads. cfg is borrowed and must outlive the pool. Registers the pool's
 * metrics collector (once per process).
 * Ownership: *out is new; release with pg_push_stop.
 */
int pg_push_start(const struct pg_config *cfg, struct pg_push **out) PG_WARN_UNUSED;

/** Stop taking work, let each worker finish its current delivery, join, free. NULL-safe. */
void pg_push_stop(struct pg_push *p);

/**
 * Queue a fresh delivery job for a customer (operator replay). source names why ("replay").
 * Returns PG_ENOTFOUND when posgate holds no state for sfid.
 */
int pg_push_enqueue(const char *sfid, const char *why, const char *rid) PG_WARN_UNUSED;

/** Append one audit event for sfid: extra (borrowed, may be NULL) holds string/number fields. */
int pg_push_audit(const char *sfid, const char *event, const char *rid, const json_t *extra)
    PG_WARN_UNUSED;

#endif
