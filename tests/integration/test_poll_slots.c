/*
 * The BI poller's memory bound: however many locations are polled, at most
 * checks.poll.concurrency cycles (each holding whole business days of checks in memory) run at
 * once. Three locations, concurrency 1 and a BI API that answers slowly: every location is still
 * polled, one after the other, and the peak of concurrent cycles the gateway reports is 1.
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

#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

#define DAY "2026-11-20"

static struct pg_t_redis R;
static struct pg_t_proc sim, gw;

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    (void)state;
    if (pg_t_redis_start(&R) != 0)
        return -1;
    struct pg_redis_opts o = {.url = R.url, .command_timeout_ms = 2000};
    if (pg_redis_init(&o) != PG_OK)
        return -1;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\"},\"micros\":{\"port\":0,\"seed\":\"%s\","
             "\"bi\":{\"generate\":{\"locations\":[\"1234\",\"1235\",\"0042\"],"
             "\"days\":[\"" DAY "\"],\"checks_per_day\":10,\"late_per_day\":0,\"seed\":5}}}}",
             pg_t_src("tests/data/salesforce_seed.json"), pg_t_src("tests/data/micros_seed.json"));
    if (pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    /* every BI data call takes 300 ms, so three cycles started together would overlap */
    char url[512];
    snprintf(url, sizeof url, "%s/_sim/faults", sim.micros_url);
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *fault = "{\"latency_ms\":300,\"path\":\"/bi/v1/\"}";
    struct pg_t_resp r;
    if (pg_t_http("POST", url, h, fault, strlen(fault), 5000, &r) != 0 || r.status != 201)
        return -1;
    pg_t_resp_free(&r);
    static char g[4096];
    snprintf(g, sizeof g,
             "{\"listen\":{\"port\":0},"
             "\"redis\":{\"url\":\"%s\",\"command_timeout_ms\":2000},"
             "\"checks\":{\"bi\":{\"base_url\":\"%s\",\"org\":\"ACME\","
             "\"client_id\":\"UE9TR0FURS5URVNULk9OTFkuY2xpZW50\",\"username\":\"posgate-api\","
             "\"password\":\"posgate-bi-demo\",\"timeout_ms\":10000},"
             "\"poll\":{\"enabled\":true,\"interval_s\":3600,\"repoll_days\":1,\"concurrency\":1,"
             "\"locations\":[\"1234\",\"1235\",\"0042\"]}}}",
             R.url, sim.micros_url);
    return pg_t_gateway_start(&gw, g) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_proc_destroy(&sim);
    pg_redis_shutdown();
    pg_t_redis_destroy(&R);
    return st == 0 ? 0 : -1;
}

static long long metric(const char *name)
{
    char url[512];
    snprintf(url, sizeof url, "%s/metrics", gw.url);
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(url, &r), 0);
    long long v = -1;
    size_t nl = strlen(name);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ')
            v = atoll(p + nl + 1);
    pg_t_resp_free(&r);
    return v;
}

static int cursor_saved(const char *loc)
{
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "EXISTS " PG_KEY_CHK_CURSOR "%s", loc), PG_OK);
    int v = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return v;
}

static void one_cycle_at_a_time(void **state)
{
    (void)state;
    static const char *const locs[] = {"1234", "1235", "0042"};
    int64_t end = pg_now_ms() + 60000;
    for (int i = 0; i < 3; i++)
        while (!cursor_saved(locs[i])) {
            if (pg_now_ms() > end)
                fail_msg("location %s was never polled", locs[i]);
            sleep_ms(100);
        }
    assert_int_equal(metric("posgate_checks_poll_cycles_peak"), 1);
    assert_int_equal(metric("posgate_checks_poll_cycles_running"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_cycle_at_a_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
