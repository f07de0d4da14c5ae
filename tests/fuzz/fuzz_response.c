/* libFuzzer target for the generated HTTP/1.1 response parser (spec/http1_response.rw), its
 * body streamed: each input (its first byte: a reply to HEAD or not, then as sfeed_fuzz says)
 * is read whole and cut (tests/stream_feed.h). */
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
  if (size >= 1)
    sfeed_fuzz(&http1_response_proto, &handlers, data[0] & 1 ? head_request : NULL, data, size);
  return 0;
}
