/* Salesforce timestamps, turned into epoch milliseconds for version (staleness) comparisons. */
#ifndef PG_SF_DATETIME_H
#define PG_SF_DATETIME_H

#include <stdint.h>

#include "server/error.h"

/**
 * Parse an ISO 8601 datetime as Salesforce writes them: "2026-03-02T14:05:11.000Z" (SOAP,
 * Platform Events), "2026-03-02T14:05:11Z" and "2026-03-02T14:05:11.000+0000" (REST). Also
 * accepted: 1-9 fraction digits (truncated to ms) and any offset as +hhmm / +hh:mm / -hhmm.
 * Fields are range-checked (Feb 30 is refused); years 0001-9999. Returns PG_EINVAL otherwise.
 */
int pg_sf_parse_datetime(const char *s, int64_t *epoch_ms) PG_WARN_UNUSED;

#endif
