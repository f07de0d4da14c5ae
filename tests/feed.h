/* Feeding a generated parser the way the runtime does: unconsumed bytes are kept and moved to
 * a new address before the next bytes are appended, and every message or error is written to
 * a log through the protocol's describer. Used by test_parse and by the fuzz targets. */
#ifndef RW_TEST_FEED_H
#define RW_TEST_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringwright/proto.h>

typedef void (*describe_fn)(int cmd, const void *msg, char *out, size_t outlen);

struct feeder {
  const rw_proto *proto;
  describe_fn describe;
  _Alignas(16) unsigned char parser[512];
  uint8_t *bufs[2]; /* pending bytes alternate between two buffers, so their address changes */
  int cur;
  size_t pending, cap;
  char *log;
  size_t loglen, logcap;
  bool closed;
  bool errors_close; /* the spec closes on every error (resp, http1), not only OVERLONG/INVALID */
  int closes_on;     /* one more status on which the spec closes (memcache_binary: BAD_DATA), or 0 */
  const char *fault; /* set when the parser broke an invariant */
  size_t done;       /* bytes of the stream consumed so far */
  /* Where the last RW_PARSE_MORE's length hint said the frame ends at least (0: none): a frame
   * that ends before it is a fault. `hints`: frames that ended while one was set. */
  size_t hint_end;
  unsigned hints;
  /* When set: frame_ends[i] says a frame of the stream may end after its first i bytes (an
   * oracle's framing, e.g. memcache_frames). A message or error ending elsewhere is a fault:
   * it was made from bytes inside a declared data block. */
  const uint8_t *frame_ends;
  /* RW_PARSE_HEAD (a body awaited, which depends on how the input was split): counted, the
   * last one described here, and kept out of the log. */
  unsigned heads;
  char head[512];
};

/* `cap`: the most bytes the feeder may have to hold (the runtime's slot). 0 or -ENOMEM. */
int feeder_init(struct feeder *f, const rw_proto *proto, describe_fn describe, size_t cap);
void feeder_fini(struct feeder *f);
/* Appends n bytes and parses what it can; false once an invariant broke (see f->fault). */
bool feed(struct feeder *f, const uint8_t *data, size_t n);

/* memcached's framing of data[0..n), written apart from the generated parser: lines end at LF;
 * a storage line (set, add, replace, append, prepend, cas; leading spaces allowed) with at least
 * four tokens after its verb whose fifth token is decimal digits that fit 64 bits declares a
 * block of that many bytes (cut to 32 bits) plus CRLF, whatever else is wrong with the line.
 * Sets out[i] = 1 where a frame may end (out holds n + 1 bytes). */
void memcache_frames(const uint8_t *data, size_t n, uint8_t *out);

/* Describers: a message as one line of text, every field's bytes read (so a span that points
 * outside the buffer is caught by the sanitizers). */
void describe_ping(int cmd, const void *msg, char *out, size_t outlen);
void describe_echo(int cmd, const void *msg, char *out, size_t outlen);
void describe_kvt(int cmd, const void *msg, char *out, size_t outlen);
void describe_memcache(int cmd, const void *msg, char *out, size_t outlen);
void describe_resp(int cmd, const void *msg, char *out, size_t outlen);
void describe_lenpfx(int cmd, const void *msg, char *out, size_t outlen);
void describe_memcache_binary(int cmd, const void *msg, char *out, size_t outlen);
void describe_mqtt(int cmd, const void *msg, char *out, size_t outlen);
void describe_pbdelim(int cmd, const void *msg, char *out, size_t outlen);
void describe_resp_reply(int cmd, const void *msg, char *out, size_t outlen);

#endif
