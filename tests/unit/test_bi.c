/*
 * BI API client pieces that need no server: PKCE (RFC 7636 appendix B vector), the date and
 * changedSinceUTC rules of micros-wire.md §1.2/§1.4, the getGuestChecks body, JWT exp parsing
 * and configuration validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "micros/bi.h"

static void pkce_rfc7636_vector(void **state)
{
    char ch[64];
    assert_int_equal(
        pg_bi_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ch, sizeof ch), PG_OK);
    assert_string_equal(ch, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    /* Oracle's sample verifier (all unreserved characters) is accepted. */
    assert_int_equal(
        pg_bi_pkce_challenge("-._~QWERTYUIOPASDFGHJKLZXCVBNMqwertyuiopasdfghjklzxcvbnm-._~", ch,
                             sizeof ch),
        PG_OK);
    assert_int_equal(strlen(ch), 43);
}

static void pkce_verifier_rules(void **state)
{
    char ch[64], v[80], v2[80];
    assert_int_equal(pg_bi_pkce_challenge("short", ch, sizeof ch), PG_EINVAL);
    char long_v[130];
    memset(long_v, 'a', 129);
    long_v[129] = '\0';
    assert_int_equal(pg_bi_pkce_challenge(long_v, ch, sizeof ch), PG_EINVAL);
    long_v[128] = '\0';
    assert_int_equal(pg_bi_pkce_challenge(long_v, ch, sizeof ch), PG_OK);
    long_v[43] = '\0';
    assert_int_equal(pg_bi_pkce_challenge(long_v, ch, sizeof ch), PG_OK);
    long_v[42] = '\0';
    assert_int_equal(pg_bi_pkce_challenge(long_v, ch, sizeof ch), PG_EINVAL);
    assert_int_equal(
        pg_bi_pkce_challenge("dBjftJeZ4CVP+mB92K27uhbUJU1p1r/wW1gFWFOEjXk=", ch, sizeof ch),
        PG_EINVAL);
    assert_int_equal(pg_bi_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ch, 43),
                     PG_EINVAL);

    assert_int_equal(pg_bi_pkce_verifier(v, sizeof v), PG_OK);
    assert_int_equal(pg_bi_pkce_verifier(v2, sizeof v2), PG_OK);
    assert_int_equal(strlen(v), 64);
    assert_string_not_equal(v, v2);
    assert_int_equal(strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     64);
    assert_int_equal(pg_bi_pkce_challenge(v, ch, sizeof ch), PG_OK);
    assert_int_equal(pg_bi_pkce_verifier(v, 64), PG_EINVAL);
}

static void dates(void **state)
{
    assert_true(pg_bi_valid_date("2024-05-01"));
    assert_true(pg_bi_valid_date("2024-02-29"));
    assert_true(pg_bi_valid_date("2000-02-29"));
    assert_false(pg_bi_valid_date("1900-02-29"));
    assert_false(pg_bi_valid_date("2023-02-29"));
    assert_false(pg_bi_valid_date("2024-04-31"));
    assert_false(pg_bi_valid_date("2024-13-01"));
    assert_false(pg_bi_valid_date("2024-00-10"));
    assert_false(pg_bi_valid_date("2024-01-00"));
    assert_false(pg_bi_valid_date("2024-5-01"));
    assert_false(pg_bi_valid_date("20240501"));
    assert_false(pg_bi_valid_date("2024-05-01T00:00:00"));
    assert_false(pg_bi_valid_date("2024-05-01 "));
    assert_false(pg_bi_valid_date(""));
    assert_false(pg_bi_valid_date(NULL));
}

static void changed_since(void **state)
{
    assert_true(pg_bi_valid_utc("2024-05-01T14:00:00"));
    assert_true(pg_bi_valid_utc("2024-12-31T23:59:59"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:00:00Z"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:00:00z"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:00:00+00:00"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:00:00-05:00"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:00:00.000"));
    assert_false(pg_bi_valid_utc("2024-05-01 14:00:00"));
    assert_false(pg_bi_valid_utc("2024-05-01T24:00:00"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:60:00"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:00:60"));
    assert_false(pg_bi_valid_utc("2024-02-30T14:00:00"));
    assert_false(pg_bi_valid_utc("2024-05-01T14:00"));
    assert_false(pg_bi_valid_utc("2024-05-01"));
    assert_false(pg_bi_valid_utc(NULL));
}

static json_t *body_of(enum pg_bi_date_kind kind, const char *date, const char *cs, int closed)
{
    char *s = NULL;
    assert_int_equal(pg_bi_build_request("gw", "0042", kind, date, cs, closed, &s), PG_OK);
    assert_non_null(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    return j;
}

static void request_body(void **state)
{
    json_t *j = body_of(PG_BI_BUS_DT, "2024-05-01", NULL, 0);
    assert_int_equal(json_object_size(j), 3);
    assert_string_equal(json_string_value(json_object_get(j, "applicationName")), "gw");
    assert_string_equal(json_string_value(json_object_get(j, "locRef")), "0042"); /* zeros kept */
    assert_string_equal(json_string_value(json_object_get(j, "busDt")), "2024-05-01");
    json_decref(j);

    j = body_of(PG_BI_OPN_BUS_DT, "2024-05-01", "2024-05-01T14:00:00", 1);
    assert_int_equal(json_object_size(j), 5);
    assert_null(json_object_get(j, "busDt"));
    assert_null(json_object_get(j, "clsdBusDt"));
    assert_string_equal(json_string_value(json_object_get(j, "opnBusDt")), "2024-05-01");
    assert_string_equal(json_string_value(json_object_get(j, "changedSinceUTC")),
                        "2024-05-01T14:00:00");
    assert_true(json_is_true(json_object_get(j, "clsdGuestChecksOnly")));
    json_decref(j);

    j = body_of(PG_BI_CLSD_BUS_DT, "2024-02-29", NULL, 0);
    assert_string_equal(json_string_value(json_object_get(j, "clsdBusDt")), "2024-02-29");
    assert_null(json_object_get(j, "busDt"));
    assert_null(json_object_get(j, "opnBusDt"));
    assert_null(json_object_get(j, "clsdGuestChecksOnly"));
    json_decref(j);

    char *s = NULL;
    assert_int_equal(pg_bi_build_request(NULL, "1", PG_BI_BUS_DT, "2024-05-01", NULL, 0, &s),
                     PG_OK);
    assert_non_null(strstr(s, "\"applicationName\":\"posgate\""));
    free(s);
}

static void request_rejections(void **state)
{
    char *s = (char *)1;
    assert_int_equal(
        pg_bi_build_request("gw", "1", PG_BI_BUS_DT, "2024-05-01", "2024-05-01T14:00:00Z", 0, &s),
        PG_EINVAL);
    assert_null(s);
    assert_int_equal(pg_bi_build_request("gw", "1", PG_BI_BUS_DT, "2024-05-01",
                                         "2024-05-01T14:00:00+02:00", 0, &s),
                     PG_EINVAL);
    assert_int_equal(pg_bi_build_request("gw", "1", PG_BI_BUS_DT, "2024-5-1", NULL, 0, &s),
                     PG_EINVAL);
    assert_int_equal(pg_bi_build_request("gw", "1", PG_BI_BUS_DT, NULL, NULL, 0, &s), PG_EINVAL);
    assert_int_equal(pg_bi_build_request("gw", "", PG_BI_BUS_DT, "2024-05-01", NULL, 0, &s),
                     PG_EINVAL);
    assert_int_equal(pg_bi_build_request("gw", NULL, PG_BI_BUS_DT, "2024-05-01", NULL, 0, &s),
                     PG_EINVAL);
    char loc[101];
    memset(loc, '7', 100);
    loc[100] = '\0';
    assert_int_equal(pg_bi_build_request("gw", loc, PG_BI_BUS_DT, "2024-05-01", NULL, 0, &s),
                     PG_EINVAL);
    loc[99] = '\0';
    assert_int_equal(pg_bi_build_request("gw", loc, PG_BI_BUS_DT, "2024-05-01", NULL, 0, &s),
                     PG_OK);
    free(s);
    assert_int_equal(
        pg_bi_build_request("gw", "1", (enum pg_bi_date_kind)7, "2024-05-01", NULL, 0, &s),
        PG_EINVAL);
    assert_int_equal(pg_bi_build_request("gw", "1", PG_BI_BUS_DT, "2024-05-01", NULL, 0, NULL),
                     PG_EINVAL);
}

static void jwt_exp(void **state)
{
    /* {"alg":"none"} . {"sub":"api","exp":1714572000} . sig */
    assert_int_equal(pg_bi_jwt_exp("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhcGkiLCJleHAiOjE3MTQ1NzIwMDB9.c2"
                                   "ln"),
                     1714572000);
    /* {"sub":"api"}: no exp */
    assert_int_equal(pg_bi_jwt_exp("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhcGkifQ.c2ln"), -1);
    assert_int_equal(pg_bi_jwt_exp("opaque-token"), -1);
    assert_int_equal(pg_bi_jwt_exp("a.!!!.b"), -1);
    assert_int_equal(pg_bi_jwt_exp(NULL), -1);
}

static void config_validation(void **state)
{
    struct pg_bi *b = NULL;
    struct pg_bi_config c = {.base_url = "https://bi.example",
                             .org = "acme",
                             .client_id = "Y2xpZW50",
                             .username = "api",
                             .password = "pw"};
    assert_int_equal(pg_bi_new(&c, &b), PG_OK);
    assert_non_null(b);
    pg_bi_free(b);

    struct pg_bi_config bad = c;
    bad.base_url = "ftp://x";
    assert_int_equal(pg_bi_new(&bad, &b), PG_EINVAL);
    assert_null(b);
    bad = c;
    bad.org = "ac/me";
    assert_int_equal(pg_bi_new(&bad, &b), PG_EINVAL);
    bad = c;
    bad.password = "";
    assert_int_equal(pg_bi_new(&bad, &b), PG_EINVAL);
    bad = c;
    bad.auth_base_url = "https://idm example";
    assert_int_equal(pg_bi_new(&bad, &b), PG_EINVAL);
    assert_int_equal(pg_bi_new(NULL, &b), PG_EINVAL);
    pg_bi_free(NULL);
}

static void argument_checks(void **state)
{
    struct pg_bi *b = NULL;
    struct pg_bi_config c = {.base_url = "http://127.0.0.1:9", /* nothing listens: never used */
                             .org = "acme",
                             .client_id = "Y2xpZW50",
                             .username = "api",
                             .password = "pw"};
    assert_int_equal(pg_bi_new(&c, &b), PG_OK);
    json_t *j = (json_t *)1;
    char why[128];
    int ra = 0;
    /* Rejected before any network traffic (a sign-in would need the unreachable server). */
    assert_int_equal(pg_bi_guest_checks(b, "1", PG_BI_BUS_DT, "2024-05-01", "2024-05-01T14:00:00Z",
                                        0, INT64_MAX, &j, &ra, why, sizeof why),
                     PG_EINVAL);
    assert_null(j);
    assert_int_equal(ra, -1);
    assert_non_null(strstr(why, "changedSinceUTC"));
    assert_int_equal(
        pg_bi_dimension(b, "getNothingDimensions", "1", INT64_MAX, &j, why, sizeof why), PG_EINVAL);
    assert_int_equal(
        pg_bi_dimension(b, "getMenuItemDimensions", NULL, INT64_MAX, &j, why, sizeof why),
        PG_EINVAL);
    assert_int_equal(pg_bi_daily_totals(b, "getControlDailyTotals", "1", "2024-02-30", INT64_MAX,
                                        &j, why, sizeof why),
                     PG_EINVAL);
    assert_int_equal(pg_bi_daily_totals(b, "getFooDailyTotals", "1", "2024-02-01", INT64_MAX, &j,
                                        why, sizeof why),
                     PG_EINVAL);
    char d[11];
    assert_int_equal(pg_bi_latest_bus_dt(b, "", INT64_MAX, d, sizeof d, NULL, 0), PG_EINVAL);
    char tok[16];
    assert_int_equal(pg_bi_token(b, INT64_MAX, tok, 0), PG_EINVAL);
    unsigned long long s = 9, r = 9, f = 9;
    pg_bi_stats(b, &s, &r, &f);
    assert_true(s == 0 && r == 0 && f == 0);
    pg_bi_free(b);
}

/* pg_bi_ext_index: getGuestCheckExtensibilityDetails → {"<guestCheckId>": [extensions entry]}.
 * The nested shape (extensibilityDetails) is ours; flat rows and the POS API's names
 * (applicationName, displayText) are accepted since the reply's inner names are unverified. */
static void ext_index(void **state)
{
    (void)state;
    json_t *r = json_loads(
        "{\"locRef\":\"1\",\"revenueCenters\":["
        "{\"rvcNum\":1,\"guestChecks\":[{\"guestCheckId\":7,\"extensibilityDetails\":["
        "{\"appName\":\"a\",\"dataName\":\"memberId\",\"dataType\":\"string\",\"data\":\"LY-1\","
        "\"displayName\":\"Loyalty ID\"},{\"dataName\":\"nodata\"}]}]},"
        "{\"rvcNum\":2,\"guestChecks\":[{\"guestCheckId\":\"8\",\"applicationName\":\"b\","
        "\"dataName\":\"memberId\",\"data\":\"LY-2\",\"displayText\":\"x\"}]},"
        "{\"rvcNum\":3}]}",
        0, NULL);
    assert_non_null(r);
    json_t *idx = NULL;
    assert_int_equal(pg_bi_ext_index(r, &idx), PG_OK);
    json_t *want =
        json_loads("{\"7\":[{\"appName\":\"a\",\"dataName\":\"memberId\",\"dataType\":\"string\","
                   "\"data\":\"LY-1\",\"displayName\":\"Loyalty ID\"}],"
                   "\"8\":[{\"appName\":\"b\",\"dataName\":\"memberId\",\"data\":\"LY-2\","
                   "\"displayName\":\"x\"}]}",
                   0, NULL);
    assert_true(json_equal(idx, want));
    json_decref(want);
    json_decref(idx);
    json_decref(r);
    /* no revenueCenters (nothing stamped that day): empty; a wrong container: EPROTO */
    r = json_loads("{\"locRef\":\"1\"}", 0, NULL);
    assert_int_equal(pg_bi_ext_index(r, &idx), PG_OK);
    assert_int_equal(json_object_size(idx), 0);
    json_decref(idx);
    json_decref(r);
    r = json_loads("{\"revenueCenters\":{}}", 0, NULL);
    assert_int_equal(pg_bi_ext_index(r, &idx), PG_EPROTO);
    assert_null(idx);
    json_decref(r);
    r = json_loads("{\"revenueCenters\":[{\"guestChecks\":3}]}", 0, NULL);
    assert_int_equal(pg_bi_ext_index(r, &idx), PG_EPROTO);
    json_decref(r);
    /* the client refuses a bad date before sending anything */
    assert_int_equal(pg_bi_guest_check_ext(NULL, "1", "2024-05-01", 0, &r, NULL, NULL, 0),
                     PG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pkce_rfc7636_vector),
        cmocka_unit_test(pkce_verifier_rules),
        cmocka_unit_test(dates),
        cmocka_unit_test(changed_since),
        cmocka_unit_test(request_body),
        cmocka_unit_test(request_rejections),
        cmocka_unit_test(jwt_exp),
        cmocka_unit_test(config_validation),
        cmocka_unit_test(argument_checks),
        cmocka_unit_test(ext_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
