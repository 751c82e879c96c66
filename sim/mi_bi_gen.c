/*
 * The BI API's generated business days (sim/README.md, "MICROS: BI API"): a fixed-seed generator
 * (splitmix64) that gives every (seed, locRef, business date) the same guest checks on every
 * platform. Money is integer cents throughout; the JSON shows it as numbers with at most two
 * decimals. Every check satisfies
 *
 *     chkTtl = Σ dspTtl of its shown (doNotShowFlag false) non-tender lines + Σ taxes[].taxCollTtl
 *     payTtl = Σ dspTtl of its shown tender lines          (balDueTtl = chkTtl - payTtl when open)
 *
 * and Σ aggTtl of all non-tender lines over a day equals Σ (chkTtl - tax) over its checks.
 */
#include "sim/mi_bi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/util.h"

/* ---- small helpers ---- */

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static int rnd(uint64_t *s, int n)
{
    return n <= 1 ? 0 : (int)(mix(s) % (uint64_t)n);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static void civil_from_days(long z, int *y, int *m, int *d)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long yy = (long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

int pg_sim_bi_parse_date(const char *s, long *out)
{
    int y, m, d, n = 0;
    if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
        s[4] != '-' || s[7] != '-' || m < 1 || m > 12 || d < 1 || d > 31 || y < 1970)
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    long z = days_from_civil(y, (unsigned)m, (unsigned)d);
    int yy, mm, dd;
    civil_from_days(z, &yy, &mm, &dd);
    if (yy != y || mm != m || dd != d) /* 2026-02-30 */
        return -1;
    *out = z;
    return 0;
}

static void fmt_date(long z, char *out, size_t outsz)
{
    int y, m, d;
    civil_from_days(z, &y, &m, &d);
    snprintf(out, outsz, "%04d-%02d-%02d", y, m, d);
}

void pg_sim_bi_ts(int64_t s, char *out, size_t outsz)
{
    long z = (long)(s >= 0 ? s / 86400 : (s - 86399) / 86400);
    long r = (long)(s - (int64_t)z * 86400);
    int y, m, d;
    civil_from_days(z, &y, &m, &d);
    snprintf(out, outsz, "%04d-%02d-%02dT%02ld:%02ld:%02ld", y, m, d, r / 3600, r / 60 % 60,
             r % 60);
}

json_t *pg_sim_bi_money(long long cents)
{
    if (cents % 100 == 0)
        return json_integer(cents / 100);
    return json_real((double)cents / 100.0);
}

long long pg_sim_bi_cents(json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) * 100;
    double x = json_number_value(v) * 100.0;
    return (long long)(x < 0 ? x - 0.5 : x + 0.5);
}

/* Round cents * rate / 100000 half away from zero (rate in thousandths of a percent). */
static long long tax_of(long long base, long long rate)
{
    long long p = base * rate;
    return p >= 0 ? (p + 50000) / 100000 : -((-p + 50000) / 100000);
}

/* The location's UTC offset in minutes on epoch day z (standard offsets + the US DST rule). */
static int tz_offset(const char *tz, long z)
{
    static const struct {
        const char *tz;
        int off;
        int dst;
    } tab[] = {
        {"America/New_York", -300, 1},
        {"America/Detroit", -300, 1},
        {"America/Toronto", -300, 1},
        {"America/Chicago", -360, 1},
        {"America/Denver", -420, 1},
        {"America/Phoenix", -420, 0},
        {"America/Los_Angeles", -480, 1},
        {"America/Vancouver", -480, 1},
        {"America/Anchorage", -540, 1},
        {"Pacific/Honolulu", -600, 0},
        {"UTC", 0, 0},
        {"Etc/UTC", 0, 0},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(tab[i].tz, tz) != 0)
            continue;
        if (!tab[i].dst)
            return tab[i].off;
        int y, m, d;
        civil_from_days(z, &y, &m, &d);
        /* second Sunday of March .. first Sunday of November (1970-01-01 was a Thursday) */
        long mar1 = days_from_civil(y, 3, 1), nov1 = days_from_civil(y, 11, 1);
        long mar_sun2 = mar1 + ((3 - (mar1 % 7) + 7) % 7) + 7;
        long nov_sun1 = nov1 + ((3 - (nov1 % 7) + 7) % 7);
        return tab[i].off + (z >= mar_sun2 && z < nov_sun1 ? 60 : 0);
    }
    return 0; /* unknown zones are treated as UTC (documented) */
}

/* ---- the catalog (the same for every location; dimensions come from it) ---- */

struct mi_def {
    int num;
    const char *name;
    long long price; /* cents */
    int maj, fam;    /* major group 1 Food / 2 Beverage / 3 Alcohol; family group */
    int cond;        /* 1: a condiment (modFlag 1) */
};

static const struct mi_def MENU[] = {
    {7001, "House Burger", 1595, 1, 10, 0},
    {7002, "Chicken Sandwich", 1450, 1, 10, 0},
    {7003, "Caesar Salad", 1195, 1, 11, 0},
    {7004, "Fish and Chips", 1875, 1, 10, 0},
    {7005, "Margherita Pizza", 1699, 1, 10, 0},
    {7006, "Ribeye 12oz", 3850, 1, 10, 0},
    {7007, "Tomato Soup", 695, 1, 11, 0},
    {7008, "Fries", 495, 1, 12, 0},
    {7009, "Chocolate Cake", 895, 1, 13, 0},
    {7010, "Kids Pasta", 799, 1, 10, 0},
    {7021, "Cola", 325, 2, 20, 0},
    {7022, "Iced Tea", 350, 2, 20, 0},
    {7023, "Espresso", 375, 2, 21, 0},
    {7024, "Sparkling Water", 450, 2, 20, 0},
    {7031, "Draft IPA", 850, 3, 30, 0},
    {7032, "House Red Glass", 1100, 3, 31, 0},
    {7033, "Margarita", 1350, 3, 32, 0},
    {7034, "Old Fashioned", 1495, 3, 32, 0},
    {6, "Add Bacon", 150, 1, 90, 1},
    {7, "Add Cheese", 100, 1, 90, 1},
    {8, "No Onions", 0, 1, 90, 1},
    {9, "Extra Sauce", 50, 1, 90, 1},
    {10, "Medium Rare", 0, 1, 90, 1},
    {11, "Gluten Free Bun", 200, 1, 90, 1},
};
#define NMENU (sizeof MENU / sizeof MENU[0])
#define NMAIN 18 /* MENU[0..NMAIN) are not condiments */

static const char *const MAJ[] = {"", "Food", "Beverage", "Alcohol"};

static const struct {
    int num;
    const char *name;
    int type;
} TENDERS[] = {{1, "Cash", 1},
               {201, "Visa", 2},
               {202, "Mastercard", 2},
               {203, "Amex", 2},
               {301, "Gift Card", 3}};

static const struct {
    int num;
    const char *name;
    int pct; /* percent off an item (item discounts) or 0 */
    int amt; /* cents off the subtotal (subtotal discounts) */
} DISCOUNTS[] = {{12, "Happy Hour 10%", 10, 0},
                 {13, "Employee Meal 20%", 20, 0},
                 {14, "$5 Off Check", 0, 500},
                 {15, "Loyalty Reward $10", 0, 1000}};

#define SVC_AUTOGRAT 1 /* 18 % on parties of 5 or more */
#define SVC_DELIVERY 2 /* 3.50 on takeout (rvc 2) */

static json_t *catalog_json(void)
{
    json_t *mi = json_array(), *tm = json_array(), *dc = json_array(), *sc = json_array();
    static const char *const fam[] = {
        [10] = "Mains",       [11] = "Starters",   [12] = "Sides", [13] = "Desserts",
        [20] = "Soft Drinks", [21] = "Hot Drinks", [30] = "Beer",  [31] = "Wine",
        [32] = "Cocktails",   [90] = "Modifiers"};
    for (size_t i = 0; i < NMENU; i++)
        json_array_append_new(
            mi,
            json_pack("{s:i,s:s,s:n,s:i,s:s,s:i,s:s,s:i,s:s,s:i,s:s,s:i,s:s}", "num", MENU[i].num,
                      "name", MENU[i].name, "name2", "mstrNum", MENU[i].num, "mstrName",
                      MENU[i].name, "majGrpNum", MENU[i].maj, "majGrpName", MAJ[MENU[i].maj],
                      "majGrpMstrNum", MENU[i].maj, "majGrpMstrName", MAJ[MENU[i].maj], "famGrpNum",
                      MENU[i].fam, "famGrpName", fam[MENU[i].fam], "famGrpMstrNum", MENU[i].fam,
                      "famGrpMstrName", fam[MENU[i].fam]));
    for (size_t i = 0; i < sizeof TENDERS / sizeof TENDERS[0]; i++)
        json_array_append_new(tm, json_pack("{s:i,s:s,s:i,s:s,s:i}", "num", TENDERS[i].num, "name",
                                            TENDERS[i].name, "mstrNum", TENDERS[i].num, "mstrName",
                                            TENDERS[i].name, "type", TENDERS[i].type));
    for (size_t i = 0; i < sizeof DISCOUNTS / sizeof DISCOUNTS[0]; i++)
        json_array_append_new(dc, json_pack("{s:i,s:s,s:i,s:s}", "num", DISCOUNTS[i].num, "name",
                                            DISCOUNTS[i].name, "mstrNum", DISCOUNTS[i].num,
                                            "mstrName", DISCOUNTS[i].name));
    json_array_append_new(sc, json_pack("{s:i,s:s,s:i,s:s}", "num", SVC_AUTOGRAT, "name",
                                        "Auto Gratuity 18%", "mstrNum", SVC_AUTOGRAT, "mstrName",
                                        "Auto Gratuity 18%"));
    json_array_append_new(sc, json_pack("{s:i,s:s,s:i,s:s}", "num", SVC_DELIVERY, "name",
                                        "Packaging Fee", "mstrNum", SVC_DELIVERY, "mstrName",
                                        "Packaging Fee"));
    return json_pack("{s:o,s:o,s:o,s:o}", "menuItems", mi, "tenderMedias", tm, "discounts", dc,
                     "serviceCharges", sc);
}

/* Sales tax rates (thousandths of a percent) a location draws from its locRef. */
static const long long TAX1[] = {8875, 10250, 8625, 7000, 6250, 9500};
#define TAX2 2000 /* liquor tax on top, 2 % */

static long long loc_tax1(const char *loc_ref)
{
    return TAX1[hash_str(loc_ref) % (sizeof TAX1 / sizeof TAX1[0])];
}

static json_t *rate_json(long long r)
{
    return r % 1000 == 0 ? json_integer(r / 1000) : json_real((double)r / 1000.0);
}

static json_t *taxes_json(const char *loc_ref)
{
    return json_pack("[{s:i,s:s,s:i,s:s,s:i,s:o,s:s,s:n},{s:i,s:s,s:i,s:s,s:i,s:o,s:s,s:n}]", "num",
                     1, "name", "Sales Tax", "mstrNum", 1, "mstrName", "Sales Tax", "type", 1,
                     "taxRate", rate_json(loc_tax1(loc_ref)), "effFrDt", "2019-01-01", "effToDt",
                     "num", 2, "name", "Liquor Tax", "mstrNum", 2, "mstrName", "Liquor Tax", "type",
                     1, "taxRate", rate_json(TAX2), "effFrDt", "2019-01-01", "effToDt");
}

/* ---- one check ---- */

enum lt { L_ITEM, L_DSC, L_SVC, L_TEND, L_ERRCOR };

struct line {
    enum lt t;
    int num; /* miNum / dscNum / svcChgNum / tmedNum / corrected miNum */
    int par; /* parent line index + 1 (condiments), 0 = none */
    int alc; /* counts for the liquor tax */
    int mod; /* condiment */
    long long dsp, agg;
    int dspq, aggq;
    int vd, errcor, ret, dns, mgr, rsn, dsc_mi;
    int64_t at;
    int seat;
};

#define MAXL 64

struct chk {
    struct line l[MAXL];
    int n;
    int rvc, gst, emp, tbl, ws;
    int closed, cancel, ret, reopen, open_partial, split_from, late;
    int64_t opn, clsd, upd, reopen_at;
    long long tax1, tax2, base1, base2;
};

static struct line *add(struct chk *c, enum lt t, int num, long long cents, int qty, int64_t at)
{
    if (c->n >= MAXL)
        return NULL;
    struct line *l = &c->l[c->n++];
    memset(l, 0, sizeof *l);
    l->t = t;
    l->num = num;
    l->dsp = l->agg = cents;
    l->dspq = l->aggq = qty;
    l->at = at;
    return l;
}

static const struct mi_def *mi_find(int num)
{
    for (size_t i = 0; i < NMENU; i++)
        if (MENU[i].num == num)
            return &MENU[i];
    return NULL;
}

/* Net (shown) non-tender total and the tax bases, then the taxes. */
static long long finish_totals(struct chk *c, long long rate1)
{
    long long net = 0;
    c->base1 = c->base2 = 0;
    for (int i = 0; i < c->n; i++) {
        struct line *l = &c->l[i];
        if (l->t == L_TEND || l->dns)
            continue;
        net += l->dsp;
        c->base1 += l->dsp;
        if (l->alc)
            c->base2 += l->dsp;
    }
    c->tax1 = tax_of(c->base1, rate1);
    c->tax2 = tax_of(c->base2, TAX2);
    return net;
}

static int64_t next_t(uint64_t *r, int64_t *t, int lo, int hi)
{
    *t += lo + rnd(r, hi - lo + 1);
    return *t;
}

/* Ring up 1..4 items (+ condiments, voids, error corrects, discounts) on c. */
static void ring_items(struct chk *c, uint64_t *r, int64_t *t, int nitems, int plain)
{
    for (int k = 0; k < nitems && c->n < MAXL - 12; k++) {
        const struct mi_def *m = &MENU[rnd(r, NMAIN)];
        int qty = rnd(r, 10) == 0 ? 2 : 1;
        struct line *it = add(c, L_ITEM, m->num, m->price * qty, qty, next_t(r, t, 20, 240));
        int idx = c->n;
        it->alc = m->maj == 3;
        it->seat = 1 + rnd(r, c->gst);
        if (m->maj == 1 && !plain && rnd(r, 10) < 3) { /* condiments on food */
            int nc = 1 + rnd(r, 2);
            for (int j = 0; j < nc; j++) {
                const struct mi_def *cd = &MENU[NMAIN + rnd(r, (int)(NMENU - NMAIN))];
                struct line *cl = add(c, L_ITEM, cd->num, cd->price * qty, qty, *t + 1 + j);
                cl->par = idx;
                cl->mod = 1;
                cl->seat = it->seat;
            }
        }
        if (plain)
            continue;
        int roll = rnd(r, 100);
        if (roll < 6) { /* voided after being sent: a void line with negative amounts */
            struct line *v = add(c, L_ITEM, m->num, -m->price * qty, -qty, next_t(r, t, 30, 600));
            v->vd = 1;
            v->alc = m->maj == 3;
            v->mgr = rnd(r, 2) ? 653100 + rnd(r, 5) : 0;
            v->rsn = 1 + rnd(r, 4);
            v->seat = c->l[idx - 1].seat;
            v->par = 0;
            /* a voided item's condiments are voided with it */
            for (int j = idx; j < c->n - 1; j++) {
                if (c->l[j].par != idx || c->n >= MAXL)
                    continue;
                struct line *cv = add(c, L_ITEM, c->l[j].num, -c->l[j].dsp, -c->l[j].dspq, v->at);
                cv->vd = 1;
                cv->mod = 1;
                cv->mgr = v->mgr;
                cv->rsn = v->rsn;
                cv->seat = v->seat;
            }
        } else if (roll < 10) { /* error corrected before the round was sent */
            struct line *e = add(c, L_ERRCOR, m->num, -m->price * qty, -qty, *t + 5);
            e->errcor = 1;
            e->alc = m->maj == 3;
            e->seat = c->l[idx - 1].seat;
            for (int j = idx; j < c->n - 1; j++) {
                if (c->l[j].par != idx || c->n >= MAXL)
                    continue;
                struct line *ce =
                    add(c, L_ERRCOR, c->l[j].num, -c->l[j].dsp, -c->l[j].dspq, *t + 6);
                ce->errcor = 1;
                ce->seat = e->seat;
            }
        } else if (roll < 22) { /* an item discount */
            int d = rnd(r, 2);
            long long off = -((m->price * qty * DISCOUNTS[d].pct + 50) / 100);
            struct line *dl = add(c, L_DSC, DISCOUNTS[d].num, off, 1, next_t(r, t, 5, 60));
            dl->dsc_mi = m->num;
            dl->alc = m->maj == 3;
            dl->par = idx;
            dl->mgr = d == 1 ? 653101 : 0;
        }
    }
}

static void tender(struct chk *c, uint64_t *r, int64_t *t, long long amount, int split)
{
    if (split && amount >= 200) {
        long long first = amount * (30 + rnd(r, 41)) / 100;
        add(c, L_TEND, TENDERS[1 + rnd(r, 3)].num, first, 1, next_t(r, t, 60, 600));
        add(c, L_TEND, TENDERS[rnd(r, 2) ? 0 : 4].num, amount - first, 1, next_t(r, t, 10, 120));
    } else {
        add(c, L_TEND, TENDERS[rnd(r, 4)].num, amount, 1, next_t(r, t, 60, 900));
    }
}

/* ---- JSON ---- */

struct day_ctx {
    const char *loc;
    const char *date;
    int off;
    long long rate1;
    long long gcid0; /* guestCheckId base */
};

static void ts_pair(json_t *o, const char *ku, const char *kl, int64_t s, int off)
{
    char u[20], l[20];
    if (!s) {
        json_object_set_new(o, ku, json_null());
        json_object_set_new(o, kl, json_null());
        return;
    }
    pg_sim_bi_ts(s, u, sizeof u);
    pg_sim_bi_ts(s + off * 60, l, sizeof l);
    json_object_set_new(o, ku, json_string(u));
    json_object_set_new(o, kl, json_string(l));
}

static json_t *line_json(const struct day_ctx *dc, const struct chk *c, int i, long long gcid)
{
    const struct line *l = &c->l[i];
    json_t *o = json_object();
    json_object_set_new(o, "guestCheckLineItemId", json_integer(gcid * 100 + i + 1));
    json_object_set_new(o, "lineNum", json_integer(i + 1));
    json_object_set_new(o, "dtlId", json_integer(i + 1));
    json_object_set_new(o, "parDtlId", l->par && l->mod ? json_integer(l->par) : json_null());
    json_object_set_new(o, "rvcNum", json_integer(c->rvc));
    json_object_set_new(o, "dtlOtNum", json_integer(c->rvc == 2 ? 2 : 1));
    json_object_set_new(o, "dtlOcNum", json_null());
    json_object_set_new(o, "busDt", json_string(dc->date));
    ts_pair(o, "detailUTC", "detailLcl", l->at, dc->off);
    ts_pair(o, "lastUpdateUTC", "lastUpdateLcl", c->upd, dc->off);
    json_object_set_new(o, "wsNum", json_integer(c->ws));
    json_object_set_new(o, "seatNum", l->seat ? json_integer(l->seat) : json_null());
    json_object_set_new(o, "svcRndNum", json_integer(1));
    json_object_set_new(o, "dspTtl", pg_sim_bi_money(l->dsp));
    json_object_set_new(o, "dspQty", json_integer(l->dspq));
    json_object_set_new(o, "aggTtl", pg_sim_bi_money(l->agg));
    json_object_set_new(o, "aggQty", json_integer(l->aggq));
    json_object_set_new(o, "chkEmpId", json_integer(7755000 + c->emp % 1000));
    json_object_set_new(o, "chkEmpNum", json_integer(c->emp));
    json_object_set_new(o, "transEmpNum", json_integer(c->emp));
    json_object_set_new(o, "mgrEmpNum", l->mgr ? json_integer(l->mgr) : json_null());
    json_object_set_new(o, "rsnCodeNum", l->rsn ? json_integer(l->rsn) : json_null());
    json_object_set_new(o, "refInfo1", json_null());
    json_object_set_new(o, "refInfo2", json_null());
    json_object_set_new(o, "doNotShowFlag", json_boolean(l->dns));
    json_object_set_new(o, "vdFlag", json_boolean(l->vd));
    json_object_set_new(o, "errCorFlag", json_boolean(l->errcor));
    json_object_set_new(o, "returnFlag", json_boolean(l->ret));
    const struct mi_def *m = (l->t == L_ITEM || l->t == L_ERRCOR) ? mi_find(l->num) : NULL;
    switch (l->t) {
    case L_ITEM:
        json_object_set_new(o, "menuItem",
                            json_pack("{s:i,s:i,s:n,s:s,s:i,s:n,s:n}", "miNum", l->num, "modFlag",
                                      l->mod, "modPrfx", "activeTaxes",
                                      m && m->maj == 3 ? "1,2" : "1", "prcLvl", 1, "comboMealSeq",
                                      "comboSideSeq"));
        break;
    case L_ERRCOR:
        json_object_set_new(o, "errorCorrect",
                            json_pack("{s:i,s:i}", "type", 1, "objectNum", l->num));
        break;
    case L_DSC:
        json_object_set_new(o, "discount",
                            json_pack("{s:i,s:o,s:s}", "dscNum", l->num, "dscMiNum",
                                      l->dsc_mi ? json_integer(l->dsc_mi) : json_null(),
                                      "activeTaxes", l->alc ? "1,2" : "1"));
        break;
    case L_SVC:
        json_object_set_new(o, "serviceCharge",
                            json_pack("{s:i,s:s}", "svcChgNum", l->num, "activeTaxes", "1"));
        break;
    case L_TEND:
        json_object_set_new(o, "tenderMedia", json_pack("{s:i}", "tmedNum", l->num));
        break;
    }
    return o;
}

static json_t *
check_json(const struct day_ctx *dc, struct chk *c, int k, long long gcid, json_t **ext)
{
    long long items = 0, dsc = 0, svc = 0, pay = 0;
    for (int i = 0; i < c->n; i++) {
        const struct line *l = &c->l[i];
        if (l->dns)
            continue;
        if (l->t == L_TEND)
            pay += l->dsp;
        else if (l->t == L_DSC)
            dsc += l->dsp;
        else if (l->t == L_SVC)
            svc += l->dsp;
        else
            items += l->dsp;
    }
    long long tax = c->tax1 + c->tax2, chk = items + dsc + svc + tax;
    json_t *o = json_object();
    char guid[48];
    uint64_t g = hash_str(dc->loc) ^ (uint64_t)gcid * 0x9E3779B97F4A7C15ULL;
    snprintf(guid, sizeof guid, "%016llx%016llx%08x", (unsigned long long)g,
             (unsigned long long)(g * 31 + 7), (unsigned)(1000 + k));
    json_object_set_new(o, "guestCheckId", json_integer(gcid));
    json_object_set_new(o, "chkNum", json_integer(1000 + k));
    json_object_set_new(o, "chkName", c->tbl ? json_null() : json_string("Tab"));
    json_object_set_new(o, "chkRef", json_null());
    json_object_set_new(o, "posChkGUID", json_string(guid));
    json_object_set_new(o, "opnBusDt", json_string(dc->date));
    ts_pair(o, "opnUTC", "opnLcl", c->opn, dc->off);
    json_object_set_new(o, "clsdBusDt", c->closed ? json_string(dc->date) : json_null());
    ts_pair(o, "clsdUTC", "clsdLcl", c->closed ? c->clsd : 0, dc->off);
    json_object_set_new(o, "reopnClsdChkClsdBusDt",
                        c->reopen ? json_string(dc->date) : json_null());
    char ru[20];
    pg_sim_bi_ts(c->reopen_at, ru, sizeof ru);
    json_object_set_new(o, "reopnClsdChkClsdUTC", c->reopen ? json_string(ru) : json_null());
    ts_pair(o, "lastTransUTC", "lastTransLcl", c->closed ? c->clsd : c->l[c->n - 1].at, dc->off);
    ts_pair(o, "lastUpdatedUTC", "lastUpdatedLcl", c->upd, dc->off);
    json_object_set_new(o, "clsdFlag", json_boolean(c->closed));
    json_object_set_new(o, "cancelFlag", json_boolean(c->cancel));
    json_object_set_new(o, "gstCnt", json_integer(c->gst));
    json_object_set_new(o, "subTtl", pg_sim_bi_money(items + dsc));
    json_object_set_new(o, "nonTxblSlsTtl", json_null());
    json_object_set_new(o, "chkTtl", pg_sim_bi_money(chk));
    json_object_set_new(o, "dscTtl", pg_sim_bi_money(dsc));
    json_object_set_new(o, "payTtl", pg_sim_bi_money(pay));
    json_object_set_new(o, "balDueTtl", c->closed ? json_null() : pg_sim_bi_money(chk - pay));
    json_object_set_new(o, "autoSvcTtl", svc ? pg_sim_bi_money(svc) : json_null());
    json_object_set_new(o, "svcChgTtl", svc ? pg_sim_bi_money(svc) : json_null());
    json_object_set_new(o, "tipTotal", json_null());
    json_object_set_new(o, "rndTtl", json_null());
    json_object_set_new(o, "taxCollTtl", pg_sim_bi_money(tax));
    json_object_set_new(o, "rvcNum", json_integer(c->rvc));
    json_object_set_new(o, "otNum", json_integer(c->rvc == 2 ? 2 : 1));
    json_object_set_new(o, "ocNum", json_null());
    json_object_set_new(o, "tblNum", c->tbl ? json_integer(c->tbl) : json_null());
    char tn[16];
    snprintf(tn, sizeof tn, "%d", c->tbl);
    json_object_set_new(o, "tblName", c->tbl ? json_string(tn) : json_null());
    json_object_set_new(o, "empNum", json_integer(c->emp));
    json_object_set_new(o, "numSrvcRd", json_integer(1));
    json_object_set_new(o, "numChkPrntd", json_integer(c->closed ? 1 : 0));
    json_object_set_new(o, "spltFrmChk", c->split_from ? json_integer(c->split_from) : json_null());
    json_object_set_new(o, "reopnFrmChk", json_null());
    json_object_set_new(o, "reopnToChk", json_null());
    json_object_set_new(o, "xferStatus", json_null());
    json_object_set_new(o, "xferToChkNum", json_null());
    /* A loyalty member on about a quarter of the closed checks, stamped as the extensibility
     * data an Extension Application writes (micros-wire.md §2: dataName "memberId"). Drawn from
     * a hash of (locRef, guestCheckId), not the day's generator, so adding it changed no other
     * value. The ids are the Salesforce simulator's seeded members: LY-000123..125 (hand-written)
     * and LY-001003..LY-001049 (the shipped seed's 47 generated Contacts). As in the real BI API
     * it is not part of the check: getGuestCheckExtensibilityDetails serves it (*ext). */
    *ext = NULL;
    uint64_t lh = g ^ 0xA5A5A5A55A5A5A5AULL;
    lh = mix(&lh);
    if (c->closed && !c->cancel && lh % 4 == 0) {
        char member[16];
        unsigned pick = (unsigned)((lh >> 8) % 50);
        snprintf(member, sizeof member, "LY-%06u", pick < 3 ? 123 + pick : 1003 + (pick - 3));
        *ext = json_pack("[{s:s,s:s,s:s,s:s,s:s}]", "displayName", "Loyalty ID", "appName",
                         "posgate", "dataName", "memberId", "dataType", "string", "data", member);
    }
    json_t *taxes = json_array();
    if (c->base1 || c->tax1)
        json_array_append_new(taxes, json_pack("{s:i,s:o,s:o,s:o,s:i}", "taxNum", 1, "txblSlsTtl",
                                               pg_sim_bi_money(c->base1), "taxCollTtl",
                                               pg_sim_bi_money(c->tax1), "taxRate",
                                               rate_json(dc->rate1), "type", 1));
    if (c->base2 || c->tax2)
        json_array_append_new(taxes, json_pack("{s:i,s:o,s:o,s:o,s:i}", "taxNum", 2, "txblSlsTtl",
                                               pg_sim_bi_money(c->base2), "taxCollTtl",
                                               pg_sim_bi_money(c->tax2), "taxRate", rate_json(TAX2),
                                               "type", 1));
    json_object_set_new(o, "taxes", taxes);
    json_t *lines = json_array();
    for (int i = 0; i < c->n; i++)
        json_array_append_new(lines, line_json(dc, c, i, gcid));
    json_object_set_new(o, "detailLines", lines);
    return o;
}

/* ---- a business day ---- */

/* Subtotal discount, service charge, then tenders (or a partial payment, leaving c open). */
static void settle(struct chk *c, uint64_t *r, int64_t *t, long long rate1, int may_open)
{
    long long net = finish_totals(c, rate1);
    if (rnd(r, 100) < 5 && net > 3000) { /* a subtotal discount */
        int d = 2 + rnd(r, 2);
        add(c, L_DSC, DISCOUNTS[d].num, -DISCOUNTS[d].amt, 1, next_t(r, t, 30, 300));
        net = finish_totals(c, rate1);
    }
    if (c->gst >= 5 && c->rvc != 2 && net > 0) {
        add(c, L_SVC, SVC_AUTOGRAT, (net * 18 + 50) / 100, 1, next_t(r, t, 30, 300));
        net = finish_totals(c, rate1);
    } else if (c->rvc == 2 && net > 0) {
        add(c, L_SVC, SVC_DELIVERY, 350, 1, next_t(r, t, 5, 60));
        net = finish_totals(c, rate1);
    }
    long long due = net + c->tax1 + c->tax2;
    if (may_open && due > 500) { /* open at EOD with a partial payment */
        c->closed = 0;
        c->open_partial = 1;
        add(c, L_TEND, TENDERS[1].num, due / 2, 1, next_t(r, t, 300, 900));
    } else if (due > 0) {
        tender(c, r, t, due, rnd(r, 100) < 25);
    } else if (due < 0) {
        add(c, L_TEND, TENDERS[0].num, due, 1, next_t(r, t, 30, 300));
    }
}

static void chk_start(struct chk *c, uint64_t *r, const int *rvcs, int nrvc, int64_t t)
{
    memset(c, 0, sizeof *c);
    c->rvc = rvcs[rnd(r, nrvc)];
    c->gst = 1 + rnd(r, 4) + (rnd(r, 8) == 0 ? 3 : 0);
    c->emp = 653000 + rnd(r, 12);
    c->tbl = c->rvc == 2 ? 0 : 1 + rnd(r, 40);
    c->ws = 1 + rnd(r, 4);
    c->opn = t;
    c->closed = 1;
}

static int
emit(struct bi_day *day, const struct day_ctx *dc, struct chk *c, uint64_t *r, int64_t *t, int k)
{
    c->clsd = c->closed ? next_t(r, t, 30, 900) : 0;
    c->reopen_at = c->reopen ? c->clsd + 600 + rnd(r, 3000) : 0;
    c->upd = (c->reopen ? c->reopen_at : c->closed ? c->clsd : *t) + 5 + rnd(r, 55);
    struct bi_check *bc = &day->checks[day->n];
    bc->rvc = c->rvc;
    bc->closed = c->closed;
    bc->upd_s = bc->upd0_s = c->upd;
    bc->j = check_json(dc, c, k, dc->gcid0 + k, &bc->ext);
    if (!bc->j)
        return PG_ENOMEM;
    day->n++;
    return PG_OK;
}

static int gen_day(struct bi_day *day,
                   const struct day_ctx *dc,
                   const int *rvcs,
                   int nrvc,
                   int per_day,
                   int late_n,
                   uint64_t seed,
                   long z)
{
    uint64_t r = seed ^ hash_str(dc->loc) * 31 ^ (uint64_t)z * 0x2545F4914F6CDD1DULL;
    int rc = PG_OK;
    day->checks = calloc((size_t)per_day, sizeof *day->checks);
    struct chk *c = malloc(sizeof *c), *b = malloc(sizeof *b);
    if (!day->checks || !c || !b) {
        rc = PG_ENOMEM;
        goto out;
    }
    int64_t midnight = (int64_t)z * 86400 - dc->off * 60; /* local 00:00 in UTC */
    for (int k = 0; k < per_day && rc == PG_OK; k++) {
        /* opened between 11:00 and 22:00 local, spread over the day in check-number order */
        int64_t t = midnight + 11 * 3600 + (int64_t)k * 11 * 3600 / per_day + rnd(&r, 600);
        chk_start(c, &r, rvcs, nrvc, t);
        int roll = rnd(&r, 100);
        if (roll < 3) { /* a return: negative item lines, a negative tender pays it out */
            c->ret = 1;
            ring_items(c, &r, &t, 1, 1);
            for (int i = 0; i < c->n; i++) {
                c->l[i].dsp = c->l[i].agg = -c->l[i].dsp;
                c->l[i].dspq = c->l[i].aggq = -c->l[i].dspq;
                c->l[i].ret = 1;
                c->l[i].mgr = 653100;
                c->l[i].rsn = 5;
            }
            long long net = finish_totals(c, dc->rate1);
            add(c, L_TEND, TENDERS[rnd(&r, 4)].num, net + c->tax1 + c->tax2, 1,
                next_t(&r, &t, 30, 300));
        } else if (roll < 5) { /* transaction cancel: everything voided, nothing paid */
            c->cancel = 1;
            ring_items(c, &r, &t, 1 + rnd(&r, 2), 1);
            int n = c->n;
            for (int i = 0; i < n; i++) {
                struct line *v = add(c, L_ITEM, c->l[i].num, -c->l[i].dsp, -c->l[i].dspq, t + 30);
                v->vd = 1;
                v->mod = c->l[i].mod;
                v->par = c->l[i].par;
                v->alc = c->l[i].alc;
                v->rsn = 2;
            }
            finish_totals(c, dc->rate1);
        } else if (roll < 9 && k + 1 < per_day) {
            /* a split: the first item moves to the next check. The original keeps agg* and gets
             * doNotShowFlag; the copy shows dsp* with aggTtl/aggQty 0. */
            ring_items(c, &r, &t, 2 + rnd(&r, 2), 1);
            c->l[0].dns = 1;
            settle(c, &r, &t, dc->rate1, 0);
            struct line moved = c->l[0];
            if ((rc = emit(day, dc, c, &r, &t, k)) != PG_OK)
                break;
            day->checks[day->n - 1].no_late = 1;
            k++;
            chk_start(b, &r, rvcs, nrvc, t + 20);
            b->rvc = c->rvc;
            b->tbl = c->tbl;
            b->gst = 1;
            b->split_from = 1000 + k - 1;
            struct line *cp = add(b, L_ITEM, moved.num, moved.dsp, moved.dspq, t + 25);
            cp->agg = 0;
            cp->aggq = 0;
            cp->alc = moved.alc;
            cp->seat = 1;
            t += 25;
            settle(b, &r, &t, dc->rate1, 0);
            rc = emit(day, dc, b, &r, &t, k);
            if (rc == PG_OK)
                day->checks[day->n - 1].no_late = 1;
            continue;
        } else {
            ring_items(c, &r, &t, 1 + rnd(&r, 3) + c->gst / 2, 0);
            settle(c, &r, &t, dc->rate1, roll < 13);
            c->reopen = c->closed && roll >= 13 && roll < 16;
        }
        rc = emit(day, dc, c, &r, &t, k);
    }
    /* offline checks: late_n of the closed ones, spread over the day, hidden until uploaded */
    for (size_t i = 0, got = 0; rc == PG_OK && got < (size_t)late_n && i < day->n; i++) {
        struct bi_check *bc = &day->checks[(i * 7 + 3) % day->n];
        if (!bc->closed || bc->late || bc->no_late)
            continue;
        bc->late = 1;
        got++;
    }
out:
    free(c);
    free(b);
    return rc;
}

/* ---- configuration: micros.bi.generate ---- */

static int gen_err(char *err, size_t errsz, const char *msg)
{
    snprintf(err, errsz, "micros.bi.generate: %s", msg);
    return PG_ECONFIG;
}

int pg_sim_bi_generate(
    const struct pg_sim_config *cfg, json_t *seed, struct bi_data *out, char *err, size_t errsz)
{
    static const char *const keys[] = {"locations", "days",         "last_day", "checks_per_day",
                                       "seed",      "late_per_day", NULL};
    json_t *g = cfg->micros.bi.generate, *seed_locs = json_object_get(seed, "locations");
    json_t *empty = json_object();
    if (!g)
        g = empty;
    memset(out, 0, sizeof *out);
    const char *k;
    json_t *v;
    int rc = PG_ECONFIG;
    json_object_foreach(g, k, v)
    {
        const char *const *a = keys;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a) {
            char m[160];
            snprintf(m, sizeof m, "unknown key \"%s\"", k);
            rc = gen_err(err, errsz, m);
            goto fail;
        }
    }
    json_t *jl = json_object_get(g, "locations"), *jd = json_object_get(g, "days"),
           *jlast = json_object_get(g, "last_day"), *jn = json_object_get(g, "checks_per_day"),
           *js = json_object_get(g, "seed"), *jlate = json_object_get(g, "late_per_day");
    long long per_day = 40, late = -1;
    uint64_t sd = 20261120;
    if (jn &&
        (!json_is_integer(jn) || json_integer_value(jn) < 1 || json_integer_value(jn) > 100000)) {
        rc = gen_err(err, errsz, "checks_per_day must be an integer in 1..100000");
        goto fail;
    }
    if (jn)
        per_day = json_integer_value(jn);
    if (js && (!json_is_integer(js) || json_integer_value(js) < 0)) {
        rc = gen_err(err, errsz, "seed must be a non-negative integer");
        goto fail;
    }
    if (js)
        sd = (uint64_t)json_integer_value(js);
    if (jlate && (!json_is_integer(jlate) || json_integer_value(jlate) < 0 ||
                  json_integer_value(jlate) > per_day)) {
        rc = gen_err(err, errsz, "late_per_day must be an integer in 0..checks_per_day");
        goto fail;
    }
    late = jlate ? json_integer_value(jlate) : (per_day >= 20 ? per_day / 20 : 0);
    /* days: a list of dates, or N days ending at last_day (default: today, UTC) */
    long dz[400];
    size_t nd = 0;
    if (jd && json_is_array(jd)) {
        if (jlast) {
            rc = gen_err(err, errsz, "last_day goes with \"days\": N, not with a list");
            goto fail;
        }
        size_t i;
        json_array_foreach(jd, i, v)
        {
            if (i >= 400 || pg_sim_bi_parse_date(json_string_value(v), &dz[nd]) != 0) {
                rc = gen_err(err, errsz, "days must be 1..400 dates \"YYYY-MM-DD\" or a count");
                goto fail;
            }
            for (size_t j = 0; j < nd; j++)
                if (dz[j] == dz[nd]) {
                    rc = gen_err(err, errsz, "days: a date is listed twice");
                    goto fail;
                }
            nd++;
        }
    } else {
        long long n = 3;
        if (jd &&
            (!json_is_integer(jd) || json_integer_value(jd) < 1 || json_integer_value(jd) > 400)) {
            rc = gen_err(err, errsz, "days must be 1..400 dates \"YYYY-MM-DD\" or a count");
            goto fail;
        }
        if (jd)
            n = json_integer_value(jd);
        long last = (long)(time(NULL) / 86400);
        if (jlast && pg_sim_bi_parse_date(json_string_value(jlast), &last) != 0) {
            rc = gen_err(err, errsz, "last_day must be a date \"YYYY-MM-DD\"");
            goto fail;
        }
        for (long long i = n - 1; i >= 0; i--)
            dz[nd++] = last - (long)i;
    }
    if (!nd) {
        rc = gen_err(err, errsz, "days must not be empty");
        goto fail;
    }
    /* locations: locRefs of the seed (default: all of them) */
    json_t *locs = json_array();
    if (jl) {
        size_t i;
        if (!json_is_array(jl)) {
            json_decref(locs);
            rc = gen_err(err, errsz, "locations must be an array of the seed's locRefs");
            goto fail;
        }
        json_array_foreach(jl, i, v)
        {
            size_t j;
            json_t *w;
            int found = 0;
            json_array_foreach(seed_locs, j, w) if (json_is_string(v) &&
                                                    json_equal(v, json_object_get(w, "locRef")))
                found = 1;
            if (!found) {
                char m[200];
                snprintf(m, sizeof m, "locations[%zu] is not a locRef of the micros seed", i);
                json_decref(locs);
                rc = gen_err(err, errsz, m);
                goto fail;
            }
            json_array_append(locs, v);
        }
    } else {
        size_t j;
        json_t *w;
        json_array_foreach(seed_locs, j, w) json_array_append(locs, json_object_get(w, "locRef"));
    }
    out->locs = json_object();
    out->catalog = catalog_json();
    size_t nl = json_array_size(locs);
    out->days = calloc(nl * nd > 0 ? nl * nd : 1, sizeof *out->days);
    if (!out->days || !out->locs || !out->catalog) {
        json_decref(locs);
        rc = PG_ENOMEM;
        goto fail;
    }
    rc = PG_OK;
    for (size_t li = 0; li < nl && rc == PG_OK; li++) {
        const char *ref = json_string_value(json_array_get(locs, li));
        const char *tz = "UTC";
        size_t j;
        json_t *w;
        json_array_foreach(seed_locs, j,
                           w) if (strcmp(json_string_value(json_object_get(w, "locRef")), ref) == 0)
            tz = json_string_value(json_object_get(w, "tz"));
        int rvcs[64], nrvc = 0;
        json_array_foreach(json_object_get(seed, "revenue_centers"), j, w)
        {
            if (nrvc < 64 && strcmp(json_string_value(json_object_get(w, "locRef")), ref) == 0)
                rvcs[nrvc++] = (int)json_integer_value(json_object_get(w, "num"));
        }
        if (!nrvc)
            rvcs[nrvc++] = 1;
        json_object_set_new(out->locs, ref, json_pack("{s:o}", "taxes", taxes_json(ref)));
        for (size_t di = 0; di < nd && rc == PG_OK; di++) {
            struct bi_day *day = &out->days[out->ndays++];
            snprintf(day->loc, sizeof day->loc, "%s", ref);
            fmt_date(dz[di], day->date, sizeof day->date);
            day->utc_off_min = tz_offset(tz, dz[di]);
            struct day_ctx dc = {.loc = day->loc,
                                 .date = day->date,
                                 .off = day->utc_off_min,
                                 .rate1 = loc_tax1(ref),
                                 .gcid0 = ((long long)dz[di] * 64 + (long long)li) * 100000 + 1};
            rc = gen_day(day, &dc, rvcs, nrvc, (int)per_day, (int)late, sd, dz[di]);
        }
    }
    json_decref(locs);
    if (rc == PG_ENOMEM)
        snprintf(err, errsz, "micros.bi.generate: out of memory");
    if (rc)
        goto fail;
    json_decref(empty);
    return PG_OK;
fail:
    json_decref(empty);
    pg_sim_bi_data_free(out);
    return rc;
}

void pg_sim_bi_data_free(struct bi_data *d)
{
    for (size_t i = 0; i < d->ndays; i++) {
        for (size_t j = 0; j < d->days[i].n; j++) {
            json_decref(d->days[i].checks[j].j);
            json_decref(d->days[i].checks[j].ext);
        }
        free(d->days[i].checks);
    }
    free(d->days);
    json_decref(d->locs);
    json_decref(d->catalog);
    memset(d, 0, sizeof *d);
}
