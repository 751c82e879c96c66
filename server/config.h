/*
 * The gateway's configuration: one JSON file, validated against one declarative table.
 *
 * Every key has a type, a range (numbers), a default or a "required" mark, and a flag saying
 * whether it is a secret. Unknown keys are rejected by their full dotted name, so a typo never
 * silently falls back to a default. Secrets may be written as "env:NAME" (an environment
 * variable) or "file:PATH" (the file's contents, trailing newline removed).
 */
#ifndef PG_CONFIG_H
#define PG_CONFIG_H

#include <stddef.h>

#include <jansson.h>

#include "server/error.h"
#include "server/log.h"

struct pg_config {
    /* listen */
    char *listen_address;
    int listen_port;
    /* http */
    int http_threads;
    int http_workers;
    int http_slow_workers;
    int http_connection_timeout_s;
    int http_connection_limit;
    int http_per_ip_connection_limit;
    int http_header_max_bytes;
    int http_body_max_bytes;
    int http_shutdown_grace_ms;
    /* log */
    enum pg_log_level log_level;
    /* redis */
    char *redis_url;
    char *redis_password; /* secret; NULL when not set */
    int redis_connect_timeout_ms;
    int redis_command_timeout_ms;
    int redis_reconnect_min_ms;
    int redis_reconnect_max_ms;
    /* salesforce: inbound Outbound Messages and Platform Events */
    char **sf_org_ids; /* NULL-terminated; never NULL */
    int sf_outbound_body_max;
    int sf_outbound_dedupe_ttl_s;
    int sf_events_max;
    int sf_events_body_max;
    int sf_events_dedupe_ttl_s;
    char *sf_jwt_iss;
    char *sf_jwt_aud;
    int sf_jwt_skew_s;
    json_t *sf_jwt_keys; /* {"kid": {"alg": "RS256", "key": "file:..."}}; validated by auth */
    json_t *mapping;     /* sObject / event type → field map; validated by sync */
    /* push to MICROS */
    int push_enabled;
    char *push_target; /* "gl" | "webhook" */
    int push_workers;
    int push_retry_base_ms;
    int push_retry_cap_ms;
    int push_max_attempts;
    int push_reclaim_idle_ms;
    int push_lock_ms;
    char *gl_url;
    char *gl_logon;
    char *gl_password;
    char *gl_request_source;
    json_t *gl_columns; /* canonical field → G&L column */
    int gl_create_missing;
    char **gl_retryable_host_codes;
    int gl_connect_timeout_ms;
    int gl_timeout_ms;
    char *webhook_url;
    char *webhook_secret;
    int webhook_connect_timeout_ms;
    int webhook_timeout_ms;
    /* POS lookups */
    char *lookup_object;
    char *lookup_loyalty_field;
    char *lookup_card_field;
    char *lookup_email_field;
    char *lookup_phone_field;
    int lookup_cache_ttl_s;
    int lookup_negative_ttl_s;
    int lookup_stale_max_age_s;
    int lookup_budget_ms;
    char *lookup_default_country;
    int lookup_rate_per_minute;
    json_t *lookup_tiers; /* tier → {"discount_pct": n, "service_charge_pct": n, "greeting": s} */
    json_t *lookup_stations; /* station key id → {"key_hash", "location", "stores": [...]} */
    /* Salesforce REST */
    char *sf_login_url;
    char *sf_audience;
    char *sf_client_id;
    char *sf_username;
    char *sf_private_key; /* secret: PEM */
    char *sf_api_version;
    int sf_token_ttl_s;
    /* partners */
    char *partner_jwt_iss;
    char *partner_jwt_aud;
    int partner_jwt_skew_s;
    json_t *partner_jwt_keys; /* same shape as salesforce.events_jwt.keys; several = rotation */
    /* MICROS → Salesforce (checks.*): see README "MICROS → Salesforce" */
    char *bi_base_url;
    char *bi_auth_base_url;
    char *bi_org;
    char *bi_client_id;
    char *bi_username;
    char *bi_password; /* secret */
    char *bi_application_name;
    int bi_timeout_ms;
    int poll_enabled;
    int poll_interval_s;
    int poll_repoll_days;
    int poll_backoff_max_s;
    char **poll_locations;  /* NULL-terminated; empty: every location of checks.transform */
    int poll_concurrency;   /* poll cycles running at once (memory bound) */
    int poll_extensibility; /* fetch getGuestCheckExtensibilityDetails for polled checks */
    int checks_body_max;
    int checks_push_max;
    json_t *checks_transform; /* validated by sync/transform.h */
    int load_enabled;
    int load_workers;
    int load_retry_base_ms;
    int load_retry_cap_ms;
    int load_max_attempts;
    int load_reclaim_idle_ms;
    int load_limit_pause_s;
    int load_create_products;
    /* the PricebookEntry external id field the loader references; the org's standard
     * Pricebook2Id (NULL: not needed); one Salesforce call's timeout; a check's load lease */
    char *load_pbe_ext_field;
    char *load_std_pricebook;
    int load_timeout_ms;
    int load_lock_ms;
    int load_batch_checks;   /* checks a loader worker takes and loads together (1..200) */
    json_t *checks_matching; /* validated by sync/match.h */
    int recon_enabled;
    int recon_interval_s;
    /* operators */
    char **admin_key_hashes; /* "sha256:<hex>" of each admin API key */
};

/** Largest config file accepted. */
#define PG_CONFIG_MAX_BYTES (4 << 20)

/**
 * Load and validate the file at path. On failure, err receives one line naming the problem
 * (the key, the expected type or range) and nothing is allocated.
 * Ownership: *out is new; free with pg_config_free.
 */
int pg_config_load(const char *path, struct pg_config **out, char *err, size_t errsz)
    PG_WARN_UNUSED;

/** Same as pg_config_load for an in-memory document (tests). */
int pg_config_parse(const char *text, size_t len, struct pg_config **out, char *err, size_t errsz)
    PG_WARN_UNUSED;

/**
 * Resolve a secret reference: "env:NAME", "file:PATH" or a literal value.
 * Ownership: *out is new (free()).
 */
int pg_config_secret(const char *ref, char **out, char *err, size_t errsz) PG_WARN_UNUSED;

void pg_config_free(struct pg_config *c);

#endif
