/*
 * MICROS → Salesforce end to end (issue 6): one generated business day of three locations flows
 * from the MICROS simulator's BI API through the real gateway (poller → durable queue → loader)
 * into the Salesforce simulator, and what Salesforce then holds is compared, per location, with
 * the POS's own daily totals, to the cent:
 *
 *   closed sale orders             = numClsdChks            (getControlDailyTotals)
 *   Σ their check total            = clsdChkTtl
 *   Σ items' TotalPrice (sales and adjustments, as Salesforce computes them) + Σ order discounts
 *                                  = netSlsTtl              (getOperationsDailyTotals)
 *   Σ service charges, Σ tax       = svcTtl, taxCollTtl
 *   Σ payment amounts              = Σ tender media totals  (getTenderMediaDailyTotals)
 *
 * The item identity is the strong one: it holds only if every line was mapped to the right
 * bucket and every item reached Salesforce with an exact quantity and unit price. Then: a second
 * full sync changes nothing in Salesforce; late offline uploads are caught by the re-poll; a
 * Salesforce outage while checks are loading leaves nothing half-done once it is over; and the
 * reconciliation endpoint agrees ("match").
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

#include "micros/bi.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

#define ORG "00D5g000004XyZ1EAK"
#define CLIENT_ID "3MVG9posgateE2ETest"
#define SF_USER "integration@acme.example"
#define WALKIN "0015g00000ZkM3hAAF"
#define ADMIN_KEY "test-admin-key-0123456789"
/* sha256("test-admin-key-0123456789") */
#define ADMIN_HASH "sha256:82007d29a6e0686708f2ef128b4d5d2225286cb76e82f74b09324d61ec36f968"
#define DAY "2026-11-20"
#define WAIT_MS 60000

static const char *const locs[] = {"1234", "1235", "0042"};
#define NLOCS 3

static struct pg_t_redis redis;
static struct pg_t_proc sim, gw;
static struct pg_bi *bi;
static char std_pb[32], pos_pb[32];

/* ---------------------------------------------------------------- helpers */

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static json_t *call(const char *base, const char *method, const char *path, const char *body)
{
    char url[512];
    struct pg_t_resp r;
    snprintf(url, sizeof url, "%s%s", base, path);
    const char *h[] = {"Content-Type: application/json", "X-Api-Key: " ADMIN_KEY, NULL};
    assert_int_equal(pg_t_http(method, url, h, body, body ? strlen(body) : 0, 20000, &r), 0);
    if (r.status >= 300)
        fail_msg("%s %s -> %ld %s", method, path, r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return j;
}

static json_t *sf_state(void)
{
    return call(sim.url, "GET", "/_sim/state", NULL);
}

/* Nearest whole number of cents (no libm: the tests link without it). */
static long long round_cents(double v)
{
    return (long long)(v * 100.0 + (v < 0 ? -0.5 : 0.5));
}

/* An amount as Salesforce holds it (a number, or the decimal string posgate sent) in cents. */
static long long cents(const json_t *v)
{
    if (json_is_number(v))
        return round_cents(json_number_value(v));
    if (json_is_string(v))
        return round_cents(strtod(json_string_value(v), NULL));
    return 0;
}

static long long bi_cents(const json_t *v)
{
    return json_is_number(v) ? round_cents(json_number_value(v)) : 0;
}

static long long redis_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char cmd[256];
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    /* split on spaces: the commands here have no argument with a space in it */
    const char *argv[8];
    size_t argvlen[8];
    int argc = 0;
    for (char *save = NULL, *w = strtok_r(cmd, " ", &save); w && argc < 8;
         w = strtok_r(NULL, " ", &save)) {
        argv[argc] = w;
        argvlen[argc++] = strlen(w);
    }
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command_argv(&r, argc, argv, argvlen), PG_OK);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* Checks posgate holds for loc whose state is not "synced" (queued, dead, in progress). */
static long long unsynced(const char *loc)
{
    char pat[64];
    snprintf(pat, sizeof pat, PG_KEY_CHK "%s:*", loc);
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "EVAL %s 0 %s",
                                      "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) "
                                      "do if redis.call('HGET', k, 'state') ~= 'synced' then "
                                      "n = n + 1 end end return n",
                                      pat),
                     PG_OK);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* Checks of the day the BI API shows for loc now (late uploads included once released). */
static long long visible(const char *loc)
{
    json_t *s = call(sim.micros_url, "GET", "/_sim/state", NULL);
    long long n = json_integer_value(json_object_get(
        json_object_get(json_object_get(json_object_get(s, "bi"), "checks"), loc), DAY));
    json_decref(s);
    return n;
}

/* Wait until every check the BI API shows is synced and nothing is left in flight. */
static void wait_settled(void)
{
    int64_t end = pg_now_ms() + WAIT_MS;
    for (;;) {
        int done = 1;
        for (int i = 0; i < NLOCS && done; i++) {
            long long want = visible(locs[i]);
            done = want > 0 && redis_int("HLEN " PG_KEY_CHK_SYNCED "%s:" DAY, locs[i]) == want &&
                   unsynced(locs[i]) == 0;
        }
        if (done && redis_int("ZCARD " PG_KEY_CHK_RETRY) == 0)
            return;
        if (pg_now_ms() > end) {
            for (int i = 0; i < NLOCS; i++)
                print_message(
                    "%s: visible %lld synced %lld unsynced %lld\n", locs[i], visible(locs[i]),
                    redis_int("HLEN " PG_KEY_CHK_SYNCED "%s:" DAY, locs[i]), unsynced(locs[i]));
            char *log = pg_t_proc_log(&gw);
            size_t ll = log ? strlen(log) : 0;
            print_message("gateway log (end):\n%s\n", log ? log + (ll > 4000 ? ll - 4000 : 0) : "");
            free(log);
            fail_msg("the day did not settle within %d ms", WAIT_MS);
        }
        sleep_ms(250);
    }
}

static json_t *daily(const char *op, const char *loc)
{
    json_t *resp = NULL;
    char why[256];
    int rc = pg_bi_daily_totals(bi, op, loc, DAY, pg_now_ms() + 20000, &resp, why, sizeof why);
    if (rc)
        fail_msg("%s %s: %s", op, loc, why);
    return resp;
}

static long long sum_rvc(const json_t *resp, const char *field)
{
    long long t = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(resp, "revenueCenters"), i, r)
    {
        const json_t *v = json_object_get(r, field);
        t += strstr(field, "Ttl") ? bi_cents(v) : (long long)json_integer_value(v);
    }
    return t;
}

/* The five identities of the file comment for one location, against the simulator's state. */
static void assert_location_reconciles(const char *loc)
{
    json_t *st = sf_state();
    json_t *ids = json_object(); /* Order Id of the location's orders → 1 */
    long long closed_n = 0, closed_ttl = 0, disc = 0, svc = 0, tax = 0, items = 0, pays = 0;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(st, "orders"), i, o)
    {
        const char *lr = json_string_value(json_object_get(o, "POS_Location_Ref__c"));
        const char *ed = json_string_value(json_object_get(o, "EffectiveDate"));
        if (!lr || strcmp(lr, loc) != 0 || !ed || strcmp(ed, DAY) != 0)
            continue;
        json_object_set_new(ids, json_string_value(json_object_get(o, "Id")), json_true());
        const char *ext = json_string_value(json_object_get(o, "POS_Check_Id__c"));
        assert_non_null(ext);
        size_t el = strlen(ext);
        if (el > 4 && strcmp(ext + el - 4, "-ADJ") == 0)
            continue; /* the adjustment order: items only */
        const char *status = json_string_value(json_object_get(o, "Status"));
        if (status && strcmp(status, "Activated") == 0) {
            closed_n++;
            closed_ttl += cents(json_object_get(o, "POS_Check_Total__c"));
        }
        disc += cents(json_object_get(o, "POS_Discount__c"));
        svc += cents(json_object_get(o, "POS_Service_Charge__c"));
        tax += cents(json_object_get(o, "POS_Tax__c"));
    }
    json_array_foreach(json_object_get(st, "order_items"), i, o)
    {
        const char *oid = json_string_value(json_object_get(o, "OrderId"));
        if (oid && json_object_get(ids, oid))
            items += cents(json_object_get(o, "TotalPrice"));
    }
    json_array_foreach(json_object_get(st, "payments"), i, o)
    {
        const char *oid = json_string_value(json_object_get(o, "Order__c"));
        if (oid && json_object_get(ids, oid))
            pays += cents(json_object_get(o, "Amount__c"));
    }

    json_t *ctl = daily("getControlDailyTotals", loc);
    json_t *ops = daily("getOperationsDailyTotals", loc);
    json_t *tmd = daily("getTenderMediaDailyTotals", loc);
    long long tender = 0;
    json_t *r, *t;
    size_t j;
    json_array_foreach(json_object_get(tmd, "revenueCenters"), i, r)
        json_array_foreach(json_object_get(r, "tenderMedias"), j, t) tender +=
        bi_cents(json_object_get(t, "ttl"));

    print_message("%s: %lld closed orders %lld (POS %lld / %lld); items+discounts %lld (netSlsTtl "
                  "%lld); svc %lld (%lld); tax %lld (%lld); payments %lld (tenders %lld)\n",
                  loc, closed_n, closed_ttl, sum_rvc(ctl, "numClsdChks"),
                  sum_rvc(ctl, "clsdChkTtl"), items + disc, sum_rvc(ops, "netSlsTtl"), svc,
                  sum_rvc(ops, "svcTtl"), tax, sum_rvc(ops, "taxCollTtl"), pays, tender);
    assert_true(closed_n > 0);
    assert_int_equal(closed_n, sum_rvc(ctl, "numClsdChks"));
    assert_int_equal(closed_ttl, sum_rvc(ctl, "clsdChkTtl"));
    assert_int_equal(items + disc, sum_rvc(ops, "netSlsTtl"));
    assert_int_equal(svc, sum_rvc(ops, "svcTtl"));
    assert_int_equal(tax, sum_rvc(ops, "taxCollTtl"));
    assert_int_equal(pays, tender);
    json_decref(ctl);
    json_decref(ops);
    json_decref(tmd);
    json_decref(ids);
    json_decref(st);
}

static const char *recon_status(const char *loc)
{
    static char status[32];
    char path[160];
    snprintf(path, sizeof path, "/v1/reconciliation?location=%s&business_date=" DAY, loc);
    json_t *rep = call(gw.url, "GET", path, NULL);
    snprintf(status, sizeof status, "%s",
             json_is_string(json_object_get(rep, "status"))
                 ? json_string_value(json_object_get(rep, "status"))
                 : "(none)");
    json_decref(rep);
    return status;
}

static void poll_now(void)
{
    for (int i = 0; i < NLOCS; i++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/admin/checks/poll?location=%s", locs[i]);
        json_decref(call(gw.url, "POST", path, ""));
    }
}

static long long collections_calls(void)
{
    json_t *st = sf_state();
    long long n = json_integer_value(json_object_get(json_object_get(st, "collections"), "calls"));
    json_decref(st);
    return n;
}

/* ---------------------------------------------------------------- fixtures */

static int setup(void **state)
{
    (void)state;
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\",\"org_id\":\"" ORG "\","
             "\"oauth\":{\"certificate\":\"%s\",\"client_id\":\"" CLIENT_ID "\","
             "\"username\":\"" SF_USER "\"}},"
             "\"micros\":{\"port\":0,\"seed\":\"%s\",\"bi\":{\"generate\":{"
             "\"locations\":[\"1234\",\"1235\",\"0042\"],\"days\":[\"" DAY "\"],"
             "\"checks_per_day\":40,\"late_per_day\":4,\"seed\":20261127}}}}",
             pg_t_src("tests/data/salesforce_seed.json"), pg_t_src("tests/data/keys/sf-oauth.crt"),
             pg_t_src("tests/data/micros_seed.json"));
    if (pg_t_redis_start(&redis) != 0 || pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    json_t *s = sf_state();
    size_t i;
    json_t *pb;
    json_array_foreach(json_object_get(s, "pricebooks"), i, pb)
    {
        const char *id = json_string_value(json_object_get(pb, "Id"));
        snprintf(json_is_true(json_object_get(pb, "IsStandard")) ? std_pb : pos_pb, 32, "%s", id);
    }
    json_decref(s);
    struct pg_redis_opts o = {.url = redis.url, .command_timeout_ms = 5000};
    if (pg_redis_init(&o) != PG_OK)
        return -1;
    struct pg_bi_config bc = {
        .base_url = sim.micros_url,
        .org = "ACME",
        .client_id = "UE9TR0FURS5URVNULk9OTFkuY2xpZW50",
        .username = "posgate-api",
        .password = "posgate-bi-demo",
    };
    if (pg_bi_new(&bc, &bi) != PG_OK)
        return -1;

    char locs_cfg[1024] = "";
    size_t off = 0;
    for (int k = 0; k < NLOCS; k++)
        off += (size_t)snprintf(locs_cfg + off, sizeof locs_cfg - off,
                                "%s\"%s\":{\"pricebook_id\":\"%s\",\"currency\":\"USD\","
                                "\"account_id\":\"" WALKIN "\"}",
                                k ? "," : "", locs[k], pos_pb);
    static char g[8192];
    snprintf(g, sizeof g,
             "{\"listen\":{\"port\":0},\"http\":{\"threads\":2,\"workers\":4},"
             "\"redis\":{\"url\":\"%s\",\"command_timeout_ms\":2000,\"reconnect_min_ms\":20,"
             "\"reconnect_max_ms\":200},"
             "\"salesforce\":{\"org_ids\":[\"" ORG "\"],\"rest\":{\"login_url\":\"%s\","
             "\"audience\":\"https://login.salesforce.com\",\"client_id\":\"" CLIENT_ID
             "\",\"username\":\"" SF_USER "\",\"private_key\":\"file:%s\"}},"
             "\"admin\":{\"api_key_hashes\":[\"" ADMIN_HASH "\"]},"
             "\"checks\":{"
             "\"bi\":{\"base_url\":\"%s\",\"org\":\"ACME\","
             "\"client_id\":\"UE9TR0FURS5URVNULk9OTFkuY2xpZW50\",\"username\":\"posgate-api\","
             "\"password\":\"posgate-bi-demo\",\"timeout_ms\":10000},"
             "\"poll\":{\"enabled\":true,\"interval_s\":2,\"repoll_days\":3,\"backoff_max_s\":2,"
             "\"locations\":[\"1234\",\"1235\",\"0042\"]},"
             "\"transform\":{\"org\":\"ACME\",\"locations\":{%s},"
             "\"order_status\":{\"cancelled\":\"Activated\"},"
             "\"product_external_id_field\":\"MICROS_Item_Id__c\","
             "\"payment_external_id_field\":\"POS_Tender_Id__c\"},"
             "\"load\":{\"enabled\":true,\"workers\":3,\"retry_base_ms\":100,"
             "\"retry_cap_ms\":1000,\"max_attempts\":50,\"reclaim_idle_ms\":5000,"
             "\"create_missing_products\":true,\"standard_pricebook_id\":\"%s\"},"
             "\"matching\":{},"
             "\"reconcile\":{\"enabled\":false}}}",
             redis.url, sim.url, pg_t_src("tests/data/keys/sf-oauth.key"), sim.micros_url, locs_cfg,
             std_pb);
    return pg_t_gateway_start(&gw, g) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_proc_destroy(&sim);
    pg_bi_free(bi);
    pg_redis_shutdown();
    pg_t_redis_destroy(&redis);
    return st == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- tests (run in order) */

/* The day lands whole and reconciles to the cent with the POS's own totals. */
static void test_day_reconciles(void **state)
{
    (void)state;
    wait_settled();
    for (int i = 0; i < NLOCS; i++) {
        assert_location_reconciles(locs[i]);
        assert_string_equal(recon_status(locs[i]), "match");
    }
}

/* Checks that name a member (a memberId extensibility detail) land on that member's Account; the
 * others on the location's walk-in account. The simulator serves member ids only through
 * getGuestCheckExtensibilityDetails (as the real BI API does; never inline in getGuestChecks), so
 * this holds only because the poller fetches and merges them. */
static void test_customers_matched(void **state)
{
    (void)state;
    json_t *st = sf_state();
    json_t *acct_of = json_object();    /* loyalty id → AccountId */
    json_t *order_acct = json_object(); /* order external id → AccountId */
    size_t i, j;
    json_t *c, *e;
    json_array_foreach(json_object_get(st, "contacts"), i, c)
    {
        const char *lid = json_string_value(json_object_get(c, "Loyalty_Id__c"));
        const char *aid = json_string_value(json_object_get(c, "AccountId"));
        if (lid && aid)
            json_object_set_new(acct_of, lid, json_string(aid));
    }
    json_array_foreach(json_object_get(st, "orders"), i, c)
    {
        const char *ext = json_string_value(json_object_get(c, "POS_Check_Id__c"));
        if (ext)
            json_object_set(order_acct, ext, json_object_get(c, "AccountId"));
    }
    int members = 0, walkins = 0;
    for (int k = 0; k < NLOCS; k++) {
        json_t *resp = NULL;
        char why[256];
        assert_int_equal(pg_bi_guest_checks(bi, locs[k], PG_BI_BUS_DT, DAY, NULL, 0,
                                            pg_now_ms() + 20000, &resp, NULL, why, sizeof why),
                         PG_OK);
        json_t *xr = NULL, *xidx = NULL;
        assert_int_equal(pg_bi_guest_check_ext(bi, locs[k], DAY, pg_now_ms() + 20000, &xr, NULL,
                                               why, sizeof why),
                         PG_OK);
        assert_int_equal(pg_bi_ext_index(xr, &xidx), PG_OK);
        json_decref(xr);
        json_array_foreach(json_object_get(resp, "guestChecks"), i, c)
        {
            /* never inline: the member id must have come from the extensibility call */
            assert_null(json_object_get(c, "extensions"));
            assert_string_equal(json_string_value(json_object_get(c, "opnBusDt")), DAY);
            char ext[96];
            snprintf(ext, sizeof ext, "ACME-%s-%lld", locs[k],
                     (long long)json_integer_value(json_object_get(c, "guestCheckId")));
            const char *got = json_string_value(json_object_get(order_acct, ext));
            assert_non_null(got);
            const char *want = WALKIN;
            char gk[32];
            snprintf(gk, sizeof gk, "%lld",
                     (long long)json_integer_value(json_object_get(c, "guestCheckId")));
            json_array_foreach(json_object_get(xidx, gk), j, e)
            {
                const char *dn = json_string_value(json_object_get(e, "dataName"));
                const char *lid = json_string_value(json_object_get(e, "data"));
                if (dn && lid && strcmp(dn, "memberId") == 0 && json_object_get(acct_of, lid))
                    want = json_string_value(json_object_get(acct_of, lid));
            }
            if (strcmp(want, WALKIN) != 0)
                members++;
            else
                walkins++;
            if (strcmp(got, want) != 0)
                fail_msg("order %s: AccountId %s, expected %s", ext, got, want);
        }
        json_decref(xidx);
        json_decref(resp);
    }
    print_message("orders on a member's account: %d, on the walk-in account: %d\n", members,
                  walkins);
    assert_true(members > 0);
    assert_true(walkins > 0);
    json_decref(order_acct);
    json_decref(acct_of);
    json_decref(st);
}

/* A second full pull of the day (cursor dropped) changes nothing in Salesforce. */
static void test_resync_changes_nothing(void **state)
{
    (void)state;
    long long before = collections_calls();
    long long dup_before = redis_int("XLEN " PG_KEY_CHK_QUEUE);
    for (int i = 0; i < NLOCS; i++)
        redis_int("DEL " PG_KEY_CHK_CURSOR "%s", locs[i]);
    poll_now();
    /* every location polled again from scratch: its cursor is back */
    int64_t end = pg_now_ms() + WAIT_MS;
    for (int i = 0; i < NLOCS; i++)
        while (redis_int("EXISTS " PG_KEY_CHK_CURSOR "%s", locs[i]) != 1) {
            if (pg_now_ms() > end)
                fail_msg("location %s was not polled again", locs[i]);
            sleep_ms(100);
        }
    wait_settled();
    assert_int_equal(redis_int("XLEN " PG_KEY_CHK_QUEUE), dup_before); /* nothing queued */
    assert_int_equal(collections_calls(), before);                     /* nothing sent */
    for (int i = 0; i < NLOCS; i++)
        assert_location_reconciles(locs[i]);
}

/* Offline workstations upload late: the re-poll of past dates catches them. */
static void test_late_upload_caught(void **state)
{
    (void)state;
    long long before = visible("1235");
    json_decref(call(sim.micros_url, "POST", "/_sim/bi/late-upload",
                     "{\"locRef\":\"1235\",\"busDt\":\"" DAY "\",\"count\":2}"));
    assert_int_equal(visible("1235"), before + 2);
    wait_settled(); /* the poller's own schedule (interval 2 s) picks them up */
    assert_int_equal(redis_int("HLEN " PG_KEY_CHK_SYNCED "1235:" DAY), before + 2);
    assert_location_reconciles("1235");
    assert_string_equal(recon_status("1235"), "match");
}

/* Salesforce goes down while checks are loading; after it returns nothing is half-done. */
static void test_salesforce_outage_mid_load(void **state)
{
    (void)state;
    /* the sObject Collections calls fail (503) until the fault is cleared */
    json_decref(
        call(sim.url, "POST", "/_sim/faults", "{\"path\":\"/services/data\",\"status\":503}"));
    json_decref(call(sim.micros_url, "POST", "/_sim/bi/late-upload",
                     "{\"locRef\":\"1234\",\"busDt\":\"" DAY "\",\"count\":4}"));
    json_decref(call(sim.micros_url, "POST", "/_sim/bi/late-upload",
                     "{\"locRef\":\"0042\",\"busDt\":\"" DAY "\",\"count\":4}"));
    /* wait until the loader has met the outage: jobs wait for their retry */
    int64_t end = pg_now_ms() + WAIT_MS;
    while (redis_int("ZCARD " PG_KEY_CHK_RETRY) == 0) {
        if (pg_now_ms() > end)
            fail_msg("the loader never met the outage");
        sleep_ms(100);
    }
    assert_true(unsynced("1234") + unsynced("0042") > 0);
    json_decref(call(sim.url, "DELETE", "/_sim/faults", NULL));
    wait_settled();
    assert_location_reconciles("1234");
    assert_location_reconciles("0042");
    assert_string_equal(recon_status("1234"), "match");
    assert_string_equal(recon_status("0042"), "match");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_day_reconciles),
        cmocka_unit_test(test_customers_matched),
        cmocka_unit_test(test_resync_changes_nothing),
        cmocka_unit_test(test_late_upload_caught),
        cmocka_unit_test(test_salesforce_outage_mid_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
