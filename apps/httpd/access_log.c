/* httpd's access log (--access-log FILE): one line per response in nginx's `combined` format,
 *   $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
 *   "$http_referer" "$http_user_agent"
 * with nginx's escaping, written through the runtime's log writer (rw_logfile: per-worker
 * halves written off the loop; a line that finds no room is dropped and counted). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

#define LOG_HALF (256u << 10)

static rw_logfile *access_log;

int httpd_access_log_open(rw_server *srv, const char *path)
{
  return rw_logfile_open(srv, path, LOG_HALF, &access_log);
}

/* SIGHUP (rw_server_on_hup): logrotate has moved the file aside; open it again by its name. */
void httpd_access_log_reopen(rw_worker *w, void *data)
{
  (void)data;
  if (access_log)
    rw_logfile_reopen(access_log, w);
}

uint64_t httpd_access_log_dropped(void)
{
  return access_log ? rw_logfile_dropped(access_log) : 0;
}

void httpd_access_log_close(void)
{
  if (!access_log)
    return;
  rw_logfile_drain(access_log);
  fprintf(stderr, "httpd: access log: %llu lines written, %llu dropped\n",
          (unsigned long long)rw_logfile_written(access_log),
          (unsigned long long)rw_logfile_dropped(access_log));
  rw_logfile_close(access_log);
  access_log = NULL;
}

/* nginx's ngx_http_log_escape: control bytes, '"', '\' and bytes from 0x7f become \xHH. */
static bool escaped(uint8_t ch)
{
  return ch < 0x20 || ch == '"' || ch == '\\' || ch >= 0x7f;
}

static size_t escaped_len(rw_span s)
{
  size_t n = s.len;
  for (size_t i = 0; i < s.len; i++)
    n += escaped(s.p[i]) ? 3 : 0;
  return n;
}

static char *put_escaped(char *out, rw_span s)
{
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < s.len; i++) {
    uint8_t ch = s.p[i];
    if (escaped(ch)) {
      *out++ = '\\', *out++ = 'x', *out++ = hex[ch >> 4], *out++ = hex[ch & 15];
    } else {
      *out++ = (char)ch;
    }
  }
  return out;
}

static char *put(char *out, const char *s, size_t n)
{
  memcpy(out, s, n);
  return out + n;
}

/* $time_local ("06/Dec/2026:17:05:03 +0000"), formatted once a second per worker thread. */
static const char *time_local(void)
{
  static _Thread_local time_t last = -1;
  static _Thread_local char text[32];
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(text, sizeof text, "%d/%b/%Y:%H:%M:%S %z", &tm);
    last = now;
  }
  return text;
}

const char *httpd_remote_addr(rw_conn *c)
{
  struct httpd_conn *hc = rw_conn_user(c);
  unsigned port;
  if (!hc->peer[0] && rw_conn_name(c, false, hc->peer, sizeof hc->peer, &port) < 0)
    strcpy(hc->peer, "-");
  return hc->peer;
}

/* A header's value as nginx logs it: "-" when absent. */
static rw_span header(const struct http1_request *m, const char *name)
{
  rw_span v;
  if (!m || !rw_list_field(&m->headers, name, &v))
    return (rw_span){(const uint8_t *)"-", 1};
  return v;
}

/* The line's parts, "$request" and "$http_referer\" \"$http_user_agent", escaped; each
 * writer gets where to write and returns where it stopped, cut short with "..." at `end`. */
static char *put_capped(char *out, char *end, rw_span s)
{
  if (out + escaped_len(s) <= end)
    return put_escaped(out, s);
  for (size_t i = 0; i < s.len && out + 4 + 3 <= end; i++)
    out = put_escaped(out, (rw_span){s.p + i, 1});
  return put(out, "...", out + 3 <= end ? 3 : 0);
}

static size_t request_len(const struct http1_request *m)
{
  return m ? escaped_len(m->method) + 1 + escaped_len(m->target) + 9 : 1;
}

static char *put_request(char *p, char *end, const struct http1_request *m)
{
  if (!m)
    return put(p, "-", 1); /* refused before it was parsed */
  /* The request line as received (spec/http1.rw: single spaces, "HTTP/" and one digit each
   * side of the dot). */
  char tail[9] = {' ', 'H', 'T', 'T', 'P', '/', (char)m->major.p[0], '.', (char)m->minor.p[0]};
  p = put_capped(p, end - 10, m->method);
  *p++ = ' ';
  p = put_capped(p, end - 9, m->target);
  return put(p, tail, 9);
}

static size_t fields_len(const struct http1_request *m)
{
  return escaped_len(header(m, "referer")) + 3 + escaped_len(header(m, "user-agent"));
}

static char *put_fields(char *p, char *end, const struct http1_request *m)
{
  rw_span referer = header(m, "referer"), agent = header(m, "user-agent");
  size_t alen = escaped_len(agent), half = (size_t)(end - p - 3) / 2;
  p = put_capped(p, end - 3 - (alen < half ? alen : half), referer);
  p = put(p, "\" \"", 3);
  return put_capped(p, end, agent);
}

/* Writes the line around the parts: `req` and `fields` as they are kept or put by `m`. */
static void write_line(rw_conn *c, const struct http1_request *m, const struct httpd_log_kept *k,
                       const struct httpd_response *r, bool head)
{
  const char *host = httpd_remote_addr(c), *when = time_local();
  char status[48];
  int slen = snprintf(status, sizeof status, "\" %d %llu \"", r->status,
                      (unsigned long long)(head || r->status == 304 ? 0 : r->length));
  size_t hlen = strlen(host), wlen = strlen(when);
  size_t parts = k ? k->len : request_len(m) + fields_len(m);
  size_t len = hlen + 6 + wlen + 3 + parts + (size_t)slen + 2;
  rw_worker *w = rw_conn_worker(c);
  char *line = rw_logfile_reserve(access_log, w, len), *p = line;
  if (!line)
    return; /* counted as dropped */
  p = put(p, host, hlen);
  p = put(p, " - - [", 6);
  p = put(p, when, wlen);
  p = put(p, "] \"", 3);
  if (k) {
    p = put(p, k->text, k->request);
    p = put(p, status, (size_t)slen);
    p = put(p, k->text + k->request, (size_t)(k->len - k->request));
  } else {
    p = put_request(p, p + request_len(m), m);
    p = put(p, status, (size_t)slen);
    p = put_fields(p, p + fields_len(m), m);
  }
  p = put(p, "\"\n", 2);
  rw_logfile_commit(access_log, w, (size_t)(p - line));
}

void httpd_access_log(rw_conn *c, const struct http1_request *m, const struct httpd_response *r, bool head)
{
  if (access_log)
    write_line(c, m, NULL, r, head);
}

void httpd_access_log_keep(const struct http1_request *m, struct httpd_log_kept *k)
{
  char *end = k->text + sizeof k->text;
  k->head = m->method.len == 4 && !memcmp(m->method.p, "HEAD", 4);
  if (!access_log)
    return;
  char *p = put_request(k->text, k->text + sizeof k->text / 2, m);
  k->request = (uint16_t)(p - k->text);
  p = put_fields(p, end, m);
  k->len = (uint16_t)(p - k->text);
}

void httpd_access_log_kept(rw_conn *c, const struct httpd_log_kept *k, const struct httpd_response *r)
{
  if (access_log)
    write_line(c, NULL, k, r, k->head);
}
