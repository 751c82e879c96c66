/*
 * The HTTP engine: libmicrohttpd with a thread pool, a route table, per-route body caps,
 * request ids, problem+json errors, access logs and request metrics.
 *
 * Threads: libmicrohttpd's pool of I/O threads (epoll) reads requests and writes replies. A
 * handler that may block (Redis, an upstream) runs on a separate pool of worker threads: the
 * connection is suspended while it runs and resumed with the reply, so one slow Redis call or
 * Salesforce miss never holds up the other connections an I/O thread serves. Routes marked
 * inline_ok (memory only, like /healthz) run directly on the I/O thread.
 *
 * Request lifecycle (one owner, one release point): a struct pg_req is allocated on the first
 * callback for a request, owns everything it collects (body, path parameters, reply), and is
 * freed only in MHD's completion callback. Handlers run once the whole body has arrived; they
 * set a reply with the pg_req_reply_* functions, or return a negative PG_E* code and the engine
 * answers with the matching problem+json.
 */
#ifndef PG_HTTP_H
#define PG_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/buf.h"
#include "server/error.h"

struct pg_req;
struct pg_http;

typedef int (*pg_handler_fn)(struct pg_req *req);

/* Who may call a route. Later issues add the checks; the engine enforces what exists. */
enum pg_auth_policy {
    PG_AUTH_NONE = 0, /* public: health, metrics, docs */
    PG_AUTH_SF_ORG,   /* Salesforce Outbound Message: OrganizationId allow-list (in the body) */
    PG_AUTH_SF_JWT,   /* Salesforce Platform Event callback: bearer JWT */
    PG_AUTH_STATION,  /* POS station: API key or partner JWT */
    PG_AUTH_PARTNER,  /* partner: bearer JWT with scopes */
    PG_AUTH_ADMIN,    /* operator: admin API key */
};

/** One row of the route table. Path templates use {name} for a whole segment. */
struct pg_route {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* "/v1/loyalty/members/{salesforce_id}" */
    const char *name;   /* metrics and log label, e.g. "healthz" */
    pg_handler_fn handler;
    enum pg_auth_policy auth;
    size_t body_max; /* request body cap in bytes; 0 = the server default */
    int inline_ok;   /* 1: never blocks (no Redis, no upstream): runs on the I/O thread */
};

/** What a route's fast path returns to hand the request to the worker pool. */
#define PG_HTTP_TO_WORKER 1

#define PG_REQ_MAX_PARAMS 4
#define PG_REQ_MAX_HEADERS 8
#define PG_REQ_ID_MAX 64

struct pg_http_opts {
    const char *address; /* "127.0.0.1", "0.0.0.0", "::1" */
    int port;            /* 0: pick a free port (read back with pg_http_port) */
    int threads;         /* I/O threads (libmicrohttpd's pool, epoll) */
    int workers;         /* handler threads: blocking work never stalls an I/O thread */
    int slow_workers;    /* threads for continuations that wait on an upstream (pg_req_defer) */
    int connection_timeout_s;
    int connection_limit;
    int per_ip_connection_limit; /* 0: unlimited */
    size_t header_max_bytes;
    size_t body_max_bytes;         /* default per-route cap */
    const struct pg_route *routes; /* borrowed; must outlive the server */
    size_t nroutes;
    void *app; /* borrowed; handed to handlers through pg_req_app */
    /* Checks a route's auth policy before its handler runs: 0 lets it through, a negative
     * PG_E* code (PG_EAUTH, PG_EFORBIDDEN) refuses it, or it replies itself. NULL: every route
     * other than PG_AUTH_NONE is refused (fail closed). */
    int (*authorize)(struct pg_req *req, enum pg_auth_policy policy);
    /* Optional: the fast path of a route (NULL: none), tried on the I/O thread before the
     * request is handed to a worker, for a route whose common case is quick (a cache hit) so
     * that the two thread hand-offs would cost more than the work. A fast path must never wait
     * longer than a small bound (an I/O thread serves many connections and /healthz), and it
     * authorises the request itself (pg_req_principal is unset). It replies; or it calls
     * pg_req_defer to continue on the slow pool; or it returns PG_HTTP_TO_WORKER to hand the
     * request to the worker pool as if it had not been tried: the route's auth and handler run
     * there, except that a principal it set is kept and the auth step skipped (so the handler
     * can pick up the state it left in pg_req_data). */
    pg_handler_fn (*fast_path)(const struct pg_route *route);
};

/**
 * Start listening and serving.
 * Ownership: *out is new; release with pg_http_stop.
 */
int pg_http_start(const struct pg_http_opts *o, struct pg_http **out) PG_WARN_UNUSED;

/** The bound port (useful when port 0 was asked for). */
int pg_http_port(const struct pg_http *h);

/**
 * Graceful stop: stop accepting, wait up to grace_ms for in-flight requests, then close
 * everything and free h.
 */
void pg_http_stop(struct pg_http *h, int grace_ms);

/** Requests currently being processed (for /metrics and shutdown). */
long pg_http_in_flight(void);

/* ---- route matching (exposed for unit tests: no sockets) ---- */

enum pg_match { PG_MATCH_OK, PG_MATCH_NO_PATH, PG_MATCH_NO_METHOD };

/**
 * Find the route for method + path. On PG_MATCH_OK, *route is set and params/values receive
 * the template variables (borrowed from the route / copied into values, each at most
 * value_max bytes). On PG_MATCH_NO_METHOD, allow receives "GET, POST" style text.
 */
enum pg_match pg_http_match(const struct pg_route *routes,
                            size_t nroutes,
                            const char *method,
                            const char *path,
                            const struct pg_route **route,
                            char values[][128],
                            size_t *nvalues,
                            char *allow,
                            size_t allowsz);

/** True when a client-supplied X-Request-Id is safe to echo and log (1..64 of [A-Za-z0-9._:-]). */
int pg_http_request_id_ok(const char *id);

/* ---- what handlers use ---- */

/** The application state given in pg_http_opts.app. */
void *pg_req_app(const struct pg_req *req);

/** The request id (from X-Request-Id when sane, generated otherwise). */
const char *pg_req_id(const struct pg_req *req);

const char *pg_req_method(const struct pg_req *req);
const char *pg_req_path(const struct pg_req *req);
const struct pg_route *pg_req_route(const struct pg_req *req);

/**
 * Continue this request on the slow pool with next, instead of replying now. For a handler that
 * finds it must wait on an upstream (a Salesforce call on a cache miss): the fast pool is then
 * free for requests that only touch Redis, so a cache hit never queues behind a miss. Only from a
 * handler running on a worker (not inline_ok) or from a route's fast path (pg_http_opts), once,
 * before any reply. next must reply.
 */
int pg_req_defer(struct pg_req *req, pg_handler_fn next) PG_WARN_UNUSED;

/** A request header (case-insensitive); borrowed until the request completes; NULL if absent. */
const char *pg_req_header(const struct pg_req *req, const char *name);

/**
 * Call cb for every query argument in order (repeats included; a value-less "?a" gives "").
 * Stops when cb returns non-zero and then returns PG_EINVAL.
 */
int pg_req_query_each(const struct pg_req *req,
                      int (*cb)(void *ud, const char *k, const char *v),
                      void *ud);

/** The reply set so far: its status (0 when none), body and content type (borrowed). */
int pg_req_reply_status(const struct pg_req *req);
const char *pg_req_reply_body(const struct pg_req *req, size_t *len, const char **content_type);

/** Attach handler state to the request. Ownership: steals data; data_free runs at completion. */
void pg_req_set_data(struct pg_req *req, void *data, void (*data_free)(void *));

/** The state given to pg_req_set_data (borrowed), or NULL. */
void *pg_req_data(const struct pg_req *req);

/**
 * The authorizer records who it admitted: a JSON object with at least "id" (for rate limits and
 * logs) and, when the caller is restricted to some stores, "stores".
 * Ownership: steals principal; pg_req_principal's result is borrowed until the request ends.
 */
void pg_req_set_principal(struct pg_req *req, json_t *principal);
const json_t *pg_req_principal(const struct pg_req *req);

/** A query argument; borrowed; NULL if absent. */
const char *pg_req_query(const struct pg_req *req, const char *name);

/** A path template variable by name; borrowed; NULL if absent. */
const char *pg_req_param(const struct pg_req *req, const char *name);

/** The request body (NUL-terminated; len may be 0). Borrowed. */
const char *pg_req_body(const struct pg_req *req, size_t *len);

/** Add a response header (copied). At most PG_REQ_MAX_HEADERS. */
int pg_req_add_header(struct pg_req *req, const char *name, const char *value);

/** Reply with a JSON document. Ownership: steals body. */
int pg_req_reply_json(struct pg_req *req, int status, json_t *body);

/** Reply with bytes of the given content type (copied). */
int pg_req_reply(
    struct pg_req *req, int status, const char *content_type, const char *body, size_t len);

/**
 * Reply with RFC 9457 problem+json: type, title, status, detail, instance and request_id.
 * extra (may be NULL) is merged in (stolen).
 */
int pg_req_problem(struct pg_req *req, int status, const char *detail, json_t *extra);

/** The RFC 9110 reason phrase for a status ("Not Found"). */
const char *pg_http_reason(int status);

#endif
