/*
 * Salesforce → posgate intake: Outbound Messages (SOAP) and Platform Event callbacks (JSON).
 *
 * Both follow one rule: acknowledge only what is durable. The message is parsed, checked,
 * mapped to canonical updates, and recorded in Redis by one script (dedupe + newest state +
 * queue + audit); only when Redis has answered (appendfsync always: on disk) do we reply with
 * the Ack / 202. Anything else gets a SOAP fault or a problem+json, so the sender retries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/org.h"
#include "handlers/handlers.h"
#include "salesforce/events.h"
#include "salesforce/outbound.h"
#include "server/config.h"
#include "server/log.h"
#include "sync/ingest.h"
#include "sync/keys.h"
#include "sync/update.h"

#define SOAP_CT "text/xml; charset=utf-8"

/* SOAP 1.1 faults travel with HTTP 500 whether the client or the server is at fault. */
static int soap_fault(struct pg_req *req, const char *code, const char *why)
{
    struct pg_buf b;
    pg_buf_init(&b, 64 * 1024);
    int rc = pg_sf_om_fault(&b, code, why);
    if (rc == PG_OK)
        rc = pg_req_reply(req, 500, SOAP_CT, b.data, b.len);
    pg_buf_free(&b);
    pg_log(PG_LOG_WARN, pg_req_id(req), "sf_outbound.fault", "%s: %s", code, why);
    return rc;
}

static int count_nonempty(char **list)
{
    int n = 0;
    while (list && list[n])
        n++;
    return n;
}

int pg_hnd_sf_outbound(struct pg_req *req)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    size_t len = 0;
    const char *body = pg_req_body(req, &len);
    char why[256] = "";
    struct pg_sf_om *om = NULL;
    struct pg_ingest_item *items = NULL;
    json_t **updates = NULL;
    char(*keys)[160] = NULL;
    enum pg_ingest_result *results = NULL;
    int rc = pg_sf_om_parse(body, len, &om, why, sizeof why);
    if (rc == PG_ENOMEM) { /* our trouble, not the message's: Salesforce should just retry */
        rc = soap_fault(req, "soapenv:Server", "out of memory");
        goto out;
    }
    if (rc) {
        rc = soap_fault(req, "soapenv:Client", why[0] ? why : "not a notifications message");
        goto out;
    }
    /* The org check comes first and is the same whatever else is wrong with the message. */
    int norgs = count_nonempty(cfg->sf_org_ids);
    if (!pg_org_allowed((const char *const *)cfg->sf_org_ids, (size_t)norgs, om->org_id)) {
        rc = soap_fault(req, "soapenv:Client", "OrganizationId is not allowed");
        goto out;
    }
    if (!pg_map_has(pg_hnd.map, om->sobject_type)) {
        snprintf(why, sizeof why, "sObject type %s is not configured", om->sobject_type);
        rc = soap_fault(req, "soapenv:Client", why);
        goto out;
    }
    items = calloc(om->n, sizeof *items);
    updates = calloc(om->n, sizeof *updates);
    keys = calloc(om->n, sizeof *keys);
    results = calloc(om->n, sizeof *results);
    if (!items || !updates || !keys || !results) {
        rc = soap_fault(req, "soapenv:Server", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < om->n; i++) {
        const struct pg_sf_notification *n = &om->notifications[i];
        int64_t version = -1;
        char merr[200];
        if (pg_map_apply(pg_hnd.map, om->sobject_type, n->fields, "outbound_message", &updates[i],
                         &version, merr, sizeof merr) != PG_OK) {
            snprintf(why, sizeof why, "Notification %zu: %s", i + 1, merr);
            rc = soap_fault(req, "soapenv:Client", why);
            goto out;
        }
        /* Notification ids are unique per org; 15-char prefix: the org id's case-safe core */
        snprintf(keys[i], sizeof keys[i], PG_KEY_DEDUPE_OM "%.15s:%s", om->org_id, n->id);
        items[i] = (struct pg_ingest_item){
            .dedupe_key = keys[i],
            .update = updates[i],
            .version = version,
            .msg_id = n->id,
            .source = "outbound_message",
        };
    }
    rc = pg_ingest(items, om->n, (int64_t)cfg->sf_outbound_dedupe_ttl_s * 1000, pg_req_id(req),
                   results);
    if (rc) {
        /* No Ack: Salesforce keeps the message and retries it. */
        snprintf(why, sizeof why, "cannot store the notifications durably right now (%s); retry",
                 pg_errname(rc));
        rc = soap_fault(req, "soapenv:Server", why);
        goto out;
    }
    int queued = 0, dups = 0, stale = 0;
    for (size_t i = 0; i < om->n; i++) {
        queued += results[i] == PG_INGEST_QUEUED;
        dups += results[i] == PG_INGEST_DUPLICATE;
        stale += results[i] == PG_INGEST_STALE;
    }
    json_t *f = json_pack("{s:s, s:i, s:i, s:i, s:i}", "sobject", om->sobject_type, "notifications",
                          (int)om->n, "queued", queued, "duplicates", dups, "stale", stale);
    pg_logj(PG_LOG_INFO, pg_req_id(req), "sf_outbound.acked", f);
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    rc = pg_sf_om_ack(&b);
    if (rc == PG_OK)
        rc = pg_req_reply(req, 200, SOAP_CT, b.data, b.len);
    pg_buf_free(&b);
out:
    for (size_t i = 0; updates && om && i < om->n; i++)
        json_decref(updates[i]);
    free(updates);
    free(items);
    free(keys);
    free(results);
    pg_sf_om_free(om);
    return rc;
}

int pg_hnd_sf_events(struct pg_req *req)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    size_t len = 0;
    const char *body = pg_req_body(req, &len);
    char why[200] = "";
    struct pg_sf_event *ev = NULL;
    size_t n = 0;
    int rc = pg_sf_events_parse(body, len, (size_t)cfg->sf_events_max, &ev, &n, why, sizeof why);
    if (rc == PG_ETOOLARGE)
        return pg_req_problem(req, 413, why, NULL);
    if (rc)
        return pg_req_problem(req, 400, why[0] ? why : "not a Platform Event callback", NULL);

    struct pg_ingest_item *items = calloc(n, sizeof *items);
    json_t **updates = calloc(n, sizeof *updates);
    char(*keys)[160] = calloc(n, sizeof *keys);
    enum pg_ingest_result *results = calloc(n, sizeof *results);
    size_t *index = calloc(n, sizeof *index); /* item → event */
    char(*errors)[200] = calloc(n, sizeof *errors);
    size_t ni = 0;
    if (!items || !updates || !keys || !results || !index || !errors) {
        rc = PG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ev[i].ok) {
            snprintf(errors[i], sizeof errors[i], "%s", ev[i].error);
            continue;
        }
        if (!pg_map_has(pg_hnd.map, ev[i].event_type)) {
            snprintf(errors[i], sizeof errors[i], "event type %s is not configured",
                     ev[i].event_type);
            continue;
        }
        int64_t version = -1;
        if (pg_map_apply(pg_hnd.map, ev[i].event_type, ev[i].payload, "platform_event",
                         &updates[ni], &version, errors[i], sizeof errors[i]) != PG_OK)
            continue;
        snprintf(keys[ni], sizeof keys[ni], PG_KEY_DEDUPE_EV "%s", ev[i].uuid);
        items[ni] = (struct pg_ingest_item){
            .dedupe_key = keys[ni],
            .update = updates[ni],
            .version = version,
            .msg_id = ev[i].uuid,
            .source = "platform_event",
        };
        index[ni++] = i;
    }
    rc = pg_ingest(items, ni, (int64_t)cfg->sf_events_dedupe_ttl_s * 1000, pg_req_id(req), results);
    if (rc) {
        char d[160];
        snprintf(d, sizeof d, "cannot store the events durably right now (%s); retry",
                 pg_errname(rc));
        pg_req_add_header(req, "Retry-After", "1");
        rc = pg_req_problem(req, 503, d, NULL);
        goto out;
    }
    json_t *arr = json_array();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "event_uuid", ev[i].uuid ? json_string(ev[i].uuid) : json_null());
        if (k < ni && index[k] == i) {
            json_object_set_new(r, "status", json_string(pg_ingest_result_name(results[k])));
            k++;
        } else {
            json_object_set_new(r, "status", json_string("rejected"));
            json_object_set_new(r, "error", json_string(errors[i]));
        }
        json_array_append_new(arr, r);
    }
    json_t *f = json_pack("{s:i, s:i}", "events", (int)n, "accepted", (int)ni);
    pg_logj(PG_LOG_INFO, pg_req_id(req), "sf_events.accepted", f);
    rc = pg_req_reply_json(req, 202, json_pack("{s:o}", "results", arr));
out:
    for (size_t i = 0; updates && i < ni; i++)
        json_decref(updates[i]);
    free(updates);
    free(items);
    free(keys);
    free(results);
    free(index);
    free(errors);
    pg_sf_events_free(ev, n);
    return rc;
}
