/*
 * Customer matching of the MICROS → Salesforce flow: which Salesforce Account a guest check's
 * Order belongs to (issue 6, salesforce-wire.md §6.2). The loader calls pg_match_check through its
 * hook (struct pg_loader_hooks.match) before it upserts the Order; "" keeps the location's walk-in
 * AccountId (transform.locations.<loc>.account_id).
 *
 * IDENTIFIERS, tried in this order; the first one that finds exactly one Contact wins:
 *   1. loyalty id: a check "extensions" entry whose dataName is one of loyalty.extension_names
 *      (the STS Gen2 / extensibility shape, micros-wire.md §2: {"dataName":"memberId","data":..}),
 *      else an "informationLines" entry starting with one of loyalty.info_line_prefixes
 *      ("LOYALTY 123" → "123"), else the first non-empty string at loyalty.paths. Trimmed.
 *   2. e-mail at email_paths (pg_norm_email: trimmed, lower-cased, syntax checked).
 *   3. phone at phone_paths, normalised to E.164 with default_country (pg_norm_phone).
 *   A path is dotted JSON keys into the check ("customer.email"). A value that does not normalise
 *   is skipped (counted as "invalid"), never sent to Salesforce.
 * Each identifier is one query: SELECT Id, <account_field> FROM <object> WHERE <field> = '<v>'
 * LIMIT 2 (built with pg_soql_select_eq: the value is escaped, names are validated here).
 *   0 records   → the next identifier.
 *   1 record    → its <account_field> (a Contact without an Account keeps the walk-in account).
 *   2 records   → AMBIGUOUS: an entry on the review stream pg:chk:review {loc, gcid, kind, value
 *                 (masked), candidates (comma-joined Ids), ts}, a warning log line, the
 *                 posgate_match_total{result="ambiguous"} counter, and the walk-in account. The
 *                 later identifiers are NOT tried: conflicting evidence is for a person to settle,
 *                 never guessed.
 *   A Salesforce error (unreachable, timeout, 5xx, auth) is returned as is, so the loader retries
 *   the check later rather than loading it with the wrong account.
 *
 * CACHE: each answer (account, "none", "ambiguous") is kept in Redis under
 *   pg:chk:match:<kind>:<sha256 hex of the normalised value> for cache_ttl_s (negative answers
 *   negative_ttl_s), so a day of checks of the same members asks Salesforce once per member and
 *   no e-mail or phone appears in a key name. cache_ttl_s 0 disables the cache. A Redis error
 *   while reading the cache only costs a query.
 *
 * CONFIGURATION ("checks.matching"; absent: matching is off and every order keeps the walk-in
 * account; unknown keys are rejected naming them):
 *   enabled               bool, default true
 *   loyalty               {"extension_names": ["memberId"], "info_line_prefixes": ["LOYALTY "],
 *                          "paths": ["customer.loyaltyId"]} (these are the defaults)
 *   email_paths           default ["customer.email"]
 *   phone_paths           default ["customer.phone"]
 *   object                default "Contact"
 *   loyalty_field         default "Loyalty_Id__c"
 *   email_field           default "Email" (SOQL '=' on text is case-insensitive)
 *   phone_field           default "Phone_E164__c" (Salesforce stores phones as typed, so exact
 *                         matching needs the E.164 copy, salesforce-wire.md §6.2)
 *   account_field         default "AccountId"
 *   default_country       default "US"
 *   no_match              "link_only" (the only rule implemented: the walk-in account is kept;
 *                         "create" — creating a Contact/Account when MICROS is the system of
 *                         record — is rejected as not supported yet)
 *   cache_ttl_s           default 86400 (0..2592000)
 *   negative_ttl_s        default 3600 (1..2592000)
 */
#ifndef PG_SYNC_MATCH_H
#define PG_SYNC_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/buf.h"
#include "server/error.h"
#include "sync/normalize.h"

struct pg_sf_rest;
struct pg_matcher; /* opaque */

/* Longest loyalty id accepted (longer values are not identifiers: skipped). */
#define PG_MATCH_LOYALTY_MAX 128

enum pg_match_kind { PG_MATCH_LOYALTY = 0, PG_MATCH_EMAIL, PG_MATCH_PHONE, PG_MATCH_KINDS };

/** "loyalty", "email", "phone". */
const char *pg_match_kind_name(enum pg_match_kind k);

/** The identifiers found on one check ("" when absent or invalid). */
struct pg_match_ids {
    char v[PG_MATCH_KINDS][PG_NORM_EMAIL_MAX]; /* holds every kind (loyalty ids are shorter) */
    int invalid; /* values present but not normalisable (not sent anywhere) */
};

/**
 * The Salesforce side of one identifier, injectable for tests: records (new JSON array, each
 * with "Id" and the account field) for SELECT ... WHERE field = value. Returns PG_OK or an error
 * code (with why) that pg_match_check passes on.
 */
typedef int (*pg_match_query_fn)(
    void *ud, const char *soql, int64_t deadline_ms, json_t **records, char *why, size_t whysz);

/**
 * Validate cfg (NULL or {"enabled": false}: matching off) and build a matcher that queries
 * Salesforce through rest (borrowed; may be NULL when a query function is set with
 * pg_match_set_query, or when matching is off). PG_ECONFIG with why naming the key on a bad
 * configuration. *out is new; free with pg_match_free.
 */
int pg_match_new(const json_t *cfg,
                 struct pg_sf_rest *rest,
                 struct pg_matcher **out,
                 char *why,
                 size_t whysz) PG_WARN_UNUSED;

void pg_match_free(struct pg_matcher *m);

/** 1 when matching is configured and enabled. */
int pg_match_enabled(const struct pg_matcher *m);

/** Replace the Salesforce query (tests). */
void pg_match_set_query(struct pg_matcher *m, pg_match_query_fn fn, void *ud);

/** Find and normalise the identifiers of a check (pure: no I/O). */
void pg_match_extract(const struct pg_matcher *m, const json_t *check, struct pg_match_ids *ids);

/** The outcome of pg_match_decide. */
struct pg_match_result {
    int found;               /* 1: exactly one record for kind */
    int ambiguous;           /* 1: two or more records for kind */
    enum pg_match_kind kind; /* the deciding identifier (when found or ambiguous) */
    char account_id[32];     /* found: the record's account ("" when it has none) */
    char candidates[160];    /* ambiguous: comma-joined record Ids */
    int queries;             /* Salesforce queries made */
    int cached;              /* answers taken from the cache */
};

/**
 * Apply the rule order to ids (queries through the configured query function; the Redis cache
 * only when use_cache). PG_OK with *res filled (neither found nor ambiguous: no match), or the
 * query's error.
 */
int pg_match_decide(struct pg_matcher *m,
                    const struct pg_match_ids *ids,
                    int use_cache,
                    int64_t deadline_ms,
                    struct pg_match_result *res,
                    char *why,
                    size_t whysz) PG_WARN_UNUSED;

/**
 * The loader hook (struct pg_loader_hooks.match; ud = struct pg_matcher *): extract, decide (with
 * the cache), report an ambiguity to pg:chk:review. PG_OK with account_id ("" = keep the walk-in
 * AccountId) or the Salesforce error. Matching off: PG_OK with "". why gets a short reason
 * ("loyalty", "email", "phone", "no match", "ambiguous email", "off").
 */
int pg_match_check(void *ud,
                   const json_t *check,
                   const char *loc_ref,
                   int64_t deadline_ms,
                   char *account_id,
                   size_t sz,
                   char *why,
                   size_t whysz) PG_WARN_UNUSED;

/** Prometheus text (a pg_metrics collector; the process registers it once, server/main.c):
 * posgate_match_total{result="loyalty|email|phone|none|ambiguous|error"}. */
int pg_match_metrics(struct pg_buf *out) PG_WARN_UNUSED;

#endif
