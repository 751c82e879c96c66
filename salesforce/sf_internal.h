/*
 * Helpers the Salesforce REST clients share (rest.c defines them; collections.c uses them).
 * Internal to salesforce/: the pg_sf__ prefix marks cross-file internals.
 */
#ifndef PG_SF_INTERNAL_H
#define PG_SF_INTERNAL_H

#include <stdint.h>

#include "salesforce/rest.h"

/** Fill err (may be NULL) with a status, errorCode and message (NULLs become ""). */
void pg_sf__set_err(struct pg_sf_error *err, long status, const char *code, const char *msg);

/** True when v is an API version like "66.0" (it is pasted into URL paths). */
int pg_sf__version_ok(const char *v);

/** Map an httpc failure to the client's codes, noting what failed in err. */
int pg_sf__transport_error(int rc, int64_t deadline_ms, const char *what, struct pg_sf_error *err);

#endif
