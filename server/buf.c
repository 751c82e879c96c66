#include "server/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pg_buf_init(struct pg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int buf_reserve(struct pg_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return PG_ETOOLARGE;
    size_t need = b->len + extra + 1; /* room for the NUL */
    if (need <= b->cap)
        return PG_OK;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    char *n = realloc(b->data, ncap);
    if (!n)
        return PG_ENOMEM;
    b->data = n;
    b->cap = ncap;
    return PG_OK;
}

int pg_buf_append(struct pg_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PG_OK;
}

int pg_buf_puts(struct pg_buf *b, const char *s)
{
    return pg_buf_append(b, s, strlen(s));
}

int pg_buf_printf(struct pg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PG_EINVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PG_OK;
}

void pg_buf_reset(struct pg_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *pg_buf_steal(struct pg_buf *b)
{
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void pg_buf_free(struct pg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
