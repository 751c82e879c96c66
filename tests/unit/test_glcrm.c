/* Gift & Loyalty CRM: envelope (escaping, CRC32 as in3), CRMMessage builders, reply parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "micros/glcrm.h"

#define GETCUST_GW                                                                                 \
    "<CRMMessage language=\"en_US\" currency=\"USD\"><RequestSource name=\"gw\" version=\"1\"/>"   \
    "<RequestCode>GetCustomer</RequestCode><QueryCriteria conditions=\"primaryposref = ?\">"       \
    "<Condition name=\"primaryposref\" value=\"2200003\"/></QueryCriteria><ResultSetDefinition>"   \
    "<Column>firstname</Column><Column>lastname</Column></ResultSetDefinition></CRMMessage>"

static struct pg_buf b;

static int setup(void **state)
{
    pg_buf_init(&b, 1 << 20);
    return 0;
}

static int teardown(void **state)
{
    pg_buf_free(&b);
    return 0;
}

/* Text of the first element named name in an XML document (caller frees with xmlFree). */
static char *xml_text(const char *doc_text, const char *name)
{
    xmlDocPtr d = xmlReadMemory(doc_text, (int)strlen(doc_text), NULL, NULL, XML_PARSE_NONET);
    assert_non_null(d);
    xmlNodePtr stack[64];
    int sp = 0;
    stack[sp++] = xmlDocGetRootElement(d);
    char *out = NULL;
    while (sp && !out) {
        xmlNodePtr n = stack[--sp];
        for (; n && !out; n = n->next) {
            if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
                out = (char *)xmlNodeGetContent(n);
            else if (n->children && sp < 64)
                stack[sp++] = n->children;
        }
    }
    xmlFreeDoc(d);
    assert_non_null(out);
    return out;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\"\ndoes not contain\n\"%s\"", hay, needle);
}

/* ---- envelope ---- */

static void get_customer_builds_reference_shape(void **state)
{
    const char *cols[] = {"firstname", "lastname"};
    assert_int_equal(pg_gl_build_get_customer(&b, "gw", "2200003", cols, 2), PG_OK);
    assert_string_equal(b.data, GETCUST_GW);
}

/* in3 = zlib CRC32 of in0's unescaped UTF-8 text as "%08X", like Bugfree.OracleHospitality's
 * Crc32.ToPaddedCrc32String (crc.ToString("X8")). Expected values were computed independently:
 *   python3 -c 'import zlib; print("%08X" % zlib.crc32(b"..."))' */
static void envelope_shape_escaping_crc(void **state)
{
    assert_int_equal(pg_gl_envelope(&b, GETCUST_GW, "me&you", "p<w>\"'"), PG_OK);
    assert_string_equal(
        b.data, "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "
                "xmlns:ejb=\"ejb.storedValue.micros.com\"><soapenv:Body><ejb:processRequest>"
                "<in0>&lt;CRMMessage language=&quot;en_US&quot; currency=&quot;USD&quot;&gt;"
                "&lt;RequestSource name=&quot;gw&quot; version=&quot;1&quot;/&gt;"
                "&lt;RequestCode&gt;GetCustomer&lt;/RequestCode&gt;&lt;QueryCriteria "
                "conditions=&quot;primaryposref = ?&quot;&gt;&lt;Condition "
                "name=&quot;primaryposref&quot; value=&quot;2200003&quot;/&gt;&lt;/QueryCriteria"
                "&gt;&lt;ResultSetDefinition&gt;&lt;Column&gt;firstname&lt;/Column&gt;&lt;Column"
                "&gt;lastname&lt;/Column&gt;&lt;/ResultSetDefinition&gt;&lt;/CRMMessage&gt;</in0>"
                "<in1>me&amp;you</in1><in2>p&lt;w&gt;&quot;&apos;</in2><in3>F0FC38ED</in3>"
                "</ejb:processRequest></soapenv:Body></soapenv:Envelope>");
    /* What a SOAP server reads back is exactly the text the CRC covered. */
    char *in0 = xml_text(b.data, "in0"), *in2 = xml_text(b.data, "in2");
    assert_string_equal(in0, GETCUST_GW);
    assert_string_equal(in2, "p<w>\"'");
    xmlFree(in0);
    xmlFree(in2);
}

static void envelope_crc_is_zero_padded(void **state)
{
    assert_int_equal(pg_gl_envelope(&b, "<CRMMessage n=\"0\"/>", "l", "p"), PG_OK);
    assert_contains(b.data, "<in3>0162AA88</in3>");
}

static void envelope_crc_over_utf8(void **state)
{
    const char *in0 = "<CRMMessage><Col>Zo\xc3\xab & \"Bob\"</Col></CRMMessage>";
    assert_int_equal(pg_gl_envelope(&b, in0, "l", "p"), PG_OK);
    assert_contains(b.data, "<in0>&lt;CRMMessage&gt;&lt;Col&gt;Zo\xc3\xab &amp; &quot;Bob&quot;"
                            "&lt;/Col&gt;&lt;/CRMMessage&gt;</in0>");
    assert_contains(b.data, "<in3>5F46F684</in3>");
    /* CR/LF/TAB travel as character references so the host's CRC input is unchanged. */
    pg_buf_reset(&b);
    assert_int_equal(pg_gl_envelope(&b, "<a>1\r\n\t2</a>", "l", "p"), PG_OK);
    assert_contains(b.data, "&lt;a&gt;1&#13;&#10;&#9;2&lt;/a&gt;");
    char *back = xml_text(b.data, "in0");
    assert_string_equal(back, "<a>1\r\n\t2</a>");
    xmlFree(back);
}

static void envelope_rejects_bad_input(void **state)
{
    assert_int_equal(pg_gl_envelope(&b, "<a>\x01</a>", "l", "p"), PG_EINVAL);
    assert_int_equal(pg_gl_envelope(&b, "<a>\xc3(</a>", "l", "p"), PG_EINVAL);
    assert_int_equal(pg_gl_envelope(&b, "<a>\xed\xa0\x80</a>", "l", "p"), PG_EINVAL); /* D800 */
    assert_int_equal(pg_gl_envelope(&b, "<a>\xc0\xaf</a>", "l", "p"), PG_EINVAL);     /* overlong */
    assert_int_equal(pg_gl_envelope(&b, "", "l", "p"), PG_EINVAL);
    assert_int_equal(pg_gl_envelope(&b, NULL, "l", "p"), PG_EINVAL);
    assert_int_equal(pg_gl_envelope(&b, "<a/>", NULL, "p"), PG_EINVAL);
    struct pg_buf small;
    pg_buf_init(&small, 64);
    assert_int_equal(pg_gl_envelope(&small, GETCUST_GW, "l", "p"), PG_ETOOLARGE);
    pg_buf_free(&small);
}

/* ---- builders ---- */

static void get_customer_escapes(void **state)
{
    const char *cols[] = {"a&b", "<c>"};
    assert_int_equal(pg_gl_build_get_customer(&b, "gw\"x", "1<&>\"'2", cols, 2), PG_OK);
    assert_contains(b.data, "<RequestSource name=\"gw&quot;x\" version=\"1\"/>");
    assert_contains(b.data, "value=\"1&lt;&amp;&gt;&quot;&apos;2\"/>");
    assert_contains(b.data, "<Column>a&amp;b</Column><Column>&lt;c&gt;</Column>");
    pg_buf_reset(&b);
    assert_int_equal(pg_gl_build_get_customer(&b, "gw", "1", cols, 0), PG_EINVAL);
    assert_int_equal(pg_gl_build_get_customer(&b, "gw", "", cols, 1), PG_EINVAL);
    assert_int_equal(pg_gl_build_get_customer(&b, "", "1", cols, 1), PG_EINVAL);
}

static void set_customer_update(void **state)
{
    struct pg_gl_col cols[] = {
        {"firstname", "Jane"}, {"useralpha1", "<G&\"'>"}, {"middlename", NULL}};
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", "27350", "ignored", cols, 3), PG_OK);
    assert_string_equal(
        b.data, "<CRMMessage language=\"en_US\" currency=\"USD\"><RequestSource name=\"gw\" "
                "version=\"1\"/><RequestCode>SetCustomer</RequestCode><DataSet>"
                "<DataSetColumns><DSColumn name=\"firstname\"/><DSColumn "
                "name=\"useralpha1\"/><DSColumn name=\"middlename\"/></DataSetColumns>"
                "<Rows><Row id=\"27350\"><Col>Jane</Col><Col>&lt;G&amp;&quot;&apos;&gt;"
                "</Col><Col/></Row></Rows></DataSet></CRMMessage>");
}

static void set_customer_create(void **state)
{
    struct pg_gl_col cols[] = {{"firstname", "Zo\xc3\xab"}};
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", NULL, "22&3", cols, 1), PG_OK);
    assert_contains(b.data, "<DataSetColumns><DSColumn name=\"primaryposref\"/><DSColumn "
                            "name=\"sortvalue\"/><DSColumn name=\"firstname\"/></DataSetColumns>"
                            "<Rows><Row><Col>22&amp;3</Col><Col>1</Col><Col>Zo\xc3\xab</Col>"
                            "</Row></Rows>");
    pg_buf_reset(&b);
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", NULL, "2200003", NULL, 0), PG_OK);
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", NULL, NULL, cols, 1), PG_EINVAL);
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", "12a", NULL, cols, 1), PG_EINVAL);
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", "", NULL, cols, 1), PG_EINVAL);
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", "1\" x=\"", NULL, cols, 1), PG_EINVAL);
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", "12", NULL, cols, 0), PG_EINVAL);
    struct pg_gl_col bad[] = {{"firstname", "a\x02"}};
    pg_buf_reset(&b);
    assert_int_equal(pg_gl_build_set_customer(&b, "gw", "12", NULL, bad, 1), PG_EINVAL);
}

/* ---- replies ---- */

/* A processRequest response as the host sends it: inner XML escaped into <return>. */
static char *wrap(const char *inner)
{
    struct pg_buf w;
    pg_buf_init(&w, 1 << 20);
    assert_int_equal(pg_buf_puts(&w, "<?xml version='1.0' encoding='UTF-8'?><S:Envelope "
                                     "xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                                     "<S:Body><ns2:processRequestResponse "
                                     "xmlns:ns2=\"ejb.storedValue.micros.com\"><return>"),
                     0);
    for (const char *p = inner; *p; p++) {
        const char *r = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : NULL;
        assert_int_equal(r ? pg_buf_puts(&w, r) : pg_buf_append(&w, p, 1), 0);
    }
    assert_int_equal(pg_buf_puts(&w, "</return></ns2:processRequestResponse></S:Body>"
                                     "</S:Envelope>"),
                     0);
    return pg_buf_steal(&w);
}

static int parse_inner(const char *inner, struct pg_gl_result *res)
{
    char *env = wrap(inner);
    int rc = pg_gl_parse_response(env, strlen(env), res);
    free(env);
    return rc;
}

static void parse_set_customer_approved(void **state)
{
    struct pg_gl_result r;
    assert_int_equal(parse_inner("<?xml version=\"1.0\" encoding=\"UTF-8\"?><CRMMessage "
                                 "language=\"en_US\" currency=\"USD\" isTrustedSAT=\"false\" "
                                 "hostversion=\"1.00\"><RequestCode>SetCustomer</RequestCode>"
                                 "<ResponseCode>A</ResponseCode><Row id=\"456663\"/></CRMMessage>",
                                 &r),
                     PG_OK);
    assert_int_equal(r.response_code, 'A');
    assert_string_equal(r.row_id, "456663");
    assert_string_equal(r.host_code, "");
    assert_int_equal(r.rows, 0);
    assert_null(r.columns);
    pg_gl_result_free(&r);
}

static void parse_get_customer_rows(void **state)
{
    struct pg_gl_result r;
    assert_int_equal(
        parse_inner("<CRMMessage language=\"en_US\" currency=\"USD\"><RequestCode>GetCustomer"
                    "</RequestCode><ResponseCode>A</ResponseCode><ResultSet><ResultSetMetaData>"
                    "<RSColumn name=\"firstname\" type=\"string\" nullable=\"true\"/>"
                    "<RSColumn name=\"lastname\" type=\"string\" nullable=\"true\"/>"
                    "<RSColumn name=\"useralpha1\" type=\"string\" nullable=\"true\"/>"
                    "</ResultSetMetaData><Rows><Row id=\"27350\"><Col>George</Col>"
                    "<Col>Wash &amp; ton \xc3\xab</Col><Col/></Row><Row id=\"27351\"><Col>A</Col>"
                    "<Col>B</Col><Col>C</Col></Row></Rows></ResultSet></CRMMessage>",
                    &r),
        PG_OK);
    assert_int_equal(r.response_code, 'A');
    assert_int_equal(r.rows, 2);
    assert_string_equal(r.row_id, "27350");
    assert_non_null(r.columns);
    assert_int_equal(json_object_size(r.columns), 3);
    assert_string_equal(json_string_value(json_object_get(r.columns, "firstname")), "George");
    assert_string_equal(json_string_value(json_object_get(r.columns, "lastname")),
                        "Wash & ton \xc3\xab");
    assert_string_equal(json_string_value(json_object_get(r.columns, "useralpha1")), "");
    pg_gl_result_free(&r);
    assert_null(r.columns);
}

static void parse_get_customer_no_rows(void **state)
{
    struct pg_gl_result r;
    assert_int_equal(parse_inner("<CRMMessage><RequestCode>GetCustomer</RequestCode><ResponseCode>"
                                 "A</ResponseCode><ResultSet><ResultSetMetaData><RSColumn "
                                 "name=\"firstname\"/></ResultSetMetaData><Rows/></ResultSet>"
                                 "</CRMMessage>",
                                 &r),
                     PG_OK);
    assert_int_equal(r.response_code, 'A');
    assert_int_equal(r.rows, 0);
    assert_string_equal(r.row_id, "");
    assert_null(r.columns);
    pg_gl_result_free(&r);
}

static void parse_more_cols_than_metadata(void **state)
{
    struct pg_gl_result r;
    assert_int_equal(parse_inner("<CRMMessage><ResponseCode>A</ResponseCode><ResultSet>"
                                 "<ResultSetMetaData><RSColumn name=\"a\"/></ResultSetMetaData>"
                                 "<Rows><Row id=\"1\"><Col>x</Col><Col>y</Col></Row></Rows>"
                                 "</ResultSet></CRMMessage>",
                                 &r),
                     PG_EPROTO);
    assert_null(r.columns);
    pg_gl_result_free(&r);
}

static void parse_declined(void **state)
{
    struct pg_gl_result r;
    assert_int_equal(parse_inner("<CRMMessage><RequestCode>SetCustomer</RequestCode>"
                                 "<ResponseCode hostCode=\"70\">D</ResponseCode><DisplayMessage>"
                                 "SetRollbackException: row 27350</DisplayMessage></CRMMessage>",
                                 &r),
                     PG_OK);
    assert_int_equal(r.response_code, 'D');
    assert_string_equal(r.host_code, "70");
    assert_string_equal(r.message, "SetRollbackException: row 27350");
    pg_gl_result_free(&r);
}

static void parse_error(void **state)
{
    struct pg_gl_result r;
    assert_int_equal(parse_inner("<CRMMessage><RequestCode>SetCustomer</RequestCode><ResponseCode>"
                                 "E</ResponseCode><Error code=\"1\">Invalid column: foo</Error>"
                                 "</CRMMessage>",
                                 &r),
                     PG_OK);
    assert_int_equal(r.response_code, 'E');
    assert_string_equal(r.error_code, "1");
    assert_string_equal(r.message, "Invalid column: foo");
    pg_gl_result_free(&r);
}

static void parse_soap_fault(void **state)
{
    const char *f = "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>"
                    "<S:Fault><faultcode>S:Server</faultcode><faultstring>Login failed for "
                    "user</faultstring></S:Fault></S:Body></S:Envelope>";
    struct pg_gl_result r;
    assert_int_equal(pg_gl_parse_response(f, strlen(f), &r), PG_EPROTO);
    assert_contains(r.message, "Login failed for user");
    assert_int_equal(r.response_code, 0);
    pg_gl_result_free(&r);
}

static void parse_rejects_doctype(void **state)
{
    const char *xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE S:Envelope [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>"
        "<ns2:processRequestResponse xmlns:ns2=\"ejb.storedValue.micros.com\"><return>&x;"
        "</return></ns2:processRequestResponse></S:Body></S:Envelope>";
    struct pg_gl_result r;
    assert_int_equal(pg_gl_parse_response(xxe, strlen(xxe), &r), PG_EPROTO);
    assert_contains(r.message, "document type");
    pg_gl_result_free(&r);
    /* ... and inside <return> as well. */
    assert_int_equal(parse_inner("<!DOCTYPE CRMMessage [<!ENTITY a \"aaaa\">]><CRMMessage>"
                                 "<ResponseCode>A</ResponseCode></CRMMessage>",
                                 &r),
                     PG_EPROTO);
    assert_contains(r.message, "document type");
    pg_gl_result_free(&r);
}

static void parse_rejects_garbage(void **state)
{
    struct pg_gl_result r;
    const char *bad[] = {
        "not xml at all",
        "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>",
        "<html><body>502 Bad Gateway</body></html>",
        "<Envelope><Body><processRequestResponse><return>&lt;CRMMessage/&gt;</return>"
        "</processRequestResponse></Body></Envelope>", /* not the SOAP namespace */
        "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body/></S:Envelope>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(pg_gl_parse_response(bad[i], strlen(bad[i]), &r), PG_EPROTO);
        assert_true(r.message[0] != '\0');
        pg_gl_result_free(&r);
    }
    assert_int_equal(pg_gl_parse_response("", 0, &r), PG_EPROTO);
    assert_int_equal(parse_inner("hello", &r), PG_EPROTO);
    assert_contains(r.message, "return");
    assert_int_equal(parse_inner("<Other><ResponseCode>A</ResponseCode></Other>", &r), PG_EPROTO);
    assert_int_equal(parse_inner("", &r), PG_EPROTO);
}

/* A reply without a ResponseCode parses (the caller classifies it as a failure). */
static void parse_without_response_code(void **state)
{
    struct pg_gl_result r;
    assert_int_equal(parse_inner("<CRMMessage><RequestCode>X</RequestCode></CRMMessage>", &r),
                     PG_OK);
    assert_int_equal(r.response_code, 0);
    pg_gl_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_customer_builds_reference_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(envelope_shape_escaping_crc, setup, teardown),
        cmocka_unit_test_setup_teardown(envelope_crc_is_zero_padded, setup, teardown),
        cmocka_unit_test_setup_teardown(envelope_crc_over_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(envelope_rejects_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(get_customer_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(set_customer_update, setup, teardown),
        cmocka_unit_test_setup_teardown(set_customer_create, setup, teardown),
        cmocka_unit_test(parse_set_customer_approved),
        cmocka_unit_test(parse_get_customer_rows),
        cmocka_unit_test(parse_get_customer_no_rows),
        cmocka_unit_test(parse_more_cols_than_metadata),
        cmocka_unit_test(parse_declined),
        cmocka_unit_test(parse_error),
        cmocka_unit_test(parse_soap_fault),
        cmocka_unit_test(parse_rejects_doctype),
        cmocka_unit_test(parse_rejects_garbage),
        cmocka_unit_test(parse_without_response_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
