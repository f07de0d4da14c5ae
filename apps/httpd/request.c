/* httpd's handlers: a parsed request (spec/http1.rw has framed it and refused the malformed
 * and the smuggling shapes) becomes a file, a 304, an error status or a proxied request; its
 * body streams through them piece by piece. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "httpd.h"
#include "proxy.h"

static bool span_eq(rw_span s, const char *lit)
{
  size_t n = strlen(lit);
  return s.len == n && !memcmp(s.p, lit, n);
}

/* Does a Connection header list `token`? */
static bool connection_has(const rw_list *headers, const char *token)
{
  return httpd_connection_lists(headers, (rw_span){(const uint8_t *)token, strlen(token)});
}

/* Appends to out[*n..cap) what fits (a head never outgrows HTTPD_HEAD_MAX; this only makes
 * sure that a mistake truncates instead of overflowing). */
static void add(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
  if (*n >= cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(out + *n, cap - *n, fmt, ap);
  va_end(ap);
  *n = k < 0 ? *n : *n + (size_t)k < cap ? *n + (size_t)k : cap - 1;
}

size_t httpd_format_head(const struct httpd_response *r, char *out, size_t cap)
{
  char date[30], modified[30];
  httpd_format_date(time(NULL), date);
  size_t n = 0;
  add(out, cap, &n, "HTTP/1.1 %d %s\r\nServer: ringwright-httpd\r\nDate: %s\r\n", r->status, r->reason, date);
  if (r->type)
    add(out, cap, &n, "Content-Type: %s\r\n", r->type);
  if (r->status != 304)
    add(out, cap, &n, "Content-Length: %llu\r\n", (unsigned long long)r->length);
  if (r->content_range)
    add(out, cap, &n, "Content-Range: %s\r\n", r->content_range);
  if (r->encoding)
    add(out, cap, &n, "Content-Encoding: %s\r\n", r->encoding);
  if (r->mtime) {
    httpd_format_date(r->mtime, modified);
    add(out, cap, &n, "Last-Modified: %s\r\n", modified);
  }
  if (r->etag)
    add(out, cap, &n, "ETag: %s\r\n", r->etag);
  if (r->ranges)
    add(out, cap, &n, "Accept-Ranges: bytes\r\n");
  if (r->vary)
    add(out, cap, &n, "Vary: Accept-Encoding\r\n");
  if (!r->keep_alive)
    add(out, cap, &n, "Connection: close\r\n");
  else if (r->http10)
    add(out, cap, &n, "Connection: keep-alive\r\n");
  add(out, cap, &n, "%s%s\r\n", httpd.headers ? httpd.headers : "", r->extra ? r->extra : "");
  return n;
}

/* The runtime's per-worker application counters, by status class: 1xx is counter 1, ... */
void httpd_count(rw_conn *c, int status)
{
  if (status >= 100 && status < 600)
    rw_worker_count(rw_conn_worker(c), (unsigned)status / 100, 1);
}

static void httpd_metrics(rw_metrics_out *o, void *data)
{
  (void)data;
  rw_metrics_family(o, "httpd_responses_total", "counter", "Responses, by status class.");
  for (unsigned cls = 1; cls <= 5; cls++) {
    char label[16];
    snprintf(label, sizeof label, "class=\"%uxx\"", cls);
    rw_metrics_u64(o, "httpd_responses_total", label, rw_server_app_counter(rw_metrics_server(o), cls));
  }
}

int httpd_metrics_register(rw_server *srv)
{
  return rw_server_metrics_add(srv, httpd_metrics, NULL);
}

int httpd_reply_status(rw_conn *c, struct httpd_response *r, bool head)
{
  char body[64];
  int blen = r->status == 304 ? 0 : snprintf(body, sizeof body, "%d %s\n", r->status, r->reason);
  r->type = blen ? "text/plain; charset=utf-8" : NULL;
  r->length = (uint64_t)blen;
  char buf[HTTPD_HEAD_MAX];
  httpd_count(c, r->status);
  size_t n = httpd_format_head(r, buf, sizeof buf);
  struct iovec iov[2] = {{buf, n}, {body, head ? 0 : (size_t)blen}};
  int rc = rw_conn_writev(c, iov, 2);
  if (httpd_closes_now(r))
    rw_conn_close(c);
  return rc;
}
/* RFC 9110 9.3's methods and PATCH (RFC 5789): known, so a resource that does not allow one
 * answers 405 (RFC 9110 15.5.6); any other is not implemented: 501 (15.6.2). */
static bool method_known(rw_span method)
{
  static const char *const known[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                      "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (span_eq(method, known[i]))
      return true;
  return false;
}

static void refuse(struct httpd_response *r, int status, const char *reason, bool keep_alive)
{
  r->status = status, r->reason = reason, r->keep_alive = r->keep_alive && keep_alive;
}

/* What the request's head decides before any file is looked at: false with the refusal in r,
 * or true with the path to serve. `body` is the body's Content-Length (0 when chunked). */
static bool judge(const struct http1_request *m, uint64_t body, struct httpd_response *r,
                  char path[HTTPD_PATH_MAX])
{
  bool http10 = m->minor.p[0] == '0';
  *r = (struct httpd_response){.http10 = http10};
  r->keep_alive = http10 ? connection_has(&m->headers, "keep-alive") : !connection_has(&m->headers, "close");
  /* Any HTTP/1.x is served as 1.1 (RFC 9110 2.5); another major is not ours to read. */
  if (m->major.p[0] != '1') {
    refuse(r, 505, "HTTP Version Not Supported", false);
    return false;
  }
  /* HTTP/1.1 requires one Host, whatever the method: a request without one, or with two, is
   * refused (RFC 9112 3.2) before anything else is judged. An absolute-form target's host
   * replaces it (3.2.2). */
  rw_span host, target;
  unsigned hosts = rw_list_field(&m->headers, "host", &host);
  if ((!http10 && hosts == 0) || hosts > 1 || httpd_target(m->target, &host, &target) < 0) {
    refuse(r, 400, "Bad Request", false);
    return false;
  }
  if (body > httpd.max_body) {
    refuse(r, 413, "Content Too Large", false);
    return false;
  }
  /* A --proxy route takes any method; the upstream judges the rest. */
  int route = httpd_proxy_route(target);
  if (route >= 0) {
    r->proxy_route = route + 1;
    r->proxy_target = target;
    return true;
  }
  if (!method_known(m->method)) {
    refuse(r, 501, "Not Implemented", true);
    return false;
  }
  if (!span_eq(m->method, "GET") && !span_eq(m->method, "HEAD")) {
    refuse(r, 405, "Method Not Allowed", true);
    r->extra = "Allow: GET, HEAD\r\n";
    return false;
  }
  if (httpd_normalise(target, path) < 0) {
    refuse(r, 400, "Bad Request", false);
    return false;
  }
  return true;
}

/* Does the client wait for a word before it sends its body (RFC 9110 10.1.1)? HTTP/1.0
 * expectations are ignored, as RFC 9110 requires, and so are others (nginx does the same). */
static bool expects_continue(const struct http1_request *m)
{
  rw_span expect;
  return m->body.framing != RW_BODY_NONE && m->minor.p[0] != '0' &&
         rw_list_field(&m->headers, "expect", &expect) == 1 && expect.len == 12 &&
         !strncasecmp((const char *)expect.p, "100-continue", 12);
}

/* The request's head; its body follows piece by piece (on_body) and then its end (on_end). A
 * file is answered now and the body read and discarded; a proxied request's head goes up once
 * an upstream connection is leased, and its body after it. A client that sent Expect:
 * 100-continue hears 100 Continue when the request will be read, else its final status and a
 * close, so that the body is never sent. */
static int on_request(rw_conn *c, const struct http1_request *m)
{
  struct httpd_conn *hc = rw_conn_user(c);
  bool first = !hc->in_request, head = span_eq(m->method, "HEAD");
  if (first)
    hc->in_request = true, hc->proxied = false, hc->close_at_end = false, hc->body = 0;
  else if (hc->proxied && httpd_proxy_done(c))
    return httpd_proxy(c, m, -1, (rw_span){0}); /* (its response done: judged the first time) */
  uint64_t length = m->body.framing == RW_BODY_LENGTH ? m->body.length : 0;
  struct httpd_response r;
  char path[HTTPD_PATH_MAX];
  bool ok = judge(m, length, &r, path);
  if (ok && first && expects_continue(m)) {
    static const char word[] = "HTTP/1.1 100 Continue\r\n\r\n";
    int rc = rw_conn_write(c, word, sizeof word - 1);
    if (rc)
      return rc;
  }
  if (ok && r.proxy_route) {
    hc->proxied = true;
    return httpd_proxy(c, m, r.proxy_route - 1, r.proxy_target); /* (logged once its response is done) */
  }
  if (!ok && first && expects_continue(m))
    r.keep_alive = false; /* refused before its body was sent: it never comes */
  else if (ok && !r.keep_alive && m->body.framing != RW_BODY_NONE)
    r.close_later = hc->close_at_end = true;
  int rc =
      ok ? httpd_serve(c, &r, path, m->target, &m->headers, head, !head) : httpd_reply_status(c, &r, head);
  httpd_access_log(c, m, &r, head);
  return rc;
}

/* A piece of the body: up to the upstream, or read and dropped. A chunked body has no length
 * to judge at its head: past --max-body it is refused as nginx's client_max_body_size does,
 * 413 if nothing was answered yet, and the connection closed. */
static int on_body(rw_conn *c, rw_span piece)
{
  struct httpd_conn *hc = rw_conn_user(c);
  if (hc->body + piece.len > httpd.max_body) {
    if (hc->proxied)
      return httpd_proxy_too_large(c);
    return -EMSGSIZE;
  }
  int rc = hc->proxied ? httpd_proxy_body(c, piece) : 0;
  if (rc == 0)
    hc->body += piece.len;
  return rc;
}

/* The end of the request: a proxied one waits here until its response is done, so that a
 * pipelined request behind it is not read before. */
static int on_end(rw_conn *c)
{
  struct httpd_conn *hc = rw_conn_user(c);
  int rc = hc->proxied ? httpd_proxy_end(c) : 0;
  if (rc == 0)
    hc->in_request = false;
  if (rc == 0 && hc->close_at_end)
    rw_conn_close(c);
  return rc;
}

/* A parse error the spec refuses (spec/http1.rw): answered like every other response, with Date
 * and Server, and the connection closed (the spec closes it after). */
static int on_refused(rw_conn *c, int status)
{
  struct httpd_response r = {.keep_alive = false};
  if (status == RW_PARSE_OVERLONG)
    refuse(&r, 414, "URI Too Long", false);
  else if (status == RW_PARSE_FIELDS_TOO_LARGE)
    refuse(&r, 431, "Request Header Fields Too Large", false);
  else
    refuse(&r, 400, "Bad Request", false);
  int rc = httpd_reply_status(c, &r, false);
  httpd_access_log(c, NULL, &r, false);
  return rc;
}

const struct http1_handlers httpd_handlers = {
    .request = on_request, .request_body = on_body, .request_end = on_end, .refused = on_refused};
const size_t httpd_conn_size = sizeof(struct httpd_conn);
