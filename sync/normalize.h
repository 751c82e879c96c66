/*
 * Normalising the identifiers a cashier types (e-mail, phone) so that two spellings of the same
 * customer share one cache key and one Salesforce query value.
 */
#ifndef PG_SYNC_NORMALIZE_H
#define PG_SYNC_NORMALIZE_H

#include <stddef.h>

#include "server/error.h"

/* Longest normalised e-mail (254) plus NUL; longest E.164 ("+" and 15 digits) plus NUL. */
#define PG_NORM_EMAIL_MAX 255
#define PG_NORM_PHONE_MAX 17

/**
 * Trim surrounding whitespace and lower-case; then check the syntax: exactly one '@'; a local
 * part of 1..64 characters from RFC 5322 atext (letters, digits and !#$%&'*+/=?^_`{|}~-) with
 * dots only between atoms (so no spaces, double quotes, quoted local parts or comments); a domain
 * of at least two dot-separated labels, each 1..63 characters of [a-z0-9-] not starting or ending
 * with '-'; total length at most 254. Non-ASCII addresses are rejected.
 * Returns PG_OK, PG_EINVAL (bad syntax, NULL), PG_ETOOLARGE (outsz too small for the result).
 * Ownership: in borrowed; writes a NUL-terminated string to out ("" on failure).
 */
int pg_norm_email(const char *in, char *out, size_t outsz) PG_WARN_UNUSED;

/**
 * Normalise a phone number to E.164 "+<cc><nsn>" (8..15 digits in all).
 * Accepted input: digits with spaces, '-', '.', '/', '(' and ')' as separators, and either a
 * leading '+' or the default country's international prefix ("00"; "011" for NANP) for an
 * international number; anything else is a national number of default_country (NULL: "US").
 * Country rules come from a table keyed by ISO 3166 code (US, CA: "1", NANP: 10 digits, area
 * code not starting with 0 or 1, an optional leading trunk "1"; GB "44", DE "49",
 * FR "33": the national trunk '0' is dropped, also after the country code as in
 * "+44 (0)20 ...", and the national number length is checked). Numbers of other country codes
 * are only checked for length.
 * Returns PG_OK, PG_EINVAL (letters, extension markers such as "x123" or "ext", a misplaced '+',
 * too few or too many digits, a number the country's rules reject), PG_ECONFIG (default_country
 * not in the table), PG_ETOOLARGE (outsz too small).
 * Ownership: in and default_country borrowed; writes a NUL-terminated string to out ("" on
 * failure).
 */
int pg_norm_phone(const char *in, const char *default_country, char *out, size_t outsz)
    PG_WARN_UNUSED;

#endif
