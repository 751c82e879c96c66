/*
 * The durable guest-check queue (sync/checkq.c) against a private redis-server: what a put
 * records, newest-wins, validation, and batches larger than one script chunk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "store/redis.h"
#include "store/stream.h"
#include "sync/checkq.h"
#include "sync/keys.h"
#include "tests/support/harness.h"

static struct pg_t_redis R;

static int setup(void **state)
{
    if (pg_t_redis_start(&R) != 0)
        return -1;
    struct pg_redis_opts o = {.url = R.url,
                              .connect_timeout_ms = 500,
                              .command_timeout_ms = 2000,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 200};
    return pg_redis_init(&o) == PG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    pg_redis_shutdown();
    pg_t_redis_destroy(&R);
    return 0;
}

static int flush(void **state)
{
    return pg_t_redis_cmd(&R, "FLUSHALL");
}

static long long qlen(void)
{
    long long n = -1;
    assert_int_equal(pg_store_queue_len(PG_KEY_CHK_QUEUE, &n), PG_OK);
    return n;
}

/* HGET key field into a malloc'd string (NULL when missing). */
static char *hget(const char *key, const char *field)
{
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "HGET %s %s", key, field), PG_OK);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

static json_t *mkcheck(long long id, const char *upd, long long total)
{
    json_t *c = json_pack("{s:I, s:s, s:I, s:[]}", "guestCheckId", (json_int_t)id, "opnBusDt",
                          "2024-05-01", "chkTtl", (json_int_t)total, "detailLines");
    if (upd)
        json_object_set_new(c, "lastUpdatedUTC", json_string(upd));
    return c;
}

static enum pg_checkq_result put1(const char *loc, json_t *check)
{
    struct pg_checkq_item it = {loc, check};
    enum pg_checkq_result res = (enum pg_checkq_result) - 1;
    char why[200] = "";
    assert_int_equal(pg_checkq_put(&it, 1, "bi", "rid-1", &res, why, sizeof why), PG_OK);
    return res;
}

static void test_queued_unchanged_stale(void **state)
{
    json_t *c1 = mkcheck(123, "2024-05-01T12:00:00", 1000);
    assert_int_equal(put1("loc-1", c1), PG_CHECKQ_QUEUED);
    assert_int_equal(qlen(), 1);

    char *chk = hget(PG_KEY_CHK "loc-1:123", "check");
    char *dig = hget(PG_KEY_CHK "loc-1:123", "digest");
    char *st = hget(PG_KEY_CHK "loc-1:123", "state");
    char *bd = hget(PG_KEY_CHK "loc-1:123", "busdt");
    char *src = hget(PG_KEY_CHK "loc-1:123", "src");
    assert_non_null(chk);
    char want[64];
    assert_int_equal(pg_checkq_digest(c1, want, sizeof want), PG_OK);
    assert_string_equal(dig, want);
    assert_string_equal(st, "queued");
    assert_string_equal(bd, "2024-05-01");
    assert_string_equal(src, "bi");
    json_t *back = json_loads(chk, 0, NULL);
    assert_true(json_equal(back, c1));
    json_decref(back);
    free(chk);
    free(dig);
    free(st);
    free(bd);
    free(src);

    /* The job names the check. */
    struct pg_store_batch b = {0};
    assert_int_equal(pg_store_stream_range(PG_KEY_CHK_QUEUE, NULL, NULL, 10, &b), PG_OK);
    assert_int_equal(b.n, 1);
    assert_string_equal(pg_store_msg_field(&b.msgs[0], "loc")->value, "loc-1");
    assert_string_equal(pg_store_msg_field(&b.msgs[0], "gcid")->value, "123");
    assert_string_equal(pg_store_msg_field(&b.msgs[0], "rid")->value, "rid-1");
    pg_store_batch_free(&b);

    /* The same check again (keys in another order: the digest sorts them) → unchanged. */
    json_t *c1b = json_pack("{s:[], s:I, s:s, s:s, s:I}", "detailLines", "chkTtl", (json_int_t)1000,
                            "lastUpdatedUTC", "2024-05-01T12:00:00", "opnBusDt", "2024-05-01",
                            "guestCheckId", (json_int_t)123);
    assert_int_equal(put1("loc-1", c1b), PG_CHECKQ_UNCHANGED);
    assert_int_equal(qlen(), 1);

    /* A newer version replaces it and queues a job. */
    json_t *c2 = mkcheck(123, "2024-05-01T12:05:00", 1500);
    assert_int_equal(put1("loc-1", c2), PG_CHECKQ_QUEUED);
    assert_int_equal(qlen(), 2);

    /* An older version arriving late is stale: the newer one is kept. */
    json_t *old = mkcheck(123, "2024-05-01T12:01:00", 1100);
    assert_int_equal(put1("loc-1", old), PG_CHECKQ_STALE);
    assert_int_equal(qlen(), 2);
    chk = hget(PG_KEY_CHK "loc-1:123", "check");
    back = json_loads(chk, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(back, "chkTtl")), 1500);
    json_decref(back);
    free(chk);

    /* An empty upd never counts as older: a push without lastUpdatedUTC replaces it. */
    json_t *noupd = mkcheck(123, NULL, 1600);
    assert_int_equal(put1("loc-1", noupd), PG_CHECKQ_QUEUED);
    /* ... and a dated version replaces one without a date. */
    json_t *dated = mkcheck(123, "2024-05-01T11:00:00", 1700);
    assert_int_equal(put1("loc-1", dated), PG_CHECKQ_QUEUED);
    assert_int_equal(qlen(), 4);

    /* The same gcid at another location is another check; a digit-string id is the same id. */
    json_t *other = mkcheck(123, "2024-05-01T12:00:00", 1000);
    assert_int_equal(put1("loc-2", other), PG_CHECKQ_QUEUED);
    json_t *strid = mkcheck(0, "2024-05-01T11:00:00", 1700);
    json_object_set_new(strid, "guestCheckId", json_string("00123"));
    json_t *intid = mkcheck(123, "2024-05-01T11:00:00", 1700);
    struct pg_checkq_item it = {"loc-1", strid};
    enum pg_checkq_result res;
    char why[200];
    assert_int_equal(pg_checkq_put(&it, 1, "push", NULL, &res, why, sizeof why), PG_OK);
    assert_int_equal(res, PG_CHECKQ_QUEUED); /* the body differs (a string id) */
    assert_int_equal(put1("loc-1", intid), PG_CHECKQ_QUEUED);
    assert_int_equal(put1("loc-1", intid), PG_CHECKQ_UNCHANGED);

    json_decref(c1);
    json_decref(c1b);
    json_decref(c2);
    json_decref(old);
    json_decref(noupd);
    json_decref(dated);
    json_decref(other);
    json_decref(strid);
    json_decref(intid);
}

static void test_validation_writes_nothing(void **state)
{
    json_t *good = mkcheck(1, "2024-05-01T12:00:00", 100);
    json_t *neg = mkcheck(-5, NULL, 1);
    json_t *noid = json_pack("{s:s}", "opnBusDt", "2024-05-01");
    json_t *longid = json_pack("{s:s}", "guestCheckId", "123456789012345678901");
    json_t *alpha = json_pack("{s:s}", "guestCheckId", "12a");
    json_t *arr = json_array();
    struct {
        const char *loc;
        json_t *check;
    } bad[] = {{"loc-1", neg}, {"loc-1", noid},   {"loc-1", longid}, {"loc-1", alpha},
               {"loc-1", arr}, {"bad loc", good}, {"", good},        {"a:b", good},
               {NULL, good},   {"x", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pg_checkq_item items[3] = {
            {"loc-1", good}, {"loc-1", good}, {bad[i].loc, bad[i].check}};
        items[1].check = mkcheck(2, NULL, 1);
        enum pg_checkq_result res[3];
        char why[200] = "";
        assert_int_equal(pg_checkq_put(items, 3, "push", NULL, res, why, sizeof why), PG_EINVAL);
        assert_non_null(strstr(why, "check 2"));
        json_decref((json_t *)items[1].check);
    }
    char longloc[PG_CHECKQ_LOC_MAX + 2];
    memset(longloc, 'a', sizeof longloc - 1);
    longloc[sizeof longloc - 1] = '\0';
    struct pg_checkq_item it = {longloc, good};
    enum pg_checkq_result res;
    char why[200];
    assert_int_equal(pg_checkq_put(&it, 1, "push", NULL, &res, why, sizeof why), PG_EINVAL);
    longloc[PG_CHECKQ_LOC_MAX] = '\0';
    char gcid[24];
    assert_int_equal(pg_checkq_validate(longloc, good, gcid, sizeof gcid, why, sizeof why), PG_OK);
    assert_string_equal(gcid, "1");

    /* Nothing at all was written. */
    redisReply *r = NULL;
    assert_int_equal(pg_redis_command(&r, "DBSIZE"), PG_OK);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);

    json_decref(good);
    json_decref(neg);
    json_decref(noid);
    json_decref(longid);
    json_decref(alpha);
    json_decref(arr);
}

static void test_chunked_batch(void **state)
{
    enum { N = PG_CHECKQ_CHUNK * 2 + 37 };
    struct pg_checkq_item *items = calloc(N + 1, sizeof *items);
    enum pg_checkq_result *res = calloc(N + 1, sizeof *res);
    json_t **c = calloc(N + 1, sizeof *c);
    for (int i = 0; i < N; i++) {
        c[i] = mkcheck(1000 + i, "2024-05-01T12:00:00", i);
        items[i].loc_ref = "loc-9";
        items[i].check = c[i];
    }
    char why[200] = "";
    assert_int_equal(pg_checkq_put(items, N, "bi", NULL, res, why, sizeof why), PG_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(res[i], PG_CHECKQ_QUEUED);
    assert_int_equal(qlen(), N);

    /* Again, with one changed check and a duplicate of it at the end of the batch: the
     * duplicate, in the last chunk, sees the first's write. */
    json_decref(c[150]);
    c[150] = mkcheck(1150, "2024-05-01T12:30:00", 9);
    items[150].check = c[150];
    c[N] = json_incref(c[150]);
    items[N].loc_ref = "loc-9";
    items[N].check = c[N];
    assert_int_equal(pg_checkq_put(items, N + 1, "bi", NULL, res, why, sizeof why), PG_OK);
    for (int i = 0; i <= N; i++)
        assert_int_equal(res[i], i == 150 ? PG_CHECKQ_QUEUED : PG_CHECKQ_UNCHANGED);
    assert_int_equal(qlen(), N + 1);

    /* A bad check in the last chunk rejects the whole batch: nothing from the first chunks. */
    assert_int_equal(pg_t_redis_cmd(&R, "FLUSHALL"), 0);
    json_t *bad = json_object();
    items[N].check = bad;
    assert_int_equal(pg_checkq_put(items, N + 1, "bi", NULL, res, why, sizeof why), PG_EINVAL);
    assert_int_equal(qlen(), 0);
    json_decref(bad);

    for (int i = 0; i <= N; i++)
        json_decref(c[i]);
    free(c);
    free(items);
    free(res);
}

static void test_redis_down(void **state)
{
    json_t *c = mkcheck(7, NULL, 1);
    struct pg_checkq_item it = {"loc-1", c};
    enum pg_checkq_result res;
    char why[200] = "";
    pg_t_redis_stop(&R);
    int rc = pg_checkq_put(&it, 1, "bi", NULL, &res, why, sizeof why);
    assert_true(rc == PG_EUNAVAIL || rc == PG_EIO || rc == PG_ETIMEDOUT);
    assert_int_equal(pg_t_redis_restart(&R), 0);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_queued_unchanged_stale, flush),
        cmocka_unit_test_setup(test_validation_writes_nothing, flush),
        cmocka_unit_test_setup(test_chunked_batch, flush),
        cmocka_unit_test_setup(test_redis_down, flush),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
