/*
 * Platform Event callbacks: the JSON an Apex trigger or Flow posts to the gateway, shaped like
 * the CometD message of salesforce-wire.md §2.2:
 *   {"data":{"schema":"…","payload":{…},"event":{"EventUuid":"…","replayId":18734}},
 *    "channel":"/event/Loyalty_Update__e"}
 * either one such object or an array of them.
 */
#ifndef PG_SF_EVENTS_H
#define PG_SF_EVENTS_H

#include <stddef.h>

#include <jansson.h>

#include "server/error.h"

/* Deeper JSON than this is refused as a whole (Flow HTTP callouts allow at most 15 levels). */
#define PG_SF_EVENTS_MAX_DEPTH 32

struct pg_sf_event {
    int ok;             /* 0: this event was rejected, error says why */
    char error[160];    /* when !ok: the first problem found (names keys, never echoes values) */
    char *uuid;         /* data.event.EventUuid, lower-cased; NULL when missing/invalid */
    char *channel;      /* "/event/Loyalty_Update__e"; NULL when missing/invalid */
    char *event_type;   /* "Loyalty_Update__e"; NULL when channel is */
    char *replay_id;    /* data.event.replayId as text, never arithmetic; NULL when absent */
    char *created_date; /* data.payload.CreatedDate (a valid datetime) or NULL */
    json_t *payload;    /* data.payload (owned reference); NULL when missing */
};

/**
 * Parse a callback body (duplicate keys refused at every level). Whole-body errors — not JSON,
 * neither an object nor an array, an empty array, deeper than PG_SF_EVENTS_MAX_DEPTH, max_events
 * of 0 — are PG_EINVAL; more than max_events events is PG_ETOOLARGE; why says which.
 * Per-event problems (not an object; missing/invalid data.event.EventUuid, which must be a UUID;
 * missing data.payload object; channel not "/event/<Name>__e"; replayId neither number nor
 * string; CreatedDate present but not a Salesforce datetime) mark only that event !ok and the
 * rest are still parsed, so the handler can answer 202 with a result per event.
 * Ownership: body borrowed; on PG_OK *events is a new array of *n (>= 1), free with
 * pg_sf_events_free; on failure *events is NULL and *n 0.
 */
int pg_sf_events_parse(const char *body,
                       size_t len,
                       size_t max_events,
                       struct pg_sf_event **events,
                       size_t *n,
                       char *why,
                       size_t whysz) PG_WARN_UNUSED;

/** Free an array returned by pg_sf_events_parse. NULL is a no-op. */
void pg_sf_events_free(struct pg_sf_event *events, size_t n);

#endif
