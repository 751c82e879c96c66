#include "sync/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "salesforce/collections.h"
#include "salesforce/oauth.h"
#include "salesforce/rest.h"
#include "server/httpc.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/util.h"
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
    struct pg_loader_hooks hooks;
    struct pg_xf_config *xf;
    struct pg_sf_oauth *oauth;
    struct pg_sf_rest_config rest;
    atomic_int stopping;
    int nworkers;
    struct worker *workers;
};

/* ---------------------------------------------------------------- one load */

/* How a load ended. */
enum verdict { V_OK, V_RETRY, V_DEAD, V_PAUSE };

struct load {
    struct pg_loader *pool;
    const char *rid;
    char loc[PG_CHECKQ_LOC_MAX + 1];
    char gcid[24];
    char lines_key[160];
    int64_t deadline;
    json_t *known; /* "<sObject>:<ext id>" → Id: what Salesforce holds (pg:chk:lines) */
    json_t *sent;  /* the same keys for every record of this version of the check */
    /* the first failure */
    enum verdict v;
    char code[64];
    char object[64];
    char record[200];
    char message[400];
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

static void known_key(char *out, size_t n, const char *type, const char *ext)
{
    snprintf(out, n, "%s:%s", type, ext);
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
               ext);
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

/* Whole-call failure → verdict. */
static void call_failed(
    struct load *ld, int rc, const struct pg_sf_error *err, const char *object, const char *what)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s%s%s", what, pg_strerror(rc), err->message[0] ? ": " : "",
             err->message);
    if (rc == PG_EUNAVAIL && strcmp(err->code, "REQUEST_LIMIT_EXCEEDED") == 0)
        fail(ld, V_PAUSE, err->code, object, "", msg);
    else if (rc == PG_EUNAVAIL || rc == PG_ETIMEDOUT || rc == PG_EAUTH || rc == PG_ENOMEM)
        fail(ld, V_RETRY, err->code[0] ? err->code : pg_errname(rc), object, "", msg);
    else
        fail(ld, V_DEAD, err->code[0] ? err->code : pg_errname(rc), object, "", msg);
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

/*
 * Upsert records (all of one sObject, by ext_field) in calls of at most 200, handling every
 * per-record result. accept_exists: an INVALID_FIELD_FOR_INSERT_UPDATE answer means "it exists"
 * and counts as success (price book entries: posgate never updates them). Returns 0 when every
 * record is in Salesforce, -1 with ld's verdict set.
 */
static int upsert_all(
    struct load *ld, const char *type, const char *ext_field, json_t *records, int accept_exists)
{
    struct pg_loader *p = ld->pool;
    json_t *todo = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r)
    {
        char k[300];
        known_key(k, sizeof k, type, ext_of(r, ext_field) ? ext_of(r, ext_field) : "");
        json_t *copy = json_deep_copy(r);
        if (json_object_get(ld->known, k))
            strip_create_only(copy, type);
        json_array_append_new(todo, copy);
    }
    /* Each round sends what is left; records that failed with a lock error or as "exists on the
     * update path" go to the next round, everything else is done or fatal. */
    for (int round = 0; json_array_size(todo) > 0; round++) {
        if (round > LOCK_ROUNDS) {
            json_t *e = json_array_get(todo, 0);
            if (ld->v == V_OK)
                fail(ld, V_RETRY, "UNABLE_TO_LOCK_ROW", type, ext_of(e, ext_field),
                     "still locked after resending");
            break;
        }
        if (round > 0) {
            int64_t d = pg_backoff_ms(round, LOCK_BASE_MS, LOCK_CAP_MS, rnd64(), -1);
            if (pg_now_ms() + d >= ld->deadline) {
                fail(ld, V_RETRY, "TIMEOUT", type, "", "no time left in this job");
                break;
            }
            pg_sleep_ms(d);
        }
        json_t *next = json_array();
        size_t n = json_array_size(todo);
        for (size_t off = 0; off < n && ld->v != V_PAUSE; off += PG_SF_COLLECTION_MAX) {
            size_t m = n - off < PG_SF_COLLECTION_MAX ? n - off : PG_SF_COLLECTION_MAX;
            json_t *chunk = json_array();
            for (size_t j = 0; j < m; j++)
                json_array_append(chunk, json_array_get(todo, off + j));
            json_t *res = NULL;
            struct pg_sf_error err;
            int rc = pg_sf_upsert(p->oauth, &p->rest, type, ext_field, chunk, 0, ld->deadline, &res,
                                  &err);
            pg_log(PG_LOG_DEBUG, ld->rid, "loader.upsert", "check %s:%s: %s x%zu: %s %s", ld->loc,
                   ld->gcid, type, m, pg_errname(rc), err.code);
            if (rc != PG_OK) {
                call_failed(ld, rc, &err, type, "upsert");
                json_decref(chunk);
                break;
            }
            for (size_t j = 0; j < m; j++) {
                json_t *rec = json_array_get(chunk, j), *x = json_array_get(res, j);
                const char *ext = ext_of(rec, ext_field);
                const char *code = json_string_value(json_object_get(x, "code"));
                const char *msg = json_string_value(json_object_get(x, "message"));
                if (json_is_true(json_object_get(x, "ok"))) {
                    atomic_fetch_add(&records_ok, 1);
                    remember(ld, type, ext, json_string_value(json_object_get(x, "id")));
                    continue;
                }
                atomic_fetch_add(&records_failed, 1);
                if (strcmp(code, "INVALID_FIELD_FOR_INSERT_UPDATE") == 0) {
                    char k[300];
                    known_key(k, sizeof k, type, ext ? ext : "");
                    if (accept_exists) {
                        remember(ld, type, ext, "");
                        continue;
                    }
                    if (!json_object_get(ld->known, k)) {
                        /* It exists although posgate did not know it (a reply lost to a
                         * timeout): send it again as an update. */
                        json_t *again = json_deep_copy(rec);
                        strip_create_only(again, type);
                        json_array_append_new(next, again);
                        json_object_set_new(ld->known, k, json_string(""));
                        continue;
                    }
                }
                if (json_is_true(json_object_get(x, "retryable"))) {
                    atomic_fetch_add(&record_retries, 1);
                    json_array_append(next, rec);
                    continue;
                }
                fail(ld, V_DEAD, code, type, ext, msg);
            }
            json_decref(res);
            json_decref(chunk);
        }
        json_decref(todo);
        todo = next;
        if (ld->v != V_OK && ld->v != V_RETRY)
            break;
        if (ld->v == V_RETRY && strcmp(ld->code, "UNABLE_TO_LOCK_ROW") != 0)
            break; /* a whole-call failure: the job is retried */
    }
    json_decref(todo);
    return ld->v == V_OK ? 0 : -1;
}

/* Delete records by Id (already-gone ones count as deleted). 0 or -1 with the verdict set. */
static int delete_ids(struct load *ld, json_t *keys, json_t *ids)
{
    struct pg_loader *p = ld->pool;
    size_t n = json_array_size(ids);
    for (int round = 0; n > 0; round++) {
        if (round > LOCK_ROUNDS) {
            fail(ld, V_RETRY, "UNABLE_TO_LOCK_ROW", "", "", "delete still locked");
            return -1;
        }
        if (round > 0)
            pg_sleep_ms(pg_backoff_ms(round, LOCK_BASE_MS, LOCK_CAP_MS, rnd64(), -1));
        json_t *nk = json_array(), *ni = json_array();
        for (size_t off = 0; off < n; off += PG_SF_COLLECTION_MAX) {
            size_t m = n - off < PG_SF_COLLECTION_MAX ? n - off : PG_SF_COLLECTION_MAX;
            json_t *chunk = json_array();
            for (size_t j = 0; j < m; j++)
                json_array_append(chunk, json_array_get(ids, off + j));
            json_t *res = NULL;
            struct pg_sf_error err;
            int rc = pg_sf_delete(p->oauth, &p->rest, chunk, 0, ld->deadline, &res, &err);
            json_decref(chunk);
            if (rc != PG_OK) {
                call_failed(ld, rc, &err, "", "delete");
                json_decref(nk);
                json_decref(ni);
                return -1;
            }
            for (size_t j = 0; j < m; j++) {
                json_t *x = json_array_get(res, j);
                const char *key = json_string_value(json_array_get(keys, off + j));
                const char *code = json_string_value(json_object_get(x, "code"));
                if (json_is_true(json_object_get(x, "ok")) ||
                    strcmp(code, "ENTITY_IS_DELETED") == 0 ||
                    strcmp(code, "INVALID_CROSS_REFERENCE_KEY") == 0) {
                    atomic_fetch_add(&records_ok, 1);
                    forget(ld, key);
                } else if (json_is_true(json_object_get(x, "retryable"))) {
                    atomic_fetch_add(&record_retries, 1);
                    json_array_append(nk, json_array_get(keys, off + j));
                    json_array_append(ni, json_array_get(ids, off + j));
                } else {
                    atomic_fetch_add(&records_failed, 1);
                    fail(ld, V_DEAD, code, "", key,
                         json_string_value(json_object_get(x, "message")));
                }
            }
            json_decref(res);
        }
        json_array_clear(keys);
        json_array_extend(keys, nk);
        json_array_clear(ids);
        json_array_extend(ids, ni);
        json_decref(nk);
        json_decref(ni);
        n = json_array_size(ids);
        if (ld->v == V_DEAD)
            return -1;
    }
    return 0;
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

static void mark_globally(json_t *recs, const char *type, const char *ext_field)
{
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        char k[300];
        known_key(k, sizeof k, type, ext_of(r, ext_field) ? ext_of(r, ext_field) : "");
        redisReply *rr = NULL;
        if (pg_redis_command(&rr, "HSET " PG_KEY_CHK_KNOWN " %s 1", k) == PG_OK && rr)
            freeReplyObject(rr);
        else if (rr)
            freeReplyObject(rr);
    }
}

struct plan {
    struct pg_xf_names names;
    const char *pb;  /* the order's Pricebook2Id */
    const char *cur; /* its CurrencyIsoCode or NULL */
};

/*
 * Step 2 (checks.load.create_missing_products): the check's products, then their entries in the
 * standard book (when the order's book is another one) and in the order's book. Both are
 * remembered posgate-wide in pg:chk:known, so a product is upserted once, not once per check;
 * an entry is never updated (its price is the item's, per line).
 */
static int ensure_products(struct load *ld, const struct plan *pl, json_t *xf, json_t *items)
{
    const struct pg_config *cfg = ld->pool->cfg;
    const char *pf = pl->names.product_ext;
    const char *std = cfg->load_std_pricebook;
    int std_needed = std && *std && strncmp(std, pl->pb, 15) != 0;
    json_t *products = json_object_get(xf, "products");
    json_t *keys = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(products, i, r)
    {
        const char *mi = ext_of(r, pf);
        char k[300], e[200];
        if (!mi)
            continue;
        known_key(k, sizeof k, "Product2", mi);
        json_array_append_new(keys, json_string(k));
        pbe_ext(e, sizeof e, pl->pb, pl->cur, mi);
        known_key(k, sizeof k, "PricebookEntry", e);
        json_array_append_new(keys, json_string(k));
        if (std_needed) {
            pbe_ext(e, sizeof e, std, pl->cur, mi);
            known_key(k, sizeof k, "PricebookEntry", e);
            json_array_append_new(keys, json_string(k));
        }
    }
    json_t *have = known_globally(keys);
    json_decref(keys);
    json_t *prods = json_array(), *std_entries = json_array(), *entries = json_array();
    json_array_foreach(products, i, r)
    {
        const char *mi = ext_of(r, pf);
        char k[300], e[200];
        if (!mi)
            continue;
        known_key(k, sizeof k, "Product2", mi);
        if (!json_object_get(have, k)) {
            json_t *prod = json_deep_copy(r);
            /* Product2.IsActive defaults to false, and an inactive product cannot be sold */
            json_object_set_new(prod, "IsActive", json_true());
            json_array_append_new(prods, prod);
        }
        /* the list price: the first item of this product (an item sets its own UnitPrice) */
        json_t *price = NULL;
        size_t j;
        json_t *it;
        json_array_foreach(items, j, it)
        {
            const char *v = ext_of(json_object_get(it, "Product2"), pf);
            if (v && strcmp(v, mi) == 0) {
                price = abs_price(json_object_get(it, "UnitPrice"));
                break;
            }
        }
        if (!price)
            price = json_string("0");
        for (int b = 0; b < 2; b++) {
            const char *book = b == 0 ? (std_needed ? std : NULL) : pl->pb;
            if (!book)
                continue;
            pbe_ext(e, sizeof e, book, pl->cur, mi);
            known_key(k, sizeof k, "PricebookEntry", e);
            if (json_object_get(have, k))
                continue;
            json_t *rec = json_pack("{s:{s:s}, s:s, s:s, s:{s:s}, s:O, s:b}", "attributes", "type",
                                    "PricebookEntry", cfg->load_pbe_ext_field, e, "Pricebook2Id",
                                    book, "Product2", pf, mi, "UnitPrice", price, "IsActive", 1);
            if (pl->cur)
                json_object_set_new(rec, "CurrencyIsoCode", json_string(pl->cur));
            json_array_append_new(b == 0 ? std_entries : entries, rec);
        }
        json_decref(price);
    }
    json_decref(have);
    pg_log(PG_LOG_DEBUG, ld->rid, "loader.products",
           "check %s:%s: %zu products, %zu + %zu price book entries to ensure", ld->loc, ld->gcid,
           json_array_size(prods), json_array_size(std_entries), json_array_size(entries));
    int rc = 0;
    if (json_array_size(prods) && upsert_all(ld, "Product2", pf, prods, 0))
        rc = -1;
    /* Salesforce wants a product's standard price before any other book's entry */
    if (!rc && json_array_size(std_entries) &&
        upsert_all(ld, "PricebookEntry", cfg->load_pbe_ext_field, std_entries, 1))
        rc = -1;
    if (!rc && json_array_size(entries) &&
        upsert_all(ld, "PricebookEntry", cfg->load_pbe_ext_field, entries, 1))
        rc = -1;
    if (!rc) {
        mark_globally(prods, "Product2", pf);
        mark_globally(std_entries, "PricebookEntry", cfg->load_pbe_ext_field);
        mark_globally(entries, "PricebookEntry", cfg->load_pbe_ext_field);
    }
    json_decref(prods);
    json_decref(std_entries);
    json_decref(entries);
    return rc;
}

/* An OrderItem as the transform made it → as it is upserted: its PricebookEntry by reference. */
static json_t *item_for_load(const struct load *ld, const struct plan *pl, const json_t *it)
{
    json_t *r = json_deep_copy(it);
    const char *mi = ext_of(json_object_get(it, "Product2"), pl->names.product_ext);
    json_object_del(r, "Product2"); /* derived from the entry on an OrderItem (read-only) */
    if (mi) {
        char e[200];
        pbe_ext(e, sizeof e, pl->pb, pl->cur, mi);
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

/* Steps 2-7 for one transformed check. 0 when it is all in Salesforce. */
static int load_records(struct load *ld, json_t *xf)
{
    struct pg_loader *p = ld->pool;
    struct plan pl;
    pg_xf_config_names(p->xf, &pl.names);
    json_t *order = json_object_get(xf, "order");
    pl.pb = json_string_value(json_object_get(order, "Pricebook2Id"));
    pl.cur = json_string_value(json_object_get(order, "CurrencyIsoCode"));
    if (!pl.pb)
        pl.pb = "";
    const char *oef = pl.names.order_ext;
    json_t *orders = json_array(), *final = json_array(), *items = json_array();
    json_t *payments = json_object_get(xf, "payments");
    int rc = -1;

    /* Every record of this version, so what Salesforce holds beyond it can be deleted. */
    json_array_append(orders, order);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(xf, "adjustments"), i, a)
    {
        json_array_append(orders, json_object_get(a, "order"));
    }
    json_t *all_items = json_array();
    json_array_extend(all_items, json_object_get(xf, "items"));
    json_array_foreach(json_object_get(xf, "adjustments"), i, a)
    {
        json_array_extend(all_items, json_object_get(a, "items"));
    }
    json_t *r;
    char k[300];
    json_array_foreach(orders, i, r)
    {
        known_key(k, sizeof k, "Order", ext_of(r, oef));
        json_object_set_new(ld->sent, k, json_true());
    }
    json_array_foreach(all_items, i, r)
    {
        known_key(k, sizeof k, "OrderItem", ext_of(r, pl.names.item_ext));
        json_object_set_new(ld->sent, k, json_true());
        json_array_append_new(items, item_for_load(ld, &pl, r));
    }
    json_array_foreach(payments, i, r)
    {
        known_key(k, sizeof k, pl.names.payment_object, ext_of(r, pl.names.payment_ext));
        json_object_set_new(ld->sent, k, json_true());
    }

    if (p->cfg->load_create_products && ensure_products(ld, &pl, xf, all_items))
        goto out;

    /* Step 3: the orders as Draft (created so, or reverted so that items may change), and
     * orders of an earlier version no longer on the check (an adjustment order that went away)
     * reverted too, so that they can be deleted. */
    json_t *drafts = json_array(), *adj_drafts = json_array();
    json_array_foreach(orders, i, r)
    {
        json_t *d = json_deep_copy(r);
        const char *st = json_string_value(json_object_get(r, "Status"));
        if (st && strcmp(st, "Draft") != 0)
            json_array_append_new(final, status_only(oef, ext_of(r, oef), st));
        json_object_set_new(d, "Status", json_string("Draft"));
        /* an adjustment order refers to the sale by external id: the sale goes in an earlier
         * call, so that a sale refused (a lock error) cannot make its adjustment look invalid */
        json_array_append_new(i == 0 ? drafts : adj_drafts, d);
    }
    json_t *stale_keys = json_array(), *stale_ids = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(ld->known, key, v)
    {
        if (json_object_get(ld->sent, key))
            continue;
        if (strncmp(key, "Order:", 6) == 0)
            json_array_append_new(drafts, status_only(oef, key + 6, "Draft"));
    }
    int failed = upsert_all(ld, "Order", oef, drafts, 0) ||
                 (json_array_size(adj_drafts) && upsert_all(ld, "Order", oef, adj_drafts, 0));
    json_decref(drafts);
    json_decref(adj_drafts);
    if (failed)
        goto out_stale;

    /* Step 4: items and payments (then orders) synced before and no longer on the check. Items
     * go first: deleting an order takes its items with it. A standard Payment cannot be deleted
     * once Processed (salesforce-wire §5.6): it is moved to Canceled instead. */
    json_t *cancel = json_array();
    json_object_foreach(ld->known, key, v)
    {
        if (strncmp(key, "Payment:", 8) == 0 && !json_object_get(ld->sent, key))
            json_array_append_new(cancel,
                                  json_pack("{s:{s:s}, s:s, s:s}", "attributes", "type", "Payment",
                                            pl.names.payment_ext, key + 8, "Status", "Canceled"));
    }
    failed = json_array_size(cancel) && upsert_all(ld, "Payment", pl.names.payment_ext, cancel, 0);
    json_array_foreach(cancel, i, r)
    {
        char ck[300];
        known_key(ck, sizeof ck, "Payment", ext_of(r, pl.names.payment_ext));
        if (!failed)
            forget(ld, ck); /* canceled: no longer one of the check's payments */
    }
    json_decref(cancel);
    if (failed)
        goto out_stale;
    for (int pass = 0; pass < 2; pass++) {
        json_object_foreach(ld->known, key, v)
        {
            int is_order = strncmp(key, "Order:", 6) == 0;
            if (json_object_get(ld->sent, key) || is_order != pass ||
                strncmp(key, "Payment:", 8) == 0)
                continue;
            const char *id = json_string_value(v);
            if (id && *id) {
                json_array_append_new(stale_keys, json_string(key));
                json_array_append_new(stale_ids, json_string(id));
            }
        }
        if (json_array_size(stale_ids) && delete_ids(ld, stale_keys, stale_ids))
            goto out_stale;
        json_array_clear(stale_keys);
        json_array_clear(stale_ids);
    }

    /* Step 5, 6: items, payments. */
    if (json_array_size(items) && upsert_all(ld, "OrderItem", pl.names.item_ext, items, 0))
        goto out_stale;
    if (json_array_size(payments) &&
        upsert_all(ld, pl.names.payment_object, pl.names.payment_ext, payments, 0))
        goto out_stale;
    /* Step 7: the final status, once the order has its items. */
    if (json_array_size(final) && upsert_all(ld, "Order", oef, final, 0))
        goto out_stale;
    rc = 0;
out_stale:
    json_decref(stale_keys);
    json_decref(stale_ids);
out:
    json_decref(all_items);
    json_decref(orders);
    json_decref(final);
    json_decref(items);
    return rc;
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

/* Release a lease only if we still hold it. */
static const char unlock_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

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
static void load_check(struct load *ld, const char *check_text, json_t **xf_out)
{
    struct pg_loader *p = ld->pool;
    json_t *check = json_loads(check_text, 0, NULL);
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
        int64_t budget = ld->deadline - pg_now_ms();
        rc = p->hooks.match(p->hooks.ud, check, ld->loc, pg_now_ms() + budget / 4, account,
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
    if (load_records(ld, xf) == 0) {
        *xf_out = xf;
        return;
    }
    json_decref(xf);
}

/* Read pg:chk:lines into ld->known. */
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

static void process(struct worker *w, const struct pg_store_msg *m)
{
    struct pg_loader *p = w->pool;
    const struct pg_config *cfg = p->cfg;
    const char *loc = field(m, "loc"), *gcid = field(m, "gcid"), *rid = field(m, "rid");
    const char *enq = field(m, "enq_ms");
    long long attempt = 1, force = 0;
    if (!field(m, "attempt") || pg_strtonum(field(m, "attempt"), 1, 1000000, &attempt) != 0)
        attempt = 1;
    if (!field(m, "force") || pg_strtonum(field(m, "force"), 0, 1, &force) != 0)
        force = 0;
    if (!loc || !*loc || !gcid || !*gcid || strlen(loc) > PG_CHECKQ_LOC_MAX || strlen(gcid) > 20) {
        pg_log(PG_LOG_ERROR, rid, "loader.bad_job", "queue entry %s names no check; dropped",
               m->id);
        finish(m);
        return;
    }
    char lock[200];
    snprintf(lock, sizeof lock, PG_KEY_CHK_LOCK "%s:%s", loc, gcid);
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "SET %s %s NX PX %d", lock, w->consumer, cfg->load_lock_ms);
    int got = rc == PG_OK && r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (rc != PG_OK)
        return; /* Redis trouble: it stays pending and is read again or reclaimed */
    if (!got) {
        if (schedule(loc, gcid, rid, enq, (int)attempt, (int)force, LOCKED_RETRY_MS) == PG_OK) {
            count(OUT_DEFERRED);
            finish(m);
        }
        return;
    }

    struct load ld = {.pool = p, .rid = rid, .v = V_OK};
    snprintf(ld.loc, sizeof ld.loc, "%s", loc);
    snprintf(ld.gcid, sizeof ld.gcid, "%s", gcid);
    snprintf(ld.lines_key, sizeof ld.lines_key, PG_KEY_CHK_LINES "%s:%s", loc, gcid);
    /* The lease bounds the job: every call must end before another worker may take it. */
    ld.deadline = pg_now_ms() + cfg->load_lock_ms - 1000;
    ld.known = json_object();
    ld.sent = json_object();
    char *check = NULL, *digest = NULL, *synced = NULL, *busdt = NULL;
    r = NULL;
    rc = pg_redis_command(&r, "HMGET " PG_KEY_CHK "%s:%s check digest synced_digest busdt", loc,
                          gcid);
    if (rc != PG_OK || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        if (r)
            freeReplyObject(r);
        goto unlock; /* stays pending: retried by reclaim */
    }
    check = r->element[0]->str ? strdup(r->element[0]->str) : NULL;
    digest = r->element[1]->str ? strdup(r->element[1]->str) : NULL;
    synced = r->element[2]->str ? strdup(r->element[2]->str) : NULL;
    busdt = r->element[3]->str ? strdup(r->element[3]->str) : NULL;
    freeReplyObject(r);
    if (!check || !digest) {
        pg_log(PG_LOG_WARN, rid, "loader.no_check", "no check %s:%s held; job dropped", loc, gcid);
        finish(m);
        goto done;
    }
    if (!force && synced && strcmp(synced, digest) == 0) {
        count(OUT_UNCHANGED); /* this version is in Salesforce already */
        finish(m);
        goto done;
    }
    if (read_known(&ld) != PG_OK)
        goto done; /* Redis trouble: stays pending */

    json_t *xf = NULL;
    load_check(&ld, check, &xf);
    if (ld.v == V_OK) {
        record_synced(&ld, xf, digest, busdt, check);
        json_decref(xf);
        count(OUT_LOADED);
        long long enq_ms = 0;
        if (enq && pg_strtonum(enq, 0, INT64_MAX, &enq_ms) == 0)
            pg_log(PG_LOG_DEBUG, rid, "loader.loaded", "check %s:%s in %lld ms", loc, gcid,
                   (long long)(pg_wall_ms() - enq_ms));
        finish(m);
    } else if (ld.v == V_PAUSE) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", cfg->load_limit_pause_s);
        redisReply *pr = NULL;
        if (pg_redis_command(&pr, "SET " PG_KEY_CHK_PAUSE " %s EX %s", ld.message, secs) == PG_OK &&
            pr)
            freeReplyObject(pr);
        else if (pr)
            freeReplyObject(pr);
        pg_log(PG_LOG_ERROR, rid, "loader.paused",
               "Salesforce refused a call with REQUEST_LIMIT_EXCEEDED: loading paused for %d s "
               "(%s)",
               cfg->load_limit_pause_s, ld.message);
        /* Not the check's fault: it waits for the end of the pause without using an attempt. */
        if (schedule(loc, gcid, rid, enq, (int)attempt, (int)force,
                     (int64_t)cfg->load_limit_pause_s * 1000) == PG_OK) {
            count(OUT_PAUSED);
            finish(m);
        }
    } else if (ld.v == V_RETRY && attempt < cfg->load_max_attempts) {
        int64_t delay = pg_backoff_ms((int)attempt, cfg->load_retry_base_ms, cfg->load_retry_cap_ms,
                                      rnd64(), -1);
        char err[700];
        snprintf(err, sizeof err, "%s: %s", ld.code, ld.message);
        if (schedule(loc, gcid, rid, enq, (int)attempt + 1, (int)force, delay) == PG_OK) {
            hset_state(loc, gcid, "queued", err);
            count(OUT_RETRIED);
            finish(m);
        }
        pg_log(PG_LOG_WARN, rid, "loader.retry",
               "check %s:%s attempt %lld failed (%s); next in "
               "%lld ms",
               loc, gcid, attempt, err, (long long)delay);
    } else {
        if (dead_letter(m, &ld, attempt) == PG_OK) {
            count(OUT_DEAD);
            finish(m);
        }
    }
done:
    free(check);
    free(digest);
    free(synced);
    free(busdt);
unlock:
    json_decref(ld.known);
    json_decref(ld.sent);
    const char *uargs[] = {lock, w->consumer};
    redisReply *ur = NULL;
    if (eval(&ur, unlock_lua, 1, uargs, 2) == PG_OK && ur)
        freeReplyObject(ur);
    else if (ur)
        freeReplyObject(ur);
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
    int64_t next_reclaim = 0;
    int group_ok = 0;
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
                                       p->cfg->load_reclaim_idle_ms, 8, &b) == PG_OK) {
                for (size_t i = 0; i < b.n && !atomic_load(&p->stopping); i++) {
                    pg_log(PG_LOG_INFO, field(&b.msgs[i], "rid"), "loader.reclaimed",
                           "entry %s idle too long; delivery %lld", b.msgs[i].id,
                           b.msgs[i].deliveries);
                    process(w, &b.msgs[i]);
                }
            }
            pg_store_batch_free(&b);
        }
        /* One at a time: a job can take seconds, and the others stay free for other workers. */
        int rc = pg_store_queue_read(PG_KEY_CHK_QUEUE, PG_KEY_CHK_GROUP, w->consumer, 1, 250, &b);
        if (rc != PG_OK) {
            pg_store_batch_free(&b);
            pg_sleep_ms(100);
            continue;
        }
        for (size_t i = 0; i < b.n; i++)
            process(w, &b.msgs[i]);
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
    if (!cfg->sf_login_url || !cfg->sf_client_id || !cfg->sf_username || !cfg->sf_private_key) {
        pg_log(PG_LOG_ERROR, NULL, "loader.config",
               "checks.load needs salesforce.rest.login_url, client_id, username and "
               "private_key");
        return PG_ECONFIG;
    }
    struct pg_sf_oauth_config oc = {
        .login_url = cfg->sf_login_url,
        .audience = cfg->sf_audience,
        .client_id = cfg->sf_client_id,
        .username = cfg->sf_username,
        .private_key_pem = cfg->sf_private_key,
        .private_key_len = strlen(cfg->sf_private_key),
        .assertion_ttl_s = 180,
        .token_ttl_s = cfg->sf_token_ttl_s,
        .renew_before_s = 60,
        .connect_timeout_ms = 2000,
        .timeout_ms = cfg->load_timeout_ms,
    };
    if (pg_sf_oauth_new(&oc, out) != PG_OK) {
        pg_log(PG_LOG_ERROR, NULL, "loader.config",
               "salesforce.rest.private_key is not a usable RSA private key");
        return PG_ECONFIG;
    }
    return PG_OK;
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
    p->workers = calloc((size_t)cfg->load_workers, sizeof *p->workers);
    if (!p->workers) {
        pg_loader_stop(p);
        return PG_ENOMEM;
    }
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
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
