#include "server/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server/log.h"
#include "server/metrics.h"
#include "server/util.h"

struct pg_req;

/* The worker pool: a FIFO of suspended requests and the threads that run their handlers. */
struct worker_pool {
    struct pg_http *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pg_req *head, *tail;
    int stopping;
    int nthreads;
    pthread_t *threads;
};

struct pg_http {
    struct MHD_Daemon *daemon;
    struct pg_http_opts opts;
    int port;
    struct worker_pool pool; /* handlers */
    struct worker_pool slow; /* continuations that wait on an upstream (pg_req_defer) */
};

struct req_header {
    char name[48];
    char *value;
};

struct pg_req {
    void *data; /* a handler's per-request state (pg_req_set_data); freed at completion */
    void (*data_free)(void *);
    json_t *principal; /* who the authorizer admitted (owned reference) */
    struct MHD_Connection *conn;
    struct pg_http *srv;
    const struct pg_route *route;
    char method[16];
    char *path;
    char id[PG_REQ_ID_MAX + 1];
    char values[PG_REQ_MAX_PARAMS][128];
    size_t nvalues;
    struct pg_buf body;
    int64_t start_us;
    int too_large;
    char allow[96];
    /* the reply */
    int status;
    char content_type[64];
    char *resp;
    size_t resp_len;
    int replied;
    struct req_header hdrs[PG_REQ_MAX_HEADERS];
    size_t nhdrs;
    /* worker hand-off */
    int dispatched;         /* queued to the worker pool (connection suspended) */
    int fast_tried;         /* the route's fast path ran on the I/O thread */
    int admitted;           /* the fast path authorised it: the worker skips the auth step */
    pg_handler_fn deferred; /* set by pg_req_defer: run next on the slow pool */
    struct pg_req *next;
};

static atomic_long in_flight;

long pg_http_in_flight(void)
{
    return atomic_load(&in_flight);
}

/* ---------------------------------------------------------------- route matching */

/* Compare one path segment [s, s+n) with a template segment [t, t+m). */
static int seg_match(const char *t, size_t m, const char *s, size_t n)
{
    if (m >= 2 && t[0] == '{' && t[m - 1] == '}')
        return n > 0;
    return m == n && memcmp(t, s, n) == 0;
}

/* Match a whole path against a template, collecting variables. Returns 1 on a match. */
static int path_match(const char *tmpl, const char *path, char values[][128], size_t *nvalues)
{
    size_t nv = 0;
    const char *t = tmpl, *p = path;
    for (;;) {
        if (*t != '/' || *p != '/') {
            if (*t != *p) /* a match ends with both strings at their end */
                return 0;
            if (nvalues)
                *nvalues = nv;
            return 1;
        }
        t++;
        p++;
        const char *te = strchrnul(t, '/');
        const char *pe = strchrnul(p, '/');
        size_t tl = (size_t)(te - t), pl = (size_t)(pe - p);
        if (!seg_match(t, tl, p, pl))
            return 0;
        if (tl >= 2 && t[0] == '{') {
            if (nv >= PG_REQ_MAX_PARAMS || pl >= 128)
                return 0;
            if (values) {
                memcpy(values[nv], p, pl);
                values[nv][pl] = '\0';
            }
            nv++;
        }
        t = te;
        p = pe;
    }
}

enum pg_match pg_http_match(const struct pg_route *routes,
                            size_t nroutes,
                            const char *method,
                            const char *path,
                            const struct pg_route **route,
                            char values[][128],
                            size_t *nvalues,
                            char *allow,
                            size_t allowsz)
{
    int path_seen = 0;
    if (allow && allowsz)
        allow[0] = '\0';
    for (size_t i = 0; i < nroutes; i++) {
        size_t nv = 0;
        if (!path_match(routes[i].path, path, values, &nv))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            *route = &routes[i];
            if (nvalues)
                *nvalues = nv;
            return PG_MATCH_OK;
        }
        if (allow && allowsz && !strstr(allow, routes[i].method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, allowsz - used, "%s%s", used ? ", " : "", routes[i].method);
        }
        path_seen = 1;
    }
    return path_seen ? PG_MATCH_NO_METHOD : PG_MATCH_NO_PATH;
}

int pg_http_request_id_ok(const char *id)
{
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok || n >= PG_REQ_ID_MAX)
            return 0;
    }
    return n > 0;
}

/* ---------------------------------------------------------------- replies */

const char *pg_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

int pg_req_add_header(struct pg_req *req, const char *name, const char *value)
{
    if (req->nhdrs >= PG_REQ_MAX_HEADERS || strlen(name) >= sizeof req->hdrs[0].name)
        return PG_ETOOLARGE;
    char *v = strdup(value);
    if (!v)
        return PG_ENOMEM;
    struct req_header *h = &req->hdrs[req->nhdrs++];
    snprintf(h->name, sizeof h->name, "%s", name);
    h->value = v;
    return PG_OK;
}

int pg_req_reply(
    struct pg_req *req, int status, const char *content_type, const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return PG_ENOMEM;
    if (len)
        memcpy(copy, body, len);
    copy[len] = '\0';
    free(req->resp);
    req->resp = copy;
    req->resp_len = len;
    req->status = status;
    snprintf(req->content_type, sizeof req->content_type, "%s", content_type);
    req->replied = 1;
    return PG_OK;
}

static int reply_json_typed(struct pg_req *req, int status, json_t *body, const char *ctype)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(body);
    if (!s)
        return PG_ENOMEM;
    free(req->resp);
    req->resp = s;
    req->resp_len = strlen(s);
    req->status = status;
    snprintf(req->content_type, sizeof req->content_type, "%s", ctype);
    req->replied = 1;
    return PG_OK;
}

int pg_req_reply_json(struct pg_req *req, int status, json_t *body)
{
    return reply_json_typed(req, status, body, "application/json");
}

/* A stable problem type per status, so clients can switch on "type" rather than on text. */
static const char *problem_slug(int status)
{
    switch (status) {
    case 400:
        return "bad-request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not-found";
    case 405:
        return "method-not-allowed";
    case 409:
        return "conflict";
    case 413:
        return "content-too-large";
    case 415:
        return "unsupported-media-type";
    case 422:
        return "unprocessable";
    case 429:
        return "rate-limited";
    case 502:
        return "bad-gateway";
    case 503:
        return "unavailable";
    case 504:
        return "upstream-timeout";
    default:
        return "internal";
    }
}

int pg_req_problem(struct pg_req *req, int status, const char *detail, json_t *extra)
{
    char type[96];
    snprintf(type, sizeof type, "urn:posgate:problem:%s", problem_slug(status));
    json_t *p = json_object();
    json_object_set_new(p, "type", json_string(type));
    json_object_set_new(p, "title", json_string(pg_http_reason(status)));
    json_object_set_new(p, "status", json_integer(status));
    if (detail)
        json_object_set_new(p, "detail", json_string(detail));
    if (req->path)
        json_object_set_new(p, "instance", json_string(req->path));
    json_object_set_new(p, "request_id", json_string(req->id));
    if (json_is_object(extra))
        json_object_update(p, extra);
    json_decref(extra);
    return reply_json_typed(req, status, p, "application/problem+json");
}

int pg_req_defer(struct pg_req *req, pg_handler_fn next)
{
    if ((!req->dispatched && !req->fast_tried) || req->deferred || req->replied)
        return PG_EINVAL; /* only a handler running on a worker, once, before replying */
    req->deferred = next;
    return PG_OK;
}

/* ---------------------------------------------------------------- accessors */

int pg_req_reply_status(const struct pg_req *req)
{
    return req->replied ? req->status : 0;
}

const char *pg_req_reply_body(const struct pg_req *req, size_t *len, const char **content_type)
{
    if (len)
        *len = req->replied ? req->resp_len : 0;
    if (content_type)
        *content_type = req->content_type;
    return req->replied && req->resp ? req->resp : "";
}

void pg_req_set_data(struct pg_req *req, void *data, void (*data_free)(void *))
{
    if (req->data_free)
        req->data_free(req->data);
    req->data = data;
    req->data_free = data_free;
}

void *pg_req_data(const struct pg_req *req)
{
    return req->data;
}

void pg_req_set_principal(struct pg_req *req, json_t *principal)
{
    json_decref(req->principal);
    req->principal = principal;
}

const json_t *pg_req_principal(const struct pg_req *req)
{
    return req->principal;
}

struct query_walk {
    int (*cb)(void *, const char *, const char *);
    void *ud;
    int stop;
};

static enum MHD_Result
query_each(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct query_walk *w = cls;
    if (w->cb(w->ud, key, value ? value : "") != 0) {
        w->stop = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

int pg_req_query_each(const struct pg_req *req,
                      int (*cb)(void *ud, const char *k, const char *v),
                      void *ud)
{
    struct query_walk w = {cb, ud, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_each, &w);
    return w.stop ? PG_EINVAL : PG_OK;
}

void *pg_req_app(const struct pg_req *req)
{
    return req->srv->opts.app;
}

const char *pg_req_id(const struct pg_req *req)
{
    return req->id;
}

const char *pg_req_method(const struct pg_req *req)
{
    return req->method;
}

const char *pg_req_path(const struct pg_req *req)
{
    return req->path;
}

const struct pg_route *pg_req_route(const struct pg_req *req)
{
    return req->route;
}

const char *pg_req_header(const struct pg_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *pg_req_query(const struct pg_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *pg_req_param(const struct pg_req *req, const char *name)
{
    if (!req->route)
        return NULL;
    size_t idx = 0, nl = strlen(name);
    for (const char *t = req->route->path; (t = strchr(t, '{')); t++) {
        const char *e = strchr(t, '}');
        if (!e)
            break;
        if ((size_t)(e - t - 1) == nl && strncmp(t + 1, name, nl) == 0)
            return idx < req->nvalues ? req->values[idx] : NULL;
        idx++;
    }
    return NULL;
}

const char *pg_req_body(const struct pg_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

/* ---------------------------------------------------------------- MHD callbacks */

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "OTHER"; /* an arbitrary method must not create a new metrics series */
}

static size_t route_body_max(const struct pg_http *h, const struct pg_route *r)
{
    return r && r->body_max ? r->body_max : h->opts.body_max_bytes;
}

static enum MHD_Result send_reply(struct pg_req *req)
{
    if (!req->replied)
        pg_req_problem(req, 500, "the handler produced no reply", NULL);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(req->resp_len, req->resp, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    for (size_t i = 0; i < req->nhdrs; i++)
        MHD_add_response_header(resp, req->hdrs[i].name, req->hdrs[i].value);
    enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Turn a handler's error code into the one error shape, unless it already replied. */
static void reply_error(struct pg_req *req, int err)
{
    int status = pg_err_http_status(err);
    pg_req_problem(req, status, pg_strerror(err), NULL);
}

/* Authorise (when the route asks for it) and run the handler. send_reply covers a handler that
 * forgot to reply. */
static void run_handler(struct pg_req *req)
{
    struct pg_http *h = req->srv;
    int rc = PG_OK;
    /* Authorise after the body has arrived: Salesforce's org check reads the body. */
    if (req->route->auth != PG_AUTH_NONE && !req->admitted)
        rc = h->opts.authorize ? h->opts.authorize(req, req->route->auth) : PG_EFORBIDDEN;
    if (rc == PG_OK && !req->replied)
        rc = req->route->handler(req);
    if (rc < 0 && !req->replied)
        reply_error(req, rc);
    else if (rc < 0)
        pg_log(PG_LOG_DEBUG, req->id, "http.handler_error", "%s", pg_strerror(rc));
}

/* ---------------------------------------------------------------- worker pool */

static void pool_push(struct worker_pool *p, struct pg_req *req)
{
    pthread_mutex_lock(&p->mu);
    req->next = NULL;
    if (p->tail)
        p->tail->next = req;
    else
        p->head = req;
    p->tail = req;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *pool_main(void *arg)
{
    struct worker_pool *p = arg;
    pg_thread_name(p == &p->srv->slow ? "pg-slow" : "pg-worker");
    for (;;) {
        pthread_mutex_lock(&p->mu);
        /* Drain the queue before honouring a stop: every suspended request gets its reply. */
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        struct pg_req *req = p->head;
        if (req) {
            p->head = req->next;
            if (!p->head)
                p->tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        if (!req)
            break;
        pg_handler_fn next = req->deferred;
        if (next) {
            /* A continuation on the slow pool: it may wait on an upstream for a while. */
            req->deferred = NULL;
            int rc = next(req);
            if (rc < 0 && !req->replied)
                reply_error(req, rc);
        } else {
            run_handler(req);
        }
        if (req->deferred && p != &p->srv->slow) {
            pool_push(&p->srv->slow, req); /* still suspended; the slow pool resumes it */
            continue;
        }
        req->deferred = NULL; /* a continuation cannot defer again: it must reply */
        MHD_resume_connection(req->conn);
    }
    return NULL;
}

static int pool_start(struct pg_http *h, struct worker_pool *p, int n)
{
    p->srv = h;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n, sizeof *p->threads);
    if (!p->threads)
        return PG_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0)
            return PG_ENOMEM;
        p->nthreads++;
    }
    return PG_OK;
}

static void pool_stop(struct worker_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    p->threads = NULL;
    p->nthreads = 0;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

static void start_request(struct pg_http *h,
                          struct pg_req *req,
                          struct MHD_Connection *conn,
                          const char *url,
                          const char *method)
{
    req->conn = conn;
    req->srv = h;
    req->start_us = pg_now_us();
    snprintf(req->method, sizeof req->method, "%s", method);
    req->path = strdup(url);
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && pg_http_request_id_ok(rid))
        snprintf(req->id, sizeof req->id, "%s", rid);
    else if (pg_random_hex_id(req->id, sizeof req->id) != 0)
        snprintf(req->id, sizeof req->id, "unknown");
}

static enum MHD_Result on_request(void *cls,
                                  struct MHD_Connection *conn,
                                  const char *url,
                                  const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_size,
                                  void **req_cls)
{
    struct pg_http *h = cls;
    struct pg_req *req = *req_cls;

    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        *req_cls = req;
        atomic_fetch_add(&in_flight, 1);
        start_request(h, req, conn, url, method);
        if (!req->path)
            return MHD_NO;
        enum pg_match m = pg_http_match(h->opts.routes, h->opts.nroutes, method, url, &req->route,
                                        req->values, &req->nvalues, req->allow, sizeof req->allow);
        if (m == PG_MATCH_NO_PATH) {
            pg_req_problem(req, 404, "no such endpoint", NULL);
            return send_reply(req);
        }
        if (m == PG_MATCH_NO_METHOD) {
            pg_req_add_header(req, "Allow", req->allow);
            char d[160];
            snprintf(d, sizeof d, "method %s is not allowed here; allowed: %s",
                     method_label(method), req->allow);
            pg_req_problem(req, 405, d, NULL);
            return send_reply(req);
        }
        size_t cap = route_body_max(h, req->route);
        pg_buf_init(&req->body, cap);
        /* Refuse an announced oversize body before reading a byte of it. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        long long clen = 0;
        if (cl && pg_strtonum(cl, 0, INT64_MAX, &clen) == 0 && (unsigned long long)clen > cap) {
            char d[96];
            snprintf(d, sizeof d, "request body exceeds %zu bytes", cap);
            pg_req_problem(req, 413, d, NULL);
            return send_reply(req);
        }
        return MHD_YES;
    }

    if (*upload_size) {
        if (!req->too_large && pg_buf_append(&req->body, upload_data, *upload_size) != 0)
            req->too_large = 1; /* keep draining; answer 413 once the upload ends */
        *upload_size = 0;
        return MHD_YES;
    }

    if (req->too_large) {
        char d[96];
        snprintf(d, sizeof d, "request body exceeds %zu bytes", req->body.max);
        pg_req_problem(req, 413, d, NULL);
    } else if (!req->route->inline_ok && !req->dispatched) {
        pg_handler_fn fast = h->opts.fast_path ? h->opts.fast_path(req->route) : NULL;
        if (fast && !req->fast_tried) {
            /* The route's fast path, here on the I/O thread (bounded; see pg_http_opts). */
            req->fast_tried = 1;
            int rc = fast(req);
            if (req->deferred && !req->replied) {
                /* It must wait on an upstream: straight to the slow pool. */
                req->dispatched = 1;
                MHD_suspend_connection(conn);
                pool_push(&h->slow, req);
                return MHD_YES;
            }
            if (rc != PG_HTTP_TO_WORKER || req->replied) {
                if (rc < 0 && !req->replied)
                    reply_error(req, rc);
                return send_reply(req);
            }
            req->admitted = req->principal != NULL;
        }
        /* Hand the request to a worker; MHD calls us again once it is resumed. */
        req->dispatched = 1;
        MHD_suspend_connection(conn);
        pool_push(&h->pool, req);
        return MHD_YES;
    } else if (!req->dispatched) {
        run_handler(req);
    }
    return send_reply(req);
}

static void on_completed(void *cls,
                         struct MHD_Connection *conn,
                         void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct pg_req *req = *req_cls;
    if (!req)
        return;
    int64_t dur = pg_now_us() - req->start_us;
    const char *route = req->route ? req->route->name : "unmatched";
    int status = req->replied ? req->status : 0;
    pg_metrics_observe_request(route, method_label(req->method), status, dur);
    if (pg_log_enabled(PG_LOG_INFO)) {
        json_t *f = json_object();
        json_object_set_new(f, "method", json_string(method_label(req->method)));
        /* MHD hands us the path without the query string, so no e-mail or phone leaks here */
        json_t *p = req->path ? json_string(req->path) : NULL;
        json_object_set_new(f, "path", p ? p : json_string("(not utf-8)"));
        json_object_set_new(f, "route", json_string(route));
        json_object_set_new(f, "status", json_integer(status));
        json_object_set_new(f, "duration_ms", json_real((double)dur / 1000.0));
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            json_object_set_new(f, "aborted", json_true());
        pg_logj(PG_LOG_INFO, req->id, "http.request", f);
    }
    for (size_t i = 0; i < req->nhdrs; i++)
        free(req->hdrs[i].value);
    if (req->data_free)
        req->data_free(req->data);
    json_decref(req->principal);
    pg_buf_free(&req->body);
    free(req->resp);
    free(req->path);
    free(req);
    *req_cls = NULL;
    atomic_fetch_sub(&in_flight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    pg_log(PG_LOG_WARN, NULL, "http.server", "%s", msg);
}

/* ---------------------------------------------------------------- lifecycle */

int pg_http_start(const struct pg_http_opts *o, struct pg_http **out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned int flags =
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o->address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)o->port);
    } else if (inet_pton(AF_INET6, o->address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)o->port);
        flags |= MHD_USE_IPv6;
    } else {
        return PG_EINVAL;
    }
    struct pg_http *h = calloc(1, sizeof *h);
    if (!h)
        return PG_ENOMEM;
    h->opts = *o;
    if (pool_start(h, &h->pool, o->workers > 0 ? o->workers : 1) != 0 ||
        pool_start(h, &h->slow, o->slow_workers > 0 ? o->slow_workers : 1) != 0) {
        pool_stop(&h->pool);
        pool_stop(&h->slow);
        free(h);
        return PG_ENOMEM;
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->connection_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->connection_limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)o->per_ip_connection_limit, NULL},
        /* The per-connection memory pool holds the request line and headers: this is the
         * header size cap (MHD answers 431 beyond it). */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)o->header_max_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {o->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)o->threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    if (!h->daemon) {
        pool_stop(&h->pool);
        pool_stop(&h->slow);
        free(h);
        return PG_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : o->port;
    *out = h;
    return PG_OK;
}

int pg_http_port(const struct pg_http *h)
{
    return h->port;
}

void pg_http_stop(struct pg_http *h, int grace_ms)
{
    if (!h)
        return;
    /* Close the listening socket first so no new work arrives, then let in-flight requests
     * finish within the bound before tearing connections down. */
    MHD_socket s = MHD_quiesce_daemon(h->daemon);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    int64_t deadline = pg_now_ms() + grace_ms;
    while (pg_http_in_flight() > 0 && pg_now_ms() < deadline)
        pg_sleep_ms(10);
    long left = pg_http_in_flight();
    if (left > 0)
        pg_log(PG_LOG_WARN, NULL, "http.shutdown", "%ld requests still in flight after %d ms", left,
               grace_ms);
    /* Workers finish what they hold (each call is bounded by its own timeout) and resume those
     * connections: libmicrohttpd must not be stopped with a connection still suspended. */
    pool_stop(&h->pool); /* may still hand continuations to the slow pool: stop it second */
    pool_stop(&h->slow);
    MHD_stop_daemon(h->daemon);
    free(h);
}
