/*
 * Customer matching in the real flow: checks pushed to POST /v1/micros/guest-checks go through
 * the durable queue and the loader, whose match hook (sync/match.h, wired in server/main.c) picks
 * each Order's AccountId. Three closed checks of a generated MICROS day are pushed: one stamped
 * with a loyalty member (extensions, memberId), one with an ambiguous e-mail, one with a phone;
 * the Salesforce simulator (seeded with Contacts that have Accounts) must then hold the member's
 * Account, the walk-in account (and a review entry), and the phone owner's Account.
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
#include <openssl/evp.h>

#include "micros/bi.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

#define ORG "00D5g000004XyZ1EAK"
#define CLIENT_ID "3MVG9posgateMatchFlow"
#define SF_USER "integration@acme.example"
#define DAY "2026-11-20"
#define WALKIN "0015g00000WalkIAAR"
#define STATION_KEY "till-1234-key-0123456789"

static struct pg_t_redis R;
static struct pg_t_proc sim, gw;
static char *seed_dir;
static char pos_pb[32], std_pb[32];

static const char SEED[] =
    "{\"contacts\":["
    "{\"Id\":\"0035g00000K1tbPAAR\",\"FirstName\":\"Jane\",\"LastName\":\"Doe\","
    "\"Email\":\"jane.doe@example.com\",\"Phone_E164__c\":\"+14155550142\","
    "\"Loyalty_Id__c\":\"LY-000123\",\"AccountId\":\"0015g00000AcJanAAF\"},"
    "{\"Id\":\"0035g00000Ph0n3AAB\",\"LastName\":\"Phoner\",\"Email\":null,"
    "\"Phone_E164__c\":\"+14155550199\",\"Loyalty_Id__c\":null,"
    "\"AccountId\":\"0015g00000AcPh3AAF\"},"
    "{\"Id\":\"0035g00000Tw1n1AAB\",\"LastName\":\"Twin\",\"Email\":\"twins@example.com\","
    "\"Loyalty_Id__c\":\"LY-000201\",\"AccountId\":\"0015g00000AcTw1AAF\"},"
    "{\"Id\":\"0035g00000Tw1n2AAB\",\"LastName\":\"Twin\",\"Email\":\"twins@example.com\","
    "\"Loyalty_Id__c\":\"LY-000202\",\"AccountId\":\"0015g00000AcTw2AAF\"}]}";

static json_t *sim_get(const char *base, const char *path)
{
    char u[512];
    snprintf(u, sizeof u, "%s%s", base, path);
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(u, &r), 0);
    json_t *j = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return j;
}

static int setup(void **state)
{
    (void)state;
    if (pg_t_redis_start(&R) != 0)
        return -1;
    struct pg_redis_opts o = {.url = R.url, .command_timeout_ms = 5000};
    if (pg_redis_init(&o) != PG_OK)
        return -1;
    seed_dir = pg_t_mkdtemp("match-flow");
    char seed[700], cfg[2048];
    snprintf(seed, sizeof seed, "%s/seed.json", seed_dir);
    if (pg_write_file_atomic(seed, SEED, strlen(SEED)) != PG_OK)
        return -1;
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\",\"org_id\":\"" ORG "\","
             "\"oauth\":{\"certificate\":\"%s\",\"client_id\":\"" CLIENT_ID "\","
             "\"username\":\"" SF_USER "\"}},"
             "\"micros\":{\"port\":0,\"seed\":\"%s\",\"bi\":{\"generate\":{"
             "\"locations\":[\"1234\"],\"days\":[\"" DAY "\"],\"checks_per_day\":12,"
             "\"late_per_day\":0,\"seed\":77}}}}",
             seed, pg_t_src("tests/data/keys/sf-oauth.crt"),
             pg_t_src("tests/data/micros_seed.json"));
    if (pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    json_t *s = sim_get(sim.url, "/_sim/state");
    size_t i;
    json_t *pb;
    json_array_foreach(json_object_get(s, "pricebooks"), i, pb)
    {
        const char *id = json_string_value(json_object_get(pb, "Id"));
        snprintf(json_is_true(json_object_get(pb, "IsStandard")) ? std_pb : pos_pb, 32, "%s", id);
    }
    json_decref(s);
    unsigned char md[32];
    unsigned int n = 0;
    char hex[65];
    EVP_Digest(STATION_KEY, strlen(STATION_KEY), md, &n, EVP_sha256(), NULL);
    for (int k = 0; k < 32; k++)
        snprintf(hex + 2 * k, 3, "%02x", md[k]);
    static char g[8192];
    snprintf(g, sizeof g,
             "{\"listen\":{\"port\":0},\"redis\":{\"url\":\"%s\",\"command_timeout_ms\":2000,"
             "\"reconnect_min_ms\":20,\"reconnect_max_ms\":200},"
             "\"salesforce\":{\"org_ids\":[\"" ORG "\"],\"rest\":{\"login_url\":\"%s\","
             "\"audience\":\"https://login.salesforce.com\",\"client_id\":\"" CLIENT_ID
             "\",\"username\":\"" SF_USER "\",\"private_key\":\"file:%s\"}},"
             "\"lookup\":{\"stations\":{\"till-1234\":{\"key_hash\":\"sha256:%s\","
             "\"location\":\"1234\",\"stores\":[\"1234\"]}}},"
             "\"checks\":{"
             "\"transform\":{\"org\":\"ACME\",\"locations\":{\"1234\":{\"pricebook_id\":\"%s\","
             "\"currency\":\"USD\",\"account_id\":\"" WALKIN "\"}},"
             "\"order_status\":{\"cancelled\":\"Activated\"},"
             "\"product_external_id_field\":\"MICROS_Item_Id__c\","
             "\"payment_external_id_field\":\"POS_Tender_Id__c\"},"
             "\"load\":{\"enabled\":true,\"workers\":2,\"retry_base_ms\":100,"
             "\"retry_cap_ms\":1000,\"max_attempts\":50,"
             "\"create_missing_products\":true,\"standard_pricebook_id\":\"%s\"},"
             "\"matching\":{\"default_country\":\"US\"}}}",
             R.url, sim.url, pg_t_src("tests/data/keys/sf-oauth.key"), hex, pos_pb, std_pb);
    return pg_t_gateway_start(&gw, g) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_proc_destroy(&sim);
    pg_t_rmtree(seed_dir);
    free(seed_dir);
    pg_redis_shutdown();
    pg_t_redis_destroy(&R);
    return st == 0 ? 0 : -1;
}

/* The AccountId of the Order for guest check gcid ("" while it is not there or not activated). */
static void order_account(const char *gcid, char *out, size_t outsz)
{
    char ext[64];
    snprintf(ext, sizeof ext, "ACME-1234-%s", gcid);
    out[0] = '\0';
    json_t *s = sim_get(sim.url, "/_sim/state");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(s, "orders"), i, o)
    {
        const char *e = json_string_value(json_object_get(o, "POS_Check_Id__c"));
        const char *st = json_string_value(json_object_get(o, "Status"));
        const char *a = json_string_value(json_object_get(o, "AccountId"));
        if (e && strcmp(e, ext) == 0 && st && strcmp(st, "Activated") == 0 && a)
            snprintf(out, outsz, "%s", a);
    }
    json_decref(s);
}

static void pushed_checks_get_matched_accounts(void **state)
{
    (void)state;
    struct pg_bi_config bc = {.base_url = sim.micros_url,
                              .org = "ACME",
                              .client_id = "UE9TR0FURS5URVNULk9OTFkuY2xpZW50",
                              .username = "posgate-api",
                              .password = "posgate-bi-demo"};
    struct pg_bi *bi = NULL;
    json_t *resp = NULL;
    assert_int_equal(pg_bi_new(&bc, &bi), PG_OK);
    assert_int_equal(pg_bi_guest_checks(bi, "1234", PG_BI_CLSD_BUS_DT, DAY, NULL, 1,
                                        pg_now_ms() + 10000, &resp, NULL, NULL, 0),
                     PG_OK);
    pg_bi_free(bi);
    /* three closed, not cancelled checks, stamped as the till would */
    json_t *picked = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(resp, "guestChecks"), i, c)
    {
        if (json_array_size(picked) < 3 && json_is_true(json_object_get(c, "clsdFlag")) &&
            !json_is_true(json_object_get(c, "cancelFlag")))
            json_array_append(picked, c);
    }
    assert_int_equal(json_array_size(picked), 3);
    for (i = 0; i < 3; i++)
        json_object_del(json_array_get(picked, i), "extensions");
    json_object_set_new(json_array_get(picked, 0), "extensions",
                        json_pack("[{s:s,s:s,s:s}]", "displayName", "Loyalty ID", "dataName",
                                  "memberId", "data", "LY-000123"));
    json_object_set_new(json_array_get(picked, 1), "customer",
                        json_pack("{s:s}", "email", "TWINS@example.com"));
    json_object_set_new(json_array_get(picked, 2), "customer",
                        json_pack("{s:s}", "phone", "(415) 555-0199"));
    char gc[3][32];
    for (i = 0; i < 3; i++)
        snprintf(gc[i], sizeof gc[i], "%lld",
                 (long long)json_integer_value(
                     json_object_get(json_array_get(picked, i), "guestCheckId")));
    char *body = json_dumps(picked, JSON_COMPACT);
    json_decref(picked);
    json_decref(resp);
    char u[256];
    snprintf(u, sizeof u, "%s/v1/micros/guest-checks?location=1234", gw.url);
    const char *h[] = {"Content-Type: application/json", "X-Api-Key: " STATION_KEY, NULL};
    struct pg_t_resp r;
    assert_int_equal(pg_t_http("POST", u, h, body, strlen(body), 10000, &r), 0);
    free(body);
    if (r.status != 202)
        fail_msg("push: %ld %s", r.status, r.body);
    pg_t_resp_free(&r);

    /* the loader matches and loads them (awaited with a deadline) */
    char a[3][32] = {"", "", ""};
    int64_t deadline = pg_now_ms() + 60000;
    while (pg_now_ms() < deadline && !(a[0][0] && a[1][0] && a[2][0])) {
        for (i = 0; i < 3; i++)
            order_account(gc[i], a[i], sizeof a[i]);
        if (!(a[0][0] && a[1][0] && a[2][0]))
            pg_sleep_ms(200);
    }
    if (!(a[0][0] && a[1][0] && a[2][0])) {
        char *log = pg_t_proc_log(&gw);
        fprintf(stderr, "%s\n", log ? log : "");
        free(log);
        fail_msg("the orders were not all loaded: '%s' '%s' '%s'", a[0], a[1], a[2]);
    }
    assert_string_equal(a[0], "0015g00000AcJanAAF"); /* the loyalty member's Account */
    assert_string_equal(a[1], WALKIN);               /* ambiguous: never guessed */
    assert_string_equal(a[2], "0015g00000AcPh3AAF"); /* the phone's owner */
    redisReply *rr = NULL;
    assert_int_equal(pg_redis_command(&rr, "XLEN %s", PG_KEY_CHK_REVIEW), PG_OK);
    assert_int_equal(rr->integer, 1);
    freeReplyObject(rr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pushed_checks_get_matched_accounts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
