#include "micros/webhook.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "server/httpc.h"
#include "server/util.h"

#define WEBHOOK_MAX_KEY 1024
#define WEBHOOK_MAX_ID 256
#define WEBHOOK_MAX_RESPONSE (64u << 10)

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict standard base64 (padding optional, nothing after it). Returns the length or -1. */
static long b64_decode(const char *s, unsigned char *out, size_t outsz)
{
    size_t n = strlen(s), o = 0;
    while (n && s[n - 1] == '=')
        n--;
    if (strlen(s) - n > 2 || n % 4 == 1)
        return -1;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outsz)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

int pg_webhook_sign(const char *secret,
                    const char *msg_id,
                    long long timestamp_s,
                    const char *body,
                    size_t len,
                    char *sig_out,
                    size_t sig_sz)
{
    if (!secret || !msg_id || !sig_out || (!body && len))
        return PG_EINVAL;
    size_t idl = strlen(msg_id);
    if (idl == 0 || idl > WEBHOOK_MAX_ID)
        return PG_EINVAL;
    /* The id travels in a header: a CR/LF would inject headers, and the spec's ids are ASCII. */
    for (size_t i = 0; i < idl; i++)
        if ((unsigned char)msg_id[i] < 0x21 || (unsigned char)msg_id[i] > 0x7E)
            return PG_EINVAL;
    if (sig_sz < PG_WEBHOOK_SIG_LEN)
        return PG_ETOOLARGE;

    unsigned char key[WEBHOOK_MAX_KEY];
    size_t keylen;
    if (strncmp(secret, "whsec_", 6) == 0) {
        long kl = b64_decode(secret + 6, key, sizeof key);
        if (kl <= 0)
            return PG_EINVAL;
        keylen = (size_t)kl;
    } else {
        keylen = strlen(secret);
        if (keylen == 0 || keylen > sizeof key)
            return PG_EINVAL;
        memcpy(key, secret, keylen);
    }

    char ts[32];
    int tsl = snprintf(ts, sizeof ts, ".%lld.", timestamp_s);
    unsigned char mac[32];
    size_t maclen = 0;
    int rc = PG_ENOMEM;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    /* Streamed so a large body is never copied into one signing buffer. */
    if (ctx && EVP_MAC_init(ctx, key, keylen, params) &&
        EVP_MAC_update(ctx, (const unsigned char *)msg_id, idl) &&
        EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tsl) &&
        (len == 0 || EVP_MAC_update(ctx, (const unsigned char *)body, len)) &&
        EVP_MAC_final(ctx, mac, &maclen, sizeof mac) && maclen == sizeof mac) {
        memcpy(sig_out, "v1,", 3);
        EVP_EncodeBlock((unsigned char *)sig_out + 3, mac, (int)sizeof mac);
        rc = PG_OK;
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

int pg_webhook_send(const struct pg_webhook_config *c,
                    const char *msg_id,
                    const char *body,
                    size_t len,
                    long *http_status,
                    int *retry_after_s,
                    char *err,
                    size_t errsz)
{
    if (http_status)
        *http_status = 0;
    if (retry_after_s)
        *retry_after_s = -1;
    set_err(err, errsz, "%s", "");
    if (!c || !c->url || !c->secret) {
        set_err(err, errsz, "%s", "webhook url or secret missing");
        return PG_WEBHOOK_FAIL;
    }
    long long now = (long long)(pg_wall_ms() / 1000);
    char sig[100];
    int rc = pg_webhook_sign(c->secret, msg_id, now, body, len, sig, sizeof sig);
    if (rc) {
        set_err(err, errsz, "cannot sign: %s", pg_strerror(rc));
        return rc == PG_ENOMEM ? PG_WEBHOOK_RETRY : PG_WEBHOOK_FAIL;
    }
    char h_id[WEBHOOK_MAX_ID + 16], h_ts[48], h_sig[128];
    snprintf(h_id, sizeof h_id, "webhook-id: %s", msg_id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", now);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    const char *headers[] = {
        h_id, h_ts, h_sig, "Content-Type: application/json", "User-Agent: posgate", NULL};
    struct pg_httpc_req req = {.method = "POST",
                               .url = c->url,
                               .headers = headers,
                               .body = body ? body : "",
                               .body_len = len,
                               .connect_timeout_ms = c->connect_timeout_ms,
                               .timeout_ms = c->timeout_ms,
                               .max_response_bytes = WEBHOOK_MAX_RESPONSE};
    struct pg_httpc_resp resp;
    rc = pg_httpc_do(&req, &resp);
    if (http_status)
        *http_status = resp.status;
    if (retry_after_s)
        *retry_after_s = resp.retry_after_s;

    int out;
    /* A reply body we do not read anyway may exceed our cap: the status still decides. */
    if (rc != PG_OK && !(rc == PG_ETOOLARGE && resp.status)) {
        set_err(err, errsz, "%s", resp.error);
        out = (rc == PG_ETIMEDOUT || rc == PG_EUNAVAIL || rc == PG_EIO || rc == PG_ENOMEM)
                  ? PG_WEBHOOK_RETRY
                  : PG_WEBHOOK_FAIL;
    } else if (resp.status >= 200 && resp.status <= 299) {
        out = PG_WEBHOOK_OK;
    } else {
        set_err(err, errsz, "HTTP %ld", resp.status);
        out = (resp.status == 429 || resp.status >= 500) ? PG_WEBHOOK_RETRY : PG_WEBHOOK_FAIL;
    }
    pg_httpc_resp_free(&resp);
    return out;
}
