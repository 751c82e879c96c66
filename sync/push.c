#include "sync/push.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "micros/glcrm.h"
#include "micros/webhook.h"
#include "server/httpc.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/util.h"
#include "store/lease.h"
#include "store/redis.h"
#include "store/stream.h"
#include "sync/backoff.h"
#include "sync/keys.h"
#include "sync/member.h"

/* A job whose customer is being delivered by another worker comes back after this. */
#define LOCKED_RETRY_MS 200

enum outcome { OUT_DELIVERED, OUT_RETRIED, OUT_DEAD, OUT_SKIPPED, OUT_DEFERRED, OUT_N };
static const char *const outcome_names[OUT_N] = {"delivered", "retried", "dead_lettered", "skipped",
                                                 "deferred"};

struct worker {
    struct pg_push *pool;
    pthread_t thread;
    int index;
    char consumer[96];
};

struct pg_push {
    const struct pg_config *cfg;
    struct pg_lease_set leases; /* the customer leases (store/lease.h: why a set) */
    atomic_int stopping;
    int nworkers;
    struct worker *workers;
};

/* Process-wide delivery statistics for /metrics. */
static atomic_ullong outcome_count[OUT_N];
static const double lat_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,  5,     10,   30,  60};
#define NLAT (sizeof lat_buckets / sizeof lat_buckets[0])
static atomic_ullong lat_bucket[NLAT + 1];
static atomic_ullong lat_count;
static atomic_ullong lat_sum_ms;
static pthread_once_t collector_once = PTHREAD_ONCE_INIT;

/* A delivery attempt's result. */
struct delivery {
    enum { D_OK, D_RETRY, D_FAIL } kind;
    char error[320];
    int retry_after_s;
};

/* ---------------------------------------------------------------- Redis helpers */

int pg_push_audit(const char *sfid, const char *event, const char *rid, const json_t *extra)
{
    const char *argv[40];
    size_t argvlen[40];
    char key[256], ts[32], maxlen[16];
    int n = 0;
    snprintf(key, sizeof key, PG_KEY_AUDIT "%s", sfid);
    snprintf(ts, sizeof ts, "%lld", (long long)pg_wall_ms());
    snprintf(maxlen, sizeof maxlen, "%d", PG_AUDIT_MAXLEN);
    argv[n++] = "XADD";
    argv[n++] = key;
    argv[n++] = "MAXLEN";
    argv[n++] = "~";
    argv[n++] = maxlen;
    argv[n++] = "*";
    argv[n++] = "event";
    argv[n++] = event;
    argv[n++] = "rid";
    argv[n++] = rid ? rid : "";
    argv[n++] = "ts";
    argv[n++] = ts;
    char nums[12][32];
    int ni = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)extra, k, v)
    {
        if (n + 2 > 40 || ni >= 12)
            break;
        if (json_is_string(v)) {
            argv[n++] = k;
            argv[n++] = json_string_value(v);
        } else if (json_is_integer(v)) {
            snprintf(nums[ni], sizeof nums[ni], "%lld", (long long)json_integer_value(v));
            argv[n++] = k;
            argv[n++] = nums[ni++];
        } else if (json_is_real(v)) {
            snprintf(nums[ni], sizeof nums[ni], "%.3f", json_real_value(v));
            argv[n++] = k;
            argv[n++] = nums[ni++];
        }
    }
    for (int i = 0; i < n; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *r = NULL;
    int rc = pg_redis_command_argv(&r, n, argv, argvlen);
    if (r)
        freeReplyObject(r);
    return rc;
}

/* Audit with the common fields of a job. Best effort: an audit failure never fails a delivery. */
static void audit_job(const char *sfid,
                      const char *event,
                      const char *rid,
                      const char *msg,
                      int attempt,
                      const char *error,
                      int64_t extra_ms,
                      const char *extra_name)
{
    json_t *x = json_object();
    json_object_set_new(x, "msg", json_string(msg ? msg : ""));
    json_object_set_new(x, "attempt", json_integer(attempt));
    if (error && *error)
        json_object_set_new(x, "error", json_string(error));
    if (extra_name)
        json_object_set_new(x, extra_name, json_integer(extra_ms));
    if (pg_push_audit(sfid, event, rid, x) != PG_OK)
        pg_log(PG_LOG_WARN, rid, "push.audit_failed", "could not append %s for a customer", event);
    json_decref(x);
}

/* ---------------------------------------------------------------- scripts */

/* Move due retries back into the queue, atomically per job. */
static const char promote_lua[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)\n"
    "for _, m in ipairs(due) do\n"
    "  local j = cjson.decode(m)\n"
    "  redis.call('XADD', KEYS[2], '*', 'sfid', j.sfid, 'version', j.version, 'msg', j.msg,\n"
    "    'rid', j.rid, 'enq_ms', j.enq_ms, 'attempt', j.attempt)\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

/* Record a successful delivery of version ARGV[1]; never move applied_version backwards. */
static const char applied_lua[] =
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'applied_version') or '-1')\n"
    "local v = tonumber(ARGV[1])\n"
    "if v > cur then\n"
    "  redis.call('HSET', KEYS[1], 'applied_version', ARGV[1], 'applied_ms', ARGV[2])\n"
    "end\n"
    "local newest = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')\n"
    "local applied = math.max(v, cur)\n"
    "redis.call('HSET', KEYS[1], 'status', applied >= newest and 'delivered' or 'pending',\n"
    "  'last_error', '', 'attempts', 0)\n"
    "return applied\n";

static int eval(redisReply **r, const char *script, int nkeys, const char *const *args, int nargs)
{
    const char *argv[16];
    size_t argvlen[16];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    int n = 0;
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (int i = 0; i < nargs && n < 16; i++)
        argv[n++] = args[i];
    for (int i = 0; i < n; i++)
        argvlen[i] = strlen(argv[i]);
    return pg_redis_command_argv(r, n, argv, argvlen);
}

/* ---------------------------------------------------------------- delivery targets */

/* The G&L column values of a state, as the push.gl.columns map says. */
static size_t gl_columns(const struct pg_config *cfg,
                         const json_t *state,
                         struct pg_gl_col *cols,
                         char vals[][64],
                         size_t max)
{
    size_t n = 0;
    const char *canon;
    json_t *col;
    json_object_foreach(cfg->gl_columns, canon, col)
    {
        if (n >= max || !json_is_string(col))
            break;
        const json_t *v;
        if (strncmp(canon, "preferences.", 12) == 0)
            v = json_object_get(json_object_get(state, "preferences"), canon + 12);
        else
            v = json_object_get(state, canon);
        const char *s = NULL;
        if (json_is_string(v)) {
            s = json_string_value(v);
            /* The SOAP API writes Salesforce number fields as doubles ("5400.0"); MICROS numeric
             * columns take the integer when the fraction is zero. */
            size_t len = strlen(s), dot = strspn(s, "-0123456789");
            if (dot > 0 && dot < len && s[dot] == '.' && dot < 63 &&
                strspn(s + dot + 1, "0") == len - dot - 1) {
                snprintf(vals[n], 64, "%.*s", (int)dot, s);
                s = vals[n];
            }
        } else if (json_is_integer(v)) {
            snprintf(vals[n], 64, "%lld", (long long)json_integer_value(v));
            s = vals[n];
        } else if (json_is_real(v)) {
            snprintf(vals[n], 64, "%.2f", json_real_value(v));
            s = vals[n];
        } else if (json_is_boolean(v)) {
            s = json_is_true(v) ? "true" : "false";
        }
        cols[n].name = json_string_value(col);
        cols[n].value = s; /* NULL (empty) clears the column: Salesforce has no value */
        n++;
    }
    return n;
}

static void
from_gl(struct delivery *d, enum pg_gl_outcome o, const struct pg_gl_result *res, const char *what)
{
    d->kind = o == PG_GL_OK ? D_OK : o == PG_GL_RETRY ? D_RETRY : D_FAIL;
    d->retry_after_s = res->retry_after_s;
    if (o != PG_GL_OK)
        snprintf(d->error, sizeof d->error, "%s: %s%s%s%s%s", what,
                 res->response_code ? (char[]){res->response_code, 0} : "",
                 res->host_code[0] ? " hostCode " : "", res->host_code,
                 res->response_code || res->host_code[0] ? " " : "", res->message);
}

static void deliver_gl(const struct pg_config *cfg,
                       const char *sfid,
                       const json_t *state,
                       const char *cached_row,
                       struct delivery *d)
{
    struct pg_gl_config gc = {
        .url = cfg->gl_url,
        .logon = cfg->gl_logon,
        .password = cfg->gl_password,
        .request_source = cfg->gl_request_source,
        .connect_timeout_ms = cfg->gl_connect_timeout_ms,
        .timeout_ms = cfg->gl_timeout_ms,
    };
    const char *const *retryable = (const char *const *)cfg->gl_retryable_host_codes;
    const char *lid = json_string_value(json_object_get(state, "loyalty_id"));
    struct pg_gl_result res = {0};
    struct pg_buf msg;
    pg_buf_init(&msg, 256 * 1024);
    struct pg_gl_col cols[32];
    char vals[32][64];
    size_t ncols = gl_columns(cfg, state, cols, vals, 32);
    char row[32] = "";
    if (!lid || !*lid) {
        d->kind = D_FAIL;
        snprintf(d->error, sizeof d->error,
                 "no loyalty id: the MICROS customer (primaryposref) cannot be addressed");
        goto out;
    }
    if (cached_row && *cached_row) {
        snprintf(row, sizeof row, "%s", cached_row);
    } else {
        /* Find the customer's row by its card / account number. */
        const char *want[] = {"primaryposref"};
        if (pg_gl_build_get_customer(&msg, cfg->gl_request_source, lid, want, 1) != PG_OK) {
            d->kind = D_FAIL;
            snprintf(d->error, sizeof d->error, "GetCustomer: loyalty id not encodable");
            goto out;
        }
        enum pg_gl_outcome o = pg_gl_call(&gc, msg.data, retryable, &res);
        if (o != PG_GL_OK) {
            from_gl(d, o, &res, "GetCustomer");
            goto out;
        }
        if (res.rows == 0) {
            if (!cfg->gl_create_missing) {
                d->kind = D_FAIL;
                snprintf(d->error, sizeof d->error,
                         "GetCustomer: no MICROS customer with primaryposref %s", lid);
                goto out;
            }
            pg_buf_reset(&msg);
            pg_gl_result_free(&res);
            if (pg_gl_build_set_customer(&msg, cfg->gl_request_source, NULL, lid, cols, ncols) !=
                PG_OK) {
                d->kind = D_FAIL;
                snprintf(d->error, sizeof d->error, "SetCustomer (create): values not encodable");
                goto out;
            }
            o = pg_gl_call(&gc, msg.data, retryable, &res);
            from_gl(d, o, &res, "SetCustomer (create)");
            if (o == PG_GL_OK && res.row_id[0])
                snprintf(row, sizeof row, "%s", res.row_id);
            goto remember;
        }
        snprintf(row, sizeof row, "%s", res.row_id);
        pg_gl_result_free(&res);
    }
    pg_buf_reset(&msg);
    if (ncols == 0 ||
        pg_gl_build_set_customer(&msg, cfg->gl_request_source, row, NULL, cols, ncols) != PG_OK) {
        d->kind = D_FAIL;
        snprintf(d->error, sizeof d->error,
                 "SetCustomer: nothing to write or values not encodable");
        goto out;
    }
    from_gl(d, pg_gl_call(&gc, msg.data, retryable, &res), &res, "SetCustomer");
    if (d->kind == D_FAIL && cached_row && *cached_row)
        row[0] = '\0'; /* the cached row may be gone: look it up again next time */
remember:
    if (row[0] || (cached_row && *cached_row && !row[0])) {
        redisReply *r = NULL;
        int rc = row[0] ? pg_redis_command(&r, "HSET " PG_KEY_CUST "%s gl_row %s", sfid, row)
                        : pg_redis_command(&r, "HDEL " PG_KEY_CUST "%s gl_row", sfid);
        if (r)
            freeReplyObject(r);
        (void)rc; /* a lost cache of the row id only costs a GetCustomer next time */
    }
out:
    pg_gl_result_free(&res);
    pg_buf_free(&msg);
}

static void deliver_webhook(const struct pg_config *cfg,
                            const char *sfid,
                            int64_t version,
                            const json_t *state,
                            struct delivery *d)
{
    struct pg_webhook_config wc = {
        .url = cfg->webhook_url,
        .secret = cfg->webhook_secret,
        .connect_timeout_ms = cfg->webhook_connect_timeout_ms,
        .timeout_ms = cfg->webhook_timeout_ms,
    };
    /* The message id names the customer and version: a receiver dedupes on it. */
    char id[160];
    snprintf(id, sizeof id, "%s-%lld", sfid, (long long)version);
    /* The payload shape Standard Webhooks recommends: type, timestamp, data. */
    char ts[40];
    pg_wall_iso8601(ts, sizeof ts);
    json_t *body =
        json_pack("{s:s, s:s, s:O}", "type", "customer.updated", "timestamp", ts, "data", state);
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        d->kind = D_RETRY;
        snprintf(d->error, sizeof d->error, "out of memory");
        return;
    }
    long status = 0;
    int o = pg_webhook_send(&wc, id, s, strlen(s), &status, &d->retry_after_s, d->error,
                            sizeof d->error);
    free(s);
    d->kind = o == PG_WEBHOOK_OK ? D_OK : o == PG_WEBHOOK_RETRY ? D_RETRY : D_FAIL;
}

/* ---------------------------------------------------------------- one job */

static const char *field(const struct pg_store_msg *m, const char *name)
{
    const struct pg_store_field *f = pg_store_msg_field(m, name);
    return f ? f->value : NULL;
}

static void count(enum outcome o)
{
    atomic_fetch_add(&outcome_count[o], 1);
}

static void observe_latency(int64_t ms)
{
    double s = (double)ms / 1000.0;
    size_t i = 0;
    while (i < NLAT && s > lat_buckets[i])
        i++;
    atomic_fetch_add(&lat_bucket[i], 1);
    atomic_fetch_add(&lat_count, 1);
    atomic_fetch_add(&lat_sum_ms, (unsigned long long)(ms > 0 ? ms : 0));
}

/* Put a job back for later (backoff or lease contention). */
static int schedule(const char *sfid,
                    const char *version,
                    const char *msg,
                    const char *rid,
                    const char *enq_ms,
                    int attempt,
                    int64_t delay_ms)
{
    char nonce[33];
    if (pg_random_hex_id(nonce, sizeof nonce) != 0)
        snprintf(nonce, sizeof nonce, "%lld", (long long)pg_now_us());
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "sfid", sfid, "version",
                          version ? version : "0", "msg", msg ? msg : "", "rid", rid ? rid : "",
                          "enq_ms", enq_ms ? enq_ms : "0", "attempt", attempt, "n", nonce);
    char *member = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!member)
        return PG_ENOMEM;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "ZADD " PG_KEY_RETRY " %lld %s",
                              (long long)(pg_wall_ms() + delay_ms), member);
    if (r)
        freeReplyObject(r);
    free(member);
    return rc;
}

/* Acknowledge and delete: delivered entries leave the stream, which so stays the backlog. */
static void finish(const struct pg_store_msg *m)
{
    const char *ids[] = {m->id};
    long long acked = 0;
    if (pg_store_queue_ack(PG_KEY_QUEUE, PG_KEY_GROUP, ids, 1, &acked) == PG_OK) {
        redisReply *r = NULL;
        if (pg_redis_command(&r, "XDEL " PG_KEY_QUEUE " %s", m->id) == PG_OK && r)
            freeReplyObject(r);
        else if (r)
            freeReplyObject(r);
    }
}

/* Write-through: the lookup cache sees the new state at once (sync/member.h). Best effort: a
 * failure only means the next lookup reads Salesforce. */
static void write_through(const struct pg_config *cfg, const json_t *js, const char *rid)
{
    if (pg_member_put(js, cfg->lookup_default_country,
                      (int64_t)cfg->lookup_stale_max_age_s * 1000) != PG_OK)
        pg_log(PG_LOG_WARN, rid, "push.write_through_failed", "lookup cache not refreshed");
}

static void process(struct worker *w, const struct pg_store_msg *m)
{
    const struct pg_config *cfg = w->pool->cfg;
    const char *sfid = field(m, "sfid");
    const char *msg = field(m, "msg");
    const char *rid = field(m, "rid");
    const char *enq = field(m, "enq_ms");
    long long attempt = 1;
    if (!field(m, "attempt") || pg_strtonum(field(m, "attempt"), 1, 1000000, &attempt) != 0)
        attempt = 1;
    if (!sfid || !*sfid) {
        pg_log(PG_LOG_ERROR, rid, "push.bad_job", "queue entry %s has no sfid; dropped", m->id);
        finish(m);
        return;
    }

    /* The delivery lease: one worker per customer at a time, across processes. */
    char lock[256];
    snprintf(lock, sizeof lock, PG_KEY_LOCK "%s", sfid);
    redisReply *r = NULL;
    int got = 0;
    int rc = pg_lease_take(&w->pool->leases, lock, w->consumer, cfg->push_lock_ms, &got);
    if (rc != PG_OK) {
        /* Redis trouble: leave it pending; it will be read again or reclaimed */
        pg_lease_release(&w->pool->leases, lock, w->consumer, 0);
        return;
    }
    if (!got) {
        if (schedule(sfid, field(m, "version"), msg, rid, enq, (int)attempt, LOCKED_RETRY_MS) ==
            PG_OK) {
            count(OUT_DEFERRED);
            finish(m);
        }
        pg_lease_release(&w->pool->leases, lock, w->consumer, 0);
        return;
    }

    r = NULL;
    rc = pg_redis_command(&r, "HMGET " PG_KEY_CUST "%s version state applied_version gl_row", sfid);
    if (rc != PG_OK || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        if (r)
            freeReplyObject(r);
        goto unlock; /* stays pending: retried by reclaim */
    }
    long long version = -1, applied = -1;
    if (r->element[0]->str && pg_strtonum(r->element[0]->str, -1, INT64_MAX, &version) != 0)
        version = -1;
    if (r->element[2]->str && pg_strtonum(r->element[2]->str, -1, INT64_MAX, &applied) != 0)
        applied = -1;
    char *state = r->element[1]->str ? strdup(r->element[1]->str) : NULL;
    char *row = r->element[3]->str ? strdup(r->element[3]->str) : NULL;
    freeReplyObject(r);

    if (!state || version <= applied) {
        /* A version at least this new is already in MICROS (delivered by an earlier job). */
        audit_job(sfid, "skipped_stale", rid, msg, (int)attempt, NULL, applied, "applied_version");
        count(OUT_SKIPPED);
        finish(m);
        goto done;
    }

    json_t *js = json_loads(state, 0, NULL);
    struct delivery d = {.kind = D_FAIL, .retry_after_s = -1};
    int64_t t0 = pg_now_ms();
    if (!js)
        snprintf(d.error, sizeof d.error, "stored state is not JSON");
    else if (strcmp(cfg->push_target, "webhook") == 0)
        deliver_webhook(cfg, sfid, version, js, &d);
    else
        deliver_gl(cfg, sfid, js, row, &d);
    int64_t took = pg_now_ms() - t0;

    if (d.kind == D_OK) {
        char v[32], now[32];
        snprintf(v, sizeof v, "%lld", version);
        snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
        char key[256];
        snprintf(key, sizeof key, PG_KEY_CUST "%s", sfid);
        const char *args[] = {key, v, now};
        redisReply *ar = NULL;
        if (eval(&ar, applied_lua, 1, args, 3) != PG_OK)
            pg_log(PG_LOG_WARN, rid, "push.applied_not_recorded",
                   "delivered but could not record it; a retry may deliver the same state again");
        if (ar)
            freeReplyObject(ar);
        write_through(cfg, js, rid);
        long long enq_ms = 0;
        if (enq && pg_strtonum(enq, 0, INT64_MAX, &enq_ms) == 0)
            observe_latency(pg_wall_ms() - enq_ms);
        audit_job(sfid, "delivered", rid, msg, (int)attempt, NULL, took, "took_ms");
        count(OUT_DELIVERED);
        finish(m);
    } else if (d.kind == D_RETRY && attempt < cfg->push_max_attempts) {
        uint64_t rnd = 0;
        if (pg_random_bytes(&rnd, sizeof rnd) != 0)
            rnd = (uint64_t)pg_now_us();
        int64_t delay = pg_backoff_ms((int)attempt, cfg->push_retry_base_ms, cfg->push_retry_cap_ms,
                                      rnd, d.retry_after_s);
        if (schedule(sfid, field(m, "version"), msg, rid, enq, (int)attempt + 1, delay) == PG_OK) {
            redisReply *hr = NULL;
            if (pg_redis_command(
                    &hr, "HSET " PG_KEY_CUST "%s status retrying last_error %s attempts %lld", sfid,
                    d.error, attempt) == PG_OK &&
                hr)
                freeReplyObject(hr);
            else if (hr)
                freeReplyObject(hr);
            audit_job(sfid, "retried", rid, msg, (int)attempt, d.error, delay, "next_in_ms");
            count(OUT_RETRIED);
            finish(m);
        }
        pg_log(PG_LOG_WARN, rid, "push.retry", "attempt %lld failed (%s); next in %lld ms", attempt,
               d.error, (long long)delay);
    } else {
        char id[64];
        if (pg_store_dead_add(PG_KEY_DEAD, PG_KEY_QUEUE, m, attempt, d.error, 0, id) == PG_OK) {
            redisReply *hr = NULL;
            if (pg_redis_command(&hr,
                                 "HSET " PG_KEY_CUST "%s status dead last_error %s attempts %lld",
                                 sfid, d.error, attempt) == PG_OK &&
                hr)
                freeReplyObject(hr);
            else if (hr)
                freeReplyObject(hr);
            audit_job(sfid, "dead_lettered", rid, msg, (int)attempt, d.error, 0, NULL);
            count(OUT_DEAD);
            finish(m);
        }
        pg_log(PG_LOG_ERROR, rid, "push.dead_letter", "giving up after attempt %lld: %s", attempt,
               d.error);
    }
    json_decref(js);
done:
    free(state);
    free(row);
unlock:
    pg_lease_release(&w->pool->leases, lock, w->consumer, 1);
}

/* ---------------------------------------------------------------- worker loop */

static void promote_due(void)
{
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
    const char *args[] = {PG_KEY_RETRY, PG_KEY_QUEUE, now};
    redisReply *r = NULL;
    if (eval(&r, promote_lua, 2, args, 3) == PG_OK && r)
        freeReplyObject(r);
    else if (r)
        freeReplyObject(r);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pg_push *p = w->pool;
    pg_thread_name("pg-push");
    int64_t next_reclaim = 0;
    int group_ok = 0;
    while (!atomic_load(&p->stopping)) {
        if (!group_ok) {
            /* from_start: jobs queued before the group existed are still delivered */
            if (pg_store_queue_group_ensure(PG_KEY_QUEUE, PG_KEY_GROUP, 1) != PG_OK) {
                pg_sleep_ms(200);
                continue;
            }
            group_ok = 1;
        }
        promote_due();
        struct pg_store_batch b = {0};
        if (pg_now_ms() >= next_reclaim) {
            /* Look for abandoned entries a few times per idle period. */
            next_reclaim = pg_now_ms() + (p->cfg->push_reclaim_idle_ms + 3) / 4;
            if (pg_store_queue_reclaim(PG_KEY_QUEUE, PG_KEY_GROUP, w->consumer,
                                       p->cfg->push_reclaim_idle_ms, 16, &b) == PG_OK) {
                for (size_t i = 0; i < b.n && !atomic_load(&p->stopping); i++) {
                    pg_log(PG_LOG_INFO, field(&b.msgs[i], "rid"), "push.reclaimed",
                           "entry %s idle too long; delivery %lld", b.msgs[i].id,
                           b.msgs[i].deliveries);
                    process(w, &b.msgs[i]);
                }
            }
            pg_store_batch_free(&b);
        }
        int rc = pg_store_queue_read(PG_KEY_QUEUE, PG_KEY_GROUP, w->consumer, 16, 250, &b);
        if (rc != PG_OK) {
            pg_store_batch_free(&b);
            pg_sleep_ms(100); /* Redis down: the connection layer backs off, so do we */
            continue;
        }
        for (size_t i = 0; i < b.n; i++)
            process(w, &b.msgs[i]); /* finish a batch even when stopping: it is ours now */
        pg_store_batch_free(&b);
    }
    pg_httpc_thread_cleanup();
    return NULL;
}

/* ---------------------------------------------------------------- metrics */

static long long redis_int(const char *fmt, const char *arg)
{
    redisReply *r = NULL;
    long long v = -1;
    if (pg_redis_command(&r, fmt, arg) == PG_OK && r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    if (r)
        freeReplyObject(r);
    return v;
}

/* Age of the oldest job still in the queue: entries leave the stream once handled, so the
 * first entry is the oldest one not yet done. Its id starts with its Redis time in ms. */
static double oldest_age_s(void)
{
    redisReply *r = NULL;
    double age = 0;
    if (pg_redis_command(&r, "XRANGE " PG_KEY_QUEUE " - + COUNT 1") == PG_OK && r &&
        r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->element[0]->str) {
        long long ms = atoll(r->element[0]->element[0]->str);
        age = (double)(pg_wall_ms() - ms) / 1000.0;
        if (age < 0)
            age = 0;
    }
    if (r)
        freeReplyObject(r);
    return age;
}

static int collect(struct pg_buf *out)
{
    int rc = pg_buf_puts(out, "# HELP posgate_push_deliveries_total Push jobs handled by this "
                              "process, by outcome.\n"
                              "# TYPE posgate_push_deliveries_total counter\n");
    for (int i = 0; i < OUT_N && !rc; i++)
        rc = pg_buf_printf(out, "posgate_push_deliveries_total{outcome=\"%s\"} %llu\n",
                           outcome_names[i], atomic_load(&outcome_count[i]));
    if (!rc)
        rc = pg_buf_puts(out, "# HELP posgate_push_delivery_latency_seconds From durable intake "
                              "to delivery in MICROS.\n"
                              "# TYPE posgate_push_delivery_latency_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i < NLAT && !rc; i++) {
        cum += atomic_load(&lat_bucket[i]);
        rc = pg_buf_printf(out, "posgate_push_delivery_latency_seconds_bucket{le=\"%g\"} %llu\n",
                           lat_buckets[i], cum);
    }
    if (!rc)
        rc = pg_buf_printf(out,
                           "posgate_push_delivery_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
                           "posgate_push_delivery_latency_seconds_sum %.3f\n"
                           "posgate_push_delivery_latency_seconds_count %llu\n",
                           atomic_load(&lat_count), (double)atomic_load(&lat_sum_ms) / 1000.0,
                           atomic_load(&lat_count));
    /* Shared state (all processes): -1 when Redis cannot say. */
    if (!rc)
        rc = pg_buf_printf(
            out,
            "# HELP posgate_push_queue_depth Jobs waiting in the queue (new or in progress).\n"
            "# TYPE posgate_push_queue_depth gauge\n"
            "posgate_push_queue_depth %lld\n"
            "# HELP posgate_push_retry_scheduled Jobs waiting for their retry backoff.\n"
            "# TYPE posgate_push_retry_scheduled gauge\n"
            "posgate_push_retry_scheduled %lld\n"
            "# HELP posgate_push_dead_letters Jobs in the dead-letter stream.\n"
            "# TYPE posgate_push_dead_letters gauge\n"
            "posgate_push_dead_letters %lld\n"
            "# HELP posgate_push_oldest_pending_age_seconds Age of the oldest queued job.\n"
            "# TYPE posgate_push_oldest_pending_age_seconds gauge\n"
            "posgate_push_oldest_pending_age_seconds %.3f\n",
            redis_int("XLEN %s", PG_KEY_QUEUE), redis_int("ZCARD %s", PG_KEY_RETRY),
            redis_int("XLEN %s", PG_KEY_DEAD), oldest_age_s());
    return rc;
}

static void register_collector(void)
{
    if (pg_metrics_register(collect) != PG_OK)
        pg_log(PG_LOG_WARN, NULL, "push.metrics", "metrics collector table full");
}

/* ---------------------------------------------------------------- lifecycle */

int pg_push_start(const struct pg_config *cfg, struct pg_push **out)
{
    *out = NULL;
    pthread_once(&collector_once, register_collector);
    struct pg_push *p = calloc(1, sizeof *p);
    if (!p)
        return PG_ENOMEM;
    p->cfg = cfg;
    char host[64] = "host", prefix[96];
    gethostname(host, sizeof host - 1);
    snprintf(prefix, sizeof prefix, "%s-%ld-", host, (long)getpid());
    p->workers = calloc((size_t)cfg->push_workers, sizeof *p->workers);
    if (!p->workers || pg_lease_set_init(&p->leases, prefix) != PG_OK) {
        free(p->workers);
        free(p);
        return PG_ENOMEM;
    }
    for (int i = 0; i < cfg->push_workers; i++) {
        struct worker *w = &p->workers[i];
        w->pool = p;
        w->index = i;
        /* Consumer names are unique per process and thread; entries a dead process held are
         * reclaimed by idle time, whatever their consumer was called. */
        snprintf(w->consumer, sizeof w->consumer, "%s-%ld-%d", host, (long)getpid(), i);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pg_push_stop(p);
            return PG_ENOMEM;
        }
        p->nworkers++;
    }
    pg_log(PG_LOG_INFO, NULL, "push.started", "%d workers delivering to %s", p->nworkers,
           cfg->push_target);
    *out = p;
    return PG_OK;
}

void pg_push_stop(struct pg_push *p)
{
    if (!p)
        return;
    atomic_store(&p->stopping, 1);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
    pg_lease_set_free(&p->leases);
    free(p);
}

int pg_push_enqueue(const char *sfid, const char *why, const char *rid)
{
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "HGET " PG_KEY_CUST "%s version", sfid);
    if (rc != PG_OK) {
        if (r)
            freeReplyObject(r);
        return rc;
    }
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return PG_ENOTFOUND;
    }
    char version[32];
    snprintf(version, sizeof version, "%s", r->str);
    freeReplyObject(r);
    r = NULL;
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)pg_wall_ms());
    /* Replaying means "deliver the newest state again": clear applied_version's claim by
     * queueing with the current version; the worker delivers when applied < version. */
    rc = pg_redis_command(&r, "HSET " PG_KEY_CUST "%s applied_version -1 status pending", sfid);
    if (r)
        freeReplyObject(r);
    r = NULL;
    if (rc == PG_OK)
        rc = pg_redis_command(&r,
                              "XADD " PG_KEY_QUEUE " * sfid %s version %s msg %s rid %s "
                              "enq_ms %s attempt 1",
                              sfid, version, why, rid ? rid : "", now);
    if (r)
        freeReplyObject(r);
    return rc;
}
