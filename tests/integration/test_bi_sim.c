/*
 * The gateway's BI API client against the MICROS simulator (not only its own test server): the
 * PKCE sign-in, a day of guest checks, a late upload caught by a changedSinceUTC re-poll, and
 * dimensions. Both sides were written from the reference independently; this is where they meet.
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

#include "micros/bi.h"
#include "server/util.h"
#include "tests/support/harness.h"

static struct pg_t_proc sim;
static struct pg_bi *bi;

static int setup(void **state)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\"},\"micros\":{\"port\":0,\"seed\":\"%s\","
             "\"bi\":{\"generate\":{\"days\":[\"2026-11-20\"],\"checks_per_day\":30,"
             "\"late_per_day\":3,\"seed\":7}}}}",
             pg_t_src("tests/data/salesforce_seed.json"), pg_t_src("tests/data/micros_seed.json"));
    if (pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    struct pg_bi_config c = {
        .base_url = sim.micros_url,
        .org = "ACME",
        .client_id = "UE9TR0FURS5URVNULk9OTFkuY2xpZW50",
        .username = "posgate-api",
        .password = "posgate-bi-demo",
    };
    return pg_bi_new(&c, &bi);
}

static int teardown(void **state)
{
    pg_bi_free(bi);
    int st = pg_t_proc_stop(&sim);
    pg_t_proc_destroy(&sim);
    return st == 0 ? 0 : -1;
}

static size_t count_checks(const char *changed_since, char *cur_utc, size_t cusz)
{
    json_t *resp = NULL;
    int ra = -1;
    char why[256] = "";
    int rc = pg_bi_guest_checks(bi, "1234", PG_BI_BUS_DT, "2026-11-20", changed_since, 0,
                                pg_now_ms() + 10000, &resp, &ra, why, sizeof why);
    if (rc != PG_OK)
        fail_msg("getGuestChecks: %s (%s)", pg_strerror(rc), why);
    size_t n = json_array_size(json_object_get(resp, "guestChecks"));
    if (cur_utc)
        snprintf(cur_utc, cusz, "%s", json_string_value(json_object_get(resp, "curUTC")));
    json_decref(resp);
    return n;
}

static void signs_in_and_reads_a_day(void **state)
{
    char cur[32];
    size_t n = count_checks(NULL, cur, sizeof cur);
    assert_true(n >= 25);              /* 30 generated, 3 of them held back as late uploads */
    assert_int_equal(strlen(cur), 19); /* curUTC: no zone suffix */
    unsigned long long signins = 0, refreshes = 0, failures = 0;
    pg_bi_stats(bi, &signins, &refreshes, &failures);
    assert_int_equal(signins, 1);
    assert_int_equal(failures, 0);
}

static void late_upload_is_caught_by_the_cursor(void **state)
{
    char cur[32];
    size_t before = count_checks(NULL, cur, sizeof cur);
    assert_int_equal(count_checks(cur, NULL, 0) <= 1, 1); /* nothing new since the cursor */
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/bi/late-upload", sim.micros_url);
    const char *body = "{\"locRef\":\"1234\",\"busDt\":\"2026-11-20\",\"count\":2}";
    const char *h[] = {"Content-Type: application/json", NULL};
    struct pg_t_resp r;
    assert_int_equal(pg_t_http("POST", u, h, body, strlen(body), 0, &r), 0);
    assert_int_equal(r.status, 200);
    pg_t_resp_free(&r);
    assert_true(count_checks(cur, NULL, 0) >= 2); /* the re-poll sees the late checks */
    assert_int_equal(count_checks(NULL, NULL, 0), before + 2); /* and the day grew by them */
}

static void dimensions(void **state)
{
    json_t *d = NULL;
    char why[256] = "";
    int rc = pg_bi_dimension(bi, "getMenuItemDimensions", "1234", pg_now_ms() + 10000, &d, why,
                             sizeof why);
    if (rc != PG_OK)
        fail_msg("dimension: %s (%s)", pg_strerror(rc), why);
    assert_non_null(d);
    json_decref(d);
}

/* getGuestCheckExtensibilityDetails: member ids by opening date, grouped by revenue center, and
 * not inline in getGuestChecks; the request is validated as the other operations (400 + 33205). */
static void extensibility_details(void **state)
{
    json_t *resp = NULL, *idx = NULL, *gc = NULL;
    char why[256] = "";
    int rc = pg_bi_guest_check_ext(bi, "1234", "2026-11-20", pg_now_ms() + 10000, &resp, NULL, why,
                                   sizeof why);
    if (rc != PG_OK)
        fail_msg("getGuestCheckExtensibilityDetails: %s (%s)", pg_strerror(rc), why);
    assert_string_equal(json_string_value(json_object_get(resp, "locRef")), "1234");
    assert_string_equal(json_string_value(json_object_get(resp, "opnBusDt")), "2026-11-20");
    assert_true(json_array_size(json_object_get(resp, "revenueCenters")) >= 1);
    assert_int_equal(pg_bi_ext_index(resp, &idx), PG_OK);
    assert_true(json_object_size(idx) >= 1);
    json_decref(resp);
    assert_int_equal(pg_bi_guest_checks(bi, "1234", PG_BI_BUS_DT, "2026-11-20", NULL, 0,
                                        pg_now_ms() + 10000, &gc, NULL, why, sizeof why),
                     PG_OK);
    size_t i, with = 0;
    json_t *c;
    json_array_foreach(json_object_get(gc, "guestChecks"), i, c)
    {
        assert_null(json_object_get(c, "extensions"));
        char k[32];
        snprintf(k, sizeof k, "%lld",
                 (long long)json_integer_value(json_object_get(c, "guestCheckId")));
        json_t *e = json_array_get(json_object_get(idx, k), 0);
        if (e) {
            with++;
            assert_string_equal(json_string_value(json_object_get(e, "dataName")), "memberId");
            assert_true(json_is_true(json_object_get(c, "clsdFlag")));
        }
    }
    assert_true(with >= 1);
    json_decref(gc);
    json_decref(idx);
    /* a date without data: an empty list, not an error */
    assert_int_equal(pg_bi_guest_check_ext(bi, "1234", "2020-01-01", pg_now_ms() + 10000, &resp,
                                           NULL, why, sizeof why),
                     PG_OK);
    assert_int_equal(json_array_size(json_object_get(resp, "revenueCenters")), 0);
    json_decref(resp);
    /* raw requests: opnBusDt required, busDt not accepted, bad date refused */
    char tok[PG_BI_TOKEN_MAX], auth[PG_BI_TOKEN_MAX + 32], u[256];
    assert_int_equal(pg_bi_token(bi, pg_now_ms() + 10000, tok, sizeof tok), PG_OK);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    snprintf(u, sizeof u, "%s/bi/v1/ACME/getGuestCheckExtensibilityDetails", sim.micros_url);
    const char *h[] = {"Content-Type: application/json", auth, NULL};
    const char *bad[] = {"{\"locRef\":\"1234\"}", "{\"locRef\":\"1234\",\"busDt\":\"2026-11-20\"}",
                         "{\"locRef\":\"1234\",\"opnBusDt\":\"2026-13-01\"}",
                         "{\"opnBusDt\":\"2026-11-20\"}"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        struct pg_t_resp r;
        assert_int_equal(pg_t_http("POST", u, h, bad[k], strlen(bad[k]), 0, &r), 0);
        if (r.status != 400 || !strstr(r.body, "\"status\":400"))
            fail_msg("%s: %ld %s", bad[k], r.status, r.body);
        pg_t_resp_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signs_in_and_reads_a_day),
        cmocka_unit_test(late_upload_is_caught_by_the_cursor),
        cmocka_unit_test(dimensions),
        cmocka_unit_test(extensibility_details),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
