/*
 * Idempotency-Key on partner POSTs (IETF draft "The Idempotency-Key HTTP Header Field").
 *
 * The first request with a key runs and its reply is stored for 24 h; a retry with the same key
 * and the same request gets the stored reply again (marked Idempotent-Replayed: true) instead of
 * running twice. The same key with another request (method, path or body) is 422; a retry while
 * the first is still running is 409. Keys are scoped to the caller and the route, so two partners
 * cannot collide. A 5xx reply is not stored: the client may retry it for real.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"

#define IDEM_TTL_MS (24LL * 3600 * 1000)
#define IDEM_MAX_KEY 255

/* ARGV: ttl, fingerprint. Returns {"new"} | {"busy"} | {"mismatch"} | {"done", status, type,
 * body}. */
static const char begin_lua[] = "local h = redis.call('HGETALL', KEYS[1])\n"
                                "if #h == 0 then\n"
                                "  redis.call('HSET', KEYS[1], 'state', 'running', 'fp', ARGV[2])\n"
                                "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                                "  return {'new'}\n"
                                "end\n"
                                "local t = {}\n"
                                "for i = 1, #h, 2 do t[h[i]] = h[i + 1] end\n"
                                "if t.fp ~= ARGV[2] then return {'mismatch'} end\n"
                                "if t.state ~= 'done' then return {'busy'} end\n"
                                "return {'done', t.status, t.type, t.body}\n";

/* Query arguments in order, each as "?k=v" (so "a=1" and "a=1&" never collide with "a=1b"). */
static int hash_query_arg(void *ud, const char *k, const char *v)
{
    EVP_MD_CTX *c = ud;
    EVP_DigestUpdate(c, "?", 1);
    EVP_DigestUpdate(c, k, strlen(k) + 1); /* with the NUL: a separator no argument contains */
    EVP_DigestUpdate(c, v, strlen(v) + 1);
    return 0;
}

/* The request's fingerprint: method, path, query arguments and body. The query counts: the same
 * key and body sent for another ?location= is another request (422), not a replay. A request
 * without arguments hashes as before. */
static void fingerprint(struct pg_req *req, char hex[65])
{
    size_t len = 0;
    const char *body = pg_req_body(req, &len);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, pg_req_method(req), strlen(pg_req_method(req)));
    EVP_DigestUpdate(c, " ", 1);
    EVP_DigestUpdate(c, pg_req_path(req), strlen(pg_req_path(req)));
    pg_req_query_each(req, hash_query_arg, c); /* never stopped: hash_query_arg returns 0 */
    EVP_DigestUpdate(c, "\n", 1);
    EVP_DigestUpdate(c, body, len);
    EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

int pg_hnd_idem_begin(struct pg_req *req, char *slot, size_t slotsz)
{
    slot[0] = '\0';
    const char *key = pg_req_header(req, "Idempotency-Key");
    if (!key)
        return PG_OK; /* optional: without it the request simply runs */
    size_t kl = strlen(key);
    int ok = kl > 0 && kl <= IDEM_MAX_KEY;
    for (size_t i = 0; ok && i < kl; i++)
        ok = key[i] >= 0x21 && key[i] <= 0x7e;
    if (!ok) {
        pg_req_problem(req, 400, "Idempotency-Key must be 1 to 255 visible ASCII characters", NULL);
        return PG_EINVAL;
    }
    const json_t *who = pg_req_principal(req);
    const char *id = json_string_value(json_object_get(who, "id"));
    snprintf(slot, slotsz, PG_KEY_IDEM "%s:%s:%s", id ? id : "anonymous", pg_req_route(req)->name,
             key);
    char fp[65], ttl[24];
    fingerprint(req, fp);
    snprintf(ttl, sizeof ttl, "%lld", IDEM_TTL_MS);
    const char *argv[] = {"EVAL", begin_lua, "1", slot, ttl, fp};
    size_t argvlen[6];
    for (int i = 0; i < 6; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *r = NULL;
    int rc = pg_redis_command_argv(&r, 6, argv, argvlen);
    if (rc != PG_OK || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r)
            freeReplyObject(r);
        slot[0] = '\0';
        pg_req_add_header(req, "Retry-After", "1");
        pg_req_problem(req, 503, "cannot check the Idempotency-Key right now", NULL);
        return PG_EUNAVAIL;
    }
    const char *what = r->element[0]->str ? r->element[0]->str : "";
    rc = PG_OK;
    if (strcmp(what, "mismatch") == 0) {
        pg_req_problem(req, 422, "this Idempotency-Key was used with a different request", NULL);
        rc = PG_EEXIST;
    } else if (strcmp(what, "busy") == 0) {
        pg_req_problem(req, 409, "a request with this Idempotency-Key is still being processed",
                       NULL);
        rc = PG_EEXIST;
    } else if (strcmp(what, "done") == 0 && r->elements == 4) {
        long long status = 200;
        if (r->element[1]->str && pg_strtonum(r->element[1]->str, 100, 599, &status) != PG_OK)
            status = 200;
        pg_req_add_header(req, "Idempotent-Replayed", "true");
        pg_req_reply(req, (int)status, r->element[2]->str ? r->element[2]->str : "application/json",
                     r->element[3]->str ? r->element[3]->str : "", r->element[3]->len);
        rc = PG_EEXIST;
    }
    freeReplyObject(r);
    if (rc != PG_OK)
        slot[0] = '\0'; /* not ours to finish */
    return rc;
}

void pg_hnd_idem_finish(struct pg_req *req, const char *slot)
{
    if (!slot || !slot[0])
        return;
    int status = pg_req_reply_status(req);
    redisReply *r = NULL;
    int rc;
    if (status == 0 || status >= 500) {
        rc = pg_redis_command(&r, "DEL %s", slot);
    } else {
        size_t len = 0;
        const char *type = NULL;
        const char *body = pg_req_reply_body(req, &len, &type);
        rc = pg_redis_command(&r, "HSET %s state done status %d type %s body %b", slot, status,
                              type ? type : "application/json", body, len);
    }
    if (r)
        freeReplyObject(r);
    if (rc != PG_OK)
        pg_log(PG_LOG_WARN, pg_req_id(req), "idempotency.not_stored",
               "the reply for this Idempotency-Key was not stored: %s", pg_strerror(rc));
}
