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
#include <time.h>
#include <unistd.h>

#include "../core/conn.h"
#include "../core/driver.h"
#include "../core/fault.h"
#include "../core/log.h"
#include "../core/sendq.h"
#include "../core/worker.h"

#define MAX_EVENTS 256
#define ACCEPTS_PER_TURN 64
#define IOV_PER_SEND 64

enum { TAG_CONN, TAG_LISTENER, TAG_SIGNAL, TAG_WAKE, TAG_UDP };

struct epoll_state {
  int epfd;
  int sigfd;    /* worker 0 only */
  int spare_fd; /* released to accept-and-close when the fd table is full */
  struct epoll_event events[MAX_EVENTS];
  uint32_t *interest; /* by connection: the events registered for it */
  bool batching;      /* the last wait found two or more ready: the next one pauses first */
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

static int epoll_probe(char *why, size_t whylen)
{
  (void)why;
  (void)whylen;
  return 0;
}

static int epoll_init(struct rw_worker *w)
{
  struct epoll_state *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  w->drv = st;
  st->sigfd = -1;
  st->interest = calloc(w->max_conns, sizeof *st->interest);
  if (!st->interest)
    return -ENOMEM;
  st->epfd = epoll_create1(EPOLL_CLOEXEC);
  st->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (st->epfd < 0)
    return -errno;
  int rc = ep_add(st->epfd, w->wakefd, EPOLLIN, tag(TAG_WAKE, 0));
  if (!rc && w->id == 0) {
    st->sigfd = rw_worker_signalfd();
    rc = st->sigfd < 0 ? st->sigfd : ep_add(st->epfd, st->sigfd, EPOLLIN, tag(TAG_SIGNAL, 0));
  }
  for (unsigned i = 0; !rc && i < w->srv->nlisteners; i++)
    rc = ep_add(st->epfd, w->lfd[i], EPOLLIN, tag(TAG_LISTENER, i));
  for (unsigned i = 0; !rc && i < w->srv->nudp; i++)
    rc = ep_add(st->epfd, w->udp[i].fd, EPOLLIN, tag(TAG_UDP, i));
  return rc;
}

static void epoll_fini(struct rw_worker *w)
{
  struct epoll_state *st = w->drv;
  if (!st)
    return;
  if (st->epfd >= 0)
    close(st->epfd);
  if (st->sigfd >= 0)
    close(st->sigfd);
  if (st->spare_fd >= 0)
    close(st->spare_fd);
  free(st->interest);
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

static void on_accept(struct rw_worker *w, unsigned li)
{
  struct epoll_state *st = w->drv;
  int lfd = w->lfd[li];
  for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int fault = rw_fault(RW_FAULT_ACCEPT, fd);
    if (fault < 0 && fd >= 0) { /* injected: as if the descriptor could not be had */
      close(fd);
      fd = -1;
      errno = -fault;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE) {
        rw_log_limited(&w->accept_log, "accept: %s: connection refused", strerror(errno));
        refuse_one(st, lfd);
      } else if (errno != EAGAIN) {
        rw_log_limited(&w->accept_log, "accept: %s", strerror(errno));
      }
      return;
    }
    struct rw_conn *c = rw_worker_accepted(w, li, fd, false);
    if (!c) {
      close(fd);
      continue;
    }
    st->interest[c->idx] = EPOLLIN;
    if (ep_add(st->epfd, fd, EPOLLIN, tag(TAG_CONN, c->idx)) < 0)
      rw_conn_abort(c, -errno);
  }
}

static void on_readable(struct rw_conn *c)
{
  size_t cap;
  uint8_t *buf = rw_conn_rx_window(c, &cap);
  if (!buf)
    return;
  ssize_t n = recv(c->fd, buf, cap, 0);
  int fault = n > 0 ? rw_fault(RW_FAULT_RECV, 0) : 0;
  if (fault < 0) {
    n = -1;
    errno = -fault;
  }
  if (n > 0)
    rw_conn_received(c, buf, (size_t)n);
  else if (n == 0)
    rw_conn_eof(c);
  else if (errno != EAGAIN && errno != EINTR)
    rw_conn_abort(c, -errno);
}

static void set_interest(struct epoll_state *st, struct rw_conn *c, uint32_t want)
{
  struct epoll_event ev = {.events = want, .data.u64 = tag(TAG_CONN, c->idx)};
  if (epoll_ctl(st->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    st->interest[c->idx] = want;
}

static uint32_t wanted(const struct rw_conn *c)
{
  return (rw_conn_wants_read(c) ? EPOLLIN : 0) | (rw_conn_wants_write(c) ? EPOLLOUT : 0);
}

/* A connection that stops reading keeps EPOLLIN registered: most pauses end before the peer
 * sends more (a proxied request waits for its response, and its client for that response), and
 * taking EPOLLIN off and putting it back cost two epoll_ctl per request. Input that does arrive
 * meanwhile takes it off then (on_conn_event). */
static void epoll_update(struct rw_worker *w, struct rw_conn *c)
{
  struct epoll_state *st = w->drv;
  uint32_t want = wanted(c), have = st->interest[c->idx];
  if (want != have && (want | EPOLLIN) != have)
    set_interest(st, c, want);
}

/* Cuts iov[0..n) to `len` bytes in all; returns how many entries remain. */
static int trim_iov(struct iovec *iov, int n, size_t len)
{
  for (int i = 0; i < n; i++) {
    if (iov[i].iov_len >= len) {
      iov[i].iov_len = len;
      return len ? i + 1 : i;
    }
    len -= iov[i].iov_len;
  }
  return n;
}

/* One piece (most replies: one chunk) goes by send(), which spares the kernel sendmsg's copy
 * and check of a msghdr and an iovec array. */
static ssize_t send_iov(int fd, struct iovec *iov, int n)
{
  if (n == 1)
    return send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
  return sendmsg(fd, &mh, MSG_NOSIGNAL);
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
    n = trim_iov(iov, n, rw_fault_short(total));
    int fault = rw_fault(RW_FAULT_SEND, 0);
    ssize_t sent = fault < 0 ? (errno = -fault, -1) : send_iov(c->fd, iov, n);
    if (sent < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        rw_conn_send_blocked(c);
        return 0;
      }
      return -errno;
    }
    rw_conn_sent(c, (size_t)sent);
    if ((size_t)sent < total) {
      /* The socket buffer is full: the next sendmsg would only say EAGAIN. */
      rw_conn_send_blocked(c);
      return 0;
    }
  }
}

/* Closing a socket with unread input makes the kernel send a reset, and a reset can destroy
 * the last reply before the peer reads it (an error line sent to a client still sending, say).
 * So a graceful close sends FIN first and discards what input already arrived. */
#define LINGER_DRAIN_MAX (1 << 20)

static bool epoll_close(struct rw_worker *w, struct rw_conn *c)
{
  if (c->fd < 0)
    return true;
  if (!(c->flags & (RW_CONN_ABORT | RW_CONN_CONNECTING))) {
    shutdown(c->fd, SHUT_WR);
    size_t drained = 0;
    ssize_t n;
    while (drained < LINGER_DRAIN_MAX && (n = recv(c->fd, w->rxbuf, w->srv->cfg.recv_size, MSG_DONTWAIT)) > 0)
      drained += (size_t)n;
  }
  close(c->fd); /* also leaves the epoll set: the fd was never duplicated */
  return true;
}

static int epoll_connect(struct rw_worker *w, struct rw_conn *c, const struct sockaddr *sa, socklen_t len)
{
  struct epoll_state *st = w->drv;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, sa, len) < 0 && errno != EINPROGRESS)
    return -errno;
  /* Even an immediate success is reported from the loop, never from inside rw_connect(). */
  st->interest[c->idx] = EPOLLOUT;
  return ep_add(st->epfd, c->fd, EPOLLOUT, tag(TAG_CONN, c->idx));
}

static void epoll_stop_accepting(struct rw_worker *w)
{
  struct epoll_state *st = w->drv;
  for (unsigned i = 0; i < w->srv->nlisteners; i++)
    if (w->lfd[i] >= 0)
      epoll_ctl(st->epfd, EPOLL_CTL_DEL, w->lfd[i], NULL);
  rw_worker_close_listeners(w);
}

/* The socket's pending error as -errno (0: none). */
static int socket_error(int fd)
{
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return -err;
}

static void on_conn_event(struct rw_worker *w, struct rw_conn *c, uint32_t events)
{
  if (c->flags & RW_CONN_CONNECTING) {
    rw_conn_connected(c, socket_error(c->fd));
    return;
  }
  if (events & EPOLLERR) {
    int err = socket_error(c->fd); /* (a reset: the owner's close callback hears which) */
    rw_conn_abort(c, err ? err : -EPIPE);
    return;
  }
  if (events & EPOLLOUT)
    rw_conn_writable(c);
  if ((events & EPOLLIN) && !rw_conn_wants_read(c)) {
    set_interest(w->drv, c, wanted(c)); /* (kept while paused: see epoll_update) */
    return;
  }
  if (events & EPOLLIN)
    on_readable(c);
  else if (events & EPOLLHUP)
    rw_conn_abort(c, -ECONNRESET); /* reported even when not asked for: do not spin on it */
}

/* A watch's data is its address with the top bit set (tags never set it). */
#define WATCH_BIT (1ULL << 63)

static int epoll_watch(struct rw_worker *w, int fd, struct rw_proc_watch *wt)
{
  struct epoll_state *st = w->drv;
  return ep_add(st->epfd, fd, EPOLLIN | EPOLLONESHOT, WATCH_BIT | (uintptr_t)wt);
}

static int epoll_adopt(struct rw_worker *w, struct rw_conn *c)
{
  struct epoll_state *st = w->drv;
  st->interest[c->idx] = EPOLLIN;
  return ep_add(st->epfd, c->fd, EPOLLIN, tag(TAG_CONN, c->idx));
}

static void on_event(struct rw_worker *w, const struct epoll_event *ev)
{
  if (ev->data.u64 & WATCH_BIT) {
    struct rw_proc_watch *wt = (struct rw_proc_watch *)(uintptr_t)(ev->data.u64 & ~WATCH_BIT);
    wt->fn(wt, 1); /* one-shot: the owner closes the fd, which leaves the set */
    return;
  }
  uint32_t idx = (uint32_t)ev->data.u64;
  uint64_t counter;
  switch ((int)(ev->data.u64 >> 32)) {
  case TAG_SIGNAL: rw_worker_on_signalfd(w, ((struct epoll_state *)w->drv)->sigfd); return;
  case TAG_WAKE:
    if (read(w->wakefd, &counter, sizeof counter) < 0 && errno != EAGAIN)
      rw_log("wake: %s", strerror(errno));
    rw_worker_run_inbox(w);
    return;
  case TAG_LISTENER:
    if (!w->stopping)
      on_accept(w, idx);
    return;
  case TAG_UDP: rw_worker_udp_input(&w->udp[idx]); return;
  default: break;
  }
  struct rw_conn *c = &w->conns[idx];
  if (c->flags & RW_CONN_LIVE)
    on_conn_event(w, c, ev->events);
}

/* rw_config.batch_wait_us on epoll, which has no batch wait of its own (the io_uring driver
 * uses the kernel's): while waits find two or more connections ready at once, the worker
 * sleeps that long before the next one, so that more gather and one wait and one turn take
 * them all. A wait that finds one turns it off, as on io_uring; a full one needs no pause. */
static int wait_events(struct rw_worker *w, struct epoll_state *st)
{
  int t = rw_worker_timeout(w);
  uint32_t us = w->srv->cfg.batch_wait_us;
  if (st->batching && t != 0) {
    struct timespec d = {.tv_nsec = (long)us * 1000};
    nanosleep(&d, NULL); /* (a signal that cuts it short is no harm) */
    if (t > 0)
      t = t > (int)(us + 999) / 1000 ? t - (int)(us + 999) / 1000 : 0;
  }
  int n = epoll_wait(st->epfd, st->events, MAX_EVENTS, t);
  st->batching = us && n >= 2 && n < MAX_EVENTS;
  return n;
}

static int epoll_run(struct rw_worker *w)
{
  struct epoll_state *st = w->drv;
  for (;;) {
    int n = wait_events(w, st);
    if (n < 0 && errno != EINTR)
      return -errno;
    rw_worker_tick(w);
    for (int i = 0; i < n; i++)
      on_event(w, &st->events[i]);
    rw_worker_flush(w);
    if (rw_worker_done(w))
      return 0;
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
    .connect = epoll_connect,
    .stop_accepting = epoll_stop_accepting,
    .probe = epoll_probe,
    .adopt = epoll_adopt,
    .watch = epoll_watch,
};
