/*
 * Files built into the gateway at build time (openapi/CMakeLists.txt runs openapi/embed.c):
 * the OpenAPI document, the docs page, and the docs page's script from the pinned npm package
 * (absent, len 0, when npm was not available at build time). The gateway never reads the
 * source tree at run time.
 */
#ifndef PG_OPENAPI_EMBED_H
#define PG_OPENAPI_EMBED_H

#include <stddef.h>

struct pg_embed_file {
    const char *name;          /* "openapi.json", "docs.html", "redoc.standalone.js" */
    const unsigned char *data; /* NUL-terminated (len does not count the NUL) */
    size_t len;                /* 0: not built in */
};

extern const struct pg_embed_file pg_embed_files[];
extern const size_t pg_embed_nfiles;

#endif
