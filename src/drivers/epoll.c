/* The epoll driver: level-triggered readiness, one receive per ready connection per turn (so
 * a busy connection cannot starve the others), replies flushed with one sendmsg per connection
 * at the end of the turn, signals through a signalfd so that a stop is just another event. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../core/core.h"

#define MAX_EVENTS 256
#define ACCEPTS_PER_TURN 64
#define IOV_PER_SEND 64

enum { TAG_CONN, TAG_LISTENER, TAG_SIGNAL };

struct epoll_state {
  int epfd;
  int sigfd;
  int spare_fd; /* released to accept-and-close when the fd table is full */
  sigset_t oldmask;
  struct rw_ratelimit accept_log;
  struct epoll_event events[MAX_EVENTS];
};

static uint64_t tag(int kind, uint32_t idx)
{
  return (uint64_t)kind << 32 | idx;
}

static int ep_add(int epfd, int fd, uint32_t events, uint64_t data)
{
  struct epoll_event ev = {.events = events, .data.u64 = data};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int epoll_init(struct rw_worker *w)
{
  struct epoll_state *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  w->drv = st;
  st->sigfd = st->spare_fd = -1;
  st->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (st->epfd < 0)
    return -errno;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, &st->oldmask);
  st->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  st->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (st->sigfd < 0)
    return -errno;
  int rc = ep_add(st->epfd, st->sigfd, EPOLLIN, tag(TAG_SIGNAL, 0));
  for (unsigned i = 0; !rc && i < w->srv->nlisteners; i++)
    rc = ep_add(st->epfd, w->srv->listeners[i].fd, EPOLLIN, tag(TAG_LISTENER, i));
  return rc;
}

static void epoll_fini(struct rw_worker *w)
{
  struct epoll_state *st = w->drv;
  if (!st)
    return;
  if (st->epfd >= 0)
    close(st->epfd);
  if (st->sigfd >= 0) {
    close(st->sigfd);
    sigprocmask(SIG_SETMASK, &st->oldmask, NULL);
  }
  if (st->spare_fd >= 0)
    close(st->spare_fd);
  free(st);
  w->drv = NULL;
}

/* With the fd table full, a pending connection would keep the listener ready forever: give up
 * the spare descriptor, accept and close the connection, and take the spare back. */
static void refuse_one(struct epoll_state *st, int lfd)
{
  if (st->spare_fd >= 0)
    close(st->spare_fd);
  int fd = accept(lfd, NULL, NULL);
  if (fd >= 0)
    close(fd);
  st->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_accept(struct rw_worker *w, struct rw_listener *ln, uint32_t idx)
{
  struct epoll_state *st = w->drv;
  for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
    int fd = accept4(ln->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE) {
        rw_log_limited(&st->accept_log, "accept on %s: %s: connection refused", ln->addr,
                       strerror(errno));
        refuse_one(st, ln->fd);
      } else if (errno != EAGAIN) {
        rw_log_limited(&st->accept_log, "accept on %s: %s", ln->addr, strerror(errno));
      }
      return;
    }
    struct rw_conn *c = rw_conn_open(w, ln, fd);
    if (!c) {
      close(fd);
      rw_log_limited(&w->refuse_log, "connection refused: %u connections open (--max-conns)",
                     w->nlive);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->events = EPOLLIN;
    if (ep_add(st->epfd, fd, EPOLLIN, tag(TAG_CONN, c->idx)) < 0)
      rw_conn_abort(c, -errno);
  }
  (void)idx;
}

static void on_readable(struct rw_conn *c)
{
  size_t cap;
  uint8_t *buf = rw_conn_rx_window(c, &cap);
  if (!buf)
    return;
  ssize_t n = recv(c->fd, buf, cap, 0);
  if (n > 0)
    rw_conn_received(c, buf, (size_t)n);
  else if (n == 0)
    rw_conn_eof(c);
  else if (errno != EAGAIN && errno != EINTR)
    rw_conn_abort(c, -errno);
}

static void epoll_update(struct rw_worker *w, struct rw_conn *c)
{
  struct epoll_state *st = w->drv;
  uint32_t want = (rw_conn_wants_read(c) ? EPOLLIN : 0) | (rw_conn_wants_write(c) ? EPOLLOUT : 0);
  if (want == c->events)
    return;
  struct epoll_event ev = {.events = want, .data.u64 = tag(TAG_CONN, c->idx)};
  if (epoll_ctl(st->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    c->events = want;
}

static int epoll_send(struct rw_worker *w, struct rw_conn *c)
{
  struct iovec iov[IOV_PER_SEND];
  for (;;) {
    int n = rw_sendq_iov(w, c, iov, IOV_PER_SEND);
    if (!n)
      return 0;
    size_t total = 0;
    for (int i = 0; i < n; i++)
      total += iov[i].iov_len;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t sent = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        c->flags |= RW_CONN_WANT_WRITE;
        return 0;
      }
      return -errno;
    }
    rw_sendq_consume(w, c, (size_t)sent);
    if ((size_t)sent < total) {
      /* The socket buffer is full: the next sendmsg would only say EAGAIN. */
      c->flags |= RW_CONN_WANT_WRITE;
      return 0;
    }
  }
}

/* Closing a socket with unread input makes the kernel send a reset, and a reset can destroy
 * the last reply before the peer reads it (an error line sent to a client still sending, say).
 * So a graceful close sends FIN first and discards what input already arrived. */
#define LINGER_DRAIN_MAX (1 << 20)

static void epoll_close(struct rw_worker *w, struct rw_conn *c)
{
  if (c->fd < 0)
    return;
  if (!(c->flags & RW_CONN_ABORT)) {
    shutdown(c->fd, SHUT_WR);
    size_t drained = 0;
    ssize_t n;
    while (drained < LINGER_DRAIN_MAX &&
           (n = recv(c->fd, w->rxbuf, w->srv->cfg.recv_size, MSG_DONTWAIT)) > 0)
      drained += (size_t)n;
  }
  close(c->fd); /* also leaves the epoll set: the fd was never duplicated */
}

static void begin_stop(struct rw_worker *w)
{
  struct epoll_state *st = w->drv;
  rw_server *s = w->srv;
  s->stopping = true;
  s->deadline_ms = rw_now_ms() + s->cfg.shutdown_ms;
  for (unsigned i = 0; i < s->nlisteners; i++) {
    epoll_ctl(st->epfd, EPOLL_CTL_DEL, s->listeners[i].fd, NULL);
    close(s->listeners[i].fd);
    s->listeners[i].fd = -1;
  }
  rw_log("stopping: no longer accepting, flushing %u connection%s", w->nlive,
         w->nlive == 1 ? "" : "s");
  rw_worker_close_all(w, false);
}

static void on_signal(struct rw_worker *w)
{
  struct epoll_state *st = w->drv;
  struct signalfd_siginfo si;
  while (read(st->sigfd, &si, sizeof si) == sizeof si)
    w->srv->stop = 1;
}

static void on_event(struct rw_worker *w, const struct epoll_event *ev)
{
  uint32_t idx = (uint32_t)ev->data.u64;
  switch ((int)(ev->data.u64 >> 32)) {
  case TAG_SIGNAL:
    on_signal(w);
    return;
  case TAG_LISTENER:
    if (!w->srv->stopping)
      on_accept(w, &w->srv->listeners[idx], idx);
    return;
  default:
    break;
  }
  struct rw_conn *c = &w->conns[idx];
  if (!(c->flags & RW_CONN_LIVE))
    return;
  if (ev->events & EPOLLERR) {
    rw_conn_abort(c, -EPIPE);
    return;
  }
  if (ev->events & EPOLLOUT)
    rw_conn_writable(c);
  if (ev->events & EPOLLIN)
    on_readable(c);
  else if (ev->events & EPOLLHUP)
    rw_conn_abort(c, -ECONNRESET); /* reported even when not asked for: do not spin on it */
}

static int next_timeout(const struct rw_worker *w)
{
  if (w->dirty)
    return 0;
  if (!w->srv->stopping)
    return -1;
  int64_t left = w->srv->deadline_ms - rw_now_ms();
  return left < 0 ? 0 : left > 100 ? 100 : (int)left;
}

static int epoll_run(struct rw_worker *w)
{
  struct epoll_state *st = w->drv;
  rw_server *s = w->srv;
  for (;;) {
    int n = epoll_wait(st->epfd, st->events, MAX_EVENTS, next_timeout(w));
    if (n < 0 && errno != EINTR)
      return -errno;
    for (int i = 0; i < n; i++)
      on_event(w, &st->events[i]);
    rw_worker_flush(w);
    if (s->stop && !s->stopping)
      begin_stop(w);
    if (s->stopping) {
      if (rw_now_ms() >= s->deadline_ms && w->nlive) {
        rw_log("stop deadline passed: closing %u connection%s with unsent data", w->nlive,
               w->nlive == 1 ? "" : "s");
        rw_worker_close_all(w, true);
      }
      rw_worker_flush(w);
      if (!w->nlive)
        return 0;
    }
  }
}

const struct rw_driver rw_driver_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .run = epoll_run,
    .fini = epoll_fini,
    .update = epoll_update,
    .send = epoll_send,
    .close = epoll_close,
};
