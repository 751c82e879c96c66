/*
 * POS loyalty lookups: "who is the member at the till?"
 *
 *   GET /v1/loyalty/members?loyalty_id=|card=|phone=|email=   (exactly one, plus optional store)
 *   GET /v1/loyalty/members/{salesforce_id}
 *
 * The fast path is one Redis round trip (rate limit + cache read, sync/member.h) on the handler
 * pool. A miss, or an entry past its TTL, continues on the slow pool (pg_req_defer), so a
 * Salesforce call never makes a cache hit wait. Concurrent misses for one key share one Salesforce
 * call (single flight). When Salesforce fails or is slow, an entry within lookup.stale_max_age_s
 * is served with X-Cache: stale; with none, 503 with Retry-After. Every Salesforce call runs
 * within the cashier's budget (lookup.budget_ms).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "auth/org.h"
#include "handlers/handlers.h"
#include "salesforce/rest.h"
#include "salesforce/soql.h"
#include "server/config.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "sync/member.h"
#include "sync/normalize.h"
#include "sync/ratelimit.h"
#include "sync/update.h"

enum outcome { L_HIT, L_MISS, L_STALE, L_NOT_FOUND, L_UNAVAILABLE, L_RATE_LIMITED, L_N };
static const char *const outcome_names[L_N] = {"hit",       "miss",        "stale",
                                               "not_found", "unavailable", "rate_limited"};
static atomic_ullong outcomes[L_N];
static atomic_ullong sf_calls, redis_fail_open;

/* Per-request state, carried from the fast handler to its slow continuation. */
struct lookup {
    enum pg_member_kind kind;
    char value[320];
    json_t *stale; /* the entry past its TTL, if any: served when Salesforce fails */
    int64_t deadline_ms;
    const char *store; /* the store asked for (borrowed from the request), or NULL */
    int counted;       /* store checked and rate limit counted (by the fast path, or here) */
};

static void lookup_free(void *p)
{
    struct lookup *lk = p;
    json_decref(lk->stale);
    free(lk);
}

/* ---------------------------------------------------------------- single flight */

/* One Salesforce call per key in flight; later callers wait for its result. */
struct flight {
    struct flight *next;
    char key[340];
    int refs;
    int done;
    int rc;         /* PG_OK (member), PG_ENOTFOUND, PG_EEXIST (ambiguous), or an error */
    json_t *member; /* on PG_OK */
    pthread_cond_t cv;
};

static pthread_mutex_t flights_mu = PTHREAD_MUTEX_INITIALIZER;
static struct flight *flights;

/* Join the flight for key, creating it (then we lead) when there is none. */
static struct flight *flight_join(const char *key, int *leader)
{
    pthread_mutex_lock(&flights_mu);
    struct flight *f = flights;
    while (f && strcmp(f->key, key) != 0)
        f = f->next;
    *leader = !f;
    if (!f && (f = calloc(1, sizeof *f))) {
        snprintf(f->key, sizeof f->key, "%s", key);
        pthread_cond_init(&f->cv, NULL);
        f->next = flights;
        flights = f;
    }
    if (f)
        f->refs++;
    pthread_mutex_unlock(&flights_mu);
    return f;
}

static void flight_unlink(struct flight *f)
{
    for (struct flight **pp = &flights; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            return;
        }
}

/* The leader publishes; new arrivals after this start a new flight (and find the cache). */
static void flight_finish(struct flight *f, int rc, json_t *member)
{
    pthread_mutex_lock(&flights_mu);
    f->rc = rc;
    f->member = member;
    f->done = 1;
    flight_unlink(f);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&flights_mu);
}

/* Wait for the leader until deadline; returns 1 when it finished. */
static int flight_wait(struct flight *f, int64_t deadline_ms)
{
    pthread_mutex_lock(&flights_mu);
    while (!f->done) {
        int64_t left = deadline_ms - pg_now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&f->cv, &flights_mu, &ts);
    }
    int done = f->done;
    pthread_mutex_unlock(&flights_mu);
    return done;
}

static void flight_release(struct flight *f)
{
    pthread_mutex_lock(&flights_mu);
    int last = --f->refs == 0;
    if (last && !f->done)
        flight_unlink(f); /* cannot happen: the leader holds a reference until it finishes */
    pthread_mutex_unlock(&flights_mu);
    if (last) {
        json_decref(f->member);
        pthread_cond_destroy(&f->cv);
        free(f);
    }
}

/* ---------------------------------------------------------------- replies */

static void count(enum outcome o)
{
    atomic_fetch_add(&outcomes[o], 1);
}

/* What a cashier needs, and no more: first name, last initial, masked contact details. */
static json_t *member_view(const json_t *m)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    json_t *v = json_object();
    static const char *const plain[] = {"salesforce_id", "loyalty_id", "tier", "points",
                                        "first_name"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        json_t *x = json_object_get(m, plain[i]);
        json_object_set(v, plain[i], x ? x : json_null());
    }
    const char *last = json_string_value(json_object_get(m, "last_name"));
    char initial[8] = "";
    if (last && *last) {
        size_t n = 1; /* keep a whole UTF-8 character */
        while (n < 4 && ((unsigned char)last[n] & 0xC0) == 0x80)
            n++;
        snprintf(initial, sizeof initial, "%.*s.", (int)n, last);
    }
    json_object_set_new(v, "last_initial", initial[0] ? json_string(initial) : json_null());
    const char *em = json_string_value(json_object_get(m, "email"));
    const char *ph = json_string_value(json_object_get(m, "phone"));
    char masked[340];
    if (em) {
        pg_log_mask_email(em, masked, sizeof masked);
        json_object_set_new(v, "email_masked", json_string(masked));
    } else {
        json_object_set_new(v, "email_masked", json_null());
    }
    char e164[40];
    if (ph && pg_norm_phone(ph, cfg->lookup_default_country, e164, sizeof e164) == PG_OK)
        ph = e164;
    if (ph) {
        pg_log_mask_phone(ph, masked, sizeof masked);
        json_object_set_new(v, "phone_masked", json_string(masked));
    } else {
        json_object_set_new(v, "phone_masked", json_null());
    }
    json_t *prefs = json_object_get(m, "preferences");
    json_object_set(v, "preferences", prefs ? prefs : json_object());
    const char *tier = json_string_value(json_object_get(m, "tier"));
    json_t *benefits = tier ? json_object_get(cfg->lookup_tiers, tier) : NULL;
    json_object_set(v, "tier_benefits", benefits ? benefits : json_null());
    return v;
}

/*
 * A member rendered for the till: the body and its ETag. Rendering (JSON parse, the view,
 * serialisation, SHA-256) was most of the gateway's CPU per hit, and its result depends only on
 * the record Redis holds and on the configuration, so it is kept per record (see rcache below).
 */
struct rendered {
    int64_t cached_at_ms;
    char etag[40];
    size_t body_len;
    char *body; /* owned */
};

static int render(const json_t *m, struct rendered *out)
{
    json_t *view = member_view(m);
    char *s = json_dumps(view, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s) {
        json_decref(view);
        return PG_ENOMEM;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL);
    free(s);
    static const char hex[] = "0123456789abcdef";
    out->etag[0] = '"';
    for (int i = 0; i < 16; i++) {
        out->etag[1 + 2 * i] = hex[md[i] >> 4];
        out->etag[2 + 2 * i] = hex[md[i] & 15];
    }
    out->etag[33] = '"';
    out->etag[34] = '\0';
    json_t *doc = json_pack("{s:o}", "member", view);
    /* the same serialisation pg_req_reply_json uses */
    out->body = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(doc);
    if (!out->body)
        return PG_ENOMEM;
    out->body_len = strlen(out->body);
    out->cached_at_ms = json_integer_value(json_object_get(m, "cached_at_ms"));
    return PG_OK;
}

/* Reply with a rendered member and the cache headers the POS and operators use. */
static int reply_rendered(struct pg_req *req, const struct rendered *rd, const char *xcache)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    int64_t cached = rd->cached_at_ms;
    int64_t age = cached > 0 ? (pg_wall_ms() - cached) / 1000 : 0;
    if (age < 0)
        age = 0;
    int64_t fresh_left = strcmp(xcache, "stale") == 0 ? 0 : cfg->lookup_cache_ttl_s - age;
    char agebuf[24], cc[64];
    snprintf(agebuf, sizeof agebuf, "%lld", (long long)age);
    snprintf(cc, sizeof cc, "private, max-age=%lld", (long long)(fresh_left > 0 ? fresh_left : 0));
    pg_req_add_header(req, "X-Cache", xcache);
    pg_req_add_header(req, "Age", agebuf);
    pg_req_add_header(req, "Cache-Control", cc);
    pg_req_add_header(req, "ETag", rd->etag);
    const char *inm = pg_req_header(req, "If-None-Match");
    if (inm && (strstr(inm, rd->etag) || strcmp(inm, "*") == 0))
        return pg_req_reply(req, 304, "application/json", "", 0);
    return pg_req_reply(req, 200, "application/json", rd->body, rd->body_len);
}

/* Reply with a member (parsed) and the cache headers. */
static int reply_member(struct pg_req *req, const json_t *m, const char *xcache)
{
    struct rendered rd = {0};
    int rc = render(m, &rd);
    if (rc == PG_OK)
        rc = reply_rendered(req, &rd, xcache);
    free(rd.body);
    return rc;
}

/*
 * Rendered replies by record. Keyed by the record's exact bytes (a hash picks the slot; a full
 * comparison decides), so there is nothing to invalidate: the push path's write-through, or a
 * refill after a miss, stores a new record (cached_at_ms at least changes), which simply misses
 * here and is rendered once. Direct-mapped; a collision replaces the older entry. Bounded:
 * RCACHE_SLOTS entries of at most RCACHE_BYTES_MAX bytes each.
 */
#define RCACHE_SLOTS 65536
#define RCACHE_STRIPES 64
#define RCACHE_BYTES_MAX 8192

struct rcache_entry {
    uint64_t hash;
    size_t raw_len;
    struct rendered rd; /* rd.body points into data, after the raw record */
    char data[];        /* the raw record, then the body */
};

static struct rcache_entry *rcache[RCACHE_SLOTS];
static pthread_mutex_t rcache_mu[RCACHE_STRIPES];
static pthread_once_t rcache_once = PTHREAD_ONCE_INIT;
static atomic_ullong rcache_hits, rcache_misses;

static void rcache_init(void)
{
    for (int i = 0; i < RCACHE_STRIPES; i++)
        pthread_mutex_init(&rcache_mu[i], NULL);
}

static uint64_t rec_hash(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Copy the rendered reply for this record into rd (body into buf, up to bufsz); 1 when found. */
static int
rcache_get(uint64_t h, const char *raw, size_t len, struct rendered *rd, char *buf, size_t bufsz)
{
    pthread_once(&rcache_once, rcache_init);
    size_t slot = h & (RCACHE_SLOTS - 1);
    pthread_mutex_t *mu = &rcache_mu[slot % RCACHE_STRIPES];
    int found = 0;
    pthread_mutex_lock(mu);
    const struct rcache_entry *e = rcache[slot];
    if (e && e->hash == h && e->raw_len == len && e->rd.body_len <= bufsz &&
        memcmp(e->data, raw, len) == 0) {
        *rd = e->rd;
        memcpy(buf, e->rd.body, e->rd.body_len);
        rd->body = buf;
        found = 1;
    }
    pthread_mutex_unlock(mu);
    atomic_fetch_add(found ? &rcache_hits : &rcache_misses, 1);
    return found;
}

static void rcache_put(uint64_t h, const char *raw, size_t len, const struct rendered *rd)
{
    if (len + rd->body_len > RCACHE_BYTES_MAX)
        return; /* an unusually large record: rendered every time */
    struct rcache_entry *e = malloc(sizeof *e + len + rd->body_len);
    if (!e)
        return;
    e->hash = h;
    e->raw_len = len;
    memcpy(e->data, raw, len);
    e->rd = *rd;
    e->rd.body = e->data + len;
    memcpy(e->rd.body, rd->body, rd->body_len);
    size_t slot = h & (RCACHE_SLOTS - 1);
    pthread_mutex_t *mu = &rcache_mu[slot % RCACHE_STRIPES];
    pthread_mutex_lock(mu);
    struct rcache_entry *old = rcache[slot];
    rcache[slot] = e;
    pthread_mutex_unlock(mu);
    free(old);
}

static int reply_not_found(struct pg_req *req, const char *xcache)
{
    pg_req_add_header(req, "X-Cache", xcache);
    count(L_NOT_FOUND);
    return pg_req_problem(req, 404, "no member matches", NULL);
}

static int reply_unavailable(struct pg_req *req, const char *why)
{
    count(L_UNAVAILABLE);
    pg_req_add_header(req, "Retry-After", "5");
    return pg_req_problem(req, 503, why, NULL);
}

/* ---------------------------------------------------------------- parameters */

struct params {
    int n_ident;
    const char *name, *value, *store;
    char bad[160];
};

static int is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

static int collect_param(void *ud, const char *k, const char *v)
{
    struct params *p = ud;
    static const char *const idents[] = {"loyalty_id", "card", "phone", "email"};
    if (strcmp(k, "store") == 0) {
        if (p->store) {
            snprintf(p->bad, sizeof p->bad, "parameter store is repeated");
            return 1;
        }
        p->store = v;
        return 0;
    }
    for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++) {
        if (strcmp(k, idents[i]) == 0) {
            if (p->name && strcmp(p->name, k) == 0) {
                snprintf(p->bad, sizeof p->bad, "parameter %s is repeated", k);
                return 1;
            }
            p->n_ident++;
            p->name = idents[i];
            p->value = v;
            return 0;
        }
    }
    snprintf(p->bad, sizeof p->bad, "unknown parameter %.64s", k);
    return 1;
}

/* Normalise the identifier: lower-cased e-mail, E.164 phone, digits-only card. */
static int
normalise(const char *name, const char *value, struct lookup *lk, char *why, size_t whysz)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    size_t n = strlen(value);
    if (n == 0 || n > 254) {
        snprintf(why, whysz, "%s must be 1 to 254 characters", name);
        return PG_EINVAL;
    }
    if (strcmp(name, "email") == 0) {
        lk->kind = PG_MEMBER_BY_EMAIL;
        if (pg_norm_email(value, lk->value, sizeof lk->value) != PG_OK) {
            snprintf(why, whysz, "email is not a valid e-mail address");
            return PG_EINVAL;
        }
    } else if (strcmp(name, "phone") == 0) {
        lk->kind = PG_MEMBER_BY_PHONE;
        if (pg_norm_phone(value, cfg->lookup_default_country, lk->value, sizeof lk->value) !=
            PG_OK) {
            snprintf(why, whysz, "phone is not a valid phone number");
            return PG_EINVAL;
        }
    } else if (strcmp(name, "card") == 0) {
        lk->kind = PG_MEMBER_BY_CARD;
        size_t o = 0;
        for (const char *c = value; *c; c++) {
            if (*c == ' ' || *c == '-')
                continue; /* as printed on the card */
            if (*c < '0' || *c > '9' || o >= 32) {
                snprintf(why, whysz, "card must be 6 to 32 digits");
                return PG_EINVAL;
            }
            lk->value[o++] = *c;
        }
        lk->value[o] = '\0';
        if (o < 6) {
            snprintf(why, whysz, "card must be 6 to 32 digits");
            return PG_EINVAL;
        }
    } else {
        lk->kind = PG_MEMBER_BY_LOYALTY;
        for (const char *c = value; *c; c++)
            if (!is_ident_char(*c) || n > 64) {
                snprintf(why, whysz, "loyalty_id must be 1 to 64 of [A-Za-z0-9._-]");
                return PG_EINVAL;
            }
        snprintf(lk->value, sizeof lk->value, "%s", value);
    }
    return PG_OK;
}

/* A station key may only ask for its own stores. */
static int store_allowed(struct pg_req *req, const char *store)
{
    const json_t *station = pg_req_principal(req);
    if (!store || !json_is_array(json_object_get(station, "stores")))
        return 1; /* no store given, or a caller not restricted to stores */
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(station, "stores"), i, s)
    {
        if (json_is_string(s) && strcmp(json_string_value(s), store) == 0)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- Salesforce */

static int sf_fetch(const struct lookup *lk, json_t **member, char *why, size_t whysz)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    *member = NULL;
    if (!pg_hnd.sf_rest) {
        snprintf(why, whysz, "Salesforce REST is not configured");
        return PG_EUNAVAIL;
    }
    struct pg_buf fields, soql;
    pg_buf_init(&fields, 8192);
    pg_buf_init(&soql, 16384);
    json_t *rec = NULL, *records = NULL;
    struct pg_sf_error err = {0};
    int rc = pg_map_fields(pg_hnd.map, cfg->lookup_object, &fields);
    if (rc) {
        snprintf(why, whysz, "mapping.%s is not configured", cfg->lookup_object);
        rc = PG_ECONFIG;
        goto out;
    }
    atomic_fetch_add(&sf_calls, 1);
    if (lk->kind == PG_MEMBER_BY_SF) {
        rc = pg_sf_rest_get_by_id(pg_hnd.sf_rest, cfg->lookup_object, lk->value, fields.data,
                                  lk->deadline_ms, &rec, &err);
    } else if (lk->kind == PG_MEMBER_BY_LOYALTY) {
        rc = pg_sf_rest_get_by_external_id(pg_hnd.sf_rest, cfg->lookup_object,
                                           cfg->lookup_loyalty_field, lk->value, fields.data,
                                           lk->deadline_ms, &rec, &err);
    } else {
        const char *field = lk->kind == PG_MEMBER_BY_CARD    ? cfg->lookup_card_field
                            : lk->kind == PG_MEMBER_BY_EMAIL ? cfg->lookup_email_field
                                                             : cfg->lookup_phone_field;
        /* LIMIT 2: one is an answer, two is an ambiguity we must not guess through */
        rc = pg_soql_select_eq(&soql, fields.data, cfg->lookup_object, field, lk->value, 2);
        if (rc == PG_OK)
            rc = pg_sf_rest_query(pg_hnd.sf_rest, soql.data, lk->deadline_ms, &records, &err);
        if (rc == PG_OK) {
            size_t n = json_array_size(records);
            if (n == 0)
                rc = PG_ENOTFOUND;
            else if (n > 1)
                rc = PG_EEXIST;
            else
                rec = json_incref(json_array_get(records, 0));
        }
    }
    if (rc == PG_OK) {
        int64_t version;
        rc = pg_map_apply(pg_hnd.map, cfg->lookup_object, rec, "salesforce_rest", member, &version,
                          why, whysz);
        if (rc)
            rc = PG_EPROTO;
    } else if (rc != PG_ENOTFOUND && rc != PG_EEXIST) {
        snprintf(why, whysz, "Salesforce: %s%s%s", pg_strerror(rc), err.code[0] ? " " : "",
                 err.code);
    }
out:
    json_decref(rec);
    json_decref(records);
    pg_buf_free(&fields);
    pg_buf_free(&soql);
    return rc;
}

/* The slow half of a lookup: runs on the slow pool, may wait on Salesforce. */
static int lookup_fetch(struct pg_req *req)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    struct lookup *lk = pg_req_data(req);
    char key[340], why[200] = "";
    snprintf(key, sizeof key, "%s:%s", pg_member_kind_name(lk->kind), lk->value);
    int leader = 0;
    struct flight *f = flight_join(key, &leader);
    if (!f)
        return PG_ENOMEM;
    int rc;
    json_t *member = NULL;
    const char *source = "miss";
    if (leader) {
        /* A request queued while an earlier flight for this key was filling the cache finds
         * the answer there now: look again before calling Salesforce. */
        enum pg_member_hit h = PG_MEMBER_MISS;
        json_t *cm = NULL;
        if (pg_member_get(lk->kind, lk->value, &h, &cm) == PG_OK &&
            ((h == PG_MEMBER_FOUND &&
              pg_wall_ms() - json_integer_value(json_object_get(cm, "cached_at_ms")) <=
                  (int64_t)cfg->lookup_cache_ttl_s * 1000) ||
             h == PG_MEMBER_NEGATIVE)) {
            rc = h == PG_MEMBER_FOUND ? PG_OK : PG_ENOTFOUND;
            member = h == PG_MEMBER_FOUND ? cm : NULL;
            source = "hit";
            flight_finish(f, rc, rc == PG_OK ? json_incref(member) : NULL);
            flight_release(f);
            goto reply;
        }
        json_decref(cm);
        rc = sf_fetch(lk, &member, why, sizeof why);
        if (rc == PG_OK && pg_member_put(member, cfg->lookup_default_country,
                                         (int64_t)cfg->lookup_stale_max_age_s * 1000) != PG_OK)
            pg_log(PG_LOG_WARN, pg_req_id(req), "lookup.cache_write_failed",
                   "answered from Salesforce, not cached");
        if (rc == PG_ENOTFOUND &&
            pg_member_put_negative(lk->kind, lk->value,
                                   (int64_t)cfg->lookup_negative_ttl_s * 1000) != PG_OK)
            pg_log(PG_LOG_WARN, pg_req_id(req), "lookup.cache_write_failed",
                   "not-found not cached");
        if (rc == PG_OK)
            json_object_set_new(member, "cached_at_ms", json_integer(pg_wall_ms()));
        flight_finish(f, rc, rc == PG_OK ? json_incref(member) : NULL);
    } else if (flight_wait(f, lk->deadline_ms)) {
        rc = f->rc;
        member = json_incref(f->member);
    } else {
        rc = PG_ETIMEDOUT;
        snprintf(why, sizeof why, "Salesforce did not answer within the lookup budget");
    }
    flight_release(f);
reply:;
    int out;
    if (rc == PG_OK) {
        count(strcmp(source, "hit") == 0 ? L_HIT : L_MISS);
        out = reply_member(req, member, source);
    } else if (rc == PG_ENOTFOUND) {
        out = reply_not_found(req, source);
    } else if (rc == PG_EEXIST) {
        count(L_NOT_FOUND);
        out =
            pg_req_problem(req, 409, "more than one member matches; ask for the loyalty id", NULL);
    } else if (lk->stale) {
        /* Stale-if-error: a recent answer beats no answer at the till. */
        pg_log(PG_LOG_WARN, pg_req_id(req), "lookup.stale", "serving a stale entry: %s",
               why[0] ? why : pg_strerror(rc));
        count(L_STALE);
        out = reply_member(req, lk->stale, "stale");
    } else {
        pg_log(PG_LOG_WARN, pg_req_id(req), "lookup.unavailable", "%s",
               why[0] ? why : pg_strerror(rc));
        out = reply_unavailable(req, why[0] ? why : "Salesforce is unavailable");
    }
    json_decref(member);
    return out;
}

/* ---------------------------------------------------------------- the fast half */

/* Requests per minute for a station: its own setting, else lookup.rate_limit_per_minute. */
static long long rate_limit(const json_t *station)
{
    json_int_t own = json_integer_value(json_object_get(station, "rate_limit_per_minute"));
    return own > 0 ? own : pg_hnd.app->cfg->lookup_rate_per_minute;
}

/*
 * A record found in Redis: answer it as a hit when fresh (*done = 1), else keep it for
 * stale-if-error (lk->stale, when within lookup.stale_max_age_s) and let the caller refresh it.
 * The rendering comes from rcache when this exact record was rendered before.
 */
static int
serve_record(struct pg_req *req, struct lookup *lk, const struct pg_member_rec *rec, int *done)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    *done = 0;
    char buf[RCACHE_BYTES_MAX];
    struct rendered rd = {0};
    json_t *m = NULL;
    uint64_t h = rec_hash(rec->json, rec->len);
    int cached = rcache_get(h, rec->json, rec->len, &rd, buf, sizeof buf);
    if (!cached) {
        m = json_loadb(rec->json, rec->len, 0, NULL);
        if (!m)
            return PG_OK; /* unreadable: refetch, as a miss */
        int rc = render(m, &rd);
        if (rc != PG_OK) {
            json_decref(m);
            free(rd.body);
            return rc;
        }
        rcache_put(h, rec->json, rec->len, &rd);
    }
    int rc = PG_OK;
    int64_t age_ms = pg_wall_ms() - rd.cached_at_ms;
    if (age_ms <= (int64_t)cfg->lookup_cache_ttl_s * 1000) {
        count(L_HIT);
        rc = reply_rendered(req, &rd, "hit");
        *done = 1;
    } else if (age_ms <= (int64_t)cfg->lookup_stale_max_age_s * 1000) {
        /* past its TTL: refresh, but keep it for stale-if-error */
        lk->stale = m ? json_incref(m) : json_loadb(rec->json, rec->len, 0, NULL);
    }
    json_decref(m);
    if (!cached)
        free(rd.body);
    return rc;
}

/*
 * The fast path (pg_route.fast) runs on an HTTP I/O thread, which also serves other connections
 * and /healthz: there every Redis wait is capped at LOOKUP_INLINE_REDIS_MS
 * (pg_redis_thread_bound_ms), and after a Redis failure or a capped wait that thread hands
 * lookups to the workers for LOOKUP_INLINE_OFF_MS, so a stalled Redis costs an I/O thread at
 * most one capped wait per interval.
 */
#define LOOKUP_INLINE_REDIS_MS 50
#define LOOKUP_INLINE_OFF_MS 1000
static _Thread_local int64_t inline_off_until_ms;
static atomic_ullong inline_answered, inline_to_worker;

static int lookup_start(struct pg_req *req, struct lookup *lk, int fast)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    if (!lk->counted) {
        if (!store_allowed(req, lk->store))
            return pg_req_problem(req, 403, "this key may not look up members for that store",
                                  NULL);
        lk->deadline_ms = pg_now_ms() + cfg->lookup_budget_ms;
        /* Rate limit per station key, per minute window: counted in memory and added to Redis
         * in the background (sync/ratelimit.h: why, and how exact it is across instances), so
         * a hit is a read-only Redis round trip. */
        const json_t *station = pg_req_principal(req);
        const char *kid = json_string_value(json_object_get(station, "id"));
        int64_t now = pg_wall_ms();
        lk->counted = 1;
        if (kid && pg_rate_count(kid, now) > rate_limit(station)) {
            count(L_RATE_LIMITED);
            char ra[16];
            snprintf(ra, sizeof ra, "%lld", (long long)(60 - (now / 1000) % 60));
            pg_req_add_header(req, "Retry-After", ra);
            return pg_req_problem(req, 429, "rate limit for this key exceeded", NULL);
        }
    }
    /* The near cache first (sync/member.h): a record held in memory, kept coherent by Redis's
     * invalidation messages, needs no round trip at all. */
    int rc;
    char nbuf[RCACHE_BYTES_MAX];
    size_t nlen = 0;
    if (pg_member_near_get(lk->kind, lk->value, nbuf, sizeof nbuf, &nlen)) {
        struct pg_member_rec nrec = {.json = nbuf, .len = nlen};
        int done = 0;
        rc = serve_record(req, lk, &nrec, &done);
        if (rc != PG_OK || done)
            return rc;
        json_decref(lk->stale); /* past its TTL: Redis decides below, as for any entry */
        lk->stale = NULL;
    }
    uint64_t gen = pg_member_near_gen(); /* before the read: a write after it drops the entry */
    enum pg_member_hit hit = PG_MEMBER_MISS;
    struct pg_member_rec rec;
    rc = pg_member_read(lk->kind, lk->value, 0, &hit, &rec);
    if (rc == PG_OK && hit == PG_MEMBER_FOUND)
        pg_member_near_put(lk->kind, lk->value, rec.json, rec.len, gen);
    if (rc != PG_OK && fast) {
        /* Redis slow or failing: this I/O thread stops trying for a while, and a worker, which
         * may wait the full command timeout, takes this request. */
        inline_off_until_ms = pg_now_ms() + LOOKUP_INLINE_OFF_MS;
        return PG_HTTP_TO_WORKER;
    }
    if (rc != PG_OK) {
        /* Redis down: straight to Salesforce (the rate limit still counts, in memory). */
        atomic_fetch_add(&redis_fail_open, 1);
        pg_log(PG_LOG_WARN, pg_req_id(req), "lookup.redis_unavailable", "cache skipped: %s",
               pg_strerror(rc));
        hit = PG_MEMBER_MISS;
    }
    if (hit == PG_MEMBER_NEGATIVE)
        return reply_not_found(req, "hit");
    if (hit == PG_MEMBER_FOUND) {
        int done = 0;
        rc = serve_record(req, lk, &rec, &done);
        pg_member_rec_free(&rec);
        if (rc != PG_OK || done)
            return rc;
    }
    /* A miss: continue on the slow pool, where waiting on Salesforce is allowed. */
    return pg_req_defer(req, lookup_fetch);
}

static int member_lookup(struct pg_req *req, int fast)
{
    struct lookup *lk = pg_req_data(req);
    if (lk) /* the fast path parsed it and handed it to a worker */
        return lookup_start(req, lk, fast);
    struct params p = {0};
    if (pg_req_query_each(req, collect_param, &p) != PG_OK)
        return pg_req_problem(req, 400, p.bad, NULL);
    if (p.n_ident != 1)
        return pg_req_problem(req, 400, "give exactly one of loyalty_id, card, phone or email",
                              NULL);
    if (p.store && (!*p.store || strlen(p.store) > 32))
        return pg_req_problem(req, 400, "store must be 1 to 32 characters", NULL);
    lk = calloc(1, sizeof *lk);
    if (!lk)
        return PG_ENOMEM;
    pg_req_set_data(req, lk, lookup_free);
    lk->store = p.store;
    char why[160];
    if (normalise(p.name, p.value, lk, why, sizeof why) != PG_OK)
        return pg_req_problem(req, 400, why, NULL);
    return lookup_start(req, lk, fast);
}

static int member_get(struct pg_req *req, int fast)
{
    struct lookup *lk = pg_req_data(req);
    if (lk)
        return lookup_start(req, lk, fast);
    const char *id = pg_req_param(req, "salesforce_id");
    struct params p = {0};
    if (pg_req_query_each(req, collect_param, &p) != PG_OK)
        return pg_req_problem(req, 400, p.bad, NULL);
    if (p.n_ident != 0)
        return pg_req_problem(req, 400, "the member is named by the path; no identifier parameter",
                              NULL);
    if (!id || !pg_sf_id_valid(id))
        return pg_req_problem(req, 400, "salesforce_id must be a 15 or 18 character Salesforce id",
                              NULL);
    lk = calloc(1, sizeof *lk);
    if (!lk)
        return PG_ENOMEM;
    pg_req_set_data(req, lk, lookup_free);
    lk->kind = PG_MEMBER_BY_SF;
    lk->store = p.store;
    /* One cache entry per member: the 18-character form. */
    if (strlen(id) == 15) {
        if (pg_sf_id_to18(id, lk->value, sizeof lk->value) != PG_OK)
            return pg_req_problem(req, 400, "salesforce_id is not valid", NULL);
    } else {
        snprintf(lk->value, sizeof lk->value, "%s", id);
    }
    return lookup_start(req, lk, fast);
}

int pg_hnd_member_lookup(struct pg_req *req)
{
    return member_lookup(req, 0);
}

int pg_hnd_member_get(struct pg_req *req)
{
    return member_get(req, 0);
}

/*
 * On the I/O thread: authorise without waiting (a station key in the configuration, or a partner
 * token), then the same lookup with Redis capped. A fresh hit, a cached not-found and every
 * refusal are answered here; a miss goes straight to the slow pool; anything that would wait
 * (a station key kept in Redis, a slow or failing Redis) goes to a worker as before.
 */
static int fast_path(struct pg_req *req, int (*fn)(struct pg_req *, int))
{
    if (pg_now_ms() < inline_off_until_ms) {
        atomic_fetch_add(&inline_to_worker, 1);
        return PG_HTTP_TO_WORKER;
    }
    int rc = pg_hnd_authorize_fast(req, pg_req_route(req)->auth);
    if (rc == PG_OK && pg_req_reply_status(req) == 0) {
        pg_redis_thread_bound_ms(LOOKUP_INLINE_REDIS_MS);
        rc = fn(req, 1);
        pg_redis_thread_bound_ms(0);
    }
    atomic_fetch_add(rc == PG_HTTP_TO_WORKER ? &inline_to_worker : &inline_answered, 1);
    return rc;
}

static int member_lookup_fast(struct pg_req *req)
{
    return fast_path(req, member_lookup);
}

static int member_get_fast(struct pg_req *req)
{
    return fast_path(req, member_get);
}

pg_handler_fn pg_hnd_fast_path(const struct pg_route *route)
{
    if (route->handler == pg_hnd_member_lookup)
        return member_lookup_fast;
    if (route->handler == pg_hnd_member_get)
        return member_get_fast;
    return NULL;
}

/* ---------------------------------------------------------------- metrics */

int pg_hnd_loyalty_metrics(struct pg_buf *out)
{
    int rc = pg_buf_puts(out, "# HELP posgate_lookup_total POS lookups by outcome.\n"
                              "# TYPE posgate_lookup_total counter\n");
    for (int i = 0; i < L_N && !rc; i++)
        rc = pg_buf_printf(out, "posgate_lookup_total{outcome=\"%s\"} %llu\n", outcome_names[i],
                           atomic_load(&outcomes[i]));
    long long used = -1, max = -1;
    unsigned long long grants = 0, failures = 0, near_hits = 0, near_inval = 0;
    int near_on = 0;
    pg_member_near_stats(&near_hits, &near_inval, &near_on);
    if (pg_hnd.sf_rest)
        pg_sf_rest_limits(pg_hnd.sf_rest, &used, &max);
    if (pg_hnd.sf_oauth)
        pg_sf_oauth_stats(pg_hnd.sf_oauth, &grants, &failures);
    if (!rc)
        rc = pg_buf_printf(
            out,
            "# HELP posgate_lookup_salesforce_calls_total Salesforce calls made by lookups.\n"
            "# TYPE posgate_lookup_salesforce_calls_total counter\n"
            "posgate_lookup_salesforce_calls_total %llu\n"
            "# HELP posgate_lookup_redis_fail_open_total Lookups served without the cache because "
            "Redis failed (the rate limit then holds per instance).\n"
            "# TYPE posgate_lookup_redis_fail_open_total counter\n"
            "posgate_lookup_redis_fail_open_total %llu\n"
            "# HELP posgate_lookup_rate_flush_failures_total Rate-limit count flushes to Redis "
            "that failed (the counts stay in memory).\n"
            "# TYPE posgate_lookup_rate_flush_failures_total counter\n"
            "posgate_lookup_rate_flush_failures_total %llu\n"
            "# HELP posgate_lookup_near_cache_hits_total Lookups answered from the in-process near "
            "cache (no Redis round trip).\n"
            "# TYPE posgate_lookup_near_cache_hits_total counter\n"
            "posgate_lookup_near_cache_hits_total %llu\n"
            "# HELP posgate_lookup_near_cache_invalidations_total Times the near cache was dropped "
            "(a Redis invalidation, a local write, or the subscription lost or regained).\n"
            "# TYPE posgate_lookup_near_cache_invalidations_total counter\n"
            "posgate_lookup_near_cache_invalidations_total %llu\n"
            "# HELP posgate_lookup_near_cache_on 1 while Redis invalidations flow (the near cache "
            "is in use).\n"
            "# TYPE posgate_lookup_near_cache_on gauge\n"
            "posgate_lookup_near_cache_on %d\n"
            "# HELP posgate_lookup_fast_path_total Lookups started on the HTTP I/O thread: "
            "answered (or deferred to the slow pool) there, or handed to a worker.\n"
            "# TYPE posgate_lookup_fast_path_total counter\n"
            "posgate_lookup_fast_path_total{result=\"answered\"} %llu\n"
            "posgate_lookup_fast_path_total{result=\"to_worker\"} %llu\n"
            "# HELP posgate_lookup_render_cache_total Cache hits answered with a reply rendered "
            "earlier for the same record (hit) or rendered now (miss).\n"
            "# TYPE posgate_lookup_render_cache_total counter\n"
            "posgate_lookup_render_cache_total{result=\"hit\"} %llu\n"
            "posgate_lookup_render_cache_total{result=\"miss\"} %llu\n"
            "# HELP posgate_salesforce_api_usage Daily API requests used (Sforce-Limit-Info); -1 "
            "when not seen yet.\n"
            "# TYPE posgate_salesforce_api_usage gauge\n"
            "posgate_salesforce_api_usage %lld\n"
            "# HELP posgate_salesforce_api_limit Daily API request limit (Sforce-Limit-Info).\n"
            "# TYPE posgate_salesforce_api_limit gauge\n"
            "posgate_salesforce_api_limit %lld\n"
            "# HELP posgate_salesforce_token_grants_total OAuth access tokens obtained.\n"
            "# TYPE posgate_salesforce_token_grants_total counter\n"
            "posgate_salesforce_token_grants_total %llu\n"
            "# HELP posgate_salesforce_token_failures_total Failed OAuth token requests.\n"
            "# TYPE posgate_salesforce_token_failures_total counter\n"
            "posgate_salesforce_token_failures_total %llu\n",
            atomic_load(&sf_calls), atomic_load(&redis_fail_open), pg_rate_flush_failures(),
            near_hits, near_inval, near_on, atomic_load(&inline_answered),
            atomic_load(&inline_to_worker), atomic_load(&rcache_hits), atomic_load(&rcache_misses),
            used, max, grants, failures);
    return rc;
}
