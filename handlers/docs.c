/*
 * Partner documentation: the OpenAPI document (GET /openapi.json) and an offline docs page
 * (GET /docs) whose script is served from /docs/{asset}. All three are built into the binary
 * (openapi/CMakeLists.txt), so the gateway never reads the source tree at run time; a gateway
 * built without the npm package of the docs page answers 503 for the page and its assets.
 */
#include <string.h>

#include "handlers/handlers.h"
#include "openapi/embed.h"

/* Only the gateway's own origin: the page must work offline and never call a CDN. Redoc
 * injects styles and runs its search index in a blob: worker. */
#define DOCS_CSP                                                                                   \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "                       \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

struct docs_asset {
    const char *name;
    const char *content_type;
};

/* What /docs/{asset} serves: an allow-list, never a path into the file table. */
static const struct docs_asset assets[] = {
    {"redoc.standalone.js", "application/javascript; charset=utf-8"},
};

static const struct pg_embed_file *embedded(const char *name)
{
    for (size_t i = 0; i < pg_embed_nfiles; i++)
        if (strcmp(pg_embed_files[i].name, name) == 0)
            return pg_embed_files[i].len ? &pg_embed_files[i] : NULL;
    return NULL;
}

static int docs_not_installed(struct pg_req *req)
{
    return pg_req_problem(req, 503,
                          "docs assets not installed (build the gateway after `npm ci` in the "
                          "source tree; scripts/test does)",
                          NULL);
}

int pg_hnd_openapi_json(struct pg_req *req)
{
    const struct pg_embed_file *f = embedded("openapi.json");
    if (!f)
        return pg_req_problem(req, 500, "the OpenAPI document is not built in", NULL);
    pg_req_add_header(req, "Cache-Control", "no-cache");
    pg_req_add_header(req, "Access-Control-Allow-Origin", "*");
    return pg_req_reply(req, 200, "application/json", (const char *)f->data, f->len);
}

int pg_hnd_docs(struct pg_req *req)
{
    const struct pg_embed_file *page = embedded("docs.html");
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (!embedded(assets[i].name))
            return docs_not_installed(req);
    if (!page)
        return docs_not_installed(req);
    pg_req_add_header(req, "Content-Security-Policy", DOCS_CSP);
    pg_req_add_header(req, "X-Content-Type-Options", "nosniff");
    pg_req_add_header(req, "Cache-Control", "no-cache");
    return pg_req_reply(req, 200, "text/html; charset=utf-8", (const char *)page->data, page->len);
}

int pg_hnd_docs_asset(struct pg_req *req)
{
    const char *name = pg_req_param(req, "asset");
    for (size_t i = 0; name && i < sizeof assets / sizeof assets[0]; i++) {
        if (strcmp(assets[i].name, name) != 0)
            continue;
        const struct pg_embed_file *f = embedded(name);
        if (!f)
            return docs_not_installed(req);
        pg_req_add_header(req, "Cache-Control", "public, max-age=3600");
        pg_req_add_header(req, "X-Content-Type-Options", "nosniff");
        return pg_req_reply(req, 200, assets[i].content_type, (const char *)f->data, f->len);
    }
    return pg_req_problem(req, 404, "no such docs asset", NULL);
}
