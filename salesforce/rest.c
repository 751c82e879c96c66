#include "salesforce/rest.h"
#include "salesforce/sf_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/org.h"
#include "salesforce/soql.h"
#include "server/buf.h"
#include "server/httpc.h"
#include "server/log.h"
#include "server/util.h"

#define PATH_MAX_BYTES 16384

struct pg_sf_rest {
    char api_version[16];
    int connect_timeout_ms, timeout_ms;
    size_t max_response_bytes;
    struct pg_sf_oauth *oauth;
    pthread_mutex_t mu; /* guards the limits pair so readers see one header's values */
    long long used, max;
};

int pg_sf__version_ok(const char *v)
{
    /* digits '.' digits, short: it is pasted into every URL path. */
    size_t i = 0, n = strlen(v);
    if (n == 0 || n >= 16)
        return 0;
    while (v[i] >= '0' && v[i] <= '9')
        i++;
    if (i == 0 || v[i] != '.')
        return 0;
    size_t j = ++i;
    while (v[i] >= '0' && v[i] <= '9')
        i++;
    return i > j && v[i] == '\0';
}

int pg_sf_rest_new(const struct pg_sf_rest_config *c,
                   struct pg_sf_oauth *oauth,
                   struct pg_sf_rest **out)
{
    if (!out)
        return PG_EINVAL;
    *out = NULL;
    const char *ver = c && c->api_version ? c->api_version : "66.0";
    if (!oauth || !pg_sf__version_ok(ver))
        return PG_EINVAL;
    struct pg_sf_rest *r = calloc(1, sizeof *r);
    if (!r)
        return PG_ENOMEM;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return PG_ENOMEM;
    }
    snprintf(r->api_version, sizeof r->api_version, "%s", ver);
    r->connect_timeout_ms = c && c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 1000;
    r->timeout_ms = c && c->timeout_ms > 0 ? c->timeout_ms : 5000;
    r->max_response_bytes = c && c->max_response_bytes ? c->max_response_bytes : (1u << 20);
    r->oauth = oauth;
    r->used = r->max = -1;
    *out = r;
    return PG_OK;
}

void pg_sf_rest_free(struct pg_sf_rest *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int pg_sf_rest_parse_limit_info(const char *value, long long *used, long long *max)
{
    if (!value || !used || !max)
        return PG_EINVAL;
    const char *p = strstr(value, "api-usage=");
    if (!p)
        return PG_EINVAL;
    p += strlen("api-usage=");
    char a[24], b[24];
    size_t i = 0;
    while (p[i] >= '0' && p[i] <= '9' && i < sizeof a - 1)
        a[i] = p[i], i++;
    a[i] = '\0';
    if (p[i] != '/')
        return PG_EINVAL;
    p += i + 1;
    i = 0;
    while (p[i] >= '0' && p[i] <= '9' && i < sizeof b - 1)
        b[i] = p[i], i++;
    b[i] = '\0';
    if (p[i] && p[i] != ';' && p[i] != ' ' && p[i] != ',' && p[i] != '\r' && p[i] != '\n')
        return PG_EINVAL;
    long long u, m;
    if (pg_strtonum(a, 0, 1000000000000LL, &u) || pg_strtonum(b, 0, 1000000000000LL, &m))
        return PG_EINVAL;
    *used = u;
    *max = m;
    return PG_OK;
}

void pg_sf_rest_limits(const struct pg_sf_rest *r, long long *used, long long *max)
{
    long long u = -1, m = -1;
    if (r) {
        /* Never defined const; the lock only makes the pair consistent. */
        struct pg_sf_rest *w = (struct pg_sf_rest *)r;
        pthread_mutex_lock(&w->mu);
        u = w->used;
        m = w->max;
        pthread_mutex_unlock(&w->mu);
    }
    if (used)
        *used = u;
    if (max)
        *max = m;
}

static void note_limits(struct pg_sf_rest *r, const char *value)
{
    long long u, m;
    if (pg_sf_rest_parse_limit_info(value, &u, &m) != PG_OK)
        return;
    pthread_mutex_lock(&r->mu);
    r->used = u;
    r->max = m;
    pthread_mutex_unlock(&r->mu);
}

void pg_sf__set_err(struct pg_sf_error *err, long status, const char *code, const char *msg)
{
    if (!err)
        return;
    err->status = status;
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    snprintf(err->message, sizeof err->message, "%s", msg ? msg : "");
}

/* Salesforce errors are an array of {"errorCode","message"}; take the first. */
static void parse_sf_error(json_t *j, long status, struct pg_sf_error *err)
{
    json_t *e = json_is_array(j) ? json_array_get(j, 0) : j;
    const char *code = json_string_value(json_object_get(e, "errorCode"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    pg_sf__set_err(err, status, code, msg);
}

int pg_sf__transport_error(int rc, int64_t deadline_ms, const char *what, struct pg_sf_error *err)
{
    pg_sf__set_err(err, 0, "", what);
    if (rc == PG_ENOMEM)
        return PG_ENOMEM;
    /* A connect cut short by our own budget reports "not sent": it is still the deadline. */
    if (rc == PG_ETIMEDOUT || pg_now_ms() >= deadline_ms)
        return PG_ETIMEDOUT;
    if (rc == PG_ETOOLARGE || rc == PG_EINVAL)
        return PG_EPROTO;
    return PG_EUNAVAIL;
}

/*
 * GET instance_url + path with the shared token; on PG_OK *out is the parsed 200 body. Handles
 * the one renewal after a 401 and maps every other status.
 */
static int sf_get(struct pg_sf_rest *r,
                  const char *path,
                  int64_t deadline_ms,
                  json_t **out,
                  struct pg_sf_error *err)
{
    *out = NULL;
    struct pg_sf_error scratch;
    if (!err)
        err = &scratch; /* the errorCode is needed to tell the two 403s apart */
    for (int attempt = 0;; attempt++) {
        pg_sf__set_err(err, 0, "", "");
        if (pg_now_ms() >= deadline_ms) {
            pg_sf__set_err(err, 0, "", "deadline passed");
            return PG_ETIMEDOUT;
        }
        char token[PG_SF_TOKEN_MAX], inst[PG_SF_URL_MAX];
        int rc = pg_sf_oauth_token(r->oauth, deadline_ms, token, sizeof token, inst, sizeof inst);
        if (rc) {
            pg_sf__set_err(err, 0, "", "no Salesforce access token");
            return rc;
        }
        char *url = NULL, *auth = NULL;
        if (asprintf(&url, "%s%s", inst, path) < 0)
            url = NULL;
        if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
            auth = NULL;
        if (!url || !auth) {
            free(url);
            free(auth);
            return PG_ENOMEM;
        }
        int64_t left = deadline_ms - pg_now_ms();
        if (left < 1)
            left = 1;
        const char *hdrs[] = {auth, "Accept: application/json", NULL};
        struct pg_httpc_req req = {
            .url = url,
            .headers = hdrs,
            .connect_timeout_ms =
                (int)(left < r->connect_timeout_ms ? left : r->connect_timeout_ms),
            .timeout_ms = (int)(left < r->timeout_ms ? left : r->timeout_ms),
            .max_response_bytes = r->max_response_bytes,
#ifdef PG_HTTPC_CAPTURE_HEADER
            .capture_header = "Sforce-Limit-Info",
#endif
        };
        struct pg_httpc_resp resp;
        rc = pg_httpc_do(&req, &resp);
        free(url);
        explicit_bzero(auth, strlen(auth));
        free(auth);
#ifdef PG_HTTPC_CAPTURE_HEADER
        if (resp.captured[0])
            note_limits(r, resp.captured);
#else
        (void)note_limits;
#endif
        if (rc != PG_OK) {
            rc = pg_sf__transport_error(rc, deadline_ms, resp.error, err);
            pg_httpc_resp_free(&resp);
            explicit_bzero(token, sizeof token);
            return rc;
        }
        long status = resp.status;
        json_t *j = json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
        pg_httpc_resp_free(&resp);

        if (status == 200) {
            explicit_bzero(token, sizeof token);
            if (!j) {
                pg_sf__set_err(err, status, "", "unparseable reply");
                return PG_EPROTO;
            }
            err->status = status;
            *out = j;
            return PG_OK;
        }
        parse_sf_error(j, status, err);
        json_decref(j);
        if (status == 401) {
            /* The session ended (expiry, logout, org-wide revoke): forget this token, but only
             * this one, so concurrent 401s share one renewal; then try once more. */
            pg_sf_oauth_invalidate(r->oauth, token);
            explicit_bzero(token, sizeof token);
            if (attempt == 0)
                continue;
            return PG_EAUTH;
        }
        explicit_bzero(token, sizeof token);
        if (status == 300) {
            pg_sf__set_err(err, status, "MULTIPLE_CHOICES",
                           "the external id matches several records");
            return PG_EEXIST;
        }
        if (status == 404)
            return PG_ENOTFOUND;
        if (status == 403) {
            if (strcmp(err->code, "REQUEST_LIMIT_EXCEEDED") == 0) {
                /* The org's allocation is spent until Salesforce resets it: an outage for the
                 * caller (stale-if-error), and retrying would only spend more of it. */
                pg_log(PG_LOG_WARN, NULL, "sf_request_limit", "Salesforce: %s", err->message);
                return PG_EUNAVAIL;
            }
            return PG_EFORBIDDEN;
        }
        if (status == 429 || status >= 500)
            return PG_EUNAVAIL;
        pg_log(PG_LOG_WARN, NULL, "sf_rest_rejected", "Salesforce answered HTTP %ld", status);
        return PG_EPROTO;
    }
}

static int append_fields(struct pg_buf *b, const char *fields)
{
    if (!fields)
        return PG_OK;
    int rc = pg_buf_puts(b, "?fields=");
    return rc ? rc : pg_url_encode(b, fields);
}

static int path_done(struct pg_buf *b, int rc)
{
    if (rc) {
        pg_buf_free(b);
        return rc == PG_ETOOLARGE ? PG_EINVAL : rc;
    }
    return PG_OK;
}

/* GET the path in b and hand back the record it names (a JSON object). */
static int get_record(struct pg_sf_rest *r,
                      const struct pg_buf *b,
                      int64_t deadline_ms,
                      json_t **record,
                      struct pg_sf_error *err)
{
    json_t *j = NULL;
    int rc = sf_get(r, b->data, deadline_ms, &j, err);
    if (rc)
        return rc;
    if (!json_is_object(j)) {
        json_decref(j);
        pg_sf__set_err(err, 200, "", "reply is not a record");
        return PG_EPROTO;
    }
    *record = j;
    return PG_OK;
}

int pg_sf_rest_get_by_external_id(struct pg_sf_rest *r,
                                  const char *object,
                                  const char *field,
                                  const char *value,
                                  const char *fields,
                                  int64_t deadline_ms,
                                  json_t **record,
                                  struct pg_sf_error *err)
{
    pg_sf__set_err(err, 0, "", "");
    if (record)
        *record = NULL;
    if (!r || !record || !pg_soql_ident_ok(object) || !pg_soql_ident_ok(field) || !value ||
        !*value || (fields && !pg_soql_fields_ok(fields)))
        return PG_EINVAL;
    struct pg_buf b;
    pg_buf_init(&b, PATH_MAX_BYTES);
    /* The value is one path segment: '/', '?', '#' and ".." cannot escape it once encoded. */
    int rc = pg_buf_printf(&b, "/services/data/v%s/sobjects/%s/%s/", r->api_version, object, field);
    if (!rc)
        rc = pg_url_encode(&b, value);
    if (!rc)
        rc = append_fields(&b, fields);
    if ((rc = path_done(&b, rc)))
        return rc;
    rc = get_record(r, &b, deadline_ms, record, err);
    pg_buf_free(&b);
    return rc;
}

int pg_sf_rest_get_by_id(struct pg_sf_rest *r,
                         const char *object,
                         const char *id,
                         const char *fields,
                         int64_t deadline_ms,
                         json_t **record,
                         struct pg_sf_error *err)
{
    pg_sf__set_err(err, 0, "", "");
    if (record)
        *record = NULL;
    if (!r || !record || !pg_soql_ident_ok(object) || !id || !pg_sf_id_valid(id) ||
        (fields && !pg_soql_fields_ok(fields)))
        return PG_EINVAL;
    struct pg_buf b;
    pg_buf_init(&b, PATH_MAX_BYTES);
    int rc = pg_buf_printf(&b, "/services/data/v%s/sobjects/%s/%s", r->api_version, object, id);
    if (!rc)
        rc = append_fields(&b, fields);
    if ((rc = path_done(&b, rc)))
        return rc;
    rc = get_record(r, &b, deadline_ms, record, err);
    pg_buf_free(&b);
    return rc;
}

int pg_sf_rest_query(struct pg_sf_rest *r,
                     const char *soql,
                     int64_t deadline_ms,
                     json_t **records,
                     struct pg_sf_error *err)
{
    pg_sf__set_err(err, 0, "", "");
    if (records)
        *records = NULL;
    if (!r || !records || !soql || !*soql)
        return PG_EINVAL;
    struct pg_buf b;
    pg_buf_init(&b, PATH_MAX_BYTES);
    int rc = pg_buf_printf(&b, "/services/data/v%s/query?q=", r->api_version);
    if (!rc)
        rc = pg_url_encode(&b, soql);
    if ((rc = path_done(&b, rc)))
        return rc;
    json_t *j = NULL;
    rc = sf_get(r, b.data, deadline_ms, &j, err);
    pg_buf_free(&b);
    if (rc)
        return rc;
    json_t *recs = json_object_get(j, "records");
    if (!json_is_array(recs)) {
        json_decref(j);
        pg_sf__set_err(err, 200, "", "query reply has no records array");
        return PG_EPROTO;
    }
    *records = json_incref(recs);
    json_decref(j);
    return PG_OK;
}

/* A nextRecordsUrl we may follow: a path under /services/data/ of safe characters only. */
static int next_url_ok(const char *u)
{
    return u && strncmp(u, "/services/data/", 15) == 0 && strlen(u) < 512 &&
           strspn(u, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-") ==
               strlen(u) &&
           !strstr(u, "..");
}

int pg_sf_rest_query_all(struct pg_sf_rest *r,
                         const char *soql,
                         size_t max_records,
                         int64_t deadline_ms,
                         json_t **records,
                         struct pg_sf_error *err)
{
    pg_sf__set_err(err, 0, "", "");
    if (records)
        *records = NULL;
    if (!r || !records || !soql || !*soql || !max_records)
        return PG_EINVAL;
    struct pg_buf b;
    pg_buf_init(&b, PATH_MAX_BYTES);
    int rc = pg_buf_printf(&b, "/services/data/v%s/query?q=", r->api_version);
    if (!rc)
        rc = pg_url_encode(&b, soql);
    if ((rc = path_done(&b, rc)))
        return rc;
    json_t *all = json_array();
    char *path = pg_buf_steal(&b);
    while (rc == PG_OK && path) {
        json_t *j = NULL;
        rc = sf_get(r, path, deadline_ms, &j, err);
        free(path);
        path = NULL;
        if (rc)
            break;
        json_t *recs = json_object_get(j, "records");
        if (!json_is_array(recs)) {
            pg_sf__set_err(err, 200, "", "query reply has no records array");
            rc = PG_EPROTO;
        } else if (json_array_size(all) + json_array_size(recs) > max_records) {
            pg_sf__set_err(err, 200, "", "query answered more records than asked for");
            rc = PG_ETOOLARGE;
        } else {
            json_array_extend(all, recs);
            const char *next = json_string_value(json_object_get(j, "nextRecordsUrl"));
            /* done false with a next batch: follow it (salesforce-wire.md §4.1) */
            if (!json_is_true(json_object_get(j, "done"))) {
                if (!next_url_ok(next)) {
                    pg_sf__set_err(err, 200, "",
                                   "query reply not done, without a usable "
                                   "nextRecordsUrl");
                    rc = PG_EPROTO;
                } else if (!(path = strdup(next))) {
                    rc = PG_ENOMEM;
                }
            }
        }
        json_decref(j);
    }
    free(path);
    if (rc) {
        json_decref(all);
        return rc;
    }
    *records = all;
    return PG_OK;
}
