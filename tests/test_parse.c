/* Generated parsers under split input: every corpus is parsed whole, then split at every byte
 * boundary, then fed byte by byte; each run must produce exactly the same messages. Between
 * feeds the unconsumed bytes are moved to a different address, as the runtime does when it
 * moves a partial frame into an accumulator slot. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feed.h"
#include "echo.gen.h"
#include "kvt.gen.h"
#include "lenpfx.gen.h"
#include "memcache_binary.gen.h"
#include "memcache.gen.h"
#include "mqtt.gen.h"
#include "pbdelim.gen.h"
#include "resp.gen.h"
#include "ping.gen.h"

static bool errors_close; /* check_splits() hands it to every feeder it makes */

static void feeder_init_t(struct feeder *f, const rw_proto *proto, describe_fn describe, size_t cap)
{
  cr_assert_eq(feeder_init(f, proto, describe, cap), 0);
  f->errors_close = errors_close;
}

static void feed_t(struct feeder *f, const uint8_t *data, size_t n)
{
  cr_assert(feed(f, data, n), "%s", f->fault);
}

/* Parses `in` whole, at every split point, and byte by byte; all logs must match. */
static void check_splits(const rw_proto *proto, describe_fn describe, const char *in, size_t n,
                         const char *expect)
{
  struct feeder whole;
  feeder_init_t(&whole, proto, describe, n + 1);
  feed_t(&whole, (const uint8_t *)in, n);
  cr_assert_str_eq(whole.log, expect);
  for (size_t cut = 1; cut < n; cut++) {
    struct feeder f;
    feeder_init_t(&f, proto, describe, n + 1);
    feed_t(&f, (const uint8_t *)in, cut);
    feed_t(&f, (const uint8_t *)in + cut, n - cut);
    cr_assert_str_eq(f.log, expect, "split at %zu", cut);
    feeder_fini(&f);
  }
  struct feeder bytes;
  feeder_init_t(&bytes, proto, describe, n + 1);
  for (size_t i = 0; i < n; i++)
    feed_t(&bytes, (const uint8_t *)in + i, 1);
  cr_assert_str_eq(bytes.log, expect, "byte by byte");
  feeder_fini(&bytes);
  feeder_fini(&whole);
}

/* Feeds `in` in one piece to a fresh feeder holding `cap` bytes; its log must be `expect`. */
static void check_one_feed(const rw_proto *proto, describe_fn describe, size_t cap, const char *in, size_t n,
                           const char *expect)
{
  struct feeder f;
  feeder_init_t(&f, proto, describe, cap);
  feed_t(&f, (const uint8_t *)in, n);
  cr_expect_str_eq(f.log, expect);
  feeder_fini(&f);
}

#define CHECK(proto, describe, lit, expect) check_splits(proto, describe, lit, sizeof lit - 1, expect)

Test(ping, corpus_at_every_split)
{
  CHECK(&ping_proto, describe_ping,
        "PING\r\nping\r\n \t PING\t \r\nPING\nfoo\r\nPINGPING\r\n\r\nPiNg\r\nPING\r\n",
        "ping\nping\nping\nping\nerror -2\nerror -2\nerror -2\nerror -2\nping\n");
}

Test(ping, binary_junk_is_an_unknown_line_not_a_crash)
{
  CHECK(&ping_proto, describe_ping, "\x00\x01\xff\x80PING\r\nPING\r\n\x00\n", "error -2\nping\nerror -2\n");
}

Test(ping, incomplete_frames_consume_nothing)
{
  struct feeder f;
  feeder_init_t(&f, &ping_proto, describe_ping, 64);
  feed_t(&f, (const uint8_t *)"PIN", 3);
  cr_expect_eq(f.pending, 3);
  cr_expect_str_eq(f.log, "");
  feed_t(&f, (const uint8_t *)"G\r", 2);
  cr_expect_eq(f.pending, 5);
  feed_t(&f, (const uint8_t *)"\n", 1);
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
    feeder_init_t(&f, &ping_proto, describe_ping, n + 1);
    feed_t(&f, (const uint8_t *)s, n);
    cr_expect_str_eq(f.log, expect, "whole, n=%zu", n);
    feeder_fini(&f);
    const size_t cuts[] = {1, 4096, 65530, 65536, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0] && cuts[i] < n; i++) {
      feeder_init_t(&f, &ping_proto, describe_ping, n + 1);
      feed_t(&f, (const uint8_t *)s, cuts[i]);
      feed_t(&f, (const uint8_t *)s + cuts[i], n - cuts[i]);
      cr_expect_str_eq(f.log, expect, "n=%zu cut=%zu", n, cuts[i]);
      feeder_fini(&f);
    }
    free(s);
  }
}

Test(kvt, captures_survive_every_split)
{
  CHECK(&kvt_proto, describe_kvt,
        "get foo\r\nset k1 42\r\nset some:key 7 noreply\r\nget\r\nQUIT\r\nget after\r\n",
        "get [foo]\nset [k1] [42]\nset [some:key] [7]\nerror -2\nquit\nget [after]\n");
}

Test(kvt, word_lists_survive_a_continuation)
{
  CHECK(&kvt_proto, describe_kvt, "put a bb  ccc 3\r\nxyz\r\nget k\r\n",
        "put 3 [xyz] [a] [bb] [ccc]\nget [k]\n");
}

Test(kvt, token_bounds_are_enforced)
{
  char in[600];
  int n = snprintf(in, sizeof in, "get %0250d\r\nget %0251d\r\nset k 123456789012345678901\r\n", 0, 0);
  char expect[600];
  snprintf(expect, sizeof expect, "get [%0250d]\nerror -2\nerror -2\n", 0);
  check_splits(&kvt_proto, describe_kvt, in, (size_t)n, expect);
}

Test(kvt, overlong_closes)
{
  char in[400];
  memset(in, 'x', sizeof in);
  memcpy(in, "get ok\r\n", 8);
  check_splits(&kvt_proto, describe_kvt, in, sizeof in, "get [ok]\nerror -3\n");
}

Test(echo, raw_takes_every_chunk_whole)
{
  struct feeder f;
  feeder_init_t(&f, &echo_proto, describe_echo, 64);
  feed_t(&f, (const uint8_t *)"abc", 3);
  feed_t(&f, (const uint8_t *)"\0\r\n", 3);
  cr_expect_str_eq(f.log, "data 3\ndata 3\n");
  cr_expect_eq(f.pending, 0);
  feeder_fini(&f);
}

Test(proto, descriptors)
{
  cr_expect_str_eq(ping_proto.name, "ping");
  cr_expect_eq(ping_proto.max_frame, 65536);
  cr_expect_eq(echo_proto.max_frame, 0);
  cr_expect_eq(kvt_proto.ncommands, 4);
  cr_expect_eq(kvt_proto.check_handlers(NULL), -EINVAL);
  struct kvt_handlers h = {0};
  cr_expect_eq(kvt_proto.check_handlers(&h), -EINVAL, "unset handlers are refused at start");
  cr_expect_eq(ping_proto.check_handlers(NULL), 0, "ping needs no handlers");
}

/* ---- memcache: numbers, data blocks, lists, refused blocks ---- */

Test(memcache, corpus_at_every_split)
{
  CHECK(&memcache_proto, describe_memcache,
        "set foo 5 0 3\r\nbar\r\n"
        "get foo\r\nget a b  c\n"
        "add k 4294967295 -1 0 noreply\r\n\r\n"
        "append k 0 100 4\r\n\r\n\001x\r\n"
        "cas k 1 2 1 18446744073709551615\r\nz\r\n"
        "delete k noreply\r\n"
        "incr n 18446744073709551615\r\n"
        "touch k -5\r\nstats\r\nstats items\r\nversion\r\nflush_all\r\nbogus\r\n",
        "set [foo] 5 0 3 [bar]\nget [foo]\nget [a] [b] [c]\nadd [k] 4294967295 -1 0 [] noreply\n"
        "append [k] 0 100 4 [\r\n\001x]\ncas [k] 1 1 18446744073709551615 [z]\ndelete [k] noreply\n"
        "incr [n] 18446744073709551615\ntouch [k] -5\nstats []\nstats [ items]\nversion\nflush_all\n"
        "error -2\n");
}

Test(memcache, errors_are_memcacheds)
{
  /* A number that is no number, a delta past 64 bits and a key past 250 bytes are refused with
   * their own replies, the line consumed and the connection kept; a data block not followed by
   * \r\n is a bad chunk. Flags past 32 bits wrap, as memcached reads them. */
  char expect[256];
  /* Token indexes in spec/memcache.rw: key 4, flags 6, delta 11. After a bad chunk memcached
   * has consumed <bytes>+2 and reads the leftover "\r\n" as an empty, unknown command. */
  snprintf(expect, sizeof expect,
           "set [k] 0 0 1 [A]\nerror %d\nerror %d\nerror %d\nerror -2\nget [x]\nerror %d\n",
           RW_PARSE_SPEC_ERROR(6), RW_PARSE_SPEC_ERROR(11), RW_PARSE_BAD_DATA, RW_PARSE_SPEC_ERROR(4));
  CHECK(&memcache_proto, describe_memcache,
        "set k 4294967296 0 1\r\nA\r\n"
        "set k 0x 0 1\r\nB\r\n"
        "incr k 18446744073709551616\r\n"
        "set k 0 0 1\r\nabc\r\n"
        "get x\r\n"
        "delete "
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\r\n",
        expect);
}

/* The smuggling shapes: whenever a storage line is refused after its length could be read, its
 * block is skipped, never parsed as commands; lines are split as memcached splits them. */
Test(memcache, refused_lines_skip_their_data)
{
  static const char in[] = "set \001ctl 0 0 9\r\nflush_all\r\n"   /* a control byte in a key: taken */
                           "set a\rb 0 0 11\r\nflush_all\r\n\r\n" /* CR in a key: refused, block skipped */
                           "set k 0 0 15 junk\r\nget insidekey\r\n\r\n" /* a fifth token: ignored */
                           "set k 0 0 15 a b\r\nget insidekey\r\n\r\n"  /* too many tokens: ERROR, skipped */
                           "set k 0x 0 11\r\nflush_all\r\n\r\n"         /* bad flags: refused, skipped */
                           "set  k  0  0  3  \nabc\r\n"                 /* spaces, LF alone */
                           "cas k 0 0 11\r\nflush_all\r\n\r\n"    /* cas without its unique: ERROR, skipped */
                           "set k 0 0 9 noreply\r\nflush_all\n\n" /* quiet, bad chunk: nothing at all */
                           "set k 0 x 11 noreply\r\nflush_all\r\n\r\n" /* quiet, refused: nothing, skipped */
                           "set k 0 0 x\r\n" /* no length: refused, nothing to skip */
                           "verbosity noreply\r\nversion a b\r\n";
  char expect[512];
  snprintf(expect, sizeof expect,
           "set [\001ctl] 0 0 9 [flush_all]\nbad_store\nset [k] 0 0 15 [get insidekey\r\n]\n"
           "store_args\nerror %d\nset [k] 0 0 3 [abc]\ncas_args\nerror %d\nverbosity_quiet\nversion\n",
           RW_PARSE_SPEC_ERROR(6), RW_PARSE_SPEC_ERROR(9));
  check_splits(&memcache_proto, describe_memcache, in, sizeof in - 1, expect);
  /* And the oracle agrees on where frames end. */
  struct feeder f;
  uint8_t ends[sizeof in];
  memcache_frames((const uint8_t *)in, sizeof in - 1, ends);
  feeder_init_t(&f, &memcache_proto, describe_memcache, sizeof in);
  f.frame_ends = ends;
  feed_t(&f, (const uint8_t *)in, sizeof in - 1);
  cr_expect_str_eq(f.log, expect);
  feeder_fini(&f);
}

/* A value past `limit data` is refused and then discarded as it arrives: the parser never asks
 * to hold it, and the next command parses. */
Test(memcache, oversized_value_is_skipped_without_buffering)
{
  size_t big = (1 << 20) + 1;
  char head[64];
  int hn = snprintf(head, sizeof head, "set k 0 0 %zu\r\n", big);
  size_t n = (size_t)hn + big + 9;
  char *in = malloc(n);
  memcpy(in, head, (size_t)hn);
  memset(in + hn, 'v', big);
  memcpy(in + hn + big, "\r\nget x\r\n", 9);
  char expect[64];
  snprintf(expect, sizeof expect, "error %d\nget [x]\n", RW_PARSE_TOO_LARGE);
  struct feeder f;
  feeder_init_t(&f, &memcache_proto, describe_memcache, 70000);
  for (size_t off = 0; off < n; off += 4096) /* never more than 64 KiB held */
    feed_t(&f, (const uint8_t *)in + off, off + 4096 < n ? 4096 : n - off);
  cr_expect_str_eq(f.log, expect);
  cr_expect_eq(f.pending, 0);
  feeder_fini(&f);
  free(in);
}

/* ---- resp: arrays of bulk strings, inline words, table dispatch ---- */

Test(resp, arrays_and_inline_at_every_split)
{
  CHECK(&resp_proto, describe_resp,
        "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"
        "*1\r\n$4\r\nPING\r\n"
        "*2\r\n$3\r\nget\r\n$0\r\n\r\n"
        "PING\r\n  set  a   b \n\r\n"
        "*0\r\n",
        "multibulk 3: [SET] [key] [va\r\nl]\nmultibulk 1: [PING]\nmultibulk 2: [get] []\n"
        "inline_cmd [PING\r]\ninline_cmd [  set  a   b ]\nempty \nmultibulk 0:\n");
}

Test(resp, protocol_errors_close)
{
  errors_close = true; /* spec/resp.rw answers every error with close */
  char expect[64];
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_BAD_DATA);
  CHECK(&resp_proto, describe_resp, "*2\r\n$3\r\nGET\r\n#3\r\nkey\r\n", expect);
  CHECK(&resp_proto, describe_resp, "*1\r\n$3\r\nGETX\r\n", expect);
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_OVERLONG);
  CHECK(&resp_proto, describe_resp, "*1\r\n$536870913\r\n", expect); /* past 512 MiB */
  /* A count past `limit items` (1024 * 1024) or past 64 bits: a bad number, before any item. */
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_BAD_NUMBER);
  CHECK(&resp_proto, describe_resp, "*1048577\r\n", expect);
  CHECK(&resp_proto, describe_resp, "*18446744073709551616\r\n", expect);
}

/* RW_PARSE_MORE inside a bulk string says how long the frame is at least: the header and the
 * string with its CRLF, counted from the frame's start; before any length is known it says 0. */
static size_t resp_hint(const char *in)
{
  _Alignas(16) unsigned char parser[512], msg[RW_PROTO_MSG_MAX];
  cr_assert_leq(resp_proto.parser_size, sizeof parser);
  resp_proto.parser_init(parser);
  size_t used = 99;
  cr_assert_eq(resp_proto.next(parser, (const uint8_t *)in, strlen(in), &used, msg), RW_PARSE_MORE);
  return used;
}

Test(resp, more_inside_a_bulk_string_hints_the_frame_length)
{
  cr_expect_eq(resp_hint("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4194304\r\nab"), 30 + 4194304 + 2);
  cr_expect_eq(resp_hint("*2\r\n$5\r\nhel"), 4 + 4 + 5 + 2);
  cr_expect_eq(resp_hint("*2\r\n$5\r"), 0); /* the length's line is not complete */
  cr_expect_eq(resp_hint("*2\r"), 0);
}

/* More items than are kept inline: the walk reaches all of them. */
Test(resp, long_arrays_walk_past_the_inline_items)
{
  char in[4096];
  size_t n = (size_t)snprintf(in, sizeof in, "*40\r\n");
  char expect[4096];
  size_t e = (size_t)snprintf(expect, sizeof expect, "multibulk 40:");
  for (int i = 0; i < 40; i++) {
    n += (size_t)snprintf(in + n, sizeof in - n, "$%d\r\nitem%d\r\n", i < 10 ? 5 : 6, i);
    e += (size_t)snprintf(expect + e, sizeof expect - e, " [item%d]", i);
  }
  snprintf(expect + e, sizeof expect - e, "\n");
  check_splits(&resp_proto, describe_resp, in, n, expect);
}

/* Dispatch: case-insensitive names, arity, unknown names. */
static int calls_get, calls_set, calls_unknown;
static int h_get(rw_conn *c, const rw_list *a)
{
  (void)c;
  (void)a;
  calls_get++;
  return 0;
}
static int h_set(rw_conn *c, const rw_list *a)
{
  (void)c;
  (void)a;
  calls_set++;
  return 0;
}
static int h_unknown(rw_conn *c, const rw_list *a)
{
  (void)c;
  (void)a;
  calls_unknown++;
  return 0;
}
static int h_other(rw_conn *c, const rw_list *a)
{
  (void)c;
  (void)a;
  return -1;
}

Test(resp, table_dispatch_is_case_insensitive)
{
  struct resp_handlers h;
  int (**slot)(rw_conn *, const rw_list *) = (void *)&h;
  for (size_t i = 0; i < sizeof h / sizeof *slot; i++)
    slot[i] = h_other;
  h.get = h_get;
  h.set = h_set;
  h.unknown = h_unknown;
  cr_assert_eq(resp_proto.check_handlers(&h), 0);
  /* (inline commands go to their own handler, which kvd splits and dispatches itself) */
  const char *reqs[] = {
      "*2\r\n$3\r\nGeT\r\n$1\r\nk\r\n", "*5\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\nb\r\n$2\r\nex\r\n$2\r\n10\r\n",
      "*1\r\n$4\r\nnope\r\n", "*2\r\n$4\r\nGETX\r\n$1\r\nk\r\n", "*2\r\n$3\r\nget\r\n$1\r\nk\r\n"};
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
    _Alignas(max_align_t) unsigned char parser[512], msg[RW_PROTO_MSG_MAX];
    resp_proto.parser_init(parser);
    size_t len = strlen(reqs[i]), used;
    uint8_t *buf = malloc(len + 1);
    memcpy(buf, reqs[i], len + 1);
    int cmd = resp_proto.next(parser, buf, len, &used, msg);
    cr_assert_geq(cmd, 0, "%s", reqs[i]);
    cr_assert_eq(resp_proto.dispatch(NULL, &h, cmd, msg), 0);
    free(buf);
  }
  cr_expect_eq(calls_get, 2);
  cr_expect_eq(calls_set, 1);
  cr_expect_eq(calls_unknown, 2);
  h.unknown = NULL;
  cr_expect_eq(resp_proto.check_handlers(&h), -EINVAL);
}

/* ---- binary frames: a header of integers, then parts sized by them ---- */

Test(lenpfx, frames_survive_every_split)
{
  /* No newline anywhere: a length, then that many bytes (\n and \0 among them). */
  CHECK(&lenpfx_proto, describe_lenpfx, "\0\0\0\5hello\0\0\0\0\0\0\0\3a\nb",
        "frame 5 [hello]\nframe 0 []\nframe 3 [a\nb]\n");
}

Test(lenpfx, too_large_is_refused_before_it_is_held)
{
  /* 64 KiB + 1 announced: refused at the header (the spec closes), nothing buffered. */
  char expect[32];
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_TOO_LARGE);
  check_one_feed(&lenpfx_proto, describe_lenpfx, 16, "\0\1\0\1abc", 7, expect);
}

Test(lenpfx, reply_writes_a_big_endian_length)
{
  cr_expect_eq(lenpfx_proto.max_frame, 4 + 65536);
  cr_expect_eq(lenpfx_proto.check_handlers(NULL), -EINVAL);
}

#define MCB_GET "\x80\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03\xde\xad\xbe\xef\0\0\0\0\0\0\0\0foo"
#define MCB_SET                                                                        \
  "\x80\x01\x00\x01\x08\x00\x00\x07\x00\x00\x00\x0c\x00\x00\x00\x01\0\0\0\0\0\0\0\x09" \
  "\x00\x00\x00\x05\x00\x00\x00\x00kval"

Test(memcache_binary, requests_survive_every_split)
{
  CHECK(&memcache_binary_proto, describe_memcache_binary, MCB_GET MCB_SET,
        "op 00 dtype 0 vb 0 opaque deadbeef cas 0 extras  key [foo] value []\n"
        "op 01 dtype 0 vb 7 opaque 00000001 cas 9 extras 0000000500000000 key [k] value [val]\n");
}

Test(memcache_binary, contradicting_lengths_and_a_wrong_magic_are_refused)
{
  char expect[64];
  errors_close = true; /* the spec closes on bad_data (a wrong magic always closes) */
  /* extras 8 + key 1 > body 4: bad_data (the spec then closes), never a wild read. */
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_BAD_DATA);
  CHECK(&memcache_binary_proto, describe_memcache_binary,
        "\x80\x01\x00\x01\x08\x00\x00\x00\x00\x00\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0abcd", expect);
  /* A wrong magic is refused at its first byte, before the header is whole. */
  struct feeder f;
  feeder_init_t(&f, &memcache_binary_proto, describe_memcache_binary, 64);
  feed_t(&f, (const uint8_t *)"\x81", 1);
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_INVALID);
  cr_expect_str_eq(f.log, expect);
  feeder_fini(&f);
}

Test(memcache_binary, a_body_past_the_limit_is_skipped_as_it_arrives)
{
  /* body 1 MiB + 1: refused at the header, then skipped; the get after it parses. */
  static const uint8_t head[24] = {0x80, 0x01, 0, 1, 0, 0, 0, 0, 0, 0x10, 0, 0x01};
  size_t body = (1 << 20) + 1, n = 24 + body + sizeof MCB_GET - 1;
  uint8_t *in = calloc(1, n);
  memcpy(in, head, 24);
  memcpy(in + 24 + body, MCB_GET, sizeof MCB_GET - 1);
  struct feeder f;
  feeder_init_t(&f, &memcache_binary_proto, describe_memcache_binary, 4096);
  for (size_t off = 0; off < n; off += 4000)
    feed_t(&f, in + off, n - off < 4000 ? n - off : 4000);
  char expect[160];
  snprintf(expect, sizeof expect,
           "error %d\nop 00 dtype 0 vb 0 opaque deadbeef cas 0 extras  key [foo] value []\n",
           RW_PARSE_TOO_LARGE);
  cr_expect_str_eq(f.log, expect);
  feeder_fini(&f);
  free(in);
}

/* ---- varints, flag bits and conditional fields: MQTT 3.1.1 and length-delimited protobuf ---- */

#define MQTT_CONNECT                             \
  "\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02" \
  "c1"
#define MQTT_PUB0    \
  "\x30\x07\x00\x03" \
  "a/b"              \
  "hi"
#define MQTT_PUB1    \
  "\x32\x09\x00\x03" \
  "a/b"              \
  "\x00\x0a"         \
  "hi"
#define MQTT_PUBACK "\x40\x02\x00\x0a"
#define MQTT_SUBSCRIBE       \
  "\x82\x08\x00\x0b\x00\x03" \
  "a/b"                      \
  "\x01"
#define MQTT_PINGREQ "\xc0\x00"
#define MQTT_DISCONNECT "\xe0\x00"

Test(mqtt, packets_survive_every_split)
{
  CHECK(&mqtt_proto, describe_mqtt,
        MQTT_CONNECT MQTT_PUB0 MQTT_PUB1 MQTT_PUBACK MQTT_SUBSCRIBE MQTT_PINGREQ MQTT_DISCONNECT,
        "type 1 flags 0 qos 0 len 14 topic [] id 0 payload 00044d5154540402003c00026331\n"
        "type 3 flags 0 qos 0 len 7 topic [a/b] id 0 payload 6869\n"
        "type 3 flags 2 qos 1 len 9 topic [a/b] id 10 payload 6869\n"
        "type 4 flags 0 qos 0 len 2 topic [] id 10 payload \n"
        "type 8 flags 2 qos 1 len 8 topic [] id 11 payload 0003612f6201\n"
        "type 12 flags 0 qos 0 len 0 topic [] id 0 payload \n"
        "type 14 flags 0 qos 0 len 0 topic [] id 0 payload \n");
}

Test(mqtt, a_two_byte_remaining_length_is_resumable_anywhere)
{
  /* remaining 2 + 1 + 130 = 133: 0x85 0x01, cut between its two bytes among all others. */
  char in[160], expect[400];
  size_t n = 0, e = 0;
  memcpy(in, "\x30\x85\x01\x00\x01t", 6);
  n = 6;
  e = (size_t)snprintf(expect, sizeof expect, "type 3 flags 0 qos 0 len 133 topic [t] id 0 payload ");
  for (int i = 0; i < 130; i++) {
    in[n++] = (char)i;
    e += (size_t)snprintf(expect + e, sizeof expect - e, "%02x", i);
  }
  memcpy(in + n, MQTT_PINGREQ, 2);
  n += 2;
  snprintf(expect + e, sizeof expect - e, "\ntype 12 flags 0 qos 0 len 0 topic [] id 0 payload \n");
  check_splits(&mqtt_proto, describe_mqtt, in, n, expect);
}

Test(mqtt, a_non_minimal_remaining_length_is_accepted)
{
  /* MQTT 3.1.1 §2.2.3 tabulates the minimal sizes without requiring them. */
  CHECK(&mqtt_proto, describe_mqtt, "\xc0\x80\x00" MQTT_PINGREQ,
        "type 12 flags 0 qos 0 len 0 topic [] id 0 payload \n"
        "type 12 flags 0 qos 0 len 0 topic [] id 0 payload \n");
}

Test(mqtt, hostile_shapes_are_bad_data)
{
  errors_close = true; /* the spec closes on bad_data */
  char expect[32];
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_BAD_DATA);
  static const struct {
    const char *in;
    size_t n;
  } bad[] = {
      /* A remaining length of 5 bytes: at most 4 (§2.2.3). */
      {"\x30\xff\xff\xff\xff\x01", 6},
      {"\x30\x80\x80\x80\x80\x00", 6},
      /* QoS 1 PUBLISH whose remaining length leaves no room for its packet id. */
      {"\x32\x05\x00\x03"
       "a/b"
       "\x00\x0a"
       "hi",
       11},
      /* A topic longer than the packet. */
      {"\x30\x03\x00\x05"
       "abcde",
       9},
      /* PUBACK without its packet id. */
      {"\x40\x01\x00", 3},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    check_splits(&mqtt_proto, describe_mqtt, bad[i].in, bad[i].n, expect);
}

Test(mqtt, a_remaining_length_past_the_limit_is_skipped_as_it_arrives)
{
  /* 262145 = 256 KiB + 1 (0x81 0x80 0x10): refused at the header, skipped, then a PINGREQ. */
  size_t body = 262145, n = 4 + body + 2;
  uint8_t *in = calloc(1, n);
  memcpy(in, "\x30\x81\x80\x10", 4);
  memcpy(in + 4 + body, MQTT_PINGREQ, 2);
  for (size_t step = 1; step <= 4001; step += 4000) {
    struct feeder f;
    feeder_init_t(&f, &mqtt_proto, describe_mqtt, 4096);
    for (size_t off = 0; off < n; off += step)
      feed_t(&f, in + off, n - off < step ? n - off : step);
    char expect[160];
    snprintf(expect, sizeof expect, "error %d\ntype 12 flags 0 qos 0 len 0 topic [] id 0 payload \n",
             RW_PARSE_TOO_LARGE);
    cr_expect_str_eq(f.log, expect, "pieces of %zu", step);
    feeder_fini(&f);
  }
  free(in);
  /* The largest remaining length (268,435,455 = 0xff 0xff 0xff 0x7f) is refused the same way. */
  char expect[32];
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_TOO_LARGE);
  check_one_feed(&mqtt_proto, describe_mqtt, 64, "\x30\xff\xff\xff\x7f", 5, expect);
}

Test(mqtt, the_longest_frame_counts_every_optional_field)
{
  /* Fixed byte, a 4-byte remaining length, topic length, packet id, then limit data. */
  cr_expect_eq(mqtt_proto.max_frame, 1 + 4 + 2 + 2 + 256 * 1024);
  cr_expect_eq(mqtt_proto.check_handlers(NULL), -EINVAL);
}

Test(pbdelim, messages_survive_every_split)
{
  /* Lengths of one and two bytes (300 = 0xac 0x02), a zero length, a non-minimal zero. */
  char in[400], expect[500];
  size_t n = 0;
  memcpy(in, "\x05hello\x00\xac\x02", 9);
  n = 9;
  memset(in + n, 'x', 300);
  n += 300;
  memcpy(in + n, "\x80\x00\x02ok", 5);
  n += 5;
  int e = snprintf(expect, sizeof expect, "message 5 [hello]\nmessage 0 []\nmessage 300 [");
  memset(expect + e, 'x', 300);
  snprintf(expect + e + 300, sizeof expect - (size_t)e - 300, "]\nmessage 0 []\nmessage 2 [ok]\n");
  check_splits(&pbdelim_proto, describe_pbdelim, in, n, expect);
}

Test(pbdelim, over_long_varints_are_bad_data)
{
  errors_close = true; /* the spec closes on bad_data */
  char expect[32];
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_BAD_DATA);
  /* 11 bytes; 10 bytes whose last is past 2^64 - 1. */
  CHECK(&pbdelim_proto, describe_pbdelim, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", expect);
  CHECK(&pbdelim_proto, describe_pbdelim, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", expect);
  /* 2^64 - 1 itself is a u64: too large for the limit, not bad. */
  snprintf(expect, sizeof expect, "error %d\n", RW_PARSE_TOO_LARGE);
  CHECK(&pbdelim_proto, describe_pbdelim, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", expect);
}
