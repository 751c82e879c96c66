/* Route matching, request ids, buffers, log masking: the engine's pure parts. No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/buf.h"
#include "server/http.h"
#include "server/log.h"
#include "server/util.h"

static int dummy(struct pg_req *req)
{
    return 0;
}

static const struct pg_route routes[] = {
    {"GET", "/healthz", "healthz", dummy, PG_AUTH_NONE, 0, 0},
    {"GET", "/v1/members/{id}", "member", dummy, PG_AUTH_NONE, 0, 0},
    {"POST", "/v1/members/{id}", "member_post", dummy, PG_AUTH_NONE, 0, 0},
    {"GET", "/v1/a/{x}/b/{y}", "two", dummy, PG_AUTH_NONE, 0, 0},
};
#define NR (sizeof routes / sizeof routes[0])

static void match_literal_and_templates(void **state)
{
    const struct pg_route *r = NULL;
    char v[PG_REQ_MAX_PARAMS][128];
    size_t nv = 99;
    char allow[64];
    assert_int_equal(pg_http_match(routes, NR, "GET", "/healthz", &r, v, &nv, allow, sizeof allow),
                     PG_MATCH_OK);
    assert_string_equal(r->name, "healthz");
    assert_int_equal(nv, 0);

    assert_int_equal(
        pg_http_match(routes, NR, "POST", "/v1/members/003ABC", &r, v, &nv, allow, sizeof allow),
        PG_MATCH_OK);
    assert_string_equal(r->name, "member_post");
    assert_int_equal(nv, 1);
    assert_string_equal(v[0], "003ABC");

    assert_int_equal(
        pg_http_match(routes, NR, "GET", "/v1/a/1/b/2", &r, v, &nv, allow, sizeof allow),
        PG_MATCH_OK);
    assert_int_equal(nv, 2);
    assert_string_equal(v[0], "1");
    assert_string_equal(v[1], "2");
}

static void no_path(void **state)
{
    const struct pg_route *r = NULL;
    char v[PG_REQ_MAX_PARAMS][128];
    size_t nv;
    char allow[64];
    const char *misses[] = {
        "/", "/healthz/", "/healthzz", "/v1/members", "/v1/members/", "/v1/members/x/y",
        "",  "/v1/a/1/b"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++)
        if (pg_http_match(routes, NR, "GET", misses[i], &r, v, &nv, allow, sizeof allow) !=
            PG_MATCH_NO_PATH)
            fail_msg("'%s' should not match", misses[i]);
}

static void wrong_method_lists_allow(void **state)
{
    const struct pg_route *r = NULL;
    char v[PG_REQ_MAX_PARAMS][128];
    size_t nv;
    char allow[64];
    assert_int_equal(
        pg_http_match(routes, NR, "DELETE", "/v1/members/1", &r, v, &nv, allow, sizeof allow),
        PG_MATCH_NO_METHOD);
    assert_string_equal(allow, "GET, POST");
    assert_int_equal(pg_http_match(routes, NR, "POST", "/healthz", &r, v, &nv, allow, sizeof allow),
                     PG_MATCH_NO_METHOD);
    assert_string_equal(allow, "GET");
}

static void request_id_rules(void **state)
{
    assert_true(pg_http_request_id_ok("abc-123_X.y:z"));
    assert_false(pg_http_request_id_ok(""));
    assert_false(pg_http_request_id_ok("has space"));
    assert_false(pg_http_request_id_ok("quote\"inject"));
    assert_false(pg_http_request_id_ok("new\nline"));
    char longid[80];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_false(pg_http_request_id_ok(longid));
    longid[PG_REQ_ID_MAX] = '\0';
    assert_true(pg_http_request_id_ok(longid));
}

static void buffer_cap(void **state)
{
    struct pg_buf b;
    pg_buf_init(&b, 8);
    assert_int_equal(pg_buf_puts(&b, "12345"), PG_OK);
    assert_int_equal(pg_buf_puts(&b, "6789"), PG_ETOOLARGE);
    assert_int_equal(b.len, 5); /* unchanged after a refused append */
    assert_int_equal(pg_buf_printf(&b, "%d", 678), PG_OK);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(pg_buf_printf(&b, "%d", 9), PG_ETOOLARGE);
    pg_buf_free(&b);
}

static void masking(void **state)
{
    char out[64];
    pg_log_mask_email("jane.doe@example.com", out, sizeof out);
    assert_string_equal(out, "j***@example.com");
    pg_log_mask_email("nonsense", out, sizeof out);
    assert_string_equal(out, "***");
    pg_log_mask_phone("+15551234567", out, sizeof out);
    assert_string_equal(out, "+*********67");
    pg_log_mask_phone("12", out, sizeof out);
    assert_string_equal(out, "***");
}

static void strtonum(void **state)
{
    long long v = 0;
    assert_int_equal(pg_strtonum("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(pg_strtonum("101", 0, 100, &v), PG_EINVAL);
    assert_int_equal(pg_strtonum("4x", 0, 100, &v), PG_EINVAL);
    assert_int_equal(pg_strtonum("", 0, 100, &v), PG_EINVAL);
    assert_int_equal(pg_strtonum("99999999999999999999", 0, INT64_MAX, &v), PG_EINVAL);
}

static void error_map(void **state)
{
    assert_int_equal(pg_err_http_status(PG_ETOOLARGE), 413);
    assert_int_equal(pg_err_http_status(PG_EUNAVAIL), 503);
    assert_string_equal(pg_errname(PG_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(pg_strerror(-999), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(match_literal_and_templates),
        cmocka_unit_test(no_path),
        cmocka_unit_test(wrong_method_lists_allow),
        cmocka_unit_test(request_id_rules),
        cmocka_unit_test(buffer_cap),
        cmocka_unit_test(masking),
        cmocka_unit_test(strtonum),
        cmocka_unit_test(error_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
