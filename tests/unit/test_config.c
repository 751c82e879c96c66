/* Configuration: every key validated, every error named, secrets resolved. No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/config.h"
#include "server/util.h"
#include "tests/support/harness.h"

static char err[512];

static int parse(const char *text, struct pg_config **c)
{
    err[0] = '\0';
    return pg_config_parse(text, strlen(text), c, err, sizeof err);
}

static void expect_error(const char *text, const char *needle)
{
    struct pg_config *c = (void *)1;
    assert_int_equal(parse(text, &c), PG_ECONFIG);
    assert_null(c);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void example_file_loads(void **state)
{
    setenv("POSGATE_REDIS_PASSWORD", "s3cret", 1);
    setenv("POSGATE_BI_PASSWORD", "bi-s3cret", 1);
    struct pg_config *c = NULL;
    int rc = pg_config_load(pg_t_src("config/posgate.example.json"), &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c->listen_address, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(c->redis_password, "s3cret");
    assert_true(c->http_threads >= 1); /* 0 means one per core */
    assert_int_equal(c->http_body_max_bytes, 1048576);
    assert_string_equal(c->bi_password, "bi-s3cret"); /* checks.bi.password: "env:..." */
    assert_false(c->poll_enabled);
    assert_non_null(json_object_get(c->checks_transform, "locations"));
    pg_config_free(c);
    unsetenv("POSGATE_REDIS_PASSWORD");
    unsetenv("POSGATE_BI_PASSWORD");
}

static void defaults_apply(void **state)
{
    struct pg_config *c = NULL;
    assert_int_equal(parse("{\"redis\":{\"url\":\"redis://h:1\"}}", &c), 0);
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->redis_command_timeout_ms, 500);
    assert_int_equal(c->log_level, PG_LOG_INFO);
    assert_null(c->redis_password);
    pg_config_free(c);
}

static void missing_file(void **state)
{
    struct pg_config *c = NULL;
    assert_int_equal(pg_config_load("/nonexistent/posgate.json", &c, err, sizeof err), PG_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/posgate.json"));
    assert_non_null(strstr(err, "not found"));
}

static void bad_json(void **state)
{
    expect_error("{\"redis\": {\"url\": }", "invalid JSON at line 1");
    expect_error("[1,2]", "top level must be a JSON object");
    expect_error("{\"redis\":{\"url\":\"a\",\"url\":\"b\"}}", "invalid JSON");
}

static void wrong_type(void **state)
{
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"http\":{\"threads\":\"four\"}}",
                 "http.threads: expected an integer");
    expect_error("{\"redis\":{\"url\":5}}", "redis.url: expected a non-empty string");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"http\":7}", "http: expected an object");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"log\":{\"level\":\"loud\"}}", "log.level");
}

static void unknown_key(void **state)
{
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"http\":{\"treads\":4}}",
                 "unknown key 'http.treads'");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"extra\":true}", "unknown key 'extra'");
}

static void out_of_range(void **state)
{
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"listen\":{\"port\":70000}}",
                 "listen.port: 70000 is out of range 0..65535");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"http\":{\"body_max_bytes\":10}}",
                 "http.body_max_bytes");
    expect_error("{\"redis\":{\"url\":\"redis://h\",\"reconnect_min_ms\":900,"
                 "\"reconnect_max_ms\":100}}",
                 "reconnect_min_ms must not exceed");
}

static void missing_required(void **state)
{
    expect_error("{}", "missing required key 'redis.url'");
}

static void secrets(void **state)
{
    unsetenv("PG_TEST_NOPE");
    expect_error("{\"redis\":{\"url\":\"redis://h\",\"password\":\"env:PG_TEST_NOPE\"}}",
                 "redis.password: environment variable PG_TEST_NOPE is not set");
    expect_error("{\"redis\":{\"url\":\"redis://h\",\"password\":\"file:/nonexistent/secret\"}}",
                 "cannot read secret file /nonexistent/secret");

    char path[] = "/tmp/pg-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from-file\n", 10), 10);
    close(fd);
    char doc[256];
    snprintf(doc, sizeof doc, "{\"redis\":{\"url\":\"redis://h\",\"password\":\"file:%s\"}}", path);
    struct pg_config *c = NULL;
    assert_int_equal(parse(doc, &c), 0);
    assert_string_equal(c->redis_password, "from-file"); /* trailing newline dropped */
    pg_config_free(c);
    unlink(path);
}

static void push_and_lists(void **state)
{
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"push\":{\"enabled\":true,"
                 "\"target\":\"gl\"}}",
                 "push.target \"gl\" needs push.gl.url");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"push\":{\"target\":\"ftp\"}}",
                 "push.target: expected");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"push\":{\"enabled\":\"yes\"}}",
                 "push.enabled: expected true or false");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"salesforce\":{\"org_ids\":[\"a\",3]}}",
                 "salesforce.org_ids[1]: expected a non-empty string");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"mapping\":[1]}",
                 "mapping: expected an object");
    expect_error("{\"redis\":{\"url\":\"redis://h\"},\"push\":{\"retry_base_ms\":9000,"
                 "\"retry_cap_ms\":100}}",
                 "push.retry_base_ms must not exceed");
    struct pg_config *c = NULL;
    assert_int_equal(parse("{\"redis\":{\"url\":\"redis://h\"},\"salesforce\":{\"org_ids\":"
                           "[\"00D5g000004XyZ1EAK\"]},\"mapping\":{\"Contact\":{}},"
                           "\"push\":{\"enabled\":true,\"target\":\"webhook\",\"webhook\":"
                           "{\"url\":\"http://x\",\"secret\":\"whsec_abc\"}}}",
                           &c),
                     0);
    assert_string_equal(c->sf_org_ids[0], "00D5g000004XyZ1EAK");
    assert_null(c->sf_org_ids[1]);
    assert_true(json_is_object(c->mapping));
    assert_true(c->push_enabled);
    assert_string_equal(c->webhook_secret, "whsec_abc");
    pg_config_free(c);
}

static void demo_config_loads(void **state)
{
    /* the demo configuration scripts/stack uses (its Redis URL is filled in at start) */
    char *text = NULL;
    assert_int_equal(pg_read_file(pg_t_src("config/posgate.demo.json"), 1 << 20, &text, NULL), 0);
    /* fill the placeholders the way scripts/stack does */
    struct {
        const char *from, *to;
    } subst[] = {{"__REDIS_URL__", "redis://127.0.0.1:6379/0"},
                 {"__MICROS_URL__", "http://127.0.0.1:1"},
                 {"__SF_URL__", "http://127.0.0.1:2"},
                 {"__ROOT__", PG_SOURCE_DIR}};
    for (size_t i = 0; i < sizeof subst / sizeof subst[0]; i++) {
        char *at;
        while ((at = strstr(text, subst[i].from))) {
            char *n = NULL;
            assert_true(asprintf(&n, "%.*s%s%s", (int)(at - text), text, subst[i].to,
                                 at + strlen(subst[i].from)) > 0);
            free(text);
            text = n;
        }
    }
    struct pg_config *c = NULL;
    int rc = parse(text, &c);
    if (rc)
        fail_msg("%s", err);
    assert_true(c->push_enabled);
    assert_non_null(c->sf_private_key);
    pg_config_free(c);
    free(text);
}

static void docker_config_loads(void **state)
{
    struct pg_config *c = NULL;
    int rc = pg_config_load(pg_t_src("config/posgate.docker.json"), &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c->listen_address, "0.0.0.0"); /* reachable from outside the container */
    pg_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_file_loads),
        cmocka_unit_test(defaults_apply),
        cmocka_unit_test(missing_file),
        cmocka_unit_test(bad_json),
        cmocka_unit_test(wrong_type),
        cmocka_unit_test(unknown_key),
        cmocka_unit_test(out_of_range),
        cmocka_unit_test(missing_required),
        cmocka_unit_test(secrets),
        cmocka_unit_test(push_and_lists),
        cmocka_unit_test(demo_config_loads),
        cmocka_unit_test(docker_config_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
