/*
 * A growable byte buffer with a hard cap set at init. Every body, upstream reply and assembled
 * message goes through one of these so no input can make us allocate without bound.
 */
#ifndef PG_BUF_H
#define PG_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "server/error.h"

struct pg_buf {
    char *data; /* owned; always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
};

/** Initialise an empty buffer that may hold at most max bytes. Allocates nothing yet. */
void pg_buf_init(struct pg_buf *b, size_t max);

/** Append n bytes. Returns PG_ETOOLARGE when len would exceed max (buffer unchanged). */
int pg_buf_append(struct pg_buf *b, const void *p, size_t n) PG_WARN_UNUSED;

/** Append a C string. */
int pg_buf_puts(struct pg_buf *b, const char *s) PG_WARN_UNUSED;

/** Append printf-formatted text. */
int pg_buf_printf(struct pg_buf *b, const char *fmt, ...) PG_WARN_UNUSED
    __attribute__((format(printf, 2, 3)));

/** Empty the buffer, keeping its memory. */
void pg_buf_reset(struct pg_buf *b);

/** Give up ownership of the data (caller frees with free()); the buffer becomes empty. */
char *pg_buf_steal(struct pg_buf *b);

/** Release the memory. */
void pg_buf_free(struct pg_buf *b);

#endif
