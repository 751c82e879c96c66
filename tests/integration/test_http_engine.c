/*
 * The HTTP engine in-process on port 0, with a route table of the test's own: auth policies
 * fail closed, path parameters reach handlers, handler errors become problem+json.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/http.h"
#include "server/util.h"
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

static int h_slow(struct pg_req *req)
{
    pg_sleep_ms(1500); /* stands in for a hung Redis or a slow Salesforce call */
    return pg_req_reply_json(req, 200, json_pack("{s:b}", "slow", 1));
}

static int h_slow_continuation(struct pg_req *req)
{
    pg_sleep_ms(1500); /* the upstream call */
    return pg_req_reply_json(req, 200, json_pack("{s:b}", "deferred", 1));
}

static int h_defer(struct pg_req *req)
{
    return pg_req_defer(req, h_slow_continuation);
}

static const struct pg_route routes[] = {
    {"GET", "/defer", "defer", h_defer, PG_AUTH_NONE, 0, 0},
    {"GET", "/open/{id}", "open", h_echo, PG_AUTH_NONE, 0, 0},
    {"POST", "/open/{id}", "open_post", h_echo, PG_AUTH_NONE, 16, 0},
    {"GET", "/secret", "secret", h_echo, PG_AUTH_PARTNER, 0, 0},
    {"GET", "/fail", "fail", h_fail, PG_AUTH_NONE, 0, 0},
    {"GET", "/slow", "slow", h_slow, PG_AUTH_NONE, 0, 0},
    {"GET", "/inline/{id}", "inline", h_echo, PG_AUTH_NONE, 0, 1},
};

static int deny(struct pg_req *req, enum pg_auth_policy p)
{
    return pg_req_header(req, "X-Let-Me-In") ? PG_OK : PG_EAUTH;
}

static struct pg_http *start_n(int (*authorize)(struct pg_req *, enum pg_auth_policy),
                               char *base,
                               size_t basesz,
                               int threads,
                               int workers)
{
    struct pg_http_opts o = {
        .address = "127.0.0.1",
        .port = 0,
        .threads = threads,
        .workers = workers,
        .slow_workers = 2,
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

static struct pg_http *
start(int (*authorize)(struct pg_req *, enum pg_auth_policy), char *base, size_t basesz)
{
    return start_n(authorize, base, basesz, 2, 2);
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

struct bg {
    pthread_t t;
    char url[256];
    struct pg_t_resp r;
};

static void *bg_run(void *arg)
{
    struct bg *b = arg;
    pg_t_http("GET", b->url, NULL, NULL, 0, 10000, &b->r);
    return NULL;
}

/* With ONE I/O thread, a handler blocked for 1.5 s must not hold up other requests: they are
 * answered while it is still running (the slow one is on a worker, its connection suspended). */
static void slow_handler_does_not_stall_io_thread(void **state)
{
    char base[64];
    struct pg_http *h = start_n(NULL, base, sizeof base, 1, 2);
    struct bg slow;
    snprintf(slow.url, sizeof slow.url, "%s/slow", base);
    pthread_create(&slow.t, NULL, bg_run, &slow);
    pg_sleep_ms(100); /* let the slow request reach its handler */
    struct pg_t_resp r;
    int64_t t0 = pg_now_ms();
    assert_int_equal(get_status(base, "/open/fast", NULL, &r), 200); /* worker route */
    pg_t_resp_free(&r);
    assert_int_equal(get_status(base, "/inline/fast", NULL, &r), 200); /* I/O-thread route */
    pg_t_resp_free(&r);
    int64_t took = pg_now_ms() - t0;
    pthread_join(slow.t, NULL);
    assert_int_equal(slow.r.status, 200);
    pg_t_resp_free(&slow.r);
    /* both answered well before the slow handler's 1.5 s ended */
    if (took >= 1000)
        fail_msg("fast requests took %lld ms behind a slow one", (long long)took);
    pg_http_stop(h, 3000);
}

/* Stopping waits for a request that is on a worker, and it still gets its reply. */
static void stop_finishes_worker_request(void **state)
{
    char base[64];
    struct pg_http *h = start_n(NULL, base, sizeof base, 1, 2);
    struct bg slow;
    snprintf(slow.url, sizeof slow.url, "%s/slow", base);
    pthread_create(&slow.t, NULL, bg_run, &slow);
    for (int64_t end = pg_now_ms() + 2000; pg_http_in_flight() < 1 && pg_now_ms() < end;)
        pg_sleep_ms(5);
    pg_http_stop(h, 5000);
    pthread_join(slow.t, NULL);
    assert_int_equal(slow.r.status, 200);
    assert_non_null(strstr(slow.r.body, "\"slow\":true"));
    pg_t_resp_free(&slow.r);
}

/* With ONE handler worker, a request waiting on an upstream (deferred to the slow pool) does not
 * hold it: the next request is answered while the slow one still waits. */
static void deferred_request_frees_the_worker(void **state)
{
    char base[64];
    struct pg_http *h = start_n(NULL, base, sizeof base, 1, 1);
    struct bg slow;
    snprintf(slow.url, sizeof slow.url, "%s/defer", base);
    pthread_create(&slow.t, NULL, bg_run, &slow);
    pg_sleep_ms(100);
    struct pg_t_resp r;
    int64_t t0 = pg_now_ms();
    assert_int_equal(get_status(base, "/open/fast", NULL, &r), 200);
    pg_t_resp_free(&r);
    int64_t took = pg_now_ms() - t0;
    pthread_join(slow.t, NULL);
    assert_int_equal(slow.r.status, 200);
    assert_non_null(strstr(slow.r.body, "\"deferred\":true"));
    pg_t_resp_free(&slow.r);
    if (took >= 1000)
        fail_msg("a request waited %lld ms behind a deferred one", (long long)took);
    pg_http_stop(h, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_fails_closed_without_authorizer),
        cmocka_unit_test(authorizer_decides),
        cmocka_unit_test(handler_error_becomes_problem_and_route_cap_applies),
        cmocka_unit_test(slow_handler_does_not_stall_io_thread),
        cmocka_unit_test(stop_finishes_worker_request),
        cmocka_unit_test(deferred_request_frees_the_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
