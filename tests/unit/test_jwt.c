/*
 * JWT verification: every libjwt 1.10 pitfall (alg confusion, alg none, unchecked claims) must be
 * closed by auth/jwt.c. Tokens are minted at test time with libjwt from the TEST-ONLY keys in
 * tests/data/jwt/, or hand-built where libjwt would refuse to build the attack. No sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"
#include "server/util.h"
#include "tests/support/harness.h"

#define NOW 1772460311 /* 2026-03-02T14:05:11Z */
#define ISS "https://acme.my.salesforce.com"
#define AUD "posgate"

static const char HS_SECRET[] = "0123456789abcdef0123456789abcdef-test-only";

static char *key_a, *pub_a, *crt_a, *key_b;
static size_t key_a_len, pub_a_len, crt_a_len, key_b_len;
static char why[128];

static char *fixture(const char *name, size_t *len)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/jwt/%s", name);
    char *data = NULL;
    if (pg_read_file(pg_t_src(rel), 64 * 1024, &data, len) != 0)
        fail_msg("cannot read fixture %s", rel);
    return data;
}

static int setup(void **state)
{
    key_a = fixture("test-rsa-a.key.pem", &key_a_len);
    pub_a = fixture("test-rsa-a.pub.pem", &pub_a_len);
    crt_a = fixture("test-rsa-a.crt.pem", &crt_a_len);
    key_b = fixture("test-rsa-b.key.pem", &key_b_len);
    return 0;
}

static int teardown(void **state)
{
    free(key_a);
    free(pub_a);
    free(crt_a);
    free(key_b);
    return 0;
}

/* Mint a token with libjwt: alg and key as given, kid optional, claims as JSON text. */
static char *
mint(jwt_alg_t alg, const void *key, size_t keylen, const char *kid, const char *claims)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    if (kid)
        assert_int_equal(jwt_add_header(jwt, "kid", kid), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)keylen), 0);
    char *t = jwt_encode_str(jwt);
    assert_non_null(t);
    jwt_free(jwt);
    return t;
}

static char *mint_rs_a(const char *kid, const char *claims)
{
    return mint(JWT_ALG_RS256, key_a, key_a_len, kid, claims);
}

static char *b64url_n(const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = malloc(n * 4 / 3 + 4);
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        o[j++] = tab[(v >> 18) & 63];
        o[j++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            o[j++] = tab[(v >> 6) & 63];
        if (i + 2 < n)
            o[j++] = tab[v & 63];
    }
    o[j] = '\0';
    return o;
}

static char *b64url(const char *s)
{
    return b64url_n(s, strlen(s));
}

/* header.payload[.sig] from JSON texts, for tokens libjwt would not produce. */
static char *handmade(const char *hdr, const char *payload, const char *sig)
{
    char *h = b64url(hdr), *p = b64url(payload);
    size_t n = strlen(h) + strlen(p) + (sig ? strlen(sig) : 0) + 3;
    char *t = malloc(n);
    snprintf(t, n, "%s.%s%s%s", h, p, sig ? "." : "", sig ? sig : "");
    free(h);
    free(p);
    return t;
}

/* header.payload signed with HS_SECRET by hand (OpenSSL HMAC), for payloads libjwt won't emit. */
static char *hs256_handmade(const char *hdr, const char *payload)
{
    char *unsigned_tok = handmade(hdr, payload, NULL);
    unsigned char mac[32];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), HS_SECRET, (int)strlen(HS_SECRET),
                         (const unsigned char *)unsigned_tok, strlen(unsigned_tok), mac, &maclen));
    assert_int_equal(maclen, 32);
    char *sig = b64url_n((const char *)mac, maclen);
    size_t n = strlen(unsigned_tok) + strlen(sig) + 2;
    char *t = malloc(n);
    snprintf(t, n, "%s.%s", unsigned_tok, sig);
    free(sig);
    free(unsigned_tok);
    return t;
}

/* Keyset: "a" = RS256 public key A, "h" = HS256 secret. */
static struct pg_jwt_keyset *keyset2(void)
{
    struct pg_jwt_keyset *ks = NULL;
    assert_int_equal(pg_jwt_keyset_new(&ks), 0);
    assert_int_equal(pg_jwt_keyset_add(ks, "a", "RS256", (unsigned char *)pub_a, pub_a_len), 0);
    assert_int_equal(
        pg_jwt_keyset_add(ks, "h", "HS256", (const unsigned char *)HS_SECRET, strlen(HS_SECRET)),
        0);
    assert_int_equal(pg_jwt_keyset_count(ks), 2);
    return ks;
}

static const struct pg_jwt_policy POLICY = {.iss = ISS, .aud = AUD, .skew_s = 30, .require_exp = 1};

static int verify(const struct pg_jwt_keyset *ks,
                  const struct pg_jwt_policy *p,
                  const char *tok,
                  json_t **claims)
{
    why[0] = 'X';
    why[1] = '\0';
    return pg_jwt_verify(ks, p, tok, NOW, claims, why, sizeof why);
}

/* Expect PG_EAUTH with exactly this reason, and no claims. */
static void expect_reject(const struct pg_jwt_keyset *ks,
                          const struct pg_jwt_policy *p,
                          const char *tok,
                          const char *reason)
{
    json_t *claims = (json_t *)1;
    int rc = verify(ks, p, tok, &claims);
    if (rc != PG_EAUTH)
        fail_msg("expected PG_EAUTH (%s), got %d (%s)", reason, rc, why);
    assert_null(claims);
    assert_string_equal(why, reason);
}

static void
expect_ok(const struct pg_jwt_keyset *ks, const struct pg_jwt_policy *p, const char *tok)
{
    json_t *claims = NULL;
    int rc = verify(ks, p, tok, &claims);
    if (rc != 0)
        fail_msg("expected OK, got %d (%s)", rc, why);
    assert_true(json_is_object(claims));
    json_decref(claims);
}

#define CLAIMS(extra)                                                                              \
    "{\"iss\":\"" ISS "\",\"aud\":\"" AUD                                                          \
    "\",\"sub\":\"integration@acme\",\"iat\":1772460300," extra "}"
#define GOOD CLAIMS("\"exp\":1772460431,\"nbf\":1772460300")

static void valid_rs256_by_kid(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t = mint_rs_a("a", GOOD);
    json_t *claims = NULL;
    assert_int_equal(verify(ks, &POLICY, t, &claims), 0);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "integration@acme");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), 1772460431);
    json_decref(claims);
    /* claims may be NULL when the caller only wants a yes/no */
    assert_int_equal(verify(ks, &POLICY, t, NULL), 0);
    free(t);
    pg_jwt_keyset_free(ks);
}

static void valid_hs256(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t = mint(JWT_ALG_HS256, HS_SECRET, strlen(HS_SECRET), "h", GOOD);
    expect_ok(ks, &POLICY, t);
    free(t);
    /* same token shape, wrong secret */
    static const char other[] = "another-secret-that-is-long-enough-0123456789";
    t = mint(JWT_ALG_HS256, other, strlen(other), "h", GOOD);
    expect_reject(ks, &POLICY, t, "bad signature");
    free(t);
    pg_jwt_keyset_free(ks);
}

static void time_claims(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t;
    /* exp 120 s ago, skew 30 */
    t = mint_rs_a("a", CLAIMS("\"exp\":1772460191"));
    expect_reject(ks, &POLICY, t, "expired");
    free(t);
    /* exp exactly now: no longer valid without skew, valid within skew */
    t = mint_rs_a("a", CLAIMS("\"exp\":1772460311"));
    struct pg_jwt_policy noskew = POLICY;
    noskew.skew_s = 0;
    expect_reject(ks, &noskew, t, "expired");
    expect_ok(ks, &POLICY, t);
    free(t);
    /* exp 10 s ago: within the 30 s skew */
    t = mint_rs_a("a", CLAIMS("\"exp\":1772460301"));
    expect_ok(ks, &POLICY, t);
    expect_reject(ks, &noskew, t, "expired");
    free(t);
    /* nbf 120 s ahead: not yet; 10 s ahead: within skew */
    t = mint_rs_a("a", CLAIMS("\"exp\":1772460911,\"nbf\":1772460431"));
    expect_reject(ks, &POLICY, t, "not yet valid");
    free(t);
    t = mint_rs_a("a", CLAIMS("\"exp\":1772460911,\"nbf\":1772460321"));
    expect_ok(ks, &POLICY, t);
    expect_reject(ks, &noskew, t, "not yet valid");
    free(t);
    /* iat far in the future */
    t = mint_rs_a("a", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD
                       "\",\"iat\":1772470000,\"exp\":1772470100}");
    expect_reject(ks, &POLICY, t, "not yet valid");
    free(t);
    /* exp of the wrong type */
    t = mint_rs_a("a", CLAIMS("\"exp\":\"tomorrow\""));
    expect_reject(ks, &POLICY, t, "malformed");
    free(t);
    pg_jwt_keyset_free(ks);
}

static void require_exp(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t = mint_rs_a("a", CLAIMS("\"nbf\":1772460300"));
    expect_reject(ks, &POLICY, t, "missing exp");
    struct pg_jwt_policy lax = POLICY;
    lax.require_exp = 0;
    expect_ok(ks, &lax, t);
    free(t);
    pg_jwt_keyset_free(ks);
}

static void audience(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t;
    t = mint_rs_a("a", "{\"iss\":\"" ISS "\",\"aud\":\"someone-else\",\"exp\":1772460431}");
    expect_reject(ks, &POLICY, t, "wrong audience");
    free(t);
    t = mint_rs_a("a", "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"],\"exp\":1772460431}");
    expect_reject(ks, &POLICY, t, "wrong audience");
    free(t);
    t = mint_rs_a("a", "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"],\"exp\":1772460431}");
    expect_ok(ks, &POLICY, t);
    free(t);
    t = mint_rs_a("a", "{\"iss\":\"" ISS "\",\"exp\":1772460431}");
    expect_reject(ks, &POLICY, t, "wrong audience");
    /* no audience required: fine */
    struct pg_jwt_policy noaud = POLICY;
    noaud.aud = NULL;
    expect_ok(ks, &noaud, t);
    free(t);
    pg_jwt_keyset_free(ks);
}

static void issuer(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t =
        mint_rs_a("a", "{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\",\"exp\":1772460431}");
    expect_reject(ks, &POLICY, t, "wrong issuer");
    free(t);
    t = mint_rs_a("a", "{\"aud\":\"" AUD "\",\"exp\":1772460431}");
    expect_reject(ks, &POLICY, t, "wrong issuer");
    free(t);
    pg_jwt_keyset_free(ks);
}

static void alg_none(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t = handmade("{\"alg\":\"none\",\"kid\":\"a\"}", GOOD, "");
    expect_reject(ks, &POLICY, t, "algorithm not allowed for key");
    free(t);
    t = handmade("{\"alg\":\"none\",\"kid\":\"a\"}", GOOD, NULL); /* no signature part at all */
    assert_int_equal(verify(ks, &POLICY, t, NULL), PG_EAUTH);
    free(t);
    t = handmade("{\"alg\":\"none\"}", GOOD, "");
    expect_reject(ks, &POLICY, t, "algorithm not allowed for key");
    free(t);
    /* a one-key keyset (where a missing kid selects the key) refuses none as well */
    struct pg_jwt_keyset *one = NULL;
    assert_int_equal(pg_jwt_keyset_new(&one), 0);
    assert_int_equal(pg_jwt_keyset_add(one, "a", "RS256", (unsigned char *)pub_a, pub_a_len), 0);
    t = handmade("{\"alg\":\"none\"}", GOOD, "");
    expect_reject(one, &POLICY, t, "algorithm not allowed for key");
    free(t);
    /* other algorithms libjwt knows are refused too */
    t = mint(JWT_ALG_HS512, HS_SECRET, strlen(HS_SECRET), "h", GOOD);
    expect_reject(ks, &POLICY, t, "algorithm not allowed for key");
    free(t);
    pg_jwt_keyset_free(one);
    pg_jwt_keyset_free(ks);
}

static void hs_rs_confusion(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    /* The classic: HMAC with the RSA public key PEM (which the verifier holds) as the secret. */
    char *t = mint(JWT_ALG_HS256, pub_a, pub_a_len, "a", GOOD);
    /* Precondition: plain libjwt 1.10 accepts this token with the PEM as key. */
    jwt_t *raw = NULL;
    assert_int_equal(jwt_decode(&raw, t, (unsigned char *)pub_a, (int)pub_a_len), 0);
    jwt_free(raw);
    expect_reject(ks, &POLICY, t, "algorithm not allowed for key");
    free(t);
    /* and the reverse: an RS256 token presented under the HS256 kid */
    t = mint_rs_a("h", GOOD);
    expect_reject(ks, &POLICY, t, "algorithm not allowed for key");
    free(t);
    pg_jwt_keyset_free(ks);
}

static void bad_signature(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t = mint(JWT_ALG_RS256, key_b, key_b_len, "a", GOOD);
    expect_reject(ks, &POLICY, t, "bad signature");
    free(t);
    /* a valid token with its payload swapped for another (signature no longer matches) */
    t = mint_rs_a("a", GOOD);
    char *evil = handmade("{}", CLAIMS("\"exp\":1999999999"), NULL);
    char *dot = strchr(t, '.'), *dot2 = strchr(dot + 1, '.');
    char *edot = strchr(evil, '.');
    size_t n = (size_t)(dot - t) + strlen(edot) + strlen(dot2) + 1;
    char *spliced = malloc(n);
    snprintf(spliced, n, "%.*s%s%s", (int)(dot - t), t, edot, dot2);
    expect_reject(ks, &POLICY, spliced, "bad signature");
    free(spliced);
    free(evil);
    /* the same signature bytes spelled differently (non-zero trailing bits in the last char):
     * libjwt's decoder would accept it, so a replay cache keyed on the token string could be
     * bypassed */
    {
        static const char tab[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char *last = t + strlen(t) - 1;
        char *saved = strdup(t);
        int v = (int)(strchr(tab, *last) - tab);
        assert_int_equal(v & 15, 0); /* 2048-bit signature: 4 trailing bits, all zero */
        *last = tab[v | 1];
        jwt_t *raw = NULL;
        assert_int_equal(jwt_decode(&raw, t, (unsigned char *)pub_a, (int)pub_a_len), 0);
        jwt_free(raw);
        expect_reject(ks, &POLICY, t, "malformed");
        strcpy(t, saved);
        free(saved);
        expect_ok(ks, &POLICY, t);
    }
    /* truncated signature */
    t[strlen(t) - 4] = '\0'; /* "malformed" or "bad signature" depending on the last bits */
    assert_int_equal(verify(ks, &POLICY, t, NULL), PG_EAUTH);
    /* empty signature */
    *(strrchr(t, '.') + 1) = '\0';
    expect_reject(ks, &POLICY, t, "bad signature");
    free(t);
    pg_jwt_keyset_free(ks);
}

static void kid_selection(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *t = mint_rs_a("zz", GOOD);
    expect_reject(ks, &POLICY, t, "unknown kid");
    free(t);
    t = mint_rs_a(NULL, GOOD);
    expect_reject(ks, &POLICY, t, "unknown kid"); /* two keys: a kid is required */
    struct pg_jwt_keyset *one = NULL;
    assert_int_equal(pg_jwt_keyset_new(&one), 0);
    assert_int_equal(pg_jwt_keyset_add(one, "a", "RS256", (unsigned char *)pub_a, pub_a_len), 0);
    expect_ok(one, &POLICY, t); /* one key: no kid selects it */
    free(t);
    pg_jwt_keyset_free(one);
    pg_jwt_keyset_free(ks);
}

static void oversize_and_garbage(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    char *big = malloc(PG_JWT_MAX_TOKEN + 2);
    memset(big, 'A', PG_JWT_MAX_TOKEN + 1);
    big[PG_JWT_MAX_TOKEN + 1] = '\0';
    big[10] = '.';
    big[20] = '.';
    assert_int_equal(verify(ks, &POLICY, big, NULL), PG_ETOOLARGE);
    free(big);

    static const char *const junk[] = {
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "...",
        "eyJhbGciOiJSUzI1NiJ9..sig",
        "not a token at all",
        "e30.e30.e30",                              /* {} header: no alg */
        "eyJhbGciOiJSUzI1NiJ9=.e30.AAAA",           /* padding is not base64url in JWS */
        "eyJhbGciOiJSUzI1NiJ9+.e30.AAAA",           /* '+' is base64, not base64url */
        "W10.e30.AAAA",                             /* header [] */
        "eyJhbGciOjF9.e30.AAAA",                    /* alg 1 */
        "eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.e30.AAAA", /* kid 1 */
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        json_t *claims = (json_t *)1;
        if (verify(ks, &POLICY, junk[i], &claims) != PG_EAUTH)
            fail_msg("junk %zu accepted", i);
        assert_null(claims);
        assert_string_equal(why, "malformed");
    }
    /* duplicate keys in the header or in the (validly signed) claims */
    char *t = handmade("{\"alg\":\"RS256\",\"alg\":\"none\"}", GOOD, "AAAA");
    expect_reject(ks, &POLICY, t, "malformed");
    free(t);
    /* a correctly HS256-signed payload with two aud members (libjwt would keep the last) */
    t = hs256_handmade("{\"alg\":\"HS256\",\"kid\":\"h\"}",
                       "{\"iss\":\"" ISS "\",\"aud\":\"x\",\"aud\":\"" AUD
                       "\",\"exp\":1772460431}");
    expect_reject(ks, &POLICY, t, "malformed");
    free(t);
    t = hs256_handmade("{\"alg\":\"HS256\",\"kid\":\"h\"}", GOOD); /* the helper is sound */
    expect_ok(ks, &POLICY, t);
    free(t);
    /* crit header: an extension we cannot honour */
    t = handmade("{\"alg\":\"RS256\",\"kid\":\"a\",\"crit\":[\"b64\"]}", GOOD, "AAAA");
    expect_reject(ks, &POLICY, t, "malformed");
    free(t);
    /* the reason never carries the token */
    t = mint(JWT_ALG_RS256, key_b, key_b_len, "a", GOOD);
    assert_int_equal(verify(ks, &POLICY, t, NULL), PG_EAUTH);
    assert_null(strstr(why, "eyJ"));
    free(t);
    pg_jwt_keyset_free(ks);
}

static void certificate_key(void **state)
{
    struct pg_jwt_keyset *ks = NULL;
    assert_int_equal(pg_jwt_keyset_new(&ks), 0);
    assert_int_equal(pg_jwt_keyset_add(ks, "sf-cert", "RS256", (unsigned char *)crt_a, crt_a_len),
                     0);
    char *t = mint_rs_a("sf-cert", GOOD);
    expect_ok(ks, &POLICY, t);
    free(t);
    t = mint(JWT_ALG_RS256, key_b, key_b_len, "sf-cert", GOOD);
    expect_reject(ks, &POLICY, t, "bad signature");
    free(t);
    pg_jwt_keyset_free(ks);
}

static void keyset_add_rules(void **state)
{
    struct pg_jwt_keyset *ks = NULL;
    assert_int_equal(pg_jwt_keyset_new(&ks), 0);
    const unsigned char *s = (const unsigned char *)HS_SECRET;
    assert_int_equal(pg_jwt_keyset_add(ks, "h", "HS256", s, 31), PG_EINVAL);
    assert_int_equal(pg_jwt_keyset_add(ks, "h", "HS256", s, 32), 0);
    assert_int_equal(pg_jwt_keyset_add(ks, "h", "HS256", s, 40), PG_EEXIST);
    assert_int_equal(pg_jwt_keyset_add(ks, "h", "RS256", (unsigned char *)pub_a, pub_a_len),
                     PG_EEXIST);
    assert_int_equal(pg_jwt_keyset_add(ks, "x", "HS512", s, 40), PG_EINVAL);
    assert_int_equal(pg_jwt_keyset_add(ks, "x", "none", s, 40), PG_EINVAL);
    assert_int_equal(pg_jwt_keyset_add(ks, "x", "RS256", (const unsigned char *)"garbage", 7),
                     PG_EINVAL);
    /* a private key is not a verification key */
    assert_int_equal(pg_jwt_keyset_add(ks, "x", "RS256", (unsigned char *)key_a, key_a_len),
                     PG_EINVAL);
    assert_int_equal(pg_jwt_keyset_add(ks, "", "HS256", s, 40), PG_EINVAL);
    assert_int_equal(pg_jwt_keyset_count(ks), 1);
    pg_jwt_keyset_free(ks);
    pg_jwt_keyset_free(NULL);
}

static void sign_round_trip(void **state)
{
    struct pg_jwt_keyset *ks = keyset2();
    json_t *c = json_pack("{s:s, s:s, s:s, s:I}", "iss", ISS, "aud", AUD, "sub", "integration@acme",
                          "exp", (json_int_t)1772460431);
    char *tok = NULL;
    assert_int_equal(pg_jwt_sign_rs256(key_a, key_a_len, "a", c, &tok), 0);
    json_t *claims = NULL;
    assert_int_equal(verify(ks, &POLICY, tok, &claims), 0);
    assert_true(json_equal(c, claims));
    json_decref(claims);
    /* the header carries alg RS256 and the kid */
    jwt_t *raw = NULL;
    assert_int_equal(jwt_decode(&raw, tok, (unsigned char *)pub_a, (int)pub_a_len), 0);
    assert_int_equal(jwt_get_alg(raw), JWT_ALG_RS256);
    assert_string_equal(jwt_get_header(raw, "kid"), "a");
    jwt_free(raw);
    free(tok);
    /* without a kid, and with a bad key */
    assert_int_equal(pg_jwt_sign_rs256(key_a, key_a_len, NULL, c, &tok), 0);
    free(tok);
    tok = (char *)1;
    assert_int_equal(pg_jwt_sign_rs256("nope", 4, NULL, c, &tok), PG_EINVAL);
    assert_null(tok);
    assert_int_equal(pg_jwt_sign_rs256(key_a, key_a_len, NULL, NULL, &tok), PG_EINVAL);
    json_decref(c);
    pg_jwt_keyset_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_rs256_by_kid),
        cmocka_unit_test(valid_hs256),
        cmocka_unit_test(time_claims),
        cmocka_unit_test(require_exp),
        cmocka_unit_test(audience),
        cmocka_unit_test(issuer),
        cmocka_unit_test(alg_none),
        cmocka_unit_test(hs_rs_confusion),
        cmocka_unit_test(bad_signature),
        cmocka_unit_test(kid_selection),
        cmocka_unit_test(oversize_and_garbage),
        cmocka_unit_test(certificate_key),
        cmocka_unit_test(keyset_add_rules),
        cmocka_unit_test(sign_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
