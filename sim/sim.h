/*
 * posgate-sim: the Salesforce and MICROS simulators.
 *
 * One `struct pg_sim` is one simulator on its own port. The core (sim/core.c) owns everything the
 * two have in common: the HTTP daemon, body limits, the request log, fault injection and the
 * /_sim/ control API. A simulator module (sim/salesforce.c, sim/micros.c) supplies its protocol
 * routes, its error-body shape and its seed data through `struct pg_sim_ops`.
 *
 * Locking: sim->mu guards log, faults, state and priv. Route handlers are called WITHOUT the lock
 * (a later handler may long-poll) and take it around the state they touch.
 */
#ifndef PG_SIM_H
#define PG_SIM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/buf.h"
#include "server/error.h"

#define PG_SIM_MAX_FAULTS 64

/* ---- configuration (sim/config.c) ---- */

struct pg_sim_config {
    char listen_address[64];
    int log_level;         /* enum pg_log_level */
    size_t max_body_bytes; /* request bodies above this get 413 */
    size_t log_entries;    /* /_sim/log keeps the newest this many */
    size_t log_body_bytes; /* bodies are recorded up to this many bytes */
    struct {
        int port;
        char *seed; /* resolved path or NULL (no records) */
        char org_id[19];
        char api_version[8]; /* "66.0" */
        long long api_limit; /* daily allocation reported in Sforce-Limit-Info */
        struct {
            char *private_key_pem; /* RS256 signing key (PEM text) or NULL */
            char *hs256_secret;    /* HS256 key text (negative tests) or NULL */
            char kid[128];
            char iss[256];
            char aud[256];
            char sub[256];
            long long expiry_s;
        } jwt;
        /* The connected app the gateway's JWT bearer assertions are checked against (§3.1). */
        struct {
            char *certificate_pem; /* X.509 PEM of the gateway's signing key, or NULL */
            char client_id[256];   /* consumer key = the assertion's iss */
            char username[256];    /* the one known user = sub */
            char user_id[19];      /* its 18-char 005 id (the "id" URL) */
            char audiences[8][256];
            int naudiences;
            long long token_ttl_s;            /* access tokens live this long */
            long long max_exp_ahead_s;        /* exp may be at most this far ahead; 0 = no bound */
            long long clock_skew_s;           /* exp may be this far in the past */
            int user_approved;                /* 0: "user hasn't approved this consumer" */
            int bad_signature_invalid_client; /* 1: invalid_client, 0: invalid_grant */
            char instance_url[256];           /* "" = http://<Host header> */
        } oauth;
        char external_id_fields[8][64]; /* Contact fields GET .../{field}/{value} accepts */
        int n_external_id_fields;
    } sf;
    struct {
        int port;
        char *seed;
        char org[100]; /* enterprise short name: /bi/v1/{org}/... */
        struct {
            char logon[128];
            char password[128];
            int crc_decimal; /* 0: in3 is %08X (reference client), 1: %010u */
        } gl;
        char *webhook_secret; /* "whsec_<base64>" or NULL (then the receiver answers 503) */
        long long webhook_tolerance_s;
        /* BI API (sim/mi_bi.c): the OIDC sign-in's API account and the generated data. */
        struct {
            char username[128];
            char password[128];
            char client_id[256];
            char redirect_uri[256];
            char jwt_secret[256];         /* HS256 key of the id_token (TEST ONLY) */
            long long token_ttl_s;        /* id_token exp = iat + this */
            long long code_ttl_s;         /* authorization codes expire after this */
            long long rate_limit_per_min; /* BI calls per minute, 0 = unlimited */
            int require_application_name;
            json_t *generate; /* the "generate" object as written (checked at init) or NULL */
        } bi;
    } micros;
};

/** Load and validate the config file. On failure writes a one-line reason into err. */
int pg_sim_config_load(const char *path, struct pg_sim_config *cfg, char *err, size_t errsz);
void pg_sim_config_free(struct pg_sim_config *cfg);

/* ---- requests, replies, routes ---- */

struct pg_sim_req {
    const char *method; /* HEAD is matched as GET */
    const char *path;   /* decoded path, no query */
    const char *query;  /* raw query string without '?', "" if none */
    const char *body;   /* NUL-terminated (may contain NULs) */
    size_t body_len;
    json_t *json; /* body parsed as JSON when it is JSON, else NULL (borrowed) */
    struct MHD_Connection *conn;
};

struct pg_sim_reply {
    int status;
    char *body; /* malloc'd */
    size_t len;
    char ctype[80];
    json_t *headers; /* object name -> string, or NULL */
};

struct pg_sim;
typedef void (*pg_sim_handler)(struct pg_sim *sim,
                               const struct pg_sim_req *req,
                               struct pg_sim_reply *out);

struct pg_sim_route {
    const char *method; /* "GET", "POST", ... or "*" */
    const char *path;
    int prefix; /* 1: path is a prefix (ends at a '/' boundary or not), 0: exact */
    pg_sim_handler fn;
};

struct pg_sim_ops {
    const char *name;                  /* "salesforce" | "micros" */
    const struct pg_sim_route *routes; /* terminated by {NULL}; tried after the control routes */
    /** Fill out with this protocol's error body for status (404s, default fault bodies). */
    void (*error_reply)(struct pg_sim *sim, int status, const char *msg, struct pg_sim_reply *out);
    /** Called with the lock held on reset, after state was restored from the seed. May be NULL. */
    void (*reset)(struct pg_sim *sim);
    /** GET /_sim/state: a new reference to what to show (lock held). NULL: sim->state as is. */
    json_t *(*state_view)(struct pg_sim *sim);
    /** Called after the daemon stopped, before priv is freed (stop threads, free priv's insides).
     */
    void (*destroy)(struct pg_sim *sim);
};

struct pg_sim_fault {
    int id;
    int status;      /* 0: none */
    json_t *body;    /* status faults: custom body (string: sent raw; else JSON) */
    json_t *headers; /* status faults: extra headers */
    int latency_ms;  /* added before anything else */
    int hang_ms;     /* > 0: hang fault */
    int drop;        /* close without a response */
    int remaining;   /* -1: until reset */
    char path[256];  /* prefix; "" matches all */
    char method[16]; /* "" matches all */
};

struct pg_sim {
    const struct pg_sim_ops *ops;
    const struct pg_sim_config *cfg;
    pthread_mutex_t mu;
    json_t *log; /* array of entries */
    long long seq;
    struct pg_sim_fault faults[PG_SIM_MAX_FAULTS];
    int nfaults;
    int next_fault_id;
    json_t *seed;  /* pristine state */
    json_t *state; /* current state (what GET /_sim/state shows) */
    void *priv;    /* simulator-specific, guarded by mu */
    struct MHD_Daemon *daemon;
    int port;
};

/* ---- core (sim/core.c) ---- */

/** Initialise the common part; takes ownership of seed (its copy becomes the state). */
int pg_sim_init(struct pg_sim *sim,
                const struct pg_sim_ops *ops,
                const struct pg_sim_config *cfg,
                json_t *seed);
/** Start listening on addr:port (0 = any free port); sim->port holds the bound port. */
int pg_sim_listen(struct pg_sim *sim, const char *addr, int port);
/** Stop the daemon (waits for connection threads) and free everything. */
void pg_sim_destroy(struct pg_sim *sim);
/** Make hangs and latency sleeps end early: called once on SIGTERM before stopping daemons. */
void pg_sim_shutdown_begin(void);

void pg_sim_reply_json(struct pg_sim_reply *out, int status, json_t *body); /* steals body */
void pg_sim_reply_text(
    struct pg_sim_reply *out, int status, const char *ctype, const char *text, size_t len);
void pg_sim_reply_header(struct pg_sim_reply *out, const char *name, const char *value);
/** Control-API error body {"error": code, "message": text}. */
void pg_sim_ctl_error(struct pg_sim_reply *out, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** 1 once SIGTERM arrived (background senders stop). */
int pg_sim_stopping(void);
/** Header value of the request (case-insensitive name) or NULL. */
const char *pg_sim_req_header(const struct pg_sim_req *req, const char *name);

/* ---- simulators ---- */

int pg_sim_salesforce_init(struct pg_sim *sim,
                           const struct pg_sim_config *cfg,
                           char *err,
                           size_t errsz);
/** sf_contacts: the Salesforce seed's Contacts (G&L customers are derived from them). */
int pg_sim_micros_init(struct pg_sim *sim,
                       const struct pg_sim_config *cfg,
                       json_t *sf_contacts,
                       char *err,
                       size_t errsz);

/* ---- Salesforce senders (sim/sf_outbound.c, sim/sf_events.c) ---- */

struct pg_sim_om_queue; /* outbound-message queue and its sender thread */
int pg_sim_om_start(struct pg_sim *sim, struct pg_sim_om_queue **out);
void pg_sim_om_stop(struct pg_sim_om_queue *q);
void pg_sim_om_clear(struct pg_sim_om_queue *q); /* caller holds sim->mu */
void pg_sim_om_post(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
void pg_sim_om_get(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
void pg_sim_pe_post(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
/** The Salesforce simulator's queue (its priv owns it). */
struct pg_sim_om_queue *pg_sim_sf_om_queue(struct pg_sim *sim);
/** Next Platform Event replayId. Caller holds sim->mu. */
long long pg_sim_sf_next_replay_id(struct pg_sim *sim);
/** Find a Contact in state by 15- or 18-char id. Caller holds sim->mu. */
json_t *pg_sim_sf_find_contact(struct pg_sim *sim, const char *id);

/* ---- MICROS protocol handlers (sim/mi_gl.c, sim/mi_webhook.c) ---- */

void pg_sim_gl_process(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
void pg_sim_webhook_receive(struct pg_sim *sim,
                            const struct pg_sim_req *req,
                            struct pg_sim_reply *out);
/** Build the seed "customers" array from Salesforce Contacts with a Loyalty_Id__c. */
json_t *pg_sim_gl_customers_from_contacts(json_t *contacts);
/** Validate a seed "customers" array (known columns, unique ids). */
int pg_sim_gl_check_customers(json_t *customers, char *err, size_t errsz);

/* ---- helpers (sim/core.c) ---- */

/** base64 (standard alphabet, padded) of n bytes; malloc'd. url: base64url without padding. */
char *pg_sim_b64(const unsigned char *p, size_t n, int url);
/** Decode standard base64; returns malloc'd bytes and *n, or NULL. */
unsigned char *pg_sim_b64_decode(const char *s, size_t *n);
/** Append s XML-escaped (& < > " ') to b. */
int pg_sim_xml_escape(struct pg_buf *b, const char *s);
/** "2026-03-02T14:05:11.000Z" for ms since the epoch. */
void pg_sim_iso_ms(int64_t ms, char *out, size_t outsz);
/** Parse "YYYY-MM-DDTHH:MM:SS(.mmm)Z" or "+0000"; -1 on failure. */
int64_t pg_sim_parse_iso_ms(const char *s);

/** Salesforce ids: fill out (19 bytes) with the 18-char form of a 15-char id. */
void pg_sim_sf_id18(const char *id15, char *out);
/** 1 when id is a well-formed 18-char id whose suffix matches (and prefix matches, if given). */
int pg_sim_sf_id_valid(const char *id, const char *key_prefix);

#endif
