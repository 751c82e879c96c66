/*
 * Endpoint handlers and the one route table that maps method + path to them.
 * A handler parses, authorises, calls a flow and writes the reply; nothing else.
 */
#ifndef PG_HANDLERS_H
#define PG_HANDLERS_H

#include <stddef.h>

#include "server/app.h"
#include "server/http.h"

struct pg_jwt_keyset;
struct pg_map;
struct pg_sf_oauth;
struct pg_sf_rest;

/* What the handlers share, built once from the configuration by pg_hnd_prepare. */
struct pg_hnd_state {
    const struct pg_app *app;
    struct pg_jwt_keyset *sf_keys;      /* keys that sign Platform Event callbacks */
    struct pg_jwt_keyset *partner_keys; /* keys that sign partner tokens */
    struct pg_map *map;                 /* Salesforce fields → canonical updates */
    struct pg_sf_oauth *sf_oauth;       /* Salesforce token (NULL: REST not configured) */
    struct pg_sf_rest *sf_rest;         /* Salesforce REST client for lookups on a miss */
};

extern struct pg_hnd_state pg_hnd;

/**
 * Validate and compile what the handlers need from the configuration (JWT keys, field map).
 * Also used by --check-config. On failure err names the problem. app is borrowed until
 * pg_hnd_shutdown.
 */
int pg_hnd_prepare(const struct pg_app *app, char *err, size_t errsz) PG_WARN_UNUSED;

/** Register metrics collectors; call once after pg_hnd_prepare, before serving. */
int pg_hnd_init(void) PG_WARN_UNUSED;

/** Release handler state. */
void pg_hnd_shutdown(void);

/** The route table (static storage, body caps filled from the configuration). */
const struct pg_route *pg_hnd_routes(size_t *n);

/** The authorizer for routes whose policy is not PG_AUTH_NONE (see pg_http_opts). */
int pg_hnd_authorize(struct pg_req *req, enum pg_auth_policy policy);

/**
 * The same without waiting on anything (for a route's fast path on an I/O thread): PG_OK with
 * the principal set, a refusal already replied, or PG_HTTP_TO_WORKER when the check needs Redis
 * (a station key kept there) or the policy has no such check.
 */
int pg_hnd_authorize_fast(struct pg_req *req, enum pg_auth_policy policy);

/* health.c */
int pg_hnd_healthz(struct pg_req *req);
int pg_hnd_readyz(struct pg_req *req);
int pg_hnd_metrics(struct pg_req *req);

/* docs.c: the OpenAPI document and the offline docs page */
int pg_hnd_openapi_json(struct pg_req *req);
int pg_hnd_docs(struct pg_req *req);
int pg_hnd_docs_asset(struct pg_req *req);

/* salesforce.c */
int pg_hnd_sf_outbound(struct pg_req *req);
int pg_hnd_sf_events(struct pg_req *req);

/* loyalty.c */
int pg_hnd_member_lookup(struct pg_req *req);
int pg_hnd_member_get(struct pg_req *req);
/* The routes' fast paths (pg_http_opts.fast_path): a lookup's fresh cache hit is answered on
 * the I/O thread. */
pg_handler_fn pg_hnd_fast_path(const struct pg_route *route);
int pg_hnd_loyalty_metrics(struct pg_buf *out);

/* idempotency.c: Idempotency-Key on partner POSTs. A handler calls begin first (slot receives
 * the Redis key, at least 512 bytes): PG_OK means run and then call finish with the slot; any
 * other code means the reply (stored replay, 409, 422, 400, 503) is already set. */
int pg_hnd_idem_begin(struct pg_req *req, char *slot, size_t slotsz);
void pg_hnd_idem_finish(struct pg_req *req, const char *slot);

/* micros.c: guest checks pushed by MICROS middleware; a BI poll cycle on demand */
int pg_hnd_micros_guest_checks(struct pg_req *req);
int pg_hnd_checks_poll_now(struct pg_req *req);

/* recon.c: GET /v1/reconciliation (sync/recon.h); shutdown frees its reconciler */
int pg_hnd_reconciliation(struct pg_req *req);
void pg_hnd_recon_shutdown(void);

/* admin.c */
int pg_hnd_dead_letters_list(struct pg_req *req);
int pg_hnd_dead_letter_replay(struct pg_req *req);
int pg_hnd_dead_letters_replay_all(struct pg_req *req);
int pg_hnd_dead_letter_drop(struct pg_req *req);
int pg_hnd_check_dead_letters_list(struct pg_req *req);
int pg_hnd_check_dead_letter_replay(struct pg_req *req);
int pg_hnd_check_dead_letters_replay_all(struct pg_req *req);
int pg_hnd_sync_status(struct pg_req *req);
int pg_hnd_audit(struct pg_req *req);

#endif
