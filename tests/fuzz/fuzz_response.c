/* libFuzzer target for the generated HTTP/1.1 response parser (spec/http1_response.rw), its
 * body streamed: each input (its first byte: a reply to HEAD or not, the peer's close at the end
 * or not, and the seed of the cuts) is read whole, and cut into pieces of 1-9 bytes with some
 * heads, pieces and ends refused once with -EAGAIN; both must log the same heads, body bytes,
 * ends and errors, and no invariant may break (tests/stream_feed.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringwright/list.h>

#include "../stream_feed.h"
#include "http1_response.gen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int head(rw_conn *c, const struct http1_response_response *m)
{
  (void)c;
  if (!sfeed_take())
    return -EAGAIN;
  sfeed_note("[%u %.*s.%.*s '%.*s' %d %llu %u]", m->code, (int)m->major.len, (const char *)m->major.p,
             (int)m->minor.len, (const char *)m->minor.p, (int)m->reason.len, (const char *)m->reason.p,
             (int)m->body.framing, (unsigned long long)m->body.length, m->headers.count);
  return 0;
}

static const struct http1_response_handlers handlers = {
    .response = head, .response_body = sfeed_piece, .response_end = sfeed_end};

static void head_request(void *parser)
{
  http1_response_parser_expect_head(parser, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct sfeed whole, split;
  static size_t cuts[4096];
  if (size < 1 || size > sizeof cuts / sizeof *cuts)
    return 0;
  void (*setup)(void *) = data[0] & 1 ? head_request : NULL;
  bool eof = data[0] & 2;
  uint32_t seed = data[0] | 1u;
  data++;
  size--;
  int ncuts = 0;
  for (size_t off = 0; off < size;) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    off += 1 + seed % 9;
    if (off < size)
      cuts[ncuts++] = off;
  }
  sfeed_run(&http1_response_proto, &handlers, setup, data, size, NULL, 0, eof, 0, &whole);
  sfeed_run(&http1_response_proto, &handlers, setup, data, size, cuts, ncuts, eof, (int)(seed % 4), &split);
  if (whole.fault || split.fault || whole.loglen != split.loglen ||
      memcmp(whole.log, split.log, whole.loglen)) {
    fprintf(stderr, "whole and split disagree:\n--- whole\n%s\n--- split\n%s\n", whole.log, split.log);
    abort();
  }
  return 0;
}
