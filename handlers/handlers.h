/*
 * Endpoint handlers and the one route table that maps method + path to them.
 * A handler parses, authorises, calls a flow and writes the reply; nothing else.
 */
#ifndef PG_HANDLERS_H
#define PG_HANDLERS_H

#include <stddef.h>

#include "server/app.h"
#include "server/http.h"

/** Prepare handler state and register metrics collectors. app is borrowed until shutdown. */
int pg_hnd_init(const struct pg_app *app) PG_WARN_UNUSED;

/** Release handler state. */
void pg_hnd_shutdown(void);

/** The route table (static storage). */
const struct pg_route *pg_hnd_routes(size_t *n);

/* health.c */
int pg_hnd_healthz(struct pg_req *req);
int pg_hnd_readyz(struct pg_req *req);
int pg_hnd_metrics(struct pg_req *req);

#endif
