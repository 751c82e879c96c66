/*
 * Salesforce record ids (15-char case-sensitive, 18-char with a case-safe suffix) and the
 * Outbound Message organisation allow-list. Outbound Messages carry no signature, so the
 * OrganizationId check is the only thing tying a message to our org (salesforce-wire.md §1.6).
 */
#ifndef PG_AUTH_ORG_H
#define PG_AUTH_ORG_H

#include <stddef.h>

#include "server/error.h"

/**
 * True (1) when org_id is in the allow-list, else 0. Ids may be 15 or 18 chars on either side;
 * the 15-char case-sensitive prefix is compared, and when both are 18 chars the suffix too. An
 * 18-char id (either side) whose suffix is not the checksum of its prefix never matches; neither
 * does anything that is not 15/18 alphanumerics. The comparison runs over every list entry and
 * every compared byte without an early exit, so timing does not reveal a partial match.
 * Ownership: all borrowed. allowed may be NULL when n is 0; NULL entries never match.
 */
int pg_org_allowed(const char *const *allowed, size_t n, const char *org_id);

/** 1 when id is 15 alphanumerics, or 18 with the correct case-safe suffix; else 0. */
int pg_sf_id_valid(const char *id);

/**
 * Write the 18-char form of a 15-char id into out (outsz >= 19). A valid 18-char id is copied
 * as is; an 18-char id with a wrong suffix, or anything else, is PG_EINVAL (out set to "").
 */
int pg_sf_id_to18(const char *id15, char *out, size_t outsz) PG_WARN_UNUSED;

#endif
