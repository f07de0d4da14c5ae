/* The generated RESP2 reply parser (spec/resp_reply.rw) on every reply shape a live
 * redis-server sends: SCAN, MGET with nils, COMMAND's nested arrays, errors, integers, a 20 MB
 * bulk. Each raw reply (cut from the stream by an ECHO marker sent after it, not by the parser
 * under test) is parsed whole, resumed one byte more at a time, split in two at every byte with
 * a fresh parser, and (when short) fed through the feeder that moves the buffer between calls;
 * its walk, written back as RESP, must be the reply byte for byte. Malformed and too deep
 * replies are bad_data at every split. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ringwright/ringwright.h>

#include "backend.h"
#include "feed.h"
#include "resp_reply.gen.h"

struct parse {
  _Alignas(16) unsigned char parser[512];
  _Alignas(16) unsigned char msg[RW_PROTO_MSG_MAX];
  size_t used;
};

static int next(struct parse *p, const uint8_t *buf, size_t len)
{
  p->used = 0;
  return resp_reply_proto.next(p->parser, buf, len, &p->used, p->msg);
}

static rw_span reply_of(const struct parse *p)
{
  return ((const union resp_reply_msg *)p->msg)->reply.data;
}

/* The walk written back as RESP; the number of values. */
static size_t rewrite(rw_span reply, char *out, size_t cap, size_t *out_len)
{
  size_t n = 0, values = 0;
  rw_resp_value v;
  while (rw_resp_walk(&reply, &v)) {
    values++;
    int k = 0;
    if (v.kind == RW_RESP_SIMPLE || v.kind == RW_RESP_ERROR)
      k = snprintf(out + n, cap - n, "%c%.*s\r\n", v.kind, (int)v.str.len, (const char *)v.str.p);
    else if (v.kind == RW_RESP_INTEGER || v.kind == RW_RESP_ARRAY || v.nil)
      k = snprintf(out + n, cap - n, "%c%lld\r\n", v.kind, (long long)v.integer);
    else {
      k = snprintf(out + n, cap - n, "$%zu\r\n", v.str.len);
      cr_assert_lt(n + (size_t)k + v.str.len + 2, cap);
      memcpy(out + n + k, v.str.p, v.str.len);
      memcpy(out + n + k + v.str.len, "\r\n", 2);
      k += (int)v.str.len + 2;
    }
    cr_assert(k > 0 && n + (size_t)k < cap);
    n += (size_t)k;
  }
  *out_len = n;
  return values;
}

static void describe(int cmd, const void *msg, char *out, size_t outlen)
{
  (void)cmd;
  rw_span r = ((const union resp_reply_msg *)msg)->reply.data;
  static char again[1 << 16];
  size_t n;
  size_t values = rewrite(r, again, sizeof again, &n);
  snprintf(out, outlen, "reply %zu bytes, %zu values, %s", r.len, values,
           n == r.len && !memcmp(again, r.p, n) ? "rewritten the same" : "rewritten differently");
}

/* Whether the reply is a single value (a bulk string): cut anywhere, it costs the same. */
static size_t nvalues_hint(const uint8_t *raw, size_t n)
{
  rw_span r = {raw, n};
  rw_resp_value v;
  size_t values = 0;
  while (values < 2 && rw_resp_walk(&r, &v))
    values++;
  return values;
}

/* Parses `raw` every way; returns the number of values in it. */
static size_t check_reply(const uint8_t *raw, size_t n)
{
  static struct parse p;
  resp_reply_proto.parser_init(p.parser);
  cr_assert_eq(next(&p, raw, n), RESP_REPLY_CMD_REPLY, "whole");
  cr_assert_eq(p.used, n);
  cr_assert_eq(reply_of(&p).len, n);
  resp_reply_proto.parser_init(p.parser);
  for (size_t k = 1; k < n; k++)
    cr_assert_eq(next(&p, raw, k), RW_PARSE_MORE, "resumed at %zu of %zu", k, n);
  cr_assert_eq(next(&p, raw, n), RESP_REPLY_CMD_REPLY, "resumed to the end");
  cr_assert_eq(p.used, n);
  /* A fresh parser at every cut rescans the head: quadratic, so only where a cut lands among
   * lines (COMMAND's 200 KB is read one byte more at a time above), and a big bulk's every cut. */
  bool every_cut = n <= 65536 || nvalues_hint(raw, n) == 1;
  for (size_t k = 1; every_cut && k < n; k++) {
    resp_reply_proto.parser_init(p.parser);
    cr_assert_eq(next(&p, raw, k), RW_PARSE_MORE, "split at %zu", k);
    cr_assert_eq(next(&p, raw, n), RESP_REPLY_CMD_REPLY, "split at %zu", k);
    cr_assert_eq(p.used, n);
  }
  size_t cap = n * 2 + 64, len;
  char *again = malloc(cap);
  size_t values = rewrite((rw_span){raw, n}, again, cap, &len);
  cr_assert_eq(len, n);
  cr_assert(!memcmp(again, raw, n), "the walk, written back, differs from the reply");
  free(again);
  if (n > 4096)
    return values;
  static struct feeder whole, split;
  cr_assert_eq(feeder_init(&whole, &resp_reply_proto, describe, RESP_REPLY_LIMIT_DATA >> 8), 0);
  cr_assert(feed(&whole, raw, n) && feed(&whole, raw, n), "%s", whole.fault);
  for (size_t k = 1; k < n; k++) {
    cr_assert_eq(feeder_init(&split, &resp_reply_proto, describe, RESP_REPLY_LIMIT_DATA >> 8), 0);
    cr_assert(feed(&split, raw, k) && feed(&split, raw + k, n - k) && feed(&split, raw, n), "%s",
              split.fault);
    cr_assert_str_eq(split.log, whole.log, "fed split at %zu", k);
    feeder_fini(&split);
  }
  cr_assert(strstr(whole.log, "rewritten the same"), "%s", whole.log);
  feeder_fini(&whole);
  return values;
}

/* Every split of a malformed reply is the same error. */
static void check_bad(const char *raw, int want)
{
  size_t n = strlen(raw);
  static struct parse p;
  resp_reply_proto.parser_init(p.parser);
  cr_assert_eq(next(&p, (const uint8_t *)raw, n), want, "%s", raw);
  resp_reply_proto.parser_init(p.parser);
  int rc = RW_PARSE_MORE;
  for (size_t k = 1; k <= n && rc == RW_PARSE_MORE; k++)
    rc = next(&p, (const uint8_t *)raw, k);
  cr_assert_eq(rc, want, "resumed: %s", raw);
}

Test(resp_reply, malformed_deep_and_long_replies_are_refused)
{
  check_bad("?x\r\n", RW_PARSE_BAD_DATA);
  check_bad("+ok\rx\r\n", RW_PARSE_BAD_DATA);
  check_bad("+ok\n", RW_PARSE_BAD_DATA);
  check_bad(":12a\r\n", RW_PARSE_BAD_DATA);
  check_bad(":9223372036854775808\r\n", RW_PARSE_BAD_DATA);
  check_bad(":\r\n", RW_PARSE_BAD_DATA);
  check_bad("$-2\r\n", RW_PARSE_BAD_DATA);
  check_bad("$3\r\nabcd\r\n", RW_PARSE_BAD_DATA);
  check_bad("$+3\r\nabc\r\n", RW_PARSE_BAD_DATA);
  check_bad("*-2\r\n", RW_PARSE_BAD_DATA);
  check_bad("*2\r\n:1\r\n*1\r\n?\r\n", RW_PARSE_BAD_DATA);
  check_bad("$99999999999\r\n", RW_PARSE_TOO_LARGE);
  check_bad("*2000000\r\n", RW_PARSE_BAD_DATA); /* past limit items */
  /* limit depth 8: eight arrays nest, nine do not. */
  static const char deepest[] = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
  cr_assert_eq(check_reply((const uint8_t *)deepest, strlen(deepest)), 9);
  check_bad("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", RW_PARSE_BAD_DATA);
  static char line[RESP_REPLY_LIMIT_LINE + 16];
  memset(line, 'a', sizeof line - 1);
  line[0] = '+';
  check_bad(line, RW_PARSE_OVERLONG);
}

Test(resp_reply, pipelined_replies_are_messages_in_turn)
{
  static struct feeder f;
  const char *in = "+OK\r\n$-1\r\n*3\r\n:1\r\n*-1\r\n$0\r\n\r\n-ERR x\r\n";
  cr_assert_eq(feeder_init(&f, &resp_reply_proto, describe, 4096), 0);
  cr_assert(feed(&f, (const uint8_t *)in, strlen(in)), "%s", f.fault);
  cr_assert_str_eq(
      f.log, "reply 5 bytes, 1 values, rewritten the same\nreply 5 bytes, 1 values, rewritten the same\n"
             "reply 19 bytes, 4 values, rewritten the same\nreply 8 bytes, 1 values, rewritten the same\n");
  feeder_fini(&f);
}

/* --- against redis-server ------------------------------------------------------------------ */

static pid_t redis_pid;
static int redis_fd, redis_port;

static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void start_redis(void)
{
  char port[16];
  redis_port = free_port();
  snprintf(port, sizeof port, "%d", redis_port);
  redis_pid = fork();
  cr_assert(redis_pid >= 0);
  if (!redis_pid) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(port)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (!connect(fd, (struct sockaddr *)&a, sizeof a)) {
      redis_fd = fd;
      return;
    }
    close(fd);
    usleep(25000);
  }
  cr_skip_test("redis-server did not start");
}

static void stop_redis(void)
{
  if (redis_pid > 0) {
    close(redis_fd);
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
  }
}

static void send_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t k = write(fd, p, n);
    cr_assert(k > 0, "write: %s", strerror(errno));
    p += k;
    n -= (size_t)k;
  }
}

/* The raw reply to `cmd`: the bytes before the reply to an ECHO of a marker sent after it. */
static uint8_t *raw_reply(const char *cmd, size_t *out_n)
{
  static const char marker[] = "$12\r\n<end-marker>\r\n";
  char req[512];
  int k = snprintf(req, sizeof req, "%s\r\nECHO <end-marker>\r\n", cmd);
  send_all(redis_fd, req, (size_t)k);
  size_t cap = 1 << 16, n = 0, m = strlen(marker);
  uint8_t *buf = malloc(cap);
  while (n < m || memcmp(buf + n - m, marker, m)) {
    if (n == cap)
      cr_assert(buf = realloc(buf, cap *= 2));
    struct pollfd pfd = {.fd = redis_fd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "no reply to %s", cmd);
    ssize_t r = read(redis_fd, buf + n, cap - n);
    cr_assert(r > 0, "redis closed on %s", cmd);
    n += (size_t)r;
  }
  *out_n = n - m;
  return buf;
}

static size_t check_command(const char *cmd, const char *starts)
{
  size_t n;
  uint8_t *raw = raw_reply(cmd, &n);
  cr_assert(n >= strlen(starts) && !memcmp(raw, starts, strlen(starts)), "%s: %.*s", cmd,
            (int)(n < 80 ? n : 80), (const char *)raw);
  size_t values = check_reply(raw, n);
  free(raw);
  return values;
}

Test(resp_reply, every_reply_shape_of_a_live_redis, .init = start_redis, .fini = stop_redis, .timeout = 120)
{
  for (int i = 0; i < 40; i++) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SET key:%d value-%d", i, i);
    cr_assert_eq(check_command(cmd, "+OK"), 1);
  }
  cr_assert_eq(check_command("PING", "+PONG"), 1);
  cr_assert_eq(check_command("INCRBY counter -42", ":-42"), 1);
  cr_assert_eq(check_command("GET missing", "$-1"), 1);
  cr_assert_eq(check_command("GET key:7", "$7\r\nvalue-7"), 1);
  cr_assert_eq(check_command("NOSUCHCOMMAND x", "-ERR"), 1);
  cr_assert_eq(check_command("INCR key:1", "-ERR"), 1);
  cr_assert_eq(check_command("MGET key:1 nope key:2 nope2 key:3", "*5\r\n$7\r\nvalue-1\r\n$-1\r\n"), 6);
  cr_assert_eq(check_command("LRANGE nolist 0 -1", "*0"), 1);
  cr_assert_eq(check_command("BLPOP nolist 0.01", "*-1"), 1);
  /* SCAN: the cursor and an array of keys, nested. */
  cr_assert_geq(check_command("SCAN 0 COUNT 10", "*2\r\n$"), 4);
  cr_assert_eq(check_command("RPUSH l a b c", ":3"), 1);
  cr_assert_eq(
      check_command("EVAL \"return {1, {2, {3, 'x'}}, redis.error_reply('no')}\" 0", "*3\r\n:1\r\n*2"), 8);
  /* COMMAND INFO: entries of flags, key specs and tips, arrays three and more deep. */
  cr_assert_geq(check_command("COMMAND INFO get set scan", "*3\r\n*"), 30);
  cr_assert_geq(check_command("COMMAND", "*"), 1000);
  /* A 20 MB bulk: set with SETRANGE (a request of a few bytes), read back whole. */
  cr_assert_eq(check_command("SETRANGE big 20971519 z", ":20971520"), 1);
  size_t n;
  uint8_t *raw = raw_reply("GET big", &n);
  cr_assert_eq(n, 20971520 + strlen("$20971520\r\n\r\n"));
  cr_assert_eq(check_reply(raw, n), 1);
  free(raw);
}

/* --- a client: commands from arrays of spans (reply command(args: spans(64)) = ...) ----------- */

static struct client {
  rw_server *srv;
  char log[4096];
  size_t len;
  int replies, e2big;
} cl;

static const char odd_value[] = "a value\r\nwith CRLF, spaces and a \0 byte";

static void send_commands(rw_conn *c)
{
  rw_span set[] = {
      {(const uint8_t *)"SET", 3}, {(const uint8_t *)"k", 1}, {(const uint8_t *)odd_value, sizeof odd_value}};
  rw_span get[] = {{(const uint8_t *)"GET", 3}, {(const uint8_t *)"k", 1}};
  rw_span push[64];
  char items[64][8];
  push[0] = (rw_span){(const uint8_t *)"RPUSH", 5};
  push[1] = (rw_span){(const uint8_t *)"list", 4};
  for (int i = 2; i < 64; i++)
    push[i] = (rw_span){(const uint8_t *)items[i], (size_t)snprintf(items[i], sizeof items[i], "i%d", i)};
  rw_span range[] = {{(const uint8_t *)"LRANGE", 6},
                     {(const uint8_t *)"list", 4},
                     {(const uint8_t *)"58", 2},
                     {(const uint8_t *)"-1", 2}};
  rw_span too_many[65];
  for (int i = 0; i < 65; i++)
    too_many[i] = push[i < 64 ? i : 63];
  cr_assert_eq(resp_reply_reply_command(c, set, 3), 0);
  cr_assert_eq(resp_reply_reply_command(c, get, 2), 0);
  cr_assert_eq(resp_reply_reply_command(c, push, 64), 0);
  cl.e2big = resp_reply_reply_command(c, too_many, 65);
  cr_assert_eq(resp_reply_reply_command(c, range, 4), 0);
}

static int on_reply(rw_conn *c, const struct resp_reply_reply *m)
{
  (void)c;
  cr_assert_lt(cl.len + m->data.len, sizeof cl.log);
  memcpy(cl.log + cl.len, m->data.p, m->data.len);
  cl.len += m->data.len;
  if (++cl.replies == 4)
    rw_server_stop(cl.srv);
  return 0;
}

static const struct resp_reply_handlers client_handlers = {.reply = on_reply};

static void connected(rw_conn *c, int err, void *data)
{
  (void)data;
  cr_assert_eq(err, 0, "connect: %s", strerror(-err));
  send_commands(c);
}

static void client_start(rw_worker *w, void *data)
{
  char addr[32];
  (void)data;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", redis_port);
  cr_assert_eq(rw_connect(w, addr, &resp_reply_proto, &client_handlers, 2000, connected, NULL), 0);
}

/* The replies, byte for byte: the odd value came back whole, 62 items pushed, the last four. */
Test(resp_reply, a_client_sends_commands_from_arrays_of_spans, .init = start_redis, .fini = stop_redis,
     .timeout = 30)
{
  rw_config cfg;
  rw_config_default(&cfg);
  cfg.name = "resp-client";
  cfg.workers = 1;
  cfg.max_conns = 4;
  cfg.on_worker_start = client_start;
  cfg.backend = test_backend();
  cr_assert_eq(rw_server_create(&cfg, &cl.srv), 0);
  cr_assert_eq(rw_server_use_proto(cl.srv, &resp_reply_proto), 0);
  cr_assert_eq(rw_server_run(cl.srv), 0);
  rw_server_destroy(cl.srv);
  cr_assert_eq(cl.e2big, -E2BIG);
  char want[512];
  int n = snprintf(want, sizeof want, "+OK\r\n$%zu\r\n", sizeof odd_value);
  memcpy(want + n, odd_value, sizeof odd_value);
  n += (int)sizeof odd_value;
  n += snprintf(want + n, sizeof want - (size_t)n,
                "\r\n:62\r\n*4\r\n$3\r\ni60\r\n$3\r\ni61\r\n$3\r\ni62\r\n$3\r\ni63\r\n");
  cr_assert_eq(cl.len, (size_t)n, "%zu bytes, not %d; from byte 50: %.*s", cl.len, n, (int)cl.len - 50,
               cl.log + 50);
  for (int i = 0; i < n; i++)
    cr_assert_eq(cl.log[i], want[i], "byte %d: %.*s", i, n - i, cl.log + i);
}
