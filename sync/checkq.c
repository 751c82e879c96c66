#include "sync/checkq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"

/* Arguments per check in the put script (loc, gcid, check, digest, upd, busdt). */
#define CHECK_ARGS 6
/* Leading arguments (source, rid, rcv_ms). */
#define HEAD_ARGS 3

static const char *const result_names[] = {"queued", "unchanged", "stale"};

const char *pg_checkq_result_name(enum pg_checkq_result r)
{
    if ((unsigned)r >= sizeof result_names / sizeof result_names[0])
        return "unknown";
    return result_names[r];
}

/*
 * The put script: one call per chunk, so a chunk is recorded whole or not at all (a Lua script
 * is atomic, and with appendfsync always its effects are on disk before the reply).
 * ARGV: source, rid, rcv_ms, then per check: loc, gcid, check JSON, digest, upd, busdt.
 * Returns one integer per check: 0 queued, 1 unchanged, 2 stale (enum pg_checkq_result).
 * The same check twice in one chunk is handled in order: the second sees the first's write.
 */
static const char put_lua[] =
    "local out = {}\n"
    "for i = 4, #ARGV, " PG_STR(
        CHECK_ARGS) " do\n"
                    "  local loc, gcid, chk, dig, upd, bd = ARGV[i], ARGV[i+1], ARGV[i+2], "
                    "ARGV[i+3], ARGV[i+4], "
                    "ARGV[i+5]\n"
                    "  local key = '" PG_KEY_CHK "' .. loc .. ':' .. gcid\n"
                    "  local cur = redis.call('HMGET', key, 'digest', 'upd')\n"
                    "  if cur[1] and cur[1] == dig then\n"
                    "    out[#out + 1] = 1\n"
                    "  elseif cur[2] and cur[2] ~= '' and upd ~= '' and cur[2] > upd then\n"
                    "    out[#out + 1] = 2\n"
                    "  else\n"
                    "    redis.call('HSET', key, 'check', chk, 'digest', dig, 'upd', upd, 'busdt', "
                    "bd,\n"
                    "               'src', ARGV[1], 'rcv_ms', ARGV[3], 'state', 'queued')\n"
                    "    redis.call('HDEL', key, 'error')\n"
                    "    redis.call('XADD', '" PG_KEY_CHK_QUEUE
                    "', '*', 'loc', loc, 'gcid', gcid, 'rid', ARGV[2],\n"
                    "               'enq_ms', ARGV[3])\n"
                    "    out[#out + 1] = 0\n"
                    "  end\n"
                    "end\n"
                    "return out\n";

static int valid_loc(const char *loc)
{
    size_t n = loc ? strlen(loc) : 0;
    if (n < 1 || n > PG_CHECKQ_LOC_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = loc[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int pg_checkq_validate(
    const char *loc_ref, const json_t *check, char *gcid, size_t gcidsz, char *why, size_t whysz)
{
    if (!valid_loc(loc_ref)) {
        snprintf(why, whysz, "locRef must be 1..%d characters of [A-Za-z0-9._-]",
                 PG_CHECKQ_LOC_MAX);
        return PG_EINVAL;
    }
    if (!json_is_object(check)) {
        snprintf(why, whysz, "a guest check must be a JSON object");
        return PG_EINVAL;
    }
    const json_t *id = json_object_get(check, "guestCheckId");
    char buf[24];
    if (json_is_integer(id)) {
        json_int_t v = json_integer_value(id);
        if (v < 0) {
            snprintf(why, whysz, "guestCheckId must not be negative");
            return PG_EINVAL;
        }
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    } else if (json_is_string(id)) {
        const char *s = json_string_value(id);
        size_t n = strlen(s);
        if (n < 1 || n > 20 || strspn(s, "0123456789") != n) {
            snprintf(why, whysz, "guestCheckId must be a string of 1..20 digits");
            return PG_EINVAL;
        }
        /* "00123" and 123 are the same check: strip leading zeros (keeping one digit). */
        while (n > 1 && *s == '0') {
            s++;
            n--;
        }
        memcpy(buf, s, n + 1);
    } else {
        snprintf(why, whysz, "guestCheckId must be a non-negative integer or a digit string");
        return PG_EINVAL;
    }
    if (strlen(buf) + 1 > gcidsz) {
        snprintf(why, whysz, "guestCheckId buffer too small");
        return PG_EINVAL;
    }
    memcpy(gcid, buf, strlen(buf) + 1);
    return PG_OK;
}

/* The business date a check belongs to: clsdBusDt, else opnBusDt, else busDt ("" if none). */
static const char *check_busdt(const json_t *check)
{
    static const char *const names[] = {"clsdBusDt", "opnBusDt", "busDt"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(check, names[i]));
        if (v && *v)
            return v;
    }
    return "";
}

/* Per check: the strings the script needs. The JSON is owned here (json_dumps). */
struct prepared {
    char gcid[24];
    char digest[2 * SHA_DIGEST_LENGTH + 1];
    char *json; /* owned */
    const char *upd;
    const char *busdt;
};

static int run_chunk(struct prepared *p,
                     const struct pg_checkq_item *items,
                     size_t n,
                     const char *source,
                     const char *rid,
                     const char *now,
                     enum pg_checkq_result *results)
{
    size_t argc = 3 + HEAD_ARGS + n * CHECK_ARGS;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *argvlen = calloc(argc, sizeof *argvlen);
    if (!argv || !argvlen) {
        free(argv);
        free(argvlen);
        return PG_ENOMEM;
    }
    size_t k = 0;
    argv[k++] = "EVAL";
    argv[k++] = put_lua;
    argv[k++] = "0";
    argv[k++] = source;
    argv[k++] = rid ? rid : "";
    argv[k++] = now;
    for (size_t i = 0; i < n; i++) {
        argv[k++] = items[i].loc_ref;
        argv[k++] = p[i].gcid;
        argv[k++] = p[i].json;
        argv[k++] = p[i].digest;
        argv[k++] = p[i].upd;
        argv[k++] = p[i].busdt;
    }
    for (size_t i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    /* EVALSHA first (a chunk of 100 checks is large; the script is not, but there is no reason to
     * resend it), EVAL when Redis does not know the script yet. */
    unsigned char md[SHA_DIGEST_LENGTH];
    char sha[2 * SHA_DIGEST_LENGTH + 1];
    SHA1((const unsigned char *)put_lua, strlen(put_lua), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
    argv[0] = "EVALSHA";
    argv[1] = sha;
    argvlen[0] = 7;
    argvlen[1] = strlen(sha);
    redisReply *r = NULL;
    int rc = pg_redis_command_argv(&r, (int)argc, argv, argvlen);
    if (rc == PG_EPROTO && pg_redis_reply_is_error(r, "NOSCRIPT")) {
        freeReplyObject(r);
        r = NULL;
        argv[0] = "EVAL";
        argv[1] = put_lua;
        argvlen[0] = 4;
        argvlen[1] = strlen(put_lua);
        rc = pg_redis_command_argv(&r, (int)argc, argv, argvlen);
    }
    if (rc == PG_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != n))
        rc = PG_EPROTO;
    for (size_t i = 0; rc == PG_OK && i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_INTEGER || e->integer < 0 || e->integer > PG_CHECKQ_STALE)
            rc = PG_EPROTO;
        else
            results[i] = (enum pg_checkq_result)e->integer;
    }
    if (r)
        freeReplyObject(r);
    free(argv);
    free(argvlen);
    return rc;
}

int pg_checkq_digest(const json_t *check, char *out, size_t outsz)
{
    if (outsz < 2 * SHA_DIGEST_LENGTH + 1)
        return PG_EINVAL;
    char *js = json_dumps(check, JSON_COMPACT | JSON_SORT_KEYS);
    if (!js)
        return PG_ENOMEM;
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)js, strlen(js), md);
    free(js);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return PG_OK;
}

int pg_checkq_put(const struct pg_checkq_item *items,
                  size_t n,
                  const char *source,
                  const char *rid,
                  enum pg_checkq_result *results,
                  char *why,
                  size_t whysz)
{
    if (n == 0)
        return PG_OK;
    if (!items || !results || !source)
        return PG_EINVAL;
    /* Validate everything before writing anything: a bad check anywhere rejects the batch. */
    struct prepared *p = calloc(n, sizeof *p);
    if (!p)
        return PG_ENOMEM;
    int rc = PG_OK;
    for (size_t i = 0; i < n && rc == PG_OK; i++) {
        char reason[200];
        if (pg_checkq_validate(items[i].loc_ref, items[i].check, p[i].gcid, sizeof p[i].gcid,
                               reason, sizeof reason) != PG_OK) {
            snprintf(why, whysz, "check %zu: %s", i, reason);
            rc = PG_EINVAL;
            break;
        }
        /* One serialisation serves both as the stored payload and as the digest input, so the
         * digest is always the SHA-1 of exactly what is stored. */
        p[i].json = json_dumps(items[i].check, JSON_COMPACT | JSON_SORT_KEYS);
        if (!p[i].json) {
            rc = PG_ENOMEM;
            break;
        }
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)p[i].json, strlen(p[i].json), md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++)
            snprintf(p[i].digest + 2 * j, 3, "%02x", md[j]);
        const char *upd = json_string_value(json_object_get(items[i].check, "lastUpdatedUTC"));
        p[i].upd = upd ? upd : "";
        p[i].busdt = check_busdt(items[i].check);
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
    for (size_t off = 0; rc == PG_OK && off < n; off += PG_CHECKQ_CHUNK) {
        size_t m = n - off < PG_CHECKQ_CHUNK ? n - off : PG_CHECKQ_CHUNK;
        rc = run_chunk(p + off, items + off, m, source, rid, now, results + off);
        if (rc != PG_OK && rc != PG_ENOMEM)
            snprintf(why, whysz, "recording checks %zu..%zu: %s", off, off + m - 1,
                     pg_strerror(rc));
    }
    for (size_t i = 0; i < n; i++)
        free(p[i].json);
    free(p);
    return rc;
}
