/* rwload: a closed-loop load generator for the benchmarks. N connections each send a request
 * and wait for the whole reply (or keep `depth` requests in flight), for a fixed time; prints
 * requests per second and latency percentiles. One thread, epoll; run it pinned to a core the
 * server does not use.
 *
 *   rwload -p PORT [-c CONNS] [-d SECONDS] [-P DEPTH] [--ping | --echo BYTES | --mc-set BYTES |
 *          --mc-get BYTES | --mcb-set BYTES | --mcb-get BYTES]
 *
 * --mc-set stores a value of BYTES under one key ("STORED" back); --mc-get reads it (stored
 * first): memcache text protocol, for kvd against memcached. --mcb-set and --mcb-get do the same
 * in memcached's binary protocol.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
  int fd;
  size_t out_off, in_got; /* progress through the current batch */
  uint64_t sent_ns;
};

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  int port = 0, conns = 50, secs = 5, depth = 1;
  size_t echo = 0, mc = 0;
  int mc_get = 0, bin = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-p") && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-c") && i + 1 < argc)
      conns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-d") && i + 1 < argc)
      secs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-P") && i + 1 < argc)
      depth = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--echo") && i + 1 < argc)
      echo = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--ping"))
      echo = 0;
    else if (!strcmp(argv[i], "--mc-set") && i + 1 < argc)
      mc = (size_t)atol(argv[++i]), mc_get = 0;
    else if (!strcmp(argv[i], "--mc-get") && i + 1 < argc)
      mc = (size_t)atol(argv[++i]), mc_get = 1;
    else if (!strcmp(argv[i], "--mcb-set") && i + 1 < argc)
      mc = (size_t)atol(argv[++i]), mc_get = 0, bin = 1;
    else if (!strcmp(argv[i], "--mcb-get") && i + 1 < argc)
      mc = (size_t)atol(argv[++i]), mc_get = 1, bin = 1;
    else {
      fprintf(stderr, "usage: rwload -p PORT [-c CONNS] [-d SECONDS] [-P DEPTH] [--ping | --echo BYTES | "
                      "--mc-set BYTES | --mc-get BYTES | --mcb-set BYTES | --mcb-get BYTES]\n");
      return 2;
    }
  }
  if (!port || conns < 1 || depth < 1)
    return 2;
  /* One batch = `depth` requests written at once; the reply is read in full before the next. */
  char *set = NULL, get[64], value_head[64];
  size_t set_len = 0, get_len = 0;
  if (mc && bin) { /* binary: set's extras are flags and expiration (0), its key rwload-key */
    static const char key[] = "rwload-key";
    size_t body = 8 + sizeof key - 1 + mc;
    set = calloc(1, 24 + body);
    set[0] = (char)0x80, set[1] = 0x01, set[3] = sizeof key - 1, set[4] = 8;
    for (int b = 0; b < 4; b++)
      set[8 + b] = (char)(body >> (24 - 8 * b));
    memcpy(set + 32, key, sizeof key - 1);
    memset(set + 32 + sizeof key - 1, 'v', mc);
    set_len = 24 + body;
    memset(get, 0, 24);
    get[0] = (char)0x80, get[3] = sizeof key - 1, get[11] = sizeof key - 1;
    memcpy(get + 24, key, sizeof key - 1);
    get_len = 24 + sizeof key - 1;
  } else if (mc) { /* the one request, and the length of its one reply */
    set = malloc(mc + 64);
    int n = snprintf(set, 64, "set rwload-key 0 0 %zu\r\n", mc);
    memset(set + n, 'v', mc);
    memcpy(set + n + mc, "\r\n", 3);
    snprintf(get, sizeof get, "get rwload-key\r\n");
    snprintf(value_head, sizeof value_head, "VALUE rwload-key 0 %zu\r\n", mc);
    set_len = strlen(set);
    get_len = strlen(get);
  }
  const char *req = mc ? (mc_get ? get : set) : "PING\r\n";
  size_t req_len = echo ? echo : mc ? (mc_get ? get_len : set_len) : strlen(req);
  /* (binary replies: a 24-byte header; a get's body is the flags and the value) */
  size_t rep_len = echo      ? echo
                   : !mc     ? 7
                   : bin     ? 24 + (mc_get ? 4 + mc : 0)
                   : !mc_get ? 8
                             : strlen(value_head) + mc + 2 + 5;
  size_t out_len = req_len * (size_t)depth, in_len = rep_len * (size_t)depth;
  uint8_t *out = malloc(out_len), *in = malloc(in_len > 65536 ? in_len : 65536);
  for (int k = 0; k < depth; k++) {
    if (echo)
      for (size_t j = 0; j < echo; j++)
        out[k * echo + j] = (uint8_t)('a' + j % 26);
    else
      memcpy(out + k * req_len, req, req_len);
  }
  struct conn *cs = calloc((size_t)conns, sizeof *cs);
  int ep = epoll_create1(0);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < conns; i++) {
    cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(cs[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      perror("rwload: connect");
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  if (mc_get) { /* the value the gets will read */
    size_t n = set_len, ok = bin ? 24 : 8;
    if (write(cs[0].fd, set, n) != (ssize_t)n || read(cs[0].fd, in, ok) != (ssize_t)ok ||
        memcmp(in, bin ? "\x81\x01\0\0\0\0\0\0" : "STORED\r\n", 8)) {
      fprintf(stderr, "rwload: could not store the value to get\n");
      return 1;
    }
  }
  size_t lat_cap = 1 << 22, nlat = 0;
  uint32_t *lat = malloc(lat_cap * sizeof *lat);
  uint64_t start = now_ns(), end = start + (uint64_t)secs * 1000000000u, done = 0;
  for (int i = 0; i < conns; i++) {
    cs[i].sent_ns = now_ns();
    if (write(cs[i].fd, out, out_len) != (ssize_t)out_len) {
      perror("rwload: write");
      return 1;
    }
  }
  struct epoll_event evs[256];
  while (now_ns() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int e = 0; e < n; e++) {
      struct conn *c = &cs[evs[e].data.u32];
      ssize_t r = read(c->fd, in, in_len - c->in_got);
      if (r <= 0) {
        fprintf(stderr, "rwload: server closed a connection (%s)\n", r ? strerror(errno) : "EOF");
        return 1;
      }
      c->in_got += (size_t)r;
      if (c->in_got < in_len)
        continue;
      uint64_t t = now_ns();
      if (nlat < lat_cap)
        lat[nlat++] = (uint32_t)((t - c->sent_ns) / 1000);
      done += (uint64_t)depth;
      c->in_got = 0;
      c->sent_ns = t;
      if (write(c->fd, out, out_len) != (ssize_t)out_len) {
        perror("rwload: write");
        return 1;
      }
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  qsort(lat, nlat, sizeof *lat, cmp_u32);
  printf("requests %llu seconds %.2f rps %.0f p50_us %u p99_us %u\n", (unsigned long long)done, elapsed,
         (double)done / elapsed, nlat ? lat[nlat / 2] : 0, nlat ? lat[nlat * 99 / 100] : 0);
  return 0;
}
