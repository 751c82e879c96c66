#include "sync/transform.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/money.h"

/* ---- configuration ---------------------------------------------------------------------- */

/* The renameable custom fields, with their default API names (see the header). */
#define PG_XF_FIELDS(XX)                                                                           \
    XX(LOCATION, "location", "Location__c")                                                        \
    XX(LOCATION_REF, "location_ref", "POS_Location_Ref__c")                                        \
    XX(SALES_CHANNEL, "sales_channel", "Sales_Channel__c")                                         \
    XX(CHECK_NUMBER, "check_number", "POS_Check_Number__c")                                        \
    XX(RVC, "revenue_center", "POS_Revenue_Center__c")                                             \
    XX(WORKSTATION, "workstation", "POS_Workstation__c")                                           \
    XX(EMPLOYEE, "employee", "POS_Employee_Number__c")                                             \
    XX(GUESTS, "guest_count", "POS_Guest_Count__c")                                                \
    XX(SUBTOTAL, "subtotal", "POS_Subtotal__c")                                                    \
    XX(TAX, "tax", "POS_Tax__c")                                                                   \
    XX(DISCOUNT, "discount", "POS_Discount__c")                                                    \
    XX(SVC, "service_charge", "POS_Service_Charge__c")                                             \
    XX(TIP, "tip", "POS_Tip__c")                                                                   \
    XX(PAYMENTS, "payments", "POS_Payments__c")                                                    \
    XX(CHECK_TOTAL, "check_total", "POS_Check_Total__c")                                           \
    XX(REOPEN_FROM, "reopened_from", "POS_Reopened_From__c")                                       \
    XX(REOPEN_TO, "reopened_to", "POS_Reopened_To__c")                                             \
    XX(ORIGINAL_ORDER, "original_order", "Original_Order__r")                                      \
    XX(PARENT_LINE, "parent_line", "POS_Parent_Line_Id__c")                                        \
    XX(LINE_DISCOUNT, "line_discount", "POS_Line_Discount__c")                                     \
    XX(LINE_SVC, "line_service_charge", "POS_Line_Service_Charge__c")                              \
    XX(POS_QTY, "pos_quantity", "POS_Quantity__c")                                                 \
    XX(MOVED, "moved", "POS_Moved__c")                                                             \
    XX(ADJ_TYPE, "adjustment_type", "POS_Adjustment_Type__c")                                      \
    XX(REASON, "reason_code", "POS_Reason_Code__c")                                                \
    XX(PAYMENT_ORDER, "payment_order", "Order__r")                                                 \
    XX(PAYMENT_AMOUNT, "payment_amount", "Amount__c")                                              \
    XX(TENDER_NUMBER, "tender_number", "POS_Tender_Number__c")                                     \
    XX(TENDER_NAME, "tender_name", "POS_Tender_Name__c")

enum xf_field {
#define XF_ENUM(id, name, def) F_##id,
    PG_XF_FIELDS(XF_ENUM)
#undef XF_ENUM
        F_COUNT
};

static const char *const field_names[] = {
#define XF_NAME(id, name, def) name,
    PG_XF_FIELDS(XF_NAME)
#undef XF_NAME
};

static const char *const field_defaults[] = {
#define XF_DEF(id, name, def) def,
    PG_XF_FIELDS(XF_DEF)
#undef XF_DEF
};

struct pg_xf_config {
    json_t *root; /* validated deep copy; every const char * below points into it */
    const char *org;
    json_t *locations;
    const char *st_open, *st_closed, *st_cancelled;
    const char *order_ext, *item_ext, *product_ext, *payment_ext, *payment_object;
    int standard_payment;       /* payment_object is the standard Payment */
    int reduction;              /* adjustment_mode "reduction_order" */
    const char *field[F_COUNT]; /* NULL: the field is not written */
};

static int cfg_fail(char *why, size_t whysz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cfg_fail(char *why, size_t whysz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
    return PG_ECONFIG;
}

static int in_list(const char *k, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(*list, k) == 0)
            return 1;
    return 0;
}

/* A non-empty string key of obj, or def when absent. PG_ECONFIG when present but not a string. */
static int cfg_str(json_t *obj,
                   const char *key,
                   const char *path,
                   const char *def,
                   const char **out,
                   char *why,
                   size_t whysz)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = def;
        return PG_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return cfg_fail(why, whysz, "config: transform.%s%s: expected a non-empty string", path,
                        key);
    *out = json_string_value(v);
    return PG_OK;
}

static int
check_unknown(json_t *obj, const char *const *allowed, const char *path, char *why, size_t whysz)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!in_list(k, allowed))
            return cfg_fail(why, whysz, "config: unknown key 'transform.%s%s'", path, k);
    }
    return PG_OK;
}

static int check_location(const char *ref, json_t *loc, char *why, size_t whysz)
{
    static const char *const keys[] = {"location_id",   "pricebook_id", "currency",        "scale",
                                       "sales_channel", "account_id",   "revenue_centers", NULL};
    static const char *const rvc_keys[] = {"location_id", "sales_channel", NULL};
    char path[160];
    const char *s;
    int rc;
    if (!json_is_object(loc))
        return cfg_fail(why, whysz, "config: transform.locations.%s: expected an object", ref);
    snprintf(path, sizeof path, "locations.%s.", ref);
    if ((rc = check_unknown(loc, keys, path, why, whysz)))
        return rc;
    for (int i = 0; i < 6; i++) {
        if (strcmp(keys[i], "scale") == 0)
            continue;
        if ((rc = cfg_str(loc, keys[i], path, NULL, &s, why, whysz)))
            return rc;
    }
    if (!json_object_get(loc, "pricebook_id"))
        return cfg_fail(why, whysz,
                        "config: transform.locations.%s: missing required key 'pricebook_id'", ref);
    json_t *scale = json_object_get(loc, "scale");
    if (scale &&
        (!json_is_integer(scale) || json_integer_value(scale) < 0 || json_integer_value(scale) > 4))
        return cfg_fail(why, whysz, "config: transform.locations.%s.scale: expected 0..4", ref);
    json_t *rvcs = json_object_get(loc, "revenue_centers");
    if (rvcs) {
        const char *rk;
        json_t *rv;
        if (!json_is_object(rvcs))
            return cfg_fail(why, whysz,
                            "config: transform.locations.%s.revenue_centers: expected an object",
                            ref);
        json_object_foreach(rvcs, rk, rv)
        {
            snprintf(path, sizeof path, "locations.%s.revenue_centers.%s.", ref, rk);
            if (!json_is_object(rv))
                return cfg_fail(why, whysz, "config: transform.%s: expected an object", path);
            if ((rc = check_unknown(rv, rvc_keys, path, why, whysz)) ||
                (rc = cfg_str(rv, "location_id", path, NULL, &s, why, whysz)) ||
                (rc = cfg_str(rv, "sales_channel", path, NULL, &s, why, whysz)))
                return rc;
        }
    }
    return PG_OK;
}

static int compile(struct pg_xf_config *c, char *why, size_t whysz)
{
    static const char *const keys[] = {"org",
                                       "locations",
                                       "order_status",
                                       "order_external_id_field",
                                       "order_item_external_id_field",
                                       "product_external_id_field",
                                       "payment_object",
                                       "payment_external_id_field",
                                       "adjustment_mode",
                                       "fields",
                                       NULL};
    static const char *const status_keys[] = {"open", "closed", "cancelled", NULL};
    json_t *r = c->root;
    int rc;
    if (!json_is_object(r))
        return cfg_fail(why, whysz, "config: transform: expected an object");
    if ((rc = check_unknown(r, keys, "", why, whysz)))
        return rc;
    if ((rc = cfg_str(r, "org", "", NULL, &c->org, why, whysz)))
        return rc;
    if (!c->org)
        return cfg_fail(why, whysz, "config: transform: missing required key 'org'");
    c->locations = json_object_get(r, "locations");
    if (!json_is_object(c->locations) || json_object_size(c->locations) == 0)
        return cfg_fail(why, whysz,
                        "config: transform.locations: expected a non-empty object by locRef");
    const char *ref;
    json_t *loc;
    json_object_foreach(c->locations, ref, loc)
    {
        if ((rc = check_location(ref, loc, why, whysz)))
            return rc;
    }
    json_t *st = json_object_get(r, "order_status");
    if (st && !json_is_object(st))
        return cfg_fail(why, whysz, "config: transform.order_status: expected an object");
    if (st && (rc = check_unknown(st, status_keys, "order_status.", why, whysz)))
        return rc;
    if ((rc = cfg_str(st, "open", "order_status.", "Draft", &c->st_open, why, whysz)) ||
        (rc = cfg_str(st, "closed", "order_status.", "Activated", &c->st_closed, why, whysz)) ||
        (rc = cfg_str(st, "cancelled", "order_status.", "Cancelled", &c->st_cancelled, why,
                      whysz)) ||
        (rc = cfg_str(r, "order_external_id_field", "", "POS_Check_Id__c", &c->order_ext, why,
                      whysz)) ||
        (rc = cfg_str(r, "order_item_external_id_field", "", "POS_Line_Id__c", &c->item_ext, why,
                      whysz)) ||
        (rc = cfg_str(r, "product_external_id_field", "", "POS_Item_Number__c", &c->product_ext,
                      why, whysz)) ||
        (rc = cfg_str(r, "payment_external_id_field", "", "POS_Tender_Line_Id__c", &c->payment_ext,
                      why, whysz)) ||
        (rc = cfg_str(r, "payment_object", "", "POS_Payment__c", &c->payment_object, why, whysz)))
        return rc;
    size_t pl = strlen(c->payment_object);
    c->standard_payment = strcmp(c->payment_object, "Payment") == 0;
    if (!c->standard_payment && (pl < 4 || strcmp(c->payment_object + pl - 3, "__c") != 0))
        return cfg_fail(why, whysz,
                        "config: transform.payment_object: expected \"Payment\" or a custom "
                        "object (\"X__c\"), got \"%s\"",
                        c->payment_object);
    const char *mode;
    if ((rc = cfg_str(r, "adjustment_mode", "", "return_order", &mode, why, whysz)))
        return rc;
    if (strcmp(mode, "reduction_order") == 0)
        c->reduction = 1;
    else if (strcmp(mode, "return_order") != 0)
        return cfg_fail(why, whysz,
                        "config: transform.adjustment_mode: expected \"return_order\" or "
                        "\"reduction_order\", got \"%s\"",
                        mode);
    for (int i = 0; i < F_COUNT; i++)
        c->field[i] = field_defaults[i];
    json_t *fields = json_object_get(r, "fields");
    if (fields) {
        const char *k;
        json_t *v;
        if (!json_is_object(fields))
            return cfg_fail(why, whysz, "config: transform.fields: expected an object");
        json_object_foreach(fields, k, v)
        {
            int i;
            for (i = 0; i < F_COUNT; i++)
                if (strcmp(field_names[i], k) == 0)
                    break;
            if (i == F_COUNT)
                return cfg_fail(why, whysz, "config: unknown key 'transform.fields.%s'", k);
            if (json_is_null(v))
                c->field[i] = NULL;
            else if (json_is_string(v) && json_string_length(v) > 0)
                c->field[i] = json_string_value(v);
            else
                return cfg_fail(why, whysz,
                                "config: transform.fields.%s: expected a field name or null", k);
        }
    }
    return PG_OK;
}

int pg_xf_config_new(const json_t *cfg, struct pg_xf_config **out, char *why, size_t whysz)
{
    *out = NULL;
    if (!cfg)
        return cfg_fail(why, whysz, "config: transform: missing");
    struct pg_xf_config *c = calloc(1, sizeof *c);
    if (!c)
        return PG_ENOMEM;
    c->root = json_deep_copy(cfg);
    if (!c->root) {
        free(c);
        return PG_ENOMEM;
    }
    int rc = compile(c, why, whysz);
    if (rc) {
        pg_xf_config_free(c);
        return rc;
    }
    *out = c;
    return PG_OK;
}

void pg_xf_config_names(const struct pg_xf_config *cfg, struct pg_xf_names *out)
{
    out->order_ext = cfg->order_ext;
    out->item_ext = cfg->item_ext;
    out->product_ext = cfg->product_ext;
    out->payment_object = cfg->payment_object;
    out->payment_ext = cfg->payment_ext;
}

void pg_xf_config_free(struct pg_xf_config *cfg)
{
    if (!cfg)
        return;
    json_decref(cfg->root);
    free(cfg);
}

/* ---- the transform ------------------------------------------------------------------------ */

enum kind { K_MENU, K_DISC, K_SVC, K_TENDER, K_ERRCOR, K_OTHER };

enum role { R_NONE, R_SALE, R_ADJ, R_COPY };

struct line {
    const json_t *j;
    const json_t *sub; /* the typed sub-object */
    enum kind kind;
    enum role role;
    int64_t ttl, qty; /* agg (dsp when agg is absent): minor units, thousandths */
    int64_t dsp_ttl;
    int dns, vd, ec, rt;
    int has_dtl;
    json_int_t dtl;
    char id[32];                 /* guestCheckLineItemId as text ("" when absent) */
    char ext[200];               /* external id of the record the line became */
    char mi[32];                 /* miNum as text (menu items) */
    int64_t line_disc, line_svc; /* discounts and service charges allocated to this item */
    json_t *rec;                 /* the OrderItem (borrowed from items/adj_items) */
};

struct xf {
    const struct pg_xf_config *c;
    const json_t *check, *dims, *loc;
    const char *loc_ref;
    int scale;
    char *why;
    size_t whysz;
    struct line *lines;
    size_t n;
    char order_ext[160], adj_ext[170];
    json_t *items, *adj_items, *payments, *products, *flags;
    int64_t items_ttl, adj_ttl, disc, svc, other, tax, tax_incl_micro, tip, pays, chk, pay_ttl;
    int64_t moved_out, moved_in;
};

static int fail(struct xf *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct xf *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->why, x->whysz, fmt, ap);
    va_end(ap);
    return PG_EINVAL;
}

/* jansson's set_new steals the value even on failure; a NULL value is allocation failure. */
static int put(json_t *obj, const char *key, json_t *v)
{
    if (!v)
        return PG_ENOMEM;
    if (!key) { /* a field the configuration omits */
        json_decref(v);
        return PG_OK;
    }
    return json_object_set_new(obj, key, v) ? PG_ENOMEM : PG_OK;
}

static int push(json_t *arr, json_t *v)
{
    if (!v)
        return PG_ENOMEM;
    return json_array_append_new(arr, v) ? PG_ENOMEM : PG_OK;
}

static json_t *money(int64_t minor, int scale)
{
    char b[48];
    if (pg_money_format(minor, scale, b, sizeof b))
        return NULL;
    return json_string(b);
}

/* A quantity in thousandths: a JSON integer when whole (the common case, and what a Double field
 * shows), else an exact decimal string. */
static json_t *quantity(int64_t milli)
{
    if (milli % 1000 == 0)
        return json_integer(milli / 1000);
    return money(milli, 3);
}

/* {"<field>": "<value>"}: a reference to another record by its external id. */
static json_t *ref(const char *field, const char *value)
{
    return json_pack("{s:s}", field, value);
}

/* A copy of a JSON scalar, or null: ids, numbers and flags copied from the check as they are. */
static json_t *copy_or_null(const json_t *v)
{
    if (json_is_integer(v) || json_is_string(v) || json_is_boolean(v))
        return json_deep_copy(v);
    return json_null();
}

/* An id (integer or string) as text; 0 when absent, PG_EINVAL when it is something else. */
static int id_text(const json_t *v, char *out, size_t outsz)
{
    out[0] = '\0';
    if (!v || json_is_null(v))
        return PG_ENOTFOUND;
    if (json_is_integer(v))
        snprintf(out, outsz, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < outsz)
        snprintf(out, outsz, "%s", json_string_value(v));
    else
        return PG_EINVAL;
    return PG_OK;
}

static int flag_true(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
}

/* An amount field; absent or null is 0 (*present = 0). what names the place for the reason. */
static int amount(struct xf *x,
                  const json_t *obj,
                  const char *key,
                  int scale,
                  const char *what,
                  int64_t *v,
                  int *present)
{
    const json_t *j = json_object_get(obj, key);
    *v = 0;
    if (present)
        *present = j && !json_is_null(j);
    if (!j || json_is_null(j))
        return PG_OK;
    if (pg_money_parse(j, scale, v) == PG_OK)
        return PG_OK;
    if (json_is_number(j))
        return fail(x, "%s: %s %.10g has more decimals than %d or is out of range", what, key,
                    json_number_value(j), scale);
    return fail(x, "%s: %s is not a number", what, key);
}

/* inclTax is finer than the currency (31.285714): taken to millionths, rounded, not exact. */
static int64_t micro_lenient(const json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v) * 1000000;
    if (!json_is_real(v))
        return 0;
    double d = json_real_value(v) * 1e6;
    if (!(d < 9e15 && d > -9e15))
        return 0;
    return (int64_t)(d < 0 ? d - 0.5 : d + 0.5);
}

static const char *dim_name(const json_t *dims, const char *family, const char *num)
{
    const json_t *v = json_object_get(json_object_get(dims, family), num);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *loc_str(struct xf *x, const char *key)
{
    /* a revenue center's override wins over the location's value */
    char rvc[32];
    if (id_text(json_object_get(x->check, "rvcNum"), rvc, sizeof rvc) == PG_OK) {
        const json_t *o = json_object_get(json_object_get(x->loc, "revenue_centers"), rvc);
        const json_t *v = json_object_get(o, key);
        if (json_is_string(v))
            return json_string_value(v);
    }
    const json_t *v = json_object_get(x->loc, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int add_flag(struct xf *x, json_t *flag)
{
    return push(x->flags, flag);
}

static struct line *nearest_item(struct xf *x, size_t i, const char *mi, enum role role);

static int parse_lines(struct xf *x)
{
    const json_t *arr = json_object_get(x->check, "detailLines");
    if (arr && !json_is_array(arr) && !json_is_null(arr))
        return fail(x, "detailLines: expected an array");
    x->n = json_is_array(arr) ? json_array_size(arr) : 0;
    x->lines = calloc(x->n ? x->n : 1, sizeof *x->lines);
    if (!x->lines)
        return PG_ENOMEM;
    static const char *const subs[] = {"menuItem",    "discount",     "serviceCharge",
                                       "tenderMedia", "errorCorrect", "other"};
    for (size_t i = 0; i < x->n; i++) {
        struct line *l = &x->lines[i];
        char what[160];
        int rc, has_agg, has_aggq;
        l->j = json_array_get(arr, i);
        if (!json_is_object(l->j))
            return fail(x, "detailLines[%zu]: expected an object", i);
        if (id_text(json_object_get(l->j, "guestCheckLineItemId"), l->id, sizeof l->id) ==
            PG_EINVAL)
            return fail(x, "detailLines[%zu]: guestCheckLineItemId is not an id", i);
        snprintf(what, sizeof what, "detailLines[%zu] (guestCheckLineItemId %s)", i,
                 l->id[0] ? l->id : "none");
        int found = 0;
        for (int k = 0; k < 6; k++) {
            const json_t *s = json_object_get(l->j, subs[k]);
            if (json_is_object(s)) {
                if (found++)
                    return fail(x,
                                "%s: more than one of menuItem, discount, serviceCharge, "
                                "tenderMedia, errorCorrect, other",
                                what);
                l->sub = s;
                l->kind = (enum kind)k;
            }
        }
        if (!found)
            return fail(x,
                        "%s: none of menuItem, discount, serviceCharge, tenderMedia, "
                        "errorCorrect, other",
                        what);
        if ((rc = amount(x, l->j, "aggTtl", x->scale, what, &l->ttl, &has_agg)) ||
            (rc = amount(x, l->j, "dspTtl", x->scale, what, &l->dsp_ttl, NULL)) ||
            (rc = amount(x, l->j, "aggQty", 3, what, &l->qty, &has_aggq)))
            return rc;
        /* older payloads without agg*: the displayed values are all there is */
        if (!has_agg)
            l->ttl = l->dsp_ttl;
        if (!has_aggq && (rc = amount(x, l->j, "dspQty", 3, what, &l->qty, NULL)))
            return rc;
        l->dns = flag_true(l->j, "doNotShowFlag");
        l->vd = flag_true(l->j, "vdFlag");
        l->ec = flag_true(l->j, "errCorFlag");
        l->rt = flag_true(l->j, "returnFlag") || flag_true(l->sub, "returnFlag");
        const json_t *d = json_object_get(l->j, "dtlId");
        if (json_is_integer(d)) {
            l->has_dtl = 1;
            l->dtl = json_integer_value(d);
        }
        if (l->kind == K_MENU) {
            if (id_text(json_object_get(l->sub, "miNum"), l->mi, sizeof l->mi) != PG_OK)
                return fail(x, "%s: menuItem.miNum missing", what);
        }
        /* a moved line's copy: the other check aggregates it (aggTtl = aggQty = 0) */
        if (l->ttl == 0 && l->qty == 0 && l->kind != K_TENDER) {
            l->role = R_COPY;
            if (!l->dns)
                x->moved_in += l->dsp_ttl;
            continue;
        }
        if (l->dns && l->kind != K_TENDER)
            x->moved_out += l->ttl;
        if ((l->kind == K_MENU || l->kind == K_TENDER) && !l->id[0])
            return fail(x, "%s: guestCheckLineItemId missing (it is the record's external id)",
                        what);
        if (l->kind == K_MENU)
            l->role = (l->vd || l->ec || l->rt) ? R_ADJ : R_SALE;
        /* An errorCorrect line carrying the amount it takes back names the menu item in
         * objectNum: it is that item's adjustment, like a void, so the product's quantity and
         * amount net out in Salesforce as in MICROS' own sum (an order-level amount would leave
         * the item's TotalPrice overstated). One naming no sale item on the check before it, or
         * without a line id, stays order-level (totals.other). */
        if (l->kind == K_ERRCOR && l->id[0] &&
            id_text(json_object_get(l->sub, "objectNum"), l->mi, sizeof l->mi) == PG_OK &&
            nearest_item(x, i, l->mi, R_SALE)) {
            l->role = R_ADJ;
            l->ec = 1;
        }
        /* inclusive (VAT) tax already inside a line's amount */
        if (l->kind != K_TENDER)
            x->tax_incl_micro += micro_lenient(json_object_get(l->sub, "inclTax"));
    }
    return PG_OK;
}

static struct line *by_dtl(struct xf *x, const json_t *par)
{
    if (!json_is_integer(par))
        return NULL;
    for (size_t i = 0; i < x->n; i++)
        if (x->lines[i].has_dtl && x->lines[i].dtl == json_integer_value(par))
            return &x->lines[i];
    return NULL;
}

/* The nearest sale item before line i with miNum mi. */
static struct line *nearest_item(struct xf *x, size_t i, const char *mi, enum role role)
{
    while (i-- > 0)
        if (x->lines[i].role == role && strcmp(x->lines[i].mi, mi) == 0)
            return &x->lines[i];
    return NULL;
}

static int add_product(struct xf *x, const char *mi)
{
    for (size_t i = 0; i < json_array_size(x->products); i++)
        if (strcmp(json_string_value(
                       json_object_get(json_array_get(x->products, i), x->c->product_ext)),
                   mi) == 0)
            return PG_OK;
    const char *name = dim_name(x->dims, "menuItems", mi);
    char fallback[64];
    snprintf(fallback, sizeof fallback, "Menu item %s", mi);
    return push(x->products, json_pack("{s:{s:s},s:s,s:s}", "attributes", "type", "Product2",
                                       x->c->product_ext, mi, "Name", name ? name : fallback));
}

static int build_item(struct xf *x, size_t i)
{
    struct line *l = &x->lines[i];
    const struct pg_xf_config *c = x->c;
    int adj = l->role == R_ADJ;
    int rc;
    snprintf(l->ext, sizeof l->ext, "%s-%s-%s", c->org, x->loc_ref, l->id);
    int64_t q = l->qty, unit;
    int64_t num = l->ttl * 1000; /* |ttl| <= 1e13 so this fits */
    int exact = q != 0 && num % q == 0;
    if (exact) {
        unit = num / q;
    } else {
        /* fold to ±1 so that TotalPrice = Quantity × UnitPrice is still exactly aggTtl */
        int s = (q < 0 || (q == 0 && l->ttl < 0)) ? -1 : 1;
        unit = l->ttl * s;
        q = s * 1000;
        if ((rc =
                 add_flag(x, json_pack("{s:s,s:s}", "code", "UNIT_PRICE_INEXACT", "line", l->ext))))
            return rc;
    }
    json_t *r = json_object();
    if (!r)
        return PG_ENOMEM;
    if ((rc = push(adj ? x->adj_items : x->items, r)))
        return rc;
    l->rec = r;
    const char *name = dim_name(x->dims, "menuItems", l->mi);
    if ((rc = put(r, "attributes", json_pack("{s:s}", "type", "OrderItem"))) ||
        (rc = put(r, c->item_ext, json_string(l->ext))) ||
        (rc = put(r, "Order", ref(c->order_ext, adj ? x->adj_ext : x->order_ext))) ||
        (rc = put(r, "Product2", ref(c->product_ext, l->mi))) ||
        (rc = put(r, "Quantity", quantity(q))) ||
        (rc = put(r, "UnitPrice", money(unit, x->scale))) ||
        (rc = put(r, "Description", name ? json_string(name) : json_null())) ||
        (rc = put(r, c->field[F_POS_QTY], quantity(l->qty))) ||
        (rc = put(r, c->field[F_MOVED], json_boolean(l->dns))) ||
        (rc = put(r, c->field[F_PARENT_LINE], json_null())) || (rc = add_product(x, l->mi)))
        return rc;
    if (!adj) {
        /* set (to zero) even when nothing is allocated: an upsert must clear an old value */
        if ((rc = put(r, c->field[F_LINE_DISCOUNT], money(0, x->scale))) ||
            (rc = put(r, c->field[F_LINE_SVC], money(0, x->scale))))
            return rc;
        return PG_OK;
    }
    const char *type = l->vd ? "void" : l->ec ? "error_correction" : "return";
    if ((rc = put(r, c->field[F_ADJ_TYPE], json_string(type))) ||
        (rc = put(r, c->field[F_REASON], copy_or_null(json_object_get(l->j, "rsnCodeNum")))))
        return rc;
    if (c->reduction) {
        struct line *orig = nearest_item(x, i, l->mi, R_SALE);
        if (orig)
            return put(r, "OriginalOrderItem", ref(c->item_ext, orig->ext));
        return add_flag(x, json_pack("{s:s,s:s}", "code", "ADJUSTMENT_UNMATCHED", "line", l->ext));
    }
    return PG_OK;
}

static int build_payment(struct xf *x, struct line *l)
{
    const struct pg_xf_config *c = x->c;
    char num[32] = "", fallback[64], ext[200], ref_no[64];
    int rc;
    (void)id_text(json_object_get(l->sub, "tmedNum"), num, sizeof num);
    const char *name = dim_name(x->dims, "tenderMedia", num);
    if (!name) {
        snprintf(fallback, sizeof fallback, "Tender %s", num);
        name = fallback;
    }
    snprintf(ext, sizeof ext, "%s-%s-%s", c->org, x->loc_ref, l->id);
    snprintf(l->ext, sizeof l->ext, "%s", ext);
    json_t *r = json_object();
    if (!r)
        return PG_ENOMEM;
    if ((rc = push(x->payments, r)))
        return rc;
    const char *cur = loc_str(x, "currency"), *acct = loc_str(x, "account_id");
    if ((rc = put(r, "attributes", json_pack("{s:s}", "type", c->payment_object))) ||
        (rc = put(r, c->payment_ext, json_string(ext))) ||
        /* A custom object has no standard Amount field: its amount is a custom field. */
        (rc = put(r, c->standard_payment ? "Amount" : c->field[F_PAYMENT_AMOUNT],
                  money(l->ttl, x->scale))) ||
        (cur && (rc = put(r, "CurrencyIsoCode", json_string(cur)))))
        return rc;
    if (c->standard_payment) {
        const json_t *when = json_object_get(l->j, "detailUTC");
        snprintf(ref_no, sizeof ref_no, "MICROS-TND-%s", l->id);
        char comments[160];
        snprintf(comments, sizeof comments, "Tender: %s", name);
        if ((rc = put(r, "Type", json_string("Sale"))) ||
            (rc = put(r, "ProcessingMode", json_string("External"))) ||
            (rc = put(r, "Status", json_string("Processed"))) ||
            (rc = put(r, "GatewayRefNumber", json_string(ref_no))) ||
            (rc = put(r, "Comments", json_string(comments))) ||
            (acct && (rc = put(r, "AccountId", json_string(acct)))))
            return rc;
        if (json_is_string(when)) {
            /* BI times are UTC without a zone; Salesforce wants one */
            char ts[64];
            snprintf(ts, sizeof ts, "%sZ", json_string_value(when));
            if ((rc = put(r, "EffectiveDate", json_string(ts))))
                return rc;
        }
        if (l->ttl < 0)
            return add_flag(x, json_pack("{s:s,s:s}", "code", "NEGATIVE_TENDER", "line", ext));
        return PG_OK;
    }
    if ((rc = put(r, "Name", json_string(name))) ||
        (rc = put(r, c->field[F_PAYMENT_ORDER], ref(c->order_ext, x->order_ext))) ||
        (rc =
             put(r, c->field[F_TENDER_NUMBER], copy_or_null(json_object_get(l->sub, "tmedNum")))) ||
        (rc = put(r, c->field[F_TENDER_NAME], json_string(name))))
        return rc;
    return PG_OK;
}

/* The fields the sale order and the adjustment order share. */
static int
order_common(struct xf *x, json_t *o, const char *ext, const char *status, const char *date)
{
    const struct pg_xf_config *c = x->c;
    const char *cur = loc_str(x, "currency"), *acct = loc_str(x, "account_id");
    const char *lid = loc_str(x, "location_id"), *chan = loc_str(x, "sales_channel");
    int rc;
    if ((rc = put(o, "attributes", json_pack("{s:s}", "type", "Order"))) ||
        (rc = put(o, c->order_ext, json_string(ext))) ||
        (rc = put(o, "EffectiveDate", json_string(date))) ||
        (rc = put(o, "Status", json_string(status))) ||
        (rc = put(o, "Pricebook2Id", json_string(loc_str(x, "pricebook_id")))) ||
        (cur && (rc = put(o, "CurrencyIsoCode", json_string(cur)))) ||
        (acct && (rc = put(o, "AccountId", json_string(acct)))) ||
        (rc = put(o, c->field[F_LOCATION], lid ? json_string(lid) : json_null())) ||
        (rc = put(o, c->field[F_LOCATION_REF], json_string(x->loc_ref))) ||
        (rc = put(o, c->field[F_SALES_CHANNEL], chan ? json_string(chan) : json_null())) ||
        (rc =
             put(o, c->field[F_CHECK_NUMBER], copy_or_null(json_object_get(x->check, "chkNum")))) ||
        (rc = put(o, c->field[F_RVC], copy_or_null(json_object_get(x->check, "rvcNum")))))
        return rc;
    return PG_OK;
}

static int run(struct xf *x, json_t **out)
{
    const struct pg_xf_config *c = x->c;
    const json_t *ck = x->check;
    char gid[64];
    int rc;
    if (!json_is_object(ck))
        return fail(x, "guest check: expected an object");
    if (id_text(json_object_get(ck, "guestCheckId"), gid, sizeof gid) != PG_OK)
        return fail(x, "guest check: guestCheckId missing or not an id");
    snprintf(x->order_ext, sizeof x->order_ext, "%s-%s-%s", c->org, x->loc_ref, gid);
    snprintf(x->adj_ext, sizeof x->adj_ext, "%s-ADJ", x->order_ext);
    char what[160];
    snprintf(what, sizeof what, "guest check %s", gid);
    if ((rc = amount(x, ck, "chkTtl", x->scale, what, &x->chk, NULL)) ||
        (rc = amount(x, ck, "payTtl", x->scale, what, &x->pay_ttl, NULL)) ||
        (rc = amount(x, ck, "tipTotal", x->scale, what, &x->tip, NULL)))
        return rc;
    const json_t *taxes = json_object_get(ck, "taxes");
    for (size_t i = 0; i < json_array_size(taxes); i++) {
        int64_t t;
        snprintf(what, sizeof what, "guest check %s taxes[%zu]", gid, i);
        if ((rc = amount(x, json_array_get(taxes, i), "taxCollTtl", x->scale, what, &t, NULL)))
            return rc;
        x->tax += t;
    }
    int cancelled = flag_true(ck, "cancelFlag"), closed = flag_true(ck, "clsdFlag");
    const json_t *date = json_object_get(ck, closed ? "clsdBusDt" : "opnBusDt");
    if (!json_is_string(date))
        date = json_object_get(ck, "opnBusDt");
    if (!json_is_string(date))
        return fail(x, "guest check %s: no business date (opnBusDt/clsdBusDt)", gid);

    x->items = json_array();
    x->adj_items = json_array();
    x->payments = json_array();
    x->products = json_array();
    x->flags = json_array();
    if (!x->items || !x->adj_items || !x->payments || !x->products || !x->flags)
        return PG_ENOMEM;
    if ((rc = parse_lines(x)))
        return rc;

    /* items first, so discounts, service charges and condiments can point at them */
    for (size_t i = 0; i < x->n; i++) {
        struct line *l = &x->lines[i];
        if (l->role == R_SALE || l->role == R_ADJ) {
            if ((rc = build_item(x, i)))
                return rc;
            if (l->role == R_SALE)
                x->items_ttl += l->ttl;
            else
                x->adj_ttl += l->ttl;
        }
    }
    const json_t *ws = NULL;
    for (size_t i = 0; i < x->n; i++) {
        struct line *l = &x->lines[i];
        if (!ws && json_is_integer(json_object_get(l->j, "wsNum")))
            ws = json_object_get(l->j, "wsNum");
        if (l->role == R_COPY)
            continue;
        const json_t *par = json_object_get(l->j, "parDtlId");
        struct line *parent = NULL;
        if (par && !json_is_null(par)) {
            parent = by_dtl(x, par);
            if (!parent || !parent->ext[0]) {
                parent = NULL;
                char line_id[200];
                snprintf(line_id, sizeof line_id, "%s-%s-%s", c->org, x->loc_ref, l->id);
                if ((rc = add_flag(x,
                                   json_pack("{s:s,s:s}", "code", "ORPHAN_LINE", "line", line_id))))
                    return rc;
            }
        }
        switch (l->kind) {
        case K_MENU:
            if (parent && (rc = put(l->rec, c->field[F_PARENT_LINE], json_string(parent->ext))))
                return rc;
            break;
        case K_DISC:
            x->disc += l->ttl;
            if (!parent || parent->role != R_SALE) {
                char mi[32];
                parent = NULL;
                if (id_text(json_object_get(l->sub, "dscMiNum"), mi, sizeof mi) == PG_OK)
                    parent = nearest_item(x, i, mi, R_SALE);
            }
            if (parent)
                parent->line_disc += l->ttl;
            break;
        case K_SVC:
            x->svc += l->ttl;
            if (parent && parent->role == R_SALE)
                parent->line_svc += l->ttl;
            break;
        case K_TENDER:
            if (l->ttl == 0 && l->qty == 0)
                break; /* an empty or moved tender line pays nothing */
            x->pays += l->ttl;
            if ((rc = build_payment(x, l)))
                return rc;
            break;
        case K_ERRCOR:
        case K_OTHER:
            if (l->role != R_ADJ) /* else counted with the adjustments above */
                x->other += l->ttl;
            break;
        }
    }
    for (size_t i = 0; i < x->n; i++) {
        struct line *l = &x->lines[i];
        if (l->role == R_SALE && (l->line_disc || l->line_svc) &&
            ((rc = put(l->rec, c->field[F_LINE_DISCOUNT], money(l->line_disc, x->scale))) ||
             (rc = put(l->rec, c->field[F_LINE_SVC], money(l->line_svc, x->scale)))))
            return rc;
    }

    int64_t tax_incl = pg_money_rescale(x->tax_incl_micro, 6, x->scale);
    int64_t computed = x->items_ttl + x->adj_ttl + x->disc + x->svc + x->other + x->tax - tax_incl -
                       x->moved_out + x->moved_in;
    if (computed != x->chk &&
        (rc = add_flag(x, json_pack("{s:s,s:I}", "code", "TOTAL_MISMATCH", "difference",
                                    (json_int_t)(x->chk - computed)))))
        return rc;
    if (x->pays != x->pay_ttl &&
        (rc = add_flag(x, json_pack("{s:s,s:I}", "code", "PAYMENT_MISMATCH", "difference",
                                    (json_int_t)(x->pay_ttl - x->pays)))))
        return rc;
    if (!cancelled && x->pay_ttl < x->chk &&
        (rc = add_flag(x, json_pack("{s:s,s:I}", "code", "BALANCE_DUE", "amount",
                                    (json_int_t)(x->chk - x->pay_ttl)))))
        return rc;
    if (cancelled && (rc = add_flag(x, json_pack("{s:s}", "code", "CANCELLED"))))
        return rc;
    const json_t *rf = json_object_get(ck, "reopnFrmChk"), *rt = json_object_get(ck, "reopnToChk");
    int reopened = (rf && !json_is_null(rf)) || (rt && !json_is_null(rt));
    if (reopened && (rc = add_flag(x, json_pack("{s:s,s:o,s:o}", "code", "REOPENED", "from",
                                                copy_or_null(rf), "to", copy_or_null(rt)))))
        return rc;
    if ((x->moved_out || x->moved_in) &&
        (rc = add_flag(x, json_pack("{s:s,s:I,s:I}", "code", "LINES_MOVED", "out",
                                    (json_int_t)x->moved_out, "in", (json_int_t)x->moved_in))))
        return rc;

    const char *status = cancelled ? c->st_cancelled : closed ? c->st_closed : c->st_open;
    const char *bdate = json_string_value(date);
    json_t *o = json_object();
    json_t *result = json_object();
    if (!o || !result) {
        json_decref(o);
        json_decref(result);
        return PG_ENOMEM;
    }
    *out = result;
    int sc = x->scale;
    if ((rc = put(result, "order", o)) || (rc = order_common(x, o, x->order_ext, status, bdate)) ||
        (rc = put(o, c->field[F_WORKSTATION], copy_or_null(ws))) ||
        (rc = put(o, c->field[F_EMPLOYEE], copy_or_null(json_object_get(ck, "empNum")))) ||
        (rc = put(o, c->field[F_GUESTS], copy_or_null(json_object_get(ck, "gstCnt")))) ||
        (rc = put(o, c->field[F_SUBTOTAL], money(x->items_ttl + x->adj_ttl, sc))) ||
        (rc = put(o, c->field[F_TAX], money(x->tax, sc))) ||
        (rc = put(o, c->field[F_DISCOUNT], money(x->disc, sc))) ||
        (rc = put(o, c->field[F_SVC], money(x->svc, sc))) ||
        (rc = put(o, c->field[F_TIP], money(x->tip, sc))) ||
        (rc = put(o, c->field[F_PAYMENTS], money(x->pays, sc))) ||
        (rc = put(o, c->field[F_CHECK_TOTAL], money(x->chk, sc))) ||
        (rc = put(o, c->field[F_REOPEN_FROM], copy_or_null(rf))) ||
        (rc = put(o, c->field[F_REOPEN_TO], copy_or_null(rt))))
        return rc;
    json_t *adjs = json_array();
    if ((rc = put(result, "adjustments", adjs)))
        return rc;
    if (json_array_size(x->adj_items) > 0) {
        json_t *ao = json_object();
        if ((rc = push(adjs, json_pack("{s:o,s:O}", "order", ao, "items", x->adj_items))))
            return rc;
        if ((rc = order_common(x, ao, x->adj_ext, c->st_open, bdate)))
            return rc;
        if (c->reduction)
            rc = put(ao, "IsReductionOrder", json_true()) ||
                 put(ao, "OriginalOrder", ref(c->order_ext, x->order_ext));
        else
            rc = put(ao, "Type", json_string("Return")) ||
                 put(ao, c->field[F_ORIGINAL_ORDER], ref(c->order_ext, x->order_ext));
        if (rc)
            return PG_ENOMEM;
    }
    if ((rc = put(result, "items", json_incref(x->items))) ||
        (rc = put(result, "payments", json_incref(x->payments))) ||
        (rc = put(result, "products", json_incref(x->products))) ||
        (rc = put(result, "flags", json_incref(x->flags))) ||
        (rc =
             put(result, "totals",
                 json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                           "subtotal", (json_int_t)(x->items_ttl + x->adj_ttl), "items",
                           (json_int_t)x->items_ttl, "adjustments", (json_int_t)x->adj_ttl,
                           "discount", (json_int_t)x->disc, "service_charge", (json_int_t)x->svc,
                           "other", (json_int_t)x->other, "tax", (json_int_t)x->tax, "tax_included",
                           (json_int_t)tax_incl, "tip", (json_int_t)x->tip, "payments",
                           (json_int_t)x->pays, "check_total", (json_int_t)x->chk, "pay_total",
                           (json_int_t)x->pay_ttl, "moved_out", (json_int_t)x->moved_out,
                           "moved_in", (json_int_t)x->moved_in, "computed", (json_int_t)computed))))
        return rc;
    return PG_OK;
}

int pg_xf_check(const struct pg_xf_config *cfg,
                const json_t *check,
                const char *loc_ref,
                const json_t *dims,
                json_t **out,
                char *why,
                size_t whysz)
{
    *out = NULL;
    if (whysz > 0)
        why[0] = '\0';
    struct xf x = {.c = cfg,
                   .check = check,
                   .dims = dims,
                   .loc_ref = loc_ref,
                   .why = why,
                   .whysz = whysz,
                   .scale = 2};
    if (!loc_ref || !(x.loc = json_object_get(cfg->locations, loc_ref))) {
        snprintf(why, whysz, "location '%s' is not configured (transform.locations)",
                 loc_ref ? loc_ref : "(none)");
        return PG_EINVAL;
    }
    const json_t *sc = json_object_get(x.loc, "scale");
    if (sc)
        x.scale = (int)json_integer_value(sc);
    json_t *result = NULL;
    int rc = run(&x, &result);
    json_decref(x.items);
    json_decref(x.adj_items);
    json_decref(x.payments);
    json_decref(x.products);
    json_decref(x.flags);
    free(x.lines);
    if (rc) {
        json_decref(result);
        if (rc == PG_ENOMEM && whysz > 0)
            snprintf(why, whysz, "out of memory");
        return rc;
    }
    *out = result;
    return PG_OK;
}
