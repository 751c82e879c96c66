/*
 * The Salesforce simulator's OAuth 2.0 JWT bearer token endpoint and the bearer tokens it issues
 * (salesforce-wire.md §3.1, §3.3, §4.6). sim/README.md lists every check, its order and the
 * error each one answers, with the source of each wording.
 */
#include "sim/sf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "server/log.h"
#include "server/util.h"

#define JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define MAX_TOKENS 4096

/* ---- form decoding ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

char *pg_sim_url_decode(const char *s, size_t n, int plus)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int b = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (a < 0 || b < 0 || (a | b) == 0) { /* a bad escape, or %00 */
                free(out);
                return NULL;
            }
            *o++ = (char)(a * 16 + b);
            i += 2;
        } else if (plus && s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

char *pg_sim_form_get(const char *form, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = form, *end = form + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0)
            return pg_sim_url_decode(eq + 1, (size_t)(e - eq - 1), 1);
        p = e + 1;
    }
    return NULL;
}

/* ---- tokens ---- */

static struct sf_priv *priv(struct pg_sim *sim)
{
    return sim->priv;
}

/* Drop expired tokens. Caller holds the lock. */
static void tokens_prune(struct sf_priv *p, int64_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < p->ntokens; i++)
        if (p->tokens[i].exp_ms > now)
            p->tokens[k++] = p->tokens[i];
    p->ntokens = k;
}

/*
 * A new access token "<15-char org id>!<97 chars>", the shape Salesforce's opaque session ids
 * have (§3.1 sample). Returns 0 and fills tok, or -1.
 */
static int token_issue(struct pg_sim *sim, long long ttl_s, char *tok, size_t toksz)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    unsigned char rnd[95];
    if (toksz < 16 + 2 + 1 + sizeof rnd + 2 || pg_random_bytes(rnd, sizeof rnd) != 0)
        return -1;
    size_t n = (size_t)snprintf(tok, toksz, "%.15s!AQ", sim->cfg->sf.org_id);
    for (size_t i = 0; i < sizeof rnd; i++)
        tok[n++] = alphabet[rnd[i] % 64];
    tok[n] = '\0';
    struct sf_priv *p = priv(sim);
    int64_t now = pg_wall_ms();
    pthread_mutex_lock(&sim->mu);
    tokens_prune(p, now);
    if (p->ntokens == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct sf_token *t = cap <= MAX_TOKENS ? realloc(p->tokens, cap * sizeof *t) : NULL;
        if (!t) { /* bounded: the oldest token is forgotten first */
            if (!p->ntokens) {
                pthread_mutex_unlock(&sim->mu);
                return -1;
            }
            memmove(p->tokens, p->tokens + 1, (p->ntokens - 1) * sizeof *p->tokens);
            p->ntokens--;
        } else {
            p->tokens = t;
            p->cap = cap;
        }
    }
    snprintf(p->tokens[p->ntokens].tok, sizeof p->tokens[p->ntokens].tok, "%s", tok);
    p->tokens[p->ntokens].exp_ms = now + ttl_s * 1000;
    p->ntokens++;
    pthread_mutex_unlock(&sim->mu);
    return 0;
}

json_t *pg_sim_sf_oauth_state(struct pg_sim *sim)
{
    struct sf_priv *p = priv(sim);
    tokens_prune(p, pg_wall_ms());
    return json_pack("{s:I,s:I}", "grants", (json_int_t)p->grants, "active_tokens",
                     (json_int_t)p->ntokens);
}

int pg_sim_sf_authorized(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    const char *h = pg_sim_req_header(req, "Authorization");
    int ok = 0;
    /* RFC 6750: "Bearer" (scheme case-insensitive), one space, the token. */
    if (h && strncasecmp(h, "Bearer ", 7) == 0 && h[7]) {
        struct sf_priv *p = priv(sim);
        int64_t now = pg_wall_ms();
        pthread_mutex_lock(&sim->mu);
        for (size_t i = 0; i < p->ntokens && !ok; i++)
            ok = p->tokens[i].exp_ms > now && strcmp(p->tokens[i].tok, h + 7) == 0;
        pthread_mutex_unlock(&sim->mu);
    }
    if (!ok)
        pg_sim_sf_error(out, 401, "INVALID_SESSION_ID", "Session expired or invalid");
    return ok;
}

/* ---- the token endpoint ---- */

static void oauth_error(struct pg_sim_reply *out, const char *error, const char *description)
{
    pg_sim_reply_json(out, 400,
                      json_pack("{s:s,s:s}", "error", error, "error_description", description));
    pg_sim_reply_header(out, "Cache-Control",
                        "no-cache,must-revalidate,max-age=0,no-store,private");
}

/* base64url without padding (RFC 7515): other characters, '=' included, are refused. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *outn)
{
    if (n == 0 || n % 4 == 1)
        return NULL;
    char *std = malloc(n + 4);
    if (!std)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '-' && c != '_') {
            free(std);
            return NULL;
        }
        std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t m = n;
    while (m % 4)
        std[m++] = '=';
    std[m] = '\0';
    unsigned char *bin = pg_sim_b64_decode(std, outn);
    free(std);
    return bin;
}

static json_t *b64url_json(const char *s, size_t n)
{
    size_t len = 0;
    unsigned char *bin = b64url_decode(s, n, &len);
    json_t *j = bin ? json_loadb((const char *)bin, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(bin);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* RS256 over "header.claims" with the connected app's certificate. 1 = valid. */
static int
rs256_ok(const char *cert_pem, const char *input, size_t inlen, const char *sig64, size_t siglen)
{
    size_t n = 0;
    unsigned char *sig = b64url_decode(sig64, siglen, &n);
    BIO *bio = cert_pem ? BIO_new_mem_buf(cert_pem, -1) : NULL;
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *pk = x ? X509_get_pubkey(x) : NULL;
    EVP_MD_CTX *md = pk && sig ? EVP_MD_CTX_new() : NULL;
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestVerify(md, sig, n, (const unsigned char *)input, inlen) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    X509_free(x);
    BIO_free(bio);
    free(sig);
    return ok;
}

/* The instance URL: configured, else this simulator as the client reached it (Host header). */
static void instance_url(struct pg_sim *sim, const struct pg_sim_req *req, char *out, size_t outsz)
{
    const char *host = pg_sim_req_header(req, "Host");
    if (sim->cfg->sf.oauth.instance_url[0])
        snprintf(out, outsz, "%s", sim->cfg->sf.oauth.instance_url);
    else if (host && host[0] && !strpbrk(host, "/ \t\r\n\"\\"))
        snprintf(out, outsz, "http://%s", host);
    else
        snprintf(out, outsz, "http://127.0.0.1:%d", sim->port);
}

/*
 * POST /services/oauth2/token, grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer. The checks
 * run in this order; the first failure answers (sim/README.md "OAuth").
 */
void pg_sim_sf_token(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    const char *ct = pg_sim_req_header(req, "Content-Type");
    char *grant = NULL, *assertion = NULL;
    json_t *hdr = NULL, *claims = NULL;
    const char *bad_sig_error =
        cfg->sf.oauth.bad_signature_invalid_client ? "invalid_client" : "invalid_grant";
    const char *bad_sig_text = cfg->sf.oauth.bad_signature_invalid_client
                                   ? "invalid client credentials"
                                   : "invalid assertion";
    if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
        (ct[33] == '\0' || ct[33] == ';' || ct[33] == ' ')) {
        grant = pg_sim_form_get(req->body, req->body_len, "grant_type");
        assertion = pg_sim_form_get(req->body, req->body_len, "assertion");
    }
    if (!grant || strcmp(grant, JWT_BEARER) != 0) {
        oauth_error(out, "unsupported_grant_type", "grant type not supported");
        goto out;
    }
    const char *d1 = assertion ? strchr(assertion, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2 || strchr(d2 + 1, '.') || !(hdr = b64url_json(assertion, (size_t)(d1 - assertion))) ||
        !(claims = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1)))) {
        oauth_error(out, "invalid_grant", "invalid assertion");
        goto out;
    }
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    json_t *aud = json_object_get(claims, "aud"), *exp = json_object_get(claims, "exp");
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    if (!sub) /* "prn" is the legacy name of sub (§3.1) */
        sub = json_string_value(json_object_get(claims, "prn"));
    if (!iss || strcmp(iss, cfg->sf.oauth.client_id) != 0) {
        oauth_error(out, "invalid_client_id", "client identifier invalid");
        goto out;
    }
    if (!alg || strcmp(alg, "RS256") != 0 || !d2[1] ||
        !rs256_ok(cfg->sf.oauth.certificate_pem, assertion, (size_t)(d2 - assertion), d2 + 1,
                  strlen(d2 + 1))) {
        if (!cfg->sf.oauth.certificate_pem)
            pg_log(PG_LOG_WARN, NULL, "sim_oauth_no_cert",
                   "salesforce.oauth.certificate is not configured: every assertion is refused");
        oauth_error(out, bad_sig_error, bad_sig_text);
        goto out;
    }
    int aud_ok = 0;
    for (int i = 0; json_is_string(aud) && i < cfg->sf.oauth.naudiences; i++)
        aud_ok |= strcmp(json_string_value(aud), cfg->sf.oauth.audiences[i]) == 0;
    if (!aud_ok) {
        oauth_error(out, "invalid_grant", "audience is invalid");
        goto out;
    }
    int64_t now_s = pg_wall_ms() / 1000;
    if (!json_is_integer(exp)) { /* epoch seconds as a JSON integer */
        oauth_error(out, "invalid_grant", "invalid assertion");
        goto out;
    }
    if (json_integer_value(exp) + cfg->sf.oauth.clock_skew_s <= now_s) {
        oauth_error(out, "invalid_grant", "expired authorization code");
        goto out;
    }
    if (cfg->sf.oauth.max_exp_ahead_s &&
        json_integer_value(exp) > now_s + cfg->sf.oauth.max_exp_ahead_s) {
        oauth_error(out, "invalid_grant", "invalid assertion");
        goto out;
    }
    if (!sub || strcasecmp(sub, cfg->sf.oauth.username) != 0 || !cfg->sf.oauth.user_approved) {
        oauth_error(out, "invalid_grant", "user hasn't approved this consumer");
        goto out;
    }
    char tok[160], inst[300], id[200];
    if (token_issue(sim, cfg->sf.oauth.token_ttl_s, tok, sizeof tok) != 0) {
        pg_sim_reply_json(out, 500, json_pack("{s:s}", "error", "server_error"));
        goto out;
    }
    pthread_mutex_lock(&sim->mu);
    priv(sim)->grants++;
    pthread_mutex_unlock(&sim->mu);
    instance_url(sim, req, inst, sizeof inst);
    snprintf(id, sizeof id, "https://login.salesforce.com/id/%s/%s", cfg->sf.org_id,
             cfg->sf.oauth.user_id);
    pg_sim_reply_json(out, 200,
                      json_pack("{s:s,s:s,s:s,s:s,s:s}", "access_token", tok, "scope", "api",
                                "instance_url", inst, "id", id, "token_type", "Bearer"));
    pg_sim_reply_header(out, "Cache-Control",
                        "no-cache,must-revalidate,max-age=0,no-store,private");
out:
    json_decref(hdr);
    json_decref(claims);
    free(grant);
    free(assertion);
}

/* POST /_sim/tokens [{"ttl_s":N}]: a token without the JWT dance (not counted as a grant). */
void pg_sim_sf_tokens_mint(struct pg_sim *sim,
                           const struct pg_sim_req *req,
                           struct pg_sim_reply *out)
{
    long long ttl = sim->cfg->sf.oauth.token_ttl_s;
    json_t *t = json_object_get(req->json, "ttl_s");
    if (req->body_len && (!json_is_object(req->json) || json_object_size(req->json) > (t ? 1 : 0) ||
                          (t && (!json_is_integer(t) || json_integer_value(t) < 1 ||
                                 json_integer_value(t) > 86400 * 7)))) {
        pg_sim_ctl_error(out, 400, "bad_request", "body: {\"ttl_s\": 1..604800} or nothing");
        return;
    }
    if (t)
        ttl = json_integer_value(t);
    char tok[160], inst[300];
    if (token_issue(sim, ttl, tok, sizeof tok) != 0) {
        pg_sim_ctl_error(out, 500, "internal", "could not issue a token");
        return;
    }
    instance_url(sim, req, inst, sizeof inst);
    pg_sim_reply_json(out, 201,
                      json_pack("{s:s,s:s,s:s,s:I}", "access_token", tok, "instance_url", inst,
                                "token_type", "Bearer", "expires_in", (json_int_t)ttl));
}

/* POST /_sim/tokens/expire: every issued token stops working ("the session timed out"). */
void pg_sim_sf_tokens_expire(struct pg_sim *sim,
                             const struct pg_sim_req *req,
                             struct pg_sim_reply *out)
{
    struct sf_priv *p = priv(sim);
    pthread_mutex_lock(&sim->mu);
    tokens_prune(p, pg_wall_ms());
    size_t n = p->ntokens;
    p->ntokens = 0;
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, json_pack("{s:I}", "expired", (json_int_t)n));
}
