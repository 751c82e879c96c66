/*
 * The MICROS simulator's JSON webhook receiver (the site middleware a gateway may push loyalty
 * updates to instead of Gift & Loyalty): POST /webhooks/loyalty, signed per Standard Webhooks.
 *
 *   signed content  "{webhook-id}.{webhook-timestamp}.{body}"
 *   key             base64-decoded part of micros.webhook_secret ("whsec_<base64>")
 *   signature       webhook-signature: "v1,<base64 HMAC-SHA256>", several space-separated allowed
 *   timestamp       unix seconds, refused when more than micros.webhook_tolerance_s (300) off
 *
 * Bad or missing signature headers → 401; a body that is not a JSON object with a string
 * data.loyalty_id (or loyalty_id) → 400; otherwise 200 and the delivery is recorded in state
 * "webhook".
 */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "server/log.h"
#include "server/util.h"

static void deny(struct pg_sim_reply *out, int status, const char *code, const char *msg)
{
    pg_sim_reply_json(out, status, json_pack("{s:s,s:s}", "error", code, "message", msg));
}

/* 1 when one of the space-separated "v1,<b64>" entries equals expect (constant time). */
static int signature_matches(const char *header, const char *expect)
{
    char *copy = strdup(header), *save = NULL;
    int ok = 0;
    size_t elen = strlen(expect);
    for (char *tok = copy ? strtok_r(copy, " ", &save) : NULL; tok;
         tok = strtok_r(NULL, " ", &save)) {
        if (strncmp(tok, "v1,", 3) != 0)
            continue;
        const char *sig = tok + 3;
        if (strlen(sig) == elen && CRYPTO_memcmp(sig, expect, elen) == 0)
            ok = 1;
    }
    free(copy);
    return ok;
}

void pg_sim_webhook_receive(struct pg_sim *sim,
                            const struct pg_sim_req *req,
                            struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    const char *id = pg_sim_req_header(req, "webhook-id");
    const char *ts = pg_sim_req_header(req, "webhook-timestamp");
    const char *sig = pg_sim_req_header(req, "webhook-signature");
    if (!cfg->micros.webhook_secret) {
        deny(out, 503, "not_configured", "micros.webhook_secret is not configured");
        return;
    }
    if (!id || !id[0] || !ts || !sig) {
        deny(out, 401, "invalid_signature",
             "webhook-id, webhook-timestamp and webhook-signature are required");
        return;
    }
    long long t = 0;
    if (pg_strtonum(ts, 0, 1LL << 40, &t) != 0) {
        deny(out, 401, "invalid_timestamp", "webhook-timestamp must be unix seconds");
        return;
    }
    long long now = pg_wall_ms() / 1000;
    if (t < now - cfg->micros.webhook_tolerance_s || t > now + cfg->micros.webhook_tolerance_s) {
        deny(out, 401, "invalid_timestamp", "webhook-timestamp is too far from now");
        return;
    }
    size_t klen = 0;
    unsigned char *key = pg_sim_b64_decode(cfg->micros.webhook_secret + 6, &klen);
    size_t mlen = strlen(id) + strlen(ts) + req->body_len + 2;
    unsigned char *msg = malloc(mlen + 1);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *expect = NULL;
    if (key && msg) {
        int off = snprintf((char *)msg, mlen + 1, "%s.%s.", id, ts);
        memcpy(msg + off, req->body, req->body_len);
        if (HMAC(EVP_sha256(), key, (int)klen, msg, mlen, mac, &maclen))
            expect = pg_sim_b64(mac, maclen, 0);
    }
    free(key);
    free(msg);
    int ok = expect && signature_matches(sig, expect);
    free(expect);
    if (!ok) {
        deny(out, 401, "invalid_signature", "no webhook-signature entry matches");
        return;
    }
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    /* The Standard Webhooks payload shape: {"type", "timestamp", "data": {...}}; the customer
     * is data.loyalty_id (a flat body with loyalty_id at the top is accepted too). */
    const char *lid = json_string_value(json_object_get(body, "loyalty_id"));
    if (!lid)
        lid = json_string_value(json_object_get(json_object_get(body, "data"), "loyalty_id"));
    if (!json_is_object(body) || !lid || !lid[0]) {
        json_decref(body);
        deny(out, 400, "bad_body",
             "the body must be a JSON object with a string data.loyalty_id (or loyalty_id)");
        return;
    }
    char now_iso[40];
    pg_wall_iso8601(now_iso, sizeof now_iso);
    pthread_mutex_lock(&sim->mu);
    json_t *wh = json_object_get(sim->state, "webhook");
    json_t *per = json_object_get(wh, "customers");
    json_t *entry = json_object_get(per, lid);
    if (!entry) {
        entry = json_pack("{s:i}", "count", 0);
        json_object_set_new(per, lid, entry);
    }
    json_object_set_new(entry, "count",
                        json_integer(json_integer_value(json_object_get(entry, "count")) + 1));
    json_object_set(entry, "last", body);
    json_object_set_new(entry, "last_webhook_id", json_string(id));
    json_array_append_new(json_object_get(wh, "deliveries"),
                          json_pack("{s:s,s:s,s:I,s:O}", "webhook_id", id, "received", now_iso,
                                    "timestamp", (json_int_t)t, "body", body));
    pthread_mutex_unlock(&sim->mu);
    json_decref(body);
    pg_sim_reply_json(out, 200, json_pack("{s:b}", "received", 1));
}
