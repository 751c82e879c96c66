/*
 * The Salesforce simulator: record ids, seed Contacts, the route table, the REST versions list
 * and Salesforce's error-array shape. OAuth is in sf_oauth.c, REST reads and SOQL in sf_rest.c,
 * the senders in sf_outbound.c and sf_events.c.
 * Wire facts: /work/shared/reference/salesforce-wire.md (section numbers below refer to it).
 */
#include "sim/sf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/log.h"
#include "server/util.h"

#define SEED_MAX_BYTES (16 * 1024 * 1024)
#define GENERATE_MAX 100000

struct pg_sim_om_queue *pg_sim_sf_om_queue(struct pg_sim *sim)
{
    return ((struct sf_priv *)sim->priv)->om;
}

long long pg_sim_sf_next_replay_id(struct pg_sim *sim)
{
    return ++((struct sf_priv *)sim->priv)->replay_id;
}

json_t *pg_sim_sf_find_contact(struct pg_sim *sim, const char *id)
{
    size_t i;
    json_t *c;
    if (!id || (strlen(id) != 15 && strlen(id) != 18))
        return NULL;
    json_array_foreach(json_object_get(sim->state, "contacts"), i, c)
    {
        const char *v = json_string_value(json_object_get(c, "Id"));
        if (v && strncmp(v, id, 15) == 0)
            return c;
    }
    return NULL;
}

/* ---- record ids (§0) ---- */

void pg_sim_sf_id18(const char *id15, char *out)
{
    /* Per 5-char group, bit i is set when char i is upper case; 0..31 maps onto this alphabet. */
    static const char map[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    memcpy(out, id15, 15);
    for (int g = 0; g < 3; g++) {
        int bits = 0;
        for (int i = 0; i < 5; i++)
            if (id15[g * 5 + i] >= 'A' && id15[g * 5 + i] <= 'Z')
                bits |= 1 << i;
        out[15 + g] = map[bits];
    }
    out[18] = '\0';
}

int pg_sim_sf_id_valid(const char *id, const char *key_prefix)
{
    if (!id || strlen(id) != 18)
        return 0;
    for (int i = 0; i < 15; i++)
        if (!isalnum((unsigned char)id[i]))
            return 0;
    if (key_prefix && strncmp(id, key_prefix, strlen(key_prefix)) != 0)
        return 0;
    char want[19];
    pg_sim_sf_id18(id, want);
    return strcmp(want, id) == 0;
}

/* ---- error shape (§4.6) ---- */

static void
sf_error_reply(struct pg_sim *sim, int status, const char *msg, struct pg_sim_reply *out)
{
    static const struct {
        int status;
        const char *code, *msg;
    } codes[] = {
        {401, "INVALID_SESSION_ID", "Session expired or invalid"},
        {403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."},
        {404, "NOT_FOUND", "The requested resource does not exist"},
        {405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed"},
        {413, "REQUEST_ENTITY_TOO_LARGE", "Request body too large"}, /* code not in the reference */
        {503, "SERVER_UNAVAILABLE", "Server unavailable"},
    };
    const char *code = "UNKNOWN_EXCEPTION", *text = "An unexpected error occurred.";
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].status == status) {
            code = codes[i].code;
            text = codes[i].msg;
        }
    (void)sim;
    pg_sim_reply_json(out, status,
                      json_pack("[{s:s,s:s}]", "message", msg ? msg : text, "errorCode", code));
}

void pg_sim_sf_error(struct pg_sim_reply *out, int status, const char *code, const char *msg)
{
    if (!code) {
        sf_error_reply(NULL, status, msg, out);
        return;
    }
    pg_sim_reply_json(out, status, json_pack("[{s:s,s:s}]", "message", msg, "errorCode", code));
}

/*
 * Count one API call and report the org's usage, which every REST response except
 * GET /services/data/ carries (§4.7). Past the daily allocation the call is refused with 403
 * REQUEST_LIMIT_EXCEEDED (§4.6): returns 1 when out holds that answer.
 */
int pg_sim_sf_api_call(struct pg_sim *sim, struct pg_sim_reply *out)
{
    struct sf_priv *p = sim->priv;
    char v[64];
    pthread_mutex_lock(&sim->mu);
    long long used = ++p->api_used;
    pthread_mutex_unlock(&sim->mu);
    snprintf(v, sizeof v, "api-usage=%lld/%lld", used, sim->cfg->sf.api_limit);
    pg_sim_reply_header(out, "Sforce-Limit-Info", v);
    if (used <= sim->cfg->sf.api_limit)
        return 0;
    sf_error_reply(sim, 403, NULL, out);
    return 1;
}

/* ---- routes ---- */

/* GET /services/data/: every supported version, oldest first, as Salesforce lists them (§0). */
static void sf_versions(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    static const char *const seasons[] = {"Spring", "Summer", "Winter"};
    int latest = atoi(sim->cfg->sf.api_version);
    json_t *arr = json_array();
    /* v31.0 (Summer '14) is the oldest version still served since 21.0-30.0 were retired. */
    for (int v = 31; v <= latest; v++) {
        /* Three releases a year; v60 = Spring '24, and Winter carries the next year's number. */
        int n = v + 12, season = n % 3, year = n / 3 + (season == 2);
        char label[32], url[40], ver[16];
        snprintf(label, sizeof label, "%s '%02d", seasons[season], year % 100);
        snprintf(url, sizeof url, "/services/data/v%d.0", v);
        snprintf(ver, sizeof ver, "%d.0", v);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s}", "label", label, "url", url, "version", ver));
    }
    pg_sim_reply_json(out, 200, arr);
}

/* Other REST paths under /services/ need a session too, count, and are not served (yet). */
static void sf_not_found(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    if (pg_sim_sf_authorized(sim, req, out) && !pg_sim_sf_api_call(sim, out))
        sf_error_reply(sim, 404, NULL, out);
}

/* /services/oauth2/... other than the token endpoint: not an API call, not served. */
static void
sf_oauth_not_found(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    if (strcmp(req->path, "/services/oauth2/token") == 0) { /* any method but POST */
        sf_error_reply(sim, 405, NULL, out);
        pg_sim_reply_header(out, "Allow", "POST");
        return;
    }
    sf_error_reply(sim, 404, NULL, out);
}

/*
 * PATCH /_sim/records/Contact/{Id}: change fields as a user would in the UI. SystemModstamp moves
 * to now, strictly increasing per record (previous + 1 ms when the clock has not moved on).
 */
static void
sf_record_patch(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    const char *id = req->path + strlen("/_sim/records/Contact/");
    const char *k;
    json_t *v;
    if (!json_is_object(req->json)) {
        pg_sim_ctl_error(out, 400, "bad_request", "the body must be a JSON object of fields");
        return;
    }
    struct sf_priv *p = sim->priv;
    json_object_foreach(req->json, k, v)
    {
        if (!json_object_get(p->types, k) || strcmp(k, "Name") == 0) {
            pg_sim_ctl_error(out, 400, "bad_request",
                             "Contact has no field \"%s\" (the describe comes from the seed)", k);
            return;
        }
        if (strcmp(k, "Id") == 0 || strcmp(k, "SystemModstamp") == 0) {
            pg_sim_ctl_error(out, 400, "bad_request", "\"%s\" cannot be changed", k);
            return;
        }
        if (json_is_object(v) || json_is_array(v)) {
            pg_sim_ctl_error(out, 400, "bad_request", "field \"%s\" must be a scalar or null", k);
            return;
        }
        if (strcmp(k, "LastName") == 0 && (!json_is_string(v) || !json_string_length(v))) {
            pg_sim_ctl_error(out, 400, "bad_request", "LastName is required");
            return;
        }
    }
    pthread_mutex_lock(&sim->mu);
    json_t *c = pg_sim_sf_find_contact(sim, id);
    if (!c) {
        pthread_mutex_unlock(&sim->mu);
        pg_sim_ctl_error(out, 404, "not_found", "no Contact %s", id);
        return;
    }
    json_object_update(c, req->json);
    pg_sim_sf_contacts_changed(sim);
    int64_t now = pg_wall_ms();
    int64_t prev = pg_sim_parse_iso_ms(json_string_value(json_object_get(c, "SystemModstamp")));
    char ts[40];
    pg_sim_iso_ms(now > prev ? now : prev + 1, ts, sizeof ts);
    json_object_set_new(c, "SystemModstamp", json_string(ts));
    json_t *copy = json_deep_copy(c);
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, copy);
}

static const struct pg_sim_route sf_routes[] = {
    {"PATCH", "/_sim/records/Contact/", 1, sf_record_patch},
    {"GET", "/_sim/collections", 0, pg_sim_sf_coll_settings},
    {"POST", "/_sim/collections", 0, pg_sim_sf_coll_settings},
    {"POST", "/_sim/collections/records", 0, pg_sim_sf_coll_records},
    {"POST", "/_sim/outbound-messages", 0, pg_sim_om_post},
    {"GET", "/_sim/outbound-messages", 0, pg_sim_om_get},
    {"POST", "/_sim/platform-events", 0, pg_sim_pe_post},
    {"POST", "/_sim/tokens/expire", 0, pg_sim_sf_tokens_expire},
    {"POST", "/_sim/tokens", 0, pg_sim_sf_tokens_mint},
    {"GET", "/services/data/", 0, sf_versions},
    {"GET", "/services/data", 0, sf_versions},
    {"POST", "/services/oauth2/token", 0, pg_sim_sf_token},
    {"*", "/services/oauth2/", 1, sf_oauth_not_found},
    {"PATCH", "/services/data/v", 1, pg_sim_sf_collections},         /* others: pg_sim_sf_data */
    {"DELETE", "/services/data/v", 1, pg_sim_sf_collections_delete}, /* others: pg_sim_sf_data */
    {"*", "/services/data/v", 1, pg_sim_sf_data},
    {"*", "/services/", 1, sf_not_found}, /* REST paths we do not serve yet still count */
    {NULL, NULL, 0, NULL},
};

static void sf_reset(struct pg_sim *sim)
{
    struct sf_priv *p = sim->priv;
    p->api_used = 0;
    p->grants = 0; /* issued tokens stay valid: a reset is not a logout */
    if (p->om)
        pg_sim_om_clear(p->om);
    pg_sim_sf_coll_reset(sim);
    pg_sim_sf_contacts_changed(sim); /* sim->state is a fresh copy of the seed */
}

static json_t *sf_state_view(struct pg_sim *sim)
{
    json_t *v = json_copy(sim->state);
    if (v)
        json_object_set_new(v, "oauth", pg_sim_sf_oauth_state(sim));
    if (v)
        pg_sim_sf_coll_state(sim, v);
    return v;
}

static void sf_destroy(struct pg_sim *sim)
{
    struct sf_priv *p = sim->priv;
    if (p && p->om)
        pg_sim_om_stop(p->om);
    if (p) {
        p->om = NULL;
        free(p->tokens);
        p->tokens = NULL;
        p->ntokens = p->cap = 0;
        json_decref(p->fields);
        json_decref(p->types);
        pg_sim_sf_coll_free(p);
        pg_sim_sf_ext_ix_free(p);
        p->fields = p->types = NULL;
    }
}

static const struct pg_sim_ops sf_ops = {
    .name = "salesforce",
    .routes = sf_routes,
    .error_reply = sf_error_reply,
    .reset = sf_reset,
    .state_view = sf_state_view,
    .destroy = sf_destroy,
};

/* ---- seed data ---- */

/* splitmix64: a fixed, platform-independent generator so the same seed gives the same org. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

/* 1 when some record's field equals val (case-insensitively, as SOQL '=' compares text). */
static int has_value(json_t *records, const char *field, const char *val)
{
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r)
    {
        const char *v = json_string_value(json_object_get(r, field));
        if (v && strcasecmp(v, val) == 0)
            return 1;
    }
    return 0;
}

/* Ids are unique on their case-sensitive 15-char form. */
static int has_id15(json_t *records, const char *id)
{
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r)
    {
        const char *v = json_string_value(json_object_get(r, "Id"));
        if (v && strncmp(v, id, 15) == 0)
            return 1;
    }
    return 0;
}

/*
 * Loyalty_Card__c: 16 digits "7710" + 11 drawn + a Luhn check digit. Drawn from its own generator
 * seeded by the Contact's Id, so adding the field did not change any other generated value.
 */
static void gen_card(const char *id, json_t *contacts, char out[17])
{
    uint64_t s = 1469598103934665603ULL;
    for (const char *c = id; *c; c++)
        s = (s ^ (unsigned char)*c) * 1099511628211ULL;
    do {
        memcpy(out, "7710", 4);
        for (int i = 4; i < 15; i++)
            out[i] = (char)('0' + rng_below(&s, 10));
        int sum = 0;
        for (int i = 14, dbl = 1; i >= 0; i--, dbl ^= 1) {
            int d = out[i] - '0';
            if (dbl && (d *= 2) > 9)
                d -= 9;
            sum += d;
        }
        out[15] = (char)('0' + (10 - sum % 10) % 10);
        out[16] = '\0';
    } while (has_value(contacts, "Loyalty_Card__c", out));
}

static json_t *gen_contact(uint64_t *rng, json_t *contacts, int n)
{
    static const char *const first[] = {"Olivia", "Liam",   "Emma",  "Noah",  "Ava",
                                        "Mateo",  "Sophia", "Lucas", "Mia",   "Ethan",
                                        "Amara",  "Kenji",  "Priya", "Diego", "Fatima",
                                        "Hannah", "Omar",   "Chloe", "Wei",   "Isabel"};
    static const char *const last[] = {"Smith",  "Johnson", "Garcia",   "Nguyen", "Patel",
                                       "Kim",    "Brown",   "Martinez", "Okafor", "Rossi",
                                       "Muller", "Silva",   "Tanaka",   "Cohen",  "Walker",
                                       "Lopez",  "Hughes",  "Dubois",   "Singh",  "Chen"};
    static const int areas[] = {212, 305, 312, 415, 503, 617, 702, 206};
    static const char *const prefs[] = {"Vegetarian",  "Vegan", "Gluten Free",    "Dairy Free",
                                        "Window Seat", "Patio", "Email Receipts", "SMS Offers"};
    static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char id15[16], id[19], acct15[16], acct[19], email[128], phone[20], loyalty[16], p[64] = "",
                                                                                     ts[32];

    do {
        snprintf(id15, sizeof id15, "0035g00000");
        for (int i = 10; i < 15; i++)
            id15[i] = alnum[rng_below(rng, 62)];
        id15[15] = '\0';
        pg_sim_sf_id18(id15, id);
    } while (has_id15(contacts, id));
    /* a B2C org: each member has its own (person) account, 001 + the contact's 5 characters */
    snprintf(acct15, sizeof acct15, "0015g00000%s", id15 + 10);
    pg_sim_sf_id18(acct15, acct);
    const char *fn = first[rng_below(rng, 20)], *ln = last[rng_below(rng, 20)];
    snprintf(email, sizeof email, "%s.%s@example.com", fn, ln);
    for (int k = 2; has_value(contacts, "Email", email); k++)
        snprintf(email, sizeof email, "%s.%s%d@example.com", fn, ln, k);
    for (char *c = email; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    do /* 555-01xx numbers are reserved for fiction */
        snprintf(phone, sizeof phone, "+1%d55501%02u", areas[rng_below(rng, 8)],
                 rng_below(rng, 100));
    while (has_value(contacts, "MobilePhone", phone));
    for (int k = 1000 + n;; k++) {
        snprintf(loyalty, sizeof loyalty, "LY-%06d", k);
        if (!has_value(contacts, "Loyalty_Id__c", loyalty))
            break;
    }
    unsigned roll = rng_below(rng, 100);
    const char *tier = roll < 50   ? "Bronze"
                       : roll < 80 ? "Silver"
                       : roll < 95 ? "Gold"
                                   : "Platinum";
    unsigned pts = roll < 50   ? rng_below(rng, 1000)
                   : roll < 80 ? 1000 + rng_below(rng, 4000)
                   : roll < 95 ? 5000 + rng_below(rng, 10000)
                               : 15000 + rng_below(rng, 35000);
    for (unsigned k = rng_below(rng, 3), i = 0; i < k; i++) {
        const char *pr = prefs[rng_below(rng, 8)];
        if (!strstr(p, pr)) /* a multi-select picklist holds each value once, ';'-joined */
            snprintf(p + strlen(p), sizeof p - strlen(p), "%s%s", p[0] ? ";" : "", pr);
    }
    /* SystemModstamp within the 55 days after 2026-01-05T08:00:00Z */
    time_t t = (time_t)1767600000 + (time_t)rng_below(rng, 55 * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    char card[17];
    gen_card(id, contacts, card);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:o,s:s}", "Id", id, "AccountId",
                     acct, "FirstName", fn, "LastName", ln, "Email", email, "MobilePhone", phone,
                     "Phone_E164__c", phone, "Loyalty_Id__c", loyalty, "Loyalty_Card__c", card,
                     "Loyalty_Tier__c", tier, "Loyalty_Points__c", (int)pts, "Preferences__c",
                     p[0] ? json_string(p) : json_null(), "SystemModstamp", ts);
}

static int check_contact(json_t *c, size_t i, json_t *seen, char *err, size_t errsz)
{
    const char *id = json_string_value(json_object_get(c, "Id"));
    const char *ln = json_string_value(json_object_get(c, "LastName"));
    const char *ly = json_string_value(json_object_get(c, "Loyalty_Id__c"));
    if (!json_is_object(c)) {
        snprintf(err, errsz, "contacts[%zu]: must be an object", i);
    } else if (!pg_sim_sf_id_valid(id, "003")) {
        char want[19] = "";
        if (id && strlen(id) == 18)
            pg_sim_sf_id18(id, want);
        snprintf(err, errsz, "contacts[%zu]: Id \"%s\" is not a valid 18-char Contact id%s%s", i,
                 id ? id : "", want[0] ? ", the suffix should give " : "", want);
    } else if (has_id15(seen, id)) {
        snprintf(err, errsz, "contacts[%zu]: duplicate Id %s", i, id);
    } else if (!ln || !ln[0]) {
        snprintf(err, errsz, "contacts[%zu]: LastName is required", i);
    } else if (ly && has_value(seen, "Loyalty_Id__c", ly)) {
        snprintf(err, errsz, "contacts[%zu]: duplicate Loyalty_Id__c %s", i, ly);
    } else if (json_object_get(c, "Name") || json_object_get(c, "attributes")) {
        snprintf(err, errsz, "contacts[%zu]: Name is computed from FirstName and LastName", i);
    } else {
        return PG_OK;
    }
    return PG_ECONFIG;
}

/* Seed: {"contacts":[...hand-written...], "generate":{"contacts":N,"seed":S}} (sim/README.md). */
static int sf_load_seed(const char *path, json_t **out, char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *root = NULL, *contacts = json_array();
    int rc = PG_ECONFIG;
    *out = NULL;
    if (!path)
        goto done;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errsz, "salesforce seed %s: line %d: %s", path, jerr.line, jerr.text);
        goto out;
    }
    const char *k;
    json_t *v, *list = json_object_get(root, "contacts"), *gen = json_object_get(root, "generate");
    json_object_foreach(root, k, v)
    {
        if (strcmp(k, "contacts") != 0 && strcmp(k, "generate") != 0) {
            snprintf(err, errsz, "salesforce seed %s: unknown key \"%s\"", path, k);
            goto out;
        }
    }
    if (list && !json_is_array(list)) {
        snprintf(err, errsz, "salesforce seed %s: \"contacts\" must be an array", path);
        goto out;
    }
    size_t i;
    json_array_foreach(list, i, v)
    {
        if (check_contact(v, i, contacts, err, errsz) != 0)
            goto out;
        json_array_append(contacts, v);
    }
    if (gen) {
        json_t *n = json_object_get(gen, "contacts"), *s = json_object_get(gen, "seed");
        if (!json_is_object(gen) || json_object_size(gen) != 2 || !json_is_integer(n) ||
            !json_is_integer(s) || json_integer_value(n) < 0 ||
            json_integer_value(n) > GENERATE_MAX) {
            snprintf(err, errsz,
                     "salesforce seed %s: \"generate\" must be {\"contacts\": 0..%d, \"seed\": "
                     "integer}",
                     path, GENERATE_MAX);
            goto out;
        }
        uint64_t rng = (uint64_t)json_integer_value(s);
        for (json_int_t g = 0; g < json_integer_value(n); g++)
            json_array_append_new(contacts, gen_contact(&rng, contacts, (int)g));
    }
done:
    *out = json_pack("{s:O}", "contacts", contacts);
    rc = *out ? PG_OK : PG_ENOMEM;
out:
    json_decref(contacts);
    json_decref(root);
    return rc;
}

int pg_sim_salesforce_init(struct pg_sim *sim,
                           const struct pg_sim_config *cfg,
                           char *err,
                           size_t errsz)
{
    json_t *seed;
    int rc = sf_load_seed(cfg->sf.seed, &seed, err, errsz);
    if (rc)
        return rc;
    rc = pg_sim_init(sim, &sf_ops, cfg, seed);
    sim->priv = calloc(1, sizeof(struct sf_priv));
    if (rc == PG_OK && !sim->priv)
        rc = PG_ENOMEM;
    if (rc == PG_OK)
        rc = pg_sim_sf_describe_init(sim->priv, json_object_get(sim->seed, "contacts"));
    if (rc == PG_OK)
        rc = pg_sim_sf_coll_init(sim->priv);
    if (rc == PG_OK) {
        uint64_t r = 0;
        /* replayIds are opaque and only grow; start somewhere that is not 1 */
        if (pg_random_bytes(&r, sizeof r) == 0)
            ((struct sf_priv *)sim->priv)->replay_id = 10000 + (long long)(r % 1000000);
        rc = pg_sim_om_start(sim, &((struct sf_priv *)sim->priv)->om);
    }
    if (rc)
        snprintf(err, errsz, "salesforce: out of memory");
    return rc;
}
