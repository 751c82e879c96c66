/*
 * Salesforce OAuth (JWT bearer) and REST lookups against a libmicrohttpd server started in the
 * test on a free loopback port. The server follows salesforce-wire.md §3.1 and §4: it verifies
 * the assertion's signature and claims with the test public key, answers the error arrays, sets
 * Sforce-Limit-Info, and counts every call so caching, single flight and "no retry loop" can be
 * proved by numbers.
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
#include <microhttpd.h>

#include "auth/jwt.h"
#include "salesforce/oauth.h"
#include "salesforce/rest.h"
#include "salesforce/soql.h"
#include "server/buf.h"
#include "server/httpc.h"
#include "server/util.h"
#include "tests/support/harness.h"

#define CLIENT_ID "3MVG9testConsumerKey"
#define USERNAME "integration@acme.example"
#define API "/services/data/v66.0"

/* ---- the in-test Salesforce ---- */

static struct MHD_Daemon *g_d;
static char g_base[64];
static struct pg_jwt_keyset *g_ks;
static char *g_key;
static size_t g_key_len;

static atomic_int g_stop;
static atomic_int g_grants;      /* successful token grants */
static atomic_int g_token_calls; /* every POST to the token endpoint */
static atomic_int g_api_calls;   /* every /services/data call */
static atomic_int g_grant_delay; /* ms the token endpoint sleeps */
static atomic_int g_deny;        /* 1: every grant is invalid_grant */
static atomic_int g_limit;       /* 1: every API call is REQUEST_LIMIT_EXCEEDED */
static atomic_int g_always_401;  /* 1: every API call is INVALID_SESSION_ID */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_valid_token[128]; /* the one token the API accepts ("" none) */
static char g_seen_literal[512];
static char g_seen_fields[256];
static char g_seen_deny_reason[128];

struct conn {
    struct pg_buf body;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json;charset=UTF-8");
    if (strncmp(body, "{\"access_token", 14) != 0) {
        char lim[64];
        snprintf(lim, sizeof lim, "api-usage=%d/15000; api-bursts=1/750",
                 atomic_load(&g_api_calls));
        MHD_add_response_header(r, "Sforce-Limit-Info", lim);
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* application/x-www-form-urlencoded value of name in body, decoded (NULL when absent). */
static char *form_value(const char *body, const char *name)
{
    size_t nl = strlen(name);
    const char *p = body;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char *out = malloc(len);
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                if (p[i] == '%' && i + 2 < len + 1) {
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

static enum MHD_Result deny(struct MHD_Connection *c, const char *why)
{
    pthread_mutex_lock(&g_mu);
    snprintf(g_seen_deny_reason, sizeof g_seen_deny_reason, "%s", why);
    pthread_mutex_unlock(&g_mu);
    char body[256];
    snprintf(body, sizeof body, "{\"error\":\"invalid_grant\",\"error_description\":\"%s\"}", why);
    return reply(c, 400, body);
}

static enum MHD_Result token_endpoint(struct MHD_Connection *c, const char *body)
{
    atomic_fetch_add(&g_token_calls, 1);
    for (int i = 0; i < atomic_load(&g_grant_delay) / 10 && !atomic_load(&g_stop); i++)
        pg_sleep_ms(10);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strcmp(ct, "application/x-www-form-urlencoded") != 0)
        return deny(c, "wrong content type");
    char *gt = form_value(body, "grant_type");
    char *as = form_value(body, "assertion");
    enum MHD_Result ret;
    if (!gt || strcmp(gt, "urn:ietf:params:oauth:grant-type:jwt-bearer") != 0) {
        ret = reply(c, 400,
                    "{\"error\":\"unsupported_grant_type\","
                    "\"error_description\":\"grant type not supported\"}");
    } else if (!as) {
        ret = deny(c, "invalid assertion");
    } else if (atomic_load(&g_deny)) {
        ret = deny(c, "user hasn't approved this consumer");
    } else {
        struct pg_jwt_policy p = {.iss = CLIENT_ID, .aud = g_base, .skew_s = 5, .require_exp = 1};
        json_t *claims = NULL;
        char why[64];
        int64_t now = pg_wall_ms() / 1000;
        if (pg_jwt_verify(g_ks, &p, as, now, &claims, why, sizeof why) != PG_OK) {
            ret = deny(c, why);
        } else if (!json_is_string(json_object_get(claims, "sub")) ||
                   strcmp(json_string_value(json_object_get(claims, "sub")), USERNAME) != 0) {
            ret = deny(c, "wrong sub");
        } else if (json_integer_value(json_object_get(claims, "exp")) > now + 185) {
            ret = deny(c, "exp more than 3 minutes ahead");
        } else {
            int n = atomic_fetch_add(&g_grants, 1) + 1;
            char tok[128], out[512];
            snprintf(tok, sizeof tok, "00D5g000004XyZ1!AR8AQtoken.%d", n);
            pthread_mutex_lock(&g_mu);
            snprintf(g_valid_token, sizeof g_valid_token, "%s", tok);
            pthread_mutex_unlock(&g_mu);
            snprintf(out, sizeof out,
                     "{\"access_token\":\"%s\",\"scope\":\"api\",\"instance_url\":\"%s/\","
                     "\"id\":\"%s/id/00D5g000004XyZ1EAK/0055g00000ABCDEAA5\","
                     "\"token_type\":\"Bearer\"}",
                     tok, g_base, g_base);
            ret = reply(c, 200, out);
        }
        json_decref(claims);
    }
    free(gt);
    free(as);
    return ret;
}

static const char *CONTACT =
    "{\"attributes\":{\"type\":\"Contact\",\"url\":\"" API
    "/sobjects/Contact/0035g00000K1tbPAAR\"},"
    "\"Id\":\"0035g00000K1tbPAAR\",\"FirstName\":\"Jane\",\"Loyalty_Id__c\":\"LY-000123\","
    "\"Loyalty_Tier__c\":\"Gold\"}";

/* Unescape a SOQL literal starting after its opening quote; returns 0 on a bad escape. */
static int soql_unescape(const char *p, char *out, size_t outsz, const char **end)
{
    size_t o = 0;
    for (; *p && *p != '\''; p++) {
        char ch = *p;
        if (ch == '\\') {
            p++;
            switch (*p) {
            case 'n':
                ch = '\n';
                break;
            case 'r':
                ch = '\r';
                break;
            case 't':
                ch = '\t';
                break;
            case 'b':
                ch = '\b';
                break;
            case 'f':
                ch = '\f';
                break;
            case '"':
            case '\'':
            case '\\':
                ch = *p;
                break;
            default:
                return 0;
            }
        }
        if (o + 1 >= outsz)
            return 0;
        out[o++] = ch;
    }
    out[o] = '\0';
    *end = p;
    return *p == '\'';
}

/* "SELECT Id FROM Order" answers three batches of two, linked by nextRecordsUrl (§4.1). */
static enum MHD_Result order_batch(struct MHD_Connection *c, int batch)
{
    char next[160] = "", body[512];
    if (batch < 2)
        snprintf(next, sizeof next, "\"nextRecordsUrl\":\"" API "/query/01gRO0000016PIAYA2-%d\",",
                 2 * (batch + 1));
    snprintf(body, sizeof body,
             "{\"totalSize\":6,\"done\":%s,%s\"records\":[{\"Id\":\"8015g00000Ord%d1AAA\"},"
             "{\"Id\":\"8015g00000Ord%d2AAA\"}]}",
             batch == 2 ? "true" : "false", next, batch, batch);
    return reply(c, 200, body);
}

static enum MHD_Result query(struct MHD_Connection *c)
{
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
    if (q && strcmp(q, "SELECT Id FROM Order") == 0)
        return order_batch(c, 0);
    static const char prefix[] = "SELECT Id,Email FROM Contact WHERE Email = '";
    char lit[512];
    const char *end = NULL;
    if (!q || strncmp(q, prefix, sizeof prefix - 1) != 0 ||
        !soql_unescape(q + sizeof prefix - 1, lit, sizeof lit, &end) ||
        strcmp(end, "' LIMIT 2") != 0)
        return reply(c, 400,
                     "[{\"message\":\"unexpected token\",\"errorCode\":\"MALFORMED_QUERY\"}]");
    pthread_mutex_lock(&g_mu);
    snprintf(g_seen_literal, sizeof g_seen_literal, "%s", lit);
    pthread_mutex_unlock(&g_mu);
    if (strcmp(lit, "nobody@example.com") == 0)
        return reply(c, 200, "{\"totalSize\":0,\"done\":true,\"records\":[]}");
    json_t *j = json_pack("{s:i, s:b, s:[{s:s, s:s}]}", "totalSize", 1, "done", 1, "records", "Id",
                          "0035g00000K1tbPAAR", "Email", lit);
    char *s = json_dumps(j, JSON_COMPACT);
    enum MHD_Result ret = reply(c, 200, s);
    free(s);
    json_decref(j);
    return ret;
}

static enum MHD_Result api(struct MHD_Connection *c, const char *url)
{
    atomic_fetch_add(&g_api_calls, 1);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&g_mu);
    int ok = auth && strncmp(auth, "Bearer ", 7) == 0 && g_valid_token[0] &&
             strcmp(auth + 7, g_valid_token) == 0;
    pthread_mutex_unlock(&g_mu);
    if (!ok || atomic_load(&g_always_401))
        return reply(
            c, 401,
            "[{\"message\":\"Session expired or invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]");
    if (atomic_load(&g_limit))
        return reply(c, 403,
                     "[{\"message\":\"TotalRequests Limit exceeded.\","
                     "\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]");
    const char *fields = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fields");
    pthread_mutex_lock(&g_mu);
    snprintf(g_seen_fields, sizeof g_seen_fields, "%s", fields ? fields : "");
    pthread_mutex_unlock(&g_mu);

    static const char ext[] = API "/sobjects/Contact/Loyalty_Id__c/";
    static const char byid[] = API "/sobjects/Contact/";
    if (strcmp(url, API "/query") == 0)
        return query(c);
    if (strcmp(url, API "/query/01gRO0000016PIAYA2-2") == 0)
        return order_batch(c, 1);
    if (strcmp(url, API "/query/01gRO0000016PIAYA2-4") == 0)
        return order_batch(c, 2);
    if (strncmp(url, ext, sizeof ext - 1) == 0) {
        const char *v = url + sizeof ext - 1;
        if (strcmp(v, "LY-000123") == 0)
            return reply(c, 200, CONTACT);
        if (strcmp(v, "LY-DUP") == 0)
            return reply(c, 300,
                         "[\"" API "/sobjects/Contact/0035g00000K1tbPAAR\",\"" API
                         "/sobjects/Contact/0035g00000K1tbQAAR\"]");
        if (strcmp(v, "LY-SLOW") == 0) {
            for (int i = 0; i < 200 && !atomic_load(&g_stop); i++) /* 2 s */
                pg_sleep_ms(10);
            return reply(c, 200, CONTACT);
        }
        if (strcmp(v, "LY-500") == 0)
            return reply(c, 500, "[{\"message\":\"boom\",\"errorCode\":\"UNKNOWN_EXCEPTION\"}]");
        if (strcmp(v, "LY-GARBAGE") == 0)
            return reply(c, 200, "<html>maintenance</html>");
        return reply(c, 404,
                     "[{\"errorCode\":\"NOT_FOUND\",\"message\":\"The requested resource "
                     "does not exist\"}]");
    }
    if (strncmp(url, byid, sizeof byid - 1) == 0) {
        if (strcmp(url + sizeof byid - 1, "0035g00000K1tbPAAR") == 0)
            return reply(c, 200, CONTACT);
        return reply(c, 404,
                     "[{\"errorCode\":\"NOT_FOUND\",\"message\":\"The requested resource "
                     "does not exist\"}]");
    }
    return reply(c, 404, "[{\"errorCode\":\"NOT_FOUND\",\"message\":\"no such path\"}]");
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
    if (strcmp(url, "/services/oauth2/token") == 0 && strcmp(method, "POST") == 0)
        return token_endpoint(c, st->body.data ? st->body.data : "");
    if (strncmp(url, "/services/data/", 15) == 0 && strcmp(method, "GET") == 0)
        return api(c, url);
    return reply(c, 404, "[{\"errorCode\":\"NOT_FOUND\",\"message\":\"no such path\"}]");
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
    char *pub = NULL;
    size_t pub_len = 0;
    if (pg_read_file(pg_t_src("tests/data/jwt/test-rsa-a.pub.pem"), 65536, &pub, &pub_len) ||
        pg_read_file(pg_t_src("tests/data/jwt/test-rsa-a.key.pem"), 65536, &g_key, &g_key_len) ||
        pg_jwt_keyset_new(&g_ks) ||
        pg_jwt_keyset_add(g_ks, "sf", "RS256", (const unsigned char *)pub, pub_len)) {
        free(pub);
        return -1;
    }
    free(pub);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
    pg_jwt_keyset_free(g_ks);
    free(g_key);
    return 0;
}

/* ---- per-test client ---- */

struct client {
    struct pg_sf_oauth *oauth;
    struct pg_sf_rest *rest;
};

static int client_new(void **state)
{
    atomic_store(&g_grants, 0);
    atomic_store(&g_token_calls, 0);
    atomic_store(&g_api_calls, 0);
    atomic_store(&g_grant_delay, 0);
    atomic_store(&g_deny, 0);
    atomic_store(&g_limit, 0);
    atomic_store(&g_always_401, 0);
    pthread_mutex_lock(&g_mu);
    g_valid_token[0] = g_seen_literal[0] = g_seen_fields[0] = g_seen_deny_reason[0] = '\0';
    pthread_mutex_unlock(&g_mu);

    struct client *cl = calloc(1, sizeof *cl);
    struct pg_sf_oauth_config oc = {.login_url = g_base,
                                    .client_id = CLIENT_ID,
                                    .username = USERNAME,
                                    .private_key_pem = g_key,
                                    .private_key_len = g_key_len,
                                    .connect_timeout_ms = 1000,
                                    .timeout_ms = 3000};
    struct pg_sf_rest_config rc = {.api_version = "66.0", .timeout_ms = 3000};
    if (!cl || pg_sf_oauth_new(&oc, &cl->oauth) || pg_sf_rest_new(&rc, cl->oauth, &cl->rest))
        return -1;
    *state = cl;
    return 0;
}

static int client_free(void **state)
{
    struct client *cl = *state;
    pg_sf_rest_free(cl->rest);
    pg_sf_oauth_free(cl->oauth);
    free(cl);
    return 0;
}

static int64_t in_ms(int ms)
{
    return pg_now_ms() + ms;
}

static int get_ext(struct client *cl, const char *value, json_t **rec, struct pg_sf_error *err)
{
    return pg_sf_rest_get_by_external_id(cl->rest, "Contact", "Loyalty_Id__c", value,
                                         "Id,FirstName,Loyalty_Tier__c", in_ms(3000), rec, err);
}

/* ---- tests ---- */

static void token_granted_and_cached(void **state)
{
    struct client *cl = *state;
    json_t *rec = NULL;
    struct pg_sf_error err;
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK);
    assert_int_equal(err.status, 200);
    assert_string_equal(json_string_value(json_object_get(rec, "Loyalty_Tier__c")), "Gold");
    json_decref(rec);
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK);
    json_decref(rec);
    assert_int_equal(atomic_load(&g_grants), 1);
    assert_int_equal(atomic_load(&g_token_calls), 1);
    assert_int_equal(atomic_load(&g_api_calls), 2);
    unsigned long long g, f;
    pg_sf_oauth_stats(cl->oauth, &g, &f);
    assert_int_equal(g, 1);
    assert_int_equal(f, 0);

    /* The instance URL comes from the grant, without its trailing slash. */
    char tok[PG_SF_TOKEN_MAX], inst[PG_SF_URL_MAX];
    assert_int_equal(pg_sf_oauth_token(cl->oauth, in_ms(1000), tok, sizeof tok, inst, sizeof inst),
                     PG_OK);
    assert_string_equal(inst, g_base);
    assert_string_equal(tok, "00D5g000004XyZ1!AR8AQtoken.1");
    char small[8];
    assert_int_equal(
        pg_sf_oauth_token(cl->oauth, in_ms(1000), small, sizeof small, inst, sizeof inst),
        PG_ETOOLARGE);
}

struct worker {
    struct client *cl;
    int rc;
    pthread_barrier_t *start;
};

static void *lookup_worker(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    json_t *rec = NULL;
    w->rc = get_ext(w->cl, "LY-000123", &rec, NULL);
    json_decref(rec);
    pg_httpc_thread_cleanup();
    return NULL;
}

static void run_workers(struct client *cl, int n, struct worker *ws)
{
    pthread_t th[32];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        ws[i] = (struct worker){.cl = cl, .rc = -100, .start = &start};
        assert_int_equal(pthread_create(&th[i], NULL, lookup_worker, &ws[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
}

static void single_flight_cold_token(void **state)
{
    struct client *cl = *state;
    atomic_store(&g_grant_delay, 200); /* every caller arrives while the grant is in flight */
    struct worker ws[20];
    run_workers(cl, 20, ws);
    for (int i = 0; i < 20; i++)
        assert_int_equal(ws[i].rc, PG_OK);
    assert_int_equal(atomic_load(&g_token_calls), 1);
    assert_int_equal(atomic_load(&g_grants), 1);
    assert_int_equal(atomic_load(&g_api_calls), 20);
}

static void invalid_session_renews_once(void **state)
{
    struct client *cl = *state;
    json_t *rec = NULL;
    struct pg_sf_error err;
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK);
    json_decref(rec);
    /* Salesforce ends the session (timeout, revoke): the next call gets 401 once, renews and
     * succeeds. */
    pthread_mutex_lock(&g_mu);
    g_valid_token[0] = '\0';
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK);
    assert_string_equal(json_string_value(json_object_get(rec, "Id")), "0035g00000K1tbPAAR");
    json_decref(rec);
    assert_int_equal(atomic_load(&g_grants), 2);
    assert_int_equal(atomic_load(&g_api_calls), 3);

    /* Many concurrent 401s for one token: one renewal. */
    pthread_mutex_lock(&g_mu);
    g_valid_token[0] = '\0';
    pthread_mutex_unlock(&g_mu);
    atomic_store(&g_grant_delay, 100);
    struct worker ws[10];
    run_workers(cl, 10, ws);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ws[i].rc, PG_OK);
    assert_int_equal(atomic_load(&g_grants), 3);
    atomic_store(&g_grant_delay, 0);

    /* A token that is refused even when fresh: exactly one renewal and one retry, then
     * PG_EAUTH (no loop). */
    atomic_store(&g_always_401, 1);
    int grants = atomic_load(&g_grants), calls = atomic_load(&g_api_calls);
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_EAUTH);
    assert_null(rec);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, "INVALID_SESSION_ID");
    assert_int_equal(atomic_load(&g_api_calls), calls + 2);
    assert_int_equal(atomic_load(&g_grants), grants + 1);
}

static void external_id_found_404_300(void **state)
{
    struct client *cl = *state;
    json_t *rec = (json_t *)1;
    struct pg_sf_error err;
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK);
    assert_string_equal(json_string_value(json_object_get(rec, "FirstName")), "Jane");
    json_decref(rec);
    assert_string_equal(g_seen_fields, "Id,FirstName,Loyalty_Tier__c");

    assert_int_equal(get_ext(cl, "LY-999999", &rec, &err), PG_ENOTFOUND);
    assert_null(rec);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "NOT_FOUND");
    assert_string_equal(err.message, "The requested resource does not exist");

    assert_int_equal(get_ext(cl, "LY-DUP", &rec, &err), PG_EEXIST);
    assert_null(rec);
    assert_int_equal(err.status, 300);
    assert_string_equal(err.code, "MULTIPLE_CHOICES");

    assert_int_equal(get_ext(cl, "LY-500", &rec, &err), PG_EUNAVAIL);
    assert_int_equal(err.status, 500);
    assert_string_equal(err.code, "UNKNOWN_EXCEPTION");
    assert_int_equal(get_ext(cl, "LY-GARBAGE", &rec, &err), PG_EPROTO);
    assert_null(rec);

    /* A value with '/' or '?' stays one path segment (the server sees no such id). */
    assert_int_equal(get_ext(cl, "LY-000123/../x?fields=Name", &rec, &err), PG_ENOTFOUND);

    /* Bad arguments never reach the server. */
    int calls = atomic_load(&g_api_calls);
    assert_int_equal(pg_sf_rest_get_by_external_id(cl->rest, "Contact WHERE", "Loyalty_Id__c", "x",
                                                   NULL, in_ms(1000), &rec, &err),
                     PG_EINVAL);
    assert_int_equal(pg_sf_rest_get_by_external_id(cl->rest, "Contact", "Loyalty_Id__c", "", NULL,
                                                   in_ms(1000), &rec, &err),
                     PG_EINVAL);
    assert_int_equal(pg_sf_rest_get_by_external_id(cl->rest, "Contact", "Loyalty_Id__c", "x",
                                                   "Id;Name", in_ms(1000), &rec, &err),
                     PG_EINVAL);
    assert_int_equal(
        pg_sf_rest_get_by_id(cl->rest, "Contact", "../../x", NULL, in_ms(1000), &rec, &err),
        PG_EINVAL);
    assert_int_equal(atomic_load(&g_api_calls), calls);

    /* By record id. */
    assert_int_equal(pg_sf_rest_get_by_id(cl->rest, "Contact", "0035g00000K1tbPAAR", "Id,FirstName",
                                          in_ms(3000), &rec, &err),
                     PG_OK);
    assert_string_equal(json_string_value(json_object_get(rec, "Loyalty_Id__c")), "LY-000123");
    json_decref(rec);
    assert_int_equal(pg_sf_rest_get_by_id(cl->rest, "Contact", "0035g00000K1tbQAAR", NULL,
                                          in_ms(3000), &rec, NULL),
                     PG_ENOTFOUND);
}

static void query_literal_reaches_server_intact(void **state)
{
    struct client *cl = *state;
    static const char *values[] = {
        "jane.doe@example.com",
        "o'brien@example.com",
        "x' OR Name != '",
        "back\\slash\\' OR Id != null --",
        "say \"hi\"\n\ttab+plus&amp=%41 #frag",
        "Zoë 東京 😀",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        struct pg_buf q;
        pg_buf_init(&q, 4096);
        assert_int_equal(pg_soql_select_eq(&q, "Id,Email", "Contact", "Email", values[i], 2),
                         PG_OK);
        json_t *recs = NULL;
        struct pg_sf_error err;
        int rc = pg_sf_rest_query(cl->rest, q.data, in_ms(3000), &recs, &err);
        if (rc != PG_OK)
            fail_msg("value %zu: %d %s %s", i, rc, err.code, err.message);
        pg_buf_free(&q);
        assert_string_equal(g_seen_literal, values[i]);
        assert_true(json_is_array(recs));
        assert_int_equal(json_array_size(recs), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 0), "Email")),
                            values[i]);
        json_decref(recs);
    }
    /* An empty result is an empty array, not an error. */
    struct pg_buf q;
    pg_buf_init(&q, 4096);
    assert_int_equal(pg_soql_select_eq(&q, "Id,Email", "Contact", "Email", "nobody@example.com", 2),
                     PG_OK);
    json_t *recs = NULL;
    assert_int_equal(pg_sf_rest_query(cl->rest, q.data, in_ms(3000), &recs, NULL), PG_OK);
    assert_int_equal(json_array_size(recs), 0);
    json_decref(recs);
    pg_buf_free(&q);
    /* Something the server cannot parse: 400 MALFORMED_QUERY -> PG_EPROTO with the code. */
    struct pg_sf_error err;
    assert_int_equal(pg_sf_rest_query(cl->rest, "SELECT Id FROM Contact", in_ms(3000), &recs, &err),
                     PG_EPROTO);
    assert_null(recs);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "MALFORMED_QUERY");
}

static void request_limit_is_an_outage(void **state)
{
    struct client *cl = *state;
    json_t *rec = NULL;
    struct pg_sf_error err;
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK); /* warm the token */
    json_decref(rec);
    atomic_store(&g_limit, 1);
    int calls = atomic_load(&g_api_calls);
    int64_t t0 = pg_now_ms();
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_EUNAVAIL);
    assert_null(rec);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "REQUEST_LIMIT_EXCEEDED");
    assert_string_equal(err.message, "TotalRequests Limit exceeded.");
    assert_int_equal(atomic_load(&g_api_calls), calls + 1); /* one call, no retry */
    assert_true(pg_now_ms() - t0 < 1000);
    assert_int_equal(atomic_load(&g_grants), 1); /* and no pointless token renewal */
    json_t *recs = NULL;
    assert_int_equal(pg_sf_rest_query(cl->rest,
                                      "SELECT Id,Email FROM Contact WHERE Email = 'a' "
                                      "LIMIT 2",
                                      in_ms(3000), &recs, NULL),
                     PG_EUNAVAIL);
    assert_int_equal(atomic_load(&g_api_calls), calls + 2);
}

static void deadline_bounds_a_slow_salesforce(void **state)
{
    struct client *cl = *state;
    json_t *rec = NULL;
    struct pg_sf_error err;
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK); /* warm the token */
    json_decref(rec);
    int64_t t0 = pg_now_ms();
    assert_int_equal(pg_sf_rest_get_by_external_id(cl->rest, "Contact", "Loyalty_Id__c", "LY-SLOW",
                                                   NULL, t0 + 300, &rec, &err),
                     PG_ETIMEDOUT);
    int64_t took = pg_now_ms() - t0;
    assert_in_range(took, 250, 450);
    assert_null(rec);
    /* A deadline already gone: nothing is sent. */
    int calls = atomic_load(&g_api_calls);
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK);
    json_decref(rec);
    assert_int_equal(pg_sf_rest_get_by_external_id(cl->rest, "Contact", "Loyalty_Id__c",
                                                   "LY-000123", NULL, pg_now_ms() - 1, &rec, &err),
                     PG_ETIMEDOUT);
    assert_int_equal(atomic_load(&g_api_calls), calls + 1);
}

static void slow_token_endpoint_bounded(void **state)
{
    struct client *cl = *state;
    atomic_store(&g_grant_delay, 2000);
    json_t *rec = NULL;
    struct pg_sf_error err;
    int64_t t0 = pg_now_ms();
    assert_int_equal(pg_sf_rest_get_by_external_id(cl->rest, "Contact", "Loyalty_Id__c",
                                                   "LY-000123", NULL, t0 + 300, &rec, &err),
                     PG_ETIMEDOUT);
    assert_in_range(pg_now_ms() - t0, 250, 450);
    assert_int_equal(atomic_load(&g_api_calls), 0);
    atomic_store(&g_grant_delay, 0);
}

static void grant_refused(void **state)
{
    struct client *cl = *state;
    atomic_store(&g_deny, 1);
    json_t *rec = NULL;
    struct pg_sf_error err;
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_EAUTH);
    assert_string_equal(g_seen_deny_reason, "user hasn't approved this consumer");
    /* Remembered briefly: a burst does not hammer the token endpoint. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_EAUTH);
    assert_int_equal(atomic_load(&g_token_calls), 1);
    assert_int_equal(atomic_load(&g_api_calls), 0);
    unsigned long long g, f;
    pg_sf_oauth_stats(cl->oauth, &g, &f);
    assert_int_equal(g, 0);
    assert_int_equal(f, 1);
    /* After the hold, a fixed configuration works at once. */
    atomic_store(&g_deny, 0);
    pg_sleep_ms(PG_SF_OAUTH_FAIL_HOLD_MS + 50);
    assert_int_equal(get_ext(cl, "LY-000123", &rec, &err), PG_OK);
    json_decref(rec);
    assert_int_equal(atomic_load(&g_token_calls), 2);
}

static void wrong_key_is_refused_by_server(void **state)
{
    /* The server really checks the signature: an assertion signed with key B is refused. */
    char *key_b = NULL;
    size_t key_b_len = 0;
    assert_int_equal(
        pg_read_file(pg_t_src("tests/data/jwt/test-rsa-b.key.pem"), 65536, &key_b, &key_b_len),
        PG_OK);
    struct pg_sf_oauth_config oc = {.login_url = g_base,
                                    .client_id = CLIENT_ID,
                                    .username = USERNAME,
                                    .private_key_pem = key_b,
                                    .private_key_len = key_b_len};
    struct pg_sf_oauth *o = NULL;
    assert_int_equal(pg_sf_oauth_new(&oc, &o), PG_OK);
    char tok[PG_SF_TOKEN_MAX], inst[PG_SF_URL_MAX];
    assert_int_equal(pg_sf_oauth_token(o, in_ms(3000), tok, sizeof tok, inst, sizeof inst),
                     PG_EAUTH);
    assert_string_equal(g_seen_deny_reason, "bad signature");
    pg_sf_oauth_free(o);
    /* And a wrong audience. */
    oc.private_key_pem = g_key;
    oc.private_key_len = g_key_len;
    oc.audience = "https://login.salesforce.com";
    assert_int_equal(pg_sf_oauth_new(&oc, &o), PG_OK);
    assert_int_equal(pg_sf_oauth_token(o, in_ms(3000), tok, sizeof tok, inst, sizeof inst),
                     PG_EAUTH);
    assert_string_equal(g_seen_deny_reason, "wrong audience");
    pg_sf_oauth_free(o);
    free(key_b);
}

static void limit_info_parsed(void **state)
{
    long long u = 0, m = 0;
    assert_int_equal(pg_sf_rest_parse_limit_info("api-usage=10018/100000", &u, &m), PG_OK);
    assert_int_equal(u, 10018);
    assert_int_equal(m, 100000);
    assert_int_equal(pg_sf_rest_parse_limit_info("api-usage=5/15000; api-bursts=1/750", &u, &m),
                     PG_OK);
    assert_int_equal(u, 5);
    assert_int_equal(pg_sf_rest_parse_limit_info("api-bursts=1/750; api-usage=7/15000", &u, &m),
                     PG_OK);
    assert_int_equal(u, 7);
    assert_int_equal(m, 15000);
    assert_int_equal(pg_sf_rest_parse_limit_info("api-usage=/15000", &u, &m), PG_EINVAL);
    assert_int_equal(pg_sf_rest_parse_limit_info("api-usage=5", &u, &m), PG_EINVAL);
    assert_int_equal(pg_sf_rest_parse_limit_info("api-usage=5/x", &u, &m), PG_EINVAL);
    assert_int_equal(pg_sf_rest_parse_limit_info("per-app-api-usage", &u, &m), PG_EINVAL);

    struct client *cl = *state;
    pg_sf_rest_limits(cl->rest, &u, &m);
    assert_int_equal(u, -1);
    assert_int_equal(m, -1);
#ifdef PG_HTTPC_CAPTURE_HEADER
    json_t *rec = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get_ext(cl, "LY-000123", &rec, NULL), PG_OK);
        json_decref(rec);
    }
    pg_sf_rest_limits(cl->rest, &u, &m);
    assert_int_equal(u, 3); /* the server reports the calls it has counted */
    assert_int_equal(m, 15000);
    /* Error replies carry it too. */
    assert_int_equal(get_ext(cl, "LY-999999", &rec, NULL), PG_ENOTFOUND);
    pg_sf_rest_limits(cl->rest, &u, &m);
    assert_int_equal(u, 4);
#else
    skip(); /* server/httpc.h cannot hand response headers back yet (see salesforce/rest.c) */
#endif
}

/* pg_sf_rest_query_all follows nextRecordsUrl until done, and refuses more than asked for. */
static void query_all_follows_batches(void **state)
{
    struct client *cl = *state;
    json_t *recs = NULL;
    struct pg_sf_error err;
    assert_int_equal(pg_sf_rest_query(cl->rest, "SELECT Id FROM Order", in_ms(3000), &recs, &err),
                     PG_OK);
    assert_int_equal(json_array_size(recs), 2); /* the first batch only */
    json_decref(recs);
    int rc = pg_sf_rest_query_all(cl->rest, "SELECT Id FROM Order", 100, in_ms(3000), &recs, &err);
    if (rc != PG_OK)
        fail_msg("%d %s %s", rc, err.code, err.message);
    assert_int_equal(json_array_size(recs), 6);
    assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 5), "Id")),
                        "8015g00000Ord22AAA");
    json_decref(recs);
    assert_int_equal(
        pg_sf_rest_query_all(cl->rest, "SELECT Id FROM Order", 5, in_ms(3000), &recs, &err),
        PG_ETOOLARGE);
    assert_null(recs);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, client_new, client_free)
    const struct CMUnitTest tests[] = {
        T(token_granted_and_cached),
        T(single_flight_cold_token),
        T(invalid_session_renews_once),
        T(external_id_found_404_300),
        T(query_literal_reaches_server_intact),
        T(request_limit_is_an_outage),
        T(deadline_bounds_a_slow_salesforce),
        T(slow_token_endpoint_bounded),
        T(grant_refused),
        T(wrong_key_is_refused_by_server),
        T(limit_info_parsed),
        T(query_all_follows_batches),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
