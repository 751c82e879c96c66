#include "sync/member.h"

#include <errno.h>
#include <poll.h>
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
#include "sync/normalize.h"

static const char *const kind_names[] = {"sf", "lid", "card", "email", "phone"};

const char *pg_member_kind_name(enum pg_member_kind k)
{
    return kind_names[k];
}

/*
 * Read path, read-only (so Redis never waits on the AOF fsync for it). ARGV: kind, value.
 * Returns "" (miss), "!nf" (cached not-found) or the member JSON.
 */
static const char get_lua[] =
    "local sfid = ARGV[2]\n"
    "if ARGV[1] ~= 'sf' then\n"
    "  sfid = redis.call('GET', '" PG_KEY_LOOKUP "' .. ARGV[1] .. ':' .. ARGV[2])\n"
    "  if not sfid then return '' end\n"
    "  if sfid == '!nf' then return '!nf' end\n"
    "end\n"
    "local m = redis.call('GET', '" PG_KEY_MEMBER_SF "' .. sfid)\n"
    "if m then return m end\n"
    "if ARGV[1] == 'sf' and redis.call('GET', '" PG_KEY_LOOKUP "sf:' .. sfid) == '!nf' then\n"
    "  return '!nf'\n"
    "end\n"
    "return ''\n";

/* Write path. ARGV: ttl ms, sfid, member JSON, then index kind/value pairs. */
static const char put_lua[] =
    "redis.call('SET', '" PG_KEY_MEMBER_SF "' .. ARGV[2], ARGV[3], 'PX', ARGV[1])\n"
    "redis.call('DEL', '" PG_KEY_LOOKUP "sf:' .. ARGV[2])\n"
    "for i = 4, #ARGV, 2 do\n"
    "  redis.call('SET', '" PG_KEY_LOOKUP
    "' .. ARGV[i] .. ':' .. ARGV[i + 1], ARGV[2], 'PX', ARGV[1])\n"
    "end\n"
    "return 1\n";

/* The scripts are constants: each is hashed once (the lookup path runs a script per hit). */
static char get_sha[2 * SHA_DIGEST_LENGTH + 1], put_sha[2 * SHA_DIGEST_LENGTH + 1];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_hex(const char *script, char *out)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void hash_scripts(void)
{
    sha_hex(get_lua, get_sha);
    sha_hex(put_lua, put_sha);
}

/*
 * Run a script by its SHA-1 (EVALSHA), loading it with EVAL only when Redis does not know it
 * (first use, or after a restart): the lookup path then sends a few bytes per hit instead of the
 * whole script.
 */
static int
eval_argv(redisReply **r, int timeout_ms, const char *script, const char **args, int nargs)
{
    pthread_once(&sha_once, hash_scripts);
    const char *sha = script == get_lua ? get_sha : put_sha;
    const char *argv[20];
    size_t argvlen[20];
    int n = 0;
    argv[n++] = "EVALSHA";
    argv[n++] = sha;
    argv[n++] = "0";
    for (int i = 0; i < nargs && n < 20; i++)
        argv[n++] = args[i];
    for (int i = 0; i < n; i++)
        argvlen[i] = strlen(argv[i]);
    if (timeout_ms <= 0)
        timeout_ms = pg_redis_command_timeout_ms();
    int rc = pg_redis_command_argv_timeout(r, timeout_ms, n, argv, argvlen);
    if (rc == PG_EPROTO && pg_redis_reply_is_error(*r, "NOSCRIPT")) {
        freeReplyObject(*r);
        *r = NULL;
        argv[0] = "EVAL";
        argv[1] = script;
        argvlen[0] = 4;
        argvlen[1] = strlen(script);
        rc = pg_redis_command_argv_timeout(r, timeout_ms, n, argv, argvlen);
    }
    return rc;
}

static void near_invalidate_all(void);

int pg_member_put(const json_t *member, const char *default_country, int64_t ttl_ms)
{
    const char *sfid = json_string_value(json_object_get(member, "salesforce_id"));
    if (!sfid || !*sfid)
        return PG_EINVAL;
    json_t *copy = json_deep_copy(member);
    if (!copy)
        return PG_ENOMEM;
    json_object_set_new(copy, "cached_at_ms", json_integer(pg_wall_ms()));
    char *js = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    if (!js)
        return PG_ENOMEM;
    char ttl[24], email[320], phone[40];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    const char *args[16];
    int n = 0;
    args[n++] = ttl;
    args[n++] = sfid;
    args[n++] = js;
    const char *lid = json_string_value(json_object_get(member, "loyalty_id"));
    const char *card = json_string_value(json_object_get(member, "card"));
    const char *em = json_string_value(json_object_get(member, "email"));
    const char *ph = json_string_value(json_object_get(member, "phone"));
    if (lid && *lid) {
        args[n++] = "lid";
        args[n++] = lid;
    }
    if (card && *card) {
        args[n++] = "card";
        args[n++] = card;
    }
    /* Index the normalised forms: "Jane@Example.com" and "jane@example.com" share one entry. A
     * value Salesforce holds that does not normalise is simply not indexed. */
    if (em && pg_norm_email(em, email, sizeof email) == PG_OK) {
        args[n++] = "email";
        args[n++] = email;
    }
    if (ph && pg_norm_phone(ph, default_country, phone, sizeof phone) == PG_OK) {
        args[n++] = "phone";
        args[n++] = phone;
    }
    redisReply *r = NULL;
    int rc = eval_argv(&r, 0, put_lua, args, n);
    if (r)
        freeReplyObject(r);
    free(js);
    /* This instance's next lookup must see the write without waiting for Redis's message. */
    near_invalidate_all();
    return rc;
}

int pg_member_put_negative(enum pg_member_kind kind, const char *value, int64_t ttl_ms)
{
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "SET " PG_KEY_LOOKUP "%s:%s !nf PX %lld", kind_names[kind], value,
                              (long long)ttl_ms);
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_member_read(enum pg_member_kind kind,
                   const char *value,
                   int timeout_ms,
                   enum pg_member_hit *hit,
                   struct pg_member_rec *rec)
{
    *hit = PG_MEMBER_MISS;
    memset(rec, 0, sizeof *rec);
    const char *args[] = {kind_names[kind], value};
    redisReply *r = NULL;
    int rc = eval_argv(&r, timeout_ms, get_lua, args, 2);
    if (rc == PG_OK && r->type != REDIS_REPLY_STRING)
        rc = PG_EPROTO;
    if (rc == PG_OK) {
        if (r->len == 3 && memcmp(r->str, "!nf", 3) == 0) {
            *hit = PG_MEMBER_NEGATIVE;
        } else if (r->len > 0) {
            *hit = PG_MEMBER_FOUND;
            rec->json = r->str;
            rec->len = r->len;
            rec->reply = r; /* the record's bytes live in the reply */
            return PG_OK;
        }
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

void pg_member_rec_free(struct pg_member_rec *rec)
{
    if (rec->reply)
        freeReplyObject(rec->reply);
    memset(rec, 0, sizeof *rec);
}

int pg_member_get(enum pg_member_kind kind,
                  const char *value,
                  enum pg_member_hit *hit,
                  json_t **member)
{
    *member = NULL;
    struct pg_member_rec rec;
    int rc = pg_member_read(kind, value, 0, hit, &rec);
    if (rc == PG_OK && *hit == PG_MEMBER_FOUND) {
        *member = json_loadb(rec.json, rec.len, 0, NULL);
        if (!*member)
            *hit = PG_MEMBER_MISS; /* unreadable: refetch */
    }
    pg_member_rec_free(&rec);
    return rc;
}

/* ---------------------------------------------------------------- near cache */

/*
 * See member.h. Coherence: a subscriber thread holds two connections of its own: one SUBSCRIBEd
 * to __redis__:invalidate, and one that turned on CLIENT TRACKING in BCAST mode for the member
 * and index prefixes with its invalidations redirected to the first. Redis then pushes a message
 * for every write, expiry or eviction of such a key, by any client of any instance, and one for
 * FLUSHALL. Any message, and any loss of either connection, moves near_gen on: every entry
 * stored under an older generation is dead. An entry may only be stored under the generation
 * read *before* the Redis read that produced it, so a write that lands between that read and
 * the store is never hidden. While the pair is not established, the near cache is off.
 */
#define NEAR_SLOTS 262144 /* a key per identifier: 10,000 members are up to 40,000 keys */
#define NEAR_STRIPES 64
#define NEAR_REC_MAX 8192
#define NEAR_RETRY_MS 500

struct near_entry {
    uint64_t gen;
    size_t klen, len;
    char data[]; /* kind:value, NUL, then the record as Redis holds it (len bytes) */
};

static struct near_entry *near_tab[NEAR_SLOTS];
static pthread_mutex_t near_mu[NEAR_STRIPES];
static _Atomic uint64_t near_gen = 1;
static atomic_int near_ok; /* the subscription and the tracking are in place */
static atomic_ullong near_hits, near_invalidations;
static pthread_mutex_t near_life = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t near_cv = PTHREAD_COND_INITIALIZER;
static pthread_t near_thread;
static atomic_int near_running; /* read without near_life by pg_member_near_gen */
static int near_stopping;

static uint64_t fnv64(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void near_invalidate_all(void)
{
    atomic_fetch_add(&near_gen, 1);
    atomic_fetch_add(&near_invalidations, 1);
}

/* Wait up to ms unless stopping; returns 1 when stopping. */
static int near_sleep(int ms)
{
    pthread_mutex_lock(&near_life);
    if (!near_stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&near_cv, &near_life, &ts);
    }
    int st = near_stopping;
    pthread_mutex_unlock(&near_life);
    return st;
}

static int near_stop_asked(void)
{
    pthread_mutex_lock(&near_life);
    int st = near_stopping;
    pthread_mutex_unlock(&near_life);
    return st;
}

/* Subscribe on sub and turn tracking on, on trk, redirected to sub. */
static int near_open(redisContext *sub, redisContext *trk)
{
    redisReply *r = redisCommand(sub, "CLIENT ID");
    long long id = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    if (id < 0)
        return PG_EUNAVAIL;
    r = redisCommand(sub, "SUBSCRIBE __redis__:invalidate");
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    if (r)
        freeReplyObject(r);
    if (!ok)
        return PG_EUNAVAIL;
    r = redisCommand(trk,
                     "CLIENT TRACKING on REDIRECT %lld BCAST PREFIX " PG_KEY_MEMBER_SF
                     " PREFIX " PG_KEY_LOOKUP,
                     id);
    ok = r && r->type == REDIS_REPLY_STATUS;
    if (r && !ok && r->type == REDIS_REPLY_ERROR)
        pg_log(PG_LOG_WARN, NULL, "lookup.near_cache_off", "CLIENT TRACKING refused: %.120s",
               r->str);
    if (r)
        freeReplyObject(r);
    return ok ? PG_OK : PG_EPROTO;
}

/* Read invalidations until a connection fails or a stop is asked. */
static void near_pump(redisContext *sub, redisContext *trk)
{
    while (!near_stop_asked()) {
        struct pollfd p[2] = {{.fd = sub->fd, .events = POLLIN}, {.fd = trk->fd, .events = POLLIN}};
        int n = poll(p, 2, 200);
        if (n < 0 && errno != EINTR)
            return;
        if (n <= 0)
            continue;
        if (p[1].revents) /* the tracking connection never gets data: closed or failed */
            return;
        if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
            return;
        if (!(p[0].revents & POLLIN))
            continue;
        if (redisBufferRead(sub) != REDIS_OK)
            return;
        for (;;) {
            void *reply = NULL;
            if (redisGetReplyFromReader(sub, &reply) != REDIS_OK)
                return;
            if (!reply)
                break;
            near_invalidate_all(); /* a member or index key changed somewhere */
            freeReplyObject(reply);
        }
    }
}

static void *near_main(void *arg)
{
    (void)arg;
    pg_thread_name("pg-nearcache");
    int logged = 0;
    while (!near_stop_asked()) {
        redisContext *sub = NULL, *trk = NULL;
        int rc = pg_redis_connect_new(&sub);
        if (rc == PG_OK)
            rc = pg_redis_connect_new(&trk);
        if (rc == PG_OK)
            rc = near_open(sub, trk);
        if (rc == PG_OK) {
            near_invalidate_all(); /* writes may have been missed while it was off */
            atomic_store(&near_ok, 1);
            if (logged)
                pg_log(PG_LOG_INFO, NULL, "lookup.near_cache_on", "invalidations flow again");
            logged = 0;
            near_pump(sub, trk);
            atomic_store(&near_ok, 0);
            near_invalidate_all();
        }
        if (!logged && !near_stop_asked()) {
            pg_log(PG_LOG_WARN, NULL, "lookup.near_cache_off",
                   "no Redis invalidations: every lookup reads Redis");
            logged = 1;
        }
        if (sub)
            redisFree(sub);
        if (trk)
            redisFree(trk);
        near_sleep(NEAR_RETRY_MS);
    }
    return NULL;
}

static void near_start(void)
{
    pthread_mutex_lock(&near_life);
    if (!atomic_load(&near_running) && !near_stopping) {
        for (int i = 0; i < NEAR_STRIPES; i++)
            pthread_mutex_init(&near_mu[i], NULL);
        if (pthread_create(&near_thread, NULL, near_main, NULL) == 0)
            atomic_store(&near_running, 1);
    }
    pthread_mutex_unlock(&near_life);
}

static int near_key(enum pg_member_kind kind, const char *value, char *key, size_t keysz)
{
    int n = snprintf(key, keysz, "%s:%s", kind_names[kind], value);
    return n > 0 && (size_t)n < keysz ? n : -1;
}

uint64_t pg_member_near_gen(void)
{
    if (!atomic_load(&near_running))
        near_start();
    return atomic_load(&near_gen);
}

int pg_member_near_get(
    enum pg_member_kind kind, const char *value, char *buf, size_t bufsz, size_t *len)
{
    if (!atomic_load(&near_ok))
        return 0;
    char key[336];
    int kl = near_key(kind, value, key, sizeof key);
    if (kl < 0)
        return 0;
    uint64_t gen = atomic_load(&near_gen);
    size_t slot = fnv64(key, (size_t)kl) & (NEAR_SLOTS - 1);
    pthread_mutex_t *mu = &near_mu[slot % NEAR_STRIPES];
    int found = 0;
    pthread_mutex_lock(mu);
    const struct near_entry *e = near_tab[slot];
    if (e && e->gen == gen && e->len <= bufsz && e->klen == (size_t)kl &&
        memcmp(e->data, key, (size_t)kl) == 0) {
        memcpy(buf, e->data + kl + 1, e->len);
        *len = e->len;
        found = 1;
    }
    pthread_mutex_unlock(mu);
    if (found)
        atomic_fetch_add(&near_hits, 1);
    return found;
}

void pg_member_near_put(
    enum pg_member_kind kind, const char *value, const char *rec, size_t len, uint64_t gen)
{
    if (!atomic_load(&near_ok) || gen != atomic_load(&near_gen) || len > NEAR_REC_MAX)
        return;
    char key[336];
    int kl = near_key(kind, value, key, sizeof key);
    if (kl < 0)
        return;
    struct near_entry *e = malloc(sizeof *e + (size_t)kl + 1 + len);
    if (!e)
        return;
    e->gen = gen;
    e->klen = (size_t)kl;
    memcpy(e->data, key, (size_t)kl + 1);
    e->len = len;
    memcpy(e->data + kl + 1, rec, len);
    size_t slot = fnv64(key, (size_t)kl) & (NEAR_SLOTS - 1);
    pthread_mutex_t *mu = &near_mu[slot % NEAR_STRIPES];
    pthread_mutex_lock(mu);
    struct near_entry *old = near_tab[slot];
    near_tab[slot] = e;
    pthread_mutex_unlock(mu);
    free(old);
}

void pg_member_near_stats(unsigned long long *hits, unsigned long long *invalidations, int *on)
{
    *hits = atomic_load(&near_hits);
    *invalidations = atomic_load(&near_invalidations);
    *on = atomic_load(&near_ok);
}

void pg_member_near_stop(void)
{
    pthread_mutex_lock(&near_life);
    int was = atomic_load(&near_running);
    near_stopping = 1;
    pthread_cond_broadcast(&near_cv);
    pthread_mutex_unlock(&near_life);
    if (!was)
        return;
    pthread_join(near_thread, NULL);
    atomic_store(&near_ok, 0);
    for (size_t i = 0; i < NEAR_SLOTS; i++) {
        free(near_tab[i]);
        near_tab[i] = NULL;
    }
    for (int i = 0; i < NEAR_STRIPES; i++)
        pthread_mutex_destroy(&near_mu[i]);
    pthread_mutex_lock(&near_life);
    atomic_store(&near_running, 0);
    near_stopping = 0;
    pthread_mutex_unlock(&near_life);
}
