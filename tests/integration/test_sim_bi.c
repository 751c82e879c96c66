/*
 * posgate-sim, MICROS side: the Reporting & Analytics BI API (sim/README.md "MICROS: BI API").
 * Signs in with the OIDC authorization-code + PKCE flow (the challenge computed here with
 * OpenSSL), then checks getGuestChecks' request rules, determinism, that every generated check
 * adds up to the cent, that the daily totals reconcile with the checks, changedSinceUTC and late
 * uploads, and the rate limit.
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
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tests/support/harness.h"

#define CID "UE9TR0FURS5URVNULk9OTFkuY2xpZW50"
#define REDIRECT "apiaccount%%3A%%2F%%2Fcallback" /* in printf formats */

static struct pg_t_proc g_sim;
static char g_token[4096];
static const char *const LOCS[] = {"1234", "1235", "0042"};
static const char *const DAYS[] = {"2026-11-19", "2026-11-20"};

static const char *mi(const struct pg_t_proc *p, const char *path)
{
    static char u[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(u[k], sizeof u[k], "%s%s", p->micros_url, path);
    return u[k];
}

static long http(const char *method,
                 const char *url,
                 const char *const *hdrs,
                 const char *body,
                 json_t **out,
                 struct pg_t_resp *keep)
{
    struct pg_t_resp r;
    assert_int_equal(pg_t_http(method, url, hdrs, body, body ? strlen(body) : 0, 20000, &r), 0);
    long st = r.status;
    if (out)
        *out = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    if (keep)
        *keep = r;
    else
        pg_t_resp_free(&r);
    return st;
}

static void b64url(const unsigned char *p, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
}

static void pkce(char *verifier, char *challenge)
{
    unsigned char rnd[32], dg[32];
    unsigned int dl = 0;
    assert_int_equal(RAND_bytes(rnd, sizeof rnd), 1);
    b64url(rnd, sizeof rnd, verifier);
    assert_int_equal(EVP_Digest(verifier, strlen(verifier), dg, &dl, EVP_sha256(), NULL), 1);
    b64url(dg, dl, challenge);
}

/* authorize + signin: returns the HTTP status of signin and the code in code. */
static long
authorize_signin(const struct pg_t_proc *p, const char *challenge, const char *pw, char *code)
{
    char url[1024], cookie[256] = "Cookie: ", form[256];
    snprintf(url, sizeof url,
             "/oidc-provider/v1/oauth2/authorize?response_type=code&client_id=" CID
             "&scope=openid&redirect_uri=" REDIRECT "&code_challenge=%s"
             "&code_challenge_method=S256",
             challenge);
    struct pg_t_resp r;
    assert_int_equal(http("GET", mi(p, url), NULL, NULL, NULL, &r), 200);
    char sc[256];
    assert_int_equal(pg_t_resp_header(&r, "Set-Cookie", sc, sizeof sc), 0);
    pg_t_resp_free(&r);
    sc[strcspn(sc, ";")] = '\0';
    strncat(cookie, sc, sizeof cookie - strlen(cookie) - 1);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", cookie, NULL};
    snprintf(form, sizeof form, "username=posgate-api&password=%s&orgname=ACME", pw);
    json_t *j = NULL;
    long st = http("POST", mi(p, "/oidc-provider/v1/oauth2/signin"), h, form, &j, NULL);
    code[0] = '\0';
    if (st == 200) {
        assert_string_equal(json_string_value(json_object_get(j, "nextOp")), "redirect");
        const char *ru = json_string_value(json_object_get(j, "redirectUrl"));
        assert_non_null(ru);
        assert_true(strncmp(ru, "apiaccount://callback?code=", 27) == 0);
        snprintf(code, 128, "%s", ru + 27);
    } else {
        assert_int_equal(st, 401);
        assert_string_equal(json_string_value(json_object_get(j, "message")),
                            "invalid.credentials");
        assert_string_equal(json_string_value(json_object_get(j, "code")),
                            "AUTHENTICATION_INVALID");
    }
    json_decref(j);
    return st;
}

static long token(const struct pg_t_proc *p, const char *code, const char *verifier, json_t **out)
{
    char form[1024];
    snprintf(form, sizeof form,
             "grant_type=authorization_code&client_id=" CID "&code=%s&code_verifier=%s"
             "&scope=openid&redirect_uri=" REDIRECT,
             code, verifier);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    return http("POST", mi(p, "/oidc-provider/v1/oauth2/token"), h, form, out, NULL);
}

static void sign_in(const struct pg_t_proc *p, char *tok, size_t toksz)
{
    char v[128], ch[128], code[128];
    pkce(v, ch);
    assert_int_equal(authorize_signin(p, ch, "posgate-bi-demo", code), 200);
    json_t *j = NULL;
    assert_int_equal(token(p, code, v, &j), 200);
    const char *idt = json_string_value(json_object_get(j, "id_token"));
    assert_non_null(idt);
    snprintf(tok, toksz, "Authorization: Bearer %s", idt);
    json_decref(j);
}

/* POST /bi/v1/ACME/op with body; returns the status, *out the parsed answer. */
static long
bi(const struct pg_t_proc *p, const char *tok, const char *op, const char *body, json_t **out)
{
    char path[256];
    snprintf(path, sizeof path, "/bi/v1/ACME/%s", op);
    const char *h[] = {"Content-Type: application/json", tok, NULL};
    return http("POST", mi(p, path), h, body, out, NULL);
}

static json_t *checks(const char *fmt, ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    json_t *j = NULL;
    assert_int_equal(bi(&g_sim, g_token, "getGuestChecks", body, &j), 200);
    assert_non_null(json_object_get(j, "curUTC"));
    assert_true(json_is_array(json_object_get(j, "guestChecks")));
    return j;
}

/* Amounts have at most 2 decimals: convert to cents and insist the conversion is exact. */
static long long cents(json_t *v)
{
    assert_true(json_is_number(v));
    double x = json_number_value(v) * 100.0;
    long long c = (long long)(x < 0 ? x - 0.5 : x + 0.5);
    assert_true(x - (double)c < 1e-6 && (double)c - x < 1e-6);
    return c;
}

/* ---- setup ---- */

static int start(struct pg_t_proc *p, int rate)
{
    char cfg[4096], mseed[1024], sseed[1024];
    snprintf(mseed, sizeof mseed, "%s", pg_t_src("tests/data/micros_seed.json"));
    snprintf(sseed, sizeof sseed, "%s", pg_t_src("tests/data/salesforce_seed.json"));
    snprintf(cfg, sizeof cfg,
             "{\"log_level\":\"warn\",\"salesforce\":{\"port\":0,\"seed\":\"%s\"},"
             "\"micros\":{\"port\":0,\"seed\":\"%s\",\"bi\":{\"rate_limit_per_min\":%d,"
             "\"token_ttl_s\":3600,\"generate\":{\"days\":[\"2026-11-19\",\"2026-11-20\"],"
             "\"checks_per_day\":80,\"seed\":42,\"late_per_day\":4}}}}",
             sseed, mseed, rate);
    return pg_t_sim_start(p, cfg) == 0 && p->micros_url[0] ? 0 : -1;
}

static int group_setup(void **state)
{
    (void)state;
    return start(&g_sim, 0);
}

static int group_teardown(void **state)
{
    (void)state;
    pg_t_proc_destroy(&g_sim);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    if (http("POST", mi(&g_sim, "/_sim/reset"), NULL, "", NULL, NULL) != 200)
        return -1;
    if (!g_token[0])
        sign_in(&g_sim, g_token, sizeof g_token);
    return 0;
}

/* ---- tests ---- */

static void test_signin(void **state)
{
    (void)state;
    char v[128], ch[128], code[128], tok[4096];
    json_t *j = NULL;
    /* wrong password */
    pkce(v, ch);
    assert_int_equal(authorize_signin(&g_sim, ch, "nope", code), 401);
    /* signin without the authorize session cookie */
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    assert_int_equal(http("POST", mi(&g_sim, "/oidc-provider/v1/oauth2/signin"), h,
                          "username=posgate-api&password=posgate-bi-demo&orgname=ACME", NULL, NULL),
                     401);
    /* plain PKCE is refused at authorize */
    assert_int_equal(
        http("GET",
             mi(&g_sim, "/oidc-provider/v1/oauth2/authorize?response_type=code&"
                        "client_id=" CID "&scope=openid&redirect_uri=apiaccount%3A%2F%2Fcallback"
                        "&code_challenge=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq"
                        "&code_challenge_method=plain"),
             NULL, NULL, NULL, NULL),
        400);
    /* wrong verifier: invalid_grant, and the code is spent */
    assert_int_equal(authorize_signin(&g_sim, ch, "posgate-bi-demo", code), 200);
    char other[128], och[128];
    pkce(other, och);
    assert_int_equal(token(&g_sim, code, other, &j), 400);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid_grant");
    json_decref(j);
    assert_int_equal(token(&g_sim, code, v, &j), 400);
    json_decref(j);
    /* success: id_token with exp = iat + token_ttl_s, usable as bearer */
    assert_int_equal(authorize_signin(&g_sim, ch, "posgate-bi-demo", code), 200);
    assert_int_equal(token(&g_sim, code, v, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 3600);
    assert_non_null(json_object_get(j, "refresh_token"));
    snprintf(tok, sizeof tok, "Authorization: Bearer %s",
             json_string_value(json_object_get(j, "id_token")));
    char at[1024];
    snprintf(at, sizeof at, "Authorization: Bearer %s",
             json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    const char *body = "{\"applicationName\":\"t\",\"locRef\":\"1234\"}";
    assert_int_equal(bi(&g_sim, tok, "getLatestBusDt", body, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "latestBusDt")), "2026-11-20");
    json_decref(j);
    assert_int_equal(bi(&g_sim, tok, "getLatestBusinessDate", body, NULL), 200);
    /* the access_token is not the bearer the BI API takes; nor is nothing */
    assert_int_equal(bi(&g_sim, at, "getLatestBusDt", body, NULL), 401);
    assert_int_equal(bi(&g_sim, "X-No: auth", "getLatestBusDt", body, &j), 401);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 401);
    json_decref(j);
}

static void test_request_rules(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\","
        "\"clsdBusDt\":\"2026-11-20\"}",
        "{\"applicationName\":\"t\",\"locRef\":\"1234\"}",
        "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\","
        "\"changedSinceUTC\":\"2026-11-20T10:00:00Z\"}",
        "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\","
        "\"changedSinceUTC\":\"2026-11-20 10:00:00\"}",
        "{\"applicationName\":\"t\",\"busDt\":\"2026-11-20\"}",
        "{\"applicationName\":\"t\",\"locRef\":1234,\"busDt\":\"2026-11-20\"}",
        "{\"locRef\":\"1234\",\"busDt\":\"2026-11-20\"}",
        "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-31\"}",
        "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDate\":\"2026-11-20\"}",
        "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\","
        "\"searchCriteria\":\"where equals(guestChecks.rvcNum,5)\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = NULL;
        long st = bi(&g_sim, g_token, "getGuestChecks", bad[i], &j);
        if (st != 400)
            fail_msg("body %zu: status %ld", i, st);
        assert_int_equal(json_integer_value(json_object_get(j, "status")), 400);
        assert_string_equal(json_string_value(json_object_get(j, "title")), "Bad Request");
        assert_non_null(json_string_value(json_object_get(j, "detail")));
        json_decref(j);
    }
    /* an unknown location, another org, another content type */
    assert_int_equal(bi(&g_sim, g_token, "getGuestChecks",
                        "{\"applicationName\":\"t\",\"locRef\":\"9999\",\"busDt\":\"2026-11-20\"}",
                        NULL),
                     403);
    const char *h[] = {"Content-Type: application/json", g_token, NULL};
    assert_int_equal(
        http("POST", mi(&g_sim, "/bi/v1/OTHER/getGuestChecks"), h,
             "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\"}", NULL,
             NULL),
        404);
    const char *h2[] = {"Content-Type: text/plain", g_token, NULL};
    assert_int_equal(
        http("POST", mi(&g_sim, "/bi/v1/ACME/getGuestChecks"), h2,
             "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\"}", NULL,
             NULL),
        415);
    /* no bearer */
    const char *h3[] = {"Content-Type: application/json", NULL};
    assert_int_equal(
        http("POST", mi(&g_sim, "/bi/v1/ACME/getGuestChecks"), h3,
             "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\"}", NULL,
             NULL),
        401);
    /* a well-formed changedSinceUTC and the filters are fine */
    json_t *j = checks("{\"applicationName\":\"t\",\"locRef\":\"0042\",\"opnBusDt\":\"2026-11-19\","
                       "\"changedSinceUTC\":\"2026-11-19T00:00:00\",\"rvcNum\":7,"
                       "\"clsdGuestChecksOnly\":true,\"include\":\"\"}");
    size_t i;
    json_t *c;
    assert_true(json_array_size(json_object_get(j, "guestChecks")) > 0);
    json_array_foreach(json_object_get(j, "guestChecks"), i, c)
    {
        assert_int_equal(json_integer_value(json_object_get(c, "rvcNum")), 7);
        assert_true(json_is_true(json_object_get(c, "clsdFlag")));
    }
    assert_string_equal(json_string_value(json_object_get(j, "locRef")), "0042");
    json_decref(j);
}

static void test_deterministic(void **state)
{
    (void)state;
    json_t *a = checks("{\"applicationName\":\"t\",\"locRef\":\"1235\",\"busDt\":\"2026-11-20\"}");
    json_t *b = checks("{\"applicationName\":\"t\",\"locRef\":\"1235\",\"busDt\":\"2026-11-20\"}");
    assert_true(json_array_size(json_object_get(a, "guestChecks")) > 50);
    assert_true(json_equal(json_object_get(a, "guestChecks"), json_object_get(b, "guestChecks")));
    json_decref(a);
    json_decref(b);
    /* a restarted simulator with the same seed serves the same day */
    struct pg_t_proc other;
    char tok[4096];
    assert_int_equal(start(&other, 0), 0);
    sign_in(&other, tok, sizeof tok);
    const char *body = "{\"applicationName\":\"t\",\"locRef\":\"1235\",\"busDt\":\"2026-11-20\"}";
    assert_int_equal(bi(&other, tok, "getGuestChecks", body, &b), 200);
    a = checks("%s", body);
    assert_true(json_equal(json_object_get(a, "guestChecks"), json_object_get(b, "guestChecks")));
    json_decref(a);
    json_decref(b);
    pg_t_proc_destroy(&other);
}

static int has(json_t *l, const char *k)
{
    return json_object_get(l, k) != NULL;
}

static void test_totals_add_up(void **state)
{
    (void)state;
    int seen[16] = {0};
    enum {
        S_COND,
        S_DSC,
        S_SVC,
        S_SPLIT_TENDER,
        S_VOID,
        S_RETURN,
        S_ERRCOR,
        S_MOVED,
        S_CANCEL,
        S_REOPEN,
        S_OPEN
    };
    for (size_t li = 0; li < 3; li++) {
        for (size_t di = 0; di < 2; di++) {
            json_t *j = checks("{\"applicationName\":\"t\",\"locRef\":\"%s\",\"busDt\":\"%s\"}",
                               LOCS[li], DAYS[di]);
            size_t i, k;
            json_t *c, *l, *t;
            long long day_agg = 0, day_net = 0;
            json_array_foreach(json_object_get(j, "guestChecks"), i, c)
            {
                long long shown = 0, pay = 0, tax = 0, dsc = 0, ntend = 0;
                json_array_foreach(json_object_get(c, "taxes"), k, t) tax +=
                    cents(json_object_get(t, "taxCollTtl"));
                json_array_foreach(json_object_get(c, "detailLines"), k, l)
                {
                    int typed = has(l, "menuItem") + has(l, "discount") + has(l, "serviceCharge") +
                                has(l, "tenderMedia") + has(l, "errorCorrect");
                    assert_int_equal(typed, 1);
                    long long dsp = cents(json_object_get(l, "dspTtl"));
                    long long agg = cents(json_object_get(l, "aggTtl"));
                    int dns = json_is_true(json_object_get(l, "doNotShowFlag"));
                    if (has(l, "tenderMedia")) {
                        ntend++;
                        if (!dns)
                            pay += dsp;
                        continue;
                    }
                    day_agg += agg;
                    if (!dns)
                        shown += dsp;
                    if (has(l, "discount")) {
                        assert_true(dsp < 0);
                        dsc += dsp;
                        seen[S_DSC]++;
                    }
                    if (has(l, "serviceCharge"))
                        seen[S_SVC]++;
                    if (!json_is_null(json_object_get(l, "parDtlId")))
                        seen[S_COND]++;
                    if (json_is_true(json_object_get(l, "vdFlag")))
                        seen[S_VOID]++;
                    if (json_is_true(json_object_get(l, "returnFlag")))
                        seen[S_RETURN]++;
                    if (has(l, "errorCorrect"))
                        seen[S_ERRCOR]++;
                    if (dns) {
                        seen[S_MOVED]++;
                        assert_true(agg != 0);
                    }
                }
                long long chk = cents(json_object_get(c, "chkTtl"));
                day_net += chk - tax;
                if (shown + tax != chk)
                    fail_msg("check %lld: items+discounts+svc %lld + tax %lld != chkTtl %lld",
                             (long long)json_integer_value(json_object_get(c, "guestCheckId")),
                             shown, tax, chk);
                assert_int_equal(pay, cents(json_object_get(c, "payTtl")));
                assert_int_equal(dsc, cents(json_object_get(c, "dscTtl")));
                assert_int_equal(tax, cents(json_object_get(c, "taxCollTtl")));
                if (json_is_true(json_object_get(c, "clsdFlag"))) {
                    assert_int_equal(pay, chk);
                    assert_true(json_is_null(json_object_get(c, "balDueTtl")));
                } else {
                    seen[S_OPEN]++;
                    assert_true(pay < chk);
                    assert_int_equal(cents(json_object_get(c, "balDueTtl")), chk - pay);
                    assert_true(json_is_null(json_object_get(c, "clsdBusDt")));
                }
                if (ntend > 1)
                    seen[S_SPLIT_TENDER]++;
                if (json_is_true(json_object_get(c, "cancelFlag")))
                    seen[S_CANCEL]++;
                if (!json_is_null(json_object_get(c, "reopnClsdChkClsdUTC")))
                    seen[S_REOPEN]++;
            }
            /* moved lines: sales aggregate once (agg on the original, 0 on the copy) */
            assert_int_equal(day_agg, day_net);
            json_decref(j);
        }
    }
    for (int s = 0; s <= S_OPEN; s++)
        if (!seen[s])
            fail_msg("generated data has no case %d", s);
}

static void test_daily_totals_reconcile(void **state)
{
    (void)state;
    for (size_t li = 0; li < 3; li++) {
        json_t *j = checks("{\"applicationName\":\"t\",\"locRef\":\"%s\",\"clsdBusDt\":\"%s\"}",
                           LOCS[li], DAYS[1]);
        long long n = 0, ttl = 0, rn[256] = {0}, rt[256] = {0};
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(j, "guestChecks"), i, c)
        {
            assert_true(json_is_true(json_object_get(c, "clsdFlag")));
            long long r = json_integer_value(json_object_get(c, "rvcNum"));
            n++;
            ttl += cents(json_object_get(c, "chkTtl"));
            rn[r % 256]++;
            rt[r % 256] += cents(json_object_get(c, "chkTtl"));
        }
        json_decref(j);
        char body[256];
        snprintf(body, sizeof body,
                 "{\"applicationName\":\"t\",\"locRef\":\"%s\",\"clsdBusDt\":\"%s\"}", LOCS[li],
                 DAYS[1]);
        assert_int_equal(bi(&g_sim, g_token, "getControlDailyTotals", body, &j), 200);
        long long cn = 0, ct = 0;
        json_t *r;
        json_array_foreach(json_object_get(j, "revenueCenters"), i, r)
        {
            long long num = json_integer_value(json_object_get(r, "rvcNum"));
            long long a = json_integer_value(json_object_get(r, "numClsdChks"));
            long long b = cents(json_object_get(r, "clsdChkTtl"));
            assert_int_equal(a, rn[num % 256]);
            assert_int_equal(b, rt[num % 256]);
            cn += a;
            ct += b;
        }
        assert_int_equal(cn, n);
        assert_int_equal(ct, ttl);
        json_decref(j);
        /* operations totals: closed totals agree, and net sales + svc + tax = all checks */
        snprintf(body, sizeof body,
                 "{\"applicationName\":\"t\",\"locRef\":\"%s\",\"busDt\":\"%s\"}", LOCS[li],
                 DAYS[1]);
        assert_int_equal(bi(&g_sim, g_token, "getOperationsDailyTotals", body, &j), 200);
        json_t *all = checks("%s", body);
        long long sum_all = 0, ops = 0, ops_clsd = 0;
        json_array_foreach(json_object_get(all, "guestChecks"), i, c) sum_all +=
            cents(json_object_get(c, "chkTtl"));
        json_array_foreach(json_object_get(j, "revenueCenters"), i, r)
        {
            ops += cents(json_object_get(r, "netSlsTtl")) + cents(json_object_get(r, "svcTtl")) +
                   cents(json_object_get(r, "taxCollTtl"));
            ops_clsd += cents(json_object_get(r, "chkClsdTtl"));
        }
        assert_int_equal(ops, sum_all);
        assert_int_equal(ops_clsd, ttl);
        json_decref(all);
        json_decref(j);
    }
}

static void test_changed_since_and_late_upload(void **state)
{
    (void)state;
    const char *base = "{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-19\"";
    json_t *all = checks("%s}", base);
    size_t n = json_array_size(json_object_get(all, "guestChecks"));
    assert_true(n > 10);
    /* a cursor in the middle of the day: exactly the checks updated at or after it */
    json_t *mid = json_array_get(json_object_get(all, "guestChecks"), n / 2);
    const char *cut = json_string_value(json_object_get(mid, "lastUpdatedUTC"));
    size_t want = 0, i;
    json_t *c;
    json_array_foreach(json_object_get(all, "guestChecks"), i, c) want +=
        strcmp(json_string_value(json_object_get(c, "lastUpdatedUTC")), cut) >= 0;
    json_t *d = checks("%s,\"changedSinceUTC\":\"%s\"}", base, cut);
    assert_int_equal(json_array_size(json_object_get(d, "guestChecks")), want);
    assert_true(want < n && want >= 1); /* inclusive: the check at the cursor is there */
    json_decref(d);
    /* nothing changed since curUTC */
    char cur[32];
    snprintf(cur, sizeof cur, "%s", json_string_value(json_object_get(all, "curUTC")));
    d = checks("%s,\"changedSinceUTC\":\"%s\"}", base, cur);
    assert_int_equal(json_array_size(json_object_get(d, "guestChecks")), 0);
    json_decref(d);
    /* state before */
    json_t *st = NULL;
    assert_int_equal(http("GET", mi(&g_sim, "/_sim/state"), NULL, NULL, &st, NULL), 200);
    json_t *bist = json_object_get(st, "bi");
    long long pending = json_integer_value(json_object_get(bist, "late_pending"));
    assert_int_equal(pending, 3 * 2 * 4);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(bist, "checks"), "1234"), "2026-11-19")),
                     (json_int_t)n);
    json_decref(st);
    /* two offline checks reach the cloud now */
    json_t *rel = NULL;
    assert_int_equal(http("POST", mi(&g_sim, "/_sim/bi/late-upload"), NULL,
                          "{\"locRef\":\"1234\",\"busDt\":\"2026-11-19\",\"count\":2}", &rel, NULL),
                     200);
    assert_int_equal(json_array_size(json_object_get(rel, "released")), 2);
    assert_int_equal(json_integer_value(json_object_get(rel, "late_pending")), 2);
    d = checks("%s,\"changedSinceUTC\":\"%s\"}", base, cur);
    assert_int_equal(json_array_size(json_object_get(d, "guestChecks")), 2);
    json_array_foreach(json_object_get(d, "guestChecks"), i, c)
    {
        assert_true(json_equal(json_object_get(c, "guestCheckId"),
                               json_array_get(json_object_get(rel, "released"), i)));
        /* old business date and open time, new lastUpdatedUTC */
        assert_string_equal(json_string_value(json_object_get(c, "opnBusDt")), "2026-11-19");
        assert_true(strcmp(json_string_value(json_object_get(c, "lastUpdatedUTC")), cur) >= 0);
        assert_true(strcmp(json_string_value(json_object_get(c, "opnUTC")), cur) < 0);
    }
    json_decref(d);
    d = checks("%s}", base);
    assert_int_equal(json_array_size(json_object_get(d, "guestChecks")), n + 2);
    json_decref(d);
    assert_int_equal(http("GET", mi(&g_sim, "/_sim/state"), NULL, NULL, &st, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "bi"), "late_pending")),
                     pending - 2);
    json_decref(st);
    json_decref(rel);
    json_decref(all);
    /* a reset hides them again */
    assert_int_equal(http("POST", mi(&g_sim, "/_sim/reset"), NULL, "", NULL, NULL), 200);
    d = checks("%s}", base);
    assert_int_equal(json_array_size(json_object_get(d, "guestChecks")), n);
    json_decref(d);
}

static void test_dimensions(void **state)
{
    (void)state;
    json_t *mi_dim = NULL, *tm = NULL, *all = NULL;
    const char *body = "{\"applicationName\":\"t\",\"locRef\":\"1234\"}";
    assert_int_equal(bi(&g_sim, g_token, "getMenuItemDimensions", body, &mi_dim), 200);
    assert_int_equal(bi(&g_sim, g_token, "getTenderMediaDimensions", body, &tm), 200);
    all = checks("{\"applicationName\":\"t\",\"locRef\":\"1234\",\"busDt\":\"2026-11-20\"}");
    size_t i, k, m;
    json_t *c, *l, *d;
    json_array_foreach(json_object_get(all, "guestChecks"), i, c)
    {
        json_array_foreach(json_object_get(c, "detailLines"), k, l)
        {
            json_t *num = json_object_get(json_object_get(l, "menuItem"), "miNum");
            json_t *arr = json_object_get(mi_dim, "menuItems");
            if (!num) {
                num = json_object_get(json_object_get(l, "tenderMedia"), "tmedNum");
                arr = json_object_get(tm, "tenderMedias");
            }
            if (!num)
                continue;
            int found = 0;
            json_array_foreach(arr, m, d) found |= json_equal(json_object_get(d, "num"), num);
            assert_true(found);
        }
    }
    json_decref(mi_dim);
    json_decref(tm);
    json_decref(all);
    static const char *const ops[] = {"getLocationDimensions", "getRevenueCenterDimensions",
                                      "getDiscountDimensions", "getServiceChargeDimensions",
                                      "getTaxDimensions"};
    for (i = 0; i < 5; i++)
        assert_int_equal(bi(&g_sim, g_token, ops[i], body, NULL), 200);
}

static void test_rate_limit(void **state)
{
    (void)state;
    struct pg_t_proc p;
    char tok[4096];
    assert_int_equal(start(&p, 3), 0);
    sign_in(&p, tok, sizeof tok);
    const char *body = "{\"applicationName\":\"t\",\"locRef\":\"1234\"}";
    for (int i = 0; i < 3; i++)
        assert_int_equal(bi(&p, tok, "getLatestBusDt", body, NULL), 200);
    struct pg_t_resp r;
    const char *h[] = {"Content-Type: application/json", tok, NULL};
    assert_int_equal(http("POST", mi(&p, "/bi/v1/ACME/getLatestBusDt"), h, body, NULL, &r), 429);
    char ra[32];
    assert_int_equal(pg_t_resp_header(&r, "Retry-After", ra, sizeof ra), 0);
    assert_true(atoi(ra) >= 1 && atoi(ra) <= 60);
    pg_t_resp_free(&r);
    /* a reset restarts the window */
    assert_int_equal(http("POST", mi(&p, "/_sim/reset"), NULL, "", NULL, NULL), 200);
    assert_int_equal(bi(&p, tok, "getLatestBusDt", body, NULL), 200);
    pg_t_proc_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_signin, reset),
        cmocka_unit_test_setup(test_request_rules, reset),
        cmocka_unit_test_setup(test_deterministic, reset),
        cmocka_unit_test_setup(test_totals_add_up, reset),
        cmocka_unit_test_setup(test_daily_totals_reconcile, reset),
        cmocka_unit_test_setup(test_changed_since_and_late_upload, reset),
        cmocka_unit_test_setup(test_dimensions, reset),
        cmocka_unit_test_setup(test_rate_limit, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
