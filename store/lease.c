/* Leases on Redis keys with recovery of our own failed releases (store/lease.h). */
#include "store/lease.h"

#include <stdio.h>
#include <string.h>

#include "server/log.h"
#include "store/redis.h"

/*
 * Take a lease: SET NX; failing that, when ARGV[3] (our holder prefix) is given and the holder
 * named on the key starts with it, take it over. 1: taken; the old holder: taken over; 0: not.
 * One round trip, and the prefix test and the takeover are one atomic step.
 */
static const char take_lua[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
    "if ARGV[3] == '' then return 0 end\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and string.sub(v, 1, #ARGV[3]) == ARGV[3] then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return v end\n"
    "return 0\n";

/* Release a lease only if we still hold it. */
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

int pg_lease_set_init(struct pg_lease_set *s, const char *prefix)
{
    memset(s, 0, sizeof *s);
    s->in_use = json_object();
    if (!s->in_use)
        return PG_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    return PG_OK;
}

void pg_lease_set_free(struct pg_lease_set *s)
{
    if (!s->in_use)
        return;
    json_decref(s->in_use);
    s->in_use = NULL;
    pthread_mutex_destroy(&s->mu);
}

/* Count key as in use by one more caller (delta +1) or one fewer (-1); returns the new count. */
static json_int_t count(struct pg_lease_set *s, const char *key, int delta)
{
    pthread_mutex_lock(&s->mu);
    json_int_t n = json_integer_value(json_object_get(s->in_use, key)) + delta;
    if (n > 0)
        json_object_set_new(s->in_use, key, json_integer(n)); /* on ENOMEM: only fewer takeovers */
    else
        json_object_del(s->in_use, key);
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int eval(redisReply **r,
                const char *script,
                const char *key,
                const char *a1,
                const char *a2,
                const char *a3)
{
    const char *argv[] = {"EVAL", script, "1", key, a1, a2, a3};
    size_t len[7];
    int n = a2 ? 7 : 5;
    for (int i = 0; i < n; i++)
        len[i] = strlen(argv[i]);
    return pg_redis_command_argv(r, n, argv, len);
}

int pg_lease_take(struct pg_lease_set *s, const char *key, const char *holder, int ms, int *got)
{
    *got = 0;
    /* Counted before the take: another worker here that sees our name on the key in between
     * must find it in use, not stale. A key another worker here is using is never taken over. */
    int shared = count(s, key, +1) > 1;
    char px[24];
    snprintf(px, sizeof px, "%d", ms);
    redisReply *r = NULL;
    int rc = eval(&r, take_lua, key, holder, px, shared ? "" : s->prefix);
    if (rc == PG_OK && r && r->type == REDIS_REPLY_INTEGER)
        *got = r->integer == 1;
    else if (rc == PG_OK && r && r->type == REDIS_REPLY_STRING) {
        *got = 1;
        pg_log(PG_LOG_INFO, NULL, "lease.recovered",
               "%s: left by %s of this process (its release failed); taken over", key, r->str);
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

void pg_lease_release(struct pg_lease_set *s, const char *key, const char *holder, int held)
{
    if (held) {
        redisReply *r = NULL;
        (void)eval(&r, release_lua, key, holder, NULL, NULL); /* failed: recoverable, see .h */
        if (r)
            freeReplyObject(r);
    }
    count(s, key, -1);
}
