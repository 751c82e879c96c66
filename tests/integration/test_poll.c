/*
 * The BI poller (sync/poll.c) end to end: a real redis-server, the MICROS simulator's BI API with
 * three generated business days, and the real gateway with checks.poll enabled for two seeded
 * locations and one location the simulator refuses (403). What is asserted is what lands in Redis
 * (pg:chk:*), the cursor and the metrics, each awaited with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

#define ADMIN_KEY "test-admin-key-0123456789"
/* sha256("test-admin-key-0123456789") */
#define ADMIN_HASH "sha256:82007d29a6e0686708f2ef128b4d5d2225286cb76e82f74b09324d61ec36f968"
#define DAY1 "2026-11-18"
#define DAY2 "2026-11-19"
#define DAY3 "2026-11-20"

static struct pg_t_redis R;
static struct pg_t_proc sim, gw;

static int setup(void **state)
{
    if (pg_t_redis_start(&R) != 0)
        return -1;
    struct pg_redis_opts o = {.url = R.url,
                              .connect_timeout_ms = 500,
                              .command_timeout_ms = 5000,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 200};
    if (pg_redis_init(&o) != PG_OK)
        return -1;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\"},\"micros\":{\"port\":0,\"seed\":\"%s\","
             "\"bi\":{\"generate\":{\"locations\":[\"1234\",\"1235\"],"
             "\"days\":[\"" DAY1 "\",\"" DAY2 "\",\"" DAY3 "\"],\"checks_per_day\":25,"
             "\"late_per_day\":3,\"seed\":11}}}}",
             pg_t_src("tests/data/salesforce_seed.json"), pg_t_src("tests/data/micros_seed.json"));
    if (pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    /* the first discount-dimension calls fail: names are cosmetic, checks must flow anyway */
    char fu[256];
    snprintf(fu, sizeof fu, "%s/_sim/faults", sim.micros_url);
    const char *fault =
        "{\"status\":500,\"count\":2,\"path\":\"/bi/v1/ACME/getDiscountDimensions\"}";
    const char *fh[] = {"Content-Type: application/json", NULL};
    struct pg_t_resp fr;
    if (pg_t_http("POST", fu, fh, fault, strlen(fault), 0, &fr) != 0 || fr.status != 201)
        return -1;
    pg_t_resp_free(&fr);
    static char g[4096];
    /* "9999" is a location the BI account may not read (403): it must not hold up 1234 and 1235. */
    snprintf(g, sizeof g,
             "{\"listen\":{\"port\":0},\"log\":{\"level\":\"info\"},"
             "\"redis\":{\"url\":\"%s\",\"command_timeout_ms\":2000,\"reconnect_min_ms\":20,"
             "\"reconnect_max_ms\":200},"
             "\"checks\":{\"bi\":{\"base_url\":\"%s\",\"org\":\"ACME\","
             "\"client_id\":\"UE9TR0FURS5URVNULk9OTFkuY2xpZW50\",\"username\":\"posgate-api\","
             "\"password\":\"posgate-bi-demo\",\"timeout_ms\":5000},"
             "\"poll\":{\"enabled\":true,\"interval_s\":1,\"repoll_days\":3,\"backoff_max_s\":2,"
             "\"locations\":[\"1234\",\"1235\",\"9999\"]}},"
             "\"admin\":{\"api_key_hashes\":[\"" ADMIN_HASH "\"]}}",
             R.url, sim.micros_url);
    return pg_t_gateway_start(&gw, g) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_proc_destroy(&sim);
    pg_redis_shutdown();
    pg_t_redis_destroy(&R);
    return st == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- helpers */

static long long redis_int(const char *fmt, const char *arg)
{
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, fmt, arg), PG_OK);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* Checks of a location held in Redis (pg:chk:<loc>:<gcid> hashes). */
static long long held(const char *loc)
{
    char pat[64];
    snprintf(pat, sizeof pat, PG_KEY_CHK "%s:*", loc);
    redisReply *r = NULL;
    assert_int_equal(
        pg_redis_command(&r, "EVAL %s 0 %s", "return #redis.call('KEYS', ARGV[1])", pat), PG_OK);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static long long qlen(void)
{
    return redis_int("XLEN %s", PG_KEY_CHK_QUEUE);
}

/* The saved cursor of loc ("" when none). */
static void cursor(const char *loc, char *out, size_t outsz)
{
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "GET " PG_KEY_CHK_CURSOR "%s", loc), PG_OK);
    snprintf(out, outsz, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

static int exists(const char *loc, long long gcid)
{
    char k[96];
    snprintf(k, sizeof k, PG_KEY_CHK "%s:%lld", loc, gcid);
    return redis_int("EXISTS %s", k) == 1;
}

static json_t *
http_json(const char *method, const char *url, const char *const *h, const char *body, long want)
{
    struct pg_t_resp r;
    assert_int_equal(pg_t_http(method, url, h, body, body ? strlen(body) : 0, 30000, &r), 0);
    if (r.status != want)
        fail_msg("%s %s: %ld (wanted %ld): %s", method, url, r.status, want, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return j;
}

static json_t *sim_post(const char *path, const char *body, long want)
{
    char u[256];
    snprintf(u, sizeof u, "%s%s", sim.micros_url, path);
    const char *h[] = {"Content-Type: application/json", NULL};
    return http_json("POST", u, h, body, want);
}

/* Visible checks the simulator holds for loc on the three days. */
static long long sim_visible(const char *loc)
{
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/state", sim.micros_url);
    json_t *st = http_json("GET", u, NULL, NULL, 200);
    json_t *days = json_object_get(json_object_get(json_object_get(st, "bi"), "checks"), loc);
    long long n = 0;
    const char *d;
    json_t *v;
    json_object_foreach(days, d, v) n += json_integer_value(v);
    json_decref(st);
    return n;
}

/* A sample of the gateway's /metrics (the value after "name{labels} "), -1 when absent. */
static double metric(const char *series)
{
    char u[256];
    snprintf(u, sizeof u, "%s/metrics", gw.url);
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(u, &r), 0);
    double v = -1;
    char *p = strstr(r.body, series);
    if (p && p[strlen(series)] == ' ')
        v = strtod(p + strlen(series) + 1, NULL);
    pg_t_resp_free(&r);
    return v;
}

/* Wait (up to ms) until loc holds want checks. */
static void wait_held(const char *loc, long long want, int ms)
{
    int64_t end = pg_now_ms() + ms;
    while (held(loc) != want && pg_now_ms() < end)
        pg_sleep_ms(50);
    if (held(loc) != want)
        fail_msg("location %s holds %lld checks, wanted %lld", loc, held(loc), want);
}

static json_t *poll_now(const char *loc)
{
    char u[256];
    snprintf(u, sizeof u, "%s/v1/admin/checks/poll?location=%s", gw.url, loc);
    const char *h[] = {"X-Api-Key: " ADMIN_KEY, NULL};
    return http_json("POST", u, h, "", 200);
}

static long long report_sum(const json_t *rep, const char *what)
{
    long long n = 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(rep, "dates"), i, d) n +=
        json_integer_value(json_object_get(d, what));
    return n;
}

/* ---------------------------------------------------------------- tests */

/* Three business days of two locations land in pg:chk:*, each check once, and the cursors are
 * saved; the refused location (9999) and the day-less one do not hold them up. */
static void days_of_two_locations_land(void **state)
{
    long long v1 = sim_visible("1234"), v2 = sim_visible("1235");
    assert_true(v1 > 60 && v2 > 60); /* 3 × 25 generated, minus the late ones held back */
    wait_held("1234", v1, 30000);
    wait_held("1235", v2, 30000);
    char c1[32], c2[32];
    int64_t end = pg_now_ms() + 10000;
    do {
        cursor("1234", c1, sizeof c1);
        cursor("1235", c2, sizeof c2);
    } while ((!c1[0] || !c2[0]) && pg_now_ms() < end && (pg_sleep_ms(50), 1));
    assert_int_equal(strlen(c1), 19); /* a BI curUTC: YYYY-MM-DDTHH:MM:SS */
    assert_int_equal(strlen(c2), 19);
    assert_int_equal(qlen(), v1 + v2); /* each check queued once, however many cycles ran */
    /* dimension names for the transform */
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "GET " PG_KEY_CHK_DIMS "1234"), PG_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    json_t *dims = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    assert_true(json_object_size(json_object_get(dims, "menuItems")) > 0);
    assert_true(json_object_size(json_object_get(dims, "tenderMedia")) > 0);
    assert_non_null(json_object_get(dims, "serviceCharges"));
    json_decref(dims);
    /* the failed discount dimension was logged, and a later cycle filled it in */
    char *log = pg_t_proc_log(&gw);
    assert_non_null(strstr(log, "getDiscountDimensions"));
    assert_non_null(strstr(log, "poll.dimension_failed"));
    free(log);
    end = pg_now_ms() + 10000;
    int have = 0;
    while (!have && pg_now_ms() < end) {
        assert_int_equal(pg_redis_command(&r, "GET " PG_KEY_CHK_DIMS "1234"), PG_OK);
        json_t *d2 = json_loads(r->str, 0, NULL);
        freeReplyObject(r);
        have = json_object_size(json_object_get(d2, "discounts")) > 0;
        json_decref(d2);
        if (!have)
            pg_sleep_ms(50);
    }
    assert_true(have);
    /* the refused location fails on its own, visibly */
    end = pg_now_ms() + 10000;
    while (metric("posgate_checks_polls_total{location=\"9999\",outcome=\"denied\"}") < 1 &&
           pg_now_ms() < end)
        pg_sleep_ms(100);
    assert_true(metric("posgate_checks_polls_total{location=\"9999\",outcome=\"denied\"}") >= 1);
    assert_true(metric("posgate_checks_polls_total{location=\"1234\",outcome=\"ok\"}") >= 1);
    double lag = metric("posgate_checks_poll_lag_seconds{location=\"1234\"}");
    assert_true(lag >= 0 && lag < 60);
    assert_true(metric("posgate_checks_received_total{source=\"bi\",result=\"queued\"}") >=
                (double)(v1 + v2));
}

/* With nothing new, a cycle asks only for changes since the cursor and queues nothing. */
static void a_cycle_without_changes_queues_nothing(void **state)
{
    wait_held("1234", sim_visible("1234"), 30000);
    long long before = qlen();
    json_t *rep = poll_now("1234");
    assert_string_equal(json_string_value(json_object_get(rep, "outcome")), "ok");
    assert_int_equal(json_array_size(json_object_get(rep, "dates")), 3);
    assert_string_equal(json_string_value(json_object_get(rep, "latestBusDt")), DAY3);
    assert_true(json_is_string(json_object_get(rep, "cursor_before")));
    assert_int_equal(report_sum(rep, "queued"), 0);
    json_decref(rep);
    assert_int_equal(qlen(), before);
}

/* Checks uploaded late to the oldest re-polled date are caught by the re-poll. */
static void late_upload_to_an_old_date_is_queued(void **state)
{
    wait_held("1235", sim_visible("1235"), 30000);
    long long before = qlen();
    json_t *rel = sim_post("/_sim/bi/late-upload",
                           "{\"locRef\":\"1235\",\"busDt\":\"" DAY1 "\",\"count\":2}", 200);
    json_t *ids = json_object_get(rel, "released");
    assert_int_equal(json_array_size(ids), 2);
    int64_t end = pg_now_ms() + 20000;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        while (!exists("1235", json_integer_value(id)) && pg_now_ms() < end)
            pg_sleep_ms(50);
        assert_true(exists("1235", json_integer_value(id)));
    }
    json_decref(rel);
    assert_int_equal(qlen(), before + 2);
    assert_int_equal(held("1235"), sim_visible("1235"));
}

/* 503s and a 429 with Retry-After: the poller backs off, the cursor stays where it was, and after
 * the faults it recovers and picks up what changed meanwhile. */
static void faults_back_off_and_recover_without_losing_the_cursor(void **state)
{
    wait_held("1234", sim_visible("1234"), 30000);
    double unavail0 =
        metric("posgate_checks_polls_total{location=\"1234\",outcome=\"unavailable\"}");
    json_decref(sim_post("/_sim/faults",
                         "{\"status\":503,\"count\":4,\"path\":\"/bi/v1/ACME/getGuestChecks\"}",
                         201));
    json_decref(sim_post("/_sim/faults",
                         "{\"status\":429,\"count\":2,\"headers\":{\"Retry-After\":\"1\"},"
                         "\"path\":\"/bi/v1/ACME/getGuestChecks\"}",
                         201));
    char c_before[32];
    cursor("1234", c_before, sizeof c_before);
    /* a late upload while the faults last */
    json_t *rel = sim_post("/_sim/bi/late-upload",
                           "{\"locRef\":\"1234\",\"busDt\":\"" DAY2 "\",\"count\":1}", 200);
    long long gcid = json_integer_value(json_array_get(json_object_get(rel, "released"), 0));
    json_decref(rel);
    assert_true(gcid > 0);
    int64_t end = pg_now_ms() + 15000;
    while (metric("posgate_checks_polls_total{location=\"1234\",outcome=\"unavailable\"}") <=
               unavail0 &&
           pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_true(metric("posgate_checks_polls_total{location=\"1234\",outcome=\"unavailable\"}") >
                unavail0);
    /* a failed cycle never moves the cursor */
    char c_during[32];
    cursor("1234", c_during, sizeof c_during);
    if (!exists("1234", gcid)) /* not yet recovered: the cursor must be the old one */
        assert_string_equal(c_during, c_before);
    end = pg_now_ms() + 30000;
    while (!exists("1234", gcid) && pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_true(exists("1234", gcid));
    char c_after[32];
    cursor("1234", c_after, sizeof c_after);
    assert_true(strcmp(c_after, c_before) >= 0);
    assert_int_equal(held("1234"), sim_visible("1234"));
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/faults", sim.micros_url);
    json_t *left = http_json("GET", u, NULL, NULL, 200);
    assert_int_equal(json_array_size(left), 0); /* every fault was used up by the poller */
    json_decref(left);
    char *log = pg_t_proc_log(&gw);
    assert_non_null(strstr(log, "poll.failed"));
    free(log);
}

/* The stored checks of loc (the JSON of every pg:chk:<loc>:<gcid>), as an array. */
static json_t *stored_checks(const char *loc)
{
    char pat[64];
    snprintf(pat, sizeof pat, PG_KEY_CHK "%s:*", loc);
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "EVAL %s 0 %s",
                                      "local o = {} for _, k in ipairs(redis.call('KEYS', "
                                      "ARGV[1])) do o[#o + 1] = redis.call('HGET', k, 'check') "
                                      "end return o",
                                      pat),
                     PG_OK);
    json_t *a = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            json_array_append_new(a, json_loads(r->element[i]->str, 0, NULL));
    freeReplyObject(r);
    return a;
}

/* The loyalty member id a stored check carries (an extensions entry, dataName memberId). */
static const char *member_of(const json_t *chk)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(chk, "extensions"), i, e)
    {
        const char *dn = json_string_value(json_object_get(e, "dataName"));
        if (dn && strcmp(dn, "memberId") == 0)
            return json_string_value(json_object_get(e, "data"));
    }
    return NULL;
}

/* The simulator serves member ids only through getGuestCheckExtensibilityDetails (never inline
 * in getGuestChecks, as the real BI API): the poller asks it for the checks' opening dates and
 * the queued checks carry the ids as `extensions` entries, the shape customer matching reads. */
static void member_ids_arrive_through_the_extensibility_call(void **state)
{
    wait_held("1234", sim_visible("1234"), 30000);
    wait_held("1235", sim_visible("1235"), 30000);
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/log", sim.micros_url);
    json_t *log = http_json("GET", u, NULL, NULL, 200);
    size_t i;
    json_t *e;
    int asked = 0;
    json_array_foreach(log, i, e)
    {
        const char *path = json_string_value(json_object_get(e, "path"));
        json_t *body = json_object_get(e, "body");
        if (path && strcmp(path, "/bi/v1/ACME/getGuestCheckExtensibilityDetails") == 0 &&
            json_is_string(json_object_get(body, "opnBusDt")) &&
            json_is_string(json_object_get(body, "locRef")))
            asked++;
    }
    json_decref(log);
    assert_true(asked >= 2); /* at least one opening date of each location */
    int members = 0, total = 0;
    const char *locs[] = {"1234", "1235"};
    for (int k = 0; k < 2; k++) {
        json_t *all = stored_checks(locs[k]);
        json_t *c;
        json_array_foreach(all, i, c)
        {
            total++;
            const char *m = member_of(c);
            if (m) {
                members++;
                assert_int_equal(strncmp(m, "LY-", 3), 0);
                assert_true(json_is_true(json_object_get(c, "clsdFlag")));
            }
        }
        json_decref(all);
    }
    print_message("stored checks with a member id: %d of %d\n", members, total);
    assert_true(members > 0);
    assert_true(members < total);
}

/* getGuestCheckExtensibilityDetails failing: the cycle fails as for getGuestChecks — nothing
 * queued without its member ids, the cursor stays before the change (the next cycle asks again)
 * — and once it answers, the check is queued. */
static void a_failing_extensibility_call_queues_nothing_and_keeps_the_cursor(void **state)
{
    wait_held("1234", sim_visible("1234"), 30000);
    double unavail0 =
        metric("posgate_checks_polls_total{location=\"1234\",outcome=\"unavailable\"}");
    json_decref(sim_post(
        "/_sim/faults",
        "{\"status\":503,\"path\":\"/bi/v1/ACME/getGuestCheckExtensibilityDetails\"}", 201));
    long long q0 = qlen();
    json_t *rel = sim_post("/_sim/bi/late-upload",
                           "{\"locRef\":\"1234\",\"busDt\":\"" DAY2 "\",\"count\":1}", 200);
    long long gcid = json_integer_value(json_array_get(json_object_get(rel, "released"), 0));
    char rel_utc[32];
    snprintf(rel_utc, sizeof rel_utc, "%s",
             json_string_value(json_object_get(rel, "lastUpdatedUTC")));
    json_decref(rel);
    assert_true(gcid > 0);
    json_t *rep = poll_now("1234");
    const char *err = json_string_value(json_object_get(rep, "error"));
    assert_non_null(err);
    assert_non_null(strstr(err, "getGuestCheckExtensibilityDetails " DAY2));
    json_decref(rep);
    /* a few background cycles under the fault, too */
    int64_t end = pg_now_ms() + 15000;
    while (metric("posgate_checks_polls_total{location=\"1234\",outcome=\"unavailable\"}") <
               unavail0 + 2 &&
           pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_true(metric("posgate_checks_polls_total{location=\"1234\",outcome=\"unavailable\"}") >=
                unavail0 + 2);
    assert_false(exists("1234", gcid));
    assert_int_equal(qlen(), q0);
    char c_during[32];
    cursor("1234", c_during, sizeof c_during);
    assert_true(strcmp(c_during, rel_utc) <= 0); /* the next changedSinceUTC still covers it */
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/faults", sim.micros_url);
    json_decref(http_json("DELETE", u, NULL, NULL, 200));
    end = pg_now_ms() + 30000;
    while (!exists("1234", gcid) && pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_true(exists("1234", gcid));
    assert_int_equal(held("1234"), sim_visible("1234"));
}

/* Reconciliation's re-pull request (pg:chk:repull:<loc>:<busdt>): the date is fetched whole
 * again, without the cursor, so a check posgate lost is queued again; then the request is gone. */
static void a_repull_request_fetches_the_whole_date(void **state)
{
    wait_held("1234", sim_visible("1234"), 30000);
    /* a check of DAY1 that posgate no longer holds (as if it had never been polled) */
    redisReply *r = NULL;
    char pat[64];
    snprintf(pat, sizeof pat, PG_KEY_CHK "1234:*");
    assert_int_equal(pg_redis_command(&r, "KEYS %s", pat), PG_OK);
    char victim[96] = "";
    for (size_t i = 0; i < r->elements && !victim[0]; i++) {
        redisReply *b = NULL;
        assert_int_equal(pg_redis_command(&b, "HGET %s busdt", r->element[i]->str), PG_OK);
        if (b->type == REDIS_REPLY_STRING && strcmp(b->str, DAY1) == 0)
            snprintf(victim, sizeof victim, "%s", r->element[i]->str);
        freeReplyObject(b);
    }
    freeReplyObject(r);
    assert_true(victim[0]);
    assert_int_equal(redis_int("DEL %s", victim), 1);
    /* a poll cycle alone does not bring it back: nothing changed since the cursor */
    json_t *rep = poll_now("1234");
    assert_int_equal(report_sum(rep, "queued"), 0);
    json_decref(rep);
    assert_int_equal(redis_int("EXISTS %s", victim), 0);
    assert_int_equal(
        pg_t_redis_cmd(&R, "SET " PG_KEY_CHK_REPULL "1234:" DAY1 " {\"reason\":\"t\"}"), 0);
    int64_t end = pg_now_ms() + 20000;
    while (redis_int("EXISTS %s", victim) != 1 && pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_int_equal(redis_int("EXISTS %s", victim), 1);
    end = pg_now_ms() + 5000;
    while (redis_int("EXISTS %s", PG_KEY_CHK_REPULL "1234:" DAY1) != 0 && pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_int_equal(redis_int("EXISTS %s", PG_KEY_CHK_REPULL "1234:" DAY1), 0);
}

/* Another process holding a location's lease: this one does nothing for it until it is free. */
static void a_location_polled_elsewhere_is_left_alone(void **state)
{
    assert_int_equal(pg_t_redis_cmd(&R, "SET " PG_KEY_CHK_POLL "1235 other-process PX 60000"), 0);
    /* wait out a cycle that may hold the lease of this process right now */
    int64_t end = pg_now_ms() + 10000;
    json_t *rep = NULL;
    do {
        json_decref(rep);
        rep = poll_now("1235");
    } while (strcmp(json_string_value(json_object_get(rep, "outcome")), "held_elsewhere") != 0 &&
             pg_now_ms() < end && (pg_sleep_ms(50), 1));
    assert_string_equal(json_string_value(json_object_get(rep, "outcome")), "held_elsewhere");
    assert_null(json_object_get(rep, "cursor"));
    json_decref(rep);
    assert_true(
        metric("posgate_checks_polls_total{location=\"1235\",outcome=\"held_elsewhere\"}") >= 1);
    assert_int_equal(redis_int("DEL %s", PG_KEY_CHK_POLL "1235"), 1);
    rep = poll_now("1235");
    assert_string_equal(json_string_value(json_object_get(rep, "outcome")), "ok");
    json_decref(rep);
    assert_int_equal(redis_int("EXISTS %s", PG_KEY_CHK_POLL "1235"), 0); /* dropped after */
}

static void poll_now_needs_a_polled_location(void **state)
{
    char u[256];
    snprintf(u, sizeof u, "%s/v1/admin/checks/poll?location=4321", gw.url);
    const char *h[] = {"X-Api-Key: " ADMIN_KEY, NULL};
    json_decref(http_json("POST", u, h, "", 404));
    json_decref(http_json("POST", u, NULL, "", 401));
}

static void *poll_now_thread(void *arg)
{
    return poll_now(arg);
}

/*
 * The saved cursor is the EARLIEST curUTC of a cycle. A cycle asks DAY3, then DAY2, then DAY1 (each
 * held 1.5 s by a latency fault); a check of DAY3 uploaded while DAY2 is being asked is in no reply
 * of that cycle, and is older than DAY1's curUTC. The next cycle must still catch it, which it
 * does only if the cursor is DAY3's curUTC (the earliest), not DAY1's (the latest).
 * A gateway of its own (1234 only, no scheduled cycles after the first) on Redis db 1, so no other
 * poll consumes the faults.
 */
static void a_change_during_a_cycle_is_caught_by_the_next(void **state)
{
    assert_int_equal(pg_t_proc_stop(&gw), 0);
    pg_t_proc_destroy(&gw);
    static char g[4096];
    snprintf(g, sizeof g,
             "{\"listen\":{\"port\":0},\"log\":{\"level\":\"info\"},"
             "\"redis\":{\"url\":\"redis://127.0.0.1:%d/1\",\"command_timeout_ms\":2000},"
             "\"checks\":{\"bi\":{\"base_url\":\"%s\",\"org\":\"ACME\","
             "\"client_id\":\"UE9TR0FURS5URVNULk9OTFkuY2xpZW50\",\"username\":\"posgate-api\","
             "\"password\":\"posgate-bi-demo\",\"timeout_ms\":10000},"
             "\"poll\":{\"enabled\":true,\"interval_s\":3600,\"locations\":[\"1234\"]}},"
             "\"admin\":{\"api_key_hashes\":[\"" ADMIN_HASH "\"]}}",
             R.port, sim.micros_url);
    assert_int_equal(pg_t_gateway_start(&gw, g), 0);
    int64_t end = pg_now_ms() + 20000; /* the startup cycle: a cursor in db 1 */
    while (metric("posgate_checks_polls_total{location=\"1234\",outcome=\"ok\"}") < 1 &&
           pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_true(metric("posgate_checks_polls_total{location=\"1234\",outcome=\"ok\"}") >= 1);

    json_decref(
        sim_post("/_sim/faults",
                 "{\"latency_ms\":1500,\"count\":3,\"path\":\"/bi/v1/ACME/getGuestChecks\"}", 201));
    static char loc1234[] = "1234";
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, poll_now_thread, loc1234), 0);
    /* DAY3 answered and DAY2 being asked: two of the three fault uses taken */
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/faults", sim.micros_url);
    long long remaining = -1;
    end = pg_now_ms() + 10000;
    while (remaining != 1 && pg_now_ms() < end) {
        json_t *f = http_json("GET", u, NULL, NULL, 200);
        remaining = json_integer_value(json_object_get(json_array_get(f, 0), "remaining"));
        json_decref(f);
        if (remaining != 1)
            pg_sleep_ms(20);
    }
    assert_int_equal(remaining, 1);
    json_t *rel = sim_post("/_sim/bi/late-upload",
                           "{\"locRef\":\"1234\",\"busDt\":\"" DAY3 "\",\"count\":1}", 200);
    long long gcid = json_integer_value(json_array_get(json_object_get(rel, "released"), 0));
    json_decref(rel);
    assert_true(gcid > 0);
    void *ret = NULL;
    pthread_join(t, &ret);
    json_t *rep = ret;
    assert_string_equal(json_string_value(json_object_get(rep, "outcome")), "ok");
    /* the next cycle catches the check uploaded during the last one */
    json_t *rep2 = poll_now("1234");
    assert_string_equal(json_string_value(json_object_get(rep2, "outcome")), "ok");
    json_decref(rep2);
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "SELECT 1"), PG_OK);
    freeReplyObject(r);
    int held1 = exists("1234", gcid);
    assert_int_equal(pg_redis_command(&r, "SELECT 0"), PG_OK);
    freeReplyObject(r);
    assert_true(held1);
    /* because the cursor saved was the first (earliest) reply's curUTC */
    json_t *dates = json_object_get(rep, "dates");
    const char *first = json_string_value(json_object_get(json_array_get(dates, 0), "curUTC"));
    const char *last = json_string_value(json_object_get(json_array_get(dates, 2), "curUTC"));
    assert_true(strcmp(first, last) < 0); /* the calls were seconds apart */
    assert_string_equal(json_string_value(json_object_get(rep, "cursor")), first);
    json_decref(rep);
}

/* A refused sign-in (wrong password) is its own outcome, logged as such, and retried with backoff.
 */
static void a_refused_sign_in_is_logged_clearly(void **state)
{
    assert_int_equal(pg_t_proc_stop(&gw), 0);
    pg_t_proc_destroy(&gw);
    static char g[4096];
    snprintf(g, sizeof g,
             "{\"listen\":{\"port\":0},\"log\":{\"level\":\"info\"},"
             "\"redis\":{\"url\":\"redis://127.0.0.1:%d/2\",\"command_timeout_ms\":2000},"
             "\"checks\":{\"bi\":{\"base_url\":\"%s\",\"org\":\"ACME\","
             "\"client_id\":\"UE9TR0FURS5URVNULk9OTFkuY2xpZW50\",\"username\":\"posgate-api\","
             "\"password\":\"not-the-password\",\"timeout_ms\":5000},"
             "\"poll\":{\"enabled\":true,\"interval_s\":1,\"backoff_max_s\":1,"
             "\"locations\":[\"1234\"]}},"
             "\"admin\":{\"api_key_hashes\":[\"" ADMIN_HASH "\"]}}",
             R.port, sim.micros_url);
    assert_int_equal(pg_t_gateway_start(&gw, g), 0);
    const char *m = "posgate_checks_polls_total{location=\"1234\",outcome=\"auth_failed\"}";
    int64_t end = pg_now_ms() + 20000;
    while (metric(m) < 2 && pg_now_ms() < end)
        pg_sleep_ms(50);
    assert_true(metric(m) >= 2); /* tried again */
    assert_true(metric("posgate_checks_polls_total{location=\"1234\",outcome=\"ok\"}") == 0);
    char *log = pg_t_proc_log(&gw);
    assert_non_null(strstr(log, "\"event\":\"poll.auth_failed\""));
    assert_non_null(strstr(log, "checks.bi.client_id, username, password and org"));
    assert_null(strstr(log, "not-the-password")); /* the secret never reaches the log */
    free(log);
}

/* --check-config refuses a poller it could not start, naming what is missing. */
static void check_config_names_what_the_poller_needs(void **state)
{
    char *dir = pg_t_mkdtemp("pollcfg");
    char cfgp[600], logp[600];
    snprintf(cfgp, sizeof cfgp, "%s/c.json", dir);
    snprintf(logp, sizeof logp, "%s/out.log", dir);
    const char *c = "{\"redis\":{\"url\":\"redis://127.0.0.1:1\"},\"checks\":{\"poll\":"
                    "{\"enabled\":true,\"locations\":[\"1234\"]},\"bi\":{\"org\":\"ACME\"}}}";
    assert_int_equal(pg_write_file_atomic(cfgp, c, strlen(c)), 0);
    const char *argv[] = {pg_t_bin("posgate"), "--check-config", cfgp, NULL};
    pid_t pid = pg_t_spawn(argv, logp);
    assert_true(pid > 0);
    assert_int_equal(pg_t_wait_exit(pid, 10000), 2);
    char *out = NULL;
    assert_int_equal(pg_read_file(logp, 1 << 16, &out, NULL), 0);
    assert_non_null(strstr(out, "checks.bi.base_url"));
    free(out);
    pg_t_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(days_of_two_locations_land),
        cmocka_unit_test(a_cycle_without_changes_queues_nothing),
        cmocka_unit_test(late_upload_to_an_old_date_is_queued),
        cmocka_unit_test(faults_back_off_and_recover_without_losing_the_cursor),
        cmocka_unit_test(member_ids_arrive_through_the_extensibility_call),
        cmocka_unit_test(a_failing_extensibility_call_queues_nothing_and_keeps_the_cursor),
        cmocka_unit_test(a_repull_request_fetches_the_whole_date),
        cmocka_unit_test(a_location_polled_elsewhere_is_left_alone),
        cmocka_unit_test(poll_now_needs_a_polled_location),
        cmocka_unit_test(check_config_names_what_the_poller_needs),
        cmocka_unit_test(a_change_during_a_cycle_is_caught_by_the_next), /* replaces the gateway */
        cmocka_unit_test(a_refused_sign_in_is_logged_clearly),           /* replaces it again */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
