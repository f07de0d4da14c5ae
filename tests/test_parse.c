/* Generated parsers under split input: every corpus is parsed whole, then split at every byte
 * boundary, then fed byte by byte; each run must produce exactly the same messages. Between
 * feeds the unconsumed bytes are moved to a different address, as the runtime does when it
 * moves a partial frame into an accumulator slot. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.gen.h"
#include "kvt.gen.h"
#include "ping.gen.h"

typedef void (*describe_fn)(int cmd, const void *msg, char *out, size_t outlen);

struct feeder {
  const rw_proto *proto;
  describe_fn describe;
  _Alignas(max_align_t) unsigned char parser[512];
  uint8_t *bufs[2]; /* pending bytes alternate between two buffers, so their address changes */
  int cur;
  size_t pending, cap;
  char log[1 << 16];
  size_t loglen;
  bool closed;
};

static void feeder_init(struct feeder *f, const rw_proto *proto, describe_fn describe, size_t cap)
{
  memset(f, 0, sizeof *f);
  cr_assert(proto->parser_size <= sizeof f->parser);
  f->proto = proto;
  f->describe = describe;
  f->cap = cap;
  f->bufs[0] = malloc(cap + 1);
  f->bufs[1] = malloc(cap + 1);
  proto->parser_init(f->parser);
}

static void feeder_fini(struct feeder *f)
{
  free(f->bufs[0]);
  free(f->bufs[1]);
}

static void logf_(struct feeder *f, const char *s)
{
  size_t n = strlen(s);
  cr_assert(f->loglen + n + 2 < sizeof f->log);
  memcpy(f->log + f->loglen, s, n);
  f->loglen += n;
  f->log[f->loglen++] = '\n';
  f->log[f->loglen] = 0;
}

static void feed(struct feeder *f, const uint8_t *data, size_t n)
{
  if (f->closed)
    return;
  uint8_t *src = f->bufs[f->cur], *dst = f->bufs[f->cur ^ 1];
  cr_assert(f->pending + n <= f->cap, "test buffer too small");
  memcpy(dst, src, f->pending);
  memcpy(dst + f->pending, data, n);
  memset(src, 0xAA, f->cap + 1); /* poison the old address: a stale pointer reads garbage */
  f->cur ^= 1;
  size_t len = f->pending + n, off = 0;
  dst[len] = 0;
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  while (off < len) {
    size_t used = 0;
    int rc = f->proto->next(f->parser, dst + off, len - off, &used, msg);
    if (rc == RW_PARSE_MORE)
      break;
    char line[1024];
    if (rc >= 0)
      f->describe(rc, msg, line, sizeof line);
    else
      snprintf(line, sizeof line, "error %d", rc);
    logf_(f, line);
    if (rc == RW_PARSE_OVERLONG || rc == RW_PARSE_INVALID) {
      f->closed = true;
      return;
    }
    cr_assert(used > 0 && used <= len - off);
    off += used;
  }
  memmove(dst, dst + off, len - off);
  f->pending = len - off;
}

/* Parses `in` whole, at every split point, and byte by byte; all logs must match. */
static void check_splits(const rw_proto *proto, describe_fn describe, const char *in, size_t n,
                         const char *expect)
{
  struct feeder whole;
  feeder_init(&whole, proto, describe, n + 1);
  feed(&whole, (const uint8_t *)in, n);
  cr_assert_str_eq(whole.log, expect);
  for (size_t cut = 1; cut < n; cut++) {
    struct feeder f;
    feeder_init(&f, proto, describe, n + 1);
    feed(&f, (const uint8_t *)in, cut);
    feed(&f, (const uint8_t *)in + cut, n - cut);
    cr_assert_str_eq(f.log, expect, "split at %zu", cut);
    feeder_fini(&f);
  }
  struct feeder bytes;
  feeder_init(&bytes, proto, describe, n + 1);
  for (size_t i = 0; i < n; i++)
    feed(&bytes, (const uint8_t *)in + i, 1);
  cr_assert_str_eq(bytes.log, expect, "byte by byte");
  feeder_fini(&bytes);
  feeder_fini(&whole);
}

static void ping_describe(int cmd, const void *msg, char *out, size_t outlen)
{
  (void)msg;
  snprintf(out, outlen, "%s", ping_proto.command_names[cmd]);
}

static void kvt_describe(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union kvt_msg *m = vmsg;
  switch (cmd) {
  case KVT_CMD_GET:
    snprintf(out, outlen, "get [%.*s]", (int)m->get.key.len, m->get.key.p);
    break;
  case KVT_CMD_SET:
    snprintf(out, outlen, "set [%.*s] [%.*s]", (int)m->set.key.len, m->set.key.p,
             (int)m->set.flags.len, m->set.flags.p);
    break;
  default:
    snprintf(out, outlen, "%s", kvt_proto.command_names[cmd]);
  }
}

#define CHECK(proto, describe, lit, expect) check_splits(proto, describe, lit, sizeof lit - 1, expect)

Test(ping, corpus_at_every_split)
{
  CHECK(&ping_proto, ping_describe,
        "PING\r\nping\r\n \t PING\t \r\nPING\nfoo\r\nPINGPING\r\n\r\nPiNg\r\nPING\r\n",
        "ping\nping\nping\nping\nerror -2\nerror -2\nerror -2\nerror -2\nping\n");
}

Test(ping, binary_junk_is_an_unknown_line_not_a_crash)
{
  CHECK(&ping_proto, ping_describe, "\x00\x01\xff\x80PING\r\nPING\r\n\x00\n", "error -2\nping\nerror -2\n");
}

Test(ping, incomplete_frames_consume_nothing)
{
  struct feeder f;
  feeder_init(&f, &ping_proto, ping_describe, 64);
  feed(&f, (const uint8_t *)"PIN", 3);
  cr_expect_eq(f.pending, 3);
  cr_expect_str_eq(f.log, "");
  feed(&f, (const uint8_t *)"G\r", 2);
  cr_expect_eq(f.pending, 5);
  feed(&f, (const uint8_t *)"\n", 1);
  cr_expect_eq(f.pending, 0);
  cr_expect_str_eq(f.log, "ping\n");
  feeder_fini(&f);
}

/* 64 KiB is the longest line ping buffers; one byte more is refused however it arrives. */
static char *long_line(size_t n)
{
  char *s = malloc(n + 1);
  memset(s, ' ', n);
  memcpy(s + n - 6, "PING\r\n", 6);
  s[n] = 0;
  return s;
}

Test(ping, line_limit_is_exact_and_split_independent)
{
  for (size_t n = 65535; n <= 65537; n++) {
    char *s = long_line(n);
    const char *expect = n <= 65536 ? "ping\n" : "error -3\n";
    struct feeder f;
    feeder_init(&f, &ping_proto, ping_describe, n + 1);
    feed(&f, (const uint8_t *)s, n);
    cr_expect_str_eq(f.log, expect, "whole, n=%zu", n);
    feeder_fini(&f);
    const size_t cuts[] = {1, 4096, 65530, 65536, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0] && cuts[i] < n; i++) {
      feeder_init(&f, &ping_proto, ping_describe, n + 1);
      feed(&f, (const uint8_t *)s, cuts[i]);
      feed(&f, (const uint8_t *)s + cuts[i], n - cuts[i]);
      cr_expect_str_eq(f.log, expect, "n=%zu cut=%zu", n, cuts[i]);
      feeder_fini(&f);
    }
    free(s);
  }
}

Test(kvt, captures_survive_every_split)
{
  CHECK(&kvt_proto, kvt_describe,
        "get foo\r\nset k1 42\r\nset some:key 7 noreply\r\nget\r\nQUIT\r\nget after\r\n",
        "get [foo]\nset [k1] [42]\nset [some:key] [7]\nerror -2\nquit\nget [after]\n");
}

Test(kvt, token_bounds_are_enforced)
{
  char in[600];
  int n = snprintf(in, sizeof in, "get %0250d\r\nget %0251d\r\nset k 123456789012345678901\r\n", 0, 0);
  char expect[600];
  snprintf(expect, sizeof expect, "get [%0250d]\nerror -2\nerror -2\n", 0);
  check_splits(&kvt_proto, kvt_describe, in, (size_t)n, expect);
}

Test(kvt, overlong_closes)
{
  char in[400];
  memset(in, 'x', sizeof in);
  memcpy(in, "get ok\r\n", 8);
  check_splits(&kvt_proto, kvt_describe, in, sizeof in, "get [ok]\nerror -3\n");
}

static void echo_describe(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union echo_msg *m = vmsg;
  snprintf(out, outlen, "%s %zu", echo_proto.command_names[cmd], m->data.data.len);
}

Test(echo, raw_takes_every_chunk_whole)
{
  struct feeder f;
  feeder_init(&f, &echo_proto, echo_describe, 64);
  feed(&f, (const uint8_t *)"abc", 3);
  feed(&f, (const uint8_t *)"\0\r\n", 3);
  cr_expect_str_eq(f.log, "data 3\ndata 3\n");
  cr_expect_eq(f.pending, 0);
  feeder_fini(&f);
}

Test(proto, descriptors)
{
  cr_expect_str_eq(ping_proto.name, "ping");
  cr_expect_eq(ping_proto.max_frame, 65536);
  cr_expect_eq(echo_proto.max_frame, 0);
  cr_expect_eq(kvt_proto.ncommands, 3);
  cr_expect_eq(kvt_proto.check_handlers(NULL), -EINVAL);
  struct kvt_handlers h = {0};
  cr_expect_eq(kvt_proto.check_handlers(&h), -EINVAL, "unset handlers are refused at start");
  cr_expect_eq(ping_proto.check_handlers(NULL), 0, "ping needs no handlers");
}
