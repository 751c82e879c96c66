/*
 * The OpenAPI contract (openapi/openapi.json) against the real gateway:
 *
 * 1. The document the gateway serves is the one in the source tree, and it documents exactly
 *    the routes of the route table (pg_hnd_routes): every route is documented, every documented
 *    operation is routed, and each operation's security matches the route's auth policy.
 * 2. Every response this test provokes from a running gateway (Redis, the simulators, a full
 *    configuration; each documented status it can reach: 200/202/204/400/401/404/405/413/500
 *    SOAP fault/503) is recorded and validated against the schema, media type and headers the
 *    document gives for that status, by openapi/validate.mjs (ajv, pinned in package.json).
 *
 * The validation step needs node and `npm ci` in the source tree (scripts/test does both, and
 * sets PG_TEST_REQUIRE_NPM=1 so that a missing install fails instead of skipping).
 */
#include <setjmp.h>
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
#include "handlers/handlers.h"
#include "server/buf.h"
#include "server/util.h"
#include "tests/support/harness.h"

#define ORG "00D5g000004XyZ1EAK"
#define ADMIN_KEY "test-admin-key-0123456789"
/* sha256("test-admin-key-0123456789") */
#define ADMIN_HASH "sha256:82007d29a6e0686708f2ef128b4d5d2225286cb76e82f74b09324d61ec36f968"
#define STATION_KEY "test-station-key-0123456789"
#define STATION_HASH "sha256:232596b316c07b12f2f21617e72710911fc58cab2d37492caf2c1c4ee48b45c4"
#define STATION2_KEY "test-station-key-2-0123456789"
#define STATION2_HASH "sha256:7b20c5ca27a1923575aa14d8a36097df28288b8381766828a66675f04de527fd"
#define STATION3_KEY "test-station-key-3-0123456789" /* bound to location S3 (guest checks) */
#define STATION3_HASH "sha256:78f03f5ebf9069c08474631a40a918b4ebf244ab76182246ec5043ca124d60ef"
#define GL_LOGON "posgate"
#define GL_PASSWORD "gl-test-password"
#define JWT_ISS "https://acme.my.salesforce.com"
#define JWT_AUD "posgate"
#define JWT_KID "sf-events-1"

static struct pg_t_redis redis;
static struct pg_t_proc sim, gw;
static char records_path[600];
static FILE *records;

/* ---------------------------------------------------------------- setup */

static int setup(void **state)
{
    if (pg_t_redis_start(&redis) != 0)
        return -1;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"port\":0,\"seed\":\"%s\",\"org_id\":\"" ORG "\","
             "\"jwt\":{\"private_key\":\"%s\",\"kid\":\"" JWT_KID "\",\"iss\":\"" JWT_ISS "\","
             "\"aud\":\"" JWT_AUD "\",\"sub\":\"integration@acme.example\"}},"
             "\"micros\":{\"port\":0,\"seed\":\"%s\",\"gl\":{\"logon\":\"" GL_LOGON
             "\",\"password\":\"" GL_PASSWORD "\"}}}",
             pg_t_src("tests/data/salesforce_seed.json"), pg_t_src("tests/data/keys/sf-events.key"),
             pg_t_src("tests/data/micros_seed.json"));
    if (pg_t_sim_start(&sim, cfg) != 0)
        return -1;
    static char gcfg[8192];
    snprintf(
        gcfg, sizeof gcfg,
        "{\"listen\":{\"port\":0},\"http\":{\"threads\":2,\"workers\":4,\"body_max_bytes\":4096},"
        "\"log\":{\"level\":\"info\"},"
        "\"redis\":{\"url\":\"%s\",\"command_timeout_ms\":1000,\"reconnect_min_ms\":20,"
        "\"reconnect_max_ms\":200},"
        "\"salesforce\":{\"org_ids\":[\"" ORG "\"],\"outbound_body_max_bytes\":65536,"
        "\"events_body_max_bytes\":65536,"
        "\"events_jwt\":{\"iss\":\"" JWT_ISS "\",\"aud\":\"" JWT_AUD "\","
        "\"keys\":{\"" JWT_KID "\":{\"alg\":\"RS256\",\"key\":\"file:%s\"}}}},"
        "\"mapping\":{"
        "\"Contact\":{\"salesforce_id\":\"Id\",\"loyalty_id\":\"Loyalty_Id__c\","
        "\"tier\":\"Loyalty_Tier__c\",\"email\":\"Email\",\"first_name\":\"FirstName\","
        "\"last_name\":\"LastName\",\"version\":\"SystemModstamp\"},"
        "\"Loyalty_Update__e\":{\"salesforce_id\":\"Contact_Id__c\","
        "\"loyalty_id\":\"Loyalty_Id__c\",\"tier\":\"Loyalty_Tier__c\","
        "\"points\":\"Loyalty_Points__c\",\"version\":\"CreatedDate\"}},"
        "\"push\":{\"enabled\":true,\"target\":\"gl\",\"workers\":2,\"retry_base_ms\":50,"
        "\"retry_cap_ms\":200,\"max_attempts\":3,\"reclaim_idle_ms\":1500,\"lock_ms\":5000,"
        "\"gl\":{\"url\":\"%s/ws/services/StoredValueService\",\"logon\":\"" GL_LOGON "\","
        "\"password\":\"" GL_PASSWORD "\",\"timeout_ms\":3000,\"create_missing\":true,"
        "\"columns\":{\"tier\":\"useralpha1\",\"points\":\"usernumeric1\","
        "\"first_name\":\"firstname\",\"last_name\":\"lastname\"}}},"
        "\"lookup\":{\"stations\":{"
        "\"till-1\":{\"key_hash\":\"" STATION_HASH "\",\"location\":\"Store 1\","
        "\"stores\":[\"S1\"]},"
        "\"till-2\":{\"key_hash\":\"" STATION2_HASH "\",\"location\":\"Store 2\","
        "\"stores\":[\"S2\"],\"rate_limit_per_minute\":1},"
        "\"till-3\":{\"key_hash\":\"" STATION3_HASH "\",\"location\":\"S3\","
        "\"stores\":[\"S3\"]}}},"
        "\"checks\":{\"push_max_checks\":2},"
        "\"admin\":{\"api_key_hashes\":[\"" ADMIN_HASH "\"]}}",
        redis.url, pg_t_src("tests/data/keys/sf-events.pub"), sim.micros_url);
    if (pg_t_gateway_start(&gw, gcfg) != 0)
        return -1;
    snprintf(records_path, sizeof records_path, "%s/responses.jsonl", gw.dir);
    records = fopen(records_path, "w");
    return records ? 0 : -1;
}

static int teardown(void **state)
{
    if (records)
        fclose(records);
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_proc_destroy(&sim);
    pg_t_redis_destroy(&redis);
    return st == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- the document */

/* The security scheme names an operation requires, sorted and joined by '|' ("" for none). */
static void op_security(json_t *doc, json_t *op, char *out, size_t outsz)
{
    json_t *sec = json_object_get(op, "security");
    if (!sec)
        sec = json_object_get(doc, "security");
    const char *names[16];
    size_t n = 0, i;
    json_t *alt;
    json_array_foreach(sec, i, alt)
    {
        const char *k;
        json_t *v;
        json_object_foreach(alt, k, v)
        {
            if (n < 16)
                names[n++] = k;
        }
    }
    for (size_t a = 0; a < n; a++) /* insertion sort: a handful of names */
        for (size_t b = a; b > 0 && strcmp(names[b - 1], names[b]) > 0; b--) {
            const char *t = names[b];
            names[b] = names[b - 1];
            names[b - 1] = t;
        }
    out[0] = '\0';
    for (size_t a = 0; a < n; a++) {
        size_t l = strlen(out);
        snprintf(out + l, outsz - l, "%s%s", a ? "|" : "", names[a]);
    }
}

/* What the document must say for a route's auth policy. */
static const char *expected_security(enum pg_auth_policy p)
{
    switch (p) {
    case PG_AUTH_NONE:
    case PG_AUTH_SF_ORG: /* checked in the body by the handler: no HTTP scheme */
        return "";
    case PG_AUTH_SF_JWT:
        return "salesforceEventsJwt";
    case PG_AUTH_STATION: /* a station API key, or a partner JWT with loyalty:read */
        return "partnerJwt|stationApiKey";
    case PG_AUTH_PARTNER:
        return "partnerJwt";
    case PG_AUTH_ADMIN: /* the admin API key, or a partner JWT with the admin scope */
        return "adminApiKey|partnerJwt";
    }
    return "?";
}

static int lower_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if ((*a | 0x20) != (*b | 0x20))
            return 0;
    return *a == *b;
}

static const char *const http_methods[] = {"get",   "put",  "post",    "delete",
                                           "patch", "head", "options", "trace"};

/* Compare a document with the route table; returns the number of differences (printed). */
static int compare_routes(json_t *doc)
{
    size_t n = 0;
    const struct pg_route *routes = pg_hnd_routes(&n);
    json_t *paths = json_object_get(doc, "paths");
    int bad = 0;
    /* every route is documented, with the security its auth policy implies */
    for (size_t i = 0; i < n; i++) {
        char m[16];
        snprintf(m, sizeof m, "%s", routes[i].method);
        for (char *c = m; *c; c++)
            *c = (char)(*c | 0x20);
        json_t *op = json_object_get(json_object_get(paths, routes[i].path), m);
        if (!op) {
            printf("DRIFT route %s %s (%s) is not documented in openapi/openapi.json\n",
                   routes[i].method, routes[i].path, routes[i].name);
            bad++;
            continue;
        }
        char got[256];
        op_security(doc, op, got, sizeof got);
        const char *want = expected_security(routes[i].auth);
        if (strcmp(got, want) != 0) {
            printf("DRIFT %s %s: documented security [%s], the route's auth policy needs [%s]\n",
                   routes[i].method, routes[i].path, got, want);
            bad++;
        }
    }
    /* every documented operation is routed */
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item)
    {
        for (size_t k = 0; k < sizeof http_methods / sizeof http_methods[0]; k++) {
            if (!json_object_get(item, http_methods[k]))
                continue;
            int found = 0;
            for (size_t i = 0; i < n && !found; i++)
                found = strcmp(routes[i].path, path) == 0 &&
                        lower_eq(routes[i].method, http_methods[k]);
            if (!found) {
                printf("DRIFT documented operation %s %s is not in the route table\n",
                       http_methods[k], path);
                bad++;
            }
        }
    }
    printf("routes: %zu in the route table, %d differences from the document\n", n, bad);
    return bad;
}

static char *url(const char *path)
{
    static char u[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(u[k], sizeof u[k], "%s%s", gw.url, path);
    return u[k];
}

static void route_table_and_document_agree(void **state)
{
    /* what the gateway serves is the source tree's document, byte for byte */
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(url("/openapi.json"), &r), 0);
    assert_int_equal(r.status, 200);
    char *src = NULL;
    size_t srclen = 0;
    assert_int_equal(pg_read_file(pg_t_src("openapi/openapi.json"), 8 << 20, &src, &srclen), 0);
    if (r.len != srclen || memcmp(r.body, src, srclen) != 0)
        fail_msg("GET /openapi.json differs from openapi/openapi.json: rebuild the gateway");
    free(src);
    json_t *doc = json_loads(r.body, 0, NULL);
    pg_t_resp_free(&r);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    if (compare_routes(doc) != 0) {
        json_decref(doc);
        fail_msg("the route table and openapi/openapi.json differ (DRIFT lines above)");
    }

    /* the comparison itself notices drift on either side */
    printf("self-check: two deliberate drifts, each must be reported:\n");
    json_t *paths = json_object_get(doc, "paths");
    json_t *saved = json_incref(json_object_get(paths, "/healthz"));
    json_object_del(paths, "/healthz");
    assert_int_equal(compare_routes(doc), 1); /* a route nobody documented */
    json_object_set_new(paths, "/healthz", saved);
    json_object_set_new(paths, "/v1/not-routed", json_pack("{s:{}}", "get"));
    assert_int_equal(compare_routes(doc), 1); /* a documented operation nobody routes */
    json_object_del(paths, "/v1/not-routed");
    json_decref(doc);
}

/* ---------------------------------------------------------------- recorded calls */

/* Perform a request and record it for the validator; returns the status (the response in *out
 * when out is not NULL; the caller frees it). */
static long call(const char *method,
                 const char *route,
                 const char *path,
                 const char *const *headers,
                 const char *body,
                 size_t body_len,
                 struct pg_t_resp *out)
{
    struct pg_t_resp r;
    if (pg_t_http(method, url(path), headers, body, body_len, 30000, &r) != 0)
        fail_msg("%s %s: no response (curl %d)", method, path, r.curl_rc);
    json_t *h = json_object();
    char *save = NULL, *block = strdup(r.headers ? r.headers : "");
    for (char *line = strtok_r(block, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (strncmp(line, "HTTP/", 5) == 0) {
            json_object_clear(h); /* an interim response's headers do not count */
            continue;
        }
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        for (char *c = line; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        json_object_set_new(h, line, json_string(v));
    }
    free(block);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:o, s:s%}", "method", method, "route", route,
                            "path", path, "status", (json_int_t)r.status, "headers", h, "body",
                            r.body ? r.body : "", r.body ? r.len : (size_t)0);
    if (!rec) /* not UTF-8 (never expected here): record it as such so validation fails */
        rec = json_pack("{s:s, s:s, s:s, s:I, s:{}, s:s}", "method", method, "route", route, "path",
                        path, "status", (json_int_t)r.status, "headers", "body",
                        "<body is not UTF-8>");
    assert_non_null(rec);
    assert_int_equal(json_dumpf(rec, records, JSON_COMPACT), 0);
    fputc('\n', records);
    fflush(records);
    json_decref(rec);
    long st = r.status;
    if (out)
        *out = r;
    else
        pg_t_resp_free(&r);
    return st;
}

#define EXPECT(status, expr)                                                                       \
    do {                                                                                           \
        long got_ = (expr);                                                                        \
        if (got_ != (status))                                                                      \
            fail_msg("%s: got %ld, expected %d", #expr, got_, (status));                           \
    } while (0)

static const char *const admin_h[] = {"X-Api-Key: " ADMIN_KEY, NULL};
static const char *const wrong_key[] = {"X-Api-Key: not-the-key", NULL};
static const char *const soap_h[] = {"Content-Type: text/xml; charset=utf-8", "SOAPAction: \"\"",
                                     NULL};

static char *om_envelope(
    const char *org, const char *note_id, const char *sfid, const char *lid, const char *tier)
{
    char *s = NULL;
    int n = asprintf(
        &s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "
        "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
        " <soapenv:Body>\n"
        "  <notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n"
        "   <OrganizationId>%s</OrganizationId>\n"
        "   <ActionId>04k5g000000CaRkAAK</ActionId>\n"
        "   <SessionId xsi:nil=\"true\"/>\n"
        "   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/66.0/%.15s"
        "</EnterpriseUrl>\n"
        "   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/66.0/%.15s</PartnerUrl>\n"
        "   <Notification>\n"
        "    <Id>%s</Id>\n"
        "    <sObject xsi:type=\"sf:Contact\" "
        "xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">\n"
        "     <sf:Id>%s</sf:Id>\n"
        "     <sf:FirstName>Jane</sf:FirstName>\n"
        "     <sf:LastName>Doe</sf:LastName>\n"
        "     <sf:Loyalty_Id__c>%s</sf:Loyalty_Id__c>\n"
        "     <sf:Loyalty_Tier__c>%s</sf:Loyalty_Tier__c>\n"
        "     <sf:SystemModstamp>2026-03-02T14:05:11.000Z</sf:SystemModstamp>\n"
        "    </sObject>\n"
        "   </Notification>\n"
        "  </notifications>\n"
        " </soapenv:Body>\n"
        "</soapenv:Envelope>\n",
        org, org, org, note_id, sfid, lid, tier);
    assert_true(n > 0);
    return s;
}

static long post_om(const char *xml)
{
    return call("POST", "/v1/salesforce/outbound-messages", "/v1/salesforce/outbound-messages",
                soap_h, xml, strlen(xml), NULL);
}

static char *bearer(void)
{
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(pg_read_file(pg_t_src("tests/data/keys/sf-events.key"), 1 << 16, &pem, &len),
                     0);
    json_int_t now = (json_int_t)time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", JWT_ISS, "aud", JWT_AUD, "sub",
                               "integration@acme.example", "iat", now, "exp", now + 600);
    char *tok = NULL;
    assert_int_equal(pg_jwt_sign_rs256(pem, len, JWT_KID, claims, &tok), 0);
    json_decref(claims);
    free(pem);
    char *h = NULL;
    assert_true(asprintf(&h, "Authorization: Bearer %s", tok) > 0);
    free(tok);
    return h;
}

static char *platform_event(const char *uuid, const char *sfid, const char *lid, const char *tier)
{
    char *s = NULL;
    assert_true(asprintf(&s,
                         "{\"data\":{\"schema\":\"dffQ2QLzDNHqwB8_sHMxdA\",\"payload\":{"
                         "\"CreatedDate\":\"2026-03-02T14:05:11.517Z\",\"Contact_Id__c\":\"%s\","
                         "\"Loyalty_Id__c\":\"%s\",\"Loyalty_Tier__c\":\"%s\","
                         "\"Loyalty_Points__c\":12850},\"event\":{\"EventUuid\":\"%s\","
                         "\"replayId\":18734}},\"channel\":\"/event/Loyalty_Update__e\"}",
                         sfid, lid, tier, uuid) > 0);
    return s;
}

static long post_events(const char *auth, const char *body, size_t len)
{
    const char *h[] = {"Content-Type: application/json", auth, NULL};
    return call("POST", "/v1/salesforce/events", "/v1/salesforce/events", h, body, len, NULL);
}

static long admin_call(const char *method, const char *route, const char *path)
{
    return call(method, route, path, admin_h, strcmp(method, "POST") == 0 ? "" : NULL, 0, NULL);
}

/* Unrecorded polling helpers. */
static json_t *admin_get(const char *path, long *status)
{
    struct pg_t_resp r;
    pg_t_http("GET", url(path), admin_h, NULL, 0, 10000, &r);
    *status = r.status;
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    pg_t_resp_free(&r);
    return j;
}

static void wait_in_sync(const char *sfid)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/admin/customers/%s/sync-status", sfid);
    for (int64_t end = pg_now_ms() + 15000; pg_now_ms() < end; pg_sleep_ms(50)) {
        long st;
        json_t *j = admin_get(path, &st);
        int ok = st == 200 && json_is_true(json_object_get(j, "in_sync"));
        json_decref(j);
        if (ok)
            return;
    }
    fail_msg("%s never reached MICROS", sfid);
}

/* Wait until the dead-letter stream holds a letter; returns its id (static storage). */
static const char *wait_dead_letter(void)
{
    static char id[64];
    for (int64_t end = pg_now_ms() + 15000; pg_now_ms() < end; pg_sleep_ms(50)) {
        long st;
        json_t *j = admin_get("/v1/admin/dead-letters", &st);
        const char *s = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "items"), 0), "id"));
        if (s)
            snprintf(id, sizeof id, "%s", s);
        json_decref(j);
        if (s)
            return id;
    }
    fail_msg("no dead letter appeared");
    return NULL;
}

static void micros(const char *what)
{
    struct pg_t_resp r;
    char u[256];
    if (strcmp(what, "down") == 0) {
        snprintf(u, sizeof u, "%s/_sim/faults", sim.micros_url);
        const char *f = "{\"status\":503,\"count\":1000,\"path\":\"/ws/\"}";
        const char *h[] = {"Content-Type: application/json", NULL};
        assert_int_equal(pg_t_http("POST", u, h, f, strlen(f), 0, &r), 0);
        assert_int_equal(r.status, 201);
    } else {
        snprintf(u, sizeof u, "%s/_sim/reset", sim.micros_url);
        assert_int_equal(pg_t_http("POST", u, NULL, "", 0, 0, &r), 0);
    }
    pg_t_resp_free(&r);
}

static int npm_tools_present(void)
{
    if (access(pg_t_src("node_modules/ajv/package.json"), R_OK) != 0 ||
        access(pg_t_src("node_modules/ajv-formats/package.json"), R_OK) != 0)
        return 0;
    const char *argv[] = {"node", "--version", NULL};
    pid_t pid = pg_t_spawn(argv, "/dev/null");
    return pid > 0 && pg_t_wait_exit(pid, 20000) == 0;
}

static void responses_validate_against_document(void **state)
{
    int require = getenv("PG_TEST_REQUIRE_NPM") && strcmp(getenv("PG_TEST_REQUIRE_NPM"), "1") == 0;
    int tools = npm_tools_present();
    if (!tools && require)
        fail_msg("node or node_modules/ajv missing: run `npm ci` in the source tree");

    /* ---- health, metrics, docs */
    const char *rid_h[] = {"X-Request-Id: contract-test.1", NULL};
    EXPECT(200, call("GET", "/healthz", "/healthz", rid_h, NULL, 0, NULL));
    EXPECT(405, call("POST", "/healthz", "/healthz", NULL, "{}", 2, NULL));
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    EXPECT(413, call("GET", "/healthz", "/healthz", NULL, big, 8192, NULL));
    EXPECT(200, call("GET", "/readyz", "/readyz", NULL, NULL, 0, NULL));
    EXPECT(405, call("DELETE", "/readyz", "/readyz", NULL, NULL, 0, NULL));
    EXPECT(200, call("GET", "/metrics", "/metrics", NULL, NULL, 0, NULL));
    EXPECT(200, call("GET", "/openapi.json", "/openapi.json", NULL, NULL, 0, NULL));
    EXPECT(405, call("PUT", "/openapi.json", "/openapi.json", NULL, "{}", 2, NULL));
    struct pg_t_resp page;
    long docs = call("GET", "/docs", "/docs", NULL, NULL, 0, &page);
    pg_t_resp_free(&page);
    if (require)
        EXPECT(200, docs);
    else
        assert_true(docs == 200 || docs == 503);
    EXPECT(docs == 200 ? 200 : 503,
           call("GET", "/docs/{asset}", "/docs/redoc.standalone.js", NULL, NULL, 0, NULL));
    EXPECT(404, call("GET", "/docs/{asset}", "/docs/..%2Fopenapi.json", NULL, NULL, 0, NULL));
    EXPECT(404, call("GET", "/docs/{asset}", "/docs/nope.js", NULL, NULL, 0, NULL));
    EXPECT(405, call("POST", "/docs/{asset}", "/docs/redoc.standalone.js", NULL, "", 0, NULL));

    /* ---- Outbound Messages */
    char *xml = om_envelope(ORG, "04l5g00000Gx7QzAAJ", "0035g00000K1tbPAAR", "LY-000123", "Gold");
    EXPECT(200, post_om(xml)); /* Ack */
    EXPECT(200, post_om(xml)); /* the same again: a duplicate, still an Ack */
    free(xml);
    xml = om_envelope("00D000000000001AAA", "04l5g00000Gx7QzAAK", "0035g00000K1tbPAAR", "LY-000123",
                      "Gold");
    EXPECT(500, post_om(xml)); /* foreign org: soapenv:Client */
    free(xml);
    EXPECT(500, post_om("<not-soap/>"));
    EXPECT(413, call("POST", "/v1/salesforce/outbound-messages", "/v1/salesforce/outbound-messages",
                     soap_h, big, 70000, NULL));
    EXPECT(405, call("GET", "/v1/salesforce/outbound-messages", "/v1/salesforce/outbound-messages",
                     NULL, NULL, 0, NULL));

    /* ---- Platform Events */
    char *auth = bearer();
    char *e1 = platform_event("2ec0e371-1395-457f-9275-be1b527a72f7", "0035g00000PEVNTAAA",
                              "LY-EVENT-1", "Gold");
    char *e2 = platform_event("not-a-uuid", "0035g00000PEVNTAAA", "LY-EVENT-1", "Gold");
    char *batch = NULL;
    assert_true(asprintf(&batch, "[%s,%s]", e1, e2) > 0);
    EXPECT(202, post_events(auth, batch, strlen(batch))); /* queued + rejected */
    EXPECT(202, post_events(auth, e1, strlen(e1)));       /* duplicate */
    EXPECT(400, post_events(auth, "{not json", 9));
    EXPECT(400, post_events(auth, "[]", 2));
    EXPECT(401, post_events(NULL, e1, strlen(e1)));
    EXPECT(401, post_events("Authorization: Bearer abc.def.ghi", e1, strlen(e1)));
    struct pg_buf many;
    pg_buf_init(&many, 1 << 20);
    int brc = pg_buf_puts(&many, "[");
    for (int i = 0; i < 201 && brc == 0; i++)
        brc = pg_buf_printf(&many, "%s{\"data\":{\"payload\":{},\"event\":{\"EventUuid\":\"x\"}}}",
                            i ? "," : "");
    if (brc == 0)
        brc = pg_buf_puts(&many, "]");
    assert_int_equal(brc, 0);
    EXPECT(413, post_events(auth, many.data, many.len)); /* more than salesforce.events_max */
    pg_buf_free(&many);
    EXPECT(413, post_events(auth, big, 70000)); /* over the body cap */
    EXPECT(405, call("GET", "/v1/salesforce/events", "/v1/salesforce/events", NULL, NULL, 0, NULL));

    /* ---- admin: sync status and audit of the delivered customer */
    wait_in_sync("0035g00000K1tbPAAR");
    const char *ss = "/v1/admin/customers/{salesforce_id}/sync-status";
    EXPECT(200, admin_call("GET", ss, "/v1/admin/customers/0035g00000K1tbPAAR/sync-status"));
    EXPECT(404, admin_call("GET", ss, "/v1/admin/customers/0035g00000NOBODY/sync-status"));
    EXPECT(401, call("GET", ss, "/v1/admin/customers/0035g00000K1tbPAAR/sync-status", NULL, NULL, 0,
                     NULL));
    EXPECT(405, admin_call("POST", ss, "/v1/admin/customers/0035g00000K1tbPAAR/sync-status"));
    const char *au = "/v1/admin/audit";
    EXPECT(200, admin_call("GET", au, "/v1/admin/audit?salesforce_id=0035g00000K1tbPAAR"));
    EXPECT(200, admin_call("GET", au, "/v1/admin/audit?loyalty_id=LY-000123&count=2"));
    EXPECT(400, admin_call("GET", au, "/v1/admin/audit"));
    EXPECT(400, admin_call("GET", au, "/v1/admin/audit?salesforce_id=a&loyalty_id=b"));
    EXPECT(400, admin_call("GET", au, "/v1/admin/audit?salesforce_id=a&count=0"));
    EXPECT(404, admin_call("GET", au, "/v1/admin/audit?loyalty_id=LY-NOBODY"));
    EXPECT(404, admin_call("GET", au, "/v1/admin/audit?salesforce_id=0035g00000NOBODY"));
    /* reconciliation: this gateway has no BI or Salesforce REST settings, so a valid request is
     * 503 (tests/integration/test_recon.c covers the report itself) */
    const char *rc = "/v1/reconciliation";
    EXPECT(503, admin_call("GET", rc, "/v1/reconciliation?location=1234&business_date=2026-11-20"));
    EXPECT(400, admin_call("GET", rc, "/v1/reconciliation?location=1234&business_date=20261120"));
    EXPECT(400, admin_call("GET", rc, "/v1/reconciliation?business_date=2026-11-20"));
    EXPECT(401, call("GET", rc, "/v1/reconciliation?location=1234&business_date=2026-11-20", NULL,
                     NULL, 0, NULL));

    /* ---- POS lookups (no Salesforce REST client configured: a miss is 503) */
    const char *lm = "/v1/loyalty/members", *lg = "/v1/loyalty/members/{salesforce_id}";
    const char *st_h[] = {"X-Api-Key: " STATION_KEY, NULL};
    struct pg_t_resp mr;
    long ms = call("GET", lm, "/v1/loyalty/members?loyalty_id=LY-000123", st_h, NULL, 0, &mr);
    assert_true(ms == 200 || ms == 503); /* cached by the push path's write-through, or a miss */
    char etag[80], inm[120];
    if (ms == 200 && pg_t_resp_header(&mr, "ETag", etag, sizeof etag) == 0) {
        snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
        const char *c_h[] = {"X-Api-Key: " STATION_KEY, inm, NULL};
        EXPECT(304,
               call("GET", lm, "/v1/loyalty/members?loyalty_id=LY-000123", c_h, NULL, 0, NULL));
    }
    pg_t_resp_free(&mr);
    EXPECT(503, call("GET", lm, "/v1/loyalty/members?loyalty_id=LY-NOBODY&store=S1", st_h, NULL, 0,
                     NULL));
    EXPECT(400, call("GET", lm, "/v1/loyalty/members", st_h, NULL, 0, NULL));
    EXPECT(400,
           call("GET", lm, "/v1/loyalty/members?card=12&email=a@example.com", st_h, NULL, 0, NULL));
    EXPECT(401,
           call("GET", lm, "/v1/loyalty/members?loyalty_id=LY-000123", wrong_key, NULL, 0, NULL));
    EXPECT(403, call("GET", lm, "/v1/loyalty/members?loyalty_id=LY-000123&store=S9", st_h, NULL, 0,
                     NULL));
    EXPECT(405, call("POST", lm, "/v1/loyalty/members", st_h, "", 0, NULL));
    const char *st2_h[] = {"X-Api-Key: " STATION2_KEY, NULL};
    call("GET", lm, "/v1/loyalty/members?loyalty_id=LY-RATE", st2_h, NULL, 0, NULL);
    EXPECT(429, call("GET", lm, "/v1/loyalty/members?loyalty_id=LY-RATE", st2_h, NULL, 0, NULL));
    ms = call("GET", lg, "/v1/loyalty/members/0035g00000K1tbPAAR", st_h, NULL, 0, NULL);
    assert_true(ms == 200 || ms == 503);
    EXPECT(400, call("GET", lg, "/v1/loyalty/members/not-an-id", st_h, NULL, 0, NULL));
    EXPECT(401, call("GET", lg, "/v1/loyalty/members/0035g00000K1tbPAAR", NULL, NULL, 0, NULL));

    /* ---- MICROS guest checks pushed by middleware, and the BI poll trigger */
    const char *gc = "/v1/micros/guest-checks";
    const char *st3_h[] = {"X-Api-Key: " STATION3_KEY, "Content-Type: application/json", NULL};
    const char *one_check = "{\"guestCheckId\":101,\"opnBusDt\":\"2026-11-20\",\"chkTtl\":1}";
    EXPECT(202, call("POST", gc, "/v1/micros/guest-checks?location=S3", st3_h, one_check,
                     strlen(one_check), NULL));
    const char *bad_checks = "[{\"guestCheckId\":102},{\"guestCheckId\":\"x\"}]";
    EXPECT(400, call("POST", gc, "/v1/micros/guest-checks?location=S3", st3_h, bad_checks,
                     strlen(bad_checks), NULL));
    const char *three = "{\"locRef\":\"S3\",\"guestChecks\":[{\"guestCheckId\":1},"
                        "{\"guestCheckId\":2},{\"guestCheckId\":3}]}";
    EXPECT(413, call("POST", gc, gc, st3_h, three, strlen(three), NULL));
    EXPECT(403, call("POST", gc, "/v1/micros/guest-checks?location=S3", st_h, one_check,
                     strlen(one_check), NULL));
    EXPECT(401, call("POST", gc, "/v1/micros/guest-checks?location=S3", NULL, one_check,
                     strlen(one_check), NULL));
    EXPECT(405, call("GET", gc, gc, st3_h, NULL, 0, NULL));
    const char *cp = "/v1/admin/checks/poll";
    EXPECT(409, admin_call("POST", cp, "/v1/admin/checks/poll?location=S3")); /* poller off */
    EXPECT(400, admin_call("POST", cp, cp));
    EXPECT(401, call("POST", cp, "/v1/admin/checks/poll?location=S3", NULL, "", 0, NULL));

    /* ---- admin: dead letters */
    const char *dl = "/v1/admin/dead-letters";
    const char *one = "/v1/admin/dead-letters/{id}/replay", *drop = "/v1/admin/dead-letters/{id}";
    EXPECT(200, admin_call("GET", dl, dl)); /* empty */
    EXPECT(400, admin_call("GET", dl, "/v1/admin/dead-letters?count=abc"));
    EXPECT(401, call("GET", dl, dl, NULL, NULL, 0, NULL));
    EXPECT(401, call("GET", dl, dl, wrong_key, NULL, 0, NULL));
    EXPECT(405, admin_call("PUT", dl, dl));
    EXPECT(202,
           admin_call("POST", "/v1/admin/dead-letters/replay", "/v1/admin/dead-letters/replay"));
    EXPECT(404, admin_call("POST", one, "/v1/admin/dead-letters/1-0/replay"));
    EXPECT(400, admin_call("POST", one, "/v1/admin/dead-letters/bogus/replay"));
    EXPECT(404, admin_call("DELETE", drop, "/v1/admin/dead-letters/1-0"));
    EXPECT(404, admin_call("DELETE", drop, "/v1/admin/dead-letters/bogus"));

    /* ---- admin: check dead letters (the loader is off here: one letter written as the loader
     * writes them, listed; replaying it is a 404 since posgate holds no such check) */
    const char *cdl = "/v1/admin/check-dead-letters";
    const char *cone = "/v1/admin/check-dead-letters/{id}/replay";
    EXPECT(200, admin_call("GET", cdl, cdl)); /* empty */
    assert_int_equal(pg_t_redis_cmd(&redis,
                                    "XADD pg:chk:dead 1767225600000-0 source pg:chk:queue orig_id "
                                    "1767225599000-0 attempts 1 error %s ts_ms 1767225600000 "
                                    "f.loc 1234 f.gcid 915266015 f.code INVALID_FIELD",
                                    "INVALID_FIELD OrderItem: Foreign key external ID not found"),
                     0);
    EXPECT(200, admin_call("GET", cdl, cdl)); /* one letter */
    EXPECT(400, admin_call("GET", cdl, "/v1/admin/check-dead-letters?count=0"));
    EXPECT(401, call("GET", cdl, cdl, NULL, NULL, 0, NULL));
    EXPECT(404, admin_call("POST", cone, "/v1/admin/check-dead-letters/1767225600000-0/replay"));
    EXPECT(400, admin_call("POST", cone, "/v1/admin/check-dead-letters/bogus/replay"));
    EXPECT(202, admin_call("POST", "/v1/admin/check-dead-letters/replay",
                           "/v1/admin/check-dead-letters/replay"));

    micros("down");
    xml = om_envelope(ORG, "04l5g00000DEAD1AAA", "0035g00000DEAD1AAA", "LY-DEAD-1", "Gold");
    EXPECT(200, post_om(xml));
    free(xml);
    char path[256];
    snprintf(path, sizeof path, "/v1/admin/dead-letters/%s/replay", wait_dead_letter());
    EXPECT(200, admin_call("GET", dl, dl)); /* one letter */
    micros("up");
    EXPECT(202, admin_call("POST", one, path));
    wait_in_sync("0035g00000DEAD1AAA");

    micros("down");
    xml = om_envelope(ORG, "04l5g00000DEAD2AAA", "0035g00000DEAD2AAA", "LY-DEAD-2", "Gold");
    EXPECT(200, post_om(xml));
    free(xml);
    snprintf(path, sizeof path, "/v1/admin/dead-letters/%s", wait_dead_letter());
    EXPECT(204, admin_call("DELETE", drop, path));
    micros("up");

    /* ---- Redis down: 503s, and a SOAP fault rather than an Ack */
    pg_t_redis_stop(&redis);
    EXPECT(503, call("GET", "/readyz", "/readyz", NULL, NULL, 0, NULL));
    xml = om_envelope(ORG, "04l5g00000DOWN1AAA", "0035g00000DOWN1AAA", "LY-DOWN-1", "Gold");
    EXPECT(500, post_om(xml)); /* soapenv:Server */
    free(xml);
    char *e3 = platform_event("6da65473-8293-4d5a-a3a6-9522b4037e5f", "0035g00000DOWN2AAA",
                              "LY-DOWN-2", "Gold");
    EXPECT(503, post_events(auth, e3, strlen(e3)));
    EXPECT(503, admin_call("GET", dl, dl));
    EXPECT(503, call("POST", gc, "/v1/micros/guest-checks?location=S3", st3_h, one_check,
                     strlen(one_check), NULL));
    EXPECT(503,
           admin_call("POST", "/v1/admin/dead-letters/replay", "/v1/admin/dead-letters/replay"));
    EXPECT(503, admin_call("POST", one, "/v1/admin/dead-letters/1-0/replay"));
    EXPECT(503, admin_call("DELETE", drop, "/v1/admin/dead-letters/1-0"));
    EXPECT(503, admin_call("GET", ss, "/v1/admin/customers/0035g00000K1tbPAAR/sync-status"));
    EXPECT(503, admin_call("GET", au, "/v1/admin/audit?salesforce_id=0035g00000K1tbPAAR"));
    assert_int_equal(pg_t_redis_restart(&redis), 0);
    free(e1);
    free(e2);
    free(e3);
    free(batch);
    free(auth);
    free(big);
    fflush(records);

    /* ---- validate every recorded response against the document */
    if (!tools) {
        printf(
            "node_modules/ajv not installed (run `npm ci`): responses recorded, not validated\n");
        skip();
    }
    char log[700];
    snprintf(log, sizeof log, "%s/validate.log", gw.dir);
    const char *argv[] = {"node", pg_t_src("openapi/validate.mjs"),
                          pg_t_src("openapi/openapi.json"), records_path, NULL};
    pid_t pid = pg_t_spawn(argv, log);
    assert_true(pid > 0);
    int st = pg_t_wait_exit(pid, 60000);
    char *out = NULL;
    if (pg_read_file(log, 1 << 20, &out, NULL) == 0) {
        fputs(out, stdout);
        free(out);
    }
    assert_int_equal(st, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(route_table_and_document_agree),
        cmocka_unit_test(responses_validate_against_document),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
