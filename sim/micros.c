/*
 * The MICROS simulator: the enterprise's locations and revenue centers (BI API dimension shapes,
 * micros-wire.md §1.5) and the BI API's error body (§1.8). The BI API itself (OIDC sign-in,
 * POST /bi/v1/{org}/..., generated checks) is in sim/mi_bi.c and sim/mi_bi_gen.c, the Gift &
 * Loyalty host in sim/mi_gl.c, the webhook receiver in sim/mi_webhook.c.
 */
#include "sim/sim.h"
#include "sim/mi_bi.h"

#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

/*
 * §1.8: the body looks RFC 7807-like (type, title, status, detail) and numeric Oracle codes such
 * as 33204 were seen on 400s; the exact field set is unverified, so only `code` is optional.
 */
static void
mi_error_reply(struct pg_sim *sim, int status, const char *msg, struct pg_sim_reply *out)
{
    const char *title = MHD_get_reason_phrase_for((unsigned)status);
    (void)sim;
    pg_sim_reply_json(out, status,
                      json_pack("{s:s,s:s,s:i,s:s}", "type", "about:blank", "title",
                                title && title[0] ? title : "Error", "status", status, "detail",
                                msg ? msg : "injected fault"));
}

static const struct pg_sim_route mi_routes[] = {
    {"POST", "/ws/services/StoredValueService", 0, pg_sim_gl_process},
    {"POST", "/webhooks/loyalty", 0, pg_sim_webhook_receive},
    /* BI API (sim/mi_bi.c): sign-in, operations, controls */
    {"*", "/oidc-provider/", 1, pg_sim_bi_oidc},
    {"*", "/bi/v1/", 1, pg_sim_bi_api},
    {"POST", "/_sim/bi/late-upload", 0, pg_sim_bi_late_upload},
    {"POST", "/_sim/bi/tokens/expire", 0, pg_sim_bi_tokens_expire},
    {NULL, NULL, 0, NULL},
};

/* GET /_sim/state: the seed records plus the BI API's "bi" summary. */
static json_t *mi_state_view(struct pg_sim *sim)
{
    json_t *v = json_copy(sim->state);
    json_object_set_new(v, "bi", pg_sim_bi_state(sim));
    return v;
}

static const struct pg_sim_ops mi_ops = {
    .name = "micros",
    .routes = mi_routes,
    .error_reply = mi_error_reply,
    .reset = pg_sim_bi_reset,
    .state_view = mi_state_view,
    .destroy = pg_sim_bi_destroy,
};

static int find_loc(json_t *locations, const char *loc_ref)
{
    size_t i;
    json_t *l;
    json_array_foreach(locations, i, l)
    {
        if (strcmp(json_string_value(json_object_get(l, "locRef")), loc_ref) == 0)
            return 1;
    }
    return 0;
}

/*
 * Validate the records the gateway relies on: locRef is a string (leading zeros matter, §1.2),
 * unique, at most 99 chars; each revenue center names an existing location and a unique num
 * within it. Other dimension fields (openDt, curr, addrLn1...) pass through as written.
 */
static int mi_check(json_t *locs, json_t *rvcs, char *err, size_t errsz)
{
    size_t i, j;
    json_t *v, *w;
    json_array_foreach(locs, i, v)
    {
        const char *ref = json_string_value(json_object_get(v, "locRef"));
        json_t *name = json_object_get(v, "name"), *tz = json_object_get(v, "tz");
        if (!ref || !ref[0] || strlen(ref) > 99 || !json_is_string(name) || !json_is_string(tz)) {
            snprintf(err, errsz, "locations[%zu]: needs string locRef (1..99 chars), name, tz", i);
            return PG_ECONFIG;
        }
        json_array_foreach(locs, j, w)
        {
            if (j < i && strcmp(ref, json_string_value(json_object_get(w, "locRef"))) == 0) {
                snprintf(err, errsz, "locations[%zu]: duplicate locRef \"%s\"", i, ref);
                return PG_ECONFIG;
            }
        }
    }
    json_array_foreach(rvcs, i, v)
    {
        const char *ref = json_string_value(json_object_get(v, "locRef"));
        json_t *num = json_object_get(v, "num");
        if (!ref || !find_loc(locs, ref) || !json_is_integer(num) ||
            !json_is_string(json_object_get(v, "name"))) {
            snprintf(err, errsz,
                     "revenue_centers[%zu]: needs the locRef of a location, integer num, name", i);
            return PG_ECONFIG;
        }
        json_array_foreach(rvcs, j, w)
        {
            if (j < i && json_equal(num, json_object_get(w, "num")) &&
                strcmp(ref, json_string_value(json_object_get(w, "locRef"))) == 0) {
                snprintf(err, errsz, "revenue_centers[%zu]: duplicate num in location %s", i, ref);
                return PG_ECONFIG;
            }
        }
    }
    return PG_OK;
}

/* Seed: {"locations":[...], "revenue_centers":[...], "customers":[...]} (sim/README.md). */
static int
mi_load_seed(const char *path, json_t *sf_contacts, json_t **out, char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *root = path ? json_load_file(path, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    int rc = PG_ECONFIG;
    char why[256] = "";
    *out = NULL;
    if (!root) {
        snprintf(err, errsz, "micros seed %s: line %d: %s", path, jerr.line, jerr.text);
        return rc;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (strcmp(k, "locations") != 0 && strcmp(k, "revenue_centers") != 0 &&
            strcmp(k, "customers") != 0) {
            snprintf(why, sizeof why, "unknown key \"%s\"", k);
            goto out;
        }
        if (!json_is_array(v)) {
            snprintf(why, sizeof why, "\"%s\" must be an array", k);
            goto out;
        }
    }
    json_t *locs = json_object_get(root, "locations"),
           *rvcs = json_object_get(root, "revenue_centers");
    if (mi_check(locs, rvcs, why, sizeof why) != 0)
        goto out;
    /* G&L customers: the seed's own, else one per Salesforce loyalty member */
    json_t *cust = json_object_get(root, "customers");
    cust = cust ? json_deep_copy(cust) : pg_sim_gl_customers_from_contacts(sf_contacts);
    if (pg_sim_gl_check_customers(cust, why, sizeof why) != 0) {
        json_decref(cust);
        goto out;
    }
    *out = json_pack("{s:o,s:o,s:o,s:{s:[],s:{}}}", "locations",
                     locs ? json_incref(locs) : json_array(), "revenue_centers",
                     rvcs ? json_incref(rvcs) : json_array(), "customers", cust, "webhook",
                     "deliveries", "customers");
    rc = *out ? PG_OK : PG_ENOMEM;
out:
    if (why[0])
        snprintf(err, errsz, "micros seed %s: %s", path ? path : "(none)", why);
    json_decref(root);
    return rc;
}

int pg_sim_micros_init(struct pg_sim *sim,
                       const struct pg_sim_config *cfg,
                       json_t *sf_contacts,
                       char *err,
                       size_t errsz)
{
    json_t *seed;
    int rc = mi_load_seed(cfg->micros.seed, sf_contacts, &seed, err, errsz);
    if (rc)
        return rc;
    rc = pg_sim_init(sim, &mi_ops, cfg, seed);
    if (rc)
        snprintf(err, errsz, "micros: out of memory");
    else
        rc = pg_sim_bi_init(sim, err, errsz);
    return rc;
}
