#include "salesforce/outbound.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "auth/org.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* libxml2 wants one xmlInitParser() before concurrent use; the first parse does it. */
static void xml_init(void)
{
    xmlInitParser();
}

/* The first parser error of one parse, kept for the faultstring instead of going to stderr. */
struct parse_errors {
    char msg[160];
};

static void on_xml_error(void *data, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = data;
    struct parse_errors *pe = ctxt ? ctxt->_private : NULL;
    if (!pe || !e || e->level < XML_ERR_ERROR || pe->msg[0])
        return;
    snprintf(pe->msg, sizeof pe->msg, "line %d: %s", e->line, e->message ? e->message : "error");
    size_t n = strlen(pe->msg);
    while (n && (pe->msg[n - 1] == '\n' || pe->msg[n - 1] == ' '))
        pe->msg[--n] = '\0';
}

/* Some libxml2 2.9 paths call the SAX error/warning callbacks directly; keep those quiet too. */
static void quiet_sax(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static void set_why(char *why, size_t whysz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whysz, const char *fmt, ...)
{
    if (!why || !whysz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
}

static int ns_is(const xmlNode *n, const char *href)
{
    return n->ns && n->ns->href && !strcmp((const char *)n->ns->href, href);
}

static int named(const xmlNode *n, const char *ns, const char *local)
{
    return n->type == XML_ELEMENT_NODE && ns_is(n, ns) && !strcmp((const char *)n->name, local);
}

static xmlNode *first_element(xmlNode *n)
{
    for (; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static xmlNode *next_element(xmlNode *n)
{
    return n ? first_element(n->next) : NULL;
}

static int is_nil(xmlNode *n)
{
    xmlChar *v = xmlGetNsProp(n, (const xmlChar *)"nil", (const xmlChar *)PG_SF_OM_NS_XSI);
    int nil = v && (!strcmp((const char *)v, "true") || !strcmp((const char *)v, "1"));
    xmlFree(v);
    return nil;
}

/* Scan raw bytes for a DOCTYPE before libxml2 sees them, so no DTD is ever processed. */
static int has_doctype(const char *xml, size_t len)
{
    static const char pat[] = "<!doctype";
    const size_t m = sizeof pat - 1;
    for (size_t i = 0; i + m <= len; i++) {
        if (xml[i] != '<')
            continue;
        size_t j = 1;
        while (j < m && (xml[i + j] | 0x20) == (pat[j] | 0x20))
            j++;
        if (j == m)
            return 1;
    }
    return 0;
}

/*
 * Text of a leaf element: element children are refused (no Outbound Message field nests), and
 * the value is capped. Returns PG_OK with *out new (malloc) or PG_EINVAL/PG_ENOMEM.
 */
static int leaf_text(xmlNode *n, size_t max, char **out, size_t *outlen)
{
    *out = NULL;
    if (first_element(n->children))
        return PG_EINVAL;
    xmlChar *c = xmlNodeGetContent(n);
    const char *s = c ? (const char *)c : "";
    size_t len = strlen(s);
    if (len > max) {
        xmlFree(c);
        return PG_ETOOLARGE;
    }
    *out = malloc(len + 1);
    if (*out) {
        memcpy(*out, s, len + 1);
        if (outlen)
            *outlen = len;
    }
    xmlFree(c);
    return *out ? PG_OK : PG_ENOMEM;
}

/* Envelope-level values (ids, URLs) with surrounding whitespace trimmed. */
static int header_value(xmlNode *n, char **out, char *why, size_t whysz)
{
    char *v = NULL;
    int rc = leaf_text(n, 4096, &v, NULL);
    if (rc == PG_ENOMEM)
        return rc;
    if (rc) {
        set_why(why, whysz, "%s is not a short text value", (const char *)n->name);
        return PG_EINVAL;
    }
    size_t a = 0, b = strlen(v);
    while (a < b && strchr(" \t\r\n", v[a]))
        a++;
    while (b > a && strchr(" \t\r\n", v[b - 1]))
        b--;
    memmove(v, v + a, b - a);
    v[b - a] = '\0';
    *out = v;
    return PG_OK;
}

static int type_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 80 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* xsi:type="p:Type" with p bound to the enterprise sObject namespace -> "Type" (new string). */
static int sobject_type(xmlNode *so, char **out, char *why, size_t whysz)
{
    xmlChar *t = xmlGetNsProp(so, (const xmlChar *)"type", (const xmlChar *)PG_SF_OM_NS_XSI);
    if (!t) {
        set_why(why, whysz, "sObject has no xsi:type");
        return PG_EINVAL;
    }
    const char *colon = strchr((const char *)t, ':');
    char prefix[64] = "";
    const char *local = (const char *)t;
    if (colon) {
        size_t pl = (size_t)(colon - (const char *)t);
        if (pl == 0 || pl >= sizeof prefix) {
            xmlFree(t);
            set_why(why, whysz, "sObject xsi:type is not a qualified name");
            return PG_EINVAL;
        }
        memcpy(prefix, t, pl);
        prefix[pl] = '\0';
        local = colon + 1;
    }
    /* The QName prefix resolves like an element's: no prefix means the default namespace. */
    xmlNs *ns = xmlSearchNs(so->doc, so, colon ? (const xmlChar *)prefix : NULL);
    int rc = PG_OK;
    if (!ns || !ns->href || strcmp((const char *)ns->href, PG_SF_OM_NS_SOBJECT)) {
        set_why(why, whysz, "sObject xsi:type is not in namespace %s", PG_SF_OM_NS_SOBJECT);
        rc = PG_EINVAL;
    } else if (!type_name_ok(local)) {
        set_why(why, whysz, "sObject xsi:type is not an sObject name");
        rc = PG_EINVAL;
    } else if (!(*out = strdup(local))) {
        rc = PG_ENOMEM;
    }
    xmlFree(t);
    return rc;
}

/* The sObject's element children -> {"Name": "text" | null}. */
static int sobject_fields(xmlNode *so, size_t idx, json_t **out, char *why, size_t whysz)
{
    json_t *f = json_object();
    if (!f)
        return PG_ENOMEM;
    size_t count = 0;
    for (xmlNode *c = first_element(so->children); c; c = next_element(c)) {
        const char *name = (const char *)c->name;
        if (!ns_is(c, PG_SF_OM_NS_SOBJECT)) {
            set_why(why, whysz, "Notification %zu: sObject field %.64s is not in namespace %s",
                    idx + 1, name, PG_SF_OM_NS_SOBJECT);
            goto inval;
        }
        if (++count > PG_SF_OM_MAX_FIELDS) {
            set_why(why, whysz, "Notification %zu: sObject has more than %d fields", idx + 1,
                    PG_SF_OM_MAX_FIELDS);
            goto inval;
        }
        if (json_object_get(f, name)) {
            set_why(why, whysz, "Notification %zu: sObject field %.64s appears twice", idx + 1,
                    name);
            goto inval;
        }
        json_t *v;
        if (is_nil(c)) {
            v = json_null();
        } else {
            char *text = NULL;
            size_t tlen = 0;
            int rc = leaf_text(c, PG_SF_OM_MAX_VALUE, &text, &tlen);
            if (rc == PG_ENOMEM) {
                json_decref(f);
                return rc;
            }
            if (rc) {
                set_why(why, whysz,
                        rc == PG_ETOOLARGE
                            ? "Notification %zu: sObject field %.64s is longer than 32768 bytes"
                            : "Notification %zu: sObject field %.64s has child elements",
                        idx + 1, name);
                goto inval;
            }
            v = json_stringn(text, tlen); /* libxml2 hands out UTF-8 only */
            free(text);
            if (!v) {
                json_decref(f);
                return PG_ENOMEM;
            }
        }
        if (json_object_set_new(f, name, v)) {
            json_decref(f);
            return PG_ENOMEM;
        }
    }
    *out = f;
    return PG_OK;
inval:
    json_decref(f);
    return PG_EINVAL;
}

static int parse_notification(xmlNode *nn,
                              size_t idx,
                              struct pg_sf_notification *dst,
                              char **type_out,
                              char *why,
                              size_t whysz)
{
    xmlNode *id = NULL, *so = NULL;
    for (xmlNode *c = first_element(nn->children); c; c = next_element(c)) {
        if (named(c, PG_SF_OM_NS_OUTBOUND, "Id")) {
            if (id) {
                set_why(why, whysz, "Notification %zu has two Id elements", idx + 1);
                return PG_EINVAL;
            }
            id = c;
        } else if (named(c, PG_SF_OM_NS_OUTBOUND, "sObject")) {
            if (so) {
                set_why(why, whysz, "Notification %zu has two sObject elements", idx + 1);
                return PG_EINVAL;
            }
            so = c;
        }
    }
    if (!id) {
        set_why(why, whysz, "Notification %zu has no Id", idx + 1);
        return PG_EINVAL;
    }
    if (!so) {
        set_why(why, whysz, "Notification %zu has no sObject", idx + 1);
        return PG_EINVAL;
    }
    int rc = header_value(id, &dst->id, why, whysz);
    if (rc)
        return rc;
    size_t idlen = strlen(dst->id);
    /* Shape only: the notification id is a dedupe key, not a trust decision. */
    int alnum = 1;
    for (size_t i = 0; i < idlen; i++)
        if (!((dst->id[i] >= 'A' && dst->id[i] <= 'Z') ||
              (dst->id[i] >= 'a' && dst->id[i] <= 'z') || (dst->id[i] >= '0' && dst->id[i] <= '9')))
            alnum = 0;
    if ((idlen != 15 && idlen != 18) || !alnum) {
        set_why(why, whysz, "Notification %zu Id is not a Salesforce id", idx + 1);
        return PG_EINVAL;
    }
    if ((rc = sobject_type(so, type_out, why, whysz)) != PG_OK) {
        if (rc == PG_EINVAL) {
            char tmp[160];
            snprintf(tmp, sizeof tmp, "%s", why ? why : "");
            set_why(why, whysz, "Notification %zu: %s", idx + 1, tmp);
        }
        return rc;
    }
    return sobject_fields(so, idx, &dst->fields, why, whysz);
}

/* One of the envelope-level singletons of <notifications>. */
struct singleton {
    const char *name;
    char **dst;
    int seen;
};

static int walk(xmlDoc *doc, struct pg_sf_om *om, char *why, size_t whysz)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root || !named(root, PG_SF_OM_NS_SOAPENV, "Envelope")) {
        set_why(why, whysz, "root element is not Envelope in namespace %s", PG_SF_OM_NS_SOAPENV);
        return PG_EINVAL;
    }
    xmlNode *body = NULL;
    for (xmlNode *c = first_element(root->children); c; c = next_element(c)) {
        if (named(c, PG_SF_OM_NS_SOAPENV, "Body")) {
            if (body) {
                set_why(why, whysz, "Envelope has two Body elements");
                return PG_EINVAL;
            }
            body = c;
        } else if (!named(c, PG_SF_OM_NS_SOAPENV, "Header")) {
            set_why(why, whysz, "unexpected element %.64s in Envelope", (const char *)c->name);
            return PG_EINVAL;
        }
    }
    if (!body) {
        set_why(why, whysz, "Envelope has no Body");
        return PG_EINVAL;
    }
    xmlNode *nots = first_element(body->children);
    if (!nots || !named(nots, PG_SF_OM_NS_OUTBOUND, "notifications") || next_element(nots)) {
        set_why(why, whysz, "Body must hold exactly one notifications element in namespace %s",
                PG_SF_OM_NS_OUTBOUND);
        return PG_EINVAL;
    }

    struct singleton singles[] = {
        {"OrganizationId", &om->org_id, 0},  {"ActionId", &om->action_id, 0},
        {"SessionId", &om->session_id, 0},   {"EnterpriseUrl", &om->enterprise_url, 0},
        {"PartnerUrl", &om->partner_url, 0},
    };
    size_t count = 0;
    for (xmlNode *c = first_element(nots->children); c; c = next_element(c)) {
        if (named(c, PG_SF_OM_NS_OUTBOUND, "Notification")) {
            if (++count > PG_SF_OM_MAX_NOTIFICATIONS) {
                set_why(why, whysz, "more than %d Notification elements",
                        PG_SF_OM_MAX_NOTIFICATIONS);
                return PG_EINVAL;
            }
            continue;
        }
        for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++) {
            if (!named(c, PG_SF_OM_NS_OUTBOUND, singles[i].name))
                continue;
            if (singles[i].seen++) {
                set_why(why, whysz, "%s appears twice", singles[i].name);
                return PG_EINVAL;
            }
            if (!is_nil(c)) {
                int rc = header_value(c, singles[i].dst, why, whysz);
                if (rc)
                    return rc;
                if (!**singles[i].dst) { /* empty means absent, as nil does */
                    free(*singles[i].dst);
                    *singles[i].dst = NULL;
                }
            }
        }
        /* Anything else is ignored: a later API version may add elements. */
    }
    if (!om->org_id) {
        set_why(why, whysz, "OrganizationId is missing");
        return PG_EINVAL;
    }
    if (!pg_sf_id_valid(om->org_id)) {
        set_why(why, whysz, "OrganizationId is not a valid Salesforce id");
        return PG_EINVAL;
    }
    if (count == 0) {
        set_why(why, whysz, "no Notification element");
        return PG_EINVAL;
    }
    om->notifications = calloc(count, sizeof *om->notifications);
    if (!om->notifications)
        return PG_ENOMEM;
    for (xmlNode *c = first_element(nots->children); c; c = next_element(c)) {
        if (!named(c, PG_SF_OM_NS_OUTBOUND, "Notification"))
            continue;
        char *type = NULL;
        int rc = parse_notification(c, om->n, &om->notifications[om->n], &type, why, whysz);
        om->n++; /* counted even on failure so pg_sf_om_free releases what was filled in */
        if (rc) {
            free(type);
            return rc;
        }
        if (!om->sobject_type) {
            om->sobject_type = type;
        } else {
            int same = !strcmp(om->sobject_type, type);
            free(type);
            if (!same) {
                set_why(why, whysz, "Notification %zu has a different sObject type than the first",
                        om->n);
                return PG_EINVAL;
            }
        }
    }
    return PG_OK;
}

int pg_sf_om_parse(const char *xml, size_t len, struct pg_sf_om **out, char *why, size_t whysz)
{
    set_why(why, whysz, "%s", "");
    if (!out)
        return PG_EINVAL;
    *out = NULL;
    if (!xml) {
        set_why(why, whysz, "empty body");
        return PG_EINVAL;
    }
    if (len > INT_MAX) {
        set_why(why, whysz, "body too large");
        return PG_ETOOLARGE;
    }
    /*
     * Byte-level gate before the parser: UTF-8 (no NULs, so no UTF-16/32), starting with '<'
     * (so no EBCDIC), and no DOCTYPE anywhere. With those, a DOCTYPE cannot hide from the scan.
     */
    size_t i = 0;
    if (len >= 3 && !memcmp(xml, "\xEF\xBB\xBF", 3))
        i = 3;
    while (i < len && xml[i] && strchr(" \t\r\n", xml[i]))
        i++;
    if (i == len) {
        set_why(why, whysz, "empty body");
        return PG_EINVAL;
    }
    if (xml[i] != '<' || memchr(xml, '\0', len)) {
        set_why(why, whysz, "body is not a UTF-8 XML document");
        return PG_EINVAL;
    }
    if (has_doctype(xml, len)) {
        set_why(why, whysz, "document type declarations are not allowed");
        return PG_EINVAL;
    }

    pthread_once(&xml_once, xml_init);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return PG_ENOMEM;
    struct parse_errors pe = {.msg = ""};
    ctxt->_private = &pe;
    ctxt->sax->serror = on_xml_error; /* this context only: thread-safe, nothing on stderr */
    ctxt->sax->error = quiet_sax;
    ctxt->sax->warning = quiet_sax;
    ctxt->vctxt.error = quiet_sax;
    ctxt->vctxt.warning = quiet_sax;
    /* No NOENT (entity substitution) and no DTDLOAD: a DTD is never read, let alone fetched. */
    xmlDoc *doc = xmlCtxtReadMemory(ctxt, xml, (int)len, NULL, NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOWARNING);
    int rc = PG_OK;
    if (!doc || !ctxt->wellFormed) {
        set_why(why, whysz, "malformed XML (%s)", pe.msg[0] ? pe.msg : "not well-formed");
        rc = PG_EINVAL;
    } else if (!ctxt->nsWellFormed) {
        set_why(why, whysz, "namespace error (%s)",
                pe.msg[0] ? pe.msg : "not namespace-well-formed");
        rc = PG_EINVAL;
    } else if (doc->intSubset || doc->extSubset) {
        set_why(why, whysz, "document type declarations are not allowed");
        rc = PG_EINVAL;
    }
    struct pg_sf_om *om = NULL;
    if (rc == PG_OK) {
        om = calloc(1, sizeof *om);
        rc = om ? walk(doc, om, why, whysz) : PG_ENOMEM;
    }
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    if (rc) {
        if (rc == PG_ENOMEM)
            set_why(why, whysz, "out of memory");
        pg_sf_om_free(om);
        return rc;
    }
    *out = om;
    return PG_OK;
}

void pg_sf_om_free(struct pg_sf_om *om)
{
    if (!om)
        return;
    for (size_t i = 0; i < om->n; i++) {
        free(om->notifications[i].id);
        json_decref(om->notifications[i].fields);
    }
    free(om->notifications);
    free(om->org_id);
    free(om->action_id);
    free(om->session_id);
    free(om->enterprise_url);
    free(om->partner_url);
    free(om->sobject_type);
    free(om);
}

int pg_sf_om_ack(struct pg_buf *out)
{
    if (!out)
        return PG_EINVAL;
    return pg_buf_puts(
        out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"\n"
             "    xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
             "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
             " <soapenv:Body>\n"
             "  <notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n"
             "   <Ack>true</Ack>\n"
             "  </notificationsResponse>\n"
             " </soapenv:Body>\n"
             "</soapenv:Envelope>\n");
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    unsigned cp;
    if ((s[0] & 0xE0) == 0xC0)
        n = 2, cp = s[0] & 0x1Fu;
    else if ((s[0] & 0xF0) == 0xE0)
        n = 3, cp = s[0] & 0x0Fu;
    else if ((s[0] & 0xF8) == 0xF0)
        n = 4, cp = s[0] & 0x07u;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE ||
        cp == 0xFFFF)
        return 0;
    return n;
}

/* XML text escaping; anything XML 1.0 cannot carry becomes '?'. */
static int xml_escape(struct pg_buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int rc;
        switch (*p) {
        case '<':
            rc = pg_buf_puts(out, "&lt;");
            break;
        case '>':
            rc = pg_buf_puts(out, "&gt;");
            break;
        case '&':
            rc = pg_buf_puts(out, "&amp;");
            break;
        case '"':
            rc = pg_buf_puts(out, "&quot;");
            break;
        case '\'':
            rc = pg_buf_puts(out, "&apos;");
            break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') {
                rc = pg_buf_puts(out, "?");
            } else {
                size_t n = utf8_len(p);
                if (n == 0) {
                    rc = pg_buf_puts(out, "?");
                } else {
                    rc = pg_buf_append(out, p, n);
                    p += n - 1;
                }
            }
        }
        if (rc)
            return rc;
        p++;
    }
    return PG_OK;
}

int pg_sf_om_fault(struct pg_buf *out, const char *faultcode, const char *faultstring)
{
    if (!out || !faultcode ||
        (strcmp(faultcode, "soapenv:Client") && strcmp(faultcode, "soapenv:Server")))
        return PG_EINVAL;
    int rc = pg_buf_printf(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\n"
        " <soapenv:Body>\n"
        "  <soapenv:Fault>\n"
        "   <faultcode>%s</faultcode>\n"
        "   <faultstring>",
        faultcode);
    if (!rc)
        rc = xml_escape(out, faultstring ? faultstring : "");
    if (!rc)
        rc = pg_buf_puts(out, "</faultstring>\n"
                              "   <detail/>\n"
                              "  </soapenv:Fault>\n"
                              " </soapenv:Body>\n"
                              "</soapenv:Envelope>\n");
    return rc;
}
