/* The io_uring driver.
 *
 * One ring per worker, created on the worker's thread with SINGLE_ISSUER | DEFER_TASKRUN, and
 * one io_uring_enter per loop turn: it submits what the last turn prepared and waits for
 * completions (io_uring_submit_and_wait_timeout). Listeners use multishot accept straight into
 * the ring's fixed-file table; connections use multishot recv on a provided-buffer ring, so a
 * receive needs no SQE and a buffer is chosen only when data is there. A buffer goes back to the
 * ring as soon as the parser is done with it; bytes it cannot take yet (the connection paused)
 * stay in the buffer, held by the connection, until it reads again.
 *
 * Under load, with rw_config.batch_wait_us, the wait is a batch wait (Linux 6.12's min_wait):
 * once a completion is there the enter still waits up to that long for more, so that a loaded
 * worker sleeps and wakes once per batch instead of once per completion (wait_adaptive).
 *
 * Sends: at most one in flight per connection (so bytes cannot reorder), carrying everything
 * queued, as sendmsg over the send chain's chunks; above a size threshold as sendmsg_zc, whose
 * chunks are released only on the notification CQE.
 *
 * Closing: cancel the multishot recv, shutdown, close: three linked SQEs; the slot is released
 * when the close completes, so a late completion can never meet a stranger in the same slot.
 *
 * liburing 2.3 (Debian bookworm) has no io_uring_setup_buf_ring: the buffer ring is mapped and
 * registered here by hand. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../core/conn.h"
#include "../core/driver.h"
#include "../core/fault.h"
#include "../core/file.h"
#include "../core/log.h"
#include "../core/pool.h"
#include "../core/sendq.h"
#include "../core/server.h"
#include "../core/worker.h"

#define RING_ENTRIES 1024
#define CQ_ENTRIES 16384
#define BUF_GROUP 0
#define RING_START 16 /* buffers in circulation at start (buffers_grow) */
#define IOV_PER_SEND 16
#define BATCH_EVENTS 64 /* a batch wait returns at once when this many completions are ready */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

enum op {
  OP_ACCEPT = 1,
  OP_RECV,
  OP_SEND,
  OP_CLOSE,
  OP_CONNECT,
  OP_WAKE,
  OP_SIGNAL,
  OP_UDP,
  OP_IGNORE,
  OP_MSG,      /* a cross-worker message: the low 56 bits are its address */
  OP_MSG_SENT, /* our MSG_RING failed (its success is skipped): deliver through the inbox */
  OP_FILE,     /* a file operation: the low 56 bits are its rw_fileop's address */
  OP_WATCH,    /* a one-shot readability watch: the low 56 bits are its address */
};

/* user_data: op in the top byte, then the slot's generation (24 bits), then the index. */
static uint64_t ud(enum op op, uint32_t gen, uint32_t idx)
{
  return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffff) << 32 | idx;
}

struct uconn {
  uint32_t held_head, held_tail; /* buffers received but not yet taken by the parser */
  uint32_t held_off;             /* bytes of the head buffer already taken */
  bool recv_armed;
  bool starved;     /* recv ended for want of buffers: re-armed once some come back */
  bool fixed;       /* fd is an index in the fixed-file table */
  bool cancel_sent; /* the multishot recv is being cancelled (backpressure) */
  bool eof_pending; /* EOF arrived behind held buffers: delivered once they are parsed */
  bool closed;      /* the close completed before the direct recv: released when that does */
  uint8_t *direct;  /* a recv straight into the connection's slot is in flight, landing here */
  bool zc;          /* the send in flight is zero-copy: its chunks are the kernel's until notified */
  uint32_t zc_sent;
  struct iovec iov[IOV_PER_SEND];
  struct msghdr mh;
  struct sockaddr_storage peer; /* outbound: the address being connected to */
  socklen_t peerlen;
};

struct uring_state {
  struct io_uring ring;
  bool ring_ok;
  struct io_uring_buf_ring *br;
  size_t br_bytes;
  uint8_t *bufs;
  size_t bufs_bytes;
  uint32_t nbufs, buf_size, buf_stride;
  uint32_t *buf_next, *buf_len;
  uint32_t active;     /* buffers 0..active-1 circulate; the rest were never handed out */
  uint32_t in_ring;    /* buffers the kernel may fill */
  unsigned br_pending; /* buffers added since the last advance */
  struct uconn *uc;
  uint32_t nstarved;
  int sigfd;
  bool accepting[RW_MAX_LISTENERS];
  bool direct_accept; /* accepted into the fixed-file table (not with rw_config.peer_names) */
  bool ring_fd_registered;
  uint32_t batch_wait_us; /* rw_config.batch_wait_us where the kernel has min_wait, else 0 */
  bool batching;          /* the next wait is a batch wait (wait_adaptive) */
};

static struct io_uring_sqe *get_sqe(struct uring_state *st)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
  if (!sqe) {
    /* The SQ is full: hand it to the kernel now; this is the only extra enter, and rare. */
    io_uring_submit(&st->ring);
    sqe = io_uring_get_sqe(&st->ring);
  }
  return sqe;
}

static int ring_setup(struct io_uring *ring)
{
  struct io_uring_params p = {
      .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
               IORING_SETUP_SUBMIT_ALL,
      .cq_entries = CQ_ENTRIES,
  };
  /* Tests force a tiny ring (RW_FAULTS=cq=N) so that the completion queue overflows. */
  uint32_t forced = rw_fault_cq_entries();
  if (forced)
    p.cq_entries = forced;
  return io_uring_queue_init_params(forced ? forced : RING_ENTRIES, ring, &p);
}

static int uring_probe(char *why, size_t whylen)
{
  struct io_uring ring;
  int rc = ring_setup(&ring);
  if (rc < 0) {
    snprintf(why, whylen, "io_uring_setup: %s%s", strerror(-rc),
             rc == -EPERM    ? " (io_uring_disabled or a seccomp filter)"
             : rc == -EINVAL ? " (kernel lacks SINGLE_ISSUER/DEFER_TASKRUN, 6.1+)"
             : rc == -ENOSYS ? " (kernel built without io_uring)"
                             : "");
    return rc;
  }
  struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
  bool ok = probe && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) &&
            io_uring_opcode_supported(probe, IORING_OP_SOCKET);
  if (probe)
    io_uring_free_probe(probe);
  io_uring_queue_exit(&ring);
  if (!ok) {
    snprintf(why, whylen, "kernel lacks IORING_OP_SEND_ZC (6.0+)");
    return -EOPNOTSUPP;
  }
  return 0;
}

/* ---- provided buffers ---- */

/* Half a buffer per connection of the worker's share (64 .. 4096, a power of two as the ring
 * wants): connections rarely all have unread data at once, and a shortage is backpressure, not
 * an error. */
static uint32_t buffer_count(const struct rw_worker *w)
{
  uint32_t n = w->srv->cfg.recv_buffers ? w->srv->cfg.recv_buffers : w->share / 2;
  uint32_t pow2 = w->srv->cfg.recv_buffers ? 1 : 64;
  while (pow2 < n && pow2 < 4096)
    pow2 <<= 1;
  return pow2;
}

/* +1: the parser's sentinel byte goes right after the data. */
static size_t buffer_stride(const struct rw_worker *w)
{
  return (w->srv->cfg.recv_size + 1 + 63) / 64 * 64;
}

static void buffer_recycle(struct uring_state *st, uint32_t bid);
static void buffers_publish(struct uring_state *st);

/* Buffers enter circulation only as the load needs them: the kernel takes ring entries in turn,
 * so every buffer in the ring is soon written and resident. Starting with a few and doubling
 * when a receive finds the ring empty keeps an idle or single-client worker at RING_START
 * buffers (1 MiB at 64 KiB) instead of all of them (32 MiB for 512). */
static void buffers_grow(struct uring_state *st, uint32_t more)
{
  for (; more && st->active < st->nbufs; more--)
    buffer_recycle(st, st->active++);
}

static int buffers_init(struct rw_worker *w, struct uring_state *st)
{
  st->buf_size = w->srv->cfg.recv_size;
  st->buf_stride = (uint32_t)buffer_stride(w);
  st->nbufs = buffer_count(w);
  st->br_bytes = st->nbufs * sizeof(struct io_uring_buf);
  st->br = mmap(NULL, st->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (st->br == MAP_FAILED) {
    st->br = NULL;
    return -ENOMEM;
  }
  st->bufs_bytes = (size_t)st->nbufs * st->buf_stride;
  st->bufs = rw_region_alloc(st->bufs_bytes);
  st->buf_next = calloc(st->nbufs, sizeof *st->buf_next);
  st->buf_len = calloc(st->nbufs, sizeof *st->buf_len);
  if (!st->bufs || !st->buf_next || !st->buf_len)
    return -ENOMEM;
  io_uring_buf_ring_init(st->br);
  struct io_uring_buf_reg reg = {
      .ring_addr = (uintptr_t)st->br, .ring_entries = st->nbufs, .bgid = BUF_GROUP};
  int rc = io_uring_register_buf_ring(&st->ring, &reg, 0);
  if (rc)
    return rc;
  buffers_grow(st, RING_START < st->nbufs ? RING_START : st->nbufs);
  buffers_publish(st);
  return 0;
}

static void buffer_recycle(struct uring_state *st, uint32_t bid)
{
  io_uring_buf_ring_add(st->br, st->bufs + (size_t)bid * st->buf_stride, st->buf_size, (uint16_t)bid,
                        io_uring_buf_ring_mask(st->nbufs), (int)st->br_pending);
  st->br_pending++;
  st->in_ring++;
}

/* Made visible to the kernel once per turn, not per buffer. */
static void buffers_publish(struct uring_state *st)
{
  if (st->br_pending) {
    io_uring_buf_ring_advance(st->br, (int)st->br_pending);
    st->br_pending = 0;
  }
}

/* ---- per-connection operations ---- */

static void set_fd(struct io_uring_sqe *sqe, const struct uconn *u)
{
  if (u->fixed)
    sqe->flags |= IOSQE_FIXED_FILE;
}

static void arm_recv(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
  set_fd(sqe, u);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = BUF_GROUP;
  io_uring_sqe_set_data64(sqe, ud(OP_RECV, c->gen, c->idx));
  u->recv_armed = true;
}

/* A connection that keeps a frame in a slot of its own receives straight into it when starved of
 * buffers, or when the frame is long (a large slot): the ring can be held empty by connections
 * that wait for the very slot this one fills (long frames queued behind its own), and would then
 * stay empty; and a long frame read through the ring is copied once more, from each buffer into
 * the slot, than one read in place. False if it cannot (no slot, or no room in it yet). */
static bool arm_recv_direct(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  size_t cap;
  if (c->transport->decode_hold || c->acc == RW_NONE)
    return false; /* (what is still encoded never lands in the slot; no slot: it waits for buffers) */
  uint8_t *at = rw_conn_rx_window(c, &cap);
  if (!at || at == w->rxbuf)
    return false;
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_recv(sqe, c->fd, at, cap, 0);
  set_fd(sqe, u);
  io_uring_sqe_set_data64(sqe, ud(OP_RECV, c->gen, c->idx));
  u->recv_armed = true;
  u->direct = at;
  return true;
}

/* A frame in a large slot is long by definition: it reads in place (arm_recv_direct). */
static bool reads_in_place(const struct rw_conn *c)
{
  return c->acc_large && !c->transport->decode_hold;
}

static void cancel_recv(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_cancel64(sqe, ud(OP_RECV, c->gen, c->idx), 0);
  io_uring_sqe_set_data64(sqe, ud(OP_IGNORE, 0, 0));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* Backpressure: a paused connection that has input waiting stops the kernel from filling more
 * buffers for it. Only then: most pauses end before the peer sends more (a proxied request
 * waits for its response, and its client for that response), and cancelling the multishot recv
 * at every pause, to arm it again at the resume, cost two more operations per request. */
static void stop_paused(struct rw_worker *w, struct rw_conn *c)
{
  struct uconn *u = &((struct uring_state *)w->drv)->uc[c->idx];
  if (u->recv_armed && !u->cancel_sent && (c->flags & RW_CONN_PAUSED)) {
    cancel_recv(w, c);
    u->cancel_sent = true;
  }
}

static void hold(struct uring_state *st, struct uconn *u, uint32_t bid, uint32_t len, uint32_t off)
{
  st->buf_next[bid] = RW_NONE;
  st->buf_len[bid] = len;
  if (u->held_head == RW_NONE) {
    u->held_head = bid;
    u->held_off = off;
  } else {
    st->buf_next[u->held_tail] = bid;
  }
  u->held_tail = bid;
}

static void drop_held(struct uring_state *st, struct uconn *u)
{
  for (uint32_t b = u->held_head, next; b != RW_NONE; b = next) {
    next = st->buf_next[b];
    buffer_recycle(st, b);
  }
  u->held_head = u->held_tail = RW_NONE;
  u->held_off = 0;
}

/* Offers held buffers to the parser, oldest first; stops at the first it cannot finish. */
static void feed_held(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  while (u->held_head != RW_NONE && rw_conn_wants_read(c)) {
    uint32_t b = u->held_head;
    uint8_t *p = st->bufs + (size_t)b * st->buf_stride + u->held_off;
    size_t n = st->buf_len[b] - u->held_off;
    size_t taken = rw_conn_received(c, p, n);
    if (taken < n) {
      u->held_off += (uint32_t)taken;
      return;
    }
    u->held_head = st->buf_next[b];
    u->held_off = 0;
    if (u->held_head == RW_NONE)
      u->held_tail = RW_NONE;
    buffer_recycle(st, b);
  }
}

static void uconn_init(struct uconn *u, bool fixed)
{
  *u = (struct uconn){.held_head = RW_NONE, .held_tail = RW_NONE, .fixed = fixed};
}

/* The slot is the kernel's until this completes: a connection closed meanwhile is released now. */
static void on_recv_direct(struct rw_worker *w, struct rw_conn *c, int res)
{
  struct uconn *u = &((struct uring_state *)w->drv)->uc[c->idx];
  uint8_t *at = u->direct;
  u->direct = NULL;
  u->recv_armed = false;
  u->cancel_sent = false;
  if (u->closed) {
    u->closed = false;
    rw_conn_release(c);
    return;
  }
  if (!(c->flags & RW_CONN_LIVE) || (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)))
    return;
  int fault = res > 0 ? rw_fault(RW_FAULT_RECV, 0) : 0;
  if (fault < 0)
    rw_conn_abort(c, fault); /* injected: the bytes are dropped with the connection */
  else if (res > 0)
    rw_conn_received(c, at, (size_t)res); /* in place: all of it is taken */
  else if (res == 0)
    rw_conn_eof(c);
  else if (res != -ECANCELED)
    rw_conn_abort(c, res);
  rw_conn_mark_dirty(c); /* update() decides how it reads next */
}

static void on_recv(struct rw_worker *w, struct rw_conn *c, struct io_uring_cqe *cqe)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  bool more = cqe->flags & IORING_CQE_F_MORE;
  int res = cqe->res;
  if (u->direct) {
    on_recv_direct(w, c, res);
    return;
  }
  if (!more) {
    u->recv_armed = false;
    u->cancel_sent = false;
  }
  if (res > 0) {
    uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    uint8_t *p = st->bufs + (size_t)bid * st->buf_stride;
    st->in_ring--;
    int fault = rw_fault(RW_FAULT_RECV, 0);
    if (fault < 0 && (c->flags & RW_CONN_LIVE))
      rw_conn_abort(c, fault); /* injected: the bytes are dropped with the connection */
    if (!(c->flags & RW_CONN_LIVE) || (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))) {
      buffer_recycle(st, bid); /* nothing more is parsed on a closing connection */
    } else if (u->held_head != RW_NONE || !rw_conn_wants_read(c)) {
      hold(st, u, bid, (uint32_t)res, 0); /* behind what is already held, in order */
      stop_paused(w, c);
    } else {
      size_t taken = rw_conn_received(c, p, (size_t)res);
      if (taken < (size_t)res)
        hold(st, u, bid, (uint32_t)res, (uint32_t)taken);
      else
        buffer_recycle(st, bid);
    }
  } else if (!(c->flags & RW_CONN_LIVE)) {
    return;
  } else if (res == 0) {
    if (u->held_head != RW_NONE)
      u->eof_pending = true;
    else
      rw_conn_eof(c);
  } else if (res == -ENOBUFS) {
    RW_STAT_ADD(w->stats.enobufs, 1);
    u->starved = true;
    st->nstarved++;
    buffers_grow(st, st->active); /* (a no-op once all circulate) */
  } else if (res != -ECANCELED) {
    rw_conn_abort(c, res);
  }
  if ((c->flags & RW_CONN_LIVE) && !more)
    rw_conn_mark_dirty(c); /* update() decides whether to re-arm */
}

static void uring_update(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  if (!rw_conn_wants_read(c)) {
    if (u->held_head != RW_NONE)
      stop_paused(w, c);
    return;
  }
  if (u->held_head != RW_NONE)
    feed_held(w, c);
  if (u->held_head != RW_NONE || !rw_conn_wants_read(c))
    return;
  if (u->eof_pending) {
    u->eof_pending = false;
    rw_conn_eof(c);
    return;
  }
  if (u->recv_armed) {
    /* A frame that went long while the ring fed it: the multishot recv ends, then it reads in
     * place (its last buffers still come first). */
    if (!u->direct && !u->cancel_sent && reads_in_place(c)) {
      cancel_recv(w, c);
      u->cancel_sent = true;
    }
    return;
  }
  if ((u->starved || reads_in_place(c)) && arm_recv_direct(w, c))
    return;
  if (!u->starved)
    arm_recv(w, c);
}

static int uring_send(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  int n = rw_sendq_iov(w, c, u->iov, IOV_PER_SEND);
  if (!n)
    return 0;
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += u->iov[i].iov_len;
  size_t cut = rw_fault_short(total); /* injected: a short send, as a full socket makes */
  for (int i = 0; cut < total && i < n; i++) {
    if (u->iov[i].iov_len >= cut) {
      u->iov[i].iov_len = cut;
      n = i + 1;
      break;
    }
    cut -= u->iov[i].iov_len;
  }
  u->mh = (struct msghdr){.msg_iov = u->iov, .msg_iovlen = (size_t)n};
  struct io_uring_sqe *sqe = get_sqe(st);
  uint32_t zc_min = w->srv->cfg.send_zc_min;
  u->zc = zc_min && total >= zc_min;
  if (u->zc)
    io_uring_prep_sendmsg_zc(sqe, c->fd, &u->mh, MSG_NOSIGNAL);
  else if (n == 1) /* the common small reply: no msghdr to copy in and check */
    io_uring_prep_send(sqe, c->fd, u->iov[0].iov_base, u->iov[0].iov_len, MSG_NOSIGNAL);
  else
    io_uring_prep_sendmsg(sqe, c->fd, &u->mh, MSG_NOSIGNAL);
  set_fd(sqe, u);
  io_uring_sqe_set_data64(sqe, ud(OP_SEND, c->gen, c->idx));
  rw_conn_send_started(c);
  return 0;
}

static void send_done(struct rw_conn *c, int res)
{
  int fault = rw_fault(RW_FAULT_SEND, res);
  if (fault < 0 && fault != -EAGAIN) /* (io_uring sends never say EAGAIN: not injected) */
    res = fault;
  rw_conn_send_done(c, res);
}

static void on_send(struct rw_worker *w, struct rw_conn *c, struct io_uring_cqe *cqe)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  if (cqe->flags & IORING_CQE_F_NOTIF) {
    send_done(c, (int)u->zc_sent); /* the kernel no longer reads the chunks */
    return;
  }
  if (u->zc && (cqe->flags & IORING_CQE_F_MORE)) {
    u->zc_sent = cqe->res > 0 ? (uint32_t)cqe->res : 0;
    if (cqe->res < 0)
      rw_conn_abort(c, cqe->res);
    return;
  }
  send_done(c, cqe->res);
}

static bool uring_close(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  if (c->fd < 0)
    return true;
  drop_held(st, u);
  if (u->starved) {
    u->starved = false;
    st->nstarved--;
  }
  struct io_uring_sqe *sqe;
  if (u->recv_armed) {
    sqe = get_sqe(st);
    io_uring_prep_cancel64(sqe, ud(OP_RECV, c->gen, c->idx), 0);
    io_uring_sqe_set_data64(sqe, ud(OP_IGNORE, 0, 0));
    sqe->flags |= IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
  }
  if (!(c->flags & (RW_CONN_ABORT | RW_CONN_CONNECTING))) {
    sqe = get_sqe(st);
    io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
    set_fd(sqe, u);
    io_uring_sqe_set_data64(sqe, ud(OP_IGNORE, 0, 0));
    sqe->flags |= IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
  }
  sqe = get_sqe(st);
  if (u->fixed)
    io_uring_prep_close_direct(sqe, (unsigned)c->fd);
  else
    io_uring_prep_close(sqe, c->fd);
  io_uring_sqe_set_data64(sqe, ud(OP_CLOSE, c->gen, c->idx));
  return false;
}

static int uring_connect(struct rw_worker *w, struct rw_conn *c, const struct sockaddr *sa, socklen_t len)
{
  struct uring_state *st = w->drv;
  struct uconn *u = &st->uc[c->idx];
  uconn_init(u, false);
  memcpy(&u->peer, sa, len);
  u->peerlen = len;
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&u->peer, u->peerlen);
  io_uring_sqe_set_data64(sqe, ud(OP_CONNECT, c->gen, c->idx));
  return 0;
}

/* ---- listeners, wake-ups, signals, datagrams ---- */

static void arm_accept(struct rw_worker *w, unsigned li)
{
  struct uring_state *st = w->drv;
  struct io_uring_sqe *sqe = get_sqe(st);
  /* Straight into the fixed-file table, unless the application names peers (rw_conn_name):
   * then into the fd table, where getpeername can see them. */
  if (st->direct_accept)
    io_uring_prep_multishot_accept_direct(sqe, w->lfd[li], NULL, NULL, 0);
  else
    io_uring_prep_multishot_accept(sqe, w->lfd[li], NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, 0, li));
  st->accepting[li] = true;
}

static void arm_poll(struct rw_worker *w, int fd, enum op op, uint32_t idx)
{
  struct uring_state *st = w->drv;
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_poll_multishot(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, ud(op, 0, idx));
}

static void close_direct_ignored(struct uring_state *st, int slot)
{
  if (!st->direct_accept) {
    close(slot); /* a descriptor (rw_config.peer_names): nothing of the ring's */
    return;
  }
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_close_direct(sqe, (unsigned)slot);
  io_uring_sqe_set_data64(sqe, ud(OP_IGNORE, 0, 0));
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void on_accept(struct rw_worker *w, unsigned li, struct io_uring_cqe *cqe)
{
  struct uring_state *st = w->drv;
  if (!(cqe->flags & IORING_CQE_F_MORE)) {
    st->accepting[li] = false;
    if (cqe->res < 0 && cqe->res != -ECANCELED)
      rw_log_limited(&w->accept_log, "accept: %s", strerror(-cqe->res));
    if (!w->stopping && w->lfd[li] >= 0)
      arm_accept(w, li); /* e.g. after -ENFILE: the fixed-file table frees up as closes finish */
  }
  if (cqe->res < 0)
    return;
  int fault = rw_fault(RW_FAULT_ACCEPT, cqe->res);
  if (fault < 0) { /* injected: as if the descriptor could not be had */
    rw_log_limited(&w->accept_log, "accept: %s: connection refused", strerror(-fault));
    close_direct_ignored(st, cqe->res);
    return;
  }
  struct rw_conn *c = rw_worker_accepted(w, li, cqe->res, st->direct_accept);
  if (!c) {
    close_direct_ignored(st, cqe->res);
    return;
  }
  uconn_init(&st->uc[c->idx], st->direct_accept);
  arm_recv(w, c);
}

static void on_wake(struct rw_worker *w, struct io_uring_cqe *cqe)
{
  uint64_t v;
  if (read(w->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
    rw_log("wake: %s", strerror(errno));
  rw_worker_run_inbox(w);
  if (!(cqe->flags & IORING_CQE_F_MORE))
    arm_poll(w, w->wakefd, OP_WAKE, 0);
}

static void on_signal(struct rw_worker *w, struct io_uring_cqe *cqe)
{
  struct uring_state *st = w->drv;
  rw_worker_on_signalfd(w, st->sigfd);
  if (!(cqe->flags & IORING_CQE_F_MORE))
    arm_poll(w, st->sigfd, OP_SIGNAL, 0);
}

static void on_udp(struct rw_worker *w, uint32_t i, struct io_uring_cqe *cqe)
{
  rw_worker_udp_input(&w->udp[i]);
  if (!(cqe->flags & IORING_CQE_F_MORE))
    arm_poll(w, w->udp[i].fd, OP_UDP, i);
}

static void uring_stop_accepting(struct rw_worker *w)
{
  struct uring_state *st = w->drv;
  for (unsigned i = 0; i < w->srv->nlisteners; i++) {
    if (!st->accepting[i])
      continue;
    struct io_uring_sqe *sqe = get_sqe(st);
    io_uring_prep_cancel64(sqe, ud(OP_ACCEPT, 0, i), 0);
    io_uring_sqe_set_data64(sqe, ud(OP_IGNORE, 0, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }
  /* Submitted now, so that the listeners are really closed when this returns. */
  io_uring_submit(&st->ring);
  rw_worker_close_listeners(w);
}

/* ---- the loop ---- */

static struct rw_conn *conn_of(struct rw_worker *w, uint64_t data)
{
  uint32_t idx = (uint32_t)data, gen = (uint32_t)(data >> 32) & 0xffffff;
  if (idx >= w->max_conns)
    return NULL;
  struct rw_conn *c = &w->conns[idx];
  return (c->gen & 0xffffff) == gen ? c : NULL;
}

static void on_cqe(struct rw_worker *w, struct io_uring_cqe *cqe)
{
  struct uring_state *st = w->drv;
  uint64_t data = io_uring_cqe_get_data64(cqe);
  enum op op = (enum op)(data >> 56);
  uint32_t idx = (uint32_t)data;
  struct rw_conn *c;
  switch (op) {
  case OP_ACCEPT: on_accept(w, idx, cqe); return;
  case OP_WAKE: on_wake(w, cqe); return;
  case OP_SIGNAL: on_signal(w, cqe); return;
  case OP_UDP: on_udp(w, idx, cqe); return;
  case OP_IGNORE: return;
  case OP_FILE: rw_fileop_complete((rw_fileop *)(uintptr_t)(data & ((1ULL << 56) - 1)), cqe->res); return;
  case OP_WATCH: {
    struct rw_proc_watch *wt = (struct rw_proc_watch *)(uintptr_t)(data & ((1ULL << 56) - 1));
    wt->fn(wt, cqe->res);
    return;
  }
  case OP_MSG: {
    rw_msg *m = (rw_msg *)(uintptr_t)(data & ((1ULL << 56) - 1));
    m->fn(w, m);
    return;
  }
  case OP_MSG_SENT: { /* only failures come here: the target ring is gone or full */
    rw_msg *m = (rw_msg *)(uintptr_t)(data & ((1ULL << 56) - 1));
    struct rw_worker *to = m->to;
    rw_worker_post(NULL, w->srv, to->id, m);
    return;
  }
  default: break;
  }
  c = conn_of(w, data);
  if (!c) {
    /* A completion for a slot that moved on: only a buffer may need returning. */
    if (op == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER)) {
      st->in_ring--;
      buffer_recycle(st, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    }
    return;
  }
  switch (op) {
  case OP_RECV: on_recv(w, c, cqe); break;
  case OP_SEND: on_send(w, c, cqe); break;
  case OP_CONNECT: rw_conn_connected(c, cqe->res); break;
  case OP_CLOSE:
    if (st->uc[c->idx].direct)
      st->uc[c->idx].closed = true; /* released when the recv into its slot completes */
    else
      rw_conn_release(c);
    break;
  default: break;
  }
}

/* Connections whose recv ended for want of buffers get it back once a good share of the
 * ring is free again, rather than one by one as single buffers trickle back. */
static void rearm_starved(struct rw_worker *w)
{
  struct uring_state *st = w->drv;
  if (!st->nstarved || st->in_ring < st->active / 4)
    return;
  for (uint32_t i = 0; i < w->max_conns && st->nstarved; i++) {
    struct uconn *u = &st->uc[i];
    if (!u->starved)
      continue;
    u->starved = false;
    st->nstarved--;
    if (w->conns[i].flags & RW_CONN_LIVE)
      rw_conn_mark_dirty(&w->conns[i]);
  }
}

/* A multishot accept holds a reference to its listening socket until its last CQE is reaped;
 * with DEFER_TASKRUN that happens only when this thread asks. Left alone, the socket would
 * outlive the process (ring teardown is asynchronous) and, sharing the port by SO_REUSEPORT,
 * take connections from the next server on it. So a stopping worker reaps those CQEs. */
static int drain_accepts(struct rw_worker *w)
{
  struct uring_state *st = w->drv;
  for (int tries = 0; tries < 100; tries++) {
    bool any = false;
    for (unsigned i = 0; i < w->srv->nlisteners; i++)
      any |= st->accepting[i];
    if (!any)
      break;
    struct __kernel_timespec ts = {.tv_nsec = 10 * 1000000};
    struct io_uring_cqe *cqe;
    io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
    unsigned head, n = 0;
    io_uring_for_each_cqe(&st->ring, head, cqe)
    {
      on_cqe(w, cqe);
      n++;
    }
    io_uring_cq_advance(&st->ring, n);
  }
  io_uring_submit(&st->ring);
  return 0;
}

/* Waits for completions as a batch: the kernel returns once BATCH_EVENTS are ready, or
 * batch_wait_us after the enter with at least one, or at `ts` (relative). liburing 2.3 has no
 * io_uring_wait_cqes_min_timeout (2.8): the enter is made here. Callers submit first and wait
 * only with the CQ empty: a completion already there (a send that completed as it was
 * submitted) would end the batch wait on its own, waking the worker for nothing. */
static int wait_batch(struct uring_state *st, struct __kernel_timespec *ts)
{
  struct io_uring_getevents_arg arg = {
      .sigmask_sz = _NSIG / 8,
      .pad = st->batch_wait_us, /* min_wait_usec since Linux 6.12 (IORING_FEAT_MIN_TIMEOUT) */
      .ts = (uint64_t)(uintptr_t)ts,
  };
  unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
  int fd = st->ring.ring_fd;
  if (st->ring_fd_registered) {
    fd = st->ring.enter_ring_fd;
    flags |= IORING_ENTER_REGISTERED_RING;
  }
  return io_uring_enter2((unsigned)fd, 0, BATCH_EVENTS, flags, (sigset_t *)&arg, sizeof arg);
}

/* The wait of a turn under --batch-wait, until `ts` at most (NULL: no limit), with the CQ empty.
 * Batching pays only under load: a batch wait that gathered a single completion only delayed
 * it, so the next wait is a plain one; a plain wait that found two or more ready (they came
 * while the worker slept or woke) makes the next one a batch wait again. One connection's round
 * trips thus go unbatched, and a loaded worker stays batched. */
static int wait_adaptive(struct uring_state *st, struct __kernel_timespec *ts)
{
  int rc;
  if (st->batching) {
    /* Without a general timeout the kernel ends a batch wait at its minimum even with
     * nothing there: an hour stands for none. */
    struct __kernel_timespec hour = {.tv_sec = 3600};
    rc = wait_batch(st, ts ? ts : &hour);
  } else {
    struct io_uring_cqe *cqe;
    rc = io_uring_wait_cqe_timeout(&st->ring, &cqe, ts);
  }
  st->batching = io_uring_cq_ready(&st->ring) >= 2;
  return rc;
}

static int uring_run(struct rw_worker *w)
{
  struct uring_state *st = w->drv;
  for (;;) {
    int t = rw_worker_timeout(w);
    struct __kernel_timespec ts = {.tv_sec = t / 1000, .tv_nsec = (long long)(t % 1000) * 1000000};
    struct __kernel_timespec *limit = t < 0 ? NULL : &ts;
    struct io_uring_cqe *cqe;
    int rc;
    if (st->batch_wait_us && t != 0) {
      rc = io_uring_sq_ready(&st->ring) ? io_uring_submit(&st->ring) : 0;
      if (rc >= 0 && !io_uring_cq_ready(&st->ring))
        rc = wait_adaptive(st, limit);
    } else {
      rc = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, limit, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
      return rc;
    rw_worker_tick(w);
    unsigned head, n = 0;
    io_uring_for_each_cqe(&st->ring, head, cqe)
    {
      on_cqe(w, cqe);
      n++;
    }
    io_uring_cq_advance(&st->ring, n);
    /* (Completions the ring had no room for wait in the kernel: each such turn counts.) */
    if (IO_URING_READ_ONCE(*st->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
      RW_STAT_ADD(w->stats.cq_overflows, 1);
    rw_worker_flush(w);
    rearm_starved(w);
    buffers_publish(st);
    if (rw_worker_done(w))
      return drain_accepts(w);
  }
}

static int uring_init(struct rw_worker *w)
{
  struct uring_state *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  w->drv = st;
  st->sigfd = -1;
  st->direct_accept = !w->srv->cfg.peer_names;
  int rc = ring_setup(&st->ring);
  if (rc < 0)
    return rc;
  st->ring_ok = true;
  /* Every enter then skips the ring fd lookup. Not fatal where unsupported. */
  st->ring_fd_registered = io_uring_register_ring_fd(&st->ring) == 1;
  /* (A kernel without min_wait, before Linux 6.12, waits as batch_wait_us 0 does.) */
  st->batch_wait_us = st->ring.features & IORING_FEAT_MIN_TIMEOUT ? w->srv->cfg.batch_wait_us : 0;
  rc = io_uring_register_files_sparse(&st->ring, w->max_conns + 64);
  if (!rc)
    rc = buffers_init(w, st);
  st->uc = calloc(w->max_conns, sizeof *st->uc);
  if (!st->uc)
    return -ENOMEM;
  if (rc)
    return rc;
  arm_poll(w, w->wakefd, OP_WAKE, 0);
  if (w->id == 0) {
    st->sigfd = rw_worker_signalfd();
    if (st->sigfd < 0)
      return st->sigfd;
    arm_poll(w, st->sigfd, OP_SIGNAL, 0);
  }
  for (unsigned i = 0; i < w->srv->nlisteners; i++)
    arm_accept(w, i);
  for (unsigned i = 0; i < w->srv->nudp; i++)
    arm_poll(w, w->udp[i].fd, OP_UDP, i);
  atomic_store_explicit(&w->ready, true, memory_order_release);
  return 0;
}

static void uring_fini(struct rw_worker *w)
{
  struct uring_state *st = w->drv;
  if (!st)
    return;
  atomic_store_explicit(&w->ready, false, memory_order_release);
  if (st->ring_ok)
    io_uring_queue_exit(&st->ring); /* also drops the fixed files and the buffer ring */
  if (st->br)
    munmap(st->br, st->br_bytes);
  rw_region_free(st->bufs, st->bufs_bytes);
  free(st->buf_next);
  free(st->buf_len);
  free(st->uc);
  if (st->sigfd >= 0)
    close(st->sigfd);
  free(st);
  w->drv = NULL;
}

/* MSG_RING posts a CQE carrying the message's address into the target ring: no syscall on the
 * target's side, no shared queue. The sender's SQE goes out with its next enter. */
static int uring_post(struct rw_worker *from, struct rw_worker *to, rw_msg *m)
{
  struct uring_state *st = from->drv;
  /* A target still setting up (or gone) takes the inbox instead. */
  if (!st || !atomic_load_explicit(&to->ready, memory_order_acquire) || ((uintptr_t)m >> 56))
    return -EAGAIN;
  m->to = to;
  struct uring_state *dst = to->drv;
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_msg_ring(sqe, dst->ring.ring_fd, 0, (uint64_t)OP_MSG << 56 | (uintptr_t)m, 0);
  io_uring_sqe_set_data64(sqe, (uint64_t)OP_MSG_SENT << 56 | (uintptr_t)m);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  return 0;
}

static size_t uring_budget(const struct rw_worker *w)
{
  return (size_t)buffer_count(w) * (buffer_stride(w) + sizeof(struct io_uring_buf) + 8) +
         (size_t)w->max_conns * sizeof(struct uconn);
}

static int uring_file_op(struct rw_worker *w, rw_fileop *op)
{
  struct uring_state *st = w->drv;
  if ((uintptr_t)op >> 56)
    return -EINVAL;
  struct io_uring_sqe *sqe = get_sqe(st);
  if (!sqe)
    return -EBUSY;
  switch (op->kind) {
  case RW_FOP_OPEN: io_uring_prep_openat(sqe, AT_FDCWD, op->path, op->flags | O_CLOEXEC, op->mode); break;
  case RW_FOP_CLOSE: io_uring_prep_close(sqe, op->fd); break;
  case RW_FOP_READ: io_uring_prep_read(sqe, op->fd, op->buf, (unsigned)op->len, op->off); break;
  case RW_FOP_READV: io_uring_prep_readv(sqe, op->fd, op->buf, (unsigned)op->len, op->off); break;
  case RW_FOP_WRITE: /* offset -1: the file position, as write(2) */
    io_uring_prep_write(sqe, op->fd, op->buf, (unsigned)op->len, op->off);
    break;
  case RW_FOP_WRITEV: io_uring_prep_writev(sqe, op->fd, op->buf, (unsigned)op->len, op->off); break;
  case RW_FOP_FSYNC:
  case RW_FOP_FDATASYNC:
    io_uring_prep_fsync(sqe, op->fd, op->kind == RW_FOP_FDATASYNC ? IORING_FSYNC_DATASYNC : 0);
    break;
  case RW_FOP_STAT: io_uring_prep_statx(sqe, AT_FDCWD, op->path, 0, STATX_BASIC_STATS, op->buf); break;
  case RW_FOP_RENAME: io_uring_prep_renameat(sqe, AT_FDCWD, op->path, AT_FDCWD, op->path2, 0); break;
  case RW_FOP_UNLINK: io_uring_prep_unlinkat(sqe, AT_FDCWD, op->path, 0); break;
  case RW_FOP_MKDIR: io_uring_prep_mkdirat(sqe, AT_FDCWD, op->path, op->mode); break;
  default:
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, ud(OP_IGNORE, 0, 0));
    return -EINVAL;
  }
  io_uring_sqe_set_data64(sqe, (uint64_t)OP_FILE << 56 | (uintptr_t)op);
  return 0;
}

static int uring_adopt(struct rw_worker *w, struct rw_conn *c)
{
  struct uring_state *st = w->drv;
  uconn_init(&st->uc[c->idx], false);
  arm_recv(w, c);
  return 0;
}

static int uring_watch(struct rw_worker *w, int fd, struct rw_proc_watch *wt)
{
  struct uring_state *st = w->drv;
  if ((uintptr_t)wt >> 56)
    return -EINVAL;
  struct io_uring_sqe *sqe = get_sqe(st);
  if (!sqe)
    return -EBUSY;
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, (uint64_t)OP_WATCH << 56 | (uintptr_t)wt);
  return 0;
}

const struct rw_driver rw_driver_uring = {
    .name = "io_uring",
    .init = uring_init,
    .run = uring_run,
    .fini = uring_fini,
    .update = uring_update,
    .send = uring_send,
    .close = uring_close,
    .connect = uring_connect,
    .stop_accepting = uring_stop_accepting,
    .probe = uring_probe,
    .file_op = uring_file_op,
    .adopt = uring_adopt,
    .watch = uring_watch,
    .budget = uring_budget,
    .post = uring_post,
};
