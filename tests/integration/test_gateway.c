/*
 * The real gateway over HTTP: errors in one shape, request ids, metrics, readiness that follows
 * Redis, a /healthz that never waits for Redis, and graceful shutdown.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/util.h"
#include "tests/support/harness.h"

static struct pg_t_redis redis;
static struct pg_t_proc gw;

static char *gateway_config(const struct pg_t_redis *r, int grace_ms)
{
    char *s = NULL;
    int n = asprintf(&s,
                     "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":0},"
                     "\"http\":{\"threads\":2,\"body_max_bytes\":1024,\"shutdown_grace_ms\":%d},"
                     "\"log\":{\"level\":\"info\"},"
                     "\"redis\":{\"url\":\"%s\",\"connect_timeout_ms\":300,"
                     "\"command_timeout_ms\":800,\"reconnect_min_ms\":20,"
                     "\"reconnect_max_ms\":200}}",
                     grace_ms, r->url);
    return n < 0 ? NULL : s;
}

static int setup(void **state)
{
    if (pg_t_redis_start(&redis) != 0)
        return -1;
    char *cfg = gateway_config(&redis, 5000);
    int rc = pg_t_gateway_start(&gw, cfg);
    free(cfg);
    return rc;
}

static int teardown(void **state)
{
    /* A clean exit status also proves the sanitizers found no leak at shutdown. */
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_redis_destroy(&redis);
    return st == 0 ? 0 : -1;
}

static char *url(const char *path)
{
    static char u[512];
    snprintf(u, sizeof u, "%s%s", gw.url, path);
    return u;
}

static json_t *body_json(const struct pg_t_resp *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    if (!j)
        fail_msg("body is not JSON: %s", r->body);
    return j;
}

/* A problem+json reply: the media type, and type/title/status/detail/request_id present. */
static void assert_problem(const struct pg_t_resp *r, int status)
{
    char ct[128], rid[128];
    assert_int_equal(r->status, status);
    assert_int_equal(pg_t_resp_header(r, "Content-Type", ct, sizeof ct), 0);
    assert_string_equal(ct, "application/problem+json");
    assert_int_equal(pg_t_resp_header(r, "X-Request-Id", rid, sizeof rid), 0);
    json_t *j = body_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_non_null(json_string_value(json_object_get(j, "type")));
    assert_non_null(json_string_value(json_object_get(j, "title")));
    assert_non_null(json_string_value(json_object_get(j, "detail")));
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), rid);
    json_decref(j);
}

static void healthz_ok_with_generated_request_id(void **state)
{
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(url("/healthz"), &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    char rid[128];
    assert_int_equal(pg_t_resp_header(&r, "X-Request-Id", rid, sizeof rid), 0);
    assert_int_equal(strlen(rid), 32);
    pg_t_resp_free(&r);
}

static void request_id_echoed_when_sane_and_logged(void **state)
{
    const char *h1[] = {"X-Request-Id: trace-abc.123", NULL};
    struct pg_t_resp r;
    assert_int_equal(pg_t_http("GET", url("/healthz"), h1, NULL, 0, 0, &r), 0);
    char rid[128];
    assert_int_equal(pg_t_resp_header(&r, "X-Request-Id", rid, sizeof rid), 0);
    assert_string_equal(rid, "trace-abc.123");
    pg_t_resp_free(&r);

    const char *h2[] = {"X-Request-Id: bad id\" with quotes", NULL};
    assert_int_equal(pg_t_http("GET", url("/nope"), h2, NULL, 0, 0, &r), 0);
    assert_int_equal(pg_t_resp_header(&r, "X-Request-Id", rid, sizeof rid), 0);
    assert_int_equal(strlen(rid), 32); /* replaced, not echoed */
    pg_t_resp_free(&r);

    /* The access log line carries the id. Logs are written after the reply: poll briefly. */
    int found = 0;
    for (int64_t end = pg_now_ms() + 3000; !found && pg_now_ms() < end; pg_sleep_ms(20)) {
        char *log = pg_t_proc_log(&gw);
        found = strstr(log, "\"request_id\":\"trace-abc.123\"") != NULL &&
                strstr(log, "\"event\":\"http.request\"") != NULL;
        free(log);
    }
    assert_true(found);
}

static void not_found_is_problem_json(void **state)
{
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(url("/v1/does-not-exist"), &r), 0);
    assert_problem(&r, 404);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "instance")), "/v1/does-not-exist");
    json_decref(j);
    pg_t_resp_free(&r);
}

static void wrong_method_is_405_with_allow(void **state)
{
    struct pg_t_resp r;
    assert_int_equal(pg_t_http("POST", url("/healthz"), NULL, "{}", 2, 0, &r), 0);
    assert_problem(&r, 405);
    char allow[64];
    assert_int_equal(pg_t_resp_header(&r, "Allow", allow, sizeof allow), 0);
    assert_string_equal(allow, "GET");
    pg_t_resp_free(&r);
}

static void oversize_body_is_413(void **state)
{
    size_t n = 4096; /* the test config caps bodies at 1024 bytes */
    char *big = malloc(n);
    memset(big, 'x', n);
    struct pg_t_resp r;
    /* announced by Content-Length: refused before the body is read */
    assert_int_equal(pg_t_http("GET", url("/healthz"), NULL, big, n, 0, &r), 0);
    assert_problem(&r, 413);
    pg_t_resp_free(&r);
    /* chunked, no length announced: refused once the cap is crossed */
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    assert_int_equal(pg_t_http("GET", url("/healthz"), chunked, big, n, 0, &r), 0);
    assert_problem(&r, 413);
    pg_t_resp_free(&r);
    /* at the cap: accepted */
    assert_int_equal(pg_t_http("GET", url("/healthz"), NULL, big, 1024, 0, &r), 0);
    assert_int_equal(r.status, 200);
    pg_t_resp_free(&r);
    free(big);
}

static void metrics_count_requests(void **state)
{
    struct pg_t_resp r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pg_t_get(url("/readyz"), &r), 0);
        assert_int_equal(r.status, 200);
        pg_t_resp_free(&r);
    }
    assert_int_equal(pg_t_get(url("/metrics"), &r), 0);
    assert_int_equal(r.status, 200);
    char ct[128];
    assert_int_equal(pg_t_resp_header(&r, "Content-Type", ct, sizeof ct), 0);
    assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
    assert_non_null(strstr(
        r.body, "posgate_http_requests_total{route=\"readyz\",method=\"GET\",status=\"200\"} 3\n"));
    assert_non_null(strstr(r.body, "posgate_http_requests_total{route=\"unmatched\",method=\"GET\","
                                   "status=\"404\"}"));
    assert_non_null(
        strstr(r.body, "posgate_http_request_duration_seconds_count{route=\"readyz\"} 3\n"));
    assert_non_null(strstr(
        r.body, "posgate_http_request_duration_seconds_bucket{route=\"readyz\",le=\"+Inf\"} 3\n"));
    /* the scrape itself is in flight while it renders */
    assert_non_null(strstr(r.body, "posgate_http_in_flight_requests 1\n"));
    assert_non_null(strstr(r.body, "\nposgate_redis_errors_total "));
    pg_t_resp_free(&r);
}

/* Count the gateway's threads named name (/proc/<pid>/task/<tid>/comm). */
static int threads_named(pid_t pid, const char *name)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[400], comm[32] = "";
        snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread ended meanwhile */
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        n += strcmp(comm, name) == 0;
    }
    closedir(d);
    return n;
}

/* Operators tell the pools apart in top -H / ps -L: 16 handler workers, 32 slow workers (the
 * defaults), and the rate-limit flusher once a lookup has been counted (not here: no lookups). */
static void threads_are_named(void **state)
{
    assert_int_equal(threads_named(gw.pid, "pg-worker"), 16);
    assert_int_equal(threads_named(gw.pid, "pg-slow"), 32);
}

static void readyz_follows_redis(void **state)
{
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(url("/readyz"), &r), 0);
    assert_int_equal(r.status, 200);
    pg_t_resp_free(&r);

    pg_t_redis_stop(&redis);
    assert_int_equal(pg_t_get(url("/readyz"), &r), 0);
    assert_problem(&r, 503);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "failing"), 0)),
                        "redis");
    assert_non_null(strstr(json_string_value(json_object_get(j, "detail")), "redis"));
    json_decref(j);
    char ra[16];
    assert_int_equal(pg_t_resp_header(&r, "Retry-After", ra, sizeof ra), 0);
    pg_t_resp_free(&r);

    /* Back without restarting the gateway: reconnect happens by itself (after its backoff). */
    assert_int_equal(pg_t_redis_restart(&redis), 0);
    long status = 0;
    for (int64_t end = pg_now_ms() + 5000; status != 200 && pg_now_ms() < end; pg_sleep_ms(50)) {
        assert_int_equal(pg_t_get(url("/readyz"), &r), 0);
        status = r.status;
        pg_t_resp_free(&r);
    }
    assert_int_equal(status, 200);

    /* the errors were counted */
    assert_int_equal(pg_t_get(url("/metrics"), &r), 0);
    const char *e = strstr(r.body, "\nposgate_redis_errors_total ");
    assert_non_null(e);
    assert_true(atoll(e + strlen("\nposgate_redis_errors_total ")) >= 1);
    pg_t_resp_free(&r);
}

struct bg_get {
    pthread_t t;
    const char *url;
    struct pg_t_resp resp;
    int rc;
};

static void *bg_get_run(void *arg)
{
    struct bg_get *b = arg;
    b->rc = pg_t_http("GET", b->url, NULL, NULL, 0, 15000, &b->resp);
    return NULL;
}

static void healthz_stays_fast_while_redis_hangs(void **state)
{
    pg_t_redis_pause(&redis);
    char ready_url[512];
    snprintf(ready_url, sizeof ready_url, "%s/readyz", gw.url);
    struct bg_get bg = {.url = ready_url};
    pthread_create(&bg.t, NULL, bg_get_run, &bg);
    /* While a readyz waits on the hung Redis, healthz answers from memory. The bound is far
     * below the 800 ms Redis command timeout, far above a loaded machine's scheduling noise. */
    for (int i = 0; i < 5; i++) {
        struct pg_t_resp r;
        assert_int_equal(pg_t_get(url("/healthz"), &r), 0);
        assert_int_equal(r.status, 200);
        assert_true(r.total_s < 0.4);
        pg_t_resp_free(&r);
    }
    pthread_join(bg.t, NULL);
    assert_int_equal(bg.rc, 0);
    assert_problem(&bg.resp, 503); /* the PING timed out: not ready */
    pg_t_resp_free(&bg.resp);
    pg_t_redis_resume(&redis);
}

static void graceful_shutdown_finishes_in_flight_request(void **state)
{
    /* A second gateway, so the shared one stays up for the other tests. */
    struct pg_t_proc g2;
    char *cfg = gateway_config(&redis, 5000);
    assert_int_equal(pg_t_gateway_start(&g2, cfg), 0);
    free(cfg);

    /* A readyz against a paused Redis stays in flight for the command timeout. */
    pg_t_redis_pause(&redis);
    char ready_url[512];
    snprintf(ready_url, sizeof ready_url, "%s/readyz", g2.url);
    struct bg_get bg = {.url = ready_url};
    pthread_create(&bg.t, NULL, bg_get_run, &bg);

    /* Wait until the gateway reports it in flight (the scrape counts itself: 2). */
    int seen = 0;
    char murl[512];
    snprintf(murl, sizeof murl, "%s/metrics", g2.url);
    for (int64_t end = pg_now_ms() + 3000; !seen && pg_now_ms() < end; pg_sleep_ms(5)) {
        struct pg_t_resp m;
        if (pg_t_get(murl, &m) == 0)
            seen = strstr(m.body, "posgate_http_in_flight_requests 2\n") != NULL;
        pg_t_resp_free(&m);
    }
    assert_true(seen);

    kill(g2.pid, SIGTERM);
    pthread_join(bg.t, NULL);
    /* The in-flight request got its complete answer ... */
    assert_int_equal(bg.rc, 0);
    assert_problem(&bg.resp, 503);
    pg_t_resp_free(&bg.resp);
    /* ... and the process exited cleanly. */
    assert_int_equal(pg_t_wait_exit(g2.pid, 10000), 0);
    g2.pid = -1;
    char *log = pg_t_proc_log(&g2);
    assert_non_null(strstr(log, "\"event\":\"shutdown\""));
    free(log);
    pg_t_redis_resume(&redis);
    pg_t_proc_destroy(&g2);
}

static int run_posgate(const char *flag, const char *cfg_text, char **out)
{
    char *dir = pg_t_mkdtemp("cfg");
    char cfg[600], log[600];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(log, sizeof log, "%s/out.log", dir);
    if (cfg_text)
        assert_int_equal(pg_write_file_atomic(cfg, cfg_text, strlen(cfg_text)), 0);
    const char *argv[] = {pg_t_bin("posgate"), flag, cfg, NULL};
    pid_t pid = pg_t_spawn(argv, log);
    int st = pg_t_wait_exit(pid, 10000);
    if (pg_read_file(log, 1 << 20, out, NULL) != 0)
        *out = strdup("");
    pg_t_rmtree(dir);
    free(dir);
    return st;
}

static void check_config_cli(void **state)
{
    char *out = NULL;
    char *good = gateway_config(&redis, 100);
    assert_int_equal(run_posgate("--check-config", good, &out), 0);
    assert_non_null(strstr(out, "configuration OK"));
    free(out);
    free(good);

    assert_int_equal(run_posgate("--check-config", NULL, &out), 2);
    assert_non_null(strstr(out, "cannot read"));
    free(out);

    assert_int_equal(
        run_posgate("--check-config", "{\"redis\":{\"url\":\"redis://x\",\"tiemout\":1}}", &out),
        2);
    assert_non_null(strstr(out, "unknown key 'redis.tiemout'"));
    free(out);

    assert_int_equal(run_posgate("--config",
                                 "{\"redis\":{\"url\":\"redis://x\"},"
                                 "\"http\":{\"threads\":-1}}",
                                 &out),
                     2);
    assert_non_null(strstr(out, "http.threads: -1 is out of range"));
    free(out);

    assert_int_equal(run_posgate("--check-config", "{\"redis\":{\"url\":\"http://nope\"}}", &out),
                     2);
    assert_non_null(strstr(out, "redis.url"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthz_ok_with_generated_request_id),
        cmocka_unit_test(request_id_echoed_when_sane_and_logged),
        cmocka_unit_test(not_found_is_problem_json),
        cmocka_unit_test(wrong_method_is_405_with_allow),
        cmocka_unit_test(oversize_body_is_413),
        cmocka_unit_test(metrics_count_requests),
        cmocka_unit_test(threads_are_named),
        cmocka_unit_test(readyz_follows_redis),
        cmocka_unit_test(healthz_stays_fast_while_redis_hangs),
        cmocka_unit_test(graceful_shutdown_finishes_in_flight_request),
        cmocka_unit_test(check_config_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
