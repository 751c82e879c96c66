/*
 * Oracle Simphony Reporting & Analytics BI API client (micros-wire.md §1).
 *
 * Sign-in (§1.1, OIDC authorization code + PKCE S256, all under {auth_base_url}/oidc-provider/v1):
 *   1. GET  oauth2/authorize?response_type=code&client_id=..&scope=openid
 *           &redirect_uri=apiaccount://callback&code_challenge=B64URL(SHA256(verifier))
 *           &code_challenge_method=S256            -> session cookie(s), kept in a per-sign-in jar
 *   2. POST oauth2/signin  (form) username, password, orgname (= org), with the cookies
 *           -> 200 {"nextOp":"redirect","success":"true"|true,"redirectUrl":"..?code=<code>"}
 *              (nextOp "expired": the API account's password expired -> PG_EAUTH)
 *   3. POST oauth2/token   (form) grant_type=authorization_code, client_id, code, code_verifier,
 *           scope=openid, redirect_uri, with the cookies -> {"id_token", "refresh_token",
 *           "expires_in", ...}
 * Data calls send "Authorization: Bearer <id_token>" (the id_token, not the access_token).
 * Renewal: the token is renewed renew_before_s before it expires (the id_token's exp claim, else
 * expires_in, else the documented 14 days), at the latest half-way through its life (Oracle
 * recommends renewing 14-day tokens after 7 days). A renewal first tries the refresh grant
 * (grant_type=refresh_token with the refresh token in both "refresh_token" and "code": Oracle's
 * page names the field "code", third-party clients "refresh_token"); when the refresh token is
 * refused it falls back to a full sign-in.
 *
 * Concurrency (same design as salesforce/oauth.h): single flight (one renewal in flight, other
 * callers wait for it within their own deadline); a still-valid token is handed out while a
 * renewal runs; a failed renewal is remembered for PG_BI_FAIL_HOLD_MS so a burst cannot hammer
 * the identity server. Every function is thread-safe.
 *
 * Data calls (§1.2): POST {base_url}/bi/v1/{org}/{operation}, JSON in and out. Common results:
 *   PG_OK         200 with a JSON object body (*resp new)
 *   PG_EINVAL     bad argument (nothing sent): unknown operation, malformed date or time...
 *   PG_EAUTH      sign-in refused, or the API still answers 401 after one renewal and retry
 *   PG_EFORBIDDEN 403: the API account lacks the data access or location scope
 *   PG_EPROTO     another 4xx (why: "HTTP 400 [code]: <detail>"), or an unusable 200 body
 *   PG_EUNAVAIL   429 or 5xx (*retry_after_s: Retry-After seconds, -1 absent), or the server
 *                 was unreachable
 *   PG_ETIMEDOUT  the deadline passed (waiting for a token, or the transfer)
 *   PG_ETOOLARGE  the reply exceeded PG_BI_MAX_RESPONSE
 *   PG_EIO        another transport error (connection reset mid-reply...)
 *   PG_ENOMEM
 * why (when given) receives a one-line explanation, "" on success; it never holds a secret.
 */
#ifndef PG_MICROS_BI_H
#define PG_MICROS_BI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/error.h"

/* A buffer of this size always holds a token handed out by pg_bi_token. */
#define PG_BI_TOKEN_MAX 8192
/* Reply cap of the data calls (a day of a busy location). */
#define PG_BI_MAX_RESPONSE ((size_t)64 << 20)
/* How long a failed renewal is remembered before the next caller may try again. */
#define PG_BI_FAIL_HOLD_MS 1000
/* The redirect URI Oracle prescribes for machine clients. */
#define PG_BI_REDIRECT_URI "apiaccount://callback"

struct pg_bi_config {
    const char *base_url;      /* app server, e.g. "https://simphony-home.<region>..." (http for
                                  tests); no trailing path */
    const char *auth_base_url; /* identity server (the API account's "Authentication Server URL");
                                  NULL: base_url */
    const char *org;           /* enterprise short name: /bi/v1/{org}/... and the sign-in orgname */
    const char *client_id;     /* the API account's client id (base64) */
    const char *username;
    const char *password;         /* secret: copied, wiped on free, never logged */
    const char *application_name; /* the requests' applicationName (<= 128); NULL: "posgate" */
    int connect_timeout_ms;       /* <= 0: 5000 */
    int timeout_ms;               /* one request; <= 0: 60000 (each call is also bounded by its
                                     deadline) */
    int renew_before_s;           /* renew this long before the token expires; <= 0 or more than
                                     half its life: half its life */
    int dimension_ttl_s;          /* dimension cache lifetime; <= 0: 3600 */
};

struct pg_bi; /* opaque */

/**
 * Create a client. Validates the configuration (http(s) URLs, org of [A-Za-z0-9._-], client_id,
 * username and password non-empty). No network traffic.
 * Returns PG_OK, PG_EINVAL, PG_ENOMEM.
 * Ownership: c and its strings are borrowed and copied; *out is new, free with pg_bi_free.
 */
int pg_bi_new(const struct pg_bi_config *c, struct pg_bi **out) PG_WARN_UNUSED;

/** Free a client (password and tokens wiped; cached dimensions released). NULL is a no-op. No
 * call may be in progress. */
void pg_bi_free(struct pg_bi *b);

/**
 * Copy a valid id_token into token, signing in or renewing as the file comment describes.
 * deadline_ms (pg_now_ms() clock) bounds the wait for another caller's renewal and this caller's
 * own requests.
 * Returns PG_OK; PG_EAUTH (bad client id, credentials refused, password expired, code or
 * verifier refused); PG_EUNAVAIL (identity server unreachable, 429/5xx, unusable reply);
 * PG_ETIMEDOUT; PG_ETOOLARGE (tokensz too small: use PG_BI_TOKEN_MAX); PG_EINVAL; PG_ENOMEM.
 * Ownership: writes a NUL-terminated string into the caller's buffer ("" on failure).
 */
int pg_bi_token(struct pg_bi *b, int64_t deadline_ms, char *token, size_t tokensz) PG_WARN_UNUSED;

/** After a 401: forget the cached id_token, but only when it is still the one the caller used
 * (so N concurrent 401s cause one renewal). The refresh token is kept. token is borrowed. */
void pg_bi_invalidate(struct pg_bi *b, const char *token);

/** Counters for tests and /metrics: full sign-ins, refresh grants, failed renewals. */
void pg_bi_stats(struct pg_bi *b,
                 unsigned long long *signins,
                 unsigned long long *refreshes,
                 unsigned long long *failures);

enum pg_bi_date_kind { PG_BI_BUS_DT, PG_BI_OPN_BUS_DT, PG_BI_CLSD_BUS_DT };

/**
 * getGuestChecks (§1.4) for one location and business date. date is "YYYY-MM-DD" (a real
 * calendar date) sent as busDt, opnBusDt or clsdBusDt per kind (exactly one of them);
 * changed_since_utc (NULL: none) is "YYYY-MM-DDTHH:MM:SS" - a "Z", an offset or fractional
 * seconds are rejected (PG_EINVAL), since the API refuses them; closed_only sends
 * "clsdGuestChecksOnly":true. A 401 causes one renewal and one retry. retry_after_s and why may
 * be NULL.
 * Returns: see the file comment.
 * Ownership: strings borrowed; *resp is new (the whole body: curUTC, locRef, guestChecks),
 * caller json_decref()s it; NULL on failure.
 */
int pg_bi_guest_checks(struct pg_bi *b,
                       const char *loc_ref,
                       enum pg_bi_date_kind kind,
                       const char *date,
                       const char *changed_since_utc,
                       int closed_only,
                       int64_t deadline_ms,
                       json_t **resp,
                       int *retry_after_s,
                       char *why,
                       size_t whysz) PG_WARN_UNUSED;

/*
 * getGuestCheckExtensibilityDetails: the extensibility data Extension Applications wrote on check
 * headers (e.g. appName/dataName "memberId"/data = a loyalty id). getGuestChecks does not carry it.
 * What the Oracle BI API reference (back-office 20.1 biapi,
 * op-bi-v1-orgidentifier-getguestcheckextensibilitydetails-post.html, read through the docs
 * search index, only the page's first part was retrievable) and micros-wire.md §2 say:
 *   [C] POST /bi/v1/{orgIdentifier}/getGuestCheckExtensibilityDetails, request
 * gstChkExtRequestPayload: locRef (required, <= 99), opnBusDt (required, date: "the date the guest
 * check was opened / re-opened"), applicationName (<= 128, since 20.1.10), include and
 * searchCriteria (<= 2000). No busDt/clsdBusDt and no changedSinceUTC in 20.1: a whole opening date
 * every call. [C] 200 root guestCheckExtDetails: "guest check extensibility transactions for the
 * specified location and business date", with locRef (required). [S] revenueCenters[] (by revenue
 * center: rvcNum + guestChecks[]), as the sibling getGuestCheckLineItemExtDetails documents
 * (revenueCenters[] of {rvcNum, detailLines[]}, both omitted when null) and micros-wire.md §2 notes
 * (revenueCenters[].guestChecks[]). [I] NOT verified, our choice: opnBusDt echoed at the root; each
 * guestChecks[] element is {guestCheckId, extensibilityDetails:[{appName, dataName, dataType, data,
 * displayName}]}. Entry names follow the check extension shape of micros-wire.md §2 and the POS
 * API's Add(applicationName, displayText, dataName, data). pg_bi_ext_index therefore also accepts
 * applicationName / displayText, and a guestChecks[] element that is itself one detail row
 * (guestCheckId + dataName + data, no extensibilityDetails array).
 */

/**
 * getGuestCheckExtensibilityDetails for loc_ref and opn_bus_dt ("YYYY-MM-DD"). Same conventions
 * as pg_bi_guest_checks (token, one renewal on 401, timeouts, reply cap, error mapping).
 * Returns: see the file comment; PG_EPROTO when revenueCenters is present but not an array.
 * Ownership: *resp new (the whole body), caller json_decref()s it; NULL on failure.
 */
int pg_bi_guest_check_ext(struct pg_bi *b,
                          const char *loc_ref,
                          const char *opn_bus_dt,
                          int64_t deadline_ms,
                          json_t **resp,
                          int *retry_after_s,
                          char *why,
                          size_t whysz) PG_WARN_UNUSED;

/**
 * Index a getGuestCheckExtensibilityDetails reply by check: *out = {"<guestCheckId>": [entry,
 * ...]}, each entry normalised to the check `extensions` shape sync/match.h reads: {appName,
 * dataName, dataType, data, displayName} (members absent in the reply are left out; an entry
 * without dataName or a string data is skipped). Entries of one check found under several
 * revenue centers are concatenated. Returns PG_OK, PG_EPROTO (a malformed container), PG_ENOMEM.
 * Ownership: reply borrowed; *out new.
 */
int pg_bi_ext_index(const json_t *reply, json_t **out) PG_WARN_UNUSED;

/**
 * A dimension operation (§1.5) for loc_ref, cached per (name, loc_ref) for dimension_ttl_s.
 * name: getLocationDimensions (loc_ref may be NULL: the whole enterprise),
 * getRevenueCenterDimensions, getMenuItemDimensions, getTenderMediaDimensions,
 * getDiscountDimensions, getServiceChargeDimensions, getTaxDimensions, getOrderTypeDimensions,
 * getOrderChannelDimensions, getReasonCodeDimensions, getEmployeeDimensions,
 * getJobCodeDimensions, getCashierDimensions, getCashManagementItemDimensions.
 * Only successful replies are cached; two callers missing at once may both fetch.
 * Returns: see the file comment (429/5xx are PG_EUNAVAIL).
 * Ownership: *resp is a new reference to the cached object, shared with other callers: treat
 * it as read-only, json_decref() it when done.
 */
int pg_bi_dimension(struct pg_bi *b,
                    const char *name,
                    const char *loc_ref,
                    int64_t deadline_ms,
                    json_t **resp,
                    char *why,
                    size_t whysz) PG_WARN_UNUSED;

/** Drop every cached dimension (e.g. after the POS configuration changed). */
void pg_bi_dimension_flush(struct pg_bi *b);

/**
 * A daily totals operation (§1.6) for loc_ref and bus_dt ("YYYY-MM-DD"): getControlDailyTotals,
 * getOperationsDailyTotals, getTenderMediaDailyTotals, getDiscountDailyTotals,
 * getServiceChargeDailyTotals, getTaxDailyTotals, getMenuItemDailyTotals. Not cached (totals
 * are recomputed when late data arrives).
 * Returns: see the file comment. Ownership: *resp new, caller json_decref()s it.
 */
int pg_bi_daily_totals(struct pg_bi *b,
                       const char *name,
                       const char *loc_ref,
                       const char *bus_dt,
                       int64_t deadline_ms,
                       json_t **resp,
                       char *why,
                       size_t whysz) PG_WARN_UNUSED;

/**
 * getControlDailyTotals (§1.6) on the basis kind names: clsdBusDt (checks closed on date — what
 * reconciliation compares with orders dated by their closing business date), opnBusDt, or busDt
 * (the union: a check spanning two dates counts on both). Not cached. Returns: see the file
 * comment. Ownership: *resp new, caller json_decref()s it.
 */
int pg_bi_control_totals(struct pg_bi *b,
                         const char *loc_ref,
                         enum pg_bi_date_kind kind,
                         const char *date,
                         int64_t deadline_ms,
                         json_t **resp,
                         char *why,
                         size_t whysz) PG_WARN_UNUSED;

/**
 * getLatestBusDt (§1.3; on a 404 the alias getLatestBusinessDate is tried once). Copies
 * latestBusDt into bus_dt and curUTC into cur_utc (cur_utc may be NULL; "" when absent).
 * Returns: see the file comment; PG_EPROTO when latestBusDt is missing or malformed;
 * PG_ETOOLARGE when a buffer is too small (11 and 20 bytes always suffice).
 */
int pg_bi_latest_bus_dt(struct pg_bi *b,
                        const char *loc_ref,
                        int64_t deadline_ms,
                        char *bus_dt,
                        size_t sz,
                        char *cur_utc,
                        size_t cusz) PG_WARN_UNUSED;

/* ---- exposed for tests ---- */

/** 1 when s is "YYYY-MM-DD" and a real calendar date (leap years honoured), else 0. */
int pg_bi_valid_date(const char *s);

/** 1 when s is "YYYY-MM-DDTHH:MM:SS" exactly (valid date and time, no zone, no fraction). */
int pg_bi_valid_utc(const char *s);

/** Write a fresh PKCE code_verifier (64 chars of [A-Za-z0-9-_]) into out (sz >= 65). */
int pg_bi_pkce_verifier(char *out, size_t sz) PG_WARN_UNUSED;

/** code_challenge = BASE64URL(SHA256(verifier)), unpadded (43 chars; sz >= 44). PG_EINVAL
 * unless verifier is 43-128 chars of the RFC 7636 unreserved set. */
int pg_bi_pkce_challenge(const char *verifier, char *out, size_t sz) PG_WARN_UNUSED;

/**
 * The getGuestChecks request body, validated as pg_bi_guest_checks does (application_name NULL:
 * "posgate"; loc_ref 1-99 chars).
 * Ownership: *body is new compact JSON, caller free()s it; NULL on failure (PG_EINVAL/ENOMEM).
 */
int pg_bi_build_request(const char *application_name,
                        const char *loc_ref,
                        enum pg_bi_date_kind kind,
                        const char *date,
                        const char *changed_since_utc,
                        int closed_only,
                        char **body) PG_WARN_UNUSED;

/** The exp claim (epoch seconds) of a JWT's payload, without verifying it; -1 when absent. */
int64_t pg_bi_jwt_exp(const char *jwt);

#endif
