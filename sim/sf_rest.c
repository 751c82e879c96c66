/*
 * The Salesforce simulator's REST reads under /services/data/vXX.X/ (salesforce-wire.md §4.1,
 * §4.2, §4.6, §4.7): Contact by Id, Contact by external id, and GET query with the SOQL subset
 *
 *     SELECT f1, f2 FROM Contact [WHERE cond ((AND cond)* | (OR cond)*)] [LIMIT n]
 *     cond := field = literal | ( cond ... )        literal := 'string' | number | null | true |
 * false
 *
 * and, FROM Order, the reconciliation grammar over the collections store (COUNT/SUM with aliases,
 * GROUP BY, date literals; sim/README.md "SOQL over Orders").
 *
 * Every request needs a live bearer token (401 INVALID_SESSION_ID), then counts one API call
 * (Sforce-Limit-Info; 403 REQUEST_LIMIT_EXCEEDED past the limit). sim/README.md documents the
 * error for each case and where its wording comes from.
 */
#include "sim/sf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/util.h"

#define MAX_SELECT 200
#define MAX_DEPTH 32

static const char NO_COLUMN_TAIL[] =
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names.";

/* ---- the Contact describe ---- */

int pg_sim_sf_describe_init(struct sf_priv *p, json_t *contacts)
{
    /* Standard Contact fields every org has, whatever the seed holds. AccountId is a lookup:
     * typed "id" like Id (15/18-char literals, compared on the 15-char part). */
    static const char *const base[] = {"Id",    "AccountId", "Name",        "FirstName", "LastName",
                                       "Email", "Phone",     "MobilePhone", NULL};
    size_t i;
    json_t *c;
    p->fields = json_array();
    p->types = json_object();
    if (!p->fields || !p->types)
        return PG_ENOMEM;
    for (const char *const *f = base; *f; f++) {
        json_array_append_new(p->fields, json_string(*f));
        json_object_set_new(
            p->types, *f,
            json_string(strcmp(*f, "Id") == 0 || strcmp(*f, "AccountId") == 0 ? "id" : "string"));
    }
    json_array_foreach(contacts, i, c)
    {
        const char *k;
        json_t *v;
        json_object_foreach(c, k, v)
        {
            const char *t = json_is_number(v)                  ? "double"
                            : json_is_boolean(v)               ? "boolean"
                            : strcmp(k, "SystemModstamp") == 0 ? "datetime"
                                                               : NULL;
            if (!json_object_get(p->types, k)) {
                json_array_append_new(p->fields, json_string(k));
                json_object_set_new(p->types, k, json_string(t ? t : "string"));
            } else if (t && strcmp(k, "Id") != 0) { /* a later non-null value decides the type */
                json_object_set_new(p->types, k, json_string(t));
            }
        }
    }
    return PG_OK;
}

/* The describe's spelling of name (field names are case-insensitive), or NULL. */
static const char *field_canon(struct sf_priv *p, const char *name, size_t len)
{
    size_t i;
    json_t *f;
    json_array_foreach(p->fields, i, f)
    {
        const char *s = json_string_value(f);
        if (strlen(s) == len && strncasecmp(s, name, len) == 0)
            return s;
    }
    return NULL;
}

static const char *field_type(struct sf_priv *p, const char *canon)
{
    return json_string_value(json_object_get(p->types, canon));
}

/* ---- records as REST shows them ---- */

/* "Name" is computed like the compound field: "First Last", or Last alone. */
static json_t *name_value(json_t *rec)
{
    const char *fn = json_string_value(json_object_get(rec, "FirstName"));
    const char *ln = json_string_value(json_object_get(rec, "LastName"));
    char buf[512];
    if (!ln)
        return json_null();
    snprintf(buf, sizeof buf, "%s%s%s", fn && fn[0] ? fn : "", fn && fn[0] ? " " : "", ln);
    return json_string(buf);
}

static json_t *value_out(struct sf_priv *p, json_t *rec, const char *f)
{
    if (strcmp(f, "Name") == 0)
        return name_value(rec);
    json_t *v = json_object_get(rec, f);
    const char *t = field_type(p, f);
    if (!v || json_is_null(v))
        return json_null();
    if (t && strcmp(t, "double") == 0 && json_is_number(v)) /* REST writes numbers as 5400.0 */
        return json_real(json_number_value(v));
    if (t && strcmp(t, "datetime") == 0 && json_is_string(v)) {
        int64_t ms = pg_sim_parse_iso_ms(json_string_value(v));
        char ts[40];
        if (ms >= 0) { /* REST datetimes end in +0000 (§0) */
            pg_sim_iso_ms(ms, ts, sizeof ts);
            size_t n = strlen(ts);
            if (n && ts[n - 1] == 'Z')
                snprintf(ts + n - 1, sizeof ts - (n - 1), "+0000");
            return json_string(ts);
        }
    }
    return json_copy(v);
}

/* The record with "attributes" first; fields NULL = every field of the describe. */
static json_t *render(struct pg_sim *sim, json_t *rec, const char *ver, json_t *fields)
{
    struct sf_priv *p = sim->priv;
    char url[96];
    size_t i;
    json_t *f;
    snprintf(url, sizeof url, "/services/data/%s/sobjects/Contact/%s", ver,
             json_string_value(json_object_get(rec, "Id")));
    json_t *o = json_pack("{s:{s:s,s:s}}", "attributes", "type", "Contact", "url", url);
    json_array_foreach(fields ? fields : p->fields, i, f)
        json_object_set_new(o, json_string_value(f), value_out(p, rec, json_string_value(f)));
    return o;
}

/* ---- case-insensitive text comparison (SOQL '=' on text, §4.1) ---- */

static uint32_t next_cp(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t c = *p;
    int n = c >= 0xF0 && c < 0xF8 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (c >= 0xF8)
        n = 0;
    uint32_t cp = n == 3 ? c & 7 : n == 2 ? c & 15 : n == 1 ? c & 31 : c;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xC0) != 0x80) { /* not UTF-8: the byte stands for itself */
            *s = p + 1;
            return c;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    *s = p + 1 + n;
    return cp;
}

/* Simple case folding for Latin, Latin-1, Latin Extended-A, Greek and Cyrillic capitals. */
static uint32_t fold(uint32_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
        (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if (((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) && !(c & 1))
        return c + 1;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && (c & 1))
        return c + 1;
    if (c == 0x178)
        return 0xFF;
    return c;
}

static int text_eq(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *y)
        if (fold(next_cp(&x)) != fold(next_cp(&y)))
            return 0;
    return !*x && !*y;
}

/* The hash of a text as text_eq compares it: equal under text_eq => equal hash. */
static uint64_t text_hash(const char *a)
{
    const unsigned char *x = (const unsigned char *)a;
    uint64_t h = 1469598103934665603ULL;
    while (*x) {
        h ^= fold(next_cp(&x));
        h *= 1099511628211ULL;
    }
    return h;
}

/*
 * Contacts by external id value, so a GET by external id is not a scan of every Contact (with
 * 10,000 Contacts the scan was ~3 ms of CPU per call, taken from the gateway on the same cores in
 * bench/lookup-run). One multimap per external id field: slots of (hash of the folded value,
 * index into the contacts array), open addressing; a lookup collects the slots with the value's
 * hash and checks each Contact with text_eq (so a hash collision never matches). Built on first
 * use and rebuilt after any change to the Contacts (contacts_gen) or to the array itself.
 */
struct ext_slot {
    uint64_t h;
    size_t idx; /* contact index + 1; 0: empty */
};
struct sf_ext_ix {
    char field[64]; /* canonical field name */
    const json_t *contacts;
    size_t n;
    unsigned long gen;
    size_t cap; /* power of two, >= 2n */
    struct ext_slot *slots;
    struct sf_ext_ix *next;
};

void pg_sim_sf_contacts_changed(struct pg_sim *sim)
{
    ((struct sf_priv *)sim->priv)->contacts_gen++;
}

void pg_sim_sf_ext_ix_free(struct sf_priv *p)
{
    while (p->ext_ix) {
        struct sf_ext_ix *x = p->ext_ix;
        p->ext_ix = x->next;
        free(x->slots);
        free(x);
    }
}

/* The index of field over contacts, (re)built when stale; NULL when out of memory. Lock held. */
static struct sf_ext_ix *ext_ix_get(struct pg_sim *sim, const char *field, const json_t *contacts)
{
    struct sf_priv *p = sim->priv;
    struct sf_ext_ix *x = p->ext_ix;
    while (x && strcmp(x->field, field) != 0)
        x = x->next;
    size_t n = json_array_size(contacts);
    if (x && x->contacts == contacts && x->n == n && x->gen == p->contacts_gen)
        return x;
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x)
            return NULL;
        snprintf(x->field, sizeof x->field, "%s", field);
        x->next = p->ext_ix;
        p->ext_ix = x;
    }
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    struct ext_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_object_get(json_array_get(contacts, i), field));
        if (!v || !*v)
            continue;
        uint64_t h = text_hash(v);
        size_t s = (size_t)h & (cap - 1);
        while (slots[s].idx)
            s = (s + 1) & (cap - 1);
        slots[s] = (struct ext_slot){.h = h, .idx = i + 1};
    }
    free(x->slots);
    x->slots = slots;
    x->cap = cap;
    x->contacts = contacts;
    x->n = n;
    x->gen = p->contacts_gen;
    return x;
}

static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* 15 or 18 alphanumerics, and an 18-char id's suffix must match. */
static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n != 15 && n != 18)
        return 0;
    for (size_t i = 0; i < 15; i++)
        if (!isalnum((unsigned char)s[i]))
            return 0;
    return n == 15 || pg_sim_sf_id_valid(s, NULL);
}

/* ---- SOQL subset ---- */

enum { T_EOF, T_IDENT, T_STR, T_NUM, T_DATE, T_COMMA, T_LP, T_RP, T_EQ, T_OP, T_BAD };
enum { N_CMP, N_AND, N_OR };
enum { L_STR, L_NUM, L_NULL, L_BOOL, L_DATE };

struct node {
    int kind;
    size_t fpos, flen, lpos; /* field and literal positions in the query */
    const char *field;       /* canonical name, after validation */
    int ltype;
    char *str;
    double num;
    int b;
    struct node **kids;
    size_t nk;
    char fbuf[130]; /* the canonical name of an Order field (custom fields spelled as asked) */
};

struct soql {
    const char *q;
    size_t n;
    size_t pos; /* lexer position */
    struct {
        int t;
        size_t pos, len;
        char *str; /* decoded string literal */
    } tk;
    int failed;
    char code[40];
    char *msg;
    struct sf_priv *p;
    size_t sel_pos[MAX_SELECT], sel_len[MAX_SELECT];
    const char *sel[MAX_SELECT];
    size_t nsel;
    size_t obj_pos, obj_len;
    struct node *where;
    long long limit; /* -1: none */
    int depth;
    int order; /* FROM Order: date literals, aggregates and GROUP BY (parse_order) */
};

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nk; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

/*
 * Salesforce's SOQL error text: the query row, a caret under the column, "ERROR at Row:R:Column:C"
 * and the reason, each on its own line (§4.1 and the captures in sim/README.md).
 */
static void fail(struct soql *s, size_t pos, const char *code, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = 1;
    snprintf(s->code, sizeof s->code, "%s", code);
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (pos > s->n)
        pos = s->n;
    size_t start = pos, row = 1;
    while (start > 0 && s->q[start - 1] != '\n')
        start--;
    for (size_t i = 0; i < start; i++)
        row += s->q[i] == '\n';
    size_t end = pos;
    while (end < s->n && s->q[end] != '\n')
        end++;
    size_t col = pos - start + 1, sz = (end - start) + col + sizeof reason + 96;
    s->msg = malloc(sz);
    if (!s->msg)
        return;
    int k = snprintf(s->msg, sz, "\n%.*s\n%*s^\nERROR at Row:%zu:Column:%zu\n%s",
                     (int)(end - start), s->q + start, (int)(col - 1), "", row, col, reason);
    (void)k;
}

static void unexpected(struct soql *s)
{
    if (s->tk.t == T_EOF)
        fail(s, s->tk.pos, "MALFORMED_QUERY", "unexpected token: <EOF>");
    else
        fail(s, s->tk.pos, "MALFORMED_QUERY", "unexpected token: '%.*s'", (int)s->tk.len,
             s->q + s->tk.pos);
}

static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static int hex4(const char *p, size_t avail, uint32_t *out)
{
    uint32_t v = 0;
    if (avail < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int c = tolower((unsigned char)p[i]);
        if (!isxdigit(c))
            return -1;
        v = v * 16 + (uint32_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
    }
    *out = v;
    return 0;
}

/*
 * A quoted literal with the documented escapes ("Quoted String Escape Sequences"): \n \N \r \R
 * \t \T \b \B \f \F \" \' \\ and \uXXXX. Any other backslash (\_ and \% only mean something in
 * LIKE) is an error.
 */
static void lex_string(struct soql *s)
{
    size_t i = s->pos + 1;
    char *o = malloc(s->n - s->pos + 1);
    size_t k = 0;
    if (!o) {
        fail(s, s->pos, "MALFORMED_QUERY", "out of memory");
        return;
    }
    for (;;) {
        if (i >= s->n) {
            free(o);
            fail(s, s->pos, "MALFORMED_QUERY", "unexpected token: <EOF> (unterminated string)");
            return;
        }
        char c = s->q[i];
        if (c == '\'') {
            i++;
            break;
        }
        if (c != '\\') {
            o[k++] = c;
            i++;
            continue;
        }
        char e = i + 1 < s->n ? s->q[i + 1] : '\0';
        uint32_t cp = 0, lo = 0;
        switch (e) {
        case 'n':
        case 'N':
            o[k++] = '\n';
            i += 2;
            continue;
        case 'r':
        case 'R':
            o[k++] = '\r';
            i += 2;
            continue;
        case 't':
        case 'T':
            o[k++] = '\t';
            i += 2;
            continue;
        case 'b':
        case 'B':
            o[k++] = '\b';
            i += 2;
            continue;
        case 'f':
        case 'F':
            o[k++] = '\f';
            i += 2;
            continue;
        case '"':
        case '\'':
        case '\\':
            o[k++] = e;
            i += 2;
            continue;
        case 'u':
            if (hex4(s->q + i + 2, s->n - i - 2, &cp) == 0 && cp != 0) {
                i += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < s->n && s->q[i] == '\\' &&
                    s->q[i + 1] == 'u' && hex4(s->q + i + 2, s->n - i - 2, &lo) == 0 &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                    break; /* a lone surrogate */
                }
                k += put_utf8(o + k, cp);
                continue;
            }
            break;
        default:
            break;
        }
        free(o);
        fail(s, i, "MALFORMED_QUERY",
             "Invalid string literal. Illegal character sequence '\\%c' in string literal.",
             e ? e : ' ');
        return;
    }
    o[k] = '\0';
    s->tk.t = T_STR;
    s->tk.len = i - s->pos;
    s->tk.str = o;
    s->pos = i;
}

static int is_date(const char *p)
{
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? p[i] != '-' : !isdigit((unsigned char)p[i]))
            return 0;
    return 1;
}

static void next(struct soql *s)
{
    free(s->tk.str);
    s->tk.str = NULL;
    if (s->failed) {
        s->tk.t = T_EOF;
        return;
    }
    while (s->pos < s->n && isspace((unsigned char)s->q[s->pos]))
        s->pos++;
    size_t b = s->pos;
    s->tk.pos = b;
    s->tk.len = 1;
    if (b >= s->n) {
        s->tk.t = T_EOF;
        s->tk.len = 0;
        return;
    }
    char c = s->q[b];
    if (c == '\'') {
        lex_string(s);
        return;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        size_t e = b;
        while (e < s->n && (isalnum((unsigned char)s->q[e]) || s->q[e] == '_' || s->q[e] == '.'))
            e++;
        s->tk.t = T_IDENT;
        s->tk.len = e - b;
    } else if (isdigit((unsigned char)c) && b + 10 <= s->n && is_date(s->q + b) &&
               (b + 10 == s->n || !isalnum((unsigned char)s->q[b + 10]))) {
        s->tk.t = T_DATE; /* a date literal: YYYY-MM-DD, unquoted (SOQL "Date Formats") */
        s->tk.len = 10;
    } else if (isdigit((unsigned char)c) ||
               ((c == '-' || c == '+') && b + 1 < s->n && isdigit((unsigned char)s->q[b + 1]))) {
        size_t e = b + 1;
        while (e < s->n && (isdigit((unsigned char)s->q[e]) || s->q[e] == '.'))
            e++;
        s->tk.t = T_NUM;
        s->tk.len = e - b;
    } else if (c == ',' || c == '(' || c == ')' || c == '=') {
        s->tk.t = c == ',' ? T_COMMA : c == '(' ? T_LP : c == ')' ? T_RP : T_EQ;
    } else if (c == '!' || c == '<' || c == '>') {
        s->tk.t = T_OP;
        if (b + 1 < s->n && (s->q[b + 1] == '=' || (c == '<' && s->q[b + 1] == '>')))
            s->tk.len = 2;
    } else {
        s->tk.t = T_BAD; /* '"' (double quotes are an error in SOQL), '*', ':' ... */
        size_t e = b + 1;
        while (e < s->n && ((unsigned char)s->q[e] & 0xC0) == 0x80) /* whole UTF-8 char */
            e++;
        s->tk.len = e - b;
    }
    s->pos = b + s->tk.len;
}

static int kw(struct soql *s, const char *w)
{
    size_t n = strlen(w);
    return s->tk.t == T_IDENT && s->tk.len == n && strncasecmp(s->q + s->tk.pos, w, n) == 0;
}

static struct node *parse_expr(struct soql *s);

static struct node *parse_term(struct soql *s)
{
    if (s->tk.t == T_LP) {
        if (++s->depth > MAX_DEPTH) {
            fail(s, s->tk.pos, "MALFORMED_QUERY", "Query is too complex: too many parentheses");
            return NULL;
        }
        next(s);
        struct node *e = parse_expr(s);
        s->depth--;
        if (!e)
            return NULL;
        if (s->tk.t != T_RP) {
            unexpected(s);
            node_free(e);
            return NULL;
        }
        next(s);
        return e;
    }
    if (s->tk.t != T_IDENT || kw(s, "NOT") || kw(s, "AND") || kw(s, "OR")) {
        unexpected(s);
        return NULL;
    }
    struct node *n = calloc(1, sizeof *n);
    if (!n) {
        fail(s, s->tk.pos, "MALFORMED_QUERY", "out of memory");
        return NULL;
    }
    n->kind = N_CMP;
    n->fpos = s->tk.pos;
    n->flen = s->tk.len;
    next(s);
    if (s->tk.t != T_EQ) { /* != < > LIKE IN INCLUDES ...: valid SOQL the simulator lacks */
        unexpected(s);
        node_free(n);
        return NULL;
    }
    next(s);
    n->lpos = s->tk.pos;
    if (s->tk.t == T_STR) {
        n->ltype = L_STR;
        n->str = s->tk.str;
        s->tk.str = NULL;
    } else if (s->tk.t == T_NUM) {
        char *end = NULL, buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)s->tk.len, s->q + s->tk.pos);
        n->ltype = L_NUM;
        n->num = strtod(buf, &end);
        if (!end || *end || strchr(buf, '.') != strrchr(buf, '.')) {
            unexpected(s);
            node_free(n);
            return NULL;
        }
    } else if (s->tk.t == T_DATE && s->order) {
        n->ltype = L_DATE;
        n->str = strndup(s->q + s->tk.pos, 10);
    } else if (kw(s, "NULL")) {
        n->ltype = L_NULL;
    } else if (kw(s, "TRUE") || kw(s, "FALSE")) {
        n->ltype = L_BOOL;
        n->b = kw(s, "TRUE");
    } else {
        unexpected(s);
        node_free(n);
        return NULL;
    }
    next(s);
    return n;
}

/* AND and OR cannot be mixed on one level without parentheses: "unexpected token: 'OR'". */
static struct node *parse_expr(struct soql *s)
{
    struct node *first = parse_term(s), *group = NULL;
    if (!first)
        return NULL;
    while (!s->failed && (kw(s, "AND") || kw(s, "OR"))) {
        int kind = kw(s, "AND") ? N_AND : N_OR;
        if (group && group->kind != kind) {
            unexpected(s);
            break;
        }
        if (!group) {
            if (!(group = calloc(1, sizeof *group))) {
                fail(s, s->tk.pos, "MALFORMED_QUERY", "out of memory");
                break;
            }
            group->kind = kind;
            group->kids = malloc(sizeof *group->kids);
            if (group->kids)
                group->kids[group->nk++] = first;
            first = NULL;
        }
        next(s);
        struct node *t = parse_term(s);
        struct node **k = t ? realloc(group->kids, (group->nk + 1) * sizeof *k) : NULL;
        if (!k) {
            node_free(t);
            break;
        }
        group->kids = k;
        group->kids[group->nk++] = t;
    }
    if (s->failed) {
        node_free(first);
        node_free(group);
        return NULL;
    }
    return group ? group : first;
}

/* "FROM <object> [WHERE <expr>]" after the select list, shared by both query forms. 0 when
 * parsed; -1 with s->code set. */
static int parse_from_where(struct soql *s)
{
    if (!kw(s, "FROM")) {
        unexpected(s);
        return -1;
    }
    next(s);
    if (s->tk.t != T_IDENT) {
        unexpected(s);
        return -1;
    }
    s->obj_pos = s->tk.pos;
    s->obj_len = s->tk.len;
    next(s);
    if (kw(s, "WHERE")) {
        next(s);
        if (!(s->where = parse_expr(s)))
            return -1;
    }
    return 0;
}

static void parse(struct soql *s)
{
    s->limit = -1;
    next(s);
    if (!kw(s, "SELECT"))
        return unexpected(s);
    next(s);
    for (;;) {
        if (s->tk.t != T_IDENT || kw(s, "FROM"))
            return unexpected(s);
        if (s->nsel == MAX_SELECT) {
            fail(s, s->tk.pos, "MALFORMED_QUERY", "too many fields selected");
            return;
        }
        s->sel_pos[s->nsel] = s->tk.pos;
        s->sel_len[s->nsel++] = s->tk.len;
        next(s);
        if (s->tk.t != T_COMMA)
            break;
        next(s);
    }
    if (parse_from_where(s) != 0)
        return;
    if (kw(s, "LIMIT")) {
        next(s);
        if (s->tk.t != T_NUM || !isdigit((unsigned char)s->q[s->tk.pos]) ||
            memchr(s->q + s->tk.pos, '.', s->tk.len) || s->tk.len > 9)
            return unexpected(s);
        s->limit = strtoll(s->q + s->tk.pos, NULL, 10);
        next(s);
    }
    if (s->tk.t != T_EOF)
        unexpected(s);
}

static void check_filter(struct soql *s, struct node *n)
{
    if (s->failed)
        return;
    if (n->kind != N_CMP) {
        for (size_t i = 0; i < n->nk; i++)
            check_filter(s, n->kids[i]);
        return;
    }
    n->field = field_canon(s->p, s->q + n->fpos, n->flen);
    if (!n->field) {
        fail(s, n->fpos, "INVALID_FIELD", "No such column '%.*s' on entity 'Contact'. %s",
             (int)n->flen, s->q + n->fpos, NO_COLUMN_TAIL);
        return;
    }
    const char *t = field_type(s->p, n->field);
    if (n->ltype == L_NULL)
        return;
    if (strcmp(t, "id") == 0) {
        if (n->ltype != L_STR)
            fail(s, n->lpos, "INVALID_FIELD",
                 "value of filter criterion for field '%s' must be of type id and should be "
                 "enclosed in quotes",
                 n->field);
        else if (!id_ok(n->str))
            fail(s, n->lpos, "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: %s", n->str);
    } else if (strcmp(t, "string") == 0) {
        if (n->ltype != L_STR)
            fail(s, n->lpos, "INVALID_FIELD",
                 "value of filter criterion for field '%s' must be of type string and should be "
                 "enclosed in quotes",
                 n->field);
    } else {
        int ok = (strcmp(t, "double") == 0 && n->ltype == L_NUM) ||
                 (strcmp(t, "boolean") == 0 && n->ltype == L_BOOL);
        if (!ok)
            fail(s, n->lpos, "INVALID_FIELD",
                 "value of filter criterion for field '%s' must be of type %s and should not be "
                 "enclosed in quotes",
                 n->field, strcmp(t, "datetime") == 0 ? "dateTime" : t);
    }
}

/* Semantic checks after the syntax: the object, the selected fields, the filter's fields. */
static void check(struct soql *s)
{
    if (s->failed)
        return;
    if (s->obj_len != 7 || strncasecmp(s->q + s->obj_pos, "Contact", 7) != 0) {
        fail(s, s->obj_pos, "INVALID_TYPE",
             "sObject type '%.*s' is not supported. If you are attempting to use a custom object, "
             "be sure to append the '__c' after the entity name. Please reference your WSDL or "
             "the describe call for the appropriate names.",
             (int)s->obj_len, s->q + s->obj_pos);
        return;
    }
    for (size_t i = 0; i < s->nsel && !s->failed; i++) {
        s->sel[i] = field_canon(s->p, s->q + s->sel_pos[i], s->sel_len[i]);
        if (!s->sel[i]) {
            fail(s, s->sel_pos[i], "INVALID_FIELD", "No such column '%.*s' on entity 'Contact'. %s",
                 (int)s->sel_len[i], s->q + s->sel_pos[i], NO_COLUMN_TAIL);
            return;
        }
        for (size_t j = 0; j < i; j++)
            if (s->sel[j] == s->sel[i])
                fail(s, s->sel_pos[i], "MALFORMED_QUERY", "duplicate field selected: %s",
                     s->sel[i]);
    }
    if (s->where)
        check_filter(s, s->where);
}

static int eval(struct sf_priv *p, struct node *n, json_t *rec)
{
    if (n->kind == N_AND || n->kind == N_OR) {
        for (size_t i = 0; i < n->nk; i++) {
            int r = eval(p, n->kids[i], rec);
            if (n->kind == N_AND && !r)
                return 0;
            if (n->kind == N_OR && r)
                return 1;
        }
        return n->kind == N_AND;
    }
    json_t *v = strcmp(n->field, "Name") == 0 ? name_value(rec)
                                              : json_incref(json_object_get(rec, n->field));
    int r = 0;
    const char *sv = json_string_value(v);
    /* Salesforce keeps no empty text: '' and null both mean "no value" [M] */
    int empty = !v || json_is_null(v) || (sv && !sv[0]);
    if (n->ltype == L_NULL || (n->ltype == L_STR && !n->str[0]))
        r = empty;
    else if (n->ltype == L_STR && sv && strcmp(field_type(p, n->field), "id") == 0)
        r = strncmp(sv, n->str, 15) == 0; /* ids compare case-sensitively on 15 chars */
    else if (n->ltype == L_STR && sv)
        r = text_eq(sv, n->str);
    else if (n->ltype == L_NUM && json_is_number(v))
        r = json_number_value(v) == n->num;
    else if (n->ltype == L_BOOL && json_is_boolean(v))
        r = json_is_true(v) == n->b;
    json_decref(v);
    return r;
}

/* ---- handlers ---- */

static void reply_soql_error(struct soql *s, struct pg_sim_reply *out)
{
    pg_sim_sf_error(out, 400, s->code, s->msg ? s->msg : "malformed query");
}

/* ---- Order queries: plain and aggregate (COUNT/SUM with aliases, GROUP BY) ---- */

/* Standard Order fields the collections store keeps (sim/sf_collections.c); any custom field
 * (__c) is accepted as the collections upsert accepts any. */
static const char *const ORDER_STD[] = {"Id",
                                        "AccountId",
                                        "EffectiveDate",
                                        "Status",
                                        "StatusCode",
                                        "Pricebook2Id",
                                        "CurrencyIsoCode",
                                        "Type",
                                        "Name",
                                        "OrderNumber",
                                        "TotalAmount",
                                        "IsReductionOrder",
                                        "OriginalOrderId",
                                        "CreatedDate",
                                        "SystemModstamp",
                                        NULL};

#define OQ_MAX_GROUP 8
#define OQ_FIELD 130

enum { A_NONE, A_COUNT, A_SUM };

struct oitem {
    int agg;
    size_t pos, len, alias_pos, alias_len; /* field (inside the parentheses) and alias */
    char field[OQ_FIELD];
};

struct oq {
    struct oitem it[MAX_SELECT];
    size_t n;
    size_t gpos[OQ_MAX_GROUP], glen[OQ_MAX_GROUP];
    char group[OQ_MAX_GROUP][OQ_FIELD];
    size_t ng;
    int grouped; /* GROUP BY present */
};

/* The canonical spelling of an Order field into out; 0 when Order has no such column. */
static int order_field(const char *name, size_t len, char *out, size_t outsz)
{
    for (const char *const *f = ORDER_STD; *f; f++)
        if (strlen(*f) == len && strncasecmp(*f, name, len) == 0) {
            snprintf(out, outsz, "%s", *f);
            return 1;
        }
    if (len > 3 && len < outsz && strncasecmp(name + len - 3, "__c", 3) == 0 &&
        !memchr(name, '.', len)) {
        memcpy(out, name, len);
        out[len] = '\0';
        return 1;
    }
    return 0;
}

/* A record's field, its name compared case-insensitively (SOQL names are). */
static json_t *rec_get(json_t *rec, const char *field)
{
    const char *k;
    json_t *v;
    json_object_foreach(rec, k, v)
    {
        if (strcasecmp(k, field) == 0)
            return v;
    }
    return NULL;
}

/* A number field's value: a JSON number, or a decimal string (the transform sends money as
 * "313.90", which Salesforce stores as a currency value). 0 when it is neither. */
static int num_of(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 1;
    }
    const char *s = json_string_value(v);
    char *end = NULL;
    if (!s || !*s)
        return 0;
    *out = strtod(s, &end);
    return end && !*end;
}

static void order_no_column(struct soql *s, size_t pos, size_t len)
{
    fail(s, pos, "INVALID_FIELD", "No such column '%.*s' on entity 'Order'. %s", (int)len,
         s->q + pos, NO_COLUMN_TAIL);
}

static void parse_order(struct soql *s, struct oq *o)
{
    s->limit = -1;
    next(s);
    if (!kw(s, "SELECT"))
        return unexpected(s);
    next(s);
    for (;;) {
        if (s->tk.t != T_IDENT || kw(s, "FROM"))
            return unexpected(s);
        if (o->n == MAX_SELECT) {
            fail(s, s->tk.pos, "MALFORMED_QUERY", "too many fields selected");
            return;
        }
        struct oitem *it = &o->it[o->n++];
        it->pos = s->tk.pos;
        it->len = s->tk.len;
        next(s);
        if (s->tk.t == T_LP) {
            if (it->len == 5 && strncasecmp(s->q + it->pos, "COUNT", 5) == 0)
                it->agg = A_COUNT;
            else if (it->len == 3 && strncasecmp(s->q + it->pos, "SUM", 3) == 0)
                it->agg = A_SUM;
            else /* AVG, MIN, MAX, COUNT_DISTINCT...: valid SOQL the simulator lacks */
                return unexpected(s);
            next(s);
            if (s->tk.t != T_IDENT) /* COUNT() (the row count form) is not modelled */
                return unexpected(s);
            it->pos = s->tk.pos;
            it->len = s->tk.len;
            next(s);
            if (s->tk.t != T_RP)
                return unexpected(s);
            next(s);
        }
        if (s->tk.t == T_IDENT && !kw(s, "FROM")) { /* an alias */
            it->alias_pos = s->tk.pos;
            it->alias_len = s->tk.len;
            next(s);
        }
        if (s->tk.t != T_COMMA)
            break;
        next(s);
    }
    if (parse_from_where(s) != 0)
        return;
    if (kw(s, "GROUP")) {
        next(s);
        if (!kw(s, "BY"))
            return unexpected(s);
        next(s);
        o->grouped = 1;
        for (;;) {
            if (s->tk.t != T_IDENT || o->ng == OQ_MAX_GROUP)
                return unexpected(s);
            o->gpos[o->ng] = s->tk.pos;
            o->glen[o->ng++] = s->tk.len;
            next(s);
            if (s->tk.t != T_COMMA)
                break;
            next(s);
        }
    }
    if (kw(s, "LIMIT")) {
        next(s);
        if (s->tk.t != T_NUM || !isdigit((unsigned char)s->q[s->tk.pos]) ||
            memchr(s->q + s->tk.pos, '.', s->tk.len) || s->tk.len > 9)
            return unexpected(s);
        s->limit = strtoll(s->q + s->tk.pos, NULL, 10);
        next(s);
    }
    if (s->tk.t != T_EOF)
        unexpected(s);
}

static void check_order_filter(struct soql *s, struct node *n)
{
    if (s->failed)
        return;
    if (n->kind != N_CMP) {
        for (size_t i = 0; i < n->nk; i++)
            check_order_filter(s, n->kids[i]);
        return;
    }
    if (!order_field(s->q + n->fpos, n->flen, n->fbuf, sizeof n->fbuf))
        return order_no_column(s, n->fpos, n->flen);
    n->field = n->fbuf;
    int is_date = strcmp(n->field, "EffectiveDate") == 0;
    if (n->ltype == L_NULL)
        return;
    if (is_date && n->ltype != L_DATE)
        fail(s, n->lpos, "INVALID_FIELD",
             "value of filter criterion for field 'EffectiveDate' must be of type date and "
             "should not be enclosed in quotes");
    else if (!is_date && n->ltype == L_DATE && !strstr(n->field, "__c"))
        fail(s, n->lpos, "INVALID_FIELD",
             "value of filter criterion for field '%s' must be of type string and should be "
             "enclosed in quotes",
             n->field);
}

static void check_order(struct soql *s, struct oq *o)
{
    if (s->failed)
        return;
    for (size_t i = 0; i < o->n && !s->failed; i++) {
        struct oitem *it = &o->it[i];
        if (!order_field(s->q + it->pos, it->len, it->field, sizeof it->field))
            return order_no_column(s, it->pos, it->len);
        if (it->agg == A_SUM && !strstr(it->field, "__c") && strcmp(it->field, "TotalAmount")) {
            fail(s, it->pos, "MALFORMED_QUERY", "field %s does not support aggregate operator SUM",
                 it->field);
            return;
        }
    }
    for (size_t g = 0; g < o->ng && !s->failed; g++)
        if (!order_field(s->q + o->gpos[g], o->glen[g], o->group[g], sizeof o->group[g]))
            return order_no_column(s, o->gpos[g], o->glen[g]);
    int aggregate = o->grouped;
    for (size_t i = 0; i < o->n; i++)
        aggregate |= o->it[i].agg != A_NONE;
    for (size_t i = 0; i < o->n && !s->failed; i++) {
        struct oitem *it = &o->it[i];
        if (!aggregate && it->alias_len) {
            /* an alias only exists in aggregate queries */
            fail(s, it->alias_pos, "MALFORMED_QUERY", "unexpected token: '%.*s'",
                 (int)it->alias_len, s->q + it->alias_pos);
            return;
        }
        if (aggregate && it->agg == A_NONE) {
            int ok = 0;
            for (size_t g = 0; g < o->ng && !ok; g++)
                ok = strcasecmp(o->group[g], it->field) == 0;
            if (!ok)
                fail(s, it->pos, "MALFORMED_QUERY", "Field must be grouped or aggregated: %s",
                     it->field);
        }
    }
    if (s->where)
        check_order_filter(s, s->where);
}

static int order_eval(struct node *n, json_t *rec)
{
    if (n->kind == N_AND || n->kind == N_OR) {
        for (size_t i = 0; i < n->nk; i++) {
            int r = order_eval(n->kids[i], rec);
            if (n->kind == N_AND && !r)
                return 0;
            if (n->kind == N_OR && r)
                return 1;
        }
        return n->kind == N_AND;
    }
    json_t *v = rec_get(rec, n->field);
    const char *sv = json_string_value(v);
    double d;
    int empty = !v || json_is_null(v) || (sv && !sv[0]);
    if (n->ltype == L_NULL || (n->ltype == L_STR && !n->str[0]))
        return empty;
    if (n->ltype == L_STR && sv && strcmp(n->field, "Id") == 0)
        return strncmp(sv, n->str, 15) == 0;
    if (n->ltype == L_STR && sv)
        return text_eq(sv, n->str);
    if (n->ltype == L_DATE && sv) /* a date field holds "YYYY-MM-DD" */
        return strncmp(sv, n->str, 10) == 0 && (sv[10] == '\0' || sv[10] == 'T');
    if (n->ltype == L_NUM && num_of(v, &d))
        return d == n->num;
    if (n->ltype == L_BOOL && json_is_boolean(v))
        return json_is_true(v) == n->b;
    return 0;
}

/* A value as REST writes it: numbers as doubles (see "Records" above), the rest as stored. */
static json_t *order_value(json_t *v)
{
    if (!v)
        return json_null();
    if (json_is_integer(v))
        return json_real((double)json_integer_value(v));
    return json_incref(v);
}

struct ogroup {
    json_t *key; /* array of the grouped values */
    long long *cnt;
    long long *sum; /* in 1e-8 units: exact for the currency amounts the gateway writes */
    int *has;
};

static json_t *aggregate_rows(struct oq *o, const char *q, json_t *matched, long long limit)
{
    struct ogroup *g = NULL;
    size_t ng = 0, i;
    json_t *rec, *rows = json_array();
    json_array_foreach(matched, i, rec)
    {
        json_t *key = json_array();
        for (size_t k = 0; k < o->ng; k++)
            json_array_append_new(key, order_value(rec_get(rec, o->group[k])));
        size_t gi = 0;
        while (gi < ng && !json_equal(g[gi].key, key))
            gi++;
        if (gi == ng) {
            struct ogroup *ng2 = realloc(g, (ng + 1) * sizeof *g);
            if (!ng2) {
                json_decref(key);
                break;
            }
            g = ng2;
            g[ng].key = key;
            g[ng].cnt = calloc(o->n, sizeof *g[ng].cnt);
            g[ng].sum = calloc(o->n, sizeof *g[ng].sum);
            g[ng].has = calloc(o->n, sizeof *g[ng].has);
            ng++;
        } else {
            json_decref(key);
        }
        for (size_t k = 0; k < o->n; k++) {
            json_t *v = rec_get(rec, o->it[k].field);
            double d;
            if (!g[gi].cnt || !g[gi].sum || !g[gi].has || !v || json_is_null(v))
                continue; /* COUNT(field) and SUM skip nulls */
            g[gi].cnt[k]++;
            if (o->it[k].agg == A_SUM && num_of(v, &d)) {
                g[gi].sum[k] += (long long)(d * 1e8 + (d < 0 ? -0.5 : 0.5));
                g[gi].has[k] = 1;
            }
        }
    }
    /* without GROUP BY an aggregate query answers one row, even over no records */
    if (!o->grouped && ng == 0 && (g = calloc(1, sizeof *g)) != NULL) {
        g[0].key = json_array();
        g[0].cnt = calloc(o->n, sizeof *g[0].cnt);
        g[0].sum = calloc(o->n, sizeof *g[0].sum);
        g[0].has = calloc(o->n, sizeof *g[0].has);
        ng = 1;
    }
    for (size_t gi = 0; gi < ng; gi++) {
        if ((limit < 0 || (long long)gi < limit) && g[gi].cnt && g[gi].sum && g[gi].has) {
            json_t *row = json_pack("{s:{s:s}}", "attributes", "type", "AggregateResult");
            int expr = 0;
            for (size_t k = 0; k < o->n; k++) {
                struct oitem *it = &o->it[k];
                char name[OQ_FIELD];
                if (it->alias_len)
                    snprintf(name, sizeof name, "%.*s", (int)it->alias_len, q + it->alias_pos);
                else if (it->agg != A_NONE)
                    snprintf(name, sizeof name, "expr%d", expr);
                else
                    snprintf(name, sizeof name, "%s", it->field);
                if (it->agg != A_NONE)
                    expr++; /* implied aliases number the aggregated items only */
                json_t *val;
                if (it->agg == A_COUNT)
                    val = json_integer(g[gi].cnt[k]);
                else if (it->agg == A_SUM)
                    val = g[gi].has[k] ? json_real((double)g[gi].sum[k] / 1e8) : json_null();
                else {
                    size_t gk = 0;
                    while (gk < o->ng && strcasecmp(o->group[gk], it->field) != 0)
                        gk++;
                    val = json_incref(json_array_get(g[gi].key, gk));
                    if (!val)
                        val = json_null();
                }
                json_object_set_new(row, name, val);
            }
            json_array_append_new(rows, row);
        }
        json_decref(g[gi].key);
        free(g[gi].cnt);
        free(g[gi].sum);
        free(g[gi].has);
    }
    free(g);
    return rows;
}

static void
order_query(struct pg_sim *sim, const char *q, const char *ver, struct pg_sim_reply *out)
{
    struct soql s = {0};
    struct oq *o = calloc(1, sizeof *o);
    if (!o) {
        pg_sim_sf_error(out, 500, "UNKNOWN_EXCEPTION", "out of memory");
        return;
    }
    s.p = sim->priv;
    s.q = q;
    s.n = strlen(q);
    s.order = 1;
    parse_order(&s, o);
    check_order(&s, o);
    if (s.failed) {
        reply_soql_error(&s, out);
        goto out;
    }
    int aggregate = o->grouped;
    for (size_t i = 0; i < o->n; i++)
        aggregate |= o->it[i].agg != A_NONE;
    json_t *matched = json_array(), *records;
    size_t i;
    json_t *r;
    pthread_mutex_lock(&sim->mu);
    json_array_foreach(json_object_get(sim->state, "orders"), i, r)
    {
        if (!s.where || order_eval(s.where, r))
            json_array_append(matched, r);
    }
    if (aggregate) {
        records = aggregate_rows(o, q, matched, s.limit);
    } else {
        records = json_array();
        json_array_foreach(matched, i, r)
        {
            if (s.limit >= 0 && (long long)i >= s.limit)
                break;
            char url[96];
            snprintf(url, sizeof url, "/services/data/%s/sobjects/Order/%s", ver,
                     json_string_value(json_object_get(r, "Id")));
            json_t *row = json_pack("{s:{s:s,s:s}}", "attributes", "type", "Order", "url", url);
            for (size_t k = 0; k < o->n; k++)
                json_object_set_new(row, o->it[k].field, order_value(rec_get(r, o->it[k].field)));
            json_array_append_new(records, row);
        }
    }
    pthread_mutex_unlock(&sim->mu);
    json_decref(matched);
    pg_sim_reply_json(out, 200,
                      json_pack("{s:I,s:b,s:o}", "totalSize", (json_int_t)json_array_size(records),
                                "done", 1, "records", records));
out:
    free(s.tk.str);
    node_free(s.where);
    free(s.msg);
    free(o);
}

/* 1 when the query reads FROM Order (the first FROM outside parentheses). */
static int from_order(const char *q)
{
    struct soql s = {0};
    s.q = q;
    s.n = strlen(q);
    int depth = 0, r = 0;
    for (next(&s); s.tk.t != T_EOF && !s.failed; next(&s)) {
        if (s.tk.t == T_LP)
            depth++;
        else if (s.tk.t == T_RP)
            depth--;
        else if (depth == 0 && kw(&s, "FROM")) {
            next(&s);
            r = s.tk.t == T_IDENT && s.tk.len == 5 && strncasecmp(s.q + s.tk.pos, "Order", 5) == 0;
            break;
        }
    }
    free(s.tk.str);
    free(s.msg);
    return r;
}

static void
query(struct pg_sim *sim, const struct pg_sim_req *req, const char *ver, struct pg_sim_reply *out)
{
    struct soql s = {0};
    char *q = pg_sim_form_get(req->query, strlen(req->query), "q");
    s.p = sim->priv;
    if (!q || !q[strspn(q, " \t\r\n")]) {
        pg_sim_sf_error(out, 400, "MALFORMED_QUERY", "A query string has to be specified");
        free(q);
        return;
    }
    if (from_order(q)) { /* Orders have their own grammar: aggregates, GROUP BY, dates */
        order_query(sim, q, ver, out);
        free(q);
        return;
    }
    s.q = q;
    s.n = strlen(q);
    parse(&s);
    check(&s);
    if (s.failed) {
        reply_soql_error(&s, out);
        goto out;
    }
    json_t *fields = json_array(), *records = json_array();
    for (size_t i = 0; i < s.nsel; i++)
        json_array_append_new(fields, json_string(s.sel[i]));
    size_t i;
    json_t *c;
    pthread_mutex_lock(&sim->mu);
    json_array_foreach(json_object_get(sim->state, "contacts"), i, c)
    {
        if (s.limit >= 0 && (long long)json_array_size(records) >= s.limit)
            break;
        if (!s.where || eval(s.p, s.where, c))
            json_array_append_new(records, render(sim, c, ver, fields));
    }
    pthread_mutex_unlock(&sim->mu);
    json_decref(fields);
    pg_sim_reply_json(out, 200,
                      json_pack("{s:I,s:b,s:o}", "totalSize", (json_int_t)json_array_size(records),
                                "done", 1, "records", records));
out:
    free(s.tk.str);
    node_free(s.where);
    free(s.msg);
    free(q);
}

/* ?fields=a,b: the describe's names in the order given; NULL + out set on an unknown field. */
static int fields_param(struct pg_sim *sim,
                        const struct pg_sim_req *req,
                        json_t **fields,
                        struct pg_sim_reply *out)
{
    char *f = pg_sim_form_get(req->query, strlen(req->query), "fields");
    *fields = NULL;
    if (!f || !f[0]) {
        free(f);
        return 0;
    }
    *fields = json_array();
    int has_id = 0;
    for (char *save = NULL, *t = strtok_r(f, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        size_t n = strlen(t);
        while (n && isspace((unsigned char)t[n - 1]))
            n--;
        const char *c = field_canon(sim->priv, t, n);
        if (!c) {
            char msg[1024];
            snprintf(msg, sizeof msg, "No such column '%.*s' on entity 'Contact'. %s", (int)n, t,
                     NO_COLUMN_TAIL);
            pg_sim_sf_error(out, 400, "INVALID_FIELD", msg);
            json_decref(*fields);
            *fields = NULL;
            free(f);
            return -1;
        }
        has_id |= strcmp(c, "Id") == 0;
        json_array_append_new(*fields, json_string(c));
    }
    if (!has_id) /* the record's Id comes back even when not asked for [M] */
        json_array_append_new(*fields, json_string("Id"));
    free(f);
    return 0;
}

static void by_id(struct pg_sim *sim,
                  const struct pg_sim_req *req,
                  const char *ver,
                  const char *id,
                  struct pg_sim_reply *out)
{
    json_t *fields;
    if (!id_ok(id)) { /* not an id: Salesforce reads the segment as an external id field */
        char msg[512];
        snprintf(msg, sizeof msg,
                 "Provided external ID field does not exist or is not accessible: %s", id);
        pg_sim_sf_error(out, 404, "NOT_FOUND", msg);
        return;
    }
    if (fields_param(sim, req, &fields, out) != 0)
        return;
    pthread_mutex_lock(&sim->mu);
    json_t *c = pg_sim_sf_find_contact(sim, id);
    json_t *r = c ? render(sim, c, ver, fields) : NULL;
    pthread_mutex_unlock(&sim->mu);
    json_decref(fields);
    if (r)
        pg_sim_reply_json(out, 200, r);
    else
        pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
}

static void by_external_id(struct pg_sim *sim,
                           const struct pg_sim_req *req,
                           const char *ver,
                           const char *field,
                           size_t flen,
                           const char *value,
                           struct pg_sim_reply *out)
{
    const struct pg_sim_config *cfg = sim->cfg;
    const char *canon = NULL;
    for (int i = 0; i < cfg->sf.n_external_id_fields && !canon; i++)
        if (strlen(cfg->sf.external_id_fields[i]) == flen &&
            strncasecmp(cfg->sf.external_id_fields[i], field, flen) == 0)
            canon = field_canon(sim->priv, field, flen);
    if (!canon) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "Provided external ID field does not exist or is not accessible: %.*s", (int)flen,
                 field);
        pg_sim_sf_error(out, 404, "NOT_FOUND", msg);
        return;
    }
    json_t *fields;
    if (fields_param(sim, req, &fields, out) != 0)
        return;
    json_t *matches = json_array(), *c;
    size_t i;
    int numeric = strcmp(field_type(sim->priv, canon), "double") == 0;
    pthread_mutex_lock(&sim->mu);
    json_t *contacts = json_object_get(sim->state, "contacts");
    struct sf_ext_ix *x = numeric || !value[0] ? NULL : ext_ix_get(sim, canon, contacts);
    size_t found[64], nfound = 0;
    if (x) {
        /* the candidates with the value's hash, checked, in the array's order (as the scan) */
        uint64_t h = text_hash(value);
        for (size_t s = (size_t)h & (x->cap - 1); x->slots[s].idx; s = (s + 1) & (x->cap - 1)) {
            json_t *v = json_object_get(json_array_get(contacts, x->slots[s].idx - 1), canon);
            if (x->slots[s].h != h || !json_is_string(v) || !text_eq(json_string_value(v), value))
                continue;
            if (nfound == sizeof found / sizeof found[0]) {
                x = NULL; /* more than 64 share the value: the scan below lists them all */
                break;
            }
            found[nfound++] = x->slots[s].idx - 1;
        }
    }
    if (x) {
        qsort(found, nfound, sizeof found[0], size_cmp);
        for (size_t k = 0; k < nfound; k++)
            json_array_append(matches, json_array_get(contacts, found[k]));
    } else {
        json_array_foreach(contacts, i, c)
        {
            json_t *v = json_object_get(c, canon);
            int hit = value[0] &&
                      (numeric ? json_is_number(v) && json_number_value(v) == strtod(value, NULL)
                               : json_is_string(v) && text_eq(json_string_value(v), value));
            if (hit)
                json_array_append(matches, c);
        }
    }
    json_t *r = NULL;
    if (json_array_size(matches) == 1) {
        r = render(sim, json_array_get(matches, 0), ver, fields);
    } else if (json_array_size(matches) > 1) { /* 300: the matching records' URLs [M] */
        r = json_array();
        json_array_foreach(matches, i, c)
        {
            char url[96];
            snprintf(url, sizeof url, "/services/data/%s/sobjects/Contact/%s", ver,
                     json_string_value(json_object_get(c, "Id")));
            json_array_append_new(r, json_string(url));
        }
    }
    size_t n = json_array_size(matches);
    json_decref(matches); /* holds references into the state: drop them under the lock */
    pthread_mutex_unlock(&sim->mu);
    json_decref(fields);
    if (n == 0)
        pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
    else
        pg_sim_reply_json(out, n == 1 ? 200 : 300, r);
}

static void method_not_allowed(const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    char msg[128];
    snprintf(msg, sizeof msg, "HTTP Method '%s' not allowed. Allowed are GET,HEAD", req->method);
    pg_sim_sf_error(out, 405, "METHOD_NOT_ALLOWED", msg);
    pg_sim_reply_header(out, "Allow", "GET,HEAD");
}

void pg_sim_sf_data(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    if (!pg_sim_sf_authorized(sim, req, out) || pg_sim_sf_api_call(sim, out))
        return;
    /* "vNN.0" with 31 <= NN <= salesforce.api_version, as GET /services/data/ lists them */
    const char *v = req->path + strlen("/services/data/");
    char ver[16];
    int major = 0, len = 0;
    if (sscanf(v, "v%3d.0%n", &major, &len) != 1 || len < 5 || (v[len] && v[len] != '/') ||
        !isdigit((unsigned char)v[1]) || major < 31 || major > atoi(sim->cfg->sf.api_version)) {
        pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
        return;
    }
    snprintf(ver, sizeof ver, "v%d.0", major);
    const char *rest = v + len;
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!rest[0] || strcmp(rest, "/") == 0) {
        char a[64], b[64];
        snprintf(a, sizeof a, "/services/data/%s/sobjects", ver);
        snprintf(b, sizeof b, "/services/data/%s/query", ver);
        if (get)
            pg_sim_reply_json(out, 200, json_pack("{s:s,s:s}", "sobjects", a, "query", b));
        else
            method_not_allowed(req, out);
        return;
    }
    if (strcmp(rest, "/query") == 0 || strcmp(rest, "/query/") == 0) {
        if (get)
            query(sim, req, ver, out);
        else
            method_not_allowed(req, out);
        return;
    }
    if (strncmp(rest, "/sobjects/", 10) == 0 && strncasecmp(rest + 10, "Contact/", 8) == 0 &&
        rest[18] && get) {
        const char *a = rest + 18, *slash = strchr(a, '/');
        if (!slash)
            by_id(sim, req, ver, a, out);
        else if (slash > a)
            by_external_id(sim, req, ver, a, (size_t)(slash - a), slash + 1, out);
        else
            pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
        return;
    }
    /* not served (yet): still a counted call */
    pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
}
