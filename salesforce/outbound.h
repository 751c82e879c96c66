/*
 * Salesforce Outbound Messages (SOAP 1.1 push, salesforce-wire.md §1): parse the notifications
 * message, and write the Ack and the SOAP fault the listener answers with.
 *
 * Parsing refuses any document type declaration (XXE, entity expansion) before the content is
 * looked at, never fetches from the network and keeps libxml2's errors off stderr. It is safe to
 * call from many threads at once.
 */
#ifndef PG_SF_OUTBOUND_H
#define PG_SF_OUTBOUND_H

#include <stddef.h>

#include <jansson.h>

#include "server/buf.h"
#include "server/error.h"

#define PG_SF_OM_NS_SOAPENV "http://schemas.xmlsoap.org/soap/envelope/"
#define PG_SF_OM_NS_OUTBOUND "http://soap.sforce.com/2005/09/outbound"
#define PG_SF_OM_NS_SOBJECT "urn:sobject.enterprise.soap.sforce.com"
#define PG_SF_OM_NS_XSI "http://www.w3.org/2001/XMLSchema-instance"

#define PG_SF_OM_MAX_NOTIFICATIONS 100 /* Salesforce batches at most 100 (§1.2) */
#define PG_SF_OM_MAX_FIELDS 500        /* per sObject */
#define PG_SF_OM_MAX_VALUE 32768       /* bytes per field value */

struct pg_sf_notification {
    char *id;       /* Notification Id ("04l..."): the dedupe key together with the org id */
    json_t *fields; /* object: field local name -> string, or JSON null for xsi:nil="true" */
};

struct pg_sf_om {
    char *org_id;         /* OrganizationId as sent (validated: a 15/18-char Salesforce id) */
    char *action_id;      /* NULL when absent */
    char *session_id;     /* NULL when absent or xsi:nil */
    char *enterprise_url; /* NULL when absent */
    char *partner_url;    /* NULL when absent */
    char *sobject_type;   /* from xsi:type "sf:Contact" -> "Contact"; the same in all */
    size_t n;             /* 1..PG_SF_OM_MAX_NOTIFICATIONS */
    struct pg_sf_notification *notifications;
};

/**
 * Parse a SOAP 1.1 notifications message of len bytes (the caller caps len). Returns PG_OK,
 * PG_EINVAL with a precise reason in why (fit for the SOAP faultstring: it names elements, never
 * echoes values), PG_ETOOLARGE when len exceeds INT_MAX, or PG_ENOMEM.
 * Ownership: xml borrowed; *out is new (NULL on failure), free with pg_sf_om_free.
 */
int pg_sf_om_parse(const char *xml, size_t len, struct pg_sf_om **out, char *why, size_t whysz)
    PG_WARN_UNUSED;

/** Free a parsed message. NULL is a no-op. */
void pg_sf_om_free(struct pg_sf_om *om);

/** Append the Ack envelope of salesforce-wire.md §1.4 (notificationsResponse, Ack true). */
int pg_sf_om_ack(struct pg_buf *out) PG_WARN_UNUSED;

/**
 * Append a SOAP 1.1 fault envelope. faultcode must be "soapenv:Client" or "soapenv:Server"
 * (PG_EINVAL otherwise). faultstring is XML-escaped; control characters and invalid UTF-8 become
 * '?'. Ownership: borrowed.
 */
int pg_sf_om_fault(struct pg_buf *out,
                   const char *faultcode,
                   const char *faultstring) PG_WARN_UNUSED;

#endif
