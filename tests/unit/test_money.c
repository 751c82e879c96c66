/* Exact money: JSON numbers to minor units and back to Salesforce decimal strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sync/money.h"

/* Parse the JSON text of one number (as jansson would hand it to us) at scale. */
static int parse(const char *text, int scale, int64_t *minor)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    int rc = pg_money_parse(v, scale, minor);
    json_decref(v);
    return rc;
}

static void parses_exactly(void **state)
{
    int64_t m = 0;
    assert_int_equal(parse("313.9", 2, &m), 0);
    assert_int_equal(m, 31390);
    assert_int_equal(parse("292", 2, &m), 0); /* a JSON integer */
    assert_int_equal(m, 29200);
    assert_int_equal(parse("-29.5", 2, &m), 0); /* discounts are negative */
    assert_int_equal(m, -2950);
    /* float-hostile values: each is not representable as a double */
    assert_int_equal(parse("19.99", 2, &m), 0);
    assert_int_equal(m, 1999);
    assert_int_equal(parse("0.07", 2, &m), 0);
    assert_int_equal(m, 7);
    assert_int_equal(parse("0.1", 2, &m), 0);
    assert_int_equal(m, 10);
    assert_int_equal(parse("1.005", 3, &m), 0);
    assert_int_equal(m, 1005);
    assert_int_equal(parse("0", 2, &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(parse("-0.01", 2, &m), 0);
    assert_int_equal(m, -1);
    assert_int_equal(parse("1e2", 2, &m), 0); /* exponent form is still a number */
    assert_int_equal(m, 10000);
    assert_int_equal(parse("500", 0, &m), 0); /* yen */
    assert_int_equal(m, 500);
    /* large, but still exact: 99,999,999,999.99 */
    assert_int_equal(parse("99999999999.99", 2, &m), 0);
    assert_int_equal(m, 9999999999999LL);
    /* the double sum of 0.1 and 0.2 is 0.30000000000000004: still 30 cents */
    json_t *sum = json_real(0.1 + 0.2);
    assert_int_equal(pg_money_parse(sum, 2, &m), 0);
    assert_int_equal(m, 30);
    json_decref(sum);
}

static void rejects_what_is_not_exact(void **state)
{
    int64_t m = 42;
    /* more decimals than the currency: never silently rounded */
    assert_int_equal(parse("29.505", 2, &m), PG_EINVAL);
    assert_int_equal(parse("0.001", 2, &m), PG_EINVAL);
    assert_int_equal(parse("31.285714", 2, &m), PG_EINVAL);
    assert_int_equal(parse("0.5", 0, &m), PG_EINVAL);
    assert_int_equal(m, 42); /* untouched on failure */
    /* not numbers */
    assert_int_equal(parse("\"313.90\"", 2, &m), PG_EINVAL);
    assert_int_equal(parse("null", 2, &m), PG_EINVAL);
    assert_int_equal(parse("true", 2, &m), PG_EINVAL);
    assert_int_equal(pg_money_parse(NULL, 2, &m), PG_EINVAL);
    /* out of range, both paths */
    assert_int_equal(parse("100000000000000", 2, &m), PG_EINVAL);
    assert_int_equal(parse("1e300", 2, &m), PG_EINVAL);
    assert_int_equal(parse("9223372036854775807", 2, &m), PG_EINVAL);
    /* a bad scale */
    assert_int_equal(parse("1", -1, &m), PG_EINVAL);
    assert_int_equal(parse("1", PG_MONEY_MAX_SCALE + 1, &m), PG_EINVAL);
    assert_int_equal(m, 42);
}

static void formats_decimal_strings(void **state)
{
    char b[32];
    assert_int_equal(pg_money_format(31390, 2, b, sizeof b), 0);
    assert_string_equal(b, "313.90");
    assert_int_equal(pg_money_format(-2950, 2, b, sizeof b), 0);
    assert_string_equal(b, "-29.50");
    assert_int_equal(pg_money_format(-5, 2, b, sizeof b), 0);
    assert_string_equal(b, "-0.05");
    assert_int_equal(pg_money_format(0, 2, b, sizeof b), 0);
    assert_string_equal(b, "0.00");
    assert_int_equal(pg_money_format(292, 0, b, sizeof b), 0);
    assert_string_equal(b, "292");
    assert_int_equal(pg_money_format(5, 3, b, sizeof b), 0);
    assert_string_equal(b, "0.005");
    assert_int_equal(pg_money_format(INT64_MIN, 2, b, sizeof b), 0);
    assert_string_equal(b, "-92233720368547758.08");
    /* too small a buffer: an error and an empty string, never a truncated amount */
    assert_int_equal(pg_money_format(31390, 2, b, 5), PG_ETOOLARGE);
    assert_string_equal(b, "");
    assert_int_equal(pg_money_format(1, 9, b, sizeof b), PG_EINVAL);
}

static void rescales_half_away_from_zero(void **state)
{
    assert_int_equal(pg_money_rescale(31285714, 6, 2), 3129); /* MICROS' inclTax 31.285714 */
    assert_int_equal(pg_money_rescale(-31285714, 6, 2), -3129);
    assert_int_equal(pg_money_rescale(125, 1, 0), 13);
    assert_int_equal(pg_money_rescale(-125, 1, 0), -13);
    assert_int_equal(pg_money_rescale(124, 1, 0), 12);
    assert_int_equal(pg_money_rescale(-124, 1, 0), -12);
    assert_int_equal(pg_money_rescale(77, 2, 2), 77);
}

static void round_trip(void **state)
{
    /* every cent from -20.00 to 20.00, written as a JSON real, comes back exactly */
    char b[32];
    for (int64_t c = -2000; c <= 2000; c++) {
        assert_int_equal(pg_money_format(c, 2, b, sizeof b), 0);
        json_t *v = json_loads(b, JSON_DECODE_ANY, NULL);
        int64_t m = 0;
        assert_int_equal(pg_money_parse(v, 2, &m), 0);
        assert_int_equal(m, c);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_exactly),
        cmocka_unit_test(rejects_what_is_not_exact),
        cmocka_unit_test(formats_decimal_strings),
        cmocka_unit_test(rescales_half_away_from_zero),
        cmocka_unit_test(round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
