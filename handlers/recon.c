/*
 * GET /v1/reconciliation?location=…&business_date=…[&repull=true]: the reconciliation report of
 * one location and business date (sync/recon.h). Operators (admin X-Api-Key) or partners with a
 * bearer JWT carrying the scope reconciliation:read (limited to the token's "stores" when it has
 * them). The report needs MICROS and Salesforce, so the handler continues on the slow pool.
 *
 * 400 bad parameters, 403 a store the caller may not see, 404 a location checks.transform does
 * not configure, 503 + Retry-After when MICROS, Salesforce or Redis cannot be reached (or
 * reconciliation is not configured).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "server/util.h"
#include "sync/recon.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pg_recon *recon; /* built on first use, freed by pg_hnd_recon_shutdown */
static char recon_err[300];

/* The reconciler, built once from the configuration (its clients sign in lazily). */
static struct pg_recon *get_recon(char *why, size_t whysz)
{
    pthread_mutex_lock(&mu);
    if (!recon && pg_hnd.app) {
        int rc = pg_recon_new(pg_hnd.app->cfg, NULL, NULL, &recon, recon_err, sizeof recon_err);
        if (rc != PG_OK)
            recon = NULL;
    }
    struct pg_recon *r = recon;
    if (!r)
        snprintf(why, whysz, "reconciliation is not configured: %s", recon_err);
    pthread_mutex_unlock(&mu);
    return r;
}

void pg_hnd_recon_shutdown(void)
{
    pthread_mutex_lock(&mu);
    pg_recon_free(recon);
    recon = NULL;
    recon_err[0] = '\0';
    pthread_mutex_unlock(&mu);
}

/* A partner token restricted to some stores may only see those. */
static int store_allowed(const struct pg_req *req, const char *loc)
{
    const json_t *stores = json_object_get(pg_req_principal(req), "stores");
    if (!json_is_array(stores))
        return 1;
    size_t i;
    json_t *s;
    json_array_foreach(stores, i, s)
    {
        if (json_is_string(s) && strcmp(json_string_value(s), loc) == 0)
            return 1;
    }
    return 0;
}

static int unavailable(struct pg_req *req, const char *detail)
{
    pg_req_add_header(req, "Retry-After", "30");
    return pg_req_problem(req, 503, detail, NULL);
}

static int run(struct pg_req *req)
{
    const char *loc = pg_req_query(req, "location");
    const char *date = pg_req_query(req, "business_date");
    const char *rp = pg_req_query(req, "repull");
    char why[400];
    struct pg_recon *r = get_recon(why, sizeof why);
    if (!r)
        return unavailable(req, why);
    if (!pg_recon_known_location(r, loc))
        return pg_req_problem(req, 404, "unknown location", NULL);
    json_t *report = NULL;
    int rc = pg_recon_run(r, loc, date, rp && strcmp(rp, "true") == 0, pg_now_ms() + 25000, &report,
                          why, sizeof why);
    if (rc == PG_OK) {
        pg_recon_observe(loc, report);
        return pg_req_reply_json(req, 200, report);
    }
    if (rc == PG_EINVAL)
        return pg_req_problem(req, 400, why, NULL);
    if (rc == PG_ENOTFOUND)
        return pg_req_problem(req, 404, "unknown location", NULL);
    pg_log(PG_LOG_WARN, pg_req_id(req), "recon.unavailable", "location %s %s: %s", loc, date, why);
    return unavailable(req, why);
}

static int check_arg(void *ud, const char *k, const char *v)
{
    (void)ud;
    (void)v;
    /* every parameter once, and only these */
    return strcmp(k, "location") != 0 && strcmp(k, "business_date") != 0 &&
           strcmp(k, "repull") != 0;
}

int pg_hnd_reconciliation(struct pg_req *req)
{
    const char *loc = pg_req_query(req, "location");
    const char *date = pg_req_query(req, "business_date");
    const char *rp = pg_req_query(req, "repull");
    if (pg_req_query_each(req, check_arg, NULL) != PG_OK)
        return pg_req_problem(req, 400, "unknown query parameter (location, business_date, repull)",
                              NULL);
    if (!loc || !*loc || strlen(loc) > 64 ||
        strspn(loc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                    "nopqrstuvwxyz0123456789._-") != strlen(loc))
        return pg_req_problem(req, 400, "location must be a locRef ([A-Za-z0-9._-], 1..64)", NULL);
    if (!date || strlen(date) != 10)
        return pg_req_problem(req, 400, "business_date must be a date YYYY-MM-DD", NULL);
    if (rp && strcmp(rp, "true") != 0 && strcmp(rp, "false") != 0)
        return pg_req_problem(req, 400, "repull must be true or false", NULL);
    if (!store_allowed(req, loc))
        return pg_req_problem(req, 403, "the token does not cover this location", NULL);
    return pg_req_defer(req, run);
}
