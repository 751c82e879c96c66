/*
 * BI API client against a libmicrohttpd server started in the test on a free loopback port. The
 * server follows micros-wire.md §1.1 strictly: authorize registers the PKCE challenge with a
 * session cookie; signin needs that cookie and the right username/password/orgname and binds a
 * single-use code to the session; token needs the code, the same client_id and redirect_uri,
 * the session cookie, and a code_verifier whose BASE64URL(SHA256()) equals the challenge; the
 * refresh grant needs the current refresh token. The data endpoints accept only the current
 * id_token as bearer, and getGuestChecks rejects two date fields, a Z suffix and a missing
 * locRef (§1.4). Every call is counted so caching and single flight are proved by numbers.
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

#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "micros/bi.h"
#include "server/buf.h"
#include "server/httpc.h"
#include "server/util.h"

#define CLIENT_ID "MDAwMDAwMDAtYmktY2xpZW50LTEyMzQ=" /* base64: '=' must be form-encoded */
#define USERNAME "posgate-bi"
#define PASSWORD "p&ss w=rd%+"
#define ORG "acme"
#define REDIRECT "apiaccount://callback"

/* ---- the in-test Simphony identity server and BI API ---- */

static struct MHD_Daemon *g_d;
static char g_base[64];
static atomic_int g_stop;

static atomic_int g_authorize_calls, g_signin_calls, g_code_grants, g_refresh_grants;
static atomic_int g_token_calls, g_pkce_ok;
static atomic_int g_gc_calls, g_dim_calls, g_totals_calls, g_latest_calls;
static atomic_int g_signin_delay_ms;
static atomic_int g_token_life_s;   /* exp of issued id_tokens: now + this */
static atomic_int g_refresh_refuse; /* 1: refresh grants are invalid_grant */
static atomic_int g_gc_mode;        /* 0 ok, 1 429+Retry-After 7, 2 503, 3 400, 4 slow, 5 401 */
static atomic_int g_latest_404;     /* 1: getLatestBusDt is 404 (only the alias works) */
static atomic_int g_issued;

#define MAX_SESSIONS 256
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct session {
    char sid[33];
    char challenge[64];
    char code[33];
    int code_used;
} g_sessions[MAX_SESSIONS];
static int g_nsessions;
static char g_valid_token[512]; /* the one bearer the API accepts */
static char g_refresh[64];      /* the current refresh token */
static char g_last_body[1024];  /* last data call's body */
static char g_last_op[64];

struct conn {
    struct pg_buf body;
};

static enum MHD_Result reply_h(struct MHD_Connection *c,
                               unsigned status,
                               const char *body,
                               const char *hname,
                               const char *hval)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json;charset=UTF-8");
    if (hname)
        MHD_add_response_header(r, hname, hval);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    return reply_h(c, status, body, NULL, NULL);
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    unsigned char tmp[256];
    int len = EVP_EncodeBlock(tmp, in, (int)n);
    int o = 0;
    for (int i = 0; i < len; i++) {
        if (tmp[i] == '=')
            break;
        out[o++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : (char)tmp[i];
    }
    out[o] = '\0';
}

static void rand_hex(char *out)
{
    unsigned char b[16];
    assert_int_equal(pg_random_bytes(b, sizeof b), PG_OK);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* Decoded form value (NULL when absent). */
static char *form_value(const char *body, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = body; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char *out = malloc(len);
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                if (p[i] == '%' && i + 2 < len) {
                    char h[3] = {p[i + 1], p[i + 2], 0};
                    out[o++] = (char)strtol(h, NULL, 16);
                    i += 2;
                } else {
                    out[o++] = p[i] == '+' ? ' ' : p[i];
                }
            }
            out[o] = '\0';
            return out;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static int eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static enum MHD_Result authorize(struct MHD_Connection *c)
{
    atomic_fetch_add(&g_authorize_calls, 1);
#define ARG(n) MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, n)
    const char *ch = ARG("code_challenge");
    if (!eq(ARG("response_type"), "code") || !eq(ARG("client_id"), CLIENT_ID) ||
        !eq(ARG("scope"), "openid") || !eq(ARG("redirect_uri"), REDIRECT) ||
        !eq(ARG("code_challenge_method"), "S256") || !ch || strlen(ch) != 43 ||
        strspn(ch, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != 43)
        return reply(c, 400, "{\"error\":\"invalid_request\"}");
#undef ARG
    pthread_mutex_lock(&g_mu);
    struct session *s = &g_sessions[g_nsessions++ % MAX_SESSIONS];
    memset(s, 0, sizeof *s);
    rand_hex(s->sid);
    snprintf(s->challenge, sizeof s->challenge, "%s", ch);
    char cookie[128];
    snprintf(cookie, sizeof cookie, "JSESSIONID=%s; Path=/oidc-provider; Secure; HttpOnly", s->sid);
    pthread_mutex_unlock(&g_mu);
    return reply_h(c, 200, "{}", "Set-Cookie", cookie);
}

static struct session *find_session(const char *sid)
{
    for (int i = 0; sid && i < MAX_SESSIONS && i < g_nsessions; i++)
        if (strcmp(g_sessions[i].sid, sid) == 0)
            return &g_sessions[i];
    return NULL;
}

static enum MHD_Result signin(struct MHD_Connection *c, const char *body)
{
    atomic_fetch_add(&g_signin_calls, 1);
    for (int i = 0; i < atomic_load(&g_signin_delay_ms) / 10 && !atomic_load(&g_stop); i++)
        pg_sleep_ms(10);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!eq(ct, "application/x-www-form-urlencoded"))
        return reply(c, 400, "{\"status\":400,\"message\":\"content type\"}");
    char *u = form_value(body, "username"), *p = form_value(body, "password"),
         *o = form_value(body, "orgname");
    int ok = eq(u, USERNAME) && eq(p, PASSWORD) && eq(o, ORG);
    free(u);
    free(p);
    free(o);
    if (!ok)
        return reply(c, 401,
                     "{\"status\":401,\"message\":\"invalid.credentials\","
                     "\"code\":\"AUTHENTICATION_INVALID\"}");
    pthread_mutex_lock(&g_mu);
    struct session *s = find_session(MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "JSESSIONID"));
    char out[256] = "";
    if (s) {
        rand_hex(s->code);
        snprintf(out, sizeof out,
                 "{\"nextOp\":\"redirect\",\"success\":\"true\","
                 "\"redirectUrl\":\"" REDIRECT "?code=%s\"}",
                 s->code);
    }
    pthread_mutex_unlock(&g_mu);
    if (!s)
        return reply(c, 400, "{\"status\":400,\"message\":\"no session\"}");
    return reply_h(c, 200, out, "Set-Cookie", "IDMROUTE=r1; Path=/");
}

static enum MHD_Result issue(struct MHD_Connection *c)
{
    int n = atomic_fetch_add(&g_issued, 1) + 1;
    char payload[128], p64[256], tok[512], out[1024];
    snprintf(payload, sizeof payload, "{\"sub\":\"" USERNAME "\",\"exp\":%lld,\"n\":%d}",
             (long long)(pg_wall_ms() / 1000 + atomic_load(&g_token_life_s)), n);
    b64url((const unsigned char *)payload, strlen(payload), p64);
    snprintf(tok, sizeof tok, "eyJhbGciOiJSUzI1NiJ9.%s.c2lnbmF0dXJl", p64);
    pthread_mutex_lock(&g_mu);
    snprintf(g_valid_token, sizeof g_valid_token, "%s", tok);
    rand_hex(g_refresh);
    snprintf(out, sizeof out,
             "{\"id_token\":\"%s\",\"access_token\":\"at-%d\",\"refresh_token\":\"%s\","
             "\"token_type\":\"Bearer\",\"expires_in\":1209600,\"scope\":\"openid\"}",
             tok, n, g_refresh);
    pthread_mutex_unlock(&g_mu);
    return reply(c, 200, out);
}

static enum MHD_Result token(struct MHD_Connection *c, const char *body)
{
    atomic_fetch_add(&g_token_calls, 1);
    char *gt = form_value(body, "grant_type"), *cid = form_value(body, "client_id");
    char *scope = form_value(body, "scope"), *ru = form_value(body, "redirect_uri");
    enum MHD_Result ret;
    const char *bad = NULL;
    if (!eq(cid, CLIENT_ID) || !eq(scope, "openid") || !eq(ru, REDIRECT)) {
        bad = "client_id, scope or redirect_uri";
    } else if (eq(gt, "authorization_code")) {
        char *code = form_value(body, "code"), *v = form_value(body, "code_verifier");
        pthread_mutex_lock(&g_mu);
        struct session *s =
            find_session(MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "JSESSIONID"));
        char want[64] = "";
        size_t vl = v ? strlen(v) : 0;
        if (v && vl >= 43 && vl <= 128 &&
            strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == vl) {
            unsigned char md[SHA256_DIGEST_LENGTH];
            SHA256((const unsigned char *)v, vl, md);
            b64url(md, sizeof md, want);
        }
        if (!s || !code || !eq(s->code, code) || s->code_used)
            bad = "unknown, used or foreign code";
        else if (!want[0] || strcmp(want, s->challenge) != 0)
            bad = "PKCE verification failed";
        else if (!eq(MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "IDMROUTE"), "r1"))
            bad = "signin cookie not forwarded";
        if (s && code && eq(s->code, code))
            s->code_used = 1; /* single use, even when the verifier was wrong */
        pthread_mutex_unlock(&g_mu);
        free(code);
        free(v);
        if (!bad) {
            atomic_fetch_add(&g_pkce_ok, 1);
            atomic_fetch_add(&g_code_grants, 1);
        }
    } else if (eq(gt, "refresh_token")) {
        char *rt = form_value(body, "refresh_token");
        pthread_mutex_lock(&g_mu);
        if (atomic_load(&g_refresh_refuse) || !rt || strcmp(rt, g_refresh) != 0)
            bad = "refresh token";
        pthread_mutex_unlock(&g_mu);
        free(rt);
        if (!bad)
            atomic_fetch_add(&g_refresh_grants, 1);
    } else {
        bad = "grant_type";
    }
    if (bad) {
        char out[256];
        snprintf(out, sizeof out, "{\"error\":\"invalid_grant\",\"error_description\":\"%s\"}",
                 bad);
        ret = reply(c, 400, out);
    } else {
        ret = issue(c);
    }
    free(gt);
    free(cid);
    free(scope);
    free(ru);
    return ret;
}

static enum MHD_Result bi_error(struct MHD_Connection *c, unsigned status, const char *detail)
{
    char out[512];
    snprintf(out, sizeof out,
             "{\"type\":\"about:blank\",\"title\":\"Bad Request\",\"status\":%u,\"detail\":\"%s\","
             "\"code\":\"33205\"}",
             status, detail);
    return reply(c, status, out);
}

static enum MHD_Result guest_checks(struct MHD_Connection *c, json_t *req)
{
    atomic_fetch_add(&g_gc_calls, 1);
    int mode = atomic_load(&g_gc_mode);
    if (mode == 1)
        return reply_h(c, 429, "{\"status\":429,\"title\":\"Too Many Requests\"}", "Retry-After",
                       "7");
    if (mode == 2)
        return reply(c, 503, "<html>maintenance</html>");
    if (mode == 3)
        return reply(c, 400,
                     "{\"type\":\"x\",\"title\":\"Bad Request\",\"status\":400,"
                     "\"detail\":\"searchCriteria must start with where\",\"code\":\"33204\"}");
    if (mode == 4)
        for (int i = 0; i < 300 && !atomic_load(&g_stop) && atomic_load(&g_gc_mode) == 4; i++)
            pg_sleep_ms(10);
    const char *loc = json_string_value(json_object_get(req, "locRef"));
    if (!loc || !*loc)
        return bi_error(c, 400, "locRef is required");
    int dates = !!json_object_get(req, "busDt") + !!json_object_get(req, "opnBusDt") +
                !!json_object_get(req, "clsdBusDt");
    if (dates != 1)
        return bi_error(c, 400, "exactly one of busDt, opnBusDt, clsdBusDt");
    json_t *cs = json_object_get(req, "changedSinceUTC");
    if (cs && (!json_is_string(cs) || strlen(json_string_value(cs)) != 19 ||
               strchr(json_string_value(cs), 'Z')))
        return bi_error(c, 400, "changedSinceUTC must be YYYY-MM-DDTHH:MM:SS");
    char out[1024];
    snprintf(out, sizeof out,
             "{\"curUTC\":\"2024-05-01T20:08:43\",\"locRef\":\"%s\",\"guestChecks\":["
             "{\"guestCheckId\":915266015,\"chkNum\":9485,\"clsdFlag\":true,\"chkTtl\":313.9,"
             "\"detailLines\":[{\"guestCheckLineItemId\":5930161458,\"menuItem\":{\"miNum\":7021}}"
             "]}]}",
             loc);
    return reply(c, 200, out);
}

static enum MHD_Result bi_api(struct MHD_Connection *c, const char *op, const char *body)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&g_mu);
    int authed = auth && strncmp(auth, "Bearer ", 7) == 0 && g_valid_token[0] &&
                 strcmp(auth + 7, g_valid_token) == 0;
    snprintf(g_last_body, sizeof g_last_body, "%s", body);
    snprintf(g_last_op, sizeof g_last_op, "%s", op);
    pthread_mutex_unlock(&g_mu);
    if (atomic_load(&g_gc_mode) == 5 && strcmp(op, "getGuestChecks") == 0) {
        atomic_fetch_add(&g_gc_calls, 1);
        authed = 0;
    }
    if (!authed)
        return reply(c, 401, "{\"status\":401,\"title\":\"Unauthorized\"}");
    if (!eq(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"), "application/json"))
        return bi_error(c, 415, "content type");
    json_t *req = json_loads(body, 0, NULL);
    if (!json_is_object(req)) {
        json_decref(req);
        return bi_error(c, 400, "body is not a JSON object");
    }
    enum MHD_Result ret;
    const char *loc = json_string_value(json_object_get(req, "locRef"));
    char out[512];
    if (strcmp(op, "getGuestChecks") == 0) {
        ret = guest_checks(c, req);
    } else if (strstr(op, "Dimensions")) {
        atomic_fetch_add(&g_dim_calls, 1);
        snprintf(out, sizeof out,
                 "{\"curUTC\":\"2024-05-01T20:08:43\",\"locRef\":%s%s%s,"
                 "\"menuItems\":[{\"num\":7021,\"name\":\"Burger\"}]}",
                 loc ? "\"" : "", loc ? loc : "null", loc ? "\"" : "");
        ret = reply(c, 200, out);
    } else if (strstr(op, "DailyTotals")) {
        atomic_fetch_add(&g_totals_calls, 1);
        const char *bd = json_string_value(json_object_get(req, "busDt"));
        if (!loc || !bd) {
            ret = bi_error(c, 400, "locRef and busDt are required");
        } else {
            snprintf(out, sizeof out,
                     "{\"curUTC\":\"2024-05-02T03:00:00\",\"locRef\":\"%s\",\"busDt\":\"%s\","
                     "\"revenueCenters\":[{\"rvcNum\":5,\"numClsdChks\":12,\"clsdChkTtl\":"
                     "1234.5}]}",
                     loc, bd);
            ret = reply(c, 200, out);
        }
    } else if (strcmp(op, "getLatestBusDt") == 0 || strcmp(op, "getLatestBusinessDate") == 0) {
        atomic_fetch_add(&g_latest_calls, 1);
        if (atomic_load(&g_latest_404) && strcmp(op, "getLatestBusDt") == 0) {
            ret = bi_error(c, 404, "no such operation");
        } else {
            snprintf(out, sizeof out,
                     "{\"curUTC\":\"2024-05-01T15:15:00\",\"locRef\":\"%s\","
                     "\"latestBusDt\":\"2024-05-01\"}",
                     loc ? loc : "");
            ret = reply(c, 200, out);
        }
    } else {
        ret = bi_error(c, 404, "no such operation");
    }
    json_decref(req);
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
    const char *body = st->body.data ? st->body.data : "";
    if (strcmp(url, "/oidc-provider/v1/oauth2/authorize") == 0 && strcmp(method, "GET") == 0)
        return authorize(c);
    if (strcmp(url, "/oidc-provider/v1/oauth2/signin") == 0 && strcmp(method, "POST") == 0)
        return signin(c, body);
    if (strcmp(url, "/oidc-provider/v1/oauth2/token") == 0 && strcmp(method, "POST") == 0)
        return token(c, body);
    static const char prefix[] = "/bi/v1/" ORG "/";
    if (strncmp(url, prefix, sizeof prefix - 1) == 0 && strcmp(method, "POST") == 0)
        return bi_api(c, url + sizeof prefix - 1, body);
    return reply(c, 404, "{\"status\":404}");
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
    return 0;
}

/* Every test starts from a fresh server state and a fresh client. */
static int setup(void **state)
{
    atomic_store(&g_authorize_calls, 0);
    atomic_store(&g_signin_calls, 0);
    atomic_store(&g_code_grants, 0);
    atomic_store(&g_refresh_grants, 0);
    atomic_store(&g_token_calls, 0);
    atomic_store(&g_pkce_ok, 0);
    atomic_store(&g_gc_calls, 0);
    atomic_store(&g_dim_calls, 0);
    atomic_store(&g_totals_calls, 0);
    atomic_store(&g_latest_calls, 0);
    atomic_store(&g_signin_delay_ms, 0);
    atomic_store(&g_token_life_s, 14 * 24 * 3600);
    atomic_store(&g_refresh_refuse, 0);
    atomic_store(&g_gc_mode, 0);
    atomic_store(&g_latest_404, 0);
    pthread_mutex_lock(&g_mu);
    g_valid_token[0] = g_refresh[0] = '\0';
    pthread_mutex_unlock(&g_mu);
    *state = NULL;
    return 0;
}

static struct pg_bi *client_with(const char *password, int dim_ttl_s)
{
    struct pg_bi_config c = {.base_url = g_base,
                             .auth_base_url = g_base,
                             .org = ORG,
                             .client_id = CLIENT_ID,
                             .username = USERNAME,
                             .password = password,
                             .application_name = "posgate-test",
                             .connect_timeout_ms = 1000,
                             .timeout_ms = 5000,
                             .dimension_ttl_s = dim_ttl_s};
    struct pg_bi *b = NULL;
    assert_int_equal(pg_bi_new(&c, &b), PG_OK);
    return b;
}

static struct pg_bi *client(void)
{
    return client_with(PASSWORD, 0);
}

static int64_t soon(void)
{
    return pg_now_ms() + 10000;
}

static int gc(struct pg_bi *b, json_t **resp, int *ra, char *why, size_t whysz)
{
    return pg_bi_guest_checks(b, "0042", PG_BI_CLSD_BUS_DT, "2024-05-01", "2024-05-01T14:00:00", 1,
                              soon(), resp, ra, why, whysz);
}

static void signin_and_guest_checks(void **state)
{
    struct pg_bi *b = client();
    json_t *resp = NULL;
    int ra = 0;
    char why[256];
    assert_int_equal(gc(b, &resp, &ra, why, sizeof why), PG_OK);
    assert_string_equal(why, "");
    assert_int_equal(ra, -1);
    assert_string_equal(json_string_value(json_object_get(resp, "curUTC")), "2024-05-01T20:08:43");
    json_t *checks = json_object_get(resp, "guestChecks");
    assert_int_equal(json_array_size(checks), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(checks, 0), "guestCheckId")),
                     915266015);
    json_decref(resp);

    /* The full flow ran once, with a verified PKCE pair and the session cookie. */
    assert_int_equal(atomic_load(&g_authorize_calls), 1);
    assert_int_equal(atomic_load(&g_signin_calls), 1);
    assert_int_equal(atomic_load(&g_code_grants), 1);
    assert_int_equal(atomic_load(&g_pkce_ok), 1);
    pthread_mutex_lock(&g_mu);
    json_t *sent = json_loads(g_last_body, 0, NULL);
    assert_string_equal(g_last_op, "getGuestChecks");
    pthread_mutex_unlock(&g_mu);
    assert_string_equal(json_string_value(json_object_get(sent, "applicationName")),
                        "posgate-test");
    assert_string_equal(json_string_value(json_object_get(sent, "locRef")), "0042");
    assert_string_equal(json_string_value(json_object_get(sent, "clsdBusDt")), "2024-05-01");
    assert_string_equal(json_string_value(json_object_get(sent, "changedSinceUTC")),
                        "2024-05-01T14:00:00");
    assert_true(json_is_true(json_object_get(sent, "clsdGuestChecksOnly")));
    json_decref(sent);

    /* The handed-out token is the id_token (a JWT whose exp the client read). */
    char tok[PG_BI_TOKEN_MAX];
    assert_int_equal(pg_bi_token(b, soon(), tok, sizeof tok), PG_OK);
    pthread_mutex_lock(&g_mu);
    assert_string_equal(tok, g_valid_token);
    pthread_mutex_unlock(&g_mu);
    assert_true(pg_bi_jwt_exp(tok) > pg_wall_ms() / 1000 + 13 * 24 * 3600);
    char small[16];
    assert_int_equal(pg_bi_token(b, soon(), small, sizeof small), PG_ETOOLARGE);
    assert_string_equal(small, "");
    pg_bi_free(b);
}

static void token_cached(void **state)
{
    struct pg_bi *b = client();
    json_t *resp = NULL;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(gc(b, &resp, NULL, NULL, 0), PG_OK);
        json_decref(resp);
    }
    assert_int_equal(atomic_load(&g_gc_calls), 2);
    assert_int_equal(atomic_load(&g_authorize_calls), 1);
    assert_int_equal(atomic_load(&g_token_calls), 1);
    unsigned long long s, r, f;
    pg_bi_stats(b, &s, &r, &f);
    assert_true(s == 1 && r == 0 && f == 0);
    pg_bi_free(b);
}

struct worker_arg {
    struct pg_bi *b;
    int rc;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    json_t *resp = NULL;
    a->rc = gc(a->b, &resp, NULL, NULL, 0);
    json_decref(resp);
    pg_httpc_thread_cleanup();
    return NULL;
}

static void cold_threads_single_flight(void **state)
{
    atomic_store(&g_signin_delay_ms, 200);
    struct pg_bi *b = client();
    enum { N = 20 };
    pthread_t th[N];
    struct worker_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct worker_arg){.b = b, .rc = -100};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, PG_OK);
    }
    assert_int_equal(atomic_load(&g_authorize_calls), 1);
    assert_int_equal(atomic_load(&g_signin_calls), 1);
    assert_int_equal(atomic_load(&g_token_calls), 1);
    assert_int_equal(atomic_load(&g_gc_calls), N);
    pg_bi_free(b);
}

static void unauthorized_renews_once(void **state)
{
    struct pg_bi *b = client();
    json_t *resp = NULL;
    assert_int_equal(gc(b, &resp, NULL, NULL, 0), PG_OK);
    json_decref(resp);

    /* The server revokes the id_token: one 401, one renewal (the refresh grant), one retry. */
    pthread_mutex_lock(&g_mu);
    snprintf(g_valid_token, sizeof g_valid_token, "revoked");
    pthread_mutex_unlock(&g_mu);
    atomic_store(&g_gc_calls, 0);
    assert_int_equal(gc(b, &resp, NULL, NULL, 0), PG_OK);
    json_decref(resp);
    assert_int_equal(atomic_load(&g_gc_calls), 1); /* the 401 is answered before counting */
    unsigned long long s, r, f;
    pg_bi_stats(b, &s, &r, &f);
    assert_true(s == 1 && r == 1 && f == 0);
    assert_int_equal(atomic_load(&g_refresh_grants), 1);

    /* A 401 that persists: exactly one renewal and one retry, then PG_EAUTH. */
    atomic_store(&g_gc_mode, 5);
    atomic_store(&g_gc_calls, 0);
    char why[256];
    assert_int_equal(gc(b, &resp, NULL, why, sizeof why), PG_EAUTH);
    assert_null(resp);
    assert_int_equal(atomic_load(&g_gc_calls), 2);
    pg_bi_stats(b, &s, &r, &f);
    assert_true(s + r == 3);
    assert_non_null(strstr(why, "401"));
    pg_bi_free(b);
}

static void renewal_before_expiry(void **state)
{
    atomic_store(&g_token_life_s, 2); /* renewed half-way: after about a second */
    struct pg_bi *b = client();
    char t1[PG_BI_TOKEN_MAX], t2[PG_BI_TOKEN_MAX], t3[PG_BI_TOKEN_MAX];
    assert_int_equal(pg_bi_token(b, soon(), t1, sizeof t1), PG_OK);
    pg_sleep_ms(1200);
    assert_int_equal(pg_bi_token(b, soon(), t2, sizeof t2), PG_OK);
    assert_string_not_equal(t1, t2);
    unsigned long long s, r, f;
    pg_bi_stats(b, &s, &r, &f);
    assert_true(s == 1 && r == 1);

    /* A refused refresh token falls back to a full sign-in. */
    atomic_store(&g_refresh_refuse, 1);
    pg_sleep_ms(1200);
    assert_int_equal(pg_bi_token(b, soon(), t3, sizeof t3), PG_OK);
    pg_bi_stats(b, &s, &r, &f);
    assert_true(s == 2 && r == 1 && f == 0);
    assert_int_equal(atomic_load(&g_authorize_calls), 2);
    pg_bi_free(b);
}

static void bad_credentials(void **state)
{
    struct pg_bi *b = client_with("wrong", 0);
    json_t *resp = NULL;
    char why[256];
    assert_int_equal(gc(b, &resp, NULL, why, sizeof why), PG_EAUTH);
    assert_null(resp);
    assert_non_null(strstr(why, "sign-in"));
    /* The failure is held: a second call does not sign in again. */
    assert_int_equal(gc(b, &resp, NULL, why, sizeof why), PG_EAUTH);
    assert_int_equal(atomic_load(&g_signin_calls), 1);
    assert_int_equal(atomic_load(&g_gc_calls), 0);
    pg_bi_free(b);
}

static void rate_limited_and_errors(void **state)
{
    struct pg_bi *b = client();
    json_t *resp = NULL;
    int ra = 0;
    char why[256];
    atomic_store(&g_gc_mode, 1);
    assert_int_equal(gc(b, &resp, &ra, why, sizeof why), PG_EUNAVAIL);
    assert_null(resp);
    assert_int_equal(ra, 7);
    assert_non_null(strstr(why, "429"));

    atomic_store(&g_gc_mode, 2);
    assert_int_equal(gc(b, &resp, &ra, why, sizeof why), PG_EUNAVAIL);
    assert_int_equal(ra, -1);
    assert_non_null(strstr(why, "503"));

    atomic_store(&g_gc_mode, 3);
    assert_int_equal(gc(b, &resp, &ra, why, sizeof why), PG_EPROTO);
    assert_non_null(strstr(why, "33204"));
    assert_non_null(strstr(why, "searchCriteria must start with where"));
    assert_int_equal(atomic_load(&g_authorize_calls), 1); /* errors did not cost a sign-in */
    pg_bi_free(b);
}

static void deadline_honoured(void **state)
{
    struct pg_bi *b = client();
    json_t *resp = NULL;
    char why[256];
    /* The data call hangs: the caller's deadline, not timeout_ms (5 s), ends it. */
    assert_int_equal(gc(b, &resp, NULL, NULL, 0), PG_OK);
    json_decref(resp);
    atomic_store(&g_gc_mode, 4);
    int64_t t0 = pg_now_ms();
    assert_int_equal(pg_bi_guest_checks(b, "1", PG_BI_BUS_DT, "2024-05-01", NULL, 0, t0 + 300,
                                        &resp, NULL, why, sizeof why),
                     PG_ETIMEDOUT);
    int64_t took = pg_now_ms() - t0;
    assert_true(took >= 250 && took < 1500);
    atomic_store(&g_gc_mode, 0);
    pg_bi_free(b);

    /* The sign-in hangs: the wait for the token is bounded by the deadline too. */
    atomic_store(&g_signin_delay_ms, 2000);
    b = client();
    t0 = pg_now_ms();
    assert_int_equal(pg_bi_guest_checks(b, "1", PG_BI_BUS_DT, "2024-05-01", NULL, 0, t0 + 300,
                                        &resp, NULL, why, sizeof why),
                     PG_ETIMEDOUT);
    took = pg_now_ms() - t0;
    assert_true(took < 1500);
    /* An already passed deadline sends nothing. */
    atomic_store(&g_signin_delay_ms, 0);
    int before = atomic_load(&g_gc_calls);
    assert_int_equal(pg_bi_guest_checks(b, "1", PG_BI_BUS_DT, "2024-05-01", NULL, 0,
                                        pg_now_ms() - 1, &resp, NULL, why, sizeof why),
                     PG_ETIMEDOUT);
    assert_int_equal(atomic_load(&g_gc_calls), before);
    pg_bi_free(b);
}

static void dimensions_cached(void **state)
{
    struct pg_bi *b = client_with(PASSWORD, 1);
    json_t *a = NULL, *c = NULL;
    char why[256];
    assert_int_equal(
        pg_bi_dimension(b, "getMenuItemDimensions", "0042", soon(), &a, why, sizeof why), PG_OK);
    assert_int_equal(
        pg_bi_dimension(b, "getMenuItemDimensions", "0042", soon(), &c, why, sizeof why), PG_OK);
    assert_int_equal(atomic_load(&g_dim_calls), 1);
    assert_ptr_equal(a, c); /* the shared cached object */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(a, "menuItems"), 0), "name")),
                        "Burger");
    json_decref(a);
    json_decref(c);

    /* Another location or dimension is another request. */
    assert_int_equal(
        pg_bi_dimension(b, "getMenuItemDimensions", "0043", soon(), &a, why, sizeof why), PG_OK);
    json_decref(a);
    assert_int_equal(
        pg_bi_dimension(b, "getTenderMediaDimensions", "0042", soon(), &a, why, sizeof why), PG_OK);
    json_decref(a);
    assert_int_equal(atomic_load(&g_dim_calls), 3);

    /* The whole enterprise's locations: no locRef in the body (the application is always named). */
    assert_int_equal(pg_bi_dimension(b, "getLocationDimensions", NULL, soon(), &a, why, sizeof why),
                     PG_OK);
    json_decref(a);
    pthread_mutex_lock(&g_mu);
    assert_string_equal(g_last_body, "{\"applicationName\":\"posgate-test\"}");
    assert_string_equal(g_last_op, "getLocationDimensions");
    pthread_mutex_unlock(&g_mu);

    /* After the TTL the next call fetches again. */
    pg_sleep_ms(1100);
    assert_int_equal(
        pg_bi_dimension(b, "getMenuItemDimensions", "0042", soon(), &a, why, sizeof why), PG_OK);
    json_decref(a);
    assert_int_equal(atomic_load(&g_dim_calls), 5);
    pg_bi_dimension_flush(b);
    assert_int_equal(
        pg_bi_dimension(b, "getMenuItemDimensions", "0042", soon(), &a, why, sizeof why), PG_OK);
    json_decref(a);
    assert_int_equal(atomic_load(&g_dim_calls), 6);
    pg_bi_free(b);
}

static void daily_totals_and_latest(void **state)
{
    struct pg_bi *b = client();
    json_t *t = NULL;
    char why[256];
    assert_int_equal(pg_bi_daily_totals(b, "getControlDailyTotals", "0042", "2024-05-01", soon(),
                                        &t, why, sizeof why),
                     PG_OK);
    json_t *rvc = json_array_get(json_object_get(t, "revenueCenters"), 0);
    assert_int_equal(json_integer_value(json_object_get(rvc, "numClsdChks")), 12);
    json_decref(t);
    pthread_mutex_lock(&g_mu);
    assert_string_equal(g_last_op, "getControlDailyTotals");
    assert_string_equal(
        g_last_body,
        "{\"applicationName\":\"posgate-test\",\"locRef\":\"0042\",\"busDt\":\"2024-05-01\"}");
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(pg_bi_daily_totals(b, "getOperationsDailyTotals", "0042", "2024-05-01", soon(),
                                        &t, why, sizeof why),
                     PG_OK);
    json_decref(t);
    assert_int_equal(atomic_load(&g_totals_calls), 2);

    char d[11], u[20];
    assert_int_equal(pg_bi_latest_bus_dt(b, "0042", soon(), d, sizeof d, u, sizeof u), PG_OK);
    assert_string_equal(d, "2024-05-01");
    assert_string_equal(u, "2024-05-01T15:15:00");
    atomic_store(&g_latest_404, 1);
    assert_int_equal(pg_bi_latest_bus_dt(b, "0042", soon(), d, sizeof d, NULL, 0), PG_OK);
    assert_string_equal(d, "2024-05-01");
    pthread_mutex_lock(&g_mu);
    assert_string_equal(g_last_op, "getLatestBusinessDate");
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(pg_bi_latest_bus_dt(b, "0042", soon(), d, 5, NULL, 0), PG_ETOOLARGE);
    assert_int_equal(atomic_load(&g_authorize_calls), 1);
    pg_bi_free(b);
}

/* The fake is as strict as §1.4 says the API is (so passing tests mean something). */
static int raw_gc(const char *tok, const char *body)
{
    char url[128], auth[PG_BI_TOKEN_MAX + 32];
    snprintf(url, sizeof url, "%s/bi/v1/" ORG "/getGuestChecks", g_base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    const char *hdrs[] = {"Content-Type: application/json", auth, NULL};
    struct pg_httpc_req req = {.method = "POST",
                               .url = url,
                               .headers = hdrs,
                               .body = body,
                               .body_len = strlen(body),
                               .timeout_ms = 5000};
    struct pg_httpc_resp r;
    assert_int_equal(pg_httpc_do(&req, &r), PG_OK);
    long st = r.status;
    pg_httpc_resp_free(&r);
    return (int)st;
}

static void fake_server_is_strict(void **state)
{
    struct pg_bi *b = client();
    char tok[PG_BI_TOKEN_MAX];
    assert_int_equal(pg_bi_token(b, soon(), tok, sizeof tok), PG_OK);
    assert_int_equal(raw_gc(tok, "{\"locRef\":\"1\",\"busDt\":\"2024-05-01\"}"), 200);
    assert_int_equal(
        raw_gc(tok, "{\"locRef\":\"1\",\"busDt\":\"2024-05-01\",\"opnBusDt\":\"2024-05-01\"}"),
        400);
    assert_int_equal(raw_gc(tok, "{\"locRef\":\"1\"}"), 400);
    assert_int_equal(raw_gc(tok, "{\"busDt\":\"2024-05-01\"}"), 400);
    assert_int_equal(raw_gc(tok, "{\"locRef\":\"1\",\"busDt\":\"2024-05-01\","
                                 "\"changedSinceUTC\":\"2024-05-01T14:00:00Z\"}"),
                     400);
    assert_int_equal(raw_gc("eyJ.wrong.token", "{\"locRef\":\"1\",\"busDt\":\"2024-05-01\"}"), 401);
    pg_bi_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(signin_and_guest_checks, setup),
        cmocka_unit_test_setup(token_cached, setup),
        cmocka_unit_test_setup(cold_threads_single_flight, setup),
        cmocka_unit_test_setup(unauthorized_renews_once, setup),
        cmocka_unit_test_setup(renewal_before_expiry, setup),
        cmocka_unit_test_setup(bad_credentials, setup),
        cmocka_unit_test_setup(rate_limited_and_errors, setup),
        cmocka_unit_test_setup(deadline_honoured, setup),
        cmocka_unit_test_setup(dimensions_cached, setup),
        cmocka_unit_test_setup(daily_totals_and_latest, setup),
        cmocka_unit_test_setup(fake_server_is_strict, setup),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
