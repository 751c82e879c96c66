/*
 * Reconciliation (sync/recon.h documents the columns, the status rules and the re-pull).
 */
#include "sync/recon.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "micros/bi.h"
#include "salesforce/oauth.h"
#include "salesforce/sf_config.h"
#include "salesforce/rest.h"
#include "salesforce/soql.h"
#include "server/log.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "sync/money.h"

#define COL_POS 0
#define COL_SYNCED 1
#define COL_SF 2
#define NCOL 3
#define REPORT_TTL_S (90 * 86400)
#define REPULL_TTL_S (7 * 86400)

static const char *const col_names[NCOL] = {"pos", "synced", "salesforce"};

struct pg_recon {
    json_t *locations; /* transform.locations (borrowed from the configuration) */
    char org[128];
    char f_ext[129], f_loc[129], f_total[129], f_rvc[129];
    char st_closed[64], st_cancelled[64];
    struct pg_bi *bi;
    struct pg_sf_rest *rest;
    struct pg_sf_oauth *oauth; /* owned when we made rest */
    int own_bi, own_rest;
};

/* ---- configuration ------------------------------------------------------------------------ */

static int field_name(const json_t *xf,
                      const char *name,
                      const char *def,
                      char *out,
                      size_t outsz,
                      char *why,
                      size_t whysz)
{
    const json_t *fields = json_object_get(xf, "fields");
    const json_t *v = json_object_get(fields, name);
    const char *s = v ? json_string_value(v) : def;
    if (!s || !pg_soql_ident_ok(s) || strlen(s) >= outsz) {
        snprintf(why, whysz,
                 "config: checks.transform.fields.%s: reconciliation needs this order field "
                 "(an API name, not null)",
                 name);
        return PG_ECONFIG;
    }
    snprintf(out, outsz, "%s", s);
    return PG_OK;
}

int pg_recon_new(const struct pg_config *cfg,
                 struct pg_bi *bi,
                 struct pg_sf_rest *rest,
                 struct pg_recon **out,
                 char *why,
                 size_t whysz)
{
    *out = NULL;
    const json_t *xf = cfg->checks_transform;
    if (!json_is_object(xf) || !json_is_string(json_object_get(xf, "org")) ||
        !json_is_object(json_object_get(xf, "locations"))) {
        snprintf(why, whysz, "config: reconciliation needs checks.transform (org, locations)");
        return PG_ECONFIG;
    }
    struct pg_recon *r = calloc(1, sizeof *r);
    if (!r)
        return PG_ENOMEM;
    r->locations = json_object_get(xf, "locations");
    snprintf(r->org, sizeof r->org, "%s", json_string_value(json_object_get(xf, "org")));
    const json_t *ext = json_object_get(xf, "order_external_id_field");
    const char *st =
        json_string_value(json_object_get(json_object_get(xf, "order_status"), "closed"));
    const char *sc =
        json_string_value(json_object_get(json_object_get(xf, "order_status"), "cancelled"));
    snprintf(r->st_closed, sizeof r->st_closed, "%s", st ? st : "Activated");
    snprintf(r->st_cancelled, sizeof r->st_cancelled, "%s", sc ? sc : "Cancelled");
    int rc = PG_OK;
    snprintf(r->f_ext, sizeof r->f_ext, "%s", ext ? json_string_value(ext) : "POS_Check_Id__c");
    if (!pg_soql_ident_ok(r->f_ext)) {
        snprintf(why, whysz, "config: checks.transform.order_external_id_field: not an API name");
        rc = PG_ECONFIG;
    }
    if (!rc)
        rc = field_name(xf, "location_ref", "POS_Location_Ref__c", r->f_loc, sizeof r->f_loc, why,
                        whysz);
    if (!rc)
        rc = field_name(xf, "check_total", "POS_Check_Total__c", r->f_total, sizeof r->f_total, why,
                        whysz);
    if (!rc)
        rc = field_name(xf, "revenue_center", "POS_Revenue_Center__c", r->f_rvc, sizeof r->f_rvc,
                        why, whysz);
    if (!rc && bi) {
        r->bi = bi;
    } else if (!rc) {
        if (!cfg->bi_base_url || !cfg->bi_org || !cfg->bi_client_id || !cfg->bi_username ||
            !cfg->bi_password) {
            snprintf(why, whysz,
                     "config: reconciliation needs checks.bi (base_url, org, client_id, username, "
                     "password)");
            rc = PG_ECONFIG;
        } else {
            struct pg_bi_config bc = {.base_url = cfg->bi_base_url,
                                      .auth_base_url = cfg->bi_auth_base_url,
                                      .org = cfg->bi_org,
                                      .client_id = cfg->bi_client_id,
                                      .username = cfg->bi_username,
                                      .password = cfg->bi_password,
                                      .application_name = cfg->bi_application_name,
                                      .timeout_ms = cfg->bi_timeout_ms};
            if (pg_bi_new(&bc, &r->bi) != PG_OK) {
                snprintf(why, whysz, "config: checks.bi: the BI client settings are not usable");
                rc = PG_ECONFIG;
            } else {
                r->own_bi = 1;
            }
        }
    }
    if (!rc && rest) {
        r->rest = rest;
    } else if (!rc) {
        rc = pg_sf_oauth_from_config(cfg, "reconciliation", 2000, 10000, &r->oauth, why, whysz);
        if (!rc) {
            /* reports query more than a cashier's lookup: their own timeouts and reply cap */
            struct pg_sf_rest_config rcf = {.api_version = cfg->sf_api_version,
                                            .connect_timeout_ms = 2000,
                                            .timeout_ms = 20000,
                                            .max_response_bytes = 16 << 20};
            if (pg_sf_rest_new(&rcf, r->oauth, &r->rest) != PG_OK) {
                snprintf(why, whysz, "config: salesforce.rest: cannot create the REST client");
                rc = PG_ECONFIG;
            } else {
                r->own_rest = 1;
            }
        }
    }
    if (rc) {
        pg_recon_free(r);
        return rc;
    }
    *out = r;
    return PG_OK;
}

void pg_recon_free(struct pg_recon *r)
{
    if (!r)
        return;
    if (r->own_rest)
        pg_sf_rest_free(r->rest);
    pg_sf_oauth_free(r->oauth);
    if (r->own_bi)
        pg_bi_free(r->bi);
    free(r);
}

int pg_recon_known_location(const struct pg_recon *r, const char *loc)
{
    return loc && json_is_object(json_object_get(r->locations, loc));
}

static int loc_scale(const struct pg_recon *r, const char *loc)
{
    const json_t *s = json_object_get(json_object_get(r->locations, loc), "scale");
    return json_is_integer(s) ? (int)json_integer_value(s) : 2;
}

/* ---- the comparison (pure) ---------------------------------------------------------------- */

struct rvc_row {
    long long rvc;
    long long n[NCOL];
    int64_t t[NCOL];
};

struct table {
    struct rvc_row *rows;
    size_t n;
};

static struct rvc_row *row_get(struct table *t, long long rvc)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->rows[i].rvc == rvc)
            return &t->rows[i];
    struct rvc_row *nr = realloc(t->rows, (t->n + 1) * sizeof *nr);
    if (!nr)
        return NULL;
    t->rows = nr;
    memset(&nr[t->n], 0, sizeof nr[0]);
    nr[t->n].rvc = rvc;
    return &nr[t->n++];
}

/* A revenue center number as JSON gives it: integer, real (REST writes numbers as doubles) or
 * digits in a string; -1 when absent. */
static long long rvc_of(const json_t *v)
{
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    const char *s = json_string_value(v);
    long long x;
    if (s && pg_strtonum(s, 0, 1000000000, &x) == PG_OK)
        return x;
    return -1;
}

static json_t *money_json(int64_t minor, int scale)
{
    char buf[40];
    if (pg_money_format(minor, scale, buf, sizeof buf) != PG_OK)
        snprintf(buf, sizeof buf, "?");
    return json_pack("{s:s,s:I}", "total", buf, "total_minor", (json_int_t)minor);
}

static json_t *column(long long n, int64_t t, int scale)
{
    json_t *m = money_json(t, scale);
    json_object_set_new(m, "count", json_integer(n));
    return m;
}

/* A synced entry: the hash value is JSON text (or, in tests, already an object). */
static json_t *synced_entry(const json_t *v)
{
    if (json_is_object(v))
        return json_incref((json_t *)v);
    const char *s = json_string_value(v);
    return s ? json_loads(s, 0, NULL) : NULL;
}

static int is_status(const char *s, const char *const *statuses)
{
    for (const char *const *p = statuses; s && p && *p; p++)
        if (strcmp(*p, s) == 0)
            return 1;
    return 0;
}

static int gcid_from_ext(const char *ext, const char *prefix, char *out, size_t outsz)
{
    size_t pl = strlen(prefix);
    if (!ext || strncmp(ext, prefix, pl) != 0)
        return 0;
    const char *g = ext + pl;
    size_t gl = strspn(g, "0123456789");
    if (!gl || g[gl] || gl >= outsz) /* "-ADJ" orders and foreign ids are not sales */
        return 0;
    memcpy(out, g, gl);
    out[gl] = '\0';
    return 1;
}

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
                     size_t whysz)
{
    *report = NULL;
    struct table t = {0};
    size_t i;
    json_t *v;
    long long tot_n[NCOL] = {0}, open_sf = 0, open_synced = 0;
    int64_t tot_t[NCOL] = {0};
    int rc = PG_OK;
    /* POS: control totals per revenue center */
    json_array_foreach(json_object_get(pos, "revenueCenters"), i, v)
    {
        int64_t ttl = 0;
        const json_t *tv = json_object_get(v, "clsdChkTtl");
        if (tv && !json_is_null(tv) && pg_money_parse(tv, scale, &ttl) != PG_OK) {
            snprintf(why, whysz, "micros: clsdChkTtl of revenue center %lld is not an amount",
                     rvc_of(json_object_get(v, "rvcNum")));
            rc = PG_EPROTO;
            goto out;
        }
        long long n = json_integer_value(json_object_get(v, "numClsdChks"));
        if (n == 0 && ttl == 0)
            continue; /* an idle revenue center is no row */
        struct rvc_row *r = row_get(&t, rvc_of(json_object_get(v, "rvcNum")));
        if (!r) {
            rc = PG_ENOMEM;
            goto out;
        }
        r->n[COL_POS] += n;
        r->t[COL_POS] += ttl;
    }
    /* synced: closed checks the loader recorded */
    json_t *syn_by_gcid = json_object();
    const char *gk;
    json_object_foreach((json_t *)synced, gk, v)
    {
        json_t *e = synced_entry(v);
        if (!json_is_object(e)) {
            json_decref(e);
            continue;
        }
        if (!json_is_true(json_object_get(e, "closed"))) {
            open_synced++;
            json_decref(e);
            continue;
        }
        struct rvc_row *r = row_get(&t, rvc_of(json_object_get(e, "rvc")));
        if (!r) {
            json_decref(e);
            json_decref(syn_by_gcid);
            rc = PG_ENOMEM;
            goto out;
        }
        r->n[COL_SYNCED]++;
        r->t[COL_SYNCED] += json_integer_value(json_object_get(e, "total"));
        json_object_set_new(syn_by_gcid, gk, e);
    }
    /* Salesforce: the aggregate rows of closed statuses */
    json_array_foreach(sf_agg, i, v)
    {
        long long n = json_integer_value(json_object_get(v, "n"));
        const json_t *tv = json_object_get(v, "t");
        int64_t ttl = 0;
        if (!n)
            continue;
        if (tv && !json_is_null(tv) && pg_money_parse(tv, scale, &ttl) != PG_OK) {
            snprintf(why, whysz, "salesforce: an order total sum is not an amount of scale %d",
                     scale);
            json_decref(syn_by_gcid);
            rc = PG_EPROTO;
            goto out;
        }
        if (!is_status(json_string_value(json_object_get(v, "Status")), statuses)) {
            open_sf += n;
            continue;
        }
        /* the grouped field is the only other key: find it (its name is configurable) */
        long long rvc = -1;
        const char *k;
        json_t *fv;
        json_object_foreach(v, k, fv)
        {
            if (strcmp(k, "attributes") && strcmp(k, "n") && strcmp(k, "t") && strcmp(k, "Status"))
                rvc = rvc_of(fv);
        }
        struct rvc_row *r = row_get(&t, rvc);
        if (!r) {
            json_decref(syn_by_gcid);
            rc = PG_ENOMEM;
            goto out;
        }
        r->n[COL_SF] += n;
        r->t[COL_SF] += ttl;
    }
    json_t *rvcs = json_array();
    int all_equal = 1;
    for (size_t k = 0; k < t.n; k++) {
        struct rvc_row *r = &t.rows[k];
        int eq = 1;
        for (int c = 0; c < NCOL; c++) {
            tot_n[c] += r->n[c];
            tot_t[c] += r->t[c];
            eq &= r->n[c] == r->n[COL_POS] && r->t[c] == r->t[COL_POS];
        }
        all_equal &= eq;
        json_t *row = json_pack("{s:I,s:s}", "revenue_center", (json_int_t)r->rvc, "status",
                                eq ? "match" : "differs");
        for (int c = 0; c < NCOL; c++)
            json_object_set_new(row, col_names[c], column(r->n[c], r->t[c], scale));
        json_array_append_new(rvcs, row);
    }
    /* the checks that explain a difference */
    json_t *miss_sf = json_array(), *miss_pg = json_array(), *mism = json_array();
    int pending_only = 1, have_list = sf_list != NULL;
    if (sf_list) {
        json_t *sf_by_gcid = json_object();
        json_array_foreach(sf_list, i, v)
        {
            char g[32];
            const char *k;
            json_t *fv;
            const char *ext = NULL;
            const json_t *total = NULL;
            /* the listing selects: external id, total, revenue center, Status */
            json_object_foreach(v, k, fv)
            {
                if (json_is_string(fv) && !ext &&
                    strncmp(json_string_value(fv), order_prefix, strlen(order_prefix)) == 0)
                    ext = json_string_value(fv);
            }
            total = json_object_get(v, "__total");
            if (!gcid_from_ext(ext, order_prefix, g, sizeof g) ||
                !is_status(json_string_value(json_object_get(v, "Status")), statuses))
                continue;
            int64_t minor = 0;
            if (total && !json_is_null(total) && pg_money_parse(total, scale, &minor) != PG_OK) {
                /* a money string ("313.90"): parse it through a JSON real */
                json_t *tmp =
                    json_is_string(total) ? json_real(atof(json_string_value(total))) : NULL;
                if (!tmp || pg_money_parse(tmp, scale, &minor) != PG_OK)
                    minor = 0;
                json_decref(tmp);
            }
            json_object_set_new(sf_by_gcid, g, json_integer(minor));
        }
        json_object_foreach(syn_by_gcid, gk, v)
        {
            json_t *s = json_object_get(sf_by_gcid, gk);
            int64_t st = json_integer_value(json_object_get(v, "total"));
            if (!s) {
                json_array_append_new(miss_sf, json_string(gk));
                if (!json_object_get(queued, gk))
                    pending_only = 0;
            } else if (json_integer_value(s) != st) {
                json_array_append_new(mism, json_pack("{s:s,s:o,s:o}", "guest_check_id", gk,
                                                      "synced", money_json(st, scale), "salesforce",
                                                      money_json(json_integer_value(s), scale)));
                pending_only = 0;
            }
        }
        json_object_foreach(sf_by_gcid, gk, v)
        {
            if (!json_object_get(syn_by_gcid, gk)) {
                json_array_append_new(miss_pg, json_string(gk));
                pending_only = 0;
            }
        }
        json_decref(sf_by_gcid);
    }
    json_decref(syn_by_gcid);
    const char *status = "match";
    if (!all_equal || json_array_size(miss_sf) || json_array_size(miss_pg) ||
        json_array_size(mism)) {
        /* POS ≥ synced ≥ Salesforce in every revenue center, and nothing else wrong */
        int monotonic = 1;
        for (size_t k = 0; k < t.n; k++) {
            struct rvc_row *r = &t.rows[k];
            monotonic &= r->n[COL_POS] >= r->n[COL_SYNCED] && r->n[COL_SYNCED] >= r->n[COL_SF];
            /* the counts agree but the money does not: nothing is on its way */
            if (r->n[COL_POS] == r->n[COL_SYNCED] && r->t[COL_POS] != r->t[COL_SYNCED])
                monotonic = 0;
            if (r->n[COL_SYNCED] == r->n[COL_SF] && r->t[COL_SYNCED] != r->t[COL_SF])
                monotonic = 0;
        }
        /* synced checks missing from Salesforce are pending only when queued again; without
         * the listing we cannot tell, so a synced-ahead-of-Salesforce count is a drift */
        if (!have_list && tot_n[COL_SYNCED] > tot_n[COL_SF])
            pending_only = 0;
        status = monotonic && pending_only ? "pending" : "drift";
    }
    json_t *totals = json_object();
    for (int c = 0; c < NCOL; c++)
        json_object_set_new(totals, col_names[c], column(tot_n[c], tot_t[c], scale));
    *report =
        json_pack("{s:s,s:o,s:o,s:{s:o,s:o,s:o,s:I,s:I},s:{s:I,s:I}}", "status", status, "totals",
                  totals, "revenue_centers", rvcs, "differences", "missing_in_salesforce", miss_sf,
                  "missing_in_posgate", miss_pg, "total_mismatch", mism, "open_in_salesforce",
                  (json_int_t)open_sf, "open_synced", (json_int_t)open_synced, "difference_minor",
                  "synced", (json_int_t)(tot_t[COL_POS] - tot_t[COL_SYNCED]), "salesforce",
                  (json_int_t)(tot_t[COL_POS] - tot_t[COL_SF]));
    if (!*report)
        rc = PG_ENOMEM;
out:
    free(t.rows);
    return rc;
}

/* ---- the three sources -------------------------------------------------------------------- */

/* "SELECT ... FROM Order WHERE <loc field> = '<loc>' AND EffectiveDate = <date>" + tail. */
static int order_soql(const struct pg_recon *r,
                      struct pg_buf *q,
                      const char *select,
                      const char *loc,
                      const char *date,
                      const char *tail)
{
    int rc = pg_buf_printf(q, "SELECT %s FROM Order WHERE %s = '", select, r->f_loc);
    if (!rc)
        rc = pg_soql_escape(q, loc);
    /* date is checked by pg_bi_valid_date before: digits and dashes only */
    if (!rc)
        rc = pg_buf_printf(q, "' AND EffectiveDate = %s%s", date, tail);
    return rc;
}

static int sf_error(int rc, const struct pg_sf_error *e, char *why, size_t whysz)
{
    snprintf(why, whysz, "salesforce: %s%s%s", e->code[0] ? e->code : pg_strerror(rc),
             e->message[0] ? ": " : "", e->message);
    return rc;
}

static int redis_error(int rc, char *why, size_t whysz)
{
    snprintf(why, whysz, "redis: %s", pg_strerror(rc));
    return rc;
}

/* HGETALL of the synced hash → object gcid → JSON text. */
static int load_synced(const char *loc, const char *date, json_t **out, char *why, size_t whysz)
{
    redisReply *rep = NULL;
    int rc = pg_redis_command(&rep, "HGETALL %s%s:%s", PG_KEY_CHK_SYNCED, loc, date);
    if (rc != PG_OK) {
        if (rep)
            freeReplyObject(rep);
        return redis_error(rc, why, whysz);
    }
    json_t *o = json_object();
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2)
        json_object_set_new(o, rep->element[i]->str,
                            json_stringn(rep->element[i + 1]->str, rep->element[i + 1]->len));
    freeReplyObject(rep);
    *out = o;
    return PG_OK;
}

/* The gcids among missing that are queued (state "queued" in their check hash). */
static json_t *queued_of(const char *loc, const json_t *missing)
{
    json_t *q = json_object();
    size_t i;
    json_t *g;
    json_array_foreach(missing, i, g)
    {
        redisReply *rep = NULL;
        if (pg_redis_command(&rep, "HGET %s%s:%s state", PG_KEY_CHK, loc, json_string_value(g)) ==
                PG_OK &&
            rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "queued") == 0)
            json_object_set_new(q, json_string_value(g), json_true());
        if (rep)
            freeReplyObject(rep);
    }
    return q;
}

/* Queue a check again, as pg_checkq_put would for a new version (sync/checkq.h layout). */
static const char REQUEUE_LUA[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'queued')\n"
    "redis.call('HDEL', KEYS[1], 'synced_digest')\n"
    "redis.call('XADD', '" PG_KEY_CHK_QUEUE "', '*', 'loc', ARGV[1], 'gcid', ARGV[2], 'rid', "
    "'recon', 'enq_ms', ARGV[3])\n"
    "return 1\n";

static int repull(const char *loc, const char *date, const json_t *report, int *requeued)
{
    *requeued = 0;
    const json_t *d = json_object_get(report, "differences");
    const json_t *lists[2] = {json_object_get(d, "missing_in_salesforce"),
                              json_object_get(d, "total_mismatch")};
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *e;
        json_array_foreach(lists[l], i, e)
        {
            const char *g = json_is_string(e)
                                ? json_string_value(e)
                                : json_string_value(json_object_get(e, "guest_check_id"));
            char key[256];
            snprintf(key, sizeof key, "%s%s:%s", PG_KEY_CHK, loc, g);
            const char *argv[] = {"EVAL", REQUEUE_LUA, "1", key, loc, g, now};
            redisReply *rep = NULL;
            int rc = pg_redis_command_argv(&rep, 7, argv, NULL);
            if (rc == PG_OK && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
                (*requeued)++;
            if (rep)
                freeReplyObject(rep);
            if (rc != PG_OK)
                return rc;
        }
    }
    json_t *flag = json_pack("{s:I,s:s,s:i}", "ts", (json_int_t)pg_wall_ms(), "reason", "drift",
                             "requeued", *requeued);
    char *txt = json_dumps(flag, JSON_COMPACT);
    json_decref(flag);
    if (!txt)
        return PG_ENOMEM;
    redisReply *rep = NULL;
    int rc = pg_redis_command(&rep, "SET %s%s:%s %s EX %d", PG_KEY_CHK_REPULL, loc, date, txt,
                              REPULL_TTL_S);
    free(txt);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

int pg_recon_run(struct pg_recon *r,
                 const char *loc,
                 const char *bus_dt,
                 int do_repull,
                 int64_t deadline_ms,
                 json_t **report,
                 char *why,
                 size_t whysz)
{
    *report = NULL;
    if (whysz)
        why[0] = '\0';
    if (!bus_dt || !pg_bi_valid_date(bus_dt)) {
        snprintf(why, whysz, "business_date must be a date YYYY-MM-DD");
        return PG_EINVAL;
    }
    if (!pg_recon_known_location(r, loc)) {
        snprintf(why, whysz, "unknown location");
        return PG_ENOTFOUND;
    }
    int scale = loc_scale(r, loc);
    json_t *pos = NULL, *synced = NULL, *agg = NULL, *list = NULL, *queued = NULL;
    char bwhy[200] = "";
    /* clsdBusDt basis: the checks closed on the date, as the orders' EffectiveDate is the
     * closing business date (busDt would count a check spanning two dates on both) */
    int rc = pg_bi_control_totals(r->bi, loc, PG_BI_CLSD_BUS_DT, bus_dt, deadline_ms, &pos, bwhy,
                                  sizeof bwhy);
    if (rc != PG_OK) {
        snprintf(why, whysz, "micros: %s", bwhy[0] ? bwhy : pg_strerror(rc));
        goto out;
    }
    if ((rc = load_synced(loc, bus_dt, &synced, why, whysz)) != PG_OK)
        goto out;
    struct pg_buf q;
    pg_buf_init(&q, 8192);
    char sel[600], tail[300];
    snprintf(sel, sizeof sel, "COUNT(%s) n, SUM(%s) t, %s, Status", r->f_total, r->f_total,
             r->f_rvc);
    snprintf(tail, sizeof tail, " GROUP BY %s, Status", r->f_rvc);
    struct pg_sf_error se = {0};
    rc = order_soql(r, &q, sel, loc, bus_dt, tail);
    if (rc == PG_OK)
        rc = pg_sf_rest_query_all(r->rest, q.data, 100000, deadline_ms, &agg, &se);
    pg_buf_free(&q);
    if (rc != PG_OK) {
        sf_error(rc, &se, why, whysz);
        goto out;
    }
    const char *statuses[] = {r->st_closed, r->st_cancelled, NULL};
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s-%s-", r->org, loc);
    json_t *first = NULL;
    rc =
        pg_recon_compare(pos, synced, agg, NULL, NULL, prefix, statuses, scale, &first, why, whysz);
    if (rc != PG_OK)
        goto out;
    int equal = strcmp(json_string_value(json_object_get(first, "status")), "match") == 0;
    json_decref(first);
    if (!equal) {
        /* name the checks: list the orders, then compare again with the list */
        pg_buf_init(&q, 8192);
        snprintf(sel, sizeof sel, "%s, %s, %s, Status", r->f_ext, r->f_total, r->f_rvc);
        rc = order_soql(r, &q, sel, loc, bus_dt, "");
        if (rc == PG_OK)
            /* every batch: a checks listing cut at 2000 would report false drifts */
            rc = pg_sf_rest_query_all(r->rest, q.data, 500000, deadline_ms, &list, &se);
        pg_buf_free(&q);
        if (rc != PG_OK) {
            sf_error(rc, &se, why, whysz);
            goto out;
        }
        /* the comparison reads the total under a fixed name: the field's name is configurable */
        size_t i;
        json_t *rec;
        json_array_foreach(list, i, rec)
            json_object_set(rec, "__total", json_object_get(rec, r->f_total));
        /* which synced checks are missing from Salesforce but queued again */
        json_t *probe = NULL;
        rc = pg_recon_compare(pos, synced, agg, list, NULL, prefix, statuses, scale, &probe, why,
                              whysz);
        if (rc != PG_OK)
            goto out;
        queued = queued_of(
            loc, json_object_get(json_object_get(probe, "differences"), "missing_in_salesforce"));
        json_decref(probe);
    }
    rc = pg_recon_compare(pos, synced, agg, list, queued, prefix, statuses, scale, report, why,
                          whysz);
    if (rc != PG_OK)
        goto out;
    char ts[40];
    pg_wall_iso8601(ts, sizeof ts);
    json_object_set_new(*report, "location", json_string(loc));
    json_object_set_new(*report, "business_date", json_string(bus_dt));
    json_object_set_new(*report, "generated_at", json_string(ts));
    json_object_set_new(*report, "scale", json_integer(scale));
    int requeued = 0, asked = 0;
    if (do_repull && strcmp(json_string_value(json_object_get(*report, "status")), "drift") == 0) {
        asked = 1;
        if ((rc = repull(loc, bus_dt, *report, &requeued)) != PG_OK) {
            redis_error(rc, why, whysz);
            goto fail;
        }
        pg_log(PG_LOG_WARN, NULL, "recon.drift",
               "location %s %s: drift; %d checks queued again, re-pull requested (%s%s:%s)", loc,
               bus_dt, requeued, PG_KEY_CHK_REPULL, loc, bus_dt);
    }
    json_object_set_new(*report, "repull",
                        json_pack("{s:b,s:i}", "requested", asked, "requeued", requeued));
    char *txt = json_dumps(*report, JSON_COMPACT);
    redisReply *rep = NULL;
    rc = txt ? pg_redis_command(&rep, "SET %s%s:%s %s EX %d", PG_KEY_CHK_RECON, loc, bus_dt, txt,
                                REPORT_TTL_S)
             : PG_ENOMEM;
    free(txt);
    if (rep)
        freeReplyObject(rep);
    if (rc != PG_OK) {
        redis_error(rc, why, whysz);
        goto fail;
    }
    goto out;
fail:
    json_decref(*report);
    *report = NULL;
out:
    json_decref(pos);
    json_decref(synced);
    json_decref(agg);
    json_decref(list);
    json_decref(queued);
    return rc;
}

/* ---- metrics ------------------------------------------------------------------------------ */

#define MAX_LOCS 256

static pthread_mutex_t mmu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char loc[64];
    int status;
    long long diff_synced, diff_sf;
} mloc[MAX_LOCS];
static size_t nmloc;
static unsigned long long runs[4]; /* match, pending, drift, error */

void pg_recon_observe(const char *loc, const json_t *report)
{
    const char *st = report ? json_string_value(json_object_get(report, "status")) : NULL;
    int s = !st ? -1 : strcmp(st, "match") == 0 ? 0 : strcmp(st, "pending") == 0 ? 1 : 2;
    const json_t *d = json_object_get(report, "difference_minor");
    pthread_mutex_lock(&mmu);
    size_t i = 0;
    while (i < nmloc && strcmp(mloc[i].loc, loc) != 0)
        i++;
    if (i == nmloc && nmloc < MAX_LOCS)
        snprintf(mloc[nmloc++].loc, sizeof mloc[0].loc, "%s", loc);
    if (i < nmloc) {
        mloc[i].status = s;
        if (report) {
            mloc[i].diff_synced = json_integer_value(json_object_get(d, "synced"));
            mloc[i].diff_sf = json_integer_value(json_object_get(d, "salesforce"));
        }
    }
    runs[s < 0 ? 3 : s]++;
    pthread_mutex_unlock(&mmu);
}

/* A Prometheus label value: \\, \" and newlines escaped (locRefs are [A-Za-z0-9._-] anyway). */
static int label(struct pg_buf *out, const char *v)
{
    int rc = PG_OK;
    for (const char *p = v; *p && !rc; p++)
        rc = *p == '\\'   ? pg_buf_puts(out, "\\\\")
             : *p == '"'  ? pg_buf_puts(out, "\\\"")
             : *p == '\n' ? pg_buf_puts(out, "\\n")
                          : pg_buf_append(out, p, 1);
    return rc;
}

int pg_recon_metrics(struct pg_buf *out)
{
    static const char *const rn[4] = {"match", "pending", "drift", "error"};
    pthread_mutex_lock(&mmu);
    int rc = pg_buf_puts(out, "# HELP posgate_reconciliation_status Last reconciliation per "
                              "location: 0 match, 1 pending, 2 drift, -1 error.\n"
                              "# TYPE posgate_reconciliation_status gauge\n");
    for (size_t i = 0; i < nmloc && !rc; i++) {
        rc = pg_buf_puts(out, "posgate_reconciliation_status{location=\"");
        if (!rc)
            rc = label(out, mloc[i].loc);
        if (!rc)
            rc = pg_buf_printf(out, "\"} %d\n", mloc[i].status);
    }
    if (!rc)
        rc = pg_buf_puts(out, "# HELP posgate_reconciliation_difference_minor POS control total "
                              "minus the column's total, in minor units.\n"
                              "# TYPE posgate_reconciliation_difference_minor gauge\n");
    for (size_t i = 0; i < nmloc && !rc; i++) {
        for (int c = 0; c < 2 && !rc; c++) {
            rc = pg_buf_puts(out, "posgate_reconciliation_difference_minor{location=\"");
            if (!rc)
                rc = label(out, mloc[i].loc);
            if (!rc)
                rc = pg_buf_printf(out, "\",column=\"%s\"} %lld\n", c ? "salesforce" : "synced",
                                   c ? mloc[i].diff_sf : mloc[i].diff_synced);
        }
    }
    if (!rc)
        rc = pg_buf_puts(out, "# HELP posgate_reconciliation_runs_total Reconciliations by "
                              "result.\n# TYPE posgate_reconciliation_runs_total counter\n");
    for (int i = 0; i < 4 && !rc; i++)
        rc = pg_buf_printf(out, "posgate_reconciliation_runs_total{result=\"%s\"} %llu\n", rn[i],
                           runs[i]);
    pthread_mutex_unlock(&mmu);
    return rc;
}

/* ---- the daily job ------------------------------------------------------------------------ */

struct pg_recon_job {
    struct pg_recon *r;
    const struct pg_config *cfg;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

/* The day before date ("YYYY-MM-DD"). */
static void day_before(const char *date, char *out, size_t outsz)
{
    struct tm tm = {0};
    tm.tm_year = atoi(date) - 1900;
    tm.tm_mon = atoi(date + 5) - 1;
    tm.tm_mday = atoi(date + 8) - 1;
    tm.tm_hour = 12;
    time_t t = timegm(&tm);
    gmtime_r(&t, &tm);
    strftime(out, outsz, "%Y-%m-%d", &tm);
}

static void run_once(struct pg_recon_job *j)
{
    const char *loc;
    json_t *v;
    json_object_foreach(j->r->locations, loc, v)
    {
        pthread_mutex_lock(&j->mu);
        int stop = j->stop;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            return;
        char latest[16], day[16], why[300] = "";
        int64_t deadline = pg_now_ms() + 60000;
        int rc = pg_bi_latest_bus_dt(j->r->bi, loc, deadline, latest, sizeof latest, NULL, 0);
        json_t *rep = NULL;
        if (rc == PG_OK) {
            /* the latest business date may still be trading: the one before is closed */
            day_before(latest, day, sizeof day);
            rc = pg_recon_run(j->r, loc, day, 1, deadline, &rep, why, sizeof why);
        } else {
            snprintf(why, sizeof why, "micros: getLatestBusDt: %s", pg_strerror(rc));
        }
        pg_recon_observe(loc, rep);
        if (rc != PG_OK)
            pg_log(PG_LOG_WARN, NULL, "recon.failed", "location %s: %s", loc, why);
        else
            pg_log(PG_LOG_INFO, NULL, "recon.done", "location %s %s: %s", loc, day,
                   json_string_value(json_object_get(rep, "status")));
        json_decref(rep);
    }
}

static void *job_main(void *arg)
{
    struct pg_recon_job *j = arg;
    pg_thread_name("pg-recon");
    for (;;) {
        run_once(j);
        pthread_mutex_lock(&j->mu);
        int64_t until = pg_now_ms() + (int64_t)j->cfg->recon_interval_s * 1000;
        while (!j->stop && pg_now_ms() < until) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* wake each second: pg_now_ms is monotonic, the condvar is not */
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        }
        int stop = j->stop;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
    }
    return NULL;
}

int pg_recon_start(const struct pg_config *cfg, struct pg_recon_job **out)
{
    *out = NULL;
    struct pg_recon_job *j = calloc(1, sizeof *j);
    if (!j)
        return PG_ENOMEM;
    char why[300];
    int rc = pg_recon_new(cfg, NULL, NULL, &j->r, why, sizeof why);
    if (rc != PG_OK) {
        pg_log(PG_LOG_ERROR, NULL, "recon.config", "%s", why);
        free(j);
        return rc;
    }
    j->cfg = cfg;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (pthread_create(&j->th, NULL, job_main, j) != 0) {
        pg_recon_free(j->r);
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        free(j);
        return PG_ENOMEM;
    }
    *out = j;
    return PG_OK;
}

void pg_recon_stop(struct pg_recon_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->th, NULL);
    pg_recon_free(j->r);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}
