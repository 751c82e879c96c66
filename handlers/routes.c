/*
 * The route table: every public endpoint is one row here. The OpenAPI document (openapi/)
 * describes the same rows; a contract test keeps the two in step.
 */
#include "handlers/handlers.h"

static const struct pg_route routes[] = {
    /* method, path, name (metrics label), handler, auth, body cap (0 = http.body_max_bytes),
     * inline_ok (1 only for handlers that never block: they run on the I/O thread) */
    {"GET", "/healthz", "healthz", pg_hnd_healthz, PG_AUTH_NONE, 0, 1},
    {"GET", "/readyz", "readyz", pg_hnd_readyz, PG_AUTH_NONE, 0, 0},
    {"GET", "/metrics", "metrics", pg_hnd_metrics, PG_AUTH_NONE, 0, 0},
};

const struct pg_route *pg_hnd_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
