#include "auth/jwt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Smallest RSA modulus accepted for a verification key (NIST: 1024-bit RSA is retired). */
#define PG_JWT_MIN_RSA_BITS 2048
/* Header JSON larger than this is not a real JWT header; refused before jansson sees it. */
#define PG_JWT_MAX_HEADER 1024

struct pg_jwt_key {
    char *kid;
    jwt_alg_t alg;      /* JWT_ALG_RS256 or JWT_ALG_HS256, pinned at add time */
    unsigned char *key; /* RS256: normalised public key PEM (NUL-terminated); HS256: secret */
    size_t len;
};

struct pg_jwt_keyset {
    struct pg_jwt_key *keys;
    size_t n;
};

int pg_jwt_keyset_new(struct pg_jwt_keyset **out)
{
    if (!out)
        return PG_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? PG_OK : PG_ENOMEM;
}

void pg_jwt_keyset_free(struct pg_jwt_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        OPENSSL_cleanse(ks->keys[i].key, ks->keys[i].len);
        free(ks->keys[i].key);
        free(ks->keys[i].kid);
    }
    free(ks->keys);
    free(ks);
}

size_t pg_jwt_keyset_count(const struct pg_jwt_keyset *ks)
{
    return ks ? ks->n : 0;
}

/*
 * Turn a PEM public key or an X.509 certificate PEM into a SubjectPublicKeyInfo PEM, which is
 * what libjwt's OpenSSL backend reads (PEM_read_bio_PUBKEY). Only RSA keys of a sane size pass,
 * so a misconfigured EC key or a tiny RSA key fails at configuration time, not on first use.
 */
static int rsa_public_pem(const unsigned char *key, size_t len, unsigned char **out, size_t *outlen)
{
    if (len > INT_MAX)
        return PG_EINVAL;
    EVP_PKEY *pk = NULL;
    BIO *in = BIO_new_mem_buf(key, (int)len);
    if (!in)
        return PG_ENOMEM;
    pk = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    BIO_free(in);
    if (!pk) {
        in = BIO_new_mem_buf(key, (int)len);
        if (!in)
            return PG_ENOMEM;
        X509 *cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
        BIO_free(in);
        if (cert) {
            pk = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    /* Failed PEM reads leave entries on this thread's OpenSSL error queue; later TLS code on
     * the same thread would otherwise report them as its own. */
    ERR_clear_error();
    if (!pk)
        return PG_EINVAL;
    int rc = PG_EINVAL;
    if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pk) < PG_JWT_MIN_RSA_BITS)
        goto done;
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem) {
        rc = PG_ENOMEM;
        goto done;
    }
    char *data = NULL;
    long n;
    if (PEM_write_bio_PUBKEY(mem, pk) != 1 || (n = BIO_get_mem_data(mem, &data)) <= 0) {
        rc = PG_ENOMEM;
    } else if (!(*out = malloc((size_t)n + 1))) {
        rc = PG_ENOMEM;
    } else {
        memcpy(*out, data, (size_t)n);
        (*out)[n] = '\0';
        *outlen = (size_t)n;
        rc = PG_OK;
    }
    BIO_free(mem);
done:
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

int pg_jwt_keyset_add(struct pg_jwt_keyset *ks,
                      const char *kid,
                      const char *alg,
                      const unsigned char *key,
                      size_t key_len)
{
    if (!ks || !kid || !*kid || !alg || !key || strlen(kid) > 256)
        return PG_EINVAL;
    jwt_alg_t a;
    if (!strcmp(alg, "RS256"))
        a = JWT_ALG_RS256;
    else if (!strcmp(alg, "HS256"))
        a = JWT_ALG_HS256;
    else
        return PG_EINVAL;
    for (size_t i = 0; i < ks->n; i++)
        if (!strcmp(ks->keys[i].kid, kid))
            return PG_EEXIST;

    struct pg_jwt_key k = {.alg = a};
    int rc;
    if (a == JWT_ALG_HS256) {
        if (key_len < PG_JWT_MIN_HS_SECRET || key_len > INT_MAX)
            return PG_EINVAL;
        if (!(k.key = malloc(key_len)))
            return PG_ENOMEM;
        memcpy(k.key, key, key_len);
        k.len = key_len;
    } else if ((rc = rsa_public_pem(key, key_len, &k.key, &k.len)) != PG_OK) {
        return rc;
    }
    struct pg_jwt_key *nk = realloc(ks->keys, (ks->n + 1) * sizeof *nk);
    if (!nk || !(k.kid = strdup(kid))) {
        if (nk)
            ks->keys = nk;
        OPENSSL_cleanse(k.key, k.len);
        free(k.key);
        return PG_ENOMEM;
    }
    ks->keys = nk;
    ks->keys[ks->n++] = k;
    return PG_OK;
}

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Strict unpadded base64url (RFC 7515 §2): other characters, a dangling single character and
 * non-zero trailing bits are all refused, so one token has exactly one spelling.
 * Ownership: *out is new (NUL-terminated for convenience), caller frees.
 */
static int b64url_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
    if (n % 4 == 1)
        return PG_EINVAL;
    unsigned char *o = malloc(n / 4 * 3 + 3 + 1);
    if (!o)
        return PG_ENOMEM;
    size_t j = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0) {
            free(o);
            return PG_EINVAL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        free(o);
        return PG_EINVAL;
    }
    o[j] = '\0';
    *out = o;
    *outlen = j;
    return PG_OK;
}

static int b64url_strict(const char *s, size_t n)
{
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    if (b64url_decode(s, n, &raw, &rawlen) != PG_OK)
        return 0;
    free(raw);
    return 1;
}

/* Decode one base64url segment holding a JSON object (duplicate keys refused). */
static json_t *segment_object(const char *s, size_t n)
{
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    if (b64url_decode(s, n, &raw, &rawlen) != PG_OK)
        return NULL;
    json_error_t jerr;
    json_t *o = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (o && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static void set_why(char *why, size_t whysz, const char *reason)
{
    if (why && whysz)
        snprintf(why, whysz, "%s", reason);
}

static const struct pg_jwt_key *find_key(const struct pg_jwt_keyset *ks, const char *kid)
{
    if (!kid)
        return ks->n == 1 ? &ks->keys[0] : NULL;
    for (size_t i = 0; i < ks->n; i++)
        if (!strcmp(ks->keys[i].kid, kid))
            return &ks->keys[i];
    return NULL;
}

/*
 * HS256 is checked here with a constant-time compare before libjwt sees the token: libjwt 1.10
 * compares HMACs with strcmp, which leaks how many leading characters of a forgery are right.
 */
static int hs256_ok(const struct pg_jwt_key *k,
                    const char *token,
                    size_t signed_len,
                    const char *sig,
                    size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), k->key, (int)k->len, (const unsigned char *)token, signed_len, mac,
              &maclen))
        return 0;
    unsigned char *given = NULL;
    size_t givenlen = 0;
    if (b64url_decode(sig, siglen, &given, &givenlen) != PG_OK)
        return 0;
    int ok = givenlen == maclen && CRYPTO_memcmp(given, mac, maclen) == 0;
    free(given);
    return ok;
}

/* Read an optional NumericDate claim. Returns 0 absent, 1 present (*v set), -1 not a number. */
static int numeric_claim(json_t *claims, const char *name, double *v)
{
    json_t *j = json_object_get(claims, name);
    if (!j)
        return 0;
    if (!json_is_number(j))
        return -1;
    *v = json_number_value(j);
    return 1;
}

static int audience_ok(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), want);
    if (!json_is_array(aud))
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), want))
            return 1;
    }
    return 0;
}

/* The claim checks libjwt 1.10 does not do. Returns NULL when fine, else the reason. */
static const char *check_claims(json_t *claims, const struct pg_jwt_policy *p, int64_t now_s)
{
    double now = (double)now_s, skew = p->skew_s > 0 ? (double)p->skew_s : 0.0, v = 0;
    int has = numeric_claim(claims, "exp", &v);
    if (has < 0)
        return "malformed";
    if (has == 0 && p->require_exp)
        return "missing exp";
    if (has == 1 && now >= v + skew) /* RFC 7519 §4.1.4: valid only before exp */
        return "expired";
    if ((has = numeric_claim(claims, "nbf", &v)) < 0)
        return "malformed";
    if (has == 1 && now + skew < v)
        return "not yet valid";
    if ((has = numeric_claim(claims, "iat", &v)) < 0)
        return "malformed";
    if (has == 1 && now + skew < v) /* issued in the future: a clock problem or a forgery */
        return "not yet valid";
    if (p->iss) {
        json_t *iss = json_object_get(claims, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), p->iss))
            return "wrong issuer";
    }
    if (p->aud && !audience_ok(json_object_get(claims, "aud"), p->aud))
        return "wrong audience";
    return NULL;
}

int pg_jwt_verify(const struct pg_jwt_keyset *ks,
                  const struct pg_jwt_policy *p,
                  const char *token,
                  int64_t now_s,
                  json_t **claims,
                  char *why,
                  size_t whysz)
{
    if (claims)
        *claims = NULL;
    set_why(why, whysz, "");
    if (!ks || !p || !token)
        return PG_EINVAL;
    size_t len = strnlen(token, PG_JWT_MAX_TOKEN + 1);
    if (len > PG_JWT_MAX_TOKEN) {
        set_why(why, whysz, "token too large");
        return PG_ETOOLARGE;
    }

    /* Exactly header.payload.signature, all base64url. */
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) ||
        dot1 == token || dot2 == dot1 + 1 || (size_t)(dot1 - token) > PG_JWT_MAX_HEADER * 4 / 3) {
        set_why(why, whysz, "malformed");
        return PG_EAUTH;
    }
    const char *sig = dot2 + 1;
    size_t siglen = len - (size_t)(sig - token);

    json_t *hdr = segment_object(token, (size_t)(dot1 - token));
    if (!hdr) {
        set_why(why, whysz, "malformed");
        return PG_EAUTH;
    }
    json_t *jalg = json_object_get(hdr, "alg"), *jkid = json_object_get(hdr, "kid");
    const char *reason = NULL;
    const struct pg_jwt_key *key = NULL;
    if (!json_is_string(jalg) || (jkid && !json_is_string(jkid)) || json_object_get(hdr, "crit")) {
        /* crit names extensions we would have to understand (RFC 7515 §4.1.11): we know none */
        reason = "malformed";
    } else {
        const char *alg = json_string_value(jalg);
        jwt_alg_t a = !strcmp(alg, "RS256")   ? JWT_ALG_RS256
                      : !strcmp(alg, "HS256") ? JWT_ALG_HS256
                                              : JWT_ALG_NONE;
        if (a == JWT_ALG_NONE)
            reason = "algorithm not allowed for key"; /* none, HS512, ES256, typos: all refused */
        else if (!(key = find_key(ks, jkid ? json_string_value(jkid) : NULL)))
            reason = "unknown kid";
        else if (a != key->alg)
            reason = "algorithm not allowed for key"; /* the HS/RS confusion stops here */
        else if (siglen == 0)
            reason = "bad signature";
        else if (!b64url_strict(sig, siglen))
            reason = "malformed"; /* libjwt ignores trailing bits: one signature, many strings */
        else if (a == JWT_ALG_HS256 && !hs256_ok(key, token, (size_t)(dot2 - token), sig, siglen))
            reason = "bad signature";
    }
    json_decref(hdr);
    if (reason) {
        set_why(why, whysz, reason);
        return PG_EAUTH;
    }

    /* Only ever with a key: without one libjwt accepts alg none. */
    jwt_t *jwt = NULL;
    int jrc = jwt_decode(&jwt, token, key->key, (int)key->len);
    if (jrc != 0 || !jwt) {
        jwt_free(jwt);
        set_why(why, whysz, jrc == ENOMEM ? "out of memory" : "bad signature");
        return jrc == ENOMEM ? PG_ENOMEM : PG_EAUTH;
    }
    jwt_alg_t got = jwt_get_alg(jwt);
    jwt_free(jwt);
    if (got != key->alg) {
        set_why(why, whysz, "algorithm not allowed for key");
        return PG_EAUTH;
    }

    /* The claims are re-read from the signed payload with duplicate keys refused: libjwt keeps
     * the last of two "aud" members silently, which would make the check below ambiguous. */
    json_t *c = segment_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!c) {
        set_why(why, whysz, "malformed");
        return PG_EAUTH;
    }
    if ((reason = check_claims(c, p, now_s)) != NULL) {
        json_decref(c);
        set_why(why, whysz, reason);
        return PG_EAUTH;
    }
    if (claims)
        *claims = c;
    else
        json_decref(c);
    return PG_OK;
}

int pg_jwt_sign_rs256(
    const char *private_key_pem, size_t len, const char *kid, json_t *claims, char **token_out)
{
    if (!token_out)
        return PG_EINVAL;
    *token_out = NULL;
    if (!private_key_pem || !len || len > INT_MAX || !json_is_object(claims))
        return PG_EINVAL;
    char *cj = json_dumps(claims, JSON_COMPACT);
    if (!cj)
        return PG_ENOMEM;
    jwt_t *jwt = NULL;
    int rc = PG_ENOMEM;
    char *tok = NULL;
    if (jwt_new(&jwt) != 0)
        goto out;
    rc = PG_EINVAL;
    if (jwt_add_grants_json(jwt, cj) != 0 || (kid && jwt_add_header(jwt, "kid", kid) != 0) ||
        jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)private_key_pem, (int)len) != 0)
        goto out;
    /* A bad private key only shows here (libjwt reads the PEM when signing). */
    if (!(tok = jwt_encode_str(jwt)))
        goto out;
    /* libjwt allocates with its own hook; hand the caller memory that plain free() owns. */
    *token_out = strdup(tok);
    rc = *token_out ? PG_OK : PG_ENOMEM;
    free(tok);
out:
    jwt_free(jwt);
    free(cj);
    ERR_clear_error();
    return rc;
}
