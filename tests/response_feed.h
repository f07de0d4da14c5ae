/* Feeding httpd's response reader (apps/httpd/response.c, compiled in by the includer) the way
 * the runtime feeds a framed protocol: unconsumed bytes kept and moved before more are
 * appended, and a body piece the handler refuses with -EAGAIN offered again, the parser where it
 * was. Every head, body byte, end and error goes to a log, so that two ways of cutting the same
 * input can be compared. Shared by test_response and fuzz_response. */
#ifndef RW_TEST_RESPONSE_FEED_H
#define RW_TEST_RESPONSE_FEED_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rfeed {
  char log[65536];
  size_t loglen;
  int eagain_left; /* refuse this many body pieces, each once */
  bool refused_last;
  const char *fault; /* an invariant the reader broke */
};

static struct rfeed *rfeed_cur;

static void rfeed_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void rfeed_note(const char *fmt, ...)
{
  struct rfeed *r = rfeed_cur;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->log + r->loglen, sizeof r->log - r->loglen, fmt, ap);
  va_end(ap);
  r->loglen = n < 0 || (size_t)n >= sizeof r->log - r->loglen ? sizeof r->log - 1 : r->loglen + (size_t)n;
}

static int rfeed_head(rw_conn *c, const struct httpd_response_head *h)
{
  (void)c;
  rw_span v;
  unsigned n = rw_list_field(&h->fields, "x-a", &v);
  rfeed_note("[%d %d.%d '%.*s' framing %d len %llu fields %u x-a %u]", h->status, h->major, h->minor,
             (int)h->reason.len, (const char *)h->reason.p, h->framing, (unsigned long long)h->length,
             h->fields.count, n);
  return 0;
}

static int rfeed_body(rw_conn *c, rw_span piece, bool last)
{
  (void)c;
  struct rfeed *r = rfeed_cur;
  if (r->eagain_left && !r->refused_last) {
    r->eagain_left--;
    r->refused_last = true;
    return -EAGAIN;
  }
  r->refused_last = false;
  /* The bytes as they are (a NUL among them too): every one of them is read. */
  size_t k = piece.len < sizeof r->log - 1 - r->loglen ? piece.len : sizeof r->log - 1 - r->loglen;
  memcpy(r->log + r->loglen, piece.p, k);
  r->loglen += k;
  r->log[r->loglen] = 0;
  if (last)
    rfeed_note("<last>");
  return 0;
}

static int rfeed_end(rw_conn *c)
{
  (void)c;
  rfeed_note("<end>");
  return 0;
}

static const struct httpd_response_handlers rfeed_handlers = {
    .head = rfeed_head, .body = rfeed_body, .end = rfeed_end};

/* Parses what buf[0..*len) holds and keeps the rest at its start; false after an error. */
static bool rfeed_parse(struct rfeed *r, void *parser, uint8_t *buf, size_t *len)
{
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  size_t off = 0;
  bool ok = true;
  while (off < *len && !r->fault) {
    buf[*len] = 0;
    size_t used = 0;
    int rc = httpd_response_proto.next(parser, buf + off, *len - off, &used, msg);
    if (rc == RW_PARSE_MORE)
      break;
    if (used > *len - off)
      r->fault = "consumed past the input";
    else if (rc == RW_PARSE_SKIP)
      r->fault = used ? NULL : "skipped nothing";
    else if (rc < 0)
      rfeed_note("(error %d)", rc), ok = false;
    else if (!used)
      r->fault = "a message consumed nothing";
    else if (httpd_response_proto.dispatch(NULL, &rfeed_handlers, rc, msg) == -EAGAIN)
      continue; /* offered again: the same bytes */
    if (!ok || r->fault)
      break;
    off += used;
  }
  memmove(buf, buf + off, *len - off);
  *len -= off;
  return ok && !r->fault;
}

/* The log of in[0..n) delivered in pieces ending at cuts[0..ncuts), then the rest; `head`: the
 * request was a HEAD; `eagain`: body pieces refused once each. */
static void rfeed_run(const uint8_t *in, size_t n, const size_t *cuts, int ncuts, bool head, int eagain,
                      struct rfeed *r)
{
  r->loglen = 0;
  r->log[0] = 0;
  r->eagain_left = eagain;
  r->refused_last = false;
  r->fault = NULL;
  rfeed_cur = r;
  _Alignas(16) unsigned char parser[64];
  if (httpd_response_proto.parser_size > sizeof parser)
    abort();
  httpd_response_proto.parser_init(parser);
  httpd_response_expect_state(parser, head);
  uint8_t *buf = malloc(n + 1);
  size_t len = 0, from = 0;
  bool ok = buf != NULL;
  for (int i = 0; i <= ncuts && ok; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    uint8_t *moved = malloc(n + 1); /* moved before more is appended, as into the runtime's slot */
    if (!moved)
      abort();
    memcpy(moved, buf, len);
    free(buf);
    buf = moved;
    memcpy(buf + len, in + from, to - from);
    len += to - from;
    from = to;
    ok = rfeed_parse(r, parser, buf, &len);
  }
  if (ok && len)
    rfeed_note("(pending %zu)", len);
  if (r->fault)
    rfeed_note("(fault: %s)", r->fault); /* (so that no expected log can match) */
  free(buf);
}

#endif
