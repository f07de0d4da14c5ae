/* Prometheus exposition: the runtime's counters and histograms (stats.h), and the
 * application's own series, served as text format 0.0.4 at http://HOST:PORT/metrics by an
 * ordinary listener of the server speaking spec/http1.rw. docs/metrics.md lists the series. */
#ifndef RINGWRIGHT_METRICS_H
#define RINGWRIGHT_METRICS_H

#include <stdint.h>

#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_metrics_out rw_metrics_out;

/* Serves /metrics on HOST:PORT (port 0 picks one: rw_server_port() of the last listener).
 * Call before rw_server_run(); 0 or -errno. */
int rw_server_metrics(rw_server *s, const char *hostport);

/* Adds the application's series: `fn` runs at every scrape, on the scraped connection's
 * worker, and writes families with the functions below. At most RW_METRICS_MAX_FNS. */
#define RW_METRICS_MAX_FNS 8
typedef void (*rw_metrics_fn)(rw_metrics_out *out, void *data);
int rw_server_metrics_add(rw_server *s, rw_metrics_fn fn, void *data);

/* A family's HELP and TYPE lines ("counter", "gauge"); its samples follow. */
void rw_metrics_family(rw_metrics_out *o, const char *name, const char *type, const char *help);
/* One sample: `labels` is NULL or written out as is between braces (`class="2xx"`). */
void rw_metrics_u64(rw_metrics_out *o, const char *name, const char *labels, uint64_t v);
void rw_metrics_f64(rw_metrics_out *o, const char *name, const char *labels, double v);
/* The server being scraped (for its counters: rw_server_app_counter). */
const rw_server *rw_metrics_server(const rw_metrics_out *o);

#ifdef __cplusplus
}
#endif

#endif
