#include "sync/member.h"

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
 * Read path. ARGV: rate key ("" = none), window ms, kind, value.
 * Returns {count, result}: result "" (miss), "!nf" (cached not-found) or the member JSON.
 */
static const char get_lua[] =
    "local n = 0\n"
    "if ARGV[1] ~= '' then\n"
    "  n = redis.call('INCR', ARGV[1])\n"
    "  if n == 1 then redis.call('PEXPIRE', ARGV[1], ARGV[2]) end\n"
    "end\n"
    "local sfid = ARGV[4]\n"
    "if ARGV[3] ~= 'sf' then\n"
    "  sfid = redis.call('GET', '" PG_KEY_LOOKUP "' .. ARGV[3] .. ':' .. ARGV[4])\n"
    "  if not sfid then return {n, ''} end\n"
    "  if sfid == '!nf' then return {n, '!nf'} end\n"
    "end\n"
    "local m = redis.call('GET', '" PG_KEY_MEMBER_SF "' .. sfid)\n"
    "if m then return {n, m} end\n"
    "if ARGV[3] == 'sf' and redis.call('GET', '" PG_KEY_LOOKUP "sf:' .. sfid) == '!nf' then\n"
    "  return {n, '!nf'}\n"
    "end\n"
    "return {n, ''}\n";

/* Write path. ARGV: ttl ms, sfid, member JSON, then index kind/value pairs. */
static const char put_lua[] =
    "redis.call('SET', '" PG_KEY_MEMBER_SF "' .. ARGV[2], ARGV[3], 'PX', ARGV[1])\n"
    "redis.call('DEL', '" PG_KEY_LOOKUP "sf:' .. ARGV[2])\n"
    "for i = 4, #ARGV, 2 do\n"
    "  redis.call('SET', '" PG_KEY_LOOKUP
    "' .. ARGV[i] .. ':' .. ARGV[i + 1], ARGV[2], 'PX', ARGV[1])\n"
    "end\n"
    "return 1\n";

/*
 * Run a script by its SHA-1 (EVALSHA), loading it with EVAL only when Redis does not know it
 * (first use, or after a restart): the lookup path then sends a few bytes per hit instead of the
 * whole script.
 */
static int eval_argv(redisReply **r, const char *script, const char **args, int nargs)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    char sha[2 * SHA_DIGEST_LENGTH + 1];
    SHA1((const unsigned char *)script, strlen(script), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
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
    int rc = pg_redis_command_argv(r, n, argv, argvlen);
    if (rc == PG_EPROTO && pg_redis_reply_is_error(*r, "NOSCRIPT")) {
        freeReplyObject(*r);
        *r = NULL;
        argv[0] = "EVAL";
        argv[1] = script;
        argvlen[0] = 4;
        argvlen[1] = strlen(script);
        rc = pg_redis_command_argv(r, n, argv, argvlen);
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
    int rc = eval_argv(&r, put_lua, args, n);
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

int pg_member_get(enum pg_member_kind kind,
                  const char *value,
                  const char *rate_key,
                  int64_t rate_window_ms,
                  long long *count,
                  enum pg_member_hit *hit,
                  json_t **member)
{
    *hit = PG_MEMBER_MISS;
    *member = NULL;
    char win[24];
    snprintf(win, sizeof win, "%lld", (long long)rate_window_ms);
    const char *args[] = {rate_key ? rate_key : "", win, kind_names[kind], value};
    redisReply *r = NULL;
    int rc = eval_argv(&r, get_lua, args, 4);
    if (rc == PG_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
        rc = PG_EPROTO;
    if (rc == PG_OK) {
        if (count)
            *count = r->element[0]->integer;
        const char *v = r->element[1]->str ? r->element[1]->str : "";
        if (strcmp(v, "!nf") == 0) {
            *hit = PG_MEMBER_NEGATIVE;
        } else if (*v) {
            *member = json_loads(v, 0, NULL);
            *hit = *member ? PG_MEMBER_FOUND : PG_MEMBER_MISS; /* unreadable: refetch */
        }
    }
    if (r)
        freeReplyObject(r);
    return rc;
}
