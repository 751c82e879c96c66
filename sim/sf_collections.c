/*
 * The Salesforce simulator's sObject Collections upsert (salesforce-wire.md §4.3, §4.4, §4.6,
 * §5.2-§5.6, §5.8):
 *
 *     PATCH /services/data/vXX.X/composite/sobjects/{SObject}/{ExternalIdField}
 *     {"allOrNone": bool, "records": [{"attributes": {"type": SObject}, ...}, ...]}
 *
 * for Order, OrderItem, Product2, PricebookEntry, Payment and one custom payment object. Records
 * are matched on the external id field (text compared case-insensitively, as a Unique external id
 * is by default), created (created: true) or updated (created: false), answered in input order
 * with HTTP 200; a malformed request is a 400 error array. Validation per object: required fields,
 * restricted picklists, create-only and read-only fields, parent references by Id or by external
 * id, price book and currency rules. A configurable fraction of records fails with
 * UNABLE_TO_LOCK_ROW (deterministic from a seed). Stored records show in GET /_sim/state.
 * Runtime settings: GET/POST /_sim/collections; raw records (e.g. duplicates): POST
 * /_sim/collections/records. sim/README.md lists every error and its confidence.
 */
#include "sim/sf.h"

#include <ctype.h>
#include <math.h> /* isfinite (a macro) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/util.h"

#define MAX_RECORDS 200
#define MAX_EXT 4
#define MAX_IDX 8 /* field indexes per stored array */

/*
 * Indexes over the stored arrays (sim->state "orders", "order_items", "products",
 * "pricebook_entries", "payments"), so that a call costs the same whatever the volume stored.
 * The arrays stay the source of truth (SOQL in sf_rest.c and /_sim/state read them): an index
 * only narrows the candidates, and every caller checks each candidate with the predicate the
 * linear scans used, so a hash collision or a stale entry can never change an answer. An index
 * is rebuilt from its array when the array is not the one indexed or its size changed behind our
 * back (a reset, or writes by other code), and /_sim/reset drops them all.
 */
struct slot {
    uint64_t h;   /* key hash (the record pointer's hash in the position map) */
    json_t *rec;  /* NULL: a free slot */
    uint64_t seq; /* the record's order in its array (entries are kept in array order) */
};

/* Open addressing with linear probing; a multimap: several records may share a key. */
struct tab {
    struct slot *s;
    size_t cap, n; /* cap: 0 or a power of two */
};

struct fidx {
    char field[64];
    int fold; /* 1: case-folded scalar text (external ids); 0: the string's first 15 chars (Ids) */
    struct tab t;
};

struct arrix {
    json_t *arr;       /* the indexed array (a reference); NULL: nothing built */
    size_t size;       /* its size when last seen by us */
    uint64_t next_seq; /* sequence of the next appended record */
    struct tab pos;    /* record -> seq; holds one reference per record */
    struct fidx ix[MAX_IDX];
    int nix;
};

/* The allOrNone undo log of one call (applied in reverse on rollback). */
enum { U_MOD, U_ADD, U_DEL, U_GONE, U_ARR };
struct undo {
    int op, a;
    json_t *rec;   /* a reference (U_MOD, U_ADD, U_DEL) */
    json_t *saved; /* U_MOD: a shallow copy of rec before the call touched it */
    size_t pos;    /* U_DEL: where rec was in its array */
    uint64_t seq;  /* U_DEL: its sequence (0: unknown, the index is rebuilt) */
    char id15[16]; /* U_GONE */
};

struct sf_coll {
    /* settings (POST /_sim/collections; back to defaults on /_sim/reset) */
    double lock_error_rate;
    unsigned long long lock_seed;
    int multi_currency;
    char default_currency[4];
    char currencies[16][4];
    int ncurrencies;
    int create_only_any; /* 1: a create-only field in an update fails even when unchanged */
    char payment_object[64];
    char ext[6][MAX_EXT][64]; /* external id fields per object (index = obj kind) */
    int next[6];
    /* runtime */
    unsigned long long rng;
    unsigned long long id_counter;
    long long calls, records, created, updated, failed, lock_errors, deleted;
    json_t *gone; /* ids deleted through DELETE /composite/sobjects: id15 -> true */
    char std_pricebook[19], pos_pricebook[19];
    struct arrix ax[5]; /* one per stored array (kinds O_ORDER..O_PAYMENT) */
    /* the current call's undo log, kept only while logging (allOrNone true) */
    int logging;
    struct undo *undo;
    size_t nundo, undocap;
    struct tab touched; /* records with a U_MOD already logged in this call */
};

enum { O_ORDER, O_ITEM, O_PRODUCT, O_PBE, O_PAYMENT, O_CUSTOM, O_N };

static const char *const KIND_NAME[O_N] = {"Order",          "OrderItem", "Product2",
                                           "PricebookEntry", "Payment",   NULL};
static const char *const KIND_KEY[O_N] = {
    "orders", "order_items", "products", "pricebook_entries", "payments", "payments"};
static const char *const KIND_PREFIX[O_N] = {"801", "802", "01t", "01u", "0a3", "a0P"};

/* Writable standard fields (custom fields ending in __c are accepted on every object). */
static const char *const F_ORDER[] = {"AccountId",
                                      "EffectiveDate",
                                      "Status",
                                      "Pricebook2Id",
                                      "CurrencyIsoCode",
                                      "IsReductionOrder",
                                      "OriginalOrderId",
                                      "Name",
                                      "Type",
                                      "OrderReferenceNumber",
                                      "PoNumber",
                                      "PoDate",
                                      "Description",
                                      "ContractId",
                                      "BillToContactId",
                                      "ShipToContactId",
                                      "EndDate",
                                      "BillingStreet",
                                      "BillingCity",
                                      "BillingState",
                                      "BillingPostalCode",
                                      "BillingCountry",
                                      "ShippingStreet",
                                      "ShippingCity",
                                      "ShippingState",
                                      "ShippingPostalCode",
                                      "ShippingCountry",
                                      NULL};
static const char *const F_ITEM[] = {"OrderId",     "PricebookEntryId",    "Quantity",
                                     "UnitPrice",   "ServiceDate",         "EndDate",
                                     "Description", "OriginalOrderItemId", NULL};
static const char *const F_PRODUCT[] = {"Name",
                                        "ProductCode",
                                        "IsActive",
                                        "Description",
                                        "Family",
                                        "StockKeepingUnit",
                                        "QuantityUnitOfMeasure",
                                        "DisplayUrl",
                                        "ExternalId",
                                        "CurrencyIsoCode",
                                        NULL};
static const char *const F_PBE[] = {"Pricebook2Id",     "Product2Id",      "UnitPrice", "IsActive",
                                    "UseStandardPrice", "CurrencyIsoCode", NULL};
static const char *const F_PAYMENT[] = {"Amount",
                                        "Type",
                                        "ProcessingMode",
                                        "Status",
                                        "AccountId",
                                        "PaymentGroupId",
                                        "PaymentMethodId",
                                        "PaymentAuthorizationId",
                                        "PaymentGatewayId",
                                        "GatewayRefNumber",
                                        "GatewayResultCode",
                                        "GatewayResultCodeDescription",
                                        "GatewayDate",
                                        "SfResultCode",
                                        "EffectiveDate",
                                        "Date",
                                        "CurrencyIsoCode",
                                        "Email",
                                        "Phone",
                                        "Comments",
                                        "ClientContext",
                                        "IpAddress",
                                        "MacAddress",
                                        "OrderPaymentSummaryId",
                                        NULL};
static const char *const F_CUSTOM[] = {"Name", "CurrencyIsoCode", NULL};
static const char *const *const FIELDS[O_N] = {F_ORDER, F_ITEM,    F_PRODUCT,
                                               F_PBE,   F_PAYMENT, F_CUSTOM};

/* Create-only (createable, not updateable) fields (§4.5 caveats, §5.2-§5.6). */
static const char *const C_ORDER[] = {"IsReductionOrder", "OriginalOrderId", NULL};
static const char *const C_ITEM[] = {"OrderId", "PricebookEntryId", "OriginalOrderItemId", NULL};
static const char *const C_PBE[] = {"Pricebook2Id", "Product2Id", "CurrencyIsoCode", NULL};
static const char *const C_PAYMENT[] = {"ProcessingMode", NULL};
static const char *const C_NONE[] = {NULL};
static const char *const *const CREATE_ONLY[O_N] = {C_ORDER, C_ITEM,    C_NONE,
                                                    C_PBE,   C_PAYMENT, C_NONE};

static const char *const R_ORDER[] = {"AccountId", "EffectiveDate", "Status", NULL};
static const char *const R_ITEM[] = {"OrderId", "PricebookEntryId", "Quantity", "UnitPrice", NULL};
static const char *const R_PRODUCT[] = {"Name", NULL};
static const char *const R_PBE[] = {"Pricebook2Id", "Product2Id", "UnitPrice", NULL};
static const char *const R_PAYMENT[] = {"Amount", "Type", "ProcessingMode", "Status", NULL};
static const char *const R_CUSTOM[] = {"Order__c", "Amount__c", NULL};
static const char *const *const REQUIRED[O_N] = {R_ORDER, R_ITEM,    R_PRODUCT,
                                                 R_PBE,   R_PAYMENT, R_CUSTOM};

/* Read-only on every object (system and computed fields). */
static const char *const READ_ONLY[] = {"Id",
                                        "CreatedDate",
                                        "CreatedById",
                                        "LastModifiedDate",
                                        "LastModifiedById",
                                        "SystemModstamp",
                                        "IsDeleted",
                                        "TotalAmount",
                                        "OrderNumber",
                                        "StatusCode",
                                        "Product2Id@OrderItem",
                                        "ListPrice",
                                        "TotalPrice",
                                        "AvailableQuantity",
                                        "OrderItemNumber",
                                        "CurrencyIsoCode@OrderItem",
                                        "PaymentNumber",
                                        "ProductCode@PricebookEntry",
                                        "Name@PricebookEntry",
                                        NULL};

/* Parent references by external id: relationship name -> (Id field, parent kind). */
static const struct {
    int kind;
    const char *rel, *field;
    int parent;
} RELS[] = {
    {O_ITEM, "Order", "OrderId", O_ORDER},
    {O_ITEM, "PricebookEntry", "PricebookEntryId", O_PBE},
    {O_PBE, "Product2", "Product2Id", O_PRODUCT},
    {O_CUSTOM, "Order__r", "Order__c", O_ORDER},
    /* a custom lookup from an Order to another (a return's original sale) */
    {O_ORDER, "Original_Order__r", "Original_Order__c", O_ORDER},
};

static void ax_drop(struct arrix *x);
static void tab_free(struct tab *t);

static struct sf_coll *coll(struct pg_sim *sim)
{
    return ((struct sf_priv *)sim->priv)->coll;
}

static int in_list(const char *const *list, const char *s)
{
    for (; list && *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static int custom_field(const char *s)
{
    size_t n = strlen(s);
    return n > 3 && strcmp(s + n - 3, "__c") == 0;
}

static const char *kind_name(struct sf_coll *c, int kind)
{
    return kind == O_CUSTOM ? c->payment_object : KIND_NAME[kind];
}

static void set_defaults(struct sf_coll *c)
{
    static const char *const cur[] = {"USD", "EUR", "GBP", "CAD", "AUD", "JPY", NULL};
    static const char *const ext[O_N] = {"POS_Check_Id__c", "POS_Line_Id__c",   "MICROS_Item_Id__c",
                                         "POS_Price_Id__c", "POS_Tender_Id__c", "POS_Tender_Id__c"};
    c->lock_error_rate = 0;
    c->lock_seed = 1;
    c->rng = c->lock_seed;
    c->multi_currency = 1;
    snprintf(c->default_currency, sizeof c->default_currency, "USD");
    c->ncurrencies = 0;
    for (int i = 0; cur[i]; i++)
        snprintf(c->currencies[c->ncurrencies++], 4, "%s", cur[i]);
    c->create_only_any = 1;
    snprintf(c->payment_object, sizeof c->payment_object, "POS_Payment__c");
    for (int k = 0; k < O_N; k++) {
        memset(c->ext[k], 0, sizeof c->ext[k]);
        snprintf(c->ext[k][0], sizeof c->ext[k][0], "%s", ext[k]);
    }
}

int pg_sim_sf_coll_init(struct sf_priv *p)
{
    struct sf_coll *c = calloc(1, sizeof *c);
    if (!c)
        return PG_ENOMEM;
    set_defaults(c);
    c->id_counter = 4000;
    pg_sim_sf_id18("01s5g000000StdP", c->std_pricebook);
    pg_sim_sf_id18("01s5g000000PosB", c->pos_pricebook);
    c->gone = json_object();
    if (!c->gone) {
        free(c);
        return PG_ENOMEM;
    }
    p->coll = c;
    return PG_OK;
}

void pg_sim_sf_coll_free(struct sf_priv *p)
{
    if (p->coll) {
        for (int a = 0; a < O_CUSTOM; a++)
            ax_drop(&p->coll->ax[a]);
        free(p->coll->undo);
        tab_free(&p->coll->touched);
        json_decref(p->coll->gone);
    }
    free(p->coll);
    p->coll = NULL;
}

void pg_sim_sf_coll_reset(struct pg_sim *sim)
{
    struct sf_coll *c = coll(sim);
    set_defaults(c);
    c->calls = c->records = c->created = c->updated = c->failed = c->lock_errors = 0;
    c->deleted = 0;
    json_object_clear(c->gone);
    for (int a = 0; a < O_CUSTOM; a++) /* the state is the seed again: index it afresh */
        ax_drop(&c->ax[a]);
}

static json_t *pricebooks(struct sf_coll *c)
{
    return json_pack("[{s:s,s:s,s:b,s:b},{s:s,s:s,s:b,s:b}]", "Id", c->std_pricebook, "Name",
                     "Standard Price Book", "IsStandard", 1, "IsActive", 1, "Id", c->pos_pricebook,
                     "Name", "POS Price Book", "IsStandard", 0, "IsActive", 1);
}

void pg_sim_sf_coll_state(struct pg_sim *sim, json_t *view)
{
    struct sf_coll *c = coll(sim);
    json_t *counts = json_object();
    for (int k = 0; k < O_CUSTOM; k++) {
        json_t *a = json_object_get(view, KIND_KEY[k]);
        if (!a)
            json_object_set_new(view, KIND_KEY[k], a = json_array());
        json_object_set_new(counts, KIND_KEY[k], json_integer((json_int_t)json_array_size(a)));
    }
    json_object_set_new(view, "pricebooks", pricebooks(c));
    json_object_set_new(counts, "calls", json_integer(c->calls));
    json_object_set_new(counts, "records", json_integer(c->records));
    json_object_set_new(counts, "created", json_integer(c->created));
    json_object_set_new(counts, "updated", json_integer(c->updated));
    json_object_set_new(counts, "failed", json_integer(c->failed));
    json_object_set_new(counts, "lock_errors", json_integer(c->lock_errors));
    json_object_set_new(counts, "deleted", json_integer(c->deleted));
    json_object_set_new(view, "collections", counts);
}

/* ---- helpers ---- */

static uint64_t splitmix(unsigned long long *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void new_id(struct sf_coll *c, int kind, char out[19])
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char id15[16];
    unsigned long long n = ++c->id_counter;
    snprintf(id15, sizeof id15, "%s5g00000", KIND_PREFIX[kind]);
    for (int i = 14; i >= 10; i--, n /= 62)
        id15[i] = b62[n % 62];
    id15[15] = '\0';
    pg_sim_sf_id18(id15, out);
}

/* The text of a scalar external id / field value ("" for others). */
static void scalar_text(json_t *v, char *out, size_t n)
{
    if (json_is_string(v))
        snprintf(out, n, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, n, "%.17g", json_real_value(v));
    else
        out[0] = '\0';
}

static int is_type(json_t *rec, const char *type)
{
    const char *t = json_string_value(json_object_get(json_object_get(rec, "attributes"), "type"));
    return t && strcmp(t, type) == 0;
}

static const char *str(json_t *o, const char *f)
{
    return json_string_value(json_object_get(o, f));
}

/* str() or "" (records stored through /_sim/collections/records may lack anything). */
static const char *sv(json_t *o, const char *f)
{
    const char *s = str(o, f);
    return s ? s : "";
}

/* ---- indexes (see struct arrix) ---- */

/* The stored array of a kind: the custom payment object shares "payments" with Payment. */
static int arr_of(int kind)
{
    return kind == O_CUSTOM ? O_PAYMENT : kind;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t ptr_hash(const void *p)
{
    return mix64((uint64_t)(uintptr_t)p);
}

/* FNV-1a of s[0..n), folded with tolower() as strcasecmp() folds (same locale). */
static uint64_t str_hash(const char *s, size_t n, int fold)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        h = (h ^ (unsigned char)(fold ? tolower(ch) : ch)) * 0x100000001b3ULL;
    }
    return mix64(h);
}

static void tab_free(struct tab *t)
{
    free(t->s);
    memset(t, 0, sizeof *t);
}

static int tab_put(struct tab *t, uint64_t h, json_t *rec, uint64_t seq)
{
    if ((t->n + 1) * 4 > t->cap * 3) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        struct slot *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->s[i].rec)
                continue;
            size_t j = t->s[i].h & (ncap - 1);
            while (ns[j].rec)
                j = (j + 1) & (ncap - 1);
            ns[j] = t->s[i];
        }
        free(t->s);
        t->s = ns;
        t->cap = ncap;
    }
    size_t j = h & (t->cap - 1);
    while (t->s[j].rec)
        j = (j + 1) & (t->cap - 1);
    t->s[j] = (struct slot){h, rec, seq};
    t->n++;
    return 0;
}

static struct slot *tab_get(struct tab *t, uint64_t h, json_t *rec)
{
    if (!t->cap)
        return NULL;
    for (size_t j = h & (t->cap - 1); t->s[j].rec; j = (j + 1) & (t->cap - 1))
        if (t->s[j].rec == rec && t->s[j].h == h)
            return &t->s[j];
    return NULL;
}

/* Remove the entry (h, rec); backward-shift deletion keeps every entry reachable from its home. */
static void tab_del(struct tab *t, uint64_t h, json_t *rec)
{
    struct slot *hit = tab_get(t, h, rec);
    if (!hit)
        return;
    size_t mask = t->cap - 1, i = (size_t)(hit - t->s), k = i;
    for (;;) {
        t->s[i].rec = NULL;
        for (;;) {
            k = (k + 1) & mask;
            if (!t->s[k].rec) {
                t->n--;
                return;
            }
            size_t home = t->s[k].h & mask;
            /* s[k] may fill the hole at i unless its home lies cyclically in (i, k] */
            if (i <= k ? (home <= i || home > k) : (home <= i && home > k))
                break;
        }
        t->s[i] = t->s[k];
        i = k;
    }
}

/* The key of rec in ix: 1 and *h, or 0 when it has none (never matched, so not indexed). */
static int rec_key(const struct fidx *ix, json_t *rec, uint64_t *h)
{
    if (ix->fold) {
        char t[256];
        scalar_text(json_object_get(rec, ix->field), t, sizeof t);
        if (!t[0])
            return 0;
        *h = str_hash(t, strlen(t), 1);
        return 1;
    }
    const char *s = sv(rec, ix->field);
    if (!s[0])
        return 0;
    *h = str_hash(s, strnlen(s, 15), 0);
    return 1;
}

static void ax_drop(struct arrix *x)
{
    for (size_t i = 0; i < x->pos.cap; i++)
        json_decref(x->pos.s[i].rec); /* NULL for free slots */
    tab_free(&x->pos);
    for (int i = 0; i < x->nix; i++)
        tab_free(&x->ix[i].t);
    json_decref(x->arr);
    memset(x, 0, sizeof *x);
}

/* c->ax[a], rebuilt (position map only) when it does not describe the stored array. */
static struct arrix *ax_fresh(struct sf_coll *c, json_t *st, int a)
{
    struct arrix *x = &c->ax[a];
    json_t *arr = json_object_get(st, KIND_KEY[a]);
    if (!json_is_array(arr))
        arr = NULL;
    if (x->arr && x->arr == arr && x->size == json_array_size(arr))
        return x;
    ax_drop(x);
    if (!arr)
        return x;
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r)
    {
        if (tab_put(&x->pos, ptr_hash(r), r, i + 1)) { /* seq 0: unknown */
            ax_drop(x);                                /* out of memory: lookups scan the array */
            return x;
        }
        json_incref(r);
    }
    x->arr = json_incref(arr);
    x->size = json_array_size(arr);
    x->next_seq = x->size + 1;
    return x;
}

static uint64_t seq_of(struct arrix *x, json_t *rec)
{
    struct slot *s = tab_get(&x->pos, ptr_hash(rec), rec);
    return s ? s->seq : 0;
}

/* The index of x on field (built on first use); NULL when none can be had. */
static struct fidx *ax_index(struct arrix *x, const char *field, int fold)
{
    if (!x->arr || strlen(field) >= sizeof x->ix[0].field)
        return NULL;
    for (int i = 0; i < x->nix; i++)
        if (x->ix[i].fold == fold && strcmp(x->ix[i].field, field) == 0)
            return &x->ix[i];
    if (x->nix == MAX_IDX) { /* external id fields changed many times: start over */
        for (int i = 0; i < x->nix; i++)
            tab_free(&x->ix[i].t);
        x->nix = 0;
    }
    struct fidx *ix = &x->ix[x->nix];
    memset(ix, 0, sizeof *ix);
    snprintf(ix->field, sizeof ix->field, "%s", field);
    ix->fold = fold;
    size_t i;
    json_t *r;
    json_array_foreach(x->arr, i, r)
    {
        uint64_t h;
        if (rec_key(ix, r, &h) && tab_put(&ix->t, h, r, seq_of(x, r))) {
            tab_free(&ix->t);
            return NULL;
        }
    }
    x->nix++;
    return ix;
}

/*
 * Candidates for a lookup: either the index entries under key's hash, in array order, or (all)
 * every record of the array, read live. Callers check each with their own predicate.
 */
struct hits {
    json_t *arr;
    int all;
    struct slot *e;
    size_t n, cap;
    struct slot local[16];
};

static size_t hits_n(const struct hits *h)
{
    return h->all ? json_array_size(h->arr) : h->n;
}

static json_t *hits_at(const struct hits *h, size_t i)
{
    return h->all ? json_array_get(h->arr, i) : h->e[i].rec;
}

static void hits_free(struct hits *h)
{
    if (h->e != h->local)
        free(h->e);
}

static void collect(struct sf_coll *c,
                    json_t *st,
                    int a,
                    const char *field,
                    int fold,
                    const char *key,
                    struct hits *out)
{
    struct arrix *x = ax_fresh(c, st, a);
    out->arr = json_object_get(st, KIND_KEY[a]);
    out->all = 0;
    out->e = out->local;
    out->n = 0;
    out->cap = sizeof out->local / sizeof out->local[0];
    size_t klen = fold ? strlen(key) : strnlen(key, 15);
    struct fidx *ix = klen ? ax_index(x, field, fold) : NULL;
    if (!ix) { /* an empty key (only some Ids) or no memory: scan like before */
        out->all = 1;
        return;
    }
    uint64_t h = str_hash(key, klen, fold);
    struct tab *t = &ix->t;
    for (size_t j = t->cap ? h & (t->cap - 1) : 0; t->cap && t->s[j].rec;
         j = (j + 1) & (t->cap - 1)) {
        if (t->s[j].h != h)
            continue;
        if (out->n == out->cap) {
            struct slot *ne = malloc(out->cap * 2 * sizeof *ne);
            if (!ne) {
                hits_free(out);
                out->all = 1;
                return;
            }
            memcpy(ne, out->e, out->n * sizeof *ne);
            hits_free(out);
            out->e = ne;
            out->cap *= 2;
        }
        out->e[out->n++] = t->s[j];
    }
    for (size_t i = 1; i < out->n; i++) /* insertion sort by seq: a few entries at most */
        for (size_t k = i; k > 0 && out->e[k - 1].seq > out->e[k].seq; k--) {
            struct slot tmp = out->e[k];
            out->e[k] = out->e[k - 1];
            out->e[k - 1] = tmp;
        }
}

/* Records of kind whose field equals val (case-insensitively), in array order; up to max into out.
 */
static size_t find_ext(struct sf_coll *c,
                       json_t *st,
                       int kind,
                       const char *field,
                       const char *val,
                       json_t **out,
                       size_t max)
{
    size_t n = 0;
    struct hits h;
    if (!val[0])
        return 0;
    collect(c, st, arr_of(kind), field, 1, val, &h);
    for (size_t i = 0; i < hits_n(&h); i++) {
        json_t *r = hits_at(&h, i);
        char t[256];
        if (!is_type(r, kind_name(c, kind)))
            continue;
        scalar_text(json_object_get(r, field), t, sizeof t);
        if (t[0] && strcasecmp(t, val) == 0) {
            if (n < max)
                out[n] = r;
            n++;
        }
    }
    hits_free(&h);
    return n;
}

/* The first record (in array order) of kind's array whose Id matches id on 15 characters. */
static json_t *find_id(struct sf_coll *c, json_t *st, int kind, const char *id)
{
    if (!id || (strlen(id) != 15 && strlen(id) != 18))
        return NULL;
    struct hits h;
    json_t *hit = NULL;
    collect(c, st, arr_of(kind), "Id", 0, id, &h);
    for (size_t i = 0; i < hits_n(&h) && !hit; i++) {
        const char *v = str(hits_at(&h, i), "Id");
        if (v && strncmp(v, id, 15) == 0)
            hit = hits_at(&h, i);
    }
    hits_free(&h);
    return hit;
}

/* ---- writes to the stored arrays: they keep the indexes and the undo log up to date ---- */

static void undo_push(struct sf_coll *c, struct undo u)
{
    if (c->nundo == c->undocap) {
        size_t ncap = c->undocap ? c->undocap * 2 : 64;
        struct undo *nu = realloc(c->undo, ncap * sizeof *nu);
        if (!nu) {
            /* cannot happen in practice; losing the entry would make a rollback partial */
            fprintf(stderr, "posgate-sim: out of memory in the collections undo log\n");
            abort();
        }
        c->undo = nu;
        c->undocap = ncap;
    }
    c->undo[c->nundo++] = u;
}

/* Every array exists once a call ran (as before: a committed call stored all five). */
static void ensure_arrays(struct sf_coll *c, json_t *st)
{
    for (int a = 0; a < O_CUSTOM; a++) {
        if (json_object_get(st, KIND_KEY[a]))
            continue;
        json_object_set_new(st, KIND_KEY[a], json_array());
        if (c->logging)
            undo_push(c, (struct undo){.op = U_ARR, .a = a});
    }
}

/* Append rec (the reference is stolen) to array a. */
static void rec_append(struct sf_coll *c, json_t *st, int a, json_t *rec)
{
    struct arrix *x = ax_fresh(c, st, a);
    json_t *arr = json_object_get(st, KIND_KEY[a]);
    if (json_array_append_new(arr, rec))
        return;
    if (c->logging)
        undo_push(c, (struct undo){.op = U_ADD, .a = a, .rec = json_incref(rec)});
    if (!x->arr)
        return;
    uint64_t seq = x->next_seq++;
    if (tab_put(&x->pos, ptr_hash(rec), rec, seq)) {
        ax_drop(x);
        return;
    }
    json_incref(rec);
    x->size++;
    for (int i = 0; i < x->nix; i++) {
        uint64_t h;
        if (rec_key(&x->ix[i], rec, &h) && tab_put(&x->ix[i].t, h, rec, seq)) {
            ax_drop(x);
            return;
        }
    }
}

/* Put rec back at pos of array a with its old seq (undoing a removal). */
static void rec_insert(struct sf_coll *c, json_t *st, int a, size_t pos, json_t *rec, uint64_t seq)
{
    struct arrix *x = ax_fresh(c, st, a);
    json_array_insert(json_object_get(st, KIND_KEY[a]), pos, rec);
    if (!x->arr)
        return;
    if (!seq || tab_put(&x->pos, ptr_hash(rec), rec, seq)) {
        ax_drop(x); /* rebuilt from the array on next use */
        return;
    }
    json_incref(rec);
    x->size++;
    for (int i = 0; i < x->nix; i++) {
        uint64_t h;
        if (rec_key(&x->ix[i], rec, &h) && tab_put(&x->ix[i].t, h, rec, seq)) {
            ax_drop(x);
            return;
        }
    }
}

/* Remove rec from array a. Records removed are usually recent: look from the end. */
static void rec_remove(struct sf_coll *c, json_t *st, int a, json_t *rec)
{
    struct arrix *x = ax_fresh(c, st, a);
    json_t *arr = json_object_get(st, KIND_KEY[a]);
    size_t i = json_array_size(arr);
    while (i-- > 0 && json_array_get(arr, i) != rec)
        ;
    if (i == (size_t)-1)
        return;
    uint64_t seq = x->arr ? seq_of(x, rec) : 0;
    if (c->logging)
        undo_push(
            c, (struct undo){.op = U_DEL, .a = a, .rec = json_incref(rec), .pos = i, .seq = seq});
    if (x->arr) {
        for (int k = 0; k < x->nix; k++) {
            uint64_t h;
            if (rec_key(&x->ix[k], rec, &h))
                tab_del(&x->ix[k].t, h, rec);
        }
        tab_del(&x->pos, ptr_hash(rec), rec);
        json_decref(rec); /* the position map's reference; the array still holds one */
        x->size--;
    }
    json_array_remove(arr, i);
}

/* Around an in-place change of a stored record: its index keys before and after. */
struct snap {
    int nix;
    int has[MAX_IDX];
    uint64_t h[MAX_IDX];
};

static void mod_begin(struct sf_coll *c, json_t *st, int a, json_t *rec, struct snap *s)
{
    struct arrix *x = ax_fresh(c, st, a);
    if (c->logging && !tab_get(&c->touched, ptr_hash(rec), rec)) {
        if (tab_put(&c->touched, ptr_hash(rec), rec, 0) == 0)
            undo_push(c,
                      (struct undo){
                          .op = U_MOD, .a = a, .rec = json_incref(rec), .saved = json_copy(rec)});
    }
    s->nix = x->arr ? x->nix : 0;
    for (int i = 0; i < s->nix; i++)
        s->has[i] = rec_key(&x->ix[i], rec, &s->h[i]);
}

static void mod_end(struct sf_coll *c, int a, json_t *rec, const struct snap *s)
{
    struct arrix *x = &c->ax[a];
    for (int i = 0; i < s->nix && x->arr; i++) {
        uint64_t h = 0;
        int has = rec_key(&x->ix[i], rec, &h);
        if (has == s->has[i] && (!has || h == s->h[i]))
            continue;
        if (s->has[i])
            tab_del(&x->ix[i].t, s->h[i], rec);
        if (has && tab_put(&x->ix[i].t, h, rec, seq_of(x, rec)))
            ax_drop(x);
    }
}

/* Set one field of a stored record (the reference to v is stolen). */
static void rec_set(struct sf_coll *c, json_t *st, int a, json_t *rec, const char *f, json_t *v)
{
    struct snap s;
    mod_begin(c, st, a, rec, &s);
    json_object_set_new(rec, f, v);
    mod_end(c, a, rec, &s);
}

/* Forget the call's undo log (after a commit) or apply it in reverse (a rollback). */
static void undo_end(struct sf_coll *c, json_t *st, int rollback)
{
    c->logging = 0;
    for (size_t i = c->nundo; i-- > 0;) {
        struct undo *u = &c->undo[i];
        if (rollback) {
            struct snap s;
            switch (u->op) {
            case U_MOD:
                mod_begin(c, st, u->a, u->rec, &s);
                json_object_clear(u->rec);
                json_object_update(u->rec, u->saved);
                mod_end(c, u->a, u->rec, &s);
                break;
            case U_ADD:
                rec_remove(c, st, u->a, u->rec);
                break;
            case U_DEL:
                rec_insert(c, st, u->a, u->pos, u->rec, u->seq);
                break;
            case U_GONE:
                json_object_del(c->gone, u->id15);
                break;
            case U_ARR:
                json_object_del(st, KIND_KEY[u->a]);
                break;
            }
        }
        json_decref(u->rec);
        json_decref(u->saved);
    }
    c->nundo = 0;
    tab_free(&c->touched);
}

static int id_shape(const char *s, const char *prefix)
{
    size_t n = s ? strlen(s) : 0;
    if (n != 15 && n != 18)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]))
            return 0;
    if (prefix && strncmp(s, prefix, 3) != 0)
        return 0;
    return n == 15 || pg_sim_sf_id_valid(s, NULL);
}

static int is_ext_field(struct sf_coll *c, int kind, const char *f)
{
    for (int i = 0; i < MAX_EXT; i++)
        if (c->ext[kind][i][0] && strcmp(c->ext[kind][i], f) == 0)
            return 1;
    return 0;
}

static int numeric(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        *out = strtod(s, &end);
        return *s && !*end && isfinite(*out);
    }
    return 0;
}

static int date_ok(const char *s)
{
    int y, m, d, n = 0;
    return s && strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) == 3 && n == 10 &&
           m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

/* ---- per-record errors ---- */

struct rec_err {
    char code[64];
    char msg[512];
    json_t *fields; /* array */
};

static int fail(struct rec_err *e, const char *code, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct rec_err *e, const char *code, json_t *fields, const char *fmt, ...)
{
    va_list ap;
    snprintf(e->code, sizeof e->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    json_decref(e->fields);
    e->fields = fields ? fields : json_array();
    return -1;
}

static json_t *one(const char *f)
{
    return json_pack("[s]", f);
}

static int picklist(struct rec_err *e, json_t *rec, const char *f, const char *const *ok)
{
    json_t *v = json_object_get(rec, f);
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    if (s && in_list(ok, s))
        return 0;
    char t[128];
    scalar_text(v, t, sizeof t);
    return fail(e, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", one(f),
                "%s: bad value for restricted picklist field: %s", f, t);
}

/* ---- one record ---- */

struct batch {
    struct pg_sim *sim;
    struct sf_coll *c;
    int kind;
    const char *ext;
    json_t *st; /* sim->state: written in place (an allOrNone rollback uses c's undo log) */
};

/* Replace relationship references ({"Order": {"POS_Check_Id__c": "..."}}) by Ids in rec. */
static int resolve_refs(struct batch *b, json_t *rec, struct rec_err *e)
{
    for (size_t i = 0; i < sizeof RELS / sizeof RELS[0]; i++) {
        if (RELS[i].kind != b->kind)
            continue;
        json_t *ref = json_object_get(rec, RELS[i].rel);
        if (!ref)
            continue;
        const char *pname = kind_name(b->c, RELS[i].parent);
        if (!json_is_object(ref) || json_object_size(ref) != 1)
            return fail(e, "INVALID_FIELD", one(RELS[i].rel),
                        "A relationship reference must name exactly one external id field of %s",
                        pname);
        if (json_object_get(rec, RELS[i].field))
            return fail(e, "INVALID_FIELD", one(RELS[i].field),
                        "Cannot specify both an external ID reference %s and a salesforce id, %s",
                        RELS[i].rel, RELS[i].field);
        const char *f = json_object_iter_key(json_object_iter(ref));
        json_t *v = json_object_iter_value(json_object_iter(ref));
        char val[256];
        scalar_text(v, val, sizeof val);
        if (!is_ext_field(b->c, RELS[i].parent, f))
            return fail(e, "INVALID_FIELD", one(RELS[i].rel),
                        "Field name provided, %s is not an External ID or indexed field for %s", f,
                        pname);
        json_t *hit[2];
        size_t n = find_ext(b->c, b->st, RELS[i].parent, f, val, hit, 2);
        if (n == 0)
            return fail(e, "INVALID_FIELD", one(RELS[i].rel),
                        "Foreign key external ID: %s not found for field %s in entity %s", val, f,
                        pname);
        if (n > 1)
            return fail(e, "DUPLICATE_EXTERNAL_ID", one(RELS[i].rel),
                        "Foreign key external ID: %s matches more than one record for field %s in "
                        "entity %s",
                        val, f, pname);
        json_object_set(rec, RELS[i].field, json_object_get(hit[0], "Id"));
        json_object_del(rec, RELS[i].rel);
    }
    return 0;
}

/* Unknown, read-only and badly typed fields; the external id field itself is allowed. */
static int check_fields(struct batch *b, json_t *rec, struct rec_err *e)
{
    const char *k;
    json_t *v;
    const char *obj = kind_name(b->c, b->kind);
    json_object_foreach(rec, k, v)
    {
        char scoped[160];
        snprintf(scoped, sizeof scoped, "%s@%s", k, obj);
        if (json_is_object(v))
            return fail(e, "INVALID_FIELD", one(k),
                        "No such relationship '%s' on sobject of type %s (or it has no external id "
                        "reference here)",
                        k, obj);
        if (in_list(READ_ONLY, k) || in_list(READ_ONLY, scoped))
            return fail(e, "INVALID_FIELD_FOR_INSERT_UPDATE", one(k),
                        "Unable to create/update fields: %s. Please check the security settings "
                        "of this field and verify that it is read/write for your profile or "
                        "permission set.",
                        k);
        if (strcmp(k, "CurrencyIsoCode") == 0 && !b->c->multi_currency)
            return fail(e, "INVALID_FIELD", one(k), "No such column '%s' on sobject of type %s", k,
                        obj);
        if (!in_list(FIELDS[b->kind], k) && !custom_field(k))
            return fail(e, "INVALID_FIELD", one(k), "No such column '%s' on sobject of type %s", k,
                        obj);
    }
    return 0;
}

static int check_currency(struct batch *b, json_t *rec, struct rec_err *e)
{
    json_t *v = json_object_get(rec, "CurrencyIsoCode");
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    for (int i = 0; s && i < b->c->ncurrencies; i++)
        if (strcmp(s, b->c->currencies[i]) == 0)
            return 0;
    char t[64];
    scalar_text(v, t, sizeof t);
    return fail(e, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", one("CurrencyIsoCode"),
                "Currency ISO Code: bad value for restricted picklist field: %s", t);
}

/* Object rules on merged (the record as it would be stored); old is NULL on create. */
static int check_rules(struct batch *b, json_t *merged, json_t *old, struct rec_err *e)
{
    struct sf_coll *c = b->c;
    static const char *const order_status[] = {"Draft", "Activated", NULL};
    static const char *const pay_type[] = {"Capture", "Sale", NULL};
    static const char *const pay_mode[] = {"External", "Salesforce", NULL};
    static const char *const pay_status[] = {"Draft", "Processed", "Canceled", NULL};
    double d;
    switch (b->kind) {
    case O_ORDER: {
        if (picklist(e, merged, "Status", order_status))
            return -1;
        if (!old && strcmp(sv(merged, "Status"), "Draft") != 0)
            return fail(e, "FIELD_INTEGRITY_EXCEPTION", one("Status"),
                        "Status: an order must be created with a Draft status");
        const char *acc = str(merged, "AccountId");
        if (!id_shape(acc, "001"))
            return fail(e, "MALFORMED_ID", one("AccountId"),
                        "Account ID: id value of incorrect type: %s", acc ? acc : "");
        if (!date_ok(str(merged, "EffectiveDate")))
            return fail(e, "INVALID_TYPE_ON_FIELD_IN_RECORD", one("EffectiveDate"),
                        "Order Start Date: value not of required type: %s",
                        str(merged, "EffectiveDate") ? str(merged, "EffectiveDate") : "");
        const char *pb = str(merged, "Pricebook2Id");
        if (json_object_get(merged, "Pricebook2Id") &&
            !json_is_null(json_object_get(merged, "Pricebook2Id")) &&
            (!pb ||
             (strncmp(pb, c->std_pricebook, 15) != 0 && strncmp(pb, c->pos_pricebook, 15) != 0)))
            return fail(e, "INVALID_CROSS_REFERENCE_KEY", one("Pricebook2Id"),
                        "invalid cross reference id");
        if (old) {
            struct hits h;
            int items = 0;
            collect(c, b->st, O_ITEM, "OrderId", 0, sv(old, "Id"), &h);
            for (size_t i = 0; i < hits_n(&h) && !items; i++)
                items = strncmp(sv(hits_at(&h, i), "OrderId"), sv(old, "Id"), 15) == 0;
            hits_free(&h);
            if (items && (!json_equal(json_object_get(merged, "Pricebook2Id"),
                                      json_object_get(old, "Pricebook2Id")) ||
                          !json_equal(json_object_get(merged, "CurrencyIsoCode"),
                                      json_object_get(old, "CurrencyIsoCode"))))
                return fail(e, "FIELD_INTEGRITY_EXCEPTION", one("Pricebook2Id"),
                            "Cannot change price book or currency on an order with order products");
        }
        return 0;
    }
    case O_ITEM: {
        if (!numeric(json_object_get(merged, "Quantity"), &d))
            return fail(e, "INVALID_TYPE_ON_FIELD_IN_RECORD", one("Quantity"),
                        "Quantity: value not of required type");
        if (!numeric(json_object_get(merged, "UnitPrice"), &d))
            return fail(e, "INVALID_TYPE_ON_FIELD_IN_RECORD", one("UnitPrice"),
                        "Unit Price: value not of required type");
        const char *oid = str(merged, "OrderId"), *pid = str(merged, "PricebookEntryId");
        json_t *order = find_id(c, b->st, O_ORDER, oid);
        if (!id_shape(oid, "801"))
            return fail(e, "MALFORMED_ID", one("OrderId"),
                        "Order ID: id value of incorrect type: %s", oid ? oid : "");
        if (!order)
            return fail(e, "INVALID_CROSS_REFERENCE_KEY", one("OrderId"),
                        "invalid cross reference id");
        json_t *pbe = find_id(c, b->st, O_PBE, pid);
        if (!id_shape(pid, "01u"))
            return fail(e, "MALFORMED_ID", one("PricebookEntryId"),
                        "Price Book Entry ID: id value of incorrect type: %s", pid ? pid : "");
        if (!pbe)
            return fail(e, "INVALID_CROSS_REFERENCE_KEY", one("PricebookEntryId"),
                        "invalid cross reference id");
        if (strcmp(sv(order, "Status"), "Draft") != 0)
            return fail(e, "FIELD_INTEGRITY_EXCEPTION", json_array(),
                        "You can't add, edit or delete order products on an activated order");
        const char *opb = str(order, "Pricebook2Id");
        if (!opb)
            return fail(e, "FIELD_INTEGRITY_EXCEPTION", one("PricebookEntryId"),
                        "field integrity exception: PricebookEntryId (price book not set on "
                        "order)");
        if (strncmp(opb, sv(pbe, "Pricebook2Id"), 15) != 0)
            return fail(e, "FIELD_INTEGRITY_EXCEPTION", one("PricebookEntryId"),
                        "field integrity exception: PricebookEntryId (pricebook entry is in a "
                        "different pricebook than the one assigned to the order)");
        if (c->multi_currency &&
            strcmp(sv(pbe, "CurrencyIsoCode"), sv(order, "CurrencyIsoCode")) != 0)
            return fail(e, "FIELD_INTEGRITY_EXCEPTION", one("PricebookEntryId"),
                        "field integrity exception: PricebookEntryId (pricebook entry currency "
                        "code does not match order currency code)");
        if (!json_is_true(json_object_get(pbe, "IsActive")))
            return fail(e, "FIELD_INTEGRITY_EXCEPTION", one("PricebookEntryId"),
                        "field integrity exception: PricebookEntryId (pricebook entry is "
                        "inactive)");
        json_object_set(merged, "Product2Id", json_object_get(pbe, "Product2Id"));
        json_object_set(merged, "ListPrice", json_object_get(pbe, "UnitPrice"));
        if (c->multi_currency)
            json_object_set(merged, "CurrencyIsoCode", json_object_get(order, "CurrencyIsoCode"));
        return 0;
    }
    case O_PRODUCT:
        if (!json_object_get(merged, "IsActive"))
            json_object_set_new(merged, "IsActive", json_false());
        return 0;
    case O_PBE: {
        if (!numeric(json_object_get(merged, "UnitPrice"), &d))
            return fail(e, "INVALID_TYPE_ON_FIELD_IN_RECORD", one("UnitPrice"),
                        "List Price: value not of required type");
        const char *pb = str(merged, "Pricebook2Id"), *prod = str(merged, "Product2Id");
        if (!pb ||
            (strncmp(pb, c->std_pricebook, 15) != 0 && strncmp(pb, c->pos_pricebook, 15) != 0))
            return fail(e, "INVALID_CROSS_REFERENCE_KEY", one("Pricebook2Id"),
                        "invalid cross reference id");
        if (!find_id(c, b->st, O_PRODUCT, prod))
            return fail(e, "INVALID_CROSS_REFERENCE_KEY", one("Product2Id"),
                        "invalid cross reference id");
        if (!json_object_get(merged, "IsActive"))
            json_object_set_new(merged, "IsActive", json_false());
        if (old)
            return 0;
        struct hits h;
        int std_ok = strncmp(pb, c->std_pricebook, 15) == 0, dup = 0;
        collect(c, b->st, O_PBE, "Product2Id", 0, prod, &h);
        for (size_t i = 0; i < hits_n(&h) && !dup; i++) {
            json_t *x = hits_at(&h, i);
            if (strncmp(sv(x, "Product2Id"), prod, 15) != 0 ||
                (c->multi_currency &&
                 strcmp(sv(x, "CurrencyIsoCode"), sv(merged, "CurrencyIsoCode")) != 0))
                continue;
            if (strncmp(sv(x, "Pricebook2Id"), pb, 15) == 0)
                dup = 1;
            else if (strncmp(sv(x, "Pricebook2Id"), c->std_pricebook, 15) == 0 &&
                     json_is_true(json_object_get(x, "IsActive")))
                std_ok = 1;
        }
        hits_free(&h);
        if (dup)
            return fail(e, "DUPLICATE_VALUE", json_array(),
                        "This price definition already exists in this price book");
        if (!std_ok)
            return fail(e, "STANDARD_PRICE_NOT_DEFINED", json_array(),
                        "No standard price defined for this product");
        return 0;
    }
    case O_PAYMENT:
        if (picklist(e, merged, "Type", pay_type) ||
            picklist(e, merged, "ProcessingMode", pay_mode) ||
            picklist(e, merged, "Status", pay_status))
            return -1;
        if (!numeric(json_object_get(merged, "Amount"), &d))
            return fail(e, "INVALID_TYPE_ON_FIELD_IN_RECORD", one("Amount"),
                        "Amount: value not of required type");
        if (old) {
            const char *from = sv(old, "Status"), *to = sv(merged, "Status");
            if (strcmp(from, to) != 0 &&
                !((strcmp(from, "Draft") == 0 && strcmp(to, "Processed") == 0) ||
                  (strcmp(from, "Processed") == 0 && strcmp(to, "Canceled") == 0) ||
                  (strcmp(from, "Draft") == 0 && strcmp(to, "Canceled") == 0)))
                return fail(e, "FIELD_INTEGRITY_EXCEPTION", one("Status"),
                            "Status: a payment can't change from %s to %s", from, to);
        }
        return 0;
    case O_CUSTOM: {
        if (!numeric(json_object_get(merged, "Amount__c"), &d))
            return fail(e, "INVALID_TYPE_ON_FIELD_IN_RECORD", one("Amount__c"),
                        "Amount: value not of required type");
        const char *oid = str(merged, "Order__c");
        if (!id_shape(oid, "801"))
            return fail(e, "MALFORMED_ID", one("Order__c"), "Order: id value of incorrect type: %s",
                        oid ? oid : "");
        if (!find_id(c, b->st, O_ORDER, oid))
            return fail(e, "INVALID_CROSS_REFERENCE_KEY", one("Order__c"),
                        "invalid cross reference id");
        return 0;
    }
    }
    return 0;
}

/* x rounded to cents (half away from zero), without libm. */
static double cents(double x)
{
    return (double)(x >= 0 ? (long long)(x * 100 + 0.5) : -(long long)(-x * 100 + 0.5)) / 100;
}

/* Order.TotalAmount = sum of its items' Quantity x UnitPrice (the read-only roll-up). */
static void rollup(struct sf_coll *c, json_t *st, const char *order_id)
{
    json_t *order = find_id(c, st, O_ORDER, order_id);
    if (!order)
        return;
    struct hits h;
    double sum = 0, q, p;
    collect(c, st, O_ITEM, "OrderId", 0, order_id, &h); /* in array order: the same sum */
    for (size_t i = 0; i < hits_n(&h); i++) {
        json_t *it = hits_at(&h, i);
        const char *oid = str(it, "OrderId");
        if (oid && strncmp(oid, order_id, 15) == 0 &&
            numeric(json_object_get(it, "Quantity"), &q) &&
            numeric(json_object_get(it, "UnitPrice"), &p)) {
            double tp = cents(q * p);
            rec_set(c, st, O_ITEM, it, "TotalPrice", json_real(tp));
            sum += tp;
        }
    }
    hits_free(&h);
    rec_set(c, st, O_ORDER, order, "TotalAmount", json_real(cents(sum)));
}

/* Upsert one record into the stored arrays. Returns 0 (created/updated set) or -1 with e filled. */
static int upsert_one(struct batch *b, json_t *in, struct rec_err *e, char id[19], int *created)
{
    struct sf_coll *c = b->c;
    json_t *rec = json_deep_copy(in);
    json_object_del(rec, "attributes");
    int rc = -1;
    const char *obj = kind_name(c, b->kind);
    json_t *ev = json_object_get(rec, b->ext);
    char val[256];
    scalar_text(ev, val, sizeof val);
    json_t *hit[8];
    size_t n = 0;
    json_t *merged = NULL;
    if (!val[0]) {
        fail(e, "MISSING_ARGUMENT", one(b->ext), "%s not specified", b->ext);
        goto out;
    }
    n = find_ext(c, b->st, b->kind, b->ext, val, hit, 8);
    if (n > 1) {
        char ids[8 * 20 + 4] = "";
        for (size_t i = 0; i < n && i < 8; i++)
            snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", i ? ", " : "",
                     sv(hit[i], "Id"));
        fail(e, "DUPLICATE_EXTERNAL_ID", one(b->ext),
             "%s: more than one record found for external id field: [%s]", b->ext, ids);
        goto out;
    }
    json_t *old = n == 1 ? hit[0] : NULL;
    if (resolve_refs(b, rec, e) || check_fields(b, rec, e) || check_currency(b, rec, e))
        goto out;
    if (old) {
        for (const char *const *f = CREATE_ONLY[b->kind]; *f; f++) {
            json_t *v = json_object_get(rec, *f);
            if (v && (c->create_only_any || !json_equal(v, json_object_get(old, *f)))) {
                fail(e, "INVALID_FIELD_FOR_INSERT_UPDATE", one(*f),
                     "Unable to create/update fields: %s. Please check the security settings of "
                     "this field and verify that it is read/write for your profile or permission "
                     "set.",
                     *f);
                goto out;
            }
        }
    }
    merged = old ? json_deep_copy(old) : json_object();
    json_object_update(merged, rec);
    /* required: missing on create, or null on either */
    json_t *missing = json_array();
    char list[512] = "";
    for (const char *const *f = REQUIRED[b->kind]; *f; f++) {
        json_t *v = json_object_get(merged, *f);
        if (!v || json_is_null(v) || (json_is_string(v) && !json_string_length(v))) {
            json_array_append_new(missing, json_string(*f));
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "",
                     *f);
        }
    }
    if (json_array_size(missing)) {
        fail(e, "REQUIRED_FIELD_MISSING", missing, "Required fields are missing: [%s]", list);
        goto out;
    }
    json_decref(missing);
    if (c->multi_currency && !json_object_get(merged, "CurrencyIsoCode") && b->kind != O_ITEM)
        json_object_set_new(merged, "CurrencyIsoCode", json_string(c->default_currency));
    if (check_rules(b, merged, old, e))
        goto out;
    if (c->lock_error_rate > 0 &&
        (double)(splitmix(&c->rng) >> 11) * 0x1.0p-53 < c->lock_error_rate) {
        c->lock_errors++;
        fail(e, "UNABLE_TO_LOCK_ROW", json_array(),
             "unable to obtain exclusive access to this record or 1 records: %s",
             old ? sv(old, "Id") : val);
        goto out;
    }
    char ts[40];
    pg_sim_iso_ms(pg_wall_ms(), ts, sizeof ts);
    json_object_set_new(merged, "SystemModstamp", json_string(ts));
    if (old) {
        struct snap s;
        snprintf(id, 19, "%s", str(old, "Id"));
        mod_begin(c, b->st, arr_of(b->kind), old, &s);
        json_object_update(old, merged);
        mod_end(c, arr_of(b->kind), old, &s);
        *created = 0;
    } else {
        new_id(c, b->kind, id);
        json_t *full = json_pack("{s:{s:s},s:s}", "attributes", "type", obj, "Id", id);
        json_object_update(full, merged);
        json_object_set_new(full, "CreatedDate", json_string(ts));
        if (b->kind == O_ORDER) {
            char num[16];
            snprintf(num, sizeof num, "%08llu", c->id_counter);
            json_object_set_new(full, "OrderNumber", json_string(num));
            json_object_set_new(full, "TotalAmount", json_real(0));
            json_object_set_new(full, "StatusCode", json_string("Draft"));
        }
        rec_append(c, b->st, arr_of(b->kind), full);
        *created = 1;
    }
    if (b->kind == O_ORDER) {
        json_t *o = find_id(c, b->st, O_ORDER, id);
        if (o)
            rec_set(c, b->st, O_ORDER, o, "StatusCode",
                    json_string(strcmp(sv(o, "Status"), "Draft") == 0 ? "Draft" : "Activated"));
    }
    if (b->kind == O_ITEM)
        rollup(c, b->st, str(merged, "OrderId"));
    rc = 0;
out:
    json_decref(merged);
    json_decref(rec);
    return rc;
}

/* ---- the request ---- */

static void bad_request(struct pg_sim_reply *out, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_request(struct pg_sim_reply *out, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pg_sim_sf_error(out, 400, code, msg);
}

static int kind_of(struct sf_coll *c, const char *obj)
{
    for (int k = 0; k < O_CUSTOM; k++)
        if (strcasecmp(obj, KIND_NAME[k]) == 0)
            return k;
    if (strcasecmp(obj, c->payment_object) == 0)
        return O_CUSTOM;
    return -1;
}

static void upsert(struct pg_sim *sim,
                   const struct pg_sim_req *req,
                   const char *obj,
                   const char *field,
                   struct pg_sim_reply *out)
{
    struct sf_coll *c = coll(sim);
    json_t *body = req->json;
    pthread_mutex_lock(&sim->mu);
    int kind = kind_of(c, obj);
    int known_field = kind >= 0 && is_ext_field(c, kind, field);
    const char *type = kind >= 0 ? kind_name(c, kind) : NULL;
    pthread_mutex_unlock(&sim->mu);
    if (kind < 0 || !known_field) { /* §4.3: a bad object or field in the URL is a 404 */
        pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
        return;
    }
    if (!json_is_object(body)) {
        bad_request(out, "JSON_PARSER_ERROR",
                    "The request body must be a JSON object with \"allOrNone\" and \"records\"");
        return;
    }
    const char *k;
    json_t *v, *recs = json_object_get(body, "records"), *aon = json_object_get(body, "allOrNone");
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "records") != 0 && strcmp(k, "allOrNone") != 0) {
            bad_request(out, "JSON_PARSER_ERROR", "Unrecognized field \"%s\"", k);
            return;
        }
    }
    if (aon && !json_is_boolean(aon)) {
        bad_request(out, "JSON_PARSER_ERROR", "allOrNone must be true or false");
        return;
    }
    if (!json_is_array(recs)) {
        bad_request(out, "JSON_PARSER_ERROR", "\"records\" must be an array of records");
        return;
    }
    if (json_array_size(recs) > MAX_RECORDS) {
        bad_request(out, "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records into this call");
        return;
    }
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        const char *t =
            json_string_value(json_object_get(json_object_get(r, "attributes"), "type"));
        if (!json_is_object(r)) {
            bad_request(out, "JSON_PARSER_ERROR", "records[%zu] is not an object", i);
            return;
        }
        if (!t) {
            bad_request(out, "INVALID_TYPE", "records[%zu]: Must specify a type in attributes", i);
            return;
        }
        if (strcasecmp(t, type) != 0) {
            bad_request(out, "INVALID_TYPE",
                        "records[%zu]: type %s is not the type in the request URI, %s", i, t, type);
            return;
        }
        json_object_foreach(r, k, v)
        {
            if (json_is_array(v)) {
                bad_request(out, "JSON_PARSER_ERROR",
                            "records[%zu]: field %s: Cannot deserialize an array here", i, k);
                return;
            }
        }
    }
    int all_or_none = json_is_true(aon);
    size_t n = json_array_size(recs);
    json_t *results = json_array();
    int any_failed = 0;

    pthread_mutex_lock(&sim->mu);
    struct batch b = {.sim = sim, .c = c, .kind = kind, .ext = field, .st = sim->state};
    c->logging = all_or_none; /* allOrNone false never rolls back: nothing to log */
    ensure_arrays(c, b.st);
    c->calls++;
    /* An external id given twice in one call fails on every occurrence (nothing is written). */
    char(*vals)[256] = calloc(n ? n : 1, sizeof *vals);
    json_array_foreach(recs, i, r) scalar_text(json_object_get(r, field), vals[i], sizeof vals[i]);
    json_array_foreach(recs, i, r)
    {
        struct rec_err e = {{0}, {0}, NULL};
        char id[19] = "";
        int created = 0, dup = 0;
        for (size_t j = 0; j < n && vals[i][0]; j++)
            dup |= j != i && strcasecmp(vals[i], vals[j]) == 0;
        int rc = dup ? fail(&e, "DUPLICATE_EXTERNAL_ID", one(field),
                            "Duplicate external id specified: %s", vals[i])
                     : upsert_one(&b, r, &e, id, &created);
        c->records++;
        if (rc == 0) {
            json_array_append_new(results, json_pack("{s:s,s:b,s:[],s:b}", "id", id, "success", 1,
                                                     "errors", "created", created));
        } else {
            any_failed = 1;
            json_array_append_new(results,
                                  json_pack("{s:b,s:[{s:s,s:s,s:o}]}", "success", 0, "errors",
                                            "statusCode", e.code, "message", e.msg, "fields",
                                            e.fields ? e.fields : json_array()));
            e.fields = NULL;
        }
        json_decref(e.fields);
    }
    free(vals);
    undo_end(c, b.st, all_or_none && any_failed);
    if (all_or_none && any_failed) {
        /* §4.4: the failed records keep their errors, every other one is rolled back */
        json_array_foreach(results, i, r)
        {
            if (json_is_true(json_object_get(r, "success")))
                json_array_set_new(
                    results, i,
                    json_pack("{s:b,s:[{s:s,s:s,s:[]}]}", "success", 0, "errors", "statusCode",
                              "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message",
                              "Record rolled back because not all records were valid and the "
                              "request was using AllOrNone header",
                              "fields"));
        }
    }
    json_array_foreach(results, i, r)
    {
        if (!json_is_true(json_object_get(r, "success")))
            c->failed++;
        else if (json_is_true(json_object_get(r, "created")))
            c->created++;
        else
            c->updated++;
    }
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, results);
}

/*
 * PATCH under /services/data/v: the collections upsert; any other PATCH path goes to the REST
 * handler (sf_rest.c), which answers it as before.
 */
void pg_sim_sf_collections(struct pg_sim *sim,
                           const struct pg_sim_req *req,
                           struct pg_sim_reply *out)
{
    const char *v = req->path + strlen("/services/data/");
    int major = 0, len = 0;
    if (sscanf(v, "v%3d.0%n", &major, &len) != 1 || len < 5 ||
        strncmp(v + len, "/composite/sobjects/", 20) != 0) {
        pg_sim_sf_data(sim, req, out);
        return;
    }
    if (!pg_sim_sf_authorized(sim, req, out) || pg_sim_sf_api_call(sim, out))
        return;
    const char *rest = v + len + 20, *slash = strchr(rest, '/');
    /* collections upsert needs API 46.0+ (§4.4) */
    if (!isdigit((unsigned char)v[1]) || major < 46 || major > atoi(sim->cfg->sf.api_version) ||
        !slash || slash == rest || !slash[1] || strchr(slash + 1, '/')) {
        pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
        return;
    }
    char obj[128];
    if ((size_t)(slash - rest) >= sizeof obj) {
        pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
        return;
    }
    memcpy(obj, rest, (size_t)(slash - rest));
    obj[slash - rest] = '\0';
    upsert(sim, req, obj, slash + 1, out);
}

/* ---- DELETE /composite/sobjects?ids=...&allOrNone=... (salesforce-wire.md §4.4) ---- */

/* Record id15 as deleted (ENTITY_IS_DELETED from now on). */
static void mark_gone(struct sf_coll *c, const char *id15)
{
    if (json_object_get(c->gone, id15))
        return;
    json_object_set_new(c->gone, id15, json_true());
    if (c->logging) {
        struct undo u = {.op = U_GONE};
        snprintf(u.id15, sizeof u.id15, "%s", id15);
        undo_push(c, u);
    }
}

/* Delete one stored record (its items with an Order). 0, or -1 with e filled. */
static int delete_one(struct sf_coll *c, json_t *st, const char *id, struct rec_err *e)
{
    char id15[16];
    if (!id_shape(id, NULL))
        return fail(e, "MALFORMED_ID", json_array(), "malformed id %s", id);
    snprintf(id15, sizeof id15, "%.15s", id);
    int kind = -1;
    json_t *rec = NULL;
    for (int k = 0; k < O_CUSTOM && !rec; k++) /* the first array holding it, as a scan would */
        if ((rec = find_id(c, st, k, id)))
            kind = k;
    if (kind < 0) {
        if (json_object_get(c->gone, id15))
            return fail(e, "ENTITY_IS_DELETED", json_array(), "entity is deleted");
        return fail(e, "INVALID_CROSS_REFERENCE_KEY", json_array(), "invalid cross reference id");
    }
    if (kind == O_ORDER && strcmp(sv(rec, "Status"), "Draft") != 0)
        return fail(e, "FIELD_INTEGRITY_EXCEPTION", json_array(),
                    "Cannot delete an activated order");
    char order_id[19] = "";
    if (kind == O_ITEM) {
        json_t *order = find_id(c, st, O_ORDER, sv(rec, "OrderId"));
        if (order && strcmp(sv(order, "Status"), "Draft") != 0)
            return fail(e, "FIELD_INTEGRITY_EXCEPTION", json_array(),
                        "You can't add, edit or delete order products on an activated order");
        snprintf(order_id, sizeof order_id, "%s", sv(rec, "OrderId"));
    }
    /* §5.6: a Payment is deletable only while it is a Draft */
    if (kind == O_PAYMENT && strcmp(sv(rec, "Status"), "Draft") != 0)
        return fail(e, "FIELD_INTEGRITY_EXCEPTION", json_array(),
                    "You can't delete a payment whose status is %s", sv(rec, "Status"));
    if (c->lock_error_rate > 0 &&
        (double)(splitmix(&c->rng) >> 11) * 0x1.0p-53 < c->lock_error_rate) {
        c->lock_errors++;
        return fail(e, "UNABLE_TO_LOCK_ROW", json_array(),
                    "unable to obtain exclusive access to this record or 1 records: %s", id);
    }
    json_incref(rec); /* kept alive for the removal below, whatever the items' removal does */
    if (kind == O_ORDER) {
        /* deleting an order deletes its order products (from the last, as before) */
        struct hits h;
        collect(c, st, O_ITEM, "OrderId", 0, id15, &h);
        for (size_t i = hits_n(&h); i-- > 0;) {
            json_t *it = hits_at(&h, i);
            if (strncmp(sv(it, "OrderId"), id15, 15) == 0) {
                char it15[16];
                snprintf(it15, sizeof it15, "%.15s", sv(it, "Id"));
                mark_gone(c, it15);
                rec_remove(c, st, O_ITEM, it);
            }
        }
        hits_free(&h);
    }
    mark_gone(c, id15);
    rec_remove(c, st, kind, rec);
    json_decref(rec);
    if (order_id[0])
        rollup(c, st, order_id);
    return 0;
}

/*
 * Up to 200 record ids of any objects, comma-separated; allOrNone defaults to false. HTTP 200
 * with one result per id, in order: {"id", "success": true, "errors": []} or
 * {"id", "success": false, "errors": [{statusCode, message, fields}]}: MALFORMED_ID,
 * ENTITY_IS_DELETED (deleted before), INVALID_CROSS_REFERENCE_KEY (no such record),
 * FIELD_INTEGRITY_EXCEPTION (an activated Order, an item of one, a non-Draft Payment),
 * UNABLE_TO_LOCK_ROW. allOrNone true with a failure deletes nothing (the others get
 * ALL_OR_NONE_OPERATION_ROLLED_BACK).
 */
static void
delete_records(struct pg_sim *sim, const struct pg_sim_req *req, struct pg_sim_reply *out)
{
    struct sf_coll *c = coll(sim);
    char *ids = pg_sim_form_get(req->query, strlen(req->query), "ids");
    char *aon = pg_sim_form_get(req->query, strlen(req->query), "allOrNone");
    if (!ids || !*ids) {
        free(ids);
        free(aon);
        bad_request(out, "MISSING_ARGUMENT", "ids not specified");
        return;
    }
    int all_or_none = aon && strcasecmp(aon, "true") == 0;
    if (aon && !all_or_none && strcasecmp(aon, "false") != 0) {
        free(ids);
        free(aon);
        bad_request(out, "INVALID_QUERY_PARAMETER_VALUE", "allOrNone must be true or false");
        return;
    }
    free(aon);
    size_t n = 1;
    for (const char *p = ids; *p; p++)
        n += *p == ',';
    if (n > MAX_RECORDS) {
        free(ids);
        bad_request(out, "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records into this call");
        return;
    }
    json_t *results = json_array();
    int any_failed = 0;
    pthread_mutex_lock(&sim->mu);
    c->logging = all_or_none;
    ensure_arrays(c, sim->state);
    c->calls++;
    char *save = NULL;
    for (char *id = strtok_r(ids, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
        struct rec_err e = {{0}, {0}, NULL};
        c->records++;
        if (delete_one(c, sim->state, id, &e) == 0) {
            json_array_append_new(results,
                                  json_pack("{s:s,s:b,s:[]}", "id", id, "success", 1, "errors"));
        } else {
            any_failed = 1;
            c->failed++;
            json_array_append_new(results,
                                  json_pack("{s:s,s:b,s:[{s:s,s:s,s:o}]}", "id", id, "success", 0,
                                            "errors", "statusCode", e.code, "message", e.msg,
                                            "fields", e.fields ? e.fields : json_array()));
        }
    }
    size_t i;
    json_t *r;
    undo_end(c, sim->state, all_or_none && any_failed);
    if (all_or_none && any_failed) {
        json_array_foreach(results, i, r)
        {
            if (json_is_true(json_object_get(r, "success")))
                json_array_set_new(
                    results, i,
                    json_pack("{s:O,s:b,s:[{s:s,s:s,s:[]}]}", "id", json_object_get(r, "id"),
                              "success", 0, "errors", "statusCode",
                              "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message",
                              "Record rolled back because not all records were valid and the "
                              "request was using AllOrNone header",
                              "fields"));
        }
    } else {
        json_array_foreach(results, i, r) c->deleted += json_is_true(json_object_get(r, "success"));
    }
    pthread_mutex_unlock(&sim->mu);
    free(ids);
    pg_sim_reply_json(out, 200, results);
}

/* DELETE under /services/data/v: the collections delete; other paths go to sf_rest.c. */
void pg_sim_sf_collections_delete(struct pg_sim *sim,
                                  const struct pg_sim_req *req,
                                  struct pg_sim_reply *out)
{
    const char *v = req->path + strlen("/services/data/");
    int major = 0, len = 0;
    if (sscanf(v, "v%3d.0%n", &major, &len) != 1 || len < 5 ||
        strcmp(v + len, "/composite/sobjects") != 0) {
        pg_sim_sf_data(sim, req, out);
        return;
    }
    if (!pg_sim_sf_authorized(sim, req, out) || pg_sim_sf_api_call(sim, out))
        return;
    /* collections need API 42.0+ */
    if (major < 42 || major > atoi(sim->cfg->sf.api_version)) {
        pg_sim_sf_error(out, 404, "NOT_FOUND", "The requested resource does not exist");
        return;
    }
    delete_records(sim, req, out);
}

/* ---- control API ---- */

static json_t *settings_json(struct sf_coll *c)
{
    json_t *cur = json_array(), *ext = json_object();
    for (int i = 0; i < c->ncurrencies; i++)
        json_array_append_new(cur, json_string(c->currencies[i]));
    for (int k = 0; k < O_N; k++) {
        json_t *a = json_array();
        for (int i = 0; i < MAX_EXT; i++)
            if (c->ext[k][i][0])
                json_array_append_new(a, json_string(c->ext[k][i]));
        json_object_set_new(ext, k == O_CUSTOM ? c->payment_object : KIND_NAME[k], a);
    }
    return json_pack("{s:f,s:I,s:b,s:s,s:o,s:s,s:s,s:o,s:s,s:s}", "lock_error_rate",
                     c->lock_error_rate, "lock_seed", (json_int_t)c->lock_seed, "multi_currency",
                     c->multi_currency, "default_currency", c->default_currency, "currencies", cur,
                     "create_only_fields", c->create_only_any ? "reject_any" : "reject_changed",
                     "payment_object", c->payment_object, "external_id_fields", ext,
                     "standard_pricebook_id", c->std_pricebook, "pos_pricebook_id",
                     c->pos_pricebook);
}

static int is_ident(const char *s)
{
    if (!s || !isalpha((unsigned char)*s) || strlen(s) >= 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static int iso3(const char *s)
{
    return s && strlen(s) == 3 && isupper((unsigned char)s[0]) && isupper((unsigned char)s[1]) &&
           isupper((unsigned char)s[2]);
}

/* Apply a settings object to c (a scratch copy); 0 or -1 with err. */
static int settings_apply(struct sf_coll *c, json_t *j, char *err, size_t errsz)
{
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (strcmp(k, "lock_error_rate") == 0) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
                goto bad;
            c->lock_error_rate = json_number_value(v);
        } else if (strcmp(k, "lock_seed") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                goto bad;
            c->lock_seed = (unsigned long long)json_integer_value(v);
        } else if (strcmp(k, "multi_currency") == 0) {
            if (!json_is_boolean(v))
                goto bad;
            c->multi_currency = json_is_true(v);
        } else if (strcmp(k, "default_currency") == 0) {
            if (!iso3(json_string_value(v)))
                goto bad;
            snprintf(c->default_currency, 4, "%s", json_string_value(v));
        } else if (strcmp(k, "currencies") == 0) {
            size_t i;
            json_t *x;
            if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 16)
                goto bad;
            json_array_foreach(v, i, x) if (!iso3(json_string_value(x))) goto bad;
            c->ncurrencies = 0;
            json_array_foreach(v, i, x)
                snprintf(c->currencies[c->ncurrencies++], 4, "%s", json_string_value(x));
        } else if (strcmp(k, "create_only_fields") == 0) {
            const char *s = json_string_value(v);
            if (!s || (strcmp(s, "reject_any") != 0 && strcmp(s, "reject_changed") != 0))
                goto bad;
            c->create_only_any = strcmp(s, "reject_any") == 0;
        } else if (strcmp(k, "payment_object") == 0) {
            const char *s = json_string_value(v);
            if (!is_ident(s) || !custom_field(s))
                goto bad;
            snprintf(c->payment_object, sizeof c->payment_object, "%s", s);
        } else if (strcmp(k, "external_id_fields") == 0) {
            const char *o;
            json_t *a;
            if (!json_is_object(v))
                goto bad;
            json_object_foreach(v, o, a)
            {
                int kind = kind_of(c, o);
                size_t i;
                json_t *x;
                if (kind < 0 || !json_is_array(a) || json_array_size(a) < 1 ||
                    json_array_size(a) > MAX_EXT) {
                    snprintf(err, errsz,
                             "external_id_fields: \"%s\" must be a known object with 1..%d "
                             "field names",
                             o, MAX_EXT);
                    return -1;
                }
                json_array_foreach(a, i, x) if (!is_ident(json_string_value(x))) goto bad;
                memset(c->ext[kind], 0, sizeof c->ext[kind]);
                json_array_foreach(a, i, x)
                    snprintf(c->ext[kind][i], sizeof c->ext[kind][i], "%s", json_string_value(x));
            }
        } else {
            snprintf(err, errsz, "unknown key \"%s\"", k);
            return -1;
        }
        continue;
    bad:
        snprintf(err, errsz, "bad value for \"%s\" (see sim/README.md)", k);
        return -1;
    }
    int found = 0;
    for (int i = 0; i < c->ncurrencies; i++)
        found |= strcmp(c->currencies[i], c->default_currency) == 0;
    if (!found) {
        snprintf(err, errsz, "default_currency must be one of currencies");
        return -1;
    }
    c->rng = c->lock_seed;
    return 0;
}

/* GET /_sim/collections: the settings; POST: change some of them (until /_sim/reset). */
void pg_sim_sf_coll_settings(struct pg_sim *sim,
                             const struct pg_sim_req *req,
                             struct pg_sim_reply *out)
{
    struct sf_coll *c = coll(sim);
    pthread_mutex_lock(&sim->mu);
    if (strcmp(req->method, "POST") == 0) {
        struct sf_coll scratch = *c;
        char err[256];
        if (!json_is_object(req->json) ||
            settings_apply(&scratch, req->json, err, sizeof err) != 0) {
            pthread_mutex_unlock(&sim->mu);
            pg_sim_ctl_error(out, 400, "bad_request", "%s",
                             json_is_object(req->json) ? err : "the body must be a JSON object");
            return;
        }
        *c = scratch;
    }
    json_t *j = settings_json(c);
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 200, j);
}

/*
 * POST /_sim/collections/records {"type": "Order", "records": [{...}]}: store records as they are
 * (an Id is assigned when absent), unchecked: e.g. two Orders with one POS_Check_Id__c, as an org
 * whose field is External ID but not Unique can hold. Answers {"ids": [...]}.
 */
void pg_sim_sf_coll_records(struct pg_sim *sim,
                            const struct pg_sim_req *req,
                            struct pg_sim_reply *out)
{
    struct sf_coll *c = coll(sim);
    const char *type = json_string_value(json_object_get(req->json, "type"));
    json_t *recs = json_object_get(req->json, "records");
    pthread_mutex_lock(&sim->mu);
    int kind = type ? kind_of(c, type) : -1;
    size_t i;
    json_t *r;
    int ok = kind >= 0 && json_is_array(recs);
    json_array_foreach(recs, i, r) ok &= json_is_object(r);
    if (!ok) {
        pthread_mutex_unlock(&sim->mu);
        pg_sim_ctl_error(
            out, 400, "bad_request",
            "body: {\"type\": Order|OrderItem|Product2|PricebookEntry|Payment|<payment "
            "object>, \"records\": [objects]}");
        return;
    }
    if (!json_object_get(sim->state, KIND_KEY[kind]))
        json_object_set_new(sim->state, KIND_KEY[kind], json_array());
    json_t *ids = json_array();
    json_array_foreach(recs, i, r)
    {
        char id[19];
        json_t *rec = json_pack("{s:{s:s}}", "attributes", "type", kind_name(c, kind));
        json_object_update(rec, r);
        json_object_set_new(rec, "attributes", json_pack("{s:s}", "type", kind_name(c, kind)));
        if (!json_is_string(json_object_get(rec, "Id"))) {
            new_id(c, kind, id);
            json_object_set_new(rec, "Id", json_string(id));
        }
        json_array_append(ids, json_object_get(rec, "Id"));
        rec_append(c, sim->state, arr_of(kind), rec);
    }
    pthread_mutex_unlock(&sim->mu);
    pg_sim_reply_json(out, 201, json_pack("{s:o}", "ids", ids));
}
