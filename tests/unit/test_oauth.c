/* The Salesforce JWT bearer assertion: claims, signature, clamps; token source configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/jwt.h"
#include "salesforce/oauth.h"
#include "server/util.h"
#include "tests/support/harness.h"

static char *key_a, *pub_a, *pub_b;
static size_t key_a_len, pub_a_len, pub_b_len;

static int setup(void **state)
{
    if (pg_read_file(pg_t_src("tests/data/jwt/test-rsa-a.key.pem"), 65536, &key_a, &key_a_len) ||
        pg_read_file(pg_t_src("tests/data/jwt/test-rsa-a.pub.pem"), 65536, &pub_a, &pub_a_len) ||
        pg_read_file(pg_t_src("tests/data/jwt/test-rsa-b.pub.pem"), 65536, &pub_b, &pub_b_len))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    free(key_a);
    free(pub_a);
    free(pub_b);
    return 0;
}

static struct pg_sf_oauth_config config(void)
{
    struct pg_sf_oauth_config c = {.login_url = "https://login.salesforce.com",
                                   .client_id = "3MVG9consumerKey",
                                   .username = "integration@acme.example",
                                   .private_key_pem = key_a,
                                   .private_key_len = key_a_len};
    return c;
}

/* Verify jwt with public key pub and return its claims (NULL when it does not verify). */
static json_t *verify(const char *jwt, const char *pub, size_t pub_len, int64_t now_s)
{
    struct pg_jwt_keyset *ks = NULL;
    assert_int_equal(pg_jwt_keyset_new(&ks), PG_OK);
    assert_int_equal(pg_jwt_keyset_add(ks, "sf", "RS256", (const unsigned char *)pub, pub_len),
                     PG_OK);
    struct pg_jwt_policy p = {.require_exp = 1};
    json_t *claims = NULL;
    char why[64];
    int rc = pg_jwt_verify(ks, &p, jwt, now_s, &claims, why, sizeof why);
    pg_jwt_keyset_free(ks);
    return rc == PG_OK ? claims : NULL;
}

static void assertion_claims(void **state)
{
    struct pg_sf_oauth_config c = config();
    int64_t now = 1767362711;
    char *jwt = NULL;
    assert_int_equal(pg_sf_oauth_assertion(&c, now, &jwt), PG_OK);
    assert_non_null(jwt);
    json_t *claims = verify(jwt, pub_a, pub_a_len, now);
    assert_non_null(claims);
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), "3MVG9consumerKey");
    assert_string_equal(json_string_value(json_object_get(claims, "sub")),
                        "integration@acme.example");
    assert_string_equal(json_string_value(json_object_get(claims, "aud")),
                        "https://login.salesforce.com");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), now + 180);
    json_decref(claims);

    /* The header is exactly RS256/JWT with no kid: decode the first segment. */
    const char *dot = strchr(jwt, '.');
    assert_non_null(dot);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "%.*s", (int)(dot - jwt), jwt);
    /* {"alg":"RS256","typ":"JWT"} in either member order, base64url */
    assert_true(strcmp(hdr, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9") == 0 ||
                strcmp(hdr, "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9") == 0);

    /* Signed by key A: key B does not verify it; an hour later it has expired. */
    assert_null(verify(jwt, pub_b, pub_b_len, now));
    assert_null(verify(jwt, pub_a, pub_a_len, now + 3600));
    free(jwt);
}

static void assertion_audience_and_ttl(void **state)
{
    struct pg_sf_oauth_config c = config();
    c.audience = "https://test.salesforce.com";
    c.assertion_ttl_s = 60;
    int64_t now = 1767362711;
    char *jwt = NULL;
    assert_int_equal(pg_sf_oauth_assertion(&c, now, &jwt), PG_OK);
    json_t *claims = verify(jwt, pub_a, pub_a_len, now);
    assert_non_null(claims);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")),
                        "https://test.salesforce.com");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), now + 60);
    json_decref(claims);
    free(jwt);

    /* More than Salesforce's 3 minutes is clamped. */
    c.assertion_ttl_s = 3600;
    assert_int_equal(pg_sf_oauth_assertion(&c, now, &jwt), PG_OK);
    claims = verify(jwt, pub_a, pub_a_len, now);
    assert_non_null(claims);
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), now + 180);
    json_decref(claims);
    free(jwt);
}

static void assertion_bad_input(void **state)
{
    struct pg_sf_oauth_config c = config();
    char *jwt = (char *)1;
    c.private_key_pem = "not a key";
    c.private_key_len = 9;
    assert_int_not_equal(pg_sf_oauth_assertion(&c, 0, &jwt), PG_OK);
    assert_null(jwt);
    c = config();
    c.username = NULL;
    assert_int_equal(pg_sf_oauth_assertion(&c, 0, &jwt), PG_EINVAL);
}

static void new_validates(void **state)
{
    struct pg_sf_oauth *o = (void *)1;
    struct pg_sf_oauth_config c = config();
    assert_int_equal(pg_sf_oauth_new(&c, &o), PG_OK);
    unsigned long long g = 9, f = 9;
    pg_sf_oauth_stats(o, &g, &f);
    assert_int_equal(g, 0);
    assert_int_equal(f, 0);
    pg_sf_oauth_invalidate(o, "not-the-token"); /* nothing cached: a no-op */
    pg_sf_oauth_free(o);

    c.login_url = "ftp://login.salesforce.com";
    assert_int_equal(pg_sf_oauth_new(&c, &o), PG_EINVAL);
    assert_null(o);
    c = config();
    c.client_id = "";
    assert_int_equal(pg_sf_oauth_new(&c, &o), PG_EINVAL);
    c = config();
    c.private_key_pem = pub_a; /* a public key cannot sign */
    c.private_key_len = pub_a_len;
    assert_int_equal(pg_sf_oauth_new(&c, &o), PG_EINVAL);
    assert_null(o);
}

static void token_endpoint_down(void **state)
{
    /* Nothing listens: PG_EUNAVAIL quickly, and the failure is remembered (no second try). */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", pg_t_free_port());
    struct pg_sf_oauth_config c = config();
    c.login_url = url;
    struct pg_sf_oauth *o = NULL;
    assert_int_equal(pg_sf_oauth_new(&c, &o), PG_OK);
    char tok[PG_SF_TOKEN_MAX], inst[PG_SF_URL_MAX];
    assert_int_equal(pg_sf_oauth_token(o, pg_now_ms() + 2000, tok, sizeof tok, inst, sizeof inst),
                     PG_EUNAVAIL);
    assert_string_equal(tok, "");
    assert_int_equal(pg_sf_oauth_token(o, pg_now_ms() + 2000, tok, sizeof tok, inst, sizeof inst),
                     PG_EUNAVAIL);
    unsigned long long g, f;
    pg_sf_oauth_stats(o, &g, &f);
    assert_int_equal(g, 0);
    assert_int_equal(f, 1);
    /* A deadline already past: no request at all. */
    assert_int_equal(pg_sf_oauth_token(o, pg_now_ms() - 1, tok, sizeof tok, inst, sizeof inst),
                     PG_EUNAVAIL); /* still inside the failure hold */
    pg_sleep_ms(PG_SF_OAUTH_FAIL_HOLD_MS + 50);
    assert_int_equal(pg_sf_oauth_token(o, pg_now_ms() - 1, tok, sizeof tok, inst, sizeof inst),
                     PG_ETIMEDOUT);
    pg_sf_oauth_stats(o, &g, &f);
    assert_int_equal(f, 1);
    pg_sf_oauth_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(assertion_claims),    cmocka_unit_test(assertion_audience_and_ttl),
        cmocka_unit_test(assertion_bad_input), cmocka_unit_test(new_validates),
        cmocka_unit_test(token_endpoint_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
