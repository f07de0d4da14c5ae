/* Feeding a generated parser with a streamed body (a stream() part: spec/http1_response.rw,
 * tests/specs/upload.rw) the way the runtime feeds a framed protocol: unconsumed bytes kept and
 * moved before more are appended, a message a handler refuses with -EAGAIN offered again (the
 * parser where it was), and the peer's close reported through on_eof. Heads, body bytes, ends and
 * errors go to a log, so that two ways of cutting the same input can be compared. The includer
 * supplies the protocol's head handler (it calls sfeed_note) and builds its handler table from
 * sfeed_take, sfeed_piece and sfeed_end. Shared by test_stream and fuzz_response. */
#ifndef RW_TEST_STREAM_FEED_H
#define RW_TEST_STREAM_FEED_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringwright/proto.h>

struct sfeed {
  char log[65536];
  size_t loglen;
  int eagain_left;   /* refuse this many messages (heads, pieces, ends), each once */
  bool refused_last; /* the last one offered was refused: take it when it comes again */
  const char *fault; /* an invariant the parser broke */
};

static struct sfeed *sfeed_cur;

static void sfeed_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sfeed_note(const char *fmt, ...)
{
  struct sfeed *r = sfeed_cur;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->log + r->loglen, sizeof r->log - r->loglen, fmt, ap);
  va_end(ap);
  r->loglen = n < 0 || (size_t)n >= sizeof r->log - r->loglen ? sizeof r->log - 1 : r->loglen + (size_t)n;
}

/* Whether a handler takes what it is offered now (false: it returns -EAGAIN). */
static bool sfeed_take(void)
{
  struct sfeed *r = sfeed_cur;
  if (r->eagain_left && !r->refused_last) {
    r->eagain_left--;
    r->refused_last = true;
    return false;
  }
  r->refused_last = false;
  return true;
}

static int sfeed_piece(rw_conn *c, rw_span piece)
{
  (void)c;
  struct sfeed *r = sfeed_cur;
  if (!sfeed_take())
    return -EAGAIN;
  if (!piece.len)
    r->fault = "an empty piece";
  /* The bytes as they are (a NUL among them too): every one of them is read. */
  size_t k = piece.len < sizeof r->log - 1 - r->loglen ? piece.len : sizeof r->log - 1 - r->loglen;
  memcpy(r->log + r->loglen, piece.p, k);
  r->loglen += k;
  r->log[r->loglen] = 0;
  return 0;
}

static int sfeed_end(rw_conn *c)
{
  (void)c;
  if (!sfeed_take())
    return -EAGAIN;
  sfeed_note("<end>");
  return 0;
}

/* Parses what buf[0..*len) holds and keeps the rest at its start; false after an error. */
static bool sfeed_parse(const rw_proto *proto, const void *h, void *parser, uint8_t *buf, size_t *len)
{
  struct sfeed *r = sfeed_cur;
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  size_t off = 0;
  bool ok = true;
  while (off < *len && !r->fault) {
    buf[*len] = 0;
    size_t used = 0;
    int rc = proto->next(parser, buf + off, *len - off, &used, msg);
    if (rc == RW_PARSE_MORE)
      break;
    if (used > *len - off)
      r->fault = "consumed past the input";
    else if (rc == RW_PARSE_SKIP)
      r->fault = used ? NULL : "skipped nothing";
    else if (rc < 0)
      sfeed_note("(error %d)", rc), ok = false;
    else if (!used)
      r->fault = "a message consumed nothing";
    else if (proto->dispatch(NULL, h, rc, msg) == -EAGAIN)
      continue; /* offered again: the same bytes */
    if (!ok || r->fault)
      break;
    off += used;
  }
  memmove(buf, buf + off, *len - off);
  *len -= off;
  return ok && !r->fault;
}

/* The log of in[0..n) delivered in pieces ending at cuts[0..ncuts), then the rest, then the
 * peer's close (`eof`); `setup` prepares the parser (expect head); `eagain`: messages refused
 * once each. */
static void sfeed_run(const rw_proto *proto, const void *h, void (*setup)(void *parser), const uint8_t *in,
                      size_t n, const size_t *cuts, int ncuts, bool eof, int eagain, struct sfeed *r)
{
  r->loglen = 0;
  r->log[0] = 0;
  r->eagain_left = eagain;
  r->refused_last = false;
  r->fault = NULL;
  sfeed_cur = r;
  _Alignas(max_align_t) unsigned char parser[2048];
  if (proto->parser_size > sizeof parser)
    abort();
  proto->parser_init(parser);
  if (setup)
    setup(parser);
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
    ok = sfeed_parse(proto, h, parser, buf, &len);
  }
  if (ok && len)
    sfeed_note("(pending %zu)", len);
  else if (ok && eof && proto->on_eof) {
    r->eagain_left = 0; /* (the close: nothing can be offered again) */
    int rc = proto->on_eof(NULL, h, parser);
    if (rc)
      sfeed_note("(close %d)", rc);
  }
  if (r->fault)
    sfeed_note("(fault: %s)", r->fault); /* (so that no expected log can match) */
  free(buf);
}

/* A fuzz input (its first byte: the peer's close at the end or not, and the seed of the cuts)
 * read whole, and cut into pieces of 1-9 bytes with some heads, pieces and ends refused once
 * with -EAGAIN: both must log the same heads, body bytes, ends and errors, and no invariant
 * may break; aborts otherwise. */
static inline void sfeed_fuzz(const rw_proto *proto, const void *h, void (*setup)(void *parser),
                              const uint8_t *data, size_t size)
{
  static struct sfeed whole, split;
  static size_t cuts[4096];
  if (size < 1 || size > sizeof cuts / sizeof *cuts)
    return;
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
  sfeed_run(proto, h, setup, data, size, NULL, 0, eof, 0, &whole);
  sfeed_run(proto, h, setup, data, size, cuts, ncuts, eof, (int)(seed % 4), &split);
  if (whole.fault || split.fault || whole.loglen != split.loglen ||
      memcmp(whole.log, split.log, whole.loglen)) {
    fprintf(stderr, "whole and split disagree:\n--- whole\n%s\n--- split\n%s\n", whole.log, split.log);
    abort();
  }
}

#endif
