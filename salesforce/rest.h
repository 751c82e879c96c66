/*
 * The Salesforce REST calls a loyalty lookup needs (salesforce-wire.md §4.1, §4.2, §4.6, §4.7):
 * GET by external id, GET by record id, GET query. Each call is bounded by the cashier's budget
 * (a pg_now_ms() deadline): the token wait and every HTTP timeout are cut to what is left.
 *
 * Conventions shared by every call:
 *  PG_OK         200; the result is handed over.
 *  PG_ENOTFOUND  404 (err->code "NOT_FOUND").
 *  PG_EEXIST     300 Multiple Choices: the external id is not unique (get_by_external_id).
 *  PG_EUNAVAIL   403 REQUEST_LIMIT_EXCEEDED (the org's API allocation is spent: an outage, never
 *                retried here), 429, 5xx, connection failure, or the token endpoint unavailable.
 *  PG_ETIMEDOUT  the deadline passed (waiting for a token, connecting or waiting for a reply).
 *  PG_EAUTH      no token could be obtained (grant refused), or 401 again after one renewal.
 *  PG_EFORBIDDEN 403 other than REQUEST_LIMIT_EXCEEDED (INSUFFICIENT_ACCESS...: do not retry).
 *  PG_EPROTO     an unparseable or oversized reply, a 400 (MALFORMED_QUERY, INVALID_FIELD...:
 *                our configuration is wrong) or any other status.
 *  PG_EINVAL     a bad argument (identifier, id or empty value); nothing is sent.
 * On a 401 INVALID_SESSION_ID the token is invalidated and the call is retried once with a
 * renewed token, if the deadline allows.
 * err (may be NULL) is always filled: status (0 without a reply), code (Salesforce's errorCode,
 * "MULTIPLE_CHOICES" for a 300, "" otherwise) and message (Salesforce's, or the transport
 * error).
 * Thread-safe: one pg_sf_rest is shared by every worker.
 */
#ifndef PG_SF_REST_H
#define PG_SF_REST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "salesforce/oauth.h"
#include "server/error.h"

struct pg_sf_rest_config {
    const char *api_version;   /* "66.0" (digits '.' digits); NULL: "66.0" */
    int connect_timeout_ms;    /* <= 0: 1000; also cut to the time left before the deadline */
    int timeout_ms;            /* whole request; <= 0: 5000; also cut to the time left */
    size_t max_response_bytes; /* 0: 1 MiB */
};

struct pg_sf_rest; /* opaque */

struct pg_sf_error {
    char code[64]; /* errorCode, e.g. "NOT_FOUND", "REQUEST_LIMIT_EXCEEDED" */
    char message[256];
    long status;
};

/**
 * Create a REST client. Returns PG_OK, PG_EINVAL (bad api_version, NULL oauth), PG_ENOMEM.
 * Ownership: c copied; oauth borrowed (must outlive the client); *out new, free with
 * pg_sf_rest_free.
 */
int pg_sf_rest_new(const struct pg_sf_rest_config *c,
                   struct pg_sf_oauth *oauth,
                   struct pg_sf_rest **out) PG_WARN_UNUSED;

/** Free a client (not the oauth it borrows). NULL is a no-op. */
void pg_sf_rest_free(struct pg_sf_rest *r);

/**
 * GET /services/data/v<ver>/sobjects/<object>/<field>/<url-encoded value>?fields=<fields>.
 * object and field must be identifiers, fields a field list (pg_soql_fields_ok) or NULL (all
 * fields), value non-empty.
 * Ownership: strings borrowed; on PG_OK *record is a new JSON object (caller json_decref),
 * otherwise NULL.
 */
int pg_sf_rest_get_by_external_id(struct pg_sf_rest *r,
                                  const char *object,
                                  const char *field,
                                  const char *value,
                                  const char *fields,
                                  int64_t deadline_ms,
                                  json_t **record,
                                  struct pg_sf_error *err) PG_WARN_UNUSED;

/**
 * GET /services/data/v<ver>/sobjects/<object>/<id>?fields=<fields>; id must be a valid 15- or
 * 18-character Salesforce id (PG_EINVAL otherwise). Same conventions and ownership.
 */
int pg_sf_rest_get_by_id(struct pg_sf_rest *r,
                         const char *object,
                         const char *id,
                         const char *fields,
                         int64_t deadline_ms,
                         json_t **record,
                         struct pg_sf_error *err) PG_WARN_UNUSED;

/**
 * GET /services/data/v<ver>/query?q=<url-encoded soql>. Build soql with pg_soql_select_eq.
 * Only the first batch is returned (lookups use LIMIT, far below a batch).
 * Ownership: soql borrowed; on PG_OK *records is a new JSON array (may be empty; caller
 * json_decref), otherwise NULL.
 */
int pg_sf_rest_query(struct pg_sf_rest *r,
                     const char *soql,
                     int64_t deadline_ms,
                     json_t **records,
                     struct pg_sf_error *err) PG_WARN_UNUSED;

/**
 * The same query with every batch: while the reply says "done": false, its nextRecordsUrl (a
 * path under /services/data/) is fetched too, within the same deadline. PG_ETOOLARGE when more
 * than max_records come back (nothing returned). Ownership as for pg_sf_rest_query.
 */
int pg_sf_rest_query_all(struct pg_sf_rest *r,
                         const char *soql,
                         size_t max_records,
                         int64_t deadline_ms,
                         json_t **records,
                         struct pg_sf_error *err) PG_WARN_UNUSED;

/** The last Sforce-Limit-Info "api-usage=N/M" seen: used and max, -1 when never seen. */
void pg_sf_rest_limits(const struct pg_sf_rest *r, long long *used, long long *max);

/**
 * Parse a Sforce-Limit-Info value ("api-usage=10018/100000", possibly followed by
 * "; api-bursts=1/750" or in another order). Returns PG_OK or PG_EINVAL. Exposed for tests.
 */
int pg_sf_rest_parse_limit_info(const char *value, long long *used, long long *max) PG_WARN_UNUSED;

#endif
