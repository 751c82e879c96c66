#include "sync/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "salesforce/collections.h"
#include "salesforce/oauth.h"
#include "salesforce/sf_config.h"
#include "salesforce/rest.h"
#include "server/httpc.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/util.h"
#include "store/lease.h"
#include "store/redis.h"
#include "store/stream.h"
#include "sync/backoff.h"
#include "sync/checkq.h"
#include "sync/keys.h"
#include "sync/transform.h"

/* A job whose check another worker is loading comes back after this. */
#define LOCKED_RETRY_MS 250
/* Rounds of resending records that failed with a lock error, within one job. */
#define LOCK_ROUNDS 3
/* The pause between them: full jitter over base * 2^round, capped. */
#define LOCK_BASE_MS 100
#define LOCK_CAP_MS 2000

enum outcome { OUT_LOADED, OUT_UNCHANGED, OUT_RETRIED, OUT_DEAD, OUT_DEFERRED, OUT_PAUSED, OUT_N };
static const char *const outcome_names[OUT_N] = {"loaded",        "unchanged", "retried",
                                                 "dead_lettered", "deferred",  "paused"};

static atomic_ullong outcome_count[OUT_N];
static atomic_ullong records_ok;     /* records upserted or deleted */
static atomic_ullong records_failed; /* per-record errors, retryable or not */
static atomic_ullong record_retries; /* records resent within a job after a lock error */
static pthread_once_t collector_once = PTHREAD_ONCE_INIT;

struct worker {
    struct pg_loader *pool;
    pthread_t thread;
    char consumer[96];
};

struct pg_loader {
    const struct pg_config *cfg;
    struct pg_lease_set leases; /* the check leases (store/lease.h: why a set) */
    struct pg_loader_hooks hooks;
    struct pg_xf_config *xf;
    struct pg_sf_oauth *oauth;
    struct pg_sf_rest_config rest;
    atomic_int stopping;
    int nworkers;
    struct worker *workers;
};

/* ---------------------------------------------------------------- one batch of loads */

/* How a load ended. */
enum verdict { V_OK, V_RETRY, V_DEAD, V_PAUSE };

/* Checks of one batch at most (checks.load.batch_checks is capped at it): a record's owners are
 * a bitmap of the batch's checks. */
#define BATCH_MAX 200
#define OWN_WORDS ((BATCH_MAX + 63) / 64)

struct plan {
    const char *pb;  /* the order's Pricebook2Id (borrowed from the transform) */
    const char *cur; /* its CurrencyIsoCode or NULL */
};

/* One check of a batch: its job, its lease, what Salesforce holds of it, its records. */
struct load {
    struct pg_loader *pool;
    const struct pg_store_msg *m; /* borrowed from the batch read */
    const char *rid, *enq;        /* borrowed from m */
    long long attempt, force;
    int dup_of;      /* the index of an earlier job of the same check in the batch, or -1 */
    int leased;      /* this worker holds pg:chk:lock:<loc>:<gcid> */
    int lease_tried; /* pg_lease_take was called: pg_lease_release must be */
    int pending;     /* Redis trouble: the job stays pending (read again or reclaimed) */
    int done;        /* handled before the stages (dropped, unchanged, deferred) */
    int active;      /* takes part in the stages (prepared; its verdict may change) */
    int finished;    /* its queue entry was acknowledged */
    char loc[PG_CHECKQ_LOC_MAX + 1];
    char gcid[24];
    char lines_key[160];
    char lock[200];
    char *digest, *busdt, *check_text;
    json_t *known; /* "<sObject>:<ext id>" → Id: what Salesforce holds (pg:chk:lines) */
    json_t *sent;  /* the same keys for every record of this version of the check */
    json_t *xf;    /* the transform */
    struct plan pl;
    /* the records of each stage (new arrays) */
    json_t *all_items; /* OrderItems as the transform made them (list prices of new entries) */
    json_t *drafts;    /* the sale order as Draft, and orders no longer on the check */
    json_t *adj_drafts;
    json_t *items; /* OrderItems as upserted (entry by reference) */
    json_t *final; /* final statuses */
    /* the first failure */
    enum verdict v;
    char code[64];
    char object[64];
    char record[200];
    char message[400];
};

struct batch {
    struct pg_loader *pool;
    struct pg_xf_names names;
    struct load *loads;
    size_t n;
    int64_t deadline; /* every call ends before the first lease of the batch expires */
};

/* A record of a stage and the checks it belongs to (several for a shared product or entry). */
struct rec {
    json_t *r; /* owned reference */
    uint64_t own[OWN_WORDS];
};

struct recs {
    struct rec *v;
    size_t n, cap;
};

static void fail(struct load *ld,
                 enum verdict v,
                 const char *code,
                 const char *object,
                 const char *record,
                 const char *message)
{
    /* A validation error outranks a retryable one: retrying would not fix it. */
    if (ld->v != V_OK && !(v == V_DEAD && ld->v == V_RETRY) && !(v == V_PAUSE))
        return;
    ld->v = v;
    snprintf(ld->code, sizeof ld->code, "%s", code ? code : "");
    snprintf(ld->object, sizeof ld->object, "%s", object ? object : "");
    snprintf(ld->record, sizeof ld->record, "%s", record ? record : "");
    snprintf(ld->message, sizeof ld->message, "%s", message ? message : "");
}

static int live(const struct load *ld)
{
    return ld->active && ld->v == V_OK;
}

/* Append r (the reference is stolen) owned by check i; returns its index, or -1 (no memory: the
 * check is retried). */
static long recs_add(struct recs *s, json_t *r, struct load *ld, size_t i)
{
    if (!r) {
        fail(ld, V_RETRY, pg_errname(PG_ENOMEM), "", "", "out of memory");
        return -1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct rec *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            json_decref(r);
            fail(ld, V_RETRY, pg_errname(PG_ENOMEM), "", "", "out of memory");
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    struct rec *x = &s->v[s->n];
    memset(x, 0, sizeof *x);
    x->r = r;
    x->own[i / 64] |= UINT64_C(1) << (i % 64);
    return (long)s->n++;
}

static void recs_clear(struct recs *s)
{
    for (size_t i = 0; i < s->n; i++)
        json_decref(s->v[i].r);
    s->n = 0;
}

static void recs_free(struct recs *s)
{
    recs_clear(s);
    free(s->v);
    s->v = NULL;
    s->cap = 0;
}

static int owns(const struct rec *x, size_t i)
{
    return (x->own[i / 64] >> (i % 64)) & 1;
}

/* The first owner still loading, or NULL when every check of the record has failed. */
static struct load *live_owner(const struct batch *b, const struct rec *x)
{
    for (size_t i = 0; i < b->n; i++)
        if (owns(x, i) && live(&b->loads[i]))
            return &b->loads[i];
    return NULL;
}

static void fail_owners(const struct batch *b,
                        const struct rec *x,
                        enum verdict v,
                        const char *code,
                        const char *object,
                        const char *record,
                        const char *message)
{
    for (size_t i = 0; i < b->n; i++)
        if (owns(x, i) && live(&b->loads[i]))
            fail(&b->loads[i], v, code, object, record, message);
}

static void known_key(char *out, size_t n, const char *type, const char *ext)
{
    snprintf(out, n, "%s:%s", type, ext ? ext : "");
}

/* Remember what Salesforce now holds, in Redis as well, so a retry after a crash knows it. */
static void remember(struct load *ld, const char *type, const char *ext, const char *id)
{
    /* products and entries belong to no check (pg:chk:known tracks them): never deleted */
    if (strcmp(type, "Product2") == 0 || strcmp(type, "PricebookEntry") == 0)
        return;
    char k[300];
    known_key(k, sizeof k, type, ext);
    json_object_set_new(ld->known, k, json_string(id ? id : ""));
    redisReply *r = NULL;
    if (pg_redis_command(&r, "HSET %s %s %s", ld->lines_key, k, id ? id : "") != PG_OK)
        pg_log(PG_LOG_WARN, ld->rid, "loader.lines_not_saved", "%s %s: its Id was not saved", type,
               ext ? ext : "");
    if (r)
        freeReplyObject(r);
}

static void forget(struct load *ld, const char *key)
{
    json_object_del(ld->known, key);
    redisReply *r = NULL;
    if (pg_redis_command(&r, "HDEL %s %s", ld->lines_key, key) == PG_OK && r)
        freeReplyObject(r);
    else if (r)
        freeReplyObject(r);
}

/*
 * A whole call failed. Nothing is known of which record was written, so a retryable failure
 * (timeout, 5xx, 429, connection, token) retries every check of the batch still loading, and
 * REQUEST_LIMIT_EXCEEDED pauses them all. A refusal of the call itself (400/403/404) is charged
 * to the checks whose records were in it (chunk); the others go on.
 */
static void call_failed(const struct batch *b,
                        const struct recs *chunk_recs,
                        size_t off,
                        size_t m,
                        int rc,
                        const struct pg_sf_error *err,
                        const char *object,
                        const char *what)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s%s%s", what, pg_strerror(rc), err->message[0] ? ": " : "",
             err->message);
    enum verdict v;
    if (rc == PG_EUNAVAIL && strcmp(err->code, "REQUEST_LIMIT_EXCEEDED") == 0)
        v = V_PAUSE;
    else if (rc == PG_EUNAVAIL || rc == PG_ETIMEDOUT || rc == PG_EAUTH || rc == PG_ENOMEM)
        v = V_RETRY;
    else
        v = V_DEAD;
    const char *code = v == V_PAUSE ? err->code : err->code[0] ? err->code : pg_errname(rc);
    if (v == V_DEAD) {
        for (size_t j = 0; j < m; j++)
            fail_owners(b, &chunk_recs->v[off + j], v, code, object, "", msg);
        return;
    }
    for (size_t i = 0; i < b->n; i++)
        if (live(&b->loads[i]))
            fail(&b->loads[i], v, code, object, "", msg);
}

/* Whether any check of the batch is still loading. */
static int any_live(const struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (live(&b->loads[i]))
            return 1;
    return 0;
}

/* Create-only fields (and the references that set them) of each object: never on an update. */
static void strip_create_only(json_t *r, const char *type)
{
    static const char *const order[] = {"IsReductionOrder", "OriginalOrderId", "OriginalOrder",
                                        NULL};
    static const char *const item[] = {
        "OrderId",           "Order", "PricebookEntryId", "PricebookEntry", "OriginalOrderItemId",
        "OriginalOrderItem", NULL};
    static const char *const pbe[] = {"Pricebook2Id", "Product2Id", "Product2", "CurrencyIsoCode",
                                      NULL};
    static const char *const payment[] = {"ProcessingMode", NULL};
    const char *const *list = strcmp(type, "Order") == 0            ? order
                              : strcmp(type, "OrderItem") == 0      ? item
                              : strcmp(type, "PricebookEntry") == 0 ? pbe
                              : strcmp(type, "Payment") == 0        ? payment
                                                                    : NULL;
    for (; list && *list; list++)
        json_object_del(r, *list);
}

/* The external id value of a record: the first string field named like ext_field. */
static const char *ext_of(const json_t *r, const char *ext_field)
{
    return json_string_value(json_object_get(r, ext_field));
}

static uint64_t rnd64(void)
{
    uint64_t x = 0;
    if (pg_random_bytes(&x, sizeof x) != 0)
        x = (uint64_t)pg_now_us();
    return x;
}

/* Keep the records of s that still have a check loading; the others are dropped. */
static void recs_keep_live(const struct batch *b, struct recs *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (live_owner(b, &s->v[i]))
            s->v[k++] = s->v[i];
        else
            json_decref(s->v[i].r);
    }
    s->n = k;
}

/*
 * One stage of the batch: upsert the records of every check still loading (all of one sObject,
 * by ext_field) in calls of at most 200, and charge each per-record result to its own checks.
 * accept_exists: an INVALID_FIELD_FOR_INSERT_UPDATE answer means "it exists" and counts as
 * success (price book entries: posgate never updates them). Afterwards a check still live has
 * every record of the stage in Salesforce.
 */
static void upsert_stage(struct batch *b,
                         const char *type,
                         const char *ext_field,
                         const struct recs *in,
                         int accept_exists)
{
    struct pg_loader *p = b->pool;
    struct recs todo = {0};
    for (size_t i = 0; i < in->n; i++) {
        struct load *o = live_owner(b, &in->v[i]);
        if (!o)
            continue;
        char k[300];
        known_key(k, sizeof k, type, ext_of(in->v[i].r, ext_field));
        json_t *copy = json_deep_copy(in->v[i].r);
        if (copy && json_object_get(o->known, k))
            strip_create_only(copy, type);
        long at = recs_add(&todo, copy, o, (size_t)(o - b->loads));
        if (at >= 0)
            memcpy(todo.v[at].own, in->v[i].own, sizeof todo.v[at].own);
    }
    /* Each round sends what is left; records that failed with a lock error or as "exists on the
     * update path" go to the next round, everything else is done or fatal to its check. */
    for (int round = 0;; round++) {
        recs_keep_live(b, &todo);
        if (todo.n == 0)
            break;
        if (round > LOCK_ROUNDS) {
            for (size_t i = 0; i < todo.n; i++)
                fail_owners(b, &todo.v[i], V_RETRY, "UNABLE_TO_LOCK_ROW", type,
                            ext_of(todo.v[i].r, ext_field), "still locked after resending");
            break;
        }
        if (round > 0) {
            int64_t d = pg_backoff_ms(round, LOCK_BASE_MS, LOCK_CAP_MS, rnd64(), -1);
            if (pg_now_ms() + d >= b->deadline) {
                for (size_t i = 0; i < todo.n; i++)
                    fail_owners(b, &todo.v[i], V_RETRY, "TIMEOUT", type, "",
                                "no time left in this job");
                break;
            }
            pg_sleep_ms(d);
        }
        struct recs next = {0};
        for (size_t off = 0; off < todo.n; off += PG_SF_COLLECTION_MAX) {
            size_t m = todo.n - off < PG_SF_COLLECTION_MAX ? todo.n - off : PG_SF_COLLECTION_MAX;
            json_t *chunk = json_array();
            for (size_t j = 0; j < m; j++)
                json_array_append(chunk, todo.v[off + j].r);
            json_t *res = NULL;
            struct pg_sf_error err;
            int rc = pg_sf_upsert(p->oauth, &p->rest, type, ext_field, chunk, 0, b->deadline, &res,
                                  &err);
            json_decref(chunk);
            pg_log(PG_LOG_DEBUG, NULL, "loader.upsert", "batch of %zu checks: %s x%zu: %s %s", b->n,
                   type, m, pg_errname(rc), err.code);
            if (rc != PG_OK) {
                call_failed(b, &todo, off, m, rc, &err, type, "upsert");
                if (!any_live(b))
                    break;
                continue; /* a refused call was charged to its checks: the others go on */
            }
            for (size_t j = 0; j < m; j++) {
                struct rec *x = &todo.v[off + j];
                json_t *rec = x->r, *r = json_array_get(res, j);
                const char *ext = ext_of(rec, ext_field);
                const char *code = json_string_value(json_object_get(r, "code"));
                const char *msg = json_string_value(json_object_get(r, "message"));
                if (!code)
                    code = "";
                if (json_is_true(json_object_get(r, "ok"))) {
                    atomic_fetch_add(&records_ok, 1);
                    for (size_t i = 0; i < b->n; i++)
                        if (owns(x, i))
                            remember(&b->loads[i], type, ext,
                                     json_string_value(json_object_get(r, "id")));
                    continue;
                }
                atomic_fetch_add(&records_failed, 1);
                struct load *o = live_owner(b, x);
                if (!o)
                    continue;
                if (strcmp(code, "INVALID_FIELD_FOR_INSERT_UPDATE") == 0) {
                    char k[300];
                    known_key(k, sizeof k, type, ext);
                    if (accept_exists) {
                        for (size_t i = 0; i < b->n; i++)
                            if (owns(x, i))
                                remember(&b->loads[i], type, ext, "");
                        continue;
                    }
                    if (!json_object_get(o->known, k)) {
                        /* It exists although posgate did not know it (a reply lost to a
                         * timeout): send it again as an update. */
                        json_t *again = json_deep_copy(rec);
                        if (again)
                            strip_create_only(again, type);
                        long at = recs_add(&next, again, o, (size_t)(o - b->loads));
                        if (at >= 0)
                            memcpy(next.v[at].own, x->own, sizeof x->own);
                        for (size_t i = 0; i < b->n; i++)
                            if (owns(x, i))
                                json_object_set_new(b->loads[i].known, k, json_string(""));
                        continue;
                    }
                }
                if (json_is_true(json_object_get(r, "retryable"))) {
                    atomic_fetch_add(&record_retries, 1);
                    long at = recs_add(&next, json_incref(rec), o, (size_t)(o - b->loads));
                    if (at >= 0)
                        memcpy(next.v[at].own, x->own, sizeof x->own);
                    continue;
                }
                fail_owners(b, x, V_DEAD, code, type, ext, msg);
            }
            json_decref(res);
        }
        recs_free(&todo);
        todo = next;
    }
    recs_free(&todo);
}

/*
 * Delete records by Id for the checks still loading (already-gone ones count as deleted). Each
 * record of in is {"k": "<sObject>:<ext id>", "id": Id}.
 */
static void delete_stage(struct batch *b, const struct recs *in)
{
    struct pg_loader *p = b->pool;
    struct recs todo = {0};
    for (size_t i = 0; i < in->n; i++) {
        struct load *o = live_owner(b, &in->v[i]);
        if (o)
            recs_add(&todo, json_incref(in->v[i].r), o, (size_t)(o - b->loads));
    }
    for (int round = 0;; round++) {
        recs_keep_live(b, &todo);
        if (todo.n == 0)
            break;
        if (round > LOCK_ROUNDS) {
            for (size_t i = 0; i < todo.n; i++)
                fail_owners(b, &todo.v[i], V_RETRY, "UNABLE_TO_LOCK_ROW", "", "",
                            "delete still locked");
            break;
        }
        if (round > 0) {
            int64_t d = pg_backoff_ms(round, LOCK_BASE_MS, LOCK_CAP_MS, rnd64(), -1);
            if (pg_now_ms() + d >= b->deadline) {
                for (size_t i = 0; i < todo.n; i++)
                    fail_owners(b, &todo.v[i], V_RETRY, "TIMEOUT", "", "",
                                "no time left in this job");
                break;
            }
            pg_sleep_ms(d);
        }
        struct recs next = {0};
        for (size_t off = 0; off < todo.n; off += PG_SF_COLLECTION_MAX) {
            size_t m = todo.n - off < PG_SF_COLLECTION_MAX ? todo.n - off : PG_SF_COLLECTION_MAX;
            json_t *chunk = json_array();
            for (size_t j = 0; j < m; j++)
                json_array_append(chunk, json_object_get(todo.v[off + j].r, "id"));
            json_t *res = NULL;
            struct pg_sf_error err;
            int rc = pg_sf_delete(p->oauth, &p->rest, chunk, 0, b->deadline, &res, &err);
            json_decref(chunk);
            if (rc != PG_OK) {
                call_failed(b, &todo, off, m, rc, &err, "", "delete");
                if (!any_live(b))
                    break;
                continue;
            }
            for (size_t j = 0; j < m; j++) {
                struct rec *x = &todo.v[off + j];
                json_t *r = json_array_get(res, j);
                const char *key = json_string_value(json_object_get(x->r, "k"));
                const char *code = json_string_value(json_object_get(r, "code"));
                if (!code)
                    code = "";
                struct load *o = live_owner(b, x);
                if (!o)
                    continue;
                if (json_is_true(json_object_get(r, "ok")) ||
                    strcmp(code, "ENTITY_IS_DELETED") == 0 ||
                    strcmp(code, "INVALID_CROSS_REFERENCE_KEY") == 0) {
                    atomic_fetch_add(&records_ok, 1);
                    forget(o, key);
                } else if (json_is_true(json_object_get(r, "retryable"))) {
                    atomic_fetch_add(&record_retries, 1);
                    recs_add(&next, json_incref(x->r), o, (size_t)(o - b->loads));
                } else {
                    atomic_fetch_add(&records_failed, 1);
                    fail(o, V_DEAD, code, "", key,
                         json_string_value(json_object_get(r, "message")));
                }
            }
            json_decref(res);
        }
        recs_free(&todo);
        todo = next;
    }
    recs_free(&todo);
}

/* The PricebookEntry external id of (book, currency, product). */
static void pbe_ext(char *out, size_t n, const char *book, const char *cur, const char *product)
{
    if (cur && *cur)
        snprintf(out, n, "%.15s-%s-%s", book, cur, product);
    else
        snprintf(out, n, "%.15s-%s", book, product);
}

/* "12.50" / "-12.50" → "12.50": an entry's list price is never negative. */
static json_t *abs_price(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s)
        return json_string(*s == '-' ? s + 1 : s);
    if (json_is_integer(v))
        return json_integer(llabs((long long)json_integer_value(v)));
    return json_string("0");
}

/* Does posgate already know (book, product) entries / products? One HMGET for all keys. */
static json_t *known_globally(json_t *keys)
{
    json_t *have = json_object();
    size_t n = json_array_size(keys);
    if (n == 0)
        return have;
    const char **argv = calloc(n + 2, sizeof *argv);
    size_t *lens = calloc(n + 2, sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return have;
    }
    argv[0] = "HMGET";
    argv[1] = PG_KEY_CHK_KNOWN;
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = json_string_value(json_array_get(keys, i));
    for (size_t i = 0; i < n + 2; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = NULL;
    if (pg_redis_command_argv(&r, (int)n + 2, argv, lens) == PG_OK &&
        r->type == REDIS_REPLY_ARRAY && r->elements == n) {
        for (size_t i = 0; i < n; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                json_object_set_new(have, argv[i + 2], json_true());
    }
    if (r)
        freeReplyObject(r);
    free(argv);
    free(lens);
    return have;
}

static void
mark_globally(const struct batch *b, const struct recs *s, const char *type, const char *ext_field)
{
    for (size_t i = 0; i < s->n; i++) {
        /* a check still loading has every record of the stage in Salesforce */
        if (!live_owner(b, &s->v[i]))
            continue;
        char k[300];
        known_key(k, sizeof k, type, ext_of(s->v[i].r, ext_field));
        redisReply *rr = NULL;
        if (pg_redis_command(&rr, "HSET " PG_KEY_CHK_KNOWN " %s 1", k) == PG_OK && rr)
            freeReplyObject(rr);
        else if (rr)
            freeReplyObject(rr);
    }
}

/* Add r (stolen) for check i, or add check i to the owners of the record with the same key. */
static void
add_shared(struct recs *s, json_t *index, const char *key, json_t *r, struct batch *b, size_t i)
{
    json_t *at = json_object_get(index, key);
    if (at) {
        struct rec *x = &s->v[json_integer_value(at)];
        x->own[i / 64] |= UINT64_C(1) << (i % 64);
        json_decref(r);
        return;
    }
    long n = recs_add(s, r, &b->loads[i], i);
    if (n >= 0)
        json_object_set_new(index, key, json_integer(n));
}

/*
 * Stage 2 (checks.load.create_missing_products): the batch's products, then their entries in the
 * standard book (when an order's book is another one) and in the orders' books. Each is sent once
 * per batch whichever checks need it (an external id twice in one call would be refused), and
 * remembered posgate-wide in pg:chk:known, so a product is upserted once, not once per check; an
 * entry is never updated (its price is the item's, per line).
 */
static void ensure_products(struct batch *b)
{
    const struct pg_config *cfg = b->pool->cfg;
    const char *pf = b->names.product_ext;
    const char *std = cfg->load_std_pricebook;
    json_t *wanted = json_object(), *keys = json_array();
    for (size_t c = 0; c < b->n; c++) {
        struct load *ld = &b->loads[c];
        if (!live(ld))
            continue;
        int std_needed = std && *std && strncmp(std, ld->pl.pb, 15) != 0;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(ld->xf, "products"), i, r)
        {
            const char *mi = ext_of(r, pf);
            char k[300], e[200];
            if (!mi)
                continue;
            known_key(k, sizeof k, "Product2", mi);
            json_object_set_new(wanted, k, json_true());
            pbe_ext(e, sizeof e, ld->pl.pb, ld->pl.cur, mi);
            known_key(k, sizeof k, "PricebookEntry", e);
            json_object_set_new(wanted, k, json_true());
            if (std_needed) {
                pbe_ext(e, sizeof e, std, ld->pl.cur, mi);
                known_key(k, sizeof k, "PricebookEntry", e);
                json_object_set_new(wanted, k, json_true());
            }
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(wanted, key, v)
    {
        json_array_append_new(keys, json_string(key));
    }
    json_decref(wanted);
    json_t *have = known_globally(keys);
    json_decref(keys);
    struct recs prods = {0}, std_entries = {0}, entries = {0};
    json_t *ip = json_object(), *is = json_object(), *ie = json_object();
    for (size_t c = 0; c < b->n; c++) {
        struct load *ld = &b->loads[c];
        if (!live(ld))
            continue;
        int std_needed = std && *std && strncmp(std, ld->pl.pb, 15) != 0;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(ld->xf, "products"), i, r)
        {
            const char *mi = ext_of(r, pf);
            char k[300], e[200];
            if (!mi)
                continue;
            known_key(k, sizeof k, "Product2", mi);
            if (!json_object_get(have, k)) {
                json_t *prod = json_deep_copy(r);
                /* Product2.IsActive defaults to false, and an inactive product cannot be sold */
                if (prod)
                    json_object_set_new(prod, "IsActive", json_true());
                add_shared(&prods, ip, k, prod, b, c);
            }
            /* the list price: the first item of this product (an item sets its own UnitPrice) */
            json_t *price = NULL;
            size_t j;
            json_t *it;
            json_array_foreach(ld->all_items, j, it)
            {
                const char *pv = ext_of(json_object_get(it, "Product2"), pf);
                if (pv && strcmp(pv, mi) == 0) {
                    price = abs_price(json_object_get(it, "UnitPrice"));
                    break;
                }
            }
            if (!price)
                price = json_string("0");
            for (int bk = 0; bk < 2; bk++) {
                const char *book = bk == 0 ? (std_needed ? std : NULL) : ld->pl.pb;
                if (!book)
                    continue;
                pbe_ext(e, sizeof e, book, ld->pl.cur, mi);
                known_key(k, sizeof k, "PricebookEntry", e);
                if (json_object_get(have, k))
                    continue;
                json_t *rec =
                    json_pack("{s:{s:s}, s:s, s:s, s:{s:s}, s:O, s:b}", "attributes", "type",
                              "PricebookEntry", cfg->load_pbe_ext_field, e, "Pricebook2Id", book,
                              "Product2", pf, mi, "UnitPrice", price, "IsActive", 1);
                if (rec && ld->pl.cur)
                    json_object_set_new(rec, "CurrencyIsoCode", json_string(ld->pl.cur));
                add_shared(bk == 0 ? &std_entries : &entries, bk == 0 ? is : ie, k, rec, b, c);
            }
            json_decref(price);
        }
    }
    json_decref(have);
    json_decref(ip);
    json_decref(is);
    json_decref(ie);
    pg_log(PG_LOG_DEBUG, NULL, "loader.products",
           "batch of %zu checks: %zu products, %zu + %zu price book entries to ensure", b->n,
           prods.n, std_entries.n, entries.n);
    upsert_stage(b, "Product2", pf, &prods, 0);
    /* Salesforce wants a product's standard price before any other book's entry */
    upsert_stage(b, "PricebookEntry", cfg->load_pbe_ext_field, &std_entries, 1);
    upsert_stage(b, "PricebookEntry", cfg->load_pbe_ext_field, &entries, 1);
    /* a record whose checks all failed may not be in Salesforce: not marked */
    mark_globally(b, &prods, "Product2", pf);
    mark_globally(b, &std_entries, "PricebookEntry", cfg->load_pbe_ext_field);
    mark_globally(b, &entries, "PricebookEntry", cfg->load_pbe_ext_field);
    recs_free(&prods);
    recs_free(&std_entries);
    recs_free(&entries);
}

/* An OrderItem as the transform made it → as it is upserted: its PricebookEntry by reference. */
static json_t *item_for_load(const struct load *ld, const struct pg_xf_names *nm, const json_t *it)
{
    json_t *r = json_deep_copy(it);
    if (!r)
        return NULL;
    const char *mi = ext_of(json_object_get(it, "Product2"), nm->product_ext);
    json_object_del(r, "Product2"); /* derived from the entry on an OrderItem (read-only) */
    if (mi) {
        char e[200];
        pbe_ext(e, sizeof e, ld->pl.pb, ld->pl.cur, mi);
        json_object_set_new(r, "PricebookEntry",
                            json_pack("{s:s}", ld->pool->cfg->load_pbe_ext_field, e));
    }
    return r;
}

/* A record reduced to its external id and Status (the final activation; a revert to Draft). */
static json_t *status_only(const char *ext_field, const char *ext, const char *status)
{
    return json_pack("{s:{s:s}, s:s, s:s}", "attributes", "type", "Order", ext_field, ext, "Status",
                     status);
}

/*
 * The records of one transformed check, by stage (ld->drafts, adj_drafts, items, final), and
 * ld->sent: every record of this version, so what Salesforce holds beyond it can be deleted.
 */
static void plan_records(struct load *ld, const struct pg_xf_names *nm)
{
    json_t *xf = ld->xf;
    json_t *order = json_object_get(xf, "order");
    ld->pl.pb = json_string_value(json_object_get(order, "Pricebook2Id"));
    ld->pl.cur = json_string_value(json_object_get(order, "CurrencyIsoCode"));
    if (!ld->pl.pb)
        ld->pl.pb = "";
    const char *oef = nm->order_ext;
    ld->all_items = json_array();
    ld->drafts = json_array();
    ld->adj_drafts = json_array();
    ld->items = json_array();
    ld->final = json_array();
    json_t *orders = json_array();
    json_array_append(orders, order);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(xf, "adjustments"), i, a)
    {
        json_array_append(orders, json_object_get(a, "order"));
    }
    json_array_extend(ld->all_items, json_object_get(xf, "items"));
    json_array_foreach(json_object_get(xf, "adjustments"), i, a)
    {
        json_array_extend(ld->all_items, json_object_get(a, "items"));
    }
    json_t *r;
    char k[300];
    json_array_foreach(ld->all_items, i, r)
    {
        known_key(k, sizeof k, "OrderItem", ext_of(r, nm->item_ext));
        json_object_set_new(ld->sent, k, json_true());
        json_t *it = item_for_load(ld, nm, r);
        if (it)
            json_array_append_new(ld->items, it);
    }
    json_array_foreach(json_object_get(xf, "payments"), i, r)
    {
        known_key(k, sizeof k, nm->payment_object, ext_of(r, nm->payment_ext));
        json_object_set_new(ld->sent, k, json_true());
    }
    /* Stage 3: the orders as Draft (created so, or reverted so that items may change), and
     * orders of an earlier version no longer on the check (an adjustment order that went away)
     * reverted too, so that they can be deleted. */
    json_array_foreach(orders, i, r)
    {
        known_key(k, sizeof k, "Order", ext_of(r, oef));
        json_object_set_new(ld->sent, k, json_true());
        json_t *d = json_deep_copy(r);
        if (!d)
            continue;
        const char *st = json_string_value(json_object_get(r, "Status"));
        if (st && strcmp(st, "Draft") != 0)
            json_array_append_new(ld->final, status_only(oef, ext_of(r, oef), st));
        json_object_set_new(d, "Status", json_string("Draft"));
        /* an adjustment order refers to the sale by external id: the sale goes in an earlier
         * call, so that a sale refused (a lock error) cannot make its adjustment look invalid */
        json_array_append_new(i == 0 ? ld->drafts : ld->adj_drafts, d);
    }
    json_decref(orders);
    const char *key;
    json_t *v;
    json_object_foreach(ld->known, key, v)
    {
        if (!json_object_get(ld->sent, key) && strncmp(key, "Order:", 6) == 0)
            json_array_append_new(ld->drafts, status_only(oef, key + 6, "Draft"));
    }
}

/* The records of array field (an offset of a json_t * in struct load) of every live check. */
static void gather(struct batch *b, size_t field_off, struct recs *out)
{
    for (size_t c = 0; c < b->n; c++) {
        struct load *ld = &b->loads[c];
        if (!live(ld))
            continue;
        json_t *arr = *(json_t **)((char *)ld + field_off);
        size_t i;
        json_t *r;
        json_array_foreach(arr, i, r) recs_add(out, json_incref(r), ld, c);
    }
}

/*
 * Steps 2-7 for every prepared check of the batch, stage by stage across the checks: a stage's
 * records of all checks go together in calls of at most 200, parents before children. A check
 * that fails in a stage (its verdict set) takes no part in the later ones; the others go on.
 */
static void run_stages(struct batch *b)
{
    struct pg_loader *p = b->pool;
    const struct pg_xf_names *nm = &b->names;
    struct recs s = {0};
    if (p->cfg->load_create_products)
        ensure_products(b);

    gather(b, offsetof(struct load, drafts), &s);
    upsert_stage(b, "Order", nm->order_ext, &s, 0);
    recs_clear(&s);
    gather(b, offsetof(struct load, adj_drafts), &s);
    upsert_stage(b, "Order", nm->order_ext, &s, 0);
    recs_clear(&s);

    /* Step 4: items and payments (then orders) synced before and no longer on the check. Items
     * go first: deleting an order takes its items with it. A standard Payment cannot be deleted
     * once Processed (salesforce-wire §5.6): it is moved to Canceled instead. */
    for (size_t c = 0; c < b->n; c++) {
        struct load *ld = &b->loads[c];
        if (!live(ld))
            continue;
        const char *key;
        json_t *v;
        json_object_foreach(ld->known, key, v)
        {
            if (strncmp(key, "Payment:", 8) == 0 && !json_object_get(ld->sent, key))
                recs_add(&s,
                         json_pack("{s:{s:s}, s:s, s:s}", "attributes", "type", "Payment",
                                   nm->payment_ext, key + 8, "Status", "Canceled"),
                         ld, c);
        }
    }
    if (s.n) {
        upsert_stage(b, "Payment", nm->payment_ext, &s, 0);
        for (size_t i = 0; i < s.n; i++) {
            struct load *o = live_owner(b, &s.v[i]);
            char ck[300];
            known_key(ck, sizeof ck, "Payment", ext_of(s.v[i].r, nm->payment_ext));
            if (o)
                forget(o, ck); /* canceled: no longer one of the check's payments */
        }
    }
    recs_clear(&s);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t c = 0; c < b->n; c++) {
            struct load *ld = &b->loads[c];
            if (!live(ld))
                continue;
            const char *key;
            json_t *v;
            json_object_foreach(ld->known, key, v)
            {
                int is_order = strncmp(key, "Order:", 6) == 0;
                if (json_object_get(ld->sent, key) || is_order != pass ||
                    strncmp(key, "Payment:", 8) == 0)
                    continue;
                const char *id = json_string_value(v);
                if (id && *id)
                    recs_add(&s, json_pack("{s:s, s:s}", "k", key, "id", id), ld, c);
            }
        }
        if (s.n)
            delete_stage(b, &s);
        recs_clear(&s);
    }

    /* Step 5, 6: items, payments. */
    gather(b, offsetof(struct load, items), &s);
    upsert_stage(b, "OrderItem", nm->item_ext, &s, 0);
    recs_clear(&s);
    for (size_t c = 0; c < b->n; c++) {
        struct load *ld = &b->loads[c];
        if (!live(ld))
            continue;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(ld->xf, "payments"), i, r)
            recs_add(&s, json_incref(r), ld, c);
    }
    upsert_stage(b, nm->payment_object, nm->payment_ext, &s, 0);
    recs_clear(&s);
    /* Step 7: the final status, once the order has its items. */
    gather(b, offsetof(struct load, final), &s);
    upsert_stage(b, "Order", nm->order_ext, &s, 0);
    recs_free(&s);
}

/* ---------------------------------------------------------------- the job */

static const char *field(const struct pg_store_msg *m, const char *name)
{
    const struct pg_store_field *f = pg_store_msg_field(m, name);
    return f ? f->value : NULL;
}

static void count(enum outcome o)
{
    atomic_fetch_add(&outcome_count[o], 1);
}

/* Put a job back for later: the sorted set holds it until it is due. */
static int schedule(const char *loc,
                    const char *gcid,
                    const char *rid,
                    const char *enq_ms,
                    int attempt,
                    int force,
                    int64_t delay_ms)
{
    char nonce[33];
    if (pg_random_hex_id(nonce, sizeof nonce) != 0)
        snprintf(nonce, sizeof nonce, "%lld", (long long)pg_now_us());
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "loc", loc, "gcid", gcid, "rid",
                          rid ? rid : "", "enq_ms", enq_ms ? enq_ms : "0", "attempt", attempt,
                          "force", force, "n", nonce);
    char *member = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!member)
        return PG_ENOMEM;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "ZADD " PG_KEY_CHK_RETRY " %lld %s",
                              (long long)(pg_wall_ms() + delay_ms), member);
    if (r)
        freeReplyObject(r);
    free(member);
    return rc;
}

/* Move due retries back into the queue, atomically per job. */
static const char promote_lua[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)\n"
    "for _, m in ipairs(due) do\n"
    "  local j = cjson.decode(m)\n"
    "  redis.call('XADD', KEYS[2], '*', 'loc', j.loc, 'gcid', j.gcid, 'rid', j.rid,\n"
    "    'enq_ms', j.enq_ms, 'attempt', tostring(j.attempt), 'force', tostring(j.force))\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

/*
 * The check is in Salesforce: record it, but mark it synced only if it is still the version that
 * was loaded (a newer one queued meanwhile keeps state queued and its own job).
 * KEYS: check hash, synced hash (loc:busdt). ARGV: digest loaded, order Id, gcid, synced JSON.
 */
static const char synced_lua[] =
    "local cur = redis.call('HGET', KEYS[1], 'digest')\n"
    "local old = redis.call('HGET', KEYS[1], 'synced_key')\n"
    "if old and old ~= KEYS[2] then redis.call('HDEL', old, ARGV[3]) end\n"
    "redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])\n"
    "redis.call('HSET', KEYS[1], 'synced_digest', ARGV[1], 'order_id', ARGV[2],\n"
    "  'synced_key', KEYS[2], 'synced_ms', ARGV[5])\n"
    "redis.call('HDEL', KEYS[1], 'error')\n"
    "if cur == ARGV[1] then redis.call('HSET', KEYS[1], 'state', 'synced') end\n"
    "return 1\n";

static int eval(redisReply **r, const char *script, int nkeys, const char *const *args, int nargs)
{
    const char *argv[16];
    size_t argvlen[16];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    int n = 0;
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (int i = 0; i < nargs && n < 16; i++)
        argv[n++] = args[i];
    for (int i = 0; i < n; i++)
        argvlen[i] = strlen(argv[i]);
    return pg_redis_command_argv(r, n, argv, argvlen);
}

/* Acknowledge and delete: handled entries leave the stream, which so stays the backlog. */
static void finish(const struct pg_store_msg *m)
{
    const char *ids[] = {m->id};
    long long acked = 0;
    if (pg_store_queue_ack(PG_KEY_CHK_QUEUE, PG_KEY_CHK_GROUP, ids, 1, &acked) == PG_OK) {
        redisReply *r = NULL;
        if (pg_redis_command(&r, "XDEL " PG_KEY_CHK_QUEUE " %s", m->id) == PG_OK && r)
            freeReplyObject(r);
        else if (r)
            freeReplyObject(r);
    }
}

static void hset_state(const char *loc, const char *gcid, const char *state, const char *error)
{
    redisReply *r = NULL;
    if (pg_redis_command(&r, "HSET " PG_KEY_CHK "%s:%s state %s error %s", loc, gcid, state,
                         error ? error : "") == PG_OK &&
        r)
        freeReplyObject(r);
    else if (r)
        freeReplyObject(r);
}

/* Dead-letter a check: the letter names it and says why; its payload stays in the hash. */
static int dead_letter(const struct pg_store_msg *m, const struct load *ld, long long attempt)
{
    char err[1024];
    snprintf(err, sizeof err, "%s%s%s%s%s: %s", ld->code, ld->object[0] ? " " : "", ld->object,
             ld->record[0] ? " " : "", ld->record, ld->message);
    struct pg_store_field f[] = {
        {(char *)"loc", 3, (char *)ld->loc, strlen(ld->loc)},
        {(char *)"gcid", 4, (char *)ld->gcid, strlen(ld->gcid)},
        {(char *)"rid", 3, (char *)(ld->rid ? ld->rid : ""), ld->rid ? strlen(ld->rid) : 0},
        {(char *)"code", 4, (char *)ld->code, strlen(ld->code)},
        {(char *)"object", 6, (char *)ld->object, strlen(ld->object)},
        {(char *)"record", 6, (char *)ld->record, strlen(ld->record)},
        {(char *)"message", 7, (char *)ld->message, strlen(ld->message)},
    };
    struct pg_store_msg dm = {.deliveries = 0, .nfields = sizeof f / sizeof f[0], .fields = f};
    snprintf(dm.id, sizeof dm.id, "%s", m->id);
    char id[PG_STORE_ID_MAX];
    int rc = pg_store_dead_add(PG_KEY_CHK_DEAD, PG_KEY_CHK_QUEUE, &dm, attempt, err, 0, id);
    if (rc == PG_OK)
        hset_state(ld->loc, ld->gcid, "dead", err);
    pg_log(PG_LOG_ERROR, ld->rid, "loader.dead_letter", "check %s:%s after attempt %lld: %s",
           ld->loc, ld->gcid, attempt, err);
    return rc;
}

/* Flags worth a log line: the check does not add up, or carries what Salesforce cannot hold. */
static void log_flags(const struct load *ld, const json_t *xf)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(xf, "flags"), i, f)
    {
        const char *code = json_string_value(json_object_get(f, "code"));
        if (code && (strcmp(code, "TOTAL_MISMATCH") == 0 || strcmp(code, "PAYMENT_MISMATCH") == 0 ||
                     strcmp(code, "NEGATIVE_TENDER") == 0)) {
            char *s = json_dumps(f, JSON_COMPACT);
            pg_log(PG_LOG_WARN, ld->rid, "loader.check_flagged", "check %s:%s: %s", ld->loc,
                   ld->gcid, s ? s : code);
            free(s);
        }
    }
}

static void set_account(json_t *xf, const char *account)
{
    json_object_set_new(json_object_get(xf, "order"), "AccountId", json_string(account));
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(xf, "adjustments"), i, a)
    {
        json_object_set_new(json_object_get(a, "order"), "AccountId", json_string(account));
    }
    json_array_foreach(json_object_get(xf, "payments"), i, a)
    {
        if (json_object_get(a, "AccountId"))
            json_object_set_new(a, "AccountId", json_string(account));
    }
}

/* Load the check, or say why not (ld's verdict). *xf_out: the transform (on V_OK). */
static int read_known(struct load *ld)
{
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "HGETALL %s", ld->lines_key);
    if (rc == PG_OK && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (r->element[i]->str && r->element[i + 1]->str)
                json_object_set_new(ld->known, r->element[i]->str,
                                    json_string(r->element[i + 1]->str));
    } else if (rc == PG_OK) {
        rc = PG_EPROTO;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

static int paused(void)
{
    redisReply *r = NULL;
    int on = 0;
    if (pg_redis_command(&r, "EXISTS " PG_KEY_CHK_PAUSE) == PG_OK && r->type == REDIS_REPLY_INTEGER)
        on = r->integer > 0;
    if (r)
        freeReplyObject(r);
    return on;
}

static void record_synced(const struct load *ld,
                          const json_t *xf,
                          const char *digest,
                          const char *busdt,
                          const char *check_text)
{
    json_t *order = json_object_get(xf, "order");
    struct pg_xf_names nm;
    pg_xf_config_names(ld->pool->xf, &nm);
    const char *oext = ext_of(order, nm.order_ext);
    char k[300];
    known_key(k, sizeof k, "Order", oext ? oext : "");
    const char *oid = json_string_value(json_object_get(ld->known, k));
    json_t *check = json_loads(check_text, 0, NULL);
    json_t *syn =
        json_pack("{s:O, s:O, s:b, s:s, s:s}", "total",
                  json_object_get(json_object_get(xf, "totals"), "check_total"), "rvc",
                  json_object_get(check, "rvcNum") ? json_object_get(check, "rvcNum") : json_null(),
                  "closed", json_is_true(json_object_get(check, "clsdFlag")), "order",
                  oext ? oext : "", "digest", digest);
    json_decref(check);
    char *sj = syn ? json_dumps(syn, JSON_COMPACT) : NULL;
    json_decref(syn);
    char key[200], skey[200], now[24];
    snprintf(key, sizeof key, PG_KEY_CHK "%s:%s", ld->loc, ld->gcid);
    snprintf(skey, sizeof skey, PG_KEY_CHK_SYNCED "%s:%s", ld->loc, busdt ? busdt : "");
    snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
    const char *args[] = {key, skey, digest, oid ? oid : "", ld->gcid, sj ? sj : "{}", now};
    redisReply *r = NULL;
    if (eval(&r, synced_lua, 2, args, 7) != PG_OK)
        pg_log(PG_LOG_WARN, ld->rid, "loader.synced_not_recorded",
               "check %s:%s is in Salesforce but could not be marked synced; it will be sent "
               "again (harmless)",
               ld->loc, ld->gcid);
    if (r)
        freeReplyObject(r);
    free(sj);
}

/* Step 1: transform the check and match its customer into ld->xf, or say why not (verdict). */
static void transform_check(struct load *ld, int64_t deadline)
{
    struct pg_loader *p = ld->pool;
    json_t *check = json_loads(ld->check_text, 0, NULL);
    if (!check) {
        fail(ld, V_DEAD, "BAD_PAYLOAD", "", "", "the stored check is not JSON");
        return;
    }
    json_t *dims = NULL;
    redisReply *r = NULL;
    if (pg_redis_command(&r, "GET " PG_KEY_CHK_DIMS "%s", ld->loc) == PG_OK &&
        r->type == REDIS_REPLY_STRING)
        dims = json_loads(r->str, 0, NULL);
    if (r)
        freeReplyObject(r);
    json_t *xf = NULL;
    char why[300] = "";
    int rc = pg_xf_check(p->xf, check, ld->loc, dims, &xf, why, sizeof why);
    json_decref(dims);
    if (rc != PG_OK) {
        fail(ld, rc == PG_ENOMEM ? V_RETRY : V_DEAD, "TRANSFORM", "", "", why);
        json_decref(check);
        return;
    }
    log_flags(ld, xf);
    if (p->hooks.match) {
        char account[64] = "";
        why[0] = '\0';
        /* a quarter of what is left of the batch's lease, so loading keeps its time */
        int64_t budget = (deadline - pg_now_ms()) / 4;
        rc = p->hooks.match(p->hooks.ud, check, ld->loc, pg_now_ms() + budget, account,
                            sizeof account, why, sizeof why);
        if (rc != PG_OK) {
            fail(ld, V_RETRY, "MATCH", "", "", why[0] ? why : pg_strerror(rc));
            json_decref(check);
            json_decref(xf);
            return;
        }
        if (account[0])
            set_account(xf, account);
    }
    json_decref(check);
    ld->xf = xf;
}

static void finish_load(struct load *ld)
{
    finish(ld->m);
    ld->finished = 1;
}

/* Read a job's fields; 0, or -1 when it names no check (dropped). */
static int read_job(struct load *ld)
{
    const struct pg_store_msg *m = ld->m;
    const char *loc = field(m, "loc"), *gcid = field(m, "gcid");
    ld->rid = field(m, "rid");
    ld->enq = field(m, "enq_ms");
    ld->attempt = 1;
    ld->force = 0;
    ld->dup_of = -1;
    if (!field(m, "attempt") || pg_strtonum(field(m, "attempt"), 1, 1000000, &ld->attempt) != 0)
        ld->attempt = 1;
    if (!field(m, "force") || pg_strtonum(field(m, "force"), 0, 1, &ld->force) != 0)
        ld->force = 0;
    if (!loc || !*loc || !gcid || !*gcid || strlen(loc) > PG_CHECKQ_LOC_MAX || strlen(gcid) > 20) {
        pg_log(PG_LOG_ERROR, ld->rid, "loader.bad_job", "queue entry %s names no check; dropped",
               m->id);
        finish_load(ld);
        ld->done = 1;
        return -1;
    }
    snprintf(ld->loc, sizeof ld->loc, "%s", loc);
    snprintf(ld->gcid, sizeof ld->gcid, "%s", gcid);
    snprintf(ld->lines_key, sizeof ld->lines_key, PG_KEY_CHK_LINES "%s:%s", loc, gcid);
    snprintf(ld->lock, sizeof ld->lock, PG_KEY_CHK_LOCK "%s:%s", loc, gcid);
    return 0;
}

/*
 * Take the check's lease, read the newest version held, skip it when that digest is synced,
 * transform it and plan its records. Leaves ld active (in the stages), done, pending, or with
 * its verdict set.
 */
static void prepare(struct worker *w, struct batch *b, struct load *ld)
{
    const struct pg_config *cfg = b->pool->cfg;
    redisReply *r = NULL;
    int got = 0;
    ld->lease_tried = 1;
    int rc = pg_lease_take(&b->pool->leases, ld->lock, w->consumer, cfg->load_lock_ms, &got);
    if (rc != PG_OK) {
        ld->pending = 1; /* Redis trouble: it stays pending and is read again or reclaimed */
        return;
    }
    if (!got) {
        /* another worker is loading it: this job comes back shortly */
        if (schedule(ld->loc, ld->gcid, ld->rid, ld->enq, (int)ld->attempt, (int)ld->force,
                     LOCKED_RETRY_MS) == PG_OK) {
            count(OUT_DEFERRED);
            finish_load(ld);
            ld->done = 1;
        } else {
            ld->pending = 1;
        }
        return;
    }
    ld->leased = 1;
    r = NULL;
    rc = pg_redis_command(&r, "HMGET " PG_KEY_CHK "%s:%s check digest synced_digest busdt", ld->loc,
                          ld->gcid);
    if (rc != PG_OK || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        if (r)
            freeReplyObject(r);
        ld->pending = 1;
        return;
    }
    ld->check_text = r->element[0]->str ? strdup(r->element[0]->str) : NULL;
    ld->digest = r->element[1]->str ? strdup(r->element[1]->str) : NULL;
    int synced = r->element[2]->str && ld->digest && strcmp(r->element[2]->str, ld->digest) == 0;
    ld->busdt = r->element[3]->str ? strdup(r->element[3]->str) : NULL;
    freeReplyObject(r);
    if (!ld->check_text || !ld->digest) {
        pg_log(PG_LOG_WARN, ld->rid, "loader.no_check", "no check %s:%s held; job dropped", ld->loc,
               ld->gcid);
        finish_load(ld);
        ld->done = 1;
        return;
    }
    if (!ld->force && synced) {
        count(OUT_UNCHANGED); /* this version is in Salesforce already */
        finish_load(ld);
        ld->done = 1;
        return;
    }
    ld->known = json_object();
    ld->sent = json_object();
    if (read_known(ld) != PG_OK) {
        ld->pending = 1; /* Redis trouble: stays pending */
        return;
    }
    ld->active = 1;
    transform_check(ld, b->deadline);
    if (ld->v == V_OK)
        plan_records(ld, &b->names);
}

/* The verdict of a prepared check: record it, retry it, pause, or dead-letter it. */
static void conclude(struct batch *b, struct load *ld, int *pause_set)
{
    const struct pg_config *cfg = b->pool->cfg;
    if (ld->v == V_OK) {
        record_synced(ld, ld->xf, ld->digest, ld->busdt, ld->check_text);
        count(OUT_LOADED);
        long long enq_ms = 0;
        if (ld->enq && pg_strtonum(ld->enq, 0, INT64_MAX, &enq_ms) == 0)
            pg_log(PG_LOG_DEBUG, ld->rid, "loader.loaded", "check %s:%s in %lld ms (batch of %zu)",
                   ld->loc, ld->gcid, (long long)(pg_wall_ms() - enq_ms), b->n);
        finish_load(ld);
    } else if (ld->v == V_PAUSE) {
        if (!*pause_set) {
            *pause_set = 1;
            char secs[16];
            snprintf(secs, sizeof secs, "%d", cfg->load_limit_pause_s);
            redisReply *pr = NULL;
            if (pg_redis_command(&pr, "SET " PG_KEY_CHK_PAUSE " %s EX %s", ld->message, secs) ==
                    PG_OK &&
                pr)
                freeReplyObject(pr);
            else if (pr)
                freeReplyObject(pr);
            pg_log(PG_LOG_ERROR, ld->rid, "loader.paused",
                   "Salesforce refused a call with REQUEST_LIMIT_EXCEEDED: loading paused for %d s "
                   "(%s)",
                   cfg->load_limit_pause_s, ld->message);
        }
        /* Not the check's fault: it waits for the end of the pause without using an attempt. */
        if (schedule(ld->loc, ld->gcid, ld->rid, ld->enq, (int)ld->attempt, (int)ld->force,
                     (int64_t)cfg->load_limit_pause_s * 1000) == PG_OK) {
            count(OUT_PAUSED);
            finish_load(ld);
        }
    } else if (ld->v == V_RETRY && ld->attempt < cfg->load_max_attempts) {
        int64_t delay = pg_backoff_ms((int)ld->attempt, cfg->load_retry_base_ms,
                                      cfg->load_retry_cap_ms, rnd64(), -1);
        char err[700];
        snprintf(err, sizeof err, "%s: %s", ld->code, ld->message);
        if (schedule(ld->loc, ld->gcid, ld->rid, ld->enq, (int)ld->attempt + 1, (int)ld->force,
                     delay) == PG_OK) {
            hset_state(ld->loc, ld->gcid, "queued", err);
            count(OUT_RETRIED);
            finish_load(ld);
        }
        pg_log(PG_LOG_WARN, ld->rid, "loader.retry",
               "check %s:%s attempt %lld failed (%s); next in %lld ms", ld->loc, ld->gcid,
               ld->attempt, err, (long long)delay);
    } else {
        if (dead_letter(ld->m, ld, ld->attempt) == PG_OK) {
            count(OUT_DEAD);
            finish_load(ld);
        }
    }
}

static void load_free(struct load *ld)
{
    free(ld->check_text);
    free(ld->digest);
    free(ld->busdt);
    json_decref(ld->known);
    json_decref(ld->sent);
    json_decref(ld->xf);
    json_decref(ld->all_items);
    json_decref(ld->drafts);
    json_decref(ld->adj_drafts);
    json_decref(ld->items);
    json_decref(ld->final);
}

/*
 * Load the checks of up to BATCH_MAX jobs together. Jobs naming the same check load it once (the
 * newest version held, forced if any of them is) and are acknowledged with it.
 */
static void process_batch(struct worker *w, const struct pg_store_batch *sb)
{
    struct pg_loader *p = w->pool;
    size_t n = sb->n < BATCH_MAX ? sb->n : BATCH_MAX; /* the rest stays pending: reclaimed */
    if (n == 0)
        return;
    struct batch b = {.pool = p, .n = n};
    b.loads = calloc(n, sizeof *b.loads);
    if (!b.loads)
        return; /* the jobs stay pending and are reclaimed */
    pg_xf_config_names(p->xf, &b.names);
    /* The leases bound the batch: every call must end before another worker may take one. */
    b.deadline = pg_now_ms() + p->cfg->load_lock_ms - 1000;
    for (size_t i = 0; i < n; i++) {
        struct load *ld = &b.loads[i];
        ld->pool = p;
        ld->m = &sb->msgs[i];
        ld->v = V_OK;
        if (read_job(ld) != 0)
            continue;
        for (size_t j = 0; j < i; j++) {
            struct load *o = &b.loads[j];
            if (!o->done && o->dup_of < 0 && strcmp(o->loc, ld->loc) == 0 &&
                strcmp(o->gcid, ld->gcid) == 0) {
                ld->dup_of = (int)j;
                if (ld->force)
                    o->force = 1;
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!b.loads[i].done && b.loads[i].dup_of < 0)
            prepare(w, &b, &b.loads[i]);
    if (any_live(&b))
        run_stages(&b);
    int pause_set = 0;
    for (size_t i = 0; i < n; i++) {
        struct load *ld = &b.loads[i];
        if (ld->dup_of >= 0) {
            /* handled with the first job of its check: acknowledged when that one was */
            if (b.loads[ld->dup_of].finished) {
                count(OUT_UNCHANGED);
                finish_load(ld);
            }
        } else if (ld->active) {
            conclude(&b, ld, &pause_set);
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct load *ld = &b.loads[i];
        if (ld->lease_tried)
            pg_lease_release(&p->leases, ld->lock, w->consumer, ld->leased);
        load_free(ld);
    }
    free(b.loads);
}
/* ---------------------------------------------------------------- worker loop */

static void promote_due(void)
{
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
    const char *args[] = {PG_KEY_CHK_RETRY, PG_KEY_CHK_QUEUE, now};
    redisReply *r = NULL;
    if (eval(&r, promote_lua, 2, args, 3) == PG_OK && r)
        freeReplyObject(r);
    else if (r)
        freeReplyObject(r);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pg_loader *p = w->pool;
    pg_thread_name("pg-load");
    int64_t next_reclaim = 0;
    int group_ok = 0;
    int batch = p->cfg->load_batch_checks < 1           ? 1
                : p->cfg->load_batch_checks > BATCH_MAX ? BATCH_MAX
                                                        : p->cfg->load_batch_checks;
    while (!atomic_load(&p->stopping)) {
        if (!group_ok) {
            /* from_start: checks queued before the group existed are still loaded */
            if (pg_store_queue_group_ensure(PG_KEY_CHK_QUEUE, PG_KEY_CHK_GROUP, 1) != PG_OK) {
                pg_sleep_ms(200);
                continue;
            }
            group_ok = 1;
        }
        if (paused()) {
            /* Salesforce's API allocation is spent: take nothing until the pause expires. */
            pg_sleep_ms(250);
            continue;
        }
        promote_due();
        struct pg_store_batch b = {0};
        if (pg_now_ms() >= next_reclaim) {
            next_reclaim = pg_now_ms() + (p->cfg->load_reclaim_idle_ms + 3) / 4;
            if (pg_store_queue_reclaim(PG_KEY_CHK_QUEUE, PG_KEY_CHK_GROUP, w->consumer,
                                       p->cfg->load_reclaim_idle_ms, batch, &b) == PG_OK) {
                for (size_t i = 0; i < b.n; i++)
                    pg_log(PG_LOG_INFO, field(&b.msgs[i], "rid"), "loader.reclaimed",
                           "entry %s idle too long; delivery %lld", b.msgs[i].id,
                           b.msgs[i].deliveries);
                if (!atomic_load(&p->stopping))
                    process_batch(w, &b);
            }
            pg_store_batch_free(&b);
        }
        /* Up to checks.load.batch_checks jobs at once, loaded together: each stage of all their
         * checks shares its Salesforce calls (the API allocation is per call, not per record).
         * XREADGROUP COUNT answers with what is there, so a quiet queue is not held back. */
        int rc =
            pg_store_queue_read(PG_KEY_CHK_QUEUE, PG_KEY_CHK_GROUP, w->consumer, batch, 250, &b);
        if (rc != PG_OK) {
            pg_store_batch_free(&b);
            pg_sleep_ms(100);
            continue;
        }
        process_batch(w, &b);
        pg_store_batch_free(&b);
    }
    pg_httpc_thread_cleanup();
    return NULL;
}

/* ---------------------------------------------------------------- metrics */

static long long redis_int(const char *cmd)
{
    redisReply *r = NULL;
    long long v = -1;
    if (pg_redis_command(&r, cmd) == PG_OK && r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    if (r)
        freeReplyObject(r);
    return v;
}

/* Age of the oldest job still in the queue (handled entries leave the stream). */
static double oldest_age_s(void)
{
    redisReply *r = NULL;
    double age = 0;
    if (pg_redis_command(&r, "XRANGE " PG_KEY_CHK_QUEUE " - + COUNT 1") == PG_OK && r &&
        r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->element[0]->str) {
        long long ms = atoll(r->element[0]->element[0]->str);
        age = (double)(pg_wall_ms() - ms) / 1000.0;
        if (age < 0)
            age = 0;
    }
    if (r)
        freeReplyObject(r);
    return age;
}

static int collect(struct pg_buf *out)
{
    int rc = pg_buf_puts(out, "# HELP posgate_checks_loaded_total Check load jobs handled by this "
                              "process, by outcome.\n"
                              "# TYPE posgate_checks_loaded_total counter\n");
    for (int i = 0; i < OUT_N && !rc; i++)
        rc = pg_buf_printf(out, "posgate_checks_loaded_total{outcome=\"%s\"} %llu\n",
                           outcome_names[i], atomic_load(&outcome_count[i]));
    long long pause = redis_int("EXISTS " PG_KEY_CHK_PAUSE);
    if (!rc)
        rc = pg_buf_printf(
            out,
            "# HELP posgate_checks_records_total Salesforce records written (upserted or "
            "deleted) or refused, by this process.\n"
            "# TYPE posgate_checks_records_total counter\n"
            "posgate_checks_records_total{result=\"ok\"} %llu\n"
            "posgate_checks_records_total{result=\"failed\"} %llu\n"
            "# HELP posgate_checks_record_retries_total Records resent after a lock error.\n"
            "# TYPE posgate_checks_record_retries_total counter\n"
            "posgate_checks_record_retries_total %llu\n"
            "# HELP posgate_checks_queue_depth Check load jobs waiting (new or in progress).\n"
            "# TYPE posgate_checks_queue_depth gauge\n"
            "posgate_checks_queue_depth %lld\n"
            "# HELP posgate_checks_retry_scheduled Check load jobs waiting for their backoff.\n"
            "# TYPE posgate_checks_retry_scheduled gauge\n"
            "posgate_checks_retry_scheduled %lld\n"
            "# HELP posgate_checks_dead_letters Checks in the dead-letter stream.\n"
            "# TYPE posgate_checks_dead_letters gauge\n"
            "posgate_checks_dead_letters %lld\n"
            "# HELP posgate_checks_oldest_pending_age_seconds Age of the oldest queued check.\n"
            "# TYPE posgate_checks_oldest_pending_age_seconds gauge\n"
            "posgate_checks_oldest_pending_age_seconds %.3f\n"
            "# HELP posgate_checks_paused 1 while loading is paused because Salesforce answered "
            "REQUEST_LIMIT_EXCEEDED.\n"
            "# TYPE posgate_checks_paused gauge\n"
            "posgate_checks_paused %d\n",
            atomic_load(&records_ok), atomic_load(&records_failed), atomic_load(&record_retries),
            redis_int("XLEN " PG_KEY_CHK_QUEUE), redis_int("ZCARD " PG_KEY_CHK_RETRY),
            redis_int("XLEN " PG_KEY_CHK_DEAD), oldest_age_s(), pause > 0 ? 1 : 0);
    return rc;
}

static void register_collector(void)
{
    if (pg_metrics_register(collect) != PG_OK)
        pg_log(PG_LOG_WARN, NULL, "loader.metrics", "metrics collector table full");
}

void pg_loader_metrics_init(void)
{
    pthread_once(&collector_once, register_collector);
}

/* ---------------------------------------------------------------- lifecycle */

static int make_oauth(const struct pg_config *cfg, struct pg_sf_oauth **out)
{
    char why[256];
    int rc = pg_sf_oauth_from_config(cfg, "checks.load", 2000, cfg->load_timeout_ms, out, why,
                                     sizeof why);
    if (rc)
        pg_log(PG_LOG_ERROR, NULL, "loader.config", "%s", why);
    return rc;
}

int pg_loader_start(const struct pg_config *cfg,
                    const struct pg_loader_hooks *hooks,
                    struct pg_loader **out)
{
    *out = NULL;
    pg_loader_metrics_init();
    if (!cfg->checks_transform) {
        pg_log(PG_LOG_ERROR, NULL, "loader.config", "checks.load needs checks.transform");
        return PG_ECONFIG;
    }
    struct pg_loader *p = calloc(1, sizeof *p);
    if (!p)
        return PG_ENOMEM;
    p->cfg = cfg;
    if (hooks)
        p->hooks = *hooks;
    char why[300] = "";
    int rc = pg_xf_config_new(cfg->checks_transform, &p->xf, why, sizeof why);
    if (rc != PG_OK) {
        pg_log(PG_LOG_ERROR, NULL, "loader.config", "checks.transform: %s", why);
        free(p);
        return PG_ECONFIG;
    }
    rc = make_oauth(cfg, &p->oauth);
    if (rc != PG_OK) {
        pg_xf_config_free(p->xf);
        free(p);
        return rc;
    }
    p->rest.api_version = cfg->sf_api_version;
    p->rest.connect_timeout_ms = 2000;
    p->rest.timeout_ms = cfg->load_timeout_ms;
    p->rest.max_response_bytes = 4 << 20;
    char host[64] = "host", prefix[96];
    gethostname(host, sizeof host - 1);
    snprintf(prefix, sizeof prefix, "%s-%ld-load-", host, (long)getpid());
    p->workers = calloc((size_t)cfg->load_workers, sizeof *p->workers);
    if (!p->workers || pg_lease_set_init(&p->leases, prefix) != PG_OK) {
        pg_loader_stop(p);
        return PG_ENOMEM;
    }
    for (int i = 0; i < cfg->load_workers; i++) {
        struct worker *w = &p->workers[i];
        w->pool = p;
        snprintf(w->consumer, sizeof w->consumer, "%s-%ld-load-%d", host, (long)getpid(), i);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pg_loader_stop(p);
            return PG_ENOMEM;
        }
        p->nworkers++;
    }
    pg_log(PG_LOG_INFO, NULL, "loader.started", "%d workers loading checks into Salesforce%s",
           p->nworkers, p->hooks.match ? " (customer matching on)" : "");
    *out = p;
    return PG_OK;
}

void pg_loader_stop(struct pg_loader *l)
{
    if (!l)
        return;
    atomic_store(&l->stopping, 1);
    for (int i = 0; i < l->nworkers; i++)
        pthread_join(l->workers[i].thread, NULL);
    free(l->workers);
    pg_lease_set_free(&l->leases);
    pg_sf_oauth_free(l->oauth);
    pg_xf_config_free(l->xf);
    free(l);
}

int pg_loader_enqueue(const char *loc, const char *gcid, const char *why, const char *rid)
{
    if (!loc || !gcid || strlen(loc) > PG_CHECKQ_LOC_MAX || strlen(gcid) > 20)
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "EXISTS " PG_KEY_CHK "%s:%s", loc, gcid);
    long long exists = rc == PG_OK && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    if (r)
        freeReplyObject(r);
    if (rc != PG_OK)
        return rc;
    if (!exists)
        return PG_ENOTFOUND;
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
    r = NULL;
    rc = pg_redis_command(&r, "HSET " PG_KEY_CHK "%s:%s state queued", loc, gcid);
    if (r)
        freeReplyObject(r);
    r = NULL;
    /* force: load it even if this digest was synced (the configuration may have changed) */
    if (rc == PG_OK)
        rc = pg_redis_command(&r,
                              "XADD " PG_KEY_CHK_QUEUE " * loc %s gcid %s rid %s enq_ms %s "
                              "attempt 1 force 1 why %s",
                              loc, gcid, rid ? rid : "", now, why ? why : "replay");
    if (r)
        freeReplyObject(r);
    return rc;
}
