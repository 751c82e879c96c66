/*
 * The MICROS simulator's Reporting & Analytics BI API (micros-wire.md §1, sim/README.md "MICROS:
 * BI API"): the OIDC authorization-code + PKCE sign-in under /oidc-provider/v1/, the BI
 * operations under POST /bi/v1/{org}/..., the late-upload control and the state view. The data
 * comes from sim/mi_bi_gen.c.
 */
#include "sim/mi_bi.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "server/util.h"
#include "sim/sf.h" /* pg_sim_form_get */

#define OIDC "/oidc-provider/v1"
#define MAX_SESSIONS 4096
#define SESSION_TTL_S 600
#define REFRESH_TTL_S (28LL * 86400)
#define COOKIE "ORA_OIDC_SESSION"

struct bi_session {
    char id[48];
    char challenge[130];
    char code[48];
    int64_t exp_s;      /* the session (authorize -> signin) */
    int64_t code_exp_s; /* 0 = no code yet */
    int code_used;
};

struct bi_refresh {
    char tok[48];
    int64_t exp_s;
};

struct bi_priv {
    struct bi_data d;
    struct bi_session *sess;
    size_t nsess;
    struct bi_refresh *refresh;
    size_t nrefresh;
    long long gen; /* id_tokens carry it; POST /_sim/bi/tokens/expire bumps it */
    long long grants;
    int64_t rl_start;
    long long rl_count;
};

static struct bi_priv *P(struct pg_sim *sim)
{
    return sim->priv;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static void rand_tok(char *out, size_t outsz)
{
    unsigned char b[24];
    if (RAND_bytes(b, sizeof b) != 1)
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)(rand() & 0xff);
    char *s = pg_sim_b64(b, sizeof b, 1);
    snprintf(out, outsz, "%s", s ? s : "x");
    free(s);
}

/* ---- replies ---- */

/* The BI API's error body (§1.8): RFC 7807-like, with Oracle's numeric code when there is one. */
static void bi_error(struct pg_sim_reply *out, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void bi_error(struct pg_sim_reply *out, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *title = status == 400   ? "Bad Request"
                        : status == 401 ? "Unauthorized"
                        : status == 403 ? "Forbidden"
                        : status == 404 ? "Not Found"
                        : status == 405 ? "Method Not Allowed"
                        : status == 415 ? "Unsupported Media Type"
                        : status == 429 ? "Too Many Requests"
                                        : "Error";
    json_t *b = json_pack("{s:s,s:s,s:i,s:s}", "type", "about:blank", "title", title, "status",
                          status, "detail", msg);
    if (code)
        json_object_set_new(b, "code", json_string(code));
    pg_sim_reply_json(out, status, b);
}

/* Amounts are reals: dump with 15 significant digits so 313.9 stays "313.9". */
static void reply_bi(struct pg_sim_reply *out, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(body);
    if (!s) {
        bi_error(out, 500, NULL, "out of memory");
        return;
    }
    pg_sim_reply_text(out, 200, "application/json;charset=UTF-8", s, strlen(s));
    free(s);
}

static void oauth_error(struct pg_sim_reply *out, int status, const char *err, const char *desc)
{
    pg_sim_reply_json(out, status, json_pack("{s:s,s:s}", "error", err, "error_description", desc));
}

/* ---- init, reset, state ---- */

int pg_sim_bi_init(struct pg_sim *sim, char *err, size_t errsz)
{
    struct bi_priv *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errsz, "micros: out of memory");
        return PG_ENOMEM;
    }
    int rc = pg_sim_bi_generate(sim->cfg, sim->seed, &p->d, err, errsz);
    if (rc) {
        free(p);
        return rc;
    }
    p->gen = 1;
    sim->priv = p;
    return PG_OK;
}

void pg_sim_bi_destroy(struct pg_sim *sim)
{
    struct bi_priv *p = P(sim);
    if (!p)
        return;
    pg_sim_bi_data_free(&p->d);
    free(p->sess);
    free(p->refresh);
}

/* Late uploads are undone and the rate limit window restarts; issued tokens stay valid. */
void pg_sim_bi_reset(struct pg_sim *sim)
{
    struct bi_priv *p = P(sim);
    for (size_t i = 0; i < p->d.ndays; i++)
        for (size_t j = 0; j < p->d.days[i].n; j++)
            p->d.days[i].checks[j].released = 0,
            p->d.days[i].checks[j].upd_s = p->d.days[i].checks[j].upd0_s;
    p->rl_start = 0;
    p->rl_count = 0;
    p->grants = 0;
}

json_t *pg_sim_bi_state(struct pg_sim *sim)
{
    struct bi_priv *p = P(sim);
    json_t *checks = json_object();
    long long pending = 0;
    for (size_t i = 0; i < p->d.ndays; i++) {
        struct bi_day *d = &p->d.days[i];
        long long vis = 0;
        for (size_t j = 0; j < d->n; j++) {
            if (d->checks[j].late && !d->checks[j].released)
                pending++;
            else
                vis++;
        }
        json_t *l = json_object_get(checks, d->loc);
        if (!l)
            json_object_set_new(checks, d->loc, l = json_object());
        json_object_set_new(l, d->date, json_integer(vis));
    }
    return json_pack("{s:o,s:I,s:I}", "checks", checks, "late_pending", (json_int_t)pending,
                     "grants", (json_int_t)p->grants);
}

/* ---- OIDC ---- */

static void base_url(const struct pg_sim_req *req, char *out, size_t outsz)
{
    const char *host = pg_sim_req_header(req, "Host");
    snprintf(out, outsz, "http://%s" OIDC, host ? host : "localhost");
}

static char *query_get(const struct pg_sim_req *req, const char *name)
{
    return pg_sim_form_get(req->query, strlen(req->query), name);
}

static char *form_get(const struct pg_sim_req *req, const char *name)
{
    return pg_sim_form_get(req->body, req->body_len, name);
}

static int is_form(const struct pg_sim_req *req)
{
    const char *ct = pg_sim_req_header(req, "Content-Type");
    return ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

/* RFC 7636: 43..128 characters of [A-Za-z0-9-._~]. */
static int pkce_chars(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 43 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-._~", s[i]))
            return 0;
    return 1;
}

static void sessions_prune(struct bi_priv *p, int64_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < p->nsess; i++) {
        struct bi_session *s = &p->sess[i];
        int live = s->exp_s > now || (s->code_exp_s > now && !s->code_used);
        if (live)
            p->sess[k++] = *s;
    }
    p->nsess = k;
}

static struct bi_session *session_by_cookie(struct bi_priv *p, const char *cookie, int64_t now)
{
    if (!cookie)
        return NULL;
    const char *c = strstr(cookie, COOKIE "=");
    if (!c)
        return NULL;
    c += strlen(COOKIE "=");
    size_t n = strcspn(c, "; ");
    for (size_t i = 0; i < p->nsess; i++)
        if (strlen(p->sess[i].id) == n && memcmp(p->sess[i].id, c, n) == 0 &&
            p->sess[i].exp_s > now)
            return &p->sess[i];
    return NULL;
}

static void
oidc_discovery(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    char b[400], a[450], t[450];
    (void)sim;
    base_url(req, b, sizeof b);
    snprintf(a, sizeof a, "%s/oauth2/authorize", b);
    snprintf(t, sizeof t, "%s/oauth2/token", b);
    pg_sim_reply_json(out, 200,
                      json_pack("{s:s,s:s,s:s,s:[s],s:[s,s],s:[s],s:[s],s:[s],s:[s]}", "issuer", b,
                                "authorization_endpoint", a, "token_endpoint", t,
                                "response_types_supported", "code", "grant_types_supported",
                                "authorization_code", "refresh_token",
                                "code_challenge_methods_supported", "S256", "scopes_supported",
                                "openid", "subject_types_supported", "public",
                                "id_token_signing_alg_values_supported", "HS256"));
}

static void
oidc_authorize(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    char *rt = query_get(req, "response_type"), *cid = query_get(req, "client_id"),
         *scope = query_get(req, "scope"), *ru = query_get(req, "redirect_uri"),
         *ch = query_get(req, "code_challenge"), *m = query_get(req, "code_challenge_method");
    const char *why = NULL, *code = "invalid_request";
    if (!rt || strcmp(rt, "code") != 0) {
        why = "response_type must be code";
        code = "unsupported_response_type";
    } else if (!cid || strcmp(cid, cfg->micros.bi.client_id) != 0) {
        why = "unknown client_id";
        code = "unauthorized_client";
    } else if (!scope || !strstr(scope, "openid")) {
        why = "scope must include openid";
        code = "invalid_scope";
    } else if (!ru || strcmp(ru, cfg->micros.bi.redirect_uri) != 0) {
        why = "redirect_uri is not registered for this client";
    } else if (!m || strcmp(m, "S256") != 0) {
        why = "code_challenge_method must be S256";
    } else if (!ch || strlen(ch) != 43 || !pkce_chars(ch)) {
        why = "code_challenge must be the base64url SHA-256 of the code_verifier (43 chars)";
    }
    if (why) {
        oauth_error(out, 400, code, why);
    } else {
        pthread_mutex_lock(&sim->mu);
        struct bi_priv *p = P(sim);
        int64_t now = now_s();
        sessions_prune(p, now);
        if (p->nsess >= MAX_SESSIONS) {
            pthread_mutex_unlock(&sim->mu);
            oauth_error(out, 503, "temporarily_unavailable", "too many sign-ins in progress");
            goto done;
        }
        if (!p->sess && !(p->sess = calloc(MAX_SESSIONS, sizeof *p->sess))) {
            pthread_mutex_unlock(&sim->mu);
            oauth_error(out, 500, "server_error", "out of memory");
            goto done;
        }
        struct bi_session *s = &p->sess[p->nsess++];
        memset(s, 0, sizeof *s);
        rand_tok(s->id, sizeof s->id);
        snprintf(s->challenge, sizeof s->challenge, "%s", ch);
        s->exp_s = now + SESSION_TTL_S;
        char cookie[128];
        snprintf(cookie, sizeof cookie, COOKIE "=%s; Path=/oidc-provider; HttpOnly", s->id);
        pthread_mutex_unlock(&sim->mu);
        static const char page[] = "<!DOCTYPE html><html><head><title>Sign In</title></head>"
                                   "<body><form method=\"post\" action=\"signin\"></form></body>"
                                   "</html>";
        pg_sim_reply_text(out, 200, "text/html;charset=UTF-8", page, sizeof page - 1);
        pg_sim_reply_header(out, "Set-Cookie", cookie);
    }
done:
    free(rt);
    free(cid);
    free(scope);
    free(ru);
    free(ch);
    free(m);
}

static void signin_fail(struct pg_sim_reply *out, int status, const char *message, const char *code)
{
    pg_sim_reply_json(
        out, status,
        json_pack("{s:i,s:s,s:s}", "status", status, "message", message, "code", code));
}

static void oidc_signin(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    if (!is_form(req)) {
        signin_fail(out, 400, "invalid.request", "INVALID_REQUEST");
        return;
    }
    char *u = form_get(req, "username"), *pw = form_get(req, "password"),
         *org = form_get(req, "orgname");
    pthread_mutex_lock(&sim->mu);
    struct bi_priv *p = P(sim);
    int64_t now = now_s();
    struct bi_session *s = session_by_cookie(p, pg_sim_req_header(req, "Cookie"), now);
    if (!s) {
        /* [I] no session cookie from /oauth2/authorize: the flow was not started */
        signin_fail(out, 401, "invalid.session", "SESSION_INVALID");
    } else if (!u || !pw || !org || strcmp(u, cfg->micros.bi.username) != 0 ||
               strcmp(pw, cfg->micros.bi.password) != 0 || strcmp(org, cfg->micros.org) != 0) {
        signin_fail(out, 401, "invalid.credentials", "AUTHENTICATION_INVALID");
    } else {
        rand_tok(s->code, sizeof s->code);
        s->code_exp_s = now + cfg->micros.bi.code_ttl_s;
        s->code_used = 0;
        s->exp_s = 0; /* one code per authorize */
        char url[400];
        snprintf(url, sizeof url, "%s?code=%s", cfg->micros.bi.redirect_uri, s->code);
        pg_sim_reply_json(out, 200,
                          json_pack("{s:s,s:s,s:s}", "nextOp", "redirect", "success", "true",
                                    "redirectUrl", url));
    }
    pthread_mutex_unlock(&sim->mu);
    free(u);
    free(pw);
    free(org);
}

static char *jwt_hs256(const char *secret, json_t *claims)
{
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "HS256", "typ", "JWT", "kid", "posgate-bi-sim");
    char *h = json_dumps(hdr, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    json_decref(hdr);
    char *h64 = h ? pg_sim_b64((unsigned char *)h, strlen(h), 1) : NULL;
    char *c64 = c ? pg_sim_b64((unsigned char *)c, strlen(c), 1) : NULL;
    free(h);
    free(c);
    char *out = NULL;
    if (h64 && c64) {
        size_t n = strlen(h64) + strlen(c64) + 2;
        char *in = malloc(n);
        if (in) {
            snprintf(in, n, "%s.%s", h64, c64);
            unsigned char mac[32];
            unsigned int ml = 0;
            HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)in, strlen(in), mac,
                 &ml);
            char *s64 = pg_sim_b64(mac, ml, 1);
            if (s64 && (out = malloc(n + strlen(s64) + 1)))
                snprintf(out, n + strlen(s64) + 1, "%s.%s", in, s64);
            free(s64);
            free(in);
        }
    }
    free(h64);
    free(c64);
    return out;
}

/* Mint the token response (caller holds the lock). refresh: reuse this refresh token. */
static void grant(struct pg_sim *sim,
                  const struct pg_sim_req *req,
                  const char *refresh,
                  struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    struct bi_priv *p = P(sim);
    int64_t now = now_s();
    char iss[400], jti[48], rt[48], at[48];
    base_url(req, iss, sizeof iss);
    rand_tok(jti, sizeof jti);
    rand_tok(at, sizeof at);
    json_t *claims =
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:I}", "iss", iss, "sub", cfg->micros.bi.username,
                  "aud", cfg->micros.bi.client_id, "iat", (json_int_t)now, "exp",
                  (json_int_t)(now + cfg->micros.bi.token_ttl_s), "jti", jti, "orgname",
                  cfg->micros.org, "gen", (json_int_t)p->gen);
    char *idt = jwt_hs256(cfg->micros.bi.jwt_secret, claims);
    json_decref(claims);
    if (!idt) {
        oauth_error(out, 500, "server_error", "out of memory");
        return;
    }
    if (refresh) {
        snprintf(rt, sizeof rt, "%s", refresh);
    } else {
        rand_tok(rt, sizeof rt);
        struct bi_refresh *n = realloc(p->refresh, (p->nrefresh + 1) * sizeof *n);
        if (n) {
            p->refresh = n;
            snprintf(n[p->nrefresh].tok, sizeof n[p->nrefresh].tok, "%s", rt);
            n[p->nrefresh++].exp_s = now + REFRESH_TTL_S;
        }
    }
    p->grants++;
    pg_sim_reply_json(out, 200,
                      json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "id_token", idt, "access_token", at,
                                "refresh_token", rt, "token_type", "Bearer", "expires_in",
                                (json_int_t)cfg->micros.bi.token_ttl_s, "scope", "openid"));
    free(idt);
}

static void oidc_token(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    if (!is_form(req)) {
        oauth_error(out, 400, "invalid_request",
                    "the body must be application/x-www-form-urlencoded");
        return;
    }
    char *gt = form_get(req, "grant_type"), *cid = form_get(req, "client_id"),
         *code = form_get(req, "code"), *ver = form_get(req, "code_verifier"),
         *ru = form_get(req, "redirect_uri"), *rt = form_get(req, "refresh_token");
    pthread_mutex_lock(&sim->mu);
    struct bi_priv *p = P(sim);
    int64_t now = now_s();
    if (!gt || (strcmp(gt, "authorization_code") != 0 && strcmp(gt, "refresh_token") != 0)) {
        oauth_error(out, 400, "unsupported_grant_type", "grant_type is not supported");
    } else if (!cid || strcmp(cid, cfg->micros.bi.client_id) != 0) {
        oauth_error(out, 401, "invalid_client", "unknown client_id");
    } else if (!ru || strcmp(ru, cfg->micros.bi.redirect_uri) != 0) {
        oauth_error(out, 400, "invalid_grant", "redirect_uri does not match");
    } else if (strcmp(gt, "refresh_token") == 0) {
        size_t i = 0;
        while (rt && i < p->nrefresh && strcmp(p->refresh[i].tok, rt) != 0)
            i++;
        if (!rt || i == p->nrefresh || p->refresh[i].exp_s <= now)
            oauth_error(out, 400, "invalid_grant", "refresh token is invalid or expired");
        else
            grant(sim, req, rt, out);
    } else {
        struct bi_session *s = NULL;
        for (size_t i = 0; code && i < p->nsess && !s; i++)
            if (p->sess[i].code_exp_s && strcmp(p->sess[i].code, code) == 0)
                s = &p->sess[i];
        if (!s || s->code_used || s->code_exp_s <= now) {
            oauth_error(out, 400, "invalid_grant", "authorization code is invalid or expired");
        } else {
            s->code_used = 1; /* single use, even when the verifier turns out wrong */
            unsigned char dg[32];
            unsigned int dl = 0;
            char *ch = NULL;
            if (pkce_chars(ver) && EVP_Digest(ver, strlen(ver), dg, &dl, EVP_sha256(), NULL) == 1)
                ch = pg_sim_b64(dg, dl, 1);
            if (!pkce_chars(ver))
                oauth_error(out, 400, "invalid_request",
                            "code_verifier must be 43..128 characters of [A-Za-z0-9-._~]");
            else if (!ch || strcmp(ch, s->challenge) != 0)
                oauth_error(out, 400, "invalid_grant", "PKCE verification failed");
            else
                grant(sim, req, NULL, out);
            free(ch);
        }
    }
    pthread_mutex_unlock(&sim->mu);
    free(gt);
    free(cid);
    free(code);
    free(ver);
    free(ru);
    free(rt);
}

void pg_sim_bi_oidc(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    static const struct {
        const char *path, *method;
        pg_sim_handler fn;
    } eps[] = {
        {OIDC "/.well-known/openid-configuration", "GET", oidc_discovery},
        {OIDC "/oauth2/authorize", "GET", oidc_authorize},
        {OIDC "/oauth2/signin", "POST", oidc_signin},
        {OIDC "/oauth2/token", "POST", oidc_token},
    };
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        if (strcmp(req->path, eps[i].path) != 0)
            continue;
        if (strcmp(req->method, eps[i].method) == 0 ||
            (strcmp(eps[i].method, "GET") == 0 && strcmp(req->method, "HEAD") == 0)) {
            eps[i].fn(sim, req, out);
        } else {
            oauth_error(out, 405, "invalid_request", "method not allowed");
            pg_sim_reply_header(out, "Allow", eps[i].method);
        }
        return;
    }
    oauth_error(out, 404, "invalid_request", "no such endpoint");
}

/* ---- bearer ---- */

static json_t *b64url_json(const char *s, size_t n)
{
    char *t = malloc(n + 4);
    if (!t)
        return NULL;
    for (size_t i = 0; i < n; i++)
        t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    size_t m = n;
    while (m % 4)
        t[m++] = '=';
    t[m] = '\0';
    size_t dn = 0;
    unsigned char *d = pg_sim_b64_decode(t, &dn);
    free(t);
    json_t *j = d ? json_loadb((char *)d, dn, 0, NULL) : NULL;
    free(d);
    return j;
}

/* 1 when the request carries a live id_token of ours; the caller holds the lock. */
static int bearer_ok(struct pg_sim *sim, const struct pg_sim_req *req)
{
    const char *a = pg_sim_req_header(req, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return 0;
    const char *tok = a + 7, *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.'))
        return 0;
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), sim->cfg->micros.bi.jwt_secret, (int)strlen(sim->cfg->micros.bi.jwt_secret),
         (const unsigned char *)tok, (size_t)(d2 - tok), mac, &ml);
    char *want = pg_sim_b64(mac, ml, 1);
    int ok =
        want && strlen(want) == strlen(d2 + 1) && CRYPTO_memcmp(want, d2 + 1, strlen(want)) == 0;
    free(want);
    if (!ok)
        return 0;
    json_t *h = b64url_json(tok, (size_t)(d1 - tok)),
           *c = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
    ok = h && c && json_is_string(json_object_get(h, "alg")) &&
         strcmp(json_string_value(json_object_get(h, "alg")), "HS256") == 0 &&
         json_integer_value(json_object_get(c, "exp")) > now_s() &&
         json_integer_value(json_object_get(c, "gen")) == P(sim)->gen &&
         json_is_string(json_object_get(c, "aud")) &&
         strcmp(json_string_value(json_object_get(c, "aud")), sim->cfg->micros.bi.client_id) == 0;
    json_decref(h);
    json_decref(c);
    return ok;
}

void pg_sim_bi_tokens_expire(struct pg_sim *sim,
                             const struct pg_sim_req *req,
                             struct pg_sim_reply *out)
{
    (void)req;
    pthread_mutex_lock(&sim->mu);
    P(sim)->gen++;
    P(sim)->nrefresh = 0;
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, json_pack("{s:b}", "expired", 1));
}

/* ---- request validation ---- */

struct biq {
    const char *loc;
    const char *date_key; /* "busDt" | "opnBusDt" | "clsdBusDt" */
    const char *date;
    int64_t since; /* -1: none */
    int closed_only;
    long long rvc; /* -1: all */
};

/* Keys allowed in the body; an unknown one is 400 [I: strict]. */
static int check_body_keys(json_t *b, const char *const *allowed, char *why, size_t whysz)
{
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a) {
            snprintf(why, whysz, "Unrecognized field \"%s\"", k);
            return -1;
        }
    }
    return 0;
}

static int parse_utc(const char *s, int64_t *out)
{
    long z;
    int hh, mm, ss, n = 0;
    char d[11];
    if (!s || strlen(s) != 19 || s[10] != 'T')
        return -1;
    memcpy(d, s, 10);
    d[10] = '\0';
    if (pg_sim_bi_parse_date(d, &z) != 0 ||
        sscanf(s + 11, "%2d:%2d:%2d%n", &hh, &mm, &ss, &n) != 3 || n != 8 || s[13] != ':' ||
        s[16] != ':' || hh > 23 || mm > 59 || ss > 59 || hh < 0 || mm < 0 || ss < 0)
        return -1;
    for (int i = 11; i < 19; i++)
        if (i != 13 && i != 16 && !isdigit((unsigned char)s[i]))
            return -1;
    *out = (int64_t)z * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

/*
 * Common rules: locRef a string of 1..99 chars; applicationName a string of 1..128 (required
 * when configured); include / searchCriteria are not implemented, so a non-empty one is refused
 * rather than ignored. dates: 0 none allowed, 1 exactly one of the three, 2 busDt required.
 */
static int parse_common(
    struct pg_sim *sim, json_t *b, int dates, int need_loc, struct biq *q, char *why, size_t whysz)
{
    memset(q, 0, sizeof *q);
    q->since = -1;
    q->rvc = -1;
    json_t *loc = json_object_get(b, "locRef"), *app = json_object_get(b, "applicationName");
    if (loc &&
        (!json_is_string(loc) || json_string_length(loc) < 1 || json_string_length(loc) > 99)) {
        snprintf(why, whysz, "locRef must be a string of 1..99 characters");
        return -1;
    }
    if (!loc && need_loc) {
        snprintf(why, whysz, "locRef is required");
        return -1;
    }
    q->loc = json_string_value(loc);
    if (app &&
        (!json_is_string(app) || json_string_length(app) < 1 || json_string_length(app) > 128)) {
        snprintf(why, whysz, "applicationName must be a string of 1..128 characters");
        return -1;
    }
    if (!app && sim->cfg->micros.bi.require_application_name) {
        snprintf(why, whysz, "applicationName is required");
        return -1;
    }
    static const char *const extra[] = {"include", "searchCriteria"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(b, extra[i]);
        if (v && (!json_is_string(v) || json_string_length(v) > 2000)) {
            snprintf(why, whysz, "%s must be a string of at most 2000 characters", extra[i]);
            return -1;
        }
        if (v && json_string_length(v) > 0) {
            snprintf(why, whysz, "%s is not supported by the simulator", extra[i]);
            return -1;
        }
    }
    if (dates) {
        static const char *const dk[] = {"busDt", "opnBusDt", "clsdBusDt"};
        int n = 0;
        for (int i = 0; i < 3; i++) {
            json_t *v = json_object_get(b, dk[i]);
            if (!v)
                continue;
            long z;
            if (!json_is_string(v) || pg_sim_bi_parse_date(json_string_value(v), &z) != 0) {
                snprintf(why, whysz, "%s must be a date YYYY-MM-DD", dk[i]);
                return -1;
            }
            n++;
            q->date_key = dk[i];
            q->date = json_string_value(v);
        }
        if (dates == 2 && (!json_object_get(b, "busDt") || n != 1)) {
            snprintf(why, whysz, "busDt is required");
            return -1;
        }
        if (n != 1) {
            snprintf(why, whysz, "Exactly one of busDt, opnBusDt or clsdBusDt is required (got %d)",
                     n);
            return -1;
        }
    }
    json_t *rvc = json_object_get(b, "rvcNum");
    if (rvc && !json_is_integer(rvc)) {
        snprintf(why, whysz, "rvcNum must be an integer");
        return -1;
    }
    if (rvc)
        q->rvc = json_integer_value(rvc);
    return 0;
}

static int loc_known(struct pg_sim *sim, const char *ref)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(sim->state, "locations"), i, l)
    {
        if (strcmp(json_string_value(json_object_get(l, "locRef")), ref) == 0)
            return 1;
    }
    return 0;
}

/* Take the simulator's lock for an operation on loc: 1 (locked) when the API account may see
 * it, else 0 with the 403 BI answers in out (unlocked). */
static int lock_location(struct pg_sim *sim, const char *loc, struct pg_sim_reply *out)
{
    pthread_mutex_lock(&sim->mu);
    if (loc_known(sim, loc))
        return 1;
    pthread_mutex_unlock(&sim->mu);
    bi_error(out, 403, NULL, "The API account has no access to location %s", loc);
    return 0;
}

static struct bi_day *find_day(struct bi_priv *p, const char *loc, const char *date)
{
    for (size_t i = 0; i < p->d.ndays; i++)
        if (strcmp(p->d.days[i].loc, loc) == 0 && strcmp(p->d.days[i].date, date) == 0)
            return &p->d.days[i];
    return NULL;
}

static int visible(const struct bi_check *c)
{
    return !c->late || c->released;
}

/* The check as served now: a released late upload carries its new lastUpdated* values. */
static json_t *check_view(struct bi_check *c)
{
    if (!c->released)
        return json_incref(c->j);
    json_t *o = json_deep_copy(c->j);
    json_object_set_new(o, "lastUpdatedUTC", json_string(c->rel_utc));
    json_object_set_new(o, "lastUpdatedLcl", json_string(c->rel_lcl));
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(o, "detailLines"), i, l)
    {
        json_object_set_new(l, "lastUpdateUTC", json_string(c->rel_utc));
        json_object_set_new(l, "lastUpdateLcl", json_string(c->rel_lcl));
    }
    return o;
}

/* Does check c (of a day bucket) belong to the request's business-date basis? */
static int on_basis(const struct biq *q, const struct bi_check *c)
{
    if (strcmp(q->date_key, "clsdBusDt") == 0)
        return c->closed;
    return 1; /* every generated check opens on its bucket's date (busDt = opened or closed) */
}

/* ---- operations ---- */

static void cur_utc(char *out, size_t outsz)
{
    pg_sim_bi_ts(now_s(), out, outsz);
}

static void op_guest_checks(struct pg_sim *sim, json_t *b, struct pg_sim_reply *out)
{
    static const char *const keys[] = {"applicationName",
                                       "locRef",
                                       "busDt",
                                       "opnBusDt",
                                       "clsdBusDt",
                                       "changedSinceUTC",
                                       "clsdGuestChecksOnly",
                                       "rvcNum",
                                       "include",
                                       "searchCriteria",
                                       NULL};
    char why[256];
    struct biq q;
    if (check_body_keys(b, keys, why, sizeof why) ||
        parse_common(sim, b, 1, 1, &q, why, sizeof why)) {
        bi_error(out, 400, "33205", "%s", why);
        return;
    }
    json_t *cs = json_object_get(b, "changedSinceUTC"),
           *co = json_object_get(b, "clsdGuestChecksOnly");
    if (cs) {
        const char *s = json_string_value(cs);
        if (s && strlen(s) > 19 && (s[19] == 'Z' || s[19] == 'z' || s[19] == '+' || s[19] == '-')) {
            bi_error(out, 400, "33205",
                     "changedSinceUTC must be YYYY-MM-DDTHH:MM:SS without a time zone designator");
            return;
        }
        if (parse_utc(s, &q.since) != 0) {
            bi_error(out, 400, "33205", "changedSinceUTC must be YYYY-MM-DDTHH:MM:SS");
            return;
        }
    }
    if (co && !json_is_boolean(co)) {
        bi_error(out, 400, "33205", "clsdGuestChecksOnly must be true or false");
        return;
    }
    q.closed_only = co && json_is_true(co);
    char cu[20];
    if (!lock_location(sim, q.loc, out))
        return;
    cur_utc(cu, sizeof cu);
    json_t *arr = json_array();
    struct bi_day *d = find_day(P(sim), q.loc, q.date);
    for (size_t i = 0; d && i < d->n; i++) {
        struct bi_check *c = &d->checks[i];
        if (!visible(c) || !on_basis(&q, c) || (q.closed_only && !c->closed) ||
            (q.rvc >= 0 && c->rvc != q.rvc) || (q.since >= 0 && c->upd_s < q.since))
            continue;
        json_array_append_new(arr, check_view(c));
    }
    json_t *body = json_pack("{s:s,s:s,s:o}", "curUTC", cu, "locRef", q.loc, "guestChecks", arr);
    reply_bi(out, body);
    pthread_mutex_unlock(&sim->mu);
}

/*
 * getGuestCheckExtensibilityDetails: the extensibility data of the visible checks opened on
 * opnBusDt (required; the only date field of this operation), grouped by revenue center. The
 * shape below revenueCenters[].guestChecks[] is our choice (micros/bi.h says what is verified):
 * {guestCheckId, extensibilityDetails:[{displayName, appName, dataName, dataType, data}]}. A
 * revenue center without such checks is left out, as the line-item variant documents.
 */
static void op_guest_check_ext(struct pg_sim *sim, json_t *b, struct pg_sim_reply *out)
{
    static const char *const keys[] = {"applicationName", "locRef",         "opnBusDt",
                                       "include",         "searchCriteria", NULL};
    char why[256], cu[20];
    struct biq q;
    if (check_body_keys(b, keys, why, sizeof why) ||
        parse_common(sim, b, 0, 1, &q, why, sizeof why)) {
        bi_error(out, 400, "33205", "%s", why);
        return;
    }
    json_t *od = json_object_get(b, "opnBusDt");
    long z;
    if (!od) {
        bi_error(out, 400, "33205", "opnBusDt is required");
        return;
    }
    if (!json_is_string(od) || pg_sim_bi_parse_date(json_string_value(od), &z) != 0) {
        bi_error(out, 400, "33205", "opnBusDt must be a date YYYY-MM-DD");
        return;
    }
    const char *date = json_string_value(od);
    if (!lock_location(sim, q.loc, out))
        return;
    cur_utc(cu, sizeof cu);
    json_t *rvcs = json_array();
    struct bi_day *d = find_day(P(sim), q.loc, date);
    for (size_t i = 0; d && i < d->n; i++) {
        struct bi_check *c = &d->checks[i];
        if (!visible(c) || !c->ext)
            continue;
        json_t *r = NULL, *x;
        size_t k;
        json_array_foreach(rvcs, k, x)
        {
            if (json_integer_value(json_object_get(x, "rvcNum")) == c->rvc) {
                r = x;
                break;
            }
        }
        if (!r) {
            r = json_pack("{s:i,s:[]}", "rvcNum", c->rvc, "guestChecks");
            json_array_append_new(rvcs, r);
        }
        json_array_append_new(json_object_get(r, "guestChecks"),
                              json_pack("{s:O,s:O}", "guestCheckId",
                                        json_object_get(c->j, "guestCheckId"),
                                        "extensibilityDetails", c->ext));
    }
    reply_bi(out, json_pack("{s:s,s:s,s:s,s:o}", "curUTC", cu, "locRef", q.loc, "opnBusDt", date,
                            "revenueCenters", rvcs));
    pthread_mutex_unlock(&sim->mu);
}

static void op_latest_bus_dt(struct pg_sim *sim, json_t *b, struct pg_sim_reply *out)
{
    static const char *const keys[] = {"applicationName", "locRef", "include", "searchCriteria",
                                       NULL};
    char why[256], cu[20];
    struct biq q;
    if (check_body_keys(b, keys, why, sizeof why) ||
        parse_common(sim, b, 0, 1, &q, why, sizeof why)) {
        bi_error(out, 400, "33205", "%s", why);
        return;
    }
    if (!lock_location(sim, q.loc, out))
        return;
    const char *latest = NULL;
    for (size_t i = 0; i < P(sim)->d.ndays; i++) {
        struct bi_day *d = &P(sim)->d.days[i];
        if (strcmp(d->loc, q.loc) == 0 && (!latest || strcmp(d->date, latest) > 0))
            latest = d->date;
    }
    cur_utc(cu, sizeof cu);
    reply_bi(out, json_pack("{s:s,s:s,s:o}", "curUTC", cu, "locRef", q.loc, "latestBusDt",
                            latest ? json_string(latest) : json_null()));
    pthread_mutex_unlock(&sim->mu);
}

static void op_dimension(struct pg_sim *sim, const char *op, json_t *b, struct pg_sim_reply *out)
{
    static const char *const keys[] = {"applicationName", "locRef", "include", "searchCriteria",
                                       NULL};
    int locs = strcmp(op, "getLocationDimensions") == 0;
    char why[256], cu[20];
    struct biq q;
    if (check_body_keys(b, keys, why, sizeof why) ||
        parse_common(sim, b, 0, !locs, &q, why, sizeof why)) {
        bi_error(out, 400, "33205", "%s", why);
        return;
    }
    pthread_mutex_lock(&sim->mu);
    if (q.loc && !loc_known(sim, q.loc)) {
        pthread_mutex_unlock(&sim->mu);
        bi_error(out, 403, NULL, "The API account has no access to location %s", q.loc);
        return;
    }
    cur_utc(cu, sizeof cu);
    json_t *body = json_pack("{s:s}", "curUTC", cu);
    size_t i;
    json_t *v;
    if (locs) {
        json_t *arr = json_array();
        json_array_foreach(json_object_get(sim->state, "locations"), i, v)
        {
            if (!q.loc || strcmp(q.loc, json_string_value(json_object_get(v, "locRef"))) == 0)
                json_array_append(arr, v);
        }
        json_object_set_new(body, "locations", arr);
    } else {
        json_object_set_new(body, "locRef", json_string(q.loc));
        if (strcmp(op, "getRevenueCenterDimensions") == 0) {
            json_t *arr = json_array();
            json_array_foreach(json_object_get(sim->state, "revenue_centers"), i, v)
            {
                if (strcmp(q.loc, json_string_value(json_object_get(v, "locRef"))) != 0)
                    continue;
                json_t *r = json_deep_copy(v);
                json_object_del(r, "locRef");
                json_array_append_new(arr, r);
            }
            json_object_set_new(body, "revenueCenters", arr);
        } else if (strcmp(op, "getTaxDimensions") == 0) {
            json_t *t = json_object_get(json_object_get(P(sim)->d.locs, q.loc), "taxes");
            json_object_set_new(body, "taxes", t ? json_deep_copy(t) : json_array());
        } else {
            const char *key = strcmp(op, "getMenuItemDimensions") == 0      ? "menuItems"
                              : strcmp(op, "getTenderMediaDimensions") == 0 ? "tenderMedias"
                              : strcmp(op, "getDiscountDimensions") == 0    ? "discounts"
                                                                            : "serviceCharges";
            json_object_set_new(body, key, json_deep_copy(json_object_get(P(sim)->d.catalog, key)));
        }
    }
    reply_bi(out, body);
    pthread_mutex_unlock(&sim->mu);
}

/* Per revenue center accumulators, in cents. */
struct rvc_tot {
    long long num;
    long long clsd_n, clsd, open_n, open, nonsls_n;
    long long net, itm_dsc, sub_dsc, svc, tax, chk_n, gst, vd, vd_n, mvd, mvd_n, ec, ec_n, rtn,
        rtn_n, cncl, cncl_n;
    json_t *tenders; /* tmedNum (string) -> [ttl cents, cnt] */
};

static struct rvc_tot *rvc_get(struct rvc_tot *t, int *n, long long num)
{
    for (int i = 0; i < *n; i++)
        if (t[i].num == num)
            return &t[i];
    if (*n >= 64)
        return NULL;
    memset(&t[*n], 0, sizeof t[*n]);
    t[*n].num = num;
    t[*n].tenders = json_object();
    return &t[(*n)++];
}

static void tally(struct rvc_tot *r, json_t *chk, int closed)
{
    int cancel = json_is_true(json_object_get(chk, "cancelFlag"));
    long long ttl = pg_sim_bi_cents(json_object_get(chk, "chkTtl"));
    if (closed) {
        r->clsd_n++;
        r->clsd += ttl;
    } else {
        r->open_n++;
        r->open += ttl;
    }
    if (cancel)
        r->nonsls_n++, r->cncl_n++;
    else
        r->chk_n++, r->gst += json_integer_value(json_object_get(chk, "gstCnt"));
    size_t i;
    json_t *t, *l;
    json_array_foreach(json_object_get(chk, "taxes"), i, t) r->tax +=
        pg_sim_bi_cents(json_object_get(t, "taxCollTtl"));
    json_array_foreach(json_object_get(chk, "detailLines"), i, l)
    {
        long long agg = pg_sim_bi_cents(json_object_get(l, "aggTtl"));
        if (json_object_get(l, "tenderMedia")) {
            if (json_is_true(json_object_get(l, "doNotShowFlag")))
                continue;
            char k[24];
            snprintf(k, sizeof k, "%lld",
                     (long long)json_integer_value(
                         json_object_get(json_object_get(l, "tenderMedia"), "tmedNum")));
            json_t *a = json_object_get(r->tenders, k);
            if (!a)
                json_object_set_new(r->tenders, k,
                                    a = json_pack("[I,I]", (json_int_t)0, (json_int_t)0));
            json_array_set_new(a, 0, json_integer(json_integer_value(json_array_get(a, 0)) + agg));
            json_array_set_new(a, 1, json_integer(json_integer_value(json_array_get(a, 1)) + 1));
            continue;
        }
        json_t *dsc = json_object_get(l, "discount");
        if (json_object_get(l, "serviceCharge")) {
            r->svc += agg;
            continue;
        }
        r->net += agg;
        if (dsc) {
            if (json_is_null(json_object_get(dsc, "dscMiNum")))
                r->sub_dsc += agg;
            else
                r->itm_dsc += agg;
        }
        if (cancel) {
            if (agg > 0)
                r->cncl += agg;
            continue;
        }
        if (json_is_true(json_object_get(l, "vdFlag"))) {
            r->vd += agg;
            r->vd_n++;
            if (!json_is_null(json_object_get(l, "mgrEmpNum")))
                r->mvd += agg, r->mvd_n++;
        }
        if (json_is_true(json_object_get(l, "errCorFlag")))
            r->ec += agg, r->ec_n++;
        if (json_is_true(json_object_get(l, "returnFlag")))
            r->rtn += agg, r->rtn_n++;
    }
}

#define M(x) pg_sim_bi_money(x)
#define I(x) ((json_int_t)(x))

static void op_daily(struct pg_sim *sim, const char *op, json_t *b, struct pg_sim_reply *out)
{
    static const char *const ckeys[] = {"applicationName", "locRef",         "busDt",
                                        "opnBusDt",        "clsdBusDt",      "rvcNum",
                                        "include",         "searchCriteria", NULL};
    static const char *const okeys[] = {"applicationName", "locRef",         "busDt",
                                        "include",         "searchCriteria", NULL};
    int control = strcmp(op, "getControlDailyTotals") == 0;
    int tmed = strcmp(op, "getTenderMediaDailyTotals") == 0;
    char why[256], cu[20];
    struct biq q;
    if (check_body_keys(b, control ? ckeys : okeys, why, sizeof why) ||
        parse_common(sim, b, control ? 1 : 2, 1, &q, why, sizeof why)) {
        bi_error(out, 400, "33205", "%s", why);
        return;
    }
    if (!lock_location(sim, q.loc, out))
        return;
    struct rvc_tot t[64];
    int nt = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(sim->state, "revenue_centers"), i, v)
    {
        if (strcmp(q.loc, json_string_value(json_object_get(v, "locRef"))) == 0)
            rvc_get(t, &nt, json_integer_value(json_object_get(v, "num")));
    }
    struct bi_day *d = find_day(P(sim), q.loc, q.date);
    for (i = 0; d && i < d->n; i++) {
        struct bi_check *c = &d->checks[i];
        if (!visible(c) || !on_basis(&q, c))
            continue;
        struct rvc_tot *r = rvc_get(t, &nt, c->rvc);
        json_t *view = check_view(c);
        if (r)
            tally(r, view, c->closed);
        json_decref(view);
    }
    cur_utc(cu, sizeof cu);
    json_t *rv = json_array();
    for (int k = 0; k < nt; k++) {
        struct rvc_tot *r = &t[k];
        if (q.rvc >= 0 && r->num != q.rvc) {
            json_decref(r->tenders);
            continue;
        }
        json_t *o;
        if (control) {
            o = json_pack("{s:I,s:I,s:o,s:I,s:o,s:I}", "rvcNum", I(r->num), "numClsdChks",
                          I(r->clsd_n), "clsdChkTtl", M(r->clsd), "numOpnChksAtEOD", I(r->open_n),
                          "opnChkTtlAtEOD", M(r->open), "numNonSlsTrans", I(r->nonsls_n));
        } else if (tmed) {
            json_t *arr = json_array();
            const char *k2;
            json_t *a;
            json_object_foreach(r->tenders, k2, a) json_array_append_new(
                arr, json_pack("{s:I,s:o,s:O}", "tmedNum", I(atoll(k2)), "ttl",
                               M(json_integer_value(json_array_get(a, 0))), "cnt",
                               json_array_get(a, 1)));
            o = json_pack("{s:I,s:o}", "rvcNum", I(r->num), "tenderMedias", arr);
        } else {
            o = json_pack("{s:I,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:o,s:I,s:o,s:I,s:o,s:I,s:o,s:I,s:o,"
                          "s:I,s:o,s:I,s:o,s:I}",
                          "rvcNum", I(r->num), "netSlsTtl", M(r->net), "itmDscTtl", M(r->itm_dsc),
                          "subDscTtl", M(r->sub_dsc), "svcTtl", M(r->svc), "taxCollTtl", M(r->tax),
                          "chkCnt", I(r->chk_n), "gstCnt", I(r->gst), "vdTtl", M(r->vd), "vdCnt",
                          I(r->vd_n), "mngrVdTtl", M(r->mvd), "mngrVdCnt", I(r->mvd_n), "errCorTtl",
                          M(r->ec), "errCorCnt", I(r->ec_n), "rtnTtl", M(r->rtn), "rtnCnt",
                          I(r->rtn_n), "transCnclTtl", M(r->cncl), "transCnclCnt", I(r->cncl_n),
                          "chkClsdTtl", M(r->clsd), "chkClsdCnt", I(r->clsd_n), "chkOpnTtl",
                          M(r->open), "chkOpnCnt", I(r->open_n));
        }
        json_decref(r->tenders);
        json_array_append_new(rv, o);
    }
    json_t *body = json_pack("{s:s,s:s,s:s,s:o}", "curUTC", cu, "locRef", q.loc, q.date_key, q.date,
                             "revenueCenters", rv);
    reply_bi(out, body);
    pthread_mutex_unlock(&sim->mu);
}

/* Fixed one-minute window; 1 when out holds the 429. */
static int rate_limited(struct pg_sim *sim, struct pg_sim_reply *out)
{
    long long lim = sim->cfg->micros.bi.rate_limit_per_min;
    if (!lim)
        return 0;
    pthread_mutex_lock(&sim->mu);
    struct bi_priv *p = P(sim);
    int64_t now = now_s();
    if (!p->rl_start || now - p->rl_start >= 60) {
        p->rl_start = now;
        p->rl_count = 0;
    }
    int over = ++p->rl_count > lim;
    int64_t wait = 60 - (now - p->rl_start);
    pthread_mutex_unlock(&sim->mu);
    if (!over)
        return 0;
    char ra[24];
    snprintf(ra, sizeof ra, "%lld", (long long)(wait > 0 ? wait : 1));
    bi_error(out, 429, NULL, "Rate limit of %lld requests per minute exceeded", lim);
    pg_sim_reply_header(out, "Retry-After", ra);
    return 1;
}

void pg_sim_bi_api(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    static const char *const dims[] = {"getLocationDimensions", "getRevenueCenterDimensions",
                                       "getMenuItemDimensions", "getTenderMediaDimensions",
                                       "getDiscountDimensions", "getServiceChargeDimensions",
                                       "getTaxDimensions",      NULL};
    static const char *const daily[] = {"getControlDailyTotals", "getOperationsDailyTotals",
                                        "getTenderMediaDailyTotals", NULL};
    if (strcmp(req->method, "POST") != 0) {
        bi_error(out, 405, NULL, "Every BI API operation is a POST");
        pg_sim_reply_header(out, "Allow", "POST");
        return;
    }
    if (rate_limited(sim, out))
        return;
    pthread_mutex_lock(&sim->mu);
    int authed = bearer_ok(sim, req);
    pthread_mutex_unlock(&sim->mu);
    if (!authed) {
        bi_error(out, 401, NULL, "A valid id_token is required (Authorization: Bearer)");
        return;
    }
    const char *rest = req->path + strlen("/bi/v1/"), *slash = strchr(rest, '/');
    if (!slash || strchr(slash + 1, '/') ||
        (size_t)(slash - rest) != strlen(sim->cfg->micros.org) ||
        strncmp(rest, sim->cfg->micros.org, (size_t)(slash - rest)) != 0) {
        bi_error(out, 404, NULL, "Unknown organization or operation");
        return;
    }
    const char *op = slash + 1;
    int kind = 0;
    if (strcmp(op, "getGuestChecks") == 0)
        kind = 1;
    else if (strcmp(op, "getLatestBusDt") == 0 || strcmp(op, "getLatestBusinessDate") == 0)
        kind = 2;
    else if (strcmp(op, "getGuestCheckExtensibilityDetails") == 0)
        kind = 5;
    for (int i = 0; !kind && dims[i]; i++)
        if (strcmp(op, dims[i]) == 0)
            kind = 3;
    for (int i = 0; !kind && daily[i]; i++)
        if (strcmp(op, daily[i]) == 0)
            kind = 4;
    if (!kind) {
        bi_error(out, 404, NULL, "Unknown operation %s", op);
        return;
    }
    const char *ct = pg_sim_req_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        bi_error(out, 415, NULL, "Content-Type must be application/json");
        return;
    }
    if (!json_is_object(req->json)) {
        bi_error(out, 400, NULL, "The request body must be a JSON object");
        return;
    }
    switch (kind) {
    case 1:
        op_guest_checks(sim, req->json, out);
        break;
    case 2:
        op_latest_bus_dt(sim, req->json, out);
        break;
    case 3:
        op_dimension(sim, op, req->json, out);
        break;
    case 5:
        op_guest_check_ext(sim, req->json, out);
        break;
    default:
        op_daily(sim, op, req->json, out);
    }
}

/* ---- control: POST /_sim/bi/late-upload ---- */

void pg_sim_bi_late_upload(struct pg_sim *sim,
                           const struct pg_sim_req *req,
                           struct pg_sim_reply *out)
{
    json_t *b = req->json;
    const char *loc = json_string_value(json_object_get(b, "locRef")),
               *date = json_string_value(json_object_get(b, "busDt"));
    json_t *cnt = json_object_get(b, "count");
    if (!json_is_object(b) || !loc || !date ||
        (cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 1))) {
        pg_sim_ctl_error(
            out, 400, "bad_request",
            "body must be {\"locRef\":\"..\",\"busDt\":\"YYYY-MM-DD\",\"count\":N>=1}");
        return;
    }
    long long n = cnt ? json_integer_value(cnt) : 1;
    pthread_mutex_lock(&sim->mu);
    struct bi_day *d = find_day(P(sim), loc, date);
    if (!d) {
        pthread_mutex_unlock(&sim->mu);
        pg_sim_ctl_error(out, 404, "not_found", "no generated business day %s for %s", date, loc);
        return;
    }
    int64_t now = now_s();
    json_t *ids = json_array();
    long long left = 0;
    char u[20], l[20];
    pg_sim_bi_ts(now, u, sizeof u);
    pg_sim_bi_ts(now + d->utc_off_min * 60, l, sizeof l);
    for (size_t i = 0; i < d->n; i++) {
        struct bi_check *c = &d->checks[i];
        if (!c->late || c->released)
            continue;
        if (n > 0) {
            c->released = 1;
            c->upd_s = now;
            snprintf(c->rel_utc, sizeof c->rel_utc, "%s", u);
            snprintf(c->rel_lcl, sizeof c->rel_lcl, "%s", l);
            json_array_append_new(ids, json_incref(json_object_get(c->j, "guestCheckId")));
            n--;
        } else {
            left++;
        }
    }
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200,
                      json_pack("{s:o,s:s,s:I}", "released", ids, "lastUpdatedUTC", u,
                                "late_pending", (json_int_t)left));
}
