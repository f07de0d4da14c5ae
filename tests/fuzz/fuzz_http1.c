/* libFuzzer target for the generated HTTP/1.1 request parser (spec/http1.rw), its body
 * streamed: each input is read whole and cut (tests/stream_feed.h's sfeed_fuzz), heads, body
 * bytes, ends and errors compared. */
#include <ringwright/list.h>

#include "../stream_feed.h"
#include "http1.gen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int head(rw_conn *c, const struct http1_request *m)
{
  (void)c;
  if (!sfeed_take())
    return -EAGAIN;
  sfeed_note("[%.*s %.*s %.*s.%.*s %d %llu %u]", (int)m->method.len, (const char *)m->method.p,
             (int)m->target.len, (const char *)m->target.p, (int)m->major.len, (const char *)m->major.p,
             (int)m->minor.len, (const char *)m->minor.p, (int)m->body.framing,
             (unsigned long long)m->body.length, m->headers.count);
  return 0;
}

static int refused(rw_conn *c, int status)
{
  (void)c, (void)status;
  return 0;
}

static const struct http1_handlers handlers = {
    .request = head, .request_body = sfeed_piece, .request_end = sfeed_end, .refused = refused};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  sfeed_fuzz(&http1_proto, &handlers, NULL, data, size);
  return 0;
}
