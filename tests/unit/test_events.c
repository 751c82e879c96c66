/*
 * Platform Event callbacks (the CometD-shaped JSON of salesforce-wire.md §2.2, one object or an
 * array) and Salesforce datetime parsing. No sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "salesforce/datetime.h"
#include "salesforce/events.h"
#include "server/buf.h"

static char why[256];

#define UUID1 "2ec0e371-1395-457f-9275-be1b527a72f7"
#define UUID2 "6da65473-8293-4d5a-a3a6-9522b4037e5f"

/* One event in the §2.2 shape; uuid/channel/payload spliced in as raw JSON. */
#define EVENT(uuid_json, payload_json, channel_json)                                               \
    "{\"data\":{\"schema\":\"dffQ2QLzDNHqwB8_sHMxdA\",\"payload\":" payload_json                   \
    ",\"event\":{\"EventUuid\":" uuid_json ",\"replayId\":18734}},\"channel\":" channel_json "}"
#define PAYLOAD                                                                                    \
    "{\"CreatedDate\":\"2026-03-02T14:05:11.517Z\",\"CreatedById\":\"0055g00000ABCDE\","           \
    "\"Contact_Id__c\":\"0035g00000K1tbPAAR\",\"Loyalty_Id__c\":\"LY-000123\","                    \
    "\"Old_Tier__c\":\"Silver\",\"New_Tier__c\":\"Gold\",\"Points_Balance__c\":12850}"
#define CH "\"/event/Loyalty_Tier_Changed__e\""
#define GOOD1 EVENT("\"" UUID1 "\"", PAYLOAD, CH)

static int parse(const char *body, size_t max, struct pg_sf_event **ev, size_t *n)
{
    why[0] = '\0';
    return pg_sf_events_parse(body, strlen(body), max, ev, n, why, sizeof why);
}

static void expect_body_error(const char *body, size_t max, int rc, const char *needle)
{
    struct pg_sf_event *ev = (void *)1;
    size_t n = 7;
    int got = parse(body, max, &ev, &n);
    if (got != rc)
        fail_msg("expected %d, got %d (%s)", rc, got, why);
    assert_null(ev);
    assert_int_equal(n, 0);
    if (!strstr(why, needle))
        fail_msg("reason \"%s\" does not mention \"%s\"", why, needle);
}

static void single(void **state)
{
    struct pg_sf_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(parse(GOOD1, 10, &ev, &n), 0);
    assert_int_equal(n, 1);
    assert_true(ev[0].ok);
    assert_string_equal(ev[0].error, "");
    assert_string_equal(ev[0].uuid, UUID1);
    assert_string_equal(ev[0].channel, "/event/Loyalty_Tier_Changed__e");
    assert_string_equal(ev[0].event_type, "Loyalty_Tier_Changed__e");
    assert_string_equal(ev[0].replay_id, "18734");
    assert_string_equal(ev[0].created_date, "2026-03-02T14:05:11.517Z");
    assert_true(json_is_object(ev[0].payload));
    assert_string_equal(json_string_value(json_object_get(ev[0].payload, "New_Tier__c")), "Gold");
    assert_int_equal(json_integer_value(json_object_get(ev[0].payload, "Points_Balance__c")),
                     12850);
    pg_sf_events_free(ev, n);
}

static void array_of_events(void **state)
{
    /* upper-case UUID is normalised; replayId as a string stays text; no CreatedDate is fine */
    static const char body[] =
        "[" GOOD1 "," EVENT("\"6DA65473-8293-4D5A-A3A6-9522B4037E5F\"",
                            "{\"Loyalty_Id__c\":\"LY-000124\"}", "\"/event/Points_Earned__e\"") "]";
    struct pg_sf_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(parse(body, 10, &ev, &n), 0);
    assert_int_equal(n, 2);
    assert_true(ev[0].ok);
    assert_true(ev[1].ok);
    assert_string_equal(ev[1].uuid, UUID2);
    assert_string_equal(ev[1].event_type, "Points_Earned__e");
    assert_null(ev[1].created_date);
    pg_sf_events_free(ev, n);

    /* replayId: a huge opaque string is kept verbatim; absent is NULL */
    static const char b2[] = "{\"data\":{\"payload\":{},\"event\":{\"EventUuid\":\"" UUID1
                             "\",\"replayId\":\"AAAAAAAAAAAA/w==\"}},\"channel\":" CH "}";
    assert_int_equal(parse(b2, 1, &ev, &n), 0);
    assert_true(ev[0].ok);
    assert_string_equal(ev[0].replay_id, "AAAAAAAAAAAA/w==");
    pg_sf_events_free(ev, n);
    static const char b3[] =
        "{\"data\":{\"payload\":{},\"event\":{\"EventUuid\":\"" UUID1 "\"}},\"channel\":" CH "}";
    assert_int_equal(parse(b3, 1, &ev, &n), 0);
    assert_true(ev[0].ok);
    assert_null(ev[0].replay_id);
    pg_sf_events_free(ev, n);
}

static void max_exceeded(void **state)
{
    struct pg_buf b;
    pg_buf_init(&b, 1 << 20);
    assert_int_equal(pg_buf_puts(&b, "["), 0);
    for (int i = 0; i < 11; i++)
        assert_int_equal(pg_buf_printf(&b, "%s" GOOD1, i ? "," : ""), 0);
    assert_int_equal(pg_buf_puts(&b, "]"), 0);
    expect_body_error(b.data, 10, PG_ETOOLARGE, "11 events, at most 10");
    struct pg_sf_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(parse(b.data, 11, &ev, &n), 0); /* exactly max is fine */
    assert_int_equal(n, 11);
    pg_sf_events_free(ev, n);
    pg_buf_free(&b);
    expect_body_error("[" GOOD1 "," GOOD1 "]", 1, PG_ETOOLARGE, "at most 1");
    expect_body_error(GOOD1, 0, PG_EINVAL, "no body");
}

static void per_event_errors(void **state)
{
    static const char body[] = "[" GOOD1 ","                      /* 0 ok */
        EVENT("\"not-a-uuid\"", PAYLOAD, CH) ","                  /* 1 */
        EVENT("\"" UUID2 "\"", "[]", CH) ","                      /* 2 */
        EVENT("\"" UUID2 "\"", PAYLOAD, "\"/topic/Loyalty\"") "," /* 3 */
        EVENT("\"" UUID2 "\"", PAYLOAD,
              "\"/event/Loyalty_Tier__c\"") ","                     /* 4 */
                                            "{\"channel\":" CH "}," /* 5 */
                                            "42,"                   /* 6 */
                                            "{\"data\":{\"payload\":{},\"event\":{\"replayId\":1}},"
                                            "\"channel\":" CH "}," /* 7 */
        EVENT("\"" UUID2 "\"", "{\"CreatedDate\":\"yesterday\"}",
              CH) "," /* 8 */
                  "{\"data\":{\"payload\":{},\"event\":{\"EventUuid\":\"" UUID2
                  "\",\"replayId\":[1]}},\"channel\":" CH "}," /* 9 */
        EVENT("\"" UUID2 "\"", PAYLOAD, "\"/event/__e\"") ","  /* 10 */
        EVENT("12345", PAYLOAD, CH)                            /* 11 */
        "]";
    static const char *const expect[] = {
        NULL,
        "EventUuid is missing or not a UUID",
        "data.payload is missing or not an object",
        "channel is missing or not /event/<Name>__e",
        "channel is missing or not /event/<Name>__e",
        "data is missing or not an object",
        "event is not a JSON object",
        "EventUuid is missing or not a UUID",
        "CreatedDate is not a datetime",
        "replayId is not an integer or a short string",
        "channel is missing or not /event/<Name>__e",
        "EventUuid is missing or not a UUID",
    };
    struct pg_sf_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(parse(body, 100, &ev, &n), 0);
    assert_int_equal(n, sizeof expect / sizeof expect[0]);
    for (size_t i = 0; i < n; i++) {
        if (!expect[i]) {
            assert_true(ev[i].ok);
            continue;
        }
        if (ev[i].ok)
            fail_msg("event %zu accepted", i);
        if (!strstr(ev[i].error, expect[i]))
            fail_msg("event %zu: \"%s\" does not mention \"%s\"", i, ev[i].error, expect[i]);
    }
    /* what could be read from a rejected event is still there (for the per-event result) */
    assert_string_equal(ev[3].uuid, UUID2);
    assert_null(ev[3].channel);
    assert_null(ev[1].uuid);
    assert_string_equal(ev[1].event_type, "Loyalty_Tier_Changed__e");
    pg_sf_events_free(ev, n);
}

static void whole_body_errors(void **state)
{
    expect_body_error("", 10, PG_EINVAL, "invalid JSON");
    expect_body_error("not json", 10, PG_EINVAL, "invalid JSON");
    expect_body_error("{\"data\":", 10, PG_EINVAL, "invalid JSON");
    expect_body_error("\"a string\"", 10, PG_EINVAL, "invalid JSON"); /* jansson: no scalars */
    expect_body_error("[]", 10, PG_EINVAL, "empty array");
    expect_body_error("{\"data\":{},\"data\":{}}", 10, PG_EINVAL, "duplicate");
    expect_body_error(
        "{\"data\":{\"payload\":{\"A__c\":1,\"A__c\":2},\"event\":{\"EventUuid\":\"" UUID1
        "\"}},\"channel\":" CH "}",
        10, PG_EINVAL, "duplicate");
    /* nesting */
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    for (int i = 0; i < 40; i++)
        assert_int_equal(pg_buf_puts(&b, "["), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(pg_buf_puts(&b, "]"), 0);
    expect_body_error(b.data, 10, PG_EINVAL, "nested deeper");
    pg_buf_free(&b);
    /* NULL arguments */
    struct pg_sf_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(pg_sf_events_parse(NULL, 0, 10, &ev, &n, why, sizeof why), PG_EINVAL);
    assert_int_equal(pg_sf_events_parse("{}", 2, 10, NULL, &n, why, sizeof why), PG_EINVAL);
    pg_sf_events_free(NULL, 0);
}

static int64_t dt(const char *s)
{
    int64_t ms = -1;
    if (pg_sf_parse_datetime(s, &ms) != 0)
        fail_msg("\"%s\" rejected", s);
    return ms;
}

static void datetime_forms(void **state)
{
    /* 2026-03-02T14:05:11Z = 1772460311 s (date -u -d @1772460311) */
    assert_int_equal(dt("2026-03-02T14:05:11.000Z"), 1772460311000LL);
    assert_int_equal(dt("2026-03-02T14:05:11Z"), 1772460311000LL);
    assert_int_equal(dt("2026-03-02T14:05:11.000+0000"), 1772460311000LL);
    assert_int_equal(dt("2026-03-02T14:05:11.517Z"), 1772460311517LL);
    assert_int_equal(dt("2026-03-02T15:05:11.517+0100"), 1772460311517LL);
    assert_int_equal(dt("2026-03-02T09:05:11.517-05:00"), 1772460311517LL);
    assert_int_equal(dt("2026-03-02T14:05:11.5Z"), 1772460311500LL);
    assert_int_equal(dt("2026-03-02T14:05:11.123456789Z"), 1772460311123LL);
    assert_int_equal(dt("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(dt("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(dt("2024-02-29T00:00:00Z"), 1709164800000LL); /* leap day */
    assert_int_equal(dt("2000-03-01T00:00:00Z"), 951868800000LL);
    assert_int_equal(dt("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    /* ordering is what versions rely on */
    assert_true(dt("2026-03-02T14:05:12.000Z") > dt("2026-03-02T14:05:11.999+0000"));
}

static void datetime_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "2026-03-02",
        "2026-03-02T14:05:11",             /* no zone */
        "2026-03-02 14:05:11Z",            /* space */
        "2026-03-02T14:05Z",               /* no seconds */
        "2026-13-02T14:05:11Z",            /* month */
        "2026-02-29T14:05:11Z",            /* not a leap year */
        "2026-04-31T00:00:00Z",            /* 30-day month */
        "2026-03-00T00:00:00Z",            /* day 0 */
        "2026-03-02T24:00:00Z",            /* hour */
        "2026-03-02T14:60:00Z",            /* minute */
        "2026-03-02T14:05:60Z",            /* leap second */
        "2026-03-02T14:05:11.Z",           /* empty fraction */
        "2026-03-02T14:05:11.0000000000Z", /* 10 fraction digits */
        "2026-03-02T14:05:11.000+00",      /* short offset */
        "2026-03-02T14:05:11.000+2400",
        "2026-03-02T14:05:11.000+0060",
        "2026-03-02T14:05:11.000Zjunk",
        "2026-03-02T14:05:11.000z",
        "0000-01-01T00:00:00Z",
        "+2026-03-02T14:05:11Z",
        "2026-3-2T14:05:11Z",
        "20a6-03-02T14:05:11Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        if (pg_sf_parse_datetime(bad[i], &ms) != PG_EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
    }
    int64_t ms;
    assert_int_equal(pg_sf_parse_datetime(NULL, &ms), PG_EINVAL);
    assert_int_equal(pg_sf_parse_datetime("2026-03-02T14:05:11Z", NULL), PG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single),
        cmocka_unit_test(array_of_events),
        cmocka_unit_test(max_exceeded),
        cmocka_unit_test(per_event_errors),
        cmocka_unit_test(whole_body_errors),
        cmocka_unit_test(datetime_forms),
        cmocka_unit_test(datetime_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
