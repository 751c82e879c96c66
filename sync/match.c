/*
 * Customer matching (sync/match.h documents the rules, the cache and the configuration).
 */
#include "sync/match.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "salesforce/rest.h"
#include "salesforce/soql.h"
#include "server/log.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"

#define MAX_PATHS 8

struct strlist {
    char *v[MAX_PATHS];
    size_t n;
};

struct pg_matcher {
    int enabled;
    struct strlist ext_names, info_prefixes, loyalty_paths, email_paths, phone_paths;
    char object[129], field[PG_MATCH_KINDS][129], account_field[129];
    char country[8];
    int cache_ttl_s, negative_ttl_s;
    struct pg_sf_rest *rest;
    pg_match_query_fn query;
    void *query_ud;
};

enum { R_LOYALTY, R_EMAIL, R_PHONE, R_NONE, R_AMBIGUOUS, R_ERROR, R_N };
static const char *const result_names[R_N] = {"loyalty", "email",     "phone",
                                              "none",    "ambiguous", "error"};
static atomic_ullong results[R_N];

const char *pg_match_kind_name(enum pg_match_kind k)
{
    static const char *const n[PG_MATCH_KINDS] = {"loyalty", "email", "phone"};
    return k < PG_MATCH_KINDS ? n[k] : "?";
}

/* ---- configuration ------------------------------------------------------------------------ */

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

static int strlist_set(struct strlist *l, const char *def)
{
    strlist_free(l);
    if (!def)
        return PG_OK;
    if (!(l->v[0] = strdup(def)))
        return PG_ENOMEM;
    l->n = 1;
    return PG_OK;
}

/* A list of 0..MAX_PATHS non-empty strings (paths also need non-empty dotted segments). */
static int strlist_load(
    struct strlist *l, const json_t *v, const char *key, int is_path, char *why, size_t whysz)
{
    if (!json_is_array(v) || json_array_size(v) > MAX_PATHS) {
        snprintf(why, whysz, "config: checks.matching.%s: expected an array of at most %d strings",
                 key, MAX_PATHS);
        return PG_ECONFIG;
    }
    strlist_free(l);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);
        int ok = s && *s && strlen(s) <= 128;
        if (ok && is_path)
            ok = s[0] != '.' && s[strlen(s) - 1] != '.' && !strstr(s, "..");
        if (!ok) {
            snprintf(why, whysz, "config: checks.matching.%s[%zu]: expected a non-empty %s", key, i,
                     is_path ? "dotted path (\"customer.email\")" : "string");
            return PG_ECONFIG;
        }
        if (!(l->v[l->n] = strdup(s)))
            return PG_ENOMEM;
        l->n++;
    }
    return PG_OK;
}

static int
unknown_keys(const json_t *o, const char *const *known, const char *path, char *why, size_t whysz)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        int ok = 0;
        for (const char *const *p = known; *p && !ok; p++)
            ok = strcmp(*p, k) == 0;
        if (!ok) {
            snprintf(why, whysz, "config: %s: unknown key \"%s\"", path, k);
            return PG_ECONFIG;
        }
    }
    return PG_OK;
}

static int ident(const json_t *cfg,
                 const char *key,
                 const char *def,
                 char *out,
                 size_t outsz,
                 char *why,
                 size_t whysz)
{
    const json_t *v = json_object_get(cfg, key);
    const char *s = v ? json_string_value(v) : def;
    if (!s || !pg_soql_ident_ok(s) || strlen(s) >= outsz) {
        snprintf(why, whysz, "config: checks.matching.%s: expected a Salesforce API name", key);
        return PG_ECONFIG;
    }
    snprintf(out, outsz, "%s", s);
    return PG_OK;
}

static int int_key(const json_t *cfg,
                   const char *key,
                   int def,
                   int min,
                   int max,
                   int *out,
                   char *why,
                   size_t whysz)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v) {
        *out = def;
        return PG_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(why, whysz, "config: checks.matching.%s: expected an integer %d..%d", key, min,
                 max);
        return PG_ECONFIG;
    }
    *out = (int)json_integer_value(v);
    return PG_OK;
}

static int
sf_query(void *ud, const char *soql, int64_t deadline_ms, json_t **records, char *why, size_t whysz)
{
    struct pg_sf_error err = {0};
    int rc = pg_sf_rest_query(ud, soql, deadline_ms, records, &err);
    if (rc != PG_OK)
        snprintf(why, whysz, "salesforce: %s%s%s", err.code[0] ? err.code : pg_strerror(rc),
                 err.message[0] ? ": " : "", err.message);
    return rc;
}

static int load(struct pg_matcher *m, const json_t *cfg, char *why, size_t whysz)
{
    static const char *const known[] = {"enabled",         "loyalty",     "email_paths",
                                        "phone_paths",     "object",      "loyalty_field",
                                        "email_field",     "phone_field", "account_field",
                                        "default_country", "no_match",    "cache_ttl_s",
                                        "negative_ttl_s",  NULL};
    static const char *const lknown[] = {"extension_names", "info_line_prefixes", "paths", NULL};
    int rc;
    if ((rc = strlist_set(&m->ext_names, "memberId")) ||
        (rc = strlist_set(&m->info_prefixes, "LOYALTY ")) ||
        (rc = strlist_set(&m->loyalty_paths, "customer.loyaltyId")) ||
        (rc = strlist_set(&m->email_paths, "customer.email")) ||
        (rc = strlist_set(&m->phone_paths, "customer.phone")))
        return rc;
    if (!cfg || json_is_null(cfg))
        return PG_OK; /* not configured: off */
    if (!json_is_object(cfg)) {
        snprintf(why, whysz, "config: checks.matching: expected an object");
        return PG_ECONFIG;
    }
    if ((rc = unknown_keys(cfg, known, "checks.matching", why, whysz)))
        return rc;
    const json_t *en = json_object_get(cfg, "enabled");
    if (en && !json_is_boolean(en)) {
        snprintf(why, whysz, "config: checks.matching.enabled: expected true or false");
        return PG_ECONFIG;
    }
    m->enabled = !en || json_is_true(en);
    const json_t *ly = json_object_get(cfg, "loyalty");
    if (ly) {
        if (!json_is_object(ly)) {
            snprintf(why, whysz, "config: checks.matching.loyalty: expected an object");
            return PG_ECONFIG;
        }
        if ((rc = unknown_keys(ly, lknown, "checks.matching.loyalty", why, whysz)))
            return rc;
        const json_t *v;
        if ((v = json_object_get(ly, "extension_names")) &&
            (rc = strlist_load(&m->ext_names, v, "loyalty.extension_names", 0, why, whysz)))
            return rc;
        if ((v = json_object_get(ly, "info_line_prefixes")) &&
            (rc = strlist_load(&m->info_prefixes, v, "loyalty.info_line_prefixes", 0, why, whysz)))
            return rc;
        if ((v = json_object_get(ly, "paths")) &&
            (rc = strlist_load(&m->loyalty_paths, v, "loyalty.paths", 1, why, whysz)))
            return rc;
    }
    const json_t *v;
    if ((v = json_object_get(cfg, "email_paths")) &&
        (rc = strlist_load(&m->email_paths, v, "email_paths", 1, why, whysz)))
        return rc;
    if ((v = json_object_get(cfg, "phone_paths")) &&
        (rc = strlist_load(&m->phone_paths, v, "phone_paths", 1, why, whysz)))
        return rc;
    if ((rc = ident(cfg, "object", "Contact", m->object, sizeof m->object, why, whysz)) ||
        (rc = ident(cfg, "loyalty_field", "Loyalty_Id__c", m->field[PG_MATCH_LOYALTY],
                    sizeof m->field[0], why, whysz)) ||
        (rc = ident(cfg, "email_field", "Email", m->field[PG_MATCH_EMAIL], sizeof m->field[0], why,
                    whysz)) ||
        (rc = ident(cfg, "phone_field", "Phone_E164__c", m->field[PG_MATCH_PHONE],
                    sizeof m->field[0], why, whysz)) ||
        (rc = ident(cfg, "account_field", "AccountId", m->account_field, sizeof m->account_field,
                    why, whysz)))
        return rc;
    const json_t *cc = json_object_get(cfg, "default_country");
    if (cc) {
        char probe[PG_NORM_PHONE_MAX];
        const char *s = json_string_value(cc);
        /* the country table lives in normalize.c: ask it with a number every country accepts
         * the shape of, and only treat PG_ECONFIG (unknown country) as the error */
        if (!s || strlen(s) >= sizeof m->country ||
            pg_norm_phone("+442079460000", s, probe, sizeof probe) == PG_ECONFIG) {
            snprintf(why, whysz,
                     "config: checks.matching.default_country: expected an ISO 3166 code the "
                     "phone rules know (US, CA, GB, DE, FR)");
            return PG_ECONFIG;
        }
        snprintf(m->country, sizeof m->country, "%s", s);
    }
    const json_t *nm = json_object_get(cfg, "no_match");
    if (nm) {
        const char *s = json_string_value(nm);
        if (!s || strcmp(s, "link_only") != 0) {
            snprintf(why, whysz,
                     "config: checks.matching.no_match: expected \"link_only\" (\"create\" is not "
                     "supported yet)");
            return PG_ECONFIG;
        }
    }
    if ((rc = int_key(cfg, "cache_ttl_s", 86400, 0, 2592000, &m->cache_ttl_s, why, whysz)) ||
        (rc = int_key(cfg, "negative_ttl_s", 3600, 1, 2592000, &m->negative_ttl_s, why, whysz)))
        return rc;
    return PG_OK;
}

int pg_match_new(
    const json_t *cfg, struct pg_sf_rest *rest, struct pg_matcher **out, char *why, size_t whysz)
{
    *out = NULL;
    if (whysz)
        why[0] = '\0';
    struct pg_matcher *m = calloc(1, sizeof *m);
    if (!m)
        return PG_ENOMEM;
    snprintf(m->object, sizeof m->object, "Contact");
    snprintf(m->field[PG_MATCH_LOYALTY], sizeof m->field[0], "Loyalty_Id__c");
    snprintf(m->field[PG_MATCH_EMAIL], sizeof m->field[0], "Email");
    snprintf(m->field[PG_MATCH_PHONE], sizeof m->field[0], "Phone_E164__c");
    snprintf(m->account_field, sizeof m->account_field, "AccountId");
    snprintf(m->country, sizeof m->country, "US");
    m->cache_ttl_s = 86400;
    m->negative_ttl_s = 3600;
    int rc = load(m, cfg, why, whysz);
    if (rc) {
        pg_match_free(m);
        return rc;
    }
    m->rest = rest;
    if (rest) {
        m->query = sf_query;
        m->query_ud = rest;
    }
    *out = m;
    return PG_OK;
}

void pg_match_free(struct pg_matcher *m)
{
    if (!m)
        return;
    strlist_free(&m->ext_names);
    strlist_free(&m->info_prefixes);
    strlist_free(&m->loyalty_paths);
    strlist_free(&m->email_paths);
    strlist_free(&m->phone_paths);
    free(m);
}

int pg_match_enabled(const struct pg_matcher *m)
{
    return m && m->enabled;
}

void pg_match_set_query(struct pg_matcher *m, pg_match_query_fn fn, void *ud)
{
    m->query = fn;
    m->query_ud = ud;
}

/* ---- extraction --------------------------------------------------------------------------- */

/* The string at a dotted path ("customer.email"), or NULL. */
static const char *at_path(const json_t *o, const char *path)
{
    char seg[129];
    const char *p = path;
    while (o && *p) {
        size_t l = strcspn(p, ".");
        if (l >= sizeof seg)
            return NULL;
        memcpy(seg, p, l);
        seg[l] = '\0';
        o = json_object_get(o, seg);
        p += l;
        if (*p == '.')
            p++;
    }
    return json_string_value(o);
}

/* Copy s trimmed of surrounding whitespace; 0 when empty or too long. */
static int trimmed(const char *s, char *out, size_t outsz)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (!n || n >= outsz)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0; /* a control character is no identifier */
    memcpy(out, s, n);
    out[n] = '\0';
    return 1;
}

static int loyalty_id(const struct pg_matcher *m, const json_t *check, char *out, size_t outsz)
{
    size_t cap = outsz < PG_MATCH_LOYALTY_MAX + 1 ? outsz : PG_MATCH_LOYALTY_MAX + 1;
    size_t i;
    json_t *e;
    /* extensions: [{"dataName":"memberId","data":"LY-000123",...}] */
    for (size_t k = 0; k < m->ext_names.n; k++) {
        json_array_foreach(json_object_get(check, "extensions"), i, e)
        {
            const char *dn = json_string_value(json_object_get(e, "dataName"));
            const char *d = json_string_value(json_object_get(e, "data"));
            if (dn && d && strcmp(dn, m->ext_names.v[k]) == 0 && trimmed(d, out, cap))
                return 1;
        }
    }
    /* informationLines: ["LOYALTY LY-000123"]; also under a pushed check's "header" */
    const json_t *lines[2] = {
        json_object_get(check, "informationLines"),
        json_object_get(json_object_get(check, "header"), "informationLines")};
    for (size_t k = 0; k < m->info_prefixes.n; k++) {
        size_t pl = strlen(m->info_prefixes.v[k]);
        for (int w = 0; w < 2; w++) {
            json_array_foreach(lines[w], i, e)
            {
                const char *s = json_string_value(e);
                if (s && strncasecmp(s, m->info_prefixes.v[k], pl) == 0 &&
                    trimmed(s + pl, out, cap))
                    return 1;
            }
        }
    }
    for (size_t k = 0; k < m->loyalty_paths.n; k++) {
        const char *s = at_path(check, m->loyalty_paths.v[k]);
        if (s && trimmed(s, out, cap))
            return 1;
    }
    return 0;
}

void pg_match_extract(const struct pg_matcher *m, const json_t *check, struct pg_match_ids *ids)
{
    memset(ids, 0, sizeof *ids);
    if (!json_is_object(check))
        return;
    loyalty_id(m, check, ids->v[PG_MATCH_LOYALTY], sizeof ids->v[0]);
    for (size_t k = 0; k < m->email_paths.n && !ids->v[PG_MATCH_EMAIL][0]; k++) {
        const char *s = at_path(check, m->email_paths.v[k]);
        if (s && *s && pg_norm_email(s, ids->v[PG_MATCH_EMAIL], sizeof ids->v[0]) != PG_OK)
            ids->invalid++;
    }
    for (size_t k = 0; k < m->phone_paths.n && !ids->v[PG_MATCH_PHONE][0]; k++) {
        const char *s = at_path(check, m->phone_paths.v[k]);
        if (s && *s &&
            pg_norm_phone(s, m->country, ids->v[PG_MATCH_PHONE], sizeof ids->v[0]) != PG_OK)
            ids->invalid++;
    }
}

/* ---- the cache ---------------------------------------------------------------------------- */

static void cache_key(enum pg_match_kind k, const char *value, char *out, size_t outsz)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];
    EVP_Digest(value, strlen(value), md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(out, outsz, "%s%s:%s", PG_KEY_CHK_MATCH, pg_match_kind_name(k), hex);
}

/* Cached answers: "a:<account id>" (found; "a:" without an account), "n" (none),
 * "m:<candidate ids>" (ambiguous). 1 when one was read into *res. */
static int
cache_get(enum pg_match_kind k, const char *value, struct pg_match_result *res, int *none)
{
    char key[160];
    cache_key(k, value, key, sizeof key);
    redisReply *r = NULL;
    int hit = 0;
    if (pg_redis_command(&r, "GET %s", key) == PG_OK && r->type == REDIS_REPLY_STRING) {
        if (r->len >= 2 && strncmp(r->str, "a:", 2) == 0 && r->len - 2 < sizeof res->account_id) {
            res->found = 1;
            res->kind = k;
            snprintf(res->account_id, sizeof res->account_id, "%.*s", (int)r->len - 2, r->str + 2);
            hit = 1;
        } else if (r->len == 1 && r->str[0] == 'n') {
            *none = 1;
            hit = 1;
        } else if (r->len >= 2 && strncmp(r->str, "m:", 2) == 0) {
            res->ambiguous = 1;
            res->kind = k;
            snprintf(res->candidates, sizeof res->candidates, "%.*s", (int)r->len - 2, r->str + 2);
            hit = 1;
        }
    }
    if (r)
        freeReplyObject(r);
    return hit;
}

static void cache_put(enum pg_match_kind k, const char *value, const char *answer, int ttl)
{
    char key[160];
    cache_key(k, value, key, sizeof key);
    redisReply *r = NULL;
    /* best effort: a lost cache entry only costs a query next time */
    if (pg_redis_command(&r, "SET %s %s EX %d", key, answer, ttl) == PG_OK && r)
        freeReplyObject(r);
    else if (r)
        freeReplyObject(r);
}

/* ---- the rule order ----------------------------------------------------------------------- */

static int is_sf_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n != 15 && n != 18)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]))
            return 0;
    return 1;
}

int pg_match_decide(struct pg_matcher *m,
                    const struct pg_match_ids *ids,
                    int use_cache,
                    int64_t deadline_ms,
                    struct pg_match_result *res,
                    char *why,
                    size_t whysz)
{
    memset(res, 0, sizeof *res);
    if (whysz)
        why[0] = '\0';
    char fields[300];
    snprintf(fields, sizeof fields, "Id,%s", m->account_field);
    for (int k = 0; k < PG_MATCH_KINDS; k++) {
        const char *value = ids->v[k];
        if (!value[0])
            continue;
        int none = 0;
        if (use_cache && m->cache_ttl_s > 0 &&
            cache_get((enum pg_match_kind)k, value, res, &none)) {
            res->cached++;
            if (res->found || res->ambiguous)
                return PG_OK;
            continue; /* a cached "none" */
        }
        if (!m->query) {
            snprintf(why, whysz, "matching has no Salesforce client");
            return PG_EUNAVAIL;
        }
        struct pg_buf q;
        pg_buf_init(&q, 4096);
        int rc = pg_soql_select_eq(&q, fields, m->object, m->field[k], value, 2);
        if (rc != PG_OK) {
            pg_buf_free(&q);
            continue; /* a value SOQL cannot carry (invalid UTF-8...): not an identifier */
        }
        json_t *recs = NULL;
        res->queries++;
        rc = m->query(m->query_ud, q.data, deadline_ms, &recs, why, whysz);
        pg_buf_free(&q);
        if (rc != PG_OK) {
            json_decref(recs);
            return rc;
        }
        size_t n = json_array_size(recs);
        if (n == 1) {
            const json_t *r0 = json_array_get(recs, 0);
            const char *acct = json_string_value(json_object_get(r0, m->account_field));
            res->found = 1;
            res->kind = (enum pg_match_kind)k;
            if (is_sf_id(acct))
                snprintf(res->account_id, sizeof res->account_id, "%s", acct);
        } else if (n >= 2) {
            res->ambiguous = 1;
            res->kind = (enum pg_match_kind)k;
            size_t i;
            json_t *r;
            json_array_foreach(recs, i, r)
            {
                const char *id = json_string_value(json_object_get(r, "Id"));
                size_t used = strlen(res->candidates);
                if (id && used + strlen(id) + 2 < sizeof res->candidates)
                    snprintf(res->candidates + used, sizeof res->candidates - used, "%s%s",
                             used ? "," : "", id);
            }
        }
        json_decref(recs);
        if (use_cache && m->cache_ttl_s > 0) {
            char answer[200];
            if (res->found)
                snprintf(answer, sizeof answer, "a:%s", res->account_id);
            else if (res->ambiguous)
                snprintf(answer, sizeof answer, "m:%s", res->candidates);
            else
                snprintf(answer, sizeof answer, "n");
            cache_put((enum pg_match_kind)k, value, answer,
                      res->found ? m->cache_ttl_s : m->negative_ttl_s);
        }
        if (res->found || res->ambiguous)
            return PG_OK;
    }
    return PG_OK;
}

/* ---- the loader hook ---------------------------------------------------------------------- */

static void masked(enum pg_match_kind k, const char *v, char *out, size_t outsz)
{
    if (k == PG_MATCH_EMAIL)
        pg_log_mask_email(v, out, outsz);
    else if (k == PG_MATCH_PHONE)
        pg_log_mask_phone(v, out, outsz);
    else
        snprintf(out, outsz, "%s", v); /* a loyalty id is a pseudonymous key, not contact data */
}

static void gcid_of(const json_t *check, char *out, size_t outsz)
{
    const json_t *g = json_object_get(check, "guestCheckId");
    if (json_is_integer(g))
        snprintf(out, outsz, "%lld", (long long)json_integer_value(g));
    else if (json_is_string(g))
        snprintf(out, outsz, "%.40s", json_string_value(g));
    else
        snprintf(out, outsz, "?");
}

static void
review(const char *loc, const char *gcid, const struct pg_match_result *res, const char *value)
{
    char mv[300], ts[64];
    masked(res->kind, value, mv, sizeof mv);
    snprintf(ts, sizeof ts, "%lld", (long long)pg_wall_ms());
    const char *argv[] = {"XADD",       PG_KEY_CHK_REVIEW,
                          "MAXLEN",     "~",
                          "100000",     "*",
                          "loc",        loc,
                          "gcid",       gcid,
                          "kind",       pg_match_kind_name(res->kind),
                          "value",      mv,
                          "candidates", res->candidates,
                          "ts",         ts};
    redisReply *r = NULL;
    int rc = pg_redis_command_argv(&r, (int)(sizeof argv / sizeof argv[0]), argv, NULL);
    if (r)
        freeReplyObject(r);
    pg_log(PG_LOG_WARN, NULL, "match.ambiguous",
           "location %s check %s: %s %s matches several records (%s); the walk-in account is "
           "kept%s",
           loc, gcid, pg_match_kind_name(res->kind), mv, res->candidates,
           rc == PG_OK ? " and the check is queued for review" : "; the review entry was lost");
}

int pg_match_check(void *ud,
                   const json_t *check,
                   const char *loc_ref,
                   int64_t deadline_ms,
                   char *account_id,
                   size_t sz,
                   char *why,
                   size_t whysz)
{
    struct pg_matcher *m = ud;
    if (sz)
        account_id[0] = '\0';
    if (whysz)
        why[0] = '\0';
    if (!pg_match_enabled(m)) {
        snprintf(why, whysz, "off");
        return PG_OK;
    }
    struct pg_match_ids ids;
    pg_match_extract(m, check, &ids);
    struct pg_match_result res;
    int rc = pg_match_decide(m, &ids, 1, deadline_ms, &res, why, whysz);
    if (rc != PG_OK) {
        atomic_fetch_add(&results[R_ERROR], 1);
        return rc;
    }
    if (res.ambiguous) {
        char gcid[48];
        gcid_of(check, gcid, sizeof gcid);
        review(loc_ref ? loc_ref : "?", gcid, &res, ids.v[res.kind]);
        atomic_fetch_add(&results[R_AMBIGUOUS], 1);
        snprintf(why, whysz, "ambiguous %s", pg_match_kind_name(res.kind));
        return PG_OK;
    }
    if (!res.found) {
        atomic_fetch_add(&results[R_NONE], 1);
        snprintf(why, whysz, "no match");
        return PG_OK;
    }
    atomic_fetch_add(&results[(int)res.kind], 1);
    if (strlen(res.account_id) >= sz) {
        snprintf(why, whysz, "account id buffer too small");
        return PG_ETOOLARGE;
    }
    snprintf(account_id, sz, "%s", res.account_id);
    snprintf(why, whysz, "%s%s", pg_match_kind_name(res.kind),
             res.account_id[0] ? "" : " (contact without an account)");
    return PG_OK;
}

int pg_match_metrics(struct pg_buf *out)
{
    int rc = pg_buf_puts(out, "# HELP posgate_match_total Customer matching of guest checks by "
                              "result.\n# TYPE posgate_match_total counter\n");
    for (int i = 0; i < R_N && !rc; i++)
        rc = pg_buf_printf(out, "posgate_match_total{result=\"%s\"} %llu\n", result_names[i],
                           atomic_load(&results[i]));
    return rc;
}
