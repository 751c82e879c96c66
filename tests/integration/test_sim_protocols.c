/*
 * posgate-sim protocols: the MICROS Gift & Loyalty host (processRequest/CRMMessage with its CRC32
 * check), the MICROS webhook receiver (Standard Webhooks signatures), Salesforce record changes,
 * the Outbound Message sender (envelope, Ack rule, retries, batching, duplicates) and the
 * Platform Event poster (envelope, RS256 JWT and the bad tokens). Messages the simulator sends
 * are received by a small libmicrohttpd server inside the test, on port 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <jwt.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

#include "server/buf.h"
#include "server/util.h"
#include "tests/support/harness.h"

static struct pg_t_proc g_sim;
static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};
static char g_pub[4096];
static char g_whsec[256];

static const char *sf(const char *path)
{
    static char u[2][512];
    static int k;
    k ^= 1;
    snprintf(u[k], sizeof u[k], "%s%s", g_sim.url, path);
    return u[k];
}

static const char *mi(const char *path)
{
    static char u[512];
    snprintf(u, sizeof u, "%s%s", g_sim.micros_url, path);
    return u;
}

static long
req(const char *method, const char *url, const char *const *hdrs, const char *body, json_t **out)
{
    struct pg_t_resp r;
    pg_t_http(method, url, hdrs, body, body ? strlen(body) : 0, 10000, &r);
    long st = r.status;
    if (out)
        *out = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    pg_t_resp_free(&r);
    return st;
}

static json_t *get_json(const char *url)
{
    json_t *j = NULL;
    assert_int_equal(req("GET", url, NULL, NULL, &j), 200);
    assert_non_null(j);
    return j;
}

/* ---- the in-test receiver ---- */

enum mode { M_ACK, M_FAULT, M_500, M_ACK_FALSE, M_WRONG_NS, M_JSON };

struct rx_req {
    char *body, *ctype, *soapaction, *auth;
};

static struct {
    pthread_mutex_t mu;
    struct MHD_Daemon *d;
    int port;
    struct rx_req reqs[256];
    int n;
    enum mode modes[16];
    int nmodes, mode_pos;
    enum mode fallback;
} rx = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct rx_ctx {
    struct pg_buf body;
    int started;
};

#define ACK                                                                                        \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope "                                 \
    "xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body>"                   \
    "<notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>%s</Ack>"       \
    "</notificationsResponse></soapenv:Body></soapenv:Envelope>"

static enum MHD_Result rx_handler(void *cls,
                                  struct MHD_Connection *c,
                                  const char *url,
                                  const char *method,
                                  const char *version,
                                  const char *upload,
                                  size_t *upload_size,
                                  void **con_cls)
{
    struct rx_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = calloc(1, sizeof *ctx);
        pg_buf_init(&ctx->body, 8 * 1024 * 1024);
        *con_cls = ctx;
        return MHD_YES;
    }
    if (*upload_size) {
        assert_int_equal(pg_buf_append(&ctx->body, upload, *upload_size), 0);
        *upload_size = 0;
        return MHD_YES;
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *sa = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "SOAPAction");
    const char *au = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&rx.mu);
    if (rx.n < 256) {
        rx.reqs[rx.n].body = strdup(ctx->body.data ? ctx->body.data : "");
        rx.reqs[rx.n].ctype = ct ? strdup(ct) : NULL;
        rx.reqs[rx.n].soapaction = sa ? strdup(sa) : NULL;
        rx.reqs[rx.n].auth = au ? strdup(au) : NULL;
        rx.n++;
    }
    enum mode m = rx.mode_pos < rx.nmodes ? rx.modes[rx.mode_pos++] : rx.fallback;
    pthread_mutex_unlock(&rx.mu);
    char body[1024];
    unsigned status = 200;
    const char *type = "text/xml; charset=utf-8";
    switch (m) {
    case M_ACK:
    case M_ACK_FALSE:
        snprintf(body, sizeof body, ACK, m == M_ACK ? "true" : "false");
        break;
    case M_WRONG_NS: /* the common community mistake: Ack outside the outbound namespace */
        snprintf(body, sizeof body, "%s",
                 "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                 "<soapenv:Body><notificationsResponse><Ack>true</Ack></notificationsResponse>"
                 "</soapenv:Body></soapenv:Envelope>");
        break;
    case M_FAULT:
        snprintf(body, sizeof body, "%s",
                 "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                 "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>"
                 "busy</faultstring><detail/></soapenv:Fault></soapenv:Body></soapenv:Envelope>");
        status = 500;
        break;
    case M_500:
        snprintf(body, sizeof body, "oops");
        type = "text/plain";
        status = 500;
        break;
    case M_JSON:
        snprintf(body, sizeof body, "{\"accepted\":true}");
        type = "application/json";
        break;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
rx_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    struct rx_ctx *ctx = *con_cls;
    if (ctx) {
        pg_buf_free(&ctx->body);
        free(ctx);
    }
    *con_cls = NULL;
}

static void rx_reset(enum mode fallback, int n, ...)
{
    va_list ap;
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++) {
        free(rx.reqs[i].body);
        free(rx.reqs[i].ctype);
        free(rx.reqs[i].soapaction);
        free(rx.reqs[i].auth);
    }
    rx.n = 0;
    rx.nmodes = n;
    rx.mode_pos = 0;
    rx.fallback = fallback;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        rx.modes[i] = (enum mode)va_arg(ap, int);
    va_end(ap);
    pthread_mutex_unlock(&rx.mu);
}

static int rx_count(void)
{
    pthread_mutex_lock(&rx.mu);
    int n = rx.n;
    pthread_mutex_unlock(&rx.mu);
    return n;
}

/* Wait (bounded) until at least n requests arrived. */
static void rx_wait(int n)
{
    int64_t end = pg_now_ms() + 15000;
    while (rx_count() < n && pg_now_ms() < end)
        pg_sleep_ms(10);
    assert_true(rx_count() >= n);
}

static const char *rx_url(const char *path)
{
    static char u[256];
    snprintf(u, sizeof u, "http://127.0.0.1:%d%s", rx.port, path);
    return u;
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    char cfg[8192], sf_seed[1024], mi_seed[1024], key[1024], hs[1024], wh[1024];
    snprintf(sf_seed, sizeof sf_seed, "%s", pg_t_src("tests/data/salesforce_seed.json"));
    snprintf(mi_seed, sizeof mi_seed, "%s", pg_t_src("tests/data/micros_seed.json"));
    snprintf(key, sizeof key, "%s", pg_t_src("tests/data/keys/sf-events.key"));
    snprintf(hs, sizeof hs, "%s", pg_t_src("tests/data/keys/events-hs256.secret"));
    snprintf(wh, sizeof wh, "%s", pg_t_src("tests/data/keys/webhook.secret"));
    char *pub = NULL, *sec = NULL;
    if (pg_read_file(pg_t_src("tests/data/keys/sf-events.pub"), sizeof g_pub - 1, &pub, NULL) ||
        pg_read_file(wh, sizeof g_whsec - 1, &sec, NULL))
        return -1;
    snprintf(g_pub, sizeof g_pub, "%s", pub);
    snprintf(g_whsec, sizeof g_whsec, "%s", sec);
    g_whsec[strcspn(g_whsec, "\r\n")] = '\0';
    free(pub);
    free(sec);
    snprintf(cfg, sizeof cfg,
             "{\"log_level\":\"debug\","
             "\"salesforce\":{\"port\":0,\"seed\":\"%s\",\"jwt\":{\"private_key\":\"%s\","
             "\"hs256_secret\":\"%s\",\"kid\":\"sf-events-1\",\"iss\":\"https://acme.my."
             "salesforce.com\",\"aud\":\"posgate\",\"sub\":\"integration@acme.example\"}},"
             "\"micros\":{\"port\":0,\"seed\":\"%s\",\"gl\":{\"logon\":\"gw\",\"password\":"
             "\"s3cret\"},\"webhook_secret\":\"file:%s\"}}",
             sf_seed, key, hs, mi_seed, wh);
    xmlInitParser();
    rx.d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                            NULL, NULL, rx_handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, rx_done,
                            NULL, MHD_OPTION_END);
    if (!rx.d)
        return -1;
    rx.port = MHD_get_daemon_info(rx.d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return pg_t_sim_start(&g_sim, cfg) == 0 && g_sim.micros_url[0] ? 0 : -1;
}

static int group_teardown(void **state)
{
    pg_t_proc_destroy(&g_sim);
    MHD_stop_daemon(rx.d);
    rx_reset(M_ACK, 0);
    return 0;
}

static int reset_both(void **state)
{
    rx_reset(M_ACK, 0);
    if (req("POST", sf("/_sim/reset"), NULL, "", NULL) != 200 ||
        req("POST", mi("/_sim/reset"), NULL, "", NULL) != 200)
        return -1;
    return 0;
}

/* ---- Gift & Loyalty ---- */

/* CRC-32 (IEEE 802.3, reflected), written independently of zlib and the simulator. */
static uint32_t crc32_ieee(const char *s)
{
    uint32_t c = 0xFFFFFFFFu;
    for (; *s; s++) {
        c ^= (unsigned char)*s;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void xml_escape(struct pg_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *e = *s == '<'   ? "&lt;"
                        : *s == '>' ? "&gt;"
                        : *s == '&' ? "&amp;"
                        : *s == '"' ? "&quot;"
                                    : NULL;
        assert_int_equal(e ? pg_buf_puts(b, e) : pg_buf_append(b, s, 1), 0);
    }
}

/* The processRequest envelope; crc NULL computes the right one ("X8"). */
static char *gl_envelope(const char *crm, const char *logon, const char *pw, const char *crc)
{
    struct pg_buf b;
    char good[16];
    snprintf(good, sizeof good, "%08X", crc32_ieee(crm));
    pg_buf_init(&b, 1 << 20);
    assert_int_equal(pg_buf_puts(&b, "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/"
                                     "soap/envelope/\" xmlns:ejb=\"ejb.storedValue.micros.com\">"
                                     "<soapenv:Body><ejb:processRequest><in0>"),
                     0);
    xml_escape(&b, crm);
    assert_int_equal(pg_buf_printf(&b,
                                   "</in0><in1>%s</in1><in2>%s</in2><in3>%s</in3></"
                                   "ejb:processRequest></soapenv:Body></soapenv:Envelope>",
                                   logon, pw, crc ? crc : good),
                     0);
    return pg_buf_steal(&b);
}

/* POST to the G&L host; returns the HTTP status and the un-escaped CRMMessage in *crm_out. */
static long gl_call_raw(const char *envelope, char **crm_out)
{
    const char *hdr[] = {"Content-Type: text/xml; charset=utf-8", NULL};
    struct pg_t_resp r;
    pg_t_http("POST", mi("/ws/services/StoredValueService"), hdr, envelope, strlen(envelope), 10000,
              &r);
    long st = r.status;
    *crm_out = NULL;
    xmlDocPtr doc = xmlReadMemory(r.body, (int)r.len, NULL, NULL, XML_PARSE_NONET);
    if (doc && st == 200) {
        xmlNodePtr env = xmlDocGetRootElement(doc);
        assert_string_equal((const char *)env->name, "Envelope");
        assert_string_equal((const char *)env->ns->prefix, "S");
        xmlNodePtr body = env->children;
        assert_string_equal((const char *)body->name, "Body");
        xmlNodePtr prr = body->children;
        assert_string_equal((const char *)prr->name, "processRequestResponse");
        assert_string_equal((const char *)prr->ns->href, "ejb.storedValue.micros.com");
        assert_string_equal((const char *)prr->ns->prefix, "ns2");
        xmlNodePtr ret = prr->children;
        assert_string_equal((const char *)ret->name, "return");
        xmlChar *t = xmlNodeGetContent(ret);
        *crm_out = strdup((const char *)t);
        xmlFree(t);
    } else if (st == 500) {
        assert_non_null(strstr(r.body, "Fault"));
        *crm_out = strdup(r.body);
    }
    if (doc)
        xmlFreeDoc(doc);
    pg_t_resp_free(&r);
    return st;
}

static char *gl_call(const char *crm)
{
    char *env = gl_envelope(crm, "gw", "s3cret", NULL), *out = NULL;
    assert_int_equal(gl_call_raw(env, &out), 200);
    free(env);
    assert_non_null(out);
    return out;
}

#define CRM_HEAD                                                                                   \
    "<CRMMessage language=\"en_US\" currency=\"USD\"><RequestSource name=\"posgate\" "             \
    "version=\"1\" />"

static void test_gl_round_trip(void **state)
{
    char *r = gl_call(CRM_HEAD "<RequestCode>GetColumnList</RequestCode><QueryCriteria "
                               "request=\"customer\" /></CRMMessage>");
    assert_non_null(strstr(r, "<ResponseCode>A</ResponseCode>"));
    assert_non_null(strstr(r, "<Col type=\"A32\">PRIMARYPOSREF</Col>"));
    assert_non_null(strstr(r, "<Col type=\"A50\">USERALPHA1</Col>"));
    int n = 0;
    for (const char *p = r; (p = strstr(p, "<Col type=")); p++)
        n++;
    assert_int_equal(n, 80);
    free(r);

    const char *get = CRM_HEAD "<RequestCode>GetCustomer</RequestCode><QueryCriteria "
                               "conditions=\"primaryposref = ?\"><Condition name=\"primaryposref\" "
                               "value=\"LY-000123\" /></QueryCriteria><ResultSetDefinition><Column>"
                               "firstname</Column><Column>USERALPHA1</Column><Column>middlename</"
                               "Column></ResultSetDefinition></CRMMessage>";
    r = gl_call(get);
    assert_non_null(
        strstr(r, "<RequestCode>GetCustomer</RequestCode><ResponseCode>A</ResponseCode>"));
    assert_non_null(strstr(r, "language=\"en_US\" currency=\"USD\""));
    assert_non_null(strstr(r, "<RSColumn name=\"firstname\" type=\"string\" nullable=\"true\">"));
    assert_non_null(strstr(r, "<RSColumn name=\"USERALPHA1\" type=\"string\""));
    assert_non_null(strstr(r, "<Row id=\"27350\"><Col>Jane</Col><Col>Gold</Col><Col /></Row>"));
    free(r);

    r = gl_call(CRM_HEAD "<RequestCode>SetCustomer</RequestCode><DataSet><DataSetColumns><DSColumn "
                         "name=\"useralpha1\" /><DSColumn name=\"FirstName\" /></DataSetColumns>"
                         "<Rows><Row id=\"27350\"><Col>Platinum</Col><Col>Jane &amp; Co</Col></Row>"
                         "</Rows></DataSet></CRMMessage>");
    assert_non_null(strstr(r, "<ResponseCode>A</ResponseCode><Row id=\"27350\" />"));
    free(r);
    r = gl_call(get);
    assert_non_null(strstr(r, "<Row id=\"27350\"><Col>Jane &amp; Co</Col><Col>Platinum</Col>"));
    free(r);

    /* nobody there: an empty Rows */
    r = gl_call(CRM_HEAD "<RequestCode>GetCustomer</RequestCode><QueryCriteria conditions="
                         "\"primaryposref = ?\"><Condition name=\"primaryposref\" value=\"nope\" />"
                         "</QueryCriteria><ResultSetDefinition><Column>firstname</Column>"
                         "</ResultSetDefinition></CRMMessage>");
    assert_non_null(strstr(r, "</ResultSetMetaData><Rows></Rows></ResultSet>"));
    free(r);

    json_t *st = get_json(mi("/_sim/state"));
    json_t *c0 = json_array_get(json_object_get(st, "customers"), 0);
    assert_int_equal(json_integer_value(json_object_get(c0, "id")), 27350);
    assert_int_equal(json_integer_value(json_object_get(c0, "set_count")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c0, "columns"), "useralpha1")),
        "Platinum");
    json_t *h = json_array_get(json_object_get(c0, "history"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(h, "columns"), "firstname")),
        "Jane & Co");
    json_decref(st);
}

static void test_gl_integrity_and_logon(void **state)
{
    const char *crm = CRM_HEAD "<RequestCode>GetColumnList</RequestCode><QueryCriteria "
                               "request=\"customer\" /></CRMMessage>";
    char lower[16], dec[16], *out = NULL;
    snprintf(lower, sizeof lower, "%08x", crc32_ieee(crm));
    snprintf(dec, sizeof dec, "%010u", crc32_ieee(crm));
    const char *bad[] = {"00000000", lower, dec};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(bad[i], lower) == 0 && strpbrk(lower, "abcdef") == NULL)
            continue; /* an all-digit CRC has no case to get wrong */
        char *env = gl_envelope(crm, "gw", "s3cret", bad[i]);
        assert_int_equal(gl_call_raw(env, &out), 200);
        assert_non_null(strstr(out, "<ResponseCode>D</ResponseCode><DisplayMessage>Request failed "
                                    "integrity check</DisplayMessage>"));
        free(out);
        free(env);
    }
    char *env = gl_envelope(crm, "gw", "wrong", NULL);
    assert_int_equal(gl_call_raw(env, &out), 200);
    assert_non_null(strstr(out, "<ResponseCode hostCode=\"1\">D</ResponseCode>"));
    free(out);
    free(env);
}

static void test_gl_rejects_bad_xml(void **state)
{
    char *out = NULL;
    const char *doctype = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e \"boom\">]><soapenv:"
                          "Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"/>";
    assert_int_equal(gl_call_raw(doctype, &out), 500);
    assert_non_null(strstr(out, "DOCTYPE"));
    free(out);
    char *env = gl_envelope("<!DOCTYPE CRMMessage><CRMMessage/>", "gw", "s3cret", NULL);
    assert_int_equal(gl_call_raw(env, &out), 500);
    assert_non_null(strstr(out, "DOCTYPE"));
    free(out);
    free(env);
    assert_int_equal(gl_call_raw("<soapenv:Envelope", &out), 500);
    free(out);
    env = gl_envelope("<CRMMessage><unclosed></CRMMessage>", "gw", "s3cret", NULL);
    assert_int_equal(gl_call_raw(env, &out), 500);
    free(out);
    free(env);
}

static void test_gl_set_customer_rules(void **state)
{
    /* create without sortValue=1 / PrimaryPosRef: refused, nothing created */
    char *r = gl_call(CRM_HEAD "<RequestCode>SetCustomer</RequestCode><DataSet><DataSetColumns>"
                               "<DSColumn name=\"firstName\" /></DataSetColumns><Rows><Row><Col>X"
                               "</Col></Row></Rows></DataSet></CRMMessage>");
    assert_non_null(strstr(r, "<ResponseCode>D</ResponseCode>"));
    free(r);
    r = gl_call(CRM_HEAD "<RequestCode>SetCustomer</RequestCode><DataSet><DataSetColumns><DSColumn "
                         "name=\"firstName\" /><DSColumn name=\"sortValue\" /><DSColumn "
                         "name=\"PrimaryPosRef\" /></DataSetColumns><Rows><Row><Col>Rubber</Col>"
                         "<Col>1</Col><Col>2200000</Col></Row></Rows></DataSet></CRMMessage>");
    assert_non_null(strstr(r, "<ResponseCode>A</ResponseCode><Row id=\""));
    free(r);
    /* unknown column → E with an Error code; unknown row → D SetRollbackException */
    r = gl_call(CRM_HEAD "<RequestCode>SetCustomer</RequestCode><DataSet><DataSetColumns><DSColumn "
                         "name=\"tier\" /></DataSetColumns><Rows><Row id=\"27350\"><Col>Gold</Col>"
                         "</Row></Rows></DataSet></CRMMessage>");
    assert_non_null(strstr(r, "<ResponseCode>E</ResponseCode><Error code=\""));
    free(r);
    r = gl_call(CRM_HEAD "<RequestCode>SetCustomer</RequestCode><DataSet><DataSetColumns><DSColumn "
                         "name=\"firstname\" /></DataSetColumns><Rows><Row id=\"999\"><Col>A</Col>"
                         "</Row></Rows></DataSet></CRMMessage>");
    assert_non_null(strstr(r, "SetRollbackException: Update failed for row ID = 999"));
    free(r);
    /* a value longer than its column (USERALPHA1 is A50) */
    r = gl_call(CRM_HEAD "<RequestCode>SetCustomer</RequestCode><DataSet><DataSetColumns><DSColumn "
                         "name=\"useralpha1\" /></DataSetColumns><Rows><Row id=\"27350\"><Col>"
                         "123456789012345678901234567890123456789012345678901</Col></Row></Rows>"
                         "</DataSet></CRMMessage>");
    assert_non_null(strstr(r, "<ResponseCode>D</ResponseCode>"));
    free(r);
    r = gl_call(CRM_HEAD "<RequestCode>DeleteEverything</RequestCode></CRMMessage>");
    assert_non_null(strstr(r, "<ResponseCode>E</ResponseCode><Error code=\"1\">"));
    free(r);
    json_t *st = get_json(mi("/_sim/state"));
    json_t *cs = json_object_get(st, "customers");
    json_t *last = json_array_get(cs, json_array_size(cs) - 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(last, "columns"), "primaryposref")),
        "2200000");
    assert_null(json_object_get(json_object_get(last, "columns"), "sortvalue"));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cs, 0), "set_count")), 0);
    json_decref(st);
}

/* ---- webhook ---- */

static long webhook(const char *id, long long ts, const char *body, const char *sig_override)
{
    size_t klen = 0;
    unsigned char key[128], mac[32];
    unsigned int maclen = 0;
    int n = EVP_DecodeBlock(key, (const unsigned char *)g_whsec + 6, (int)strlen(g_whsec + 6));
    klen =
        (size_t)n - (g_whsec[strlen(g_whsec) - 1] == '=') - (g_whsec[strlen(g_whsec) - 2] == '=');
    char msg[4096], b64[64], h1[128], h2[64], h3[160];
    snprintf(msg, sizeof msg, "%s.%lld.%s", id, ts, body);
    HMAC(EVP_sha256(), key, (int)klen, (unsigned char *)msg, strlen(msg), mac, &maclen);
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
    snprintf(h1, sizeof h1, "webhook-id: %s", id);
    snprintf(h2, sizeof h2, "webhook-timestamp: %lld", ts);
    snprintf(h3, sizeof h3, "webhook-signature: %s", sig_override ? sig_override : "");
    if (!sig_override)
        snprintf(h3, sizeof h3, "webhook-signature: v1,bm90IGl0 v1,%s", b64);
    const char *hdrs[] = {"Content-Type: application/json", h1, h2, h3, NULL};
    return req("POST", mi("/webhooks/loyalty"), hdrs, body, NULL);
}

static void test_webhook_signatures(void **state)
{
    long long now = pg_wall_ms() / 1000;
    const char *body = "{\"loyalty_id\":\"LY-000123\",\"tier\":\"Gold\"}";
    assert_int_equal(webhook("msg_1", now, body, NULL), 200);
    assert_int_equal(webhook("msg_2", now, body, NULL), 200);
    assert_int_equal(webhook("msg_3", now, body, "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                     401);
    assert_int_equal(webhook("msg_4", now - 301, body, NULL), 401);
    assert_int_equal(webhook("msg_5", now + 301, body, NULL), 401);
    assert_int_equal(webhook("msg_6", now, "not json", NULL), 400);
    assert_int_equal(req("POST", mi("/webhooks/loyalty"), JSON_HDR, body, NULL), 401);
    json_t *st = get_json(mi("/_sim/state"));
    json_t *wh = json_object_get(st, "webhook");
    assert_int_equal(json_array_size(json_object_get(wh, "deliveries")), 2);
    json_t *c = json_object_get(json_object_get(wh, "customers"), "LY-000123");
    assert_int_equal(json_integer_value(json_object_get(c, "count")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "last"), "tier")),
                        "Gold");
    json_decref(st);
}

/* ---- Salesforce record changes ---- */

static void test_patch_bumps_modstamp(void **state)
{
    json_t *a = NULL, *b = NULL;
    assert_int_equal(req("PATCH", sf("/_sim/records/Contact/0035g00000K1tbPAAR"), JSON_HDR,
                         "{\"Loyalty_Tier__c\":\"Platinum\"}", &a),
                     200);
    assert_int_equal(
        req("PATCH", sf("/_sim/records/Contact/0035g00000K1tbP"), JSON_HDR, "{\"Email\":null}", &b),
        200);
    const char *ta = json_string_value(json_object_get(a, "SystemModstamp"));
    const char *tb = json_string_value(json_object_get(b, "SystemModstamp"));
    assert_int_equal(strlen(ta), 24);
    assert_int_equal(ta[23], 'Z');
    assert_true(strcmp(tb, ta) > 0);
    assert_true(strcmp(ta, "2026-03-02T14:05:11.000Z") > 0);
    assert_string_equal(json_string_value(json_object_get(b, "Loyalty_Tier__c")), "Platinum");
    assert_true(json_is_null(json_object_get(b, "Email")));
    json_decref(a);
    json_decref(b);
    assert_int_equal(req("PATCH", sf("/_sim/records/Contact/0035g00000ZZZZZAAA"), JSON_HDR,
                         "{\"FirstName\":\"X\"}", NULL),
                     404);
    assert_int_equal(req("PATCH", sf("/_sim/records/Contact/0035g00000K1tbPAAR"), JSON_HDR,
                         "{\"SystemModstamp\":\"2030-01-01T00:00:00.000Z\"}", NULL),
                     400);
}

/* ---- Outbound Messages ---- */

static json_t *om_list(void)
{
    return get_json(sf("/_sim/outbound-messages"));
}

static json_t *om_wait_done(size_t n)
{
    int64_t end = pg_now_ms() + 15000;
    for (;;) {
        json_t *l = om_list();
        size_t done = 0, i;
        json_t *m;
        json_array_foreach(l, i, m) done += json_is_true(json_object_get(m, "done"));
        if (done >= n || pg_now_ms() > end)
            return l;
        json_decref(l);
        pg_sleep_ms(20);
    }
}

static xmlNodePtr next_el(xmlNodePtr n)
{
    while (n && n->type != XML_ELEMENT_NODE)
        n = n->next;
    return n;
}

static int id18_ok(const char *id, const char *prefix)
{
    if (!id || strlen(id) != 18 || strncmp(id, prefix, 3) != 0)
        return 0;
    for (int g = 0; g < 3; g++) {
        int v = 0;
        for (int i = 0; i < 5; i++)
            if (id[g * 5 + i] >= 'A' && id[g * 5 + i] <= 'Z')
                v += 1 << i;
        if (id[15 + g] != "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[v])
            return 0;
    }
    return 1;
}

static char *text(xmlNodePtr n)
{
    xmlChar *t = xmlNodeGetContent(n);
    char *s = strdup((const char *)t);
    xmlFree(t);
    return s;
}

/* Check one received envelope; returns the notification ids joined by ',' (malloc'd). */
static char *check_envelope(const char *body, int expect_notifs)
{
    xmlDocPtr doc = xmlReadMemory(body, (int)strlen(body), NULL, NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    xmlNodePtr env = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)env->ns->href, "http://schemas.xmlsoap.org/soap/envelope/");
    xmlNodePtr bd = next_el(env->children);
    assert_string_equal((const char *)bd->name, "Body");
    xmlNodePtr nf = next_el(bd->children);
    assert_string_equal((const char *)nf->name, "notifications");
    assert_string_equal((const char *)nf->ns->href, "http://soap.sforce.com/2005/09/outbound");
    const char *order[] = {"OrganizationId", "ActionId", "SessionId", "EnterpriseUrl",
                           "PartnerUrl"};
    xmlNodePtr c = next_el(nf->children);
    for (int i = 0; i < 5; i++, c = next_el(c->next)) {
        assert_string_equal((const char *)c->name, order[i]);
        char *t = text(c);
        if (i == 0)
            assert_string_equal(t, "00D5g000004XyZ1EAK");
        if (i == 1)
            assert_true(id18_ok(t, "04k"));
        if (i == 2) {
            xmlChar *nil =
                xmlGetNsProp(c, (const xmlChar *)"nil",
                             (const xmlChar *)"http://www.w3.org/2001/XMLSchema-instance");
            assert_string_equal((const char *)nil, "true");
            xmlFree(nil);
        }
        if (i == 3)
            assert_non_null(strstr(t, "/services/Soap/c/66.0/00D5g000004XyZ1"));
        free(t);
    }
    struct pg_buf ids;
    pg_buf_init(&ids, 1 << 16);
    int n = 0;
    for (; c; c = next_el(c->next), n++) {
        assert_string_equal((const char *)c->name, "Notification");
        xmlNodePtr id = next_el(c->children), so = next_el(id->next);
        char *t = text(id);
        assert_true(id18_ok(t, "04l"));
        assert_int_equal(pg_buf_printf(&ids, "%s%s", n ? "," : "", t), 0);
        free(t);
        assert_string_equal((const char *)so->name, "sObject");
        xmlChar *type = xmlGetNsProp(so, (const xmlChar *)"type",
                                     (const xmlChar *)"http://www.w3.org/2001/XMLSchema-instance");
        assert_string_equal((const char *)type, "sf:Contact");
        xmlFree(type);
        xmlNodePtr f = next_el(so->children);
        assert_string_equal((const char *)f->name, "Id");
        assert_string_equal((const char *)f->ns->href, "urn:sobject.enterprise.soap.sforce.com");
        const char *prev = "";
        for (f = next_el(f->next); f; f = next_el(f->next)) {
            assert_true(strcmp((const char *)f->name, prev) > 0); /* alphabetical */
            prev = (const char *)f->name;
            t = text(f);
            assert_true(t[0] != '\0'); /* nulls are omitted, not empty */
            free(t);
        }
    }
    assert_int_equal(n, expect_notifs);
    xmlFreeDoc(doc);
    return pg_buf_steal(&ids);
}

static void test_om_envelope_retry_and_ack(void **state)
{
    rx_reset(M_ACK, 3, M_500, M_FAULT, M_WRONG_NS);
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"target_url\":\"%s\",\"ids\":[\"0035g00000K1tbPAAR\",\"0035g00000Mv3RkAAJ\"],"
             "\"retry_initial_ms\":200,\"retry_max_ms\":400}",
             rx_url("/v1/salesforce/outbound-messages"));
    json_t *r = NULL;
    assert_int_equal(req("POST", sf("/_sim/outbound-messages"), JSON_HDR, spec, &r), 202);
    assert_int_equal(json_array_size(json_object_get(r, "ids")), 1);
    json_decref(r);
    rx_wait(1);
    /* the record changes while the message waits to be retried: the retry sends the new data */
    assert_int_equal(req("PATCH", sf("/_sim/records/Contact/0035g00000K1tbPAAR"), JSON_HDR,
                         "{\"Loyalty_Tier__c\":\"Platinum\"}", NULL),
                     200);
    json_t *l = om_wait_done(1);
    json_t *m = json_array_get(l, 0);
    assert_true(json_is_true(json_object_get(m, "acked")));
    assert_int_equal(json_integer_value(json_object_get(m, "attempts")), 4);
    assert_int_equal(json_integer_value(json_object_get(m, "last_status")), 200);
    assert_true(json_is_null(json_object_get(m, "next_attempt_in_ms")));
    assert_int_equal(json_array_size(json_object_get(m, "history")), 4);
    assert_non_null(strstr(json_string_value(json_object_get(
                               json_array_get(json_object_get(m, "history"), 1), "error")),
                           "fault"));
    json_decref(l);
    pg_sleep_ms(500); /* nothing more after the Ack */
    assert_int_equal(rx_count(), 4);
    pthread_mutex_lock(&rx.mu);
    char *first = check_envelope(rx.reqs[0].body, 2);
    for (int i = 1; i < 4; i++) {
        char *ids = check_envelope(rx.reqs[i].body, 2);
        assert_string_equal(ids, first); /* same notification ids on every retry */
        free(ids);
    }
    assert_string_equal(rx.reqs[0].ctype, "text/xml; charset=utf-8");
    assert_string_equal(rx.reqs[0].soapaction, "\"\"");
    assert_non_null(strstr(rx.reqs[0].body, "<sf:Loyalty_Tier__c>Gold</sf:Loyalty_Tier__c>"));
    assert_non_null(strstr(rx.reqs[3].body, "<sf:Loyalty_Tier__c>Platinum</sf:Loyalty_Tier__c>"));
    assert_non_null(strstr(rx.reqs[0].body, "<sf:Loyalty_Points__c>5400.0</sf:Loyalty_Points__c>"));
    /* Marcus Bell has no e-mail: the element is left out */
    const char *bell = strstr(rx.reqs[0].body, "0035g00000Mv3RkAAJ");
    assert_non_null(bell);
    assert_null(strstr(bell, "<sf:Email>"));
    pthread_mutex_unlock(&rx.mu);
    free(first);
}

static void test_om_batches_and_duplicates(void **state)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"target_url\":\"%s\",\"ids\":[\"0035g00000K1tbPAAR\",\"0035g00000Lq8ZwAAJ\","
             "\"0035g00000Mv3RkAAJ\"],\"batch_size\":2,\"fields\":[\"Loyalty_Id__c\","
             "\"SystemModstamp\"],\"duplicate_rate\":1,\"shuffle\":true,\"seed\":7}",
             rx_url("/om"));
    json_t *r = NULL;
    assert_int_equal(req("POST", sf("/_sim/outbound-messages"), JSON_HDR, spec, &r), 202);
    json_t *msgs = json_object_get(r, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_int_equal(json_array_size(json_object_get(json_array_get(msgs, 0), "notification_ids")),
                     2);
    assert_int_equal(json_array_size(json_object_get(json_array_get(msgs, 1), "notification_ids")),
                     1);
    json_decref(r);
    json_t *l = om_wait_done(2);
    size_t i;
    json_t *m;
    json_array_foreach(l, i, m)
    {
        assert_true(json_is_true(json_object_get(m, "acked")));
        assert_int_equal(json_integer_value(json_object_get(m, "sent_after_ack")), 1);
        assert_int_equal(json_integer_value(json_object_get(m, "attempts")), 2);
    }
    json_decref(l);
    assert_int_equal(rx_count(), 4);
    pthread_mutex_lock(&rx.mu);
    for (int k = 0; k < 4; k++) {
        assert_null(strstr(rx.reqs[k].body, "<sf:FirstName>")); /* only the fields asked for */
        assert_non_null(strstr(rx.reqs[k].body, "<sf:Loyalty_Id__c>"));
    }
    pthread_mutex_unlock(&rx.mu);
    /* bad specs */
    assert_int_equal(req("POST", sf("/_sim/outbound-messages"), JSON_HDR, "{\"ids\":[]}", NULL),
                     400);
    snprintf(spec, sizeof spec, "{\"target_url\":\"%s\",\"batch_size\":101}", rx_url("/om"));
    assert_int_equal(req("POST", sf("/_sim/outbound-messages"), JSON_HDR, spec, NULL), 400);
    snprintf(spec, sizeof spec, "{\"target_url\":\"%s\",\"ids\":[\"0035g00000ZZZZZAAA\"]}",
             rx_url("/om"));
    assert_int_equal(req("POST", sf("/_sim/outbound-messages"), JSON_HDR, spec, NULL), 400);
    /* reset empties the queue */
    assert_int_equal(req("POST", sf("/_sim/reset"), NULL, "", NULL), 200);
    l = om_list();
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
}

/* ---- Platform Events ---- */

static json_t *pe_post(const char *extra, const char *ids)
{
    char spec[2048];
    snprintf(spec, sizeof spec, "{\"target_url\":\"%s\",\"ids\":%s%s%s}",
             rx_url("/v1/salesforce/events"), ids, extra[0] ? "," : "", extra);
    json_t *r = NULL;
    assert_int_equal(req("POST", sf("/_sim/platform-events"), JSON_HDR, spec, &r), 200);
    assert_non_null(r);
    return r;
}

static const char *bearer(int i)
{
    const char *a = rx.reqs[i].auth;
    assert_non_null(a);
    assert_memory_equal(a, "Bearer ", 7);
    return a + 7;
}

static void test_pe_envelope_and_jwt(void **state)
{
    rx_reset(M_JSON, 0);
    json_t *r = pe_post("", "[\"0035g00000K1tbPAAR\"]");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(r, "results"), 0), "status")),
                     200);
    const char *uuid = json_string_value(json_array_get(json_object_get(r, "event_uuids"), 0));
    assert_int_equal(strlen(uuid), 36);
    assert_int_equal(uuid[14], '4');
    pthread_mutex_lock(&rx.mu);
    assert_int_equal(rx.n, 1);
    assert_string_equal(rx.reqs[0].ctype, "application/json");
    json_t *ev = json_loads(rx.reqs[0].body, 0, NULL);
    assert_true(json_is_object(ev));
    assert_string_equal(json_string_value(json_object_get(ev, "channel")),
                        "/event/Loyalty_Update__e");
    json_t *data = json_object_get(ev, "data");
    assert_int_equal(json_string_length(json_object_get(data, "schema")), 22);
    json_t *p = json_object_get(data, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "Contact_Id__c")),
                        "0035g00000K1tbPAAR");
    assert_string_equal(json_string_value(json_object_get(p, "Loyalty_Id__c")), "LY-000123");
    assert_int_equal(json_integer_value(json_object_get(p, "Loyalty_Points__c")), 5400);
    assert_int_equal(json_string_length(json_object_get(p, "CreatedById")), 15);
    assert_int_equal(json_string_length(json_object_get(p, "CreatedDate")), 24);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(data, "event"), "EventUuid")), uuid);
    assert_true(json_is_integer(json_object_get(json_object_get(data, "event"), "replayId")));
    json_decref(ev);

    jwt_t *jwt = NULL;
    const char *tok = bearer(0);
    assert_int_equal(jwt_decode(&jwt, tok, (const unsigned char *)g_pub, (int)strlen(g_pub)), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_RS256);
    assert_string_equal(jwt_get_header(jwt, "kid"), "sf-events-1");
    assert_string_equal(jwt_get_header(jwt, "typ"), "JWT");
    assert_string_equal(jwt_get_grant(jwt, "iss"), "https://acme.my.salesforce.com");
    assert_string_equal(jwt_get_grant(jwt, "aud"), "posgate");
    assert_string_equal(jwt_get_grant(jwt, "sub"), "integration@acme.example");
    assert_non_null(jwt_get_grant(jwt, "jti"));
    long iat = jwt_get_grant_int(jwt, "iat");
    assert_int_equal(jwt_get_grant_int(jwt, "exp") - iat, 120);
    assert_int_equal(jwt_get_grant_int(jwt, "nbf"), iat);
    assert_true(labs(iat - (long)(pg_wall_ms() / 1000)) < 10);
    jwt_free(jwt);
    pthread_mutex_unlock(&rx.mu);
    json_decref(r);

    /* two events as one array, sent twice (same EventUuids) */
    rx_reset(M_JSON, 0);
    r = pe_post("\"duplicate\":true", "[\"0035g00000K1tbPAAR\",\"0035g00000Lq8ZwAAJ\"]");
    assert_int_equal(json_array_size(json_object_get(r, "results")), 2);
    pthread_mutex_lock(&rx.mu);
    assert_int_equal(rx.n, 2);
    assert_string_equal(rx.reqs[0].body, rx.reqs[1].body);
    json_t *a = json_loads(rx.reqs[0].body, 0, NULL);
    assert_int_equal(json_array_size(a), 2);
    json_decref(a);
    pthread_mutex_unlock(&rx.mu);
    json_decref(r);
}

static void test_pe_bad_tokens(void **state)
{
    jwt_t *jwt = NULL;
    rx_reset(M_JSON, 0);
    json_decref(pe_post("\"token\":{\"alg\":\"none\"}", "[\"0035g00000K1tbPAAR\"]"));
    char esc[8192] = "";
    for (const char *s = g_pub; *s; s++) /* the PEM as a JSON string */
        snprintf(esc + strlen(esc), sizeof esc - strlen(esc), *s == '\n' ? "\\n" : "%c", *s);
    char extra[9000];
    snprintf(extra, sizeof extra, "\"token\":{\"alg\":\"HS256\",\"key\":\"%s\"}", esc);
    json_decref(pe_post(extra, "[\"0035g00000K1tbPAAR\"]"));
    json_decref(pe_post("\"token\":{\"exp_offset_s\":-60,\"iss\":\"evil\",\"aud\":\"other\","
                        "\"kid\":\"nope\"}",
                        "[\"0035g00000K1tbPAAR\"]"));
    json_decref(pe_post("\"token\":{\"omit\":true}", "[\"0035g00000K1tbPAAR\"]"));
    json_decref(pe_post("\"token\":{\"alg\":\"HS256\"}", "[\"0035g00000K1tbPAAR\"]"));
    pthread_mutex_lock(&rx.mu);
    assert_int_equal(rx.n, 5);
    /* alg none: an empty signature; refused when a key is given */
    const char *t = bearer(0);
    assert_int_equal(t[strlen(t) - 1], '.');
    assert_int_not_equal(jwt_decode(&jwt, t, (const unsigned char *)g_pub, (int)strlen(g_pub)), 0);
    /* HS256 keyed with the public key PEM: libjwt accepts it, so the alg check must catch it */
    t = bearer(1);
    assert_int_equal(jwt_decode(&jwt, t, (const unsigned char *)g_pub, (int)strlen(g_pub)), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    jwt_free(jwt);
    /* expired, wrong iss/aud/kid, still RS256-signed */
    t = bearer(2);
    assert_int_equal(jwt_decode(&jwt, t, (const unsigned char *)g_pub, (int)strlen(g_pub)), 0);
    assert_true(jwt_get_grant_int(jwt, "exp") < pg_wall_ms() / 1000);
    assert_string_equal(jwt_get_grant(jwt, "iss"), "evil");
    assert_string_equal(jwt_get_grant(jwt, "aud"), "other");
    assert_string_equal(jwt_get_header(jwt, "kid"), "nope");
    jwt_free(jwt);
    assert_null(rx.reqs[3].auth);
    /* HS256 with the configured secret: not verifiable with the RSA key */
    t = bearer(4);
    assert_int_not_equal(jwt_decode(&jwt, t, (const unsigned char *)g_pub, (int)strlen(g_pub)), 0);
    pthread_mutex_unlock(&rx.mu);
    /* bad requests */
    char spec[256];
    snprintf(spec, sizeof spec, "{\"target_url\":\"%s\"}", rx_url("/e"));
    assert_int_equal(req("POST", sf("/_sim/platform-events"), JSON_HDR, spec, NULL), 400);
    snprintf(spec, sizeof spec,
             "{\"target_url\":\"%s\",\"ids\":[\"x\"],\"token\":{\"alg\":\"ES256\"}}", rx_url("/e"));
    assert_int_equal(req("POST", sf("/_sim/platform-events"), JSON_HDR, spec, NULL), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_gl_round_trip, reset_both),
        cmocka_unit_test_setup(test_gl_integrity_and_logon, reset_both),
        cmocka_unit_test_setup(test_gl_rejects_bad_xml, reset_both),
        cmocka_unit_test_setup(test_gl_set_customer_rules, reset_both),
        cmocka_unit_test_setup(test_webhook_signatures, reset_both),
        cmocka_unit_test_setup(test_patch_bumps_modstamp, reset_both),
        cmocka_unit_test_setup(test_om_envelope_retry_and_ack, reset_both),
        cmocka_unit_test_setup(test_om_batches_and_duplicates, reset_both),
        cmocka_unit_test_setup(test_pe_envelope_and_jwt, reset_both),
        cmocka_unit_test_setup(test_pe_bad_tokens, reset_both),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
