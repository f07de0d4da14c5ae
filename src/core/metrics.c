/* /metrics: the Prometheus text format (0.0.4) of the runtime's counters and histograms and
 * of the application's series, served by an ordinary listener speaking spec/http1.rw. A scrape
 * renders into its worker's buffer (sized at start from the commands counted), then streams it
 * out as the connection takes it: no allocation, one scrape in flight per worker. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ringwright/metrics.h>

#include "http1.gen.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

struct rw_metrics_out {
  const rw_server *s;
  char *p;
  size_t cap, len;
  bool full;
};

struct rw_metrics_buf {
  char *p;
  size_t len, off;  /* rendered, and sent so far */
  bool busy;        /* a scrape is being sent from it */
  bool close;       /* and the connection closes after it */
  rw_histogram sum; /* the workers' histograms added up */
};

struct rw_metrics {
  rw_metrics_fn fn[RW_METRICS_MAX_FNS];
  void *data[RW_METRICS_MAX_FNS];
  unsigned nfn;
  size_t cap;                 /* bytes of each worker's buffer */
  struct rw_metrics_buf *buf; /* by worker */
};

/* Histogram buckets, in nanoseconds: 1 us to 10 s in 1-2.5-5 steps. */
static const uint64_t bounds_ns[] = {1000,       2500,       5000,       10000,      25000,     50000,
                                     100000,     250000,     500000,     1000000,    2500000,   5000000,
                                     10000000,   25000000,   50000000,   100000000,  250000000, 500000000,
                                     1000000000, 2500000000, 5000000000, 10000000000};
#define NBOUNDS (sizeof bounds_ns / sizeof *bounds_ns)

static void put(rw_metrics_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(rw_metrics_out *o, const char *fmt, ...)
{
  if (o->full)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len)
    o->full = true;
  else
    o->len += (size_t)n;
}

void rw_metrics_family(rw_metrics_out *o, const char *name, const char *type, const char *help)
{
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void rw_metrics_u64(rw_metrics_out *o, const char *name, const char *labels, uint64_t v)
{
  put(o, "%s%s%s%s %llu\n", name, labels ? "{" : "", labels ? labels : "", labels ? "}" : "",
      (unsigned long long)v);
}

void rw_metrics_f64(rw_metrics_out *o, const char *name, const char *labels, double v)
{
  put(o, "%s%s%s%s %.17g\n", name, labels ? "{" : "", labels ? labels : "", labels ? "}" : "", v);
}

const rw_server *rw_metrics_server(const rw_metrics_out *o)
{
  return o->s;
}

/* One counter family whose samples are an array labelled by `label` and `name_of`. */
static void labelled(rw_metrics_out *o, const char *name, const char *help, const char *label,
                     const uint64_t *v, unsigned n, const char *(*name_of)(unsigned))
{
  char l[96];
  rw_metrics_family(o, name, "counter", help);
  for (unsigned i = 0; i < n; i++) {
    snprintf(l, sizeof l, "%s=\"%s\"", label, name_of(i));
    rw_metrics_u64(o, name, l, v[i]);
  }
}

static const char *failure_name(unsigned i)
{
  return rw_transport_fail_name(i + 1);
}

static void counter(rw_metrics_out *o, const char *name, const char *help, uint64_t v)
{
  rw_metrics_family(o, name, "counter", help);
  rw_metrics_u64(o, name, NULL, v);
}

static void gauge(rw_metrics_out *o, const char *name, const char *help, uint64_t v)
{
  rw_metrics_family(o, name, "gauge", help);
  rw_metrics_u64(o, name, NULL, v);
}

static void runtime_counters(rw_metrics_out *o)
{
  rw_stats st;
  rw_server_stats(o->s, &st);
  counter(o, "rw_connections_accepted_total", "Connections accepted.", st.accepted);
  labelled(o, "rw_connections_refused_total", "Connections refused at accept, by reason.", "reason",
           st.refused, RW_REFUSED__COUNT, rw_refuse_why_name);
  labelled(o, "rw_connections_closed_total", "Accepted connections closed, by reason.", "reason", st.closed,
           RW_CLOSED__COUNT, rw_close_why_name);
  gauge(o, "rw_connections_open", "Accepted connections open.", st.open);
  counter(o, "rw_received_bytes_total", "Bytes received from sockets.", st.bytes_in);
  counter(o, "rw_sent_bytes_total", "Bytes the kernel took for sending.", st.bytes_out);
  counter(o, "rw_backpressure_pauses_total", "Connections paused: replies or pools full.", st.pauses);
  counter(o, "rw_large_slot_waits_total", "Long frames that waited for a large slot.", st.large_waits);
  counter(o, "rw_uring_enobufs_total", "io_uring receives re-armed for want of provided buffers.",
          st.enobufs);
  counter(o, "rw_uring_cq_overflows_total", "io_uring loop turns that found the completion queue overflowed.",
          st.cq_overflows);
  counter(o, "rw_tls_handshakes_total", "TLS handshakes completed.", st.transport[RW_XS_HANDSHAKES]);
  labelled(o, "rw_tls_failures_total", "TLS failures, by what failed.", "reason", st.transport + 1,
           RW_XS__COUNT - 1, failure_name);
  gauge(o, "rw_offload_queue_depth", "Jobs waiting for a pool thread.", st.offload_depth);
  counter(o, "rw_offload_rejected_total", "Tasks refused: the queue was full.", st.offload_rejected);
}

static void frames(rw_metrics_out *o)
{
  char l[128];
  rw_metrics_family(o, "rw_frames_total", "counter", "Frames dispatched, by protocol and command.");
  for (unsigned p = 0; p < o->s->nstat; p++) {
    const rw_proto *proto = o->s->stat[p].proto;
    for (unsigned i = 0; i < o->s->stat[p].ncmds; i++) {
      uint64_t calls, ns;
      rw_server_command_totals(o->s, proto, i, &calls, &ns);
      snprintf(l, sizeof l, "protocol=\"%s\",command=\"%s\"", proto->name,
               rw_server_command_name(o->s, proto, i));
      rw_metrics_u64(o, "rw_frames_total", l, calls);
    }
  }
  rw_metrics_family(o, "rw_parse_errors_total", "counter", "Parse errors, by protocol and event.");
  for (unsigned p = 0; p < o->s->nstat; p++) {
    const rw_proto *proto = o->s->stat[p].proto;
    for (unsigned e = 0; e < RW_PE__COUNT; e++) {
      snprintf(l, sizeof l, "protocol=\"%s\",event=\"%s\"", proto->name, rw_parse_event_name(e));
      rw_metrics_u64(o, "rw_parse_errors_total", l, rw_server_parse_errors(o->s, proto, e));
    }
  }
}

/* One histogram's samples (`labels` without le), its values in nanoseconds. */
static void histogram(rw_metrics_out *o, const char *name, const char *labels, const rw_histogram *h)
{
  char l[160];
  for (size_t i = 0; i < NBOUNDS; i++) {
    snprintf(l, sizeof l, "%s,le=\"%g\"", labels, (double)bounds_ns[i] / 1e9);
    put(o, "%s_bucket{%s} %llu\n", name, l, (unsigned long long)rw_hist_count_le(h, bounds_ns[i]));
  }
  put(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)h->count);
  put(o, "%s_sum{%s} %.9f\n", name, labels, (double)h->sum / 1e9);
  put(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static void histograms(rw_metrics_out *o, rw_histogram *h)
{
  char l[128];
  rw_metrics_family(o, "rw_service_time_seconds", "histogram",
                    "Handler time per frame: parsed to reply queued, by protocol and command.");
  for (unsigned p = 0; p < o->s->nstat; p++) {
    const rw_proto *proto = o->s->stat[p].proto;
    for (unsigned i = 0; i < o->s->stat[p].ncmds; i++) {
      uint64_t calls, ns;
      rw_server_command_totals(o->s, proto, i, &calls, &ns);
      if (!calls)
        continue; /* (commands never used: their frames_total says 0) */
      rw_server_command_time(o->s, proto, i, h);
      snprintf(l, sizeof l, "protocol=\"%s\",command=\"%s\"", proto->name,
               rw_server_command_name(o->s, proto, i));
      histogram(o, "rw_service_time_seconds", l, h);
    }
  }
  rw_metrics_family(o, "rw_ttfb_seconds", "histogram",
                    "Time to first byte: a frame dispatched to its reply's first bytes sent, by protocol.");
  for (unsigned p = 0; p < o->s->nstat; p++) {
    const rw_proto *proto = o->s->stat[p].proto;
    rw_server_ttfb(o->s, proto, h);
    snprintf(l, sizeof l, "protocol=\"%s\"", proto->name);
    histogram(o, "rw_ttfb_seconds", l, h);
  }
}

static size_t render(const rw_server *s, struct rw_metrics_buf *b)
{
  rw_metrics_out o = {.s = s, .p = b->p, .cap = s->metrics->cap};
  runtime_counters(&o);
  frames(&o);
  histograms(&o, &b->sum);
  for (unsigned i = 0; i < s->metrics->nfn; i++)
    s->metrics->fn[i](&o, s->metrics->data[i]);
  return o.full ? 0 : o.len;
}

static int reply(rw_conn *c, const char *status, const char *extra, bool close)
{
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s%s\r\n%s\n", status,
                   strlen(status) + 1, extra, close ? "Connection: close\r\n" : "", status);
  int rc = rw_conn_write(c, head, (size_t)n);
  if (close)
    rw_conn_close(c);
  return rc;
}

static int send_more(rw_conn *c, void *data, size_t room)
{
  struct rw_metrics_buf *b = data;
  if (!room) {
    b->busy = false;
    return 0;
  }
  size_t n = b->len - b->off < room ? b->len - b->off : room;
  int rc = rw_conn_write(c, b->p + b->off, n);
  b->off += n;
  if (rc < 0 || b->off == b->len) {
    b->busy = false;
    if (rc == 0 && b->close)
      rw_conn_close(c);
    return rc < 0 ? rc : 0;
  }
  return 1;
}

static bool span_is(rw_span s, const char *lit)
{
  return s.len == strlen(lit) && !memcmp(s.p, lit, s.len);
}

/* HTTP/1.0 closes after the reply (keep-alive or not); 1.1 when the request says so. */
static bool wants_close(const struct http1_request *m)
{
  rw_span v;
  if (m->major.p[0] != '1' || m->minor.p[0] == '0')
    return true;
  return rw_list_field(&m->headers, "connection", &v) && v.len == 5 &&
         !strncasecmp((const char *)v.p, "close", 5);
}

static int on_request(rw_conn *c, const struct http1_request *m)
{
  rw_worker *w = rw_conn_worker(c);
  const rw_server *s = w->srv;
  bool head = span_is(m->method, "HEAD"), close = wants_close(m);
  if (!head && !span_is(m->method, "GET"))
    return reply(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", close);
  size_t plen = 0;
  while (plen < m->target.len && m->target.p[plen] != '?')
    plen++;
  if (!span_is((rw_span){m->target.p, plen}, "/metrics"))
    return reply(c, "404 Not Found", "", close);
  struct rw_metrics_buf *b = &s->metrics->buf[w->id];
  if (b->busy) /* another scrape of this worker's is still being sent */
    return reply(c, "503 Service Unavailable", "Retry-After: 1\r\n", close);
  b->len = render(s, b);
  if (!b->len)
    return reply(c, "500 Internal Server Error", "", true);
  char hdr[160];
  int n = snprintf(hdr, sizeof hdr,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n%s\r\n",
                   b->len, close ? "Connection: close\r\n" : "");
  int rc = rw_conn_write(c, hdr, (size_t)n);
  if (rc == 0 && !head) {
    /* (Closing now would end the stream before it starts: its last write closes.) */
    b->off = 0;
    b->busy = true;
    b->close = close;
    rw_conn_stream(c, send_more, b);
  } else if (close) {
    rw_conn_close(c);
  }
  return rc;
}

/* A body (to a GET, say) is read and dropped as it arrives, never held. */
static int on_body(rw_conn *c, rw_span piece)
{
  (void)c, (void)piece;
  return 0;
}

static int on_end(rw_conn *c)
{
  (void)c;
  return 0;
}

static int on_refused(rw_conn *c, int status)
{
  (void)status;
  return reply(c, "400 Bad Request", "", true);
}

static const struct http1_handlers handlers = {
    .request = on_request, .request_body = on_body, .request_end = on_end, .refused = on_refused};

int rw_server_metrics(rw_server *s, const char *hostport)
{
  if (s->workers)
    return -EBUSY;
  if (!s->metrics && !(s->metrics = calloc(1, sizeof *s->metrics)))
    return -ENOMEM;
  int rc = rw_server_listen(s, hostport, &http1_proto, &handlers);
  if (rc < 0)
    return rc;
  s->listeners[s->nlisteners - 1].uncounted = true;
  s->metrics_bound = true;
  rw_log("metrics at http://%s/metrics", s->listeners[s->nlisteners - 1].addr);
  return 0;
}

int rw_server_metrics_add(rw_server *s, rw_metrics_fn fn, void *data)
{
  if (s->workers)
    return -EBUSY;
  if (!s->metrics && !(s->metrics = calloc(1, sizeof *s->metrics)))
    return -ENOMEM;
  if (s->metrics->nfn == RW_METRICS_MAX_FNS)
    return -ENOSPC;
  s->metrics->fn[s->metrics->nfn] = fn;
  s->metrics->data[s->metrics->nfn++] = data;
  return 0;
}

/* Room for every series: the fixed ones, a histogram per command, the application's. */
static size_t buffer_size(const rw_server *s)
{
  size_t n = 64 << 10;
  for (unsigned i = 0; i < s->nstat; i++)
    n += (s->stat[i].ncmds + 1) * 4096 + 2048;
  return n + s->metrics->nfn * (64 << 10);
}

size_t rw_metrics_bytes(const rw_server *s)
{
  return s->metrics && s->metrics->buf ? s->nworkers * (sizeof *s->metrics->buf + s->metrics->cap) : 0;
}

int rw_metrics_start(rw_server *s)
{
  struct rw_metrics *m = s->metrics;
  if (!m)
    return 0;
  m->cap = buffer_size(s);
  m->buf = rw_region_alloc(s->nworkers * sizeof *m->buf);
  if (!m->buf)
    return -ENOMEM;
  for (unsigned i = 0; i < s->nworkers; i++)
    if (!(m->buf[i].p = rw_region_alloc(m->cap)))
      return -ENOMEM;
  return 0;
}

void rw_metrics_stop(rw_server *s)
{
  struct rw_metrics *m = s->metrics;
  if (!m || !m->buf)
    return;
  for (unsigned i = 0; i < s->nworkers; i++)
    rw_region_free(m->buf[i].p, m->cap);
  rw_region_free(m->buf, s->nworkers * sizeof *m->buf);
  m->buf = NULL;
}

void rw_metrics_free(rw_server *s)
{
  free(s->metrics);
  s->metrics = NULL;
}
