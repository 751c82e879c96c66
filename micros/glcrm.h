/*
 * Oracle Hospitality Gift & Loyalty CRM API client (micros-wire.md §3.1-3.2).
 *
 * Every call is one SOAP 1.1 processRequest to .../ws/services/StoredValueService:
 *   in0 = the CRMMessage request XML, entity-escaped as text
 *   in1 = logon name, in2 = password
 *   in3 = CRC32 (zlib/IEEE) of in0's UTF-8 text *before* escaping, as 8 upper-case hex digits,
 *         zero-padded ("0762EA69") - exactly what the working client ronnieholm/
 *         Bugfree.OracleHospitality sends (Crc32.ToPaddedCrc32String: crc.ToString("X8")).
 * A CRC mismatch comes back as ResponseCode D "Request failed integrity check", so in0 must be
 * byte-for-byte what the CRC covered: builders emit no newlines and escape CR/LF/TAB as
 * character references, which survive XML parsing on the host unchanged.
 *
 * Replies are HTTP 200 even for business errors; the outcome is the CRMMessage's ResponseCode:
 * A (approved), D (declined: hostCode + DisplayMessage), E (error: <Error code="n">text</Error>).
 *
 * XML parsing follows c-dependencies.md: libxml2 with XML_PARSE_NONET, never NOENT/DTDLOAD, any
 * document type declaration rejected, errors to a private handler (never stderr).
 */
#ifndef PG_MICROS_GLCRM_H
#define PG_MICROS_GLCRM_H

#include <stddef.h>

#include <jansson.h>

#include "server/buf.h"
#include "server/error.h"

struct pg_gl_config {
    const char *url;            /* .../ws/services/StoredValueService */
    const char *logon;          /* in1 */
    const char *password;       /* in2 */
    const char *request_source; /* RequestSource name (identifies us in the host's logs) */
    int connect_timeout_ms;     /* <= 0: pg_httpc default */
    int timeout_ms;             /* whole call; <= 0: pg_httpc default */
};

/** One column value for SetCustomer. Both borrowed. */
struct pg_gl_col {
    const char *name;
    const char *value; /* NULL = empty */
};

struct pg_gl_result {
    char response_code;  /* 'A', 'D', 'E' (or another letter the host sent), 0 when none */
    char host_code[16];  /* ResponseCode's hostCode attribute, "" when absent */
    char message[256];   /* DisplayMessage, else Error text, else what failed (transport, parse) */
    char error_code[16]; /* <Error code="..">, "" when absent */
    char row_id[32];     /* SetCustomer's <Row id>, or GetCustomer's first row id; "" if none */
    int rows;            /* rows returned by GetCustomer */
    json_t *columns;     /* GetCustomer: {column: value} of the first row, values are strings
                            ("" for an empty <Col/>); owned; NULL when no row */
    long http_status;    /* 0 when no HTTP response */
    int retry_after_s;   /* -1 when absent */
};

/** Outcome classification the push worker uses for retries. */
enum pg_gl_outcome {
    PG_GL_OK,    /* ResponseCode A */
    PG_GL_RETRY, /* timeout, connection error, HTTP 5xx, 429, or a host code configured
                    retryable */
    PG_GL_FAIL   /* D/E business failure, other 4xx/3xx, malformed reply, SOAP fault with 200,
                    invalid input */
};

/**
 * Append the processRequest envelope to out: in0 = crm_xml entity-escaped, in1 logon, in2
 * password (both escaped), in3 = CRC32 of crm_xml's bytes as "%08X".
 * Returns PG_EINVAL for NULL arguments or text XML 1.0 cannot carry (invalid UTF-8, control
 * characters), PG_ETOOLARGE when out's cap is reached. out may be partly written on error.
 */
int pg_gl_envelope(struct pg_buf *out, const char *crm_xml, const char *logon, const char *password)
    PG_WARN_UNUSED;

/**
 * Append a GetCustomer CRMMessage looking a customer up by primaryposref (card/account number)
 * and returning the named columns (ncolumns >= 1). All values are XML-escaped; everything
 * borrowed. Returns PG_EINVAL on missing/invalid input.
 */
int pg_gl_build_get_customer(struct pg_buf *out,
                             const char *request_source,
                             const char *primaryposref,
                             const char *const *columns,
                             size_t ncolumns) PG_WARN_UNUSED;

/**
 * Append a SetCustomer CRMMessage.
 *  - row_id != NULL: update that row (decimal digits only) with cols (ncols >= 1);
 *    primaryposref is ignored.
 *  - row_id == NULL: create. primaryposref is required and is sent as the first column
 *    ("primaryposref") followed by the sortvalue column set to 1 (micros-wire.md §3.2); cols may be
 *    empty.
 * All values are XML-escaped; everything borrowed. Returns PG_EINVAL on missing/invalid input.
 */
int pg_gl_build_set_customer(struct pg_buf *out,
                             const char *request_source,
                             const char *row_id,
                             const char *primaryposref,
                             const struct pg_gl_col *cols,
                             size_t ncols) PG_WARN_UNUSED;

/**
 * Parse a processRequest response envelope (S:Envelope/S:Body/ns2:processRequestResponse/
 * return holding the escaped CRMMessage) into res, which is overwritten (free a reused res
 * first). Returns PG_OK when a CRMMessage was found (response_code may still be 0 if the host
 * sent none); PG_EPROTO for a SOAP fault (faultstring in res->message), a document type
 * declaration, malformed XML or an unexpected shape (reason in res->message); PG_EINVAL for
 * NULL/oversized input; PG_ENOMEM.
 */
int pg_gl_parse_response(const char *body, size_t len, struct pg_gl_result *res) PG_WARN_UNUSED;

/**
 * One call: envelope + POST (Content-Type: text/xml; charset=utf-8, SOAPAction: "") through
 * pg_httpc_do + parse + classify. retryable_host_codes: NULL-terminated list of hostCode values
 * treated as PG_GL_RETRY (may be NULL). res is overwritten and filled as far as known; for
 * transport and parse failures res->message says what failed. Never logs credentials or bodies.
 * Thread-safe.
 */
enum pg_gl_outcome pg_gl_call(const struct pg_gl_config *c,
                              const char *crm_xml,
                              const char *const *retryable_host_codes,
                              struct pg_gl_result *res);

/** Release res->columns and reset res to empty (safe on a zeroed result). */
void pg_gl_result_free(struct pg_gl_result *res);

/** Name of an outcome ("ok", "retry", "fail") for logs and metrics. */
const char *pg_gl_outcome_name(enum pg_gl_outcome o);

#endif
