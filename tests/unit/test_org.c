/*
 * Salesforce ids and the Outbound Message org allow-list. Expected 18-char forms come from
 * salesforce-wire.md (computed there independently of auth/org.c). No sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/org.h"

#define ORG15 "00D5g000004XyZ1"
#define ORG18 "00D5g000004XyZ1EAK"

static void to18_known_ids(void **state)
{
    static const char *const pairs[][2] = {
        {"00D5g000004XyZ1", "00D5g000004XyZ1EAK"}, {"0035g00000K1tbP", "0035g00000K1tbPAAR"},
        {"0035g00000K1tb0", "0035g00000K1tb0AAB"}, {"04l5g00000Gx7Qz", "04l5g00000Gx7QzAAJ"},
        {"04k5g000000CaRk", "04k5g000000CaRkAAK"}, {"AAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAA555"},
        {"zzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzAAA"},
    };
    char out[19];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        assert_int_equal(pg_sf_id_to18(pairs[i][0], out, sizeof out), 0);
        assert_string_equal(out, pairs[i][1]);
        /* an 18-char id with the right suffix comes back unchanged */
        assert_int_equal(pg_sf_id_to18(pairs[i][1], out, sizeof out), 0);
        assert_string_equal(out, pairs[i][1]);
    }
    assert_int_equal(pg_sf_id_to18(ORG15, out, 18), PG_EINVAL); /* no room for the NUL */
    assert_int_equal(pg_sf_id_to18("00D5g000004XyZ1EAA", out, sizeof out), PG_EINVAL);
    assert_string_equal(out, "");
    assert_int_equal(pg_sf_id_to18("short", out, sizeof out), PG_EINVAL);
    assert_int_equal(pg_sf_id_to18(NULL, out, sizeof out), PG_EINVAL);
}

static void id_valid(void **state)
{
    assert_true(pg_sf_id_valid(ORG15));
    assert_true(pg_sf_id_valid(ORG18));
    assert_false(pg_sf_id_valid("00D5g000004XyZ1EAA"));  /* wrong suffix */
    assert_false(pg_sf_id_valid("00D5g000004XyZ1eak"));  /* suffix is upper case by definition */
    assert_false(pg_sf_id_valid("00D5g000004xyZ1EAK"));  /* case changed in the prefix */
    assert_false(pg_sf_id_valid("00D5g000004XyZ"));      /* 14 */
    assert_false(pg_sf_id_valid("00D5g000004XyZ1E"));    /* 16 */
    assert_false(pg_sf_id_valid("00D5g000004XyZ1EA"));   /* 17 */
    assert_false(pg_sf_id_valid("00D5g000004XyZ1EAKX")); /* 19 */
    assert_false(pg_sf_id_valid("00D5g000004XyZ-"));
    assert_false(pg_sf_id_valid("00D5g000004XyZ1 "));
    assert_false(pg_sf_id_valid("00D5g000004Xy\xc3\xa9"));
    assert_false(pg_sf_id_valid(""));
    assert_false(pg_sf_id_valid(NULL));
}

static void allowed_15_vs_18(void **state)
{
    const char *const l15[] = {ORG15};
    const char *const l18[] = {ORG18};
    assert_true(pg_org_allowed(l15, 1, ORG15));
    assert_true(pg_org_allowed(l15, 1, ORG18));
    assert_true(pg_org_allowed(l18, 1, ORG15));
    assert_true(pg_org_allowed(l18, 1, ORG18));
}

static void wrong_suffix(void **state)
{
    const char *const l15[] = {ORG15};
    const char *const l18[] = {ORG18};
    /* same prefix, forged suffix: never allowed, whichever form the list holds */
    assert_false(pg_org_allowed(l15, 1, "00D5g000004XyZ1AAA"));
    assert_false(pg_org_allowed(l18, 1, "00D5g000004XyZ1AAA"));
    /* a list entry with a wrong suffix matches nothing, not even its own prefix */
    const char *const bad[] = {"00D5g000004XyZ1AAA"};
    assert_false(pg_org_allowed(bad, 1, ORG15));
    assert_false(pg_org_allowed(bad, 1, "00D5g000004XyZ1AAA"));
}

static void case_difference(void **state)
{
    const char *const l15[] = {ORG15};
    const char *const l18[] = {ORG18};
    /* 15-char ids are case-sensitive: another org */
    assert_false(pg_org_allowed(l15, 1, "00d5g000004XyZ1"));
    assert_false(pg_org_allowed(l18, 1, "00d5g000004XyZ1"));
    /* and the case-insensitive 18-char form of that other org differs in its suffix */
    assert_false(pg_org_allowed(l18, 1, "00d5g000004XyZ1AAK"));
    assert_false(pg_org_allowed(l15, 1, "00D5G000004XYZ1EAK")); /* upper-cased: bad suffix */
}

static void lists(void **state)
{
    const char *const l[] = {"00Dxx0000001gPL", NULL, "garbage", "00D5g000004XyZ1EAK",
                             "00Dyy0000009zzz"};
    assert_true(pg_org_allowed(l, 5, ORG15));
    assert_true(pg_org_allowed(l, 5, "00Dyy0000009zzz"));
    assert_true(pg_org_allowed(l, 5, "00Dxx0000001gPL"));
    assert_false(pg_org_allowed(l, 3, ORG15)); /* n bounds the scan */
    assert_false(pg_org_allowed(l, 5, "00Dzz0000009zzz"));
    assert_false(pg_org_allowed(l, 0, ORG15));
    assert_false(pg_org_allowed(NULL, 0, ORG15));
}

static void garbage(void **state)
{
    const char *const l[] = {ORG15, "garbage"};
    assert_false(pg_org_allowed(l, 2, NULL));
    assert_false(pg_org_allowed(l, 2, ""));
    assert_false(pg_org_allowed(l, 2, "garbage"));
    assert_false(pg_org_allowed(l, 2, "00D5g000004XyZ1 "));
    assert_false(pg_org_allowed(l, 2, " 00D5g000004XyZ1"));
    assert_false(pg_org_allowed(l, 2, "00D5g000004XyZ"));
    assert_false(pg_org_allowed(l, 2, "00D5g000004XyZ1E"));
    assert_false(pg_org_allowed(l, 2, "00D5g000004XyZ1EAK0"));
    assert_false(pg_org_allowed(l, 2, "00D5g000004XyZ1\n"));
    assert_false(pg_org_allowed(l, 2, "00D5g00000'XyZ1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(to18_known_ids),   cmocka_unit_test(id_valid),
        cmocka_unit_test(allowed_15_vs_18), cmocka_unit_test(wrong_suffix),
        cmocka_unit_test(case_difference),  cmocka_unit_test(lists),
        cmocka_unit_test(garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
