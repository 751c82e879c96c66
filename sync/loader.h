/*
 * The loader: workers that take guest checks off the durable queue (sync/checkq.h) and upsert
 * them into Salesforce with sObject Collections (salesforce/collections.h), by external id, so
 * loading the same check any number of times leaves exactly one Order with the same items and
 * payments.
 *
 * A BATCH OF CHECKS PER CALL. Salesforce counts API calls, not records (salesforce-wire §4:
 * ~4 calls per check loaded alone would spend an Enterprise org's daily allocation at a few
 * hundred stores), so a worker takes up to checks.load.batch_checks jobs at once (XREADGROUP
 * COUNT, default 50; it answers with what is queued, a quiet queue is not held back) and loads
 * their checks together: each step below is one stage for every check of the batch, its records
 * in calls of at most 200, parents before children across the batch (all orders before any
 * item). Jobs naming the same check load it once (the newest version held) and are acknowledged
 * together. Each check keeps its own lease, lines map, verdict and metrics: every per-record
 * result is charged to its own check (a record shared by several checks, a product or price
 * book entry sent once per batch, to each of them), a check that fails a stage takes no part in
 * the later ones, and the others go on.
 *
 * EACH CHECK is loaded whole from the newest version held in pg:chk:<loc>:<gcid>:
 *   0. skip when that version's digest is the one already synced (re-sending changes nothing);
 *   1. transform it (sync/transform.h) with the location's dimension names (pg:chk:dims:<loc>),
 *      match the customer (hook; "" keeps the walk-in account);
 *   2. with checks.load.create_missing_products: Product2 records, then their PricebookEntries
 *      (the standard book's first when checks.load.standard_pricebook_id names another book);
 *   3. the Order (then, in a later call, the adjustment order), always as Draft: Salesforce
 *      creates orders only as Draft and refuses item changes on an activated order, so a
 *      re-sync reverts it first;
 *   4. lines synced before that are no longer on the check: deleted (collections DELETE), but a
 *      standard Payment is moved to Canceled (a Processed Payment cannot be deleted);
 *   5. OrderItems: PricebookEntry set by external id reference (see PRICEBOOK ENTRIES);
 *   6. payments;
 *   7. each order's final Status (Activated / the configured values) when it is not Draft;
 *   8. record it: state synced, synced_digest, order_id, and pg:chk:synced:<loc>:<busdt> (only
 *      for a check that went through every stage).
 * Records Salesforce already holds (pg:chk:lines:<loc>:<gcid>, "<sObject>:<external id>" → Id,
 * written as each call succeeds) are sent without their create-only fields (OrderItem Order and
 * PricebookEntry, Order IsReductionOrder/OriginalOrder, Payment ProcessingMode...). If that map
 * missed a record (a timeout after Salesforce applied the call) the update path answers
 * INVALID_FIELD_FOR_INSERT_UPDATE; the record is then resent once without them.
 *
 * PRICEBOOK ENTRIES: an OrderItem needs a PricebookEntryId (create-only). The loader sets it by
 * external id reference, {"PricebookEntry": {<checks.load.pricebook_entry_external_id_field>:
 * "<Pricebook2Id 15>-<currency>-<miNum>"}} ("<Pricebook2Id 15>-<miNum>" without a currency), so
 * no query is needed per check and Salesforce resolves it in the same call. Entries posgate
 * creates carry that id; entries loaded by an administrator must too.
 *
 * FAILURES, per record result or whole call:
 *   - UNABLE_TO_LOCK_ROW (and ALL_OR_NONE_OPERATION_ROLLED_BACK): the failed records (of every
 *     check of the batch) are resent up to 3 times within the job after a short jittered pause;
 *     then the checks they belong to are retried later like a whole-call failure;
 *   - a whole call that fails with a timeout, 5xx, 429, a connection or token error: nothing is
 *     known of what it wrote, so every check of the batch still loading is retried later with
 *     full-jitter backoff (checks.load.retry_base_ms .. retry_cap_ms) up to
 *     checks.load.max_attempts, then dead-lettered (records already written are upserts by
 *     external id: the retry converges);
 *   - any other per-record error (a validation error): only that record's check is
 *     dead-lettered at once (pg:chk:dead: loc, gcid, code, object, record, message; the payload
 *     stays in the check hash, state "dead"), its later stages skipped; the other checks of the
 *     batch go on. A call refused as a whole (400/404/403) dead-letters the checks whose records
 *     were in that call;
 *   - REQUEST_LIMIT_EXCEEDED: pg:chk:pause is set for checks.load.limit_pause_s, every worker (of
 *     every process) stops taking jobs until it expires, the batch's checks wait for the end of
 *     the pause without using an attempt, posgate_checks_paused is 1.
 * A job whose check another worker is loading waits (a lease per check, pg:chk:lock:<loc>:<gcid>,
 * taken when the batch is prepared; every call of the batch ends before the first lease
 * expires).
 */
#ifndef PG_SYNC_LOADER_H
#define PG_SYNC_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/config.h"
#include "server/error.h"

struct pg_loader;

struct pg_loader_hooks {
    void *ud;
    /*
     * Customer matching (sync/match.h). PG_OK with the Account Id in account_id ("" keeps the
     * transform's walk-in AccountId), or an error code: the job is retried later (why says
     * what). check and loc_ref are borrowed; deadline_ms is a pg_now_ms() deadline. NULL: every
     * order keeps the walk-in account.
     */
    int (*match)(void *ud,
                 const json_t *check,
                 const char *loc_ref,
                 int64_t deadline_ms,
                 char *account_id,
                 size_t sz,
                 char *why,
                 size_t whysz);
};

/**
 * Start checks.load.workers threads. cfg is borrowed and must outlive the pool; hooks (may be
 * NULL) is copied. Builds its own Salesforce token source from salesforce.rest.* and compiles
 * checks.transform: PG_ECONFIG when either is missing or invalid. Registers the metrics
 * collector (once per process). *out is new; release with pg_loader_stop.
 */
int pg_loader_start(const struct pg_config *cfg,
                    const struct pg_loader_hooks *hooks,
                    struct pg_loader **out) PG_WARN_UNUSED;

/** Stop taking work, let each worker finish its current check, join, free. NULL-safe. */
void pg_loader_stop(struct pg_loader *l);

/**
 * Queue the check (loc, gcid) to be loaded again even if its digest was synced (operator replay:
 * the configuration may have changed). why names the reason ("replay"). PG_ENOTFOUND when
 * posgate holds no such check.
 */
int pg_loader_enqueue(const char *loc, const char *gcid, const char *why, const char *rid)
    PG_WARN_UNUSED;

/** Register the loader's metrics collector (also done by pg_loader_start). Idempotent. */
void pg_loader_metrics_init(void);

#endif
