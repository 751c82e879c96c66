/*
 * The check loader end to end: a private Redis, the real gateway with checks.load enabled, and
 * the Salesforce simulator's sObject Collections. Checks are put on the queue with
 * pg_checkq_put (as the poller and the intake endpoint do); the assertions read what the
 * simulator holds (/_sim/state). Each test uses its own guest check ids, so the simulator is
 * never reset (a reset would forget products posgate remembers having created).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "server/util.h"
#include "store/redis.h"
#include "sync/checkq.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

#define ORG "00D5g000004XyZ1EAK"
#define CLIENT_ID "3MVG9posgateLoaderTest"
#define SF_USER "integration@acme.example"
#define ACCOUNT "0015g00000ZkM3hAAF"
#define ADMIN_KEY "test-admin-key-0123456789"
/* sha256("test-admin-key-0123456789") */
#define ADMIN_HASH "sha256:82007d29a6e0686708f2ef128b4d5d2225286cb76e82f74b09324d61ec36f968"
#define LOC "1234"
#define WAIT_MS 30000

static struct pg_t_redis redis;
static struct pg_t_proc sim, gw;
static char std_pb[32], pos_pb[32];

/* ---------------------------------------------------------------- helpers */

static json_t *sim_call(const char *method, const char *path, const char *body)
{
    char url[512];
    struct pg_t_resp r;
    snprintf(url, sizeof url, "%s%s", sim.url, path);
    const char *h[] = {"Content-Type: application/json", NULL};
    assert_int_equal(pg_t_http(method, url, h, body, body ? strlen(body) : 0, 0, &r), 0);
    if (r.status >= 300)
        fail_msg("%s %s -> %ld %s", method, path, r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return j;
}

static long admin(const char *method, const char *path, json_t **out)
{
    char u[512];
    snprintf(u, sizeof u, "%s%s", gw.url, path);
    const char *h[] = {"X-Api-Key: " ADMIN_KEY, NULL};
    struct pg_t_resp r;
    assert_int_equal(pg_t_http(method, u, h, strcmp(method, "POST") == 0 ? "" : NULL, 0, 10000, &r),
                     0);
    long st = r.status;
    if (out)
        *out = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return st;
}

/* The custom payment object unless payment_object says otherwise ("Payment": the standard one). */
static const char *payment_object = "POS_Payment__c";

static int start_gateway(int create_products)
{
    char cfg[8192];
    snprintf(cfg, sizeof cfg,
             "{\"listen\":{\"port\":0},\"http\":{\"threads\":2,\"workers\":4},\"log\":{\"level\":"
             "\"debug\"},"
             "\"redis\":{\"url\":\"%s\",\"command_timeout_ms\":1000,\"reconnect_min_ms\":20,"
             "\"reconnect_max_ms\":200},"
             "\"salesforce\":{\"org_ids\":[\"" ORG "\"],\"rest\":{\"login_url\":\"%s\","
             "\"audience\":\"https://login.salesforce.com\",\"client_id\":\"" CLIENT_ID
             "\",\"username\":\"" SF_USER "\",\"private_key\":\"file:%s\"}},"
             "\"admin\":{\"api_key_hashes\":[\"" ADMIN_HASH "\"]},"
             "\"checks\":{\"transform\":{\"org\":\"ACME\",\"locations\":{\"" LOC "\":{"
             "\"pricebook_id\":\"%s\",\"currency\":\"USD\",\"account_id\":\"" ACCOUNT "\"}},"
             "\"order_status\":{\"cancelled\":\"Activated\"},"
             "\"product_external_id_field\":\"MICROS_Item_Id__c\","
             "\"payment_external_id_field\":\"POS_Tender_Id__c\",\"payment_object\":\"%s\"},"
             "\"load\":{\"enabled\":true,\"workers\":2,\"retry_base_ms\":50,"
             "\"retry_cap_ms\":400,\"max_attempts\":8,\"reclaim_idle_ms\":3000,"
             "\"limit_pause_s\":2,\"timeout_ms\":3000,\"lock_ms\":15000,"
             "\"create_missing_products\":%s,\"standard_pricebook_id\":\"%s\"}}}",
             redis.url, sim.url, pg_t_src("tests/data/keys/sf-oauth.key"), pos_pb, payment_object,
             create_products ? "true" : "false", std_pb);
    return pg_t_gateway_start(&gw, cfg);
}

static void restart_gateway(int create_products)
{
    assert_int_equal(pg_t_proc_stop(&gw), 0);
    pg_t_proc_destroy(&gw);
    assert_int_equal(start_gateway(create_products), 0);
}

static json_t *load_check(const char *name, long long gcid)
{
    char path[512];
    snprintf(path, sizeof path, "tests/data/checks/%s.json", name);
    json_error_t e;
    json_t *c = json_load_file(pg_t_src(path), 0, &e);
    if (!c)
        fail_msg("%s: %s", path, e.text);
    json_object_set_new(c, "guestCheckId", json_integer(gcid));
    /* line ids are unique per check in MICROS: make them unique per test check too */
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(c, "detailLines"), i, l)
    {
        json_t *id = json_object_get(l, "guestCheckLineItemId");
        json_object_set_new(l, "guestCheckLineItemId",
                            json_integer(gcid * 100 + json_integer_value(id) % 100));
    }
    return c;
}

static enum pg_checkq_result put(json_t *check)
{
    struct pg_checkq_item it = {LOC, check};
    enum pg_checkq_result res;
    char why[200] = "";
    int rc = pg_checkq_put(&it, 1, "push", NULL, &res, why, sizeof why);
    if (rc)
        fail_msg("put: %d %s", rc, why);
    return res;
}

static char *hget(const char *key, const char *field)
{
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "HGET %s %s", key, field), PG_OK);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

/* Wait until check gcid is synced at its current digest; fails the test after WAIT_MS. */
static void wait_synced(long long gcid)
{
    char key[128];
    snprintf(key, sizeof key, PG_KEY_CHK LOC ":%lld", gcid);
    int64_t end = pg_now_ms() + WAIT_MS;
    for (;;) {
        char *st = hget(key, "state"), *d = hget(key, "digest"), *sd = hget(key, "synced_digest");
        int ok = st && d && sd && strcmp(st, "synced") == 0 && strcmp(d, sd) == 0;
        char *err = hget(key, "error");
        free(st);
        free(d);
        free(sd);
        if (ok) {
            free(err);
            return;
        }
        if (pg_now_ms() > end) {
            char *log = pg_t_proc_log(&gw);
            fprintf(stderr, "--- gateway log (tail) ---\n%s\n",
                    log && strlen(log) > 6000 ? log + strlen(log) - 6000 : log);
            free(log);
            /* what the simulator holds besides orders, to tell a missing entry from a bad one */
            json_t *ss = sim_call("GET", "/_sim/state", NULL);
            char *prods = json_dumps(json_object_get(ss, "products"), JSON_COMPACT);
            char *pbes = json_dumps(json_object_get(ss, "pricebook_entries"), JSON_COMPACT);
            fprintf(stderr, "--- products ---\n%.3000s\n--- entries ---\n%.3000s\n", prods, pbes);
            free(prods);
            free(pbes);
            json_decref(ss);
            json_t *lg = sim_call("GET", "/_sim/log", NULL);
            size_t li;
            json_t *le;
            json_array_foreach(lg, li, le)
            {
                if (li < 12)
                    fprintf(stderr, "sim: %s %s?%s -> %lld\n",
                            json_string_value(json_object_get(le, "method")),
                            json_string_value(json_object_get(le, "path")),
                            json_string_value(json_object_get(le, "query")),
                            (long long)json_integer_value(json_object_get(le, "status")));
            }
            json_decref(lg);
            fail_msg("check %lld not synced in time (error: %s)", gcid, err ? err : "");
        }
        free(err);
        pg_sleep_ms(50);
    }
}

static char *wait_state(long long gcid, const char *want)
{
    char key[128];
    snprintf(key, sizeof key, PG_KEY_CHK LOC ":%lld", gcid);
    int64_t end = pg_now_ms() + WAIT_MS;
    for (;;) {
        char *st = hget(key, "state");
        if (st && strcmp(st, want) == 0) {
            free(st);
            return hget(key, "error");
        }
        free(st);
        if (pg_now_ms() > end)
            fail_msg("check %lld never reached state %s", gcid, want);
        pg_sleep_ms(50);
    }
}

/* The records of kind (orders, order_items, payments) whose field equals value. */
static json_t *select_recs(json_t *state, const char *kind, const char *field, const char *value)
{
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(state, kind), i, r)
    {
        const char *v = json_string_value(json_object_get(r, field));
        if (v && strcmp(v, value) == 0)
            json_array_append(out, r);
    }
    return out;
}

/* Amount in cents of a number or decimal string. */
static long long cents(const json_t *v)
{
    double d = json_is_string(v) ? strtod(json_string_value(v), NULL) : json_number_value(v);
    return (long long)(d * 100 + (d >= 0 ? 0.5 : -0.5));
}

struct sale {
    json_t *order;    /* borrowed from the state */
    json_t *items;    /* new array */
    json_t *payments; /* new array */
};

/* The order with external id "ACME-1234-<gcid><suffix>", its items and payments. */
static void sale_of(json_t *state, long long gcid, const char *suffix, struct sale *s)
{
    char ext[64];
    snprintf(ext, sizeof ext, "ACME-" LOC "-%lld%s", gcid, suffix);
    json_t *orders = select_recs(state, "orders", "POS_Check_Id__c", ext);
    if (json_array_size(orders) != 1)
        fail_msg("%zu orders with external id %s", json_array_size(orders), ext);
    s->order = json_array_get(orders, 0);
    json_decref(orders);
    const char *id = json_string_value(json_object_get(s->order, "Id"));
    s->items = select_recs(state, "order_items", "OrderId", id);
    s->payments = select_recs(state, "payments", "Order__c", id);
}

static void sale_free(struct sale *s)
{
    json_decref(s->items);
    json_decref(s->payments);
}

static long long sum_field(json_t *recs, const char *f)
{
    long long t = 0;
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) t += cents(json_object_get(r, f));
    return t;
}

/* ---------------------------------------------------------------- setup */

static int setup(void **state)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"org_id\":\"" ORG "\","
             "\"oauth\":{\"certificate\":\"%s\",\"client_id\":\"" CLIENT_ID "\","
             "\"username\":\"" SF_USER "\"}},\"micros\":{\"port\":0}}",
             pg_t_src("tests/data/keys/sf-oauth.crt"));
    if (pg_t_redis_start(&redis) != 0 || pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    json_t *s = sim_call("GET", "/_sim/state", NULL);
    size_t i;
    json_t *pb;
    json_array_foreach(json_object_get(s, "pricebooks"), i, pb)
    {
        const char *id = json_string_value(json_object_get(pb, "Id"));
        snprintf(json_is_true(json_object_get(pb, "IsStandard")) ? std_pb : pos_pb, 32, "%s", id);
    }
    json_decref(s);
    struct pg_redis_opts o = {.url = redis.url, .command_timeout_ms = 2000};
    if (pg_redis_init(&o) != PG_OK)
        return -1;
    return start_gateway(1);
}

static int teardown(void **state)
{
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_proc_destroy(&sim);
    pg_redis_shutdown();
    pg_t_redis_destroy(&redis);
    return st == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- tests */

/* A closed check: one activated Order, its items and payments adding up to the check. */
static void test_load_one(void **state)
{
    json_t *c = load_check("reference_balanced", 1001);
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1001);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    struct sale s;
    sale_of(st, 1001, "", &s);
    assert_string_equal(json_string_value(json_object_get(s.order, "Status")), "Activated");
    assert_string_equal(json_string_value(json_object_get(s.order, "AccountId")), ACCOUNT);
    /* 292.00 ribeye + 3.00 condiment */
    assert_int_equal(json_array_size(s.items), 2);
    assert_int_equal(sum_field(s.items, "TotalPrice"), 29500);
    assert_int_equal(cents(json_object_get(s.order, "TotalAmount")), 29500);
    /* split tender 200.00 + 113.90 = chkTtl */
    assert_int_equal(json_array_size(s.payments), 2);
    assert_int_equal(sum_field(s.payments, "Amount__c"), 31390);
    assert_int_equal(cents(json_object_get(s.order, "POS_Check_Total__c")), 31390);
    sale_free(&s);
    json_decref(st);

    /* reconciliation's record of it */
    char *syn = hget(PG_KEY_CHK_SYNCED LOC ":2023-12-10", "1001");
    assert_non_null(syn);
    json_t *j = json_loads(syn, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 31390);
    assert_int_equal(json_integer_value(json_object_get(j, "rvc")), 110);
    assert_true(json_is_true(json_object_get(j, "closed")));
    assert_string_equal(json_string_value(json_object_get(j, "order")), "ACME-" LOC "-1001");
    json_decref(j);
    free(syn);
    char *oid = hget(PG_KEY_CHK LOC ":1001", "order_id");
    assert_non_null(oid);
    assert_int_equal(strncmp(oid, "801", 3), 0);
    free(oid);
    json_decref(c);
}

/* The same check three times (and once more as a newer version with the same content): one
 * Order, the same items and payments, nothing created twice. */
static void test_same_check_thrice(void **state)
{
    json_t *c = load_check("reference_balanced", 1002);
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1002);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    struct sale a;
    sale_of(st, 1002, "", &a);
    long long created =
        json_integer_value(json_object_get(json_object_get(st, "collections"), "created"));
    assert_int_equal(put(c), PG_CHECKQ_UNCHANGED);
    assert_int_equal(put(c), PG_CHECKQ_UNCHANGED);
    /* a newer version of the same content: loaded again, on the update path (an activated
     * order goes back to Draft, items are sent without their create-only fields) */
    json_object_set_new(c, "lastUpdatedUTC", json_string("2023-12-10T14:00:00"));
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1002);
    json_t *st2 = sim_call("GET", "/_sim/state", NULL);
    struct sale b;
    sale_of(st2, 1002, "", &b);
    assert_string_equal(json_string_value(json_object_get(a.order, "Id")),
                        json_string_value(json_object_get(b.order, "Id")));
    assert_string_equal(json_string_value(json_object_get(b.order, "Status")), "Activated");
    assert_true(json_equal(a.items, b.items) ||
                json_array_size(a.items) == json_array_size(b.items));
    assert_int_equal(json_array_size(b.items), 2);
    assert_int_equal(json_array_size(b.payments), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(a.items, i), "Id")),
                            json_string_value(json_object_get(json_array_get(b.items, i), "Id")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st2, "collections"), "created")),
        created);
    assert_int_equal(sum_field(b.payments, "Amount__c"), 31390);
    sale_free(&a);
    sale_free(&b);
    json_decref(st);
    json_decref(st2);
    json_decref(c);
}

/* A changed check: the removed line's item is deleted, the added one created. */
static void test_changed_check(void **state)
{
    json_t *c = load_check("reference_balanced", 1003);
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1003);
    json_t *lines = json_object_get(c, "detailLines");
    /* drop the condiment (line 2), add a new menu item line */
    json_array_remove(lines, 1);
    json_array_append_new(lines, json_pack("{s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:i, s:i}}",
                                           "guestCheckLineItemId", (json_int_t)100399, "lineNum", 9,
                                           "dtlId", 9, "dspTtl", 7, "dspQty", 1, "aggTtl", 7,
                                           "aggQty", 1, "menuItem", "miNum", 555001, "modFlag", 0));
    json_object_set_new(c, "lastUpdatedUTC", json_string("2023-12-10T15:00:00"));
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1003);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    struct sale s;
    sale_of(st, 1003, "", &s);
    assert_int_equal(json_array_size(s.items), 2);
    json_t *gone = select_recs(st, "order_items", "POS_Line_Id__c", "ACME-" LOC "-100359");
    json_t *added = select_recs(st, "order_items", "POS_Line_Id__c", "ACME-" LOC "-100399");
    assert_int_equal(json_array_size(gone), 0);
    assert_int_equal(json_array_size(added), 1);
    assert_int_equal(sum_field(s.items, "TotalPrice"), 29200 + 700);
    assert_int_equal(cents(json_object_get(s.order, "TotalAmount")), 29900);
    assert_string_equal(json_string_value(json_object_get(s.order, "Status")), "Activated");
    char *map = hget(PG_KEY_CHK_LINES LOC ":1003", "OrderItem:ACME-" LOC "-100359");
    assert_null(map);
    free(map);
    json_decref(gone);
    json_decref(added);
    sale_free(&s);
    json_decref(st);
    json_decref(c);
}

/* A reply lost after Salesforce applied it (here: posgate's map of what Salesforce holds is
 * gone): the next load sends create-only fields on the update path, Salesforce refuses them,
 * the loader resends those records as updates. Still one order, the same items. */
static void test_lost_replies(void **state)
{
    json_t *c = load_check("reference_balanced", 1501);
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1501);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    struct sale a;
    sale_of(st, 1501, "", &a);
    assert_int_equal(pg_t_redis_cmd(&redis, "DEL " PG_KEY_CHK_LINES LOC ":1501"), 0);
    json_object_set_new(c, "lastUpdatedUTC", json_string("2023-12-10T16:00:00"));
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1501);
    json_t *st2 = sim_call("GET", "/_sim/state", NULL);
    struct sale b;
    sale_of(st2, 1501, "", &b);
    assert_string_equal(json_string_value(json_object_get(a.order, "Id")),
                        json_string_value(json_object_get(b.order, "Id")));
    assert_string_equal(json_string_value(json_object_get(b.order, "Status")), "Activated");
    assert_int_equal(json_array_size(b.items), 2);
    assert_int_equal(json_array_size(b.payments), 2);
    assert_int_equal(sum_field(b.payments, "Amount__c"), 31390);
    /* the map is whole again */
    char *id = hget(PG_KEY_CHK_LINES LOC ":1501", "OrderItem:ACME-" LOC "-150158");
    assert_non_null(id);
    assert_int_equal(strncmp(id, "802", 3), 0);
    free(id);
    sale_free(&a);
    sale_free(&b);
    json_decref(st);
    json_decref(st2);
    json_decref(c);
}

/* Lock contention on a third of the records: every check still loads, each exactly once. */
static void test_lock_errors(void **state)
{
    static const char *const names[] = {"reference_balanced", "void",   "partial_payment",
                                        "service_tip",        "return", "cancelled"};
    enum { N = sizeof names / sizeof names[0] };
    json_decref(sim_call("POST", "/_sim/collections", "{\"lock_error_rate\":0.3,\"lock_seed\":7}"));
    json_t *checks[N];
    for (int i = 0; i < N; i++) {
        checks[i] = load_check(names[i], 1100 + i);
        assert_int_equal(put(checks[i]), PG_CHECKQ_QUEUED);
    }
    for (int i = 0; i < N; i++)
        wait_synced(1100 + i);
    json_decref(sim_call("POST", "/_sim/collections", "{\"lock_error_rate\":0}"));
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    assert_true(
        json_integer_value(json_object_get(json_object_get(st, "collections"), "lock_errors")) > 0);
    for (int i = 0; i < N; i++) {
        struct sale s;
        sale_of(st, 1100 + i, "", &s); /* exactly one order each */
        json_t *tp = json_object_get(s.order, "POS_Payments__c");
        assert_int_equal(sum_field(s.payments, "Amount__c"), cents(tp));
        sale_free(&s);
        json_decref(checks[i]);
    }
    json_decref(st);
}

/* A missing price book entry is a validation error: dead letter; fixed by enabling
 * create_missing_products; replayed → loaded. */
static void test_dead_letter_replay(void **state)
{
    restart_gateway(0);
    json_t *c = load_check("reference_balanced", 1201);
    /* menu items nobody created: no entry in the POS price book */
    json_t *l0 = json_array_get(json_object_get(c, "detailLines"), 0);
    json_object_set_new(json_object_get(l0, "menuItem"), "miNum", json_integer(777001));
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    /* another check loads meanwhile: a dead letter blocks nothing */
    json_t *other = load_check("partial_payment", 1202);
    assert_int_equal(put(other), PG_CHECKQ_QUEUED);
    wait_synced(1202);
    char *err = wait_state(1201, "dead");
    assert_non_null(err);
    assert_non_null(strstr(err, "777001"));
    free(err);
    json_t *dl = NULL;
    assert_int_equal(admin("GET", "/v1/admin/check-dead-letters", &dl), 200);
    json_t *items = json_object_get(dl, "items");
    const char *id = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        json_t *job = json_object_get(it, "job");
        if (strcmp(json_string_value(json_object_get(job, "gcid")), "1201") == 0) {
            id = json_string_value(json_object_get(it, "id"));
            assert_string_equal(json_string_value(json_object_get(job, "loc")), LOC);
            assert_string_equal(json_string_value(json_object_get(job, "code")), "INVALID_FIELD");
            assert_string_equal(json_string_value(json_object_get(job, "object")), "OrderItem");
        }
    }
    assert_non_null(id);
    char path[256];
    snprintf(path, sizeof path, "/v1/admin/check-dead-letters/%s/replay", id);
    restart_gateway(1);
    assert_int_equal(admin("POST", path, NULL), 202);
    wait_synced(1201);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    struct sale s;
    sale_of(st, 1201, "", &s);
    assert_int_equal(json_array_size(s.items), 2);
    assert_int_equal(sum_field(s.payments, "Amount__c"), 31390);
    sale_free(&s);
    json_decref(st);
    /* the letter is gone */
    assert_int_equal(admin("POST", path, NULL), 404);
    json_decref(dl);
    json_decref(c);
    json_decref(other);
}

/* The standard Payment object: payments created Processed; a tender no longer on the check is
 * moved to Canceled (a Processed Payment cannot be deleted), never deleted. */
static void test_standard_payment(void **state)
{
    payment_object = "Payment";
    restart_gateway(1);
    json_t *c = load_check("reference_balanced", 1601);
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1601);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    json_t *p1 = select_recs(st, "payments", "POS_Tender_Id__c", "ACME-" LOC "-160161");
    json_t *p2 = select_recs(st, "payments", "POS_Tender_Id__c", "ACME-" LOC "-160162");
    assert_int_equal(json_array_size(p1), 1);
    assert_int_equal(json_array_size(p2), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p2, 0), "Status")),
                        "Processed");
    assert_int_equal(cents(json_object_get(json_array_get(p1, 0), "Amount")) +
                         cents(json_object_get(json_array_get(p2, 0), "Amount")),
                     31390);
    json_decref(p1);
    json_decref(p2);
    json_decref(st);
    /* the second tender goes away (the check was re-tendered as one payment) */
    json_t *lines = json_object_get(c, "detailLines");
    json_array_remove(lines, 4);
    json_object_set_new(json_array_get(lines, 3), "aggTtl", json_real(313.9));
    json_object_set_new(json_array_get(lines, 3), "dspTtl", json_real(313.9));
    json_object_set_new(c, "lastUpdatedUTC", json_string("2023-12-10T17:00:00"));
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1601);
    st = sim_call("GET", "/_sim/state", NULL);
    p1 = select_recs(st, "payments", "POS_Tender_Id__c", "ACME-" LOC "-160161");
    p2 = select_recs(st, "payments", "POS_Tender_Id__c", "ACME-" LOC "-160162");
    assert_int_equal(cents(json_object_get(json_array_get(p1, 0), "Amount")), 31390);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p2, 0), "Status")),
                        "Canceled");
    json_decref(p1);
    json_decref(p2);
    json_decref(st);
    json_decref(c);
    payment_object = "POS_Payment__c";
    restart_gateway(1);
}

/* Salesforce down mid-run: jobs retry; after recovery every check is whole, nothing twice. */
static void test_outage(void **state)
{
    enum { N = 5 };
    json_t *checks[N];
    for (int i = 0; i < N; i++)
        checks[i] = load_check(i % 2 ? "void" : "reference_balanced", 1300 + i);
    assert_int_equal(put(checks[0]), PG_CHECKQ_QUEUED);
    wait_synced(1300);
    /* every data call fails from now on (the token endpoint keeps working) */
    json_decref(sim_call("POST", "/_sim/faults", "{\"status\":503,\"path\":\"/services/data/\"}"));
    for (int i = 1; i < N; i++)
        assert_int_equal(put(checks[i]), PG_CHECKQ_QUEUED);
    /* wait until the loader has failed and scheduled retries */
    int64_t end = pg_now_ms() + WAIT_MS;
    for (;;) {
        char *e = hget(PG_KEY_CHK LOC ":1301", "error");
        int seen = e && strstr(e, "SERVER_UNAVAILABLE") != NULL;
        free(e);
        if (seen)
            break;
        if (pg_now_ms() > end)
            fail_msg("no retry seen during the outage");
        pg_sleep_ms(50);
    }
    json_decref(sim_call("DELETE", "/_sim/faults", NULL));
    for (int i = 1; i < N; i++)
        wait_synced(1300 + i);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    for (int i = 0; i < N; i++) {
        struct sale s;
        sale_of(st, 1300 + i, "", &s);
        assert_int_equal(sum_field(s.payments, "Amount__c"),
                         cents(json_object_get(s.order, "POS_Payments__c")));
        assert_true(json_array_size(s.items) >= 1);
        sale_free(&s);
        json_decref(checks[i]);
    }
    json_decref(st);
}

/* REQUEST_LIMIT_EXCEEDED pauses loading (pg:chk:pause, posgate_checks_paused 1), then it goes on.
 */
static void test_limit_pause(void **state)
{
    json_decref(
        sim_call("POST", "/_sim/faults",
                 "{\"status\":403,\"count\":1,\"path\":\"/services/data/\",\"body\":[{\"message\":"
                 "\"TotalRequests Limit exceeded.\",\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]}"));
    json_t *c = load_check("reference_balanced", 1401);
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    int64_t end = pg_now_ms() + WAIT_MS;
    for (;;) {
        redisReply *r = NULL;
        assert_int_equal(pg_redis_command(&r, "EXISTS " PG_KEY_CHK_PAUSE), PG_OK);
        long long on = r->integer;
        freeReplyObject(r);
        if (on)
            break;
        if (pg_now_ms() > end)
            fail_msg("loading was never paused");
        pg_sleep_ms(20);
    }
    char u[256];
    snprintf(u, sizeof u, "%s/metrics", gw.url);
    struct pg_t_resp m;
    assert_int_equal(pg_t_get(u, &m), 0);
    assert_non_null(strstr(m.body, "posgate_checks_paused 1"));
    pg_t_resp_free(&m);
    wait_synced(1401);
    assert_int_equal(pg_t_get(u, &m), 0);
    assert_non_null(strstr(m.body, "posgate_checks_loaded_total{outcome=\"paused\"} 1"));
    pg_t_resp_free(&m);
    json_decref(c);
}

/* Salesforce's count of sObject Collections calls so far (the simulator's /_sim/state). */
static long long sf_calls(void)
{
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    long long n = json_integer_value(json_object_get(json_object_get(st, "collections"), "calls"));
    json_decref(st);
    return n;
}

/* Put n checks in one call, as the poller does with a page of checks. */
static void put_many(json_t **checks, size_t n)
{
    struct pg_checkq_item it[64];
    enum pg_checkq_result res[64];
    char why[200] = "";
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++)
        it[i] = (struct pg_checkq_item){LOC, checks[i]};
    int rc = pg_checkq_put(it, n, "push", NULL, res, why, sizeof why);
    if (rc)
        fail_msg("put: %d %s", rc, why);
}

/* 60 checks queued together are loaded in batches: each stage of all of them shares its calls,
 * so the calls per check drop far below one (one check alone takes 4 or more). Every check is
 * still whole: one order each, its items, payments adding up to its tenders. */
static void test_batched_calls(void **state)
{
    static const char *const names[] = {"reference_balanced", "void",   "partial_payment",
                                        "service_tip",        "return", "cancelled"};
    enum { N = 60 };
    json_t *checks[N];
    for (int i = 0; i < N; i++)
        checks[i] = load_check(names[i % 6], 1700 + i);
    /* the products of these checks exist already (earlier tests): only the checks' own
     * records count below */
    long long before = sf_calls();
    put_many(checks, N);
    for (int i = 0; i < N; i++)
        wait_synced(1700 + i);
    long long calls = sf_calls() - before;
    print_message("60 checks loaded in %lld sObject Collections calls\n", calls);
    /* batches of at most 50 with two workers: a few calls per batch and stage */
    assert_true(calls <= N / 4);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    for (int i = 0; i < N; i++) {
        struct sale s;
        sale_of(st, 1700 + i, "", &s);
        if (strcmp(names[i % 6], "return") == 0) {
            /* the returned item is on the adjustment order */
            struct sale adj;
            sale_of(st, 1700 + i, "-ADJ", &adj);
            assert_int_equal(json_array_size(adj.items), 1);
            sale_free(&adj);
        } else {
            assert_true(json_array_size(s.items) >= 1);
        }
        assert_int_equal(sum_field(s.payments, "Amount__c"),
                         cents(json_object_get(s.order, "POS_Payments__c")));
        sale_free(&s);
        json_decref(checks[i]);
    }
    json_decref(st);
}

/* One batch holds a good check and one whose item Salesforce refuses (no price book entry): only
 * the bad check is dead-lettered; the good one is whole, activated, recorded synced. */
static void test_batch_mixed_validation(void **state)
{
    restart_gateway(0);
    json_t *c[2];
    c[0] = load_check("reference_balanced", 1801);
    c[1] = load_check("reference_balanced", 1802);
    json_t *l0 = json_array_get(json_object_get(c[1], "detailLines"), 0);
    json_object_set_new(json_object_get(l0, "menuItem"), "miNum", json_integer(777002));
    long long before = sf_calls();
    put_many(c, 2);
    wait_synced(1801);
    char *err = wait_state(1802, "dead");
    assert_non_null(err);
    assert_non_null(strstr(err, "777002"));
    free(err);
    /* one batch: the orders, the items of both, the good one's payments and status — not the
     * 4 + 2 calls of two separate loads */
    assert_true(sf_calls() - before <= 4);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    struct sale s;
    sale_of(st, 1801, "", &s);
    assert_string_equal(json_string_value(json_object_get(s.order, "Status")), "Activated");
    assert_int_equal(json_array_size(s.items), 2);
    assert_int_equal(sum_field(s.items, "TotalPrice"), 29500);
    assert_int_equal(sum_field(s.payments, "Amount__c"), 31390);
    sale_free(&s);
    /* the bad check stopped after its items: no payments, the order left as Draft */
    struct sale bad;
    sale_of(st, 1802, "", &bad);
    assert_string_equal(json_string_value(json_object_get(bad.order, "Status")), "Draft");
    assert_int_equal(json_array_size(bad.payments), 0);
    sale_free(&bad);
    json_decref(st);
    char *syn = hget(PG_KEY_CHK_SYNCED LOC ":2023-12-10", "1801");
    assert_non_null(syn);
    free(syn);
    syn = hget(PG_KEY_CHK_SYNCED LOC ":2023-12-10", "1802");
    assert_null(syn);
    /* the dead-letter stream names the bad check only */
    json_t *dl = NULL;
    assert_int_equal(admin("GET", "/v1/admin/check-dead-letters", &dl), 200);
    int seen_bad = 0;
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(dl, "items"), i, it)
    {
        const char *g = json_string_value(json_object_get(json_object_get(it, "job"), "gcid"));
        assert_string_not_equal(g, "1801");
        if (strcmp(g, "1802") == 0) {
            seen_bad = 1;
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(it, "job"), "object")),
                "OrderItem");
        }
    }
    assert_true(seen_bad);
    json_decref(dl);
    json_decref(c[0]);
    json_decref(c[1]);
    restart_gateway(1);
}

/* Two versions of one check queued together: loaded once, the newest version. */
/*
 * A lease left in Redis by one of this gateway's own workers, whose release failed (Redis blinked
 * at the end of a batch, as in scripts/demo step 5), is taken over at once instead of holding the
 * check for checks.load.lock_ms (15 s here, 2 min by default). Another process's lease is waited
 * out: that process may still be loading the check.
 */
static void test_stale_own_lease(void **state)
{
    char host[64] = "host", holder[160], key[128];
    gethostname(host, sizeof host - 1);
    snprintf(holder, sizeof holder, "%s-%ld-load-0", host, (long)gw.pid);
    snprintf(key, sizeof key, PG_KEY_CHK_LOCK LOC ":%d", 1951);
    assert_int_equal(pg_t_redis_cmd(&redis, "SET %s %s PX 15000", key, holder), 0);
    json_t *c = load_check("reference_balanced", 1951);
    int64_t t0 = pg_now_ms();
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1951);
    int64_t took = pg_now_ms() - t0;
    print_message("own stale lease: synced after %lld ms\n", (long long)took);
    assert_true(took < 8000);
    json_decref(c);

    snprintf(key, sizeof key, PG_KEY_CHK_LOCK LOC ":%d", 1952);
    assert_int_equal(pg_t_redis_cmd(&redis, "SET %s other-host-1-load-0 PX 3000", key), 0);
    c = load_check("reference_balanced", 1952);
    t0 = pg_now_ms();
    assert_int_equal(put(c), PG_CHECKQ_QUEUED);
    wait_synced(1952);
    took = pg_now_ms() - t0;
    print_message("another process's lease: synced after %lld ms\n", (long long)took);
    assert_true(took >= 2500);
    json_decref(c);
}

static void test_batch_two_versions(void **state)
{
    json_t *c = load_check("reference_balanced", 1901);
    json_t *v2 = json_deep_copy(c);
    json_object_set_new(v2, "lastUpdatedUTC", json_string("2023-12-10T18:00:00"));
    /* the newer version drops the condiment */
    json_array_remove(json_object_get(v2, "detailLines"), 1);
    json_t *both[2] = {c, v2};
    long long before = sf_calls();
    put_many(both, 2);
    wait_synced(1901);
    /* orders, items, payments, status: once */
    assert_true(sf_calls() - before <= 4);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    struct sale s;
    sale_of(st, 1901, "", &s);
    assert_int_equal(json_array_size(s.items), 1);
    assert_int_equal(sum_field(s.items, "TotalPrice"), 29200);
    sale_free(&s);
    json_decref(st);
    json_decref(c);
    json_decref(v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_one),
        cmocka_unit_test(test_same_check_thrice),
        cmocka_unit_test(test_changed_check),
        cmocka_unit_test(test_lost_replies),
        cmocka_unit_test(test_standard_payment),
        cmocka_unit_test(test_lock_errors),
        cmocka_unit_test(test_dead_letter_replay),
        cmocka_unit_test(test_outage),
        cmocka_unit_test(test_limit_pause),
        cmocka_unit_test(test_batched_calls),
        cmocka_unit_test(test_batch_mixed_validation),
        cmocka_unit_test(test_batch_two_versions),
        cmocka_unit_test(test_stale_own_lease),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
