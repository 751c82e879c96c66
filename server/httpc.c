#include "server/httpc.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "server/buf.h"

#define RETRY_AFTER_MAX_S 86400

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_init_rc = PG_OK;

static void handle_destroy(void *h)
{
    if (h)
        curl_easy_cleanup(h);
}

static void global_init(void)
{
    /* curl_global_init is not thread-safe in 7.88; pthread_once makes the first call the only
     * one. It is never undone: other threads may still hold handles at exit. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        g_init_rc = PG_EIO;
        return;
    }
    if (pthread_key_create(&g_key, handle_destroy) != 0)
        g_init_rc = PG_ENOMEM;
}

static CURL *thread_handle(int *rc)
{
    pthread_once(&g_once, global_init);
    if (g_init_rc) {
        *rc = g_init_rc;
        return NULL;
    }
    CURL *h = pthread_getspecific(g_key);
    if (!h) {
        h = curl_easy_init();
        if (!h || pthread_setspecific(g_key, h) != 0) {
            if (h)
                curl_easy_cleanup(h);
            *rc = PG_ENOMEM;
            return NULL;
        }
    }
    *rc = PG_OK;
    return h;
}

void pg_httpc_thread_cleanup(void)
{
    pthread_once(&g_once, global_init);
    if (g_init_rc)
        return;
    CURL *h = pthread_getspecific(g_key);
    if (h) {
        pthread_setspecific(g_key, NULL);
        curl_easy_cleanup(h);
    }
}

int pg_httpc_parse_retry_after(const char *value)
{
    if (!value)
        return -1;
    char tmp[128];
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n && isspace((unsigned char)value[n - 1]))
        n--;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, value, n);
    tmp[n] = '\0';

    int digits = 1;
    for (size_t i = 0; i < n; i++)
        if (tmp[i] < '0' || tmp[i] > '9')
            digits = 0;
    if (digits) {
        /* Saturate instead of failing on absurd values: the server still asked us to wait. */
        long long v = 0;
        for (size_t i = 0; i < n && v <= RETRY_AFTER_MAX_S; i++)
            v = v * 10 + (tmp[i] - '0');
        return v > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : (int)v;
    }
    time_t t = curl_getdate(tmp, NULL);
    if (t == (time_t)-1)
        return -1;
    long long d = (long long)t - (long long)time(NULL);
    if (d < 0)
        d = 0;
    return d > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : (int)d;
}

struct xfer {
    struct pg_buf body;
    int too_large;
    int oom;
    int sent; /* the connection was up and the request about to go out */
    int retry_after_s;
    const char *cap_name; /* req->capture_header or NULL */
    char *cap_out;        /* resp->captured */
    size_t cap_sz;
    int cap_all;       /* req->capture_all */
    struct pg_buf all; /* every value, "\n"-joined */
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    int rc = pg_buf_append(&x->body, p, n);
    if (rc == PG_ETOOLARGE) {
        x->too_large = 1;
        return 0; /* anything but n aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (rc) {
        x->oom = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    /* A new status line starts a new response (after 100 Continue or a 1xx): forget the old
     * one's headers. */
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        x->retry_after_s = -1;
        if (x->cap_out)
            x->cap_out[0] = '\0';
        pg_buf_reset(&x->all);
        return n;
    }
    size_t cl = x->cap_name ? strlen(x->cap_name) : 0;
    if (cl && n > cl && p[cl] == ':' && strncasecmp(p, x->cap_name, cl) == 0) {
        const char *v = p + cl + 1, *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && isspace((unsigned char)e[-1]))
            e--;
        size_t vl = (size_t)(e - v) < x->cap_sz - 1 ? (size_t)(e - v) : x->cap_sz - 1;
        memcpy(x->cap_out, v, vl);
        x->cap_out[vl] = '\0';
        if (x->cap_all && e > v) {
            /* Past the cap the value is dropped (never a partial value); ENOMEM likewise. */
            size_t before = x->all.len;
            if ((before && pg_buf_append(&x->all, "\n", 1) != PG_OK) ||
                pg_buf_append(&x->all, v, (size_t)(e - v)) != PG_OK) {
                x->all.len = before;
                if (x->all.data)
                    x->all.data[before] = '\0';
            }
        }
        return n;
    }
    static const char name[] = "Retry-After:";
    size_t nl = sizeof name - 1;
    if (n > nl && strncasecmp(p, name, nl) == 0) {
        char v[128];
        size_t vl = n - nl < sizeof v - 1 ? n - nl : sizeof v - 1;
        memcpy(v, p + nl, vl);
        v[vl] = '\0';
        x->retry_after_s = pg_httpc_parse_retry_after(v);
    }
    return n;
}

#if LIBCURL_VERSION_NUM >= 0x075000
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    ((struct xfer *)ud)->sent = 1;
    return CURL_PREREQFUNC_OK;
}
#endif

static int map_curl_error(CURLcode cc, const struct xfer *x)
{
    switch (cc) {
    case CURLE_OK:
        return PG_OK;
    case CURLE_OPERATION_TIMEDOUT:
        /* A timeout before the request went out is a connect failure: nothing was sent. */
        return x->sent ? PG_ETIMEDOUT : PG_EUNAVAIL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return PG_EUNAVAIL;
    case CURLE_FILESIZE_EXCEEDED:
        return PG_ETOOLARGE;
    case CURLE_WRITE_ERROR:
        if (x->too_large)
            return PG_ETOOLARGE;
        return x->oom ? PG_ENOMEM : PG_EIO;
    case CURLE_OUT_OF_MEMORY:
        return PG_ENOMEM;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return PG_EINVAL;
    default:
        return PG_EIO;
    }
}

static void resp_init(struct pg_httpc_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_s = -1;
}

void pg_httpc_resp_free(struct pg_httpc_resp *resp)
{
    if (!resp)
        return;
    free(resp->body);
    free(resp->content_type);
    free(resp->captured_all);
    resp_init(resp);
}

static int header_ok(const char *h)
{
    /* A CR or LF would let a value smuggle extra headers (or a second request). */
    return h && *h && !strpbrk(h, "\r\n");
}

int pg_httpc_do(const struct pg_httpc_req *req, struct pg_httpc_resp *resp)
{
    resp_init(resp);
    if (!req || !req->url || !*req->url) {
        snprintf(resp->error, sizeof resp->error, "no URL");
        return PG_EINVAL;
    }
    int rc;
    CURL *h = thread_handle(&rc);
    if (!h) {
        snprintf(resp->error, sizeof resp->error, "libcurl initialisation failed");
        return rc;
    }

    struct curl_slist *hdrs = NULL, *tmp;
    for (const char *const *p = req->headers; p && *p; p++) {
        if (!header_ok(*p)) {
            curl_slist_free_all(hdrs);
            snprintf(resp->error, sizeof resp->error, "invalid request header");
            return PG_EINVAL;
        }
        if (!(tmp = curl_slist_append(hdrs, *p)))
            goto oom;
        hdrs = tmp;
    }
    /* curl would otherwise send "Expect: 100-continue" for larger bodies and wait a second for
     * a 100 that many servers never send. */
    if (!(tmp = curl_slist_append(hdrs, "Expect:")))
        goto oom;
    hdrs = tmp;

    struct xfer x = {.retry_after_s = -1,
                     .cap_name = req->capture_header,
                     .cap_out = resp->captured,
                     .cap_sz = sizeof resp->captured,
                     .cap_all = req->capture_all && req->capture_header};
    pg_buf_init(&x.all, PG_HTTPC_CAPTURE_ALL_MAX);
    size_t cap = req->max_response_bytes ? req->max_response_bytes : PG_HTTPC_DEFAULT_MAX_RESPONSE;
    pg_buf_init(&x.body, cap);
    char errbuf[CURL_ERROR_SIZE] = "";
    const char *method = req->method ? req->method : "GET";

    /* Reset drops every option of the previous call but keeps live connections and caches. */
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 5000));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms > 0 ? req->timeout_ms : 30000));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "posgate"); /* a User-Agent header overrides it */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    /* Content-Length above the cap fails before any body byte is read. */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);
#if LIBCURL_VERSION_NUM >= 0x075000
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, &x);
#else
    x.sent = 1; /* cannot tell: report every timeout as PG_ETIMEDOUT */
#endif

    if (strcmp(method, "GET") == 0 && !req->body) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (req->body || strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }

    CURLcode cc = curl_easy_perform(h);
    rc = map_curl_error(cc, &x);

    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_off_t total_us = 0;
    if (curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK)
        resp->total_ms = (double)total_us / 1000.0;
    resp->retry_after_s = x.retry_after_s;

    if (rc == PG_OK) {
        char *ct = NULL;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct &&
            !(resp->content_type = strdup(ct)))
            rc = PG_ENOMEM;
        if (rc == PG_OK && !x.body.data && pg_buf_append(&x.body, "", 0) != PG_OK)
            rc = PG_ENOMEM;
        if (rc == PG_OK) {
            resp->len = x.body.len;
            resp->body = pg_buf_steal(&x.body);
            if (x.all.len)
                resp->captured_all = pg_buf_steal(&x.all);
        }
    } else {
        if (rc == PG_ETOOLARGE)
            snprintf(resp->error, sizeof resp->error, "response larger than %zu bytes", cap);
        else
            snprintf(resp->error, sizeof resp->error, "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    /* Nothing the handle keeps may point at this call's stack or header list. */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    pg_buf_free(&x.body);
    pg_buf_free(&x.all);
    if (rc != PG_OK) {
        free(resp->content_type);
        resp->content_type = NULL;
    }
    return rc;

oom:
    curl_slist_free_all(hdrs);
    snprintf(resp->error, sizeof resp->error, "out of memory");
    return PG_ENOMEM;
}
