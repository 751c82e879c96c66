/*
 * Outbound webhooks signed per Standard Webhooks (standardwebhooks.com, spec v1, symmetric):
 *   webhook-id:        the message id (stable across retries, so receivers can deduplicate)
 *   webhook-timestamp: integer Unix seconds of this attempt
 *   webhook-signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
 * A secret "whsec_<base64>" signs with the base64-decoded bytes (the spec's form); a secret
 * without the prefix is used as raw bytes.
 */
#ifndef PG_MICROS_WEBHOOK_H
#define PG_MICROS_WEBHOOK_H

#include <stddef.h>

#include "server/error.h"

/** Bytes a "v1,<base64 of 32 bytes>" signature needs, NUL included. */
#define PG_WEBHOOK_SIG_LEN 48

/**
 * Sign one message into sig_out ("v1,<base64>", NUL-terminated; sig_sz >= PG_WEBHOOK_SIG_LEN,
 * 100 is plenty). Everything borrowed. Returns PG_EINVAL for an empty/undecodable secret or an
 * id with control characters, PG_ETOOLARGE when sig_sz is too small, PG_ENOMEM.
 */
int pg_webhook_sign(const char *secret,
                    const char *msg_id,
                    long long timestamp_s,
                    const char *body,
                    size_t len,
                    char *sig_out,
                    size_t sig_sz) PG_WARN_UNUSED;

struct pg_webhook_config {
    const char *url;
    const char *secret; /* "whsec_<base64>" or raw */
    int connect_timeout_ms;
    int timeout_ms;
};

/** What pg_webhook_send returns. */
enum pg_webhook_outcome {
    PG_WEBHOOK_OK = 0,    /* 2xx */
    PG_WEBHOOK_RETRY = 1, /* timeout, connection error, 5xx, 429 (*retry_after_s filled) */
    PG_WEBHOOK_FAIL = 2   /* other 3xx/4xx, bad secret or id, bad URL */
};

/**
 * POST body (application/json) to c->url with webhook-id (msg_id), webhook-timestamp (now),
 * webhook-signature, Content-Type and User-Agent: posgate. Redirects are not followed.
 * http_status (0 when no response), retry_after_s (-1 when absent) and err (what failed, ""
 * on success; errsz may be 0) may be NULL. Returns an enum pg_webhook_outcome. Thread-safe.
 */
int pg_webhook_send(const struct pg_webhook_config *c,
                    const char *msg_id,
                    const char *body,
                    size_t len,
                    long *http_status,
                    int *retry_after_s,
                    char *err,
                    size_t errsz);

#endif
