/*
 * posgate-sim, Salesforce REST side: the OAuth 2.0 JWT bearer token endpoint (each invalid_grant
 * case), bearer sessions (401 INVALID_SESSION_ID, expiry on demand and by TTL), Contact by Id and
 * by external id (200/404/300), the SOQL subset with its escapes and errors, Sforce-Limit-Info and
 * REQUEST_LIMIT_EXCEEDED, and faults on the new endpoints. Assertions are signed here with
 * OpenSSL and the TEST-ONLY key tests/data/keys/sf-oauth.key.
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
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "server/util.h"
#include "tests/support/harness.h"

#define CLIENT_ID "3MVG9posgate.TEST.ONLY.consumer.key"
#define USERNAME "integration@acme.example"
#define LOGIN_AUD "https://login.salesforce.com"
#define JANE "0035g00000K1tbPAAR"
#define ZOE "0035g00000Lq8ZwAAJ"
#define V "/services/data/v66.0"

static struct pg_t_proc g_sim;
static char g_bearer[512];
static const char *AUTH[] = {g_bearer, NULL};
static const char *const FORM[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};

static const char *sf(const char *path)
{
    static char u[4][2048];
    static int k;
    k = (k + 1) % 4;
    snprintf(u[k], sizeof u[k], "%s%s", g_sim.url, path);
    return u[k];
}

/* status; *out = parsed body (may be NULL); hv = a header's value if asked. */
static long call(const char *method,
                 const char *url,
                 const char *const *hdrs,
                 const char *body,
                 json_t **out,
                 const char *hname,
                 char *hv,
                 size_t hvsz)
{
    struct pg_t_resp r;
    pg_t_http(method, url, hdrs, body, body ? strlen(body) : 0, 10000, &r);
    long st = r.status;
    if (out)
        *out = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    if (hname && pg_t_resp_header(&r, hname, hv, hvsz) != 0)
        hv[0] = '\0';
    pg_t_resp_free(&r);
    return st;
}

static long get(const char *path, const char *const *hdrs, json_t **out)
{
    return call("GET", sf(path), hdrs, NULL, out, NULL, NULL, 0);
}

/* ---- assertions ---- */

static char *b64url(const unsigned char *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (char *c = out; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return out;
}

/* header.claims.signature; key_rel NULL = no signature ("alg":"none" style). */
static char *make_jwt(const char *header, const char *claims, const char *key_rel)
{
    char *h = b64url((const unsigned char *)header, strlen(header));
    char *c = b64url((const unsigned char *)claims, strlen(claims));
    size_t n = strlen(h) + strlen(c) + 2;
    char *input = malloc(n);
    snprintf(input, n, "%s.%s", h, c);
    char *sig = strdup("");
    if (key_rel) {
        FILE *f = fopen(pg_t_src(key_rel), "r");
        assert_non_null(f);
        EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        assert_non_null(pk);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char s[512];
        size_t sl = sizeof s;
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
        assert_int_equal(EVP_DigestSign(md, s, &sl, (const unsigned char *)input, strlen(input)),
                         1);
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(pk);
        free(sig);
        sig = b64url(s, sl);
    }
    size_t m = strlen(input) + strlen(sig) + 2;
    char *jwt = malloc(m);
    snprintf(jwt, m, "%s.%s", input, sig);
    free(h);
    free(c);
    free(input);
    free(sig);
    return jwt;
}

static char *claims(const char *iss, const char *sub, const char *aud, long long exp)
{
    char *s = malloc(1024);
    snprintf(s, 1024, "{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":%lld}", iss, sub, aud,
             exp);
    return s;
}

static long long now_s(void)
{
    return (long long)time(NULL);
}

/* POST the token endpoint with grant_type and assertion; returns status, *out the JSON. */
static long token_post(const char *grant, const char *assertion, json_t **out)
{
    char *ge = curl_easy_escape(NULL, grant, 0), *ae = curl_easy_escape(NULL, assertion, 0);
    size_t n = strlen(ge) + strlen(ae) + 64;
    char *body = malloc(n);
    snprintf(body, n, "grant_type=%s&assertion=%s", ge, ae);
    long st = call("POST", sf("/services/oauth2/token"), FORM, body, out, NULL, NULL, 0);
    curl_free(ge);
    curl_free(ae);
    free(body);
    return st;
}

static long token_with(const char *header, const char *claim_json, const char *key, json_t **out)
{
    char *jwt = make_jwt(header, claim_json, key);
    long st = token_post("urn:ietf:params:oauth:grant-type:jwt-bearer", jwt, out);
    free(jwt);
    return st;
}

/* jp, not the value: the call in the first argument fills it (argument order is unspecified). */
static void expect_oauth_error(long st, json_t **jp, const char *error, const char *desc)
{
    json_t *j = *jp;
    assert_int_equal(st, 400);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "error")), error);
    if (desc)
        assert_string_equal(json_string_value(json_object_get(j, "error_description")), desc);
    json_decref(j);
}

static void expect_sf_error(long st, json_t **jp, long want, const char *code)
{
    json_t *j = *jp;
    assert_int_equal(st, want);
    assert_true(json_is_array(j));
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "errorCode")),
                        code);
    assert_non_null(json_string_value(json_object_get(json_array_get(j, 0), "message")));
}

static const char *err_msg(json_t *j)
{
    return json_string_value(json_object_get(json_array_get(j, 0), "message"));
}

static json_t *state(void)
{
    json_t *j = NULL;
    assert_int_equal(get("/_sim/state", NULL, &j), 200);
    return j;
}

static long long oauth_state(const char *key)
{
    json_t *s = state();
    long long v = json_integer_value(json_object_get(json_object_get(s, "oauth"), key));
    json_decref(s);
    return v;
}

/* ---- setup ---- */

static char *sim_config(long long api_limit)
{
    char *cfg = malloc(8192);
    snprintf(cfg, 8192,
             "{\"log_level\":\"debug\",\"salesforce\":{\"seed\":\"%s\",\"api_limit\":%lld,"
             "\"external_id_fields\":[\"Loyalty_Id__c\",\"Loyalty_Card__c\"],"
             "\"oauth\":{\"certificate\":\"%s\",\"client_id\":\"" CLIENT_ID "\","
             "\"username\":\"" USERNAME "\",\"audiences\":[\"" LOGIN_AUD
             "\",\"https://test.salesforce.com\",\"https://acme.my.salesforce.com\"],"
             "\"token_ttl_s\":7200}}}",
             pg_t_src("tests/data/salesforce_seed.json"), api_limit,
             pg_t_src("tests/data/keys/sf-oauth.crt"));
    return cfg;
}

/* A real grant through the token endpoint: the session the tests below use. */
static int grant(char *hdr, size_t hdrsz)
{
    char *c = claims(CLIENT_ID, USERNAME, LOGIN_AUD, now_s() + 120);
    json_t *j = NULL;
    long st = token_with("{\"alg\":\"RS256\"}", c, "tests/data/keys/sf-oauth.key", &j);
    free(c);
    const char *t = json_string_value(json_object_get(j, "access_token"));
    int rc = st == 200 && t ? 0 : -1;
    if (!rc)
        snprintf(hdr, hdrsz, "Authorization: Bearer %s", t);
    json_decref(j);
    return rc;
}

static int group_setup(void **state)
{
    char *cfg = sim_config(100000);
    int rc = pg_t_sim_start(&g_sim, cfg);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    /* the simulator runs under the sanitizers too: a report makes it exit non-zero */
    int rc = pg_t_proc_stop(&g_sim);
    if (rc != 0) {
        char *log = pg_t_proc_log(&g_sim);
        fprintf(stderr, "posgate-sim exited %d:\n%s\n", rc, log ? log : "");
        free(log);
    }
    pg_t_proc_destroy(&g_sim);
    return rc == 0 ? 0 : -1;
}

static int reset_and_grant(void **state)
{
    if (call("POST", sf("/_sim/reset"), NULL, "", NULL, NULL, NULL, 0) != 200)
        return -1;
    return grant(g_bearer, sizeof g_bearer);
}

/* ---- OAuth ---- */

static void test_token_grant_success(void **st)
{
    assert_int_equal(call("POST", sf("/_sim/reset"), NULL, "", NULL, NULL, NULL, 0), 200);
    char *c = claims(CLIENT_ID, USERNAME, LOGIN_AUD, now_s() + 180);
    json_t *j = NULL;
    assert_int_equal(
        token_with("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", c, "tests/data/keys/sf-oauth.key", &j),
        200);
    free(c);
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    assert_non_null(tok);
    assert_memory_equal(tok, "00D5g000004XyZ1!", 16);
    assert_true(strlen(tok) > 80);
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "api");
    assert_string_equal(json_string_value(json_object_get(j, "instance_url")), g_sim.url);
    assert_string_equal(json_string_value(json_object_get(j, "id")),
                        "https://login.salesforce.com/id/00D5g000004XyZ1EAK/0055g00000ABCDEAA5");
    assert_string_equal(json_string_value(json_object_get(j, "token_type")), "Bearer");
    assert_null(json_object_get(j, "refresh_token"));
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", tok);
    const char *auth[] = {hdr, NULL};
    json_decref(j);
    assert_int_equal(get(V "/sobjects/Contact/" JANE, auth, NULL), 200);
    /* the legacy "prn" claim names the user too; another listed audience works */
    c = malloc(512);
    snprintf(c, 512,
             "{\"iss\":\"" CLIENT_ID "\",\"prn\":\"" USERNAME
             "\",\"aud\":\"https://test.salesforce.com\",\"exp\":%lld}",
             now_s() + 60);
    assert_int_equal(token_with("{\"alg\":\"RS256\"}", c, "tests/data/keys/sf-oauth.key", &j), 200);
    json_decref(j);
    free(c);
    assert_int_equal(oauth_state("grants"), 2);
    assert_true(oauth_state("active_tokens") >= 2);
}

static void test_token_invalid_cases(void **st)
{
    assert_int_equal(call("POST", sf("/_sim/reset"), NULL, "", NULL, NULL, NULL, 0), 200);
    const char *key = "tests/data/keys/sf-oauth.key";
    const char *rs = "{\"alg\":\"RS256\"}";
    long long now = now_s();
    json_t *j;
    char *c = claims(CLIENT_ID, USERNAME, LOGIN_AUD, now + 120), *jwt;

    /* another grant type, no grant type, a JSON body instead of a form */
    jwt = make_jwt(rs, c, key);
    expect_oauth_error(token_post("password", jwt, &j), &j, "unsupported_grant_type",
                       "grant type not supported");
    char body[4096];
    snprintf(body, sizeof body,
             "{\"grant_type\":\"urn:ietf:params:oauth:grant-type:jwt-bearer\","
             "\"assertion\":\"%s\"}",
             jwt);
    expect_oauth_error(
        call("POST", sf("/services/oauth2/token"), JSON_HDR, body, &j, NULL, NULL, 0), &j,
        "unsupported_grant_type", NULL);
    free(jwt);
    /* not a JWT, a missing assertion */
    expect_oauth_error(token_post("urn:ietf:params:oauth:grant-type:jwt-bearer", "abc.def", &j), &j,
                       "invalid_grant", "invalid assertion");
    expect_oauth_error(call("POST", sf("/services/oauth2/token"), FORM,
                            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer", &j,
                            NULL, NULL, 0),
                       &j, "invalid_grant", "invalid assertion");
    /* iss is not the consumer key */
    char *bad = claims("3MVG9someone.else", USERNAME, LOGIN_AUD, now + 120);
    expect_oauth_error(token_with(rs, bad, key, &j), &j, "invalid_client_id",
                       "client identifier invalid");
    free(bad);
    /* signed with a key whose certificate is not the app's; HS256; no signature */
    expect_oauth_error(token_with(rs, c, "tests/data/keys/sf-events.key", &j), &j, "invalid_client",
                       "invalid client credentials");
    expect_oauth_error(token_with("{\"alg\":\"HS256\"}", c, key, &j), &j, "invalid_client", NULL);
    expect_oauth_error(token_with("{\"alg\":\"none\"}", c, NULL, &j), &j, "invalid_client", NULL);
    /* a signature of other bytes (claims changed after signing) */
    jwt = make_jwt(rs, c, key);
    char *forged = make_jwt(rs, "{\"iss\":\"" CLIENT_ID "\",\"sub\":\"admin@acme.example\"}", NULL);
    char *mix = malloc(strlen(jwt) + strlen(forged) + 2);
    const char *sig = strrchr(jwt, '.');
    snprintf(mix, strlen(jwt) + strlen(forged) + 2, "%.*s%s", (int)(strlen(forged) - 1), forged,
             sig);
    expect_oauth_error(token_post("urn:ietf:params:oauth:grant-type:jwt-bearer", mix, &j), &j,
                       "invalid_client", NULL);
    free(mix);
    free(forged);
    free(jwt);
    /* audience */
    bad = claims(CLIENT_ID, USERNAME, "https://login.salesforce.com/", now + 120);
    expect_oauth_error(token_with(rs, bad, key, &j), &j, "invalid_grant", "audience is invalid");
    free(bad);
    bad = claims(CLIENT_ID, USERNAME, "http://127.0.0.1", now + 120);
    expect_oauth_error(token_with(rs, bad, key, &j), &j, "invalid_grant", "audience is invalid");
    free(bad);
    /* exp: past, missing, far ahead (milliseconds by mistake) */
    bad = claims(CLIENT_ID, USERNAME, LOGIN_AUD, now - 5);
    expect_oauth_error(token_with(rs, bad, key, &j), &j, "invalid_grant",
                       "expired authorization code");
    free(bad);
    expect_oauth_error(token_with(rs,
                                  "{\"iss\":\"" CLIENT_ID "\",\"sub\":\"" USERNAME
                                  "\",\"aud\":\"" LOGIN_AUD "\"}",
                                  key, &j),
                       &j, "invalid_grant", "invalid assertion");
    bad = claims(CLIENT_ID, USERNAME, LOGIN_AUD, now * 1000 + 120000);
    expect_oauth_error(token_with(rs, bad, key, &j), &j, "invalid_grant", "invalid assertion");
    free(bad);
    /* an unknown user */
    bad = claims(CLIENT_ID, "someone@acme.example", LOGIN_AUD, now + 120);
    expect_oauth_error(token_with(rs, bad, key, &j), &j, "invalid_grant",
                       "user hasn't approved this consumer");
    free(bad);
    free(c);
    /* the endpoint only takes POST */
    assert_int_equal(get("/services/oauth2/token", NULL, NULL), 405);
    assert_int_equal(oauth_state("grants"), 0);
}

/* A connected app whose user was never pre-authorized, and tokens that time out. */
static void test_token_unapproved_user_and_ttl(void **st)
{
    char cfg[4096];
    struct pg_t_proc p;
    snprintf(cfg, sizeof cfg,
             "{\"salesforce\":{\"oauth\":{\"certificate\":\"%s\",\"user_approved\":false,"
             "\"bad_signature_error\":\"invalid_grant\",\"token_ttl_s\":1,"
             "\"instance_url\":\"https://acme.my.salesforce.com\"}}}",
             pg_t_src("tests/data/keys/sf-oauth.crt"));
    assert_int_equal(pg_t_sim_start(&p, cfg), 0);
    char url[256];
    snprintf(url, sizeof url, "%s/services/oauth2/token", p.url);
    char *c = claims(CLIENT_ID, USERNAME, LOGIN_AUD, now_s() + 60);
    char *jwt = make_jwt("{\"alg\":\"RS256\"}", c, "tests/data/keys/sf-oauth.key");
    char body[4096];
    snprintf(body, sizeof body,
             "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s",
             jwt);
    json_t *j;
    expect_oauth_error(call("POST", url, FORM, body, &j, NULL, NULL, 0), &j, "invalid_grant",
                       "user hasn't approved this consumer");
    free(jwt);
    jwt = make_jwt("{\"alg\":\"RS256\"}", c, "tests/data/keys/sf-events.key");
    snprintf(body, sizeof body,
             "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s",
             jwt);
    expect_oauth_error(call("POST", url, FORM, body, &j, NULL, NULL, 0), &j, "invalid_grant",
                       "invalid assertion");
    free(jwt);
    free(c);
    /* token_ttl_s = 1: a minted token works, then expires */
    snprintf(url, sizeof url, "%s/_sim/tokens", p.url);
    assert_int_equal(call("POST", url, NULL, NULL, &j, NULL, NULL, 0), 201);
    assert_string_equal(json_string_value(json_object_get(j, "instance_url")),
                        "https://acme.my.salesforce.com");
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s",
             json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    const char *auth[] = {hdr, NULL};
    snprintf(url, sizeof url, "%s" V "/sobjects/Contact/" JANE, p.url);
    assert_int_equal(call("GET", url, auth, NULL, NULL, NULL, NULL, 0), 404); /* no seed */
    pg_sleep_ms(1100);
    assert_int_equal(call("GET", url, auth, NULL, &j, NULL, NULL, 0), 401);
    json_decref(j);
    assert_int_equal(pg_t_proc_stop(&p), 0);
    pg_t_proc_destroy(&p);
}

/* ---- sessions ---- */

static void test_bearer_required(void **st)
{
    json_t *j;
    char hv[128];
    const char *none[] = {"Authorization: Bearer 00D5g000004XyZ1!AQnotatoken", NULL};
    const char *basic[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};
    long s = call("GET", sf(V "/sobjects/Contact/" JANE), NULL, NULL, &j, "Sforce-Limit-Info", hv,
                  sizeof hv);
    expect_sf_error(s, &j, 401, "INVALID_SESSION_ID");
    assert_string_equal(err_msg(j), "Session expired or invalid");
    assert_string_equal(hv, ""); /* refused before it counts */
    json_decref(j);
    expect_sf_error(get(V "/query?q=SELECT+Id+FROM+Contact", none, &j), &j, 401,
                    "INVALID_SESSION_ID");
    json_decref(j);
    expect_sf_error(get(V "/sobjects/Contact/" JANE, basic, &j), &j, 401, "INVALID_SESSION_ID");
    json_decref(j);
    /* the versions list needs no session and does not count */
    assert_int_equal(get("/services/data/", NULL, NULL), 200);
    /* with the session: the first counted call */
    assert_int_equal(call("GET", sf(V "/sobjects/Contact/" JANE), AUTH, NULL, NULL,
                          "Sforce-Limit-Info", hv, sizeof hv),
                     200);
    assert_string_equal(hv, "api-usage=1/100000");
    /* "Bearer" is case-insensitive; the token is not */
    char lower[600];
    snprintf(lower, sizeof lower, "Authorization: bearer %s",
             g_bearer + strlen("Authorization: Bearer "));
    const char *lo[] = {lower, NULL};
    assert_int_equal(get(V "/sobjects/Contact/" JANE, lo, NULL), 200);
    /* a reset keeps sessions; expiring them does not */
    assert_int_equal(call("POST", sf("/_sim/reset"), NULL, "", NULL, NULL, NULL, 0), 200);
    assert_int_equal(get(V "/sobjects/Contact/" JANE, AUTH, NULL), 200);
    assert_true(oauth_state("active_tokens") >= 1);
    assert_int_equal(call("POST", sf("/_sim/tokens/expire"), NULL, "", &j, NULL, NULL, 0), 200);
    assert_true(json_integer_value(json_object_get(j, "expired")) >= 1);
    json_decref(j);
    assert_int_equal(oauth_state("active_tokens"), 0);
    expect_sf_error(get(V "/sobjects/Contact/" JANE, AUTH, &j), &j, 401, "INVALID_SESSION_ID");
    json_decref(j);
    /* a new grant works again */
    assert_int_equal(grant(g_bearer, sizeof g_bearer), 0);
    assert_int_equal(get(V "/sobjects/Contact/" JANE, AUTH, NULL), 200);
    assert_int_equal(oauth_state("grants"), 1);
    assert_int_equal(oauth_state("active_tokens"), 1);
}

/* ---- sObject reads ---- */

static void test_get_by_id(void **st)
{
    json_t *j;
    assert_int_equal(get(V "/sobjects/Contact/" JANE, AUTH, &j), 200);
    json_t *attr = json_object_get(j, "attributes");
    assert_string_equal(json_string_value(json_object_get(attr, "type")), "Contact");
    assert_string_equal(json_string_value(json_object_get(attr, "url")),
                        V "/sobjects/Contact/" JANE);
    assert_string_equal(json_string_value(json_object_get(j, "Id")), JANE);
    assert_string_equal(json_string_value(json_object_get(j, "Name")), "Jane Doe");
    assert_string_equal(json_string_value(json_object_get(j, "Loyalty_Id__c")), "LY-000123");
    assert_string_equal(json_string_value(json_object_get(j, "Loyalty_Card__c")),
                        "7710000000123014");
    assert_string_equal(json_string_value(json_object_get(j, "Loyalty_Tier__c")), "Gold");
    assert_true(json_is_real(json_object_get(j, "Loyalty_Points__c"))); /* 5400.0 */
    assert_true(json_real_value(json_object_get(j, "Loyalty_Points__c")) == 5400.0);
    assert_string_equal(json_string_value(json_object_get(j, "SystemModstamp")),
                        "2026-03-02T14:05:11.000+0000");
    assert_true(json_is_null(json_object_get(j, "Phone"))); /* every field, null when empty */
    json_decref(j);
    /* 15-char id: same record, 18-char url */
    assert_int_equal(
        get(V "/sobjects/Contact/0035g00000K1tbP?fields=FirstName,loyalty_tier__c", AUTH, &j), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "attributes"), "url")),
                        V "/sobjects/Contact/" JANE);
    assert_string_equal(json_string_value(json_object_get(j, "Loyalty_Tier__c")), "Gold");
    assert_string_equal(json_string_value(json_object_get(j, "Id")), JANE);
    assert_null(json_object_get(j, "Email"));
    assert_int_equal(json_object_size(j), 4);
    json_decref(j);
    /* an unknown field */
    expect_sf_error(get(V "/sobjects/Contact/" JANE "?fields=FirstName,Shoe_Size__c", AUTH, &j), &j,
                    400, "INVALID_FIELD");
    assert_non_null(strstr(err_msg(j), "No such column 'Shoe_Size__c' on entity 'Contact'"));
    json_decref(j);
    /* well-formed id of no record; 15-char ids are case-sensitive; not an id at all */
    expect_sf_error(get(V "/sobjects/Contact/0035g00000ZZZZZAA5", AUTH, &j), &j, 404, "NOT_FOUND");
    assert_string_equal(err_msg(j), "The requested resource does not exist");
    json_decref(j);
    expect_sf_error(get(V "/sobjects/Contact/0035g00000k1tbp", AUTH, &j), &j, 404, "NOT_FOUND");
    json_decref(j);
    expect_sf_error(get(V "/sobjects/Contact/0035g00000K1tbPAAA", AUTH, &j), &j, 404, "NOT_FOUND");
    json_decref(j);
    expect_sf_error(get(V "/sobjects/Contact/abc", AUTH, &j), &j, 404, "NOT_FOUND");
    assert_string_equal(err_msg(j),
                        "Provided external ID field does not exist or is not accessible: abc");
    json_decref(j);
    /* versions outside 31.0..66.0, other objects */
    expect_sf_error(get("/services/data/v67.0/sobjects/Contact/" JANE, AUTH, &j), &j, 404,
                    "NOT_FOUND");
    json_decref(j);
    expect_sf_error(get("/services/data/v30.0/sobjects/Contact/" JANE, AUTH, &j), &j, 404,
                    "NOT_FOUND");
    json_decref(j);
    assert_int_equal(get("/services/data/v62.0/sobjects/Contact/" JANE, AUTH, &j), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "attributes"), "url")),
                        "/services/data/v62.0/sobjects/Contact/" JANE);
    json_decref(j);
    expect_sf_error(get(V "/sobjects/Account/0015g00000ZkM3hAAF", AUTH, &j), &j, 404, "NOT_FOUND");
    json_decref(j);
}

static void test_get_by_external_id(void **st)
{
    json_t *j;
    assert_int_equal(get(V "/sobjects/Contact/Loyalty_Id__c/LY-000123", AUTH, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "Id")), JANE);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "attributes"), "url")),
                        V "/sobjects/Contact/" JANE);
    json_decref(j);
    /* text external ids match case-insensitively; ?fields= applies */
    assert_int_equal(get(V "/sobjects/Contact/Loyalty_Id__c/ly-000124?fields=Email", AUTH, &j),
                     200);
    assert_string_equal(json_string_value(json_object_get(j, "Email")), "Zoe.Nguyen@Example.com");
    assert_string_equal(json_string_value(json_object_get(j, "Id")), ZOE);
    json_decref(j);
    assert_int_equal(get(V "/sobjects/Contact/Loyalty_Card__c/7710000000124020", AUTH, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "Id")), ZOE);
    json_decref(j);
    expect_sf_error(get(V "/sobjects/Contact/Loyalty_Id__c/LY-999999", AUTH, &j), &j, 404,
                    "NOT_FOUND");
    assert_string_equal(err_msg(j), "The requested resource does not exist");
    json_decref(j);
    /* a field that is not an external id */
    expect_sf_error(get(V "/sobjects/Contact/Email/jane.doe@example.com", AUTH, &j), &j, 404,
                    "NOT_FOUND");
    assert_string_equal(err_msg(j),
                        "Provided external ID field does not exist or is not accessible: Email");
    json_decref(j);
    /* two records with one value: 300 with their URLs */
    assert_int_equal(call("PATCH", sf("/_sim/records/Contact/" ZOE), JSON_HDR,
                          "{\"Loyalty_Id__c\":\"LY-000123\"}", NULL, NULL, NULL, 0),
                     200);
    assert_int_equal(get(V "/sobjects/Contact/Loyalty_Id__c/LY-000123", AUTH, &j), 300);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 2);
    assert_string_equal(json_string_value(json_array_get(j, 0)), V "/sobjects/Contact/" JANE);
    assert_string_equal(json_string_value(json_array_get(j, 1)), V "/sobjects/Contact/" ZOE);
    json_decref(j);
    /* a field the describe does not have cannot be patched in */
    assert_int_equal(call("PATCH", sf("/_sim/records/Contact/" ZOE), JSON_HDR,
                          "{\"Shoe_Size__c\":42}", NULL, NULL, NULL, 0),
                     400);
    /* a reset restores the seed: one record with that value again, and Zoe's own found again
     * (lookups by external id use an index that every change to the Contacts must rebuild) */
    assert_int_equal(call("POST", sf("/_sim/reset"), NULL, "", NULL, NULL, NULL, 0), 200);
    assert_int_equal(get(V "/sobjects/Contact/Loyalty_Id__c/LY-000123", AUTH, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "Id")), JANE);
    json_decref(j);
}

/* ---- SOQL ---- */

static json_t *soql(const char *q, long want)
{
    char *e = curl_easy_escape(NULL, q, 0);
    char path[4096];
    snprintf(path, sizeof path, V "/query?q=%s", e);
    curl_free(e);
    json_t *j = NULL;
    long st = get(path, AUTH, &j);
    if (st != want)
        fprintf(stderr, "query %s -> %ld %s\n", q, st, j ? json_dumps(j, 0) : "");
    assert_int_equal(st, want);
    return j;
}

static int total(json_t *j)
{
    return (int)json_integer_value(json_object_get(j, "totalSize"));
}

static const char *rec_str(json_t *j, size_t i, const char *f)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(j, "records"), i), f));
}

static void test_query_subset(void **st)
{
    json_t *j = soql("SELECT Id, FirstName, Loyalty_Tier__c FROM Contact WHERE Loyalty_Id__c = "
                     "'LY-000123'",
                     200);
    assert_int_equal(total(j), 1);
    assert_true(json_is_true(json_object_get(j, "done")));
    json_t *r = json_array_get(json_object_get(j, "records"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "attributes"), "type")), "Contact");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "attributes"), "url")),
                        V "/sobjects/Contact/" JANE);
    assert_int_equal(json_object_size(r), 4); /* attributes + the three selected */
    assert_string_equal(rec_str(j, 0, "FirstName"), "Jane");
    json_decref(j);
    /* keywords and field names in any case; text '=' ignores case, accents included */
    j = soql("select id, email from CONTACT where EMAIL = 'ZOE.NGUYEN@EXAMPLE.COM'", 200);
    assert_int_equal(total(j), 1);
    assert_string_equal(rec_str(j, 0, "Email"), "Zoe.Nguyen@Example.com");
    assert_string_equal(rec_str(j, 0, "Id"), ZOE);
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE FirstName = 'ZOË'", 200);
    assert_int_equal(total(j), 1);
    json_decref(j);
    /* \uXXXX, phone, card, OR, AND, parentheses, LIMIT, Id by 15 chars */
    j = soql("SELECT Id FROM Contact WHERE FirstName = 'Zo\\u00eb'", 200);
    assert_int_equal(total(j), 1);
    json_decref(j);
    j = soql("SELECT Id, Phone_E164__c FROM Contact WHERE Phone_E164__c = '+14155550142' OR "
             "Loyalty_Card__c = '7710000000125035' OR Email = 'nobody@example.com'",
             200);
    assert_int_equal(total(j), 2);
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE (LastName = 'Doe' OR LastName = 'Nguyen') AND "
             "Loyalty_Tier__c = 'gold'",
             200);
    assert_int_equal(total(j), 1);
    assert_string_equal(rec_str(j, 0, "Id"), JANE);
    json_decref(j);
    j = soql("SELECT Id FROM Contact LIMIT 7", 200);
    assert_int_equal(total(j), 7);
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE Loyalty_Points__c = 5400", 200);
    assert_int_equal(total(j), 1);
    json_decref(j);
    j = soql("SELECT Name FROM Contact WHERE Id = '0035g00000K1tbP' AND Email != null", 400);
    json_decref(j); /* != is valid SOQL the simulator does not implement */
    j = soql("SELECT Name FROM Contact WHERE Id = '0035g00000K1tbP'", 200);
    assert_string_equal(rec_str(j, 0, "Name"), "Jane Doe");
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE Email = null LIMIT 1", 200);
    assert_int_equal(total(j), 1);
    json_decref(j);

    /* escapes: a quote, a backslash, a newline, an OR inside a literal stays a literal */
    assert_int_equal(call("PATCH", sf("/_sim/records/Contact/" JANE), JSON_HDR,
                          "{\"LastName\":\"O'Brien\",\"FirstName\":\"back\\\\slash\","
                          "\"Preferences__c\":\"a\\nb\\\"c\"}",
                          NULL, NULL, NULL, 0),
                     200);
    j = soql("SELECT Id, LastName FROM Contact WHERE LastName = 'O\\'Brien'", 200);
    assert_int_equal(total(j), 1);
    assert_string_equal(rec_str(j, 0, "LastName"), "O'Brien");
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE FirstName = 'back\\\\slash'", 200);
    assert_int_equal(total(j), 1);
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE Preferences__c = 'a\\nb\\\"c'", 200);
    assert_int_equal(total(j), 1);
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE Loyalty_Id__c = 'x\\' OR Loyalty_Id__c = \\'LY-000123'",
             200);
    assert_int_equal(total(j), 0);
    json_decref(j);
    j = soql("SELECT Id FROM Contact WHERE LastName = 'O\\'Brien\\' OR LastName = \\'Nguyen'", 200);
    assert_int_equal(total(j), 0);
    json_decref(j);
}

static void expect_query_error(const char *q, const char *code, const char *needle)
{
    json_t *j = soql(q, 400);
    expect_sf_error(400, &j, 400, code);
    if (needle && !strstr(err_msg(j), needle))
        fail_msg("%s: message %s lacks %s", q, err_msg(j), needle);
    json_decref(j);
}

static void test_query_errors(void **st)
{
    expect_query_error("SELECT Id FROM Contact WHERE LastName = 'Doe' AND Email = 'x' OR "
                       "Email = 'y'",
                       "MALFORMED_QUERY", "unexpected token: 'OR'");
    expect_query_error("SELECT Id FROM Contact WHERE LastName = 'Doe' AND Email = 'x' OR "
                       "Email = 'y'",
                       "MALFORMED_QUERY", "ERROR at Row:1:Column:63");
    expect_query_error("SELECT Id Contact", "MALFORMED_QUERY", "unexpected token: 'Contact'");
    expect_query_error("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY",
                       "unexpected token: <EOF>");
    expect_query_error("SELECT Id FROM Contact WHERE LastName LIKE 'Do%'", "MALFORMED_QUERY",
                       "'LIKE'");
    expect_query_error("SELECT Id FROM Contact WHERE LastName = \"Doe\"", "MALFORMED_QUERY", NULL);
    expect_query_error("SELECT Id FROM Contact WHERE LastName = 'Doe", "MALFORMED_QUERY", NULL);
    expect_query_error("SELECT Id FROM Contact WHERE LastName = 'D\\xoe'", "MALFORMED_QUERY",
                       "Illegal character sequence '\\x'");
    expect_query_error("SELECT Id FROM Contact WHERE LastName = 'D\\%'", "MALFORMED_QUERY", NULL);
    expect_query_error("SELECT Id FROM Contact WHERE LastName = 'Doe'; DELETE", "MALFORMED_QUERY",
                       NULL);
    expect_query_error("SELECT Id FROM Contact ORDER BY LastName", "MALFORMED_QUERY", "'ORDER'");
    expect_query_error("SELECT Id FROM Contact LIMIT -1", "MALFORMED_QUERY", NULL);
    expect_query_error("SELECT COUNT() FROM Contact", "MALFORMED_QUERY", NULL);
    expect_query_error("SELECT * FROM Contact", "MALFORMED_QUERY", NULL);
    expect_query_error("SELECT Id, Id FROM Contact", "MALFORMED_QUERY",
                       "duplicate field selected: Id");
    expect_query_error("  ", "MALFORMED_QUERY", NULL);
    expect_query_error("SELECT Id, Shoe_Size__c FROM Contact", "INVALID_FIELD",
                       "No such column 'Shoe_Size__c' on entity 'Contact'");
    expect_query_error("SELECT Id FROM Contact WHERE Shoe_Size__c = '42'", "INVALID_FIELD", NULL);
    expect_query_error("SELECT Id FROM Account", "INVALID_TYPE",
                       "sObject type 'Account' is not supported");
    expect_query_error("SELECT Id FROM Contact WHERE Email = 42", "INVALID_FIELD",
                       "must be of type string and should be enclosed in quotes");
    expect_query_error("SELECT Id FROM Contact WHERE Loyalty_Points__c = '5400'", "INVALID_FIELD",
                       "must be of type double and should not be enclosed in quotes");
    expect_query_error("SELECT Id FROM Contact WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR",
                       "invalid ID field: abc");
    /* no q at all */
    json_t *j;
    expect_sf_error(get(V "/query", AUTH, &j), &j, 400, "MALFORMED_QUERY");
    json_decref(j);
    /* query is GET only */
    assert_int_equal(call("POST", sf(V "/query"), AUTH, "", NULL, NULL, NULL, 0), 405);
}

/* ---- limits and faults ---- */

static void test_limit_info_and_exceeded(void **st)
{
    struct pg_t_proc p;
    char *cfg = sim_config(3);
    assert_int_equal(pg_t_sim_start(&p, cfg), 0);
    free(cfg);
    struct pg_t_proc saved = g_sim;
    g_sim = p; /* sf() and grant() talk to this one */
    char bearer[512];
    const char *auth[] = {bearer, NULL};
    assert_int_equal(grant(bearer, sizeof bearer), 0);
    char hv[128], want[64];
    json_t *j;
    const char *paths[] = {V "/sobjects/Contact/" JANE, V "/query?q=SELECT+Id+FROM+Contact",
                           V "/sobjects/Contact/Loyalty_Id__c/LY-000124"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            call("GET", sf(paths[i]), auth, NULL, NULL, "Sforce-Limit-Info", hv, sizeof hv), 200);
        snprintf(want, sizeof want, "api-usage=%d/3", i + 1);
        assert_string_equal(hv, want);
        /* neither the token endpoint nor a refused session counts */
        assert_int_equal(grant(bearer, sizeof bearer), 0);
        assert_int_equal(call("GET", sf(paths[i]), NULL, NULL, NULL, NULL, NULL, 0), 401);
    }
    long s = call("GET", sf(paths[0]), auth, NULL, &j, "Sforce-Limit-Info", hv, sizeof hv);
    expect_sf_error(s, &j, 403, "REQUEST_LIMIT_EXCEEDED");
    assert_string_equal(err_msg(j), "TotalRequests Limit exceeded.");
    assert_string_equal(hv, "api-usage=4/3");
    json_decref(j);
    s = call("GET", sf(paths[1]), auth, NULL, &j, NULL, NULL, 0);
    expect_sf_error(s, &j, 403, "REQUEST_LIMIT_EXCEEDED");
    json_decref(j);
    g_sim = saved;
    assert_int_equal(pg_t_proc_stop(&p), 0);
    pg_t_proc_destroy(&p);
}

static void test_faults_apply(void **st)
{
    assert_int_equal(call("POST", sf("/_sim/faults"), JSON_HDR,
                          "{\"latency_ms\":400,\"count\":1,\"path\":\"" V "/query\"}", NULL, NULL,
                          NULL, 0),
                     201);
    int64_t t0 = pg_now_ms();
    json_t *j = soql("SELECT Id FROM Contact WHERE Loyalty_Id__c = 'LY-000123'", 200);
    assert_true(pg_now_ms() - t0 >= 400);
    assert_int_equal(total(j), 1);
    json_decref(j);
    assert_int_equal(call("POST", sf("/_sim/faults"), JSON_HDR,
                          "{\"status\":503,\"count\":1,\"path\":\"/services/oauth2/token\"}", NULL,
                          NULL, NULL, 0),
                     201);
    char hdr[512];
    assert_int_not_equal(grant(hdr, sizeof hdr), 0); /* 503 */
    assert_int_equal(grant(hdr, sizeof hdr), 0);
    assert_int_equal(call("POST", sf("/_sim/faults"), JSON_HDR,
                          "{\"status\":500,\"count\":1,\"path\":\"" V "/sobjects\"}", NULL, NULL,
                          NULL, 0),
                     201);
    assert_int_equal(get(V "/sobjects/Contact/" JANE, AUTH, &j), 500);
    expect_sf_error(500, &j, 500, "UNKNOWN_EXCEPTION");
    json_decref(j);
    assert_int_equal(get(V "/sobjects/Contact/" JANE, AUTH, NULL), 200);
    /* the token endpoint's requests are in the log with their form body */
    json_t *log = NULL;
    assert_int_equal(get("/_sim/log", NULL, &log), 200);
    int seen = 0;
    size_t i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "path")), "/services/oauth2/token") == 0)
            seen++;
    }
    assert_true(seen >= 2);
    json_decref(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_grant_success),
        cmocka_unit_test(test_token_invalid_cases),
        cmocka_unit_test(test_token_unapproved_user_and_ttl),
        cmocka_unit_test_setup(test_bearer_required, reset_and_grant),
        cmocka_unit_test_setup(test_get_by_id, reset_and_grant),
        cmocka_unit_test_setup(test_get_by_external_id, reset_and_grant),
        cmocka_unit_test_setup(test_query_subset, reset_and_grant),
        cmocka_unit_test_setup(test_query_errors, reset_and_grant),
        cmocka_unit_test(test_limit_info_and_exceeded),
        cmocka_unit_test_setup(test_faults_apply, reset_and_grant),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
