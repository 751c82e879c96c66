/*
 * Salesforce OAuth 2.0 JWT bearer flow (salesforce-wire.md §3.1) with one shared, cached token.
 *
 * The gateway signs an RS256 assertion (iss = consumer key, sub = username, aud = login URL,
 * exp = now + at most 3 minutes), posts it to <login_url>/services/oauth2/token and keeps the
 * access_token and instance_url it gets back. Salesforce does not say how long a token lives
 * (the org's session timeout), so it is assumed valid for token_ttl_s and renewed renew_before_s
 * earlier; a 401 INVALID_SESSION_ID makes the REST client invalidate it sooner.
 *
 * Concurrency (peers-and-lessons §2, "OAuth token refresh races" and "cache stampede"):
 *  - single flight: at most one grant request is in flight; other callers wait for its result
 *    (each bounded by its own deadline) instead of sending their own;
 *  - while a renewal runs or has just failed, a token that is still inside its assumed lifetime
 *    (only in the renew-early window) keeps being handed out;
 *  - a failed grant is remembered for PG_SF_OAUTH_FAIL_HOLD_MS, and callers in that window get
 *    the same error at once, so a burst of lookups cannot hammer the token endpoint.
 * Every function is thread-safe.
 */
#ifndef PG_SF_OAUTH_H
#define PG_SF_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"

/* Buffer sizes that always hold a token / instance URL handed out by pg_sf_oauth_token. */
#define PG_SF_TOKEN_MAX 2048
#define PG_SF_URL_MAX 512
/* How long a failed grant is remembered before the next caller may try again. */
#define PG_SF_OAUTH_FAIL_HOLD_MS 1000

struct pg_sf_oauth_config {
    const char *login_url; /* e.g. "https://login.salesforce.com" (http:// for tests); the token
                              endpoint is login_url + "/services/oauth2/token" */
    const char *audience;  /* the assertion's aud; NULL: login_url */
    const char *client_id; /* iss: the connected app's consumer key */
    const char *username;  /* sub */
    const char *private_key_pem; /* RS256 signing key, PEM (copied) */
    size_t private_key_len;
    int assertion_ttl_s;    /* exp = now + this; <= 0: 180; clamped to 180 (Salesforce's maximum) */
    int token_ttl_s;        /* how long a token is assumed valid; <= 0: 1800 */
    int renew_before_s;     /* renew this long before the assumed expiry; <= 0: 60 (kept below
                               token_ttl_s) */
    int connect_timeout_ms; /* <= 0: 2000; each grant is also bounded by the caller's deadline */
    int timeout_ms;         /* whole grant request; <= 0: 5000 */
};

struct pg_sf_oauth; /* opaque */

/**
 * Create a token source. The configuration is validated (login_url http(s), client_id and
 * username non-empty) and an assertion is signed once, so a bad key fails here.
 * Returns PG_OK, PG_EINVAL (bad or missing configuration, unusable key), PG_ENOMEM.
 * Ownership: c and its strings are borrowed and copied; *out is new, free with pg_sf_oauth_free.
 */
int pg_sf_oauth_new(const struct pg_sf_oauth_config *c, struct pg_sf_oauth **out) PG_WARN_UNUSED;

/** Free a token source (the key and token are wiped first). NULL is a no-op. No call may be in
 * progress. */
void pg_sf_oauth_free(struct pg_sf_oauth *o);

/**
 * Copy the current access token and instance URL (no trailing '/') into token / instance_url,
 * renewing when there is none or it is near its assumed expiry; see the file comment for the
 * single flight. deadline_ms is a pg_now_ms() deadline bounding both the wait for another
 * caller's renewal and this caller's own grant request.
 * Returns PG_OK; PG_EAUTH (the grant was refused: invalid_grant, invalid_client...; the error
 * and error_description are logged, never the assertion); PG_ETIMEDOUT (the deadline passed);
 * PG_EUNAVAIL (token endpoint unreachable, 5xx, 429, or an unusable 200 reply); PG_ETOOLARGE
 * (a buffer too small: size them PG_SF_TOKEN_MAX / PG_SF_URL_MAX); PG_EINVAL; PG_ENOMEM.
 * Ownership: writes NUL-terminated strings into the caller's buffers ("" on failure).
 */
int pg_sf_oauth_token(struct pg_sf_oauth *o,
                      int64_t deadline_ms,
                      char *token,
                      size_t tokensz,
                      char *instance_url,
                      size_t urlsz) PG_WARN_UNUSED;

/**
 * After a 401 INVALID_SESSION_ID: forget the cached token, but only if it is still the one the
 * caller used, so N concurrent 401s for one token cause one renewal. token is borrowed.
 */
void pg_sf_oauth_invalidate(struct pg_sf_oauth *o, const char *token);

/** Counters for /metrics: successful token grants and failed grant attempts. */
void pg_sf_oauth_stats(const struct pg_sf_oauth *o,
                       unsigned long long *grants,
                       unsigned long long *failures);

/**
 * Sign the JWT bearer assertion for c at wall-clock time now_s (epoch seconds): header
 * {"alg":"RS256","typ":"JWT"}, claims iss, sub, aud (audience or login_url), exp = now_s +
 * assertion_ttl_s (defaulted and clamped as above). Exposed for tests.
 * Ownership: c borrowed; *jwt is new, caller free()s it (NULL on failure).
 */
int pg_sf_oauth_assertion(const struct pg_sf_oauth_config *c,
                          int64_t now_s,
                          char **jwt) PG_WARN_UNUSED;

#endif
