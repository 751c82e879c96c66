/*
 * The route table: every public endpoint is one row here. The OpenAPI document (openapi/)
 * describes the same rows; a contract test keeps the two in step.
 */
#include <stdlib.h>

#include "handlers/handlers.h"
#include "server/config.h"

static struct pg_route routes[] = {
    /* method, path, name (metrics label), handler, auth, body cap (0 = http.body_max_bytes),
     * inline_ok (1 only for handlers that never block: they run on the I/O thread) */
    {"GET", "/healthz", "healthz", pg_hnd_healthz, PG_AUTH_NONE, 0, 1},
    {"GET", "/readyz", "readyz", pg_hnd_readyz, PG_AUTH_NONE, 0, 0},
    {"GET", "/metrics", "metrics", pg_hnd_metrics, PG_AUTH_NONE, 0, 0},
    /* partner documentation (served from memory) */
    {"GET", "/openapi.json", "openapi", pg_hnd_openapi_json, PG_AUTH_NONE, 0, 1},
    {"GET", "/docs", "docs", pg_hnd_docs, PG_AUTH_NONE, 0, 1},
    {"GET", "/docs/{asset}", "docs_asset", pg_hnd_docs_asset, PG_AUTH_NONE, 0, 1},
    /* Salesforce → MICROS. The Outbound Message's org check needs the body: the handler does it. */
    {"POST", "/v1/salesforce/outbound-messages", "sf_outbound", pg_hnd_sf_outbound, PG_AUTH_NONE, 0,
     0},
    {"POST", "/v1/salesforce/events", "sf_events", pg_hnd_sf_events, PG_AUTH_SF_JWT, 0, 0},
    /* POS lookups */
    {"GET", "/v1/loyalty/members", "member_lookup", pg_hnd_member_lookup, PG_AUTH_STATION, 0, 0},
    {"GET", "/v1/loyalty/members/{salesforce_id}", "member_get", pg_hnd_member_get, PG_AUTH_STATION,
     0, 0},
    /* MICROS → Salesforce: guest checks pushed by middleware (station key or checks:write) */
    {"POST", "/v1/micros/guest-checks", "micros_guest_checks", pg_hnd_micros_guest_checks,
     PG_AUTH_STATION, 0, 0},
    /* operators */
    {"POST", "/v1/admin/checks/poll", "admin_checks_poll", pg_hnd_checks_poll_now, PG_AUTH_ADMIN, 0,
     0},
    {"GET", "/v1/admin/dead-letters", "admin_dead_letters", pg_hnd_dead_letters_list, PG_AUTH_ADMIN,
     0, 0},
    {"POST", "/v1/admin/dead-letters/replay", "admin_dead_letters_replay",
     pg_hnd_dead_letters_replay_all, PG_AUTH_ADMIN, 0, 0},
    {"POST", "/v1/admin/dead-letters/{id}/replay", "admin_dead_letter_replay",
     pg_hnd_dead_letter_replay, PG_AUTH_ADMIN, 0, 0},
    {"DELETE", "/v1/admin/dead-letters/{id}", "admin_dead_letter_drop", pg_hnd_dead_letter_drop,
     PG_AUTH_ADMIN, 0, 0},
    /* checks the loader could not put into Salesforce; a replay loads them again */
    {"GET", "/v1/admin/check-dead-letters", "admin_check_dead_letters",
     pg_hnd_check_dead_letters_list, PG_AUTH_ADMIN, 0, 0},
    {"POST", "/v1/admin/check-dead-letters/replay", "admin_check_dead_letters_replay",
     pg_hnd_check_dead_letters_replay_all, PG_AUTH_ADMIN, 0, 0},
    {"POST", "/v1/admin/check-dead-letters/{id}/replay", "admin_check_dead_letter_replay",
     pg_hnd_check_dead_letter_replay, PG_AUTH_ADMIN, 0, 0},
    {"GET", "/v1/admin/customers/{salesforce_id}/sync-status", "admin_sync_status",
     pg_hnd_sync_status, PG_AUTH_ADMIN, 0, 0},
    {"GET", "/v1/admin/audit", "admin_audit", pg_hnd_audit, PG_AUTH_ADMIN, 0, 0},
    /* MICROS → Salesforce reconciliation: admin key, or a partner JWT with reconciliation:read */
    {"GET", "/v1/reconciliation", "reconciliation", pg_hnd_reconciliation, PG_AUTH_ADMIN, 0, 0},
};

const struct pg_route *pg_hnd_routes(size_t *n)
{
    const struct pg_config *cfg = pg_hnd.app ? pg_hnd.app->cfg : NULL;
    for (size_t i = 0; cfg && i < sizeof routes / sizeof routes[0]; i++) {
        if (routes[i].handler == pg_hnd_sf_outbound)
            routes[i].body_max = (size_t)cfg->sf_outbound_body_max;
        else if (routes[i].handler == pg_hnd_sf_events)
            routes[i].body_max = (size_t)cfg->sf_events_body_max;
        else if (routes[i].handler == pg_hnd_micros_guest_checks)
            routes[i].body_max = (size_t)cfg->checks_body_max;
    }
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
