/*
 * Building SOQL text and URLs from values that came from a cashier station.
 *
 * Values are only ever placed inside a quoted SOQL string literal through pg_soql_escape, and
 * object and field names only come from configuration and are checked as identifiers, so no POS
 * input can change the shape of a query (SOQL injection: `' OR Name != '` stays a literal).
 */
#ifndef PG_SF_SOQL_H
#define PG_SF_SOQL_H

#include "server/buf.h"
#include "server/error.h"

/**
 * Append value as the inside of a SOQL string literal (without the surrounding quotes).
 * Escapes per Salesforce's "Quoted String Escape Sequences": \\ \' \" and \n \r \t \b \f for
 * newline, carriage return, tab, backspace (0x08) and form feed. Other UTF-8 is copied as is.
 * Returns PG_EINVAL for invalid UTF-8 (overlong, surrogates, > U+10FFFF, truncated) or a
 * control character SOQL has no escape for (NUL..0x1F other than those above, DEL); out is then
 * left as it was. PG_ETOOLARGE when out's cap is reached.
 * Ownership: value borrowed; appends to out.
 */
int pg_soql_escape(struct pg_buf *out, const char *value) PG_WARN_UNUSED;

/**
 * 1 when s is a SOQL/API identifier: [A-Za-z][A-Za-z0-9_]*, at most 128 characters, not ending
 * in '_' (so "Loyalty_Id__c", "ns__Points__c" pass, "Id;", "a b" and "" do not).
 */
int pg_soql_ident_ok(const char *s);

/**
 * 1 when s is a comma-separated list of field paths, each one or more identifiers joined by
 * '.' (relationship fields such as "Account.Name"); spaces are allowed around the commas.
 */
int pg_soql_fields_ok(const char *s);

/**
 * Append "SELECT <fields> FROM <object> WHERE <field> = '<escaped value>' LIMIT <limit>".
 * fields, object and field come from configuration and are validated (pg_soql_fields_ok /
 * pg_soql_ident_ok; spaces in the field list are dropped); limit must be 1..2000.
 * Returns PG_EINVAL for a bad identifier, limit or value (see pg_soql_escape); out is then left
 * as it was. Ownership: all strings borrowed; appends to out.
 */
int pg_soql_select_eq(struct pg_buf *out,
                      const char *fields,
                      const char *object,
                      const char *field,
                      const char *value,
                      int limit) PG_WARN_UNUSED;

/**
 * Append s percent-encoded for a URL query value or a path segment: RFC 3986 unreserved
 * characters (A-Z a-z 0-9 - . _ ~) are kept, every other byte becomes %XX (upper-case hex), so
 * '/', '?', '#', '&', '+' and spaces can never change the URL's structure.
 * Ownership: s borrowed; appends to out.
 */
int pg_url_encode(struct pg_buf *out, const char *s) PG_WARN_UNUSED;

#endif
