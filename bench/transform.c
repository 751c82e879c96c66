/*
 * posgate-bench-transform: guest checks transformed per second, one thread (issue 6).
 *
 *   posgate-bench-transform --bi URL --date YYYY-MM-DD --locations 1234,1235 \
 *       --transform FILE [--seconds S]
 *
 * Fetches a generated business day from the MICROS simulator's BI API with the real client
 * (micros/bi.c: PKCE sign-in, getGuestChecks per location), then runs pg_xf_check over those
 * checks round-robin for S seconds on this one thread. The baseline, measured in the same run
 * over the same checks for the same time, is a JSON round trip of each check (json_dumps then
 * json_loads): work every intake path pays anyway, so the ratio says what the transform adds.
 * Dimension names are not passed (dims NULL): names are a hash lookup either way.
 *
 * Prints one line: RESULT checks=N lines=L transform_per_s=X baseline_per_s=Y ratio=X/Y
 * us_per_check=U flagged=F rss_kb=R
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "micros/bi.h"
#include "server/util.h"
#include "sync/transform.h"

static void die(const char *what)
{
    fprintf(stderr, "posgate-bench-transform: %s\n", what);
    exit(1);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* Run one pass of fn over every check until seconds have passed; returns checks per second. */
static double timed(json_t *checks,
                    const char **locs,
                    double seconds,
                    int (*fn)(void *, const json_t *, const char *),
                    void *ud,
                    long long *done_out)
{
    size_t n = json_array_size(checks);
    int64_t start = pg_now_ms(), end = start + (int64_t)(seconds * 1000);
    long long done = 0;
    while (pg_now_ms() < end) {
        for (size_t i = 0; i < n; i++) {
            if (fn(ud, json_array_get(checks, i), locs[i]) != 0)
                die("a check failed (see above)");
            done++;
        }
    }
    int64_t ms = pg_now_ms() - start;
    *done_out = done;
    return ms > 0 ? (double)done * 1000.0 / (double)ms : 0;
}

struct xf_ud {
    const struct pg_xf_config *cfg;
    long long flagged;
    json_t *codes; /* flag code → count, first pass only (NULL after) */
};

static int run_transform(void *ud, const json_t *check, const char *loc)
{
    struct xf_ud *x = ud;
    json_t *out = NULL;
    char why[256];
    int rc = pg_xf_check(x->cfg, check, loc, NULL, &out, why, sizeof why);
    if (rc) {
        fprintf(stderr, "transform: %s\n", why);
        return -1;
    }
    json_t *flags = json_object_get(out, "flags");
    if (json_array_size(flags) > 0)
        x->flagged++;
    size_t i;
    json_t *f;
    json_array_foreach(flags, i, f)
    {
        const char *code = json_string_value(json_object_get(f, "code"));
        if (x->codes && code)
            json_object_set_new(
                x->codes, code,
                json_integer(json_integer_value(json_object_get(x->codes, code)) + 1));
    }
    json_decref(out);
    return 0;
}

static int run_roundtrip(void *ud, const json_t *check, const char *loc)
{
    (void)ud;
    (void)loc;
    char *s = json_dumps(check, JSON_COMPACT);
    if (!s)
        return -1;
    json_t *back = json_loads(s, 0, NULL);
    free(s);
    if (!back)
        return -1;
    json_decref(back);
    return 0;
}

int main(int argc, char **argv)
{
    const char *bi_url = NULL, *date = NULL, *locs_arg = NULL, *xf_path = NULL;
    double seconds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--bi") == 0)
            bi_url = argv[i + 1];
        else if (strcmp(argv[i], "--date") == 0)
            date = argv[i + 1];
        else if (strcmp(argv[i], "--locations") == 0)
            locs_arg = argv[i + 1];
        else if (strcmp(argv[i], "--transform") == 0)
            xf_path = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else
            die("usage: --bi URL --date D --locations L1,L2 --transform FILE [--seconds S]");
    }
    if (!bi_url || !date || !locs_arg || !xf_path || seconds <= 0)
        die("usage: --bi URL --date D --locations L1,L2 --transform FILE [--seconds S]");

    json_error_t jerr;
    json_t *xf_json = json_load_file(xf_path, 0, &jerr);
    if (!xf_json)
        die("cannot read the transform configuration");
    struct pg_xf_config *cfg = NULL;
    char why[512];
    if (pg_xf_config_new(xf_json, &cfg, why, sizeof why) != 0) {
        fprintf(stderr, "%s\n", why);
        die("bad transform configuration");
    }

    /* The simulator's demo API account (sim/README.md, "MICROS: BI API"). */
    struct pg_bi_config bc = {
        .base_url = bi_url,
        .org = "ACME",
        .client_id = "UE9TR0FURS5URVNULk9OTFkuY2xpZW50",
        .username = "posgate-api",
        .password = "posgate-bi-demo",
        .application_name = "posgate-bench",
    };
    struct pg_bi *bi = NULL;
    if (pg_bi_new(&bc, &bi) != 0)
        die("bad BI configuration");

    json_t *checks = json_array();
    size_t cap = 0, nlocs = 0;
    const char **locs = NULL;
    char *list = strdup(locs_arg), *save = NULL;
    long long lines = 0;
    for (char *loc = strtok_r(list, ",", &save); loc; loc = strtok_r(NULL, ",", &save)) {
        json_t *resp = NULL;
        int rc = pg_bi_guest_checks(bi, loc, PG_BI_BUS_DT, date, NULL, 0, pg_now_ms() + 120000,
                                    &resp, NULL, why, sizeof why);
        if (rc) {
            fprintf(stderr, "getGuestChecks %s: %s\n", loc, why);
            die("cannot fetch the checks");
        }
        json_t *gcs = json_object_get(resp, "guestChecks");
        size_t i;
        json_t *c;
        json_array_foreach(gcs, i, c)
        {
            if (nlocs == cap) {
                cap = cap ? cap * 2 : 1024;
                locs = realloc(locs, cap * sizeof *locs);
                if (!locs)
                    die("out of memory");
            }
            locs[nlocs++] = loc; /* points into list, which lives until exit */
            lines += (long long)json_array_size(json_object_get(c, "detailLines"));
            json_array_append(checks, c);
        }
        json_decref(resp);
    }
    if (json_array_size(checks) == 0)
        die("the simulator returned no checks for that date");

    /* One pass first: the flags of the day (a TOTAL_MISMATCH here means the transform and the
     * simulator's generator disagree about a line type). */
    struct xf_ud x = {.cfg = cfg, .codes = json_object()};
    for (size_t i = 0; i < json_array_size(checks); i++)
        if (run_transform(&x, json_array_get(checks, i), locs[i]) != 0)
            die("a check failed (see above)");
    char *codes = json_dumps(x.codes, JSON_COMPACT | JSON_SORT_KEYS);
    printf("FLAGS %s\n", codes ? codes : "{}");
    free(codes);
    json_decref(x.codes);
    x.codes = NULL;
    x.flagged = 0;
    long long n_xf = 0, n_base = 0;
    double base = timed(checks, locs, seconds, run_roundtrip, NULL, &n_base);
    double xf = timed(checks, locs, seconds, run_transform, &x, &n_xf);
    printf("RESULT checks=%zu lines=%lld transform_per_s=%.0f baseline_per_s=%.0f ratio=%.2f "
           "us_per_check=%.1f flagged=%lld rss_kb=%ld\n",
           json_array_size(checks), lines, xf, base, base > 0 ? xf / base : 0,
           xf > 0 ? 1e6 / xf : 0,
           x.flagged * (long long)json_array_size(checks) / (n_xf ? n_xf : 1), rss_kb());

    free(locs);
    free(list);
    json_decref(checks);
    pg_bi_free(bi);
    pg_xf_config_free(cfg);
    json_decref(xf_json);
    return 0;
}
