/*
 * Authorisation of routes, and the handler state built from the configuration.
 *
 * Platform Event callbacks carry a JWT minted by a Salesforce Named Credential; it is verified
 * against the configured keys with the algorithm pinned per key (auth/jwt.c). Operators use an
 * admin API key, stored in the configuration only as its SHA-256, compared in constant time.
 * A policy with nothing configured refuses everyone.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <hiredis/hiredis.h>

#include "auth/jwt.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "salesforce/oauth.h"
#include "salesforce/sf_config.h"
#include "salesforce/rest.h"
#include "handlers/handlers.h"
#include "server/config.h"
#include "server/log.h"
#include "sync/member.h"
#include "sync/ratelimit.h"
#include "sync/update.h"

struct pg_hnd_state pg_hnd;

static int
load_keys(const json_t *keys, const char *path, struct pg_jwt_keyset **out, char *err, size_t errsz)
{
    struct pg_jwt_keyset *ks = NULL;
    int rc = pg_jwt_keyset_new(&ks);
    if (rc)
        return rc;
    const char *kid;
    json_t *def;
    json_object_foreach((json_t *)keys, kid, def)
    {
        const char *alg = json_string_value(json_object_get(def, "alg"));
        const char *ref = json_string_value(json_object_get(def, "key"));
        if (!json_is_object(def) || !alg || !ref || json_object_size(def) != 2) {
            snprintf(err, errsz,
                     "config: %s.%s: expected {\"alg\": \"RS256\"|\"HS256\", \"key\": "
                     "\"file:...\"|\"env:...\"}",
                     path, kid);
            rc = PG_ECONFIG;
            break;
        }
        char *key = NULL, why[256];
        rc = pg_config_secret(ref, &key, why, sizeof why);
        if (rc) {
            snprintf(err, errsz, "config: %s.%s.key: %s", path, kid, why);
            rc = PG_ECONFIG;
            break;
        }
        rc = pg_jwt_keyset_add(ks, kid, alg, (const unsigned char *)key, strlen(key));
        explicit_bzero(key, strlen(key));
        free(key);
        if (rc) {
            snprintf(err, errsz,
                     "config: %s.%s: not a usable %s key (RS256: an RSA "
                     "public key or certificate PEM of 2048+ bits; HS256: 32+ bytes)",
                     path, kid, alg);
            rc = PG_ECONFIG;
            break;
        }
    }
    if (rc) {
        pg_jwt_keyset_free(ks);
        return rc;
    }
    *out = ks;
    return PG_OK;
}

/* Station keys: {"<station id>": {"key_hash": "sha256:<hex>", "location": "...", "stores":
 * [...]}}. The id is written into each entry: the rate limit and logs name the station by it. */
static int check_stations(const struct pg_config *cfg, char *err, size_t errsz)
{
    const char *id;
    json_t *st;
    json_object_foreach(cfg->lookup_stations, id, st)
    {
        const char *h = json_string_value(json_object_get(st, "key_hash"));
        json_t *stores = json_object_get(st, "stores");
        if (!json_is_object(st) || !h || strncmp(h, "sha256:", 7) != 0 || strlen(h) != 71 ||
            strspn(h + 7, "0123456789abcdef") != 64 ||
            !json_is_string(json_object_get(st, "location")) || !json_is_array(stores) ||
            strlen(id) > 64) {
            snprintf(err, errsz,
                     "config: lookup.stations.%s: expected {\"key_hash\": \"sha256:<64 hex>\", "
                     "\"location\": \"...\", \"stores\": [\"...\"]}",
                     id);
            return PG_ECONFIG;
        }
        json_object_set_new(st, "id", json_string(id));
    }
    return PG_OK;
}

/* The Salesforce REST client lookups use on a miss, when salesforce.rest is configured. */
static int make_rest(const struct pg_config *cfg, char *err, size_t errsz)
{
    if (!cfg->sf_login_url && !cfg->sf_client_id)
        return PG_OK;
    int orc = pg_sf_oauth_from_config(cfg, "lookups", 1000, cfg->lookup_budget_ms, &pg_hnd.sf_oauth,
                                      err, errsz);
    if (orc)
        return orc;
    struct pg_sf_rest_config rc = {
        .api_version = cfg->sf_api_version,
        .connect_timeout_ms = 1000,
        .timeout_ms = cfg->lookup_budget_ms,
        .max_response_bytes = 4 << 20,
    };
    if (pg_sf_rest_new(&rc, pg_hnd.sf_oauth, &pg_hnd.sf_rest) != PG_OK) {
        snprintf(err, errsz, "config: salesforce.rest: cannot create the REST client");
        return PG_ECONFIG;
    }
    return PG_OK;
}

int pg_hnd_prepare(const struct pg_app *app, char *err, size_t errsz)
{
    pg_hnd.app = app;
    int rc =
        load_keys(app->cfg->sf_jwt_keys, "salesforce.events_jwt.keys", &pg_hnd.sf_keys, err, errsz);
    if (rc == PG_OK)
        rc = load_keys(app->cfg->partner_jwt_keys, "partners.jwt.keys", &pg_hnd.partner_keys, err,
                       errsz);
    if (rc == PG_OK)
        rc = check_stations(app->cfg, err, errsz);
    if (rc == PG_OK)
        rc = make_rest(app->cfg, err, errsz);
    if (rc == PG_OK)
        rc = pg_map_new(app->cfg->mapping, &pg_hnd.map, err, errsz);
    for (char **h = app->cfg->admin_key_hashes; rc == PG_OK && h && *h; h++) {
        if (strncmp(*h, "sha256:", 7) != 0 || strlen(*h) != 7 + 64 ||
            strspn(*h + 7, "0123456789abcdef") != 64) {
            snprintf(err, errsz,
                     "config: admin.api_key_hashes: expected \"sha256:<64 lower-case "
                     "hex digits>\"");
            rc = PG_ECONFIG;
        }
    }
    if (rc)
        pg_hnd_shutdown();
    return rc;
}

void pg_hnd_shutdown(void)
{
    pg_hnd_recon_shutdown();
    pg_rate_stop();        /* lookups' rate-limit flusher: before Redis is shut down */
    pg_member_near_stop(); /* and the near cache's subscriber */
    pg_sf_rest_free(pg_hnd.sf_rest);
    pg_sf_oauth_free(pg_hnd.sf_oauth);
    pg_jwt_keyset_free(pg_hnd.sf_keys);
    pg_jwt_keyset_free(pg_hnd.partner_keys);
    pg_map_free(pg_hnd.map);
    memset(&pg_hnd, 0, sizeof pg_hnd);
}

/* 401 with the challenge RFC 6750 asks for. */
static int unauthorized(struct pg_req *req, const char *scheme, const char *detail)
{
    pg_req_add_header(req, "WWW-Authenticate", scheme);
    return pg_req_problem(req, 401, detail, NULL);
}

/* Hex SHA-256 of an API key (keys are configured only as hashes). */
static void key_hash(const char *key, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/*
 * Verify the request's bearer token against keys with the given issuer, audience and skew.
 * PG_OK with *claims (new; may be NULL to skip) when it verifies; otherwise the 401 reply has
 * been written and PG_EAUTH is returned.
 */
static int verify_bearer(struct pg_req *req,
                         const struct pg_jwt_keyset *keys,
                         const char *iss,
                         const char *aud,
                         int skew_s,
                         json_t **claims)
{
    const char *h = pg_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(req, "Bearer", "a Bearer token is required");
        return PG_EAUTH;
    }
    struct pg_jwt_policy pol = {.iss = iss, .aud = aud, .skew_s = skew_s, .require_exp = 1};
    char why[96] = "";
    int rc = pg_jwt_verify(keys, &pol, h + 7, (int64_t)time(NULL), claims, why, sizeof why);
    if (rc == PG_OK)
        return PG_OK;
    char detail[160];
    snprintf(detail, sizeof detail, "the bearer token was rejected: %s",
             rc == PG_ETOOLARGE ? "too large"
             : why[0]           ? why
                                : "invalid");
    pg_log(PG_LOG_WARN, pg_req_id(req), "auth.jwt_rejected", "%s", detail);
    unauthorized(req, "Bearer error=\"invalid_token\"", detail);
    return PG_EAUTH;
}

static int authorize_sf_jwt(struct pg_req *req)
{
    if (!pg_hnd.sf_keys || pg_jwt_keyset_count(pg_hnd.sf_keys) == 0)
        return pg_req_problem(req, 403, "no Platform Event signing keys are configured", NULL);
    const struct pg_config *cfg = pg_hnd.app->cfg;
    return verify_bearer(req, pg_hnd.sf_keys, cfg->sf_jwt_iss, cfg->sf_jwt_aud, cfg->sf_jwt_skew_s,
                         NULL);
}

static int authorize_partner(struct pg_req *req, const char *scope);
static int has_bearer(struct pg_req *req);

/* The scope a partner token needs on an operator route: the reconciliation report is readable
 * with reconciliation:read alone, everything else needs admin. */
static const char *admin_scope(const struct pg_req *req)
{
    const struct pg_route *rt = pg_req_route(req);
    return rt && rt->name && strcmp(rt->name, "reconciliation") == 0 ? "reconciliation:read"
                                                                     : "admin";
}

static int authorize_admin(struct pg_req *req)
{
    if (has_bearer(req))
        return authorize_partner(req, admin_scope(req));
    char **hashes = pg_hnd.app->cfg->admin_key_hashes;
    if (!hashes || !hashes[0])
        return pg_req_problem(req, 403, "no admin API keys are configured", NULL);
    const char *key = pg_req_header(req, "X-Api-Key");
    if (!key || !*key || strlen(key) > 256)
        return unauthorized(req, "ApiKey", "an admin X-Api-Key is required");
    char hex[65];
    key_hash(key, hex);
    int ok = 0;
    for (char **h = hashes; *h; h++) /* no early exit: timing does not tell which key matched */
        ok |= CRYPTO_memcmp(*h + 7, hex, 64) == 0;
    if (!ok)
        return unauthorized(req, "ApiKey", "the admin X-Api-Key is not valid");
    pg_req_set_principal(req, json_pack("{s:s}", "id", "admin"));
    return PG_OK;
}

/* True when the token's scopes (OAuth "scope", space-separated, or an "scp" array) include want. */
static int has_scope(const json_t *claims, const char *want)
{
    const char *sc = json_string_value(json_object_get(claims, "scope"));
    size_t wl = strlen(want);
    for (const char *p = sc; p && *p;) {
        size_t l = strcspn(p, " ");
        if (l == wl && strncmp(p, want, wl) == 0)
            return 1;
        p += l;
        p += strspn(p, " ");
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(claims, "scp"), i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    }
    return 0;
}

/*
 * A partner's bearer JWT: verified with the partner keys (several at once during a rotation; the
 * algorithm pinned per key), then it must carry the scope the route needs. The principal is
 * "partner:<sub>", restricted to the token's "stores" claim when it has one.
 */
static int authorize_partner(struct pg_req *req, const char *scope)
{
    if (!pg_hnd.partner_keys || pg_jwt_keyset_count(pg_hnd.partner_keys) == 0)
        return unauthorized(req, "Bearer", "partner tokens are not configured");
    const struct pg_config *cfg = pg_hnd.app->cfg;
    json_t *claims = NULL;
    int rc = verify_bearer(req, pg_hnd.partner_keys, cfg->partner_jwt_iss, cfg->partner_jwt_aud,
                           cfg->partner_jwt_skew_s, &claims);
    if (rc != PG_OK)
        return rc;
    if (!has_scope(claims, scope)) {
        json_decref(claims);
        char detail[96];
        snprintf(detail, sizeof detail, "the token lacks the scope %s", scope);
        pg_req_add_header(req, "WWW-Authenticate", "Bearer error=\"insufficient_scope\"");
        return pg_req_problem(req, 403, detail, NULL);
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    char id[160];
    snprintf(id, sizeof id, "partner:%.140s", sub ? sub : "unknown");
    json_t *p = json_pack("{s:s}", "id", id);
    json_t *stores = json_object_get(claims, "stores");
    if (json_is_array(stores))
        json_object_set(p, "stores", stores);
    json_decref(claims);
    pg_req_set_principal(req, p);
    return PG_OK;
}

static int has_bearer(struct pg_req *req)
{
    const char *h = pg_req_header(req, "Authorization");
    return h && strncasecmp(h, "Bearer ", 7) == 0;
}

/*
 * A station key: first the configured hashes (constant time over all of them), then Redis
 * (pg:apikey:<sha256 hex> → {"id", "location", "stores"}), where operators can add and revoke
 * keys without a restart.
 */
static int authorize_station_at(struct pg_req *req, int may_wait)
{
    /* Station routes share the key check; a partner token needs the scope of the route: pushing
     * guest checks is a write (checks:write), everything else a lookup (loyalty:read). */
    const struct pg_route *rt = pg_req_route(req);
    if (has_bearer(req))
        return authorize_partner(
            req, rt && rt->handler == pg_hnd_micros_guest_checks ? "checks:write" : "loyalty:read");
    const char *key = pg_req_header(req, "X-Api-Key");
    if (!key || !*key || strlen(key) > 256)
        return unauthorized(req, "ApiKey", "a station X-Api-Key is required");
    char hex[65];
    key_hash(key, hex);
    const json_t *match = NULL;
    const char *id;
    json_t *st;
    json_object_foreach(pg_hnd.app->cfg->lookup_stations, id, st) /* all compared: no timing hint */
    {
        const char *h = json_string_value(json_object_get(st, "key_hash"));
        if (CRYPTO_memcmp(h + 7, hex, 64) == 0)
            match = st;
    }
    if (match) {
        pg_req_set_principal(req, json_incref((json_t *)match));
        return PG_OK;
    }
    if (!may_wait)
        return PG_HTTP_TO_WORKER; /* a key kept in Redis: checked on a worker */
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "GET " PG_KEY_APIKEY "%s", hex);
    json_t *entry = NULL;
    if (rc == PG_OK && r->type == REDIS_REPLY_STRING)
        entry = json_loadb(r->str, r->len, 0, NULL);
    if (r)
        freeReplyObject(r);
    if (rc != PG_OK) {
        pg_req_add_header(req, "Retry-After", "1");
        return pg_req_problem(req, 503, "cannot check the station key right now", NULL);
    }
    if (!json_is_object(entry) || !json_is_string(json_object_get(entry, "id")) ||
        !json_is_array(json_object_get(entry, "stores"))) {
        json_decref(entry);
        return unauthorized(req, "ApiKey", "the station X-Api-Key is not valid");
    }
    pg_req_set_principal(req, entry);
    return PG_OK;
}

static int authorize_station(struct pg_req *req)
{
    return authorize_station_at(req, 1);
}

int pg_hnd_authorize_fast(struct pg_req *req, enum pg_auth_policy policy)
{
    if (policy == PG_AUTH_STATION)
        return authorize_station_at(req, 0);
    return PG_HTTP_TO_WORKER;
}

int pg_hnd_authorize(struct pg_req *req, enum pg_auth_policy policy)
{
    switch (policy) {
    case PG_AUTH_NONE:
        return PG_OK;
    case PG_AUTH_SF_JWT:
        return authorize_sf_jwt(req);
    case PG_AUTH_ADMIN:
        return authorize_admin(req);
    case PG_AUTH_STATION:
        return authorize_station(req);
    default:
        return PG_EFORBIDDEN; /* a policy nobody implemented yet: fail closed */
    }
}
