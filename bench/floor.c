/* floor: the least a server can do on this kernel, to measure the others against. One thread,
 * one epoll set, no framework: accept, receive, count the lines, send that many "+PONG\r\n"
 * (the ping protocol of bench/reactor, without parsing a byte more than the newlines), or with
 * --echo send back what came. Level-triggered, one receive per readiness; a reply the socket
 * does not take at once waits for writability (no reading meanwhile). No allocation after the
 * connection table. Not a server to run: it trusts its input and has no limits.
 *
 *   floor --listen HOST:PORT [--echo] [--max-conns N]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 16384
#define PONG "+PONG\r\n"

struct conn {
  size_t owed; /* reply bytes not yet sent: PONGs (ping) or held input (echo) */
  size_t off;  /* echo: where the held bytes start in `held` */
  char *held;  /* echo: what the socket refused, BUF bytes (allocated with the table) */
};

static struct conn *conns;
static int max_conns = 4096, echo;
static char pongs[BUF - BUF % (sizeof PONG - 1)];

static void set_events(int ep, int fd, uint32_t ev)
{
  struct epoll_event e = {.events = ev, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
}

static void drop(int ep, int fd)
{
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  conns[fd].owed = 0;
}

/* Sends what is owed; returns 0 when all went, 1 when the socket is full, -1 on error. */
static int flush(int fd)
{
  struct conn *c = &conns[fd];
  size_t pong = sizeof PONG - 1;
  while (c->owed) {
    /* Ping: `off` is where in a PONG the last send stopped; the buffer is whole PONGs. */
    const char *p = echo ? c->held + c->off : pongs + c->off;
    size_t most = echo ? c->owed : sizeof pongs - pong;
    size_t n = c->owed < most ? c->owed : most;
    ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0)
      return errno == EAGAIN ? 1 : -1;
    c->owed -= (size_t)r;
    c->off = echo ? c->off + (size_t)r : (c->off + (size_t)r) % pong;
  }
  c->off = 0;
  return 0;
}

static void on_readable(int ep, int fd, char *buf)
{
  ssize_t n = recv(fd, buf, BUF, 0);
  if (n <= 0) {
    if (n == 0 || errno != EAGAIN)
      drop(ep, fd);
    return;
  }
  struct conn *c = &conns[fd];
  if (echo) {
    memcpy(c->held, buf, (size_t)n);
    c->owed = (size_t)n;
  } else {
    size_t lines = 0;
    for (const char *p = buf, *end = buf + n; (p = memchr(p, '\n', (size_t)(end - p))); p++)
      lines++;
    c->owed += lines * (sizeof PONG - 1);
  }
  int rc = flush(fd);
  if (rc < 0)
    drop(ep, fd);
  else if (rc > 0)
    set_events(ep, fd, EPOLLOUT);
}

static int listen_on(const char *hostport)
{
  char host[64];
  const char *colon = strrchr(hostport, ':');
  if (!colon || (size_t)(colon - hostport) >= sizeof host)
    return -1;
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = 0;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4096))
    return -1;
  return fd;
}

int main(int argc, char **argv)
{
  const char *addr = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--listen") && i + 1 < argc)
      addr = argv[++i];
    else if (!strcmp(argv[i], "--max-conns") && i + 1 < argc)
      max_conns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--echo"))
      echo = 1;
    else
      addr = NULL, i = argc;
  }
  int lfd = addr ? listen_on(addr) : -1;
  if (lfd < 0) {
    fprintf(stderr, "usage: floor --listen IPV4:PORT [--echo] [--max-conns N]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < sizeof pongs; i += sizeof PONG - 1)
    memcpy(pongs + i, PONG, sizeof PONG - 1);
  /* Indexed by fd: room for the listener, the epoll fd and the standard ones besides. */
  size_t slots = (size_t)max_conns + 16;
  conns = calloc(slots, sizeof *conns);
  char *held = echo ? malloc(slots * BUF) : NULL;
  static char buf[BUF];
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
  if (!conns || (echo && !held) || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev))
    return 1;
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int cfd;
        while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if ((size_t)cfd >= slots) {
            close(cfd);
            continue;
          }
          int one = 1;
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[cfd] = (struct conn){.held = held ? held + (size_t)cfd * BUF : NULL};
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ce);
        }
      } else if (evs[i].events & EPOLLOUT) {
        int rc = flush(fd);
        if (rc < 0)
          drop(ep, fd);
        else if (!rc)
          set_events(ep, fd, EPOLLIN);
      } else {
        on_readable(ep, fd, buf);
      }
    }
  }
}
