#include "sync/member.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"
#include "sync/normalize.h"

static const char *const kind_names[] = {"sf", "lid", "card", "email", "phone"};

const char *pg_member_kind_name(enum pg_member_kind k)
{
    return kind_names[k];
}

/*
 * Read path, read-only (so Redis never waits on the AOF fsync for it). ARGV: kind, value.
 * Returns "" (miss), "!nf" (cached not-found) or the member JSON.
 */
static const char get_lua[] =
    "local sfid = ARGV[2]\n"
    "if ARGV[1] ~= 'sf' then\n"
    "  sfid = redis.call('GET', '" PG_KEY_LOOKUP "' .. ARGV[1] .. ':' .. ARGV[2])\n"
    "  if not sfid then return '' end\n"
    "  if sfid == '!nf' then return '!nf' end\n"
    "end\n"
    "local m = redis.call('GET', '" PG_KEY_MEMBER_SF "' .. sfid)\n"
    "if m then return m end\n"
    "if ARGV[1] == 'sf' and redis.call('GET', '" PG_KEY_LOOKUP "sf:' .. sfid) == '!nf' then\n"
    "  return '!nf'\n"
    "end\n"
    "return ''\n";

/* Write path. ARGV: ttl ms, sfid, member JSON, then index kind/value pairs. */
static const char put_lua[] =
    "redis.call('SET', '" PG_KEY_MEMBER_SF "' .. ARGV[2], ARGV[3], 'PX', ARGV[1])\n"
    "redis.call('DEL', '" PG_KEY_LOOKUP "sf:' .. ARGV[2])\n"
    "for i = 4, #ARGV, 2 do\n"
    "  redis.call('SET', '" PG_KEY_LOOKUP
    "' .. ARGV[i] .. ':' .. ARGV[i + 1], ARGV[2], 'PX', ARGV[1])\n"
    "end\n"
    "return 1\n";

/* The scripts are constants: each is hashed once (the lookup path runs a script per hit). */
static char get_sha[2 * SHA_DIGEST_LENGTH + 1], put_sha[2 * SHA_DIGEST_LENGTH + 1];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_hex(const char *script, char *out)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void hash_scripts(void)
{
    sha_hex(get_lua, get_sha);
    sha_hex(put_lua, put_sha);
}

/*
 * Run a script by its SHA-1 (EVALSHA), loading it with EVAL only when Redis does not know it
 * (first use, or after a restart): the lookup path then sends a few bytes per hit instead of the
 * whole script.
 */
static int
eval_argv(redisReply **r, int timeout_ms, const char *script, const char **args, int nargs)
{
    pthread_once(&sha_once, hash_scripts);
    const char *sha = script == get_lua ? get_sha : put_sha;
    const char *argv[20];
    size_t argvlen[20];
    int n = 0;
    argv[n++] = "EVALSHA";
    argv[n++] = sha;
    argv[n++] = "0";
    for (int i = 0; i < nargs && n < 20; i++)
        argv[n++] = args[i];
    for (int i = 0; i < n; i++)
        argvlen[i] = strlen(argv[i]);
    if (timeout_ms <= 0)
        timeout_ms = pg_redis_command_timeout_ms();
    int rc = pg_redis_command_argv_timeout(r, timeout_ms, n, argv, argvlen);
    if (rc == PG_EPROTO && pg_redis_reply_is_error(*r, "NOSCRIPT")) {
        freeReplyObject(*r);
        *r = NULL;
        argv[0] = "EVAL";
        argv[1] = script;
        argvlen[0] = 4;
        argvlen[1] = strlen(script);
        rc = pg_redis_command_argv_timeout(r, timeout_ms, n, argv, argvlen);
    }
    return rc;
}

int pg_member_put(const json_t *member, const char *default_country, int64_t ttl_ms)
{
    const char *sfid = json_string_value(json_object_get(member, "salesforce_id"));
    if (!sfid || !*sfid)
        return PG_EINVAL;
    json_t *copy = json_deep_copy(member);
    if (!copy)
        return PG_ENOMEM;
    json_object_set_new(copy, "cached_at_ms", json_integer(pg_wall_ms()));
    char *js = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    if (!js)
        return PG_ENOMEM;
    char ttl[24], email[320], phone[40];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    const char *args[16];
    int n = 0;
    args[n++] = ttl;
    args[n++] = sfid;
    args[n++] = js;
    const char *lid = json_string_value(json_object_get(member, "loyalty_id"));
    const char *card = json_string_value(json_object_get(member, "card"));
    const char *em = json_string_value(json_object_get(member, "email"));
    const char *ph = json_string_value(json_object_get(member, "phone"));
    if (lid && *lid) {
        args[n++] = "lid";
        args[n++] = lid;
    }
    if (card && *card) {
        args[n++] = "card";
        args[n++] = card;
    }
    /* Index the normalised forms: "Jane@Example.com" and "jane@example.com" share one entry. A
     * value Salesforce holds that does not normalise is simply not indexed. */
    if (em && pg_norm_email(em, email, sizeof email) == PG_OK) {
        args[n++] = "email";
        args[n++] = email;
    }
    if (ph && pg_norm_phone(ph, default_country, phone, sizeof phone) == PG_OK) {
        args[n++] = "phone";
        args[n++] = phone;
    }
    redisReply *r = NULL;
    int rc = eval_argv(&r, 0, put_lua, args, n);
    if (r)
        freeReplyObject(r);
    free(js);
    return rc;
}

int pg_member_put_negative(enum pg_member_kind kind, const char *value, int64_t ttl_ms)
{
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "SET " PG_KEY_LOOKUP "%s:%s !nf PX %lld", kind_names[kind], value,
                              (long long)ttl_ms);
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_member_read(enum pg_member_kind kind,
                   const char *value,
                   int timeout_ms,
                   enum pg_member_hit *hit,
                   struct pg_member_rec *rec)
{
    *hit = PG_MEMBER_MISS;
    memset(rec, 0, sizeof *rec);
    const char *args[] = {kind_names[kind], value};
    redisReply *r = NULL;
    int rc = eval_argv(&r, timeout_ms, get_lua, args, 2);
    if (rc == PG_OK && r->type != REDIS_REPLY_STRING)
        rc = PG_EPROTO;
    if (rc == PG_OK) {
        if (r->len == 3 && memcmp(r->str, "!nf", 3) == 0) {
            *hit = PG_MEMBER_NEGATIVE;
        } else if (r->len > 0) {
            *hit = PG_MEMBER_FOUND;
            rec->json = r->str;
            rec->len = r->len;
            rec->reply = r; /* the record's bytes live in the reply */
            return PG_OK;
        }
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

void pg_member_rec_free(struct pg_member_rec *rec)
{
    if (rec->reply)
        freeReplyObject(rec->reply);
    memset(rec, 0, sizeof *rec);
}

int pg_member_get(enum pg_member_kind kind,
                  const char *value,
                  enum pg_member_hit *hit,
                  json_t **member)
{
    *member = NULL;
    struct pg_member_rec rec;
    int rc = pg_member_read(kind, value, 0, hit, &rec);
    if (rc == PG_OK && *hit == PG_MEMBER_FOUND) {
        *member = json_loadb(rec.json, rec.len, 0, NULL);
        if (!*member)
            *hit = PG_MEMBER_MISS; /* unreadable: refetch */
    }
    pg_member_rec_free(&rec);
    return rc;
}
