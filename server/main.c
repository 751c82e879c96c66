/*
 * posgate: the gateway process.
 *
 *   posgate --config FILE [--ready-file PATH]   run
 *   posgate --check-config FILE                 validate the configuration and exit
 *
 * Startup never waits for Redis: the gateway serves /healthz at once and reports Redis through
 * /readyz, so an orchestrator can tell "alive" from "ready". SIGTERM and SIGINT stop it
 * gracefully: stop accepting, let in-flight requests finish within http.shutdown_grace_ms,
 * close Redis, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "handlers/handlers.h"
#include "server/app.h"
#include "server/config.h"
#include "server/http.h"
#include "server/log.h"
#include "server/util.h"
#include "store/redis.h"
#include "sync/poll.h"
#include "sync/push.h"
#include "sync/loader.h"
#include "sync/recon.h"
#include "sync/match.h"
#include "server/metrics.h"

#include <libxml/parser.h>

#ifndef PG_VERSION
#define PG_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: posgate --config FILE [--ready-file PATH]\n"
               "       posgate --check-config FILE\n"
               "       posgate --version\n");
}

/* The ready file tells scripts and tests where we listen, once we do. */
static int write_ready_file(const char *path, const char *address, int port)
{
    json_t *j = json_object();
    char url[160];
    int v6 = strchr(address, ':') != NULL;
    const char *host = strcmp(address, "0.0.0.0") == 0 ? "127.0.0.1" : address;
    if (strcmp(address, "::") == 0)
        host = "::1";
    snprintf(url, sizeof url, v6 ? "http://[%s]:%d" : "http://%s:%d", host, port);
    json_object_set_new(j, "url", json_string(url));
    json_object_set_new(j, "port", json_integer(port));
    json_object_set_new(j, "pid", json_integer(getpid()));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s)
        return PG_ENOMEM;
    int rc = pg_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

static int run(const struct pg_config *cfg, const char *ready_file)
{
    int rc = PG_OK;
    struct pg_http *http = NULL;
    struct pg_push *push = NULL;
    struct pg_poll *poll = NULL;
    struct pg_loader *loader = NULL;
    struct pg_recon_job *recon = NULL;
    struct pg_matcher *matcher = NULL;

    /* Signals are taken by sigwait in this thread only; every thread started below inherits
     * the mask. SIGPIPE is ignored: a client that hangs up must not kill the process. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct pg_redis_opts ro = {
        .url = cfg->redis_url,
        .password = cfg->redis_password,
        .connect_timeout_ms = cfg->redis_connect_timeout_ms,
        .command_timeout_ms = cfg->redis_command_timeout_ms,
        .reconnect_min_ms = cfg->redis_reconnect_min_ms,
        .reconnect_max_ms = cfg->redis_reconnect_max_ms,
    };
    rc = pg_redis_init(&ro);
    if (rc) {
        pg_log(PG_LOG_ERROR, NULL, "startup", "redis settings rejected: %s", pg_strerror(rc));
        return rc;
    }

    struct pg_app app = {.cfg = cfg, .version = PG_VERSION};
    char err[512];
    rc = pg_hnd_prepare(&app, err, sizeof err);
    if (rc) {
        pg_log(PG_LOG_ERROR, NULL, "startup", "%s", err);
        goto out;
    }
    rc = pg_hnd_init();
    if (rc) {
        pg_log(PG_LOG_ERROR, NULL, "startup", "handlers failed to start: %s", pg_strerror(rc));
        goto out;
    }
    if (cfg->push_enabled) {
        rc = pg_push_start(cfg, &push);
        if (rc) {
            pg_log(PG_LOG_ERROR, NULL, "startup", "push workers failed to start: %s",
                   pg_strerror(rc));
            goto out;
        }
    } else {
        pg_log(PG_LOG_WARN, NULL, "startup",
               "push.enabled is false: updates are accepted and queued but not delivered");
    }
    pg_poll_metrics_init(); /* checks received by POST /v1/micros/guest-checks count too */
    if (cfg->poll_enabled) {
        rc = pg_poll_start(cfg, &poll);
        if (rc) {
            pg_log(PG_LOG_ERROR, NULL, "startup", "the BI poller failed to start: %s",
                   pg_strerror(rc));
            goto out;
        }
    }
    /* reconciliation: the endpoint's and the daily job's metrics, customer matching's counters */
    if (pg_metrics_register(pg_recon_metrics) != PG_OK ||
        pg_metrics_register(pg_match_metrics) != PG_OK)
        pg_log(PG_LOG_WARN, NULL, "startup", "reconciliation/matching metrics not registered");
    if (cfg->recon_enabled) {
        rc = pg_recon_start(cfg, &recon);
        if (rc) {
            pg_log(PG_LOG_ERROR, NULL, "startup", "the reconciliation job failed to start: %s",
                   pg_strerror(rc));
            goto out;
        }
    }
    pg_loader_metrics_init();
    /* customer matching (sync/match.h), queried through the lookups' Salesforce client */
    rc = pg_match_new(cfg->checks_matching, pg_hnd.sf_rest, &matcher, err, sizeof err);
    if (rc == PG_OK && pg_match_enabled(matcher) && !pg_hnd.sf_rest) {
        snprintf(err, sizeof err, "config: checks.matching needs salesforce.rest");
        rc = PG_ECONFIG;
    }
    if (rc) {
        pg_log(PG_LOG_ERROR, NULL, "startup", "%s", err);
        goto out;
    }
    if (cfg->load_enabled) {
        /* matching plugs in through the hooks; off: every order keeps the walk-in account */
        struct pg_loader_hooks hooks = {.ud = matcher, .match = pg_match_check};
        rc = pg_loader_start(cfg, &hooks, &loader);
        if (rc) {
            pg_log(PG_LOG_ERROR, NULL, "startup", "the check loader failed to start: %s",
                   pg_strerror(rc));
            goto out;
        }
    }
    size_t nroutes = 0;
    const struct pg_route *routes = pg_hnd_routes(&nroutes);
    struct pg_http_opts ho = {
        .address = cfg->listen_address,
        .port = cfg->listen_port,
        .threads = cfg->http_threads,
        .workers = cfg->http_workers,
        .slow_workers = cfg->http_slow_workers,
        .connection_timeout_s = cfg->http_connection_timeout_s,
        .connection_limit = cfg->http_connection_limit,
        .per_ip_connection_limit = cfg->http_per_ip_connection_limit,
        .header_max_bytes = (size_t)cfg->http_header_max_bytes,
        .body_max_bytes = (size_t)cfg->http_body_max_bytes,
        .routes = routes,
        .nroutes = nroutes,
        .app = &app,
        .authorize = pg_hnd_authorize,
        .fast_path = pg_hnd_fast_path,
    };
    rc = pg_http_start(&ho, &http);
    if (rc) {
        pg_log(PG_LOG_ERROR, NULL, "startup", "cannot listen on %s:%d", cfg->listen_address,
               cfg->listen_port);
        goto out;
    }
    json_t *f = json_object();
    json_object_set_new(f, "address", json_string(cfg->listen_address));
    json_object_set_new(f, "port", json_integer(pg_http_port(http)));
    json_object_set_new(f, "threads", json_integer(cfg->http_threads));
    json_object_set_new(f, "version", json_string(PG_VERSION));
    pg_logj(PG_LOG_INFO, NULL, "listening", f);
    if (ready_file && write_ready_file(ready_file, cfg->listen_address, pg_http_port(http)) != 0) {
        pg_log(PG_LOG_ERROR, NULL, "startup", "cannot write the ready file %s", ready_file);
        rc = PG_EIO;
        goto out;
    }

    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    pg_log(PG_LOG_INFO, NULL, "shutdown", "signal %d: draining in-flight requests (up to %d ms)",
           sig, cfg->http_shutdown_grace_ms);
out:
    /* Stop intake first, then the workers: a delivery in progress finishes or stays pending. */
    if (http)
        pg_http_stop(http, cfg->http_shutdown_grace_ms);
    pg_push_stop(push);
    pg_poll_stop(poll);
    pg_loader_stop(loader);
    pg_match_free(matcher); /* after the loader: its workers call it */
    pg_recon_stop(recon);
    pg_hnd_shutdown();
    pg_redis_shutdown();
    if (!rc)
        pg_log(PG_LOG_INFO, NULL, "shutdown", "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *ready_file = NULL;
    int check_only = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--check-config") == 0) &&
            i + 1 < argc) {
            check_only = strcmp(argv[i], "--check-config") == 0;
            config = argv[++i];
        } else if (strcmp(argv[i], "--ready-file") == 0 && i + 1 < argc) {
            ready_file = argv[++i];
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("posgate %s\n", PG_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "posgate: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    char err[512];
    struct pg_config *cfg = NULL;
    if (pg_config_load(config, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "posgate: %s\n", err);
        return 2;
    }
    /* The Redis URL is checked here too so --check-config catches it. The message names the key,
     * never the value: a URL may carry a password. */
    struct pg_redis_addr addr;
    if (pg_redis_url_parse(cfg->redis_url, &addr) != 0) {
        fprintf(stderr,
                "posgate: config: redis.url: expected redis://[[user]:password@]host[:port][/db] "
                "or unix:///path\n");
        explicit_bzero(&addr, sizeof addr);
        pg_config_free(cfg);
        return 2;
    }
    explicit_bzero(&addr, sizeof addr);
    if (check_only) {
        /* The parts other modules own (keys, field map) are validated by preparing them. */
        struct pg_app app = {.cfg = cfg, .version = PG_VERSION};
        if (pg_hnd_prepare(&app, err, sizeof err) != PG_OK) {
            fprintf(stderr, "posgate: %s\n", err);
            pg_config_free(cfg);
            return 2;
        }
        if (pg_poll_check_config(cfg, err, sizeof err) != PG_OK) {
            fprintf(stderr, "posgate: %s\n", err);
            pg_hnd_shutdown();
            pg_config_free(cfg);
            return 2;
        }
        struct pg_matcher *mt = NULL;
        int mrc = pg_match_new(cfg->checks_matching, NULL, &mt, err, sizeof err);
        pg_match_free(mt);
        pg_hnd_shutdown();
        if (mrc != PG_OK) {
            fprintf(stderr, "posgate: %s\n", err);
            pg_config_free(cfg);
            return 2;
        }
        printf("posgate: %s: configuration OK\n", config);
        pg_config_free(cfg);
        return 0;
    }
    pg_log_set_level(cfg->log_level);
    /* libxml2 must be initialised once before threads parse concurrently. */
    xmlInitParser();
    int rc = run(cfg, ready_file);
    xmlCleanupParser();
    pg_config_free(cfg);
    return rc ? 1 : 0;
}
