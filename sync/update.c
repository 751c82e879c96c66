#include "sync/update.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/datetime.h"

/* The scalar canonical fields, in the order they appear in an update. */
static const char *const scalar_keys[] = {"salesforce_id", "loyalty_id", "card",
                                          "tier",          "points",     "email",
                                          "phone",         "first_name", "last_name"};
#define NSCALAR (sizeof scalar_keys / sizeof scalar_keys[0])

struct pg_map {
    json_t *types; /* validated copy of the configuration */
};

static int is_scalar_key(const char *k)
{
    for (size_t i = 0; i < NSCALAR; i++)
        if (strcmp(scalar_keys[i], k) == 0)
            return 1;
    return 0;
}

static int check_type(const char *type, json_t *def, char *err, size_t errsz)
{
    if (!json_is_object(def)) {
        snprintf(err, errsz, "config: mapping.%s: expected an object", type);
        return PG_ECONFIG;
    }
    const char *k;
    json_t *v;
    json_object_foreach(def, k, v)
    {
        if (is_scalar_key(k) || strcmp(k, "version") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0) {
                snprintf(err, errsz, "config: mapping.%s.%s: expected a field name", type, k);
                return PG_ECONFIG;
            }
        } else if (strcmp(k, "preferences") == 0) {
            const char *pk;
            json_t *pv;
            if (!json_is_object(v)) {
                snprintf(err, errsz, "config: mapping.%s.preferences: expected an object", type);
                return PG_ECONFIG;
            }
            json_object_foreach(v, pk, pv)
            {
                if (!json_is_string(pv) || json_string_length(pv) == 0) {
                    snprintf(err, errsz, "config: mapping.%s.preferences.%s: expected a field name",
                             type, pk);
                    return PG_ECONFIG;
                }
            }
        } else {
            snprintf(err, errsz, "config: unknown key 'mapping.%s.%s'", type, k);
            return PG_ECONFIG;
        }
    }
    if (!json_is_string(json_object_get(def, "salesforce_id"))) {
        snprintf(err, errsz, "config: mapping.%s: missing required key 'salesforce_id'", type);
        return PG_ECONFIG;
    }
    return PG_OK;
}

int pg_map_new(const json_t *cfg, struct pg_map **out, char *err, size_t errsz)
{
    *out = NULL;
    struct pg_map *m = calloc(1, sizeof *m);
    if (!m)
        return PG_ENOMEM;
    m->types = cfg ? json_deep_copy(cfg) : json_object();
    if (!m->types) {
        free(m);
        return PG_ENOMEM;
    }
    const char *type;
    json_t *def;
    json_object_foreach(m->types, type, def)
    {
        int rc = check_type(type, def, err, errsz);
        if (rc) {
            pg_map_free(m);
            return rc;
        }
    }
    *out = m;
    return PG_OK;
}

void pg_map_free(struct pg_map *m)
{
    if (!m)
        return;
    json_decref(m->types);
    free(m);
}

int pg_map_has(const struct pg_map *m, const char *type)
{
    return json_object_get(m->types, type) != NULL;
}

/* A field's value as a canonical value: strings stay, numbers and booleans keep their JSON type
 * (Platform Events carry typed JSON), anything else — absent, nil — becomes null. */
static json_t *field_value(const json_t *fields, const char *name)
{
    json_t *v = json_object_get(fields, name);
    if (json_is_string(v) || json_is_number(v) || json_is_boolean(v))
        return json_incref(v);
    return json_null();
}

/* Points are a whole number however Salesforce wrote them: "12850.0" in SOAP, 12850.0 in REST,
 * 12850 in an event. A value with a fraction is kept as it came. Steals v. */
static json_t *whole_number(json_t *v)
{
    double d;
    if (json_is_integer(v))
        return v;
    if (json_is_real(v)) {
        d = json_real_value(v);
    } else if (json_is_string(v)) {
        char *end = NULL;
        const char *s = json_string_value(v);
        d = strtod(s, &end);
        if (!*s || *end)
            return v;
    } else {
        return v;
    }
    if (d != (double)(json_int_t)d || d > 9e15 || d < -9e15)
        return v;
    json_decref(v);
    return json_integer((json_int_t)d);
}

int pg_map_apply(const struct pg_map *m,
                 const char *type,
                 const json_t *fields,
                 const char *source,
                 json_t **update,
                 int64_t *version,
                 char *err,
                 size_t errsz)
{
    *update = NULL;
    *version = -1;
    json_t *def = json_object_get(m->types, type);
    if (!def) {
        snprintf(err, errsz, "type %s is not configured", type);
        return PG_EINVAL;
    }
    const char *id_field = json_string_value(json_object_get(def, "salesforce_id"));
    const char *sfid = json_string_value(json_object_get(fields, id_field));
    if (!sfid || !*sfid || strlen(sfid) > 64) {
        snprintf(err, errsz, "field %s (the Salesforce id) is missing", id_field);
        return PG_EINVAL;
    }
    const char *vfield = json_string_value(json_object_get(def, "version"));
    if (vfield) {
        const char *vs = json_string_value(json_object_get(fields, vfield));
        if (vs && pg_sf_parse_datetime(vs, version) != 0) {
            snprintf(err, errsz, "field %s is not a Salesforce datetime", vfield);
            return PG_EINVAL;
        }
    }
    json_t *u = json_object();
    if (!u)
        return PG_ENOMEM;
    for (size_t i = 0; i < NSCALAR; i++) {
        const char *f = json_string_value(json_object_get(def, scalar_keys[i]));
        json_t *v = f ? field_value(fields, f) : json_null();
        if (strcmp(scalar_keys[i], "points") == 0)
            v = whole_number(v);
        json_object_set_new(u, scalar_keys[i], v);
    }
    json_t *prefs = json_object();
    const char *pk;
    json_t *pv;
    json_object_foreach(json_object_get(def, "preferences"), pk, pv)
    {
        json_object_set_new(prefs, pk, field_value(fields, json_string_value(pv)));
    }
    json_object_set_new(u, "preferences", prefs);
    json_object_set_new(u, "version", *version >= 0 ? json_integer(*version) : json_null());
    json_object_set_new(u, "version_field", vfield ? json_string(vfield) : json_null());
    json_object_set_new(u, "object", json_string(type));
    json_object_set_new(u, "source", json_string(source));
    *update = u;
    return PG_OK;
}

int pg_map_fields(const struct pg_map *m, const char *type, struct pg_buf *out)
{
    json_t *def = json_object_get(m->types, type);
    if (!def)
        return PG_EINVAL;
    int rc = PG_OK, first = 1;
    const char *k;
    json_t *v;
    json_object_foreach(def, k, v)
    {
        if (json_is_string(v)) {
            rc = pg_buf_printf(out, "%s%s", first ? "" : ",", json_string_value(v));
            first = 0;
        } else if (json_is_object(v)) {
            const char *pk;
            json_t *pv;
            json_object_foreach(v, pk, pv)
            {
                if (rc == PG_OK)
                    rc = pg_buf_printf(out, "%s%s", first ? "" : ",", json_string_value(pv));
                first = 0;
            }
        }
        if (rc)
            break;
    }
    return rc;
}
