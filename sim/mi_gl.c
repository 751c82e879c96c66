/*
 * The MICROS simulator's Oracle Hospitality Gift & Loyalty host: `processRequest` at
 * POST /ws/services/StoredValueService (SOAP 1.1) carrying a CRMMessage (micros-wire.md §3.1-3.2).
 *
 * Verified against the working reference client (ronnieholm/Bugfree.OracleHospitality):
 *   - in0 is the CRMMessage text, entity-escaped inside the envelope; in1 logon, in2 password;
 *   - in3 is the CRC-32 (IEEE, as zlib's crc32()) of in0's UTF-8 bytes as the host sees them after
 *     un-escaping, formatted "X8": 8 upper-case hex digits, zero-padded
 * (Crc32.ToPaddedCrc32String); a mismatch is ResponseCode D "Request failed integrity check";
 *   - the answer is HTTP 200 S:Envelope/S:Body/ns2:processRequestResponse/return with the escaped
 *     response CRMMessage; business errors are ResponseCode D + DisplayMessage or E + <Error code>.
 * Choices where the reference is silent are marked [I] and listed in sim/README.md.
 *
 * XML is parsed with libxml2 without network access or entity substitution, and any document
 * with a DOCTYPE is refused outright (the envelope and the inner CRMMessage alike).
 */
#include "sim/sim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <zlib.h>

#include "server/util.h"

#define NS_SOAP "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_EJB "ejb.storedValue.micros.com"
#define FIRST_ROW_ID 27350

/* The customer columns and their GetColumnList types, as the live host lists them (80). */
static const struct gl_col {
    const char *name, *type;
} gl_cols[] = {
    {"PREFIX", "A10"},
    {"PARENTCACUSTOMERID", "N19"},
    {"MOBILEPHONENUMBER", "A25"},
    {"MEETINGPLANNER", "N1"},
    {"USERIDNUMBER", "A50"},
    {"LATITUDE", "A32"},
    {"MIDDLENAME", "A32"},
    {"SIGNUPDATE", "Timestamp"},
    {"EMAILCHNLDELIVERABLE", "N1"},
    {"PRIMARYPOSREFSTATUS", "N5"},
    {"LASTTRANSACTIONBUSINESSDATE", "Timestamp"},
    {"MAILCHNLDELIVERABLE", "N1"},
    {"MISCFIELD1", "A50"},
    {"ANNIVERSARYDATE", "Timestamp"},
    {"DISTANCE", "Decimal"},
    {"SOURCECODE", "A50"},
    {"LASTUPDATEDBY", "A32"},
    {"MISCFIELD4", "A50"},
    {"SUFFIX", "A10"},
    {"MISCFIELD3", "A50"},
    {"MISCFIELD2", "A50"},
    {"SIGNUPSOURCEID", "N10"},
    {"WORKPHONENUMBER", "A25"},
    {"REISSUENEWCUSTKITDATE", "Timestamp"},
    {"SORTVALUE", "N19"},
    {"STOREEXTREF", "A32"},
    {"PASSWORDHINT", "A50"},
    {"DATASOURCEID", "N10"},
    {"LASTUPDATED", "Timestamp"},
    {"OTHERCHNLDELIVERABLE", "N1"},
    {"ISCLEANED", "N1"},
    {"USERNAME", "A50"},
    {"CITY", "A50"},
    {"FAXNUMBER", "A25"},
    {"ACTIVE", "N1"},
    {"EMAILCHNLSTATUS", "N5"},
    {"LASTNAME", "A50"},
    {"STATE", "A32"},
    {"USERNUMERIC1", "Decimal"},
    {"HOMEPHONECHNLSTATUS", "N5"},
    {"ADDRESSLINE1", "A76"},
    {"ADDRESSLINE2", "A76"},
    {"REPLACECARDDATE", "Timestamp"},
    {"PARENTRELATIONSHIP", "N10"},
    {"CACUSTOMERID", "N19"},
    {"CAMPAIGN", "A50"},
    {"FIRSTTRANSACTIONBUSINESSDATE", "Timestamp"},
    {"REISSUENEWCUSTKITCOUNTER", "N10"},
    {"OTHERPHONENUMBER", "A16"},
    {"FIRSTNAME", "A50"},
    {"POSTALCODE", "A16"},
    {"COUNTY", "A50"},
    {"HASHCODE", "N10"},
    {"OTHERCHNLSTATUS", "N5"},
    {"ISORGANIZATION", "N1"},
    {"CONCIERGE", "N1"},
    {"KID", "N19"},
    {"USERNUMERIC2", "Decimal"},
    {"SIGNUPLOCATIONID", "N19"},
    {"PASSWORD", "A150"},
    {"REPLACECARDCOUNTER", "N10"},
    {"EMAILADDRESS", "A50"},
    {"WELCOMEEMAILSENT", "N1"},
    {"BIRTHDAY", "Timestamp"},
    {"COUNTRY", "A50"},
    {"CREATEDDATE", "Timestamp"},
    {"USEFORTESTEMAIL", "N1"},
    {"HOMEPHONECHNLDELIVERABLE", "N1"},
    {"PRIMARYPOSREF", "A32"},
    {"HOMEPHONENUMBER", "A25"},
    {"BIRTHMONTH", "N3"},
    {"GENDER", "A1"},
    {"ISDEDUPED", "N1"},
    {"LONGITUDE", "A32"},
    {"BIRTHDAYOFMONTH", "N3"},
    {"USERALPHA1", "A50"},
    {"MAILCHNLSTATUS", "N5"},
    {"USERALPHA2", "A50"},
    {"ORGANIZATIONNAME", "A50"},
    {"PMACODE", "A10"},
};
#define GL_NCOLS (sizeof gl_cols / sizeof gl_cols[0])

static const struct gl_col *col_find(const char *name)
{
    for (size_t i = 0; i < GL_NCOLS; i++)
        if (strcasecmp(gl_cols[i].name, name) == 0)
            return &gl_cols[i];
    return NULL;
}

/* GetCustomer's RSColumn types: N1 boolean, N19 long, N3/N5 short, N10 int, Decimal double. */
static const char *col_kind(const struct gl_col *c)
{
    if (c->type[0] == 'A')
        return "string";
    if (strcmp(c->type, "Timestamp") == 0)
        return "timestamp";
    if (strcmp(c->type, "Decimal") == 0)
        return "double";
    if (strcmp(c->type, "N1") == 0)
        return "boolean";
    if (strcmp(c->type, "N19") == 0)
        return "long";
    if (strcmp(c->type, "N10") == 0)
        return "int";
    return "short";
}

/* 1 when v fits the column type (An: at most n characters; Nn: an integer of at most n digits). */
static int col_value_ok(const struct gl_col *c, const char *v)
{
    if (c->type[0] == 'A') {
        size_t chars = 0;
        for (const unsigned char *p = (const unsigned char *)v; *p; p++)
            chars += (*p & 0xC0) != 0x80;
        return chars <= (size_t)atoi(c->type + 1);
    }
    if (strcmp(c->type, "N1") == 0)
        return strcmp(v, "0") == 0 || strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ||
               strcmp(v, "false") == 0;
    if (c->type[0] == 'N') {
        const char *p = v + (v[0] == '-');
        size_t n = strlen(p);
        return n > 0 && n <= (size_t)atoi(c->type + 1) && strspn(p, "0123456789") == n;
    }
    if (strcmp(c->type, "Decimal") == 0) {
        char *end;
        strtod(v, &end);
        return v[0] && *end == '\0';
    }
    return v[0] != '\0'; /* Timestamp: "2019-10-08 11:11:01.8" and the like */
}

static void lower(char *dst, const char *src, size_t n)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* ---- seed ---- */

json_t *pg_sim_gl_customers_from_contacts(json_t *contacts)
{
    json_t *arr = json_array();
    size_t i;
    json_t *c;
    int id = FIRST_ROW_ID;
    json_array_foreach(contacts, i, c)
    {
        const char *ly = json_string_value(json_object_get(c, "Loyalty_Id__c"));
        if (!ly)
            continue;
        json_t *cols = json_pack("{s:s,s:s}", "primaryposref", ly, "active", "1");
        static const char *const map[][2] = {
            {"FirstName", "firstname"},
            {"LastName", "lastname"},
            {"Email", "emailaddress"},
            {"Phone_E164__c", "mobilephonenumber"},
            {"Loyalty_Tier__c", "useralpha1"},
            {"Preferences__c", "miscfield1"},
            {"Loyalty_Points__c", "usernumeric1"},
        };
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
            json_t *v = json_object_get(c, map[k][0]);
            if (json_is_string(v))
                json_object_set(cols, map[k][1], v);
            else if (json_is_integer(v))
                json_object_set_new(cols, map[k][1],
                                    json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v)));
        }
        json_array_append_new(arr, json_pack("{s:i,s:o,s:i,s:[]}", "id", id++, "columns", cols,
                                             "set_count", 0, "history"));
    }
    return arr;
}

int pg_sim_gl_check_customers(json_t *customers, char *err, size_t errsz)
{
    size_t i, j;
    json_t *c, *d;
    json_array_foreach(customers, i, c)
    {
        json_t *id = json_object_get(c, "id"), *cols = json_object_get(c, "columns");
        if (!json_is_integer(id) || json_integer_value(id) <= 0 || !json_is_object(cols)) {
            snprintf(err, errsz, "customers[%zu]: needs a positive integer id and columns", i);
            return PG_ECONFIG;
        }
        const char *k;
        json_t *v;
        json_object_foreach(cols, k, v)
        {
            const struct gl_col *col = col_find(k);
            if (!col || !json_is_string(v) || !col_value_ok(col, json_string_value(v))) {
                snprintf(err, errsz,
                         "customers[%zu]: column \"%s\" is unknown or its value does "
                         "not fit its type",
                         i, k);
                return PG_ECONFIG;
            }
        }
        json_array_foreach(customers, j, d)
        {
            if (j < i && json_equal(id, json_object_get(d, "id"))) {
                snprintf(err, errsz, "customers[%zu]: duplicate id", i);
                return PG_ECONFIG;
            }
        }
        if (!json_object_get(c, "set_count"))
            json_object_set_new(c, "set_count", json_integer(0));
        if (!json_object_get(c, "history"))
            json_object_set_new(c, "history", json_array());
    }
    return PG_OK;
}

/* ---- XML ---- */

/* Parse without network, entities or DTD loading; a DOCTYPE anywhere is refused. */
static xmlDocPtr xml_parse(const char *text, size_t len, const char **why)
{
    if (memmem(text, len, "<!DOCTYPE", 9) || memmem(text, len, "<!doctype", 9)) {
        *why = "DOCTYPE is not allowed";
        return NULL;
    }
    xmlParserCtxtPtr ctx = xmlNewParserCtxt();
    if (!ctx) {
        *why = "out of memory";
        return NULL;
    }
    xmlDocPtr doc = xmlCtxtReadMemory(ctx, text, (int)len, NULL, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlFreeParserCtxt(ctx);
    if (!doc) {
        *why = "malformed XML";
        return NULL;
    }
    if (doc->intSubset || doc->extSubset) {
        xmlFreeDoc(doc);
        *why = "DOCTYPE is not allowed";
        return NULL;
    }
    return doc;
}

static int name_is(xmlNodePtr n, const char *ns, const char *name)
{
    if (!n || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, name) != 0)
        return 0;
    if (!ns)
        return n->ns == NULL || n->ns->href == NULL || n->ns->href[0] == '\0';
    return n->ns && n->ns->href && strcmp((const char *)n->ns->href, ns) == 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *ns, const char *name)
{
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        if (name_is(c, ns, name))
            return c;
    return NULL;
}

static size_t count_children(xmlNodePtr parent, const char *name)
{
    size_t n = 0;
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        n += name_is(c, NULL, name);
    return n;
}

/* Element text (malloc'd, "" for an empty element) or NULL when the element is absent. */
static char *text_of(xmlNodePtr n)
{
    if (!n)
        return NULL;
    xmlChar *t = xmlNodeGetContent(n);
    char *s = strdup(t ? (const char *)t : "");
    xmlFree(t);
    return s;
}

static char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    char *s = v ? strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

/* ---- replies ---- */

static void soap_fault(struct pg_sim_reply *out, const char *code, const char *msg)
{
    struct pg_buf b;
    pg_buf_init(&b, 64 * 1024);
    int rc = pg_buf_printf(&b,
                           "<?xml version='1.0' encoding='UTF-8'?><S:Envelope xmlns:S=\"" NS_SOAP
                           "\"><S:Body><S:Fault><faultcode>S:%s</faultcode><faultstring>",
                           code);
    rc = rc || pg_sim_xml_escape(&b, msg) ||
         pg_buf_puts(&b, "</faultstring></S:Fault></S:Body></S:Envelope>");
    if (rc)
        pg_sim_reply_text(out, 500, "text/plain", "out of memory", 13);
    else
        pg_sim_reply_text(out, 500, "text/xml;charset=utf-8", b.data, b.len);
    pg_buf_free(&b);
}

/* The response CRMMessage under construction: header written by crm_begin, ended by crm_send. */
struct crm {
    struct pg_buf b;
    char language[32], currency[16], code[64];
    int rc;
};

static void crm_begin(struct crm *m, const char *response_code, int trusted)
{
    pg_buf_init(&m->b, 8 * 1024 * 1024);
    m->rc = pg_buf_puts(&m->b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CRMMessage language=\"");
    m->rc = m->rc || pg_sim_xml_escape(&m->b, m->language) ||
            pg_buf_puts(&m->b, "\" currency=\"") || pg_sim_xml_escape(&m->b, m->currency) ||
            pg_buf_printf(&m->b, "\"%s hostversion=\"1.00\"><RequestCode>",
                          trusted ? " isTrustedSAT=\"false\"" : "") ||
            pg_sim_xml_escape(&m->b, m->code) || pg_buf_puts(&m->b, "</RequestCode>");
    if (response_code)
        m->rc = m->rc || pg_buf_printf(&m->b, "<ResponseCode>%s</ResponseCode>", response_code);
}

static void crm_send(struct crm *m, struct pg_sim_reply *out)
{
    struct pg_buf env;
    pg_buf_init(&env, 16 * 1024 * 1024);
    int rc =
        m->rc || pg_buf_puts(&m->b, "</CRMMessage>") ||
        pg_buf_puts(&env,
                    "<?xml version='1.0' encoding='UTF-8'?><S:Envelope xmlns:S=\"" NS_SOAP
                    "\"><S:Body><ns2:processRequestResponse xmlns:ns2=\"" NS_EJB "\"><return>") ||
        pg_sim_xml_escape(&env, m->b.data) ||
        pg_buf_puts(&env, "</return></ns2:processRequestResponse></S:Body></S:Envelope>");
    if (rc)
        soap_fault(out, "Server", "response too large");
    else
        pg_sim_reply_text(out, 200, "text/xml;charset=utf-8", env.data, env.len);
    pg_buf_free(&env);
    pg_buf_free(&m->b);
}

/* ResponseCode D + DisplayMessage (the host's "data center initiated" failure). */
static void
crm_decline(struct crm *m, struct pg_sim_reply *out, const char *host_code, const char *msg)
{
    crm_begin(m, NULL, 0);
    if (host_code)
        m->rc = m->rc ||
                pg_buf_printf(&m->b, "<ResponseCode hostCode=\"%s\">D</ResponseCode>", host_code);
    else
        m->rc = m->rc || pg_buf_puts(&m->b, "<ResponseCode>D</ResponseCode>");
    m->rc = m->rc || pg_buf_puts(&m->b, "<DisplayMessage>") || pg_sim_xml_escape(&m->b, msg) ||
            pg_buf_puts(&m->b, "</DisplayMessage>");
    crm_send(m, out);
}

/* ResponseCode E + <Error code="N">text</Error>. */
static void crm_error(struct crm *m, struct pg_sim_reply *out, int code, const char *msg)
{
    crm_begin(m, "E", 1);
    m->rc = m->rc || pg_buf_printf(&m->b, "<Error code=\"%d\">", code) ||
            pg_sim_xml_escape(&m->b, msg) || pg_buf_puts(&m->b, "</Error>");
    crm_send(m, out);
}

/* ---- operations (called with sim->mu held) ---- */

static json_t *find_row(json_t *customers, long long id)
{
    size_t i;
    json_t *c;
    json_array_foreach(customers, i, c)
    {
        if (json_integer_value(json_object_get(c, "id")) == id)
            return c;
    }
    return NULL;
}

static void op_get_column_list(xmlNodePtr root, struct crm *m, struct pg_sim_reply *out)
{
    xmlNodePtr q = child(root, NULL, "QueryCriteria");
    char *what = attr(q, "request");
    if (!what || strcasecmp(what, "customer") != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unsupported parameter: %s", what ? what : "");
        free(what);
        crm_error(m, out, 1, msg);
        return;
    }
    free(what);
    crm_begin(m, "A", 1);
    m->rc = m->rc || pg_buf_puts(&m->b, "<ResultSet><Rows><Row>");
    for (size_t i = 0; i < GL_NCOLS; i++)
        m->rc = m->rc ||
                pg_buf_printf(&m->b, "<Col type=\"%s\">%s</Col>", gl_cols[i].type, gl_cols[i].name);
    m->rc = m->rc || pg_buf_puts(&m->b, "</Row></Rows></ResultSet>");
    crm_send(m, out);
}

static void
op_get_customer(struct pg_sim *sim, xmlNodePtr root, struct crm *m, struct pg_sim_reply *out)
{
    xmlNodePtr q = child(root, NULL, "QueryCriteria"),
               def = child(root, NULL, "ResultSetDefinition");
    xmlNodePtr cond = child(q, NULL, "Condition");
    char *conds = attr(q, "conditions"), *cname = attr(cond, "name"), *cval = attr(cond, "value");
    char norm[128] = "";
    if (conds) { /* "primaryposref = ?" compared without case or blanks */
        size_t k = 0;
        for (const char *p = conds; *p && k + 1 < sizeof norm; p++)
            if (!isspace((unsigned char)*p))
                norm[k++] = (char)tolower((unsigned char)*p);
        norm[k] = '\0';
    }
    int ok = q && strcmp(norm, "primaryposref=?") == 0 && count_children(q, "Condition") == 1 &&
             cname && strcasecmp(cname, "primaryposref") == 0 && cval;
    if (!ok) {
        free(conds);
        free(cname);
        free(cval);
        crm_error(m, out, 1,
                  "Unsupported query: only conditions=\"primaryposref = ?\" with one "
                  "Condition name=\"primaryposref\" is served");
        return;
    }
    size_t ncols = count_children(def, "Column");
    if (!def || ncols == 0) {
        free(conds);
        free(cname);
        free(cval);
        crm_error(m, out, 1, "ResultSetDefinition with at least one Column is required");
        return;
    }
    for (xmlNodePtr c = def->children; c; c = c->next) {
        if (!name_is(c, NULL, "Column"))
            continue;
        char *n = text_of(c);
        if (!col_find(n)) {
            char msg[300];
            snprintf(msg, sizeof msg, "Unsupported column: %s", n);
            free(n);
            free(conds);
            free(cname);
            free(cval);
            crm_error(m, out, 1, msg);
            return;
        }
        free(n);
    }
    crm_begin(m, "A", 1);
    m->rc = m->rc || pg_buf_puts(&m->b, "<ResultSet><ResultSetMetaData>");
    for (xmlNodePtr c = def->children; c; c = c->next) {
        if (!name_is(c, NULL, "Column"))
            continue;
        char *n = text_of(c);
        m->rc = m->rc || pg_buf_puts(&m->b, "<RSColumn name=\"") || pg_sim_xml_escape(&m->b, n) ||
                pg_buf_printf(&m->b, "\" type=\"%s\" nullable=\"true\"></RSColumn>",
                              col_kind(col_find(n)));
        free(n);
    }
    m->rc = m->rc || pg_buf_puts(&m->b, "</ResultSetMetaData><Rows>");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(sim->state, "customers"), i, row)
    {
        json_t *cols = json_object_get(row, "columns");
        const char *ref = json_string_value(json_object_get(cols, "primaryposref"));
        if (!ref || strcasecmp(ref, cval) != 0) /* the host's SQL Server collation ignores case */
            continue;
        m->rc = m->rc || pg_buf_printf(&m->b, "<Row id=\"%lld\">",
                                       (long long)json_integer_value(json_object_get(row, "id")));
        for (xmlNodePtr c = def->children; c; c = c->next) {
            if (!name_is(c, NULL, "Column"))
                continue;
            char *n = text_of(c), key[64];
            lower(key, n, sizeof key);
            const char *v = json_string_value(json_object_get(cols, key));
            if (v)
                m->rc = m->rc || pg_buf_puts(&m->b, "<Col>") || pg_sim_xml_escape(&m->b, v) ||
                        pg_buf_puts(&m->b, "</Col>");
            else
                m->rc = m->rc || pg_buf_puts(&m->b, "<Col />");
            free(n);
        }
        m->rc = m->rc || pg_buf_puts(&m->b, "</Row>");
    }
    m->rc = m->rc || pg_buf_puts(&m->b, "</Rows></ResultSet>");
    free(conds);
    free(cname);
    free(cval);
    crm_send(m, out);
}

static void
op_set_customer(struct pg_sim *sim, xmlNodePtr root, struct crm *m, struct pg_sim_reply *out)
{
    xmlNodePtr ds = child(root, NULL, "DataSet");
    xmlNodePtr dsc = child(ds, NULL, "DataSetColumns"), rows = child(ds, NULL, "Rows");
    xmlNodePtr row = child(rows, NULL, "Row");
    char names[GL_NCOLS][64];
    size_t n = 0;
    char msg[400];
    if (!dsc || !rows || count_children(rows, "Row") != 1) {
        crm_error(m, out, 1, "SetCustomer needs DataSet/DataSetColumns and exactly one Rows/Row");
        return;
    }
    for (xmlNodePtr c = dsc->children; c; c = c->next) {
        if (!name_is(c, NULL, "DSColumn"))
            continue;
        char *nm = attr(c, "name");
        const struct gl_col *col = nm ? col_find(nm) : NULL;
        if (!col || n == GL_NCOLS) {
            snprintf(msg, sizeof msg, "Unsupported column: %s", nm ? nm : "(no name)");
            free(nm);
            crm_error(m, out, 2, msg);
            return;
        }
        lower(names[n], col->name, sizeof names[n]);
        for (size_t k = 0; k < n; k++)
            if (strcmp(names[k], names[n]) == 0) {
                snprintf(msg, sizeof msg, "Duplicate column: %s", nm);
                free(nm);
                crm_error(m, out, 2, msg);
                return;
            }
        free(nm);
        n++;
    }
    if (n == 0 || count_children(row, "Col") != n) {
        crm_error(m, out, 3, "The Row must carry one Col per DSColumn");
        return;
    }
    /* values: NULL for an empty <Col/> */
    json_t *vals = json_object();
    size_t k = 0;
    for (xmlNodePtr c = row->children; c; c = c->next) {
        if (!name_is(c, NULL, "Col"))
            continue;
        char *v = text_of(c);
        json_object_set_new(vals, names[k++], v && v[0] ? json_string(v) : json_null());
        free(v);
    }
    char *idattr = attr(row, "id");
    long long id = 0;
    json_t *customers = json_object_get(sim->state, "customers");
    json_t *target = NULL;
    if (idattr) {
        if (pg_strtonum(idattr, 1, 2147483647LL, &id) != 0 || !(target = find_row(customers, id))) {
            snprintf(msg, sizeof msg,
                     "com.micros.storedValue.worker.SetRollbackException: Update failed for row "
                     "ID = %s",
                     idattr);
            free(idattr);
            json_decref(vals);
            crm_decline(m, out, NULL, msg);
            return;
        }
    } else {
        /* [I] strict: a create must link the customer to an account (reference client). */
        const char *sv = json_string_value(json_object_get(vals, "sortvalue"));
        const char *ref = json_string_value(json_object_get(vals, "primaryposref"));
        if (!sv || strcmp(sv, "1") != 0 || !ref) {
            json_decref(vals);
            crm_decline(m, out, NULL,
                        "com.micros.storedValue.worker.SetRollbackException: Insert failed: a new "
                        "customer needs sortValue = 1 and a PrimaryPosRef");
            return;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(vals, key, v)
    {
        if (json_is_string(v) && !col_value_ok(col_find(key), json_string_value(v))) {
            snprintf(msg, sizeof msg,
                     "com.micros.storedValue.worker.SetRollbackException: %s failed for row ID = "
                     "%s: value of %s does not fit %s",
                     idattr ? "Update" : "Insert", idattr ? idattr : "new", key,
                     col_find(key)->type);
            free(idattr);
            json_decref(vals);
            crm_decline(m, out, NULL, msg);
            return;
        }
    }
    free(idattr);
    if (!target) {
        long long max = FIRST_ROW_ID - 1;
        size_t i;
        json_t *c;
        json_array_foreach(customers, i, c)
        {
            if (json_integer_value(json_object_get(c, "id")) > max)
                max = json_integer_value(json_object_get(c, "id"));
        }
        id = max + 1;
        target = json_pack("{s:I,s:{},s:i,s:[]}", "id", (json_int_t)id, "columns", "set_count", 0,
                           "history");
        json_array_append_new(customers, target);
    }
    json_t *cols = json_object_get(target, "columns");
    json_object_del(vals, "sortvalue"); /* an insert directive, not a stored value */
    json_object_foreach(vals, key, v)
    {
        if (json_is_null(v))
            json_object_del(cols, key);
        else
            json_object_set(cols, key, v);
    }
    char ts[40];
    pg_wall_iso8601(ts, sizeof ts);
    json_object_set_new(target, "set_count",
                        json_integer(json_integer_value(json_object_get(target, "set_count")) + 1));
    json_array_append_new(json_object_get(target, "history"),
                          json_pack("{s:s,s:o}", "ts", ts, "columns", vals));
    crm_begin(m, "A", 1);
    m->rc = m->rc || pg_buf_printf(&m->b, "<Row id=\"%lld\" />", id);
    crm_send(m, out);
}

/* ---- the endpoint ---- */

void pg_sim_gl_process(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    const char *ct = pg_sim_req_header(req, "Content-Type");
    const char *why = NULL;
    if (!ct || strncasecmp(ct, "text/xml", 8) != 0) {
        soap_fault(out, "Client", "SOAP 1.1 requests must be Content-Type text/xml");
        out->status = 415;
        return;
    }
    xmlDocPtr env = xml_parse(req->body, req->body_len, &why);
    if (!env) {
        soap_fault(out, "Client", why);
        return;
    }
    xmlNodePtr root = xmlDocGetRootElement(env);
    xmlNodePtr pr = child(child(root, NS_SOAP, "Body"), NS_EJB, "processRequest");
    char *in0 = text_of(child(pr, NULL, "in0")), *in1 = text_of(child(pr, NULL, "in1")),
         *in2 = text_of(child(pr, NULL, "in2")), *in3 = text_of(child(pr, NULL, "in3"));
    int env_ok = name_is(root, NS_SOAP, "Envelope") && pr && in0 && in1 && in2 && in3;
    xmlFreeDoc(env);
    xmlDocPtr doc = NULL;
    struct crm m = {.language = "en_US", .currency = "USD", .code = ""};
    if (!env_ok) {
        soap_fault(out, "Client",
                   "expected soapenv:Envelope/Body/ejb:processRequest with in0, in1, in2, in3");
        goto out;
    }
    if (!(doc = xml_parse(in0, strlen(in0), &why))) {
        soap_fault(out, "Client", why);
        goto out;
    }
    xmlNodePtr crm = xmlDocGetRootElement(doc);
    char *lang = attr(crm, "language"), *cur = attr(crm, "currency");
    char *code = text_of(child(crm, NULL, "RequestCode"));
    snprintf(m.language, sizeof m.language, "%s", lang ? lang : "en_US");
    snprintf(m.currency, sizeof m.currency, "%s", cur ? cur : "USD");
    snprintf(m.code, sizeof m.code, "%s", code ? code : "");
    free(lang);
    free(cur);
    free(code);

    /* Integrity first: the CRC covers exactly the text the host un-escaped from in0. */
    char want[16];
    unsigned long crc = crc32(0L, (const Bytef *)in0, (uInt)strlen(in0)) & 0xFFFFFFFFul;
    snprintf(want, sizeof want, cfg->micros.gl.crc_decimal ? "%010lu" : "%08lX", crc);
    if (strcmp(in3, want) != 0) {
        crm_decline(&m, out, NULL, "Request failed integrity check");
        goto out;
    }
    if (strcmp(in1, cfg->micros.gl.logon) != 0 || strcmp(in2, cfg->micros.gl.password) != 0) {
        /* [I] the reference shows no logon failure; we answer D with a host code. */
        crm_decline(&m, out, "1", "Invalid logon name or password");
        goto out;
    }
    if (!name_is(crm, NULL, "CRMMessage")) {
        crm_error(&m, out, 1, "Unsupported message: only CRMMessage is served");
        goto out;
    }
    pthread_mutex_lock(&sim->mu);
    if (strcmp(m.code, "GetCustomer") == 0)
        op_get_customer(sim, crm, &m, out);
    else if (strcmp(m.code, "SetCustomer") == 0)
        op_set_customer(sim, crm, &m, out);
    else if (strcmp(m.code, "GetColumnList") == 0)
        op_get_column_list(crm, &m, out);
    else {
        char msg[128];
        snprintf(msg, sizeof msg, "Unsupported request code: %s", m.code);
        crm_error(&m, out, 1, msg);
    }
    pthread_mutex_unlock(&sim->mu);
out:
    if (doc)
        xmlFreeDoc(doc);
    free(in0);
    free(in1);
    free(in2);
    free(in3);
}
