/*
 * posgate-sim --config FILE [--ready-file PATH]
 *
 * Starts the Salesforce and MICROS simulators on their own ports, writes the ready file once both
 * listen, and runs until SIGTERM or SIGINT. Exit status: 0 after a signal, 2 for a bad command
 * line or configuration (a clear message on stderr), 1 when a port cannot be bound.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>

#include "server/log.h"
#include "server/util.h"
#include "sim/sim.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: posgate-sim --config FILE [--ready-file PATH]\n");
}

/* The URL a client should use: a wildcard bind is reached through loopback. */
static void base_url(const char *addr, int port, char *out, size_t outsz)
{
    if (strcmp(addr, "0.0.0.0") == 0)
        addr = "127.0.0.1";
    else if (strcmp(addr, "::") == 0)
        addr = "::1";
    if (strchr(addr, ':'))
        snprintf(out, outsz, "http://[%s]:%d", addr, port);
    else
        snprintf(out, outsz, "http://%s:%d", addr, port);
}

static int write_ready(const char *path,
                       const struct pg_sim_config *cfg,
                       const struct pg_sim *sf,
                       const struct pg_sim *mi)
{
    char su[128], mu[128];
    base_url(cfg->listen_address, sf->port, su, sizeof su);
    base_url(cfg->listen_address, mi->port, mu, sizeof mu);
    json_t *j = json_pack("{s:s,s:s,s:i,s:i}", "salesforce_url", su, "micros_url", mu,
                          "salesforce_port", sf->port, "micros_port", mi->port);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = s ? pg_write_file_atomic(path, s, strlen(s)) : PG_ENOMEM;
    free(s);
    json_decref(j);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *ready = NULL;
    struct pg_sim_config cfg = {0};
    struct pg_sim sf = {0}, mi = {0};
    char err[512] = "";
    int status = 2;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (strcmp(argv[i], "--ready-file") == 0 && i + 1 < argc) {
            ready = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "posgate-sim: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!cfg_path) {
        usage(stderr);
        return 2;
    }
    /*
     * Block the stop signals before any thread exists (the Outbound Message sender starts with the
     * Salesforce simulator), so every thread inherits the mask and only sigwait() below sees them.
     */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    pg_log_set_component("posgate-sim");
    /* Both libraries want their global set-up done once, before any thread exists. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
    if (pg_sim_config_load(cfg_path, &cfg, err, sizeof err) != 0 ||
        pg_sim_salesforce_init(&sf, &cfg, err, sizeof err) != 0 ||
        pg_sim_micros_init(&mi, &cfg, json_object_get(sf.seed, "contacts"), err, sizeof err) != 0) {
        fprintf(stderr, "posgate-sim: bad configuration %s: %s\n", cfg_path, err);
        goto out;
    }
    pg_log_set_level((enum pg_log_level)cfg.log_level);

    status = 1;
    if (pg_sim_listen(&sf, cfg.listen_address, cfg.sf.port) != 0 ||
        pg_sim_listen(&mi, cfg.listen_address, cfg.micros.port) != 0) {
        fprintf(stderr, "posgate-sim: cannot listen on %s (salesforce port %d, micros port %d)\n",
                cfg.listen_address, cfg.sf.port, cfg.micros.port);
        goto out;
    }
    if (ready && write_ready(ready, &cfg, &sf, &mi) != 0) {
        fprintf(stderr, "posgate-sim: cannot write the ready file %s\n", ready);
        goto out;
    }
    pg_logj(PG_LOG_INFO, NULL, "sim_ready",
            json_pack("{s:s,s:i,s:i,s:I}", "address", cfg.listen_address, "salesforce_port",
                      sf.port, "micros_port", mi.port, "contacts",
                      (json_int_t)json_array_size(json_object_get(sf.state, "contacts"))));
    int sig = 0;
    sigwait(&stop, &sig);
    pg_log(PG_LOG_INFO, NULL, "sim_stopping", "signal %d", sig);
    pg_sim_shutdown_begin();
    status = 0;
out:
    pg_sim_destroy(&sf);
    pg_sim_destroy(&mi);
    pg_sim_config_free(&cfg);
    xmlCleanupParser();
    curl_global_cleanup();
    return status;
}
