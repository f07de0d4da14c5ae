/* Connections: the path from received bytes to replies, shared by every driver.
 *
 * Bytes arrive either in the worker's receive buffer (the common case: a whole frame or several)
 * or, when a frame was left unfinished, appended behind it in the connection's accumulator slot.
 * The generated parser takes frames one at a time; each is dispatched while its spans still
 * point into the buffer. Whatever is left (a partial frame, or frames held back because the
 * connection's send chain is full) moves to a slot: the only copy on the receive path. */
#include <errno.h>
#include <string.h>

#include "core.h"

static void mark_dirty(struct rw_conn *c)
{
  if (!(c->flags & RW_CONN_DIRTY)) {
    c->flags |= RW_CONN_DIRTY;
    c->dirty_next = c->w->dirty;
    c->w->dirty = c;
  }
}

static void paused_unlink(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (c->paused_prev)
    c->paused_prev->paused_next = c->paused_next;
  else if (w->paused == c)
    w->paused = c->paused_next;
  if (c->paused_next)
    c->paused_next->paused_prev = c->paused_prev;
  c->paused_prev = c->paused_next = NULL;
}

static void pause_conn(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (c->flags & RW_CONN_PAUSED)
    return;
  c->flags |= RW_CONN_PAUSED;
  c->paused_prev = NULL;
  c->paused_next = w->paused;
  if (w->paused)
    w->paused->paused_prev = c;
  w->paused = c;
  mark_dirty(c);
}

bool rw_conn_wants_read(const struct rw_conn *c)
{
  return !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT | RW_CONN_EOF | RW_CONN_PAUSED));
}

bool rw_conn_wants_write(const struct rw_conn *c)
{
  return (c->flags & RW_CONN_WANT_WRITE) && !(c->flags & RW_CONN_ABORT);
}

/* Starting a dispatch needs room for its reply: below the connection's high water mark, and
 * enough free chunks that one receive's worth of output fits. */
static bool can_dispatch(const struct rw_conn *c)
{
  const struct rw_worker *w = c->w;
  return c->queued < w->srv->cfg.send_high_water && w->send_pool.nfree >= w->send_reserve;
}

struct rw_conn *rw_conn_open(struct rw_worker *w, struct rw_listener *ln, int fd)
{
  if (!w->nconn_free)
    return NULL;
  struct rw_conn *c = &w->conns[w->conn_free[--w->nconn_free]];
  uint32_t gen = c->gen, idx = c->idx;
  void *parser = c->parser;
  memset(c, 0, sizeof *c);
  *c = (struct rw_conn){.fd = fd, .flags = RW_CONN_LIVE, .gen = gen, .idx = idx, .ln = ln, .w = w,
                        .parser = parser, .acc = RW_NONE, .sq_head = RW_NONE, .sq_tail = RW_NONE};
  ln->proto->parser_init(parser);
  w->nlive++;
  return c;
}

static void acc_release(struct rw_conn *c)
{
  if (c->acc != RW_NONE) {
    rw_pool_put(&c->w->acc_pool, c->acc);
    c->acc = RW_NONE;
    c->acc_len = 0;
    c->w->freed_resources = true;
  }
}

static void conn_free(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  w->driver->close(w, c);
  rw_sendq_drop(w, c);
  acc_release(c);
  paused_unlink(c);
  c->flags = 0;
  c->fd = -1;
  c->gen++;
  w->conn_free[w->nconn_free++] = c->idx;
  w->nlive--;
}

uint8_t *rw_conn_rx_window(struct rw_conn *c, size_t *out_cap)
{
  struct rw_worker *w = c->w;
  if (!rw_conn_wants_read(c))
    return NULL;
  /* Checked before reading, so that a raw protocol's chunk never needs holding back. */
  if (!can_dispatch(c)) {
    pause_conn(c);
    return NULL;
  }
  if (c->acc != RW_NONE) {
    /* One byte stays free for the parser's sentinel. */
    size_t cap = w->acc_pool.item_size - 1 - c->acc_len;
    *out_cap = cap;
    return rw_pool_at(&w->acc_pool, c->acc) + c->acc_len;
  }
  /* A framed protocol may leave a partial frame behind: make sure a slot will be there. */
  if (c->ln->proto->max_frame && !w->acc_pool.nfree) {
    pause_conn(c);
    return NULL;
  }
  *out_cap = w->srv->cfg.recv_size;
  return w->rxbuf;
}

static void keep_remainder(struct rw_conn *c, uint8_t *buf, size_t off, size_t len)
{
  struct rw_worker *w = c->w;
  size_t rest = len - off;
  if (c->acc != RW_NONE && buf == rw_pool_at(&w->acc_pool, c->acc)) {
    if (!rest) {
      acc_release(c);
    } else if (off) {
      memmove(buf, buf + off, rest);
    }
    c->acc_len = (uint32_t)rest;
    return;
  }
  if (!rest)
    return;
  /* rw_conn_rx_window() made sure a slot is free before the receive. */
  c->acc = rw_pool_get(&w->acc_pool);
  memcpy(rw_pool_at(&w->acc_pool, c->acc), buf + off, rest);
  c->acc_len = (uint32_t)rest;
}

/* Parses and dispatches buf[0..len); buf[len] must be writable (it takes the sentinel). */
static void conn_parse(struct rw_conn *c, uint8_t *buf, size_t len)
{
  const rw_proto *proto = c->ln->proto;
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  size_t off = 0;
  buf[len] = 0;
  while (off < len && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))) {
    if (!can_dispatch(c)) {
      pause_conn(c);
      break;
    }
    size_t used = 0;
    int rc = proto->next(c->parser, buf + off, len - off, &used, msg);
    if (rc == RW_PARSE_MORE)
      break;
    off += used;
    if (rc >= 0)
      rc = proto->dispatch(c, c->ln->handlers, rc, msg);
    else
      rc = proto->on_error(c, rc);
    if (rc < 0)
      rw_conn_close(c);
    if (!used)
      break; /* an error that consumed nothing (overlong) has closed the connection */
  }
  if (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))
    off = len; /* nothing more will be parsed: drop the rest */
  keep_remainder(c, buf, off, len);
}

void rw_conn_received(struct rw_conn *c, uint8_t *at, size_t n)
{
  struct rw_worker *w = c->w;
  if (c->acc != RW_NONE && at == rw_pool_at(&w->acc_pool, c->acc) + c->acc_len) {
    c->acc_len += (uint32_t)n;
    conn_parse(c, rw_pool_at(&w->acc_pool, c->acc), c->acc_len);
  } else {
    conn_parse(c, at, n);
  }
  mark_dirty(c);
}

void rw_conn_eof(struct rw_conn *c)
{
  /* A partial frame at EOF can never complete: it is dropped. Replies already queued go out. */
  c->flags |= RW_CONN_EOF | RW_CONN_CLOSING;
  acc_release(c);
  mark_dirty(c);
}

void rw_conn_writable(struct rw_conn *c)
{
  c->flags &= ~RW_CONN_WANT_WRITE;
  mark_dirty(c);
}

void rw_conn_abort(struct rw_conn *c, int err)
{
  (void)err;
  c->flags |= RW_CONN_ABORT | RW_CONN_CLOSING;
  mark_dirty(c);
}

int rw_conn_write(rw_conn *c, const void *data, size_t len)
{
  if (c->flags & (RW_CONN_ABORT | RW_CONN_CLOSING))
    return -EPIPE;
  int rc = rw_sendq_append(c->w, c, data, len);
  if (rc < 0) {
    rw_log_limited(&c->w->slab_log, "send slab exhausted: closing a connection "
                                   "(raise --max-conns or the send slab)");
    rw_conn_abort(c, rc);
    return rc;
  }
  mark_dirty(c);
  return 0;
}

void rw_conn_close(rw_conn *c)
{
  c->flags |= RW_CONN_CLOSING;
  mark_dirty(c);
}

size_t rw_conn_queued(const rw_conn *c)
{
  return c->queued;
}

/* Held frames are parsed before the socket is read again, so order is kept. */
static void try_resume(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (!can_dispatch(c) || (c->ln->proto->max_frame && c->acc == RW_NONE && !w->acc_pool.nfree))
    return;
  paused_unlink(c);
  c->flags &= ~RW_CONN_PAUSED;
  if (c->acc != RW_NONE)
    conn_parse(c, rw_pool_at(&w->acc_pool, c->acc), c->acc_len);
  mark_dirty(c);
}

static void flush_one(struct rw_worker *w, struct rw_conn *c)
{
  if (!(c->flags & RW_CONN_ABORT) && c->queued && !(c->flags & RW_CONN_WANT_WRITE)) {
    int rc = w->driver->send(w, c);
    if (rc < 0)
      c->flags |= RW_CONN_ABORT;
  }
  if ((c->flags & RW_CONN_ABORT) || ((c->flags & RW_CONN_CLOSING) && !c->queued)) {
    conn_free(c);
    return;
  }
  w->driver->update(w, c);
}

void rw_worker_flush(struct rw_worker *w)
{
  for (int round = 0; w->dirty && round < 4; round++) {
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
     * the next round. */
    if (w->freed_resources) {
      w->freed_resources = false;
      for (struct rw_conn *p = w->paused, *pn; p; p = pn) {
        pn = p->paused_next;
        try_resume(p);
      }
    }
  }
}

void rw_worker_close_all(struct rw_worker *w, bool abort)
{
  for (uint32_t i = 0; i < w->srv->cfg.max_conns; i++) {
    struct rw_conn *c = &w->conns[i];
    if (!(c->flags & RW_CONN_LIVE))
      continue;
    if (abort)
      rw_conn_abort(c, -ETIMEDOUT);
    else
      rw_conn_close(c);
  }
}
