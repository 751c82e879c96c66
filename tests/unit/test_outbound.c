/*
 * Outbound Message SOAP: parsing the notifications message (salesforce-wire.md §1.2-1.3), every
 * rejection path (DOCTYPE/XXE/entity expansion included), and the Ack and fault we answer with
 * (parsed back with libxml2). No sockets.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "salesforce/outbound.h"
#include "server/buf.h"
#include "server/util.h"
#include "tests/support/harness.h"

static char why[256];

static char *fixture(const char *name, size_t *len)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/soap/%s", name);
    char *data = NULL;
    if (pg_read_file(pg_t_src(rel), 1 << 20, &data, len) != 0)
        fail_msg("cannot read fixture %s", rel);
    return data;
}

static struct pg_sf_om *parse_ok(const char *xml, size_t len)
{
    struct pg_sf_om *om = NULL;
    int rc = pg_sf_om_parse(xml, len, &om, why, sizeof why);
    if (rc != 0)
        fail_msg("parse failed: %d %s", rc, why);
    assert_non_null(om);
    return om;
}

static void expect_reject_n(const char *xml, size_t len, const char *needle)
{
    struct pg_sf_om *om = (void *)1;
    int rc = pg_sf_om_parse(xml, len, &om, why, sizeof why);
    if (rc != PG_EINVAL)
        fail_msg("expected PG_EINVAL (%s), got %d", needle, rc);
    assert_null(om);
    if (!strstr(why, needle))
        fail_msg("reason \"%s\" does not mention \"%s\"", why, needle);
}

static void expect_reject(const char *xml, const char *needle)
{
    expect_reject_n(xml, strlen(xml), needle);
}

static const char *field(const struct pg_sf_notification *n, const char *name)
{
    json_t *v = json_object_get(n->fields, name);
    if (!v)
        fail_msg("field %s missing", name);
    return json_string_value(v);
}

#define ENV_OPEN                                                                                   \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "               \
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>"
#define ENV_CLOSE "</soapenv:Body></soapenv:Envelope>"
#define NOTS_OPEN "<notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">"
#define ORG "<OrganizationId>00D5g000004XyZ1EAK</OrganizationId>"
#define SO_OPEN(type)                                                                              \
    "<sObject xsi:type=\"sf:" type "\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">"
#define NOTE(id, type, fields)                                                                     \
    "<Notification><Id>" id "</Id>" SO_OPEN(type) fields "</sObject></Notification>"
#define MSG(body) ENV_OPEN NOTS_OPEN body "</notifications>" ENV_CLOSE
#define ONE(fields) MSG(ORG NOTE("04l5g00000Gx7QzAAJ", "Contact", fields))

/* A message with n Contact notifications; when last_type is set the last one has that type. */
static char *generate(size_t n, const char *last_type, size_t *len)
{
    struct pg_buf b;
    pg_buf_init(&b, 16 << 20);
    assert_int_equal(pg_buf_puts(&b,
                                 ENV_OPEN NOTS_OPEN ORG "<ActionId>04k5g000000CaRkAAK</ActionId>"
                                                        "<SessionId xsi:nil=\"true\"/>"),
                     0);
    for (size_t i = 0; i < n; i++) {
        const char *type = (last_type && i == n - 1) ? last_type : "Contact";
        assert_int_equal(pg_buf_printf(&b,
                                       "<Notification><Id>04l5g00000G%04zuAAA</Id>"
                                       "<sObject xsi:type=\"sf:%s\" "
                                       "xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">"
                                       "<sf:Id>0035g00000K%04zuAAA</sf:Id>"
                                       "<sf:Loyalty_Id__c>LY-%06zu</sf:Loyalty_Id__c>"
                                       "</sObject></Notification>",
                                       i, type, i, i),
                         0);
    }
    assert_int_equal(pg_buf_puts(&b, "</notifications>" ENV_CLOSE), 0);
    *len = b.len;
    return pg_buf_steal(&b);
}

static void reference_sample(void **state)
{
    size_t len;
    char *xml = fixture("contact_2.xml", &len);
    struct pg_sf_om *om = parse_ok(xml, len);
    assert_string_equal(om->org_id, "00D5g000004XyZ1EAK");
    assert_string_equal(om->action_id, "04k5g000000CaRkAAK");
    assert_null(om->session_id);
    assert_string_equal(om->enterprise_url,
                        "https://acme.my.salesforce.com/services/Soap/c/66.0/00D5g000004XyZ1");
    assert_string_equal(om->partner_url,
                        "https://acme.my.salesforce.com/services/Soap/u/66.0/00D5g000004XyZ1");
    assert_string_equal(om->sobject_type, "Contact");
    assert_int_equal(om->n, 2);
    const struct pg_sf_notification *a = &om->notifications[0], *b = &om->notifications[1];
    assert_string_equal(a->id, "04l5g00000Gx7QzAAJ");
    assert_string_equal(b->id, "04l5g00000Gx7R4AAJ");
    assert_int_equal(json_object_size(a->fields), 8);
    assert_string_equal(field(a, "Id"), "0035g00000K1tbPAAR");
    assert_string_equal(field(a, "Email"), "jane.doe@example.com");
    assert_string_equal(field(a, "Loyalty_Tier__c"), "Gold");
    assert_string_equal(field(a, "Marketing_Opt_In__c"), "true");
    assert_string_equal(field(a, "SystemModstamp"), "2026-03-02T14:05:11.000Z");
    assert_int_equal(json_object_size(b->fields), 6);
    assert_null(json_object_get(b->fields, "Email")); /* null fields are omitted by Salesforce */
    assert_string_equal(field(b, "Id"), "0035g00000K1tb0AAB");
    assert_string_equal(field(b, "LastName"), "Bunting");
    pg_sf_om_free(om);
    free(xml);
}

static void account_variants(void **state)
{
    size_t len;
    char *xml = fixture("account.xml", &len);
    struct pg_sf_om *om = parse_ok(xml, len);
    assert_string_equal(om->sobject_type, "Account");
    assert_string_equal(om->session_id, "00D5g000004XyZ1!AQsAQTESTONLYSESSION");
    assert_int_equal(om->n, 1);
    const struct pg_sf_notification *n = &om->notifications[0];
    assert_string_equal(field(n, "Name"), "Muster & Co. <Berlin>");
    assert_true(json_is_null(json_object_get(n->fields, "Phone"))); /* xsi:nil */
    assert_string_equal(field(n, "POS_Customer_Id__c"), "C-889");
    pg_sf_om_free(om);
    free(xml);

    /* Person Account: another prefix for the sObject namespace, 15-char org, unknown fields */
    xml = fixture("person_account.xml", &len);
    om = parse_ok(xml, len);
    assert_string_equal(om->org_id, "00D5g000004XyZ1");
    assert_string_equal(om->sobject_type, "Account");
    n = &om->notifications[0];
    assert_string_equal(field(n, "IsPersonAccount"), "true");
    assert_string_equal(field(n, "PersonEmail"), "j.gross@example.com");
    assert_string_equal(field(n, "Loyalty_Tier__pc"), "Gold");
    assert_string_equal(field(n, "FirstName"), "J\xc3\xbcrgen");
    assert_string_equal(field(n, "LastName"), "Gro\xc3\x9f");
    assert_string_equal(field(n, "Unknown_Future_Field__c"), "a <b> & c");
    pg_sf_om_free(om);
    free(xml);
}

static void nil_and_empty(void **state)
{
    static const char xml[] = MSG(ORG "<SessionId xsi:nil=\"1\"/><ActionId></ActionId>" NOTE(
        "04l5g00000Gx7QzAAJ", "Contact",
        "<sf:Id>0035g00000K1tbPAAR</sf:Id><sf:Email xsi:nil=\"true\"/><sf:Fax/>"
        "<sf:Title> Head of  Stuff </sf:Title>"));
    struct pg_sf_om *om = parse_ok(xml, sizeof xml - 1);
    assert_null(om->session_id);
    assert_null(om->action_id);
    assert_null(om->enterprise_url);
    const struct pg_sf_notification *n = &om->notifications[0];
    assert_true(json_is_null(json_object_get(n->fields, "Email")));
    assert_string_equal(field(n, "Fax"), "");                   /* empty, not nil */
    assert_string_equal(field(n, "Title"), " Head of  Stuff "); /* values are not trimmed */
    pg_sf_om_free(om);
}

static void counts(void **state)
{
    size_t len;
    char *xml = generate(1, NULL, &len);
    struct pg_sf_om *om = parse_ok(xml, len);
    assert_int_equal(om->n, 1);
    pg_sf_om_free(om);
    free(xml);

    xml = generate(100, NULL, &len);
    om = parse_ok(xml, len);
    assert_int_equal(om->n, 100);
    assert_string_equal(om->notifications[99].id, "04l5g00000G0099AAA");
    assert_string_equal(field(&om->notifications[99], "Loyalty_Id__c"), "LY-000099");
    pg_sf_om_free(om);
    free(xml);

    xml = generate(101, NULL, &len);
    expect_reject_n(xml, len, "more than 100 Notification");
    free(xml);

    xml = generate(3, "Account", &len);
    expect_reject_n(xml, len, "Notification 3 has a different sObject type");
    free(xml);
}

static void doctype_attacks(void **state)
{
    size_t len;
    char *xml = fixture("xxe.xml", &len);
    expect_reject_n(xml, len, "document type declarations are not allowed");
    free(xml);
    xml = fixture("billion_laughs.xml", &len);
    expect_reject_n(xml, len, "document type declarations are not allowed");
    free(xml);
    expect_reject("<!doctype x><x/>", "document type");
    expect_reject(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE soapenv:Envelope SYSTEM \"http://evil.example/x.dtd\">"
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"/>",
        "document type");
    /* UTF-16 would hide "<!DOCTYPE" from a byte scan: not UTF-8, refused up front */
    static const char utf16[] = "\xff\xfe<\0?\0x\0m\0l\0";
    expect_reject_n(utf16, sizeof utf16 - 1, "not a UTF-8 XML document");
}

static void malformed(void **state)
{
    expect_reject("", "empty body");
    expect_reject("   \n ", "empty body");
    expect_reject("hello", "not a UTF-8 XML document");
    expect_reject_n("<a>\0</a>", 8, "not a UTF-8 XML document");
    expect_reject("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">",
                  "malformed XML");
    expect_reject(ENV_OPEN NOTS_OPEN "</soapenv:Body></soapenv:Envelope>", "malformed XML");
    expect_reject(ONE("<sf:Id>1</sf:Id>&undefined;"), "malformed XML");
    /* an element prefix that is never declared */
    expect_reject(MSG(ORG NOTE("04l5g00000Gx7QzAAJ", "Contact", "<zz:Id>x</zz:Id>")),
                  "namespace error");
}

static void structure(void **state)
{
    expect_reject("<Envelope/>", "root element is not Envelope");
    expect_reject("<x:Envelope xmlns:x=\"http://www.w3.org/2003/05/soap-envelope\">"
                  "<x:Body/></x:Envelope>",
                  "root element is not Envelope"); /* SOAP 1.2 */
    expect_reject("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"/>",
                  "Envelope has no Body");
    expect_reject(ENV_OPEN ENV_CLOSE, "exactly one notifications element");
    expect_reject(ENV_OPEN "<notifications xmlns=\"http://soap.sforce.com/2005/09/inbound\">" ORG
                           "</notifications>" ENV_CLOSE,
                  "exactly one notifications element");
    expect_reject(ENV_OPEN "<notifications>" ORG "</notifications>" ENV_CLOSE,
                  "exactly one notifications element");
    expect_reject(MSG(NOTE("04l5g00000Gx7QzAAJ", "Contact", "")), "OrganizationId is missing");
    expect_reject(
        MSG("<OrganizationId xsi:nil=\"true\"/>" NOTE("04l5g00000Gx7QzAAJ", "Contact", "")),
        "OrganizationId is missing");
    expect_reject(MSG("<OrganizationId>00D5g000004XyZ1AAA</OrganizationId>" NOTE(
                      "04l5g00000Gx7QzAAJ", "Contact", "")),
                  "OrganizationId is not a valid Salesforce id");
    expect_reject(MSG(ORG ORG NOTE("04l5g00000Gx7QzAAJ", "Contact", "")),
                  "OrganizationId appears twice");
    expect_reject(MSG(ORG), "no Notification element");
    expect_reject(MSG(ORG "<Notification>" SO_OPEN("Contact") "</sObject></Notification>"),
                  "Notification 1 has no Id");
    expect_reject(MSG(ORG "<Notification><Id>04l5g00000Gx7QzAAJ</Id></Notification>"),
                  "Notification 1 has no sObject");
    expect_reject(MSG(ORG NOTE("not-an-id", "Contact", "")), "Id is not a Salesforce id");
}

static void sobject_rules(void **state)
{
    expect_reject(MSG(ORG "<Notification><Id>04l5g00000Gx7QzAAJ</Id><sObject "
                          "xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>x</sf:Id>"
                          "</sObject></Notification>"),
                  "sObject has no xsi:type");
    /* a prefix bound to another namespace (the partner API's), or not bound at all */
    expect_reject(MSG(ORG
                      "<Notification><Id>04l5g00000Gx7QzAAJ</Id><sObject xsi:type=\"sf:Contact\" "
                      "xmlns:sf=\"urn:sobject.partner.soap.sforce.com\"></sObject>"
                      "</Notification>"),
                  "xsi:type is not in namespace urn:sobject.enterprise.soap.sforce.com");
    expect_reject(MSG(ORG
                      "<Notification><Id>04l5g00000Gx7QzAAJ</Id><sObject xsi:type=\"q:Contact\">"
                      "</sObject></Notification>"),
                  "xsi:type is not in namespace");
    expect_reject(MSG(ORG "<Notification><Id>04l5g00000Gx7QzAAJ</Id><sObject xsi:type=\"Contact\">"
                          "</sObject></Notification>"),
                  "xsi:type is not in namespace");
    expect_reject(MSG(ORG NOTE("04l5g00000Gx7QzAAJ", "Con tact", "")), "not an sObject name");
    expect_reject(ONE("<Id>0035g00000K1tbPAAR</Id>"), "field Id is not in namespace");
    expect_reject(ONE("<sf:Id>a</sf:Id><sf:Id>b</sf:Id>"), "field Id appears twice");
    expect_reject(ONE("<sf:Account><sf:Name>x</sf:Name></sf:Account>"),
                  "field Account has child elements");
}

static void caps(void **state)
{
    /* value cap: 32768 bytes pass, one more does not */
    struct pg_buf b;
    for (int extra = 0; extra <= 1; extra++) {
        pg_buf_init(&b, 1 << 20);
        assert_int_equal(pg_buf_puts(&b, ENV_OPEN NOTS_OPEN ORG
                                     "<Notification><Id>04l5g00000Gx7QzAAJ</Id>" SO_OPEN(
                                         "Contact") "<sf:Description>"),
                         0);
        for (int i = 0; i < PG_SF_OM_MAX_VALUE + extra; i++)
            assert_int_equal(pg_buf_puts(&b, "x"), 0);
        assert_int_equal(pg_buf_puts(&b, "</sf:Description></sObject></Notification>"
                                         "</notifications>" ENV_CLOSE),
                         0);
        if (extra) {
            expect_reject_n(b.data, b.len, "field Description is longer than 32768 bytes");
        } else {
            struct pg_sf_om *om = parse_ok(b.data, b.len);
            assert_int_equal(strlen(field(&om->notifications[0], "Description")),
                             PG_SF_OM_MAX_VALUE);
            pg_sf_om_free(om);
        }
        pg_buf_free(&b);
    }
    /* field count cap: 500 pass, 501 do not */
    for (int extra = 0; extra <= 1; extra++) {
        pg_buf_init(&b, 1 << 20);
        assert_int_equal(
            pg_buf_puts(&b, ENV_OPEN NOTS_OPEN ORG
                        "<Notification><Id>04l5g00000Gx7QzAAJ</Id>" SO_OPEN("Contact")),
            0);
        for (int i = 0; i < PG_SF_OM_MAX_FIELDS + extra; i++)
            assert_int_equal(pg_buf_printf(&b, "<sf:F%d__c>v</sf:F%d__c>", i, i), 0);
        assert_int_equal(pg_buf_puts(&b, "</sObject></Notification></notifications>" ENV_CLOSE), 0);
        if (extra) {
            expect_reject_n(b.data, b.len, "more than 500 fields");
        } else {
            struct pg_sf_om *om = parse_ok(b.data, b.len);
            assert_int_equal(json_object_size(om->notifications[0].fields), 500);
            pg_sf_om_free(om);
        }
        pg_buf_free(&b);
    }
}

/* libxml2 must not write to stderr: capture fd 2 while parsing broken documents. */
static void no_stderr_noise(void **state)
{
    char path[] = "/tmp/pg-om-stderr-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    struct pg_sf_om *om = NULL;
    static const char *const bad[] = {
        "<a><b></a>",
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">",
        ONE("&nope;"),
        MSG(ORG NOTE("04l5g00000Gx7QzAAJ", "Contact", "<zz:Id>x</zz:Id>")),
        "<a xmlns:p=\"rel/uri\"><p:b/></a>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pg_sf_om_parse(bad[i], strlen(bad[i]), &om, why, sizeof why), PG_EINVAL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    assert_int_equal(size, 0);
}

struct worker {
    const char *xml;
    size_t len;
    int failures;
};

static void *parse_many(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 50; i++) {
        struct pg_sf_om *om = NULL;
        char whybuf[128];
        if (pg_sf_om_parse(w->xml, w->len, &om, whybuf, sizeof whybuf) != 0 || om->n != 2)
            w->failures++;
        pg_sf_om_free(om);
        static const char bad[] = "<a><b></a>";
        if (pg_sf_om_parse(bad, sizeof bad - 1, &om, whybuf, sizeof whybuf) != PG_EINVAL)
            w->failures++;
    }
    return NULL;
}

static void concurrent_parses(void **state)
{
    size_t len;
    char *xml = fixture("contact_2.xml", &len);
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){xml, len, 0};
        assert_int_equal(pthread_create(&t[i], NULL, parse_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    free(xml);
}

static const char REFERENCE_ACK[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"\n"
    "    xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
    " <soapenv:Body>\n"
    "  <notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n"
    "   <Ack>true</Ack>\n"
    "  </notificationsResponse>\n"
    " </soapenv:Body>\n"
    "</soapenv:Envelope>\n";

static xmlNode *child(xmlNode *n, const char *ns, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, name) &&
            ((!ns && !c->ns) || (ns && c->ns && !strcmp((const char *)c->ns->href, ns))))
            return c;
    return NULL;
}

static void ack(void **state)
{
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_sf_om_ack(&b), 0);
    assert_string_equal(b.data, REFERENCE_ACK);
    xmlDoc *doc = xmlReadMemory(b.data, (int)b.len, NULL, NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    xmlNode *env = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)env->name, "Envelope");
    assert_string_equal((const char *)env->ns->href, PG_SF_OM_NS_SOAPENV);
    xmlNode *resp = child(child(env, PG_SF_OM_NS_SOAPENV, "Body"), PG_SF_OM_NS_OUTBOUND,
                          "notificationsResponse");
    assert_non_null(resp);
    xmlNode *a = child(resp, PG_SF_OM_NS_OUTBOUND, "Ack");
    assert_non_null(a);
    xmlChar *v = xmlNodeGetContent(a);
    assert_string_equal((const char *)v, "true");
    xmlFree(v);
    xmlFreeDoc(doc);
    pg_buf_free(&b);
    /* the buffer cap is honoured */
    pg_buf_init(&b, 16);
    assert_int_equal(pg_sf_om_ack(&b), PG_ETOOLARGE);
    pg_buf_free(&b);
}

static char *fault_string_of(const char *xml, size_t len, char **code)
{
    xmlDoc *doc = xmlReadMemory(xml, (int)len, NULL, NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    xmlNode *env = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)env->ns->href, PG_SF_OM_NS_SOAPENV);
    xmlNode *f = child(child(env, PG_SF_OM_NS_SOAPENV, "Body"), PG_SF_OM_NS_SOAPENV, "Fault");
    assert_non_null(f);
    assert_non_null(child(f, NULL, "detail"));
    xmlChar *c = xmlNodeGetContent(child(f, NULL, "faultcode"));
    xmlChar *s = xmlNodeGetContent(child(f, NULL, "faultstring"));
    *code = strdup((const char *)c);
    char *out = strdup((const char *)s);
    xmlFree(c);
    xmlFree(s);
    xmlFreeDoc(doc);
    return out;
}

static void fault(void **state)
{
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_sf_om_fault(&b, "soapenv:Client", "bad <&> \"q\" 'a'"), 0);
    assert_non_null(strstr(b.data, "<faultstring>bad &lt;&amp;&gt; &quot;q&quot; &apos;a&apos;"
                                   "</faultstring>"));
    char *code = NULL;
    char *s = fault_string_of(b.data, b.len, &code);
    assert_string_equal(code, "soapenv:Client");
    assert_string_equal(s, "bad <&> \"q\" 'a'");
    free(code);
    free(s);

    /* control characters and broken UTF-8 cannot travel in XML 1.0: replaced */
    pg_buf_reset(&b);
    assert_int_equal(pg_sf_om_fault(&b, "soapenv:Server",
                                    "a\x01"
                                    "b\xff"
                                    "c\xc3\xa9\td"),
                     0);
    s = fault_string_of(b.data, b.len, &code);
    assert_string_equal(code, "soapenv:Server");
    assert_string_equal(s, "a?b?c\xc3\xa9\td");
    free(code);
    free(s);

    pg_buf_reset(&b);
    assert_int_equal(pg_sf_om_fault(&b, "soapenv:Receiver", "x"), PG_EINVAL);
    assert_int_equal(pg_sf_om_fault(&b, NULL, "x"), PG_EINVAL);
    pg_buf_free(&b);
}

/* A rejection's reason goes into a fault and back out intact. */
static void reason_into_fault(void **state)
{
    expect_reject(ONE("<sf:Id>a</sf:Id><sf:Id>b</sf:Id>"), "appears twice");
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_sf_om_fault(&b, "soapenv:Client", why), 0);
    char *code = NULL;
    char *s = fault_string_of(b.data, b.len, &code);
    assert_string_equal(s, why);
    free(code);
    free(s);
    pg_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_sample),
        cmocka_unit_test(account_variants),
        cmocka_unit_test(nil_and_empty),
        cmocka_unit_test(counts),
        cmocka_unit_test(doctype_attacks),
        cmocka_unit_test(malformed),
        cmocka_unit_test(structure),
        cmocka_unit_test(sobject_rules),
        cmocka_unit_test(caps),
        cmocka_unit_test(no_stderr_noise),
        cmocka_unit_test(concurrent_parses),
        cmocka_unit_test(ack),
        cmocka_unit_test(fault),
        cmocka_unit_test(reason_into_fault),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
