/*
 * The MICROS simulator's Reporting & Analytics BI API (micros-wire.md §1): the OIDC sign-in
 * (sim/mi_bi.c), the BI operations (sim/mi_bi.c) and the deterministic business-day generator
 * (sim/mi_bi_gen.c). Everything is guarded by sim->mu unless a comment says otherwise.
 */
#ifndef PG_SIM_MI_BI_H
#define PG_SIM_MI_BI_H

#include "sim/sim.h"

/* One generated guest check. `j` is the check as the BI API shows it before any late upload. */
struct bi_check {
    json_t *j;
    json_t *ext; /* the check's extensibility details (getGuestCheckExtensibilityDetails), not in
                    j: [{displayName, appName, dataName, dataType, data}]; NULL: none */
    int rvc;
    int closed;       /* clsdFlag */
    int late;         /* generated as an offline check: hidden until a late upload releases it */
    int no_late;      /* half of a split pair: never offline (the pair reconciles together) */
    int released;     /* released by POST /_sim/bi/late-upload */
    int64_t upd_s;    /* lastUpdatedUTC as epoch seconds (the release time once released) */
    int64_t upd0_s;   /* lastUpdatedUTC as generated (restored on reset) */
    char rel_utc[20]; /* lastUpdatedUTC / Lcl after the release */
    char rel_lcl[20];
};

/* One location's business day. */
struct bi_day {
    char loc[100];
    char date[11];
    int utc_off_min; /* the location's offset from UTC on that day */
    struct bi_check *checks;
    size_t n;
};

struct bi_data {
    struct bi_day *days;
    size_t ndays;
    json_t *locs;    /* locRef -> {"taxes":[...dimension...]} */
    json_t *catalog; /* {"menuItems","tenderMedias","discounts","serviceCharges"} dimensions */
};

/** Build the generated data from the config's micros.bi.generate and the seed's locations. */
int pg_sim_bi_generate(
    const struct pg_sim_config *cfg, json_t *seed, struct bi_data *out, char *err, size_t errsz);
void pg_sim_bi_data_free(struct bi_data *d);
/** A money amount in cents as a JSON number (integer when whole, else at most 2 decimals). */
json_t *pg_sim_bi_money(long long cents);
/** A JSON number (as the BI API writes amounts) back to cents; exact for 2-decimal values. */
long long pg_sim_bi_cents(json_t *v);
/** "YYYY-MM-DDTHH:MM:SS" of epoch seconds. */
void pg_sim_bi_ts(int64_t s, char *out, size_t outsz);
/** Epoch day of "YYYY-MM-DD" (strictly that form, a real date) into *out; 0 on success. */
int pg_sim_bi_parse_date(const char *s, long *out);

/* sim/mi_bi.c: routes, reset and state for sim/micros.c */
int pg_sim_bi_init(struct pg_sim *sim, char *err, size_t errsz);
void pg_sim_bi_destroy(struct pg_sim *sim);
void pg_sim_bi_reset(struct pg_sim *sim);
json_t *pg_sim_bi_state(struct pg_sim *sim);
void pg_sim_bi_oidc(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
void pg_sim_bi_api(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out);
void pg_sim_bi_late_upload(struct pg_sim *sim,
                           const struct pg_sim_req *req,
                           struct pg_sim_reply *out);
void pg_sim_bi_tokens_expire(struct pg_sim *sim,
                             const struct pg_sim_req *req,
                             struct pg_sim_reply *out);

#endif
