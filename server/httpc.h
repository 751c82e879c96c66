/*
 * The one HTTP client for upstream calls (MICROS Gift & Loyalty now, Salesforce REST later): a
 * thin, blocking libcurl wrapper that gives every caller the same timeouts, reply cap, error
 * mapping and Retry-After parsing.
 *
 * Threads: each thread keeps one CURL easy handle in a pthread key (freed by the key's destructor
 * when the thread exits, or earlier by pg_httpc_thread_cleanup), so keep-alive connections are
 * reused across calls without any locking. curl_global_init runs once (pthread_once) on first use.
 *
 * Safety defaults on every request: no redirects followed, only http/https (also for any
 * redirect), CURLOPT_NOSIGNAL (timeouts must not use SIGALRM in a threaded process), and no
 * "Expect: 100-continue" round trip.
 */
#ifndef PG_HTTPC_H
#define PG_HTTPC_H

#include <stddef.h>

#include "server/error.h"

/** Reply cap used when pg_httpc_req.max_response_bytes is 0. */
#define PG_HTTPC_DEFAULT_MAX_RESPONSE (16u << 20)

struct pg_httpc_req {
    const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE"...; NULL = GET */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
    const char *body;           /* may be NULL (no body) */
    size_t body_len;            /* bytes of body */
    int connect_timeout_ms;     /* <= 0: 5000 */
    int timeout_ms;             /* whole transfer; <= 0: 30000 */
    size_t max_response_bytes;  /* body cap -> PG_ETOOLARGE; 0: PG_HTTPC_DEFAULT_MAX_RESPONSE */
    const char *capture_header; /* one response header to copy into resp->captured, or NULL */
    int capture_all;            /* with capture_header: also collect every occurrence (e.g. each
                                   Set-Cookie), "\n"-joined, into resp->captured_all */
};

/* Defined while pg_httpc_req has capture_header, so callers can test for it. */
#define PG_HTTPC_CAPTURE_HEADER 1
/* Defined while pg_httpc_req has capture_all (and pg_httpc_resp captured_all). */
#define PG_HTTPC_CAPTURE_ALL 1
/* Cap on resp->captured_all (the values beyond it are dropped). */
#define PG_HTTPC_CAPTURE_ALL_MAX (64u << 10)

struct pg_httpc_resp {
    long status;        /* HTTP status; 0 when no response headers arrived */
    char *body;         /* owned, NUL-terminated; non-NULL ("" when empty) when PG_OK */
    size_t len;         /* body length without the NUL */
    char *content_type; /* owned or NULL */
    int retry_after_s;  /* Retry-After (delta-seconds or HTTP-date, clamped >= 0); -1 absent */
    double total_ms;    /* whole transfer time */
    char error[256];    /* transport error text when the call did not return PG_OK, else "" */
    char captured[256]; /* req->capture_header's value (trimmed, truncated); "" when absent */
    char *captured_all; /* owned or NULL: with req->capture_all, every value of the header in
                           the final response, trimmed, "\n"-joined (NULL when none) */
};

/**
 * Perform one request. Everything in req is borrowed for the duration of the call. resp is
 * fully overwritten; the caller owns what it holds and releases it with pg_httpc_resp_free
 * whatever the result.
 *
 * Returns:
 *  PG_OK        a response (any status) arrived; status, body, headers filled.
 *  PG_ETIMEDOUT the request was sent (or being sent) but the whole transfer exceeded timeout_ms.
 *  PG_EUNAVAIL  the request was never sent: DNS failure, connection refused, connect timeout.
 *               (So a caller may always retry it, even for a non-idempotent call.)
 *  PG_EIO       other transport errors (reset, empty reply, TLS failure, truncated reply).
 *  PG_ETOOLARGE the body exceeded the cap (status/retry_after_s still filled when known).
 *  PG_EINVAL    bad request (NULL url, unsupported scheme, malformed URL, bad header).
 *  PG_ENOMEM    out of memory.
 * Thread-safe.
 */
int pg_httpc_do(const struct pg_httpc_req *req, struct pg_httpc_resp *resp) PG_WARN_UNUSED;

/** Free what resp owns and reset it to empty (safe on a zeroed or already freed resp). */
void pg_httpc_resp_free(struct pg_httpc_resp *resp);

/** Free the calling thread's handle (workers call it before exiting; a later call recreates it). */
void pg_httpc_thread_cleanup(void);

/**
 * Parse a Retry-After value: delta-seconds or an HTTP-date (relative to now), clamped to
 * [0, 86400]. Returns -1 when absent or unparseable. Exposed for tests and other clients.
 */
int pg_httpc_parse_retry_after(const char *value);

#endif
