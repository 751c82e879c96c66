/*
 * Salesforce simulator internals shared by sim/salesforce.c (records, routes, seed),
 * sim/sf_oauth.c (the token endpoint and bearer tokens) and sim/sf_rest.c (REST reads and the
 * SOQL subset). Everything here is guarded by sim->mu unless a comment says otherwise.
 */
#ifndef PG_SIM_SF_H
#define PG_SIM_SF_H

#include "sim/sim.h"

struct sf_token {
    char tok[128];
    int64_t exp_ms; /* wall clock */
};

struct sf_priv {
    long long api_used;  /* calls counted in Sforce-Limit-Info since the last reset */
    long long replay_id; /* last Platform Event replayId handed out (never reset: opaque, grows) */
    struct pg_sim_om_queue *om;
    struct sf_token *tokens; /* issued access tokens (kept across resets, like an org's sessions) */
    size_t ntokens, cap;
    long long grants;     /* successful token endpoint grants since the last reset */
    json_t *fields;       /* the Contact "describe": array of field API names, in output order */
    json_t *types;        /* field name -> "id" | "string" | "double" | "datetime" | "boolean" */
    struct sf_coll *coll; /* sObject Collections upsert settings and counters (sf_collections.c) */
    unsigned long contacts_gen; /* bumped by every change to the Contacts (indexes rebuild) */
    struct sf_ext_ix *ext_ix;   /* Contacts by external id value (sf_rest.c), built on use */
};

/* sim/salesforce.c */
/** Salesforce's error array [{"message","errorCode"}] (msg NULL: the default text for status). */
void pg_sim_sf_error(struct pg_sim_reply *out, int status, const char *code, const char *msg);
/** Count one API call and set Sforce-Limit-Info; 1 when out holds the 403 (limit exceeded). */
int pg_sim_sf_api_call(struct pg_sim *sim, struct pg_sim_reply *out);

/* sim/sf_oauth.c */
void pg_sim_sf_token(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
void pg_sim_sf_tokens_mint(struct pg_sim *sim,
                           const struct pg_sim_req *req,
                           struct pg_sim_reply *out);
void pg_sim_sf_tokens_expire(struct pg_sim *sim,
                             const struct pg_sim_req *req,
                             struct pg_sim_reply *out);
/** 1 when the request carries a live bearer token; else out holds the 401. Takes the lock. */
int pg_sim_sf_authorized(struct pg_sim *sim,
                         const struct pg_sim_req *req,
                         struct pg_sim_reply *out);
/** {"grants":N,"active_tokens":M}. Caller holds sim->mu. */
json_t *pg_sim_sf_oauth_state(struct pg_sim *sim);
/** Decode %XX (and '+' as a space when plus) of s[0..n); malloc'd, NULL on a bad escape. */
char *pg_sim_url_decode(const char *s, size_t n, int plus);
/** The decoded value of name in an application/x-www-form-urlencoded string, or NULL. */
char *pg_sim_form_get(const char *form, size_t len, const char *name);

/* sim/sf_rest.c */
/** Everything under /services/data/vXX.X/ (bearer auth, API counting, sobjects, query). */
void pg_sim_sf_data(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
/** Build the Contact describe (fields, types) from the seed. */
int pg_sim_sf_describe_init(struct sf_priv *p, json_t *contacts);

/** The Contacts changed (a record PATCH, a reset): lookups by external id rebuild their index. */
void pg_sim_sf_contacts_changed(struct pg_sim *sim);
/** Free the external id index (destroy). */
void pg_sim_sf_ext_ix_free(struct sf_priv *p);

/* sim/sf_collections.c */
/** PATCH under /services/data/v: composite/sobjects upserts; other paths go to pg_sim_sf_data. */
void pg_sim_sf_collections(struct pg_sim *sim,
                           const struct pg_sim_req *req,
                           struct pg_sim_reply *out);
/** DELETE under /services/data/v: composite/sobjects?ids= deletes; other paths to pg_sim_sf_data.
 */
void pg_sim_sf_collections_delete(struct pg_sim *sim,
                                  const struct pg_sim_req *req,
                                  struct pg_sim_reply *out);
/** GET/POST /_sim/collections (settings) and POST /_sim/collections/records (raw records). */
void pg_sim_sf_coll_settings(struct pg_sim *sim,
                             const struct pg_sim_req *req,
                             struct pg_sim_reply *out);
void pg_sim_sf_coll_records(struct pg_sim *sim,
                            const struct pg_sim_req *req,
                            struct pg_sim_reply *out);
int pg_sim_sf_coll_init(struct sf_priv *p);
void pg_sim_sf_coll_free(struct sf_priv *p);
/** Back to the default settings, counters to 0. Caller holds sim->mu. */
void pg_sim_sf_coll_reset(struct pg_sim *sim);
/** Add the collections' arrays, price books and counters to a /_sim/state view (lock held). */
void pg_sim_sf_coll_state(struct pg_sim *sim, json_t *view);

#endif
