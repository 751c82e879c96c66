/*
 * Salesforce → MICROS end to end: the real gateway, a private Redis, and the simulators.
 * Outbound Messages and Platform Events in; Gift & Loyalty SetCustomer (MICROS simulator) out.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "auth/jwt.h"
#include "server/buf.h"
#include "server/util.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

#define ORG "00D5g000004XyZ1EAK"
#define ADMIN_KEY "test-admin-key-0123456789"
/* sha256("test-admin-key-0123456789") */
#define ADMIN_HASH "sha256:82007d29a6e0686708f2ef128b4d5d2225286cb76e82f74b09324d61ec36f968"
#define GL_LOGON "posgate"
#define GL_PASSWORD "gl-test-password"
#define JWT_ISS "https://acme.my.salesforce.com"
#define JWT_AUD "posgate"

static struct pg_t_redis redis;
static struct pg_t_proc sim, gw;
static char gw_cfg[16384];

/* ---------------------------------------------------------------- setup */

static int start_sim(void)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\",\"org_id\":\"" ORG "\","
             "\"jwt\":{\"private_key\":\"%s\",\"kid\":\"sf-events-1\",\"iss\":\"" JWT_ISS "\","
             "\"aud\":\"" JWT_AUD "\",\"sub\":\"integration@acme.example\"}},"
             "\"micros\":{\"port\":0,\"seed\":\"%s\",\"gl\":{\"logon\":\"" GL_LOGON
             "\",\"password\":\"" GL_PASSWORD "\"},\"webhook_secret\":\"file:%s\"}}",
             pg_t_src("tests/data/salesforce_seed.json"), pg_t_src("tests/data/keys/sf-events.key"),
             pg_t_src("tests/data/micros_seed.json"), pg_t_src("tests/data/keys/webhook.secret"));
    return pg_t_sim_start(&sim, cfg);
}

static void make_gw_config(int push_workers, int max_attempts)
{
    snprintf(
        gw_cfg, sizeof gw_cfg,
        "{\"listen\":{\"port\":0},\"http\":{\"threads\":2,\"workers\":8},"
        "\"log\":{\"level\":\"info\"},"
        "\"redis\":{\"url\":\"%s\",\"command_timeout_ms\":1000,\"reconnect_min_ms\":20,"
        "\"reconnect_max_ms\":200},"
        "\"salesforce\":{\"org_ids\":[\"" ORG "\"],"
        "\"events_jwt\":{\"iss\":\"" JWT_ISS "\",\"aud\":\"" JWT_AUD "\","
        "\"keys\":{\"sf-events-1\":{\"alg\":\"RS256\",\"key\":\"file:%s\"}}}},"
        "\"mapping\":{"
        "\"Contact\":{\"salesforce_id\":\"Id\",\"loyalty_id\":\"Loyalty_Id__c\","
        "\"tier\":\"Loyalty_Tier__c\",\"points\":\"Loyalty_Points__c\",\"email\":\"Email\","
        "\"phone\":\"MobilePhone\",\"first_name\":\"FirstName\",\"last_name\":\"LastName\","
        "\"version\":\"SystemModstamp\",\"preferences\":{\"prefs\":\"Preferences__c\"}},"
        "\"Loyalty_Update__e\":{\"salesforce_id\":\"Contact_Id__c\","
        "\"loyalty_id\":\"Loyalty_Id__c\",\"tier\":\"Loyalty_Tier__c\","
        "\"points\":\"Loyalty_Points__c\",\"email\":\"Email__c\",\"phone\":\"MobilePhone__c\","
        "\"first_name\":\"FirstName__c\",\"last_name\":\"LastName__c\",\"version\":\"CreatedDate\","
        "\"preferences\":{\"prefs\":\"Preferences__c\"}}},"
        "\"push\":{\"enabled\":true,\"target\":\"gl\",\"workers\":%d,\"retry_base_ms\":50,"
        "\"retry_cap_ms\":400,\"max_attempts\":%d,\"reclaim_idle_ms\":1500,\"lock_ms\":5000,"
        "\"gl\":{\"url\":\"%s/ws/services/StoredValueService\",\"logon\":\"" GL_LOGON "\","
        "\"password\":\"" GL_PASSWORD "\",\"timeout_ms\":3000,\"create_missing\":true,"
        "\"columns\":{\"tier\":\"useralpha1\",\"points\":\"usernumeric1\","
        "\"first_name\":\"firstname\",\"last_name\":\"lastname\",\"email\":\"emailaddress\","
        "\"phone\":\"mobilephonenumber\",\"preferences.prefs\":\"miscfield1\"}}},"
        "\"admin\":{\"api_key_hashes\":[\"" ADMIN_HASH "\"]}}",
        redis.url, pg_t_src("tests/data/keys/sf-events.pub"), push_workers, max_attempts,
        sim.micros_url);
}

static int setup(void **state)
{
    if (pg_t_redis_start(&redis) != 0 || start_sim() != 0)
        return -1;
    make_gw_config(3, 4);
    return pg_t_gateway_start(&gw, gw_cfg);
}

static int teardown(void **state)
{
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_proc_destroy(&sim);
    pg_t_redis_destroy(&redis);
    return st == 0 ? 0 : -1;
}

/* Each test starts from empty simulators and an empty Redis. */
static int reset(void **state)
{
    struct pg_t_resp r;
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/reset", sim.url);
    pg_t_http("POST", u, NULL, "", 0, 0, &r);
    pg_t_resp_free(&r);
    snprintf(u, sizeof u, "%s/_sim/reset", sim.micros_url);
    pg_t_http("POST", u, NULL, "", 0, 0, &r);
    pg_t_resp_free(&r);
    return pg_t_redis_cmd(&redis, "FLUSHALL");
}

/* ---------------------------------------------------------------- helpers */

static json_t *get_json(const char *base, const char *path)
{
    char u[512];
    snprintf(u, sizeof u, "%s%s", base, path);
    struct pg_t_resp r;
    if (pg_t_get(u, &r) != 0) {
        pg_t_resp_free(&r);
        return NULL;
    }
    json_t *j = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return j;
}

static long post_json(const char *base, const char *path, const char *body, json_t **out)
{
    char u[512];
    snprintf(u, sizeof u, "%s%s", base, path);
    const char *h[] = {"Content-Type: application/json", NULL};
    struct pg_t_resp r;
    pg_t_http("POST", u, h, body, strlen(body), 30000, &r);
    long st = r.status;
    if (out)
        *out = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return st;
}

/* The MICROS simulator's customer row for a loyalty id (a new reference), or NULL. */
static json_t *micros_customer(const char *lid)
{
    json_t *st = get_json(sim.micros_url, "/_sim/state");
    json_t *found = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "customers"), i, c)
    {
        json_t *cols = json_object_get(c, "columns");
        const char *ref = json_string_value(json_object_get(cols ? cols : c, "primaryposref"));
        if (ref && strcmp(ref, lid) == 0) {
            found = json_incref(c);
            break;
        }
    }
    json_decref(st);
    return found;
}

static const char *col(json_t *cust, const char *name)
{
    json_t *cols = json_object_get(cust, "columns");
    return json_string_value(json_object_get(cols ? cols : cust, name));
}

static long long set_count(json_t *cust)
{
    return json_integer_value(json_object_get(cust, "set_count"));
}

/* Wait until MICROS holds tier for lid. */
static int wait_tier(const char *lid, const char *tier, int timeout_ms)
{
    for (int64_t end = pg_now_ms() + timeout_ms; pg_now_ms() < end; pg_sleep_ms(50)) {
        json_t *c = micros_customer(lid);
        const char *t = c ? col(c, "useralpha1") : NULL;
        int ok = t && strcmp(t, tier) == 0;
        json_decref(c);
        if (ok)
            return 0;
    }
    return -1;
}

/* Wait until nothing is queued, scheduled or in progress. */
static int wait_idle(int timeout_ms)
{
    for (int64_t end = pg_now_ms() + timeout_ms; pg_now_ms() < end; pg_sleep_ms(50)) {
        char u[256];
        snprintf(u, sizeof u, "%s/metrics", gw.url);
        struct pg_t_resp r;
        if (pg_t_get(u, &r) == 0 && strstr(r.body, "\nposgate_push_queue_depth 0\n") &&
            strstr(r.body, "\nposgate_push_retry_scheduled 0\n")) {
            pg_t_resp_free(&r);
            return 0;
        }
        pg_t_resp_free(&r);
    }
    return -1;
}

/* One Outbound Message notification for a Contact. */
struct note {
    char id[24]; /* notification id */
    char sfid[24];
    char lid[32];
    char tier[16];
    char stamp[32]; /* SystemModstamp */
};

static void stamp_at(int64_t ms, char *out, size_t outsz)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char b[24];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outsz, "%s.%03dZ", b, (int)(ms % 1000));
}

static char *om_envelope(const char *org, const struct note *n, size_t count)
{
    struct pg_buf b;
    pg_buf_init(&b, 4 << 20);
    int rc = pg_buf_printf(
        &b,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "
        "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
        " <soapenv:Body>\n"
        "  <notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n"
        "   <OrganizationId>%s</OrganizationId>\n"
        "   <ActionId>04k5g000000CaRkAAK</ActionId>\n"
        "   <SessionId xsi:nil=\"true\"/>\n"
        "   "
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/66.0/%.15s</EnterpriseUrl>\n"
        "   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/66.0/%.15s</PartnerUrl>\n",
        org, org, org);
    for (size_t i = 0; i < count && !rc; i++)
        rc = pg_buf_printf(&b,
                           "   <Notification>\n"
                           "    <Id>%s</Id>\n"
                           "    <sObject xsi:type=\"sf:Contact\" "
                           "xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">\n"
                           "     <sf:Id>%s</sf:Id>\n"
                           "     <sf:Email>member@example.com</sf:Email>\n"
                           "     <sf:FirstName>Test</sf:FirstName>\n"
                           "     <sf:LastName>Member</sf:LastName>\n"
                           "     <sf:Loyalty_Id__c>%s</sf:Loyalty_Id__c>\n"
                           "     <sf:Loyalty_Tier__c>%s</sf:Loyalty_Tier__c>\n"
                           "     <sf:SystemModstamp>%s</sf:SystemModstamp>\n"
                           "    </sObject>\n"
                           "   </Notification>\n",
                           n[i].id, n[i].sfid, n[i].lid, n[i].tier, n[i].stamp);
    if (!rc)
        rc = pg_buf_puts(&b, "  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n");
    assert_int_equal(rc, 0);
    return pg_buf_steal(&b);
}

/* POST an Outbound Message; returns the HTTP status and whether the body is an Ack. */
static long post_om(const char *xml, int *acked)
{
    char u[256];
    snprintf(u, sizeof u, "%s/v1/salesforce/outbound-messages", gw.url);
    const char *h[] = {"Content-Type: text/xml; charset=utf-8", "SOAPAction: \"\"", NULL};
    struct pg_t_resp r;
    pg_t_http("POST", u, h, xml, strlen(xml), 30000, &r);
    long st = r.status;
    if (acked)
        *acked = st == 200 && strstr(r.body, "<Ack>true</Ack>") &&
                 strstr(r.body, "http://soap.sforce.com/2005/09/outbound");
    pg_t_resp_free(&r);
    return st;
}

/* A Contact id with a valid-looking shape; the gateway keys on it, MICROS never sees it. */
static void contact_id(int i, char *out, size_t outsz)
{
    snprintf(out, outsz, "0035g%010dAAA", i);
}

static void note_for(struct note *n, int cust, int version, int64_t base_ms, int seq)
{
    snprintf(n->id, sizeof n->id, "04l5g%010d", seq);
    contact_id(cust, n->sfid, sizeof n->sfid);
    snprintf(n->lid, sizeof n->lid, "LT-%06d", cust);
    snprintf(n->tier, sizeof n->tier, "T%d", version);
    stamp_at(base_ms + version * 1000, n->stamp, sizeof n->stamp);
}

static long admin(const char *method, const char *path, json_t **out)
{
    char u[512];
    snprintf(u, sizeof u, "%s%s", gw.url, path);
    const char *h[] = {"X-Api-Key: " ADMIN_KEY, NULL};
    struct pg_t_resp r;
    pg_t_http(method, u, h, strcmp(method, "POST") == 0 ? "" : NULL, 0, 10000, &r);
    long st = r.status;
    if (out)
        *out = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    return st;
}

static int audit_has(const char *sfid, const char *event)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/admin/audit?salesforce_id=%s", sfid);
    json_t *a = NULL;
    admin("GET", path, &a);
    size_t i;
    json_t *e;
    int found = 0;
    json_array_foreach(json_object_get(a, "events"), i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "event"));
        found |= ev && strcmp(ev, event) == 0;
    }
    json_decref(a);
    return found;
}

static long sim_fault(const char *base, const char *spec)
{
    return post_json(base, "/_sim/faults", spec, NULL);
}

/* ---------------------------------------------------------------- tests */

/* A tier change in the Salesforce simulator reaches MICROS through an Outbound Message. */
/* Salesforce changes the Contact's tier and sends its Outbound Message to the gateway. */
static void tier_change_sent(const char *sfid, const char *tier)
{
    char u[256], patch[96], send[512];
    snprintf(u, sizeof u, "%s/_sim/records/Contact/%s", sim.url, sfid);
    snprintf(patch, sizeof patch, "{\"Loyalty_Tier__c\":\"%s\"}", tier);
    struct pg_t_resp r;
    assert_int_equal(pg_t_http("PATCH", u, NULL, patch, strlen(patch), 0, &r), 0);
    assert_int_equal(r.status, 200);
    pg_t_resp_free(&r);
    snprintf(send, sizeof send,
             "{\"target_url\":\"%s/v1/salesforce/outbound-messages\",\"ids\":[\"%s\"],"
             "\"retry_initial_ms\":100}",
             gw.url, sfid);
    assert_int_equal(post_json(sim.url, "/_sim/outbound-messages", send, NULL), 202);
}

static void outbound_message_tier_change_reaches_micros(void **state)
{
    json_t *st = get_json(sim.url, "/_sim/state");
    json_t *c = json_array_get(json_object_get(st, "contacts"), 0);
    char sfid[32], lid[32], path[128];
    snprintf(sfid, sizeof sfid, "%s", json_string_value(json_object_get(c, "Id")));
    snprintf(lid, sizeof lid, "%s", json_string_value(json_object_get(c, "Loyalty_Id__c")));
    json_decref(st);

    tier_change_sent(sfid, "Diamond");
    assert_int_equal(wait_tier(lid, "Diamond", 10000), 0);
    json_t *cust = micros_customer(lid);
    assert_int_equal(set_count(cust), 1);
    json_decref(cust);
    assert_true(audit_has(sfid, "queued"));
    assert_true(audit_has(sfid, "delivered"));

    /* the sync status says so too */
    snprintf(path, sizeof path, "/v1/admin/customers/%s/sync-status", sfid);
    json_t *s = NULL;
    assert_int_equal(admin("GET", path, &s), 200);
    assert_true(json_is_true(json_object_get(s, "in_sync")));
    assert_string_equal(json_string_value(json_object_get(s, "status")), "delivered");
    json_decref(s);
}

/*
 * A customer lease left in Redis by one of this gateway's own workers, whose release failed
 * (Redis blinked at that moment), is taken over at once: the update is delivered now, not after
 * push.lock_ms (30 s). store/lease.h.
 */
static void stale_own_lease_is_taken_over(void **state)
{
    json_t *st = get_json(sim.url, "/_sim/state");
    json_t *c = json_array_get(json_object_get(st, "contacts"), 1);
    char sfid[32], lid[32], host[64] = "host";
    snprintf(sfid, sizeof sfid, "%s", json_string_value(json_object_get(c, "Id")));
    snprintf(lid, sizeof lid, "%s", json_string_value(json_object_get(c, "Loyalty_Id__c")));
    json_decref(st);
    gethostname(host, sizeof host - 1);
    assert_int_equal(
        pg_t_redis_cmd(&redis, "SET " PG_KEY_LOCK "%s %s-%ld-0 PX 30000", sfid, host, (long)gw.pid),
        0);
    tier_change_sent(sfid, "Diamond");
    assert_int_equal(wait_tier(lid, "Diamond", 8000), 0);
}

/* The same message delivered five times: five Acks, one SetCustomer. */
static void same_message_five_times_one_set_customer(void **state)
{
    struct note n;
    note_for(&n, 1, 1, 1767225600000LL, 1);
    char *xml = om_envelope(ORG, &n, 1);
    for (int i = 0; i < 5; i++) {
        int acked = 0;
        assert_int_equal(post_om(xml, &acked), 200);
        assert_true(acked);
    }
    free(xml);
    assert_int_equal(wait_tier(n.lid, "T1", 10000), 0);
    assert_int_equal(wait_idle(10000), 0);
    json_t *cust = micros_customer(n.lid);
    assert_int_equal(set_count(cust), 1);
    json_decref(cust);
    assert_true(audit_has(n.sfid, "duplicate"));
}

/* A wrong org, a malformed message and an unmapped sObject get SOAP faults, never an Ack. */
static void rejected_messages_get_soap_faults(void **state)
{
    struct note n;
    note_for(&n, 2, 1, 1767225600000LL, 2);
    char *xml = om_envelope("00D000000000001AAA", &n, 1);
    int acked = 1;
    assert_int_equal(post_om(xml, &acked), 500);
    assert_false(acked);
    free(xml);
    assert_int_equal(post_om("<not-soap/>", &acked), 500);
    assert_false(acked);
    const char *doctype = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>";
    assert_int_equal(post_om(doctype, &acked), 500);
    assert_false(acked);
    /* nothing was queued */
    json_t *m = micros_customer(n.lid);
    assert_null(m);
}

/* Platform Event from the simulator, signed with its key: delivered like an Outbound Message. */
static void platform_event_reaches_micros(void **state)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"target_url\":\"%s/v1/salesforce/events\",\"payloads\":[{\"Contact_Id__c\":"
             "\"0035g00000PEVNTAAA\",\"Loyalty_Id__c\":\"LY-EVENT-1\",\"Loyalty_Tier__c\":"
             "\"Gold\",\"Loyalty_Points__c\":4200}]}",
             gw.url);
    json_t *out = NULL;
    assert_int_equal(post_json(sim.url, "/_sim/platform-events", body, &out), 200);
    json_t *res = json_array_get(json_object_get(out, "results"), 0);
    assert_int_equal(json_integer_value(json_object_get(res, "status")), 202);
    json_decref(out);
    assert_int_equal(wait_tier("LY-EVENT-1", "Gold", 10000), 0);
    json_t *cust = micros_customer("LY-EVENT-1");
    assert_string_equal(col(cust, "usernumeric1"), "4200");
    json_decref(cust);

    /* A forged token (HS256 with the RSA public key as the secret) is refused. */
    char *pub = NULL;
    assert_int_equal(pg_read_file(pg_t_src("tests/data/keys/sf-events.pub"), 1 << 16, &pub, NULL),
                     0);
    char target[256];
    snprintf(target, sizeof target, "%s/v1/salesforce/events", gw.url);
    json_t *req =
        json_pack("{s:s, s:[{s:s, s:s, s:s}], s:{s:s, s:s}}", "target_url", target, "payloads",
                  "Contact_Id__c", "0035g00000PEVNTAAA", "Loyalty_Id__c", "LY-EVENT-1",
                  "Loyalty_Tier__c", "Forged", "token", "alg", "HS256", "key", pub);
    char *rs = json_dumps(req, JSON_COMPACT);
    assert_int_equal(post_json(sim.url, "/_sim/platform-events", rs, &out), 200);
    free(rs);
    json_decref(req);
    free(pub);
    res = json_array_get(json_object_get(out, "results"), 0);
    assert_int_equal(json_integer_value(json_object_get(res, "status")), 401);
    json_decref(out);
}

/* 1,000 updates over 100 customers, duplicated and shuffled, 3 workers: newest wins. */
static void thousand_shuffled_updates_newest_wins(void **state)
{
    enum { CUSTOMERS = 100, VERSIONS = 10 };
    size_t total = CUSTOMERS * VERSIONS;
    struct note *all = calloc(total + total / 5, sizeof *all);
    size_t n = 0;
    int64_t base = 1767225600000LL;
    for (int c = 0; c < CUSTOMERS; c++)
        for (int v = 1; v <= VERSIONS; v++, n++)
            note_for(&all[n], 1000 + c, v, base, 100000 + (int)n);
    srand(42);
    /* one in five sent twice (the same notification id: Salesforce's retry) */
    for (size_t i = 0; i < total / 5; i++)
        all[n++] = all[(size_t)rand() % total];
    for (size_t i = n - 1; i > 0; i--) { /* Fisher–Yates */
        size_t j = (size_t)rand() % (i + 1);
        struct note t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    for (size_t off = 0; off < n; off += 50) {
        size_t cnt = n - off < 50 ? n - off : 50;
        char *xml = om_envelope(ORG, all + off, cnt);
        int acked = 0;
        assert_int_equal(post_om(xml, &acked), 200);
        assert_true(acked);
        free(xml);
    }
    free(all);
    char want[16];
    snprintf(want, sizeof want, "T%d", VERSIONS);
    for (int c = 0; c < CUSTOMERS; c++) {
        char lid[32];
        snprintf(lid, sizeof lid, "LT-%06d", 1000 + c);
        if (wait_tier(lid, want, 30000) != 0)
            fail_msg("customer %s did not end at the newest version", lid);
    }
    assert_int_equal(wait_idle(20000), 0);
    /* and it stays there: no older version is applied afterwards */
    for (int c = 0; c < CUSTOMERS; c++) {
        char lid[32];
        snprintf(lid, sizeof lid, "LT-%06d", 1000 + c);
        json_t *cust = micros_customer(lid);
        assert_string_equal(col(cust, "useralpha1"), want);
        json_decref(cust);
    }
}

/* MICROS answers 503 three times: retried with backoff, then delivered. */
static void micros_outage_is_retried(void **state)
{
    assert_int_equal(sim_fault(sim.micros_url, "{\"status\":503,\"count\":3,\"path\":\"/ws/\"}"),
                     201);
    struct note n;
    note_for(&n, 3, 1, 1767225600000LL, 3);
    char *xml = om_envelope(ORG, &n, 1);
    int acked = 0;
    assert_int_equal(post_om(xml, &acked), 200);
    assert_true(acked);
    free(xml);
    assert_int_equal(wait_tier(n.lid, "T1", 15000), 0);
    assert_true(audit_has(n.sfid, "retried"));
    assert_true(audit_has(n.sfid, "delivered"));
}

/* MICROS down for good: dead letter after max_attempts; replayed once MICROS is back. */
static void exhausted_retries_dead_letter_then_replay(void **state)
{
    assert_int_equal(sim_fault(sim.micros_url, "{\"status\":503,\"count\":1000,\"path\":\"/ws/\"}"),
                     201);
    struct note n;
    note_for(&n, 4, 1, 1767225600000LL, 4);
    char *xml = om_envelope(ORG, &n, 1);
    int acked = 0;
    assert_int_equal(post_om(xml, &acked), 200);
    free(xml);
    json_t *dl = NULL;
    size_t count = 0;
    for (int64_t end = pg_now_ms() + 15000; count == 0 && pg_now_ms() < end; pg_sleep_ms(100)) {
        json_decref(dl);
        dl = NULL;
        assert_int_equal(admin("GET", "/v1/admin/dead-letters", &dl), 200);
        count = json_array_size(json_object_get(dl, "items"));
    }
    assert_int_equal(count, 1);
    json_t *item = json_array_get(json_object_get(dl, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(item, "attempts")), 4);
    assert_non_null(strstr(json_string_value(json_object_get(item, "error")), "503"));
    json_decref(dl);
    assert_true(audit_has(n.sfid, "dead_lettered"));
    assert_null(micros_customer(n.lid));

    /* MICROS recovers; the operator replays everything */
    char u[256];
    snprintf(u, sizeof u, "%s/_sim/reset", sim.micros_url);
    struct pg_t_resp r;
    pg_t_http("POST", u, NULL, "", 0, 0, &r);
    pg_t_resp_free(&r);
    json_t *rep = NULL;
    assert_int_equal(admin("POST", "/v1/admin/dead-letters/replay", &rep), 202);
    assert_int_equal(json_array_size(json_object_get(rep, "replayed")), 1);
    json_decref(rep);
    assert_int_equal(wait_tier(n.lid, "T1", 10000), 0);
    assert_true(audit_has(n.sfid, "replayed"));
    assert_int_equal(admin("GET", "/v1/admin/dead-letters", &dl), 200);
    assert_int_equal(json_array_size(json_object_get(dl, "items")), 0);
    json_decref(dl);
}

/* Redis stopped while Salesforce sends: SOAP faults, no Ack; Salesforce's retries deliver. */
static void redis_down_no_ack_then_delivered(void **state)
{
    json_t *st = get_json(sim.url, "/_sim/state");
    json_t *c = json_array_get(json_object_get(st, "contacts"), 1);
    char sfid[32], lid[32], tier[32];
    snprintf(sfid, sizeof sfid, "%s", json_string_value(json_object_get(c, "Id")));
    snprintf(lid, sizeof lid, "%s", json_string_value(json_object_get(c, "Loyalty_Id__c")));
    snprintf(tier, sizeof tier, "%s", json_string_value(json_object_get(c, "Loyalty_Tier__c")));
    json_decref(st);

    pg_t_redis_stop(&redis);
    char send[512];
    snprintf(send, sizeof send,
             "{\"target_url\":\"%s/v1/salesforce/outbound-messages\",\"ids\":[\"%s\"],"
             "\"retry_initial_ms\":200,\"retry_max_ms\":500}",
             gw.url, sfid);
    assert_int_equal(post_json(sim.url, "/_sim/outbound-messages", send, NULL), 202);
    /* Salesforce keeps retrying; none is acked while Redis is down */
    int attempts = 0;
    for (int64_t end = pg_now_ms() + 5000; attempts < 2 && pg_now_ms() < end; pg_sleep_ms(100)) {
        json_t *q = get_json(sim.url, "/_sim/outbound-messages");
        json_t *m = json_array_get(json_is_array(q) ? q : json_object_get(q, "messages"), 0);
        attempts = (int)json_integer_value(json_object_get(m, "attempts"));
        assert_false(json_is_true(json_object_get(m, "acked")));
        json_decref(q);
    }
    assert_true(attempts >= 2);
    assert_int_equal(pg_t_redis_restart(&redis), 0);
    assert_int_equal(wait_tier(lid, tier, 15000), 0);
}

/* Admin endpoints and event callbacks refuse missing or wrong credentials. */
static void credentials_are_checked(void **state)
{
    char u[256];
    struct pg_t_resp r;
    snprintf(u, sizeof u, "%s/v1/admin/dead-letters", gw.url);
    assert_int_equal(pg_t_get(u, &r), 0);
    assert_int_equal(r.status, 401);
    pg_t_resp_free(&r);
    const char *wrong[] = {"X-Api-Key: not-the-key", NULL};
    assert_int_equal(pg_t_http("GET", u, wrong, NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "\"status\":401"));
    pg_t_resp_free(&r);

    snprintf(u, sizeof u, "%s/v1/salesforce/events", gw.url);
    const char *ev = "{\"data\":{\"payload\":{},\"event\":{\"EventUuid\":"
                     "\"2ec0e371-1395-457f-9275-be1b527a72f7\"}},\"channel\":"
                     "\"/event/Loyalty_Update__e\"}";
    assert_int_equal(pg_t_http("POST", u, NULL, ev, strlen(ev), 0, &r), 0);
    assert_int_equal(r.status, 401);
    char www[128];
    assert_int_equal(pg_t_resp_header(&r, "WWW-Authenticate", www, sizeof www), 0);
    pg_t_resp_free(&r);
    /* alg none is refused */
    const char *none[] = {"Authorization: Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                          "eyJpc3MiOiJ4In0.",
                          NULL};
    assert_int_equal(pg_t_http("POST", u, none, ev, strlen(ev), 0, &r), 0);
    assert_int_equal(r.status, 401);
    pg_t_resp_free(&r);
}

/* The webhook target: a signed JSON POST the MICROS simulator verifies (Standard Webhooks). */
static void webhook_target_delivers_signed_json(void **state)
{
    char cfg[16384];
    char *wh = strstr(gw_cfg, "\"push\":");
    assert_non_null(wh);
    /* the same gateway, pushing to the webhook receiver instead of Gift & Loyalty */
    snprintf(cfg, sizeof cfg,
             "%.*s\"push\":{\"enabled\":true,\"target\":\"webhook\","
             "\"workers\":1,\"retry_base_ms\":50,\"retry_cap_ms\":200,"
             "\"webhook\":{\"url\":\"%s/webhooks/loyalty\",\"secret\":\"file:%s\"}}}",
             (int)(wh - gw_cfg), gw_cfg, sim.micros_url,
             pg_t_src("tests/data/keys/webhook.secret"));
    /* its own Redis database: the main gateway's workers share a queue only within one */
    char *db = strstr(cfg, redis.url);
    assert_non_null(db);
    db[strlen(redis.url) - 1] = '1';
    struct pg_t_proc g2;
    assert_int_equal(pg_t_gateway_start(&g2, cfg), 0);
    char u[256];
    snprintf(u, sizeof u, "%s/v1/salesforce/outbound-messages", g2.url);
    struct note n;
    note_for(&n, 7, 3, 1767225600000LL, 7);
    char *xml = om_envelope(ORG, &n, 1);
    const char *h[] = {"Content-Type: text/xml; charset=utf-8", NULL};
    struct pg_t_resp r;
    assert_int_equal(pg_t_http("POST", u, h, xml, strlen(xml), 0, &r), 0);
    assert_int_equal(r.status, 200);
    pg_t_resp_free(&r);
    free(xml);
    const char *tier = NULL;
    json_t *st = NULL;
    for (int64_t end = pg_now_ms() + 10000; !tier && pg_now_ms() < end; pg_sleep_ms(50)) {
        json_decref(st);
        st = get_json(sim.micros_url, "/_sim/state");
        json_t *c =
            json_object_get(json_object_get(json_object_get(st, "webhook"), "customers"), n.lid);
        tier = json_string_value(
            json_object_get(json_object_get(json_object_get(c, "last"), "data"), "tier"));
    }
    assert_non_null(tier);
    assert_string_equal(tier, "T3");
    json_decref(st);
    assert_int_equal(pg_t_proc_stop(&g2), 0);
    pg_t_proc_destroy(&g2);
}

static long admin_idem(const char *path, const char *key, struct pg_t_resp *r)
{
    char u[512], kh[300];
    snprintf(u, sizeof u, "%s%s", gw.url, path);
    snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
    const char *h[] = {"X-Api-Key: " ADMIN_KEY, kh, NULL};
    pg_t_http("POST", u, h, "", 0, 10000, r);
    return r->status;
}

/* Idempotency-Key on the replay POSTs: a retry gets the stored reply; another request under the
 * same key is 422; a key whose first request is still running is 409. */
static void replay_honours_idempotency_key(void **state)
{
    struct pg_t_resp r;
    char h[64];
    assert_int_equal(admin_idem("/v1/admin/dead-letters/1-1/replay", "k-one", &r), 404);
    assert_int_not_equal(pg_t_resp_header(&r, "Idempotent-Replayed", h, sizeof h), 0);
    char *first = strdup(r.body);
    pg_t_resp_free(&r);
    assert_int_equal(admin_idem("/v1/admin/dead-letters/1-1/replay", "k-one", &r), 404);
    assert_int_equal(pg_t_resp_header(&r, "Idempotent-Replayed", h, sizeof h), 0);
    assert_string_equal(r.body, first); /* the stored reply, request id and all */
    pg_t_resp_free(&r);
    free(first);
    assert_int_equal(admin_idem("/v1/admin/dead-letters/2-2/replay", "k-one", &r), 422);
    pg_t_resp_free(&r);
    /* a first request still running (its record says so) */
    assert_int_equal(
        pg_t_redis_cmd(&redis,
                       "HSET pg:idem:admin:admin_dead_letters_replay:k-two "
                       "state running fp %s",
                       "dd4c31adafac42b1b6110bc4e3b12750789bf971b7408519609fd8f7ffb91ae3"),
        0);
    assert_int_equal(admin_idem("/v1/admin/dead-letters/replay", "k-two", &r), 409);
    pg_t_resp_free(&r);
    assert_int_equal(admin_idem("/v1/admin/dead-letters/replay", "bad key with spaces", &r), 400);
    pg_t_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(outbound_message_tier_change_reaches_micros, reset),
        cmocka_unit_test_setup(same_message_five_times_one_set_customer, reset),
        cmocka_unit_test_setup(stale_own_lease_is_taken_over, reset),
        cmocka_unit_test_setup(rejected_messages_get_soap_faults, reset),
        cmocka_unit_test_setup(platform_event_reaches_micros, reset),
        cmocka_unit_test_setup(thousand_shuffled_updates_newest_wins, reset),
        cmocka_unit_test_setup(micros_outage_is_retried, reset),
        cmocka_unit_test_setup(exhausted_retries_dead_letter_then_replay, reset),
        cmocka_unit_test_setup(redis_down_no_ack_then_delivered, reset),
        cmocka_unit_test_setup(credentials_are_checked, reset),
        cmocka_unit_test_setup(webhook_target_delivers_signed_json, reset),
        cmocka_unit_test_setup(replay_honours_idempotency_key, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
