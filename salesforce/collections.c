/*
 * sObject Collections upsert by external id (salesforce/collections.h). The token handling, the
 * one renewal after a 401 and the status mapping follow salesforce/rest.c.
 */
#include "salesforce/collections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/sf_internal.h"
#include "salesforce/soql.h"
#include "server/httpc.h"
#include "server/log.h"
#include "server/util.h"

int pg_sf_upsert_code_retryable(const char *code)
{
    return code && (strcmp(code, "UNABLE_TO_LOCK_ROW") == 0 ||
                    strcmp(code, "ALL_OR_NONE_OPERATION_ROLLED_BACK") == 0);
}

/* The request body; records without attributes get {"type": sobject}. NULL on a bad record. */
static char *build_body(const char *sobject, json_t *records, int all_or_none)
{
    json_t *arr = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r)
    {
        json_t *attrs = json_object_get(r, "attributes");
        if (!json_is_object(r) || (attrs && !json_is_object(attrs))) {
            json_decref(arr);
            return NULL;
        }
        if (attrs) {
            const char *t = json_string_value(json_object_get(attrs, "type"));
            if (!t || strcmp(t, sobject) != 0) {
                json_decref(arr);
                return NULL;
            }
            json_array_append(arr, r);
        } else {
            json_t *copy = json_pack("{s:{s:s}}", "attributes", "type", sobject);
            json_object_update(copy, r);
            json_array_append_new(arr, copy);
        }
    }
    json_t *body = json_pack("{s:b,s:o}", "allOrNone", all_or_none ? 1 : 0, "records", arr);
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return s;
}

/* Salesforce's per-record results -> ours; NULL when the shape is wrong. A delete's results
 * have no "created" (false here). */
static json_t *map_results(json_t *j, size_t n)
{
    if (!json_is_array(j) || json_array_size(j) != n)
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(j, i, r)
    {
        if (!json_is_object(r) || !json_is_boolean(json_object_get(r, "success"))) {
            json_decref(out);
            return NULL;
        }
        int ok = json_is_true(json_object_get(r, "success"));
        const char *id = json_string_value(json_object_get(r, "id"));
        json_t *e0 = json_array_get(json_object_get(r, "errors"), 0);
        const char *code = json_string_value(json_object_get(e0, "statusCode"));
        const char *msg = json_string_value(json_object_get(e0, "message"));
        json_t *fields = json_object_get(e0, "fields");
        if (!ok && !code)
            code = "UNKNOWN_EXCEPTION";
        json_array_append_new(out,
                              json_pack("{s:b,s:b,s:o,s:b,s:s,s:s,s:O}", "ok", ok, "created",
                                        ok && json_is_true(json_object_get(r, "created")), "id",
                                        id ? json_string(id) : json_null(), "retryable",
                                        !ok && pg_sf_upsert_code_retryable(code), "code",
                                        ok ? "" : code, "message", ok || !msg ? "" : msg, "fields",
                                        json_is_array(fields) ? fields : json_array()));
        if (!json_is_array(fields))
            json_decref(json_object_get(json_array_get(out, i), "fields"));
    }
    return out;
}

/*
 * One collections request (method, path under the instance, body or NULL) answered by n
 * per-record results: the token, the one renewal after a 401 and the status mapping shared by
 * the upsert and the delete. err is set; on PG_OK *results is new.
 */
static int collection_call(struct pg_sf_oauth *oauth,
                           const struct pg_sf_rest_config *c,
                           const char *method,
                           const char *path,
                           const char *body,
                           size_t n,
                           int64_t deadline_ms,
                           json_t **results,
                           struct pg_sf_error *err)
{
    int connect_ms = c && c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 1000;
    int timeout_ms = c && c->timeout_ms > 0 ? c->timeout_ms : 5000;
    size_t max_resp = c && c->max_response_bytes ? c->max_response_bytes : (1u << 20);
    int rc;
    for (int attempt = 0;; attempt++) {
        pg_sf__set_err(err, 0, "", "");
        if (pg_now_ms() >= deadline_ms) {
            pg_sf__set_err(err, 0, "", "deadline passed");
            rc = PG_ETIMEDOUT;
            break;
        }
        char token[PG_SF_TOKEN_MAX], inst[PG_SF_URL_MAX];
        rc = pg_sf_oauth_token(oauth, deadline_ms, token, sizeof token, inst, sizeof inst);
        if (rc) {
            pg_sf__set_err(err, 0, "", "no Salesforce access token");
            break;
        }
        char *url = NULL, *auth = NULL;
        if (asprintf(&url, "%s%s", inst, path) < 0)
            url = NULL;
        if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
            auth = NULL;
        if (!url || !auth) {
            free(url);
            free(auth);
            explicit_bzero(token, sizeof token);
            rc = PG_ENOMEM;
            break;
        }
        int64_t left = deadline_ms - pg_now_ms();
        if (left < 1)
            left = 1;
        const char *hdrs[] = {auth, "Accept: application/json",
                              body ? "Content-Type: application/json; charset=UTF-8" : NULL, NULL};
        struct pg_httpc_req req = {
            .method = method,
            .url = url,
            .headers = hdrs,
            .body = body,
            .body_len = body ? strlen(body) : 0,
            .connect_timeout_ms = (int)(left < connect_ms ? left : connect_ms),
            .timeout_ms = (int)(left < timeout_ms ? left : timeout_ms),
            .max_response_bytes = max_resp,
        };
        struct pg_httpc_resp resp;
        rc = pg_httpc_do(&req, &resp);
        free(url);
        explicit_bzero(auth, strlen(auth));
        free(auth);
        if (rc != PG_OK) {
            rc = pg_sf__transport_error(rc, deadline_ms, resp.error, err);
            pg_httpc_resp_free(&resp);
            explicit_bzero(token, sizeof token);
            break;
        }
        long status = resp.status;
        json_t *j = json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
        pg_httpc_resp_free(&resp);
        if (status == 200) {
            explicit_bzero(token, sizeof token);
            json_t *out = map_results(j, n);
            json_decref(j);
            if (!out) {
                pg_sf__set_err(err, status, "", "reply is not one result per record");
                rc = PG_EPROTO;
                break;
            }
            err->status = status;
            *results = out;
            rc = PG_OK;
            break;
        }
        json_t *e = json_is_array(j) ? json_array_get(j, 0) : j;
        pg_sf__set_err(err, status, json_string_value(json_object_get(e, "errorCode")),
                       json_string_value(json_object_get(e, "message")));
        json_decref(j);
        if (status == 401) {
            pg_sf_oauth_invalidate(oauth, token);
            explicit_bzero(token, sizeof token);
            if (attempt == 0)
                continue;
            rc = PG_EAUTH;
            break;
        }
        explicit_bzero(token, sizeof token);
        if (status == 403 && strcmp(err->code, "REQUEST_LIMIT_EXCEEDED") == 0) {
            pg_log(PG_LOG_WARN, NULL, "sf_request_limit", "Salesforce: %s", err->message);
            rc = PG_EUNAVAIL;
        } else if (status == 403) {
            rc = PG_EFORBIDDEN;
        } else if (status == 404) {
            rc = PG_ENOTFOUND;
        } else if (status == 429 || status >= 500 || strcmp(err->code, "UNABLE_TO_LOCK_ROW") == 0) {
            rc = PG_EUNAVAIL;
        } else {
            pg_log(PG_LOG_WARN, NULL, "sf_upsert_rejected", "Salesforce answered HTTP %ld: %s",
                   status, err->code);
            rc = PG_EPROTO;
        }
        break;
    }
    return rc;
}

int pg_sf_upsert(struct pg_sf_oauth *oauth,
                 const struct pg_sf_rest_config *c,
                 const char *sobject,
                 const char *ext_field,
                 json_t *records,
                 int all_or_none,
                 int64_t deadline_ms,
                 json_t **results,
                 struct pg_sf_error *err)
{
    struct pg_sf_error scratch;
    if (!err)
        err = &scratch;
    pg_sf__set_err(err, 0, "", "");
    if (results)
        *results = NULL;
    const char *ver = c && c->api_version ? c->api_version : "66.0";
    size_t n = json_array_size(records);
    if (!oauth || !results || !pg_sf__version_ok(ver) || !pg_soql_ident_ok(sobject) ||
        !pg_soql_ident_ok(ext_field) || !json_is_array(records) || n == 0 ||
        n > PG_SF_COLLECTION_MAX)
        return PG_EINVAL;
    char *body = build_body(sobject, records, all_or_none);
    if (!body)
        return PG_EINVAL;
    char path[512];
    snprintf(path, sizeof path, "/services/data/v%s/composite/sobjects/%s/%s", ver, sobject,
             ext_field);
    int rc = collection_call(oauth, c, "PATCH", path, body, n, deadline_ms, results, err);
    free(body);
    return rc;
}

/* A 15- or 18-character record id (letters and digits only: it goes into a URL as is). */
static int id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n != 15 && n != 18)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

int pg_sf_delete(struct pg_sf_oauth *oauth,
                 const struct pg_sf_rest_config *c,
                 const json_t *ids,
                 int all_or_none,
                 int64_t deadline_ms,
                 json_t **results,
                 struct pg_sf_error *err)
{
    struct pg_sf_error scratch;
    if (!err)
        err = &scratch;
    pg_sf__set_err(err, 0, "", "");
    if (results)
        *results = NULL;
    const char *ver = c && c->api_version ? c->api_version : "66.0";
    size_t n = json_array_size(ids);
    if (!oauth || !results || !pg_sf__version_ok(ver) || !json_is_array(ids) || n == 0 ||
        n > PG_SF_COLLECTION_MAX)
        return PG_EINVAL;
    /* 200 ids of 18 characters and commas fit in 4 KiB with the prefix */
    char path[4608];
    int len = snprintf(path, sizeof path, "/services/data/v%s/composite/sobjects?ids=", ver);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(v);
        if (!id_ok(id))
            return PG_EINVAL;
        len += snprintf(path + len, sizeof path - (size_t)len, "%s%s", i ? "," : "", id);
    }
    snprintf(path + len, sizeof path - (size_t)len, "&allOrNone=%s",
             all_or_none ? "true" : "false");
    return collection_call(oauth, c, "DELETE", path, NULL, n, deadline_ms, results, err);
}
