/*
 * pg_httpc against a libmicrohttpd server started in the test on a free loopback port, then
 * pg_gl_call and pg_webhook_send against canned replies from the same server.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "micros/glcrm.h"
#include "micros/webhook.h"
#include "server/buf.h"
#include "server/httpc.h"
#include "server/util.h"
#include "tests/support/harness.h"

/* ---- the in-test server ---- */

static struct MHD_Daemon *g_d;
static char g_base[64];
static atomic_int g_stop;

/* What the server saw on the last request (one request at a time in the tests that read it). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char path[128];
    char method[16];
    char *body;
    size_t len;
    char hook_id[300], hook_ts[64], hook_sig[128], ctype[128], soapaction[64], ua[64];
    int has_expect;
} g_seen;

struct conn {
    struct pg_buf body;
};

static void copy_hdr(struct MHD_Connection *c, const char *name, char *dst, size_t dsz)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(dst, dsz, "%s", v ? v : "");
}

static enum MHD_Result reply(struct MHD_Connection *c,
                             unsigned status,
                             const char *ctype,
                             const char *body,
                             const char *retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static ssize_t chunk_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    if (pos >= 10000)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < 1000 ? max : 1000;
    memset(buf, 'y', n);
    return (ssize_t)n;
}

/* A processRequest response wrapping inner (escaped) as the G&L host sends it. */
static char *gl_reply(const char *inner)
{
    struct pg_buf w;
    pg_buf_init(&w, 1 << 20);
    int rc = pg_buf_puts(&w, "<?xml version='1.0' encoding='UTF-8'?><S:Envelope "
                             "xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>"
                             "<ns2:processRequestResponse xmlns:ns2=\"ejb.storedValue.micros.com\">"
                             "<return>");
    for (const char *p = inner; *p && !rc; p++) {
        const char *e = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : NULL;
        rc = e ? pg_buf_puts(&w, e) : pg_buf_append(&w, p, 1);
    }
    if (!rc)
        rc = pg_buf_puts(&w, "</return></ns2:processRequestResponse></S:Body></S:Envelope>");
    return rc ? NULL : pg_buf_steal(&w);
}

static enum MHD_Result gl_route(struct MHD_Connection *c, const char *what)
{
    const char *inner = NULL;
    if (strcmp(what, "A") == 0)
        inner = "<CRMMessage isTrustedSAT=\"false\" hostversion=\"1.00\"><RequestCode>SetCustomer"
                "</RequestCode><ResponseCode>A</ResponseCode><Row id=\"456663\"/></CRMMessage>";
    else if (strcmp(what, "D") == 0)
        inner = "<CRMMessage><RequestCode>SetCustomer</RequestCode><ResponseCode hostCode=\"70\">"
                "D</ResponseCode><DisplayMessage>SetRollbackException</DisplayMessage>"
                "</CRMMessage>";
    else if (strcmp(what, "busy") == 0)
        inner = "<CRMMessage><ResponseCode hostCode=\"999\">D</ResponseCode><DisplayMessage>"
                "Host busy</DisplayMessage></CRMMessage>";
    else if (strcmp(what, "500") == 0)
        return reply(c, 500, "text/xml",
                     "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>"
                     "<S:Fault><faultcode>S:Server</faultcode><faultstring>Database unavailable"
                     "</faultstring></S:Fault></S:Body></S:Envelope>",
                     NULL);
    else if (strcmp(what, "429") == 0)
        return reply(c, 429, "text/plain", "slow down", "4");
    else if (strcmp(what, "404") == 0)
        return reply(c, 404, "text/plain", "no such service", NULL);
    else if (strcmp(what, "garbage") == 0)
        return reply(c, 200, "text/html", "<html>login</html>", NULL);
    if (!inner)
        return reply(c, 404, "text/plain", "unknown", NULL);
    char *env = gl_reply(inner);
    if (!env)
        return MHD_NO;
    enum MHD_Result ret = reply(c, 200, "text/xml;charset=utf-8", env, NULL);
    free(env);
    return ret;
}

static enum MHD_Result handler(void *cls,
                               struct MHD_Connection *c,
                               const char *url,
                               const char *method,
                               const char *version,
                               const char *upload,
                               size_t *upload_size,
                               void **con_cls)
{
    struct conn *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        pg_buf_init(&st->body, 1 << 20);
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size) {
        if (pg_buf_append(&st->body, upload, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&g_mu);
    snprintf(g_seen.path, sizeof g_seen.path, "%s", url);
    snprintf(g_seen.method, sizeof g_seen.method, "%s", method);
    free(g_seen.body);
    g_seen.len = st->body.len;
    g_seen.body = st->body.data ? strdup(st->body.data) : strdup("");
    copy_hdr(c, "webhook-id", g_seen.hook_id, sizeof g_seen.hook_id);
    copy_hdr(c, "webhook-timestamp", g_seen.hook_ts, sizeof g_seen.hook_ts);
    copy_hdr(c, "webhook-signature", g_seen.hook_sig, sizeof g_seen.hook_sig);
    copy_hdr(c, "Content-Type", g_seen.ctype, sizeof g_seen.ctype);
    copy_hdr(c, "SOAPAction", g_seen.soapaction, sizeof g_seen.soapaction);
    copy_hdr(c, "User-Agent", g_seen.ua, sizeof g_seen.ua);
    g_seen.has_expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect") != NULL;
    pthread_mutex_unlock(&g_mu);

    if (strcmp(url, "/ok") == 0)
        return reply(c, 200, "text/plain", "hello world", NULL);
    if (strcmp(url, "/echo") == 0) {
        char *copy = strndup(st->body.data ? st->body.data : "", st->body.len);
        enum MHD_Result ret = copy ? reply(c, 201, "application/json", copy, NULL) : MHD_NO;
        free(copy);
        return ret;
    }
    if (strcmp(url, "/503s") == 0)
        return reply(c, 503, "text/plain", "busy", "7");
    if (strcmp(url, "/503d") == 0) {
        char date[64];
        time_t t = time(NULL) + 120;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        return reply(c, 503, "text/plain", "busy", date);
    }
    if (strcmp(url, "/big") == 0) {
        char *big = malloc(10001);
        if (!big)
            return MHD_NO;
        memset(big, 'x', 10000);
        big[10000] = '\0';
        enum MHD_Result ret = reply(c, 200, "text/plain", big, NULL);
        free(big);
        return ret;
    }
    if (strcmp(url, "/bigchunk") == 0) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1000, chunk_cb, NULL, NULL);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/sleep") == 0) {
        for (int i = 0; i < 300 && !atomic_load(&g_stop); i++) /* up to 3 s */
            pg_sleep_ms(10);
        return reply(c, 200, "text/plain", "late", NULL);
    }
    if (strcmp(url, "/drop") == 0)
        return MHD_NO; /* close the connection without any reply */
    if (strncmp(url, "/gl/", 4) == 0)
        return gl_route(c, url + 4);
    if (strcmp(url, "/hook") == 0)
        return reply(c, 204, NULL, "", NULL);
    if (strcmp(url, "/hook429") == 0)
        return reply(c, 429, "text/plain", "slow", "3");
    if (strcmp(url, "/hook503") == 0)
        return reply(c, 503, "text/plain", "down", NULL);
    if (strcmp(url, "/hook400") == 0)
        return reply(c, 400, "text/plain", "bad", NULL);
    return reply(c, 404, "text/plain", "not found", NULL);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    struct conn *st = *con_cls;
    if (st) {
        pg_buf_free(&st->body);
        free(st);
        *con_cls = NULL;
    }
}

static int server_start(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    atomic_store(&g_stop, 0);
    g_d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                           NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                           MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!g_d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(g_d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port)
        return -1;
    snprintf(g_base, sizeof g_base, "http://127.0.0.1:%u", (unsigned)info->port);
    return 0;
}

static int server_stop(void **state)
{
    atomic_store(&g_stop, 1);
    pg_httpc_thread_cleanup();
    MHD_stop_daemon(g_d);
    free(g_seen.body);
    g_seen.body = NULL;
    return 0;
}

static const char *url(const char *path)
{
    static char u[128];
    snprintf(u, sizeof u, "%s%s", g_base, path);
    return u;
}

static int get(const char *path, size_t cap, int timeout_ms, struct pg_httpc_resp *resp)
{
    struct pg_httpc_req req = {.url = url(path),
                               .connect_timeout_ms = 1000,
                               .timeout_ms = timeout_ms ? timeout_ms : 5000,
                               .max_response_bytes = cap};
    return pg_httpc_do(&req, resp);
}

/* ---- pg_httpc ---- */

static void ok_200(void **state)
{
    struct pg_httpc_resp r;
    assert_int_equal(get("/ok", 0, 0, &r), PG_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 11);
    assert_string_equal(r.body, "hello world");
    assert_string_equal(r.content_type, "text/plain");
    assert_int_equal(r.retry_after_s, -1);
    assert_true(r.total_ms > 0);
    assert_string_equal(r.error, "");
    pg_httpc_resp_free(&r);
    assert_null(r.body);
    /* The same thread's handle is reused for the next call. */
    assert_int_equal(get("/ok", 0, 0, &r), PG_OK);
    assert_int_equal(r.status, 200);
    pg_httpc_resp_free(&r);
}

static void post_body_and_headers(void **state)
{
    const char *hdrs[] = {"Content-Type: application/json", "X-Test: 1", NULL};
    const char *body = "{\"a\":\"b\"}";
    struct pg_httpc_req req = {.method = "POST",
                               .url = url("/echo"),
                               .headers = hdrs,
                               .body = body,
                               .body_len = strlen(body),
                               .timeout_ms = 5000};
    struct pg_httpc_resp r;
    assert_int_equal(pg_httpc_do(&req, &r), PG_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, body);
    assert_string_equal(g_seen.method, "POST");
    assert_string_equal(g_seen.ctype, "application/json");
    assert_string_equal(g_seen.ua, "posgate");
    assert_false(g_seen.has_expect);
    pg_httpc_resp_free(&r);

    req.method = "PATCH";
    assert_int_equal(pg_httpc_do(&req, &r), PG_OK);
    assert_string_equal(g_seen.method, "PATCH");
    assert_string_equal(r.body, body);
    pg_httpc_resp_free(&r);
}

static void retry_after_seconds_and_date(void **state)
{
    struct pg_httpc_resp r;
    assert_int_equal(get("/503s", 0, 0, &r), PG_OK);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after_s, 7);
    pg_httpc_resp_free(&r);
    assert_int_equal(get("/503d", 0, 0, &r), PG_OK);
    assert_int_equal(r.status, 503);
    assert_in_range(r.retry_after_s, 100, 121);
    pg_httpc_resp_free(&r);
}

static void retry_after_parser(void **state)
{
    assert_int_equal(pg_httpc_parse_retry_after(" 5 \r\n"), 5);
    assert_int_equal(pg_httpc_parse_retry_after("0"), 0);
    assert_int_equal(pg_httpc_parse_retry_after("99999999999999999999"), 86400);
    assert_int_equal(pg_httpc_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
    assert_int_equal(pg_httpc_parse_retry_after("soon"), -1);
    assert_int_equal(pg_httpc_parse_retry_after("-5"), -1);
    assert_int_equal(pg_httpc_parse_retry_after(""), -1);
    assert_int_equal(pg_httpc_parse_retry_after(NULL), -1);
}

static void response_cap(void **state)
{
    struct pg_httpc_resp r;
    assert_int_equal(get("/big", 1000, 0, &r), PG_ETOOLARGE); /* Content-Length above the cap */
    assert_null(r.body);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.error, "1000"));
    pg_httpc_resp_free(&r);
    assert_int_equal(get("/bigchunk", 1000, 0, &r), PG_ETOOLARGE); /* chunked, no length */
    pg_httpc_resp_free(&r);
    assert_int_equal(get("/big", 10000, 0, &r), PG_OK); /* exactly the cap is fine */
    assert_int_equal(r.len, 10000);
    pg_httpc_resp_free(&r);
    assert_int_equal(get("/bigchunk", 10000, 0, &r), PG_OK);
    assert_int_equal(r.len, 10000);
    pg_httpc_resp_free(&r);
}

static void timeout(void **state)
{
    struct pg_httpc_resp r;
    int64_t t0 = pg_now_ms();
    assert_int_equal(get("/sleep", 0, 300, &r), PG_ETIMEDOUT);
    int64_t took = pg_now_ms() - t0;
    assert_in_range(took, 250, 1500);
    assert_true(r.error[0] != '\0');
    pg_httpc_resp_free(&r);
}

static void connection_refused(void **state)
{
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/x", pg_t_free_port());
    struct pg_httpc_req req = {.url = u, .connect_timeout_ms = 1000, .timeout_ms = 2000};
    struct pg_httpc_resp r;
    int64_t t0 = pg_now_ms();
    assert_int_equal(pg_httpc_do(&req, &r), PG_EUNAVAIL);
    assert_true(pg_now_ms() - t0 < 1000);
    assert_int_equal(r.status, 0);
    pg_httpc_resp_free(&r);
}

static void dropped_connection(void **state)
{
    struct pg_httpc_resp r;
    assert_int_equal(get("/drop", 0, 0, &r), PG_EIO);
    assert_true(r.error[0] != '\0');
    pg_httpc_resp_free(&r);
    /* The handle recovers for the next call. */
    assert_int_equal(get("/ok", 0, 0, &r), PG_OK);
    pg_httpc_resp_free(&r);
}

static void invalid_requests(void **state)
{
    struct pg_httpc_resp r;
    struct pg_httpc_req req = {.url = "ftp://127.0.0.1/x", .timeout_ms = 1000};
    assert_int_equal(pg_httpc_do(&req, &r), PG_EINVAL);
    pg_httpc_resp_free(&r);
    req.url = NULL;
    assert_int_equal(pg_httpc_do(&req, &r), PG_EINVAL);
    pg_httpc_resp_free(&r);
    const char *evil[] = {"X-A: 1\r\nX-B: 2", NULL};
    req.url = url("/ok");
    req.headers = evil;
    assert_int_equal(pg_httpc_do(&req, &r), PG_EINVAL);
    pg_httpc_resp_free(&r);
}

static void *worker(void *arg)
{
    intptr_t ok = 0;
    for (int i = 0; i < 20; i++) {
        struct pg_httpc_resp r;
        if (get("/ok", 0, 0, &r) == PG_OK && r.status == 200 && strcmp(r.body, "hello world") == 0)
            ok++;
        pg_httpc_resp_free(&r);
    }
    pg_httpc_thread_cleanup();
    return (void *)ok;
}

static void threads_share_nothing(void **state)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        assert_int_equal((intptr_t)ok, 20);
    }
}

/* ---- pg_gl_call ---- */

static const char *const retryable[] = {"999", NULL};

static enum pg_gl_outcome gl(const char *path, const char *const *codes, struct pg_gl_result *res)
{
    struct pg_gl_config c = {.url = url(path),
                             .logon = "LOGON",
                             .password = "pw&<",
                             .request_source = "gw",
                             .connect_timeout_ms = 1000,
                             .timeout_ms = 3000};
    return pg_gl_call(&c, "<CRMMessage><RequestCode>SetCustomer</RequestCode></CRMMessage>", codes,
                      res);
}

static void gl_approved(void **state)
{
    struct pg_gl_result res;
    assert_int_equal(gl("/gl/A", retryable, &res), PG_GL_OK);
    assert_int_equal(res.response_code, 'A');
    assert_string_equal(res.row_id, "456663");
    assert_int_equal(res.http_status, 200);
    pg_gl_result_free(&res);
    /* What went over the wire. */
    assert_string_equal(g_seen.method, "POST");
    assert_string_equal(g_seen.ctype, "text/xml; charset=utf-8");
    assert_string_equal(g_seen.soapaction, "\"\"");
    assert_non_null(strstr(g_seen.body, "<in0>&lt;CRMMessage&gt;&lt;RequestCode&gt;SetCustomer"));
    assert_non_null(strstr(g_seen.body, "<in1>LOGON</in1><in2>pw&amp;&lt;</in2><in3>"));
    /* python3 -c 'import zlib; print("%08X" % zlib.crc32(
     *   b"<CRMMessage><RequestCode>SetCustomer</RequestCode></CRMMessage>"))' */
    assert_non_null(strstr(g_seen.body, "<in3>A28C112F</in3>"));
}

static void gl_server_error_retries(void **state)
{
    struct pg_gl_result res;
    assert_int_equal(gl("/gl/500", retryable, &res), PG_GL_RETRY);
    assert_int_equal(res.http_status, 500);
    assert_non_null(strstr(res.message, "Database unavailable"));
    pg_gl_result_free(&res);
    assert_int_equal(gl("/gl/429", retryable, &res), PG_GL_RETRY);
    assert_int_equal(res.http_status, 429);
    assert_int_equal(res.retry_after_s, 4);
    pg_gl_result_free(&res);
}

static void gl_declined_fails(void **state)
{
    struct pg_gl_result res;
    assert_int_equal(gl("/gl/D", retryable, &res), PG_GL_FAIL);
    assert_int_equal(res.response_code, 'D');
    assert_string_equal(res.host_code, "70");
    assert_string_equal(res.message, "SetRollbackException");
    pg_gl_result_free(&res);
    assert_int_equal(gl("/gl/404", retryable, &res), PG_GL_FAIL);
    assert_int_equal(res.http_status, 404);
    pg_gl_result_free(&res);
    assert_int_equal(gl("/gl/garbage", retryable, &res), PG_GL_FAIL);
    assert_true(res.message[0] != '\0');
    pg_gl_result_free(&res);
}

static void gl_retryable_host_code(void **state)
{
    struct pg_gl_result res;
    assert_int_equal(gl("/gl/busy", retryable, &res), PG_GL_RETRY);
    assert_string_equal(res.host_code, "999");
    pg_gl_result_free(&res);
    assert_int_equal(gl("/gl/busy", NULL, &res), PG_GL_FAIL);
    pg_gl_result_free(&res);
}

static void gl_transport_errors_retry(void **state)
{
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/ws", pg_t_free_port());
    struct pg_gl_config c = {.url = u, .logon = "l", .password = "p", .request_source = "gw"};
    struct pg_gl_result res;
    assert_int_equal(pg_gl_call(&c, "<CRMMessage/>", NULL, &res), PG_GL_RETRY);
    assert_non_null(strstr(res.message, "EUNAVAIL"));
    assert_int_equal(res.http_status, 0);
    pg_gl_result_free(&res);
    c.url = url("/sleep");
    c.timeout_ms = 200;
    assert_int_equal(pg_gl_call(&c, "<CRMMessage/>", NULL, &res), PG_GL_RETRY);
    assert_non_null(strstr(res.message, "ETIMEDOUT"));
    pg_gl_result_free(&res);
}

/* ---- pg_webhook_send ---- */

static void webhook_delivered_and_signed(void **state)
{
    struct pg_webhook_config c = {.url = url("/hook"),
                                  .secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                  .timeout_ms = 3000};
    const char *body = "{\"type\":\"member.updated\",\"id\":\"LY-000123\"}";
    long status = -5;
    int ra = -5;
    char err[256] = "x";
    long long before = (long long)(pg_wall_ms() / 1000);
    assert_int_equal(
        pg_webhook_send(&c, "msg_123", body, strlen(body), &status, &ra, err, sizeof err),
        PG_WEBHOOK_OK);
    assert_int_equal(status, 204);
    assert_int_equal(ra, -1);
    assert_string_equal(err, "");
    assert_string_equal(g_seen.hook_id, "msg_123");
    assert_string_equal(g_seen.ctype, "application/json");
    assert_string_equal(g_seen.ua, "posgate");
    assert_string_equal(g_seen.body, body);
    long long ts = 0;
    assert_int_equal(pg_strtonum(g_seen.hook_ts, 0, 1LL << 40, &ts), 0);
    assert_in_range(ts, before, before + 5);
    char want[100];
    assert_int_equal(
        pg_webhook_sign(c.secret, "msg_123", ts, body, strlen(body), want, sizeof want), PG_OK);
    assert_string_equal(g_seen.hook_sig, want);
}

static void webhook_outcomes(void **state)
{
    struct pg_webhook_config c = {.url = url("/hook429"), .secret = "raw", .timeout_ms = 3000};
    long status;
    int ra;
    char err[256];
    assert_int_equal(pg_webhook_send(&c, "m1", "{}", 2, &status, &ra, err, sizeof err),
                     PG_WEBHOOK_RETRY);
    assert_int_equal(status, 429);
    assert_int_equal(ra, 3);
    c.url = url("/hook503");
    assert_int_equal(pg_webhook_send(&c, "m1", "{}", 2, &status, &ra, err, sizeof err),
                     PG_WEBHOOK_RETRY);
    assert_int_equal(status, 503);
    c.url = url("/hook400");
    assert_int_equal(pg_webhook_send(&c, "m1", "{}", 2, &status, &ra, err, sizeof err),
                     PG_WEBHOOK_FAIL);
    assert_string_equal(err, "HTTP 400");
    c.url = url("/sleep");
    c.timeout_ms = 200;
    assert_int_equal(pg_webhook_send(&c, "m1", "{}", 2, NULL, NULL, NULL, 0), PG_WEBHOOK_RETRY);
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/h", pg_t_free_port());
    c.url = u;
    assert_int_equal(pg_webhook_send(&c, "m1", "{}", 2, &status, &ra, err, sizeof err),
                     PG_WEBHOOK_RETRY);
    assert_int_equal(status, 0);
    c.url = url("/hook");
    c.secret = "whsec_%%%";
    assert_int_equal(pg_webhook_send(&c, "m1", "{}", 2, &status, &ra, err, sizeof err),
                     PG_WEBHOOK_FAIL);
    assert_non_null(strstr(err, "sign"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ok_200),
        cmocka_unit_test(post_body_and_headers),
        cmocka_unit_test(retry_after_seconds_and_date),
        cmocka_unit_test(retry_after_parser),
        cmocka_unit_test(response_cap),
        cmocka_unit_test(timeout),
        cmocka_unit_test(connection_refused),
        cmocka_unit_test(dropped_connection),
        cmocka_unit_test(invalid_requests),
        cmocka_unit_test(threads_share_nothing),
        cmocka_unit_test(gl_approved),
        cmocka_unit_test(gl_server_error_retries),
        cmocka_unit_test(gl_declined_fails),
        cmocka_unit_test(gl_retryable_host_code),
        cmocka_unit_test(gl_transport_errors_retry),
        cmocka_unit_test(webhook_delivered_and_signed),
        cmocka_unit_test(webhook_outcomes),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
