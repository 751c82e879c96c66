/*
 * The docs page in a real browser: the gateway serves /docs, headless Chromium (Debian's
 * chromium package) loads it with every name but 127.0.0.1 unresolvable (so a CDN reference
 * could not load), and the rendered DOM must list every operation of openapi/openapi.json by
 * its summary. A screenshot is kept in the build directory (docs-screenshot.png).
 *
 * Needs chromium and `npm ci` in the source tree; skipped without them unless
 * PG_TEST_REQUIRE_NPM=1 (scripts/test sets it, and installs both).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/util.h"
#include "tests/support/harness.h"

static struct pg_t_redis redis;
static struct pg_t_proc gw;

static int setup(void **state)
{
    if (pg_t_redis_start(&redis) != 0)
        return -1;
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"listen\":{\"address\":\"127.0.0.1\",\"port\":0},\"http\":{\"threads\":2},"
             "\"redis\":{\"url\":\"%s\"}}",
             redis.url);
    return pg_t_gateway_start(&gw, cfg);
}

static int teardown(void **state)
{
    int st = pg_t_proc_stop(&gw);
    pg_t_proc_destroy(&gw);
    pg_t_redis_destroy(&redis);
    return st == 0 ? 0 : -1;
}

static const char *chromium(void)
{
    static const char *const candidates[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (access(candidates[i], X_OK) == 0)
            return candidates[i];
    return NULL;
}

/* Run headless Chromium on url with one extra flag; stdout+stderr go to log. */
static int run_chromium(const char *bin, const char *url, const char *flag, const char *log)
{
    char *profile = pg_t_mkdtemp("chromium");
    char udd[600];
    snprintf(udd, sizeof udd, "--user-data-dir=%s", profile);
    const char *argv[] = {
        bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", udd,
        /* nothing but the gateway resolves: a CDN reference would fail */
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1400,1800",
        /* let Redoc fetch /openapi.json and render before the dump */
        "--virtual-time-budget=30000", flag, url, NULL};
    pid_t pid = pg_t_spawn(argv, log);
    int st = pid > 0 ? pg_t_wait_exit(pid, 120000) : -1;
    if (st == -1 && pid > 0)
        pg_t_stop(pid, 2000);
    pg_t_rmtree(profile);
    free(profile);
    return st;
}

static void docs_page_lists_every_operation(void **state)
{
    int require = getenv("PG_TEST_REQUIRE_NPM") && strcmp(getenv("PG_TEST_REQUIRE_NPM"), "1") == 0;
    const char *bin = chromium();
    char u[512];
    snprintf(u, sizeof u, "%s/docs", gw.url);
    struct pg_t_resp r;
    assert_int_equal(pg_t_get(u, &r), 0);
    long st = r.status;
    pg_t_resp_free(&r);
    if (!bin || st == 503) {
        if (require)
            fail_msg("%s", !bin ? "chromium is not installed" : "/docs answers 503: npm ci");
        printf("skipped: %s\n", !bin ? "no chromium" : "docs assets not installed");
        skip();
    }
    assert_int_equal(st, 200);

    char log[700];
    snprintf(log, sizeof log, "%s/dom.html", gw.dir);
    assert_int_equal(run_chromium(bin, u, "--dump-dom", log), 0);
    char *dom = NULL;
    assert_int_equal(pg_read_file(log, 32 << 20, &dom, NULL), 0);

    /* every operation appears by its summary in the rendered page */
    json_error_t e;
    json_t *doc = json_load_file(pg_t_src("openapi/openapi.json"), 0, &e);
    assert_non_null(doc);
    const char *path;
    json_t *item;
    int ops = 0, missing = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            const char *summary = json_string_value(json_object_get(op, "summary"));
            if (!summary)
                continue;
            ops++;
            if (!strstr(dom, summary)) {
                printf("not on the page: %s %s (\"%s\")\n", m, path, summary);
                missing++;
            }
        }
    }
    /* and in Redoc's navigation list (one menu item per operation, plus the tag groups) */
    int items = 0;
    for (const char *p = dom; (p = strstr(p, "role=\"menuitem\"")); p++)
        items++;
    printf("docs page: %d operations documented, %d missing from the page, %d menu items\n", ops,
           missing, items);
    json_decref(doc);
    free(dom);
    assert_true(ops > 0);
    assert_int_equal(missing, 0);
    assert_true(items >= ops);

    /* a screenshot, kept beside the build for a person to look at */
    char shot[700], flag[760];
    snprintf(shot, sizeof shot, "%s/../docs-screenshot.png", PG_BINARY_DIR);
    unlink(shot);
    snprintf(flag, sizeof flag, "--screenshot=%s", shot);
    snprintf(log, sizeof log, "%s/screenshot.log", gw.dir);
    assert_int_equal(run_chromium(bin, u, flag, log), 0);
    struct stat sb;
    assert_int_equal(stat(shot, &sb), 0);
    assert_true(sb.st_size > 20000); /* a rendered page, not a blank one */
    printf("screenshot: %s (%lld bytes)\n", shot, (long long)sb.st_size);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(docs_page_lists_every_operation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
