#include "store/audit.h"

#include <stdlib.h>
#include <string.h>

#include "store/stream.h"

int pg_store_audit_append(const char *stream, const json_t *event, long long maxlen, char *id_out)
{
    if (!event)
        return PG_EINVAL;
    char *s = json_dumps(event, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return PG_ENOMEM;
    size_t n = strlen(s);
    int rc = PG_ETOOLARGE;
    if (n <= PG_STORE_AUDIT_EVENT_MAX) {
        struct pg_store_kv f = {"event", s, n};
        rc = pg_store_queue_add(stream, &f, 1, maxlen, id_out);
    }
    free(s);
    return rc;
}

int pg_store_audit_range(
    const char *stream, const char *start, const char *end, int count, json_t **out)
{
    *out = NULL;
    struct pg_store_batch b;
    int rc = pg_store_stream_range(stream, start, end, count, &b);
    if (rc)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < b.n; i++) {
        const struct pg_store_field *f = pg_store_msg_field(&b.msgs[i], "event");
        json_t *ev = f ? json_loadb(f->value, f->value_len, JSON_DECODE_ANY, NULL) : NULL;
        json_t *item = json_pack("{s:s, s:o}", "id", b.msgs[i].id, "event", ev ? ev : json_null());
        if (item && !ev)
            json_object_set_new(item, "invalid", json_true());
        if (!item || json_array_append_new(arr, item)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    pg_store_batch_free(&b);
    if (!arr)
        return PG_ENOMEM;
    *out = arr;
    return PG_OK;
}
