/*
 * The HTTP engine in-process on port 0, with a route table of the test's own: auth policies
 * fail closed, path parameters reach handlers, handler errors become problem+json.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/http.h"
#include "tests/support/harness.h"

static int h_echo(struct pg_req *req)
{
    size_t len = 0;
    const char *body = pg_req_body(req, &len);
    json_t *j = json_pack("{s:s?, s:s?, s:i}", "id", pg_req_param(req, "id"), "q",
                          pg_req_query(req, "q"), "body_len", (int)len);
    (void)body;
    return pg_req_reply_json(req, 200, j);
}

static int h_fail(struct pg_req *req)
{
    return PG_EUNAVAIL;
}

static const struct pg_route routes[] = {
    {"GET", "/open/{id}", "open", h_echo, PG_AUTH_NONE, 0},
    {"POST", "/open/{id}", "open_post", h_echo, PG_AUTH_NONE, 16},
    {"GET", "/secret", "secret", h_echo, PG_AUTH_PARTNER, 0},
    {"GET", "/fail", "fail", h_fail, PG_AUTH_NONE, 0},
};

static int deny(struct pg_req *req, enum pg_auth_policy p)
{
    return pg_req_header(req, "X-Let-Me-In") ? PG_OK : PG_EAUTH;
}

static struct pg_http *
start(int (*authorize)(struct pg_req *, enum pg_auth_policy), char *base, size_t basesz)
{
    struct pg_http_opts o = {
        .address = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .connection_timeout_s = 5,
        .connection_limit = 64,
        .header_max_bytes = 16384,
        .body_max_bytes = 1024,
        .routes = routes,
        .nroutes = sizeof routes / sizeof routes[0],
        .authorize = authorize,
    };
    struct pg_http *h = NULL;
    assert_int_equal(pg_http_start(&o, &h), 0);
    snprintf(base, basesz, "http://127.0.0.1:%d", pg_http_port(h));
    return h;
}

static long
get_status(const char *base, const char *path, const char *const *hdrs, struct pg_t_resp *r)
{
    char u[256];
    snprintf(u, sizeof u, "%s%s", base, path);
    assert_int_equal(pg_t_http("GET", u, hdrs, NULL, 0, 0, r), 0);
    return r->status;
}

static void auth_fails_closed_without_authorizer(void **state)
{
    char base[64];
    struct pg_http *h = start(NULL, base, sizeof base);
    struct pg_t_resp r;
    assert_int_equal(get_status(base, "/secret", NULL, &r), 403);
    assert_non_null(strstr(r.body, "\"status\":403"));
    pg_t_resp_free(&r);
    assert_int_equal(get_status(base, "/open/abc?q=hello", NULL, &r), 200);
    assert_non_null(strstr(r.body, "\"id\":\"abc\""));
    assert_non_null(strstr(r.body, "\"q\":\"hello\""));
    pg_t_resp_free(&r);
    pg_http_stop(h, 1000);
}

static void authorizer_decides(void **state)
{
    char base[64];
    struct pg_http *h = start(deny, base, sizeof base);
    struct pg_t_resp r;
    assert_int_equal(get_status(base, "/secret", NULL, &r), 401);
    assert_non_null(strstr(r.body, "urn:posgate:problem:unauthorized"));
    pg_t_resp_free(&r);
    const char *in[] = {"X-Let-Me-In: yes", NULL};
    assert_int_equal(get_status(base, "/secret", in, &r), 200);
    pg_t_resp_free(&r);
    pg_http_stop(h, 1000);
}

static void handler_error_becomes_problem_and_route_cap_applies(void **state)
{
    char base[64];
    struct pg_http *h = start(NULL, base, sizeof base);
    struct pg_t_resp r;
    assert_int_equal(get_status(base, "/fail", NULL, &r), 503);
    char ct[64];
    assert_int_equal(pg_t_resp_header(&r, "Content-Type", ct, sizeof ct), 0);
    assert_string_equal(ct, "application/problem+json");
    pg_t_resp_free(&r);

    char u[256];
    snprintf(u, sizeof u, "%s/open/x", base);
    /* this route's own cap is 16 bytes, below the server default of 1024 */
    assert_int_equal(pg_t_http("POST", u, NULL, "0123456789abcdef", 16, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"body_len\":16"));
    pg_t_resp_free(&r);
    assert_int_equal(pg_t_http("POST", u, NULL, "0123456789abcdefX", 17, 0, &r), 0);
    assert_int_equal(r.status, 413);
    pg_t_resp_free(&r);
    pg_http_stop(h, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_fails_closed_without_authorizer),
        cmocka_unit_test(authorizer_decides),
        cmocka_unit_test(handler_error_becomes_problem_and_route_cap_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
