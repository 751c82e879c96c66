/*
 * Health, readiness and metrics.
 *
 * /healthz answers from memory only: it must stay fast when Redis hangs, or an orchestrator
 * would restart a healthy gateway because its dependency is slow. /readyz asks Redis (PING
 * within the command timeout) and names the failing dependency when it cannot be used.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/util.h"
#include "store/redis.h"

static int64_t started_ms;

static int collect_process(struct pg_buf *out)
{
    return pg_buf_printf(out,
                         "# HELP posgate_build_info Build of the running gateway.\n"
                         "# TYPE posgate_build_info gauge\n"
                         "posgate_build_info{version=\"%s\"} 1\n"
                         "# HELP posgate_http_in_flight_requests Requests being processed now.\n"
                         "# TYPE posgate_http_in_flight_requests gauge\n"
                         "posgate_http_in_flight_requests %ld\n"
                         "# HELP posgate_redis_errors_total Redis I/O errors and timeouts.\n"
                         "# TYPE posgate_redis_errors_total counter\n"
                         "posgate_redis_errors_total %llu\n"
                         "# HELP posgate_uptime_seconds Seconds since the gateway started.\n"
                         "# TYPE posgate_uptime_seconds gauge\n"
                         "posgate_uptime_seconds %.3f\n",
                         pg_hnd.app ? pg_hnd.app->version : "unknown", pg_http_in_flight(),
                         pg_redis_error_count(), (double)(pg_now_ms() - started_ms) / 1000.0);
}

int pg_hnd_init(void)
{
    started_ms = pg_now_ms();
    int rc = pg_metrics_register(collect_process);
    if (rc == PG_OK)
        rc = pg_metrics_register(pg_hnd_loyalty_metrics);
    return rc;
}

int pg_hnd_healthz(struct pg_req *req)
{
    json_t *b =
        json_pack("{s:s, s:s}", "status", "ok", "version", pg_hnd.app ? pg_hnd.app->version : "");
    return pg_req_reply_json(req, 200, b);
}

int pg_hnd_readyz(struct pg_req *req)
{
    int64_t t0 = pg_now_us();
    int rc = pg_redis_ping();
    double ms = (double)(pg_now_us() - t0) / 1000.0;
    if (rc == PG_OK) {
        json_t *b = json_pack("{s:s, s:{s:{s:s, s:f}}}", "status", "ready", "checks", "redis",
                              "status", "ok", "latency_ms", ms);
        return pg_req_reply_json(req, 200, b);
    }
    char detail[160];
    snprintf(detail, sizeof detail, "dependency redis is not ready: %s", pg_strerror(rc));
    pg_log(PG_LOG_WARN, pg_req_id(req), "readyz.not_ready", "%s", detail);
    pg_req_add_header(req, "Retry-After", "1");
    json_t *extra = json_pack("{s:[s], s:{s:{s:s, s:s}}}", "failing", "redis", "checks", "redis",
                              "status", "error", "error", pg_errname(rc));
    return pg_req_problem(req, 503, detail, extra);
}

int pg_hnd_metrics(struct pg_req *req)
{
    struct pg_buf b;
    pg_buf_init(&b, 8 << 20);
    int rc = pg_metrics_render(&b);
    if (rc == PG_OK)
        rc = pg_req_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8",
                          b.data ? b.data : "", b.len);
    pg_buf_free(&b);
    return rc;
}
