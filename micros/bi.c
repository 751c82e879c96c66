#include "micros/bi.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "server/buf.h"
#include "server/httpc.h"
#include "server/log.h"
#include "server/util.h"

#define AUTH_REPLY_MAX (256u << 10)
#define URL_MAX 1024
#define DEFAULT_LIFE_MS (14LL * 24 * 3600 * 1000) /* Oracle: tokens are valid 14 days */
#define COOKIES_MAX 16
#define LOC_REF_MAX 99
#define APP_NAME_MAX 128

static const char *const DIMENSIONS[] = {
    "getLocationDimensions",    "getRevenueCenterDimensions",      "getMenuItemDimensions",
    "getTenderMediaDimensions", "getDiscountDimensions",           "getServiceChargeDimensions",
    "getTaxDimensions",         "getOrderTypeDimensions",          "getOrderChannelDimensions",
    "getReasonCodeDimensions",  "getEmployeeDimensions",           "getJobCodeDimensions",
    "getCashierDimensions",     "getCashManagementItemDimensions", NULL};

static const char *const DAILY_TOTALS[] = {
    "getControlDailyTotals",       "getOperationsDailyTotals",
    "getTenderMediaDailyTotals",   "getDiscountDailyTotals",
    "getServiceChargeDailyTotals", "getTaxDailyTotals",
    "getMenuItemDailyTotals",      NULL};

struct dim_entry {
    struct dim_entry *next;
    char *name, *loc_ref; /* loc_ref "" for the whole enterprise */
    json_t *value;
    int64_t expires_ms;
};

struct pg_bi {
    /* Configuration: written once by pg_bi_new, then only read. */
    char *base_url, *auth_url, *org, *client_id, *username, *password, *app_name;
    int connect_timeout_ms, timeout_ms, renew_before_s, dim_ttl_s;

    /* Token state, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a renewal ends */
    char *id_token, *refresh_token;
    int64_t expires_ms, renew_at_ms; /* pg_now_ms clock */
    int renewing;
    int64_t fail_until_ms;
    int fail_rc;
    unsigned long long signins, refreshes, failures;

    /* Dimension cache, under dim_mu. */
    pthread_mutex_t dim_mu;
    struct dim_entry *dims;
};

/* ---------------------------------------------------------------------------------------- */
/* small helpers                                                                              */

static void set_why(char *why, size_t whysz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whysz, const char *fmt, ...)
{
    if (!why || !whysz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
}

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static int url_ok(const char *u)
{
    if (!u || (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0))
        return 0;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F)
            return 0;
    return strlen(u) < URL_MAX / 2;
}

static char *dup_url(const char *u)
{
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/')
        n--;
    return strndup(u, n);
}

static int org_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int in_list(const char *const *list, const char *name)
{
    for (; name && *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

static int unreserved(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* application/x-www-form-urlencoded (and query string) value encoding. */
static int form_add(struct pg_buf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = b->len ? pg_buf_puts(b, "&") : PG_OK;
    if (!rc)
        rc = pg_buf_puts(b, name);
    if (!rc)
        rc = pg_buf_puts(b, "=");
    for (const unsigned char *p = (const unsigned char *)value; !rc && *p; p++) {
        if (unreserved((char)*p)) {
            rc = pg_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = pg_buf_append(b, e, 3);
        }
    }
    return rc;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

/* Decode unpadded base64url (padding tolerated); returns malloc'd NUL-terminated bytes. */
static char *b64url_decode(const char *in, size_t n)
{
    while (n && in[n - 1] == '=')
        n--;
    char *out = malloc(n * 3 / 4 + 2);
    if (!out)
        return NULL;
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '-' || ch == '+' ? 62
                : ch == '_' || ch == '/' ? 63
                                         : -1;
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[o] = '\0';
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* validation and request building (exposed for tests)                                      */

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int date_ok(const char *s)
{
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2))
        return 0;
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || m < 1 || m > 12 || d < 1)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

int pg_bi_valid_date(const char *s)
{
    return s && strlen(s) == 10 && date_ok(s);
}

int pg_bi_valid_utc(const char *s)
{
    if (!s || strlen(s) != 19 || !date_ok(s) || s[10] != 'T')
        return 0;
    const char *t = s + 11;
    if (!digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' || !digits(t + 6, 2))
        return 0;
    return num(t, 2) <= 23 && num(t + 3, 2) <= 59 && num(t + 6, 2) <= 59;
}

static int loc_ref_ok(const char *s)
{
    if (!s || !*s || strlen(s) > LOC_REF_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return 0;
    return 1;
}

int pg_bi_pkce_verifier(char *out, size_t sz)
{
    if (!out || sz < 65)
        return PG_EINVAL;
    unsigned char rnd[48];
    int rc = pg_random_bytes(rnd, sizeof rnd);
    if (rc) {
        out[0] = '\0';
        return rc;
    }
    b64url(rnd, sizeof rnd, out); /* 48 bytes -> 64 chars */
    explicit_bzero(rnd, sizeof rnd);
    return PG_OK;
}

int pg_bi_pkce_challenge(const char *verifier, char *out, size_t sz)
{
    if (!out || sz < 44)
        return PG_EINVAL;
    out[0] = '\0';
    size_t n = verifier ? strlen(verifier) : 0;
    if (n < 43 || n > 128)
        return PG_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!unreserved(verifier[i]))
            return PG_EINVAL;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)verifier, n, md);
    b64url(md, sizeof md, out);
    return PG_OK;
}

int pg_bi_build_request(const char *application_name,
                        const char *loc_ref,
                        enum pg_bi_date_kind kind,
                        const char *date,
                        const char *changed_since_utc,
                        int closed_only,
                        char **body)
{
    if (!body)
        return PG_EINVAL;
    *body = NULL;
    const char *app = application_name ? application_name : "posgate";
    const char *field = kind == PG_BI_BUS_DT        ? "busDt"
                        : kind == PG_BI_OPN_BUS_DT  ? "opnBusDt"
                        : kind == PG_BI_CLSD_BUS_DT ? "clsdBusDt"
                                                    : NULL;
    if (!field || !loc_ref_ok(loc_ref) || !pg_bi_valid_date(date) || !*app ||
        strlen(app) > APP_NAME_MAX || (changed_since_utc && !pg_bi_valid_utc(changed_since_utc)))
        return PG_EINVAL;
    json_t *j =
        json_pack("{s:s, s:s, s:s}", "applicationName", app, "locRef", loc_ref, field, date);
    if (!j)
        return PG_ENOMEM;
    int bad = 0;
    if (changed_since_utc)
        bad |= json_object_set_new(j, "changedSinceUTC", json_string(changed_since_utc));
    if (closed_only)
        bad |= json_object_set_new(j, "clsdGuestChecksOnly", json_true());
    if (!bad)
        *body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return *body ? PG_OK : PG_ENOMEM;
}

int64_t pg_bi_jwt_exp(const char *jwt)
{
    const char *d1 = jwt ? strchr(jwt, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2)
        return -1;
    char *payload = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!payload)
        return -1;
    json_t *j = json_loads(payload, 0, NULL);
    free(payload);
    json_t *exp = json_object_get(j, "exp");
    int64_t v = -1;
    if (json_is_integer(exp))
        v = json_integer_value(exp);
    else if (json_is_real(exp))
        v = (int64_t)json_real_value(exp);
    json_decref(j);
    return v > 0 ? v : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* lifecycle                                                                                 */

void pg_bi_free(struct pg_bi *b)
{
    if (!b)
        return;
    free(b->base_url);
    free(b->auth_url);
    free(b->org);
    free(b->client_id);
    free(b->username);
    wipe_free(b->password);
    free(b->app_name);
    wipe_free(b->id_token);
    wipe_free(b->refresh_token);
    pg_bi_dimension_flush(b);
    pthread_mutex_destroy(&b->dim_mu);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int pg_bi_new(const struct pg_bi_config *c, struct pg_bi **out)
{
    if (!out)
        return PG_EINVAL;
    *out = NULL;
    if (!c || !url_ok(c->base_url) || (c->auth_base_url && !url_ok(c->auth_base_url)) ||
        !org_ok(c->org) || !c->client_id || !*c->client_id || !c->username || !*c->username ||
        !c->password || !*c->password ||
        (c->application_name &&
         (!*c->application_name || strlen(c->application_name) > APP_NAME_MAX)))
        return PG_EINVAL;
    struct pg_bi *b = calloc(1, sizeof *b);
    if (!b)
        return PG_ENOMEM;
    pthread_condattr_t ca;
    int cv_ok = 0;
    if (pthread_condattr_init(&ca) == 0) {
        /* Waits are bounded by pg_now_ms() deadlines (monotonic clock). */
        cv_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                pthread_cond_init(&b->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cv_ok) {
        free(b);
        return PG_ENOMEM;
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        pthread_cond_destroy(&b->cv);
        free(b);
        return PG_ENOMEM;
    }
    if (pthread_mutex_init(&b->dim_mu, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        return PG_ENOMEM;
    }
    b->base_url = dup_url(c->base_url);
    b->auth_url = dup_url(c->auth_base_url ? c->auth_base_url : c->base_url);
    b->org = strdup(c->org);
    b->client_id = strdup(c->client_id);
    b->username = strdup(c->username);
    b->password = strdup(c->password);
    b->app_name = strdup(c->application_name ? c->application_name : "posgate");
    if (!b->base_url || !b->auth_url || !b->org || !b->client_id || !b->username || !b->password ||
        !b->app_name) {
        pg_bi_free(b);
        return PG_ENOMEM;
    }
    b->connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 5000;
    b->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 60000;
    b->renew_before_s = c->renew_before_s > 0 ? c->renew_before_s : 0;
    b->dim_ttl_s = c->dimension_ttl_s > 0 ? c->dimension_ttl_s : 3600;
    *out = b;
    return PG_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP                                                                                      */

/* One request bounded by the deadline. Transport errors map to PG_ETIMEDOUT when the deadline
 * has passed. */
static int http_do(const struct pg_bi *b,
                   const char *method,
                   const char *url,
                   const char *const *headers,
                   const char *body,
                   size_t body_len,
                   size_t cap,
                   const char *capture,
                   int64_t deadline_ms,
                   struct pg_httpc_resp *resp)
{
    int64_t left = deadline_ms - pg_now_ms();
    if (left <= 0) {
        memset(resp, 0, sizeof *resp);
        resp->retry_after_s = -1;
        snprintf(resp->error, sizeof resp->error, "deadline passed");
        return PG_ETIMEDOUT;
    }
    struct pg_httpc_req req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body_len,
        .connect_timeout_ms = (int)(left < b->connect_timeout_ms ? left : b->connect_timeout_ms),
        .timeout_ms = (int)(left < b->timeout_ms ? left : b->timeout_ms),
        .max_response_bytes = cap,
        .capture_header = capture,
#ifdef PG_HTTPC_CAPTURE_ALL
        .capture_all = capture != NULL,
#endif
    };
    int rc = pg_httpc_do(&req, resp);
    if (rc == PG_ETIMEDOUT || ((rc == PG_EUNAVAIL || rc == PG_EIO) && pg_now_ms() >= deadline_ms))
        return PG_ETIMEDOUT;
    return rc;
}

/* ---- cookies: a tiny jar for one sign-in ---- */

struct jar {
    char *c[COOKIES_MAX]; /* "name=value" */
    int n;
};

static void jar_free(struct jar *j)
{
    for (int i = 0; i < j->n; i++)
        wipe_free(j->c[i]);
    j->n = 0;
}

/* Add the cookie of one Set-Cookie value ("name=value; attrs"). */
static int jar_add_one(struct jar *j, const char *v, size_t len)
{
    const char *semi = memchr(v, ';', len);
    size_t n = semi ? (size_t)(semi - v) : len;
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    const char *eq = memchr(v, '=', n);
    if (!eq || eq == v)
        return PG_OK;
    size_t nl = (size_t)(eq - v) + 1;
    char *cookie = strndup(v, n);
    if (!cookie)
        return PG_ENOMEM;
    for (int i = 0; i < j->n; i++) {
        if (strncmp(j->c[i], cookie, nl) == 0) {
            wipe_free(j->c[i]);
            j->c[i] = cookie;
            return PG_OK;
        }
    }
    if (j->n == COOKIES_MAX) {
        wipe_free(cookie);
        return PG_OK;
    }
    j->c[j->n++] = cookie;
    return PG_OK;
}

static int jar_add(struct jar *j, const struct pg_httpc_resp *r)
{
#ifdef PG_HTTPC_CAPTURE_ALL
    const char *all = r->captured_all ? r->captured_all : r->captured;
#else
    const char *all = r->captured; /* httpc keeps one Set-Cookie (the last) */
#endif
    int rc = PG_OK;
    while (!rc && all && *all) {
        const char *nl = strchr(all, '\n');
        size_t len = nl ? (size_t)(nl - all) : strlen(all);
        rc = jar_add_one(j, all, len);
        all = nl ? nl + 1 : NULL;
    }
    return rc;
}

/* "Cookie: a=1; b=2" (malloc'd) or NULL when the jar is empty (*rc PG_OK) or on ENOMEM. */
static char *jar_header(const struct jar *j, int *rc)
{
    *rc = PG_OK;
    if (!j->n)
        return NULL;
    struct pg_buf h;
    pg_buf_init(&h, 64 << 10);
    int r = pg_buf_puts(&h, "Cookie: ");
    for (int i = 0; !r && i < j->n; i++)
        r = pg_buf_printf(&h, "%s%s", i ? "; " : "", j->c[i]);
    if (r) {
        pg_buf_free(&h);
        *rc = PG_ENOMEM;
        return NULL;
    }
    return pg_buf_steal(&h);
}

/* ---------------------------------------------------------------------------------------- */
/* sign-in and token grants                                                                  */

struct grant {
    char *id_token, *refresh_token;
    int64_t life_ms;
};

static void grant_free(struct grant *g)
{
    wipe_free(g->id_token);
    wipe_free(g->refresh_token);
    g->id_token = g->refresh_token = NULL;
}

static int token_chars_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= PG_BI_TOKEN_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F)
            return 0;
    return 1;
}

/* Status of an identity-server reply that is not a success. */
static int auth_status_rc(long status)
{
    if (status == 400 || status == 401 || status == 403)
        return PG_EAUTH;
    return PG_EUNAVAIL;
}

static void log_auth(const char *step, long status, const char *body)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e)
        e = json_string_value(json_object_get(j, "code"));
    const char *d = json_string_value(json_object_get(j, "error_description"));
    if (!d)
        d = json_string_value(json_object_get(j, "message"));
    pg_logj(PG_LOG_WARN, NULL, "bi_auth_failed",
            json_pack("{s:s, s:I, s:s%, s:s%}", "step", step, "status", (json_int_t)status, "error",
                      e ? e : "", e ? strnlen(e, 100) : 0, "detail", d ? d : "",
                      d ? strnlen(d, 200) : 0));
    json_decref(j);
}

/* Step 3 (and the refresh grant): POST the form to oauth2/token, parse the token reply. */
static int token_request(struct pg_bi *b,
                         const char *step,
                         struct pg_buf *form,
                         const char *cookie_hdr,
                         int64_t deadline_ms,
                         struct grant *g)
{
    char url[URL_MAX];
    snprintf(url, sizeof url, "%s/oidc-provider/v1/oauth2/token", b->auth_url);
    const char *hdrs[4] = {"Content-Type: application/x-www-form-urlencoded",
                           "Accept: application/json", cookie_hdr, NULL};
    struct pg_httpc_resp r;
    int64_t started = pg_now_ms();
    int64_t wall = pg_wall_ms();
    int rc =
        http_do(b, "POST", url, hdrs, form->data, form->len, AUTH_REPLY_MAX, NULL, deadline_ms, &r);
    if (rc) {
        pg_log(PG_LOG_WARN, NULL, "bi_auth_unreachable", "%s: %s", step, r.error);
        pg_httpc_resp_free(&r);
        return rc == PG_ENOMEM || rc == PG_ETIMEDOUT ? rc : PG_EUNAVAIL;
    }
    if (r.status != 200) {
        long status = r.status;
        log_auth(step, status, r.body);
        pg_httpc_resp_free(&r);
        return auth_status_rc(status);
    }
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    pg_httpc_resp_free(&r);
    const char *id = json_string_value(json_object_get(j, "id_token"));
    const char *rt = json_string_value(json_object_get(j, "refresh_token"));
    json_t *ei = json_object_get(j, "expires_in");
    if (!id || !token_chars_ok(id)) {
        pg_log(PG_LOG_ERROR, NULL, "bi_auth_bad_reply", "%s: 200 without a usable id_token", step);
        json_decref(j);
        return PG_EUNAVAIL;
    }
    g->id_token = strdup(id);
    g->refresh_token = rt && *rt && token_chars_ok(rt) ? strdup(rt) : NULL;
    if (!g->id_token || (rt && *rt && token_chars_ok(rt) && !g->refresh_token)) {
        json_decref(j);
        grant_free(g);
        return PG_ENOMEM;
    }
    /* Lifetime: the id_token's exp (what the API checks), else expires_in, else 14 days. */
    int64_t exp = pg_bi_jwt_exp(id);
    if (exp > 0)
        g->life_ms = exp * 1000 - wall - (pg_now_ms() - started);
    else if (json_is_integer(ei) && json_integer_value(ei) > 0)
        g->life_ms = (int64_t)json_integer_value(ei) * 1000;
    else
        g->life_ms = DEFAULT_LIFE_MS;
    if (g->life_ms < 0)
        g->life_ms = 0;
    json_decref(j);
    return PG_OK;
}

/* The redirectUrl's code parameter, URL-decoded (malloc'd), or NULL. */
static char *code_from_redirect(const char *u)
{
    const char *q = u ? strchr(u, '?') : NULL;
    for (const char *p = q; p && *p;) {
        p++;
        if (strncmp(p, "code=", 5) == 0) {
            p += 5;
            size_t n = strcspn(p, "&#");
            char *out = malloc(n + 1);
            if (!out)
                return NULL;
            size_t o = 0;
            for (size_t i = 0; i < n; i++) {
                if (p[i] == '%' && i + 2 < n + 1 && p[i + 1] && p[i + 2]) {
                    char h[3] = {p[i + 1], p[i + 2], 0};
                    out[o++] = (char)strtol(h, NULL, 16);
                    i += 2;
                } else {
                    out[o++] = p[i] == '+' ? ' ' : p[i];
                }
            }
            out[o] = '\0';
            if (!o) {
                free(out);
                return NULL;
            }
            return out;
        }
        p = strchr(p, '&');
    }
    return NULL;
}

static int truthy(json_t *v)
{
    if (json_is_true(v))
        return 1;
    const char *s = json_string_value(v);
    return s && strcmp(s, "true") == 0;
}

/* The full sign-in: authorize, signin, token (§1.1). Runs without the lock. */
static int sign_in(struct pg_bi *b, int64_t deadline_ms, struct grant *g)
{
    char verifier[72], challenge[48];
    int rc = pg_bi_pkce_verifier(verifier, sizeof verifier);
    if (!rc)
        rc = pg_bi_pkce_challenge(verifier, challenge, sizeof challenge);
    if (rc)
        return rc == PG_ENOMEM ? PG_ENOMEM : PG_EUNAVAIL;

    struct jar jar = {.n = 0};
    struct pg_buf q, form;
    pg_buf_init(&q, 16 << 10);
    pg_buf_init(&form, 16 << 10);
    char *cookie = NULL, *code = NULL;
    struct pg_httpc_resp r = {.retry_after_s = -1};

    /* 1. authorize: registers the PKCE challenge with a session, returned as cookies. */
    rc = form_add(&form, "response_type", "code");
    if (!rc)
        rc = form_add(&form, "client_id", b->client_id);
    if (!rc)
        rc = form_add(&form, "scope", "openid");
    if (!rc)
        rc = form_add(&form, "redirect_uri", PG_BI_REDIRECT_URI);
    if (!rc)
        rc = form_add(&form, "code_challenge", challenge);
    if (!rc)
        rc = form_add(&form, "code_challenge_method", "S256");
    if (!rc)
        rc = pg_buf_printf(&q, "%s/oidc-provider/v1/oauth2/authorize?%s", b->auth_url, form.data);
    pg_buf_reset(&form);
    if (rc) {
        rc = PG_ENOMEM;
        goto out;
    }
    static const char *const get_hdrs[] = {"Accept: application/json, text/html", NULL};
    rc =
        http_do(b, "GET", q.data, get_hdrs, NULL, 0, AUTH_REPLY_MAX, "Set-Cookie", deadline_ms, &r);
    if (rc) {
        pg_log(PG_LOG_WARN, NULL, "bi_auth_unreachable", "authorize: %s", r.error);
        rc = rc == PG_ENOMEM || rc == PG_ETIMEDOUT ? rc : PG_EUNAVAIL;
        goto out;
    }
    if (r.status < 200 || r.status >= 400) { /* a 3xx to a login page is fine: not followed */
        log_auth("authorize", r.status, r.body);
        rc = auth_status_rc(r.status);
        goto out;
    }
    if ((rc = jar_add(&jar, &r)) != PG_OK)
        goto out;
    pg_httpc_resp_free(&r);

    /* 2. signin: the API account's credentials and the enterprise. */
    rc = form_add(&form, "username", b->username);
    if (!rc)
        rc = form_add(&form, "password", b->password);
    if (!rc)
        rc = form_add(&form, "orgname", b->org);
    if (rc) {
        rc = PG_ENOMEM;
        goto out;
    }
    cookie = jar_header(&jar, &rc);
    if (rc)
        goto out;
    char url[URL_MAX];
    snprintf(url, sizeof url, "%s/oidc-provider/v1/oauth2/signin", b->auth_url);
    const char *hdrs[4] = {"Content-Type: application/x-www-form-urlencoded",
                           "Accept: application/json", cookie, NULL};
    rc = http_do(b, "POST", url, hdrs, form.data, form.len, AUTH_REPLY_MAX, "Set-Cookie",
                 deadline_ms, &r);
    explicit_bzero(form.data, form.len);
    pg_buf_reset(&form);
    if (rc) {
        pg_log(PG_LOG_WARN, NULL, "bi_auth_unreachable", "signin: %s", r.error);
        rc = rc == PG_ENOMEM || rc == PG_ETIMEDOUT ? rc : PG_EUNAVAIL;
        goto out;
    }
    if (r.status != 200) {
        log_auth("signin", r.status, r.body);
        rc = auth_status_rc(r.status);
        goto out;
    }
    {
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        const char *next = json_string_value(json_object_get(j, "nextOp"));
        if (next && strcmp(next, "expired") == 0) {
            pg_log(PG_LOG_ERROR, NULL, "bi_password_expired",
                   "the BI API account's password has expired: reset it in R&A");
            rc = PG_EAUTH;
        } else if (!next || strcmp(next, "redirect") != 0 ||
                   !truthy(json_object_get(j, "success")) ||
                   !(code = code_from_redirect(
                         json_string_value(json_object_get(j, "redirectUrl"))))) {
            log_auth("signin", r.status, r.body);
            rc = PG_EAUTH;
        }
        json_decref(j);
        if (rc)
            goto out;
    }
    if ((rc = jar_add(&jar, &r)) != PG_OK)
        goto out;
    pg_httpc_resp_free(&r);
    free(cookie);
    cookie = jar_header(&jar, &rc);
    if (rc)
        goto out;

    /* 3. token: the code and the verifier (the server checks it against the challenge). */
    rc = form_add(&form, "grant_type", "authorization_code");
    if (!rc)
        rc = form_add(&form, "client_id", b->client_id);
    if (!rc)
        rc = form_add(&form, "code", code);
    if (!rc)
        rc = form_add(&form, "code_verifier", verifier);
    if (!rc)
        rc = form_add(&form, "scope", "openid");
    if (!rc)
        rc = form_add(&form, "redirect_uri", PG_BI_REDIRECT_URI);
    if (rc) {
        rc = PG_ENOMEM;
        goto out;
    }
    rc = token_request(b, "token", &form, cookie, deadline_ms, g);

out:
    pg_httpc_resp_free(&r);
    explicit_bzero(verifier, sizeof verifier);
    if (form.data)
        explicit_bzero(form.data, form.len);
    pg_buf_free(&form);
    pg_buf_free(&q);
    wipe_free(cookie);
    wipe_free(code);
    jar_free(&jar);
    return rc;
}

static int refresh(struct pg_bi *b, const char *rt, int64_t deadline_ms, struct grant *g)
{
    struct pg_buf form;
    pg_buf_init(&form, 32 << 10);
    int rc = form_add(&form, "grant_type", "refresh_token");
    if (!rc)
        rc = form_add(&form, "client_id", b->client_id);
    if (!rc)
        rc = form_add(&form, "refresh_token", rt);
    if (!rc)
        rc = form_add(&form, "code", rt); /* Oracle's page: "code ... or refresh_token" */
    if (!rc)
        rc = form_add(&form, "scope", "openid");
    if (!rc)
        rc = form_add(&form, "redirect_uri", PG_BI_REDIRECT_URI);
    if (!rc)
        rc = token_request(b, "refresh", &form, NULL, deadline_ms, g);
    else
        rc = PG_ENOMEM;
    if (form.data)
        explicit_bzero(form.data, form.len);
    pg_buf_free(&form);
    return rc;
}

static int hand_out(const struct pg_bi *b, char *token, size_t tokensz)
{
    size_t n = strlen(b->id_token);
    if (n >= tokensz)
        return PG_ETOOLARGE;
    memcpy(token, b->id_token, n + 1);
    return PG_OK;
}

int pg_bi_token(struct pg_bi *b, int64_t deadline_ms, char *token, size_t tokensz)
{
    if (token && tokensz)
        token[0] = '\0';
    if (!b || !token || !tokensz)
        return PG_EINVAL;

    pthread_mutex_lock(&b->mu);
    int rc;
    for (;;) {
        int64_t now = pg_now_ms();
        int usable = b->id_token && now < b->expires_ms;
        if (b->id_token && now < b->renew_at_ms) {
            rc = hand_out(b, token, tokensz);
            break;
        }
        if (b->renewing || now < b->fail_until_ms || now >= deadline_ms) {
            if (usable) {
                rc = hand_out(b, token, tokensz);
                break;
            }
            if (!b->renewing && now < b->fail_until_ms) {
                rc = b->fail_rc;
                break;
            }
            if (now >= deadline_ms) {
                rc = PG_ETIMEDOUT;
                break;
            }
            struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                                  .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
            int w = pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            if (w != 0 && w != ETIMEDOUT && w != EINTR) {
                rc = PG_EUNAVAIL;
                break;
            }
            continue;
        }

        /* This caller renews; the others wait on cv. */
        b->renewing = 1;
        char *rt = b->refresh_token ? strdup(b->refresh_token) : NULL;
        pthread_mutex_unlock(&b->mu);
        struct grant g = {NULL, NULL, 0};
        int refreshed = 0, refresh_refused = 0;
        rc = PG_EAUTH;
        if (rt) {
            rc = refresh(b, rt, deadline_ms, &g);
            refreshed = rc == PG_OK;
            refresh_refused = rc == PG_EAUTH;
        }
        if (!rt || refresh_refused)
            rc = sign_in(b, deadline_ms, &g);
        wipe_free(rt);
        int64_t got = pg_now_ms();
        pthread_mutex_lock(&b->mu);
        b->renewing = 0;
        if (refresh_refused) {
            wipe_free(b->refresh_token);
            b->refresh_token = NULL;
        }
        if (rc == PG_OK) {
            wipe_free(b->id_token);
            b->id_token = g.id_token;
            if (g.refresh_token) {
                wipe_free(b->refresh_token);
                b->refresh_token = g.refresh_token;
            }
            g.id_token = g.refresh_token = NULL;
            int64_t before = (int64_t)b->renew_before_s * 1000;
            if (before <= 0 || before > g.life_ms / 2)
                before = g.life_ms / 2;
            b->expires_ms = got + g.life_ms;
            b->renew_at_ms = b->expires_ms - before;
            b->fail_until_ms = 0;
            if (refreshed)
                b->refreshes++;
            else
                b->signins++;
            pg_log(PG_LOG_INFO, NULL, "bi_token_renewed", "BI API id_token %s (valid %lld s)",
                   refreshed ? "refreshed" : "obtained by sign-in", (long long)(g.life_ms / 1000));
        } else {
            b->failures++;
            b->fail_rc = rc;
            b->fail_until_ms = pg_now_ms() + PG_BI_FAIL_HOLD_MS;
        }
        grant_free(&g);
        pthread_cond_broadcast(&b->cv);
        if (rc == PG_OK || (b->id_token && pg_now_ms() < b->expires_ms))
            rc = hand_out(b, token, tokensz);
        break;
    }
    pthread_mutex_unlock(&b->mu);
    if (rc)
        token[0] = '\0';
    return rc;
}

void pg_bi_invalidate(struct pg_bi *b, const char *token)
{
    if (!b || !token)
        return;
    pthread_mutex_lock(&b->mu);
    if (b->id_token && strcmp(b->id_token, token) == 0) {
        wipe_free(b->id_token);
        b->id_token = NULL;
        b->expires_ms = b->renew_at_ms = 0;
        pg_log(PG_LOG_INFO, NULL, "bi_token_invalidated", "id_token rejected by the BI API");
    }
    pthread_mutex_unlock(&b->mu);
}

void pg_bi_stats(struct pg_bi *b,
                 unsigned long long *signins,
                 unsigned long long *refreshes,
                 unsigned long long *failures)
{
    unsigned long long s = 0, r = 0, f = 0;
    if (b) {
        pthread_mutex_lock(&b->mu);
        s = b->signins;
        r = b->refreshes;
        f = b->failures;
        pthread_mutex_unlock(&b->mu);
    }
    if (signins)
        *signins = s;
    if (refreshes)
        *refreshes = r;
    if (failures)
        *failures = f;
}

/* ---------------------------------------------------------------------------------------- */
/* data calls                                                                                */

/* "HTTP 400 [33204]: detail" from an RFC 7807-like error body (or its first bytes). */
static void error_why(long status, const char *body, char *why, size_t whysz)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *d = json_string_value(json_object_get(j, "detail"));
    if (!d)
        d = json_string_value(json_object_get(j, "message"));
    if (!d)
        d = json_string_value(json_object_get(j, "title"));
    json_t *cv = json_object_get(j, "code");
    char code[32] = "";
    if (json_is_string(cv))
        snprintf(code, sizeof code, " [%.20s]", json_string_value(cv));
    else if (json_is_integer(cv))
        snprintf(code, sizeof code, " [%lld]", (long long)json_integer_value(cv));
    if (d)
        set_why(why, whysz, "HTTP %ld%s: %.300s", status, code, d);
    else if (body && *body && !j)
        set_why(why, whysz, "HTTP %ld: %.200s", status, body);
    else
        set_why(why, whysz, "HTTP %ld%s", status, code);
    json_decref(j);
}

static int status_rc(long status)
{
    if (status == 401)
        return PG_EAUTH;
    if (status == 403)
        return PG_EFORBIDDEN;
    if (status == 429 || status >= 500)
        return PG_EUNAVAIL;
    return PG_EPROTO;
}

/* POST body to /bi/v1/{org}/{op}; one renewal and retry on a 401. */
static int bi_call(struct pg_bi *b,
                   const char *op,
                   const char *body,
                   int64_t deadline_ms,
                   json_t **resp,
                   long *status_out,
                   int *retry_after_s,
                   char *why,
                   size_t whysz)
{
    *resp = NULL;
    if (status_out)
        *status_out = 0;
    char url[URL_MAX];
    snprintf(url, sizeof url, "%s/bi/v1/%s/%s", b->base_url, b->org, op);
    char *tok = malloc(PG_BI_TOKEN_MAX);
    char *auth = malloc(PG_BI_TOKEN_MAX + 32);
    if (!tok || !auth) {
        free(tok);
        free(auth);
        set_why(why, whysz, "out of memory");
        return PG_ENOMEM;
    }
    int rc = PG_EAUTH;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = pg_bi_token(b, deadline_ms, tok, PG_BI_TOKEN_MAX);
        if (rc) {
            set_why(why, whysz, "BI API sign-in: %s", pg_strerror(rc));
            break;
        }
        snprintf(auth, PG_BI_TOKEN_MAX + 32, "Authorization: Bearer %s", tok);
        const char *hdrs[] = {"Content-Type: application/json", "Accept: application/json", auth,
                              NULL};
        struct pg_httpc_resp r;
        rc = http_do(b, "POST", url, hdrs, body, strlen(body), PG_BI_MAX_RESPONSE, NULL,
                     deadline_ms, &r);
        if (retry_after_s)
            *retry_after_s = r.retry_after_s;
        if (status_out)
            *status_out = r.status;
        if (rc) {
            set_why(why, whysz, "%s: %s", op, r.error);
            pg_httpc_resp_free(&r);
            break;
        }
        if (r.status == 401) {
            pg_httpc_resp_free(&r);
            pg_bi_invalidate(b, tok);
            rc = PG_EAUTH;
            set_why(why, whysz, "%s: HTTP 401 after a token renewal", op);
            continue;
        }
        if (r.status != 200) {
            error_why(r.status, r.body, why, whysz);
            rc = status_rc(r.status);
            pg_httpc_resp_free(&r);
            break;
        }
        json_error_t err;
        json_t *j = json_loadb(r.body, r.len, 0, &err);
        pg_httpc_resp_free(&r);
        if (!json_is_object(j)) {
            set_why(why, whysz, "%s: reply is not a JSON object (%s)", op,
                    j ? "wrong type" : err.text);
            json_decref(j);
            rc = PG_EPROTO;
            break;
        }
        /* Errors may come back with 200 as {type,title,status,detail}. */
        json_t *st = json_object_get(j, "status");
        if (json_is_integer(st) && json_integer_value(st) >= 400 &&
            (json_object_get(j, "detail") || json_object_get(j, "title"))) {
            long s = (long)json_integer_value(st);
            char *txt = json_dumps(j, JSON_COMPACT);
            error_why(s, txt, why, whysz);
            free(txt);
            json_decref(j);
            rc = s == 401 ? PG_EAUTH : status_rc(s);
            break;
        }
        *resp = j;
        rc = PG_OK;
        set_why(why, whysz, "%s", "");
        break;
    }
    explicit_bzero(tok, PG_BI_TOKEN_MAX);
    explicit_bzero(auth, PG_BI_TOKEN_MAX + 32);
    free(tok);
    free(auth);
    return rc;
}

/* Every list call starts the same way: no reason yet, no Retry-After, no reply. */
static int call_begin(struct pg_bi *b, json_t **resp, int *retry_after_s, char *why, size_t whysz)
{
    set_why(why, whysz, "%s", "");
    if (retry_after_s)
        *retry_after_s = -1;
    if (!resp)
        return PG_EINVAL;
    *resp = NULL;
    return b ? PG_OK : PG_EINVAL;
}

/* A reply whose list member is there but not an array (absent or null: an empty list) is
 * unusable: PG_EPROTO, and the reply is dropped. Passes any other rc through. */
static int
want_array(int rc, json_t **resp, const char *op, const char *member, char *why, size_t whysz)
{
    json_t *v = rc == PG_OK ? json_object_get(*resp, member) : NULL;
    if (v && !json_is_array(v) && !json_is_null(v)) {
        set_why(why, whysz, "%s: %s is not an array", op, member);
        json_decref(*resp);
        *resp = NULL;
        return PG_EPROTO;
    }
    return rc;
}

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
                       size_t whysz)
{
    int rc = call_begin(b, resp, retry_after_s, why, whysz);
    if (rc)
        return rc;
    char *body = NULL;
    rc = pg_bi_build_request(b->app_name, loc_ref, kind, date, changed_since_utc, closed_only,
                             &body);
    if (rc) {
        set_why(why, whysz, "%s",
                rc == PG_ENOMEM ? "out of memory"
                                : "invalid locRef, business date (YYYY-MM-DD) or changedSinceUTC "
                                  "(YYYY-MM-DDTHH:MM:SS, no zone)");
        return rc;
    }
    rc = bi_call(b, "getGuestChecks", body, deadline_ms, resp, NULL, retry_after_s, why, whysz);
    free(body);
    return want_array(rc, resp, "getGuestChecks", "guestChecks", why, whysz);
}

int pg_bi_guest_check_ext(struct pg_bi *b,
                          const char *loc_ref,
                          const char *opn_bus_dt,
                          int64_t deadline_ms,
                          json_t **resp,
                          int *retry_after_s,
                          char *why,
                          size_t whysz)
{
    int rc = call_begin(b, resp, retry_after_s, why, whysz);
    if (rc)
        return rc;
    if (!loc_ref_ok(loc_ref) || !pg_bi_valid_date(opn_bus_dt)) {
        set_why(why, whysz, "invalid locRef or opnBusDt (YYYY-MM-DD)");
        return PG_EINVAL;
    }
    json_t *j = json_pack("{s:s,s:s,s:s}", "applicationName", b->app_name, "locRef", loc_ref,
                          "opnBusDt", opn_bus_dt);
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!body) {
        set_why(why, whysz, "out of memory");
        return PG_ENOMEM;
    }
    rc = bi_call(b, "getGuestCheckExtensibilityDetails", body, deadline_ms, resp, NULL,
                 retry_after_s, why, whysz);
    free(body);
    return want_array(rc, resp, "getGuestCheckExtensibilityDetails", "revenueCenters", why, whysz);
}

/* The first of two member names that holds a string. */
static json_t *str_of(const json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (!json_is_string(v) && b)
        v = json_object_get(o, b);
    return json_is_string(v) ? v : NULL;
}

static int ext_add(json_t *idx, json_t *gcid, const json_t *e)
{
    json_t *dn = str_of(e, "dataName", NULL), *data = str_of(e, "data", NULL);
    if (!dn || !data)
        return PG_OK;
    char key[32];
    if (json_is_integer(gcid))
        snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT, json_integer_value(gcid));
    else if (json_is_string(gcid) && json_string_length(gcid) < sizeof key)
        snprintf(key, sizeof key, "%s", json_string_value(gcid));
    else
        return PG_OK; /* a detail that names no check cannot be attached */
    json_t *arr = json_object_get(idx, key);
    if (!arr) {
        arr = json_array();
        if (!arr || json_object_set_new(idx, key, arr))
            return PG_ENOMEM;
    }
    json_t *n = json_object();
    if (!n)
        return PG_ENOMEM;
    int bad = 0;
    json_t *v;
    if ((v = str_of(e, "appName", "applicationName")))
        bad |= json_object_set(n, "appName", v);
    bad |= json_object_set(n, "dataName", dn);
    if ((v = str_of(e, "dataType", NULL)))
        bad |= json_object_set(n, "dataType", v);
    bad |= json_object_set(n, "data", data);
    if ((v = str_of(e, "displayName", "displayText")))
        bad |= json_object_set(n, "displayName", v);
    bad |= json_array_append_new(arr, n);
    return bad ? PG_ENOMEM : PG_OK;
}

int pg_bi_ext_index(const json_t *reply, json_t **out)
{
    if (!out)
        return PG_EINVAL;
    *out = NULL;
    json_t *idx = json_object();
    if (!idx)
        return PG_ENOMEM;
    const json_t *rvcs = json_object_get(reply, "revenueCenters");
    if ((rvcs && !json_is_array(rvcs) && !json_is_null(rvcs)) || !json_is_object(reply)) {
        json_decref(idx);
        return PG_EPROTO;
    }
    int rc = PG_OK;
    size_t i, k, m;
    json_t *rvc, *g, *e;
    json_array_foreach(rvcs, i, rvc)
    {
        json_t *gcs = json_object_get(rvc, "guestChecks");
        if (gcs && !json_is_array(gcs) && !json_is_null(gcs)) {
            rc = PG_EPROTO;
            break;
        }
        json_array_foreach(gcs, k, g)
        {
            json_t *gcid = json_object_get(g, "guestCheckId");
            json_t *dets = json_object_get(g, "extensibilityDetails");
            if (json_is_array(dets)) {
                json_array_foreach(dets, m, e)
                {
                    if (rc == PG_OK)
                        rc = ext_add(idx, gcid, e);
                }
            } else if (rc == PG_OK) {
                rc = ext_add(idx, gcid, g); /* a flat row: the element is the detail */
            }
        }
        if (rc != PG_OK)
            break;
    }
    if (rc != PG_OK) {
        json_decref(idx);
        return rc;
    }
    *out = idx;
    return PG_OK;
}

/* Every request names the application (optional in the API since 20.1.10, but it identifies us
 * in Oracle's logs and some deployments require it). */
static char *loc_body(const char *app_name, const char *loc_ref, const char *bus_dt)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    int bad = json_object_set_new(j, "applicationName", json_string(app_name));
    if (loc_ref)
        bad |= json_object_set_new(j, "locRef", json_string(loc_ref));
    if (bus_dt)
        bad |= json_object_set_new(j, "busDt", json_string(bus_dt));
    char *s = bad ? NULL : json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

void pg_bi_dimension_flush(struct pg_bi *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->dim_mu);
    struct dim_entry *e = b->dims;
    b->dims = NULL;
    pthread_mutex_unlock(&b->dim_mu);
    while (e) {
        struct dim_entry *n = e->next;
        free(e->name);
        free(e->loc_ref);
        json_decref(e->value);
        free(e);
        e = n;
    }
}

int pg_bi_dimension(struct pg_bi *b,
                    const char *name,
                    const char *loc_ref,
                    int64_t deadline_ms,
                    json_t **resp,
                    char *why,
                    size_t whysz)
{
    set_why(why, whysz, "%s", "");
    if (!resp)
        return PG_EINVAL;
    *resp = NULL;
    if (!b || !in_list(DIMENSIONS, name) ||
        (loc_ref ? !loc_ref_ok(loc_ref) : strcmp(name, "getLocationDimensions") != 0)) {
        set_why(why, whysz, "unknown dimension or invalid locRef");
        return PG_EINVAL;
    }
    const char *key = loc_ref ? loc_ref : "";
    pthread_mutex_lock(&b->dim_mu);
    int64_t now = pg_now_ms();
    for (struct dim_entry *e = b->dims; e; e = e->next) {
        if (strcmp(e->name, name) == 0 && strcmp(e->loc_ref, key) == 0 && now < e->expires_ms) {
            *resp = json_incref(e->value);
            break;
        }
    }
    pthread_mutex_unlock(&b->dim_mu);
    if (*resp)
        return PG_OK;

    char *body = loc_body(b->app_name, loc_ref, NULL);
    if (!body)
        return PG_ENOMEM;
    json_t *j = NULL;
    int rc = bi_call(b, name, body, deadline_ms, &j, NULL, NULL, why, whysz);
    free(body);
    if (rc)
        return rc;

    struct dim_entry *ne = calloc(1, sizeof *ne);
    if (ne && (ne->name = strdup(name)) && (ne->loc_ref = strdup(key))) {
        ne->value = json_incref(j);
        ne->expires_ms = pg_now_ms() + (int64_t)b->dim_ttl_s * 1000;
        pthread_mutex_lock(&b->dim_mu);
        /* Replace an expired (or concurrently fetched) entry for the same key. */
        for (struct dim_entry **pp = &b->dims; *pp;) {
            struct dim_entry *e = *pp;
            if ((strcmp(e->name, name) == 0 && strcmp(e->loc_ref, key) == 0) ||
                pg_now_ms() >= e->expires_ms) {
                *pp = e->next;
                free(e->name);
                free(e->loc_ref);
                json_decref(e->value);
                free(e);
            } else {
                pp = &e->next;
            }
        }
        ne->next = b->dims;
        b->dims = ne;
        pthread_mutex_unlock(&b->dim_mu);
    } else if (ne) { /* out of memory for the cache: the caller still gets the reply */
        free(ne->name);
        free(ne);
    }
    *resp = j;
    return PG_OK;
}

int pg_bi_daily_totals(struct pg_bi *b,
                       const char *name,
                       const char *loc_ref,
                       const char *bus_dt,
                       int64_t deadline_ms,
                       json_t **resp,
                       char *why,
                       size_t whysz)
{
    set_why(why, whysz, "%s", "");
    if (!resp)
        return PG_EINVAL;
    *resp = NULL;
    if (!b || !in_list(DAILY_TOTALS, name) || !loc_ref_ok(loc_ref) || !pg_bi_valid_date(bus_dt)) {
        set_why(why, whysz, "unknown daily totals operation, invalid locRef or busDt");
        return PG_EINVAL;
    }
    char *body = loc_body(b->app_name, loc_ref, bus_dt);
    if (!body)
        return PG_ENOMEM;
    int rc = bi_call(b, name, body, deadline_ms, resp, NULL, NULL, why, whysz);
    free(body);
    return rc;
}

int pg_bi_control_totals(struct pg_bi *b,
                         const char *loc_ref,
                         enum pg_bi_date_kind kind,
                         const char *date,
                         int64_t deadline_ms,
                         json_t **resp,
                         char *why,
                         size_t whysz)
{
    set_why(why, whysz, "%s", "");
    if (!resp)
        return PG_EINVAL;
    *resp = NULL;
    if (!b || !loc_ref_ok(loc_ref) || !pg_bi_valid_date(date)) {
        set_why(why, whysz, "invalid locRef or business date");
        return PG_EINVAL;
    }
    /* exactly one of the three date fields, as for getGuestChecks (§1.6) */
    const char *key = kind == PG_BI_CLSD_BUS_DT  ? "clsdBusDt"
                      : kind == PG_BI_OPN_BUS_DT ? "opnBusDt"
                                                 : "busDt";
    json_t *j =
        json_pack("{s:s,s:s,s:s}", "applicationName", b->app_name, "locRef", loc_ref, key, date);
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!body)
        return PG_ENOMEM;
    int rc = bi_call(b, "getControlDailyTotals", body, deadline_ms, resp, NULL, NULL, why, whysz);
    free(body);
    return rc;
}

static int copy_out(const char *s, char *out, size_t sz)
{
    size_t n = strlen(s);
    if (n >= sz)
        return PG_ETOOLARGE;
    memcpy(out, s, n + 1);
    return PG_OK;
}

int pg_bi_latest_bus_dt(struct pg_bi *b,
                        const char *loc_ref,
                        int64_t deadline_ms,
                        char *bus_dt,
                        size_t sz,
                        char *cur_utc,
                        size_t cusz)
{
    if (bus_dt && sz)
        bus_dt[0] = '\0';
    if (cur_utc && cusz)
        cur_utc[0] = '\0';
    if (!b || !bus_dt || !sz || (cur_utc && !cusz) || !loc_ref_ok(loc_ref))
        return PG_EINVAL;
    char *body = loc_body(b->app_name, loc_ref, NULL);
    if (!body)
        return PG_ENOMEM;
    json_t *j = NULL;
    long status = 0;
    char why[256];
    int rc = bi_call(b, "getLatestBusDt", body, deadline_ms, &j, &status, NULL, why, sizeof why);
    if (rc == PG_EPROTO && status == 404)
        rc =
            bi_call(b, "getLatestBusinessDate", body, deadline_ms, &j, NULL, NULL, why, sizeof why);
    free(body);
    if (rc) {
        pg_log(PG_LOG_WARN, NULL, "bi_latest_bus_dt_failed", "%s", why);
        return rc;
    }
    const char *d = json_string_value(json_object_get(j, "latestBusDt"));
    const char *u = json_string_value(json_object_get(j, "curUTC"));
    if (!pg_bi_valid_date(d))
        rc = PG_EPROTO;
    else
        rc = copy_out(d, bus_dt, sz);
    if (!rc && cur_utc && u)
        rc = copy_out(u, cur_utc, cusz);
    json_decref(j);
    if (rc) {
        bus_dt[0] = '\0';
        if (cur_utc)
            cur_utc[0] = '\0';
    }
    return rc;
}
