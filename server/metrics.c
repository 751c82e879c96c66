#include "server/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Latency buckets in seconds: dense below 10 ms, where the cache path lives. */
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct counter {
    struct counter *next;
    const char *route; /* static strings: route names and methods come from the route table */
    char method[16];
    int status;
    unsigned long long n;
};

struct histogram {
    struct histogram *next;
    const char *route;
    unsigned long long bucket[NBUCKETS]; /* non-cumulative; summed when rendered */
    unsigned long long count;
    double sum;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct counter *counters;
static struct histogram *histograms;
static pg_metrics_collector collectors[32];
static size_t ncollectors;

void pg_metrics_observe_request(const char *route,
                                const char *method,
                                int status,
                                int64_t duration_us)
{
    double secs = (double)duration_us / 1e6;
    pthread_mutex_lock(&mu);
    struct counter *c = counters;
    while (c &&
           !(c->status == status && strcmp(c->route, route) == 0 && strcmp(c->method, method) == 0))
        c = c->next;
    if (!c && (c = calloc(1, sizeof *c))) {
        c->route = route;
        strncpy(c->method, method, sizeof c->method - 1);
        c->status = status;
        c->next = counters;
        counters = c;
    }
    if (c)
        c->n++;
    struct histogram *h = histograms;
    while (h && strcmp(h->route, route) != 0)
        h = h->next;
    if (!h && (h = calloc(1, sizeof *h))) {
        h->route = route;
        h->next = histograms;
        histograms = h;
    }
    if (h) {
        size_t i = 0;
        while (i < NBUCKETS && secs > buckets[i])
            i++;
        if (i < NBUCKETS)
            h->bucket[i]++;
        h->count++;
        h->sum += secs;
    }
    pthread_mutex_unlock(&mu);
}

int pg_metrics_register(pg_metrics_collector fn)
{
    pthread_mutex_lock(&mu);
    int rc = PG_ETOOLARGE;
    if (ncollectors < sizeof collectors / sizeof collectors[0]) {
        collectors[ncollectors++] = fn;
        rc = PG_OK;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int pg_metrics_label_escape(struct pg_buf *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        int rc;
        if (*p == '\\')
            rc = pg_buf_puts(out, "\\\\");
        else if (*p == '"')
            rc = pg_buf_puts(out, "\\\"");
        else if (*p == '\n')
            rc = pg_buf_puts(out, "\\n");
        else
            rc = pg_buf_append(out, p, 1);
        if (rc)
            return rc;
    }
    return PG_OK;
}

static int render_requests(struct pg_buf *out)
{
    int rc = pg_buf_puts(out, "# HELP posgate_http_requests_total HTTP requests served, by route, "
                              "method and status.\n"
                              "# TYPE posgate_http_requests_total counter\n");
    for (struct counter *c = counters; c && !rc; c = c->next)
        rc = pg_buf_printf(
            out, "posgate_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
            c->route, c->method, c->status, c->n);
    if (!rc)
        rc = pg_buf_puts(out, "# HELP posgate_http_request_duration_seconds Time from the first "
                              "byte of a request to its reply, by route.\n"
                              "# TYPE posgate_http_request_duration_seconds histogram\n");
    for (struct histogram *h = histograms; h && !rc; h = h->next) {
        unsigned long long cum = 0;
        for (size_t i = 0; i < NBUCKETS && !rc; i++) {
            cum += h->bucket[i];
            rc = pg_buf_printf(
                out, "posgate_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                h->route, buckets[i], cum);
        }
        if (!rc)
            rc = pg_buf_printf(
                out,
                "posgate_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                "posgate_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                "posgate_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                h->route, h->count, h->route, h->sum, h->route, h->count);
    }
    return rc;
}

int pg_metrics_render(struct pg_buf *out)
{
    pthread_mutex_lock(&mu);
    int rc = render_requests(out);
    size_t n = ncollectors;
    pg_metrics_collector local[32];
    memcpy(local, collectors, sizeof local);
    pthread_mutex_unlock(&mu);
    /* Collectors run unlocked: they may call Redis and must not stall request accounting. */
    for (size_t i = 0; i < n && !rc; i++)
        rc = local[i](out);
    return rc;
}

void pg_metrics_reset(void)
{
    pthread_mutex_lock(&mu);
    while (counters) {
        struct counter *n = counters->next;
        free(counters);
        counters = n;
    }
    while (histograms) {
        struct histogram *n = histograms->next;
        free(histograms);
        histograms = n;
    }
    ncollectors = 0;
    pthread_mutex_unlock(&mu);
}
