/* A worker: one thread, one reactor, its own pools and connections. This file holds what every
 * driver's loop does the same way around its own waiting and I/O: the clock and timers, the
 * end-of-turn flush, stopping, and handing accepted sockets and datagrams to the core. */
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "driver.h"
#include "conn.h"
#include "dns.h"
#include "large.h"
#include "log.h"
#include "server.h"
#include "timer.h"
#include "tls_start.h"
#include "worker.h"

static void begin_stop(struct rw_worker *w)
{
  w->stopping = true;
  w->deadline_ms = w->now_ms + w->srv->cfg.shutdown_ms;
  w->driver->stop_accepting(w);
  if (w->id == 0)
    rw_log("stopping: no longer accepting, flushing connections");
  rw_worker_close_all(w, false);
  rw_dns_stop(w);
}

void rw_worker_tick(struct rw_worker *w)
{
  w->now_ms = rw_now_ms();
  rw_wheel_advance(&w->wheel, w->now_ms);
  if (w->large_waiting)
    rw_large_tick(w);
  if (!w->stopping && atomic_load_explicit(&w->srv->stop, memory_order_relaxed))
    begin_stop(w);
}

bool rw_worker_done(struct rw_worker *w)
{
  if (!w->stopping)
    return false;
  if (w->nlive && w->now_ms >= w->deadline_ms) {
    rw_log("worker %u: stop deadline passed: closing %u connection%s with unsent data", w->id, w->nlive,
           w->nlive == 1 ? "" : "s");
    rw_worker_close_all(w, true);
    rw_worker_flush(w);
  }
  /* File operations and tasks in flight finish first: their owners' buffers and callbacks
   * belong to this loop (the deadline still bounds the wait). */
  return w->nlive == 0 && (w->ops_inflight == 0 || w->now_ms >= w->deadline_ms);
}

int rw_worker_timeout(struct rw_worker *w)
{
  if (w->dirty || w->freed_resources)
    return 0;
  int t = rw_wheel_timeout(&w->wheel, w->now_ms);
  if (w->stopping) {
    int64_t left = w->deadline_ms - w->now_ms;
    int d = left < 0 ? 0 : left > 100 ? 100 : (int)left;
    if (t < 0 || d < t)
      t = d;
  }
  return t;
}

void rw_worker_wake(struct rw_worker *w)
{
  uint64_t one = 1;
  ssize_t rc = write(w->wakefd, &one, sizeof one);
  (void)rc; /* a full counter means a wake-up is already pending */
}

/* One of the server's --max-conns for an accepted connection: false when all are taken. The
 * count is shared by every worker, so that the cap is exact however the kernel spreads
 * connections; it is touched on accept and release only. */
static bool take_conn(rw_server *s)
{
  if (atomic_fetch_add_explicit(&s->nconns, 1, memory_order_relaxed) < s->cfg.max_conns)
    return true;
  atomic_fetch_sub_explicit(&s->nconns, 1, memory_order_relaxed);
  return false;
}

struct rw_conn *rw_worker_accepted(struct rw_worker *w, unsigned li, int fd, bool direct)
{
  rw_server *s = w->srv;
  const struct rw_listener *ln = &s->listeners[li];
  if (w->stopping) {
    RW_STAT_ADD(w->stats.refused[RW_REFUSED_STOPPING], 1);
    return NULL;
  }
  bool taken = take_conn(s);
  struct rw_conn *c = taken ? rw_conn_open(w, ln->proto, ln->handlers, fd) : NULL;
  if (!c) {
    /* (A worker's slots cover the whole cap: only its own outbound connections and process
     * pipes can leave it none while the count has room.) */
    if (taken)
      atomic_fetch_sub_explicit(&s->nconns, 1, memory_order_relaxed);
    rw_log_limited(&w->refuse_log, "connection refused: %u connections open (--max-conns %u)",
                   atomic_load_explicit(&s->nconns, memory_order_relaxed), s->cfg.max_conns);
    RW_STAT_ADD(w->stats.refused[RW_REFUSED_MAX_CONNS], 1);
    return NULL;
  }
  c->counted = true;
  if (direct)
    c->flags |= RW_CONN_DIRECT;
  if (ln->uncounted)
    c->ps = NULL; /* (scrapes are not the traffic they report) */
  else
    RW_STAT_ADD(w->stats.accepted, 1);
  for (unsigned i = 0; i < s->nalts; i++)
    if (s->alts[i].proto == ln->proto)
      c->flags |= RW_CONN_CHOOSE; /* (conn.c looks at the first byte) */
  if (ln->transport_ctx && rw_tls_calls()->conn_start(c, ln->transport_ctx, NULL) < 0) {
    rw_log_limited(&w->transport_log, "tls: no memory for a session: connection refused");
    RW_STAT_ADD(w->stats.refused[RW_REFUSED_MEMORY], 1);
    rw_conn_abort(c, -ENOMEM);
  }
  if (s->cfg.on_accept && !(c->flags & RW_CONN_ABORT))
    s->cfg.on_accept(c, ln->proto, s->cfg.data);
  return c;
}

static void flush_one(struct rw_worker *w, struct rw_conn *c)
{
  /* What the transport held this turn goes into the chain now (TLS: one record, not one per
   * write). */
  if (c->transport->flush && c->transport->flush(c) < 0) {
    rw_log_limited(&w->transport_log, "%s: no send chunk to flush into: closing the connection",
                   c->transport->name);
    c->flags |= RW_CONN_ABORT;
  }
  if (c->flags & RW_CONN_SENDING)
    return; /* its completion marks it dirty again; the kernel still owns its chunks */
  if (!(c->flags & (RW_CONN_ABORT | RW_CONN_WANT_WRITE | RW_CONN_CONNECTING | RW_CONN_CORKED)) && c->queued) {
    if (c->ttfb_t0)
      rw_stats_first_byte(c);
    int rc = w->driver->send(w, c);
    if (rc < 0)
      c->flags |= RW_CONN_ABORT;
    if (c->flags & RW_CONN_SENDING)
      return;
  }
  if ((c->flags & RW_CONN_ABORT) || ((c->flags & RW_CONN_CLOSING) && !rw_conn_unsent(c))) {
    rw_conn_free(c);
    return;
  }
  w->driver->update(w, c);
}

void rw_worker_flush(struct rw_worker *w)
{
  for (int round = 0; round < 4; round++) {
    /* Each round: first the application's end-of-turn work (a log write covering what the
     * handlers of the last round produced), then the sends. */
    if (w->srv->cfg.on_turn_end)
      w->srv->cfg.on_turn_end(w, w->srv->cfg.data);
    /* (Resources freed outside a flush, by a driver's completion, still wake paused ones.) */
    if (!w->dirty && !w->freed_resources)
      break;
    struct rw_conn *c = w->dirty;
    w->dirty = NULL;
    while (c) {
      struct rw_conn *next = c->dirty_next;
      c->flags &= ~RW_CONN_DIRTY;
      if (c->flags & RW_CONN_LIVE)
        flush_one(w, c);
      c = next;
    }
    /* Freed chunks or slots may let paused connections go on; what they write is flushed in
     * the next round (or the next turn: the loop does not wait while anything is dirty). */
    if (w->freed_resources) {
      w->freed_resources = false;
      for (struct rw_conn *p = w->paused, *pn; p; p = pn) {
        pn = p->paused_next;
        rw_conn_try_resume(p);
      }
    }
  }
}

void rw_worker_close_all(struct rw_worker *w, bool abort)
{
  for (uint32_t i = 0; i < w->max_conns; i++) {
    struct rw_conn *c = &w->conns[i];
    if (!(c->flags & RW_CONN_LIVE))
      continue;
    if (abort)
      rw_conn_abort(c, -ETIMEDOUT);
    else if (c->flags & RW_CONN_CONNECTING)
      rw_conn_connected(c, -ECANCELED);
    else
      rw_conn_close_err(c, -ESHUTDOWN);
  }
}

/* Reads what datagrams are waiting (bounded, so one busy socket cannot starve the loop). */
void rw_worker_udp_input(struct rw_udp *u)
{
  struct rw_worker *w = u->w;
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n =
        recvfrom(u->fd, w->rxbuf, w->srv->cfg.recv_size, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
    if (n < 0)
      return;
    u->fn(u, (struct sockaddr *)&from, fromlen, (rw_span){w->rxbuf, (size_t)n}, u->data);
  }
}

int rw_udp_send(rw_udp *u, const struct sockaddr *to, socklen_t tolen, const void *p, size_t len)
{
  ssize_t n = sendto(u->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL, to, tolen);
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return 0;
}

rw_worker *rw_udp_worker(const rw_udp *u)
{
  return u->w;
}

rw_server *rw_worker_server(const rw_worker *w)
{
  return w->srv;
}

unsigned rw_worker_id(const rw_worker *w)
{
  return w->id;
}

/* Drivers call this once they stopped watching the listeners. */
void rw_worker_close_listeners(struct rw_worker *w)
{
  rw_server *s = w->srv;
  for (unsigned i = 0; i < s->nlisteners; i++) {
    if (w->lfd[i] >= 0)
      close(w->lfd[i]);
    w->lfd[i] = -1;
    if (w->id == 0)
      s->listeners[i].fd0 = -1;
  }
}

/* Worker 0's way to hear SIGINT/SIGTERM and SIGHUP (blocked in every thread; SIGHUP only with
 * rw_server_on_hup, so that without it the signal keeps its default action): a signalfd its
 * driver watches; -errno on failure. */
int rw_worker_signalfd(void)
{
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

/* Reads every pending signal: SIGHUP goes to the application's handler, any other asks the
 * server to stop. */
void rw_worker_on_signalfd(struct rw_worker *w, int fd)
{
  struct signalfd_siginfo si;
  bool stop = false;
  while (read(fd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGHUP && w->srv->on_hup)
      w->srv->on_hup(w, w->srv->hup_data);
    else
      stop = true;
  }
  if (stop)
    rw_server_stop(w->srv);
}

int rw_server_on_hup(rw_server *s, void (*fn)(rw_worker *w, void *data), void *data)
{
  if (!s || !fn)
    return -EINVAL;
  if (s->workers)
    return -EBUSY;
  s->on_hup = fn;
  s->hup_data = data;
  return 0;
}
