/*
 * MICROS → posgate intake: POST /v1/micros/guest-checks (middleware pushes guest checks in the BI
 * shape) and POST /v1/admin/checks/poll (an operator or a test runs a BI poll cycle now).
 *
 * The push endpoint accepts one BI guest check, an array of them, or a whole getGuestChecks reply
 * ({"locRef", "guestChecks": [...]}). The location is the body's locRef or the "location" query
 * parameter (both given: they must agree). Every check is validated before anything is written,
 * so a 400 means nothing was queued; a 202 is sent only after the durable put (sync/checkq.h), so
 * a 202 means the checks survive a crash; Redis down is 503 + Retry-After, nothing acknowledged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "sync/checkq.h"
#include "sync/poll.h"

/* Invalid checks named in one 400 reply (the first is also in "detail"). */
#define MAX_ERRORS 20

/* True when the admitted caller may write checks for loc. A station key must be bound to that
 * location ("location", or, for keys kept in Redis without one, its "stores"); a partner token
 * restricted to stores must list it; an unrestricted partner token may write any location. */
static int may_write(const json_t *who, const char *loc)
{
    const char *id = json_string_value(json_object_get(who, "id"));
    int partner = id && strncmp(id, "partner:", 8) == 0;
    const char *bound = json_string_value(json_object_get(who, "location"));
    if (!partner && bound)
        return strcmp(bound, loc) == 0;
    json_t *stores = json_object_get(who, "stores");
    if (!json_is_array(stores))
        return partner;
    size_t i;
    json_t *s;
    json_array_foreach(stores, i, s)
    {
        if (json_is_string(s) && strcmp(json_string_value(s), loc) == 0)
            return 1;
    }
    return 0;
}

/*
 * Parse the body into the checks array (*checks borrowed from *doc) and the location.
 * PG_OK, or the reply has been written.
 */
static int parse_body(struct pg_req *req, json_t **doc, json_t **checks, const char **loc)
{
    size_t len = 0;
    const char *body = pg_req_body(req, &len);
    json_error_t je;
    *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!*doc) {
        char d[256];
        snprintf(d, sizeof d, "the body is not JSON: %s (line %d)", je.text, je.line);
        pg_req_problem(req, 400, d, NULL);
        return PG_EINVAL;
    }
    const char *qloc = pg_req_query(req, "location");
    const char *bloc = NULL;
    if (json_is_array(*doc)) {
        *checks = *doc;
    } else if (json_is_object(*doc) && json_object_get(*doc, "guestChecks")) {
        /* a getGuestChecks reply: curUTC and other members pass through unread */
        *checks = json_object_get(*doc, "guestChecks");
        json_t *lr = json_object_get(*doc, "locRef");
        if (lr && !json_is_string(lr)) {
            pg_req_problem(req, 400, "locRef must be a string (leading zeros matter)", NULL);
            return PG_EINVAL;
        }
        bloc = json_string_value(lr);
        if (!json_is_array(*checks)) {
            pg_req_problem(req, 400, "guestChecks must be an array", NULL);
            return PG_EINVAL;
        }
    } else if (json_is_object(*doc)) {
        *checks = NULL; /* one check: wrapped below */
    } else {
        pg_req_problem(req, 400,
                       "expected a guest check, an array of guest checks, or a getGuestChecks "
                       "body {\"locRef\", \"guestChecks\": [...]}",
                       NULL);
        return PG_EINVAL;
    }
    if (bloc && qloc && strcmp(bloc, qloc) != 0) {
        pg_req_problem(req, 400, "the body's locRef and the location parameter differ", NULL);
        return PG_EINVAL;
    }
    *loc = bloc ? bloc : qloc;
    if (!*loc) {
        pg_req_problem(req, 400,
                       "the location is required: the body's locRef or ?location=<locRef>", NULL);
        return PG_EINVAL;
    }
    if (!*checks) {
        json_t *one = json_array();
        json_array_append_new(one, *doc);
        *doc = one; /* one owns the check now */
        *checks = one;
    }
    return PG_OK;
}

/* 400 naming every invalid check (up to MAX_ERRORS) by index; PG_OK when all are valid. */
static int validate_all(struct pg_req *req, const char *loc, const json_t *checks)
{
    json_t *errors = json_array();
    char first[256] = "";
    size_t nbad = 0, i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        char gcid[32], why[160] = "";
        if (pg_checkq_validate(loc, c, gcid, sizeof gcid, why, sizeof why) == PG_OK)
            continue;
        if (nbad == 0)
            snprintf(first, sizeof first, "check %zu: %s", i, why);
        if (nbad < MAX_ERRORS)
            json_array_append_new(errors,
                                  json_pack("{s:I, s:s}", "index", (json_int_t)i, "reason", why));
        nbad++;
    }
    if (nbad == 0) {
        json_decref(errors);
        return PG_OK;
    }
    char d[400];
    snprintf(d, sizeof d, "%zu invalid check(s), nothing was queued; %s", nbad, first);
    pg_req_problem(req, 400, d, json_pack("{s:o}", "errors", errors));
    return PG_EINVAL;
}

/* Runs after the Idempotency-Key check: parse, authorise the location, validate, put, reply. */
static int guest_checks(struct pg_req *req)
{
    const struct pg_config *cfg = pg_hnd.app->cfg;
    json_t *doc = NULL, *checks = NULL;
    const char *loc = NULL;
    if (parse_body(req, &doc, &checks, &loc) != PG_OK) {
        json_decref(doc);
        return PG_OK;
    }
    char gcid[32], why[256] = "";
    /* The location's own syntax first, with a check-free probe. */
    json_t *probe = json_pack("{s:i}", "guestCheckId", 0);
    int rc = pg_checkq_validate(loc, probe, gcid, sizeof gcid, why, sizeof why);
    json_decref(probe);
    if (rc != PG_OK) {
        char d[320];
        snprintf(d, sizeof d, "location: %s", why);
        pg_req_problem(req, 400, d, NULL);
        goto out;
    }
    if (!may_write(pg_req_principal(req), loc)) {
        pg_req_problem(req, 403, "this caller may not send checks for this location", NULL);
        goto out;
    }
    size_t n = json_array_size(checks);
    if (n == 0) {
        pg_req_problem(req, 400, "no guest checks in the body", NULL);
        goto out;
    }
    if (n > (size_t)cfg->checks_push_max) {
        char d[160];
        snprintf(d, sizeof d, "%zu checks in one request; at most %d (checks.push_max_checks)", n,
                 cfg->checks_push_max);
        pg_req_problem(req, 413, d, NULL);
        goto out;
    }
    if (validate_all(req, loc, checks) != PG_OK)
        goto out;
    struct pg_checkq_item *items = calloc(n, sizeof *items);
    enum pg_checkq_result *res = calloc(n, sizeof *res);
    if (!items || !res) {
        free(items);
        free(res);
        pg_req_problem(req, 503, "out of memory", NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].loc_ref = loc;
        items[i].check = json_array_get(checks, i);
    }
    rc = pg_checkq_put(items, n, "push", pg_req_id(req), res, why, sizeof why);
    free(items);
    if (rc != PG_OK) {
        free(res);
        if (rc == PG_EINVAL) { /* validated above: only a disagreement between the two checks */
            pg_req_problem(req, 400, why[0] ? why : "invalid check", NULL);
            goto out;
        }
        pg_log(PG_LOG_WARN, pg_req_id(req), "checks.push_unavailable",
               "location %s: %zu checks not queued: %s (%s)", loc, n, pg_strerror(rc), why);
        pg_req_add_header(req, "Retry-After", "1");
        pg_req_problem(req, 503, "the check queue is unavailable; nothing was accepted", NULL);
        goto out;
    }
    pg_poll_note_received("push", res, n);
    json_t *results = json_array();
    size_t cnt[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_object_get(json_array_get(checks, i), "guestCheckId");
        json_array_append_new(results, json_pack("{s:O, s:s}", "guestCheckId", id, "result",
                                                 pg_checkq_result_name(res[i])));
        if ((unsigned)res[i] < 3)
            cnt[res[i]]++;
    }
    free(res);
    pg_req_reply_json(req, 202,
                      json_pack("{s:s, s:I, s:I, s:I, s:o}", "location", loc, "queued",
                                (json_int_t)cnt[PG_CHECKQ_QUEUED], "unchanged",
                                (json_int_t)cnt[PG_CHECKQ_UNCHANGED], "stale",
                                (json_int_t)cnt[PG_CHECKQ_STALE], "results", results));
out:
    json_decref(doc);
    return PG_OK;
}

int pg_hnd_micros_guest_checks(struct pg_req *req)
{
    char slot[600];
    if (pg_hnd_idem_begin(req, slot, sizeof slot) != PG_OK)
        return PG_OK; /* replayed, 409, 422, 400 or 503: already answered */
    int rc = guest_checks(req);
    pg_hnd_idem_finish(req, slot);
    return rc;
}

int pg_hnd_checks_poll_now(struct pg_req *req)
{
    const char *loc = pg_req_query(req, "location");
    if (!loc || !*loc)
        return pg_req_problem(req, 400, "?location=<locRef> is required", NULL);
    json_t *report = NULL;
    int rc = pg_poll_now(loc, &report);
    if (rc == PG_EUNAVAIL)
        return pg_req_problem(req, 409, "the BI poller is not running (checks.poll.enabled)", NULL);
    if (rc == PG_ENOTFOUND)
        return pg_req_problem(req, 404, "this location is not polled", NULL);
    if (rc != PG_OK)
        return rc;
    return pg_req_reply_json(req, 200, report);
}
