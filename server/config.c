#include "server/config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "server/util.h"

enum cfg_type {
    CFG_STR,
    CFG_INT,
    CFG_BOOL,
    CFG_SECRET,
    CFG_LOGLEVEL,
    CFG_STRLIST, /* array of non-empty strings → NULL-terminated char ** */
    CFG_JSON,    /* an object kept as JSON; the module that owns it validates it */
};

/* One configuration key. Defaults apply when the key is absent and it is not required. */
struct cfg_key {
    const char *path; /* dotted: "http.threads" */
    enum cfg_type type;
    size_t offset;
    int required;
    long long min, max;
    long long def_int; /* CFG_INT; for http.threads, 0 means "number of cores" */
    const char *def_str;
};

#define OFF(f) offsetof(struct pg_config, f)

static const struct cfg_key keys[] = {
    {"listen.address", CFG_STR, OFF(listen_address), 0, 0, 0, 0, "127.0.0.1"},
    {"listen.port", CFG_INT, OFF(listen_port), 0, 0, 65535, 8080, NULL},
    {"http.threads", CFG_INT, OFF(http_threads), 0, 0, 256, 0, NULL},
    {"http.workers", CFG_INT, OFF(http_workers), 0, 1, 1024, 16, NULL},
    {"http.slow_workers", CFG_INT, OFF(http_slow_workers), 0, 1, 1024, 32, NULL},
    {"http.connection_timeout_s", CFG_INT, OFF(http_connection_timeout_s), 0, 1, 3600, 30, NULL},
    {"http.connection_limit", CFG_INT, OFF(http_connection_limit), 0, 1, 100000, 1024, NULL},
    {"http.per_ip_connection_limit", CFG_INT, OFF(http_per_ip_connection_limit), 0, 0, 100000, 0,
     NULL},
    {"http.header_max_bytes", CFG_INT, OFF(http_header_max_bytes), 0, 4096, 1 << 20, 32768, NULL},
    {"http.body_max_bytes", CFG_INT, OFF(http_body_max_bytes), 0, 1024, 64 << 20, 1 << 20, NULL},
    {"http.shutdown_grace_ms", CFG_INT, OFF(http_shutdown_grace_ms), 0, 0, 600000, 10000, NULL},
    {"log.level", CFG_LOGLEVEL, OFF(log_level), 0, 0, 0, 0, "info"},
    {"redis.url", CFG_STR, OFF(redis_url), 1, 0, 0, 0, NULL},
    {"redis.password", CFG_SECRET, OFF(redis_password), 0, 0, 0, 0, NULL},
    {"redis.connect_timeout_ms", CFG_INT, OFF(redis_connect_timeout_ms), 0, 10, 60000, 500, NULL},
    {"redis.command_timeout_ms", CFG_INT, OFF(redis_command_timeout_ms), 0, 10, 60000, 500, NULL},
    {"redis.reconnect_min_ms", CFG_INT, OFF(redis_reconnect_min_ms), 0, 1, 60000, 50, NULL},
    {"redis.reconnect_max_ms", CFG_INT, OFF(redis_reconnect_max_ms), 0, 1, 600000, 2000, NULL},
    /* Salesforce → posgate */
    {"salesforce.org_ids", CFG_STRLIST, OFF(sf_org_ids), 0, 0, 0, 0, NULL},
    {"salesforce.outbound_body_max_bytes", CFG_INT, OFF(sf_outbound_body_max), 0, 1024, 16 << 20,
     1 << 20, NULL},
    {"salesforce.outbound_dedupe_ttl_s", CFG_INT, OFF(sf_outbound_dedupe_ttl_s), 0, 86400,
     30 * 86400, 48 * 3600, NULL},
    {"salesforce.events_max", CFG_INT, OFF(sf_events_max), 0, 1, 1000, 200, NULL},
    {"salesforce.events_body_max_bytes", CFG_INT, OFF(sf_events_body_max), 0, 1024, 16 << 20,
     1 << 20, NULL},
    {"salesforce.events_dedupe_ttl_s", CFG_INT, OFF(sf_events_dedupe_ttl_s), 0, 72 * 3600,
     30 * 86400, 96 * 3600, NULL},
    {"salesforce.events_jwt.iss", CFG_STR, OFF(sf_jwt_iss), 0, 0, 0, 0, NULL},
    {"salesforce.events_jwt.aud", CFG_STR, OFF(sf_jwt_aud), 0, 0, 0, 0, NULL},
    {"salesforce.events_jwt.skew_s", CFG_INT, OFF(sf_jwt_skew_s), 0, 0, 600, 60, NULL},
    {"salesforce.events_jwt.keys", CFG_JSON, OFF(sf_jwt_keys), 0, 0, 0, 0, NULL},
    {"mapping", CFG_JSON, OFF(mapping), 0, 0, 0, 0, NULL},
    /* posgate → MICROS */
    {"push.enabled", CFG_BOOL, OFF(push_enabled), 0, 0, 1, 0, NULL},
    {"push.target", CFG_STR, OFF(push_target), 0, 0, 0, 0, "gl"},
    {"push.workers", CFG_INT, OFF(push_workers), 0, 1, 256, 2, NULL},
    {"push.retry_base_ms", CFG_INT, OFF(push_retry_base_ms), 0, 1, 3600000, 500, NULL},
    {"push.retry_cap_ms", CFG_INT, OFF(push_retry_cap_ms), 0, 1, 86400000, 300000, NULL},
    {"push.max_attempts", CFG_INT, OFF(push_max_attempts), 0, 1, 1000, 10, NULL},
    {"push.reclaim_idle_ms", CFG_INT, OFF(push_reclaim_idle_ms), 0, 100, 3600000, 60000, NULL},
    {"push.lock_ms", CFG_INT, OFF(push_lock_ms), 0, 100, 600000, 30000, NULL},
    {"push.gl.url", CFG_STR, OFF(gl_url), 0, 0, 0, 0, NULL},
    {"push.gl.logon", CFG_STR, OFF(gl_logon), 0, 0, 0, 0, NULL},
    {"push.gl.password", CFG_SECRET, OFF(gl_password), 0, 0, 0, 0, NULL},
    {"push.gl.request_source", CFG_STR, OFF(gl_request_source), 0, 0, 0, 0, "posgate"},
    {"push.gl.columns", CFG_JSON, OFF(gl_columns), 0, 0, 0, 0, NULL},
    {"push.gl.create_missing", CFG_BOOL, OFF(gl_create_missing), 0, 0, 1, 1, NULL},
    {"push.gl.retryable_host_codes", CFG_STRLIST, OFF(gl_retryable_host_codes), 0, 0, 0, 0, NULL},
    {"push.gl.connect_timeout_ms", CFG_INT, OFF(gl_connect_timeout_ms), 0, 10, 60000, 1000, NULL},
    {"push.gl.timeout_ms", CFG_INT, OFF(gl_timeout_ms), 0, 10, 120000, 10000, NULL},
    {"push.webhook.url", CFG_STR, OFF(webhook_url), 0, 0, 0, 0, NULL},
    {"push.webhook.secret", CFG_SECRET, OFF(webhook_secret), 0, 0, 0, 0, NULL},
    {"push.webhook.connect_timeout_ms", CFG_INT, OFF(webhook_connect_timeout_ms), 0, 10, 60000,
     1000, NULL},
    {"push.webhook.timeout_ms", CFG_INT, OFF(webhook_timeout_ms), 0, 10, 120000, 10000, NULL},
    /* POS lookups */
    {"lookup.object", CFG_STR, OFF(lookup_object), 0, 0, 0, 0, "Contact"},
    {"lookup.loyalty_id_field", CFG_STR, OFF(lookup_loyalty_field), 0, 0, 0, 0, "Loyalty_Id__c"},
    {"lookup.card_field", CFG_STR, OFF(lookup_card_field), 0, 0, 0, 0, "Loyalty_Card__c"},
    {"lookup.email_field", CFG_STR, OFF(lookup_email_field), 0, 0, 0, 0, "Email"},
    {"lookup.phone_field", CFG_STR, OFF(lookup_phone_field), 0, 0, 0, 0, "MobilePhone"},
    {"lookup.cache_ttl_s", CFG_INT, OFF(lookup_cache_ttl_s), 0, 1, 86400, 300, NULL},
    {"lookup.negative_ttl_s", CFG_INT, OFF(lookup_negative_ttl_s), 0, 1, 3600, 30, NULL},
    {"lookup.stale_max_age_s", CFG_INT, OFF(lookup_stale_max_age_s), 0, 1, 30 * 86400, 86400, NULL},
    {"lookup.budget_ms", CFG_INT, OFF(lookup_budget_ms), 0, 50, 10000, 800, NULL},
    {"lookup.default_country", CFG_STR, OFF(lookup_default_country), 0, 0, 0, 0, "US"},
    {"lookup.rate_limit_per_minute", CFG_INT, OFF(lookup_rate_per_minute), 0, 1, 1000000, 600,
     NULL},
    {"lookup.tiers", CFG_JSON, OFF(lookup_tiers), 0, 0, 0, 0, NULL},
    {"lookup.stations", CFG_JSON, OFF(lookup_stations), 0, 0, 0, 0, NULL},
    /* Salesforce REST (lookups on a cache miss) */
    {"salesforce.rest.login_url", CFG_STR, OFF(sf_login_url), 0, 0, 0, 0, NULL},
    {"salesforce.rest.audience", CFG_STR, OFF(sf_audience), 0, 0, 0, 0, NULL},
    {"salesforce.rest.client_id", CFG_STR, OFF(sf_client_id), 0, 0, 0, 0, NULL},
    {"salesforce.rest.username", CFG_STR, OFF(sf_username), 0, 0, 0, 0, NULL},
    {"salesforce.rest.private_key", CFG_SECRET, OFF(sf_private_key), 0, 0, 0, 0, NULL},
    {"salesforce.rest.api_version", CFG_STR, OFF(sf_api_version), 0, 0, 0, 0, "66.0"},
    {"salesforce.rest.token_ttl_s", CFG_INT, OFF(sf_token_ttl_s), 0, 60, 86400, 1800, NULL},
    /* partners: bearer JWTs with scopes */
    {"partners.jwt.iss", CFG_STR, OFF(partner_jwt_iss), 0, 0, 0, 0, NULL},
    {"partners.jwt.aud", CFG_STR, OFF(partner_jwt_aud), 0, 0, 0, 0, NULL},
    {"partners.jwt.skew_s", CFG_INT, OFF(partner_jwt_skew_s), 0, 0, 600, 60, NULL},
    {"partners.jwt.keys", CFG_JSON, OFF(partner_jwt_keys), 0, 0, 0, 0, NULL},
    /* MICROS → Salesforce: BI API, poller, push intake, transform, loader, matching, reconcile */
    {"checks.bi.base_url", CFG_STR, OFF(bi_base_url), 0, 0, 0, 0, NULL},
    {"checks.bi.auth_base_url", CFG_STR, OFF(bi_auth_base_url), 0, 0, 0, 0, NULL},
    {"checks.bi.org", CFG_STR, OFF(bi_org), 0, 0, 0, 0, NULL},
    {"checks.bi.client_id", CFG_STR, OFF(bi_client_id), 0, 0, 0, 0, NULL},
    {"checks.bi.username", CFG_STR, OFF(bi_username), 0, 0, 0, 0, NULL},
    {"checks.bi.password", CFG_SECRET, OFF(bi_password), 0, 0, 0, 0, NULL},
    {"checks.bi.application_name", CFG_STR, OFF(bi_application_name), 0, 0, 0, 0, "posgate"},
    {"checks.bi.timeout_ms", CFG_INT, OFF(bi_timeout_ms), 0, 100, 600000, 60000, NULL},
    {"checks.poll.enabled", CFG_BOOL, OFF(poll_enabled), 0, 0, 1, 0, NULL},
    {"checks.poll.interval_s", CFG_INT, OFF(poll_interval_s), 0, 1, 86400, 300, NULL},
    {"checks.poll.repoll_days", CFG_INT, OFF(poll_repoll_days), 0, 1, 31, 3, NULL},
    {"checks.poll.backoff_max_s", CFG_INT, OFF(poll_backoff_max_s), 0, 1, 86400, 900, NULL},
    {"checks.poll.locations", CFG_STRLIST, OFF(poll_locations), 0, 0, 0, 0, NULL},
    {"checks.poll.concurrency", CFG_INT, OFF(poll_concurrency), 0, 1, 256, 4, NULL},
    {"checks.poll.extensibility", CFG_BOOL, OFF(poll_extensibility), 0, 0, 1, 1, NULL},
    {"checks.push_body_max_bytes", CFG_INT, OFF(checks_body_max), 0, 1024, 64 << 20, 8 << 20, NULL},
    {"checks.push_max_checks", CFG_INT, OFF(checks_push_max), 0, 1, 10000, 500, NULL},
    {"checks.transform", CFG_JSON, OFF(checks_transform), 0, 0, 0, 0, NULL},
    {"checks.load.enabled", CFG_BOOL, OFF(load_enabled), 0, 0, 1, 0, NULL},
    {"checks.load.workers", CFG_INT, OFF(load_workers), 0, 1, 64, 2, NULL},
    {"checks.load.retry_base_ms", CFG_INT, OFF(load_retry_base_ms), 0, 1, 3600000, 1000, NULL},
    {"checks.load.retry_cap_ms", CFG_INT, OFF(load_retry_cap_ms), 0, 1, 86400000, 300000, NULL},
    {"checks.load.max_attempts", CFG_INT, OFF(load_max_attempts), 0, 1, 1000, 10, NULL},
    {"checks.load.reclaim_idle_ms", CFG_INT, OFF(load_reclaim_idle_ms), 0, 100, 3600000, 60000,
     NULL},
    {"checks.load.limit_pause_s", CFG_INT, OFF(load_limit_pause_s), 0, 1, 86400, 300, NULL},
    {"checks.load.create_missing_products", CFG_BOOL, OFF(load_create_products), 0, 0, 1, 0, NULL},
    {"checks.load.pricebook_entry_external_id_field", CFG_STR, OFF(load_pbe_ext_field), 0, 0, 0, 0,
     "POS_Price_Id__c"},
    {"checks.load.standard_pricebook_id", CFG_STR, OFF(load_std_pricebook), 0, 0, 0, 0, NULL},
    {"checks.load.timeout_ms", CFG_INT, OFF(load_timeout_ms), 0, 100, 600000, 30000, NULL},
    {"checks.load.lock_ms", CFG_INT, OFF(load_lock_ms), 0, 1000, 3600000, 120000, NULL},
    {"checks.load.batch_checks", CFG_INT, OFF(load_batch_checks), 0, 1, 200, 50, NULL},
    {"checks.matching", CFG_JSON, OFF(checks_matching), 0, 0, 0, 0, NULL},
    {"checks.reconcile.enabled", CFG_BOOL, OFF(recon_enabled), 0, 0, 1, 0, NULL},
    {"checks.reconcile.interval_s", CFG_INT, OFF(recon_interval_s), 0, 1, 86400, 3600, NULL},
    /* operators */
    {"admin.api_key_hashes", CFG_STRLIST, OFF(admin_key_hashes), 0, 0, 0, 0, NULL},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const struct cfg_key *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

/* True when some key lives below prefix (so prefix names a section). */
static int is_section(const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].path, prefix, n) == 0 && keys[i].path[n] == '.')
            return 1;
    return 0;
}

/* Reject any key the table does not know, naming it with its full path. */
static int check_unknown(json_t *obj, const char *prefix, char *err, size_t errsz)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
        if (find_key(path))
            continue;
        if (is_section(path)) {
            if (!json_is_object(v)) {
                snprintf(err, errsz, "config: %s: expected an object", path);
                return PG_ECONFIG;
            }
            int rc = check_unknown(v, path, err, errsz);
            if (rc)
                return rc;
            continue;
        }
        snprintf(err, errsz, "config: unknown key '%s'", path);
        return PG_ECONFIG;
    }
    return PG_OK;
}

static json_t *lookup(json_t *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = root;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, seg);
    return cur;
}

int pg_config_secret(const char *ref, char **out, char *err, size_t errsz)
{
    if (strncmp(ref, "env:", 4) == 0) {
        const char *v = getenv(ref + 4);
        if (!v || !*v) {
            snprintf(err, errsz, "environment variable %s is not set", ref + 4);
            return PG_ECONFIG;
        }
        *out = strdup(v);
        return *out ? PG_OK : PG_ENOMEM;
    }
    if (strncmp(ref, "file:", 5) == 0) {
        char *data = NULL;
        size_t len = 0;
        int rc = pg_read_file(ref + 5, 64 * 1024, &data, &len);
        if (rc) {
            snprintf(err, errsz, "cannot read secret file %s: %s", ref + 5, pg_strerror(rc));
            return PG_ECONFIG;
        }
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
            data[--len] = '\0';
        *out = data;
        return PG_OK;
    }
    *out = strdup(ref);
    return *out ? PG_OK : PG_ENOMEM;
}

static int
apply_key(struct pg_config *c, const struct cfg_key *k, json_t *v, char *err, size_t errsz)
{
    char *base = (char *)c;
    switch (k->type) {
    case CFG_INT: {
        long long n = k->def_int;
        if (v) {
            if (!json_is_integer(v)) {
                snprintf(err, errsz, "config: %s: expected an integer", k->path);
                return PG_ECONFIG;
            }
            n = json_integer_value(v);
            if (n < k->min || n > k->max) {
                snprintf(err, errsz, "config: %s: %lld is out of range %lld..%lld", k->path, n,
                         k->min, k->max);
                return PG_ECONFIG;
            }
        }
        *(int *)(base + k->offset) = (int)n;
        return PG_OK;
    }
    case CFG_STR:
    case CFG_SECRET: {
        const char *s = k->def_str;
        if (v) {
            if (!json_is_string(v) || json_string_length(v) == 0) {
                snprintf(err, errsz, "config: %s: expected a non-empty string", k->path);
                return PG_ECONFIG;
            }
            s = json_string_value(v);
        }
        char **dst = (char **)(base + k->offset);
        if (!s) {
            *dst = NULL;
            return PG_OK;
        }
        if (k->type == CFG_SECRET) {
            char why[256];
            int rc = pg_config_secret(s, dst, why, sizeof why);
            if (rc)
                snprintf(err, errsz, "config: %s: %s", k->path, why);
            return rc;
        }
        *dst = strdup(s);
        return *dst ? PG_OK : PG_ENOMEM;
    }
    case CFG_BOOL: {
        int b = (int)k->def_int;
        if (v) {
            if (!json_is_boolean(v)) {
                snprintf(err, errsz, "config: %s: expected true or false", k->path);
                return PG_ECONFIG;
            }
            b = json_is_true(v);
        }
        *(int *)(base + k->offset) = b;
        return PG_OK;
    }
    case CFG_STRLIST: {
        size_t n = v ? json_array_size(v) : 0;
        if (v && !json_is_array(v)) {
            snprintf(err, errsz, "config: %s: expected an array of strings", k->path);
            return PG_ECONFIG;
        }
        char **list = calloc(n + 1, sizeof *list);
        if (!list)
            return PG_ENOMEM;
        *(char ***)(base + k->offset) = list; /* owned from here: freed with the config */
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_string(e) || json_string_length(e) == 0) {
                snprintf(err, errsz, "config: %s[%zu]: expected a non-empty string", k->path, i);
                return PG_ECONFIG;
            }
            if (!(list[i] = strdup(json_string_value(e))))
                return PG_ENOMEM;
        }
        return PG_OK;
    }
    case CFG_JSON: {
        if (v && !json_is_object(v)) {
            snprintf(err, errsz, "config: %s: expected an object", k->path);
            return PG_ECONFIG;
        }
        *(json_t **)(base + k->offset) = v ? json_incref(v) : NULL;
        return PG_OK;
    }
    case CFG_LOGLEVEL: {
        const char *s = v ? json_string_value(v) : k->def_str;
        if (!s || pg_log_level_parse(s, (enum pg_log_level *)(base + k->offset)) != 0) {
            snprintf(err, errsz, "config: %s: expected one of debug, info, warn, error", k->path);
            return PG_ECONFIG;
        }
        return PG_OK;
    }
    }
    return PG_EINVAL;
}

/* Checks that involve more than one key. */
static int check_relations(const struct pg_config *c, char *err, size_t errsz)
{
    if (c->redis_reconnect_min_ms > c->redis_reconnect_max_ms) {
        snprintf(err, errsz,
                 "config: redis.reconnect_min_ms must not exceed redis.reconnect_max_ms");
        return PG_ECONFIG;
    }
    if (c->push_retry_base_ms > c->push_retry_cap_ms) {
        snprintf(err, errsz, "config: push.retry_base_ms must not exceed push.retry_cap_ms");
        return PG_ECONFIG;
    }
    if (strcmp(c->push_target, "gl") != 0 && strcmp(c->push_target, "webhook") != 0) {
        snprintf(err, errsz, "config: push.target: expected \"gl\" or \"webhook\"");
        return PG_ECONFIG;
    }
    if (c->push_enabled && strcmp(c->push_target, "gl") == 0 &&
        (!c->gl_url || !c->gl_logon || !c->gl_password)) {
        snprintf(err, errsz,
                 "config: push.target \"gl\" needs push.gl.url, push.gl.logon and "
                 "push.gl.password (or push.enabled false)");
        return PG_ECONFIG;
    }
    if (c->push_enabled && strcmp(c->push_target, "webhook") == 0 &&
        (!c->webhook_url || !c->webhook_secret)) {
        snprintf(err, errsz,
                 "config: push.target \"webhook\" needs push.webhook.url and "
                 "push.webhook.secret (or push.enabled false)");
        return PG_ECONFIG;
    }
    return PG_OK;
}

int pg_config_parse(const char *text, size_t len, struct pg_config **out, char *err, size_t errsz)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errsz, "config: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return PG_ECONFIG;
    }
    struct pg_config *c = NULL;
    int rc = PG_ECONFIG;
    if (!json_is_object(root)) {
        snprintf(err, errsz, "config: the top level must be a JSON object");
        goto out;
    }
    rc = check_unknown(root, "", err, errsz);
    if (rc)
        goto out;
    c = calloc(1, sizeof *c);
    if (!c) {
        rc = PG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        json_t *v = lookup(root, keys[i].path);
        if (!v && keys[i].required) {
            snprintf(err, errsz, "config: missing required key '%s'", keys[i].path);
            rc = PG_ECONFIG;
            goto out;
        }
        rc = apply_key(c, &keys[i], v, err, errsz);
        if (rc)
            goto out;
    }
    if (c->http_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->http_threads = n > 0 ? (int)n : 1;
    }
    rc = check_relations(c, err, errsz);
out:
    json_decref(root);
    if (rc) {
        pg_config_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

int pg_config_load(const char *path, struct pg_config **out, char *err, size_t errsz)
{
    char *text = NULL;
    size_t len = 0;
    int rc = pg_read_file(path, PG_CONFIG_MAX_BYTES, &text, &len);
    if (rc) {
        snprintf(err, errsz, "config: cannot read %s: %s", path, pg_strerror(rc));
        *out = NULL;
        return PG_ECONFIG;
    }
    rc = pg_config_parse(text, len, out, err, errsz);
    free(text);
    return rc;
}

void pg_config_free(struct pg_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        char *slot = (char *)c + keys[i].offset;
        if (keys[i].type == CFG_STR || keys[i].type == CFG_SECRET) {
            char **p = (char **)slot;
            if (keys[i].type == CFG_SECRET && *p)
                explicit_bzero(*p, strlen(*p)); /* secrets do not linger in freed memory */
            free(*p);
        } else if (keys[i].type == CFG_STRLIST) {
            char **list = *(char ***)slot;
            for (size_t j = 0; list && list[j]; j++)
                free(list[j]);
            free(list);
        } else if (keys[i].type == CFG_JSON) {
            json_decref(*(json_t **)slot);
        }
    }
    free(c);
}
