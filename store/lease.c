/* Leases on Redis keys with recovery of our own failed releases (store/lease.h). */
#include "store/lease.h"

#include <stdio.h>
#include <string.h>

#include "server/log.h"
#include "store/redis.h"

/* Take over a lease only while it still names the holder we judged stale. */
static const char takeover_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end\n"
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
    /* Counted before the SET: another worker here that sees our name on the key in between
     * must find it in use, not stale. */
    json_int_t mine = count(s, key, +1);
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "SET %s %s NX PX %d", key, holder, ms);
    *got = rc == PG_OK && r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (rc != PG_OK || *got || mine > 1)
        return rc; /* taken; Redis trouble; or another worker here is using it */
    r = NULL;
    rc = pg_redis_command(&r, "GET %s", key);
    if (rc != PG_OK || !r || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return rc; /* expired meanwhile (nil): the job comes back and takes it then */
    }
    char was[PG_LEASE_HOLDER_MAX + 1];
    snprintf(was, sizeof was, "%s", r->str);
    freeReplyObject(r);
    if (strncmp(was, s->prefix, strlen(s->prefix)) != 0)
        return PG_OK; /* another process's */
    char px[24];
    snprintf(px, sizeof px, "%d", ms);
    r = NULL;
    rc = eval(&r, takeover_lua, key, was, holder, px);
    *got = rc == PG_OK && r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r)
        freeReplyObject(r);
    if (*got)
        pg_log(PG_LOG_INFO, NULL, "lease.recovered",
               "%s: left by %s of this process (its release failed); taken over", key, was);
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
