/* A file as a response: the precompressed sibling the client accepts, the preconditions, then
 * the whole file, one range of it, or several as multipart/byteranges. Cached files go out in
 * one writev; larger ones through the runtime's file path (rw_conn_send_file), a range at a
 * time, so a range of a large file is never buffered by httpd. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "httpd.h"

static struct httpd_cache **caches; /* [worker] */

void httpd_worker_init(unsigned nworkers, struct httpd_cache **per_worker)
{
  (void)nworkers;
  caches = per_worker;
}

static int not_found(rw_conn *c, struct httpd_response *r, int err, bool head)
{
  r->status = err == -EACCES ? 403 : 404;
  r->reason = err == -EACCES ? "Forbidden" : "Not Found";
  return httpd_reply_status(c, r, head);
}

/* A directory named without its slash: 301 to the slashed path, the query kept. */
static int redirect(rw_conn *c, struct httpd_response *r, const char *path, rw_span target, bool head)
{
  char extra[HTTPD_EXTRA_MAX];
  size_t n = (size_t)snprintf(extra, sizeof extra, "Location: ");
  n += httpd_dir_location(path, extra + n);
  const uint8_t *q = memchr(target.p, '?', target.len);
  if (q) {
    size_t qlen = target.len - (size_t)(q - target.p);
    const uint8_t *hash = memchr(q, '#', qlen);
    qlen = hash ? (size_t)(hash - q) : qlen;
    if (qlen > sizeof extra - n - 3)
      qlen = 0; /* cannot happen within the request line's limit; never overflow */
    memcpy(extra + n, q, qlen);
    n += qlen;
  }
  memcpy(extra + n, "\r\n", 3);
  r->status = 301, r->reason = "Moved Permanently", r->extra = extra;
  return httpd_reply_status(c, r, head);
}

static void release(struct httpd_file *f)
{
  if (f->fd >= 0)
    close(f->fd);
  f->fd = -1;
}

/* Opens `path` with `suffix` appended. */
static int open_with(struct httpd_cache *cache, const char *path, const char *suffix, int64_t now_ms,
                     bool remember_absent, struct httpd_file *out)
{
  char p[HTTPD_PATH_MAX];
  size_t n = strlen(path), k = strlen(suffix);
  if (n + k >= sizeof p)
    return -ENAMETOOLONG;
  memcpy(p, path, n);
  memcpy(p + n, suffix, k + 1);
  return httpd_open(cache, p, now_ms, remember_absent, out);
}

/* Replaces *f by the precompressed sibling the request accepts best, if any (q=0 refuses; at
 * equal q brotli first; identity wins when it is preferred). Any sibling found means the
 * response varies with Accept-Encoding. Cached bytes are valid until the next cache call, so
 * the file chosen is opened again last. */
static int negotiate(struct httpd_cache *cache, const char *path, const rw_list *headers, int64_t now_ms,
                     struct httpd_file *f, struct httpd_response *r)
{
  rw_span accept = {0};
  bool asked = rw_list_field(headers, "accept-encoding", &accept) > 0;
  enum httpd_coding best = HTTPD_IDENTITY;
  unsigned best_q = asked ? 0 : 1000;
  struct httpd_file chosen = {.fd = -1};
  for (enum httpd_coding k = HTTPD_BR; k < HTTPD_CODINGS; k++) {
    struct httpd_file s;
    if (open_with(cache, path, httpd_coding_suffix[k], now_ms, true, &s) < 0)
      continue;
    r->vary = true;
    unsigned q = asked ? httpd_coding_q(accept, k) : 0;
    if (q > best_q) {
      release(&chosen);
      best = k, best_q = q, chosen = s;
    } else {
      release(&s);
    }
  }
  if (best != HTTPD_IDENTITY && httpd_coding_q(accept, HTTPD_IDENTITY) > best_q) {
    release(&chosen);
    best = HTTPD_IDENTITY;
  }
  if (best == HTTPD_IDENTITY)
    return f->fd >= 0 ? 0 : httpd_open(cache, path, now_ms, false, f);
  release(f);
  r->encoding = httpd_coding_name[best];
  *f = chosen;
  return f->fd >= 0 ? 0 : open_with(cache, path, httpd_coding_suffix[best], now_ms, false, f);
}

/* The delimiter and headers before a part of a multipart/byteranges body. */
static size_t part_head(char *out, size_t cap, const char *boundary, const char *type,
                        const struct httpd_range *rg, uint64_t size)
{
  return (size_t)snprintf(
      out, cap, "\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n", boundary, type,
      (unsigned long long)rg->off, (unsigned long long)(rg->off + rg->len - 1), (unsigned long long)size);
}

static size_t part_end(char *out, size_t cap, const char *boundary)
{
  return (size_t)snprintf(out, cap, "\r\n--%s--\r\n", boundary);
}

/* Each file send done: the next part of a multipart body, its end, or the connection's end. */
static void file_sent(rw_conn *c, int err, void *data)
{
  (void)data;
  struct httpd_stream *s = rw_conn_user(c);
  if (!err && ++s->next < s->count) {
    char buf[256];
    size_t n = part_head(buf, sizeof buf, s->boundary, s->type, &s->r[s->next], s->size);
    err = rw_conn_write(c, buf, n);
    if (!err)
      err = rw_conn_send_file(c, s->fd, s->r[s->next].off, s->r[s->next].len, file_sent, NULL);
    if (!err)
      return;
  } else if (!err && s->count > 1) {
    char buf[64];
    err = rw_conn_write(c, buf, part_end(buf, sizeof buf, s->boundary));
  }
  close(s->fd);
  s->fd = -1;
  if (err || s->close_after)
    rw_conn_close(c);
}

/* Sends the head, then the ranges of a streamed file one after another (file_sent). */
static int stream_ranges(rw_conn *c, const char *head_buf, size_t n, const struct httpd_file *f)
{
  struct httpd_stream *s = rw_conn_user(c);
  int rc = rw_conn_write(c, head_buf, n);
  if (rc == 0)
    rc = rw_conn_send_file(c, f->fd, s->r[0].off, s->r[0].len, file_sent, NULL);
  if (rc < 0) {
    close(f->fd);
    s->fd = -1;
  }
  return rc;
}

/* The response for the ranges in the connection's stream state: one as 206 with Content-Range,
 * several as multipart/byteranges. */
static int send_ranges(rw_conn *c, struct httpd_response *r, const struct httpd_file *f, bool head)
{
  static _Thread_local uint64_t boundaries;
  struct httpd_stream *s = rw_conn_user(c);
  char hbuf[HTTPD_HEAD_MAX], crange[80], parts[HTTPD_RANGES_MAX * 256];
  struct iovec iov[2 * HTTPD_RANGES_MAX + 2];
  r->status = 206, r->reason = "Partial Content";
  int k = 1;
  if (s->count == 1) {
    snprintf(crange, sizeof crange, "bytes %llu-%llu/%llu", (unsigned long long)s->r[0].off,
             (unsigned long long)(s->r[0].off + s->r[0].len - 1), (unsigned long long)f->size);
    r->content_range = crange;
    r->length = s->r[0].len;
    if (f->fd < 0)
      iov[k++] = (struct iovec){(void *)(f->data + s->r[0].off), head ? 0 : s->r[0].len};
  } else {
    /* A boundary that no file's bytes are likely to hold: the ETag's hash and a counter. */
    uint64_t h = 1469598103934665603ull ^ ++boundaries;
    for (const char *e = r->etag; *e; e++)
      h = (h ^ (uint8_t)*e) * 1099511628211ull;
    snprintf(s->boundary, sizeof s->boundary, "rw%016llx", (unsigned long long)h);
    snprintf(crange, sizeof crange, "multipart/byteranges; boundary=%s", s->boundary);
    r->length = 0;
    size_t used = 0;
    for (unsigned i = 0; i < s->count; i++) {
      size_t n = part_head(parts + used, sizeof parts - used, s->boundary, r->type, &s->r[i], f->size);
      iov[k++] = (struct iovec){parts + used, n};
      if (f->fd < 0)
        iov[k++] = (struct iovec){(void *)(f->data + s->r[i].off), s->r[i].len};
      r->length += n + s->r[i].len;
      used += n;
    }
    size_t n = part_end(parts + used, sizeof parts - used, s->boundary);
    iov[k++] = (struct iovec){parts + used, n};
    r->length += n;
    s->type = r->type;
    r->type = crange;
  }
  httpd_count(c, r->status);
  size_t n = httpd_format_head(r, hbuf, sizeof hbuf);
  if (head || f->fd < 0) {
    iov[0] = (struct iovec){hbuf, n};
    int rc = rw_conn_writev(c, iov, head ? 1 : k);
    if (f->fd >= 0)
      close(f->fd);
    if (httpd_closes_now(r))
      rw_conn_close(c);
    return rc;
  }
  /* Streamed: the head and the first part's delimiter now, each range as the connection drains. */
  if (s->count > 1) {
    memcpy(hbuf + n, iov[1].iov_base, iov[1].iov_len);
    n += iov[1].iov_len;
  }
  s->fd = f->fd, s->close_after = httpd_closes_now(r), s->size = f->size, s->next = 0;
  return stream_ranges(c, hbuf, n, f);
}

int httpd_serve(rw_conn *c, struct httpd_response *r, const char *path, rw_span target,
                const rw_list *headers, bool head, bool get)
{
  rw_worker *w = rw_conn_worker(c);
  struct httpd_cache *cache = caches[rw_worker_id(w)];
  int64_t now_ms = rw_worker_now_ms(w);
  struct httpd_file f;
  int rc = httpd_open(cache, path, now_ms, false, &f);
  if (rc == -EISDIR)
    return redirect(c, r, path, target, head);
  if (rc == 0)
    rc = negotiate(cache, path, headers, now_ms, &f, r);
  if (rc < 0)
    return not_found(c, r, rc, head);
  char etag[HTTPD_ETAG_MAX];
  httpd_etag(&f.id, f.size, etag);
  r->etag = etag;
  r->mtime = f.id.mtime;
  switch (httpd_preconditions(headers, etag, f.id.mtime, time(NULL))) {
  case HTTPD_NOT_MODIFIED:
    release(&f);
    r->status = 304, r->reason = "Not Modified", r->encoding = NULL;
    return httpd_reply_status(c, r, true);
  case HTTPD_PRECONDITION_FAILED:
    release(&f);
    r->status = 412, r->reason = "Precondition Failed", r->encoding = NULL;
    return httpd_reply_status(c, r, head);
  case HTTPD_SERVE: break;
  }
  r->type = httpd_mime(path);
  r->ranges = true;
  rw_span range;
  if (get && rw_list_field(headers, "range", &range) && httpd_if_range(headers, etag, f.id.mtime)) {
    struct httpd_ranges want;
    rc = httpd_parse_ranges(range, f.size, &want);
    if (rc == -ERANGE) {
      release(&f);
      char crange[48];
      snprintf(crange, sizeof crange, "bytes */%llu", (unsigned long long)f.size);
      r->status = 416, r->reason = "Range Not Satisfiable", r->content_range = crange, r->encoding = NULL;
      return httpd_reply_status(c, r, head);
    }
    if (rc > 0) {
      struct httpd_stream *s = rw_conn_user(c);
      s->count = want.count;
      memcpy(s->r, want.r, want.count * sizeof *want.r);
      return send_ranges(c, r, &f, head);
    }
  }
  r->status = 200, r->reason = "OK", r->length = f.size;
  char buf[HTTPD_HEAD_MAX];
  httpd_count(c, r->status);
  size_t n = httpd_format_head(r, buf, sizeof buf);
  if (head || f.fd < 0) {
    release(&f);
    struct iovec iov[2] = {{buf, n}, {(void *)f.data, head ? 0 : f.size}};
    rc = rw_conn_writev(c, iov, 2);
    if (httpd_closes_now(r))
      rw_conn_close(c);
    return rc;
  }
  /* Large: the head now, the bytes as the connection drains, read off the loop. */
  struct httpd_stream *s = rw_conn_user(c);
  *s = (struct httpd_stream){.fd = f.fd, .close_after = httpd_closes_now(r), .count = 1, .size = f.size};
  s->r[0] = (struct httpd_range){0, f.size};
  return stream_ranges(c, buf, n, &f);
}
