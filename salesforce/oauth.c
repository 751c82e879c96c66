#include "salesforce/oauth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "auth/jwt.h"
#include "server/buf.h"
#include "server/httpc.h"
#include "server/log.h"
#include "server/util.h"
#include "salesforce/soql.h"

#define ASSERTION_TTL_MAX_S 180 /* Salesforce: exp within 3 minutes */
#define TOKEN_REPLY_MAX (64u << 10)

struct pg_sf_oauth {
    /* Configuration: written once by pg_sf_oauth_new, then only read (no lock needed). */
    char *login_url, *audience, *client_id, *username, *key;
    size_t key_len;
    char *token_url;
    int assertion_ttl_s, token_ttl_s, renew_before_s, connect_timeout_ms, timeout_ms;

    /* State, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a renewal ends */
    char *token, *instance_url;
    int64_t expires_ms;  /* assumed expiry (pg_now_ms clock) */
    int64_t renew_at_ms; /* expires_ms - renew_before */
    int renewing;
    int64_t fail_until_ms;
    int fail_rc;
    unsigned long long grants, failures;
};

static void fill_defaults(const struct pg_sf_oauth_config *c, int *attl, int *ttl, int *before)
{
    *attl = c->assertion_ttl_s <= 0 || c->assertion_ttl_s > ASSERTION_TTL_MAX_S
                ? ASSERTION_TTL_MAX_S
                : c->assertion_ttl_s;
    *ttl = c->token_ttl_s > 0 ? c->token_ttl_s : 1800;
    *before = c->renew_before_s > 0 ? c->renew_before_s : 60;
    if (*before >= *ttl)
        *before = *ttl / 2;
}

int pg_sf_oauth_assertion(const struct pg_sf_oauth_config *c, int64_t now_s, char **jwt)
{
    if (!jwt)
        return PG_EINVAL;
    *jwt = NULL;
    if (!c || !c->login_url || !c->client_id || !c->username || !c->private_key_pem)
        return PG_EINVAL;
    int attl, ttl, before;
    fill_defaults(c, &attl, &ttl, &before);
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I}", "iss", c->client_id, "sub", c->username, "aud",
                  c->audience ? c->audience : c->login_url, "exp", (json_int_t)(now_s + attl));
    if (!claims)
        return PG_ENOMEM;
    /* No kid: Salesforce picks the key from the connected app named by iss. */
    int rc = pg_jwt_sign_rs256(c->private_key_pem, c->private_key_len, NULL, claims, jwt);
    json_decref(claims);
    return rc;
}

static int http_url_ok(const char *u)
{
    if (!u || (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0))
        return 0;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F)
            return 0;
    return strlen(u) < PG_SF_URL_MAX;
}

/* strdup without the trailing slashes, so paths can be appended as "/services/...". */
static char *dup_url(const char *u)
{
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/')
        n--;
    return strndup(u, n);
}

static void wipe_free(char *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

void pg_sf_oauth_free(struct pg_sf_oauth *o)
{
    if (!o)
        return;
    free(o->login_url);
    free(o->audience);
    free(o->client_id);
    free(o->username);
    free(o->token_url);
    wipe_free(o->key, o->key_len);
    if (o->token)
        wipe_free(o->token, strlen(o->token));
    free(o->instance_url);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

int pg_sf_oauth_new(const struct pg_sf_oauth_config *c, struct pg_sf_oauth **out)
{
    if (!out)
        return PG_EINVAL;
    *out = NULL;
    if (!c || !http_url_ok(c->login_url) || (c->audience && !*c->audience) || !c->client_id ||
        !*c->client_id || !c->username || !*c->username || !c->private_key_pem ||
        !c->private_key_len)
        return PG_EINVAL;
    /* Sign once now: a wrong or unreadable key is a configuration error, not a lookup error. */
    char *probe = NULL;
    int rc = pg_sf_oauth_assertion(c, pg_wall_ms() / 1000, &probe);
    free(probe);
    if (rc)
        return rc == PG_ENOMEM ? PG_ENOMEM : PG_EINVAL;

    struct pg_sf_oauth *o = calloc(1, sizeof *o);
    if (!o)
        return PG_ENOMEM;
    pthread_condattr_t ca;
    int cv_ok = 0;
    if (pthread_condattr_init(&ca) == 0) {
        /* Waits are bounded by pg_now_ms() deadlines, which use the monotonic clock. */
        cv_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                pthread_cond_init(&o->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cv_ok || pthread_mutex_init(&o->mu, NULL) != 0) {
        if (cv_ok)
            pthread_cond_destroy(&o->cv);
        free(o);
        return PG_ENOMEM;
    }
    o->login_url = dup_url(c->login_url);
    o->audience = strdup(c->audience ? c->audience : c->login_url);
    o->client_id = strdup(c->client_id);
    o->username = strdup(c->username);
    o->key = malloc(c->private_key_len + 1);
    o->key_len = c->private_key_len;
    if (o->login_url && asprintf(&o->token_url, "%s/services/oauth2/token", o->login_url) < 0)
        o->token_url = NULL;
    if (!o->login_url || !o->audience || !o->client_id || !o->username || !o->key ||
        !o->token_url) {
        pg_sf_oauth_free(o);
        return PG_ENOMEM;
    }
    memcpy(o->key, c->private_key_pem, c->private_key_len);
    o->key[c->private_key_len] = '\0';
    fill_defaults(c, &o->assertion_ttl_s, &o->token_ttl_s, &o->renew_before_s);
    o->connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 2000;
    o->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 5000;
    *out = o;
    return PG_OK;
}

static int token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= PG_SF_TOKEN_MAX)
        return 0;
    /* It becomes an Authorization header value: printable ASCII without spaces only. */
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F)
            return 0;
    return 1;
}

static void log_denied(long status, json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    const char *d = json_string_value(json_object_get(j, "error_description"));
    /* Salesforce's texts are short; cap them anyway since they end up in our logs. */
    pg_logj(PG_LOG_WARN, NULL, "sf_oauth_denied",
            json_pack("{s:I, s:s%, s:s%}", "status", (json_int_t)status, "error", e ? e : "",
                      e ? strnlen(e, 100) : 0, "error_description", d ? d : "",
                      d ? strnlen(d, 300) : 0));
}

/* One grant request, bounded by the caller's deadline. Runs without the lock. */
static int grant(struct pg_sf_oauth *o, int64_t deadline_ms, char **token, char **instance_url)
{
    *token = *instance_url = NULL;
    struct pg_sf_oauth_config c = {.login_url = o->login_url,
                                   .audience = o->audience,
                                   .client_id = o->client_id,
                                   .username = o->username,
                                   .private_key_pem = o->key,
                                   .private_key_len = o->key_len,
                                   .assertion_ttl_s = o->assertion_ttl_s};
    char *jwt = NULL;
    int rc = pg_sf_oauth_assertion(&c, pg_wall_ms() / 1000, &jwt);
    if (rc)
        return rc == PG_ENOMEM ? PG_ENOMEM : PG_EAUTH;
    struct pg_buf body;
    pg_buf_init(&body, 16384);
    rc = pg_buf_puts(&body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                            "&assertion=");
    if (!rc)
        rc = pg_url_encode(&body, jwt);
    wipe_free(jwt, strlen(jwt));
    if (rc) {
        pg_buf_free(&body);
        return PG_ENOMEM;
    }

    int64_t left = deadline_ms - pg_now_ms();
    if (left <= 0) {
        explicit_bzero(body.data, body.len);
        pg_buf_free(&body);
        return PG_ETIMEDOUT;
    }
    static const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                                       "Accept: application/json", NULL};
    struct pg_httpc_req req = {
        .method = "POST",
        .url = o->token_url,
        .headers = hdrs,
        .body = body.data,
        .body_len = body.len,
        .connect_timeout_ms = (int)(left < o->connect_timeout_ms ? left : o->connect_timeout_ms),
        .timeout_ms = (int)(left < o->timeout_ms ? left : o->timeout_ms),
        .max_response_bytes = TOKEN_REPLY_MAX};
    struct pg_httpc_resp resp;
    rc = pg_httpc_do(&req, &resp);
    explicit_bzero(body.data, body.len);
    pg_buf_free(&body);

    if (rc != PG_OK) {
        int timed_out = rc == PG_ETIMEDOUT || pg_now_ms() >= deadline_ms;
        pg_log(PG_LOG_WARN, NULL, "sf_oauth_unreachable", "token endpoint: %s", resp.error);
        pg_httpc_resp_free(&resp);
        if (rc == PG_ENOMEM)
            return PG_ENOMEM;
        return timed_out ? PG_ETIMEDOUT : PG_EUNAVAIL;
    }
    json_t *j = json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
    if (resp.status == 200) {
        const char *t = json_string_value(json_object_get(j, "access_token"));
        const char *u = json_string_value(json_object_get(j, "instance_url"));
        if (t && u && token_ok(t) && http_url_ok(u)) {
            *token = strdup(t);
            *instance_url = dup_url(u);
            rc = *token && *instance_url ? PG_OK : PG_ENOMEM;
        } else {
            pg_log(PG_LOG_ERROR, NULL, "sf_oauth_bad_reply",
                   "token endpoint answered 200 without a usable access_token/instance_url");
            rc = PG_EUNAVAIL;
        }
    } else if (resp.status == 400 || resp.status == 401 || resp.status == 403) {
        log_denied(resp.status, j);
        rc = PG_EAUTH;
    } else {
        pg_log(PG_LOG_WARN, NULL, "sf_oauth_unavailable", "token endpoint answered HTTP %ld",
               resp.status);
        rc = PG_EUNAVAIL;
    }
    json_decref(j);
    pg_httpc_resp_free(&resp);
    if (rc) {
        free(*token);
        free(*instance_url);
        *token = *instance_url = NULL;
    }
    return rc;
}

/* Copy the cached token out (under mu). */
static int hand_out(const struct pg_sf_oauth *o, char *token, size_t tsz, char *url, size_t usz)
{
    size_t tl = strlen(o->token), ul = strlen(o->instance_url);
    if (tl >= tsz || ul >= usz)
        return PG_ETOOLARGE;
    memcpy(token, o->token, tl + 1);
    memcpy(url, o->instance_url, ul + 1);
    return PG_OK;
}

int pg_sf_oauth_token(struct pg_sf_oauth *o,
                      int64_t deadline_ms,
                      char *token,
                      size_t tokensz,
                      char *instance_url,
                      size_t urlsz)
{
    if (token && tokensz)
        token[0] = '\0';
    if (instance_url && urlsz)
        instance_url[0] = '\0';
    if (!o || !token || !tokensz || !instance_url || !urlsz)
        return PG_EINVAL;

    pthread_mutex_lock(&o->mu);
    int rc;
    for (;;) {
        int64_t now = pg_now_ms();
        int usable = o->token && now < o->expires_ms; /* still inside its assumed lifetime */
        if (o->token && now < o->renew_at_ms) {
            rc = hand_out(o, token, tokensz, instance_url, urlsz);
            break;
        }
        if (o->renewing || now < o->fail_until_ms || now >= deadline_ms) {
            /* Someone else is renewing, a grant just failed, or no time left: an old token that
             * has not expired yet is better than waiting or failing. */
            if (usable) {
                rc = hand_out(o, token, tokensz, instance_url, urlsz);
                break;
            }
            if (!o->renewing && now < o->fail_until_ms) {
                rc = o->fail_rc;
                break;
            }
            if (now >= deadline_ms) {
                rc = PG_ETIMEDOUT;
                break;
            }
            struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                                  .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
            int w = pthread_cond_timedwait(&o->cv, &o->mu, &ts);
            if (w != 0 && w != ETIMEDOUT && w != EINTR) {
                rc = PG_EUNAVAIL;
                break;
            }
            continue;
        }

        /* This caller renews; the others wait on cv. */
        o->renewing = 1;
        pthread_mutex_unlock(&o->mu);
        int64_t started = pg_now_ms();
        char *nt = NULL, *nu = NULL;
        rc = grant(o, deadline_ms, &nt, &nu);
        pthread_mutex_lock(&o->mu);
        o->renewing = 0;
        if (rc == PG_OK) {
            if (o->token)
                wipe_free(o->token, strlen(o->token));
            free(o->instance_url);
            o->token = nt;
            o->instance_url = nu;
            /* Counted from when the request left: the token cannot have been issued earlier. */
            o->expires_ms = started + (int64_t)o->token_ttl_s * 1000;
            o->renew_at_ms = o->expires_ms - (int64_t)o->renew_before_s * 1000;
            o->fail_until_ms = 0;
            o->grants++;
            pg_log(PG_LOG_INFO, NULL, "sf_oauth_granted", "access token renewed");
        } else {
            o->failures++;
            o->fail_rc = rc;
            o->fail_until_ms = pg_now_ms() + PG_SF_OAUTH_FAIL_HOLD_MS;
        }
        pthread_cond_broadcast(&o->cv);
        if (rc == PG_OK || (o->token && pg_now_ms() < o->expires_ms))
            rc = hand_out(o, token, tokensz, instance_url, urlsz);
        break;
    }
    pthread_mutex_unlock(&o->mu);
    if (rc) {
        token[0] = '\0';
        instance_url[0] = '\0';
    }
    return rc;
}

void pg_sf_oauth_invalidate(struct pg_sf_oauth *o, const char *token)
{
    if (!o || !token)
        return;
    pthread_mutex_lock(&o->mu);
    if (o->token && strcmp(o->token, token) == 0) {
        wipe_free(o->token, strlen(o->token));
        o->token = NULL;
        o->expires_ms = o->renew_at_ms = 0;
        pg_log(PG_LOG_INFO, NULL, "sf_oauth_invalidated", "access token rejected by Salesforce");
    }
    pthread_mutex_unlock(&o->mu);
}

void pg_sf_oauth_stats(const struct pg_sf_oauth *o,
                       unsigned long long *grants,
                       unsigned long long *failures)
{
    unsigned long long g = 0, f = 0;
    if (o) {
        /* The object is never defined const; the lock only guards a consistent read. */
        struct pg_sf_oauth *m = (struct pg_sf_oauth *)o;
        pthread_mutex_lock(&m->mu);
        g = m->grants;
        f = m->failures;
        pthread_mutex_unlock(&m->mu);
    }
    if (grants)
        *grants = g;
    if (failures)
        *failures = f;
}
