#include "store/kv.h"

#include <stdlib.h>
#include <string.h>

#include "store/redis.h"

static int
set_common(const char *key, const void *val, size_t len, int64_t ttl_ms, int nx, int *claimed)
{
    if (!key || !*key || (!val && len) || ttl_ms <= 0)
        return PG_EINVAL;
    if (len > PG_STORE_VALUE_MAX)
        return PG_ETOOLARGE;
    redisReply *r = NULL;
    int rc =
        nx ? pg_redis_command(&r, "SET %s %b PX %lld NX", key, val ? val : "", len,
                              (long long)ttl_ms)
           : pg_redis_command(&r, "SET %s %b PX %lld", key, val ? val : "", len, (long long)ttl_ms);
    if (rc == PG_OK) {
        if (r->type == REDIS_REPLY_STATUS) /* "OK" */
            *claimed = 1;
        else if (r->type == REDIS_REPLY_NIL) /* NX and the key exists */
            *claimed = 0;
        else
            rc = PG_EPROTO;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_store_cache_set(const char *key, const void *val, size_t len, int64_t ttl_ms)
{
    int ok = 0;
    return set_common(key, val, len, ttl_ms, 0, &ok);
}

int pg_store_cache_get(const char *key, char **val, size_t *len)
{
    *val = NULL;
    *len = 0;
    if (!key || !*key)
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "GET %s", key);
    if (rc == PG_OK) {
        if (r->type == REDIS_REPLY_NIL) {
            rc = PG_ENOTFOUND;
        } else if (r->type != REDIS_REPLY_STRING) {
            rc = PG_EPROTO;
        } else if (r->len > PG_STORE_VALUE_MAX) {
            rc = PG_ETOOLARGE;
        } else if (!(*val = malloc(r->len + 1))) {
            rc = PG_ENOMEM;
        } else {
            memcpy(*val, r->str, r->len);
            (*val)[r->len] = '\0';
            *len = r->len;
        }
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_store_cache_del(const char *key)
{
    if (!key || !*key)
        return PG_EINVAL;
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "DEL %s", key);
    if (rc == PG_OK && r->type != REDIS_REPLY_INTEGER)
        rc = PG_EPROTO;
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_store_claim(const char *key, const void *val, size_t len, int64_t ttl_ms, int *claimed)
{
    *claimed = 0;
    return set_common(key, val, len, ttl_ms, 1, claimed);
}

int pg_store_claim_get(const char *key, char **val, size_t *len)
{
    return pg_store_cache_get(key, val, len);
}

int pg_store_claim_release(const char *key)
{
    return pg_store_cache_del(key);
}
