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

#include <jansson.h>

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
    } sf;
    struct {
        int port;
        char *seed;
        char org[100]; /* enterprise short name: /bi/v1/{org}/... */
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

/* ---- simulators ---- */

int pg_sim_salesforce_init(struct pg_sim *sim,
                           const struct pg_sim_config *cfg,
                           char *err,
                           size_t errsz);
int pg_sim_micros_init(struct pg_sim *sim,
                       const struct pg_sim_config *cfg,
                       char *err,
                       size_t errsz);

/** Salesforce ids: fill out (19 bytes) with the 18-char form of a 15-char id. */
void pg_sim_sf_id18(const char *id15, char *out);
/** 1 when id is a well-formed 18-char id whose suffix matches (and prefix matches, if given). */
int pg_sim_sf_id_valid(const char *id, const char *key_prefix);

#endif
