/*
 * posgate-sim configuration: one JSON file, every key documented in sim/README.md.
 *
 * Strict on purpose: an unknown key is an error naming it (a typo such as "prot" must not
 * silently leave a default in place), and so is a value of the wrong type or out of range.
 */
#include "sim/sim.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "server/log.h"
#include "server/util.h"

#define MIB (1024 * 1024)

/* Reject keys of obj not in allowed; the message lists all of them. */
static int
check_keys(json_t *obj, const char *where, const char *const *allowed, char *err, size_t errsz)
{
    char bad[256] = "";
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (*a)
            continue;
        size_t n = strlen(bad);
        snprintf(bad + n, sizeof bad - n, "%s\"%s\"", n ? ", " : "", k);
    }
    if (!bad[0])
        return PG_OK;
    snprintf(err, errsz, "%s: unknown key %s", where, bad);
    return PG_ECONFIG;
}

/* Optional section: absent -> NULL (defaults apply), present but not an object -> error. */
static int get_section(json_t *root, const char *key, json_t **out, char *err, size_t errsz)
{
    *out = json_object_get(root, key);
    if (*out && !json_is_object(*out)) {
        snprintf(err, errsz, "%s: must be an object", key);
        return PG_ECONFIG;
    }
    return PG_OK;
}

static int get_int(json_t *obj,
                   const char *where,
                   const char *key,
                   long long min,
                   long long max,
                   long long *out,
                   char *err,
                   size_t errsz)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return PG_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, errsz, "%s.%s: must be an integer in %lld..%lld", where, key, min, max);
        return PG_ECONFIG;
    }
    *out = json_integer_value(v);
    return PG_OK;
}

static int get_str(json_t *obj,
                   const char *where,
                   const char *key,
                   char *out,
                   size_t outsz,
                   char *err,
                   size_t errsz)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return PG_OK;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= outsz) {
        snprintf(err, errsz, "%s.%s: must be a non-empty string shorter than %zu bytes", where, key,
                 outsz);
        return PG_ECONFIG;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return PG_OK;
}

/* Seed paths are relative to the config file's directory, so a config can travel with its data. */
static int get_path(json_t *obj,
                    const char *where,
                    const char *key,
                    const char *cfg_dir,
                    char **out,
                    char *err,
                    size_t errsz)
{
    char rel[1024] = "";
    int rc = get_str(obj, where, key, rel, sizeof rel, err, errsz);
    if (rc || !rel[0])
        return rc;
    size_t n = strlen(cfg_dir) + strlen(rel) + 2;
    *out = malloc(n);
    if (!*out)
        return PG_ENOMEM;
    if (rel[0] == '/')
        snprintf(*out, n, "%s", rel);
    else
        snprintf(*out, n, "%s/%s", cfg_dir, rel);
    return PG_OK;
}

/* Read a small text file (a key, a secret) relative to the config's directory; trailing
 * whitespace is dropped. */
static int read_text(const char *where,
                     const char *key,
                     const char *rel,
                     const char *cfg_dir,
                     char **out,
                     char *err,
                     size_t errsz)
{
    char path[2048];
    char *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s%s%s", rel[0] == '/' ? "" : cfg_dir, rel[0] == '/' ? "" : "/",
             rel);
    if (pg_read_file(path, 1024 * 1024, &data, &len) != 0) {
        snprintf(err, errsz, "%s.%s: cannot read %s", where, key, path);
        return PG_ECONFIG;
    }
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
        data[--len] = '\0';
    if (!len || strlen(data) != len) {
        snprintf(err, errsz, "%s.%s: %s is empty or not text", where, key, path);
        free(data);
        return PG_ECONFIG;
    }
    *out = data;
    return PG_OK;
}

/* salesforce.jwt: the Named-Credential-like signer of the Platform Events the simulator posts. */
static int
parse_jwt(json_t *jwt, const char *cfg_dir, struct pg_sim_config *cfg, char *err, size_t errsz)
{
    static const char *const keys[] = {"private_key", "hs256_secret", "kid",      "iss",
                                       "aud",         "sub",          "expiry_s", NULL};
    char rel[1024] = "", hs[1024] = "";
    int rc;
    if (!jwt)
        return PG_OK;
    if (!json_is_object(jwt)) {
        snprintf(err, errsz, "salesforce.jwt: must be an object");
        return PG_ECONFIG;
    }
    if ((rc = check_keys(jwt, "salesforce.jwt", keys, err, errsz)) ||
        (rc = get_str(jwt, "salesforce.jwt", "private_key", rel, sizeof rel, err, errsz)) ||
        (rc = get_str(jwt, "salesforce.jwt", "hs256_secret", hs, sizeof hs, err, errsz)) ||
        (rc = get_str(jwt, "salesforce.jwt", "kid", cfg->sf.jwt.kid, sizeof cfg->sf.jwt.kid, err,
                      errsz)) ||
        (rc = get_str(jwt, "salesforce.jwt", "iss", cfg->sf.jwt.iss, sizeof cfg->sf.jwt.iss, err,
                      errsz)) ||
        (rc = get_str(jwt, "salesforce.jwt", "aud", cfg->sf.jwt.aud, sizeof cfg->sf.jwt.aud, err,
                      errsz)) ||
        (rc = get_str(jwt, "salesforce.jwt", "sub", cfg->sf.jwt.sub, sizeof cfg->sf.jwt.sub, err,
                      errsz)) ||
        (rc = get_int(jwt, "salesforce.jwt", "expiry_s", 1, 86400, &cfg->sf.jwt.expiry_s, err,
                      errsz)))
        return rc;
    if (rel[0]) {
        if ((rc = read_text("salesforce.jwt", "private_key", rel, cfg_dir,
                            &cfg->sf.jwt.private_key_pem, err, errsz)))
            return rc;
        BIO *bio = BIO_new_mem_buf(cfg->sf.jwt.private_key_pem, -1);
        EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        int ok = pk && EVP_PKEY_base_id(pk) == EVP_PKEY_RSA;
        EVP_PKEY_free(pk);
        BIO_free(bio);
        if (!ok) {
            snprintf(err, errsz, "salesforce.jwt.private_key: %s is not an RSA private key PEM",
                     rel);
            return PG_ECONFIG;
        }
    }
    if (hs[0] && (rc = read_text("salesforce.jwt", "hs256_secret", hs, cfg_dir,
                                 &cfg->sf.jwt.hs256_secret, err, errsz)))
        return rc;
    return PG_OK;
}

/* An array of 1..max non-empty strings shorter than width, copied into out. */
static int get_str_list(json_t *obj,
                        const char *where,
                        const char *key,
                        char *out,
                        size_t width,
                        int max,
                        int *n,
                        char *err,
                        size_t errsz)
{
    json_t *v = json_object_get(obj, key), *e;
    size_t i;
    if (!v)
        return PG_OK;
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > (size_t)max) {
        snprintf(err, errsz, "%s.%s: must be an array of 1..%d strings", where, key, max);
        return PG_ECONFIG;
    }
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) >= width) {
            snprintf(err, errsz, "%s.%s[%zu]: must be a non-empty string shorter than %zu bytes",
                     where, key, i, width);
            return PG_ECONFIG;
        }
        memcpy(out + i * width, json_string_value(e), json_string_length(e) + 1);
    }
    *n = (int)json_array_size(v);
    return PG_OK;
}

/* salesforce.oauth: the connected app that JWT bearer assertions are checked against (§3.1). */
static int
parse_oauth(json_t *o, const char *cfg_dir, struct pg_sim_config *cfg, char *err, size_t errsz)
{
    static const char *const keys[] = {
        "certificate",   "client_id",           "username",        "user_id",
        "audiences",     "token_ttl_s",         "max_exp_ahead_s", "clock_skew_s",
        "user_approved", "bad_signature_error", "instance_url",    NULL};
    static const char *const W = "salesforce.oauth";
    char rel[1024] = "", bad_sig[32] = "invalid_client";
    int rc;
    if (!o)
        return PG_OK;
    if (!json_is_object(o)) {
        snprintf(err, errsz, "salesforce.oauth: must be an object");
        return PG_ECONFIG;
    }
    json_t *appr = json_object_get(o, "user_approved");
    if (appr && !json_is_boolean(appr)) {
        snprintf(err, errsz, "salesforce.oauth.user_approved: must be true or false");
        return PG_ECONFIG;
    }
    if ((rc = check_keys(o, W, keys, err, errsz)) ||
        (rc = get_str(o, W, "certificate", rel, sizeof rel, err, errsz)) ||
        (rc = get_str(o, W, "client_id", cfg->sf.oauth.client_id, sizeof cfg->sf.oauth.client_id,
                      err, errsz)) ||
        (rc = get_str(o, W, "username", cfg->sf.oauth.username, sizeof cfg->sf.oauth.username, err,
                      errsz)) ||
        (rc = get_str(o, W, "user_id", cfg->sf.oauth.user_id, sizeof cfg->sf.oauth.user_id, err,
                      errsz)) ||
        (rc = get_str_list(o, W, "audiences", &cfg->sf.oauth.audiences[0][0],
                           sizeof cfg->sf.oauth.audiences[0], 8, &cfg->sf.oauth.naudiences, err,
                           errsz)) ||
        (rc = get_int(o, W, "token_ttl_s", 1, 86400 * 7, &cfg->sf.oauth.token_ttl_s, err, errsz)) ||
        (rc = get_int(o, W, "max_exp_ahead_s", 0, 86400 * 365, &cfg->sf.oauth.max_exp_ahead_s, err,
                      errsz)) ||
        (rc = get_int(o, W, "clock_skew_s", 0, 3600, &cfg->sf.oauth.clock_skew_s, err, errsz)) ||
        (rc = get_str(o, W, "bad_signature_error", bad_sig, sizeof bad_sig, err, errsz)) ||
        (rc = get_str(o, W, "instance_url", cfg->sf.oauth.instance_url,
                      sizeof cfg->sf.oauth.instance_url, err, errsz)))
        return rc;
    if (appr)
        cfg->sf.oauth.user_approved = json_is_true(appr);
    if (strcmp(bad_sig, "invalid_client") != 0 && strcmp(bad_sig, "invalid_grant") != 0) {
        snprintf(err, errsz,
                 "salesforce.oauth.bad_signature_error: must be \"invalid_client\" or "
                 "\"invalid_grant\"");
        return PG_ECONFIG;
    }
    cfg->sf.oauth.bad_signature_invalid_client = strcmp(bad_sig, "invalid_client") == 0;
    if (!pg_sim_sf_id_valid(cfg->sf.oauth.user_id, "005")) {
        snprintf(err, errsz, "salesforce.oauth.user_id: \"%s\" is not an 18-char user id (005...)",
                 cfg->sf.oauth.user_id);
        return PG_ECONFIG;
    }
    if (cfg->sf.oauth.instance_url[0] && strncmp(cfg->sf.oauth.instance_url, "http://", 7) != 0 &&
        strncmp(cfg->sf.oauth.instance_url, "https://", 8) != 0) {
        snprintf(err, errsz, "salesforce.oauth.instance_url: must start with http:// or https://");
        return PG_ECONFIG;
    }
    if (rel[0]) {
        if ((rc = read_text(W, "certificate", rel, cfg_dir, &cfg->sf.oauth.certificate_pem, err,
                            errsz)))
            return rc;
        BIO *bio = BIO_new_mem_buf(cfg->sf.oauth.certificate_pem, -1);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        EVP_PKEY *pk = x ? X509_get_pubkey(x) : NULL;
        int ok = pk && EVP_PKEY_base_id(pk) == EVP_PKEY_RSA;
        EVP_PKEY_free(pk);
        X509_free(x);
        BIO_free(bio);
        if (!ok) {
            snprintf(err, errsz,
                     "salesforce.oauth.certificate: %s is not an X.509 certificate PEM with an RSA "
                     "key",
                     rel);
            return PG_ECONFIG;
        }
    }
    return PG_OK;
}

/* micros.gl: the Gift & Loyalty host's credentials and the in3 (CRC32) format. */
static int parse_gl(json_t *gl, struct pg_sim_config *cfg, char *err, size_t errsz)
{
    static const char *const keys[] = {"logon", "password", "crc_format", NULL};
    char fmt[16] = "hex";
    int rc;
    if (!gl)
        return PG_OK;
    if (!json_is_object(gl)) {
        snprintf(err, errsz, "micros.gl: must be an object");
        return PG_ECONFIG;
    }
    if ((rc = check_keys(gl, "micros.gl", keys, err, errsz)) ||
        (rc = get_str(gl, "micros.gl", "logon", cfg->micros.gl.logon, sizeof cfg->micros.gl.logon,
                      err, errsz)) ||
        (rc = get_str(gl, "micros.gl", "password", cfg->micros.gl.password,
                      sizeof cfg->micros.gl.password, err, errsz)) ||
        (rc = get_str(gl, "micros.gl", "crc_format", fmt, sizeof fmt, err, errsz)))
        return rc;
    if (strcmp(fmt, "hex") != 0 && strcmp(fmt, "decimal") != 0) {
        snprintf(err, errsz, "micros.gl.crc_format: must be \"hex\" or \"decimal\"");
        return PG_ECONFIG;
    }
    cfg->micros.gl.crc_decimal = strcmp(fmt, "decimal") == 0;
    return PG_OK;
}

/* micros.webhook_secret: "whsec_<base64>" literally, or "file:PATH" (relative to the config). */
static int parse_webhook_secret(
    json_t *mi, const char *cfg_dir, struct pg_sim_config *cfg, char *err, size_t errsz)
{
    char v[1024] = "";
    int rc = get_str(mi, "micros", "webhook_secret", v, sizeof v, err, errsz);
    if (rc || !v[0])
        return rc;
    if (strncmp(v, "file:", 5) == 0) {
        if ((rc = read_text("micros", "webhook_secret", v + 5, cfg_dir, &cfg->micros.webhook_secret,
                            err, errsz)))
            return rc;
    } else if (!(cfg->micros.webhook_secret = strdup(v))) {
        return PG_ENOMEM;
    }
    size_t n = 0;
    unsigned char *key = strncmp(cfg->micros.webhook_secret, "whsec_", 6) == 0
                             ? pg_sim_b64_decode(cfg->micros.webhook_secret + 6, &n)
                             : NULL;
    free(key);
    if (!key || n < 16) {
        snprintf(err, errsz,
                 "micros.webhook_secret: must be \"whsec_<base64 of >= 16 bytes>\" (or "
                 "\"file:PATH\" holding one)");
        return PG_ECONFIG;
    }
    return PG_OK;
}

/* micros.bi: the BI API's API account, tokens, rate limit; "generate" is checked at init. */
static int parse_bi(json_t *bi, struct pg_sim_config *cfg, char *err, size_t errsz)
{
    static const char *const keys[] = {"username",
                                       "password",
                                       "client_id",
                                       "redirect_uri",
                                       "jwt_secret",
                                       "token_ttl_s",
                                       "code_ttl_s",
                                       "rate_limit_per_min",
                                       "require_application_name",
                                       "generate",
                                       NULL};
    int rc;
    if (!bi)
        return PG_OK;
    if (!json_is_object(bi)) {
        snprintf(err, errsz, "micros.bi: must be an object");
        return PG_ECONFIG;
    }
    json_t *req_app = json_object_get(bi, "require_application_name"),
           *gen = json_object_get(bi, "generate");
    if ((rc = check_keys(bi, "micros.bi", keys, err, errsz)) ||
        (rc = get_str(bi, "micros.bi", "username", cfg->micros.bi.username,
                      sizeof cfg->micros.bi.username, err, errsz)) ||
        (rc = get_str(bi, "micros.bi", "password", cfg->micros.bi.password,
                      sizeof cfg->micros.bi.password, err, errsz)) ||
        (rc = get_str(bi, "micros.bi", "client_id", cfg->micros.bi.client_id,
                      sizeof cfg->micros.bi.client_id, err, errsz)) ||
        (rc = get_str(bi, "micros.bi", "redirect_uri", cfg->micros.bi.redirect_uri,
                      sizeof cfg->micros.bi.redirect_uri, err, errsz)) ||
        (rc = get_str(bi, "micros.bi", "jwt_secret", cfg->micros.bi.jwt_secret,
                      sizeof cfg->micros.bi.jwt_secret, err, errsz)) ||
        (rc = get_int(bi, "micros.bi", "token_ttl_s", 1, 90LL * 86400, &cfg->micros.bi.token_ttl_s,
                      err, errsz)) ||
        (rc = get_int(bi, "micros.bi", "code_ttl_s", 1, 3600, &cfg->micros.bi.code_ttl_s, err,
                      errsz)) ||
        (rc = get_int(bi, "micros.bi", "rate_limit_per_min", 0, 1000000,
                      &cfg->micros.bi.rate_limit_per_min, err, errsz)))
        return rc;
    if (req_app && !json_is_boolean(req_app)) {
        snprintf(err, errsz, "micros.bi.require_application_name: must be true or false");
        return PG_ECONFIG;
    }
    if (req_app)
        cfg->micros.bi.require_application_name = json_is_true(req_app);
    if (gen && !json_is_object(gen)) {
        snprintf(err, errsz, "micros.bi.generate: must be an object");
        return PG_ECONFIG;
    }
    cfg->micros.bi.generate = gen ? json_deep_copy(gen) : NULL;
    return PG_OK;
}

static int
parse(json_t *root, const char *cfg_dir, struct pg_sim_config *cfg, char *err, size_t errsz)
{
    static const char *const top_keys[] = {
        "listen_address", "log_level",  "max_body_bytes", "log_entries",
        "log_body_bytes", "salesforce", "micros",         NULL};
    static const char *const sf_keys[] = {"port",      "seed", "org_id", "api_version",
                                          "api_limit", "jwt",  "oauth",  "external_id_fields",
                                          NULL};
    static const char *const mi_keys[] = {
        "port", "seed", "org", "gl", "webhook_secret", "webhook_tolerance_s", "bi", NULL};
    json_t *sf, *mi;
    char level[16] = "info";
    long long max_body = cfg->max_body_bytes, entries = cfg->log_entries,
              body_bytes = cfg->log_body_bytes, sf_port = 0, mi_port = 0;
    int rc;
    if (!json_is_object(root)) {
        snprintf(err, errsz, "the top level must be an object");
        return PG_ECONFIG;
    }
    if ((rc = check_keys(root, "config", top_keys, err, errsz)) ||
        (rc = get_section(root, "salesforce", &sf, err, errsz)) ||
        (rc = get_section(root, "micros", &mi, err, errsz)) ||
        (rc = check_keys(sf, "salesforce", sf_keys, err, errsz)) ||
        (rc = check_keys(mi, "micros", mi_keys, err, errsz)) ||
        (rc = get_str(root, "config", "listen_address", cfg->listen_address,
                      sizeof cfg->listen_address, err, errsz)) ||
        (rc = get_str(root, "config", "log_level", level, sizeof level, err, errsz)) ||
        (rc = get_int(root, "config", "max_body_bytes", 1024, 64 * MIB, &max_body, err, errsz)) ||
        (rc = get_int(root, "config", "log_entries", 1, 1000000, &entries, err, errsz)) ||
        (rc = get_int(root, "config", "log_body_bytes", 0, 4 * MIB, &body_bytes, err, errsz)) ||
        (rc = get_int(sf, "salesforce", "port", 0, 65535, &sf_port, err, errsz)) ||
        (rc = get_path(sf, "salesforce", "seed", cfg_dir, &cfg->sf.seed, err, errsz)) ||
        (rc = get_str(sf, "salesforce", "org_id", cfg->sf.org_id, sizeof cfg->sf.org_id, err,
                      errsz)) ||
        (rc = get_str(sf, "salesforce", "api_version", cfg->sf.api_version,
                      sizeof cfg->sf.api_version, err, errsz)) ||
        (rc = get_int(sf, "salesforce", "api_limit", 1, 1000000000, &cfg->sf.api_limit, err,
                      errsz)) ||
        (rc = get_int(mi, "micros", "port", 0, 65535, &mi_port, err, errsz)) ||
        (rc = get_path(mi, "micros", "seed", cfg_dir, &cfg->micros.seed, err, errsz)) ||
        (rc = get_str(mi, "micros", "org", cfg->micros.org, sizeof cfg->micros.org, err, errsz)) ||
        (rc = parse_jwt(json_object_get(sf, "jwt"), cfg_dir, cfg, err, errsz)) ||
        (rc = parse_oauth(json_object_get(sf, "oauth"), cfg_dir, cfg, err, errsz)) ||
        (rc = get_str_list(sf, "salesforce", "external_id_fields",
                           &cfg->sf.external_id_fields[0][0], sizeof cfg->sf.external_id_fields[0],
                           8, &cfg->sf.n_external_id_fields, err, errsz)) ||
        (rc = parse_gl(json_object_get(mi, "gl"), cfg, err, errsz)) ||
        (rc = parse_webhook_secret(mi, cfg_dir, cfg, err, errsz)) ||
        (rc = parse_bi(json_object_get(mi, "bi"), cfg, err, errsz)) ||
        (rc = get_int(mi, "micros", "webhook_tolerance_s", 1, 86400,
                      &cfg->micros.webhook_tolerance_s, err, errsz)))
        return rc;
    enum pg_log_level lvl;
    if (pg_log_level_parse(level, &lvl) != 0) {
        snprintf(err, errsz, "config.log_level: must be debug, info, warn or error");
        return PG_ECONFIG;
    }
    cfg->log_level = (int)lvl;
    cfg->max_body_bytes = (size_t)max_body;
    cfg->log_entries = (size_t)entries;
    cfg->log_body_bytes = (size_t)body_bytes;
    cfg->sf.port = (int)sf_port;
    cfg->micros.port = (int)mi_port;
    if (sf_port && sf_port == mi_port) {
        snprintf(err, errsz, "salesforce.port and micros.port must differ");
        return PG_ECONFIG;
    }
    if (!pg_sim_sf_id_valid(cfg->sf.org_id, "00D")) {
        snprintf(err, errsz, "salesforce.org_id: \"%s\" is not an 18-char org id (00D...)",
                 cfg->sf.org_id);
        return PG_ECONFIG;
    }
    long long major = 0;
    char tail[8] = "";
    if (sscanf(cfg->sf.api_version, "%lld.%7s", &major, tail) != 2 || strcmp(tail, "0") != 0 ||
        major < 60 || major > 99) {
        snprintf(err, errsz, "salesforce.api_version: must look like \"66.0\" (60.0..99.0)");
        return PG_ECONFIG;
    }
    /* The org short name is a URL path segment: keep it to characters that need no escaping. */
    if (strspn(cfg->micros.org,
               "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
        strlen(cfg->micros.org)) {
        snprintf(err, errsz, "micros.org: only letters, digits, '_' and '-' are allowed");
        return PG_ECONFIG;
    }
    return PG_OK;
}

int pg_sim_config_load(const char *path, struct pg_sim_config *cfg, char *err, size_t errsz)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_address, sizeof cfg->listen_address, "127.0.0.1");
    cfg->log_level = PG_LOG_INFO;
    cfg->max_body_bytes = 4 * MIB;
    cfg->log_entries = 10000;
    cfg->log_body_bytes = 64 * 1024;
    snprintf(cfg->sf.org_id, sizeof cfg->sf.org_id, "00D5g000004XyZ1EAK");
    snprintf(cfg->sf.api_version, sizeof cfg->sf.api_version, "66.0");
    cfg->sf.api_limit = 100000;
    snprintf(cfg->micros.org, sizeof cfg->micros.org, "ACME");
    snprintf(cfg->sf.jwt.kid, sizeof cfg->sf.jwt.kid, "sf-events-1");
    snprintf(cfg->sf.jwt.iss, sizeof cfg->sf.jwt.iss, "https://acme.my.salesforce.com");
    snprintf(cfg->sf.jwt.aud, sizeof cfg->sf.jwt.aud, "posgate");
    snprintf(cfg->sf.jwt.sub, sizeof cfg->sf.jwt.sub, "integration@acme.example");
    cfg->sf.jwt.expiry_s = 120;
    snprintf(cfg->sf.oauth.client_id, sizeof cfg->sf.oauth.client_id,
             "3MVG9posgate.TEST.ONLY.consumer.key");
    snprintf(cfg->sf.oauth.username, sizeof cfg->sf.oauth.username, "integration@acme.example");
    snprintf(cfg->sf.oauth.user_id, sizeof cfg->sf.oauth.user_id, "0055g00000ABCDEAA5");
    snprintf(cfg->sf.oauth.audiences[0], sizeof cfg->sf.oauth.audiences[0],
             "https://login.salesforce.com");
    snprintf(cfg->sf.oauth.audiences[1], sizeof cfg->sf.oauth.audiences[1],
             "https://test.salesforce.com");
    cfg->sf.oauth.naudiences = 2;
    cfg->sf.oauth.token_ttl_s = 7200;
    cfg->sf.oauth.max_exp_ahead_s = 300;
    cfg->sf.oauth.clock_skew_s = 0;
    cfg->sf.oauth.user_approved = 1;
    cfg->sf.oauth.bad_signature_invalid_client = 1;
    snprintf(cfg->sf.external_id_fields[0], sizeof cfg->sf.external_id_fields[0], "Loyalty_Id__c");
    cfg->sf.n_external_id_fields = 1;
    snprintf(cfg->micros.gl.logon, sizeof cfg->micros.gl.logon, "posgate");
    snprintf(cfg->micros.gl.password, sizeof cfg->micros.gl.password, "posgate-gl-demo");
    cfg->micros.webhook_tolerance_s = 300;
    snprintf(cfg->micros.bi.username, sizeof cfg->micros.bi.username, "posgate-api");
    snprintf(cfg->micros.bi.password, sizeof cfg->micros.bi.password, "posgate-bi-demo");
    snprintf(cfg->micros.bi.client_id, sizeof cfg->micros.bi.client_id,
             "UE9TR0FURS5URVNULk9OTFkuY2xpZW50");
    snprintf(cfg->micros.bi.redirect_uri, sizeof cfg->micros.bi.redirect_uri,
             "apiaccount://callback");
    snprintf(cfg->micros.bi.jwt_secret, sizeof cfg->micros.bi.jwt_secret,
             "posgate-bi-TEST-ONLY-hs256-secret");
    cfg->micros.bi.token_ttl_s = 14 * 86400;
    cfg->micros.bi.code_ttl_s = 120;
    cfg->micros.bi.require_application_name = 1;

    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errsz, "%s: line %d: %s", path, jerr.line, jerr.text);
        return PG_ECONFIG;
    }
    char *copy = strdup(path);
    int rc = copy ? parse(root, dirname(copy), cfg, err, errsz) : PG_ENOMEM;
    free(copy);
    json_decref(root);
    if (rc)
        pg_sim_config_free(cfg);
    return rc;
}

void pg_sim_config_free(struct pg_sim_config *cfg)
{
    free(cfg->sf.seed);
    free(cfg->micros.seed);
    free(cfg->sf.jwt.private_key_pem);
    free(cfg->sf.jwt.hs256_secret);
    free(cfg->sf.oauth.certificate_pem);
    cfg->sf.oauth.certificate_pem = NULL;
    free(cfg->micros.webhook_secret);
    json_decref(cfg->micros.bi.generate);
    cfg->micros.bi.generate = NULL;
    cfg->sf.seed = cfg->micros.seed = NULL;
    cfg->sf.jwt.private_key_pem = cfg->sf.jwt.hs256_secret = cfg->micros.webhook_secret = NULL;
}
