#include "sync/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "store/redis.h"
#include "sync/keys.h"

/*
 * The intake script. ARGV: ttl_ms, n, rid, then 7 per item: dedupe key, sfid, version (-1 =
 * none), state JSON, message id, loyalty id ("" = none), source.
 *
 * Per item: a dedupe key already set → "duplicate". Otherwise the version decides: older than or
 * equal to the state we hold → "stale" (recorded, never applied); newer → the state is replaced
 * and a job is queued. An update without a version takes Redis's clock at arrival, so it is
 * newer than anything received before it. Redis runs the script atomically and, with
 * appendfsync always, fsyncs its effects before replying.
 */
static const char ingest_lua[] =
    "local ttl, n, rid = ARGV[1], tonumber(ARGV[2]), ARGV[3]\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {}\n"
    "for i = 0, n - 1 do\n"
    "  local b = 4 + i * 7\n"
    "  local dk, sfid, ver, st = ARGV[b], ARGV[b+1], tonumber(ARGV[b+2]), ARGV[b+3]\n"
    "  local mid, lid, src = ARGV[b+4], ARGV[b+5], ARGV[b+6]\n"
    "  local ck, ak = '" PG_KEY_CUST "' .. sfid, '" PG_KEY_AUDIT "' .. sfid\n"
    "  local function audit(ev, ...)\n"
    "    redis.call('XADD', ak, 'MAXLEN', '~', " PG_STR(
        PG_AUDIT_MAXLEN) ", '*', 'event', ev,\n"
                         "      'msg', mid, 'source', src, 'rid', rid, 'ts', now, ...)\n"
                         "  end\n"
                         "  audit('received')\n"
                         "  if not redis.call('SET', dk, '1', 'NX', 'PX', ttl) then\n"
                         "    out[#out + 1] = 'duplicate'\n"
                         "    audit('duplicate')\n"
                         "  else\n"
                         "    local v = ver\n"
                         "    if v < 0 then v = now end\n"
                         "    local cur = tonumber(redis.call('HGET', ck, 'version') or '-1')\n"
                         "    if v <= cur then\n"
                         "      out[#out + 1] = 'stale'\n"
                         "      audit('skipped_stale', 'version', v, 'current', cur)\n"
                         "    else\n"
                         "      redis.call('HSET', ck, 'version', v, 'state', st, 'received_ms', "
                         "now,\n"
                         "        'status', 'pending', 'msg', mid)\n"
                         "      if lid ~= '' then redis.call('SET', '" PG_KEY_LID
                         "' .. lid, sfid) end\n"
                         "      redis.call('XADD', '" PG_KEY_QUEUE
                         "', '*', 'sfid', sfid, 'version', v, 'msg', mid,\n"
                         "        'rid', rid, 'enq_ms', now, 'attempt', 1)\n"
                         "      out[#out + 1] = 'queued'\n"
                         "      audit('queued', 'version', v)\n"
                         "    end\n"
                         "  end\n"
                         "end\n"
                         "return out\n";

const char *pg_ingest_result_name(enum pg_ingest_result r)
{
    switch (r) {
    case PG_INGEST_QUEUED:
        return "queued";
    case PG_INGEST_DUPLICATE:
        return "duplicate";
    case PG_INGEST_STALE:
        return "stale";
    }
    return "unknown";
}

int pg_ingest(const struct pg_ingest_item *items,
              size_t n,
              int64_t dedupe_ttl_ms,
              const char *rid,
              enum pg_ingest_result *results)
{
    if (n == 0)
        return PG_OK;
    size_t argc = 6 + 7 * n; /* EVAL script numkeys ttl n rid + items */
    const char **argv = calloc(argc, sizeof *argv);
    size_t *argvlen = calloc(argc, sizeof *argvlen);
    char **owned = calloc(3 * n + 2, sizeof *owned); /* strings built here, freed at the end */
    size_t nowned = 0;
    redisReply *r = NULL;
    int rc = PG_ENOMEM;
    if (!argv || !argvlen || !owned)
        goto out;
    char ttl[24], cnt[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)dedupe_ttl_ms);
    snprintf(cnt, sizeof cnt, "%zu", n);
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = ingest_lua;
    argv[a++] = "0";
    argv[a++] = ttl;
    argv[a++] = cnt;
    argv[a++] = rid ? rid : "";
    for (size_t i = 0; i < n; i++) {
        const json_t *u = items[i].update;
        char *ver = NULL, *st = json_dumps(u, JSON_COMPACT | JSON_SORT_KEYS);
        if (!st || asprintf(&ver, "%lld", (long long)items[i].version) < 0) {
            free(st);
            goto out;
        }
        owned[nowned++] = st;
        owned[nowned++] = ver;
        const char *lid = json_string_value(json_object_get(u, "loyalty_id"));
        argv[a++] = items[i].dedupe_key;
        argv[a++] = json_string_value(json_object_get(u, "salesforce_id"));
        argv[a++] = ver;
        argv[a++] = st;
        argv[a++] = items[i].msg_id ? items[i].msg_id : "";
        argv[a++] = lid ? lid : "";
        argv[a++] = items[i].source ? items[i].source : "";
    }
    for (size_t i = 0; i < argc; i++) {
        if (!argv[i]) { /* a canonical update always has a salesforce_id; be safe anyway */
            rc = PG_EINVAL;
            goto out;
        }
        argvlen[i] = strlen(argv[i]);
    }
    rc = pg_redis_command_argv(&r, (int)argc, argv, argvlen);
    if (rc)
        goto out;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        rc = PG_EPROTO;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = r->element[i]->str ? r->element[i]->str : "";
        results[i] = strcmp(s, "queued") == 0      ? PG_INGEST_QUEUED
                     : strcmp(s, "duplicate") == 0 ? PG_INGEST_DUPLICATE
                                                   : PG_INGEST_STALE;
    }
out:
    if (r)
        freeReplyObject(r);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    free(argvlen);
    return rc;
}
