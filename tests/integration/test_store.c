/*
 * The Redis layer (store/) against a private redis-server: cache, claims, stream queue with
 * consumer groups and reclaim, dead letters, audit trail, and how the connection module behaves
 * when Redis is stopped, hung (SIGSTOP) or restarted without its consumer groups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/util.h"
#include "store/audit.h"
#include "store/kv.h"
#include "store/redis.h"
#include "store/stream.h"
#include "tests/support/harness.h"

#define CMD_TIMEOUT_MS 500

static struct pg_t_redis R;

static void init_redis(int rmin, int rmax)
{
    struct pg_redis_opts o = {.url = R.url,
                              .connect_timeout_ms = 500,
                              .command_timeout_ms = CMD_TIMEOUT_MS,
                              .reconnect_min_ms = rmin,
                              .reconnect_max_ms = rmax};
    assert_int_equal(pg_redis_init(&o), PG_OK);
}

static int setup(void **state)
{
    if (pg_t_redis_start(&R) != 0)
        return -1;
    init_redis(20, 200);
    return 0;
}

static int teardown(void **state)
{
    pg_redis_shutdown();
    pg_t_redis_destroy(&R);
    return 0;
}

/* Poll ping until Redis answers again (no re-init), within deadline_ms. */
static void wait_ping_ok(int deadline_ms)
{
    int64_t end = pg_now_ms() + deadline_ms;
    int rc;
    while ((rc = pg_redis_ping()) != PG_OK && pg_now_ms() < end)
        pg_sleep_ms(20);
    assert_int_equal(rc, PG_OK);
}

static void test_ping(void **state)
{
    unsigned long long errs = pg_redis_error_count();
    assert_int_equal(pg_redis_ping(), PG_OK);
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "ECHO %b", "a\0b", (size_t)3), PG_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 3);
    assert_memory_equal(r->str, "a\0b", 3);
    freeReplyObject(r);
    /* An error reply is PG_EPROTO and still handed over for inspection. */
    assert_int_equal(pg_redis_command(&r, "NOSUCHCOMMAND"), PG_EPROTO);
    assert_non_null(r);
    assert_true(pg_redis_reply_is_error(r, "ERR"));
    freeReplyObject(r);
    assert_int_equal(pg_redis_ping(), PG_OK); /* the connection survived the error reply */
    assert_int_equal(pg_redis_error_count(), errs);
}

static void test_cache(void **state)
{
    static const char val[] = "bin\0ary\xff";
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(pg_store_cache_get("t:cache:a", &got, &len), PG_ENOTFOUND);
    assert_null(got);
    assert_int_equal(pg_store_cache_set("t:cache:a", val, sizeof val, 60000), PG_OK);
    assert_int_equal(pg_store_cache_get("t:cache:a", &got, &len), PG_OK);
    assert_int_equal(len, sizeof val);
    assert_memory_equal(got, val, sizeof val);
    free(got);
    assert_int_equal(pg_store_cache_del("t:cache:a"), PG_OK);
    assert_int_equal(pg_store_cache_get("t:cache:a", &got, &len), PG_ENOTFOUND);
    assert_int_equal(pg_store_cache_del("t:cache:a"), PG_OK); /* deleting a miss is fine */

    /* Empty values are values, not misses. */
    assert_int_equal(pg_store_cache_set("t:cache:empty", "", 0, 60000), PG_OK);
    assert_int_equal(pg_store_cache_get("t:cache:empty", &got, &len), PG_OK);
    assert_int_equal(len, 0);
    free(got);

    /* TTL in ms: present now, gone soon after. */
    assert_int_equal(pg_store_cache_set("t:cache:ttl", "x", 1, 80), PG_OK);
    assert_int_equal(pg_store_cache_get("t:cache:ttl", &got, &len), PG_OK);
    free(got);
    int64_t end = pg_now_ms() + 3000;
    int rc;
    while ((rc = pg_store_cache_get("t:cache:ttl", &got, &len)) == PG_OK && pg_now_ms() < end) {
        free(got);
        pg_sleep_ms(10);
    }
    assert_int_equal(rc, PG_ENOTFOUND);

    assert_int_equal(pg_store_cache_set("t:cache:b", "x", 1, 0), PG_EINVAL);
    char *big = calloc(1, PG_STORE_VALUE_MAX + 1);
    assert_int_equal(pg_store_cache_set("t:cache:b", big, PG_STORE_VALUE_MAX + 1, 1000),
                     PG_ETOOLARGE);
    /* A value someone else stored above the cap is refused on the way out too. */
    assert_int_equal(
        pg_redis_command(NULL, "SET t:cache:big %b", big, (size_t)PG_STORE_VALUE_MAX + 1), PG_OK);
    free(big);
    assert_int_equal(pg_store_cache_get("t:cache:big", &got, &len), PG_ETOOLARGE);
    assert_null(got);
}

static void test_reply_cap(void **state)
{
    /* A reply larger than PG_REDIS_MAX_REPLY_BYTES is refused and the connection replaced. */
    size_t n = PG_REDIS_MAX_REPLY_BYTES + 1;
    char *big = calloc(1, n);
    assert_non_null(big);
    assert_int_equal(pg_t_redis_cmd(&R, "SET t:huge %b", big, n), 0);
    free(big);
    redisReply *r = NULL;
    const char *get[] = {"GET", "t:huge"};
    unsigned long long errs = pg_redis_error_count();
    /* A generous timeout: 16 MiB through hiredis under ASan takes about a second here. */
    assert_int_equal(pg_redis_command_argv_timeout(&r, 20000, 2, get, NULL), PG_ETOOLARGE);
    assert_int_equal(pg_redis_error_count(), errs); /* not a Redis failure: no backoff */
    assert_null(r);
    assert_int_equal(pg_redis_ping(), PG_OK);
    assert_int_equal(pg_store_cache_del("t:huge"), PG_OK);
}

static void test_claim(void **state)
{
    int claimed = -1;
    assert_int_equal(pg_store_claim("t:claim:1", "first", 5, 60000, &claimed), PG_OK);
    assert_int_equal(claimed, 1);
    assert_int_equal(pg_store_claim("t:claim:1", "second", 6, 60000, &claimed), PG_OK);
    assert_int_equal(claimed, 0);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(pg_store_claim_get("t:claim:1", &v, &len), PG_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "first", 5); /* the loser did not overwrite */
    free(v);
    assert_int_equal(pg_store_claim_release("t:claim:1"), PG_OK);
    assert_int_equal(pg_store_claim_get("t:claim:1", &v, &len), PG_ENOTFOUND);
    assert_int_equal(pg_store_claim("t:claim:1", "third", 5, 60000, &claimed), PG_OK);
    assert_int_equal(claimed, 1);

    /* A claim expires with its TTL, and then can be claimed again. */
    assert_int_equal(pg_store_claim("t:claim:ttl", "a", 1, 80, &claimed), PG_OK);
    assert_int_equal(claimed, 1);
    assert_int_equal(pg_store_claim("t:claim:ttl", "b", 1, 80, &claimed), PG_OK);
    assert_int_equal(claimed, 0);
    int64_t end = pg_now_ms() + 3000;
    while (claimed == 0 && pg_now_ms() < end) {
        pg_sleep_ms(10);
        assert_int_equal(pg_store_claim("t:claim:ttl", "c", 1, 60000, &claimed), PG_OK);
    }
    assert_int_equal(claimed, 1);
}

static void add_one(const char *stream, const char *body, char *id)
{
    struct pg_store_kv f[] = {{"kind", "customer", 8}, {"body", body, strlen(body)}};
    assert_int_equal(pg_store_queue_add(stream, f, 2, 0, id), PG_OK);
}

static void test_queue(void **state)
{
    const char *s = "t:q:basic";
    assert_int_equal(pg_store_queue_group_ensure(s, "g", 0), PG_OK);
    assert_int_equal(pg_store_queue_group_ensure(s, "g", 0), PG_OK); /* BUSYGROUP is fine */
    char ids[3][PG_STORE_ID_MAX];
    struct pg_store_kv bin[] = {{"kind", "raw", 3}, {"body", "x\0y", 3}};
    assert_int_equal(pg_store_queue_add(s, bin, 2, 1000, ids[0]), PG_OK);
    add_one(s, "two", ids[1]);
    add_one(s, "three", ids[2]);
    assert_true(strcmp(ids[0], ids[1]) != 0);
    long long n = -1;
    assert_int_equal(pg_store_queue_len(s, &n), PG_OK);
    assert_int_equal(n, 3);

    struct pg_store_batch b;
    assert_int_equal(pg_store_queue_read(s, "g", "c1", 10, 0, &b), PG_OK);
    assert_int_equal(b.n, 3);
    assert_string_equal(b.msgs[0].id, ids[0]);
    assert_int_equal(b.msgs[0].deliveries, 1);
    const struct pg_store_field *f = pg_store_msg_field(&b.msgs[0], "body");
    assert_non_null(f);
    assert_int_equal(f->value_len, 3);
    assert_memory_equal(f->value, "x\0y", 3);
    assert_string_equal(pg_store_msg_field(&b.msgs[2], "body")->value, "three");
    assert_null(pg_store_msg_field(&b.msgs[2], "nope"));
    pg_store_batch_free(&b);
    assert_int_equal(b.n, 0);

    assert_int_equal(pg_store_queue_pending(s, "g", &n), PG_OK);
    assert_int_equal(n, 3);
    const char *ack[] = {ids[0], ids[1]};
    long long acked = 0;
    assert_int_equal(pg_store_queue_ack(s, "g", ack, 2, &acked), PG_OK);
    assert_int_equal(acked, 2);
    assert_int_equal(pg_store_queue_ack(s, "g", ack, 2, &acked), PG_OK);
    assert_int_equal(acked, 0); /* already acked */
    assert_int_equal(pg_store_queue_pending(s, "g", &n), PG_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pg_store_queue_pending(s, "nogroup", &n), PG_OK);
    assert_int_equal(n, 0);
    assert_int_equal(pg_store_queue_len("t:q:none", &n), PG_OK);
    assert_int_equal(n, 0);

    /* Nothing new: a non-blocking read is empty. */
    assert_int_equal(pg_store_queue_read(s, "g", "c1", 10, 0, &b), PG_OK);
    assert_int_equal(b.n, 0);
    pg_store_batch_free(&b);

    /* A block longer than the command timeout is not cut short by it. */
    int64_t t0 = pg_now_ms();
    assert_int_equal(pg_store_queue_read(s, "g", "c1", 10, CMD_TIMEOUT_MS + 300, &b), PG_OK);
    int64_t took = pg_now_ms() - t0;
    assert_int_equal(b.n, 0);
    assert_true(took >= CMD_TIMEOUT_MS + 250);
    assert_true(took < CMD_TIMEOUT_MS + 300 + 1500);

    /* A blocking read returns as soon as an entry arrives. */
    char id4[PG_STORE_ID_MAX];
    add_one(s, "four", id4);
    assert_int_equal(pg_store_queue_read(s, "g", "c1", 10, 5000, &b), PG_OK);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.msgs[0].id, id4);
    pg_store_batch_free(&b);

    assert_int_equal(pg_store_queue_read(s, "g", "c1", 0, 0, &b), PG_EINVAL);
    assert_int_equal(pg_store_queue_add(s, NULL, 0, 0, NULL), PG_EINVAL);
}

/* Reclaim by consumer, polling until entries have been idle min_idle ms. */
static void reclaim_until(const char *s, size_t want, struct pg_store_batch *b)
{
    int64_t end = pg_now_ms() + 5000;
    for (;;) {
        assert_int_equal(pg_store_queue_reclaim(s, "g", "rescuer", 30, 10, b), PG_OK);
        if (b->n >= want || pg_now_ms() > end)
            break;
        pg_store_batch_free(b);
        pg_sleep_ms(10);
    }
    assert_int_equal(b->n, want);
}

static void test_reclaim(void **state)
{
    const char *s = "t:q:reclaim";
    assert_int_equal(pg_store_queue_group_ensure(s, "g", 1), PG_OK);
    char id1[PG_STORE_ID_MAX], id2[PG_STORE_ID_MAX];
    add_one(s, "one", id1);
    add_one(s, "two", id2);
    struct pg_store_batch b;
    assert_int_equal(pg_store_queue_read(s, "g", "crashed", 10, 0, &b), PG_OK);
    assert_int_equal(b.n, 2);
    pg_store_batch_free(&b);

    /* Not idle long enough yet: nothing to take. */
    assert_int_equal(pg_store_queue_reclaim(s, "g", "rescuer", 60000, 10, &b), PG_OK);
    assert_int_equal(b.n, 0);

    reclaim_until(s, 2, &b);
    assert_string_equal(b.msgs[0].id, id1);
    assert_string_equal(b.msgs[1].id, id2);
    assert_int_equal(b.msgs[0].deliveries, 2);
    assert_int_equal(b.msgs[1].deliveries, 2);
    assert_string_equal(pg_store_msg_field(&b.msgs[1], "body")->value, "two");
    pg_store_batch_free(&b);

    reclaim_until(s, 2, &b);
    assert_int_equal(b.msgs[0].deliveries, 3);
    assert_int_equal(b.msgs[1].deliveries, 3);
    pg_store_batch_free(&b);

    /* Acked entries are no longer reclaimable. */
    const char *ids[] = {id1};
    assert_int_equal(pg_store_queue_ack(s, "g", ids, 1, NULL), PG_OK);
    reclaim_until(s, 1, &b);
    assert_string_equal(b.msgs[0].id, id2);
    assert_int_equal(b.msgs[0].deliveries, 4);
    pg_store_batch_free(&b);

    /* An entry deleted while pending is dropped, not returned. */
    assert_int_equal(pg_t_redis_cmd(&R, "XDEL %s %s", s, id2), 0);
    pg_sleep_ms(40);
    assert_int_equal(pg_store_queue_reclaim(s, "g", "rescuer", 30, 10, &b), PG_OK);
    assert_int_equal(b.n, 0);
    assert_int_equal(pg_store_queue_reclaim("t:q:none", "g", "x", 0, 10, &b), PG_OK);
    assert_int_equal(b.n, 0);
}

static void test_dead_letters(void **state)
{
    const char *s = "t:q:dl", *dlq = "t:dlq";
    assert_int_equal(pg_store_queue_group_ensure(s, "g", 1), PG_OK);
    /* An original field named like the metadata must survive untouched. */
    struct pg_store_kv f[] = {{"source", "salesforce", 10}, {"body", "b\0dy", 4}};
    char oid[PG_STORE_ID_MAX];
    assert_int_equal(pg_store_queue_add(s, f, 2, 0, oid), PG_OK);
    struct pg_store_batch b;
    assert_int_equal(pg_store_queue_read(s, "g", "w", 1, 0, &b), PG_OK);
    assert_int_equal(b.n, 1);
    int64_t before = pg_wall_ms();
    char did[PG_STORE_ID_MAX];
    assert_int_equal(pg_store_dead_add(dlq, s, &b.msgs[0], 5, "MICROS said 500", 1000, did), PG_OK);
    pg_store_batch_free(&b);

    struct pg_store_dead_list l;
    assert_int_equal(pg_store_dead_range(dlq, NULL, NULL, 100, &l), PG_OK);
    assert_int_equal(l.n, 1);
    struct pg_store_dead *d = &l.items[0];
    assert_string_equal(d->id, did);
    assert_string_equal(d->source, s);
    assert_string_equal(d->msg.id, oid);
    assert_int_equal(d->attempts, 5);
    assert_string_equal(d->error, "MICROS said 500");
    assert_true(d->ts_ms >= before - 5 && d->ts_ms <= pg_wall_ms() + 5);
    assert_int_equal(d->msg.nfields, 2);
    assert_string_equal(d->msg.fields[0].name, "source");
    assert_string_equal(d->msg.fields[0].value, "salesforce");
    const struct pg_store_field *bf = pg_store_msg_field(&d->msg, "body");
    assert_non_null(bf);
    assert_int_equal(bf->value_len, 4);
    assert_memory_equal(bf->value, "b\0dy", 4);
    pg_store_dead_list_free(&l);

    int deleted = 0;
    assert_int_equal(pg_store_dead_del(dlq, did, &deleted), PG_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(pg_store_dead_range(dlq, NULL, NULL, 100, &l), PG_OK);
    assert_int_equal(l.n, 0);
    pg_store_dead_list_free(&l);

    /* A foreign entry in the dead-letter stream is a protocol error, not a crash. */
    assert_int_equal(pg_t_redis_cmd(&R, "XADD %s * junk 1", dlq), 0);
    assert_int_equal(pg_store_dead_range(dlq, NULL, NULL, 100, &l), PG_EPROTO);
    assert_int_equal(l.n, 0);
}

static void test_audit(void **state)
{
    const char *s = "t:audit";
    char ids[3][PG_STORE_ID_MAX];
    json_t *ev[3];
    for (int i = 0; i < 3; i++) {
        ev[i] =
            json_pack("{s:s, s:i, s:{s:s}}", "decision", "upsert", "n", i, "order", "id", "ORD-1");
        assert_int_equal(pg_store_audit_append(s, ev[i], 1000, ids[i]), PG_OK);
    }
    json_t *arr = NULL;
    assert_int_equal(pg_store_audit_range(s, NULL, NULL, 100, &arr), PG_OK);
    assert_int_equal(json_array_size(arr), 3);
    for (int i = 0; i < 3; i++) {
        json_t *it = json_array_get(arr, (size_t)i);
        assert_string_equal(json_string_value(json_object_get(it, "id")), ids[i]);
        assert_true(json_equal(json_object_get(it, "event"), ev[i]));
    }
    json_decref(arr);
    assert_int_equal(pg_store_audit_range(s, ids[1], NULL, 100, &arr), PG_OK);
    assert_int_equal(json_array_size(arr), 2);
    json_decref(arr);
    assert_int_equal(pg_store_audit_range(s, NULL, NULL, 1, &arr), PG_OK);
    assert_int_equal(json_array_size(arr), 1);
    json_decref(arr);
    for (int i = 0; i < 3; i++)
        json_decref(ev[i]);

    assert_int_equal(pg_t_redis_cmd(&R, "XADD %s * event {broken", s), 0);
    assert_int_equal(pg_store_audit_range(s, NULL, NULL, 100, &arr), PG_OK);
    json_t *last = json_array_get(arr, 3);
    assert_true(json_is_null(json_object_get(last, "event")));
    assert_true(json_is_true(json_object_get(last, "invalid")));
    json_decref(arr);
}

static void *thread_main(void *arg)
{
    long n = (long)(intptr_t)arg;
    char key[64];
    snprintf(key, sizeof key, "t:thread:%ld", n);
    for (int i = 0; i < 50; i++) {
        if (pg_store_cache_set(key, key, strlen(key), 60000) != PG_OK)
            return (void *)1;
        char *v = NULL;
        size_t len = 0;
        if (pg_store_cache_get(key, &v, &len) != PG_OK || len != strlen(key) ||
            memcmp(v, key, len)) {
            free(v);
            return (void *)1;
        }
        free(v);
    }
    return NULL; /* the thread's connection is freed by the key destructor (LSan checks) */
}

static void test_threads(void **state)
{
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++) {
        void *ret = NULL;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_null(ret);
    }
}

static void test_auth_and_db(void **state)
{
    assert_int_equal(pg_redis_command(NULL, "CONFIG SET requirepass %s", "s3cr3t"), PG_OK);
    char url[300];
    snprintf(url, sizeof url, "redis://:s3cr3t@127.0.0.1:%d/3", R.port);
    struct pg_redis_opts o = {.url = url, .command_timeout_ms = CMD_TIMEOUT_MS};
    assert_int_equal(pg_redis_init(&o), PG_OK);
    assert_int_equal(pg_store_cache_set("t:db3", "x", 1, 60000), PG_OK);

    /* The password option overrides the URL's; a refused AUTH is "unavailable" and counted. */
    unsigned long long errs = pg_redis_error_count();
    o.password = "wrong";
    assert_int_equal(pg_redis_init(&o), PG_OK);
    assert_int_equal(pg_redis_ping(), PG_EUNAVAIL);
    assert_true(pg_redis_error_count() > errs);

    /* The key went to db 3 (SELECT), so db 0 does not have it. */
    o.password = NULL;
    snprintf(url, sizeof url, "redis://:s3cr3t@127.0.0.1:%d/0", R.port);
    assert_int_equal(pg_redis_init(&o), PG_OK);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(pg_store_cache_get("t:db3", &v, &len), PG_ENOTFOUND);
    assert_int_equal(pg_redis_command(NULL, "CONFIG SET requirepass %s", ""), PG_OK);
    init_redis(20, 200);
}

static void test_group_recreated_after_restart(void **state)
{
    const char *s = "t:q:restart";
    assert_int_equal(pg_store_queue_group_ensure(s, "g", 0), PG_OK);
    char id[PG_STORE_ID_MAX];
    add_one(s, "before", id);
    struct pg_store_batch b;
    assert_int_equal(pg_store_queue_read(s, "g", "c", 10, 0, &b), PG_OK);
    assert_int_equal(b.n, 1);
    pg_store_batch_free(&b);

    /* Redis comes back without the group (FLUSHALL is in the AOF, so the restart replays it). */
    assert_int_equal(pg_t_redis_cmd(&R, "FLUSHALL"), 0);
    assert_int_equal(pg_t_redis_restart(&R), 0);
    wait_ping_ok(5000);
    add_one(s, "after", id); /* the stream exists again, the group does not */
    long long pending = -1;
    assert_int_equal(pg_store_queue_pending(s, "g", &pending), PG_OK);
    assert_int_equal(pending, 0); /* no group, nothing pending */

    assert_int_equal(pg_store_queue_read(s, "g", "c", 10, 0, &b), PG_OK);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.msgs[0].id, id);
    assert_string_equal(pg_store_msg_field(&b.msgs[0], "body")->value, "after");
    pg_store_batch_free(&b);
    assert_int_equal(pg_store_queue_pending(s, "g", &pending), PG_OK);
    assert_int_equal(pending, 1);
}

static void test_stopped_redis(void **state)
{
    assert_int_equal(pg_redis_ping(), PG_OK);
    unsigned long long errs = pg_redis_error_count();
    pg_t_redis_stop(&R);
    for (int i = 0; i < 5; i++) {
        int64_t t0 = pg_now_ms();
        int rc = pg_redis_ping();
        assert_true(rc == PG_EUNAVAIL || rc == PG_ETIMEDOUT);
        assert_true(pg_now_ms() - t0 < 1000);
        char *v = NULL;
        size_t len;
        rc = pg_store_cache_get("t:x", &v, &len);
        assert_true(rc == PG_EUNAVAIL || rc == PG_ETIMEDOUT);
    }
    assert_true(pg_redis_error_count() > errs);
    assert_int_equal(pg_t_redis_restart(&R), 0);
    wait_ping_ok(5000); /* recovers by itself: no re-init */
    assert_int_equal(pg_store_cache_set("t:x", "1", 1, 60000), PG_OK);
}

static void test_paused_redis(void **state)
{
    assert_int_equal(pg_redis_ping(), PG_OK);
    pg_t_redis_pause(&R);
    int64_t t0 = pg_now_ms();
    int rc = pg_redis_ping();
    int64_t took = pg_now_ms() - t0;
    pg_t_redis_resume(&R);
    assert_int_equal(rc, PG_ETIMEDOUT);
    assert_true(took >= CMD_TIMEOUT_MS - 50);
    assert_true(took < CMD_TIMEOUT_MS + 1500);
    wait_ping_ok(5000);
}

static void test_backoff_fast_fail(void **state)
{
    /* A long backoff window: while it lasts no call may touch the (hung) server. */
    init_redis(1500, 3000);
    assert_int_equal(pg_redis_ping(), PG_OK);
    pg_t_redis_pause(&R);
    assert_int_equal(pg_redis_ping(), PG_ETIMEDOUT);
    unsigned long long errs = pg_redis_error_count();
    for (int i = 0; i < 3; i++) {
        /* Reconnecting to a SIGSTOPped server would connect (the kernel accepts) and then
         * wait the whole command timeout: failing in a few ms proves the backoff. */
        int64_t t0 = pg_now_ms();
        assert_int_equal(pg_redis_ping(), PG_EUNAVAIL);
        assert_true(pg_now_ms() - t0 < 100);
    }
    assert_int_equal(pg_redis_error_count(), errs); /* fast fails are not I/O errors */
    pg_t_redis_resume(&R);
    wait_ping_ok(5000);
    init_redis(20, 200);
}

/* A Redis restart between two commands closes the idle connection: the next command retries on
 * a new one instead of failing (and does not count as a Redis error). */
static void test_restart_between_commands_is_transparent(void **state)
{
    init_redis(20, 200);
    assert_int_equal(pg_redis_ping(), PG_OK);
    assert_int_equal(pg_t_redis_restart(&R), 0);
    unsigned long long errs = pg_redis_error_count();
    assert_int_equal(pg_redis_ping(), PG_OK);
    assert_int_equal(pg_redis_error_count(), errs);
}

struct stall_thread {
    pthread_t t;
    int rc;
};

static void *stall_ping(void *arg)
{
    struct stall_thread *st = arg;
    if (pg_redis_ping() != PG_OK) /* connect while Redis is healthy */
        st->rc = -1;
    else
        st->rc = pg_redis_ping(); /* this one meets the stall */
    return NULL;
}

/* Sixteen threads time out on one stall: that is one failure, so the backoff stays at its
 * minimum and work resumes right after Redis does (not after reconnect_max_ms). */
static void test_one_stall_is_one_failure(void **state)
{
    init_redis(50, 5000);
    assert_int_equal(pg_redis_ping(), PG_OK);
    enum { N = 16 };
    struct stall_thread th[N];
    pg_t_redis_pause(&R);
    for (int i = 0; i < N; i++)
        pthread_create(&th[i].t, NULL, stall_ping, &th[i]);
    pg_sleep_ms(50);
    /* this thread meets the stall too, so its connection is dropped like the others' */
    assert_int_equal(pg_redis_ping(), PG_ETIMEDOUT);
    pg_t_redis_resume(&R);
    for (int i = 0; i < N; i++)
        pthread_join(th[i].t, NULL);
    /* Redis is fine again: a call must succeed well before the 5 s maximum backoff. */
    int64_t t0 = pg_now_ms();
    int rc = PG_EUNAVAIL;
    while (rc != PG_OK && pg_now_ms() - t0 < 5000) {
        rc = pg_redis_ping();
        if (rc != PG_OK)
            pg_sleep_ms(10);
    }
    assert_int_equal(rc, PG_OK);
    if (pg_now_ms() - t0 >= 1000)
        fail_msg("work resumed %lld ms after Redis did", (long long)(pg_now_ms() - t0));
    init_redis(20, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_stall_is_one_failure),
        cmocka_unit_test(test_restart_between_commands_is_transparent),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_reply_cap),
        cmocka_unit_test(test_claim),
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_reclaim),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_audit),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_auth_and_db),
        cmocka_unit_test(test_group_recreated_after_restart),
        cmocka_unit_test(test_stopped_redis),
        cmocka_unit_test(test_paused_redis),
        cmocka_unit_test(test_backoff_fast_fail),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
