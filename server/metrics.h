/*
 * Prometheus metrics in the text exposition format (version 0.0.4).
 *
 * The HTTP engine records every request (count by route, method and status; latency histogram
 * by route). Other modules add their families through collectors that render text on demand, so
 * a scrape reads live values (queue depth, Redis errors) instead of copies that could go stale.
 */
#ifndef PG_METRICS_H
#define PG_METRICS_H

#include <stdint.h>

#include "server/buf.h"

/** A collector appends complete families (HELP, TYPE and samples) to out. */
typedef int (*pg_metrics_collector)(struct pg_buf *out);

/** Record one finished request. route is a static label (route name or "unmatched"). */
void pg_metrics_observe_request(const char *route,
                                const char *method,
                                int status,
                                int64_t duration_us);

/** Register a collector (at startup, before serving). At most 32. */
int pg_metrics_register(pg_metrics_collector fn) PG_WARN_UNUSED;

/** Render every family into out. */
int pg_metrics_render(struct pg_buf *out) PG_WARN_UNUSED;

/** Forget every recorded series and collector (tests). */
void pg_metrics_reset(void);

/** Append a label value escaped as the exposition format requires (\\, \", \n). */
int pg_metrics_label_escape(struct pg_buf *out, const char *v) PG_WARN_UNUSED;

#endif
