/*
 * Customer matching (sync/match.h) against the Salesforce simulator's SOQL and a real Redis: a
 * loyalty id from a check's extensions, the e-mail fallback (case-insensitive as in Salesforce),
 * the E.164 phone fallback, an ambiguous e-mail (review stream, walk-in account), no match, the
 * cache (a second check of the same member asks Salesforce nothing), and Salesforce down (the
 * error is returned so the loader retries). The hook is called as the loader calls it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "salesforce/oauth.h"
#include "salesforce/rest.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "sync/match.h"
#include "tests/support/harness.h"

#define CLIENT_ID "3MVG9posgateMatchTest"
#define SF_USER "integration@acme.example"

static struct pg_t_redis R;
static struct pg_t_proc sim;
static struct pg_sf_oauth *oauth;
static struct pg_sf_rest *rest;
static struct pg_matcher *m;
static char *key_pem, *seed_dir;

/* Contacts with their Accounts; two share an e-mail (Salesforce does not stop that). */
static const char SEED[] =
    "{\"contacts\":["
    "{\"Id\":\"0035g00000K1tbPAAR\",\"FirstName\":\"Jane\",\"LastName\":\"Doe\","
    "\"Email\":\"jane.doe@example.com\",\"MobilePhone\":\"+14155550142\","
    "\"Phone_E164__c\":\"+14155550142\",\"Loyalty_Id__c\":\"LY-000123\","
    "\"AccountId\":\"0015g00000AcJanAAF\"},"
    "{\"Id\":\"0035g00000Lq8ZwAAJ\",\"FirstName\":\"Zo\\u00eb\",\"LastName\":\"Nguyen\","
    "\"Email\":\"Zoe.Nguyen@Example.com\",\"MobilePhone\":\"(415) 555-0143\","
    "\"Phone_E164__c\":\"+14155550143\",\"Loyalty_Id__c\":\"LY-000124\","
    "\"AccountId\":\"0015g00000AcZoeAAF\"},"
    "{\"Id\":\"0035g00000Ph0n3AAB\",\"LastName\":\"Phoner\",\"Email\":null,"
    "\"MobilePhone\":\"415 555 0199\",\"Phone_E164__c\":\"+14155550199\","
    "\"Loyalty_Id__c\":null,\"AccountId\":\"0015g00000AcPh3AAF\"},"
    "{\"Id\":\"0035g00000Tw1n1AAB\",\"LastName\":\"Twin\",\"Email\":\"twins@example.com\","
    "\"Loyalty_Id__c\":\"LY-000201\",\"AccountId\":\"0015g00000AcTw1AAF\"},"
    "{\"Id\":\"0035g00000Tw1n2AAB\",\"LastName\":\"Twin\",\"Email\":\"TWINS@example.com\","
    "\"Loyalty_Id__c\":\"LY-000202\",\"AccountId\":\"0015g00000AcTw2AAF\"}]}";

static int setup(void **state)
{
    (void)state;
    if (pg_t_redis_start(&R) != 0)
        return -1;
    struct pg_redis_opts o = {.url = R.url,
                              .connect_timeout_ms = 500,
                              .command_timeout_ms = 5000,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 200};
    if (pg_redis_init(&o) != PG_OK)
        return -1;
    seed_dir = pg_t_mkdtemp("match-seed");
    char seed[700], cfg[2048];
    snprintf(seed, sizeof seed, "%s/seed.json", seed_dir);
    if (pg_write_file_atomic(seed, SEED, strlen(SEED)) != PG_OK)
        return -1;
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\",\"oauth\":{\"certificate\":\"%s\","
             "\"client_id\":\"" CLIENT_ID "\",\"username\":\"" SF_USER "\"}},\"micros\":"
             "{\"port\":0}}",
             seed, pg_t_src("tests/data/keys/sf-oauth.crt"));
    if (pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    size_t len = 0;
    if (pg_read_file(pg_t_src("tests/data/keys/sf-oauth.key"), 1 << 20, &key_pem, &len) != 0)
        return -1;
    struct pg_sf_oauth_config oc = {.login_url = sim.url,
                                    .audience = "https://login.salesforce.com",
                                    .client_id = CLIENT_ID,
                                    .username = SF_USER,
                                    .private_key_pem = key_pem,
                                    .private_key_len = len};
    struct pg_sf_rest_config rc = {.timeout_ms = 3000};
    if (pg_sf_oauth_new(&oc, &oauth) != PG_OK || pg_sf_rest_new(&rc, oauth, &rest) != PG_OK)
        return -1;
    json_t *mc = json_loads("{\"default_country\":\"US\",\"cache_ttl_s\":600}", 0, NULL);
    char why[256];
    int r = pg_match_new(mc, rest, &m, why, sizeof why);
    json_decref(mc);
    return r == PG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pg_match_free(m);
    pg_sf_rest_free(rest);
    pg_sf_oauth_free(oauth);
    free(key_pem);
    pg_t_proc_destroy(&sim);
    pg_t_rmtree(seed_dir);
    free(seed_dir);
    pg_redis_shutdown();
    pg_t_redis_destroy(&R);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static int check(const char *json, char *acct, char *why)
{
    json_error_t e;
    json_t *c = json_loads(json, 0, &e);
    if (!c)
        fail_msg("bad test JSON: %s", e.text);
    int rc = pg_match_check(m, c, "1234", pg_now_ms() + 5000, acct, 32, why, 96);
    json_decref(c);
    return rc;
}

/* Queries the simulator has answered so far (its request log). */
static size_t queries(void)
{
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/log", sim.url);
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(u, &r), 0);
    json_t *log = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        const char *p = json_string_value(json_object_get(e, "path"));
        n += p && strstr(p, "/query") != NULL;
    }
    json_decref(log);
    return n;
}

static void sim_fault(const char *body)
{
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/faults", sim.url);
    const char *h[] = {"Content-Type: application/json", NULL};
    struct pg_t_resp r;
    assert_int_equal(
        pg_t_http(body ? "POST" : "DELETE", u, h, body, body ? strlen(body) : 0, 5000, &r), 0);
    pg_t_resp_free(&r);
}

/* ---------------------------------------------------------------- tests */

static void loyalty_id_from_extensions(void **state)
{
    (void)state;
    char acct[32], why[96];
    size_t q0 = queries();
    assert_int_equal(
        check("{\"guestCheckId\":1,\"extensions\":[{\"displayName\":\"Loyalty ID\","
              "\"appName\":\"gw\",\"dataName\":\"memberId\",\"dataType\":\"string\","
              "\"data\":\"LY-000123\"}],\"customer\":{\"email\":\"twins@example.com\"}}",
              acct, why),
        PG_OK);
    assert_string_equal(acct, "0015g00000AcJanAAF");
    assert_string_equal(why, "loyalty");
    assert_int_equal(queries() - q0, 1); /* the e-mail (ambiguous) was never asked */
    /* the same member on the next check: from the cache, Salesforce not asked */
    assert_int_equal(
        check("{\"guestCheckId\":2,\"informationLines\":[\"LOYALTY LY-000123\"]}", acct, why),
        PG_OK);
    assert_string_equal(acct, "0015g00000AcJanAAF");
    assert_int_equal(queries() - q0, 1);
}

static void email_then_phone_fallbacks(void **state)
{
    (void)state;
    char acct[32], why[96];
    /* an unknown loyalty id, then the e-mail, lower-cased here and matched case-insensitively */
    assert_int_equal(check("{\"guestCheckId\":3,\"informationLines\":[\"LOYALTY LY-999999\"],"
                           "\"customer\":{\"email\":\" ZOE.NGUYEN@example.COM \"}}",
                           acct, why),
                     PG_OK);
    assert_string_equal(acct, "0015g00000AcZoeAAF");
    assert_string_equal(why, "email");
    /* no loyalty id, an unknown e-mail, a phone as typed at the till → its E.164 copy */
    assert_int_equal(check("{\"guestCheckId\":4,\"customer\":{\"email\":\"who@example.com\","
                           "\"phone\":\"(415) 555-0199\"}}",
                           acct, why),
                     PG_OK);
    assert_string_equal(acct, "0015g00000AcPh3AAF");
    assert_string_equal(why, "phone");
}

static void ambiguous_goes_to_review(void **state)
{
    (void)state;
    char acct[32], why[96];
    assert_int_equal(check("{\"guestCheckId\":5,\"customer\":{\"email\":\"twins@example.com\","
                           "\"phone\":\"+14155550199\"}}",
                           acct, why),
                     PG_OK);
    assert_string_equal(acct, ""); /* the walk-in account: never guessed */
    assert_string_equal(why, "ambiguous email");
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "XRANGE %s - +", PG_KEY_CHK_REVIEW), PG_OK);
    assert_int_equal(r->elements, 1);
    redisReply *f = r->element[0]->element[1];
    json_t *e = json_object();
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        json_object_set_new(e, f->element[i]->str, json_string(f->element[i + 1]->str));
    freeReplyObject(r);
    assert_string_equal(json_string_value(json_object_get(e, "loc")), "1234");
    assert_string_equal(json_string_value(json_object_get(e, "gcid")), "5");
    assert_string_equal(json_string_value(json_object_get(e, "kind")), "email");
    const char *v = json_string_value(json_object_get(e, "value"));
    assert_null(strstr(v, "twins@")); /* PII masked */
    const char *cand = json_string_value(json_object_get(e, "candidates"));
    assert_non_null(strstr(cand, "0035g00000Tw1n1AAB"));
    assert_non_null(strstr(cand, "0035g00000Tw1n2AAB"));
    json_decref(e);
}

static void nothing_keeps_walk_in(void **state)
{
    (void)state;
    char acct[32] = "x", why[96];
    assert_int_equal(
        check("{\"guestCheckId\":6,\"customer\":{\"email\":\"nobody@example.com\"}}", acct, why),
        PG_OK);
    assert_string_equal(acct, "");
    assert_string_equal(why, "no match");
    assert_int_equal(check("{\"guestCheckId\":7}", acct, why), PG_OK);
    assert_string_equal(acct, "");
}

static void salesforce_down_is_an_error(void **state)
{
    (void)state;
    char acct[32], why[96];
    sim_fault("{\"status\":503,\"path\":\"/services/data\"}");
    int rc = check("{\"guestCheckId\":8,\"informationLines\":[\"LOYALTY LY-000124\"]}", acct, why);
    sim_fault(NULL);
    assert_int_equal(rc, PG_EUNAVAIL);
    assert_non_null(strstr(why, "salesforce"));
    /* and once Salesforce is back the same check matches (the failure was not cached) */
    assert_int_equal(
        check("{\"guestCheckId\":8,\"informationLines\":[\"LOYALTY LY-000124\"]}", acct, why),
        PG_OK);
    assert_string_equal(acct, "0015g00000AcZoeAAF");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loyalty_id_from_extensions),  cmocka_unit_test(email_then_phone_fallbacks),
        cmocka_unit_test(ambiguous_goes_to_review),    cmocka_unit_test(nothing_keeps_walk_in),
        cmocka_unit_test(salesforce_down_is_an_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
