/* httpd's reader of upstream responses (apps/httpd/response.c), driven the way the runtime
 * drives a framed protocol: unconsumed bytes kept and moved before more are appended, a piece
 * a handler refuses with -EAGAIN offered again. Every input is parsed whole and split at every
 * byte (and in three at every pair of bytes for the short ones): the same messages, the same
 * body bytes, the same error. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reader itself, compiled in (as tests/unit/ does): httpd's sources are not a library. */
#include "../apps/httpd/response.c"

struct run {
  char log[4096];
  size_t loglen;
  int eagain_left; /* refuse this many body pieces once each */
  bool refused_last;
};

static struct run *cur;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cur->log + cur->loglen, sizeof cur->log - cur->loglen, fmt, ap);
  va_end(ap);
  cr_assert(n >= 0 && (size_t)n < sizeof cur->log - cur->loglen, "log overflow");
  cur->loglen += (size_t)n;
}

static int on_head(rw_conn *c, const struct httpd_response_head *h)
{
  (void)c;
  rw_span v;
  unsigned n = rw_list_field(&h->fields, "x-a", &v);
  note("[%d %d.%d '%.*s' framing %d len %llu fields %u x-a %u]", h->status, h->major, h->minor,
       (int)h->reason.len, (const char *)h->reason.p, h->framing, (unsigned long long)h->length,
       h->fields.count, n);
  return 0;
}

static int on_body(rw_conn *c, rw_span piece, bool last)
{
  (void)c;
  if (cur->eagain_left && !cur->refused_last) {
    cur->eagain_left--;
    cur->refused_last = true;
    return -EAGAIN;
  }
  cur->refused_last = false;
  note("%.*s%s", (int)piece.len, (const char *)piece.p, last ? "<last>" : "");
  return 0;
}

static int on_end(rw_conn *c)
{
  (void)c;
  note("<end>");
  return 0;
}

static const struct httpd_response_handlers handlers = {.head = on_head, .body = on_body, .end = on_end};

/* Parses what `buf[0..*len)` holds; returns false after an error (noted). */
static bool parse(void *parser, uint8_t *buf, size_t *len)
{
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  size_t off = 0;
  bool ok = true;
  while (off < *len) {
    buf[*len] = 0;
    size_t used = 0;
    int rc = httpd_response_proto.next(parser, buf + off, *len - off, &used, msg);
    if (rc == RW_PARSE_MORE)
      break;
    if (rc == RW_PARSE_SKIP) {
      cr_assert_gt(used, 0);
      off += used;
      continue;
    }
    if (rc < 0) {
      note("(error %d)", rc);
      ok = false;
      break;
    }
    cr_assert_gt(used, 0, "a message consumed nothing");
    if (httpd_response_proto.dispatch(NULL, &handlers, rc, msg) == -EAGAIN)
      continue; /* offered again: the same bytes, the parser where it was */
    off += used;
  }
  memmove(buf, buf + off, *len - off);
  *len -= off;
  return ok;
}

/* The log of `in` delivered in pieces ending at cuts[0..ncuts), then the rest. */
static void run_split(const char *in, size_t n, const size_t *cuts, int ncuts, bool head, int eagain,
                      struct run *r)
{
  *r = (struct run){.eagain_left = eagain};
  cur = r;
  _Alignas(16) unsigned char parser[64];
  cr_assert_leq(httpd_response_proto.parser_size, sizeof parser);
  httpd_response_proto.parser_init(parser);
  httpd_response_expect_state(parser, head);
  uint8_t *buf = malloc(n + 1);
  size_t len = 0, from = 0;
  bool ok = true;
  for (int i = 0; i <= ncuts && ok; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    /* (moved before more is appended, as the runtime moves a partial frame into its slot) */
    uint8_t *moved = malloc(n + 1);
    memcpy(moved, buf, len);
    free(buf);
    buf = moved;
    memcpy(buf + len, in + from, to - from);
    len += to - from;
    from = to;
    ok = parse(parser, buf, &len);
  }
  if (ok && len)
    note("(pending %zu)", len);
  free(buf);
}

static void expect(const char *in, bool head, const char *want)
{
  size_t n = strlen(in);
  struct run whole, split;
  run_split(in, n, NULL, 0, head, 0, &whole);
  cr_assert_str_eq(whole.log, want, "whole input");
  for (size_t k = 1; k < n; k++) {
    run_split(in, n, &k, 1, head, 0, &split);
    cr_assert_str_eq(split.log, want, "split at %zu", k);
    run_split(in, n, &k, 1, head, 2, &split);
    cr_assert_str_eq(split.log, want, "split at %zu, two pieces refused once", k);
  }
  if (n > 160)
    return;
  for (size_t a = 1; a < n; a++)
    for (size_t b = a + 1; b < n; b++) {
      size_t cuts[2] = {a, b};
      run_split(in, n, cuts, 2, head, 0, &split);
      cr_assert_str_eq(split.log, want, "split at %zu and %zu", a, b);
    }
}

/* Bodies arrive in pieces that depend on the splits: compare them joined. */
Test(response, content_length_then_a_pipelined_204)
{
  expect(
      "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\nX-A: 2\r\n\r\n",
      false,
      "[200 1.1 'OK' framing 1 len 5 fields 2 x-a 1]hello<last>[204 1.1 'No Content' framing 0 len 0 fields "
      "1 x-a 1]");
}

Test(response, chunked_with_extensions_and_trailers)
{
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6 ; c\r\n "
         "world\r\n0\r\nX-T: 1\r\n\r\n"
         "HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx",
         false,
         "[200 1.1 'OK' framing 2 len 0 fields 1 x-a 0]hello world<end>[200 1.1 '' framing 1 len 1 fields 1 "
         "x-a 0]x<last>");
}

Test(response, no_body_for_head_1xx_204_304)
{
  expect("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true,
         "[200 1.1 'OK' framing 0 len 10 fields 1 x-a 0]");
  expect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 "
         "OK\r\nContent-Length: 2\r\n\r\nok",
         false,
         "[100 1.1 'Continue' framing 0 len 0 fields 0 x-a 0][304 1.1 'Not Modified' framing 0 len 9 fields "
         "1 x-a 0]"
         "[200 1.1 'OK' framing 1 len 2 fields 1 x-a 0]ok<last>");
  expect(
      "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true,
      "[103 1.1 'Early Hints' framing 0 len 0 fields 1 x-a 0][200 1.1 'OK' framing 0 len 9 fields 1 x-a 0]");
}

Test(response, until_the_close)
{
  expect("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc\r\ndef", false,
         "[200 1.0 'OK' framing 3 len 0 fields 1 x-a 0]abc\r\ndef");
}

Test(response, smuggling_shapes_and_malformed_heads_are_errors)
{
  static const char *const bad[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
      "HTTP/2.0 200 OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HELLO\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01\r\nabc\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    size_t n = strlen(bad[i]);
    struct run whole, split;
    run_split(bad[i], n, NULL, 0, false, 0, &whole);
    cr_assert(strstr(whole.log, "(error "), "accepted: %s", bad[i]);
    for (size_t k = 1; k < n; k++) {
      run_split(bad[i], n, &k, 1, false, 0, &split);
      cr_assert_str_eq(split.log, whole.log, "case %zu split at %zu", i, k);
    }
  }
}

Test(response, a_head_past_64k_is_too_large)
{
  size_t n = HTTPD_RESPONSE_FIELDS_MAX + 100;
  char *in = malloc(n + 1);
  memcpy(in, "HTTP/1.1 200 OK\r\nX: ", 20);
  memset(in + 20, 'a', n - 20);
  in[n] = 0;
  struct run r;
  run_split(in, n, NULL, 0, false, 0, &r);
  char want[32];
  snprintf(want, sizeof want, "(error %d)", RW_PARSE_FIELDS_TOO_LARGE);
  cr_expect_str_eq(r.log, want);
  free(in);
}
