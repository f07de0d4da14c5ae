/* A message body streamed as it arrives (a spec's `stream(...)` part): framed as RFC 9112 6.3
 * says, its pieces handed to a handler one by one instead of gathered into one frame. Generated
 * parsers call rw_body_frame() once a message's fields are read and rw_body_next() for every
 * step after; applications see rw_body in the message's head and the pieces in their handler. */
#ifndef RINGWRIGHT_BODY_H
#define RINGWRIGHT_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "scan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rw_body_framing {
  RW_BODY_NONE,    /* no body: 1xx, 204, 304, a reply to HEAD, a request with no length */
  RW_BODY_LENGTH,  /* Content-Length bytes (`length`, maybe 0) */
  RW_BODY_CHUNKED, /* chunked: chunk data only; sizes, extensions and trailers are dropped */
  RW_BODY_CLOSE,   /* until the peer closes (a response with no length, `until_close`) */
} rw_body_framing;

/* How the body that follows a message's head is framed. */
typedef struct rw_body {
  rw_body_framing framing;
  uint64_t length; /* RW_BODY_LENGTH */
} rw_body;

/* What a streamed body reads next. */
enum rw_body_phase {
  RW_BODY_DATA,     /* body bytes: of the length, of the chunk, or up to the close */
  RW_BODY_SIZE,     /* a chunk's size line */
  RW_BODY_CRLF,     /* the CRLF after a chunk's data */
  RW_BODY_TRAILERS, /* the trailer section after the last chunk */
  RW_BODY_ENDING,   /* the end, not taken yet by its handler */
};

/* Where a streamed body stands between calls. Positions in it count from the first byte not yet
 * consumed, so the runtime may move the bytes it keeps. */
typedef struct rw_body_state {
  uint8_t framing, phase;
  uint32_t done; /* RW_BODY_ENDING: the bytes its event covers again (taken by an earlier one) */
  uint32_t scan; /* a size line: bytes searched; trailers: where the current line starts */
  uint64_t left; /* of the Content-Length body, or of the chunk */
} rw_body_state;

/* What one step of a body hands to the handlers: a piece, the end, or both (the last piece of a
 * length), and the state the body moves to once they took it. */
enum { RW_BODY_PIECE = 1, RW_BODY_END = 2 };
typedef struct rw_body_step {
  unsigned events;
  rw_span piece;
  size_t used; /* bytes the step consumes */
  rw_body_state next;
} rw_body_step;

/* The framing of a body after a field section whose length and coding fields were noted
 * (`nl`, `nc` times; lv, cv the first values). `none`: the message has no body whatever its
 * fields say (a status or a request method decides); `until_close`: with no length the body
 * runs to the close (a response) rather than being empty (a request). 0, or
 * RW_PARSE_BAD_DATA for framing that cannot be trusted: both fields, either twice, a bad
 * length, a coding other than chunked. */
int rw_body_frame(unsigned nl, rw_span lv, unsigned nc, rw_span cv, bool none, bool until_close, rw_body *out,
                  rw_body_state *st);

/* One step of the body in buf[0..len) (len > 0 unless the body's end is pending): 1 with *out
 * filled (commit out->next into *st once the handlers took it, or hand the same bytes again),
 * RW_PARSE_SKIP for framing bytes (out->used of them; *st moved on already), RW_PARSE_MORE,
 * or the error status (RW_PARSE_BAD_DATA, RW_PARSE_FIELDS_TOO_LARGE). `fs` scans size lines
 * and trailers (names of cls[] bytes, at most limit_fields). */
int rw_body_next(rw_body_state *st, rw_fields_scan *fs, const uint8_t *buf, size_t len, uint64_t limit_fields,
                 const uint8_t cls[256], rw_body_step *out);

#ifdef __cplusplus
}
#endif

#endif
