/*
 * Customer matching (sync/match.h) without sockets: identifiers found on a check (extensions,
 * informationLines, configured paths), their normalisation, the rule order against a fake
 * Salesforce (the queries it receives are checked), ambiguity and errors, configuration errors.
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

#include "sync/match.h"

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return j;
}

static struct pg_matcher *matcher(const char *cfg)
{
    json_t *c = cfg ? J(cfg) : NULL;
    struct pg_matcher *m = NULL;
    char why[256];
    int rc = pg_match_new(c, NULL, &m, why, sizeof why);
    json_decref(c);
    if (rc != PG_OK)
        fail_msg("pg_match_new: %s", why);
    return m;
}

/* ---- a fake Salesforce: answers by the value in the WHERE clause ---- */

struct fake {
    char soql[8][512];
    int n;
    int fail_rc;
};

static int fake_query(
    void *ud, const char *soql, int64_t deadline_ms, json_t **records, char *why, size_t whysz)
{
    (void)deadline_ms;
    struct fake *f = ud;
    if (f->n < 8)
        snprintf(f->soql[f->n], sizeof f->soql[0], "%s", soql);
    f->n++;
    if (f->fail_rc) {
        snprintf(why, whysz, "salesforce down");
        return f->fail_rc;
    }
    if (strstr(soql, "'LY-1'"))
        *records = J("[{\"Id\":\"0035g00000K1tbPAAR\",\"AccountId\":\"0015g00000ZkM3hAAF\"}]");
    else if (strstr(soql, "'jane@example.com'"))
        *records = J("[{\"Id\":\"0035g00000K1tbQAAR\",\"AccountId\":\"0015g00000ZkM3iAAF\"}]");
    else if (strstr(soql, "'+14155550142'"))
        *records = J("[{\"Id\":\"0035g00000K1tbRAAR\",\"AccountId\":\"0015g00000ZkM3jAAF\"}]");
    else if (strstr(soql, "'twins@example.com'"))
        *records = J("[{\"Id\":\"0035g00000K1tbSAAR\",\"AccountId\":\"0015g00000ZkM3kAAF\"},"
                     "{\"Id\":\"0035g00000K1tbTAAR\",\"AccountId\":\"0015g00000ZkM3lAAF\"}]");
    else if (strstr(soql, "'noacct@example.com'"))
        *records = J("[{\"Id\":\"0035g00000K1tbUAAR\",\"AccountId\":null}]");
    else
        *records = json_array();
    return PG_OK;
}

static void test_extract_sources(void **state)
{
    (void)state;
    struct pg_matcher *m = matcher("{}");
    struct pg_match_ids ids;
    /* extension with the configured dataName wins over an information line */
    json_t *c = J("{\"guestCheckId\":1,\"extensions\":[{\"dataName\":\"other\",\"data\":\"X\"},"
                  "{\"displayName\":\"Loyalty ID\",\"dataName\":\"memberId\",\"data\":\" LY-7 \"}],"
                  "\"informationLines\":[\"LOYALTY LY-8\"]}");
    pg_match_extract(m, c, &ids);
    assert_string_equal(ids.v[PG_MATCH_LOYALTY], "LY-7");
    json_decref(c);
    c = J("{\"informationLines\":[\"TABLE 4\",\"loyalty LY-8\"]}");
    pg_match_extract(m, c, &ids);
    assert_string_equal(ids.v[PG_MATCH_LOYALTY], "LY-8");
    json_decref(c);
    /* a pushed STS-shaped check keeps its information lines under header */
    c = J("{\"header\":{\"informationLines\":[\"LOYALTY 123\"]}}");
    pg_match_extract(m, c, &ids);
    assert_string_equal(ids.v[PG_MATCH_LOYALTY], "123");
    json_decref(c);
    /* e-mail and phone at the default paths, normalised */
    c = J("{\"customer\":{\"loyaltyId\":\"LY-9\",\"email\":\"  Jane@Example.COM \","
          "\"phone\":\"(415) 555-0142\"}}");
    pg_match_extract(m, c, &ids);
    assert_string_equal(ids.v[PG_MATCH_LOYALTY], "LY-9");
    assert_string_equal(ids.v[PG_MATCH_EMAIL], "jane@example.com");
    assert_string_equal(ids.v[PG_MATCH_PHONE], "+14155550142");
    assert_int_equal(ids.invalid, 0);
    json_decref(c);
    /* values that do not normalise are dropped and counted, an empty extension is no id */
    c = J("{\"extensions\":[{\"dataName\":\"memberId\",\"data\":\"   \"}],"
          "\"customer\":{\"email\":\"not-an-email\",\"phone\":\"call me\"}}");
    pg_match_extract(m, c, &ids);
    assert_string_equal(ids.v[PG_MATCH_LOYALTY], "");
    assert_string_equal(ids.v[PG_MATCH_EMAIL], "");
    assert_string_equal(ids.v[PG_MATCH_PHONE], "");
    assert_int_equal(ids.invalid, 2);
    json_decref(c);
    pg_match_free(m);
}

static void test_extract_configured(void **state)
{
    (void)state;
    struct pg_matcher *m = matcher(
        "{\"loyalty\":{\"extension_names\":[\"loyaltyNo\"],\"info_line_prefixes\":[\"MBR#\"],"
        "\"paths\":[]},\"email_paths\":[\"guest.mail\"],\"phone_paths\":[\"guest.tel\"],"
        "\"default_country\":\"GB\"}");
    struct pg_match_ids ids;
    json_t *c = J("{\"extensions\":[{\"dataName\":\"memberId\",\"data\":\"LY-1\"}],"
                  "\"informationLines\":[\"MBR#A-77\"],\"customer\":{\"loyaltyId\":\"no\"},"
                  "\"guest\":{\"mail\":\"A@B.CO\",\"tel\":\"020 7946 0018\"}}");
    pg_match_extract(m, c, &ids);
    assert_string_equal(ids.v[PG_MATCH_LOYALTY], "A-77");
    assert_string_equal(ids.v[PG_MATCH_EMAIL], "a@b.co");
    assert_string_equal(ids.v[PG_MATCH_PHONE], "+442079460018");
    json_decref(c);
    pg_match_free(m);
}

static int
decide(struct pg_matcher *m, struct fake *f, const char *check, struct pg_match_result *res)
{
    json_t *c = J(check);
    struct pg_match_ids ids;
    pg_match_extract(m, c, &ids);
    json_decref(c);
    char why[128];
    pg_match_set_query(m, fake_query, f);
    return pg_match_decide(m, &ids, 0, 0, res, why, sizeof why);
}

static void test_rule_order(void **state)
{
    (void)state;
    struct pg_matcher *m = matcher("{}");
    struct pg_match_result res;
    struct fake f = {0};
    /* loyalty id found: one query, email and phone never asked */
    assert_int_equal(decide(m, &f,
                            "{\"informationLines\":[\"LOYALTY LY-1\"],\"customer\":{\"email\":"
                            "\"jane@example.com\",\"phone\":\"+14155550142\"}}",
                            &res),
                     PG_OK);
    assert_true(res.found);
    assert_int_equal(res.kind, PG_MATCH_LOYALTY);
    assert_string_equal(res.account_id, "0015g00000ZkM3hAAF");
    assert_int_equal(f.n, 1);
    assert_string_equal(f.soql[0],
                        "SELECT Id,AccountId FROM Contact WHERE Loyalty_Id__c = 'LY-1' LIMIT 2");
    /* unknown loyalty id → lower-cased e-mail */
    memset(&f, 0, sizeof f);
    assert_int_equal(decide(m, &f,
                            "{\"informationLines\":[\"LOYALTY LY-404\"],\"customer\":{\"email\":"
                            "\"JANE@example.com\",\"phone\":\"+14155550142\"}}",
                            &res),
                     PG_OK);
    assert_true(res.found);
    assert_int_equal(res.kind, PG_MATCH_EMAIL);
    assert_string_equal(res.account_id, "0015g00000ZkM3iAAF");
    assert_int_equal(f.n, 2);
    assert_string_equal(
        f.soql[1], "SELECT Id,AccountId FROM Contact WHERE Email = 'jane@example.com' LIMIT 2");
    /* then the E.164 phone */
    memset(&f, 0, sizeof f);
    assert_int_equal(decide(m, &f,
                            "{\"customer\":{\"email\":\"who@example.com\",\"phone\":\"415.555."
                            "0142\"}}",
                            &res),
                     PG_OK);
    assert_true(res.found);
    assert_int_equal(res.kind, PG_MATCH_PHONE);
    assert_string_equal(res.account_id, "0015g00000ZkM3jAAF");
    assert_string_equal(
        f.soql[1], "SELECT Id,AccountId FROM Contact WHERE Phone_E164__c = '+14155550142' LIMIT 2");
    /* nothing found */
    memset(&f, 0, sizeof f);
    assert_int_equal(decide(m, &f, "{\"customer\":{\"email\":\"who@example.com\"}}", &res), PG_OK);
    assert_false(res.found);
    assert_false(res.ambiguous);
    assert_int_equal(f.n, 1);
    /* no identifiers: no query at all */
    memset(&f, 0, sizeof f);
    assert_int_equal(decide(m, &f, "{\"guestCheckId\":5}", &res), PG_OK);
    assert_false(res.found);
    assert_int_equal(f.n, 0);
    /* a Contact without an Account: found, but no account to link */
    memset(&f, 0, sizeof f);
    assert_int_equal(decide(m, &f, "{\"customer\":{\"email\":\"noacct@example.com\"}}", &res),
                     PG_OK);
    assert_true(res.found);
    assert_string_equal(res.account_id, "");
    pg_match_free(m);
}

static void test_ambiguous_stops(void **state)
{
    (void)state;
    struct pg_matcher *m = matcher("{}");
    struct pg_match_result res;
    struct fake f = {0};
    /* two records for the e-mail: ambiguous, and the phone (which would match) is not tried */
    assert_int_equal(decide(m, &f,
                            "{\"customer\":{\"email\":\"twins@example.com\",\"phone\":"
                            "\"+14155550142\"}}",
                            &res),
                     PG_OK);
    assert_false(res.found);
    assert_true(res.ambiguous);
    assert_int_equal(res.kind, PG_MATCH_EMAIL);
    assert_string_equal(res.candidates, "0035g00000K1tbSAAR,0035g00000K1tbTAAR");
    assert_int_equal(f.n, 1);
    pg_match_free(m);
}

static void test_errors_and_injection(void **state)
{
    (void)state;
    struct pg_matcher *m = matcher("{}");
    struct pg_match_result res;
    struct fake f = {.fail_rc = PG_EUNAVAIL};
    assert_int_equal(decide(m, &f, "{\"informationLines\":[\"LOYALTY LY-1\"]}", &res), PG_EUNAVAIL);
    /* a quote in the value is escaped, never pasted */
    memset(&f, 0, sizeof f);
    assert_int_equal(decide(m, &f, "{\"informationLines\":[\"LOYALTY x' OR Name != '\"]}", &res),
                     PG_OK);
    assert_int_equal(f.n, 1);
    assert_non_null(strstr(f.soql[0], "Loyalty_Id__c = 'x\\' OR Name != \\''"));
    pg_match_free(m);
}

static void test_off(void **state)
{
    (void)state;
    char acct[32], why[64];
    struct pg_matcher *m = matcher(NULL);
    assert_false(pg_match_enabled(m));
    json_t *c = J("{\"informationLines\":[\"LOYALTY LY-1\"]}");
    assert_int_equal(pg_match_check(m, c, "1234", 0, acct, sizeof acct, why, sizeof why), PG_OK);
    assert_string_equal(acct, "");
    assert_string_equal(why, "off");
    pg_match_free(m);
    m = matcher("{\"enabled\":false}");
    assert_false(pg_match_enabled(m));
    pg_match_free(m);
    json_decref(c);
}

static void bad(const char *cfg, const char *needle)
{
    json_t *c = J(cfg);
    struct pg_matcher *m = NULL;
    char why[256] = "";
    assert_int_equal(pg_match_new(c, NULL, &m, why, sizeof why), PG_ECONFIG);
    assert_null(m);
    if (!strstr(why, needle))
        fail_msg("config %s: expected \"%s\" in \"%s\"", cfg, needle, why);
    json_decref(c);
}

static void test_config_errors(void **state)
{
    (void)state;
    bad("[]", "checks.matching: expected an object");
    bad("{\"emial_paths\":[]}", "unknown key \"emial_paths\"");
    bad("{\"loyalty\":{\"prefix\":\"X\"}}", "checks.matching.loyalty: unknown key \"prefix\"");
    bad("{\"loyalty\":{\"paths\":[\"a..b\"]}}", "loyalty.paths[0]");
    bad("{\"email_paths\":\"customer.email\"}", "email_paths: expected an array");
    bad("{\"object\":\"Contact; DELETE\"}", "checks.matching.object");
    bad("{\"phone_field\":\"\"}", "checks.matching.phone_field");
    bad("{\"default_country\":\"XX\"}", "default_country");
    bad("{\"no_match\":\"create\"}", "not supported yet");
    bad("{\"cache_ttl_s\":-1}", "cache_ttl_s");
    bad("{\"enabled\":\"yes\"}", "enabled");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract_sources),      cmocka_unit_test(test_extract_configured),
        cmocka_unit_test(test_rule_order),           cmocka_unit_test(test_ambiguous_stops),
        cmocka_unit_test(test_errors_and_injection), cmocka_unit_test(test_off),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
