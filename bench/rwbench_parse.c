/* rwbench-parse: parser throughput, one line per parser and workload:
 *
 *   PARSER WORKLOAD NS_PER_MSG MB_PER_S
 *
 * Each workload is a buffer of many pipelined messages parsed from start to end, repeated
 * until about half a second has passed; the best of five rounds is printed. Built by ninja with
 * ringwright's parsers only; bench/parse builds it again with picohttpparser and llhttp from
 * ../shared/peers (-DWITH_PEERS) for the side-by-side table. Peers are never shipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http1.gen.h"
#include "memcache.gen.h"
#include "memcache_binary.gen.h"
#include "mqtt.gen.h"
#include "resp.gen.h"

#ifdef WITH_PEERS
#include "llhttp.h"
#include "picohttpparser.h"
#endif

/* picohttpparser's own benchmark request (bench.c), 703 bytes. */
static const char browser[] = "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
                              "Host: www.kittyhell.com\r\n"
                              "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; "
                              "rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 "
                              "Pathtraq/0.9\r\n"
                              "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
                              "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
                              "Accept-Encoding: gzip,deflate\r\n"
                              "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
                              "Keep-Alive: 115\r\n"
                              "Connection: keep-alive\r\n"
                              "Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
                              "__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
                              "__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|"
                              "utmcct=/reader/|utmcmd=referral\r\n"
                              "\r\n";

static const char small_http[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A buffer holding `msg` repeated to about 1 MiB (plus one byte for a parser's sentinel). */
static uint8_t *repeat(const char *msg, size_t len, size_t *out_len, size_t *out_count)
{
  size_t count = (1 << 20) / len + 1;
  uint8_t *buf = malloc(count * len + 1);
  for (size_t i = 0; i < count; i++)
    memcpy(buf + i * len, msg, len);
  buf[count * len] = 0;
  *out_len = count * len;
  *out_count = count;
  return buf;
}

typedef size_t (*parse_all_fn)(const uint8_t *buf, size_t len); /* returns messages parsed */

static const char *only;

static void report(const char *parser, const char *workload, const char *msg, size_t msglen, parse_all_fn fn)
{
  if (only && strcmp(only, workload))
    return;
  size_t len, count;
  uint8_t *buf = repeat(msg, msglen, &len, &count);
  double best = 1e9;
  for (int round = 0; round < 5; round++) {
    size_t iters = 0;
    double t0 = now_s(), t;
    do {
      if (fn(buf, len) != count) {
        printf("%s %s FAILED (parsed a different number of messages)\n", parser, workload);
        free(buf);
        return;
      }
      iters++;
    } while ((t = now_s()) - t0 < 0.1);
    double per = (t - t0) / (double)iters;
    best = per < best ? per : best;
  }
  printf("%s %s %.1f %.0f\n", parser, workload, best * 1e9 / (double)count, (double)len / best / 1e6);
  free(buf);
  fflush(stdout);
}

/* ---- ringwright: the generated parsers, exactly as the runtime drives them ---- */

/* Messages of a spec with a stream() body are dispatched too, to empty handlers: what a head
 * moves the parser to is committed only when a handler took it (as the runtime does). */
static size_t rw_parse_all(const rw_proto *proto, const void *h, const uint8_t *buf, size_t len)
{
  _Alignas(16) unsigned char parser[512], msg[RW_PROTO_MSG_MAX];
  proto->parser_init(parser);
  size_t off = 0, n = 0;
  while (off < len) {
    size_t used;
    int rc = proto->next(parser, buf + off, len - off, &used, msg);
    if (rc < 0 || (h && proto->dispatch(NULL, h, rc, msg)))
      break;
    off += used;
    n++;
  }
  return n;
}

static size_t rw_resp(const uint8_t *b, size_t n)
{
  return rw_parse_all(&resp_proto, NULL, b, n);
}
static size_t rw_memcache(const uint8_t *b, size_t n)
{
  return rw_parse_all(&memcache_proto, NULL, b, n);
}
static size_t rw_mcbin(const uint8_t *b, size_t n)
{
  return rw_parse_all(&memcache_binary_proto, NULL, b, n);
}
static size_t rw_mqtt(const uint8_t *b, size_t n)
{
  return rw_parse_all(&mqtt_proto, NULL, b, n);
}
static int http1_head(rw_conn *c, const struct http1_request *m)
{
  (void)c, (void)m;
  return 0;
}
static int http1_piece(rw_conn *c, rw_span piece)
{
  (void)c, (void)piece;
  return 0;
}
static int http1_end(rw_conn *c)
{
  (void)c;
  return 0;
}
static int http1_refused(rw_conn *c, int status)
{
  (void)c, (void)status;
  return 0;
}
static const struct http1_handlers http1_h = {
    .request = http1_head, .request_body = http1_piece, .request_end = http1_end, .refused = http1_refused};
static size_t rw_http1(const uint8_t *b, size_t n)
{
  return rw_parse_all(&http1_proto, &http1_h, b, n);
}

#ifdef WITH_PEERS
static size_t pico_all(const uint8_t *buf, size_t len)
{
  size_t off = 0, n = 0;
  while (off < len) {
    const char *method, *path;
    size_t method_len, path_len, num_headers = 32;
    int minor;
    struct phr_header headers[32];
    int rc = phr_parse_request((const char *)buf + off, len - off, &method, &method_len, &path, &path_len,
                               &minor, headers, &num_headers, 0);
    if (rc <= 0)
      break;
    off += (size_t)rc;
    n++;
  }
  return n;
}

static size_t llhttp_count;
static int on_complete(llhttp_t *p)
{
  (void)p;
  llhttp_count++;
  return 0;
}

static size_t llhttp_all(const uint8_t *buf, size_t len)
{
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_complete = on_complete;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  llhttp_count = 0;
  if (llhttp_execute(&parser, (const char *)buf, len) != HPE_OK)
    return 0;
  return llhttp_count;
}
#endif

/* rwbench-parse [WORKLOAD]: every workload, or only the one named (for profiling). */
int main(int argc, char **argv)
{
  only = argc > 1 ? argv[1] : NULL;
  char set1k[1200];
  int n = snprintf(set1k, sizeof set1k, "*3\r\n$3\r\nSET\r\n$8\r\nkey:1234\r\n$1024\r\n%01024d\r\n", 0);
  char mcset[1200];
  int m = snprintf(mcset, sizeof mcset, "set key:1234 0 0 1024\r\n%01024d\r\n", 0);
  static const char resp_get[] = "*2\r\n$3\r\nGET\r\n$8\r\nkey:1234\r\n";
  static const char resp_inline[] = "GET key:1234\r\n";
  static const char mc_get[] = "get key:1234\r\n";
  report("ringwright", "resp_get", resp_get, sizeof resp_get - 1, rw_resp);
  report("ringwright", "resp_inline_get", resp_inline, sizeof resp_inline - 1, rw_resp);
  report("ringwright", "resp_set_1k", set1k, (size_t)n, rw_resp);
  report("ringwright", "memcache_get", mc_get, sizeof mc_get - 1, rw_memcache);
  report("ringwright", "memcache_set_1k", mcset, (size_t)m, rw_memcache);
  /* The binary protocol: a 24-byte header, then extras, key, value (set: flags and expiry). */
  static const char mcb_get[] = "\x80\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x08"
                                "\0\0\0\0\0\0\0\0\0\0\0\0key:1234";
  char mcbset[1200] = "\x80\x01\x00\x08\x08\x00\x00\x00\x00\x00\x04\x10"; /* body 8 + 8 + 1024 */
  memcpy(mcbset + 32, "key:1234", 8);
  memset(mcbset + 40, '0', 1024);
  report("ringwright", "memcache_binary_get", mcb_get, sizeof mcb_get - 1, rw_mcbin);
  report("ringwright", "memcache_binary_set_1k", mcbset, 24 + 8 + 8 + 1024, rw_mcbin);
  /* MQTT 3.1.1 (tests/specs/mqtt.rw): QoS 1 PUBLISHes read field after field, a varint
   * remaining length of one byte (16-byte payload) and of two (1 KiB). */
  static const char mq_pub[] = "\x32\x1e\x00\x0asensors/t1\x00\x01"
                               "0123456789abcdef";
  char mqpub1k[1100] = "\x32\x8e\x08\x00\x0asensors/t1\x00\x01"; /* 2 + 10 + 2 + 1024 = 1038 */
  memset(mqpub1k + 17, '0', 1024);
  report("ringwright", "mqtt_publish", mq_pub, sizeof mq_pub - 1, rw_mqtt);
  report("ringwright", "mqtt_publish_1k", mqpub1k, 17 + 1024, rw_mqtt);
  report("ringwright", "browser", browser, sizeof browser - 1, rw_http1);
  report("ringwright", "small", small_http, sizeof small_http - 1, rw_http1);
#ifdef WITH_PEERS
  if (sizeof browser - 1 != 703)
    printf("# warning: the browser request is %zu bytes, not 703\n", sizeof browser - 1);
  report("picohttpparser", "browser", browser, sizeof browser - 1, pico_all);
  report("picohttpparser", "small", small_http, sizeof small_http - 1, pico_all);
  report("llhttp", "browser", browser, sizeof browser - 1, llhttp_all);
  report("llhttp", "small", small_http, sizeof small_http - 1, llhttp_all);
#endif
  return 0;
}
