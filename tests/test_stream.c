/* Streamed bodies (the stream() part) through generated parsers: HTTP/1.1 responses
 * (spec/http1_response.rw) and requests (tests/specs/upload.rw), driven the way the runtime
 * drives a framed protocol (tests/stream_feed.h). Every input is parsed whole and split at every
 * byte (and in three at every pair of bytes for the short ones), with and without messages
 * refused once with -EAGAIN: the same heads, the same body bytes, the same ends and errors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringwright/list.h>
#include <ringwright/server.h>

#include "http1.gen.h"
#include "http1_response.gen.h"
#include "stream_feed.h"
#include "upload.gen.h"

static int response_head(rw_conn *c, const struct http1_response_response *m)
{
  (void)c;
  if (!sfeed_take())
    return -EAGAIN;
  rw_span v;
  unsigned n = rw_list_field(&m->headers, "x-a", &v);
  sfeed_note("[%u %.*s.%.*s '%.*s' framing %d len %llu fields %u x-a %u]", m->code, (int)m->major.len,
             (const char *)m->major.p, (int)m->minor.len, (const char *)m->minor.p, (int)m->reason.len,
             (const char *)m->reason.p, (int)m->body.framing, (unsigned long long)m->body.length,
             m->headers.count, n);
  return 0;
}

static const struct http1_response_handlers response_h = {
    .response = response_head, .response_body = sfeed_piece, .response_end = sfeed_end};

static int upload_head(rw_conn *c, const struct upload_request *m)
{
  (void)c;
  if (!sfeed_take())
    return -EAGAIN;
  sfeed_note("[%.*s %.*s framing %d len %llu fields %u]", (int)m->method.len, (const char *)m->method.p,
             (int)m->target.len, (const char *)m->target.p, (int)m->body.framing,
             (unsigned long long)m->body.length, m->headers.count);
  return 0;
}

static const struct upload_handlers upload_h = {
    .request = upload_head, .request_body = sfeed_piece, .request_end = sfeed_end};

static void head_request(void *parser)
{
  http1_response_parser_expect_head(parser, true);
}

struct feed_case {
  const rw_proto *proto;
  const void *h;
  void (*setup)(void *parser);
  bool eof;
};

static const struct feed_case response = {&http1_response_proto, &response_h, NULL, false};
static const struct feed_case response_close = {&http1_response_proto, &response_h, NULL, true};
static const struct feed_case response_head_req = {&http1_response_proto, &response_h, head_request, false};
static const struct feed_case upload = {&upload_proto, &upload_h, NULL, false};
static const struct feed_case upload_close = {&upload_proto, &upload_h, NULL, true};

static void expect(const struct feed_case *fc, const char *in, const char *want)
{
  size_t n = strlen(in);
  static struct sfeed whole, split;
  sfeed_run(fc->proto, fc->h, fc->setup, (const uint8_t *)in, n, NULL, 0, fc->eof, 0, &whole);
  cr_assert_str_eq(whole.log, want, "whole input");
  sfeed_run(fc->proto, fc->h, fc->setup, (const uint8_t *)in, n, NULL, 0, fc->eof, 1000, &whole);
  cr_assert_str_eq(whole.log, want, "whole input, every message refused once");
  for (size_t k = 1; k < n; k++) {
    sfeed_run(fc->proto, fc->h, fc->setup, (const uint8_t *)in, n, &k, 1, fc->eof, 0, &split);
    cr_assert_str_eq(split.log, want, "split at %zu", k);
    sfeed_run(fc->proto, fc->h, fc->setup, (const uint8_t *)in, n, &k, 1, fc->eof, 1000, &split);
    cr_assert_str_eq(split.log, want, "split at %zu, every message refused once", k);
  }
  if (n > 160)
    return;
  for (size_t a = 1; a < n; a++)
    for (size_t b = a + 1; b < n; b++) {
      size_t cuts[2] = {a, b};
      sfeed_run(fc->proto, fc->h, fc->setup, (const uint8_t *)in, n, cuts, 2, fc->eof, (int)(a % 3), &split);
      cr_assert_str_eq(split.log, want, "split at %zu and %zu", a, b);
    }
}

/* Bodies arrive in pieces that depend on the splits: the log joins them. */
Test(response, content_length_then_a_pipelined_204)
{
  expect(
      &response,
      "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\nX-A: 2\r\n\r\n",
      "[200 1.1 'OK' framing 1 len 5 fields 2 x-a 1]hello<end>"
      "[204 1.1 'No Content' framing 0 len 0 fields 1 x-a 1]<end>");
  expect(&response,
         "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!",
         "[200 1.1 'OK' framing 1 len 0 fields 1 x-a 0]<end>[200 1.1 'OK' framing 1 len 1 fields 1 x-a "
         "0]!<end>");
}

Test(response, chunked_with_extensions_and_trailers)
{
  expect(&response,
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6 ; c\r\n "
         "world\r\n0\r\nX-T: 1\r\n\r\n"
         "HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx",
         "[200 1.1 'OK' framing 2 len 0 fields 1 x-a 0]hello world<end>"
         "[200 1.1 '' framing 1 len 1 fields 1 x-a 0]x<end>");
  expect(&response, "HTTP/1.1 200\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
         "[200 1.1 '' framing 2 len 0 fields 1 x-a 0]0123456789<end>");
}

Test(response, no_body_for_head_1xx_204_304)
{
  expect(&response_head_req,
         "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
         "[200 1.1 'OK' framing 0 len 0 fields 1 x-a 0]<end>[200 1.1 'OK' framing 1 len 2 fields 1 x-a "
         "0]ok<end>");
  expect(&response,
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 "
         "OK\r\nContent-Length: 2\r\n\r\nok",
         "[100 1.1 'Continue' framing 0 len 0 fields 0 x-a 0]<end>"
         "[304 1.1 'Not Modified' framing 0 len 0 fields 1 x-a 0]<end>"
         "[200 1.1 'OK' framing 1 len 2 fields 1 x-a 0]ok<end>");
  /* An interim response leaves the HEAD to the final one. */
  expect(
      &response_head_req,
      "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "[103 1.1 'Early Hints' framing 0 len 0 fields 1 x-a 0]<end>[200 1.1 'OK' framing 0 len 0 fields 1 x-a "
      "0]<end>");
}

Test(response, until_the_close)
{
  expect(&response_close, "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc\r\ndef",
         "[200 1.0 'OK' framing 3 len 0 fields 1 x-a 0]abc\r\ndef<end>");
  /* No close yet: no end either. */
  expect(&response, "HTTP/1.0 200 OK\r\n\r\nabc", "[200 1.0 'OK' framing 3 len 0 fields 0 x-a 0]abc");
  /* A length or a chunked body the close cuts short is no clean end. */
  char want[96];
  snprintf(want, sizeof want, "[200 1.1 'OK' framing 1 len 9 fields 1 x-a 0]abc(close %d)", -EPIPE);
  expect(&response_close, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", want);
  snprintf(want, sizeof want, "[200 1.1 'OK' framing 2 len 0 fields 1 x-a 0]abc(close %d)", -EPIPE);
  expect(&response_close, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", want);
}

static void expect_error(const struct feed_case *fc, const char *in, int status)
{
  size_t n = strlen(in);
  static struct sfeed whole, split;
  char want[32];
  snprintf(want, sizeof want, "(error %d)", status);
  sfeed_run(fc->proto, fc->h, fc->setup, (const uint8_t *)in, n, NULL, 0, false, 0, &whole);
  cr_assert(strstr(whole.log, want), "accepted (%s): %s", whole.log, in);
  for (size_t k = 1; k < n; k++) {
    sfeed_run(fc->proto, fc->h, fc->setup, (const uint8_t *)in, n, &k, 1, false, 1000, &split);
    cr_assert_str_eq(split.log, whole.log, "%s split at %zu", in, k);
  }
}

/* The shapes of response smuggling and malformed heads: bad_data (UNKNOWN for a status line that
 * is none), whole or split. (A major version other than 1 parses: the handler refuses it.) */
Test(response, smuggling_shapes_and_malformed_heads_are_errors)
{
  static const char *const bad[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "HTTP/1.1 204 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01\r\nabc\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX : 1\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    expect_error(&response, bad[i], RW_PARSE_BAD_DATA);
  static const char *const no_line[] = {
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HELLO\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof no_line / sizeof *no_line; i++)
    expect_error(&response, no_line[i], RW_PARSE_UNKNOWN);
}

Test(response, a_head_or_trailers_past_64k_are_too_large)
{
  size_t n = HTTP1_RESPONSE_LIMIT_FIELDS + 100;
  char *in = malloc(n + 1);
  memcpy(in, "HTTP/1.1 200 OK\r\nX: ", 20);
  memset(in + 20, 'a', n - 20);
  in[n] = 0;
  static struct sfeed r;
  sfeed_run(&http1_response_proto, &response_h, NULL, (const uint8_t *)in, n, NULL, 0, false, 0, &r);
  char want[96];
  snprintf(want, sizeof want, "(error %d)", RW_PARSE_FIELDS_TOO_LARGE);
  cr_expect_str_eq(r.log, want);
  static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ";
  memcpy(in, chunked, sizeof chunked - 1);
  memset(in + sizeof chunked - 1, 'a', n - (sizeof chunked - 1));
  sfeed_run(&http1_response_proto, &response_h, NULL, (const uint8_t *)in, n, NULL, 0, false, 0, &r);
  snprintf(want, sizeof want, "[200 1.1 'OK' framing 2 len 0 fields 1 x-a 0](error %d)",
           RW_PARSE_FIELDS_TOO_LARGE);
  cr_expect_str_eq(r.log, want);
  free(in);
}

/* A body of many receives goes through in pieces, never held whole, some refused and offered
 * again: every byte once, in order, and nothing left pending. */
Test(response, a_large_body_is_streamed_not_held)
{
  size_t body = 60000, n; /* (the log holds 64 KiB) */
  char head[64];
  int hn = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body);
  n = (size_t)hn + body;
  uint8_t *in = malloc(n);
  memcpy(in, head, (size_t)hn);
  for (size_t i = 0; i < body; i++)
    in[hn + i] = (uint8_t)('a' + i % 26);
  size_t ncuts = n / 4096;
  size_t *cuts = malloc(ncuts * sizeof *cuts);
  for (size_t i = 0; i < ncuts; i++)
    cuts[i] = (i + 1) * 4096 - 7 * (i % 3);
  static struct sfeed r;
  sfeed_run(&http1_response_proto, &response_h, NULL, in, n, cuts, (int)ncuts, false, 5, &r);
  cr_assert_null(r.fault);
  static const char want[] = "[200 1.1 'OK' framing 1 len 60000 fields 1 x-a 0]";
  cr_assert_eq(r.loglen, strlen(want) + body + 5);
  cr_assert(!memcmp(r.log, want, strlen(want)));
  cr_assert(!memcmp(r.log + strlen(want), in + hn, body));
  cr_assert_str_eq(r.log + r.loglen - 5, "<end>");
  free(cuts);
  free(in);
}

/* The same part in a request spec: no length is an empty body, never "until the close". */
Test(request, streamed_request_bodies)
{
  expect(&upload, "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n",
         "[POST /a framing 1 len 3 fields 1]abc<end>[GET /b framing 0 len 0 fields 0]<end>");
  expect(&upload,
         "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nhi\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n"
         "POST /d HTTP/1.1\r\nX: y\r\n\r\n",
         "[POST /c framing 2 len 0 fields 1]hi!<end>[POST /d framing 0 len 0 fields 1]<end>");
  expect(&upload_close, "PUT /e HTTP/1.1\r\n\r\n", "[PUT /e framing 0 len 0 fields 0]<end>");
  char want[64];
  snprintf(want, sizeof want, "[PUT /f framing 1 len 4 fields 1]ab(close %d)", -EPIPE);
  expect(&upload_close, "PUT /f HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", want);
  expect_error(&upload, "POST /g HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
               RW_PARSE_BAD_DATA);
  expect_error(&upload, "POST /h HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", RW_PARSE_BAD_DATA);
}

static void no_peek(rw_conn *c, int cmd, const void *msg)
{
  (void)c, (void)cmd, (void)msg;
}

/* A streamed body's parser moves only as its handlers take messages: a lookahead that parses
 * without dispatching would misread it, so the server refuses one. */
Test(request, a_streaming_protocol_is_not_looked_ahead)
{
  rw_config cfg;
  rw_config_default(&cfg);
  rw_server *srv;
  cr_assert_eq(rw_server_create(&cfg, &srv), 0);
  cr_expect_eq(rw_server_peek(srv, &upload_proto, no_peek), -EINVAL);
  cr_expect_eq(rw_server_peek(srv, &http1_response_proto, no_peek), -EINVAL);
  rw_server_destroy(srv);
}

/* ---- spec/http1.rw: httpd's requests, their bodies streamed ---- */

static int http1_head(rw_conn *c, const struct http1_request *m)
{
  (void)c;
  if (!sfeed_take())
    return -EAGAIN;
  sfeed_note("[%.*s %.*s %.*s.%.*s framing %d len %llu fields %u]", (int)m->method.len,
             (const char *)m->method.p, (int)m->target.len, (const char *)m->target.p, (int)m->major.len,
             (const char *)m->major.p, (int)m->minor.len, (const char *)m->minor.p, (int)m->body.framing,
             (unsigned long long)m->body.length, m->headers.count);
  return 0;
}

static int http1_refused(rw_conn *c, int status)
{
  (void)c, (void)status;
  return 0;
}

static const struct http1_handlers http1_h = {
    .request = http1_head, .request_body = sfeed_piece, .request_end = sfeed_end, .refused = http1_refused};
static const struct feed_case http1 = {&http1_proto, &http1_h, NULL, false};

Test(http1, requests_at_every_split)
{
  expect(&http1,
         "GET /a HTTP/1.1\r\nHost: x\r\nAccept:  */* \r\n\r\n"
         "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
         "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n"
         "GET / HTTP/1.0\r\n\r\n",
         "[GET /a 1.1 framing 0 len 0 fields 2]<end>[POST /p 1.1 framing 1 len 5 fields 1]hello<end>"
         "[PUT /c 1.1 framing 2 len 0 fields 1]abc0123456789abcdef<end>[GET / 1.0 framing 0 len 0 fields "
         "0]<end>");
}

/* Every one-digit version parses (the handler answers 505 or serves 1.x as 1.1); two digits,
 * none, or no minor do not match the request line. */
Test(http1, versions_parse_for_the_handler)
{
  expect(&http1, "GET / HTTP/1.2\r\n\r\nGET http://h/x HTTP/2.0\r\n\r\nGET * HTTP/0.9\r\n\r\n",
         "[GET / 1.2 framing 0 len 0 fields 0]<end>[GET http://h/x 2.0 framing 0 len 0 fields 0]<end>"
         "[GET * 0.9 framing 0 len 0 fields 0]<end>");
  static const char *const bad[] = {"GET / HTTP/1.10\r\n\r\n", "GET / HTTP/1\r\n\r\n",
                                    "GET / HTTP/x.1\r\n\r\n", "GET / HTTP/11.1\r\n\r\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_error(&http1, bad[i], RW_PARSE_UNKNOWN);
}

/* Each of these is a smuggling shape or a malformed message: 400 and close (bad_data). */
Test(http1, smuggling_shapes_are_refused)
{
  static const char *const bad[] = {
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nContent-Length: 3a\r\n\r\nabc",
      "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\n\r\n",
      "GET / HTTP/1.1\r\nBad\x01: x\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef0\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_error(&http1, bad[i], RW_PARSE_BAD_DATA);
}

/* A request line past 8 KiB is overlong (414), a header section past 64 KiB too large (431);
 * a body has no limit of the spec's (the handler's --max-body judges it). */
Test(http1, limits_give_414_and_431_not_the_body)
{
  size_t n = 70000;
  char *in = malloc(n + 64);
  memcpy(in, "GET /", 5);
  memset(in + 5, 'a', 9000);
  memcpy(in + 9005, " HTTP/1.1\r\n\r\n", 14);
  static struct sfeed r;
  char want[96];
  sfeed_run(&http1_proto, &http1_h, NULL, (const uint8_t *)in, 9019, NULL, 0, false, 0, &r);
  snprintf(want, sizeof want, "(error %d)", RW_PARSE_OVERLONG);
  cr_expect_str_eq(r.log, want);
  size_t k = (size_t)snprintf(in, 64, "GET / HTTP/1.1\r\n");
  while (k < n)
    k += (size_t)snprintf(in + k, 64, "X-Pad: %040d\r\n", 0);
  sfeed_run(&http1_proto, &http1_h, NULL, (const uint8_t *)in, k, NULL, 0, false, 0, &r);
  snprintf(want, sizeof want, "(error %d)", RW_PARSE_FIELDS_TOO_LARGE);
  cr_expect_str_eq(r.log, want);
  static const char big[] = "POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n";
  sfeed_run(&http1_proto, &http1_h, NULL, (const uint8_t *)big, sizeof big - 1, NULL, 0, false, 0, &r);
  cr_expect_str_eq(r.log, "[POST / 1.1 framing 1 len 1048577 fields 1]");
  free(in);
}
