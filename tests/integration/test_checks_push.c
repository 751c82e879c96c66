/*
 * POST /v1/micros/guest-checks against the real gateway and a private redis-server: the three
 * body shapes, per-check results, who may send checks for which location, the caps, validation
 * before any write, Idempotency-Key, and Redis down (503, nothing acknowledged).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "auth/jwt.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

#include <openssl/evp.h>

#define KEY_1234 "station-1234-key-0123456789"
#define KEY_1235 "station-1235-key-0123456789"

static struct pg_t_redis R;
static struct pg_t_proc gw;

static void sha256_hex(const char *s, char out[72]);

static int setup(void **state)
{
    if (pg_t_redis_start(&R) != 0)
        return -1;
    struct pg_redis_opts o = {.url = R.url,
                              .connect_timeout_ms = 500,
                              .command_timeout_ms = 2000,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 200};
    if (pg_redis_init(&o) != PG_OK)
        return -1;
    char h1[72], h2[72];
    sha256_hex(KEY_1234, h1);
    sha256_hex(KEY_1235, h2);
    static char cfg[4096];
    snprintf(
        cfg, sizeof cfg,
        "{\"listen\":{\"port\":0},\"log\":{\"level\":\"info\"},"
        "\"redis\":{\"url\":\"%s\",\"connect_timeout_ms\":300,\"command_timeout_ms\":1000,"
        "\"reconnect_min_ms\":20,\"reconnect_max_ms\":200},"
        "\"lookup\":{\"stations\":{"
        "\"till-1234\":{\"key_hash\":\"sha256:%s\",\"location\":\"1234\",\"stores\":[\"1234\"]},"
        "\"till-1235\":{\"key_hash\":\"sha256:%s\",\"location\":\"1235\","
        "\"stores\":[\"1235\"]}}},"
        "\"partners\":{\"jwt\":{\"iss\":\"https://partners.example\",\"aud\":\"posgate\","
        "\"keys\":{\"p-2026a\":{\"alg\":\"RS256\",\"key\":\"file:%s\"}}}},"
        "\"checks\":{\"push_max_checks\":5,\"push_body_max_bytes\":4096}}",
        R.url, h1, h2, pg_t_src("tests/data/jwt/test-rsa-a.pub.pem"));
    return pg_t_gateway_start(&gw, cfg) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_redis_shutdown();
    pg_t_redis_destroy(&R);
    return st == 0 ? 0 : -1;
}

static int flush(void **state)
{
    return pg_t_redis_cmd(&R, "FLUSHALL");
}

/* ---------------------------------------------------------------- helpers */

static void sha256_hex(const char *s, char out[72])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static char *partner_token(const char *scope, const char *store)
{
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(
        pg_read_file(pg_t_src("tests/data/jwt/test-rsa-a.key.pem"), 1 << 16, &pem, &len), 0);
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:s}", "iss", "https://partners.example", "aud", "posgate",
                  "sub", "acme-middleware", "exp", (json_int_t)(time(NULL) + 300), "scope", scope);
    if (store) /* a token restricted to some stores */
        json_object_set_new(claims, "stores", json_pack("[s]", store));
    char *tok = NULL;
    assert_int_equal(pg_jwt_sign_rs256(pem, len, "p-2026a", claims, &tok), 0);
    json_decref(claims);
    free(pem);
    return tok;
}

struct reply {
    long status;
    json_t *body;
    char replayed[16];
    char retry_after[16];
};

/* POST body to /v1/micros/guest-checks + query with one auth header (and extra, may be NULL). */
static struct reply post(const char *query, const char *auth, const char *extra, const char *body)
{
    char u[512];
    snprintf(u, sizeof u, "%s/v1/micros/guest-checks%s", gw.url, query);
    const char *h[] = {"Content-Type: application/json", auth, extra, NULL};
    struct pg_t_resp r;
    assert_int_equal(pg_t_http("POST", u, h, body, strlen(body), 10000, &r), 0);
    struct reply out = {.status = r.status, .body = json_loads(r.body, 0, NULL)};
    if (pg_t_resp_header(&r, "Idempotent-Replayed", out.replayed, sizeof out.replayed) != 0)
        out.replayed[0] = '\0';
    if (pg_t_resp_header(&r, "Retry-After", out.retry_after, sizeof out.retry_after) != 0)
        out.retry_after[0] = '\0';
    if (!out.body)
        fail_msg("not JSON (%ld): %s", r.status, r.body);
    pg_t_resp_free(&r);
    return out;
}

#define ST_1234 "X-Api-Key: " KEY_1234
#define ST_1235 "X-Api-Key: " KEY_1235

static long long qlen(void)
{
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "XLEN " PG_KEY_CHK_QUEUE), PG_OK);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static int held(const char *loc, long long gcid)
{
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "EXISTS " PG_KEY_CHK "%s:%lld", loc, gcid), PG_OK);
    int v = r->integer == 1;
    freeReplyObject(r);
    return v;
}

static const char *result_of(const struct reply *r, size_t i)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(r->body, "results"), i), "result"));
}

#define CHECK(id, upd)                                                                             \
    "{\"guestCheckId\":" #id ",\"chkNum\":" #id ",\"opnBusDt\":\"2026-11-20\","                    \
    "\"clsdBusDt\":\"2026-11-20\",\"lastUpdatedUTC\":\"" upd "\",\"clsdFlag\":true,"               \
    "\"chkTtl\":12.5,\"detailLines\":[]}"

/* ---------------------------------------------------------------- tests */

static void one_array_and_bi_body(void **state)
{
    struct reply r = post("?location=1234", ST_1234, NULL, CHECK(1, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 202);
    assert_string_equal(json_string_value(json_object_get(r.body, "location")), "1234");
    assert_int_equal(json_integer_value(json_object_get(r.body, "queued")), 1);
    json_t *res0 = json_array_get(json_object_get(r.body, "results"), 0);
    assert_int_equal(json_integer_value(json_object_get(res0, "guestCheckId")), 1);
    assert_string_equal(result_of(&r, 0), "queued");
    json_decref(r.body);
    assert_true(held("1234", 1));

    r = post("?location=1234", ST_1234, NULL,
             "[" CHECK(2, "2026-11-20T12:00:00") "," CHECK(3, "2026-11-20T12:00:00") "]");
    assert_int_equal(r.status, 202);
    assert_int_equal(json_array_size(json_object_get(r.body, "results")), 2);
    assert_string_equal(result_of(&r, 1), "queued");
    json_decref(r.body);

    /* a getGuestChecks body names its location; ?location= may repeat it */
    r = post("?location=1234", ST_1234, NULL,
             "{\"curUTC\":\"2026-11-20T13:00:00\",\"locRef\":\"1234\",\"guestChecks\":[" CHECK(
                 4, "2026-11-20T12:00:00") "]}");
    assert_int_equal(r.status, 202);
    json_decref(r.body);
    r = post("", ST_1234, NULL,
             "{\"locRef\":\"1234\",\"guestChecks\":[" CHECK(5, "2026-11-20T12:00:00") "]}");
    assert_int_equal(r.status, 202);
    json_decref(r.body);
    assert_int_equal(qlen(), 5);
    for (int id = 1; id <= 5; id++)
        assert_true(held("1234", id));

    /* the same check again is unchanged, an older version stale: nothing more is queued */
    r = post("?location=1234", ST_1234, NULL,
             "[" CHECK(1, "2026-11-20T12:00:00") "," CHECK(2, "2026-11-20T11:00:00") "]");
    assert_int_equal(r.status, 202);
    assert_string_equal(result_of(&r, 0), "unchanged");
    assert_string_equal(result_of(&r, 1), "stale");
    assert_int_equal(json_integer_value(json_object_get(r.body, "unchanged")), 1);
    assert_int_equal(json_integer_value(json_object_get(r.body, "stale")), 1);
    json_decref(r.body);
    assert_int_equal(qlen(), 5);
}

static void where_the_location_comes_from(void **state)
{
    struct reply r = post("", ST_1234, NULL, CHECK(1, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 400); /* a bare check names no location */
    json_decref(r.body);
    r = post("?location=1235", ST_1234, NULL,
             "{\"locRef\":\"1234\",\"guestChecks\":[" CHECK(1, "2026-11-20T12:00:00") "]}");
    assert_int_equal(r.status, 400); /* they disagree */
    json_decref(r.body);
    r = post("?location=12%2034", ST_1234, NULL, CHECK(1, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 400); /* not a locRef */
    json_decref(r.body);
    assert_int_equal(qlen(), 0);
}

static void stations_only_for_their_location(void **state)
{
    struct reply r = post("?location=1234", ST_1235, NULL, CHECK(7, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 403);
    json_decref(r.body);
    r = post("?location=1234", "X-Api-Key: nobody-knows-this-key", NULL,
             CHECK(7, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 401);
    json_decref(r.body);
    r = post("?location=1234", NULL, NULL, CHECK(7, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 401);
    json_decref(r.body);
    assert_false(held("1234", 7));
    r = post("?location=1235", ST_1235, NULL, CHECK(7, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 202);
    json_decref(r.body);
    assert_true(held("1235", 7));
}

/* A station key kept in Redis (pg:apikey:<sha256>) is bound to its location the same way. */
static void redis_station_keys_too(void **state)
{
    char h[72], cmd[300];
    sha256_hex("redis-station-key-0123456789", h);
    snprintf(cmd, sizeof cmd,
             "SET " PG_KEY_APIKEY "%s {\"id\":\"till-r\",\"location\":\"1235\","
             "\"stores\":[\"1235\"]}",
             h);
    assert_int_equal(pg_t_redis_cmd(&R, cmd), 0);
    const char *key = "X-Api-Key: redis-station-key-0123456789";
    struct reply r = post("?location=1234", key, NULL, CHECK(9, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 403);
    json_decref(r.body);
    r = post("?location=1235", key, NULL, CHECK(9, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 202);
    json_decref(r.body);
    assert_false(held("1234", 9));
    assert_true(held("1235", 9));
}

static void partner_tokens_need_checks_write(void **state)
{
    char *t = partner_token("loyalty:read", NULL);
    char auth[4096];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t);
    free(t);
    struct reply r = post("?location=1234", auth, NULL, CHECK(8, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 403);
    json_decref(r.body);
    assert_false(held("1234", 8));
    t = partner_token("loyalty:read checks:write", NULL);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t);
    free(t);
    r = post("?location=1234", auth, NULL, CHECK(8, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 202);
    json_decref(r.body);
    assert_true(held("1234", 8));
    /* restricted to store 1235: not 1234 */
    t = partner_token("checks:write", "1235");
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t);
    free(t);
    r = post("?location=1234", auth, NULL, CHECK(10, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 403);
    json_decref(r.body);
    r = post("?location=1235", auth, NULL, CHECK(10, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 202);
    json_decref(r.body);
    assert_false(held("1234", 10));
}

static void caps_and_validation_write_nothing(void **state)
{
    /* 6 checks: over push_max_checks (5) */
    char six[2048] = "[";
    for (int id = 11; id <= 16; id++) {
        size_t l = strlen(six);
        snprintf(six + l, sizeof six - l, "%s{\"guestCheckId\":%d}", id > 11 ? "," : "", id);
    }
    strcat(six, "]");
    struct reply r = post("?location=1234", ST_1234, NULL, six);
    assert_int_equal(r.status, 413);
    json_decref(r.body);
    /* a body over push_body_max_bytes (4096) */
    char big[6000];
    int n = snprintf(big, sizeof big, "{\"guestCheckId\":17,\"chkName\":\"");
    memset(big + n, 'x', 5000);
    snprintf(big + n + 5000, sizeof big - (size_t)n - 5000, "\"}");
    r = post("?location=1234", ST_1234, NULL, big);
    assert_int_equal(r.status, 413);
    json_decref(r.body);
    /* one bad check among good ones: 400 naming its index, none of them queued */
    r = post("?location=1234", ST_1234, NULL,
             "[" CHECK(18, "2026-11-20T12:00:00") ",{\"guestCheckId\":\"abc\"}," CHECK(
                 19, "2026-11-20T12:00:00") ",{\"chkNum\":4}]");
    assert_int_equal(r.status, 400);
    json_t *errs = json_object_get(r.body, "errors");
    assert_int_equal(json_array_size(errs), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "index")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 1), "index")), 3);
    assert_non_null(strstr(json_string_value(json_object_get(r.body, "detail")), "check 1"));
    json_decref(r.body);
    r = post("?location=1234", ST_1234, NULL, "[]");
    assert_int_equal(r.status, 400);
    json_decref(r.body);
    r = post("?location=1234", ST_1234, NULL, "[1,");
    assert_int_equal(r.status, 400);
    json_decref(r.body);
    assert_int_equal(qlen(), 0);
    assert_false(held("1234", 11));
    assert_false(held("1234", 18));
}

static void idempotency_key(void **state)
{
    const char *body = "[" CHECK(21, "2026-11-20T12:00:00") "]";
    struct reply a = post("?location=1234", ST_1234, "Idempotency-Key: push-21", body);
    assert_int_equal(a.status, 202);
    assert_string_equal(a.replayed, "");
    /* the retry gets the first reply again (queued, not unchanged): the request did not run */
    struct reply b = post("?location=1234", ST_1234, "Idempotency-Key: push-21", body);
    assert_int_equal(b.status, 202);
    assert_string_equal(b.replayed, "true");
    assert_true(json_equal(a.body, b.body));
    assert_string_equal(result_of(&b, 0), "queued");
    json_decref(a.body);
    json_decref(b.body);
    assert_int_equal(qlen(), 1);
    /* the same key with another body */
    struct reply c = post("?location=1234", ST_1234, "Idempotency-Key: push-21",
                          "[" CHECK(22, "2026-11-20T12:00:00") "]");
    assert_int_equal(c.status, 422);
    json_decref(c.body);
    assert_false(held("1234", 22));
    /* the same key and body for another location is another request too, not a replay */
    char *t = partner_token("checks:write", NULL);
    char auth[4096];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t);
    free(t);
    struct reply d = post("?location=1234", auth, "Idempotency-Key: push-23", body);
    assert_int_equal(d.status, 202);
    json_decref(d.body);
    struct reply e = post("?location=1235", auth, "Idempotency-Key: push-23", body);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.replayed, "");
    json_decref(e.body);
    assert_false(held("1235", 21));
}

static void redis_down_is_503_and_nothing_queued(void **state)
{
    pg_t_redis_stop(&R);
    struct reply r = post("?location=1234", ST_1234, NULL, CHECK(31, "2026-11-20T12:00:00"));
    assert_int_equal(pg_t_redis_restart(&R), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.retry_after, "1");
    json_decref(r.body);
    assert_false(held("1234", 31));
    /* and it recovers */
    int64_t end = pg_now_ms() + 5000;
    long status = 0;
    while (status != 202 && pg_now_ms() < end) {
        r = post("?location=1234", ST_1234, NULL, CHECK(31, "2026-11-20T12:00:00"));
        status = r.status;
        json_decref(r.body);
        if (status != 202)
            pg_sleep_ms(50);
    }
    assert_int_equal(status, 202);
    assert_true(held("1234", 31));
}

static void counted_in_metrics(void **state)
{
    struct reply r = post("?location=1234", ST_1234, NULL, CHECK(41, "2026-11-20T12:00:00"));
    assert_int_equal(r.status, 202);
    json_decref(r.body);
    char u[256];
    snprintf(u, sizeof u, "%s/metrics", gw.url);
    struct pg_t_resp m;
    assert_int_equal(pg_t_get(u, &m), 0);
    char *p = strstr(m.body, "posgate_checks_received_total{source=\"push\",result=\"queued\"} ");
    assert_non_null(p);
    assert_true(atoll(strchr(p, '}') + 2) >= 1);
    pg_t_resp_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(one_array_and_bi_body, flush),
        cmocka_unit_test_setup(where_the_location_comes_from, flush),
        cmocka_unit_test_setup(stations_only_for_their_location, flush),
        cmocka_unit_test_setup(redis_station_keys_too, flush),
        cmocka_unit_test_setup(partner_tokens_need_checks_write, flush),
        cmocka_unit_test_setup(caps_and_validation_write_nothing, flush),
        cmocka_unit_test_setup(idempotency_key, flush),
        cmocka_unit_test_setup(redis_down_is_503_and_nothing_queued, flush),
        cmocka_unit_test_setup(counted_in_metrics, flush),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
