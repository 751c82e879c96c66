/*
 * Operator endpoints: dead letters of the push and of the check loader (list, replay one or all;
 * drop one push letter), a customer's sync status,
 * and a customer's audit trail. All behind an admin API key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "server/util.h"
#include "store/redis.h"
#include "store/stream.h"
#include "sync/keys.h"
#include "sync/loader.h"
#include "sync/push.h"

/* ?count= with a default and a cap; PG_EINVAL for anything but a number in range. */
static int query_count(struct pg_req *req, long long def, long long *out)
{
    const char *c = pg_req_query(req, "count");
    *out = def;
    if (!c)
        return PG_OK;
    return pg_strtonum(c, 1, 1000, out);
}

static json_t *fields_json(const struct pg_store_msg *m)
{
    json_t *o = json_object();
    for (size_t i = 0; i < m->nfields; i++) {
        json_t *v = json_stringn(m->fields[i].value, m->fields[i].value_len);
        json_object_set_new(o, m->fields[i].name, v ? v : json_string("(binary)"));
    }
    return o;
}

static int redis_problem(struct pg_req *req, int rc)
{
    pg_req_add_header(req, "Retry-After", "1");
    char d[96];
    snprintf(d, sizeof d, "redis: %s", pg_strerror(rc));
    return pg_req_problem(req, 503, d, NULL);
}

/*
 * A dead-letter queue the endpoints serve: its stream, and how a letter's work is queued again.
 * requeue returns PG_OK, PG_ENOTFOUND (nothing left to redo: the letter is dropped) or an error.
 */
struct dlq {
    const char *stream;
    int (*requeue)(const struct pg_store_dead *d, const char *rid);
    const char *gone; /* the 404 detail when requeue answers PG_ENOTFOUND */
};

/* Push (Salesforce → MICROS): re-queue the customer, with an audit event. */
static int push_requeue(const struct pg_store_dead *d, const char *rid)
{
    const struct pg_store_field *f = pg_store_msg_field(&d->msg, "sfid");
    if (!f)
        return PG_EPROTO;
    int rc = pg_push_enqueue(f->value, "replay", rid);
    if (rc == PG_OK) {
        json_t *x = json_pack("{s:s}", "dead_letter", d->id);
        if (pg_push_audit(f->value, "replayed", rid, x) != PG_OK)
            pg_log(PG_LOG_WARN, rid, "admin.audit_failed", "replay not audited");
        json_decref(x);
    }
    return rc;
}

/* Checks (MICROS → Salesforce): load the check again, with the current configuration. */
static int check_requeue(const struct pg_store_dead *d, const char *rid)
{
    const struct pg_store_field *loc = pg_store_msg_field(&d->msg, "loc");
    const struct pg_store_field *gcid = pg_store_msg_field(&d->msg, "gcid");
    if (!loc || !gcid)
        return PG_EPROTO;
    int rc = pg_loader_enqueue(loc->value, gcid->value, "replay", rid);
    return rc == PG_EINVAL ? PG_EPROTO : rc;
}

static const struct dlq push_dlq = {PG_KEY_DEAD, push_requeue,
                                    "posgate holds no state for that customer any more"};
static const struct dlq check_dlq = {PG_KEY_CHK_DEAD, check_requeue,
                                     "posgate holds that check no more"};

static int dead_letters_list(struct pg_req *req, const struct dlq *q)
{
    long long count;
    if (query_count(req, 100, &count) != PG_OK)
        return pg_req_problem(req, 400, "count must be an integer in 1..1000", NULL);
    struct pg_store_dead_list l = {0};
    int rc = pg_store_dead_range(q->stream, NULL, NULL, (int)count, &l);
    if (rc)
        return redis_problem(req, rc);
    json_t *items = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const struct pg_store_dead *d = &l.items[i];
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:o}", "id", d->id,
                                        "source", d->source, "original_id", d->msg.id, "attempts",
                                        (json_int_t)d->attempts, "error", d->error, "ts_ms",
                                        (json_int_t)d->ts_ms, "job", fields_json(&d->msg)));
    }
    pg_store_dead_list_free(&l);
    return pg_req_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

int pg_hnd_dead_letters_list(struct pg_req *req)
{
    return dead_letters_list(req, &push_dlq);
}

int pg_hnd_check_dead_letters_list(struct pg_req *req)
{
    return dead_letters_list(req, &check_dlq);
}

/* Re-queue the work of one dead letter and remove the letter. */
static int replay_one(const struct dlq *q, const struct pg_store_dead *d, const char *rid)
{
    int rc = q->requeue(d, rid);
    if (rc == PG_OK || rc == PG_ENOTFOUND) {
        int del = 0;
        int drc = pg_store_dead_del(q->stream, d->id, &del);
        if (drc)
            return drc;
    }
    return rc;
}

static int dead_letter_replay(struct pg_req *req, const struct dlq *q)
{
    const char *id = pg_req_param(req, "id");
    struct pg_store_dead_list l = {0};
    int rc = pg_store_dead_range(q->stream, id, id, 1, &l);
    if (rc == PG_EPROTO || rc == PG_EINVAL)
        return pg_req_problem(req, 400, "not a dead-letter id", NULL);
    if (rc)
        return redis_problem(req, rc);
    if (l.n == 0) {
        pg_store_dead_list_free(&l);
        return pg_req_problem(req, 404, "no such dead letter", NULL);
    }
    rc = replay_one(q, &l.items[0], pg_req_id(req));
    pg_store_dead_list_free(&l);
    if (rc == PG_ENOTFOUND)
        return pg_req_problem(req, 404, q->gone, NULL);
    if (rc)
        return redis_problem(req, rc);
    return pg_req_reply_json(req, 202, json_pack("{s:[s]}", "replayed", id));
}

static int dead_letters_replay_all(struct pg_req *req, const struct dlq *q)
{
    json_t *ids = json_array();
    int rc = PG_OK;
    /* Page through the stream; replayed letters are deleted, so always read from the start. */
    for (int round = 0; round < 1000 && rc == PG_OK; round++) {
        struct pg_store_dead_list l = {0};
        rc = pg_store_dead_range(q->stream, NULL, NULL, 100, &l);
        if (rc || l.n == 0) {
            pg_store_dead_list_free(&l);
            break;
        }
        for (size_t i = 0; i < l.n && rc == PG_OK; i++) {
            rc = replay_one(q, &l.items[i], pg_req_id(req));
            if (rc == PG_OK)
                json_array_append_new(ids, json_string(l.items[i].id));
            else if (rc == PG_ENOTFOUND)
                rc = PG_OK; /* nothing left to deliver for it; the letter was dropped */
        }
        pg_store_dead_list_free(&l);
    }
    if (rc) {
        json_decref(ids);
        return redis_problem(req, rc);
    }
    return pg_req_reply_json(req, 202, json_pack("{s:o}", "replayed", ids));
}

int pg_hnd_dead_letter_drop(struct pg_req *req)
{
    int deleted = 0;
    int rc = pg_store_dead_del(PG_KEY_DEAD, pg_req_param(req, "id"), &deleted);
    if (rc == PG_EPROTO || rc == PG_EINVAL)
        return pg_req_problem(req, 400, "not a dead-letter id", NULL);
    if (rc)
        return redis_problem(req, rc);
    if (!deleted)
        return pg_req_problem(req, 404, "no such dead letter", NULL);
    return pg_req_reply(req, 204, "application/json", "", 0);
}

int pg_hnd_sync_status(struct pg_req *req)
{
    const char *sfid = pg_req_param(req, "salesforce_id");
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "HGETALL " PG_KEY_CUST "%s", sfid);
    if (rc) {
        if (r)
            freeReplyObject(r);
        return redis_problem(req, rc);
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        return pg_req_problem(req, 404, "posgate has no updates for that customer", NULL);
    }
    json_t *o = json_object();
    json_object_set_new(o, "salesforce_id", json_string(sfid));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = r->element[i]->str, *v = r->element[i + 1]->str;
        if (!k || !v)
            continue;
        long long n;
        if (strcmp(k, "state") == 0) {
            /* The synced values, minus contact details: those stay out of operator screens. */
            json_t *st = json_loads(v, 0, NULL);
            json_t *sum = json_object();
            static const char *const keep[] = {"loyalty_id", "tier", "points", "object", "source"};
            for (size_t j = 0; j < sizeof keep / sizeof keep[0]; j++)
                if (json_object_get(st, keep[j]))
                    json_object_set(sum, keep[j], json_object_get(st, keep[j]));
            json_object_set_new(o, "state", sum);
            json_decref(st);
        } else if (strcmp(k, "msg") != 0 && pg_strtonum(v, INT64_MIN, INT64_MAX, &n) == 0) {
            json_object_set_new(o, k, json_integer(n));
        } else {
            json_object_set_new(o, k, json_string(v));
        }
    }
    freeReplyObject(r);
    json_t *v = json_object_get(o, "version"), *a = json_object_get(o, "applied_version");
    json_object_set_new(o, "in_sync",
                        json_boolean(json_is_integer(v) && json_is_integer(a) &&
                                     json_integer_value(a) >= json_integer_value(v)));
    return pg_req_reply_json(req, 200, o);
}

int pg_hnd_audit(struct pg_req *req)
{
    const char *sfid = pg_req_query(req, "salesforce_id");
    const char *lid = pg_req_query(req, "loyalty_id");
    long long count;
    if ((!sfid) == (!lid))
        return pg_req_problem(req, 400, "give exactly one of salesforce_id or loyalty_id", NULL);
    if (query_count(req, 200, &count) != PG_OK)
        return pg_req_problem(req, 400, "count must be an integer in 1..1000", NULL);
    const char *p = sfid ? sfid : lid;
    if (strlen(p) > 128 || strpbrk(p, " \r\n\t"))
        return pg_req_problem(req, 400, "the id is not valid", NULL);
    char resolved[160] = "";
    if (lid) {
        redisReply *r = NULL;
        int rc = pg_redis_command(&r, "GET " PG_KEY_LID "%s", lid);
        if (rc == PG_OK && r->type == REDIS_REPLY_STRING)
            snprintf(resolved, sizeof resolved, "%s", r->str);
        if (r)
            freeReplyObject(r);
        if (rc)
            return redis_problem(req, rc);
        if (!resolved[0])
            return pg_req_problem(req, 404, "no updates seen for that loyalty id", NULL);
        sfid = resolved;
    }
    char key[256];
    snprintf(key, sizeof key, PG_KEY_AUDIT "%s", sfid);
    struct pg_store_batch b = {0};
    int rc = pg_store_stream_range(key, "-", "+", (int)count, &b);
    if (rc)
        return redis_problem(req, rc);
    json_t *events = json_array();
    for (size_t i = 0; i < b.n; i++) {
        json_t *e = fields_json(&b.msgs[i]);
        json_object_set_new(e, "id", json_string(b.msgs[i].id));
        json_array_append_new(events, e);
    }
    pg_store_batch_free(&b);
    if (json_array_size(events) == 0) {
        json_decref(events);
        return pg_req_problem(req, 404, "no audit trail for that customer", NULL);
    }
    return pg_req_reply_json(req, 200,
                             json_pack("{s:s, s:o}", "salesforce_id", sfid, "events", events));
}

/* The replay POSTs honour Idempotency-Key: a partner's retry replays the first answer. */
static int idempotent(struct pg_req *req, int (*run)(struct pg_req *))
{
    char slot[512];
    if (pg_hnd_idem_begin(req, slot, sizeof slot) != PG_OK)
        return PG_OK; /* the reply is set */
    int rc = run(req);
    if (rc < 0 && pg_req_reply_status(req) == 0) {
        /* turn the error into its reply now, so the stored reply is the one sent */
        pg_req_problem(req, pg_err_http_status(rc), pg_strerror(rc), NULL);
        rc = PG_OK;
    }
    pg_hnd_idem_finish(req, slot);
    return rc;
}

static int push_replay(struct pg_req *req)
{
    return dead_letter_replay(req, &push_dlq);
}

static int push_replay_all(struct pg_req *req)
{
    return dead_letters_replay_all(req, &push_dlq);
}

static int check_replay(struct pg_req *req)
{
    return dead_letter_replay(req, &check_dlq);
}

static int check_replay_all(struct pg_req *req)
{
    return dead_letters_replay_all(req, &check_dlq);
}

int pg_hnd_dead_letter_replay(struct pg_req *req)
{
    return idempotent(req, push_replay);
}

int pg_hnd_dead_letters_replay_all(struct pg_req *req)
{
    return idempotent(req, push_replay_all);
}

int pg_hnd_check_dead_letter_replay(struct pg_req *req)
{
    return idempotent(req, check_replay);
}

int pg_hnd_check_dead_letters_replay_all(struct pg_req *req)
{
    return idempotent(req, check_replay_all);
}
