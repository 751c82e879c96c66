/*
 * sObject Collections upsert by external id (salesforce/collections.h) against the real
 * posgate-sim (sim/sf_collections.c): created/updated, per-record errors with allOrNone false
 * and true, required fields, picklists, the 200-record cap, parent references by external id,
 * price book and currency rules, lock contention (retryable), the API limit (PG_EUNAVAIL) and
 * idempotent re-sends. The client signs in with the JWT bearer flow as the gateway does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "salesforce/collections.h"
#include "salesforce/oauth.h"
#include "server/util.h"
#include "tests/support/harness.h"

#define ORG "00D5g000004XyZ1EAK"
#define CLIENT_ID "3MVG9posgateCollectionsTest"
#define SF_USER "integration@acme.example"
#define ACCOUNT "0015g00000ZkM3hAAF"

static struct pg_t_proc sim;
static struct pg_sf_oauth *oauth;
static char *key_pem;
static char std_pb[32], pos_pb[32];

static json_t *sim_call(const char *method, const char *path, const char *body)
{
    char url[512];
    struct pg_t_resp r;
    snprintf(url, sizeof url, "%s%s", sim.url, path);
    const char *h[] = {"Content-Type: application/json", NULL};
    assert_int_equal(pg_t_http(method, url, h, body, body ? strlen(body) : 0, 0, &r), 0);
    json_t *j = json_loads(r.body, 0, NULL);
    if (r.status >= 300)
        fail_msg("%s %s -> %ld %s", method, path, r.status, r.body);
    pg_t_resp_free(&r);
    return j;
}

static void settings(const char *json)
{
    json_decref(sim_call("POST", "/_sim/collections", json));
}

static json_t *state_array(const char *key)
{
    json_t *s = sim_call("GET", "/_sim/state", NULL);
    json_t *a = json_incref(json_object_get(s, key));
    json_decref(s);
    return a;
}

/* Upsert records given as JSON text; returns the pg_sf_upsert code. */
static int upsert(const char *obj,
                  const char *field,
                  const char *records,
                  int aon,
                  json_t **results,
                  struct pg_sf_error *err)
{
    json_error_t jerr;
    json_t *recs = json_loads(records, 0, &jerr);
    if (!recs)
        fail_msg("bad test JSON: %s: %s", jerr.text, records);
    int rc = pg_sf_upsert(oauth, NULL, obj, field, recs, aon, pg_now_ms() + 5000, results, err);
    json_decref(recs);
    return rc;
}

static const char *res_code(json_t *res, size_t i)
{
    return json_string_value(json_object_get(json_array_get(res, i), "code"));
}

static int res_ok(json_t *res, size_t i)
{
    return json_is_true(json_object_get(json_array_get(res, i), "ok"));
}

static int setup_group(void **state)
{
    (void)state;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"org_id\":\"" ORG "\","
             "\"oauth\":{\"certificate\":\"%s\",\"client_id\":\"" CLIENT_ID "\","
             "\"username\":\"" SF_USER "\"}},\"micros\":{\"port\":0}}",
             pg_t_src("tests/data/keys/sf-oauth.crt"));
    if (pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    size_t len = 0;
    if (pg_read_file(pg_t_src("tests/data/keys/sf-oauth.key"), 1 << 20, &key_pem, &len) != 0)
        return -1;
    struct pg_sf_oauth_config oc = {.login_url = sim.url,
                                    .audience = "https://login.salesforce.com",
                                    .client_id = CLIENT_ID,
                                    .username = SF_USER,
                                    .private_key_pem = key_pem,
                                    .private_key_len = len};
    if (pg_sf_oauth_new(&oc, &oauth) != 0)
        return -1;
    json_t *s = sim_call("GET", "/_sim/collections", NULL);
    snprintf(std_pb, sizeof std_pb, "%s",
             json_string_value(json_object_get(s, "standard_pricebook_id")));
    snprintf(pos_pb, sizeof pos_pb, "%s",
             json_string_value(json_object_get(s, "pos_pricebook_id")));
    json_decref(s);
    return 0;
}

static int teardown_group(void **state)
{
    (void)state;
    pg_sf_oauth_free(oauth);
    free(key_pem);
    pg_t_proc_destroy(&sim);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    json_decref(sim_call("POST", "/_sim/reset", "{}"));
    return 0;
}

/* A Product2, its active standard USD entry, and a Draft USD Order on the standard book. */
static void catalog(void)
{
    json_t *res = NULL;
    char recs[1024];
    assert_int_equal(
        upsert("Product2", "MICROS_Item_Id__c",
               "[{\"MICROS_Item_Id__c\":\"MI-1\",\"Name\":\"Latte\",\"IsActive\":true},"
               "{\"MICROS_Item_Id__c\":\"MI-2\",\"Name\":\"Bagel\",\"IsActive\":true}]",
               0, &res, NULL),
        PG_OK);
    assert_true(res_ok(res, 0) && res_ok(res, 1));
    json_decref(res);
    snprintf(recs, sizeof recs,
             "[{\"POS_Price_Id__c\":\"P-1-USD\",\"Pricebook2Id\":\"%s\",\"Product2\":"
             "{\"MICROS_Item_Id__c\":\"MI-1\"},\"UnitPrice\":4.5,\"IsActive\":true,"
             "\"CurrencyIsoCode\":\"USD\"},"
             "{\"POS_Price_Id__c\":\"P-2-EUR\",\"Pricebook2Id\":\"%s\",\"Product2\":"
             "{\"MICROS_Item_Id__c\":\"MI-2\"},\"UnitPrice\":3,\"IsActive\":true,"
             "\"CurrencyIsoCode\":\"EUR\"}]",
             std_pb, std_pb);
    assert_int_equal(upsert("PricebookEntry", "POS_Price_Id__c", recs, 0, &res, NULL), PG_OK);
    assert_true(res_ok(res, 0) && res_ok(res, 1));
    json_decref(res);
    snprintf(recs, sizeof recs,
             "[{\"POS_Check_Id__c\":\"S1-20260302-4711\",\"AccountId\":\"" ACCOUNT "\","
             "\"EffectiveDate\":\"2026-03-02\",\"Status\":\"Draft\",\"Pricebook2Id\":\"%s\","
             "\"CurrencyIsoCode\":\"USD\"}]",
             std_pb);
    assert_int_equal(upsert("Order", "POS_Check_Id__c", recs, 0, &res, NULL), PG_OK);
    assert_true(res_ok(res, 0));
    json_decref(res);
}

#define ORDER(ext, extra)                                                                          \
    "{\"attributes\":{\"type\":\"Order\"},\"POS_Check_Id__c\":\"" ext                              \
    "\",\"AccountId\":\"" ACCOUNT "\",\"EffectiveDate\":\"2026-03-02\",\"Status\":\"Draft\"" extra \
    "}"

static void test_create_then_update(void **state)
{
    (void)state;
    json_t *res = NULL;
    struct pg_sf_error err;
    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("C-1", ",\"Name\":\"one\"") "]",
                            0, &res, &err),
                     PG_OK);
    assert_int_equal(err.status, 200);
    json_t *r = json_array_get(res, 0);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_true(json_is_true(json_object_get(r, "created")));
    const char *id = json_string_value(json_object_get(r, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 18);
    assert_memory_equal(id, "801", 3);
    char first[19];
    snprintf(first, sizeof first, "%s", id);
    json_decref(res);

    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("c-1", ",\"Name\":\"two\"") "]",
                            0, &res, NULL),
                     PG_OK); /* external ids match case-insensitively */
    r = json_array_get(res, 0);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_false(json_is_true(json_object_get(r, "created")));
    assert_string_equal(json_string_value(json_object_get(r, "id")), first);
    json_decref(res);

    json_t *orders = state_array("orders");
    assert_int_equal(json_array_size(orders), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(orders, 0), "Name")),
                        "two");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(orders, 0), "CurrencyIsoCode")), "USD");
    json_decref(orders);
}

static void test_partial_failure_and_validation(void **state)
{
    (void)state;
    json_t *res = NULL;
    /* allOrNone false: the bad ones fail alone, in input order */
    assert_int_equal(
        upsert("Order", "POS_Check_Id__c",
               "[" ORDER("A-1", "") "," ORDER(
                   "A-2",
                   ",\"Status\":\"Shipped\"") ","
                                              "{\"POS_Check_Id__c\":\"A-3\",\"Status\":\"Draft\"}"
                                              "," ORDER("A-4", ",\"Bogus_Field\":1") "," ORDER(
                                                  "A-5", "") "]",
               0, &res, NULL),
        PG_OK);
    assert_int_equal(json_array_size(res), 5);
    assert_true(res_ok(res, 0));
    assert_false(res_ok(res, 1));
    assert_string_equal(res_code(res, 1), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 1), "message")),
                        "Status: bad value for restricted picklist field: Shipped");
    assert_false(json_is_true(json_object_get(json_array_get(res, 1), "retryable")));
    assert_string_equal(res_code(res, 2), "REQUIRED_FIELD_MISSING");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 2), "message")),
                        "Required fields are missing: [AccountId, EffectiveDate]");
    assert_int_equal(json_array_size(json_object_get(json_array_get(res, 2), "fields")), 2);
    assert_string_equal(res_code(res, 3), "INVALID_FIELD");
    assert_true(res_ok(res, 4));
    json_decref(res);
    json_t *orders = state_array("orders");
    assert_int_equal(json_array_size(orders), 2);
    json_decref(orders);

    /* allOrNone true: one failure rolls the others back, which are retryable */
    assert_int_equal(upsert("Order", "POS_Check_Id__c",
                            "[" ORDER("B-1", "") "," ORDER("B-2", ",\"Status\":\"Nope\"") "]", 1,
                            &res, NULL),
                     PG_OK);
    assert_string_equal(res_code(res, 0), "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_true(json_is_true(json_object_get(json_array_get(res, 0), "retryable")));
    assert_string_equal(res_code(res, 1), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    json_decref(res);
    orders = state_array("orders");
    assert_int_equal(json_array_size(orders), 2);
    json_decref(orders);

    /* Payment picklists and the custom payment object's required fields */
    assert_int_equal(upsert("Payment", "POS_Tender_Id__c",
                            "[{\"POS_Tender_Id__c\":\"T-1\",\"Amount\":9,\"Type\":\"Sale\","
                            "\"ProcessingMode\":\"External\",\"Status\":\"Processed\"},"
                            "{\"POS_Tender_Id__c\":\"T-2\",\"Amount\":9,\"Type\":\"Refund\","
                            "\"ProcessingMode\":\"External\",\"Status\":\"Processed\"},"
                            "{\"POS_Tender_Id__c\":\"T-3\",\"Amount\":9,\"Type\":\"Sale\"}]",
                            0, &res, NULL),
                     PG_OK);
    assert_true(res_ok(res, 0));
    assert_string_equal(res_code(res, 1), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_string_equal(res_code(res, 2), "REQUIRED_FIELD_MISSING");
    json_decref(res);
    assert_int_equal(upsert("POS_Payment__c", "POS_Tender_Id__c",
                            "[{\"POS_Tender_Id__c\":\"T-9\",\"Order__r\":"
                            "{\"POS_Check_Id__c\":\"A-1\"},\"Amount__c\":12.5},"
                            "{\"POS_Tender_Id__c\":\"T-10\",\"Amount__c\":1}]",
                            0, &res, NULL),
                     PG_OK);
    assert_true(res_ok(res, 0));
    assert_string_equal(res_code(res, 1), "REQUIRED_FIELD_MISSING");
    json_decref(res);
    json_t *pays = state_array("payments");
    assert_int_equal(json_array_size(pays), 2);
    json_decref(pays);
}

static void test_over_200_rejected(void **state)
{
    (void)state;
    json_t *recs = json_array();
    for (int i = 0; i < 201; i++) {
        char ext[32];
        snprintf(ext, sizeof ext, "X-%d", i);
        json_array_append_new(recs, json_pack("{s:s,s:s}", "MICROS_Item_Id__c", ext, "Name", "x"));
    }
    json_t *res = NULL;
    struct pg_sf_error err;
    /* the client refuses without sending */
    assert_int_equal(pg_sf_upsert(oauth, NULL, "Product2", "MICROS_Item_Id__c", recs, 0,
                                  pg_now_ms() + 5000, &res, &err),
                     PG_EINVAL);
    assert_null(res);
    /* the simulator answers 400 EXCEEDED_ID_LIMIT to a raw request */
    char tok[256];
    json_t *t = sim_call("POST", "/_sim/tokens", NULL);
    snprintf(tok, sizeof tok, "Authorization: Bearer %s",
             json_string_value(json_object_get(t, "access_token")));
    json_decref(t);
    json_t *body = json_pack("{s:b,s:O}", "allOrNone", 0, "records", recs);
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
        json_object_set_new(r, "attributes", json_pack("{s:s}", "type", "Product2"));
    char *s = json_dumps(body, JSON_COMPACT);
    char url[512];
    snprintf(url, sizeof url,
             "%s/services/data/v66.0/composite/sobjects/Product2/MICROS_Item_Id__c", sim.url);
    const char *h[] = {tok, "Content-Type: application/json", NULL};
    struct pg_t_resp resp;
    assert_int_equal(pg_t_http("PATCH", url, h, s, strlen(s), 0, &resp), 0);
    assert_int_equal(resp.status, 400);
    assert_non_null(strstr(resp.body, "\"EXCEEDED_ID_LIMIT\""));
    char lim[64];
    assert_int_equal(pg_t_resp_header(&resp, "Sforce-Limit-Info", lim, sizeof lim), 0);
    pg_t_resp_free(&resp);
    /* no bearer token: 401 */
    const char *h2[] = {"Content-Type: application/json", NULL};
    assert_int_equal(pg_t_http("PATCH", url, h2, s, strlen(s), 0, &resp), 0);
    assert_int_equal(resp.status, 401);
    pg_t_resp_free(&resp);
    free(s);
    json_decref(body);
    json_decref(recs);
    json_t *products = state_array("products");
    assert_int_equal(json_array_size(products), 0);
    json_decref(products);
}

static void test_parent_by_external_id(void **state)
{
    (void)state;
    catalog();
    json_t *res = NULL;
    assert_int_equal(
        upsert("OrderItem", "POS_Line_Id__c",
               "[{\"POS_Line_Id__c\":\"S1-20260302-4711-1\",\"Order\":{\"POS_Check_Id__c\":"
               "\"S1-20260302-4711\"},\"PricebookEntry\":{\"POS_Price_Id__c\":\"P-1-USD\"},"
               "\"Quantity\":2,\"UnitPrice\":4.5},"
               "{\"POS_Line_Id__c\":\"S1-20260302-4711-2\",\"Order\":{\"POS_Check_Id__c\":"
               "\"NO-SUCH-CHECK\"},\"PricebookEntry\":{\"POS_Price_Id__c\":\"P-1-USD\"},"
               "\"Quantity\":1,\"UnitPrice\":4.5},"
               "{\"POS_Line_Id__c\":\"S1-20260302-4711-3\",\"Order\":{\"POS_Check_Id__c\":"
               "\"S1-20260302-4711\"},\"PricebookEntry\":{\"POS_Price_Id__c\":\"P-2-EUR\"},"
               "\"Quantity\":1,\"UnitPrice\":3},"
               "{\"POS_Line_Id__c\":\"S1-20260302-4711-4\",\"Order\":{\"POS_Check_Id__c\":"
               "\"S1-20260302-4711\"},\"PricebookEntry\":{\"POS_Price_Id__c\":\"P-1-USD\"},"
               "\"UnitPrice\":3}]",
               0, &res, NULL),
        PG_OK);
    assert_true(res_ok(res, 0));
    assert_memory_equal(json_string_value(json_object_get(json_array_get(res, 0), "id")), "802", 3);
    assert_string_equal(res_code(res, 1), "INVALID_FIELD");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 1), "message")),
                        "Foreign key external ID: NO-SUCH-CHECK not found for field "
                        "POS_Check_Id__c in entity Order");
    assert_string_equal(res_code(res, 2), "FIELD_INTEGRITY_EXCEPTION"); /* EUR entry, USD order */
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(res, 2), "message")), "currency"));
    assert_string_equal(res_code(res, 3), "REQUIRED_FIELD_MISSING");
    json_decref(res);

    json_t *items = state_array("order_items"), *orders = state_array("orders");
    assert_int_equal(json_array_size(items), 1);
    json_t *it = json_array_get(items, 0), *o = json_array_get(orders, 0);
    assert_string_equal(json_string_value(json_object_get(it, "OrderId")),
                        json_string_value(json_object_get(o, "Id")));
    assert_null(json_object_get(it, "Order"));
    assert_true(json_number_value(json_object_get(o, "TotalAmount")) == 9.0);
    json_decref(items);
    json_decref(orders);

    /* a custom-book entry needs the standard price first (same currency) */
    char recs[512];
    snprintf(recs, sizeof recs,
             "[{\"POS_Price_Id__c\":\"P-2-POS-USD\",\"Pricebook2Id\":\"%s\",\"Product2\":"
             "{\"MICROS_Item_Id__c\":\"MI-2\"},\"UnitPrice\":3,\"CurrencyIsoCode\":\"USD\"}]",
             pos_pb);
    assert_int_equal(upsert("PricebookEntry", "POS_Price_Id__c", recs, 0, &res, NULL), PG_OK);
    assert_string_equal(res_code(res, 0), "STANDARD_PRICE_NOT_DEFINED");
    json_decref(res);
}

static void test_same_batch_twice(void **state)
{
    (void)state;
    catalog();
    const char *orders = "[" ORDER("I-1", ",\"Description\":\"check 1\"") "," ORDER(
        "I-2", ",\"Description\":\"check 2\"") "]";
    json_t *a = NULL, *b = NULL;
    assert_int_equal(upsert("Order", "POS_Check_Id__c", orders, 0, &a, NULL), PG_OK);
    json_t *s1 = state_array("orders");
    assert_int_equal(upsert("Order", "POS_Check_Id__c", orders, 0, &b, NULL), PG_OK);
    json_t *s2 = state_array("orders");
    assert_int_equal(json_array_size(s1), 3);
    assert_int_equal(json_array_size(s2), 3);
    for (size_t i = 0; i < 2; i++) {
        assert_true(res_ok(a, i) && res_ok(b, i));
        assert_true(json_is_true(json_object_get(json_array_get(a, i), "created")));
        assert_false(json_is_true(json_object_get(json_array_get(b, i), "created")));
        assert_string_equal(json_string_value(json_object_get(json_array_get(a, i), "id")),
                            json_string_value(json_object_get(json_array_get(b, i), "id")));
    }
    json_decref(a);
    json_decref(b);
    json_decref(s1);
    json_decref(s2);

    /* OrderItems: OrderId / PricebookEntryId are create-only; strict by default, the re-send
     * is refused and nothing changes; with "reject_changed" an unchanged re-send succeeds. */
    const char *items = "[{\"POS_Line_Id__c\":\"L-1\",\"Order\":{\"POS_Check_Id__c\":"
                        "\"S1-20260302-4711\"},\"PricebookEntry\":{\"POS_Price_Id__c\":"
                        "\"P-1-USD\"},\"Quantity\":1,\"UnitPrice\":4.5}]";
    assert_int_equal(upsert("OrderItem", "POS_Line_Id__c", items, 0, &a, NULL), PG_OK);
    assert_true(res_ok(a, 0));
    assert_int_equal(upsert("OrderItem", "POS_Line_Id__c", items, 0, &b, NULL), PG_OK);
    assert_string_equal(res_code(b, 0), "INVALID_FIELD_FOR_INSERT_UPDATE");
    json_decref(a);
    json_decref(b);
    settings("{\"create_only_fields\":\"reject_changed\"}");
    assert_int_equal(upsert("OrderItem", "POS_Line_Id__c", items, 0, &b, NULL), PG_OK);
    assert_true(res_ok(b, 0));
    assert_false(json_is_true(json_object_get(json_array_get(b, 0), "created")));
    json_decref(b);
    json_t *its = state_array("order_items");
    assert_int_equal(json_array_size(its), 1);
    json_decref(its);

    /* an external id held by two records in the org (not Unique) fails that record */
    json_decref(sim_call("POST", "/_sim/collections/records",
                         "{\"type\":\"Order\",\"records\":[{\"POS_Check_Id__c\":\"DUP\"},"
                         "{\"POS_Check_Id__c\":\"DUP\"}]}"));
    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("DUP", "") "]", 0, &a, NULL),
                     PG_OK);
    assert_string_equal(res_code(a, 0), "DUPLICATE_EXTERNAL_ID");
    json_decref(a);
}

static json_t *get_by(json_t *arr, const char *field, const char *val)
{
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r)
    {
        const char *v = json_string_value(json_object_get(r, field));
        if (v && strcmp(v, val) == 0)
            return r;
    }
    return NULL;
}

static double order_total(const char *ext)
{
    json_t *orders = state_array("orders");
    json_t *o = get_by(orders, "POS_Check_Id__c", ext);
    assert_non_null(o);
    double t = json_number_value(json_object_get(o, "TotalAmount"));
    json_decref(orders);
    return t;
}

/*
 * The simulator writes in place and keeps indexes (sim/sf_collections.c): an allOrNone rollback
 * after an update, a create and a roll-up in one call leaves the state exactly as it was and the
 * indexes usable; records stored as duplicates (case-insensitive) make the upsert fail naming
 * both in stored order; a deleted record is ENTITY_IS_DELETED while its external id can be
 * created again; an allOrNone delete that fails deletes nothing; a reset forgets everything.
 */
static void test_rollback_duplicates_delete_recreate(void **state)
{
    (void)state;
    catalog();
    json_t *res = NULL, *res2 = NULL;
#define LINE(ext, qty, price_ref)                                                                  \
    "{\"POS_Line_Id__c\":\"" ext "\",\"Order\":{\"POS_Check_Id__c\":\"S1-20260302-4711\"},"        \
    "\"PricebookEntry\":{\"POS_Price_Id__c\":\"" price_ref "\"},\"Quantity\":" qty                 \
    ",\"UnitPrice\":4.5}"
    settings("{\"create_only_fields\":\"reject_changed\"}");
    assert_int_equal(
        upsert("OrderItem", "POS_Line_Id__c", "[" LINE("L-1", "1", "P-1-USD") "]", 0, &res, NULL),
        PG_OK);
    assert_true(res_ok(res, 0));
    json_decref(res);
    assert_true(order_total("S1-20260302-4711") == 4.5);
    json_t *before = sim_call("GET", "/_sim/state", NULL);

    /* an update, a create (both rolling the order up) and a failure: nothing stays */
    assert_int_equal(upsert("OrderItem", "POS_Line_Id__c",
                            "[" LINE("L-1", "3", "P-1-USD") "," LINE(
                                "L-2", "1", "P-1-USD") "," LINE("L-3", "1", "NO-SUCH-PRICE") "]",
                            1, &res, NULL),
                     PG_OK);
    assert_string_equal(res_code(res, 0), "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_string_equal(res_code(res, 1), "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_string_equal(res_code(res, 2), "INVALID_FIELD");
    json_decref(res);
    json_t *after = sim_call("GET", "/_sim/state", NULL);
    const char *keys[] = {"orders", "order_items", "products", "pricebook_entries", "payments"};
    for (size_t k = 0; k < 5; k++)
        assert_true(json_equal(json_object_get(before, keys[k]), json_object_get(after, keys[k])));
    json_decref(before);
    json_decref(after);

    /* the same call without the bad line: L-1 is found again (updated), L-2 is new */
    assert_int_equal(upsert("OrderItem", "POS_Line_Id__c",
                            "[" LINE("L-1", "3", "P-1-USD") "," LINE("L-2", "1", "P-1-USD") "]", 1,
                            &res, NULL),
                     PG_OK);
    assert_true(res_ok(res, 0) && res_ok(res, 1));
    assert_false(json_is_true(json_object_get(json_array_get(res, 0), "created")));
    assert_true(json_is_true(json_object_get(json_array_get(res, 1), "created")));
    json_decref(res);
    assert_true(order_total("S1-20260302-4711") == 18.0);

    /* duplicates stored as they are (one differs in case): the upsert names both, in order */
    json_t *ids = sim_call("POST", "/_sim/collections/records",
                           "{\"type\":\"Order\",\"records\":[{\"POS_Check_Id__c\":\"dup-9\"},"
                           "{\"POS_Check_Id__c\":\"DUP-9\"}]}");
    char want[256];
    snprintf(want, sizeof want,
             "POS_Check_Id__c: more than one record found for external id field: [%s, %s]",
             json_string_value(json_array_get(json_object_get(ids, "ids"), 0)),
             json_string_value(json_array_get(json_object_get(ids, "ids"), 1)));
    json_decref(ids);
    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("Dup-9", "") "]", 0, &res, NULL),
                     PG_OK);
    assert_string_equal(res_code(res, 0), "DUPLICATE_EXTERNAL_ID");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "message")),
                        want);
    json_decref(res);

    /* delete the order (its two items go with it), then create it again */
    json_t *orders = state_array("orders"), *items = state_array("order_items");
    char old_id[32], item_id[32];
    snprintf(old_id, sizeof old_id, "%s",
             json_string_value(
                 json_object_get(get_by(orders, "POS_Check_Id__c", "S1-20260302-4711"), "Id")));
    snprintf(item_id, sizeof item_id, "%s",
             json_string_value(json_object_get(get_by(items, "POS_Line_Id__c", "L-2"), "Id")));
    json_decref(orders);
    json_decref(items);
    json_t *del = json_pack("[s]", old_id);
    assert_int_equal(pg_sf_delete(oauth, NULL, del, 0, pg_now_ms() + 5000, &res, NULL), PG_OK);
    assert_true(res_ok(res, 0));
    json_decref(res);
    items = state_array("order_items");
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
    assert_int_equal(
        upsert("Order", "POS_Check_Id__c", "[" ORDER("S1-20260302-4711", "") "]", 0, &res, NULL),
        PG_OK);
    assert_true(res_ok(res, 0));
    assert_true(json_is_true(json_object_get(json_array_get(res, 0), "created")));
    assert_string_not_equal(json_string_value(json_object_get(json_array_get(res, 0), "id")),
                            old_id);
    const char *new_id = json_string_value(json_object_get(json_array_get(res, 0), "id"));
    json_t *again = json_pack("[s,s,s]", old_id, item_id, new_id);
    json_decref(res);
    /* allOrNone: the deleted ones fail, so the new order is not deleted either */
    assert_int_equal(pg_sf_delete(oauth, NULL, again, 1, pg_now_ms() + 5000, &res, NULL), PG_OK);
    assert_string_equal(res_code(res, 0), "ENTITY_IS_DELETED");
    assert_string_equal(res_code(res, 1), "ENTITY_IS_DELETED");
    assert_string_equal(res_code(res, 2), "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    json_decref(res);
    assert_int_equal(
        upsert("Order", "POS_Check_Id__c", "[" ORDER("S1-20260302-4711", "") "]", 0, &res2, NULL),
        PG_OK);
    assert_true(res_ok(res2, 0));
    assert_false(json_is_true(json_object_get(json_array_get(res2, 0), "created")));
    json_decref(res2);
    json_decref(del);
    json_decref(again);

    /* a reset is the seed again: the external id is new */
    json_decref(sim_call("POST", "/_sim/reset", "{}"));
    assert_int_equal(
        upsert("Order", "POS_Check_Id__c", "[" ORDER("S1-20260302-4711", "") "]", 0, &res, NULL),
        PG_OK);
    assert_true(res_ok(res, 0));
    assert_true(json_is_true(json_object_get(json_array_get(res, 0), "created")));
    json_decref(res);
#undef LINE
}

static void test_lock_contention_retryable(void **state)
{
    (void)state;
    settings("{\"lock_error_rate\":0.5,\"lock_seed\":7}");
    json_t *recs = json_array();
    for (int i = 0; i < 40; i++) {
        char ext[32];
        snprintf(ext, sizeof ext, "LK-%d", i);
        json_array_append_new(recs, json_pack("{s:s,s:s}", "MICROS_Item_Id__c", ext, "Name", "x"));
    }
    json_t *res = NULL;
    assert_int_equal(pg_sf_upsert(oauth, NULL, "Product2", "MICROS_Item_Id__c", recs, 0,
                                  pg_now_ms() + 5000, &res, NULL),
                     PG_OK);
    int locked = 0, ok = 0;
    char pattern[64] = "";
    for (size_t i = 0; i < 40; i++) {
        json_t *r = json_array_get(res, i);
        if (json_is_true(json_object_get(r, "ok"))) {
            ok++;
            pattern[i] = 'o';
        } else {
            assert_string_equal(res_code(res, i), "UNABLE_TO_LOCK_ROW");
            assert_true(json_is_true(json_object_get(r, "retryable")));
            locked++;
            pattern[i] = 'x';
        }
    }
    assert_true(locked > 5 && ok > 5);
    json_decref(res);
    json_t *st = sim_call("GET", "/_sim/state", NULL);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st, "collections"), "lock_errors")),
        locked);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st, "collections"), "products")), ok);
    json_decref(st);
    /* the same seed gives the same records locked */
    reset(NULL);
    settings("{\"lock_error_rate\":0.5,\"lock_seed\":7}");
    assert_int_equal(pg_sf_upsert(oauth, NULL, "Product2", "MICROS_Item_Id__c", recs, 0,
                                  pg_now_ms() + 5000, &res, NULL),
                     PG_OK);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(res_ok(res, i), pattern[i] == 'o');
    json_decref(res);
    json_decref(recs);
}

static void test_limit_exceeded_unavailable(void **state)
{
    (void)state;
    json_t *res = NULL;
    struct pg_sf_error err;
    /* an injected 403 REQUEST_LIMIT_EXCEEDED on the collections path */
    json_decref(sim_call("POST", "/_sim/faults",
                         "{\"path\":\"/services/data/v66.0/composite/sobjects/\",\"status\":403,"
                         "\"body\":[{\"message\":\"TotalRequests Limit exceeded.\","
                         "\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}],\"count\":1}"));
    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("LIM-1", "") "]", 0, &res, &err),
                     PG_EUNAVAIL);
    assert_null(res);
    assert_string_equal(err.code, "REQUEST_LIMIT_EXCEEDED");
    assert_int_equal(err.status, 403);
    /* a 503 is unavailable too; the next call goes through */
    json_decref(sim_call("POST", "/_sim/faults",
                         "{\"path\":\"/services/data/v66.0/composite/sobjects/\",\"status\":503,"
                         "\"count\":1}"));
    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("LIM-1", "") "]", 0, &res, &err),
                     PG_EUNAVAIL);
    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("LIM-1", "") "]", 0, &res, &err),
                     PG_OK);
    json_decref(res);
    /* a bad external id field in the URL is a 404 (configuration) */
    assert_int_equal(upsert("Order", "Not_An_Ext__c", "[" ORDER("LIM-1", "") "]", 0, &res, &err),
                     PG_ENOTFOUND);
    /* an expired session is renewed once */
    json_decref(sim_call("POST", "/_sim/tokens/expire", "{}"));
    assert_int_equal(upsert("Order", "POS_Check_Id__c", "[" ORDER("LIM-2", "") "]", 0, &res, &err),
                     PG_OK);
    json_decref(res);

    /* the org's real allocation: a simulator with api_limit 2 refuses the third call */
    struct pg_t_proc small;
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"api_limit\":2,\"oauth\":{\"certificate\":\"%s\","
             "\"client_id\":\"" CLIENT_ID "\",\"username\":\"" SF_USER "\"}},"
             "\"micros\":{\"port\":0}}",
             pg_t_src("tests/data/keys/sf-oauth.crt"));
    assert_int_equal(pg_t_sim_start(&small, cfg), 0);
    struct pg_sf_oauth *o2 = NULL;
    struct pg_sf_oauth_config oc = {.login_url = small.url,
                                    .audience = "https://login.salesforce.com",
                                    .client_id = CLIENT_ID,
                                    .username = SF_USER,
                                    .private_key_pem = key_pem,
                                    .private_key_len = strlen(key_pem)};
    assert_int_equal(pg_sf_oauth_new(&oc, &o2), PG_OK);
    json_t *recs = json_loads("[" ORDER("LIM-9", "") "]", 0, NULL);
    for (int i = 0; i < 3; i++) {
        int rc = pg_sf_upsert(o2, NULL, "Order", "POS_Check_Id__c", recs, 0, pg_now_ms() + 5000,
                              &res, &err);
        assert_int_equal(rc, i < 2 ? PG_OK : PG_EUNAVAIL);
        json_decref(res);
    }
    assert_string_equal(err.code, "REQUEST_LIMIT_EXCEEDED");
    json_decref(recs);
    pg_sf_oauth_free(o2);
    pg_t_proc_destroy(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_create_then_update, reset),
        cmocka_unit_test_setup(test_partial_failure_and_validation, reset),
        cmocka_unit_test_setup(test_over_200_rejected, reset),
        cmocka_unit_test_setup(test_parent_by_external_id, reset),
        cmocka_unit_test_setup(test_same_batch_twice, reset),
        cmocka_unit_test_setup(test_rollback_duplicates_delete_recreate, reset),
        cmocka_unit_test_setup(test_lock_contention_retryable, reset),
        cmocka_unit_test_setup(test_limit_exceeded_unavailable, reset),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
