#include "store/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/util.h"
#include "store/redis.h"

/* ---- argument vectors ---- */

struct args {
    int n, cap, overflow;
    const char **v; /* borrowed strings */
    size_t *l;
};

static int args_init(struct args *a, size_t cap)
{
    a->n = a->overflow = 0;
    a->cap = (int)cap;
    a->v = calloc(cap, sizeof *a->v);
    a->l = calloc(cap, sizeof *a->l);
    if (cap > 1000000 || !a->v || !a->l) {
        free(a->v);
        free(a->l);
        a->v = NULL;
        a->l = NULL;
        return PG_ENOMEM;
    }
    return PG_OK;
}

static void args_push(struct args *a, const void *p, size_t len)
{
    if (a->n < a->cap) {
        a->v[a->n] = p;
        a->l[a->n++] = len;
    } else {
        a->overflow = 1; /* callers size cap exactly: this is a bug, reported by args_run */
    }
}

static void args_str(struct args *a, const char *s)
{
    args_push(a, s, strlen(s));
}

static void args_free(struct args *a)
{
    free(a->v);
    free(a->l);
    a->v = NULL;
    a->l = NULL;
}

static int args_run(struct args *a, int timeout_ms, redisReply **out)
{
    int rc = a->overflow      ? PG_EINVAL
             : timeout_ms > 0 ? pg_redis_command_argv_timeout(out, timeout_ms, a->n, a->v, a->l)
                              : pg_redis_command_argv(out, a->n, a->v, a->l);
    args_free(a);
    return rc;
}

static int valid_name(const char *s)
{
    return s && *s;
}

/* ---- reply to messages ---- */

static void msg_free(struct pg_store_msg *m)
{
    for (size_t j = 0; j < m->nfields; j++) {
        free(m->fields[j].name);
        free(m->fields[j].value);
    }
    free(m->fields);
    m->fields = NULL;
    m->nfields = 0;
}

void pg_store_batch_free(struct pg_store_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        msg_free(&b->msgs[i]);
    free(b->msgs);
    b->n = 0;
    b->msgs = NULL;
}

const struct pg_store_field *pg_store_msg_field(const struct pg_store_msg *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < m->nfields; i++)
        if (m->fields[i].name_len == n && !memcmp(m->fields[i].name, name, n))
            return &m->fields[i];
    return NULL;
}

static char *dup_bytes(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/*
 * Append entries ([id, [f, v, ...]] each) to b. Entries whose fields are nil (deleted while
 * pending) are skipped. deliveries is set on every new message.
 */
static int append_entries(struct pg_store_batch *b, const redisReply *arr, long long deliveries)
{
    if (!arr || arr->type == REDIS_REPLY_NIL)
        return PG_OK;
    if (arr->type != REDIS_REPLY_ARRAY)
        return PG_EPROTO;
    if (arr->elements == 0)
        return PG_OK; /* an empty batch owns nothing */
    struct pg_store_msg *nm = realloc(b->msgs, (b->n + arr->elements + 1) * sizeof *nm);
    if (!nm)
        return PG_ENOMEM;
    b->msgs = nm;
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        if (!e || e->type == REDIS_REPLY_NIL)
            continue;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
            e->element[0]->len >= PG_STORE_ID_MAX)
            return PG_EPROTO;
        const redisReply *f = e->element[1];
        if (f->type == REDIS_REPLY_NIL)
            continue;
        if (f->type != REDIS_REPLY_ARRAY || f->elements % 2)
            return PG_EPROTO;
        struct pg_store_msg *m = &b->msgs[b->n];
        memset(m, 0, sizeof *m);
        memcpy(m->id, e->element[0]->str, e->element[0]->len);
        m->deliveries = deliveries;
        b->n++; /* counted now so a failure below is freed with the batch */
        if (f->elements && !(m->fields = calloc(f->elements / 2, sizeof *m->fields)))
            return PG_ENOMEM;
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            const redisReply *k = f->element[j], *v = f->element[j + 1];
            if (!is_str(k) || !is_str(v))
                return PG_EPROTO;
            struct pg_store_field *fd = &m->fields[m->nfields];
            fd->name = dup_bytes(k->str, k->len);
            fd->value = dup_bytes(v->str, v->len);
            m->nfields++;
            if (!fd->name || !fd->value)
                return PG_ENOMEM;
            fd->name_len = k->len;
            fd->value_len = v->len;
        }
    }
    if (b->n == 0) { /* every entry was skipped */
        free(b->msgs);
        b->msgs = NULL;
    }
    return PG_OK;
}

static int copy_id(const redisReply *r, char *id_out)
{
    if (!is_str(r) || r->len >= PG_STORE_ID_MAX)
        return PG_EPROTO;
    if (id_out) {
        memcpy(id_out, r->str, r->len);
        id_out[r->len] = '\0';
    }
    return PG_OK;
}

/* ---- queue ---- */

static int xadd(const char *stream,
                long long maxlen,
                const struct pg_store_kv *meta,
                size_t nmeta,
                const struct pg_store_kv *fields,
                size_t nfields,
                const char *prefix,
                char *id_out)
{
    if (!valid_name(stream) || (nmeta + nfields) == 0 || (nfields && !fields))
        return PG_EINVAL;
    struct args a;
    if (args_init(&a, 6 + 2 * (nmeta + nfields)))
        return PG_ENOMEM;
    /* Prefixed names ("f." + name) live in one block freed after the command. */
    size_t plen = prefix ? strlen(prefix) : 0, total = 0;
    for (size_t i = 0; prefix && i < nfields; i++)
        total += plen + strlen(fields[i].name);
    char *names = total ? malloc(total) : NULL;
    if (total && !names) {
        args_free(&a);
        return PG_ENOMEM;
    }
    char ml[24];
    args_str(&a, "XADD");
    args_str(&a, stream);
    if (maxlen > 0) {
        snprintf(ml, sizeof ml, "%lld", maxlen);
        args_str(&a, "MAXLEN");
        args_str(&a, "~");
        args_str(&a, ml);
    }
    args_str(&a, "*");
    for (size_t i = 0; i < nmeta; i++) {
        args_str(&a, meta[i].name);
        args_push(&a, meta[i].value ? meta[i].value : "", meta[i].value_len);
    }
    char *np = names;
    int rc = PG_OK;
    for (size_t i = 0; i < nfields; i++) {
        if (!valid_name(fields[i].name) || (!fields[i].value && fields[i].value_len))
            rc = PG_EINVAL;
        if (rc)
            break;
        size_t nl = strlen(fields[i].name);
        if (prefix) {
            memcpy(np, prefix, plen);
            memcpy(np + plen, fields[i].name, nl);
            args_push(&a, np, plen + nl);
            np += plen + nl;
        } else {
            args_push(&a, fields[i].name, nl);
        }
        args_push(&a, fields[i].value ? fields[i].value : "", fields[i].value_len);
    }
    redisReply *r = NULL;
    if (rc) {
        args_free(&a);
    } else {
        rc = args_run(&a, 0, &r);
        if (rc == PG_OK)
            rc = copy_id(r, id_out);
    }
    if (r)
        freeReplyObject(r);
    free(names);
    return rc;
}

int pg_store_queue_add(const char *stream,
                       const struct pg_store_kv *fields,
                       size_t nfields,
                       long long maxlen,
                       char *id_out)
{
    return xadd(stream, maxlen, NULL, 0, fields, nfields, NULL, id_out);
}

int pg_store_queue_group_ensure(const char *stream, const char *group, int from_start)
{
    if (!valid_name(stream) || !valid_name(group))
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "XGROUP CREATE %s %s %s MKSTREAM", stream, group,
                              from_start ? "0" : "$");
    if (rc == PG_EPROTO && pg_redis_reply_is_error(r, "BUSYGROUP"))
        rc = PG_OK;
    if (r)
        freeReplyObject(r);
    return rc;
}

static int check_count(int count)
{
    return count >= 1 && count <= PG_STORE_COUNT_MAX;
}

int pg_store_queue_read(const char *stream,
                        const char *group,
                        const char *consumer,
                        int count,
                        int block_ms,
                        struct pg_store_batch *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_name(stream) || !valid_name(group) || !valid_name(consumer) || !check_count(count))
        return PG_EINVAL;
    char cnt[16], blk[16];
    snprintf(cnt, sizeof cnt, "%d", count);
    snprintf(blk, sizeof blk, "%d", block_ms);
    int timeout = block_ms > 0 ? block_ms + pg_redis_command_timeout_ms() : 0;
    redisReply *r = NULL;
    int rc = PG_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct args a;
        if (args_init(&a, 11))
            return PG_ENOMEM;
        const char *fixed[] = {"XREADGROUP", "GROUP", group, consumer, "COUNT", cnt};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
            args_str(&a, fixed[i]);
        if (block_ms > 0) {
            args_str(&a, "BLOCK");
            args_str(&a, blk);
        }
        args_str(&a, "STREAMS");
        args_str(&a, stream);
        args_str(&a, ">");
        rc = args_run(&a, timeout, &r);
        if (rc != PG_EPROTO || attempt || !pg_redis_reply_is_error(r, "NOGROUP"))
            break;
        freeReplyObject(r);
        r = NULL;
        if ((rc = pg_store_queue_group_ensure(stream, group, 1)) != PG_OK)
            break;
    }
    if (rc == PG_OK && r->type != REDIS_REPLY_NIL) { /* nil: the block ended with nothing */
        if (r->type != REDIS_REPLY_ARRAY)
            rc = PG_EPROTO;
        for (size_t i = 0; rc == PG_OK && i < r->elements; i++) {
            const redisReply *s = r->element[i];
            if (s->type != REDIS_REPLY_ARRAY || s->elements != 2)
                rc = PG_EPROTO;
            else
                rc = append_entries(out, s->element[1], 1);
        }
    }
    if (r)
        freeReplyObject(r);
    if (rc)
        pg_store_batch_free(out);
    return rc;
}

int pg_store_queue_ack(
    const char *stream, const char *group, const char *const *ids, size_t nids, long long *acked)
{
    if (acked)
        *acked = 0;
    if (!valid_name(stream) || !valid_name(group) || !nids || !ids)
        return PG_EINVAL;
    struct args a;
    if (args_init(&a, 3 + nids))
        return PG_ENOMEM;
    args_str(&a, "XACK");
    args_str(&a, stream);
    args_str(&a, group);
    for (size_t i = 0; i < nids; i++) {
        if (!valid_name(ids[i])) {
            args_free(&a);
            return PG_EINVAL;
        }
        args_str(&a, ids[i]);
    }
    redisReply *r = NULL;
    int rc = args_run(&a, 0, &r);
    if (rc == PG_OK && r->type != REDIS_REPLY_INTEGER)
        rc = PG_EPROTO;
    if (rc == PG_OK && acked)
        *acked = r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_store_queue_reclaim(const char *stream,
                           const char *group,
                           const char *consumer,
                           int64_t min_idle_ms,
                           int count,
                           struct pg_store_batch *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_name(stream) || !valid_name(group) || !valid_name(consumer) || !check_count(count) ||
        min_idle_ms < 0)
        return PG_EINVAL;
    redisReply *p = NULL, *c = NULL;
    int rc = pg_redis_command(&p, "XPENDING %s %s IDLE %lld - + %d", stream, group,
                              (long long)min_idle_ms, count);
    if (rc == PG_EPROTO && pg_redis_reply_is_error(p, "NOGROUP")) {
        freeReplyObject(p);
        return PG_OK; /* no group, nothing pending */
    }
    if (rc == PG_OK && p->type != REDIS_REPLY_ARRAY)
        rc = PG_EPROTO;
    if (rc || p->elements == 0)
        goto done;
    /* Pending entries: [id, consumer, idle ms, deliveries]. */
    for (size_t i = 0; i < p->elements; i++) {
        const redisReply *e = p->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 4 || !is_str(e->element[0]) ||
            e->element[3]->type != REDIS_REPLY_INTEGER) {
            rc = PG_EPROTO;
            goto done;
        }
    }
    struct args a;
    if ((rc = args_init(&a, 5 + p->elements)))
        goto done;
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", (long long)min_idle_ms);
    const char *fixed[] = {"XCLAIM", stream, group, consumer, idle};
    for (size_t i = 0; i < 5; i++)
        args_str(&a, fixed[i]);
    for (size_t i = 0; i < p->elements; i++)
        args_push(&a, p->element[i]->element[0]->str, p->element[i]->element[0]->len);
    if ((rc = args_run(&a, 0, &c)) != PG_OK)
        goto done;
    if ((rc = append_entries(out, c, 0)) != PG_OK)
        goto done;
    for (size_t i = 0; i < out->n; i++) {
        for (size_t j = 0; j < p->elements; j++) {
            const redisReply *e = p->element[j];
            if (e->element[0]->len == strlen(out->msgs[i].id) &&
                !memcmp(e->element[0]->str, out->msgs[i].id, e->element[0]->len)) {
                out->msgs[i].deliveries = e->element[3]->integer + 1;
                break;
            }
        }
    }
done:
    if (p)
        freeReplyObject(p);
    if (c)
        freeReplyObject(c);
    if (rc)
        pg_store_batch_free(out);
    return rc;
}

int pg_store_queue_len(const char *stream, long long *out)
{
    *out = 0;
    if (!valid_name(stream))
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "XLEN %s", stream);
    if (rc == PG_OK && r->type != REDIS_REPLY_INTEGER)
        rc = PG_EPROTO;
    if (rc == PG_OK)
        *out = r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_store_queue_pending(const char *stream, const char *group, long long *out)
{
    *out = 0;
    if (!valid_name(stream) || !valid_name(group))
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "XPENDING %s %s", stream, group);
    if (rc == PG_EPROTO && pg_redis_reply_is_error(r, "NOGROUP"))
        rc = PG_OK; /* *out stays 0 */
    else if (rc == PG_OK && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
                             r->element[0]->type != REDIS_REPLY_INTEGER))
        rc = PG_EPROTO;
    else if (rc == PG_OK)
        *out = r->element[0]->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_store_stream_range(
    const char *stream, const char *start, const char *end, int count, struct pg_store_batch *out)
{
    memset(out, 0, sizeof *out);
    if (!valid_name(stream) || !check_count(count))
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "XRANGE %s %s %s COUNT %d", stream, start ? start : "-",
                              end ? end : "+", count);
    if (rc == PG_OK)
        rc = append_entries(out, r, 0);
    if (r)
        freeReplyObject(r);
    if (rc)
        pg_store_batch_free(out);
    return rc;
}

/* ---- dead letters ---- */

int pg_store_dead_add(const char *dlq,
                      const char *source_stream,
                      const struct pg_store_msg *orig,
                      long long attempts,
                      const char *last_error,
                      long long maxlen,
                      char *id_out)
{
    if (!valid_name(source_stream) || !orig)
        return PG_EINVAL;
    char att[24], ts[24];
    snprintf(att, sizeof att, "%lld", attempts);
    snprintf(ts, sizeof ts, "%lld", (long long)pg_wall_ms());
    const char *err = last_error ? last_error : "";
    const struct pg_store_kv meta[] = {
        {"source", source_stream, strlen(source_stream)},
        {"orig_id", orig->id, strlen(orig->id)},
        {"attempts", att, strlen(att)},
        {"error", err, strlen(err)},
        {"ts_ms", ts, strlen(ts)},
    };
    struct pg_store_kv *f = NULL;
    if (orig->nfields && !(f = calloc(orig->nfields, sizeof *f)))
        return PG_ENOMEM;
    for (size_t i = 0; i < orig->nfields; i++)
        f[i] = (struct pg_store_kv){orig->fields[i].name, orig->fields[i].value,
                                    orig->fields[i].value_len};
    int rc = xadd(dlq, maxlen, meta, 5, f, orig->nfields, "f.", id_out);
    free(f);
    return rc;
}

void pg_store_dead_list_free(struct pg_store_dead_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].source);
        free(l->items[i].error);
        msg_free(&l->items[i].msg);
    }
    free(l->items);
    l->n = 0;
    l->items = NULL;
}

/* Turn one raw dead-letter entry (taking ownership of its fields) into d. */
static int dead_from_msg(struct pg_store_msg *m, struct pg_store_dead *d)
{
    memcpy(d->id, m->id, sizeof d->id);
    d->msg = *m;
    d->msg.nfields = 0;
    d->msg.id[0] = '\0';
    int have = 0, rc = PG_OK;
    for (size_t i = 0; i < m->nfields; i++) {
        struct pg_store_field *f = &m->fields[i];
        long long v;
        int meta = 1;
        if (!strcmp(f->name, "source") && !d->source) {
            d->source = f->value, f->value = NULL, have |= 1;
        } else if (!strcmp(f->name, "error") && !d->error) {
            d->error = f->value, f->value = NULL, have |= 2;
        } else if (!strcmp(f->name, "orig_id") && f->value_len < PG_STORE_ID_MAX) {
            memcpy(d->msg.id, f->value, f->value_len + 1), have |= 4;
        } else if (!strcmp(f->name, "attempts") && !pg_strtonum(f->value, 0, INT64_MAX, &v)) {
            d->attempts = v, have |= 8;
        } else if (!strcmp(f->name, "ts_ms") && !pg_strtonum(f->value, 0, INT64_MAX, &v)) {
            d->ts_ms = v, have |= 16;
        } else if (f->name_len > 2 && !memcmp(f->name, "f.", 2)) {
            memmove(f->name, f->name + 2, f->name_len - 1); /* keeps the NUL */
            f->name_len -= 2;
            d->msg.fields[d->msg.nfields++] = *f; /* compacts in place: index <= i */
            meta = 0;
        } else {
            rc = PG_EPROTO;
        }
        if (meta) {
            free(f->name);
            free(f->value);
        }
    }
    m->nfields = 0;
    m->fields = NULL;
    return rc ? rc : (have == 31 ? PG_OK : PG_EPROTO);
}

int pg_store_dead_range(
    const char *dlq, const char *start, const char *end, int count, struct pg_store_dead_list *out)
{
    memset(out, 0, sizeof *out);
    struct pg_store_batch b;
    int rc = pg_store_stream_range(dlq, start, end, count, &b);
    if (rc)
        return rc;
    if (b.n && !(out->items = calloc(b.n, sizeof *out->items)))
        rc = PG_ENOMEM;
    for (size_t i = 0; rc == PG_OK && i < b.n; i++) {
        out->n++;
        rc = dead_from_msg(&b.msgs[i], &out->items[i]);
    }
    pg_store_batch_free(&b);
    if (rc)
        pg_store_dead_list_free(out);
    return rc;
}

int pg_store_dead_del(const char *dlq, const char *id, int *deleted)
{
    if (deleted)
        *deleted = 0;
    if (!valid_name(dlq) || !valid_name(id))
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "XDEL %s %s", dlq, id);
    if (rc == PG_OK && r->type != REDIS_REPLY_INTEGER)
        rc = PG_EPROTO;
    if (rc == PG_OK && deleted)
        *deleted = (int)r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}
