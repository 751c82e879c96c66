#include "salesforce/events.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/datetime.h"

static void set_msg(char *dst, size_t dstsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *dst, size_t dstsz, const char *fmt, ...)
{
    if (!dst || !dstsz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, dstsz, fmt, ap);
    va_end(ap);
}

/* Depth of nested arrays/objects (a scalar is 0). Stops counting past limit. */
static int depth_of(json_t *j, int limit)
{
    if (limit < 0)
        return 0;
    int max = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            int d = depth_of(v, limit - 1);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            int d = depth_of(v, limit - 1);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

static int hexdig(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 8-4-4-4-12 hex digits (any version: Salesforce documents EventUuid only as a UUID). */
static int uuid_ok(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!hexdig(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* "/event/<Name>__e" with Name an API name: a letter, then letters, digits and '_'. */
static int channel_ok(const char *s)
{
    static const char pre[] = "/event/";
    size_t pl = sizeof pre - 1, n = strlen(s);
    if (n <= pl + 3 || n > pl + 80 || strncmp(s, pre, pl) || strcmp(s + n - 3, "__e"))
        return 0;
    const char *name = s + pl;
    if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z')))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return name + 3 < s + n; /* something before "__e" */
}

/* Keep the first error of an event only; later checks still fill the other fields. */
#define REJECT(ev, ...)                                                                            \
    do {                                                                                           \
        if ((ev)->ok) {                                                                            \
            (ev)->ok = 0;                                                                          \
            set_msg((ev)->error, sizeof(ev)->error, __VA_ARGS__);                                  \
        }                                                                                          \
    } while (0)

static int parse_one(json_t *j, struct pg_sf_event *ev)
{
    ev->ok = 1;
    ev->error[0] = '\0';
    if (!json_is_object(j)) {
        REJECT(ev, "event is not a JSON object");
        return PG_OK;
    }
    json_t *ch = json_object_get(j, "channel");
    if (!json_is_string(ch) || !channel_ok(json_string_value(ch))) {
        REJECT(ev, "channel is missing or not /event/<Name>__e");
    } else {
        const char *c = json_string_value(ch);
        if (!(ev->channel = strdup(c)) || !(ev->event_type = strdup(c + strlen("/event/"))))
            return PG_ENOMEM;
    }
    json_t *data = json_object_get(j, "data");
    if (!json_is_object(data)) {
        REJECT(ev, "data is missing or not an object");
        return PG_OK;
    }
    json_t *meta = json_object_get(data, "event");
    json_t *uuid = json_is_object(meta) ? json_object_get(meta, "EventUuid") : NULL;
    if (!json_is_string(uuid) || !uuid_ok(json_string_value(uuid))) {
        REJECT(ev, "data.event.EventUuid is missing or not a UUID");
    } else {
        /* Lower-cased so one event always has one dedupe key. */
        if (!(ev->uuid = strdup(json_string_value(uuid))))
            return PG_ENOMEM;
        for (char *p = ev->uuid; *p; p++)
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
    }
    json_t *rid = json_is_object(meta) ? json_object_get(meta, "replayId") : NULL;
    if (json_is_integer(rid)) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(rid));
        if (!(ev->replay_id = strdup(tmp)))
            return PG_ENOMEM;
    } else if (json_is_string(rid) && json_string_length(rid) > 0 &&
               json_string_length(rid) <= 64) {
        if (!(ev->replay_id = strdup(json_string_value(rid))))
            return PG_ENOMEM;
    } else if (rid && !json_is_null(rid)) {
        REJECT(ev, "data.event.replayId is not an integer or a short string");
    }
    json_t *payload = json_object_get(data, "payload");
    if (!json_is_object(payload)) {
        REJECT(ev, "data.payload is missing or not an object");
        return PG_OK;
    }
    ev->payload = json_incref(payload);
    json_t *cd = json_object_get(payload, "CreatedDate");
    int64_t ms;
    if (json_is_string(cd) && pg_sf_parse_datetime(json_string_value(cd), &ms) == PG_OK) {
        if (!(ev->created_date = strdup(json_string_value(cd))))
            return PG_ENOMEM;
    } else if (cd && !json_is_null(cd)) {
        REJECT(ev, "data.payload.CreatedDate is not a datetime");
    }
    return PG_OK;
}

int pg_sf_events_parse(const char *body,
                       size_t len,
                       size_t max_events,
                       struct pg_sf_event **events,
                       size_t *n,
                       char *why,
                       size_t whysz)
{
    set_msg(why, whysz, "%s", "");
    if (!events || !n)
        return PG_EINVAL;
    *events = NULL;
    *n = 0;
    if (!body || max_events == 0) {
        set_msg(why, whysz, "no body");
        return PG_EINVAL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jerr.text names the problem (e.g. the duplicate key), not the value. */
        set_msg(why, whysz, "invalid JSON at line %d: %s", jerr.line, jerr.text);
        return PG_EINVAL;
    }
    int rc = PG_EINVAL;
    size_t count = 0;
    if (json_is_object(root)) {
        count = 1;
    } else if (json_is_array(root)) {
        count = json_array_size(root);
    } else {
        set_msg(why, whysz, "body must be an event object or an array of them");
        goto out;
    }
    if (count == 0) {
        set_msg(why, whysz, "empty array");
        goto out;
    }
    if (count > max_events) {
        set_msg(why, whysz, "%zu events, at most %zu allowed", count, max_events);
        rc = PG_ETOOLARGE;
        goto out;
    }
    if (depth_of(root, PG_SF_EVENTS_MAX_DEPTH + 1) > PG_SF_EVENTS_MAX_DEPTH) {
        set_msg(why, whysz, "JSON nested deeper than %d levels", PG_SF_EVENTS_MAX_DEPTH);
        goto out;
    }
    struct pg_sf_event *evs = calloc(count, sizeof *evs);
    if (!evs) {
        rc = PG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *j = json_is_array(root) ? json_array_get(root, i) : root;
        if ((rc = parse_one(j, &evs[i])) != PG_OK) {
            pg_sf_events_free(evs, count);
            set_msg(why, whysz, "out of memory");
            goto out;
        }
    }
    *events = evs;
    *n = count;
    rc = PG_OK;
out:
    json_decref(root);
    return rc;
}

void pg_sf_events_free(struct pg_sf_event *events, size_t n)
{
    if (!events)
        return;
    for (size_t i = 0; i < n; i++) {
        free(events[i].uuid);
        free(events[i].channel);
        free(events[i].event_type);
        free(events[i].replay_id);
        free(events[i].created_date);
        json_decref(events[i].payload);
    }
    free(events);
}
