/* httpd's one handler: a parsed request (spec/http1.rw has framed it, body included, and
 * refused the malformed and the smuggling shapes) becomes a file, a 304, or an error status. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "httpd.h"

static bool span_eq(rw_span s, const char *lit)
{
  size_t n = strlen(lit);
  return s.len == n && !memcmp(s.p, lit, n);
}

/* Does a Connection header list `token` (case-insensitively, among comma-separated tokens)? */
static bool connection_has(const rw_list *headers, const char *token)
{
  rw_span v;
  if (!rw_list_field(headers, "connection", &v))
    return false;
  size_t n = strlen(token);
  for (size_t i = 0; i < v.len;) {
    while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
      i++;
    size_t start = i;
    while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
      i++;
    if (i - start == n && !strncasecmp((const char *)v.p + start, token, n))
      return true;
  }
  return false;
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

int httpd_reply_status(rw_conn *c, struct httpd_response *r, bool head)
{
  char body[64];
  int blen = r->status == 304 ? 0 : snprintf(body, sizeof body, "%d %s\n", r->status, r->reason);
  r->type = blen ? "text/plain; charset=utf-8" : NULL;
  r->length = (uint64_t)blen;
  char buf[HTTPD_HEAD_MAX];
  size_t n = httpd_format_head(r, buf, sizeof buf);
  struct iovec iov[2] = {{buf, n}, {body, head ? 0 : (size_t)blen}};
  int rc = rw_conn_writev(c, iov, 2);
  if (!r->keep_alive)
    rw_conn_close(c);
  return rc;
}

static int on_request(rw_conn *c, const struct http1_request *m)
{
  bool http10 = m->minor.p[0] == '0';
  struct httpd_response r = {.http10 = http10};
  r.keep_alive = http10 ? connection_has(&m->headers, "keep-alive") : !connection_has(&m->headers, "close");
  bool head = span_eq(m->method, "HEAD");
  /* HTTP/1.1 requires one Host, whatever the method: a request without one, or with two, is
   * refused (RFC 9112 3.2) before anything else is judged. */
  rw_span host;
  unsigned hosts = rw_list_field(&m->headers, "host", &host);
  if ((!http10 && hosts == 0) || hosts > 1) {
    r.status = 400, r.reason = "Bad Request", r.keep_alive = false;
    return httpd_reply_status(c, &r, head);
  }
  uint64_t body = 0;
  for (uint32_t i = 0; i < m->body.count; i++)
    body += rw_list_at(&m->body, i).len;
  if (body > httpd.max_body) {
    r.status = 413, r.reason = "Content Too Large", r.keep_alive = false;
    return httpd_reply_status(c, &r, head);
  }
  if (!head && !span_eq(m->method, "GET")) {
    r.status = 405, r.reason = "Method Not Allowed", r.extra = "Allow: GET, HEAD\r\n";
    return httpd_reply_status(c, &r, false);
  }
  char path[HTTPD_PATH_MAX];
  if (httpd_normalise(m->target, path) < 0) {
    r.status = 400, r.reason = "Bad Request", r.keep_alive = false;
    return httpd_reply_status(c, &r, head);
  }
  return httpd_serve(c, &r, path, m->target, &m->headers, head, !head);
}

const struct http1_handlers httpd_handlers = {.request = on_request};
const size_t httpd_conn_size = sizeof(struct httpd_stream);
