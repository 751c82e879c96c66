/*
 * JWT verification (and RS256 signing) on top of libjwt 1.10.
 *
 * libjwt 1.10 verifies with whatever algorithm the token's own header names, lets alg "none"
 * through without a key and checks no claims (see shared/reference/c-dependencies.md). So the
 * header is decoded here first, the key is chosen by kid with its algorithm pinned, libjwt only
 * checks the signature, and every claim (exp, nbf, iat, iss, aud) is checked here.
 *
 * A keyset is built once (at configuration load) and then only read: pg_jwt_verify may run on
 * many threads at once against the same keyset.
 */
#ifndef PG_AUTH_JWT_H
#define PG_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/error.h"

/* Tokens longer than this are refused before any decoding (PG_ETOOLARGE). */
#define PG_JWT_MAX_TOKEN 8192
/* HS256 secrets shorter than this are refused: a short secret can be brute-forced offline. */
#define PG_JWT_MIN_HS_SECRET 32

struct pg_jwt_keyset; /* opaque */

/** Create an empty keyset. Ownership: *out is new; free with pg_jwt_keyset_free. */
int pg_jwt_keyset_new(struct pg_jwt_keyset **out) PG_WARN_UNUSED;

/** Free a keyset and every key in it (the HS secrets are wiped first). NULL is a no-op. */
void pg_jwt_keyset_free(struct pg_jwt_keyset *ks);

/**
 * Add a key under kid with its algorithm pinned.
 * alg: "RS256" or "HS256" (anything else PG_EINVAL).
 * key: for RS256 a PEM public key (SubjectPublicKeyInfo) or an X.509 certificate PEM, whose
 *      public key is extracted; the key must be RSA of at least 2048 bits. For HS256 the raw
 *      secret bytes, at least PG_JWT_MIN_HS_SECRET of them.
 * Returns PG_EINVAL for a bad alg/key/kid, PG_EEXIST when kid is already present.
 * Ownership: kid, alg and key are borrowed and copied.
 */
int pg_jwt_keyset_add(struct pg_jwt_keyset *ks,
                      const char *kid,
                      const char *alg,
                      const unsigned char *key,
                      size_t key_len) PG_WARN_UNUSED;

/** Number of keys in the set. */
size_t pg_jwt_keyset_count(const struct pg_jwt_keyset *ks);

struct pg_jwt_policy {
    const char *iss; /* required exact match when non-NULL */
    const char *aud; /* must equal aud (string) or be one of aud (array) when non-NULL */
    int skew_s;      /* leeway in seconds for exp, nbf and iat (negative counts as 0) */
    int require_exp; /* 1: a token without exp is rejected */
};

/**
 * Verify token at time now_s (epoch seconds).
 * Returns PG_OK, PG_ETOOLARGE (token longer than PG_JWT_MAX_TOKEN), PG_EAUTH (any other
 * rejection), PG_EINVAL (NULL arguments) or PG_ENOMEM. On PG_EAUTH a short reason is written to
 * why: "malformed", "algorithm not allowed for key", "unknown kid", "bad signature", "expired",
 * "missing exp" (require_exp), "not yet valid", "wrong issuer", "wrong audience" ("token too
 * large" with PG_ETOOLARGE). The token itself is never echoed. An iat more than skew_s in the
 * future is "not yet valid". Every segment must be strict unpadded base64url; the claims are
 * the signed payload decoded with duplicate keys refused.
 * Ownership: claims may be NULL; otherwise on success *claims is a new JSON object of all the
 * token's claims (caller json_decref), and NULL on failure. why may be NULL.
 */
int pg_jwt_verify(const struct pg_jwt_keyset *ks,
                  const struct pg_jwt_policy *p,
                  const char *token,
                  int64_t now_s,
                  json_t **claims,
                  char *why,
                  size_t whysz) PG_WARN_UNUSED;

/**
 * Sign claims with RS256 (header {"alg":"RS256","typ":"JWT"} plus kid when non-NULL), e.g. for
 * the Salesforce OAuth 2.0 JWT bearer assertion.
 * Ownership: private_key_pem (len bytes, PEM private key), kid and claims are borrowed;
 * *token_out is new, NUL-terminated, caller free()s it.
 */
int pg_jwt_sign_rs256(const char *private_key_pem,
                      size_t len,
                      const char *kid,
                      json_t *claims,
                      char **token_out) PG_WARN_UNUSED;

#endif
