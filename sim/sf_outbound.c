/*
 * The Salesforce simulator's Outbound Message sender (salesforce-wire.md §1): tests queue
 * messages with POST /_sim/outbound-messages and a background thread delivers them the way
 * Salesforce does:
 *
 *   - one SOAP 1.1 envelope per queued message, 1..100 Notifications of one object (Contact);
 *   - the record is read at SEND time, so a retry carries the latest data (§1.5);
 *   - acked only by HTTP 200 + text/xml + soapenv:Body/notificationsResponse/Ack = true in the
 *     outbound namespace (§1.4); anything else is retried with exponential back-off (doubling from
 *     retry_initial_ms, capped at retry_max_ms, "equal jitter": a delay d is drawn from [d/2, d])
 *     until acked or max_age_ms old;
 *   - a retry carries the same notification ids; with duplicate_rate a message is sent once more
 *     after its Ack (the "ack was lost" duplicate the docs warn about).
 *
 * Everything in the queue is guarded by sim->mu; the thread drops the lock while sending.
 */
#include "sim/sim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "server/log.h"
#include "server/util.h"

#define NS_SOAP "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_OM "http://soap.sforce.com/2005/09/outbound"
#define SEND_TIMEOUT_MS 60000 /* §1.1: Salesforce gives up on an attempt after 60 s */
#define REPLY_MAX (1024 * 1024)
#define HISTORY_MAX 50
#define INSTANCE_URL "https://acme.my.salesforce.com"

struct om_msg {
    char id[24];
    char *target_url;
    json_t *contact_ids, *notif_ids, *fields; /* fields NULL: every field the record has */
    json_t *history;                          /* one entry per delivery attempt */
    int attempts, acked, expired, done, in_flight, dup_pending, sent_after_ack;
    long last_status;
    char last_error[256];
    int64_t created_ms, next_ms;
    int64_t retry_initial_ms, retry_max_ms, max_age_ms;
    double dup_rate;
    uint64_t rng;
};

struct pg_sim_om_queue {
    struct pg_sim *sim;
    pthread_t thread;
    int started, stop;
    pthread_cond_t cv;
    struct om_msg **msgs;
    size_t n, cap;
    long long next_id;
    uint64_t notif_seq; /* never reset: notification ids stay unique across /_sim/reset */
    unsigned generation;
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static void msg_free(struct om_msg *m)
{
    if (!m)
        return;
    free(m->target_url);
    json_decref(m->contact_ids);
    json_decref(m->notif_ids);
    json_decref(m->fields);
    json_decref(m->history);
    free(m);
}

/* ---- the envelope (§1.2/1.3) ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A field value as the SOAP API writes it. Custom number fields are xsd:double: 5400 → "5400.0". */
static int put_value(struct pg_buf *b, const char *field, json_t *v)
{
    char num[64];
    if (json_is_string(v))
        return pg_sim_xml_escape(b, json_string_value(v));
    if (json_is_true(v) || json_is_false(v))
        return pg_buf_puts(b, json_is_true(v) ? "true" : "false");
    if (json_is_integer(v)) {
        size_t n = strlen(field);
        int is_double = n > 3 && strcmp(field + n - 3, "__c") == 0;
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT "%s", json_integer_value(v),
                 is_double ? ".0" : "");
        return pg_buf_puts(b, num);
    }
    if (json_is_real(v)) {
        snprintf(num, sizeof num, "%.15g", json_real_value(v));
        if (!strpbrk(num, ".eE"))
            strcat(num, ".0");
        return pg_buf_puts(b, num);
    }
    return 0;
}

static int put_sobject(struct pg_buf *b, json_t *rec, const char *id, json_t *fields)
{
    int rc = pg_buf_puts(b, "<sObject xsi:type=\"sf:Contact\" "
                            "xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>") ||
             pg_sim_xml_escape(b, rec ? json_string_value(json_object_get(rec, "Id")) : id) ||
             pg_buf_puts(b, "</sf:Id>");
    if (!rec) /* a record deleted before delivery: the notification carries no data */
        return rc || pg_buf_puts(b, "</sObject>");
    size_t n = 0, cap = json_object_size(rec) + json_array_size(fields) + 1;
    const char **names = calloc(cap, sizeof *names);
    if (!names)
        return PG_ENOMEM;
    if (fields) {
        size_t i;
        json_t *f;
        json_array_foreach(fields, i, f) names[n++] = json_string_value(f);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(rec, k, v) names[n++] = k;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *v = json_object_get(rec, names[i]);
        if (strcmp(names[i], "Id") == 0 || !v || json_is_null(v) ||
            (i && !strcmp(names[i], names[i - 1])))
            continue; /* §1.2: null fields are left out */
        rc = pg_buf_printf(b, "<sf:%s>", names[i]) || put_value(b, names[i], v) ||
             pg_buf_printf(b, "</sf:%s>", names[i]);
    }
    free(names);
    return rc || pg_buf_puts(b, "</sObject>");
}

/* Build the envelope with the records as they are now. Caller holds sim->mu. */
static char *build_envelope(struct pg_sim *sim, const struct om_msg *m)
{
    char org15[16], action[19];
    const struct pg_sim_config *cfg = sim->cfg;
    snprintf(org15, sizeof org15, "%.15s", cfg->sf.org_id);
    pg_sim_sf_id18("04k5g000000CaRk", action);
    struct pg_buf b;
    pg_buf_init(&b, 64 * 1024 * 1024);
    int rc = pg_buf_printf(
        &b,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<soapenv:Envelope xmlns:soapenv=\"" NS_SOAP "\" "
        "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
        " <soapenv:Body>\n"
        "  <notifications xmlns=\"" NS_OM "\">\n"
        "   <OrganizationId>%s</OrganizationId>\n"
        "   <ActionId>%s</ActionId>\n"
        "   <SessionId xsi:nil=\"true\"/>\n"
        "   <EnterpriseUrl>" INSTANCE_URL "/services/Soap/c/%s/%s</EnterpriseUrl>\n"
        "   <PartnerUrl>" INSTANCE_URL "/services/Soap/u/%s/%s</PartnerUrl>\n",
        cfg->sf.org_id, action, cfg->sf.api_version, org15, cfg->sf.api_version, org15);
    for (size_t i = 0; i < json_array_size(m->contact_ids) && !rc; i++) {
        const char *cid = json_string_value(json_array_get(m->contact_ids, i));
        rc = pg_buf_printf(&b, "   <Notification>\n    <Id>%s</Id>\n    ",
                           json_string_value(json_array_get(m->notif_ids, i))) ||
             put_sobject(&b, pg_sim_sf_find_contact(sim, cid), cid, m->fields) ||
             pg_buf_puts(&b, "\n   </Notification>\n");
    }
    rc = rc || pg_buf_puts(&b, "  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n");
    if (rc) {
        pg_buf_free(&b);
        return NULL;
    }
    return pg_buf_steal(&b);
}

/* ---- one delivery ---- */

struct reply {
    struct pg_buf body;
    char ctype[128];
    struct pg_sim_om_queue *q;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct reply *r = ud;
    if (pg_buf_append(&r->body, p, sz * n) != 0)
        return 0;
    return sz * n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return pg_sim_stopping() || ((struct reply *)ud)->q->stop;
}

static const xmlNode *first_el(const xmlNode *n)
{
    for (; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static int el_is(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0 && n->ns &&
           n->ns->href && strcmp((const char *)n->ns->href, ns) == 0;
}

/* §1.4: 1 when body is a SOAP envelope whose Body holds notificationsResponse/Ack = true. */
static int is_ack(const char *body, size_t len, char *why, size_t whysz)
{
    if (memmem(body, len, "<!DOCTYPE", 9)) {
        snprintf(why, whysz, "reply has a DOCTYPE");
        return 0;
    }
    xmlDocPtr doc = xmlReadMemory(body, (int)len, NULL, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        snprintf(why, whysz, "reply is not XML");
        return 0;
    }
    int ok = 0;
    const xmlNode *env = xmlDocGetRootElement(doc);
    const xmlNode *bd = el_is(env, NS_SOAP, "Envelope") ? first_el(env->children) : NULL;
    if (bd && el_is(bd, NS_SOAP, "Header"))
        bd = first_el(bd->next);
    const xmlNode *resp = el_is(bd, NS_SOAP, "Body") ? first_el(bd->children) : NULL;
    if (el_is(resp, NS_SOAP, "Fault")) {
        xmlChar *t = xmlNodeGetContent((xmlNodePtr)resp);
        snprintf(why, whysz, "SOAP fault: %.200s", t ? (const char *)t : "");
        xmlFree(t);
    } else if (!el_is(resp, NS_OM, "notificationsResponse")) {
        snprintf(why, whysz, "no notificationsResponse in %s", NS_OM);
    } else {
        const xmlNode *ack = first_el(resp->children);
        xmlChar *t = el_is(ack, NS_OM, "Ack") ? xmlNodeGetContent((xmlNodePtr)ack) : NULL;
        char v[16] = "";
        if (t)
            sscanf((const char *)t, " %15s", v);
        ok = strcmp(v, "true") == 0 || strcmp(v, "1") == 0; /* xsd:boolean */
        if (!ok)
            snprintf(why, whysz, t ? "Ack is %s" : "no Ack element in %s", t ? v : NS_OM);
        xmlFree(t);
    }
    xmlFreeDoc(doc);
    return ok;
}

/* POST the envelope; returns 1 when acked. *status: HTTP status or 0. */
static int deliver(struct pg_sim_om_queue *q,
                   const char *url,
                   const char *envelope,
                   long *status,
                   char *why,
                   size_t whysz)
{
    struct reply r = {.q = q};
    pg_buf_init(&r.body, REPLY_MAX);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    *status = 0;
    if (!c) {
        snprintf(why, whysz, "curl_easy_init failed");
        return 0;
    }
    h = curl_slist_append(h, "Content-Type: text/xml; charset=utf-8");
    h = curl_slist_append(h, "SOAPAction: \"\"");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, envelope);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(envelope));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "Jakarta Commons-HttpClient/3.1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)SEND_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(c);
    int ok = 0;
    if (rc != CURLE_OK) {
        snprintf(why, whysz, "%s", curl_easy_strerror(rc));
    } else {
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (*status != 200) {
            char inner[200] = "";
            if (ct && strncasecmp(ct, "text/xml", 8) == 0 && r.body.len)
                is_ack(r.body.data, r.body.len, inner, sizeof inner);
            snprintf(why, whysz, "HTTP %ld%s%s", *status, inner[0] ? ": " : "", inner);
        } else if (!ct || strncasecmp(ct, "text/xml", 8) != 0)
            snprintf(why, whysz, "reply Content-Type is %s, not text/xml", ct ? ct : "(none)");
        else
            ok = is_ack(r.body.data ? r.body.data : "", r.body.len, why, whysz);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    pg_buf_free(&r.body);
    return ok;
}

/* ---- the sender thread ---- */

static void
record_result(struct pg_sim_om_queue *q, struct om_msg *m, int acked, long status, const char *why)
{
    int64_t now = pg_now_ms();
    char ts[40];
    pg_wall_iso8601(ts, sizeof ts);
    m->in_flight = 0;
    m->attempts++;
    m->last_status = status;
    snprintf(m->last_error, sizeof m->last_error, "%s", acked ? "" : why);
    json_array_append_new(m->history,
                          json_pack("{s:s,s:i,s:b,s:s}", "ts", ts, "status", (int)status, "acked",
                                    acked, "error", acked ? "" : why));
    while (json_array_size(m->history) > HISTORY_MAX)
        json_array_remove(m->history, 0);
    if (m->acked) { /* this was the duplicate sent after the Ack */
        m->sent_after_ack++;
        m->dup_pending = 0;
        m->done = 1;
        return;
    }
    if (acked) {
        m->acked = 1;
        if (rng_unit(&m->rng) < m->dup_rate) {
            m->dup_pending = 1;
            m->next_ms = now;
        } else {
            m->done = 1;
        }
        return;
    }
    int shift = m->attempts - 1 < 40 ? m->attempts - 1 : 40;
    int64_t d = m->retry_initial_ms << shift;
    if (d > m->retry_max_ms || d <= 0)
        d = m->retry_max_ms;
    d = d / 2 + (int64_t)(rng_next(&m->rng) % (uint64_t)(d / 2 + 1));
    m->next_ms = now + d;
    (void)q;
}

static void *sender(void *arg)
{
    struct pg_sim_om_queue *q = arg;
    struct pg_sim *sim = q->sim;
    pthread_mutex_lock(&sim->mu);
    while (!q->stop && !pg_sim_stopping()) {
        int64_t now = pg_now_ms(), wake = now + 200;
        struct om_msg *due = NULL;
        for (size_t i = 0; i < q->n; i++) {
            struct om_msg *m = q->msgs[i];
            if (m->done || m->in_flight)
                continue;
            if (!m->acked && now - m->created_ms > m->max_age_ms) {
                m->expired = m->done = 1; /* §1.5: dropped when too old */
                snprintf(m->last_error, sizeof m->last_error, "expired after %lld ms",
                         (long long)m->max_age_ms);
                continue;
            }
            if (m->next_ms <= now && (!due || m->next_ms < due->next_ms))
                due = m;
            else if (m->next_ms < wake)
                wake = m->next_ms;
        }
        if (!due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ms = wake - now < 1 ? 1 : wake - now;
            ts.tv_sec += ms / 1000;
            ts.tv_nsec += (ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&q->cv, &sim->mu, &ts);
            continue;
        }
        char *env = build_envelope(sim, due);
        char *url = strdup(due->target_url);
        unsigned gen = q->generation;
        due->in_flight = 1;
        pthread_mutex_unlock(&sim->mu);
        long status = 0;
        char why[256] = "out of memory";
        int acked = env && url ? deliver(q, url, env, &status, why, sizeof why) : 0;
        pg_log(PG_LOG_DEBUG, NULL, "sim_om_sent", "outbound message to %s: status %ld%s%s", url,
               status, acked ? " acked" : ", ", acked ? "" : why);
        free(env);
        free(url);
        pthread_mutex_lock(&sim->mu);
        if (gen == q->generation) /* a reset meanwhile freed the message */
            record_result(q, due, acked, status, why);
    }
    pthread_mutex_unlock(&sim->mu);
    return NULL;
}

int pg_sim_om_start(struct pg_sim *sim, struct pg_sim_om_queue **out)
{
    struct pg_sim_om_queue *q = calloc(1, sizeof *q);
    if (!q)
        return PG_ENOMEM;
    q->sim = sim;
    uint64_t r = 0;
    if (pg_random_bytes(&r, sizeof r) != 0)
        r = (uint64_t)pg_wall_ms();
    q->notif_seq = r % 20000000000ULL; /* 62^6 ≈ 5.7e10: leaves room to count up */
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->thread, NULL, sender, q) != 0) {
        pthread_cond_destroy(&q->cv);
        free(q);
        return PG_ENOMEM;
    }
    q->started = 1;
    *out = q;
    return PG_OK;
}

void pg_sim_om_clear(struct pg_sim_om_queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        msg_free(q->msgs[i]);
    q->n = 0;
    q->generation++;
}

void pg_sim_om_stop(struct pg_sim_om_queue *q)
{
    pthread_mutex_lock(&q->sim->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->sim->mu);
    if (q->started)
        pthread_join(q->thread, NULL);
    pg_sim_om_clear(q);
    free(q->msgs);
    pthread_cond_destroy(&q->cv);
    free(q);
}

/* ---- control API ---- */

/* A fresh notification id: 04l + 12 chars, with its case-safe suffix. */
static void notif_id(struct pg_sim_om_queue *q, char *out)
{
    static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char id15[16] = "04l5g0";
    uint64_t v = q->notif_seq++;
    for (int i = 14; i >= 6; i--) {
        id15[i] = alnum[v % 62];
        v /= 62;
    }
    id15[15] = '\0';
    pg_sim_sf_id18(id15, out);
}

static int get_num(json_t *spec,
                   const char *key,
                   double min,
                   double max,
                   double *out,
                   char *err,
                   size_t errsz,
                   int integer)
{
    json_t *v = json_object_get(spec, key);
    if (!v)
        return 0;
    if ((integer && !json_is_integer(v)) || (!integer && !json_is_number(v)) ||
        json_number_value(v) < min || json_number_value(v) > max) {
        snprintf(err, errsz, "\"%s\" must be %s in %.15g..%.15g", key,
                 integer ? "an integer" : "a number", min, max);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static json_t *msg_json(const struct om_msg *m)
{
    int64_t left = m->done || m->in_flight ? -1 : m->next_ms - pg_now_ms();
    return json_pack(
        "{s:s,s:s,s:O,s:O,s:i,s:b,s:b,s:b,s:i,s:o,s:o,s:o,s:O}", "id", m->id, "target_url",
        m->target_url, "notification_ids", m->notif_ids, "contact_ids", m->contact_ids, "attempts",
        m->attempts, "acked", m->acked, "expired", m->expired, "done", m->done, "sent_after_ack",
        m->sent_after_ack, "last_status", m->attempts ? json_integer(m->last_status) : json_null(),
        "last_error", m->last_error[0] ? json_string(m->last_error) : json_null(),
        "next_attempt_in_ms", left < 0 ? json_null() : json_integer(left), "history", m->history);
}

void pg_sim_om_get(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    struct pg_sim_om_queue *q = pg_sim_sf_om_queue(sim);
    json_t *arr = json_array();
    pthread_mutex_lock(&sim->mu);
    for (size_t i = 0; i < q->n; i++)
        json_array_append_new(arr, msg_json(q->msgs[i]));
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, arr);
}

void pg_sim_om_post(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    static const char *const keys[] = {
        "target_url",       "ids",          "fields",     "batch_size", "shuffle", "duplicate_rate",
        "retry_initial_ms", "retry_max_ms", "max_age_ms", "seed",       NULL};
    struct pg_sim_om_queue *q = pg_sim_sf_om_queue(sim);
    json_t *spec = req->json;
    char err[256] = "";
    const char *k;
    json_t *v;
    if (!json_is_object(spec)) {
        pg_sim_ctl_error(out, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    json_object_foreach(spec, k, v)
    {
        const char *const *a = keys;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a) {
            pg_sim_ctl_error(out, 400, "bad_request", "unknown key \"%s\"", k);
            return;
        }
    }
    const char *url = json_string_value(json_object_get(spec, "target_url"));
    double batch = 100, dup = 0, initial = 500, max = 30000, age = 86400000, seed = 0;
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        pg_sim_ctl_error(out, 400, "bad_request", "\"target_url\" must be an http(s) URL");
        return;
    }
    if (get_num(spec, "batch_size", 1, 100, &batch, err, sizeof err, 1) ||
        get_num(spec, "duplicate_rate", 0, 1, &dup, err, sizeof err, 0) ||
        get_num(spec, "retry_initial_ms", 1, 7200000, &initial, err, sizeof err, 1) ||
        get_num(spec, "retry_max_ms", 1, 7200000, &max, err, sizeof err, 1) ||
        get_num(spec, "max_age_ms", 1, 7 * 86400000.0, &age, err, sizeof err, 1) ||
        get_num(spec, "seed", -9.2e18, 9.2e18, &seed, err, sizeof err, 1)) {
        pg_sim_ctl_error(out, 400, "bad_request", "%s", err);
        return;
    }
    if (max < initial) {
        pg_sim_ctl_error(out, 400, "bad_request", "\"retry_max_ms\" must be >= retry_initial_ms");
        return;
    }
    json_t *shuffle = json_object_get(spec, "shuffle"), *fields = json_object_get(spec, "fields");
    json_t *ids = json_object_get(spec, "ids");
    if (shuffle && !json_is_boolean(shuffle)) {
        pg_sim_ctl_error(out, 400, "bad_request", "\"shuffle\" must be a boolean");
        return;
    }
    if (fields) {
        size_t i;
        json_t *f;
        int ok = json_is_array(fields) && json_array_size(fields) > 0;
        json_array_foreach(fields, i, f)
        {
            const char *s = json_string_value(f);
            ok = ok && s && s[0] &&
                 strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789_") == strlen(s) &&
                 isalpha((unsigned char)s[0]);
        }
        if (!ok) {
            pg_sim_ctl_error(out, 400, "bad_request",
                             "\"fields\" must be a non-empty array of field API names");
            return;
        }
    }
    if (ids && (!json_is_array(ids) || json_array_size(ids) == 0)) {
        pg_sim_ctl_error(out, 400, "bad_request",
                         "\"ids\" must be a non-empty array of Contact ids");
        return;
    }
    uint64_t rng = 0;
    if (json_object_get(spec, "seed"))
        rng = (uint64_t)json_integer_value(json_object_get(spec, "seed"));
    else if (pg_random_bytes(&rng, sizeof rng) != 0)
        rng = (uint64_t)pg_wall_ms();

    pthread_mutex_lock(&sim->mu);
    json_t *list = json_array();
    size_t i;
    json_t *c;
    if (ids) {
        json_array_foreach(ids, i, c)
        {
            json_t *rec = pg_sim_sf_find_contact(sim, json_string_value(c));
            if (!rec) {
                pthread_mutex_unlock(&sim->mu);
                pg_sim_ctl_error(out, 400, "bad_request", "no Contact %s",
                                 json_is_string(c) ? json_string_value(c) : "(not a string)");
                json_decref(list);
                return;
            }
            json_array_append(list, json_object_get(rec, "Id"));
        }
    } else {
        json_array_foreach(json_object_get(sim->state, "contacts"), i, c)
            json_array_append(list, json_object_get(c, "Id"));
    }
    if (json_is_true(shuffle)) /* Fisher-Yates with the request's seed */
        for (size_t n = json_array_size(list); n > 1; n--) {
            size_t j = (size_t)(rng_next(&rng) % n);
            json_t *a = json_incref(json_array_get(list, n - 1));
            json_array_set(list, n - 1, json_array_get(list, j));
            json_array_set_new(list, j, a);
        }
    json_t *ids_out = json_array(), *msgs_out = json_array();
    int64_t now = pg_now_ms();
    for (size_t off = 0; off < json_array_size(list); off += (size_t)batch) {
        struct om_msg *m = calloc(1, sizeof *m);
        if (!m ||
            (q->n == q->cap && !(q->msgs = realloc(q->msgs, (q->cap = q->cap ? 2 * q->cap : 16) *
                                                                sizeof *q->msgs)))) {
            free(m);
            break;
        }
        snprintf(m->id, sizeof m->id, "om-%lld", ++q->next_id);
        m->target_url = strdup(url);
        m->contact_ids = json_array();
        m->notif_ids = json_array();
        m->history = json_array();
        m->fields = json_incref(fields);
        for (size_t j = off; j < off + (size_t)batch && j < json_array_size(list); j++) {
            char nid[19];
            notif_id(q, nid);
            json_array_append(m->contact_ids, json_array_get(list, j));
            json_array_append_new(m->notif_ids, json_string(nid));
        }
        m->created_ms = m->next_ms = now;
        m->retry_initial_ms = (int64_t)initial;
        m->retry_max_ms = (int64_t)max;
        m->max_age_ms = (int64_t)age;
        m->dup_rate = dup;
        m->rng = rng_next(&rng);
        q->msgs[q->n++] = m;
        json_array_append_new(ids_out, json_string(m->id));
        json_array_append_new(msgs_out, json_pack("{s:s,s:O,s:O}", "id", m->id, "notification_ids",
                                                  m->notif_ids, "contact_ids", m->contact_ids));
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&sim->mu);
    json_decref(list);
    pg_sim_reply_json(out, 202, json_pack("{s:o,s:o}", "ids", ids_out, "messages", msgs_out));
}
