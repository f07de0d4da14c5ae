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
#include "response_feed.h"

static void expect(const char *in, bool head, const char *want)
{
  size_t n = strlen(in);
  static struct rfeed whole, split;
  rfeed_run((const uint8_t *)in, n, NULL, 0, head, 0, &whole);
  cr_assert_str_eq(whole.log, want, "whole input");
  for (size_t k = 1; k < n; k++) {
    rfeed_run((const uint8_t *)in, n, &k, 1, head, 0, &split);
    cr_assert_str_eq(split.log, want, "split at %zu", k);
    rfeed_run((const uint8_t *)in, n, &k, 1, head, 2, &split);
    cr_assert_str_eq(split.log, want, "split at %zu, two pieces refused once", k);
  }
  if (n > 160)
    return;
  for (size_t a = 1; a < n; a++)
    for (size_t b = a + 1; b < n; b++) {
      size_t cuts[2] = {a, b};
      rfeed_run((const uint8_t *)in, n, cuts, 2, head, 0, &split);
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
    static struct rfeed whole, split;
    rfeed_run((const uint8_t *)bad[i], n, NULL, 0, false, 0, &whole);
    cr_assert(strstr(whole.log, "(error "), "accepted: %s", bad[i]);
    for (size_t k = 1; k < n; k++) {
      rfeed_run((const uint8_t *)bad[i], n, &k, 1, false, 0, &split);
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
  static struct rfeed r;
  rfeed_run((const uint8_t *)in, n, NULL, 0, false, 0, &r);
  char want[32];
  snprintf(want, sizeof want, "(error %d)", RW_PARSE_FIELDS_TOO_LARGE);
  cr_expect_str_eq(r.log, want);
  free(in);
}
