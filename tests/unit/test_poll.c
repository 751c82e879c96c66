/*
 * The poller's pure helpers (sync/poll.c): business-date arithmetic for the re-poll window and
 * the dimension names JSON the transform reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/metrics.h"
#include "sync/poll.h"

static void dates_back_across_months_and_leap_days(void **state)
{
    char d[16];
    assert_int_equal(pg_poll_date_minus("2026-11-20", 0, d, sizeof d), PG_OK);
    assert_string_equal(d, "2026-11-20");
    assert_int_equal(pg_poll_date_minus("2026-11-20", 2, d, sizeof d), PG_OK);
    assert_string_equal(d, "2026-11-18");
    assert_int_equal(pg_poll_date_minus("2026-03-01", 1, d, sizeof d), PG_OK);
    assert_string_equal(d, "2026-02-28");
    assert_int_equal(pg_poll_date_minus("2024-03-01", 1, d, sizeof d), PG_OK);
    assert_string_equal(d, "2024-02-29");
    assert_int_equal(pg_poll_date_minus("2027-01-02", 3, d, sizeof d), PG_OK);
    assert_string_equal(d, "2026-12-30");
    assert_int_equal(pg_poll_date_minus("2026-02-30", 1, d, sizeof d), PG_EINVAL);
    assert_int_equal(pg_poll_date_minus("2026-11-20T00:00:00", 1, d, sizeof d), PG_EINVAL);
    assert_int_equal(pg_poll_date_minus("2026-11-20", 1, d, 10), PG_EINVAL);
}

static void dimension_names_for_the_transform(void **state)
{
    json_t *mi =
        json_loads("{\"locRef\":\"1234\",\"menuItems\":[{\"num\":7021,\"name\":\"Burger\"},"
                   "{\"num\":6,\"name\":\"Cheese\"},{\"num\":\"x\",\"name\":\"bad\"},"
                   "{\"num\":8}]}",
                   0, NULL);
    json_t *tm = json_loads("{\"tenderMedias\":[{\"num\":1,\"name\":\"Cash\"}]}", 0, NULL);
    json_t *ds = json_loads("{\"discounts\":[{\"num\":12,\"name\":\"Staff\"}]}", 0, NULL);
    json_t *sc = json_loads("{\"serviceCharges\":[]}", 0, NULL);
    json_t *d = pg_poll_dims_json(mi, tm, ds, sc, NULL);
    json_t *want = json_loads("{\"menuItems\":{\"7021\":\"Burger\",\"6\":\"Cheese\"},"
                              "\"tenderMedia\":{\"1\":\"Cash\"},\"discounts\":{\"12\":\"Staff\"},"
                              "\"serviceCharges\":{}}",
                              0, NULL);
    assert_true(json_equal(d, want));
    /* a dimension that failed this time keeps its former names; one never fetched is left out */
    json_t *d2 = pg_poll_dims_json(NULL, tm, NULL, NULL, d);
    assert_true(json_equal(d2, want));
    json_t *d3 = pg_poll_dims_json(NULL, tm, NULL, NULL, NULL);
    assert_int_equal(json_object_size(d3), 1);
    assert_non_null(json_object_get(d3, "tenderMedia"));
    json_decref(d3);
    json_decref(d2);
    json_decref(d);
    json_decref(want);
    json_decref(mi);
    json_decref(tm);
    json_decref(ds);
    json_decref(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dates_back_across_months_and_leap_days),
        cmocka_unit_test(dimension_names_for_the_transform),
    };
    /* (also links server/metrics.o ahead of sync/poll.o, whose collector uses it) */
    pg_metrics_reset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
