#include "micros/glcrm.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <zlib.h>

#include "server/httpc.h"

#define SOAP_NS "http://schemas.xmlsoap.org/soap/envelope/"
#define GL_MAX_ENVELOPE (4u << 20)
#define GL_MAX_RESPONSE (4u << 20)

/* ---- XML text escaping ---- */

/* Length of the valid UTF-8 sequence at s (of at most n bytes) that is an XML 1.0 Char, or 0.
 * Control characters other than TAB/LF/CR, surrogates, U+FFFE/U+FFFF, overlong forms and
 * code points above U+10FFFF cannot travel in XML at all, so we refuse them here rather than
 * let the host reject (or silently alter, and then fail the CRC of) the message. */
static size_t xml_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') ? 1 : 0;
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return len;
}

/* Append s escaped for use as XML text or a double- or single-quoted attribute value. TAB, LF
 * and CR become character references: a parser normalises a raw CR (and, in attributes, TAB and
 * LF) away, which would change the text the host computes in3 over. */
static int xml_escape(struct pg_buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t run = 0; /* bytes of p[i-run..i) to copy verbatim */
    for (size_t i = 0; i < n;) {
        const char *rep = NULL;
        switch (p[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\t':
            rep = "&#9;";
            break;
        case '\n':
            rep = "&#10;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        default:
            break;
        }
        if (rep) {
            int rc = pg_buf_append(out, p + i - run, run);
            if (rc || (rc = pg_buf_puts(out, rep)))
                return rc;
            run = 0;
            i++;
            continue;
        }
        size_t cl = xml_char_len(p + i, n - i);
        if (!cl)
            return PG_EINVAL;
        i += cl;
        run += cl;
    }
    return pg_buf_append(out, p + n - run, run);
}

/* ---- requests ---- */

int pg_gl_envelope(struct pg_buf *out, const char *crm_xml, const char *logon, const char *password)
{
    if (!out || !crm_xml || !*crm_xml || !logon || !password)
        return PG_EINVAL;
    size_t n = strlen(crm_xml);
    if (n > UINT_MAX)
        return PG_ETOOLARGE;
    /* The CRC covers in0 as the host sees it after un-escaping: crm_xml's own bytes. */
    unsigned long crc = crc32(0L, (const Bytef *)crm_xml, (uInt)n);
    int rc;
    if ((rc = pg_buf_puts(out, "<soapenv:Envelope xmlns:soapenv=\"" SOAP_NS "\" "
                               "xmlns:ejb=\"ejb.storedValue.micros.com\"><soapenv:Body>"
                               "<ejb:processRequest><in0>")) ||
        (rc = xml_escape(out, crm_xml)) || (rc = pg_buf_puts(out, "</in0><in1>")) ||
        (rc = xml_escape(out, logon)) || (rc = pg_buf_puts(out, "</in1><in2>")) ||
        (rc = xml_escape(out, password)) ||
        (rc = pg_buf_printf(out, "</in2><in3>%08lX</in3>", crc & 0xFFFFFFFFul)) ||
        (rc = pg_buf_puts(out, "</ejb:processRequest></soapenv:Body></soapenv:Envelope>")))
        return rc;
    return PG_OK;
}

/* language/currency as in the reference examples; the CRM API does not use them for customer
 * rows. */
static int crm_head(struct pg_buf *out, const char *request_source, const char *request_code)
{
    int rc;
    if ((rc = pg_buf_puts(out, "<CRMMessage language=\"en_US\" currency=\"USD\">"
                               "<RequestSource name=\"")) ||
        (rc = xml_escape(out, request_source)) ||
        (rc = pg_buf_printf(out, "\" version=\"1\"/><RequestCode>%s</RequestCode>", request_code)))
        return rc;
    return PG_OK;
}

int pg_gl_build_get_customer(struct pg_buf *out,
                             const char *request_source,
                             const char *primaryposref,
                             const char *const *columns,
                             size_t ncolumns)
{
    if (!out || !request_source || !*request_source || !primaryposref || !*primaryposref ||
        !columns || ncolumns == 0)
        return PG_EINVAL;
    for (size_t i = 0; i < ncolumns; i++)
        if (!columns[i] || !*columns[i])
            return PG_EINVAL;
    int rc;
    if ((rc = crm_head(out, request_source, "GetCustomer")) ||
        (rc = pg_buf_puts(out, "<QueryCriteria conditions=\"primaryposref = ?\">"
                               "<Condition name=\"primaryposref\" value=\"")) ||
        (rc = xml_escape(out, primaryposref)) ||
        (rc = pg_buf_puts(out, "\"/></QueryCriteria><ResultSetDefinition>")))
        return rc;
    for (size_t i = 0; i < ncolumns; i++)
        if ((rc = pg_buf_puts(out, "<Column>")) || (rc = xml_escape(out, columns[i])) ||
            (rc = pg_buf_puts(out, "</Column>")))
            return rc;
    return pg_buf_puts(out, "</ResultSetDefinition></CRMMessage>");
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int put_col(struct pg_buf *out, const char *value)
{
    int rc;
    if (!value || !*value)
        return pg_buf_puts(out, "<Col/>");
    if ((rc = pg_buf_puts(out, "<Col>")) || (rc = xml_escape(out, value)))
        return rc;
    return pg_buf_puts(out, "</Col>");
}

int pg_gl_build_set_customer(struct pg_buf *out,
                             const char *request_source,
                             const char *row_id,
                             const char *primaryposref,
                             const struct pg_gl_col *cols,
                             size_t ncols)
{
    int create = row_id == NULL;
    if (!out || !request_source || !*request_source || (ncols && !cols))
        return PG_EINVAL;
    if (create ? (!primaryposref || !*primaryposref) : (!all_digits(row_id) || ncols == 0))
        return PG_EINVAL;
    if (!create && strlen(row_id) >= sizeof((struct pg_gl_result *)0)->row_id)
        return PG_EINVAL;
    for (size_t i = 0; i < ncols; i++)
        if (!cols[i].name || !*cols[i].name)
            return PG_EINVAL;

    int rc;
    if ((rc = crm_head(out, request_source, "SetCustomer")) ||
        (rc = pg_buf_puts(out, "<DataSet><DataSetColumns>")))
        return rc;
    /* A create names the card (primaryposref) and sortvalue 1: SORTVALUE is one of the customer
     * table's columns (GetColumnList), and the host refuses an insert without both
     * (micros-wire.md §3.2). */
    if (create && (rc = pg_buf_puts(out, "<DSColumn name=\"primaryposref\"/>"
                                         "<DSColumn name=\"sortvalue\"/>")))
        return rc;
    for (size_t i = 0; i < ncols; i++)
        if ((rc = pg_buf_puts(out, "<DSColumn name=\"")) || (rc = xml_escape(out, cols[i].name)) ||
            (rc = pg_buf_puts(out, "\"/>")))
            return rc;
    if ((rc = pg_buf_puts(out, "</DataSetColumns><Rows>")))
        return rc;
    /* A row without an id creates a customer. */
    if (create)
        rc = pg_buf_puts(out, "<Row>");
    else
        rc = pg_buf_printf(out, "<Row id=\"%s\">", row_id);
    if (rc || (create && ((rc = put_col(out, primaryposref)) || (rc = put_col(out, "1")))))
        return rc;
    for (size_t i = 0; i < ncols; i++)
        if ((rc = put_col(out, cols[i].value)))
            return rc;
    return pg_buf_puts(out, "</Row></Rows></DataSet></CRMMessage>");
}

/* ---- response parsing ---- */

static pthread_once_t g_xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

/* Errors go nowhere here (libxml2 would print them to stderr); the caller reads the context's
 * last error instead. */
static void xml_quiet(void *ctx, xmlErrorPtr err)
{
}

/* Copy at most dsz-1 bytes of s into d without cutting a UTF-8 sequence, trimming spaces. */
static void copy_text(char *d, size_t dsz, const char *s)
{
    if (!s)
        s = "";
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= dsz) {
        n = dsz - 1;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(d, s, n);
    d[n] = '\0';
}

static int has_doctype(const char *s, size_t n)
{
    static const char tag[] = "<!DOCTYPE";
    size_t tl = sizeof tag - 1;
    for (size_t i = 0; i + tl <= n; i++)
        if (s[i] == '<' && strncasecmp(s + i, tag, tl) == 0)
            return 1;
    return 0;
}

/* Parse one document with the rules of c-dependencies.md. *why gets a reason on failure. */
static xmlDocPtr xml_parse(const char *s, size_t n, const char *encoding, char *why, size_t whysz)
{
    if (n > INT_MAX) {
        snprintf(why, whysz, "document too large");
        return NULL;
    }
    if (has_doctype(s, n)) {
        snprintf(why, whysz, "document type declaration not allowed");
        return NULL;
    }
    pthread_once(&g_xml_once, xml_init);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        snprintf(why, whysz, "out of memory");
        return NULL;
    }
    ctxt->sax->serror = xml_quiet;
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, s, (int)n, NULL, encoding,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        xmlErrorPtr e = xmlCtxtGetLastError(ctxt);
        char msg[200];
        copy_text(msg, sizeof msg, e && e->message ? e->message : "not XML");
        snprintf(why, whysz, "malformed XML: %s", msg);
    } else if (doc->intSubset || doc->extSubset) {
        snprintf(why, whysz, "document type declaration not allowed");
        xmlFreeDoc(doc);
        doc = NULL;
    } else if (!xmlDocGetRootElement(doc)) {
        snprintf(why, whysz, "empty document");
        xmlFreeDoc(doc);
        doc = NULL;
    }
    xmlFreeParserCtxt(ctxt);
    return doc;
}

static int name_is(xmlNodePtr n, const char *local, const char *ns)
{
    if (!n || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, local) != 0)
        return 0;
    if (!ns)
        return 1;
    return n->ns && n->ns->href && strcmp((const char *)n->ns->href, ns) == 0;
}

/* First child element named local (in namespace ns, or any namespace when ns is NULL). */
static xmlNodePtr child(xmlNodePtr parent, const char *local, const char *ns)
{
    if (!parent)
        return NULL;
    for (xmlNodePtr c = parent->children; c; c = c->next)
        if (name_is(c, local, ns))
            return c;
    return NULL;
}

static xmlNodePtr first_element(xmlNodePtr parent)
{
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return c;
    return NULL;
}

static void node_text(xmlNodePtr n, char *d, size_t dsz)
{
    xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    copy_text(d, dsz, (const char *)t);
    xmlFree(t);
}

static void attr_text(xmlNodePtr n, const char *name, char *d, size_t dsz)
{
    xmlChar *t = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    copy_text(d, dsz, (const char *)t);
    xmlFree(t);
}

/* Messages are best effort: truncation is fine (and vsnprintf keeps -Wformat-truncation quiet). */
static void set_msg(struct pg_gl_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_msg(struct pg_gl_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

static void result_init(struct pg_gl_result *res)
{
    memset(res, 0, sizeof *res);
    res->retry_after_s = -1;
}

void pg_gl_result_free(struct pg_gl_result *res)
{
    if (!res)
        return;
    json_decref(res->columns);
    result_init(res);
}

const char *pg_gl_outcome_name(enum pg_gl_outcome o)
{
    switch (o) {
    case PG_GL_OK:
        return "ok";
    case PG_GL_RETRY:
        return "retry";
    default:
        return "fail";
    }
}

/* ResultSet → rows, first row id, {column: value} of the first row. */
static int parse_result_set(xmlNodePtr rs, struct pg_gl_result *res)
{
    xmlNodePtr meta = child(rs, "ResultSetMetaData", NULL);
    xmlNodePtr rows = child(rs, "Rows", NULL);
    xmlNodePtr first = NULL;
    for (xmlNodePtr r = rows ? rows->children : NULL; r; r = r->next)
        if (name_is(r, "Row", NULL)) {
            if (!first)
                first = r;
            res->rows++;
        }
    if (!first)
        return PG_OK;
    attr_text(first, "id", res->row_id, sizeof res->row_id);
    if (!(res->columns = json_object()))
        return PG_ENOMEM;
    xmlNodePtr col = first->children;
    for (xmlNodePtr m = meta ? meta->children : NULL; m; m = m->next) {
        if (!name_is(m, "RSColumn", NULL))
            continue;
        while (col && !name_is(col, "Col", NULL))
            col = col->next;
        xmlChar *name = xmlGetProp(m, (const xmlChar *)"name");
        xmlChar *val = col ? xmlNodeGetContent(col) : NULL;
        int rc = PG_OK;
        if (!name || !*name) {
            set_msg(res, "RSColumn without a name");
            rc = PG_EPROTO;
        } else if (json_object_set_new(res->columns, (const char *)name,
                                       json_string(val ? (const char *)val : "")) != 0) {
            rc = PG_ENOMEM;
        }
        xmlFree(name);
        xmlFree(val);
        if (rc)
            return rc;
        if (col)
            col = col->next;
    }
    while (col && !name_is(col, "Col", NULL))
        col = col->next;
    if (col) {
        set_msg(res, "row has more Col than ResultSetMetaData");
        return PG_EPROTO;
    }
    return PG_OK;
}

static int parse_crm(xmlNodePtr msg, struct pg_gl_result *res)
{
    xmlNodePtr rc_node = child(msg, "ResponseCode", NULL);
    if (rc_node) {
        char code[8];
        node_text(rc_node, code, sizeof code);
        if (strlen(code) == 1 && isupper((unsigned char)code[0]))
            res->response_code = code[0];
        attr_text(rc_node, "hostCode", res->host_code, sizeof res->host_code);
    }
    xmlNodePtr err = child(msg, "Error", NULL);
    if (err)
        attr_text(err, "code", res->error_code, sizeof res->error_code);
    xmlNodePtr dm = child(msg, "DisplayMessage", NULL);
    if (dm)
        node_text(dm, res->message, sizeof res->message);
    if (!res->message[0] && err)
        node_text(err, res->message, sizeof res->message);
    xmlNodePtr row = child(msg, "Row", NULL); /* SetCustomer's answer */
    if (row)
        attr_text(row, "id", res->row_id, sizeof res->row_id);
    xmlNodePtr rs = child(msg, "ResultSet", NULL);
    if (rs) {
        char keep[sizeof res->row_id];
        memcpy(keep, res->row_id, sizeof keep);
        int rc = parse_result_set(rs, res);
        if (rc)
            return rc;
        if (!res->row_id[0])
            memcpy(res->row_id, keep, sizeof keep);
    }
    return PG_OK;
}

int pg_gl_parse_response(const char *body, size_t len, struct pg_gl_result *res)
{
    if (!res)
        return PG_EINVAL;
    result_init(res);
    if (!body || len == 0) {
        set_msg(res, "empty response");
        return PG_EPROTO;
    }
    char why[sizeof res->message];
    xmlDocPtr env = xml_parse(body, len, NULL, why, sizeof why);
    if (!env) {
        set_msg(res, "SOAP envelope: %s", why);
        return PG_EPROTO;
    }
    int rc = PG_EPROTO;
    xmlDocPtr inner = NULL;
    xmlChar *text = NULL;
    xmlNodePtr root = xmlDocGetRootElement(env);
    xmlNodePtr sbody = name_is(root, "Envelope", SOAP_NS) ? child(root, "Body", SOAP_NS) : NULL;
    xmlNodePtr op = first_element(sbody);
    if (!op) {
        set_msg(res, "not a SOAP 1.1 envelope with a Body");
        goto out;
    }
    if (name_is(op, "Fault", SOAP_NS)) {
        char fs[200];
        node_text(child(op, "faultstring", NULL), fs, sizeof fs);
        set_msg(res, "SOAP fault: %s", fs[0] ? fs : "(none)");
        goto out;
    }
    xmlNodePtr ret = name_is(op, "processRequestResponse", NULL) ? child(op, "return", NULL) : NULL;
    if (!ret) {
        set_msg(res, "no processRequestResponse/return");
        goto out;
    }
    text = xmlNodeGetContent(ret);
    if (!text || !*text) {
        set_msg(res, "empty processRequestResponse/return");
        goto out;
    }
    /* The text of <return> is UTF-8 (libxml2 decoded it) whatever its declaration says. */
    inner = xml_parse((const char *)text, strlen((const char *)text), "UTF-8", why, sizeof why);
    if (!inner) {
        set_msg(res, "return: %s", why);
        goto out;
    }
    xmlNodePtr msg = xmlDocGetRootElement(inner);
    if (!name_is(msg, "CRMMessage", NULL) && !name_is(msg, "SVCMessage", NULL)) {
        set_msg(res, "return holds <%s>, not a CRMMessage", (const char *)msg->name);
        goto out;
    }
    rc = parse_crm(msg, res);
out:
    if (rc != PG_OK) {
        json_decref(res->columns);
        res->columns = NULL;
    }
    xmlFree(text);
    xmlFreeDoc(inner);
    xmlFreeDoc(env);
    return rc;
}

/* ---- one call ---- */

static int host_code_listed(const char *code, const char *const *list)
{
    if (!code[0])
        return 0;
    for (; list && *list; list++)
        if (strcmp(code, *list) == 0)
            return 1;
    return 0;
}

enum pg_gl_outcome pg_gl_call(const struct pg_gl_config *c,
                              const char *crm_xml,
                              const char *const *retryable_host_codes,
                              struct pg_gl_result *res)
{
    result_init(res);
    if (!c || !c->url || !c->logon || !c->password || !crm_xml) {
        set_msg(res, "incomplete G&L configuration or request");
        return PG_GL_FAIL;
    }
    struct pg_buf env;
    pg_buf_init(&env, GL_MAX_ENVELOPE);
    int rc = pg_gl_envelope(&env, crm_xml, c->logon, c->password);
    if (rc) {
        pg_buf_free(&env);
        set_msg(res, "cannot build request envelope: %s", pg_strerror(rc));
        return rc == PG_ENOMEM ? PG_GL_RETRY : PG_GL_FAIL;
    }
    static const char *const headers[] = {"Content-Type: text/xml; charset=utf-8",
                                          "SOAPAction: \"\"", "Accept: text/xml", NULL};
    struct pg_httpc_req req = {.method = "POST",
                               .url = c->url,
                               .headers = headers,
                               .body = env.data,
                               .body_len = env.len,
                               .connect_timeout_ms = c->connect_timeout_ms,
                               .timeout_ms = c->timeout_ms,
                               .max_response_bytes = GL_MAX_RESPONSE};
    struct pg_httpc_resp resp;
    rc = pg_httpc_do(&req, &resp);
    pg_buf_free(&env);

    enum pg_gl_outcome out;
    if (rc != PG_OK && resp.status == 0) {
        set_msg(res, "%s: %s", pg_errname(rc), resp.error);
        out = (rc == PG_ETIMEDOUT || rc == PG_EUNAVAIL || rc == PG_EIO || rc == PG_ENOMEM)
                  ? PG_GL_RETRY
                  : PG_GL_FAIL;
    } else if (resp.status == 429 || resp.status >= 500) {
        /* SOAP 1.1 sends faults with 500: keep the faultstring when there is one. */
        char fault[sizeof res->message - 16] = "";
        if (rc == PG_OK && pg_gl_parse_response(resp.body, resp.len, res) == PG_EPROTO &&
            strncmp(res->message, "SOAP fault:", 11) == 0)
            copy_text(fault, sizeof fault, res->message);
        pg_gl_result_free(res);
        set_msg(res, "HTTP %ld%s%s", resp.status, fault[0] ? " " : "", fault);
        out = PG_GL_RETRY;
    } else if (resp.status < 200 || resp.status > 299) {
        set_msg(res, "HTTP %ld", resp.status);
        out = PG_GL_FAIL;
    } else if (rc != PG_OK) {
        set_msg(res, "%s: %s", pg_errname(rc), resp.error);
        out = PG_GL_FAIL;
    } else if (pg_gl_parse_response(resp.body, resp.len, res) != PG_OK) {
        out = PG_GL_FAIL; /* res->message says why */
    } else if (res->response_code == 'A') {
        out = PG_GL_OK;
    } else if (host_code_listed(res->host_code, retryable_host_codes)) {
        out = PG_GL_RETRY;
    } else {
        if (!res->response_code && !res->message[0])
            set_msg(res, "reply has no ResponseCode");
        out = PG_GL_FAIL;
    }
    res->http_status = resp.status;
    res->retry_after_s = resp.retry_after_s;
    pg_httpc_resp_free(&resp);
    return out;
}
