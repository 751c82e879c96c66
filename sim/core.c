/*
 * The part both simulators share: the HTTP daemon, the request log, fault injection and the
 * /_sim/ control API. A request goes through three steps:
 *
 *   1. its body is read up to cfg->max_body_bytes (beyond that it is drained and answered 413);
 *   2. unless it is a control request (/_sim/...), it is appended to the log and the first
 *      matching queued fault is taken, both under one lock so seq order = fault order;
 *   3. the fault is applied (latency, then hang / drop / status), or the route table answers.
 */
#include "sim/sim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include <microhttpd.h>

#include "server/buf.h"
#include "server/log.h"
#include "server/util.h"

#define HANG_MS_DEFAULT 30000
#define SLEEP_MS_MAX 120000

static atomic_int g_stopping;

/* Per-request state, created by the URI log callback (the only place MHD shows the raw URI). */
struct req_ctx {
    char *uri;
    int started;
    int too_large;
    size_t total_len; /* bytes received, including drained ones */
    struct pg_buf body;
};

/* Sleeping fault threads wait on this, so a stop wakes them at once (called after sigwait, in
 * the main thread: not from a signal handler). */
static pthread_mutex_t g_stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_stop_cv = PTHREAD_COND_INITIALIZER;

void pg_sim_shutdown_begin(void)
{
    pthread_mutex_lock(&g_stop_mu);
    atomic_store(&g_stopping, 1);
    pthread_cond_broadcast(&g_stop_cv);
    pthread_mutex_unlock(&g_stop_mu);
}

/*
 * One timed wait, ended early by a stop (a SIGTERM does not wait for a 30 s hang to end). Not a
 * loop of short sleeps: with 20 connections held in a 2 s latency fault, 50 ms slices were 800
 * wake-ups a second, CPU the simulator took from the gateway it shares the cores with
 * (bench/lookup-run, hits while Salesforce is slow).
 */
static void sim_sleep(int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g_stop_mu);
    while (!atomic_load(&g_stopping) &&
           pthread_cond_timedwait(&g_stop_cv, &g_stop_mu, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&g_stop_mu);
}

/* ---- replies ---- */

void pg_sim_reply_text(
    struct pg_sim_reply *out, int status, const char *ctype, const char *text, size_t len)
{
    free(out->body);
    out->status = status;
    out->body = malloc(len + 1);
    out->len = out->body ? len : 0;
    if (out->body) {
        memcpy(out->body, text, len);
        out->body[len] = '\0';
    }
    snprintf(out->ctype, sizeof out->ctype, "%s", ctype ? ctype : "");
}

void pg_sim_reply_json(struct pg_sim_reply *out, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (!s) {
        pg_sim_reply_text(out, 500, "application/json", "{\"error\":\"oom\"}", 15);
        return;
    }
    free(out->body);
    out->status = status;
    out->body = s;
    out->len = strlen(s);
    snprintf(out->ctype, sizeof out->ctype, "application/json;charset=UTF-8");
}

void pg_sim_reply_header(struct pg_sim_reply *out, const char *name, const char *value)
{
    if (!out->headers)
        out->headers = json_object();
    json_object_set_new(out->headers, name, json_string(value));
}

static void reply_free(struct pg_sim_reply *r)
{
    free(r->body);
    json_decref(r->headers);
    memset(r, 0, sizeof *r);
}

/* Control-API errors: {"error": code, "message": text}. */
void pg_sim_ctl_error(struct pg_sim_reply *out, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pg_sim_reply_json(out, status, json_pack("{s:s,s:s}", "error", code, "message", msg));
}

int pg_sim_stopping(void)
{
    return atomic_load(&g_stopping);
}

const char *pg_sim_req_header(const struct pg_sim_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* ---- small encoders shared by the protocol modules ---- */

char *pg_sim_b64(const unsigned char *p, size_t n, int url)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    if (url) {
        while (len > 0 && out[len - 1] == '=')
            len--;
        out[len] = '\0';
        for (int i = 0; i < len; i++)
            out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    return out;
}

unsigned char *pg_sim_b64_decode(const char *s, size_t *n)
{
    size_t len = strlen(s);
    if (len == 0 || len % 4 != 0 ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789+/=") != len)
        return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 1);
    if (!out)
        return NULL;
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (got < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes */
    for (size_t i = len; i > 0 && s[i - 1] == '='; i--)
        got--;
    *n = (size_t)got;
    return out;
}

int pg_sim_xml_escape(struct pg_buf *b, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        switch (*s) {
        case '&':
            rc = pg_buf_puts(b, "&amp;");
            break;
        case '<':
            rc = pg_buf_puts(b, "&lt;");
            break;
        case '>':
            rc = pg_buf_puts(b, "&gt;");
            break;
        case '"':
            rc = pg_buf_puts(b, "&quot;");
            break;
        case '\'':
            rc = pg_buf_puts(b, "&apos;");
            break;
        default:
            rc = pg_buf_append(b, s, 1);
        }
    }
    return rc;
}

void pg_sim_iso_ms(int64_t ms, char *out, size_t outsz)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char base[32];
    gmtime_r(&t, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outsz, "%s.%03dZ", base, (int)(ms % 1000));
}

int64_t pg_sim_parse_iso_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    const char *p = s + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        for (; digits < 3 && digits > 0; digits++)
            ms *= 10;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "+0000") != 0)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct pg_sim_reply *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        reply_free(r);
        return MHD_NO;
    }
    r->body = NULL; /* now owned by resp */
    if (r->ctype[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    const char *k;
    json_t *v;
    json_object_foreach(r->headers, k, v)
    {
        if (json_is_string(v))
            MHD_add_response_header(resp, k, json_string_value(v));
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    reply_free(r);
    return ret;
}

/* ---- faults ---- */

static void fault_release(struct pg_sim_fault *f)
{
    json_decref(f->body);
    json_decref(f->headers);
    f->body = f->headers = NULL;
}

static json_t *fault_json(const struct pg_sim_fault *f)
{
    const char *kind = f->hang_ms ? "hang" : f->drop ? "drop" : f->status ? "status" : "latency";
    json_t *j = json_pack("{s:i,s:s}", "id", f->id, "kind", kind);
    if (f->status)
        json_object_set_new(j, "status", json_integer(f->status));
    if (f->body)
        json_object_set(j, "body", f->body);
    if (f->headers)
        json_object_set(j, "headers", f->headers);
    if (f->latency_ms)
        json_object_set_new(j, "latency_ms", json_integer(f->latency_ms));
    if (f->hang_ms)
        json_object_set_new(j, "hang_ms", json_integer(f->hang_ms));
    if (f->path[0])
        json_object_set_new(j, "path", json_string(f->path));
    if (f->method[0])
        json_object_set_new(j, "method", json_string(f->method));
    json_object_set_new(j, "remaining",
                        f->remaining < 0 ? json_null() : json_integer(f->remaining));
    return j;
}

static int
int_field(json_t *spec, const char *key, int min, int max, int *out, char *err, size_t errsz)
{
    json_t *v = json_object_get(spec, key);
    if (!v)
        return PG_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, errsz, "\"%s\" must be an integer in %d..%d", key, min, max);
        return PG_EINVAL;
    }
    *out = (int)json_integer_value(v);
    return PG_OK;
}

/* Validate a POST /_sim/faults spec into f. Every rule here is listed in sim/README.md. */
static int fault_parse(json_t *spec, struct pg_sim_fault *f, char *err, size_t errsz)
{
    static const char *const keys[] = {"status", "count",   "body", "headers", "latency_ms",
                                       "hang",   "hang_ms", "drop", "path",    "method"};
    memset(f, 0, sizeof *f);
    f->remaining = -1;
    if (!json_is_object(spec)) {
        snprintf(err, errsz, "the fault spec must be a JSON object");
        return PG_EINVAL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(spec, k, v)
    {
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(keys[i], k) != 0)
            i++;
        if (i == sizeof keys / sizeof keys[0]) {
            snprintf(err, errsz, "unknown key \"%s\"", k);
            return PG_EINVAL;
        }
    }
    int hang = 0, count = -1;
    if (int_field(spec, "status", 200, 599, &f->status, err, errsz) ||
        int_field(spec, "count", 1, 1000000, &count, err, errsz) ||
        int_field(spec, "latency_ms", 0, SLEEP_MS_MAX, &f->latency_ms, err, errsz) ||
        int_field(spec, "hang_ms", 1, SLEEP_MS_MAX, &f->hang_ms, err, errsz))
        return PG_EINVAL;
    f->remaining = count;
    json_t *jh = json_object_get(spec, "hang"), *jd = json_object_get(spec, "drop");
    if ((jh && !json_is_boolean(jh)) || (jd && !json_is_boolean(jd))) {
        snprintf(err, errsz, "\"hang\" and \"drop\" must be booleans");
        return PG_EINVAL;
    }
    hang = json_is_true(jh);
    f->drop = json_is_true(jd);
    if (f->hang_ms && !hang) {
        snprintf(err, errsz, "\"hang_ms\" needs \"hang\": true");
        return PG_EINVAL;
    }
    if (hang && !f->hang_ms)
        f->hang_ms = HANG_MS_DEFAULT;
    if ((f->status != 0) + hang + f->drop > 1) {
        snprintf(err, errsz, "\"status\", \"hang\" and \"drop\" are mutually exclusive");
        return PG_EINVAL;
    }
    if (!f->status && !hang && !f->drop && !json_object_get(spec, "latency_ms")) {
        snprintf(err, errsz, "a fault needs one of \"status\", \"latency_ms\", \"hang\", \"drop\"");
        return PG_EINVAL;
    }
    json_t *body = json_object_get(spec, "body"), *hdrs = json_object_get(spec, "headers");
    if ((body || hdrs) && !f->status) {
        snprintf(err, errsz, "\"body\" and \"headers\" only go with \"status\"");
        return PG_EINVAL;
    }
    if (hdrs) {
        if (!json_is_object(hdrs)) {
            snprintf(err, errsz, "\"headers\" must be an object of strings");
            return PG_EINVAL;
        }
        json_object_foreach(hdrs, k, v)
        {
            /* CR/LF would let a fault spec inject headers; MHD refuses them anyway */
            if (!json_is_string(v) || strpbrk(json_string_value(v), "\r\n") ||
                strpbrk(k, "\r\n:")) {
                snprintf(err, errsz, "header \"%s\" must have a single-line string value", k);
                return PG_EINVAL;
            }
        }
    }
    json_t *path = json_object_get(spec, "path"), *method = json_object_get(spec, "method");
    if (path && (!json_is_string(path) || json_string_value(path)[0] != '/' ||
                 json_string_length(path) >= sizeof f->path)) {
        snprintf(err, errsz, "\"path\" must be a string starting with '/' (< %zu bytes)",
                 sizeof f->path);
        return PG_EINVAL;
    }
    if (method && (!json_is_string(method) || json_string_length(method) == 0 ||
                   json_string_length(method) >= sizeof f->method)) {
        snprintf(err, errsz, "\"method\" must be an HTTP method name");
        return PG_EINVAL;
    }
    if (path)
        snprintf(f->path, sizeof f->path, "%s", json_string_value(path));
    if (method)
        for (size_t i = 0; i <= json_string_length(method); i++)
            f->method[i] = (char)toupper((unsigned char)json_string_value(method)[i]);
    f->body = json_incref(body);
    f->headers = json_incref(hdrs);
    return PG_OK;
}

/*
 * Take the first queued fault (in the order they were posted) that matches the request, and
 * count it down. Caller holds sim->mu. The copy in *out holds its own references.
 */
static int
fault_take(struct pg_sim *sim, const char *method, const char *path, struct pg_sim_fault *out)
{
    for (int i = 0; i < sim->nfaults; i++) {
        struct pg_sim_fault *f = &sim->faults[i];
        if (f->method[0] && strcasecmp(f->method, method) != 0)
            continue;
        if (strncmp(path, f->path, strlen(f->path)) != 0)
            continue;
        *out = *f;
        json_incref(out->body);
        json_incref(out->headers);
        if (f->remaining > 0 && --f->remaining == 0) {
            fault_release(f);
            memmove(f, f + 1, (size_t)(sim->nfaults - i - 1) * sizeof *f);
            sim->nfaults--;
        }
        return 1;
    }
    return 0;
}

static void faults_clear(struct pg_sim *sim)
{
    for (int i = 0; i < sim->nfaults; i++)
        fault_release(&sim->faults[i]);
    sim->nfaults = 0;
}

/* ---- the request log ---- */

/* Headers a test or an operator needs to see; names are recorded lower-cased. */
static int header_kept(const char *name)
{
    static const char *const exact[] = {"content-type",    "authorization", "soapaction",
                                        "idempotency-key", "x-request-id",  "accept",
                                        "user-agent"};
    static const char *const prefixes[] = {"webhook-", "sforce-", "simphony-"};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcasecmp(name, exact[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

static enum MHD_Result
collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    json_t *obj = cls;
    char name[128];
    if (!key || !header_kept(key) || strlen(key) >= sizeof name)
        return MHD_YES;
    for (size_t i = 0; i <= strlen(key); i++)
        name[i] = (char)tolower((unsigned char)key[i]);
    json_t *s = json_string(value ? value : "");
    json_object_set_new(obj, name, s ? s : json_string("(invalid utf-8)"));
    return MHD_YES;
}

static enum MHD_Result
collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    json_t *s = json_string(value ? value : "");
    if (key && s)
        json_object_set_new(cls, key, s);
    else
        json_decref(s);
    return MHD_YES;
}

/* A JSON string for n bytes of arbitrary input: invalid UTF-8 bytes become '?'. */
static json_t *lossy_string(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    if (s)
        return s;
    char *c = malloc(n + 1);
    if (!c)
        return json_null();
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)p[i] < 0x80 ? p[i] : '?';
    s = json_stringn(c, n);
    free(c);
    return s;
}

static json_t *
entry_new(struct pg_sim *sim, const struct pg_sim_req *req, const struct req_ctx *ctx)
{
    char ts[40];
    pg_wall_iso8601(ts, sizeof ts);
    json_t *e = json_pack("{s:I,s:s,s:s,s:o,s:o,s:o}", "seq", ++sim->seq, "ts", ts, "method",
                          req->method, "path", lossy_string(req->path, strlen(req->path)), "query",
                          lossy_string(req->query, strlen(req->query)), "uri",
                          lossy_string(ctx->uri, strlen(ctx->uri)));
    if (!e)
        return NULL;
    json_t *args = json_object(), *hdrs = json_object();
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_arg, args);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_header, hdrs);
    json_object_set_new(e, "args", args);
    json_object_set_new(e, "headers", hdrs);
    json_object_set_new(e, "body_len", json_integer((json_int_t)ctx->total_len));
    json_t *body = json_null();
    if (ctx->too_large)
        json_object_set_new(e, "rejected", json_string("body too large"));
    else if (req->json && req->body_len <= sim->cfg->log_body_bytes)
        body = json_deep_copy(req->json);
    else if (req->body_len) {
        size_t n =
            req->body_len < sim->cfg->log_body_bytes ? req->body_len : sim->cfg->log_body_bytes;
        body = lossy_string(req->body, n);
        if (n < req->body_len)
            json_object_set_new(e, "body_truncated", json_true());
    }
    json_object_set_new(e, "body", body);
    json_object_set_new(e, "fault", json_null());
    return e;
}

static void log_append(struct pg_sim *sim, json_t *entry)
{
    json_array_append(sim->log, entry);
    while (json_array_size(sim->log) > sim->cfg->log_entries)
        json_array_remove(sim->log, 0);
}

/* ---- control API ---- */

static void ctl_log(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    long long since = 0;
    const char *s = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "since");
    if (s && pg_strtonum(s, 0, (1LL << 62), &since) != 0) {
        pg_sim_ctl_error(out, 400, "bad_request", "\"since\" must be a sequence number");
        return;
    }
    /* Entries get their "status" after the reply is built: dump under the lock. */
    pthread_mutex_lock(&sim->mu);
    json_t *sel = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(sim->log, i, e)
    {
        if (json_integer_value(json_object_get(e, "seq")) > since)
            json_array_append(sel, e);
    }
    char *dump = json_dumps(sel, JSON_COMPACT);
    pthread_mutex_unlock(&sim->mu);
    json_decref(sel);
    if (!dump) {
        pg_sim_ctl_error(out, 500, "internal", "out of memory");
        return;
    }
    pg_sim_reply_text(out, 200, "application/json", dump, strlen(dump));
    free(dump);
}

static void
ctl_faults_get(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&sim->mu);
    for (int i = 0; i < sim->nfaults; i++)
        json_array_append_new(arr, fault_json(&sim->faults[i]));
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, arr);
}

static void
ctl_faults_post(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    struct pg_sim_fault f;
    char err[256];
    if (!req->json) {
        pg_sim_ctl_error(out, 400, "bad_fault", "the body must be a JSON object");
        return;
    }
    if (fault_parse(req->json, &f, err, sizeof err) != 0) {
        pg_sim_ctl_error(out, 400, "bad_fault", "%s", err);
        return;
    }
    pthread_mutex_lock(&sim->mu);
    if (sim->nfaults == PG_SIM_MAX_FAULTS) {
        pthread_mutex_unlock(&sim->mu);
        fault_release(&f);
        pg_sim_ctl_error(out, 409, "too_many_faults", "at most %d faults can be queued",
                         PG_SIM_MAX_FAULTS);
        return;
    }
    f.id = ++sim->next_fault_id;
    sim->faults[sim->nfaults++] = f;
    json_t *j = fault_json(&f);
    pthread_mutex_unlock(&sim->mu);
    pg_log(PG_LOG_INFO, NULL, "sim_fault_added", "%s: fault %d queued", sim->ops->name, f.id);
    pg_sim_reply_json(out, 201, j);
}

static void
ctl_faults_delete(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    pthread_mutex_lock(&sim->mu);
    int n = sim->nfaults;
    faults_clear(sim);
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, json_pack("{s:i}", "cleared", n));
}

static void ctl_reset(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    pthread_mutex_lock(&sim->mu);
    json_array_clear(sim->log);
    sim->seq = 0;
    faults_clear(sim);
    json_decref(sim->state);
    sim->state = json_deep_copy(sim->seed);
    if (sim->ops->reset)
        sim->ops->reset(sim);
    pthread_mutex_unlock(&sim->mu);
    pg_log(PG_LOG_INFO, NULL, "sim_reset", "%s: reset to seed state", sim->ops->name);
    pg_sim_reply_json(out, 200, json_pack("{s:b}", "reset", 1));
}

static void ctl_state(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    pthread_mutex_lock(&sim->mu);
    json_t *view = sim->ops->state_view ? sim->ops->state_view(sim) : json_incref(sim->state);
    char *dump = view ? json_dumps(view, JSON_COMPACT) : NULL;
    json_decref(view);
    pthread_mutex_unlock(&sim->mu);
    if (!dump) {
        pg_sim_ctl_error(out, 500, "internal", "out of memory");
        return;
    }
    pg_sim_reply_text(out, 200, "application/json", dump, strlen(dump));
    free(dump);
}

static const struct pg_sim_route control_routes[] = {
    {"GET", "/_sim/log", 0, ctl_log},
    {"GET", "/_sim/faults", 0, ctl_faults_get},
    {"POST", "/_sim/faults", 0, ctl_faults_post},
    {"DELETE", "/_sim/faults", 0, ctl_faults_delete},
    {"POST", "/_sim/reset", 0, ctl_reset},
    {"GET", "/_sim/state", 0, ctl_state},
    {NULL, NULL, 0, NULL},
};

/* ---- dispatch ---- */

static int method_is(const char *want, const char *got)
{
    /* HEAD is served by the GET handler; MHD leaves the body out. */
    return strcmp(want, "*") == 0 || strcmp(want, got) == 0 ||
           (strcmp(want, "GET") == 0 && strcmp(got, "HEAD") == 0);
}

/*
 * Control routes first, then the simulator's own; the first route whose path and method match
 * answers. A path that matched only with other methods gets 405 with Allow.
 */
static void
dispatch(struct pg_sim *sim, const struct pg_sim_req *req, int control, struct pg_sim_reply *out)
{
    const struct pg_sim_route *tables[] = {control_routes, sim->ops->routes};
    char allow[128] = "";
    for (size_t t = 0; t < 2; t++) {
        for (const struct pg_sim_route *r = tables[t]; r && r->path; r++) {
            int hit = r->prefix ? strncmp(req->path, r->path, strlen(r->path)) == 0
                                : strcmp(req->path, r->path) == 0;
            if (!hit)
                continue;
            if (method_is(r->method, req->method)) {
                r->fn(sim, req, out);
                return;
            }
            size_t n = strlen(allow);
            snprintf(allow + n, sizeof allow - n, "%s%s", n ? "," : "", r->method);
        }
    }
    if (allow[0]) {
        if (control)
            pg_sim_ctl_error(out, 405, "method_not_allowed", "%s is not allowed on %s", req->method,
                             req->path);
        else
            sim->ops->error_reply(sim, 405, "HTTP Method not allowed", out);
        pg_sim_reply_header(out, "Allow", allow);
    } else if (control) {
        pg_sim_ctl_error(out, 404, "not_found", "no control endpoint %s", req->path);
    } else {
        sim->ops->error_reply(sim, 404, "The requested resource does not exist", out);
    }
}

static void fault_reply(struct pg_sim *sim, const struct pg_sim_fault *f, struct pg_sim_reply *out)
{
    if (json_is_string(f->body)) {
        const char *ct = json_string_value(json_object_get(f->headers, "Content-Type"));
        pg_sim_reply_text(out, f->status, ct ? ct : "text/plain", json_string_value(f->body),
                          json_string_length(f->body));
    } else if (f->body) {
        pg_sim_reply_json(out, f->status, json_incref(f->body));
    } else {
        sim->ops->error_reply(sim, f->status, "injected fault", out);
    }
    const char *k;
    json_t *v;
    json_object_foreach(f->headers, k, v)
    {
        if (strcasecmp(k, "Content-Type") == 0)
            snprintf(out->ctype, sizeof out->ctype, "%s", json_string_value(v));
        else
            pg_sim_reply_header(out, k, json_string_value(v));
    }
}

static int is_json_type(struct MHD_Connection *conn)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    return ct && strcasestr(ct, "json") != NULL;
}

/* The whole request has arrived: log it, apply a fault or route it, and answer. */
static enum MHD_Result finish(struct pg_sim *sim,
                              struct MHD_Connection *conn,
                              struct req_ctx *ctx,
                              const char *url,
                              const char *method)
{
    const char *q = strchr(ctx->uri, '?');
    struct pg_sim_req req = {
        .method = method,
        .path = url,
        .query = q ? q + 1 : "",
        .body = ctx->body.data ? ctx->body.data : "",
        .body_len = ctx->body.len,
        .conn = conn,
    };
    int control = strncmp(url, "/_sim/", 6) == 0;
    /* Control bodies are JSON whatever the client says (curl -d sends a form type). */
    if (req.body_len && (control || is_json_type(conn)))
        req.json = json_loadb(req.body, req.body_len, JSON_DECODE_ANY, NULL);

    struct pg_sim_reply out = {0};
    struct pg_sim_fault f = {0};
    int faulted = 0;
    json_t *entry = NULL;
    enum MHD_Result ret = MHD_NO;
    if (!control) {
        pthread_mutex_lock(&sim->mu);
        entry = entry_new(sim, &req, ctx);
        /* An oversized body is refused before any fault, as a real front end would. */
        if (!ctx->too_large && (faulted = fault_take(sim, method, url, &f))) {
            json_t *fj = fault_json(&f);
            json_object_del(fj, "remaining"); /* a count, not a property of this request */
            json_object_set_new(entry, "fault", fj);
        }
        if (entry)
            log_append(sim, entry);
        pthread_mutex_unlock(&sim->mu);
    }
    if (ctx->too_large) {
        if (control)
            pg_sim_ctl_error(&out, 413, "too_large", "request body above %zu bytes",
                             sim->cfg->max_body_bytes);
        else
            sim->ops->error_reply(sim, 413, "request body too large", &out);
    } else if (faulted) {
        if (f.latency_ms)
            sim_sleep(f.latency_ms);
        if (f.hang_ms || f.drop) {
            if (f.hang_ms)
                sim_sleep(f.hang_ms);
            /* MHD_NO closes the connection without writing a response. */
            pg_log(PG_LOG_DEBUG, NULL, "sim_fault_close", "%s %s %s closed by fault %d",
                   sim->ops->name, method, url, f.id);
            goto out;
        }
        if (f.status)
            fault_reply(sim, &f, &out);
        else
            dispatch(sim, &req, control, &out);
    } else {
        dispatch(sim, &req, control, &out);
    }
    if (entry) {
        pthread_mutex_lock(&sim->mu);
        json_object_set_new(entry, "status", json_integer(out.status));
        pthread_mutex_unlock(&sim->mu);
    }
    pg_log(PG_LOG_DEBUG, NULL, "sim_request", "%s %s %s -> %d", sim->ops->name, method, url,
           out.status);
    ret = send_reply(conn, &out);
out:
    reply_free(&out);
    fault_release(&f);
    json_decref(entry);
    json_decref(req.json);
    return ret;
}

static enum MHD_Result on_request(void *cls,
                                  struct MHD_Connection *conn,
                                  const char *url,
                                  const char *method,
                                  const char *version,
                                  const char *upload,
                                  size_t *upload_size,
                                  void **con_cls)
{
    struct pg_sim *sim = cls;
    struct req_ctx *ctx = *con_cls;
    if (!ctx)
        return MHD_NO; /* the URI callback could not allocate */
    if (!ctx->started) {
        ctx->started = 1;
        return MHD_YES;
    }
    if (*upload_size) {
        ctx->total_len += *upload_size;
        /* Past the cap we keep draining (so the client reads our 413) but store nothing. */
        if (!ctx->too_large && pg_buf_append(&ctx->body, upload, *upload_size) != 0) {
            ctx->too_large = 1;
            pg_buf_free(&ctx->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return finish(sim, conn, ctx, url, method);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct pg_sim *sim = cls;
    struct req_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->uri = strdup(uri ? uri : "");
    if (!ctx->uri) {
        free(ctx);
        return NULL;
    }
    pg_buf_init(&ctx->body, sim->cfg->max_body_bytes);
    return ctx;
}

static void on_completed(void *cls,
                         struct MHD_Connection *conn,
                         void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    free(ctx->uri);
    pg_buf_free(&ctx->body);
    free(ctx);
    *con_cls = NULL;
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    /* A hang or drop fault closes by returning MHD_NO, which MHD reports as an internal error. */
    enum pg_log_level lvl =
        strstr(msg, "Application reported internal error") ? PG_LOG_DEBUG : PG_LOG_WARN;
    pg_log(lvl, NULL, "sim_http_error", "%s: %s", ((struct pg_sim *)cls)->ops->name, msg);
}

/* ---- lifecycle ---- */

int pg_sim_init(struct pg_sim *sim,
                const struct pg_sim_ops *ops,
                const struct pg_sim_config *cfg,
                json_t *seed)
{
    memset(sim, 0, sizeof *sim);
    sim->ops = ops;
    sim->cfg = cfg;
    sim->seed = seed;
    sim->state = json_deep_copy(seed);
    sim->log = json_array();
    pthread_mutex_init(&sim->mu, NULL);
    return sim->state && sim->log ? PG_OK : PG_ENOMEM;
}

int pg_sim_listen(struct pg_sim *sim, const char *addr, int port)
{
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    struct sockaddr *sa = (struct sockaddr *)&a4;
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else if (inet_pton(AF_INET, addr, &a4.sin_addr) != 1) {
        return PG_EINVAL;
    }
    /* The external logger must be the first option, or MHD warns on its own stderr logger.
     * 32 KiB per connection (MHD's default) still reads a 30,000-character query URL (MHD grows
     * its read buffer); bodies stream through on_request. 256 KiB pools were mmapped and
     * page-faulted in afresh for every connection: with the gateway reconnecting after each
     * timed-out call, the simulator spent ~1 ms of CPU per connection on them. */
    sim->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, sim, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_error, sim, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_URI_LOG_CALLBACK, on_uri, sim,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, sim, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)300, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
    if (!sim->daemon)
        return PG_EIO;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(sim->daemon, MHD_DAEMON_INFO_BIND_PORT);
    sim->port = info ? info->port : port;
    return sim->port > 0 ? PG_OK : PG_EIO;
}

void pg_sim_destroy(struct pg_sim *sim)
{
    if (sim->daemon)
        MHD_stop_daemon(sim->daemon);
    sim->daemon = NULL;
    if (!sim->ops)
        return;
    if (sim->ops->destroy)
        sim->ops->destroy(sim);
    faults_clear(sim);
    json_decref(sim->log);
    json_decref(sim->seed);
    json_decref(sim->state);
    free(sim->priv);
    pthread_mutex_destroy(&sim->mu);
    sim->ops = NULL;
}
