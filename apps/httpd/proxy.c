/* httpd as a reverse proxy: a request whose path starts with a --proxy prefix (the longest
 * wins) goes to that route's upstream over a kept-alive connection from the worker's pool
 * (upstream.h), and the response comes back as it arrives.
 *
 * The client's request head stays unconsumed in its connection (the handler answers -EAGAIN)
 * until a connection is leased; then it goes up. A request without a body stays unconsumed
 * until its response is done, so that it can be sent again, once, when a kept-alive connection
 * turns out to have been closed by the upstream, and nothing is copied. A request with a body
 * goes on: each piece goes up as it arrives (chunked when it came chunked), and its end waits
 * until the response is done, which holds a pipelined request behind it back. A streamed body
 * cannot be sent twice: such a request is never retried (nginx's proxy_request_buffering off).
 * Backpressure both ways: a piece (of the request body going up or the response body coming
 * down) that finds the other connection's queue above its high water mark is refused with
 * -EAGAIN, which holds it and stops reading its connection, until that queue drains
 * (rw_conn_on_drain). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "httpd.h"
#include "proxy.h"

struct route {
  char prefix[256];
  size_t len;
  char hostport[256];
  rw_upstream *u;
};

static struct route routes[HTTPD_PROXY_ROUTES];
static unsigned nroutes;
static uint32_t proxy_timeout_ms;

enum { S_IDLE, S_WAIT, S_READY, S_SENT, S_STREAM, S_DONE, S_RETRY };

/* Above this many queued bytes a connection takes no more of the other's body; below half, it
 * does again. */
#define QUEUE_HIGH (256u << 10)

/* Per client connection, behind the file stream's state in rw_conn_user(). */
struct pconn {
  rw_upstream_req req;
  rw_timer timer;
  rw_conn *client;
  uint8_t state;
  bool reused, idempotent, retried, keep_alive, http10, rechunk, close_after;
  bool head;                 /* the request is a HEAD: a 502 or 504 goes without its text */
  bool has_body;             /* the request has a body: its head is consumed once sent, its end waits */
  bool uploading;            /* its body is going up: the head went, the end did not yet */
  bool chunk_up;             /* and goes up chunked */
  bool up_keep;              /* the upstream keeps the connection open after this response */
  int status;                /* what the client was answered, for the access log */
  uint64_t bytes;            /* body bytes sent down */
  bool to_close;             /* the response's body runs to the upstream's close */
  struct httpd_log_kept log; /* a request with a body: its access log fields */
};

#define PCONN_OFF ((sizeof(struct httpd_conn) + 63) & ~(size_t)63)
const size_t httpd_proxy_conn_size = PCONN_OFF + sizeof(struct pconn);

static struct pconn *pconn_of(rw_conn *c)
{
  return (struct pconn *)((uint8_t *)rw_conn_user(c) + PCONN_OFF);
}

/* ---- routes ---- */

int httpd_proxy_add(const char *arg)
{
  const char *eq = strchr(arg, '=');
  size_t plen = eq ? (size_t)(eq - arg) : 0;
  if (!eq || arg[0] != '/' || plen >= sizeof routes[0].prefix || !strchr(eq + 1, ':') ||
      strlen(eq + 1) >= sizeof routes[0].hostport) {
    fprintf(stderr, "httpd: --proxy takes PREFIX=HOST:PORT (PREFIX starting with '/'), not '%s'\n", arg);
    return -1;
  }
  if (nroutes == HTTPD_PROXY_ROUTES) {
    fprintf(stderr, "httpd: at most %d --proxy routes\n", HTTPD_PROXY_ROUTES);
    return -1;
  }
  struct route *r = &routes[nroutes++];
  memcpy(r->prefix, arg, plen);
  r->prefix[plen] = 0;
  r->len = plen;
  strcpy(r->hostport, eq + 1);
  return 0;
}

bool httpd_proxy_any(void)
{
  return nroutes > 0;
}

static const struct http1_response_handlers upstream_handlers;

int httpd_proxy_setup(rw_server *srv, uint32_t max_conns, uint32_t timeout_ms)
{
  proxy_timeout_ms = timeout_ms;
  for (unsigned i = 0; i < nroutes; i++) {
    /* Like nginx's keepalive 64 and keepalive_timeout 60s, per worker; every client connection
     * may have one upstream connection open. */
    rw_upstream_config cfg = {.hostport = routes[i].hostport,
                              .proto = &http1_response_proto,
                              .handlers = &upstream_handlers,
                              .max_conns = max_conns,
                              .max_idle = max_conns < 64 ? max_conns : 64,
                              .idle_ms = 60000,
                              .connect_timeout_ms = timeout_ms};
    int rc = rw_server_upstream(srv, &cfg, &routes[i].u);
    if (rc) {
      fprintf(stderr, "httpd: --proxy %s=%s: %s\n", routes[i].prefix, routes[i].hostport, strerror(-rc));
      return rc;
    }
    fprintf(stderr, "httpd: %s* goes to %s\n", routes[i].prefix, routes[i].hostport);
  }
  return 0;
}

int httpd_proxy_route(rw_span path)
{
  int best = -1;
  for (unsigned i = 0; i < nroutes; i++)
    if (path.len >= routes[i].len && !memcmp(path.p, routes[i].prefix, routes[i].len) &&
        (best < 0 || routes[i].len > routes[best].len))
      best = (int)i;
  return best;
}

/* ---- hop-by-hop fields (RFC 9110 7.6.1), both ways ----
 * Every response (and request) passes through here, so a field is classified in one look at
 * its name: no strlen, no locale, and a message's Connection tokens read once, not per field. */

static uint8_t lower(uint8_t ch)
{
  return ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch;
}

/* `s` against a lowercase literal of `n` bytes, ASCII case aside: the length looked at first,
 * so that most names are turned away without the literal's strlen. */
static bool span_case_eq(rw_span s, const char *lit, size_t n)
{
  return s.len == n && rw_span_is_ci(s, lit);
}

/* Two spans of the message, ASCII case aside. */
static bool spans_case_eq(rw_span a, rw_span b)
{
  if (a.len != b.len)
    return false;
  for (size_t i = 0; i < a.len; i++)
    if (lower(a.p[i]) != lower(b.p[i]))
      return false;
  return true;
}

/* A Connection field's value, or false for another field. */
static bool connection_value(rw_span line, rw_span *v)
{
  if (line.len < 11 || !span_case_eq((rw_span){line.p, 11}, "connection:", 11))
    return false;
  *v = (rw_span){line.p + 11, line.len - 11};
  return true;
}

/* The comma-separated token of `v` at or after *i into *tok; false after the last. */
static bool next_token(rw_span v, size_t *i, rw_span *tok)
{
  size_t k = *i;
  while (k < v.len && (httpd_ows(v.p[k]) || v.p[k] == ','))
    k++;
  size_t start = k;
  while (k < v.len && v.p[k] != ',' && !httpd_ows(v.p[k]))
    k++;
  *i = k;
  *tok = (rw_span){v.p + start, k - start};
  return k > start;
}

bool httpd_connection_lists(const rw_list *fields, rw_span name)
{
  rw_list_iter it;
  rw_span line, v, tok;
  rw_list_iter_init(fields, &it);
  while (rw_list_next(fields, &it, &line) == 0)
    if (connection_value(line, &v))
      for (size_t i = 0; next_token(v, &i, &tok);)
        if (spans_case_eq(tok, name))
          return true;
  return false;
}

/* The names a message's Connection fields list: the first NAMED_MAX kept, and `more` when
 * there were others (then each field asks httpd_connection_lists). */
#define NAMED_MAX 8
struct named {
  unsigned n;
  bool more;
  rw_span tok[NAMED_MAX];
};

static void named_read(const rw_list *fields, struct named *nm)
{
  rw_list_iter it;
  rw_span line, v, tok;
  nm->n = 0;
  nm->more = false;
  rw_list_iter_init(fields, &it);
  while (rw_list_next(fields, &it, &line) == 0)
    if (connection_value(line, &v))
      for (size_t i = 0; next_token(v, &i, &tok);) {
        if (nm->n == NAMED_MAX)
          nm->more = true;
        else
          nm->tok[nm->n++] = tok;
      }
}

static bool named_lists(const struct named *nm, const rw_list *fields, rw_span name)
{
  for (unsigned i = 0; i < nm->n; i++)
    if (spans_case_eq(nm->tok[i], name))
      return true;
  return nm->more && httpd_connection_lists(fields, name);
}

/* Writes gathered into one call per 32 pieces: a head is many small ones. A piece that starts
 * where the last one ends (fields passed on as they came) extends it. */
struct gather {
  rw_conn *c;
  int n, rc;
  struct iovec iov[32];
};

static void gather_flush(struct gather *g)
{
  if (!g->rc && g->n)
    g->rc = rw_conn_writev(g->c, g->iov, g->n);
  g->n = 0;
}

static void gather(struct gather *g, const void *p, size_t len)
{
  if (g->n && (const uint8_t *)g->iov[g->n - 1].iov_base + g->iov[g->n - 1].iov_len == p) {
    g->iov[g->n - 1].iov_len += len;
    return;
  }
  if (g->n == 32)
    gather_flush(g);
  g->iov[g->n++] = (struct iovec){(void *)p, len};
}

static void gather_str(struct gather *g, const char *s)
{
  gather(g, s, strlen(s));
}

/* Field names, lowercase, with their lengths; a set ends with {NULL, 0}. */
struct name {
  const char *p;
  size_t len;
};
#define NAME(s)     \
  {                 \
    s, sizeof s - 1 \
  }

/* Which of `set` `name` is (its index), or -1. */
static int which(rw_span name, const struct name *set)
{
  for (int i = 0; set[i].p; i++)
    if (span_case_eq(name, set[i].p, set[i].len))
      return i;
  return -1;
}

/* The fields a proxy must not pass on (RFC 9110 7.6.1; a Connection field may name more). */
static bool hop_by_hop(const rw_list *fields, const struct named *nm, rw_span name)
{
  static const struct name hop[] = {NAME("connection"), NAME("keep-alive"),        NAME("te"),
                                    NAME("trailer"),    NAME("transfer-encoding"), NAME("upgrade"),
                                    {NULL, 0}};
  return which(name, hop) >= 0 || (name.len > 6 && span_case_eq((rw_span){name.p, 6}, "proxy-", 6)) ||
         named_lists(nm, fields, name);
}

/* Gathers every field that is neither hop-by-hop nor one of those the proxy writes itself
 * (`own`), each "line\r\n" (with its own CRLF, so that a run of kept fields stays one piece).
 * Returns which of `own` it met: bit i for own[i]. */
static unsigned pass_named(struct gather *g, const rw_list *fields, const struct named *nm,
                           const struct name *own)
{
  const uint8_t *end = fields->region.p + fields->region.len;
  unsigned seen = 0;
  rw_list_iter it;
  rw_span line;
  rw_list_iter_init(fields, &it);
  while (rw_list_next(fields, &it, &line) == 0) {
    const uint8_t *colon = memchr(line.p, ':', line.len);
    rw_span name = {line.p, (size_t)(colon - line.p)};
    int i = which(name, own);
    if (i >= 0)
      seen |= 1u << i;
    if (i >= 0 || hop_by_hop(fields, nm, name))
      continue;
    const uint8_t *e = line.p + line.len;
    if (end - e >= 2 && e[0] == '\r' && e[1] == '\n') {
      gather(g, line.p, line.len + 2);
    } else {
      gather(g, line.p, line.len);
      gather(g, "\r\n", 2);
    }
  }
  return seen;
}

/* pass_named, for a caller that needs nothing else from the Connection fields. */
static unsigned pass_fields(struct gather *g, const rw_list *fields, const struct name *own)
{
  struct named nm;
  named_read(fields, &nm);
  return pass_named(g, fields, &nm, own);
}

/* ---- the request, up ---- */

static bool idempotent(rw_span method)
{
  static const char *const m[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", NULL};
  for (const char *const *p = m; *p; p++)
    if (method.len == strlen(*p) && !memcmp(method.p, *p, method.len))
      return true;
  return false;
}

/* The client's address as X-Forwarded-For has it (no port). */
static const char *xff_addr(rw_conn *c)
{
  const char *a = httpd_remote_addr(c);
  return strcmp(a, "-") ? a : "unknown";
}

/* "X-Forwarded-For: <theirs>, <the client>" (`theirs`: the request has some) and
 * "X-Forwarded-Proto". */
static void forwarded(struct gather *g, struct pconn *p, const rw_list *headers, bool theirs)
{
  rw_list_iter it;
  rw_span line;
  gather(g, "X-Forwarded-For: ", 17);
  rw_list_iter_init(headers, &it);
  while (theirs && rw_list_next(headers, &it, &line) == 0) {
    if (line.len < 16 || !span_case_eq((rw_span){line.p, 16}, "x-forwarded-for:", 16))
      continue;
    rw_span v = {line.p + 16, line.len - 16};
    while (v.len && httpd_ows(v.p[0]))
      v.p++, v.len--;
    while (v.len && httpd_ows(v.p[v.len - 1]))
      v.len--;
    if (v.len) {
      gather(g, v.p, v.len);
      gather(g, ", ", 2);
    }
  }
  gather_str(g, xff_addr(p->client));
  gather_str(g, rw_conn_alpn(p->client) ? "\r\nX-Forwarded-Proto: https\r\n"
                                        : "\r\nX-Forwarded-Proto: http\r\n");
}

/* The request's head; its body follows (forward_piece) with its own length, or chunked. */
static int send_request(struct pconn *p, rw_conn *up, const struct http1_request *m, rw_span path)
{
  /* (Transfer-Encoding is hop-by-hop too; listed here to learn whether the body was framed.) */
  enum { OWN_LENGTH = 1, OWN_CODING = 2, OWN_XFF = 8 };
  static const struct name own[] = {NAME("content-length"),  NAME("transfer-encoding"), NAME("expect"),
                                    NAME("x-forwarded-for"), NAME("x-forwarded-proto"), {NULL, 0}};
  bool head = m->method.len == 4 && !memcmp(m->method.p, "HEAD", 4);
  http1_response_expect_head(up, head);
  struct gather g = {.c = up};
  char length[24];
  gather(&g, m->method.p, m->method.len);
  gather(&g, " ", 1);
  gather(&g, path.p, path.len);
  gather(&g, " HTTP/1.1\r\n", 11);
  unsigned seen = pass_fields(&g, &m->headers, own);
  forwarded(&g, p, &m->headers, seen & OWN_XFF);
  if (m->body.framing == RW_BODY_LENGTH) {
    gather(&g, "Content-Length: ", 16);
    gather(&g, length, rw_fmt_u64(length, m->body.length));
    gather(&g, "\r\n", 2);
  } else if (m->body.framing == RW_BODY_CHUNKED) {
    gather(&g, "Transfer-Encoding: chunked\r\n", 28);
  }
  gather(&g, "\r\n", 2);
  gather_flush(&g);
  return g.rc;
}

/* A piece of the request body, as it goes up. */
static int send_piece(struct pconn *p, rw_conn *up, rw_span piece)
{
  if (!p->chunk_up)
    return rw_conn_write(up, piece.p, piece.len);
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", piece.len);
  struct iovec iov[3] = {{size, (size_t)n}, {(void *)piece.p, piece.len}, {"\r\n", 2}};
  return rw_conn_writev(up, iov, 3);
}

/* ---- ends ---- */

static void client_wake(struct pconn *p)
{
  rw_conn_resume(p->client);
}

/* Either side's queue drained below half its mark: the other side is read again. */
static void up_drained(rw_conn *up, void *data)
{
  (void)up;
  client_wake(data);
}

static void client_drained(rw_conn *c, void *data)
{
  (void)c;
  rw_conn *up = rw_upstream_conn(&((struct pconn *)data)->req);
  if (up)
    rw_conn_resume(up);
}

/* The request is done with: its response complete (`reuse`: the connection can carry another,
 * unless the request's body had not all gone up) or given up. The client's message is consumed
 * when it is dispatched again. */
static void finish(struct pconn *p, bool reuse)
{
  rw_conn *up = rw_upstream_conn(&p->req);
  if (up)
    rw_conn_on_drain(up, 0, NULL, NULL);
  rw_conn_on_drain(p->client, 0, NULL, NULL);
  rw_timer_cancel(&p->timer);
  rw_upstream_cancel(&p->req);
  rw_upstream_release(&p->req, reuse && !p->uploading);
  p->state = S_DONE;
  client_wake(p);
}

static int consumed(rw_conn *c, struct pconn *p, const struct http1_request *m);

/* 502, 504 or 413 while the client has heard nothing yet; after the head, only a close tells
 * it. A request whose body was going up is done with: the client is told to close (the rest of
 * its body is not read), and it is logged now, since it will not be dispatched again. */
static void fail(struct pconn *p, int status)
{
  bool answered = p->state == S_STREAM, body = p->uploading;
  finish(p, false);
  if (!answered) {
    struct httpd_response r = {.status = status,
                               .reason = status == 504   ? "Gateway Timeout"
                                         : status == 413 ? "Content Too Large"
                                                         : "Bad Gateway",
                               .keep_alive = p->keep_alive && !body,
                               .http10 = p->http10};
    httpd_reply_status(p->client, &r, p->head);
    p->status = r.status;
    p->bytes = r.length;
  }
  if (body) {
    p->close_after = true;
    consumed(p->client, p, NULL);
  } else if (answered) {
    rw_conn_close(p->client);
  }
}

static void timed_out(rw_timer *t)
{
  fail(t->data, 504);
}

/* The client went away: whatever the request held goes back (the upstream connection closes:
 * its response would arrive for nobody). */
static void client_closed(rw_conn *c, int reason, void *data)
{
  (void)c, (void)reason;
  struct pconn *p = data;
  rw_conn *up = rw_upstream_conn(&p->req);
  if (up)
    rw_conn_on_drain(up, 0, NULL, NULL);
  rw_timer_cancel(&p->timer);
  rw_upstream_cancel(&p->req);
  rw_upstream_release(&p->req, false);
  p->state = S_IDLE;
}

/* ---- the response, down ---- */

static struct pconn *pconn_of_upstream(rw_conn *up)
{
  rw_upstream_req *r = rw_conn_data(up);
  return r ? r->data : NULL;
}

/* The upstream's responses are parsed by spec/http1_response.rw's parser: a head, the body's
 * pieces as they arrive, then the end (at the upstream's close for a body that runs to it). */
static int on_head(rw_conn *up, const struct http1_response_response *h)
{
  static const struct name own[] = {{NULL, 0}};
  struct pconn *p = pconn_of_upstream(up);
  if (!p || p->state != S_SENT || h->code == 101 || h->code < 100 || h->major.p[0] != '1')
    return -EPROTO; /* unasked for, an upgrade nobody asked for either, or not HTTP/1.x */
  if (h->code < 200)
    return 0; /* 100 Continue (the body went up whole), 103: interim, not passed on */
  rw_timer_cancel(&p->timer);
  p->status = (int)h->code;
  rw_body_framing framing = h->body.framing;
  struct named nm; /* the Connection fields, read once for the framing and the passing on */
  named_read(&h->headers, &nm);
  p->up_keep =
      framing != RW_BODY_CLOSE &&
      (h->minor.p[0] != '0' ? !named_lists(&nm, &h->headers, (rw_span){(const uint8_t *)"close", 5})
                            : named_lists(&nm, &h->headers, (rw_span){(const uint8_t *)"keep-alive", 10}));
  p->to_close = framing == RW_BODY_CLOSE;
  p->rechunk = framing == RW_BODY_CHUNKED && !p->http10;
  p->close_after = !p->keep_alive || framing == RW_BODY_CLOSE || (framing == RW_BODY_CHUNKED && p->http10);
  /* (The spec's `status` is three digits: written by hand, snprintf costs ~800 instructions.) */
  char line[13] = "HTTP/1.1 ";
  line[9] = (char)('0' + h->code / 100 % 10);
  line[10] = (char)('0' + h->code / 10 % 10);
  line[11] = (char)('0' + h->code % 10);
  line[12] = ' ';
  struct gather g = {.c = p->client};
  gather(&g, line, sizeof line);
  gather(&g, h->reason.p, h->reason.len);
  gather(&g, "\r\n", 2);
  pass_named(&g, &h->headers, &nm, own);
  const char *tail = p->rechunk       ? "Transfer-Encoding: chunked\r\n\r\n"
                     : p->close_after ? "Connection: close\r\n\r\n"
                     : p->http10      ? "Connection: keep-alive\r\n\r\n"
                                      : "\r\n";
  gather(&g, tail, strlen(tail));
  gather_flush(&g);
  p->state = S_STREAM;
  if (g.rc)
    fail(p, 502);
  return 0;
}

static int on_body(rw_conn *up, rw_span piece)
{
  struct pconn *p = pconn_of_upstream(up);
  if (!p || p->state != S_STREAM)
    return -EPROTO;
  if (rw_conn_queued(p->client) >= QUEUE_HIGH) {
    rw_conn_on_drain(p->client, QUEUE_HIGH / 2, client_drained, p);
    return -EAGAIN; /* kept in the upstream's connection, which stops reading */
  }
  int rc;
  if (p->rechunk) {
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", piece.len);
    struct iovec iov[3] = {{size, (size_t)n}, {(void *)piece.p, piece.len}, {"\r\n", 2}};
    rc = rw_conn_writev(p->client, iov, 3);
  } else {
    rc = rw_conn_write(p->client, piece.p, piece.len);
  }
  if (rc) {
    fail(p, 502);
    return 0;
  }
  p->bytes += piece.len;
  return 0;
}

static int on_end(rw_conn *up)
{
  struct pconn *p = pconn_of_upstream(up);
  if (p && p->state == S_SENT)
    return 0; /* an interim response's (no body) */
  if (!p || p->state != S_STREAM)
    return -EPROTO;
  if (p->rechunk && rw_conn_write(p->client, "0\r\n\r\n", 5) < 0) {
    fail(p, 502);
    return 0;
  }
  finish(p, p->up_keep);
  if (p->to_close)
    rw_conn_close(p->client); /* (its queued body goes first) it was told Connection: close */
  return 0;
}

static const struct http1_response_handlers upstream_handlers = {
    .response = on_head, .response_body = on_body, .response_end = on_end};

/* The leased connection closed: a kept-alive connection the upstream had closed as the request
 * went (sent again, once, when that is safe), or a failure. (A body that runs to the close has
 * had its end by then: on_end.) */
static void upstream_closed(rw_upstream_req *r, rw_conn *up, int reason)
{
  (void)up;
  struct pconn *p = r->data;
  if (p->state == S_SENT && p->reused && p->idempotent && !p->has_body && !p->retried &&
      (!reason || reason == -ECONNRESET || reason == -EPIPE)) {
    rw_timer_cancel(&p->timer);
    p->state = S_RETRY;
    client_wake(p);
  } else if (p->state == S_SENT || p->state == S_STREAM) {
    fail(p, 502);
  }
}

static void upstream_ready(rw_upstream_req *r, rw_conn *up, int err)
{
  struct pconn *p = r->data;
  if (err) {
    fail(p, 502);
    return;
  }
  (void)up;
  p->state = S_READY;
  client_wake(p);
}

/* ---- the handler's side ---- */

/* The request is consumed: its line in the access log, with what the client was answered (`m`
 * NULL: from the fields kept when its head went up). */
static int consumed(rw_conn *c, struct pconn *p, const struct http1_request *m)
{
  struct httpd_response r = {.status = p->status, .length = p->bytes};
  p->state = S_IDLE;
  rw_conn_on_close(c, NULL, NULL);
  if (m)
    httpd_access_log(c, m, &r, p->head);
  else
    httpd_access_log_kept(c, &p->log, &r);
  if (p->close_after)
    rw_conn_close(c);
  return 0;
}

/* A failure found by the handler itself: answered, and the request consumed, now. */
static int fail_now(rw_conn *c, struct pconn *p, const struct http1_request *m)
{
  p->state = S_SENT;
  fail(p, 502);
  return consumed(c, p, m);
}

/* The head goes up; a body follows it, else the request waits for its response. */
static int forward(rw_conn *c, struct pconn *p, const struct http1_request *m, rw_span path)
{
  rw_conn *up = rw_upstream_conn(&p->req);
  if (send_request(p, up, m, path))
    return fail_now(c, p, m);
  p->state = S_SENT;
  if (!p->has_body)
    return -EAGAIN; /* the request stays until its response is done */
  httpd_access_log_keep(m, &p->log);
  rw_timer_cancel(&p->timer); /* (the body's pace is the client's until the upstream stalls) */
  p->uploading = true;
  p->chunk_up = m->body.framing == RW_BODY_CHUNKED;
  return 0;
}

/* A new request (or the same one again): a connection now, or -EAGAIN until one comes. */
static int start(rw_conn *c, struct pconn *p, const struct http1_request *m, int route, rw_span path)
{
  rw_upstream_req_init(&p->req, upstream_ready, upstream_closed, p);
  rw_timer_cancel(&p->timer); /* (armed still when its connection closed before it was used) */
  rw_timer_init(&p->timer, timed_out, p);
  rw_timer_arm(rw_conn_worker(c), &p->timer, proxy_timeout_ms);
  rw_conn *up;
  int rc = rw_upstream_acquire(rw_conn_worker(c), routes[route].u, &p->req, &up);
  if (rc)
    return fail_now(c, p, m);
  p->reused = up != NULL;
  if (!up) {
    p->state = S_WAIT;
    return -EAGAIN;
  }
  return forward(c, p, m, path);
}

bool httpd_proxy_done(rw_conn *c)
{
  return nroutes && pconn_of(c)->state == S_DONE;
}

int httpd_proxy(rw_conn *c, const struct http1_request *m, int route, rw_span path)
{
  struct pconn *p = pconn_of(c);
  switch (p->state) {
  case S_DONE:
    /* Dispatched again once its response was done (or failed): now it is consumed. */
    return consumed(c, p, m);
  case S_READY:
    /* (Its connection may have closed before the request could go: ask again.) */
    return rw_upstream_conn(&p->req) ? forward(c, p, m, path) : start(c, p, m, route, path);
  case S_RETRY: p->retried = true; return start(c, p, m, route, path);
  case S_IDLE: break;
  default: return -EAGAIN; /* (woken early: wait on) */
  }
  bool http10 = m->minor.p[0] == '0';
  bool close = httpd_connection_lists(&m->headers, (rw_span){(const uint8_t *)"close", 5});
  bool keep = httpd_connection_lists(&m->headers, (rw_span){(const uint8_t *)"keep-alive", 10});
  *p = (struct pconn){.client = c,
                      .http10 = http10,
                      .keep_alive = http10 ? keep : !close,
                      .idempotent = idempotent(m->method),
                      .has_body = m->body.framing == RW_BODY_CHUNKED ||
                                  (m->body.framing == RW_BODY_LENGTH && m->body.length > 0),
                      .head = m->method.len == 4 && !memcmp(m->method.p, "HEAD", 4)};
  rw_conn_on_close(c, client_closed, p);
  return start(c, p, m, route, path);
}

int httpd_proxy_body(rw_conn *c, rw_span piece)
{
  struct pconn *p = pconn_of(c);
  rw_conn *up = rw_upstream_conn(&p->req);
  if (!p->uploading || !up)
    return 0; /* answered already (a failure, or the upstream did not wait for it): dropped */
  /* The timeout counts while the upstream takes none of the body: one that stops reading is
   * one that stops answering. A client slow to send has its connection's idle timeout. */
  if (rw_conn_queued(up) >= QUEUE_HIGH) {
    rw_conn_on_drain(up, QUEUE_HIGH / 2, up_drained, p);
    if (p->state == S_SENT && !rw_timer_armed(&p->timer))
      rw_timer_arm(rw_conn_worker(c), &p->timer, proxy_timeout_ms);
    return -EAGAIN; /* kept in the client's connection, which stops reading */
  }
  if (p->state == S_SENT)
    rw_timer_cancel(&p->timer);
  if (send_piece(p, up, piece))
    fail(p, 502);
  return 0;
}

int httpd_proxy_end(rw_conn *c)
{
  struct pconn *p = pconn_of(c);
  if (p->uploading) {
    rw_conn *up = rw_upstream_conn(&p->req);
    if (up && p->chunk_up && rw_conn_write(up, "0\r\n\r\n", 5)) {
      fail(p, 502);
      return 0;
    }
    p->uploading = false;
    if (p->state == S_SENT)
      rw_timer_arm(rw_conn_worker(c), &p->timer, proxy_timeout_ms);
  }
  if (p->state == S_IDLE)
    return 0; /* (consumed with its head, or failed) */
  if (p->state != S_DONE)
    return -EAGAIN; /* until its response is done: a pipelined request waits */
  return consumed(c, p, NULL);
}

int httpd_proxy_too_large(rw_conn *c)
{
  struct pconn *p = pconn_of(c);
  p->close_after = true;
  if (p->state == S_DONE)
    return consumed(c, p, NULL); /* (answered before the body ended) */
  if (p->state != S_IDLE) {
    p->uploading = true; /* (what went up cannot be ended: its connection closes) */
    fail(p, 413);
    return 0;
  }
  rw_conn_close(c);
  return 0;
}
