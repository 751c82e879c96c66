/*
 * The Salesforce simulator's Platform Event poster (salesforce-wire.md §2.2, §2.7): it imitates
 * an Apex/Flow callout through a Named Credential with a JWT External Credential. Each event is
 * the CometD envelope {"data":{"schema","payload","event":{"EventUuid","replayId"}},"channel"};
 * the request carries "Authorization: Bearer <JWT>" signed RS256 with salesforce.jwt.private_key,
 * header {"alg","typ":"JWT","kid"}, claims iss, sub, aud, iat, nbf, exp (now + expiry_s), jti.
 *
 * Tokens are built by hand (base64url(header).base64url(claims).signature) so that the negative
 * cases (alg "none", HS256 with any key — e.g. the RSA public key PEM for the confusion attack —
 * expired, not yet valid, wrong iss/aud/kid, no header at all) come out exactly as asked.
 */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "server/log.h"
#include "server/util.h"

#define SCHEMA_ID "Xq3LmT8vRk2wNc7yHb5pZA" /* 22 chars, like a real schema id */
#define CREATED_BY "0055g00000Qz7Rk"       /* §0: CreatedById is 15-char in event payloads */
#define REPLY_MAX (1024 * 1024)

static void uuid4(char out[37])
{
    unsigned char b[16] = {0};
    if (pg_random_bytes(b, sizeof b) != 0) {
        uint64_t t = (uint64_t)pg_now_us();
        memcpy(b, &t, sizeof t);
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static char *b64url_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *out = s ? pg_sim_b64((const unsigned char *)s, strlen(s), 1) : NULL;
    free(s);
    return out;
}

/* Sign "h.p" → malloc'd base64url signature ("" for none), or NULL with err. */
static char *sign(const char *alg,
                  const char *input,
                  const char *rsa_pem,
                  const char *hs_key,
                  char *err,
                  size_t errsz)
{
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    if (strcmp(alg, "none") == 0)
        return strdup("");
    if (strcmp(alg, "HS256") == 0) {
        unsigned int n = 0;
        if (!hs_key) {
            snprintf(err, errsz, "HS256 needs token.key or salesforce.jwt.hs256_secret");
            return NULL;
        }
        if (!HMAC(EVP_sha256(), hs_key, (int)strlen(hs_key), (const unsigned char *)input,
                  strlen(input), sig, &n))
            return NULL;
        return pg_sim_b64(sig, n, 1);
    }
    if (!rsa_pem) {
        snprintf(err, errsz, "RS256 needs salesforce.jwt.private_key in the configuration");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(rsa_pem, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *out = NULL;
    if (pk && md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, strlen(input)) == 1)
        out = pg_sim_b64(sig, siglen, 1);
    else
        snprintf(err, errsz, "RS256 signing failed");
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return out;
}

/* The token for this request, NULL + err when it cannot be built; *omit set for no header. */
static char *make_token(struct pg_sim *sim, json_t *tok, int *omit, char *err, size_t errsz)
{
    const struct pg_sim_config *cfg = sim->cfg;
    static const char *const keys[] = {"alg",          "kid",          "iss",  "aud", "sub",
                                       "exp_offset_s", "nbf_offset_s", "omit", "key", NULL};
    const char *k;
    json_t *v;
    *omit = 0;
    if (tok && !json_is_object(tok)) {
        snprintf(err, errsz, "\"token\" must be an object");
        return NULL;
    }
    json_object_foreach(tok, k, v)
    {
        const char *const *a = keys;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a) {
            snprintf(err, errsz, "token: unknown key \"%s\"", k);
            return NULL;
        }
        int want_str = strcmp(k, "exp_offset_s") != 0 && strcmp(k, "nbf_offset_s") != 0 &&
                       strcmp(k, "omit") != 0;
        if ((want_str && !json_is_string(v) && !(strcmp(k, "kid") == 0 && json_is_null(v))) ||
            (!want_str && strcmp(k, "omit") != 0 && !json_is_integer(v)) ||
            (strcmp(k, "omit") == 0 && !json_is_boolean(v))) {
            snprintf(err, errsz, "token.%s has the wrong type", k);
            return NULL;
        }
    }
    if (json_is_true(json_object_get(tok, "omit"))) {
        *omit = 1;
        return NULL;
    }
    const char *alg = json_string_value(json_object_get(tok, "alg"));
    alg = alg ? alg : "RS256";
    if (strcmp(alg, "RS256") != 0 && strcmp(alg, "HS256") != 0 && strcmp(alg, "none") != 0) {
        snprintf(err, errsz, "token.alg must be RS256, HS256 or none");
        return NULL;
    }
    json_t *jk = json_object_get(tok, "kid");
    const char *kid = jk ? json_string_value(jk) : cfg->sf.jwt.kid; /* "kid": null omits it */
    const char *iss = json_string_value(json_object_get(tok, "iss"));
    const char *aud = json_string_value(json_object_get(tok, "aud"));
    const char *sub = json_string_value(json_object_get(tok, "sub"));
    json_int_t now = pg_wall_ms() / 1000;
    json_t *eo = json_object_get(tok, "exp_offset_s"), *no = json_object_get(tok, "nbf_offset_s");
    char jti[37];
    uuid4(jti);
    json_t *hdr = json_pack("{s:s,s:s}", "alg", alg, "typ", "JWT");
    if (kid)
        json_object_set_new(hdr, "kid", json_string(kid));
    json_t *claims = json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "iss", iss ? iss : cfg->sf.jwt.iss, "sub",
        sub ? sub : cfg->sf.jwt.sub, "aud", aud ? aud : cfg->sf.jwt.aud, "iat", now, "nbf",
        now + (no ? json_integer_value(no) : 0), "exp",
        now + (eo ? json_integer_value(eo) : (json_int_t)cfg->sf.jwt.expiry_s), "jti", jti);
    char *h = b64url_json(hdr), *p = b64url_json(claims), *token = NULL;
    json_decref(hdr);
    json_decref(claims);
    if (h && p) {
        size_t n = strlen(h) + strlen(p) + 2;
        char *input = malloc(n);
        if (input) {
            snprintf(input, n, "%s.%s", h, p);
            const char *hs = json_string_value(json_object_get(tok, "key"));
            char *s = sign(alg, input, cfg->sf.jwt.private_key_pem,
                           hs ? hs : cfg->sf.jwt.hs256_secret, err, errsz);
            if (s && (token = malloc(n + strlen(s) + 1)))
                snprintf(token, n + strlen(s) + 1, "%s.%s", input, s);
            free(s);
            free(input);
        }
    }
    free(h);
    free(p);
    if (!token && !err[0])
        snprintf(err, errsz, "out of memory");
    return token;
}

/* Payload built from a Contact as the Flow/trigger would (caller holds sim->mu). */
static json_t *payload_of(json_t *c)
{
    static const char *const map[][2] = {
        {"Id", "Contact_Id__c"},
        {"Loyalty_Id__c", "Loyalty_Id__c"},
        {"Loyalty_Tier__c", "Loyalty_Tier__c"},
        {"Loyalty_Points__c", "Loyalty_Points__c"},
        {"Preferences__c", "Preferences__c"},
        {"Email", "Email__c"},
        {"MobilePhone", "MobilePhone__c"},
        {"FirstName", "FirstName__c"},
        {"LastName", "LastName__c"},
    };
    char ts[40];
    pg_sim_iso_ms(pg_wall_ms(), ts, sizeof ts);
    json_t *p = json_pack("{s:s,s:s}", "CreatedDate", ts, "CreatedById", CREATED_BY);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        json_t *v = json_object_get(c, map[i][0]);
        json_object_set(p, map[i][1], v ? v : json_null());
    }
    return p;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    return pg_buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)ud, (void)a, (void)b, (void)c, (void)d;
    return pg_sim_stopping();
}

/* POST body; the result {"status", "body"} (body parsed as JSON when it is, else the text). */
static json_t *post(const char *url, const char *body, const char *token)
{
    struct pg_buf r;
    pg_buf_init(&r, REPLY_MAX);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char auth[8192];
    json_t *res = NULL;
    if (!c)
        return json_pack("{s:i,s:n,s:s}", "status", 0, "body", "error", "curl_easy_init failed");
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "SFDC-Callout/66.0");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L); /* §2.7: Apex callouts time out at 120 s */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        res = json_pack("{s:i,s:n,s:s}", "status", 0, "body", "error", curl_easy_strerror(rc));
    } else {
        long st = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
        json_t *b = r.len ? json_loadb(r.data, r.len, JSON_DECODE_ANY, NULL) : json_null();
        if (!b)
            b = json_stringn(r.data, r.len);
        res = json_pack("{s:i,s:o}", "status", (int)st, "body", b ? b : json_null());
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    pg_buf_free(&r);
    return res;
}

void pg_sim_pe_post(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    static const char *const keys[] = {"target_url", "event_type", "ids",   "payloads",
                                       "array",      "duplicate",  "token", NULL};
    json_t *spec = req->json;
    const char *k;
    json_t *v;
    char err[256] = "";
    if (!json_is_object(spec)) {
        pg_sim_ctl_error(out, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    json_object_foreach(spec, k, v)
    {
        const char *const *a = keys;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a) {
            pg_sim_ctl_error(out, 400, "bad_request", "unknown key \"%s\"", k);
            return;
        }
    }
    const char *url = json_string_value(json_object_get(spec, "target_url"));
    const char *type = json_string_value(json_object_get(spec, "event_type"));
    json_t *ids = json_object_get(spec, "ids"), *payloads = json_object_get(spec, "payloads");
    json_t *arr = json_object_get(spec, "array"), *dup = json_object_get(spec, "duplicate");
    type = type ? type : "Loyalty_Update__e";
    size_t tl = strlen(type);
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        pg_sim_ctl_error(out, 400, "bad_request", "\"target_url\" must be an http(s) URL");
        return;
    }
    if (tl < 4 || strcmp(type + tl - 3, "__e") != 0 ||
        strspn(type, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != tl) {
        pg_sim_ctl_error(out, 400, "bad_request",
                         "\"event_type\" must be an API name ending in __e");
        return;
    }
    if (!ids == !payloads || (ids && (!json_is_array(ids) || !json_array_size(ids))) ||
        (payloads && (!json_is_array(payloads) || !json_array_size(payloads)))) {
        pg_sim_ctl_error(out, 400, "bad_request",
                         "give exactly one of \"ids\" (Contact ids) or \"payloads\" (objects)");
        return;
    }
    if ((arr && !json_is_boolean(arr)) || (dup && !json_is_boolean(dup))) {
        pg_sim_ctl_error(out, 400, "bad_request", "\"array\" and \"duplicate\" must be booleans");
        return;
    }
    int omit = 0;
    char *token = make_token(sim, json_object_get(spec, "token"), &omit, err, sizeof err);
    if (!token && !omit) {
        pg_sim_ctl_error(out, 400, "bad_request", "%s", err);
        return;
    }
    char channel[300];
    snprintf(channel, sizeof channel, "/event/%s", type);
    json_t *events = json_array(), *uuids = json_array();
    size_t i;
    pthread_mutex_lock(&sim->mu);
    json_array_foreach(ids ? ids : payloads, i, v)
    {
        json_t *p;
        if (ids) {
            json_t *c = pg_sim_sf_find_contact(sim, json_string_value(v));
            if (!c) {
                snprintf(err, sizeof err, "no Contact %s",
                         json_is_string(v) ? json_string_value(v) : "(not a string)");
                break;
            }
            p = payload_of(c);
        } else if (json_is_object(v)) {
            p = json_deep_copy(v);
        } else {
            snprintf(err, sizeof err, "payloads[%zu] must be an object", i);
            break;
        }
        char uuid[37];
        uuid4(uuid);
        json_array_append_new(uuids, json_string(uuid));
        json_array_append_new(
            events, json_pack("{s:{s:s,s:o,s:{s:s,s:I}},s:s}", "data", "schema", SCHEMA_ID,
                              "payload", p, "event", "EventUuid", uuid, "replayId",
                              (json_int_t)pg_sim_sf_next_replay_id(sim), "channel", channel));
    }
    pthread_mutex_unlock(&sim->mu);
    if (err[0]) {
        free(token);
        json_decref(events);
        json_decref(uuids);
        pg_sim_ctl_error(out, 400, "bad_request", "%s", err);
        return;
    }
    int as_array = arr ? json_is_true(arr) : json_array_size(events) > 1;
    json_t *results = json_array();
    for (int round = 0; round < (json_is_true(dup) ? 2 : 1); round++) {
        for (size_t e = 0; e < (as_array ? 1 : json_array_size(events)); e++) {
            char *body = json_dumps(as_array ? events : json_array_get(events, e),
                                    JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (body)
                json_array_append_new(results, post(url, body, omit ? NULL : token));
            free(body);
        }
    }
    free(token);
    json_decref(events);
    pg_sim_reply_json(out, 200, json_pack("{s:o,s:o}", "results", results, "event_uuids", uuids));
}
