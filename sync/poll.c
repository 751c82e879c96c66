/*
 * The BI API poller (sync/poll.h). One thread per location; a cycle is latest business date →
 * dimensions → getGuestChecks per re-polled date → the checks' extensibility details → durable
 * put → cursor.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "micros/bi.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/backoff.h"
#include "sync/checkq.h"
#include "sync/keys.h"
#include "sync/poll.h"

/* First retry after a failure waits up to this long; each further failure doubles it. */
#define POLL_BACKOFF_BASE_MS 1000

/* Outcomes of a cycle, the label values of posgate_checks_polls_total. */
enum outcome {
    OUT_OK = 0,    /* every date queued, cursor saved */
    OUT_UNAVAIL,   /* BI answered 429/5xx or was unreachable / timed out */
    OUT_AUTH,      /* sign-in refused (credentials, client id, expired password) */
    OUT_DENIED,    /* 403: the API account may not read this location */
    OUT_PROTO,     /* another 4xx or an unusable reply */
    OUT_REDIS,     /* the queue or the cursor could not be written */
    OUT_ELSEWHERE, /* another posgate process holds this location's lease: nothing done */
    OUT_N
};
static const char *const outcome_names[OUT_N] = {
    "ok",        "unavailable",       "auth_failed",   "denied",
    "bad_reply", "queue_unavailable", "held_elsewhere"};

struct loc {
    struct pg_poll *poll;
    char ref[PG_CHECKQ_LOC_MAX + 1];
    pthread_t thread;
    int started;
    pthread_mutex_t cycle_mu;        /* one cycle at a time: the thread's or pg_poll_now's */
    int attempt;                     /* consecutive failed cycles (under cycle_mu) */
    json_t *dims;                    /* last names written (under cycle_mu) */
    _Atomic int64_t last_ok_wall_ms; /* wall time of the last saved cursor; 0: none yet */
    atomic_ullong polls[OUT_N];
};

struct pg_poll {
    const struct pg_config *cfg;
    struct pg_bi *bi;
    struct loc *locs;
    size_t nlocs;
    int64_t started_wall_ms;
    char owner[96]; /* this process's lease value: host-pid-random */
    atomic_int stopping;
    pthread_mutex_t mu; /* with cv: interruptible sleeps; with slot_cv: the cycle slots */
    pthread_cond_t cv;
    pthread_cond_t slot_cv;
    int cycles_running; /* under mu; at most cfg->poll_concurrency */
    int cycles_peak;    /* under mu; the most that ever ran at once (a metric) */
};

/* The running poller, for pg_poll_now and the metrics collector. */
static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct pg_poll *g_poll;

/* posgate_checks_received_total{source, result}: sources "bi", "push"; results as checkq's. */
static atomic_ullong received[2][3];

/* ---------------------------------------------------------------- helpers */

int pg_poll_date_minus(const char *date, int days, char *out, size_t outsz)
{
    if (!date || !pg_bi_valid_date(date) || outsz < 11)
        return PG_EINVAL;
    struct tm tm = {0};
    tm.tm_year = atoi(date) - 1900;
    tm.tm_mon = atoi(date + 5) - 1;
    tm.tm_mday = atoi(date + 8) - days; /* timegm normalises out-of-range days */
    tm.tm_hour = 12;
    time_t t = timegm(&tm);
    struct tm r;
    if (t == (time_t)-1 || !gmtime_r(&t, &r))
        return PG_EINVAL;
    snprintf(out, outsz, "%04d-%02d-%02d", r.tm_year + 1900, r.tm_mon + 1, r.tm_mday);
    return PG_OK;
}

/* Epoch ms of a BI "YYYY-MM-DDTHH:MM:SS" UTC time; -1 when malformed. */
static int64_t utc_ms(const char *s)
{
    if (!s || !pg_bi_valid_utc(s))
        return -1;
    struct tm tm = {0};
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    tm.tm_hour = atoi(s + 11);
    tm.tm_min = atoi(s + 14);
    tm.tm_sec = atoi(s + 17);
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (int64_t)t * 1000;
}

/* {"<num>": "name"} from a dimension reply's array member. */
static json_t *names_of(const json_t *reply, const char *member)
{
    json_t *o = json_object();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(reply, member), i, d)
    {
        json_t *num = json_object_get(d, "num");
        const char *name = json_string_value(json_object_get(d, "name"));
        if (!json_is_integer(num) || !name)
            continue;
        char k[24];
        snprintf(k, sizeof k, "%lld", (long long)json_integer_value(num));
        json_object_set_new(o, k, json_string(name));
    }
    return o;
}

json_t *pg_poll_dims_json(const json_t *menu_items,
                          const json_t *tender_media,
                          const json_t *discounts,
                          const json_t *service_charges,
                          const json_t *prev)
{
    /* reply, its array member, the transform's key */
    const struct {
        const json_t *reply;
        const char *member, *key;
    } parts[] = {
        {menu_items, "menuItems", "menuItems"},
        {tender_media, "tenderMedias", "tenderMedia"},
        {discounts, "discounts", "discounts"},
        {service_charges, "serviceCharges", "serviceCharges"},
    };
    json_t *out = json_object();
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (parts[i].reply)
            json_object_set_new(out, parts[i].key, names_of(parts[i].reply, parts[i].member));
        else if (json_is_object(json_object_get(prev, parts[i].key)))
            json_object_set(out, parts[i].key, json_object_get(prev, parts[i].key));
    }
    return out;
}

static enum outcome outcome_of(int rc)
{
    switch (rc) {
    case PG_EAUTH:
        return OUT_AUTH;
    case PG_EFORBIDDEN:
        return OUT_DENIED;
    case PG_EPROTO:
    case PG_EINVAL:
    case PG_ETOOLARGE:
        return OUT_PROTO;
    default:
        return OUT_UNAVAIL; /* EUNAVAIL, ETIMEDOUT, EIO, ENOMEM: try again later */
    }
}

static int deadline_ms(const struct pg_poll *p)
{
    return p->cfg->bi_timeout_ms > 0 ? p->cfg->bi_timeout_ms : 60000;
}

/* ---------------------------------------------------------------- one cycle */

/* Dimension names for the transform. Failures are logged, never fatal: a check without a name
 * still loads (the transform falls back to "Menu item <num>"), a check not loaded is lost work. */
static void refresh_dims(struct pg_poll *p, struct loc *l, const char *rid)
{
    static const char *const ops[4] = {"getMenuItemDimensions", "getTenderMediaDimensions",
                                       "getDiscountDimensions", "getServiceChargeDimensions"};
    json_t *r[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        char why[256] = "";
        int rc = pg_bi_dimension(p->bi, ops[i], l->ref, pg_now_ms() + deadline_ms(p), &r[i], why,
                                 sizeof why);
        if (rc != PG_OK) {
            pg_log(PG_LOG_WARN, rid, "poll.dimension_failed", "location %s: %s: %s (%s)", l->ref,
                   ops[i], pg_strerror(rc), why);
            r[i] = NULL;
        }
    }
    json_t *d = pg_poll_dims_json(r[0], r[1], r[2], r[3], l->dims);
    for (int i = 0; i < 4; i++)
        json_decref(r[i]);
    if (l->dims && json_equal(d, l->dims)) {
        json_decref(d); /* nothing new to write */
        return;
    }
    char *s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    redisReply *rep = NULL;
    int rc = s ? pg_redis_command(&rep, "SET " PG_KEY_CHK_DIMS "%s %s", l->ref, s) : PG_ENOMEM;
    if (rep)
        freeReplyObject(rep);
    free(s);
    if (rc != PG_OK) {
        pg_log(PG_LOG_WARN, rid, "poll.dimension_failed",
               "location %s: dimension names not saved: %s", l->ref, pg_strerror(rc));
        json_decref(d);
        return;
    }
    json_decref(l->dims);
    l->dims = d;
}

/* The saved cursor into cur (cursz >= 20); "" when there is none. */
static int load_cursor(const struct loc *l, char *cur, size_t cursz)
{
    cur[0] = '\0';
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "GET " PG_KEY_CHK_CURSOR "%s", l->ref);
    if (rc == PG_OK && r->type == REDIS_REPLY_STRING) {
        if (pg_bi_valid_utc(r->str))
            snprintf(cur, cursz, "%s", r->str);
        else /* never send the API something it refuses: start over from whole dates */
            pg_log(PG_LOG_WARN, NULL, "poll.bad_cursor",
                   "location %s: saved cursor is not YYYY-MM-DDTHH:MM:SS; ignoring it", l->ref);
    } else if (rc == PG_EPROTO) {
        rc = PG_EUNAVAIL;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

/* Validate and queue one reply's checks; fills the date's counters in *day. A check the queue
 * refuses as malformed is logged and skipped: one bad record must not hold the location's
 * cursor back forever (the BI API is the system of record; an operator sees the log and metric). */
static int queue_checks(struct loc *l, const json_t *checks, const char *rid, json_t *day)
{
    size_t n = json_array_size(checks), ok = 0, invalid = 0;
    struct pg_checkq_item *items = n ? calloc(n, sizeof *items) : NULL;
    enum pg_checkq_result *res = n ? calloc(n, sizeof *res) : NULL;
    if (n && (!items || !res)) {
        free(items);
        free(res);
        return PG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(checks, i);
        char gcid[32], why[160] = "";
        if (pg_checkq_validate(l->ref, c, gcid, sizeof gcid, why, sizeof why) != PG_OK) {
            pg_log(PG_LOG_ERROR, rid, "poll.invalid_check",
                   "location %s: check #%zu of the reply skipped: %s", l->ref, i, why);
            invalid++;
            continue;
        }
        items[ok].loc_ref = l->ref;
        items[ok].check = c;
        ok++;
    }
    int rc = PG_OK;
    if (ok) {
        char why[256] = "";
        rc = pg_checkq_put(items, ok, "bi", rid, res, why, sizeof why);
        if (rc != PG_OK)
            pg_log(PG_LOG_WARN, rid, "poll.queue_failed", "location %s: %s (%s)", l->ref,
                   pg_strerror(rc), why);
    }
    if (rc == PG_OK) {
        size_t cnt[3] = {0, 0, 0};
        for (size_t i = 0; i < ok; i++)
            if ((unsigned)res[i] < 3)
                cnt[res[i]]++;
        pg_poll_note_received("bi", res, ok);
        json_object_set_new(day, "queued", json_integer((json_int_t)cnt[PG_CHECKQ_QUEUED]));
        json_object_set_new(day, "unchanged", json_integer((json_int_t)cnt[PG_CHECKQ_UNCHANGED]));
        json_object_set_new(day, "stale", json_integer((json_int_t)cnt[PG_CHECKQ_STALE]));
        json_object_set_new(day, "invalid", json_integer((json_int_t)invalid));
    }
    free(items);
    free(res);
    return rc;
}

/*
 * Extension data. getGuestChecks does not carry what Extension Applications stamped on a check
 * (a loyalty member id: dataName "memberId"); getGuestCheckExtensibilityDetails serves it per
 * location and OPENING business date (micros/bi.h). So for the distinct opnBusDt of the fetched
 * checks (a check polled by busDt may have opened on an earlier date), the details are fetched
 * once per cycle (cache: {"<opnBusDt>": {"<guestCheckId>": [entry...]}}) and merged into each
 * check as `extensions` entries, the shape customer matching reads (sync/match.h) — before the
 * check is queued, so the queue's digest covers them and a member stamped later re-queues it.
 * An entry already on the check (equal) is not added twice. Returns PG_OK or the BI error
 * (*retry_after_s, why set): the caller fails the cycle rather than queue checks without their
 * member ids. checks.poll.extensibility false: nothing is fetched.
 */
static int attach_extensions(struct pg_poll *p,
                             const struct loc *l,
                             json_t *checks,
                             json_t *cache,
                             int *retry_after_s,
                             char *why,
                             size_t whysz)
{
    if (!p->cfg->poll_extensibility || !json_is_array(checks))
        return PG_OK;
    size_t i, k, m;
    json_t *c, *e, *x;
    json_array_foreach(checks, i, c)
    {
        const char *od = json_string_value(json_object_get(c, "opnBusDt"));
        if (!od || !pg_bi_valid_date(od) || json_object_get(cache, od))
            continue;
        json_t *resp = NULL, *idx = NULL;
        int ra = -1;
        char w[256] = "";
        int rc = pg_bi_guest_check_ext(p->bi, l->ref, od, pg_now_ms() + deadline_ms(p), &resp, &ra,
                                       w, sizeof w);
        if (rc == PG_OK && (rc = pg_bi_ext_index(resp, &idx)) != PG_OK)
            snprintf(w, sizeof w, "unusable reply");
        json_decref(resp);
        if (rc != PG_OK) {
            *retry_after_s = ra;
            snprintf(why, whysz, "getGuestCheckExtensibilityDetails %s: %s (%s)", od,
                     pg_strerror(rc), w);
            return rc;
        }
        if (json_object_set_new(cache, od, idx))
            return PG_ENOMEM;
    }
    json_array_foreach(checks, i, c)
    {
        json_t *idx = json_object_get(cache, json_string_value(json_object_get(c, "opnBusDt")));
        json_t *id = json_object_get(c, "guestCheckId");
        char key[32];
        if (!idx || !json_object_size(idx))
            continue;
        if (json_is_integer(id))
            snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        else if (json_is_string(id) && json_string_length(id) < sizeof key)
            snprintf(key, sizeof key, "%s", json_string_value(id));
        else
            continue;
        json_t *ents = json_object_get(idx, key);
        if (!json_array_size(ents))
            continue;
        json_t *ex = json_object_get(c, "extensions");
        if (!json_is_array(ex)) {
            ex = json_array();
            if (!ex || json_object_set_new(c, "extensions", ex))
                return PG_ENOMEM;
        }
        json_array_foreach(ents, k, e)
        {
            int have = 0;
            json_array_foreach(ex, m, x) have |= json_equal(x, e);
            if (!have && json_array_append(ex, e))
                return PG_ENOMEM;
        }
    }
    return PG_OK;
}

/* DEL key only while it still holds val: a re-pull asked again during ours is kept for the next
 * cycle. */
static const char del_if_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/*
 * Re-pulls reconciliation asked for (sync/recon.h: pg:chk:repull:<loc>:<busdt> after a drift):
 * each such business date is fetched whole (no changedSinceUTC: what went missing may be older
 * than any cursor) and queued, then the request is deleted. Dates outside the re-poll window are
 * served too: that is the point of asking. The cursor is not involved. Returns PG_OK or the first
 * failure (the remaining requests stay for the next cycle). report gets "repulled": [dates].
 */
static int repull_requests(
    struct pg_poll *p, struct loc *l, const char *rid, json_t *report, int *retry_after_s)
{
    char pat[128];
    snprintf(pat, sizeof pat, PG_KEY_CHK_REPULL "%s:*", l->ref);
    size_t prefix = strlen(pat) - 1;
    char scur[32] = "0";
    int rc = PG_OK;
    json_t *done = json_array();
    json_t *ext_cache = json_object();
    do {
        redisReply *r = NULL;
        rc = pg_redis_command(&r, "SCAN %s MATCH %s COUNT 100", scur, pat);
        if (rc != PG_OK || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            rc = rc == PG_OK ? PG_EPROTO : rc;
            break;
        }
        snprintf(scur, sizeof scur, "%s", r->element[0]->str ? r->element[0]->str : "0");
        redisReply *keys = r->element[1];
        for (size_t i = 0; rc == PG_OK && i < keys->elements; i++) {
            const char *key = keys->element[i]->str;
            if (!key || strlen(key) <= prefix || !pg_bi_valid_date(key + prefix))
                continue;
            const char *date = key + prefix;
            redisReply *v = NULL;
            rc = pg_redis_command(&v, "GET %s", key);
            char *val = rc == PG_OK && v->type == REDIS_REPLY_STRING ? strdup(v->str) : NULL;
            if (v)
                freeReplyObject(v);
            if (rc != PG_OK || !val) {
                free(val);
                continue; /* gone meanwhile (another process served it) */
            }
            json_t *resp = NULL;
            char why[256] = "";
            int ra = -1;
            rc = pg_bi_guest_checks(p->bi, l->ref, PG_BI_BUS_DT, date, NULL, 0,
                                    pg_now_ms() + deadline_ms(p), &resp, &ra, why, sizeof why);
            if (rc != PG_OK) {
                *retry_after_s = ra;
                pg_log(PG_LOG_WARN, rid, "poll.repull_failed", "location %s %s: %s (%s)", l->ref,
                       date, pg_strerror(rc), why);
                free(val);
                break;
            }
            rc = attach_extensions(p, l, json_object_get(resp, "guestChecks"), ext_cache, &ra, why,
                                   sizeof why);
            if (rc != PG_OK) {
                *retry_after_s = ra;
                pg_log(PG_LOG_WARN, rid, "poll.repull_failed", "location %s %s: %s", l->ref, date,
                       why);
                json_decref(resp);
                free(val);
                break;
            }
            json_t *day =
                json_pack("{s:s, s:I}", "date", date, "checks",
                          (json_int_t)json_array_size(json_object_get(resp, "guestChecks")));
            rc = queue_checks(l, json_object_get(resp, "guestChecks"), rid, day);
            json_decref(resp);
            if (rc == PG_OK) {
                redisReply *d = NULL;
                rc = pg_redis_command(&d, "EVAL %s 1 %s %s", del_if_lua, key, val);
                if (d)
                    freeReplyObject(d);
                pg_log(PG_LOG_INFO, rid, "poll.repulled",
                       "location %s %s: fetched whole again on reconciliation's request", l->ref,
                       date);
                json_array_append(done, day);
            }
            json_decref(day);
            free(val);
        }
        freeReplyObject(r);
    } while (rc == PG_OK && strcmp(scur, "0") != 0);
    json_decref(ext_cache);
    if (json_array_size(done))
        json_object_set_new(report, "repulled", done);
    else
        json_decref(done);
    return rc;
}

/*
 * One cycle (caller holds l->cycle_mu). *retry_after_s gets a 429/503's Retry-After (-1 none).
 * Returns the outcome; report (may be NULL) is filled as pg_poll_now documents.
 */
static enum outcome cycle(struct pg_poll *p, struct loc *l, int *retry_after_s, json_t *report)
{
    char rid[33] = "poll";
    if (pg_random_hex_id(rid, sizeof rid) != PG_OK)
        snprintf(rid, sizeof rid, "poll");
    *retry_after_s = -1;
    json_t *dates = json_array();
    json_object_set_new(report, "location", json_string(l->ref));
    json_object_set_new(report, "dates", dates);

    char latest[16], latest_cur[32], why[256] = "";
    int rc = pg_bi_latest_bus_dt(p->bi, l->ref, pg_now_ms() + deadline_ms(p), latest, sizeof latest,
                                 latest_cur, sizeof latest_cur);
    if (rc != PG_OK) {
        snprintf(why, sizeof why, "getLatestBusDt: %s", pg_strerror(rc));
        json_object_set_new(report, "error", json_string(why));
        return outcome_of(rc);
    }
    json_object_set_new(report, "latestBusDt", json_string(latest));

    char cursor[32];
    rc = load_cursor(l, cursor, sizeof cursor);
    if (rc != PG_OK) {
        json_object_set_new(report, "error", json_string("the cursor could not be read"));
        return OUT_REDIS;
    }
    json_object_set_new(report, "cursor_before", cursor[0] ? json_string(cursor) : json_null());

    refresh_dims(p, l, rid);

    /*
     * Date field: busDt, the union of opnBusDt and clsdBusDt (§1.4). clsdBusDt alone would miss
     * open checks (tabs, partial payments) until they close, and a check reopened and closed on a
     * later day; opnBusDt alone would miss the close of a check opened before the re-poll window.
     * busDt returns a check on every business date it touches, so a check spanning two days can
     * come back twice in one cycle: harmless, since the queue stores whole checks by guestCheckId
     * and an identical second copy is UNCHANGED. Nothing here sums across dates.
     *
     * Cursor: changedSinceUTC asks "what changed since T on this date", and each reply's curUTC
     * is that server's "now" for that reply. The cycle makes several calls, one per date, at
     * different times. A change to date D1 that lands after D1's call but before D3's call is
     * not in any reply of this cycle, yet it is older than D3's curUTC: saving the LATEST curUTC
     * would skip it forever. The EARLIEST curUTC of the cycle (the first reply's) is before every
     * change this cycle could have missed, so the next cycle's changedSinceUTC covers them. The
     * price is re-reading changes made during the cycle, which the queue marks UNCHANGED.
     */
    char min_cur[32] = "";
    enum outcome out = OUT_OK;
    json_t *ext_cache = json_object(); /* this cycle's extensibility details, by opnBusDt */
    for (int d = 0; d < p->cfg->poll_repoll_days && !atomic_load(&p->stopping); d++) {
        char date[16];
        if (pg_poll_date_minus(latest, d, date, sizeof date) != PG_OK) {
            out = OUT_PROTO;
            break;
        }
        json_t *resp = NULL;
        int ra = -1;
        rc = pg_bi_guest_checks(p->bi, l->ref, PG_BI_BUS_DT, date, cursor[0] ? cursor : NULL, 0,
                                pg_now_ms() + deadline_ms(p), &resp, &ra, why, sizeof why);
        if (rc != PG_OK) {
            *retry_after_s = ra;
            char e[400];
            snprintf(e, sizeof e, "getGuestChecks %s: %s (%s)", date, pg_strerror(rc), why);
            json_object_set_new(report, "error", json_string(e));
            out = outcome_of(rc);
            break;
        }
        const char *cur = json_string_value(json_object_get(resp, "curUTC"));
        json_t *checks = json_object_get(resp, "guestChecks");
        if (!cur || !pg_bi_valid_utc(cur) || (checks && !json_is_array(checks))) {
            json_decref(resp);
            json_object_set_new(report, "error",
                                json_string("getGuestChecks: reply without a usable curUTC or "
                                            "guestChecks"));
            out = OUT_PROTO;
            break;
        }
        rc = attach_extensions(p, l, checks, ext_cache, &ra, why, sizeof why);
        if (rc != PG_OK) {
            json_decref(resp);
            *retry_after_s = ra;
            json_object_set_new(report, "error", json_string(why));
            out = outcome_of(rc);
            break;
        }
        if (!min_cur[0] || strcmp(cur, min_cur) < 0) /* fixed-width format: string order */
            snprintf(min_cur, sizeof min_cur, "%s", cur);
        json_t *day = json_pack("{s:s, s:I, s:s}", "date", date, "checks",
                                (json_int_t)json_array_size(checks), "curUTC", cur);
        json_array_append_new(dates, day);
        rc = queue_checks(l, checks, rid, day);
        json_decref(resp);
        if (rc != PG_OK) {
            json_object_set_new(report, "error", json_string("the checks could not be queued"));
            out = OUT_REDIS;
            break;
        }
    }
    json_decref(ext_cache);
    if (out == OUT_OK && atomic_load(&p->stopping)) {
        json_object_set_new(report, "error", json_string("stopping"));
        return OUT_UNAVAIL; /* not every date was asked: keep the cursor */
    }
    if (out != OUT_OK)
        return out;

    redisReply *r = NULL;
    rc = pg_redis_command(&r, "SET " PG_KEY_CHK_CURSOR "%s %s", l->ref, min_cur);
    if (r)
        freeReplyObject(r);
    if (rc != PG_OK) {
        json_object_set_new(report, "error", json_string("the cursor could not be saved"));
        return OUT_REDIS;
    }
    json_object_set_new(report, "cursor", json_string(min_cur));
    /* Lag is measured from the cursor (BI's clock: data up to then is queued); a cursor ahead of
     * our clock counts as now. */
    int64_t cms = utc_ms(min_cur), now = pg_wall_ms();
    atomic_store(&l->last_ok_wall_ms, cms > 0 && cms < now ? cms : now);
    rc = repull_requests(p, l, rid, report, retry_after_s);
    if (rc != PG_OK) {
        json_object_set_new(report, "error",
                            json_string("a re-pull asked by reconciliation failed"));
        return rc == PG_EUNAVAIL || rc == PG_ETIMEDOUT ? OUT_UNAVAIL : outcome_of(rc);
    }
    return OUT_OK;
}

/* Run a cycle under the location's lock, count it and log it. */
/*
 * Several posgate processes may share one Redis (and one BI API account, whose calls are rate
 * limited): a lease per location (SET NX PX, value = this process) lets one of them poll it at a
 * time. The lease outlives the longest cycle (every call at its timeout), is dropped by its owner
 * after the cycle, and expires by itself when that process dies. Running a cycle twice at once
 * would be harmless anyway (the queue dedupes, the cursor only ever lags), only wasteful.
 * Returns PG_OK with *taken, or the Redis error.
 */
static int take_lease(struct pg_poll *p, const struct loc *l, int *taken)
{
    long long lease_ms = (long long)deadline_ms(p) * (p->cfg->poll_repoll_days + 6) + 10000;
    redisReply *r = NULL;
    int rc =
        pg_redis_command(&r, "SET " PG_KEY_CHK_POLL "%s %s NX PX %lld", l->ref, p->owner, lease_ms);
    *taken = rc == PG_OK && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return rc == PG_EPROTO ? PG_EUNAVAIL : rc;
}

static void drop_lease(struct pg_poll *p, const struct loc *l)
{
    char key[128];
    snprintf(key, sizeof key, PG_KEY_CHK_POLL "%s", l->ref);
    redisReply *r = NULL;
    if (pg_redis_command(&r, "EVAL %s 1 %s %s", del_if_lua, key, p->owner) != PG_OK)
        pg_log(PG_LOG_WARN, NULL, "poll.lease", "location %s: lease not dropped (it expires)",
               l->ref);
    if (r)
        freeReplyObject(r);
}

/* While another process polls the location, the lag gauge follows the cursor it saves. */
static void follow_cursor(struct loc *l)
{
    char cur[32];
    if (load_cursor(l, cur, sizeof cur) == PG_OK && cur[0]) {
        int64_t cms = utc_ms(cur), now = pg_wall_ms();
        atomic_store(&l->last_ok_wall_ms, cms > 0 && cms < now ? cms : now);
    }
}

/*
 * A cycle holds a location's whole business days in memory (a busy location's getGuestChecks
 * reply is several MB of JSON, ten times that parsed), so at most checks.poll.concurrency cycles
 * run at once however many locations are polled: memory stays bounded by the slots, not by the
 * number of stores. 0 when a slot was taken, -1 when the poller is stopping.
 */
static int take_slot(struct pg_poll *p)
{
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stopping) && p->cycles_running >= p->cfg->poll_concurrency)
        pthread_cond_wait(&p->slot_cv, &p->mu);
    int ok = !atomic_load(&p->stopping);
    if (ok && ++p->cycles_running > p->cycles_peak)
        p->cycles_peak = p->cycles_running;
    pthread_mutex_unlock(&p->mu);
    return ok ? 0 : -1;
}

static void drop_slot(struct pg_poll *p)
{
    pthread_mutex_lock(&p->mu);
    p->cycles_running--;
    pthread_cond_signal(&p->slot_cv);
    pthread_mutex_unlock(&p->mu);
}

static enum outcome run_cycle(struct pg_poll *p, struct loc *l, int *retry_after_s, json_t **rep)
{
    json_t *report = json_object();
    if (take_slot(p) != 0) {
        json_object_set_new(report, "location", json_string(l->ref));
        json_object_set_new(report, "error", json_string("the poller is stopping"));
        if (rep)
            *rep = report;
        else
            json_decref(report);
        return OUT_ELSEWHERE;
    }
    pthread_mutex_lock(&l->cycle_mu);
    int taken = 0;
    enum outcome out;
    if (take_lease(p, l, &taken) != PG_OK) {
        json_object_set_new(report, "location", json_string(l->ref));
        json_object_set_new(report, "error", json_string("the poll lease could not be taken"));
        out = OUT_REDIS;
    } else if (!taken) {
        json_object_set_new(report, "location", json_string(l->ref));
        follow_cursor(l);
        out = OUT_ELSEWHERE;
    } else {
        out = cycle(p, l, retry_after_s, report);
        drop_lease(p, l);
    }
    l->attempt = out == OUT_OK || out == OUT_ELSEWHERE ? 0 : l->attempt + 1;
    int attempt = l->attempt;
    pthread_mutex_unlock(&l->cycle_mu);
    drop_slot(p);
    atomic_fetch_add(&l->polls[out], 1);
    json_object_set_new(report, "outcome", json_string(outcome_names[out]));
    if (out == OUT_OK) {
        json_int_t q = 0;
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(report, "dates"), i, d) q +=
            json_integer_value(json_object_get(d, "queued"));
        if (q > 0 || pg_log_enabled(PG_LOG_DEBUG))
            pg_logj(q > 0 ? PG_LOG_INFO : PG_LOG_DEBUG, NULL, "poll.cycle", json_deep_copy(report));
    } else if (out == OUT_ELSEWHERE) {
        pg_log(PG_LOG_DEBUG, NULL, "poll.held_elsewhere",
               "location %s: another posgate process is polling it", l->ref);
    } else if (out == OUT_AUTH) {
        pg_log(PG_LOG_ERROR, NULL, "poll.auth_failed",
               "location %s: the BI API refused the sign-in (check checks.bi.client_id, "
               "username, password and org; an expired API account password needs a reset in "
               "Simphony): %s",
               l->ref, json_string_value(json_object_get(report, "error")));
    } else {
        pg_log(out == OUT_DENIED ? PG_LOG_ERROR : PG_LOG_WARN, NULL, "poll.failed",
               "location %s: %s (failure %d in a row; cursor kept)", l->ref,
               json_string_value(json_object_get(report, "error")), attempt);
    }
    if (rep)
        *rep = report;
    else
        json_decref(report);
    return out;
}

/* Sleep up to ms, returning early when stopping. */
static void nap(struct pg_poll *p, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stopping) && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0) {
    }
    pthread_mutex_unlock(&p->mu);
}

static void *loc_main(void *arg)
{
    struct loc *l = arg;
    struct pg_poll *p = l->poll;
    pg_thread_name("pg-poll");
    while (!atomic_load(&p->stopping)) {
        int ra = -1;
        enum outcome out = run_cycle(p, l, &ra, NULL);
        int64_t delay = (int64_t)p->cfg->poll_interval_s * 1000;
        if (out != OUT_OK && out != OUT_ELSEWHERE) {
            uint64_t rnd = 0;
            if (pg_random_bytes(&rnd, sizeof rnd) != PG_OK)
                rnd = (uint64_t)pg_now_us();
            pthread_mutex_lock(&l->cycle_mu);
            int attempt = l->attempt;
            pthread_mutex_unlock(&l->cycle_mu);
            delay = pg_backoff_ms(attempt, POLL_BACKOFF_BASE_MS,
                                  (int64_t)p->cfg->poll_backoff_max_s * 1000, rnd, ra);
            if (delay < 50)
                delay = 50; /* full jitter can draw 0: never spin */
        }
        nap(p, delay);
    }
    return NULL;
}

/* ---------------------------------------------------------------- metrics */

static int collect(struct pg_buf *out)
{
    static const char *const src[2] = {"bi", "push"};
    static const char *const res[3] = {"queued", "unchanged", "stale"};
    int rc = pg_buf_puts(out, "# HELP posgate_checks_received_total Guest checks put on the "
                              "check queue by this process, by source and result.\n"
                              "# TYPE posgate_checks_received_total counter\n");
    for (int s = 0; s < 2 && !rc; s++)
        for (int r = 0; r < 3 && !rc; r++)
            rc = pg_buf_printf(out,
                               "posgate_checks_received_total{source=\"%s\",result=\"%s\"} %llu\n",
                               src[s], res[r], atomic_load(&received[s][r]));
    pthread_rwlock_rdlock(&g_lock);
    struct pg_poll *p = g_poll;
    if (p && !rc)
        rc = pg_buf_puts(out, "# HELP posgate_checks_poll_lag_seconds Now minus the BI time up to "
                              "which a location's checks are queued (the saved cursor); since the "
                              "poller started when no cycle has succeeded yet.\n"
                              "# TYPE posgate_checks_poll_lag_seconds gauge\n");
    int64_t now = pg_wall_ms();
    for (size_t i = 0; p && i < p->nlocs && !rc; i++) {
        int64_t t = atomic_load(&p->locs[i].last_ok_wall_ms);
        double lag = (double)(now - (t ? t : p->started_wall_ms)) / 1000.0;
        rc = pg_buf_puts(out, "posgate_checks_poll_lag_seconds{location=\"");
        if (!rc)
            rc = pg_metrics_label_escape(out, p->locs[i].ref);
        if (!rc)
            rc = pg_buf_printf(out, "\"} %.3f\n", lag < 0 ? 0.0 : lag);
    }
    if (p && !rc)
        rc = pg_buf_puts(out, "# HELP posgate_checks_polls_total BI poll cycles by location and "
                              "outcome.\n"
                              "# TYPE posgate_checks_polls_total counter\n");
    for (size_t i = 0; p && i < p->nlocs && !rc; i++)
        for (int o = 0; o < OUT_N && !rc; o++) {
            rc = pg_buf_puts(out, "posgate_checks_polls_total{location=\"");
            if (!rc)
                rc = pg_metrics_label_escape(out, p->locs[i].ref);
            if (!rc)
                rc = pg_buf_printf(out, "\",outcome=\"%s\"} %llu\n", outcome_names[o],
                                   atomic_load(&p->locs[i].polls[o]));
        }
    if (p && !rc) {
        pthread_mutex_lock(&p->mu);
        int running = p->cycles_running, peak = p->cycles_peak;
        pthread_mutex_unlock(&p->mu);
        rc = pg_buf_printf(out,
                           "# HELP posgate_checks_poll_cycles_running Poll cycles running now "
                           "(at most checks.poll.concurrency).\n"
                           "# TYPE posgate_checks_poll_cycles_running gauge\n"
                           "posgate_checks_poll_cycles_running %d\n"
                           "# HELP posgate_checks_poll_cycles_peak The most poll cycles that ran "
                           "at once since the start.\n"
                           "# TYPE posgate_checks_poll_cycles_peak gauge\n"
                           "posgate_checks_poll_cycles_peak %d\n",
                           running, peak);
    }
    pthread_rwlock_unlock(&g_lock);
    return rc;
}

static pthread_once_t collector_once = PTHREAD_ONCE_INIT;

static void register_collector(void)
{
    if (pg_metrics_register(collect) != PG_OK)
        pg_log(PG_LOG_WARN, NULL, "poll.metrics", "metrics collector table full");
}

void pg_poll_metrics_init(void)
{
    pthread_once(&collector_once, register_collector);
}

void pg_poll_note_received(const char *source, const enum pg_checkq_result *results, size_t n)
{
    int s = strcmp(source, "push") == 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned)results[i] < 3)
            atomic_fetch_add(&received[s][results[i]], 1);
}

/* ---------------------------------------------------------------- lifecycle */

/* The polled locations: checks.poll.locations, else the keys of checks.transform.locations. */
static int
collect_locations(const struct pg_config *cfg, struct pg_poll *p, char *err, size_t errsz)
{
    size_t n = 0;
    for (char **s = cfg->poll_locations; s && *s; s++)
        n++;
    json_t *tl = json_object_get(cfg->checks_transform, "locations");
    int from_transform = n == 0;
    if (from_transform)
        n = json_object_size(tl);
    if (n == 0) {
        snprintf(err, errsz,
                 "config: checks.poll.enabled needs checks.poll.locations or "
                 "checks.transform.locations");
        return PG_ECONFIG;
    }
    p->locs = calloc(n, sizeof *p->locs);
    if (!p->locs)
        return PG_ENOMEM;
    const char *key;
    json_t *v;
    size_t i = 0;
    if (from_transform) {
        json_object_foreach(tl, key, v)
        {
            snprintf(p->locs[i].ref, sizeof p->locs[i].ref, "%s", key);
            if (strlen(key) > PG_CHECKQ_LOC_MAX)
                p->locs[i].ref[0] = '\0';
            i++;
        }
    } else {
        for (char **s = cfg->poll_locations; *s; s++, i++) {
            snprintf(p->locs[i].ref, sizeof p->locs[i].ref, "%s", *s);
            if (strlen(*s) > PG_CHECKQ_LOC_MAX)
                p->locs[i].ref[0] = '\0';
        }
    }
    for (i = 0; i < n; i++) {
        const char *r = p->locs[i].ref;
        if (!r[0] ||
            strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
                strlen(r)) {
            snprintf(err, errsz,
                     "config: checks.poll: location #%zu: a locRef is 1..%d of [A-Za-z0-9._-]", i,
                     PG_CHECKQ_LOC_MAX);
            return PG_ECONFIG;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->locs[j].ref, r) == 0) {
                snprintf(err, errsz, "config: checks.poll.locations: %s twice", r);
                return PG_ECONFIG;
            }
    }
    p->nlocs = n;
    return PG_OK;
}

static void poll_free(struct pg_poll *p)
{
    for (size_t i = 0; i < p->nlocs; i++) {
        pthread_mutex_destroy(&p->locs[i].cycle_mu);
        json_decref(p->locs[i].dims);
    }
    free(p->locs);
    pg_bi_free(p->bi);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->slot_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int pg_poll_start(const struct pg_config *cfg, struct pg_poll **out)
{
    *out = NULL;
    pg_poll_metrics_init();
    struct pg_poll *p = calloc(1, sizeof *p);
    if (!p)
        return PG_ENOMEM;
    p->cfg = cfg;
    p->started_wall_ms = pg_wall_ms();
    char host[64] = "host", rnd[33] = "0";
    gethostname(host, sizeof host - 1);
    if (pg_random_hex_id(rnd, sizeof rnd) != PG_OK)
        snprintf(rnd, sizeof rnd, "%lld", (long long)pg_now_us());
    snprintf(p->owner, sizeof p->owner, "%.40s-%ld-%.16s", host, (long)getpid(), rnd);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&p->slot_cv, NULL);
    char err[256] = "";
    int rc = collect_locations(cfg, p, err, sizeof err);
    if (rc) {
        pg_log(PG_LOG_ERROR, NULL, "startup", "%s", err);
        poll_free(p);
        return rc;
    }
    struct pg_bi_config bc = {
        .base_url = cfg->bi_base_url,
        .auth_base_url = cfg->bi_auth_base_url,
        .org = cfg->bi_org,
        .client_id = cfg->bi_client_id,
        .username = cfg->bi_username,
        .password = cfg->bi_password,
        .application_name = cfg->bi_application_name,
        .timeout_ms = cfg->bi_timeout_ms,
    };
    rc = pg_bi_new(&bc, &p->bi);
    if (rc) {
        pg_log(PG_LOG_ERROR, NULL, "startup",
               "checks.bi: base_url (http/https), org, client_id, username and password are "
               "required to poll: %s",
               pg_strerror(rc));
        poll_free(p);
        return rc == PG_EINVAL ? PG_ECONFIG : rc;
    }
    for (size_t i = 0; i < p->nlocs; i++) {
        p->locs[i].poll = p;
        pthread_mutex_init(&p->locs[i].cycle_mu, NULL);
    }
    pthread_rwlock_wrlock(&g_lock);
    g_poll = p; /* before the threads: pg_poll_now and /metrics see every location */
    pthread_rwlock_unlock(&g_lock);
    for (size_t i = 0; i < p->nlocs; i++) {
        if (pthread_create(&p->locs[i].thread, NULL, loc_main, &p->locs[i]) != 0) {
            pg_poll_stop(p);
            return PG_ENOMEM;
        }
        p->locs[i].started = 1;
    }
    pg_log(PG_LOG_INFO, NULL, "poll.started",
           "polling %zu location(s) every %d s, re-polling %d business date(s)", p->nlocs,
           cfg->poll_interval_s, cfg->poll_repoll_days);
    *out = p;
    return PG_OK;
}

void pg_poll_stop(struct pg_poll *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->slot_cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nlocs; i++)
        if (p->locs[i].started)
            pthread_join(p->locs[i].thread, NULL);
    /* pg_poll_now callers hold g_lock (read) while they use p: the write lock waits for them. */
    pthread_rwlock_wrlock(&g_lock);
    if (g_poll == p)
        g_poll = NULL;
    pthread_rwlock_unlock(&g_lock);
    poll_free(p);
}

int pg_poll_check_config(const struct pg_config *cfg, char *err, size_t errsz)
{
    if (!cfg->poll_enabled)
        return PG_OK;
    struct pg_poll p = {.cfg = cfg};
    int rc = collect_locations(cfg, &p, err, errsz);
    free(p.locs);
    if (rc)
        return rc;
    struct pg_bi_config bc = {
        .base_url = cfg->bi_base_url,
        .auth_base_url = cfg->bi_auth_base_url,
        .org = cfg->bi_org,
        .client_id = cfg->bi_client_id,
        .username = cfg->bi_username,
        .password = cfg->bi_password,
        .application_name = cfg->bi_application_name,
    };
    struct pg_bi *bi = NULL;
    rc = pg_bi_new(&bc, &bi);
    pg_bi_free(bi);
    if (rc) {
        snprintf(err, errsz,
                 "config: checks.poll.enabled needs checks.bi.base_url (http/https), org "
                 "([A-Za-z0-9._-]), client_id, username and password");
        return PG_ECONFIG;
    }
    return PG_OK;
}

int pg_poll_now(const char *loc_ref, json_t **report)
{
    *report = NULL;
    /* g_lock is read-held for the whole cycle so pg_poll_stop cannot free the poller under us
     * (stop runs after the HTTP server has drained, so this only orders shutdown). */
    pthread_rwlock_rdlock(&g_lock);
    struct pg_poll *p = g_poll;
    if (!p) {
        pthread_rwlock_unlock(&g_lock);
        return PG_EUNAVAIL;
    }
    struct loc *l = NULL;
    for (size_t i = 0; i < p->nlocs && !l; i++)
        if (strcmp(p->locs[i].ref, loc_ref) == 0)
            l = &p->locs[i];
    if (!l) {
        pthread_rwlock_unlock(&g_lock);
        return PG_ENOTFOUND;
    }
    int ra = -1;
    run_cycle(p, l, &ra, report);
    pthread_rwlock_unlock(&g_lock);
    return PG_OK;
}
