/*
 * Canonical customer updates, and the configurable field map that produces them.
 *
 * Salesforce tells us about a customer in two shapes (an Outbound Message's sObject fields, a
 * Platform Event's payload) and with org-specific field names. The field map turns either into
 * one canonical update, the only shape the queue, the push worker and MICROS clients know:
 *
 *   {"salesforce_id", "loyalty_id", "card", "tier", "points", "email", "phone", "first_name",
 *    "last_name", "preferences": {name: value}, "version": epoch ms or null,
 *    "version_field", "object", "source"}
 *
 * Absent or nil Salesforce fields become JSON null (a nil clears the value in MICROS; a field the
 * map does not name is simply not part of the update).
 */
#ifndef PG_SYNC_UPDATE_H
#define PG_SYNC_UPDATE_H

#include <stdint.h>

#include <jansson.h>

#include "server/buf.h"
#include "server/error.h"

struct pg_map;

/**
 * Compile the "mapping" configuration object: {"<sObject or event type>": {"salesforce_id":
 * "Id", "loyalty_id": "...", "card", "tier", "points", "email", "phone", "first_name", "last_name",
 * "version": "<datetime field>", "preferences": {"<name>": "<field>"}}}. salesforce_id is
 * required; unknown keys are rejected naming them. cfg may be NULL (no type is configured).
 * Ownership: *out is new; free with pg_map_free. cfg is only read.
 */
int pg_map_new(const json_t *cfg, struct pg_map **out, char *err, size_t errsz) PG_WARN_UNUSED;

void pg_map_free(struct pg_map *m);

/** True when type (e.g. "Contact", "Loyalty_Update__e") has a field map. */
int pg_map_has(const struct pg_map *m, const char *type);

/**
 * Turn fields (an object: field name → string, number, bool or null) of the given type into a
 * canonical update. source is "outbound_message" or "platform_event". *version is the parsed
 * version in epoch ms, or -1 when the map names no version field or the record has none.
 * Fails with PG_EINVAL (and a reason) when the type is unmapped, the Salesforce id is missing or
 * the version field is not a Salesforce datetime.
 * Ownership: *update is new (json_decref); fields is borrowed.
 */
int pg_map_apply(const struct pg_map *m,
                 const char *type,
                 const json_t *fields,
                 const char *source,
                 json_t **update,
                 int64_t *version,
                 char *err,
                 size_t errsz) PG_WARN_UNUSED;

/**
 * Append the Salesforce field names the map of type reads, comma-separated (for a REST
 * ?fields= list or a SOQL SELECT). PG_EINVAL when the type has no map.
 */
int pg_map_fields(const struct pg_map *m, const char *type, struct pg_buf *out) PG_WARN_UNUSED;

#endif
