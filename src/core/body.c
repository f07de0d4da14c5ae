/* Streamed bodies (include/ringwright/body.h): the framing a generated parser decides once a
 * message's fields are read, and the steps of the body after it. Runtime code, so that each
 * generated parser holds only the calls. */
#include <ringwright/body.h>
#include <ringwright/proto.h>
#include <ringwright/scan.h>

int rw_body_frame(unsigned nl, rw_span lv, unsigned nc, rw_span cv, bool none, bool until_close, rw_body *out,
                  rw_body_state *st)
{
  uint64_t n = 0;
  /* Checked even where no body follows: a message whose framing is ambiguous is not trusted. */
  if ((nl && nc) || nl > 1 || nc > 1 || (nc && !rw_span_is_ci(cv, "chunked")))
    return RW_PARSE_BAD_DATA;
  if (nl && rw_parse_u64(lv.p, lv.p + lv.len, UINT64_MAX, &n) < 0)
    return RW_PARSE_BAD_DATA;
  rw_body_framing f = none          ? RW_BODY_NONE
                      : nc          ? RW_BODY_CHUNKED
                      : nl          ? RW_BODY_LENGTH
                      : until_close ? RW_BODY_CLOSE
                                    : RW_BODY_NONE;
  *out = (rw_body){.framing = f, .length = f == RW_BODY_LENGTH ? n : 0};
  uint8_t phase = f == RW_BODY_CHUNKED                               ? RW_BODY_SIZE
                  : f == RW_BODY_NONE || (f == RW_BODY_LENGTH && !n) ? RW_BODY_ENDING
                                                                     : RW_BODY_DATA;
  *st = (rw_body_state){.framing = (uint8_t)f, .phase = phase, .left = out->length};
  return 0;
}

/* Body bytes: as many as there are, up to the length or the chunk's end. */
static int data(const rw_body_state *st, const uint8_t *buf, size_t len, rw_body_step *out)
{
  size_t n = st->framing == RW_BODY_CLOSE || st->left > len ? len : (size_t)st->left;
  *out = (rw_body_step){.events = RW_BODY_PIECE, .piece = {buf, n}, .used = n, .next = *st};
  if (st->framing == RW_BODY_CLOSE)
    return 1;
  out->next.left -= n;
  if (out->next.left)
    return 1;
  if (st->framing == RW_BODY_LENGTH) {
    out->events |= RW_BODY_END;
  } else {
    out->next.phase = RW_BODY_CRLF;
  }
  return 1;
}

static int size(rw_body_state *st, rw_fields_scan *fs, const uint8_t *buf, size_t len, rw_body_step *out)
{
  size_t pos = 0;
  fs->scan = st->scan;
  int r = rw_scan_chunk_size(fs, &pos, buf, len);
  st->scan = (uint32_t)fs->scan;
  if (r <= 0)
    return r ? r : RW_PARSE_MORE;
  st->left = fs->c_len;
  st->scan = 0;
  st->phase = fs->c_len ? RW_BODY_DATA : RW_BODY_TRAILERS;
  if (!fs->c_len)
    rw_scan_fields_start(fs, 0); /* (from the byte after this line, once it is consumed) */
  out->used = pos;
  return RW_PARSE_SKIP;
}

static int crlf(rw_body_state *st, const uint8_t *buf, size_t len, rw_body_step *out)
{
  if (buf[0] != '\r' || (len > 1 && buf[1] != '\n'))
    return RW_PARSE_BAD_DATA;
  if (len < 2)
    return RW_PARSE_MORE;
  st->phase = RW_BODY_SIZE;
  st->scan = 0;
  out->used = 2;
  return RW_PARSE_SKIP;
}

/* The trailers are checked like fields and dropped. Once read, the end is pending: its event
 * covers them, however often it is offered. */
static int trailers(rw_body_state *st, rw_fields_scan *fs, const uint8_t *buf, size_t len, uint64_t limit,
                    const uint8_t cls[256])
{
  size_t pos = st->scan;
  int r = rw_scan_fields(fs, &pos, buf, len, limit, cls, NULL);
  st->scan = (uint32_t)pos;
  if (r <= 0)
    return r ? r : RW_PARSE_MORE;
  st->phase = RW_BODY_ENDING;
  st->done = (uint32_t)pos;
  return 1;
}

int rw_body_next(rw_body_state *st, rw_fields_scan *fs, const uint8_t *buf, size_t len, uint64_t limit_fields,
                 const uint8_t cls[256], rw_body_step *out)
{
  int r;
  out->used = 0;
  switch (st->phase) {
  case RW_BODY_DATA: return data(st, buf, len, out);
  case RW_BODY_SIZE: return size(st, fs, buf, len, out);
  case RW_BODY_CRLF: return crlf(st, buf, len, out);
  case RW_BODY_TRAILERS:
    if ((r = trailers(st, fs, buf, len, limit_fields, cls)) != 1)
      return r;
    /* fall through */
  default: *out = (rw_body_step){.events = RW_BODY_END, .used = st->done, .next = *st}; return 1;
  }
}
