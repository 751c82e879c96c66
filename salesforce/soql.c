#include "salesforce/soql.h"

#include <stdint.h>
#include <string.h>

#define IDENT_MAX 128

/* Undo a partial append so a rejected value never leaves half a literal in the query. */
static void truncate_to(struct pg_buf *b, size_t len)
{
    if (b->data && b->len > len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

/* Length of the valid UTF-8 sequence starting at p (lead byte >= 0x80), or 0 when invalid. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0; /* continuation byte, C0/C1 overlong leads, F5..FF */
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) /* also catches the terminating NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int pg_soql_escape(struct pg_buf *out, const char *value)
{
    if (!out || !value)
        return PG_EINVAL;
    size_t start = out->len;
    const unsigned char *p = (const unsigned char *)value;
    int rc = PG_OK;
    while (*p && rc == PG_OK) {
        const char *esc = NULL;
        switch (*p) {
        case '\\':
            esc = "\\\\";
            break;
        case '\'':
            esc = "\\'";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            break;
        }
        if (esc) {
            rc = pg_buf_append(out, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7F) {
            rc = PG_EINVAL;
        } else if (*p < 0x80) {
            /* Copy a run of plain ASCII at once. */
            size_t n = 1;
            while (p[n] >= 0x20 && p[n] < 0x7F && !strchr("\\'\"", p[n]))
                n++;
            rc = pg_buf_append(out, p, n);
            p += n;
        } else {
            size_t n = utf8_len(p);
            rc = n ? pg_buf_append(out, p, n) : PG_EINVAL;
            p += n;
        }
    }
    if (rc)
        truncate_to(out, start);
    return rc;
}

static int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the identifier at s (stopping at any other character), 0 when none is there. */
static size_t ident_span(const char *s)
{
    if (!is_alpha(s[0]))
        return 0;
    size_t n = 1;
    while (is_alpha(s[n]) || is_digit(s[n]) || s[n] == '_')
        n++;
    if (n > IDENT_MAX || s[n - 1] == '_')
        return 0;
    return n;
}

int pg_soql_ident_ok(const char *s)
{
    if (!s)
        return 0;
    size_t n = ident_span(s);
    return n > 0 && s[n] == '\0';
}

/* Walk a field list; when out is non-NULL append it without spaces. Returns PG_OK/PG_EINVAL. */
static int fields_walk(const char *s, struct pg_buf *out)
{
    if (!s)
        return PG_EINVAL;
    const char *p = s;
    for (;;) {
        while (*p == ' ')
            p++;
        /* One path: ident(.ident)* */
        for (;;) {
            size_t n = ident_span(p);
            if (!n)
                return PG_EINVAL;
            if (out && pg_buf_append(out, p, n))
                return PG_ETOOLARGE;
            p += n;
            if (*p != '.')
                break;
            if (out && pg_buf_append(out, ".", 1))
                return PG_ETOOLARGE;
            p++;
        }
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return PG_OK;
        if (*p != ',')
            return PG_EINVAL;
        if (out && pg_buf_append(out, ",", 1))
            return PG_ETOOLARGE;
        p++;
    }
}

int pg_soql_fields_ok(const char *s)
{
    return fields_walk(s, NULL) == PG_OK;
}

int pg_soql_select_eq(struct pg_buf *out,
                      const char *fields,
                      const char *object,
                      const char *field,
                      const char *value,
                      int limit)
{
    if (!out || !value || !pg_soql_fields_ok(fields) || !pg_soql_ident_ok(object) ||
        !pg_soql_ident_ok(field) || limit < 1 || limit > 2000)
        return PG_EINVAL;
    size_t start = out->len;
    int rc = pg_buf_puts(out, "SELECT ");
    if (!rc)
        rc = fields_walk(fields, out);
    if (!rc)
        rc = pg_buf_printf(out, " FROM %s WHERE %s = '", object, field);
    if (!rc)
        rc = pg_soql_escape(out, value);
    if (!rc)
        rc = pg_buf_printf(out, "' LIMIT %d", limit);
    if (rc)
        truncate_to(out, start);
    return rc;
}

int pg_url_encode(struct pg_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!out || !s)
        return PG_EINVAL;
    size_t start = out->len;
    int rc = PG_OK;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == PG_OK; p++) {
        if (is_alpha((char)*p) || is_digit((char)*p) || strchr("-._~", *p)) {
            rc = pg_buf_append(out, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = pg_buf_append(out, e, 3);
        }
    }
    if (rc)
        truncate_to(out, start);
    return rc;
}
