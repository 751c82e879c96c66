/*
 * posgate-sim: startup and ready file, the protocol stubs, the request log, every fault kind,
 * reset, seed state, body cap, and config rejection. One simulator serves the whole group; each
 * test starts from POST /_sim/reset on both simulators.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "server/util.h"
#include "tests/support/harness.h"

#define MAX_BODY 65536

static struct pg_t_proc g_sim;
static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};
/* REST paths need a session: a token from POST /_sim/tokens (tests of OAuth itself are in
 * test_sim_rest.c). */
static char g_bearer[256];
static const char *AUTH[] = {g_bearer, NULL};
static const char *AUTH_JSON[] = {g_bearer, "Content-Type: application/json", NULL};

static const char *sf(const char *path)
{
    static char u[512];
    snprintf(u, sizeof u, "%s%s", g_sim.url, path);
    return u;
}

static const char *mi(const char *path)
{
    static char u[512];
    snprintf(u, sizeof u, "%s%s", g_sim.micros_url, path);
    return u;
}

/* Request and return the status (0 when no response); the body is parsed into *out if asked. */
static long
req(const char *method, const char *url, const char *const *hdrs, const char *body, json_t **out)
{
    struct pg_t_resp r;
    pg_t_http(method, url, hdrs, body, body ? strlen(body) : 0, 5000, &r);
    long st = r.status;
    if (out)
        *out = json_loads(r.body, JSON_DECODE_ANY, NULL);
    pg_t_resp_free(&r);
    return st;
}

static long post_fault(const char *base_url_of_sim_control, const char *spec)
{
    char u[512];
    snprintf(u, sizeof u, "%s/_sim/faults", base_url_of_sim_control);
    return req("POST", u, JSON_HDR, spec, NULL);
}

/* Mint a token on the simulator at base and put "Authorization: Bearer <it>" into hdr. */
static int mint_token(const char *base, char *hdr, size_t hdrsz)
{
    char u[512];
    json_t *j = NULL;
    snprintf(u, sizeof u, "%s/_sim/tokens", base);
    long st = req("POST", u, NULL, NULL, &j);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    int rc = st == 201 && t ? 0 : -1;
    if (!rc)
        snprintf(hdr, hdrsz, "Authorization: Bearer %s", t);
    json_decref(j);
    return rc;
}

static json_t *get_json(const char *url)
{
    json_t *j = NULL;
    assert_int_equal(req("GET", url, NULL, NULL, &j), 200);
    assert_non_null(j);
    return j;
}

static int64_t timed_get(const char *url, int timeout_ms, struct pg_t_resp *r)
{
    int64_t t0 = pg_now_ms();
    pg_t_http("GET", url, NULL, NULL, 0, timeout_ms, r);
    return pg_now_ms() - t0;
}

static int group_setup(void **state)
{
    char cfg[4096];
    char sf_seed[1024], mi_seed[1024];
    snprintf(sf_seed, sizeof sf_seed, "%s", pg_t_src("tests/data/salesforce_seed.json"));
    snprintf(mi_seed, sizeof mi_seed, "%s", pg_t_src("tests/data/micros_seed.json"));
    snprintf(cfg, sizeof cfg,
             "{\"listen_address\":\"127.0.0.1\",\"log_level\":\"debug\",\"max_body_bytes\":%d,"
             "\"salesforce\":{\"port\":0,\"seed\":\"%s\",\"org_id\":\"00D5g000004XyZ1EAK\"},"
             "\"micros\":{\"port\":0,\"seed\":\"%s\",\"org\":\"ACME\"}}",
             MAX_BODY, sf_seed, mi_seed);
    if (pg_t_sim_start(&g_sim, cfg) != 0 || !g_sim.micros_url[0])
        return -1;
    return mint_token(g_sim.url, g_bearer, sizeof g_bearer);
}

static int group_teardown(void **state)
{
    pg_t_proc_destroy(&g_sim);
    return 0;
}

static int reset_both(void **state)
{
    if (req("POST", sf("/_sim/reset"), NULL, "", NULL) != 200 ||
        req("POST", mi("/_sim/reset"), NULL, "", NULL) != 200)
        return -1;
    return 0;
}

/* ---- protocol stubs ---- */

static void test_sim_versions_list(void **state)
{
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(sf("/services/data/"), &r), 0);
    assert_int_equal(r.status, 200);
    char hv[128];
    /* §4.7: the versions list is the one REST response without Sforce-Limit-Info */
    assert_int_not_equal(pg_t_resp_header(&r, "Sforce-Limit-Info", hv, sizeof hv), 0);
    json_t *arr = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    assert_true(json_is_array(arr));
    json_t *last = json_array_get(arr, json_array_size(arr) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "label")), "Spring '26");
    assert_string_equal(json_string_value(json_object_get(last, "url")), "/services/data/v66.0");
    assert_string_equal(json_string_value(json_object_get(last, "version")), "66.0");
    assert_int_equal(json_object_size(last), 3);
    json_t *v62 = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "version")), "62.0") == 0)
            v62 = e;
    }
    assert_non_null(v62);
    assert_string_equal(json_string_value(json_object_get(v62, "label")), "Winter '25");
    json_decref(arr);
}

static void test_sim_not_found_shapes(void **state)
{
    struct pg_t_resp r;
    pg_t_http("GET", sf("/services/data/v66.0/sobjects/Nope"), AUTH, NULL, 0, 5000, &r);
    assert_int_equal(r.status, 404);
    char hv[128];
    assert_int_equal(pg_t_resp_header(&r, "Sforce-Limit-Info", hv, sizeof hv), 0);
    assert_string_equal(hv, "api-usage=1/100000");
    json_t *j = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    assert_true(json_is_array(j));
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "errorCode")),
                        "NOT_FOUND");
    assert_non_null(json_string_value(json_object_get(json_array_get(j, 0), "message")));
    json_decref(j);

    assert_int_equal(req("POST", mi("/bi/v2/ACME/getGuestChecks"), JSON_HDR,
                         "{\"locRef\":\"1234\",\"busDt\":\"2026-03-02\"}", &j),
                     404);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Not Found");
    assert_non_null(json_string_value(json_object_get(j, "detail")));
    json_decref(j);
}

/* ---- the request log ---- */

static void test_sim_log_records_requests_in_order(void **state)
{
    const char *h1[] = {"Content-Type: application/json",
                        "Authorization: Bearer tok-123",
                        "Idempotency-Key: k-1",
                        "X-Request-Id: rid-9",
                        "webhook-id: msg_1",
                        "X-Unlisted: nope",
                        NULL};
    const char *h2[] = {"Content-Type: text/xml; charset=utf-8", "SOAPAction: \"\"", NULL};
    req("POST", sf("/services/data/v66.0/sobjects/Contact"), h1, "{\"LastName\":\"Roe\"}", NULL);
    req("GET", sf("/services/data/v66.0/query?q=SELECT+Id+FROM+Contact"), NULL, NULL, NULL);
    req("POST", sf("/hooks/om"), h2, "<soapenv:Envelope/>", NULL);
    req("GET", sf("/_sim/state"), NULL, NULL, NULL); /* control requests are not logged */

    json_t *log = get_json(sf("/_sim/log"));
    assert_int_equal(json_array_size(log), 3);
    json_t *a = json_array_get(log, 0), *b = json_array_get(log, 1), *c = json_array_get(log, 2);
    assert_int_equal(json_integer_value(json_object_get(a, "seq")), 1);
    assert_int_equal(json_integer_value(json_object_get(b, "seq")), 2);
    assert_int_equal(json_integer_value(json_object_get(c, "seq")), 3);
    assert_string_equal(json_string_value(json_object_get(a, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(a, "path")),
                        "/services/data/v66.0/sobjects/Contact");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "body"), "LastName")),
                        "Roe");
    json_t *ha = json_object_get(a, "headers");
    assert_string_equal(json_string_value(json_object_get(ha, "authorization")), "Bearer tok-123");
    assert_string_equal(json_string_value(json_object_get(ha, "idempotency-key")), "k-1");
    assert_string_equal(json_string_value(json_object_get(ha, "x-request-id")), "rid-9");
    assert_string_equal(json_string_value(json_object_get(ha, "webhook-id")), "msg_1");
    assert_null(json_object_get(ha, "x-unlisted"));
    assert_int_equal(json_integer_value(json_object_get(a, "status")), 401); /* unknown token */
    assert_true(json_is_null(json_object_get(a, "fault")));

    assert_string_equal(json_string_value(json_object_get(b, "query")), "q=SELECT+Id+FROM+Contact");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "args"), "q")),
                        "SELECT Id FROM Contact");
    assert_string_equal(json_string_value(json_object_get(c, "body")), "<soapenv:Envelope/>");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c, "headers"), "soapaction")), "\"\"");
    json_decref(log);

    /* ?since=N returns only newer entries */
    log = get_json(sf("/_sim/log?since=2"));
    assert_int_equal(json_array_size(log), 1);
    json_decref(log);
    /* each simulator has its own log */
    log = get_json(mi("/_sim/log"));
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);
}

/* ---- faults ---- */

static void test_sim_fault_status_next_n(void **state)
{
    assert_int_equal(
        post_fault(g_sim.url, "{\"status\":503,\"count\":2,\"headers\":{\"Retry-After\":\"1\"}}"),
        201);
    for (int i = 0; i < 2; i++) {
        struct pg_t_resp r;
        pg_t_get(sf("/services/data/"), &r);
        assert_int_equal(r.status, 503);
        char hv[32];
        assert_int_equal(pg_t_resp_header(&r, "Retry-After", hv, sizeof hv), 0);
        assert_string_equal(hv, "1");
        json_t *j = json_loads(r.body, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "errorCode")),
                            "SERVER_UNAVAILABLE");
        json_decref(j);
        pg_t_resp_free(&r);
    }
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 200);
    json_t *log = get_json(sf("/_sim/log"));
    assert_int_equal(json_array_size(log), 3);
    json_t *f = json_object_get(json_array_get(log, 0), "fault");
    assert_string_equal(json_string_value(json_object_get(f, "kind")), "status");
    assert_int_equal(json_integer_value(json_object_get(f, "status")), 503);
    assert_true(json_is_null(json_object_get(json_array_get(log, 2), "fault")));
    json_decref(log);
}

static void test_sim_fault_custom_body(void **state)
{
    assert_int_equal(post_fault(g_sim.url, "{\"status\":400,\"count\":1,\"body\":[{\"message\":"
                                           "\"unable to obtain exclusive access to this record\","
                                           "\"errorCode\":\"UNABLE_TO_LOCK_ROW\"}]}"),
                     201);
    assert_int_equal(post_fault(g_sim.url, "{\"status\":500,\"count\":1,\"body\":\"<fault/>\","
                                           "\"headers\":{\"Content-Type\":\"text/xml\"}}"),
                     201);
    json_t *j = NULL;
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, &j), 400);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "errorCode")),
                        "UNABLE_TO_LOCK_ROW");
    json_decref(j);
    struct pg_t_resp r;
    pg_t_get(sf("/services/data/"), &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "<fault/>");
    char ct[64];
    assert_int_equal(pg_t_resp_header(&r, "Content-Type", ct, sizeof ct), 0);
    assert_string_equal(ct, "text/xml");
    pg_t_resp_free(&r);
}

static void test_sim_fault_latency(void **state)
{
    assert_int_equal(post_fault(g_sim.url, "{\"latency_ms\":300,\"count\":2}"), 201);
    struct pg_t_resp r;
    for (int i = 0; i < 2; i++) {
        int64_t ms = timed_get(sf("/services/data/"), 5000, &r);
        assert_int_equal(r.status, 200);
        assert_true(ms >= 299);
        pg_t_resp_free(&r);
    }
    int64_t ms = timed_get(sf("/services/data/"), 5000, &r);
    assert_int_equal(r.status, 200);
    assert_true(ms < 250);
    pg_t_resp_free(&r);
}

static void test_sim_fault_hang_then_close(void **state)
{
    assert_int_equal(post_fault(g_sim.url, "{\"hang\":true,\"hang_ms\":300,\"count\":1}"), 201);
    struct pg_t_resp r;
    int64_t ms = timed_get(sf("/services/data/"), 5000, &r);
    assert_int_equal(r.curl_rc, CURLE_GOT_NOTHING);
    assert_int_equal(r.status, 0);
    assert_true(ms >= 299 && ms < 4000);
    pg_t_resp_free(&r);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 200);
}

static void test_sim_fault_hang_client_timeout(void **state)
{
    /* The hang holds only its own connection: others are served meanwhile. */
    assert_int_equal(post_fault(g_sim.url, "{\"hang\":true,\"hang_ms\":3000,\"count\":1}"), 201);
    struct pg_t_resp r;
    int64_t ms = timed_get(sf("/services/data/"), 300, &r);
    assert_int_equal(r.curl_rc, CURLE_OPERATION_TIMEDOUT);
    assert_true(ms < 2000);
    pg_t_resp_free(&r);
    ms = timed_get(sf("/services/data/"), 2000, &r);
    assert_int_equal(r.status, 200);
    assert_true(ms < 1000);
    pg_t_resp_free(&r);
}

static void test_sim_fault_drop(void **state)
{
    assert_int_equal(post_fault(g_sim.url, "{\"drop\":true,\"count\":1}"), 201);
    struct pg_t_resp r;
    assert_int_not_equal(pg_t_get(sf("/services/data/"), &r), 0);
    assert_int_equal(r.curl_rc, CURLE_GOT_NOTHING);
    pg_t_resp_free(&r);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 200);
    json_t *log = get_json(sf("/_sim/log"));
    json_t *f = json_object_get(json_array_get(log, 0), "fault");
    assert_string_equal(json_string_value(json_object_get(f, "kind")), "drop");
    json_decref(log);
}

static void test_sim_fault_path_scoped(void **state)
{
    assert_int_equal(post_fault(g_sim.url, "{\"status\":500,\"count\":1,\"method\":\"get\","
                                           "\"path\":\"/services/data/v66.0/sobjects\"}"),
                     201);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 200);
    assert_int_equal(
        req("POST", sf("/services/data/v66.0/sobjects/Contact"), AUTH_JSON, "{}", NULL), 404);
    assert_int_equal(req("GET", sf("/services/data/v66.0/sobjects/Contact"), AUTH, NULL, NULL),
                     500);
    assert_int_equal(req("GET", sf("/services/data/v66.0/sobjects/Contact"), AUTH, NULL, NULL),
                     404);
}

static void test_sim_faults_queue_in_order(void **state)
{
    /* Posted order decides: the first matching fault is used up before the next applies. */
    assert_int_equal(post_fault(g_sim.url, "{\"status\":502,\"count\":1}"), 201);
    assert_int_equal(post_fault(g_sim.url, "{\"status\":504}"), 201); /* until reset */
    json_t *list = get_json(sf("/_sim/faults"));
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "remaining")), 1);
    assert_true(json_is_null(json_object_get(json_array_get(list, 1), "remaining")));
    json_decref(list);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 502);
    for (int i = 0; i < 3; i++)
        assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 504);
    /* faults are per simulator */
    assert_int_equal(req("POST", mi("/bi/v2/ACME/getLatestBusDt"), JSON_HDR, "{}", NULL), 404);
    assert_int_equal(req("DELETE", sf("/_sim/faults"), NULL, NULL, NULL), 200);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 200);
}

static void test_sim_fault_bad_spec(void **state)
{
    static const char *const bad[] = {
        "not json",
        "[]",
        "{}",
        "{\"status\":99}",
        "{\"status\":\"503\"}",
        "{\"status\":503,\"count\":0}",
        "{\"status\":503,\"cuont\":1}",
        "{\"hang\":true,\"drop\":true}",
        "{\"status\":503,\"drop\":true}",
        "{\"hang_ms\":100}",
        "{\"latency_ms\":-1}",
        "{\"latency_ms\":10,\"body\":\"x\"}",
        "{\"status\":503,\"headers\":{\"X-A\":1}}",
        "{\"status\":503,\"headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}",
        "{\"status\":503,\"path\":\"services\"}",
        "{\"drop\":\"yes\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = NULL;
        char u[512];
        snprintf(u, sizeof u, "%s/_sim/faults", g_sim.url);
        long st = req("POST", u, JSON_HDR, bad[i], &j);
        if (st != 400)
            fail_msg("spec %s: status %ld", bad[i], st);
        assert_string_equal(json_string_value(json_object_get(j, "error")), "bad_fault");
        assert_non_null(json_string_value(json_object_get(j, "message")));
        json_decref(j);
    }
    json_t *j = NULL;
    char u[512];
    snprintf(u, sizeof u, "%s/_sim/faults", g_sim.url);
    req("POST", u, JSON_HDR, "{\"status\":503,\"cuont\":1}", &j);
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "cuont"));
    json_decref(j);
    json_t *list = get_json(sf("/_sim/faults"));
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 200);
}

/* ---- reset, state, limits ---- */

static void test_sim_reset_clears_log_and_faults(void **state)
{
    assert_int_equal(post_fault(g_sim.url, "{\"status\":500}"), 201);
    assert_int_equal(post_fault(g_sim.micros_url, "{\"latency_ms\":5}"), 201);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 500);
    assert_int_equal(req("POST", sf("/_sim/reset"), NULL, "", NULL), 200);
    json_t *log = get_json(sf("/_sim/log")), *faults = get_json(sf("/_sim/faults"));
    assert_int_equal(json_array_size(log), 0);
    assert_int_equal(json_array_size(faults), 0);
    json_decref(log);
    json_decref(faults);
    /* the MICROS simulator was not reset */
    faults = get_json(mi("/_sim/faults"));
    assert_int_equal(json_array_size(faults), 1);
    json_decref(faults);
    assert_int_equal(req("GET", sf("/services/data/"), NULL, NULL, NULL), 200);
    log = get_json(sf("/_sim/log"));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(log, 0), "seq")), 1);
    json_decref(log);
    /* the API usage counter restarts too */
    struct pg_t_resp r;
    pg_t_http("GET", sf("/services/data/v66.0/x"), AUTH, NULL, 0, 5000, &r);
    char hv[64];
    assert_int_equal(pg_t_resp_header(&r, "Sforce-Limit-Info", hv, sizeof hv), 0);
    assert_string_equal(hv, "api-usage=1/100000");
    pg_t_resp_free(&r);
}

/* The 18-char suffix, written independently of the simulator's code. */
static int id18_ok(const char *id)
{
    if (!id || strlen(id) != 18)
        return 0;
    for (int g = 0; g < 3; g++) {
        int v = 0;
        for (int i = 0; i < 5; i++)
            if (id[g * 5 + i] >= 'A' && id[g * 5 + i] <= 'Z')
                v += 1 << i;
        if (id[15 + g] != "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[v])
            return 0;
    }
    return 1;
}

static void test_sim_state_lists_seed_records(void **state)
{
    json_t *st = get_json(sf("/_sim/state"));
    json_t *contacts = json_object_get(st, "contacts");
    assert_int_equal(json_array_size(contacts), 50);
    size_t i, j;
    json_t *c, *d;
    int jane = 0;
    json_array_foreach(contacts, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        assert_true(id18_ok(id));
        assert_memory_equal(id, "003", 3);
        const char *tier = json_string_value(json_object_get(c, "Loyalty_Tier__c"));
        assert_non_null(tier);
        assert_true(strcmp(tier, "Bronze") == 0 || strcmp(tier, "Silver") == 0 ||
                    strcmp(tier, "Gold") == 0 || strcmp(tier, "Platinum") == 0);
        assert_true(json_is_integer(json_object_get(c, "Loyalty_Points__c")));
        assert_int_equal(strlen(json_string_value(json_object_get(c, "SystemModstamp"))), 24);
        const char *ly = json_string_value(json_object_get(c, "Loyalty_Id__c"));
        assert_non_null(ly);
        json_array_foreach(contacts, j, d)
        {
            if (j != i)
                assert_string_not_equal(ly, json_string_value(json_object_get(d, "Loyalty_Id__c")));
        }
        if (strcmp(ly, "LY-000123") == 0) {
            jane = 1;
            assert_string_equal(id, "0035g00000K1tbPAAR");
            assert_string_equal(json_string_value(json_object_get(c, "FirstName")), "Jane");
        }
    }
    assert_true(jane);
    json_decref(st);

    st = get_json(mi("/_sim/state"));
    json_t *locs = json_object_get(st, "locations"), *rvcs = json_object_get(st, "revenue_centers");
    assert_true(json_array_size(locs) >= 2);
    assert_true(json_array_size(rvcs) >= 2);
    json_array_foreach(locs, i, c)
    {
        assert_true(json_is_string(json_object_get(c, "locRef")));
        assert_true(json_is_string(json_object_get(c, "tz")));
    }
    json_array_foreach(rvcs, i, c)
    {
        assert_true(json_is_integer(json_object_get(c, "num")));
    }
    json_decref(st);
}

static void test_sim_body_cap(void **state)
{
    size_t n = MAX_BODY + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    struct pg_t_resp r;
    pg_t_http("POST", sf("/services/data/v66.0/sobjects/Contact"), NULL, big, n, 5000, &r);
    assert_int_equal(r.status, 413);
    pg_t_resp_free(&r);
    pg_t_http("POST", sf("/_sim/faults"), NULL, big, n, 5000, &r);
    assert_int_equal(r.status, 413);
    pg_t_resp_free(&r);
    free(big);
    json_t *log = get_json(sf("/_sim/log"));
    json_t *e = json_array_get(log, 0);
    assert_int_equal(json_integer_value(json_object_get(e, "body_len")), MAX_BODY + 1);
    assert_true(json_is_null(json_object_get(e, "body")));
    json_decref(log);
}

static void test_sim_unknown_control_path(void **state)
{
    assert_int_equal(req("GET", sf("/_sim/nope"), NULL, NULL, NULL), 404);
    assert_int_equal(req("PUT", sf("/_sim/log"), NULL, "", NULL), 405);
}

/* ---- process contract ---- */

/* Run posgate-sim on config text; returns the exit status and leaves its output in *out. */
static int run_bad(const char *dir, const char *name, const char *text, char **out)
{
    char cfg[600], log[600];
    snprintf(cfg, sizeof cfg, "%s/%s", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    if (text)
        assert_int_equal(pg_write_file_atomic(cfg, text, strlen(text)), 0);
    const char *argv[] = {pg_t_bin("posgate-sim"), "--config", cfg, NULL};
    pid_t pid = pg_t_spawn(argv, log);
    assert_true(pid > 0);
    int st = pg_t_wait_exit(pid, 10000);
    if (pg_read_file(log, 1 << 20, out, NULL) != 0)
        *out = strdup("");
    return st;
}

static void test_sim_bad_config_exits_nonzero(void **state)
{
    char *dir = pg_t_mkdtemp("simcfg");
    assert_non_null(dir);
    char seed[700];
    snprintf(seed, sizeof seed, "%s/bad_seed.json", dir);
    const char *bad_seed = "{\"contacts\":[{\"Id\":\"0035g00000K1tbPAAA\",\"LastName\":\"X\"}]}";
    assert_int_equal(pg_write_file_atomic(seed, bad_seed, strlen(bad_seed)), 0);
    static const struct {
        const char *name, *text, *expect;
    } cases[] = {
        {"missing.json", NULL, "missing.json"},
        {"syntax.json", "{\"salesforce\":", "syntax.json"},
        {"unknown_top.json", "{\"salesfroce\":{}}", "salesfroce"},
        {"unknown_sf.json", "{\"salesforce\":{\"prot\":1,\"port\":0}}", "prot"},
        {"type.json", "{\"salesforce\":{\"port\":\"8080\"}}", "salesforce.port"},
        {"range.json", "{\"micros\":{\"port\":70000}}", "micros.port"},
        {"section.json", "{\"micros\":[]}", "micros"},
        {"org.json", "{\"salesforce\":{\"org_id\":\"00D5g000004XyZ1EAA\"}}", "org_id"},
        {"level.json", "{\"log_level\":\"loud\"}", "log_level"},
        {"noseed.json", "{\"micros\":{\"seed\":\"no_such_seed.json\"}}", "no_such_seed.json"},
        {"badseed.json", "{\"salesforce\":{\"seed\":\"bad_seed.json\"}}", "AAR"},
        {"crc.json", "{\"micros\":{\"gl\":{\"crc_format\":\"octal\"}}}", "crc_format"},
        {"gl_key.json", "{\"micros\":{\"gl\":{\"logn\":\"x\"}}}", "logn"},
        {"whsec.json", "{\"micros\":{\"webhook_secret\":\"secret\"}}", "webhook_secret"},
        {"whfile.json", "{\"micros\":{\"webhook_secret\":\"file:no.secret\"}}", "no.secret"},
        {"jwt_key.json", "{\"salesforce\":{\"jwt\":{\"private_key\":\"bad_seed.json\"}}}",
         "private_key"},
        {"jwt_unknown.json", "{\"salesforce\":{\"jwt\":{\"alg\":\"RS256\"}}}", "alg"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        int st = run_bad(dir, cases[i].name, cases[i].text, &out);
        if (st <= 0 || st >= 128 || !strstr(out, cases[i].expect))
            fail_msg("%s: exit %d, output: %s", cases[i].name, st, out);
        free(out);
    }
    pg_t_rmtree(dir);
    free(dir);
}

static void test_sim_sigterm_exits_zero(void **state)
{
    struct pg_t_proc p;
    assert_int_equal(pg_t_sim_start(&p, "{\"salesforce\":{\"port\":0},\"micros\":{\"port\":0}}"),
                     0);
    /* a request in the middle of a hang must not hold up shutdown */
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/faults", p.url);
    assert_int_equal(req("POST", u, JSON_HDR, "{\"hang\":true,\"hang_ms\":60000}", NULL), 201);
    struct pg_t_resp r;
    snprintf(u, sizeof u, "%s/services/data/", p.url);
    pg_t_http("GET", u, NULL, NULL, 0, 200, &r);
    pg_t_resp_free(&r);
    int64_t t0 = pg_now_ms();
    assert_int_equal(pg_t_proc_stop(&p), 0);
    assert_true(pg_now_ms() - t0 < 5000);
    pg_t_proc_destroy(&p);
}

static void test_sim_api_limit_403(void **state)
{
    struct pg_t_proc p;
    assert_int_equal(pg_t_sim_start(&p, "{\"salesforce\":{\"api_limit\":2}}"), 0);
    char u[256];
    char bearer[256];
    const char *auth[] = {bearer, NULL};
    assert_int_equal(mint_token(p.url, bearer, sizeof bearer), 0);
    snprintf(u, sizeof u, "%s/services/data/v66.0/sobjects/Contact/x", p.url);
    struct pg_t_resp r;
    for (int i = 1; i <= 3; i++) {
        pg_t_http("GET", u, auth, NULL, 0, 5000, &r);
        char hv[64], want[64];
        snprintf(want, sizeof want, "api-usage=%d/2", i);
        assert_int_equal(pg_t_resp_header(&r, "Sforce-Limit-Info", hv, sizeof hv), 0);
        assert_string_equal(hv, want);
        assert_int_equal(r.status, i <= 2 ? 404 : 403);
        pg_t_resp_free(&r);
    }
    pg_t_http("GET", u, auth, NULL, 0, 5000, &r);
    assert_non_null(strstr(r.body, "REQUEST_LIMIT_EXCEEDED"));
    pg_t_resp_free(&r);
    assert_int_equal(pg_t_proc_stop(&p), 0);
    pg_t_proc_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sim_versions_list, reset_both),
        cmocka_unit_test_setup(test_sim_not_found_shapes, reset_both),
        cmocka_unit_test_setup(test_sim_log_records_requests_in_order, reset_both),
        cmocka_unit_test_setup(test_sim_fault_status_next_n, reset_both),
        cmocka_unit_test_setup(test_sim_fault_custom_body, reset_both),
        cmocka_unit_test_setup(test_sim_fault_latency, reset_both),
        cmocka_unit_test_setup(test_sim_fault_hang_then_close, reset_both),
        cmocka_unit_test_setup(test_sim_fault_hang_client_timeout, reset_both),
        cmocka_unit_test_setup(test_sim_fault_drop, reset_both),
        cmocka_unit_test_setup(test_sim_fault_path_scoped, reset_both),
        cmocka_unit_test_setup(test_sim_faults_queue_in_order, reset_both),
        cmocka_unit_test_setup(test_sim_fault_bad_spec, reset_both),
        cmocka_unit_test_setup(test_sim_reset_clears_log_and_faults, reset_both),
        cmocka_unit_test_setup(test_sim_state_lists_seed_records, reset_both),
        cmocka_unit_test_setup(test_sim_body_cap, reset_both),
        cmocka_unit_test_setup(test_sim_unknown_control_path, reset_both),
        cmocka_unit_test(test_sim_bad_config_exits_nonzero),
        cmocka_unit_test(test_sim_sigterm_exits_zero),
        cmocka_unit_test(test_sim_api_limit_403),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
