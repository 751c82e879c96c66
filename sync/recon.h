/*
 * Reconciliation of the MICROS → Salesforce flow (issue 6): for one location and business date,
 * three columns per revenue center and in total, each a count of closed checks and their total
 * in exact minor units:
 *
 *   pos         getControlDailyTotals (micros-wire.md §1.6) with clsdBusDt (the reference's
 *               recipe: the checks closed on the date, as orders are dated by clsdBusDt; busDt
 *               would count a check spanning two dates on both): numClsdChks and clsdChkTtl per
 *               revenue center. clsdChkTtl is the sum of the closed checks' chkTtl — exactly the
 *               amount the transform writes to the order's check total (POS_Check_Total__c), so
 *               the two compare to the cent. (netSlsTtl of getOperationsDailyTotals leaves out
 *               tax and service charges and would never match an order total.)
 *   synced      what the loader recorded after each check was fully in Salesforce:
 *               pg:chk:synced:<loc>:<busdt> (sync/checkq.h), entries with "closed": true.
 *   salesforce  one SOQL aggregate over the location's orders of that date:
 *                 SELECT COUNT(<check_total>) n, SUM(<check_total>) t, <revenue_center>, Status
 *                 FROM Order WHERE <location_ref> = '<loc>' AND EffectiveDate = <date>
 *                 GROUP BY <revenue_center>, Status
 *               COUNT of the check total (not of Id) leaves out the "-ADJ" adjustment orders,
 *               which carry no check total; rows whose Status is the configured closed or
 *               cancelled status (transform.order_status, default "Activated"/"Cancelled") form
 *               the column, others (open checks, "Draft") are reported as open_in_salesforce.
 *               Field names follow the transform's configuration (transform.fields renames).
 *
 * STATUS
 *   match    all three columns equal, count and total, in total and for every revenue center.
 *   pending  nothing contradicts, something is only not there yet: POS ahead of what was synced
 *            (checks not polled or not loaded yet), or synced checks missing from Salesforce that
 *            are queued again (pg:chk:<loc>:<gcid> state "queued").
 *   drift    anything else: an order in Salesforce that posgate never synced, a check whose
 *            Salesforce total differs from the synced one, a synced check missing from
 *            Salesforce and not queued, more synced than POS, or equal counts with different
 *            totals.
 * When the columns differ, a second query lists the orders (external id, total, revenue center,
 * Status) and the report names the checks: missing_in_salesforce, missing_in_posgate,
 * total_mismatch [{guest_check_id, synced, salesforce}].
 *
 * RE-PULL on drift (when asked: the daily job always, the endpoint with ?repull=true):
 *   - every check of missing_in_salesforce and total_mismatch that posgate holds
 *     (pg:chk:<loc>:<gcid>) is queued again: state "queued", synced_digest removed (so the
 *     loader does not skip it as unchanged), and a job {loc, gcid, rid "recon", enq_ms} XADDed to
 *     pg:chk:queue, as pg_checkq_put would;
 *   - pg:chk:repull:<loc>:<busdt> is set (JSON {"ts", "reason", "requeued"}, 7 days) for the
 *     poller: fetch that business date again without changedSinceUTC, then DEL the key. The
 *     poller's own cursor (pg:chk:cursor:<loc>) is never touched here.
 *
 * The report is stored at pg:chk:recon:<loc>:<busdt> (90 days) and returned (openapi/openapi.json
 * "ReconciliationReport").
 */
#ifndef PG_SYNC_RECON_H
#define PG_SYNC_RECON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/buf.h"
#include "server/config.h"
#include "server/error.h"

struct pg_bi;
struct pg_sf_rest;
struct pg_recon; /* opaque */

/**
 * Build a reconciler from the configuration: checks.transform (org, locations and their scale,
 * field names, order statuses), the BI client settings (checks.bi.*) and salesforce.rest.*. It
 * creates its own BI and Salesforce clients unless given (bi, rest borrowed; NULL: create).
 * PG_ECONFIG with why when the configuration lacks what reconciliation needs.
 */
int pg_recon_new(const struct pg_config *cfg,
                 struct pg_bi *bi,
                 struct pg_sf_rest *rest,
                 struct pg_recon **out,
                 char *why,
                 size_t whysz) PG_WARN_UNUSED;

void pg_recon_free(struct pg_recon *r);

/** 1 when loc is a location of checks.transform. */
int pg_recon_known_location(const struct pg_recon *r, const char *loc);

/**
 * Reconcile loc on bus_dt ("YYYY-MM-DD"); with repull, a drift triggers the re-pull above.
 * Returns PG_OK with *report (new), PG_EINVAL (bad date), PG_ENOTFOUND (unknown location), or
 * the error of the unreachable side: PG_EUNAVAIL / PG_ETIMEDOUT / PG_EAUTH / PG_EPROTO, why
 * naming it ("micros: ...", "salesforce: ...", "redis: ...").
 */
int pg_recon_run(struct pg_recon *r,
                 const char *loc,
                 const char *bus_dt,
                 int repull,
                 int64_t deadline_ms,
                 json_t **report,
                 char *why,
                 size_t whysz) PG_WARN_UNUSED;

/**
 * The comparison alone (pure, for tests). pos: the getControlDailyTotals reply; synced: the
 * synced hash as an object gcid → JSON text or object; sf_agg: the aggregate query's records;
 * sf_list: the listing query's records (may be NULL when the columns agree); queued: an object
 * whose keys are the gcids queued again (may be NULL). order_prefix: "<org>-<loc>-". statuses:
 * NULL-terminated list of the Salesforce statuses that count as closed. *report is new.
 */
int pg_recon_compare(const json_t *pos,
                     const json_t *synced,
                     const json_t *sf_agg,
                     const json_t *sf_list,
                     const json_t *queued,
                     const char *order_prefix,
                     const char *const *statuses,
                     int scale,
                     json_t **report,
                     char *why,
                     size_t whysz) PG_WARN_UNUSED;

/* ---- the daily job ---- */

struct pg_recon_job;

/**
 * Start the job (checks.reconcile.enabled): every checks.reconcile.interval_s it reconciles each
 * configured location's last closed business date (getLatestBusDt − 1 day) with re-pull on, and
 * updates the metrics. *out new; stop with pg_recon_stop.
 */
int pg_recon_start(const struct pg_config *cfg, struct pg_recon_job **out) PG_WARN_UNUSED;

/** Stop and free the job (waits for a run in progress to finish its current call). NULL: no-op. */
void pg_recon_stop(struct pg_recon_job *job);

/**
 * Prometheus text (a pg_metrics collector, registered once by the process):
 * posgate_reconciliation_status{location} (0 match, 1 pending, 2 drift, -1 error) and
 * posgate_reconciliation_difference_minor{location,column="synced|salesforce"} (POS total minus
 * that column's total, in minor units), posgate_reconciliation_runs_total{result}.
 */
int pg_recon_metrics(struct pg_buf *out) PG_WARN_UNUSED;

/** Record a report's outcome in the metrics (the job does; exposed for the endpoint). */
void pg_recon_observe(const char *loc, const json_t *report);

#endif
