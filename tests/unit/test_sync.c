/* The field map (Salesforce fields → canonical update) and the retry schedule. No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sync/backoff.h"
#include "sync/update.h"

static const char *map_cfg =
    "{\"Contact\":{\"salesforce_id\":\"Id\",\"loyalty_id\":\"Loyalty_Id__c\","
    "\"tier\":\"Loyalty_Tier__c\",\"points\":\"Loyalty_Points__c\",\"email\":\"Email\","
    "\"version\":\"SystemModstamp\",\"preferences\":{\"prefs\":\"Preferences__c\"}},"
    "\"Loyalty_Update__e\":{\"salesforce_id\":\"Contact_Id__c\",\"tier\":\"Loyalty_Tier__c\"}}";

static struct pg_map *load(const char *cfg, int *rc, char *err, size_t errsz)
{
    json_t *j = json_loads(cfg, 0, NULL);
    struct pg_map *m = NULL;
    *rc = pg_map_new(j, &m, err, errsz);
    json_decref(j);
    return m;
}

static void contact_maps_to_canonical(void **state)
{
    char err[256];
    int rc;
    struct pg_map *m = load(map_cfg, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_true(pg_map_has(m, "Contact"));
    assert_false(pg_map_has(m, "Account"));
    json_t *fields = json_loads(
        "{\"Id\":\"0035g00000K1tbPAAR\",\"Loyalty_Id__c\":\"LY-000123\",\"Loyalty_Tier__c\":"
        "\"Gold\",\"Loyalty_Points__c\":\"12850.0\",\"Email\":null,\"SystemModstamp\":"
        "\"2026-03-02T14:05:11.000Z\",\"Preferences__c\":\"Vegan;Email receipts\","
        "\"Unmapped__c\":\"x\"}",
        0, NULL);
    json_t *u = NULL;
    int64_t version = 0;
    assert_int_equal(
        pg_map_apply(m, "Contact", fields, "outbound_message", &u, &version, err, sizeof err), 0);
    assert_int_equal(version, 1772460311000LL);
    assert_string_equal(json_string_value(json_object_get(u, "salesforce_id")),
                        "0035g00000K1tbPAAR");
    assert_string_equal(json_string_value(json_object_get(u, "tier")), "Gold");
    assert_int_equal(json_integer_value(json_object_get(u, "points")), 12850); /* whole number */
    assert_true(json_is_null(json_object_get(u, "email"))); /* nil stays a clear */
    assert_true(json_is_null(json_object_get(u, "phone"))); /* not mapped */
    assert_null(json_object_get(u, "Unmapped__c"));         /* not carried */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(u, "preferences"), "prefs")),
        "Vegan;Email receipts");
    assert_int_equal(json_integer_value(json_object_get(u, "version")), 1772460311000LL);
    assert_string_equal(json_string_value(json_object_get(u, "source")), "outbound_message");
    json_decref(u);
    json_decref(fields);
    pg_map_free(m);
}

static void event_without_version_field(void **state)
{
    char err[256];
    int rc;
    struct pg_map *m = load(map_cfg, &rc, err, sizeof err);
    json_t *payload =
        json_loads("{\"Contact_Id__c\":\"003A\",\"Loyalty_Tier__c\":\"Silver\"}", 0, NULL);
    json_t *u = NULL;
    int64_t version = 0;
    assert_int_equal(pg_map_apply(m, "Loyalty_Update__e", payload, "platform_event", &u, &version,
                                  err, sizeof err),
                     0);
    assert_int_equal(version, -1); /* ordered by arrival: see README */
    assert_true(json_is_null(json_object_get(u, "version")));
    json_decref(u);
    json_decref(payload);
    pg_map_free(m);
}

static void apply_rejections(void **state)
{
    char err[256];
    int rc;
    struct pg_map *m = load(map_cfg, &rc, err, sizeof err);
    json_t *u = NULL;
    int64_t v;
    json_t *f = json_loads("{\"Loyalty_Tier__c\":\"Gold\"}", 0, NULL);
    assert_int_equal(pg_map_apply(m, "Contact", f, "x", &u, &v, err, sizeof err), PG_EINVAL);
    assert_non_null(strstr(err, "Id"));
    assert_int_equal(pg_map_apply(m, "Account", f, "x", &u, &v, err, sizeof err), PG_EINVAL);
    assert_non_null(strstr(err, "not configured"));
    json_decref(f);
    f = json_loads("{\"Id\":\"003A\",\"SystemModstamp\":\"yesterday\"}", 0, NULL);
    assert_int_equal(pg_map_apply(m, "Contact", f, "x", &u, &v, err, sizeof err), PG_EINVAL);
    assert_non_null(strstr(err, "SystemModstamp"));
    assert_null(u);
    json_decref(f);
    pg_map_free(m);
}

static void config_rejections(void **state)
{
    char err[256];
    int rc;
    struct pg_map *m = load("{\"Contact\":{\"tier\":\"T\"}}", &rc, err, sizeof err);
    assert_int_equal(rc, PG_ECONFIG);
    assert_null(m);
    assert_non_null(strstr(err, "salesforce_id"));
    m = load("{\"Contact\":{\"salesforce_id\":\"Id\",\"teir\":\"T\"}}", &rc, err, sizeof err);
    assert_int_equal(rc, PG_ECONFIG);
    assert_non_null(strstr(err, "unknown key 'mapping.Contact.teir'"));
    m = load("{\"Contact\":{\"salesforce_id\":\"Id\",\"preferences\":{\"a\":1}}}", &rc, err,
             sizeof err);
    assert_int_equal(rc, PG_ECONFIG);
    assert_non_null(strstr(err, "mapping.Contact.preferences.a"));
}

static void backoff_schedule(void **state)
{
    /* The ceiling doubles from base until the cap; the draw is uniform below it. */
    assert_int_equal(pg_backoff_ms(1, 100, 10000, UINT64_MAX, -1), UINT64_MAX % 101);
    for (int attempt = 1; attempt <= 12; attempt++) {
        int64_t ceiling = 100LL << (attempt - 1);
        if (ceiling > 10000)
            ceiling = 10000;
        for (uint64_t r = 0; r < 5000; r += 37) {
            int64_t d = pg_backoff_ms(attempt, 100, 10000, r * 2654435761u, -1);
            assert_true(d >= 0 && d <= ceiling);
        }
        /* the top of the range is reachable: it is full jitter, not "equal jitter" */
        assert_int_equal(pg_backoff_ms(attempt, 100, 10000, (uint64_t)ceiling, -1), ceiling);
    }
    /* a huge attempt number does not overflow */
    assert_true(pg_backoff_ms(1000, 100, 10000, 123456789, -1) <= 10000);
    /* Retry-After is honoured, within the cap */
    assert_int_equal(pg_backoff_ms(1, 100, 10000, 0, 3), 3000);
    assert_int_equal(pg_backoff_ms(1, 100, 10000, 0, 60), 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(contact_maps_to_canonical), cmocka_unit_test(event_without_version_field),
        cmocka_unit_test(apply_rejections),          cmocka_unit_test(config_rejections),
        cmocka_unit_test(backoff_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
