/*
 * The gateway's salesforce.rest.* settings turned into a token source. Lookups, the check loader
 * and reconciliation each hold one (their token requests have their own time budgets: a cashier
 * waits at most lookup.budget_ms, a loader call checks.load.timeout_ms), built here the same way.
 */
#ifndef PG_SF_CONFIG_H
#define PG_SF_CONFIG_H

#include <stddef.h>

#include "salesforce/oauth.h"
#include "server/config.h"
#include "server/error.h"

/**
 * A token source for salesforce.rest.* (login_url, audience, client_id, username, private_key,
 * token_ttl_s), whose token requests connect within connect_timeout_ms and finish within
 * timeout_ms. PG_ECONFIG with a reason naming the key (why) when a required key is missing or
 * the private key is not a usable RSA key; `who` ("lookups", "checks.load"...) starts the reason.
 * cfg is borrowed; *out is new (pg_sf_oauth_free).
 */
int pg_sf_oauth_from_config(const struct pg_config *cfg,
                            const char *who,
                            int connect_timeout_ms,
                            int timeout_ms,
                            struct pg_sf_oauth **out,
                            char *why,
                            size_t whysz) PG_WARN_UNUSED;

#endif
