/*
 * The BI API poller: pulls guest checks per location from Simphony's getGuestChecks and puts them
 * on the durable check queue (sync/checkq.h) for the loader.
 *
 * ONE CYCLE, per location (micros-wire.md §1.3, §1.4, §1.7):
 *   1. getLatestBusDt → the location's latest business date L.
 *   2. dimensions (menu items, tender media, discounts, service charges; cached by the BI client)
 *      → names written to pg:chk:dims:<loc> for the transform. A failure here is logged and the
 *      cycle goes on: names are cosmetic, checks are not.
 *   3. getGuestChecks for L, L-1, ... L-(repoll_days-1), each with busDt and changedSinceUTC =
 *      the saved cursor (pg:chk:cursor:<loc>; none on the first run: the whole dates).
 *      Every check goes to pg_checkq_put(..., "bi", ...).
 *   4. Only when every date's batch is durably queued, the cursor becomes the EARLIEST curUTC of
 *      the cycle's getGuestChecks replies (see poll.c for why the earliest).
 * A failure at any step leaves the cursor where it was, so the next cycle asks again for
 * everything since the last fully queued cycle (re-queued checks are UNCHANGED, no harm done).
 *
 * SCHEDULE: one thread per location, so one slow or failing location never delays another. After
 * a successful cycle the thread sleeps checks.poll.interval_s; after a failure (429, 5xx,
 * unreachable, timeout, Redis down, sign-in refused...) it backs off with full jitter
 * (sync/backoff.h: base 1 s, doubling, capped at checks.poll.backoff_max_s, at least the
 * Retry-After of a 429/503).
 *
 * METRICS: posgate_checks_poll_lag_seconds{location}, posgate_checks_polls_total{location,
 * outcome}, posgate_checks_received_total{source,result} (source "bi" here, "push" from
 * POST /v1/micros/guest-checks through pg_poll_note_received).
 */
#ifndef PG_SYNC_POLL_H
#define PG_SYNC_POLL_H

#include <stddef.h>

#include <jansson.h>

#include "server/config.h"
#include "server/error.h"
#include "sync/checkq.h"

struct pg_poll;

/**
 * Start one poller thread per location: checks.poll.locations, or, when that is empty, every
 * key of checks.transform.locations. cfg is borrowed and must outlive the poller.
 * Returns PG_OK; PG_ECONFIG (no location, a bad locRef, checks.bi incomplete: *why says which);
 * PG_ENOMEM. Ownership: *out is new; release with pg_poll_stop.
 */
int pg_poll_start(const struct pg_config *cfg, struct pg_poll **out) PG_WARN_UNUSED;

/**
 * What pg_poll_start would refuse, without starting anything (for --check-config): with
 * checks.poll.enabled, the locations and the checks.bi settings. PG_OK or PG_ECONFIG with err.
 */
int pg_poll_check_config(const struct pg_config *cfg, char *err, size_t errsz) PG_WARN_UNUSED;

/** Stop: wake every thread, let a cycle in progress finish its current call, join, free.
 * NULL-safe. */
void pg_poll_stop(struct pg_poll *p);

/**
 * Run one cycle for loc_ref now, on the calling thread (serialised with that location's own
 * thread), and describe it in *report (new JSON: location, outcome, latestBusDt, cursor_before,
 * cursor, dates[{date, checks, queued, unchanged, stale, invalid, curUTC}], error).
 * Returns PG_OK when the cycle ran (whatever its outcome: see report.outcome); PG_EUNAVAIL when
 * no poller is running in this process; PG_ENOTFOUND when loc_ref is not a polled location.
 */
int pg_poll_now(const char *loc_ref, json_t **report) PG_WARN_UNUSED;

/** Register the checks metrics collector (once per process; call before serving). */
void pg_poll_metrics_init(void);

/** Count checks received by a source ("bi" or "push") for posgate_checks_received_total. */
void pg_poll_note_received(const char *source, const enum pg_checkq_result *results, size_t n);

/* ---- exposed for tests ---- */

/** date ("YYYY-MM-DD") minus days into out (>= 11 bytes). PG_EINVAL for a malformed date. */
int pg_poll_date_minus(const char *date, int days, char *out, size_t outsz) PG_WARN_UNUSED;

/**
 * The dimension names JSON the transform takes ({"menuItems": {"<num>": "name"},
 * "tenderMedia": {...}, "discounts": {...}, "serviceCharges": {...}}) from getMenuItemDimensions,
 * getTenderMediaDimensions, getDiscountDimensions and getServiceChargeDimensions replies (any may
 * be NULL: that member is then taken from prev, a former result, when given, else omitted).
 * Ownership: arguments borrowed; returns a new object.
 */
json_t *pg_poll_dims_json(const json_t *menu_items,
                          const json_t *tender_media,
                          const json_t *discounts,
                          const json_t *service_charges,
                          const json_t *prev);

#endif
