/* Redis URL parsing (store/redis.h): accepted forms, defaults, and what must be rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "store/redis.h"

static void test_tcp_defaults(void **state)
{
    struct pg_redis_addr a;
    assert_int_equal(pg_redis_url_parse("redis://localhost", &a), PG_OK);
    assert_false(a.is_unix);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.db, 0);
    assert_string_equal(a.user, "");
    assert_string_equal(a.password, "");

    assert_int_equal(pg_redis_url_parse("redis://127.0.0.1:6380/", &a), PG_OK);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 0);
}

static void test_tcp_full(void **state)
{
    struct pg_redis_addr a;
    assert_int_equal(pg_redis_url_parse("redis://:s3cret@redis.internal:7000/3", &a), PG_OK);
    assert_string_equal(a.host, "redis.internal");
    assert_int_equal(a.port, 7000);
    assert_int_equal(a.db, 3);
    assert_string_equal(a.user, "");
    assert_string_equal(a.password, "s3cret");

    assert_int_equal(pg_redis_url_parse("redis://gw:p%40ss:w@rd@h:1/15", &a), PG_OK);
    assert_string_equal(a.user, "gw");
    assert_string_equal(a.password, "p@ss:w@rd"); /* last '@' ends the userinfo */
    assert_string_equal(a.host, "h");
    assert_int_equal(a.port, 1);
    assert_int_equal(a.db, 15);

    assert_int_equal(pg_redis_url_parse("redis://[::1]:6390/2", &a), PG_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 6390);
    assert_int_equal(a.db, 2);

    assert_int_equal(pg_redis_url_parse("redis://h:65535/2147483647", &a), PG_OK);
    assert_int_equal(a.port, 65535);
    assert_int_equal(a.db, 2147483647);
}

static void test_unix(void **state)
{
    struct pg_redis_addr a;
    assert_int_equal(pg_redis_url_parse("unix:///run/redis/redis.sock", &a), PG_OK);
    assert_true(a.is_unix);
    assert_string_equal(a.path, "/run/redis/redis.sock");
    assert_int_equal(a.db, 0);
    assert_string_equal(a.password, "");

    assert_int_equal(pg_redis_url_parse("unix:///tmp/r.sock?password=a%26b&db=4&user=u", &a),
                     PG_OK);
    assert_string_equal(a.path, "/tmp/r.sock");
    assert_int_equal(a.db, 4);
    assert_string_equal(a.password, "a&b");
    assert_string_equal(a.user, "u");
}

static void test_rejects(void **state)
{
    static const char *bad[] = {
        "",
        "localhost:6379",
        "http://localhost",
        "rediss://localhost", /* no TLS in hiredis 0.14 */
        "redis://",
        "redis://:6379",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:-1",
        "redis://host:+80",
        "redis://host:80x",
        "redis://host:",
        "redis://host/abc",
        "redis://host/-1",
        "redis://host/2147483648",
        "redis://host/1/2",
        "redis://ho st",
        "redis://host?db=1",
        "redis://password@host", /* the colon is required: [[user]:password@] */
        "redis://user:@host",
        "redis://[::1",
        "redis://[::1]x",
        "redis://h:1/0 ",
        "redis://:p%4@host",
        "redis://:p%00x@host",
        "unix://",
        "unix://relative.sock",
        "unix:///",
        "unix:///tmp/r.sock?db=x",
        "unix:///tmp/r.sock?db=1&db=2",
        "unix:///tmp/r.sock?color=red",
        "unix:///tmp/r.sock?db",
        "unix:///tmp/r.sock?db=1&",
        "unix:///tmp/r.sock?password=",
        "unix:///"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock", /* longer than sun_path */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct pg_redis_addr a;
        memset(&a, 'x', sizeof a);
        int rc = pg_redis_url_parse(bad[i], &a);
        if (rc != PG_EINVAL)
            fail_msg("accepted bad URL \"%s\"", bad[i]);
        assert_int_equal(a.port, 0); /* cleared, never half-filled */
    }
    struct pg_redis_addr a;
    assert_int_equal(pg_redis_url_parse(NULL, &a), PG_EINVAL);
}

static void test_init_validates(void **state)
{
    struct pg_redis_opts o = {.url = "redis://nope:99999"};
    assert_int_equal(pg_redis_init(&o), PG_EINVAL);
    o.url = "redis://127.0.0.1:1/0"; /* nothing listens there: init must still succeed */
    assert_int_equal(pg_redis_init(&o), PG_OK);
    o.reconnect_min_ms = 500;
    o.reconnect_max_ms = 100;
    assert_int_equal(pg_redis_init(&o), PG_EINVAL);
    pg_redis_shutdown();
    /* Not initialised: commands fail cleanly instead of crashing. */
    assert_int_not_equal(pg_redis_ping(), PG_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_defaults),   cmocka_unit_test(test_tcp_full),
        cmocka_unit_test(test_unix),           cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_init_validates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
