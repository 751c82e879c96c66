#include "sync/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "server/log.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/keys.h"

#define WINDOW_MS 60000
#define NBUCKETS 256
#define BATCH 128 /* keys per flush script call */

/* One key id's counts for its current minute (and a finished minute's unflushed rest). */
struct rent {
    struct rent *next;
    char id[144];
    int64_t window;         /* minute number (wall ms / 60000) the counts below belong to */
    long long seen;         /* shared total Redis returned at the last flush of this window */
    long long inflight;     /* counts the flusher is adding to Redis right now */
    long long pending;      /* counts not handed to the flusher yet */
    int64_t prev_window;    /* a finished minute whose counts were not flushed yet */
    long long prev_pending; /* ... and those counts */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rent *buckets[NBUCKETS];
/* One flush at a time (the flusher, pg_rate_flush, pg_rate_stop): entries are freed only while
 * holding it, so a flush may keep pointers to entries across its Redis round trip. */
static pthread_mutex_t flush_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static pthread_t flusher;
static int running, stopping;
static atomic_ullong flush_failures;

/*
 * KEYS: one rate key per entry; ARGV: the count to add to each, then the window (ms) the key
 * lives for. Adds what is given (a write, AOF-logged) or only reads the total when there is
 * nothing to add; returns the totals in KEYS order.
 */
static const char flush_lua[] = "local out = {}\n"
                                "for i = 1, #KEYS do\n"
                                "  local n = tonumber(ARGV[i])\n"
                                "  if n > 0 then\n"
                                "    out[i] = redis.call('INCRBY', KEYS[i], n)\n"
                                "    if out[i] == n then redis.call('PEXPIRE', KEYS[i], "
                                "ARGV[#KEYS + 1]) end\n"
                                "  else\n"
                                "    out[i] = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
                                "  end\n"
                                "end\n"
                                "return out\n";

static unsigned bucket_of(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % NBUCKETS;
}

static void *flusher_main(void *arg);

long long pg_rate_count(const char *key_id, int64_t now_ms)
{
    int64_t w = now_ms / WINDOW_MS;
    unsigned b = bucket_of(key_id);
    pthread_mutex_lock(&mu);
    if (!running && !stopping && pthread_create(&flusher, NULL, flusher_main, NULL) == 0)
        running = 1; /* if it cannot start, counts stay local: the limit holds per instance */
    struct rent *e = buckets[b];
    while (e && strncmp(e->id, key_id, sizeof e->id - 1) != 0)
        e = e->next;
    if (!e && (e = calloc(1, sizeof *e))) {
        snprintf(e->id, sizeof e->id, "%s", key_id);
        e->window = w;
        e->next = buckets[b];
        buckets[b] = e;
    }
    long long n = 1; /* out of memory: count this one alone (fail open) */
    if (e) {
        if (e->window != w) {
            /* A new minute. The old one's unflushed counts still go to its own key; a flush of
             * it in flight is finished by the flusher (it checks the window before applying). */
            if (e->pending > 0 && w > e->window) {
                if (e->prev_window != e->window)
                    e->prev_pending = 0; /* an older minute never flushed: no longer matters */
                e->prev_window = e->window;
                e->prev_pending += e->pending;
            }
            e->window = w;
            e->seen = e->inflight = e->pending = 0;
        }
        e->pending++;
        n = e->seen + e->inflight + e->pending;
    }
    pthread_mutex_unlock(&mu);
    return n;
}

/* What one flush sends for one entry. */
struct item {
    struct rent *e;
    int64_t window;
    long long add;
    int prev; /* the finished minute's counts (no total to read back) */
    char key[200];
};

/* The script's SHA-1 for EVALSHA; called with flush_mu held (flushes are serialised). */
static const char *flush_sha(void)
{
    static char sha[2 * SHA_DIGEST_LENGTH + 1];
    if (!sha[0]) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)flush_lua, strlen(flush_lua), md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(sha + 2 * i, 3, "%02x", md[i]);
    }
    return sha;
}

/* One script call for items[0..n): EVALSHA, loading the script with EVAL on NOSCRIPT. */
static int send_batch(struct item *items, int n, redisReply **r)
{
    const char *argv[2 * BATCH + 4];
    char adds[BATCH][24], win[24];
    int a = 0;
    argv[a++] = "EVALSHA";
    argv[a++] = flush_sha();
    char nk[16];
    snprintf(nk, sizeof nk, "%d", n);
    argv[a++] = nk;
    for (int i = 0; i < n; i++)
        argv[a++] = items[i].key;
    for (int i = 0; i < n; i++) {
        snprintf(adds[i], sizeof adds[i], "%lld", items[i].add);
        argv[a++] = adds[i];
    }
    snprintf(win, sizeof win, "%d", WINDOW_MS);
    argv[a++] = win;
    int rc = pg_redis_command_argv(r, a, argv, NULL);
    if (rc == PG_EPROTO && pg_redis_reply_is_error(*r, "NOSCRIPT")) {
        freeReplyObject(*r);
        *r = NULL;
        argv[0] = "EVAL";
        argv[1] = flush_lua;
        rc = pg_redis_command_argv(r, a, argv, NULL);
    }
    if (rc == PG_OK && ((*r)->type != REDIS_REPLY_ARRAY || (*r)->elements != (size_t)n))
        rc = PG_EPROTO;
    return rc;
}

/* Everything to send: the unflushed counts of every entry, and a read of the shared total of
 * every entry counting in the current minute; entries idle for two minutes are freed.
 * With mu held. Ownership: the array is new (free). */
static struct item *collect(int64_t now_w, int *nout)
{
    int cap = 0;
    for (unsigned b = 0; b < NBUCKETS; b++)
        for (struct rent *e = buckets[b]; e; e = e->next)
            cap += 2;
    *nout = 0;
    struct item *items = cap ? malloc((size_t)cap * sizeof *items) : NULL;
    if (!items)
        return NULL;
    int n = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        for (struct rent **pp = &buckets[b]; *pp;) {
            struct rent *e = *pp;
            if (e->prev_pending > 0) {
                struct item *it = &items[n++];
                it->e = e;
                it->window = e->prev_window;
                it->add = e->prev_pending;
                it->prev = 1;
                snprintf(it->key, sizeof it->key, PG_KEY_RATE "%s:%lld", e->id,
                         (long long)e->prev_window);
                e->prev_pending = 0;
            }
            if (e->pending > 0 || e->window == now_w) {
                struct item *it = &items[n++];
                it->e = e;
                it->window = e->window;
                it->add = e->pending;
                it->prev = 0;
                snprintf(it->key, sizeof it->key, PG_KEY_RATE "%s:%lld", e->id,
                         (long long)e->window);
                e->inflight += e->pending;
                e->pending = 0;
            } else if (e->window < now_w - 1 && e->inflight == 0 &&
                       (n == 0 || items[n - 1].e != e)) {
                *pp = e->next; /* idle: nothing left to send or to judge by */
                free(e);
                continue;
            }
            pp = &e->next;
        }
    }
    *nout = n;
    return items;
}

/* Apply a batch's result (r NULL: it failed; the counts go back to pending). With mu held. */
static void apply(struct item *items, int n, const redisReply *r)
{
    for (int i = 0; i < n; i++) {
        struct item *it = &items[i];
        struct rent *e = it->e;
        if (it->prev) {
            if (!r && e->prev_window == it->window)
                e->prev_pending += it->add;
            continue;
        }
        if (e->window != it->window)
            continue; /* the minute ended meanwhile: the flush still counted for the old key */
        e->inflight -= it->add;
        if (r && r->element[i]->type == REDIS_REPLY_INTEGER)
            e->seen = r->element[i]->integer;
        else if (!r)
            e->pending += it->add;
    }
}

int pg_rate_flush(void)
{
    pthread_mutex_lock(&flush_mu);
    int64_t now_w = pg_wall_ms() / WINDOW_MS;
    int n = 0;
    pthread_mutex_lock(&mu);
    struct item *items = collect(now_w, &n);
    pthread_mutex_unlock(&mu);
    int rc = PG_OK;
    for (int at = 0; at < n; at += BATCH) {
        int k = n - at < BATCH ? n - at : BATCH;
        redisReply *r = NULL;
        if (rc == PG_OK) {
            rc = send_batch(items + at, k, &r);
            if (rc != PG_OK)
                atomic_fetch_add(&flush_failures, 1);
        }
        /* after a failure the remaining batches are not sent: their counts go back too */
        pthread_mutex_lock(&mu);
        apply(items + at, k, rc == PG_OK ? r : NULL);
        pthread_mutex_unlock(&mu);
        if (r)
            freeReplyObject(r);
    }
    free(items);
    pthread_mutex_unlock(&flush_mu);
    return rc;
}

static void *flusher_main(void *arg)
{
    (void)arg;
    pg_thread_name("pg-ratelimit");
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += PG_RATE_FLUSH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&stop_cv, &mu, &ts);
        if (stopping)
            break;
        pthread_mutex_unlock(&mu);
        if (pg_rate_flush() != PG_OK)
            pg_log(PG_LOG_DEBUG, NULL, "lookup.rate_flush_failed",
                   "rate-limit counts kept in memory until Redis answers");
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

void pg_rate_stop(void)
{
    pthread_mutex_lock(&mu);
    int was = running;
    stopping = 1;
    pthread_cond_broadcast(&stop_cv);
    pthread_mutex_unlock(&mu);
    if (was) {
        pthread_join(flusher, NULL);
        if (pg_rate_flush() != PG_OK)
            pg_log(PG_LOG_WARN, NULL, "lookup.rate_flush_failed",
                   "rate-limit counts of this minute not added to Redis at shutdown");
    }
    pthread_mutex_lock(&flush_mu);
    pthread_mutex_lock(&mu);
    for (unsigned b = 0; b < NBUCKETS; b++) {
        while (buckets[b]) {
            struct rent *e = buckets[b];
            buckets[b] = e->next;
            free(e);
        }
    }
    running = 0;
    stopping = 0;
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&flush_mu);
}

unsigned long long pg_rate_flush_failures(void)
{
    return atomic_load(&flush_failures);
}
