/* Connections: the path from received bytes to replies, shared by every driver.
 *
 * Bytes arrive either in the worker's receive buffer (the common case: a whole frame or several)
 * or, when a frame was left unfinished, appended behind it in the connection's accumulator slot.
 * The generated parser takes frames one at a time; each is dispatched while its spans still
 * point into the buffer. Whatever is left (a partial frame, or frames held back because the
 * connection's send chain is full) moves to a slot: the only copy on the receive path. */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "driver.h"
#include "conn.h"
#include "large.h"
#include "log.h"
#include "pool.h"
#include "sendq.h"
#include "server.h"
#include "stats.h"
#include "stats_frame.h"
#include "transport.h"
#include "worker.h"

void rw_conn_mark_dirty(struct rw_conn *c)
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

/* On the list the flush loop offers freed resources to (once). */
static void paused_link(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (c->paused_prev || w->paused == c)
    return;
  c->paused_prev = NULL;
  c->paused_next = w->paused;
  if (w->paused)
    w->paused->paused_prev = c;
  w->paused = c;
}

void rw_conn_pause(struct rw_conn *c)
{
  if (c->flags & RW_CONN_PAUSED)
    return;
  c->flags |= RW_CONN_PAUSED;
  RW_STAT_ADD(c->w->stats.pauses, 1);
  /* A connection waiting for rw_conn_resume() gains nothing from freed resources: it joins the
   * list when resumed, so that a proxy's clients waiting on upstreams are not walked at every
   * freed chunk. */
  if (!(c->flags & RW_CONN_WAITING))
    paused_link(c);
  rw_conn_mark_dirty(c);
}

bool rw_conn_wants_read(const struct rw_conn *c)
{
  return !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT | RW_CONN_EOF | RW_CONN_PAUSED | RW_CONN_CONNECTING));
}

/* A connect completes when the socket turns writable. */
bool rw_conn_wants_write(const struct rw_conn *c)
{
  return (c->flags & (RW_CONN_WANT_WRITE | RW_CONN_CONNECTING)) && !(c->flags & RW_CONN_ABORT);
}

/* Whether the connection's bytes may have to wait in a slot: a framed protocol's, or any until
 * the first byte has chosen between a listener's protocol and its alternates. */
static bool may_hold(const struct rw_conn *c)
{
  return c->proto->max_frame || (c->flags & RW_CONN_CHOOSE);
}

/* Starting a dispatch needs room for its reply: below the connection's high water mark, and
 * enough free chunks that one receive's worth of output fits. */
static bool can_dispatch(const struct rw_conn *c)
{
  const struct rw_worker *w = c->w;
  return rw_conn_unsent(c) < w->srv->cfg.send_high_water && w->send_pool.nfree >= w->send_reserve;
}

static void idle_fired(rw_timer *t);

static rw_peek_fn peek_of(const rw_server *s, const rw_proto *proto)
{
  for (unsigned i = 0; i < s->npeeks; i++)
    if (s->peeks[i].proto == proto)
      return s->peeks[i].fn;
  return NULL;
}

struct rw_conn *rw_conn_open(struct rw_worker *w, const rw_proto *proto, const void *handlers, int fd)
{
  if (!w->nconn_free)
    return NULL;
  struct rw_conn *c = &w->conns[w->conn_free[--w->nconn_free]];
  uint32_t gen = c->gen, idx = c->idx;
  void *parser = c->parser;
  *c = (struct rw_conn){.fd = fd,
                        .flags = RW_CONN_LIVE,
                        .gen = gen,
                        .idx = idx,
                        .proto = proto,
                        .handlers = handlers,
                        .w = w,
                        .parser = parser,
                        .acc = RW_NONE,
                        .sq_head = RW_NONE,
                        .sq_tail = RW_NONE,
                        .last_active_ms = w->now_ms,
                        .transport = &rw_transport_plain,
                        .ps = rw_stats_of(w, proto),
                        .count_as = UINT16_MAX};
  c->peek = peek_of(w->srv, proto);
  proto->parser_init(parser);
  memset((uint8_t *)parser + w->user_off, 0, w->user_size);
  rw_conn_arm_idle(c);
  w->nlive++;
  return c;
}

void rw_conn_arm_idle(struct rw_conn *c)
{
  rw_timer_cancel(&c->timer);
  rw_timer_init(&c->timer, idle_fired, c);
  if (c->w->srv->cfg.idle_timeout_ms)
    rw_timer_arm(c->w, &c->timer, c->w->srv->cfg.idle_timeout_ms);
}

/* Traffic only stores a timestamp; the timer re-arms itself for the remainder when it fires
 * early, so a busy connection costs no wheel operations. */
static void idle_fired(rw_timer *t)
{
  struct rw_conn *c = t->data;
  struct rw_worker *w = c->w;
  int64_t idle = w->srv->cfg.idle_timeout_ms, quiet = w->now_ms - c->last_active_ms;
  if (quiet < idle) {
    rw_timer_arm(w, t, (uint64_t)(idle - quiet));
    return;
  }
  /* A peer that stopped reading would hold a graceful close open forever: drop its bytes. */
  if (rw_conn_unsent(c))
    rw_conn_abort(c, -ETIMEDOUT);
  else
    rw_conn_close_err(c, -ETIMEDOUT);
}

/* The connection's slot: an accumulator slot, or a large one for a frame that outgrew it. */
static struct rw_pool *acc_pool_of(const struct rw_conn *c)
{
  return c->acc_large ? &c->w->srv->large.pool : &c->w->acc_pool;
}

static uint8_t *acc_buf(const struct rw_conn *c)
{
  return rw_pool_at(acc_pool_of(c), c->acc);
}

/* Bytes the slot can still take (one stays free for the parser's sentinel). */
static size_t acc_room(const struct rw_conn *c)
{
  return acc_pool_of(c)->item_size - 1 - c->acc_len;
}

static void acc_put(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (c->acc_large)
    rw_large_put(w, c->acc);
  else
    rw_pool_put(&w->acc_pool, c->acc);
  c->acc_large = false;
  w->freed_resources = true;
}

static void acc_release(struct rw_conn *c)
{
  if (c->acc != RW_NONE) {
    acc_put(c);
    c->acc = RW_NONE;
    c->acc_len = 0;
  }
}

/* A full accumulator slot whose frame is still unfinished moves to a large slot (one copy of
 * at most a slot, once per such frame); false when none is free (the connection waits). */
static bool acc_grow(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  uint32_t big = c->acc_large ? RW_NONE : rw_large_get(w);
  if (big == RW_NONE)
    return false;
  memcpy(rw_pool_at(&w->srv->large.pool, big), acc_buf(c), c->acc_len);
  acc_put(c);
  c->acc = big;
  c->acc_large = true;
  return true;
}

/* A frame the parser says is longer than an accumulator slot (its length hint, `need` bytes)
 * moves to a large slot now, while it holds little, and is then read in place: not once it has
 * filled the slot, every byte of it copied there on the way. None free: it grows when full. */
static void acc_reserve(struct rw_conn *c, size_t need)
{
  struct rw_worker *w = c->w;
  if (c->acc == RW_NONE || c->acc_large || need < w->acc_pool.item_size || !w->srv->large.pool.count)
    return;
  acc_grow(c);
}

/* Whether the transport decodes what it receives (TLS): then nothing lands in the slot
 * directly, and what it delivers must be taken whole. */
static bool decodes(const struct rw_conn *c)
{
  return c->transport->decode_hold != 0;
}

/* A decoding transport cannot keep what the slot refuses: when its frame nears the end of an
 * accumulator slot it moves to a large slot at once, while it still has room for what one
 * receive may deliver, not when that no longer fits (another connection may have taken the
 * last large slot by then); with none free it reads nothing more until one is (a plain
 * connection's bytes simply stay where the driver put them). True when it must wait. */
static bool must_wait(struct rw_conn *c)
{
  const struct rw_worker *w = c->w;
  if (!decodes(c) || c->acc == RW_NONE || c->acc_large || !w->srv->large.pool.count ||
      acc_room(c) >= w->srv->cfg.recv_size + c->transport->decode_hold)
    return false;
  return !acc_grow(c);
}

/* Whether the socket may be read now as far as the transport is concerned: what a receive
 * leaves over must find a place to wait, and what it delivers a room in the slot. */
static bool transport_can_read(struct rw_conn *c)
{
  const struct rw_transport *t = c->transport;
  return (!t->can_receive || t->can_receive(c)) && !must_wait(c);
}

/* Room in a full slot: a large slot to grow into (false, the connection paused: none free). */
static bool acc_make_room(struct rw_conn *c)
{
  if (acc_room(c) || acc_grow(c))
    return true;
  rw_conn_pause(c);
  return false;
}

/* A large slot left holding only the start of the next frames moves back to an accumulator
 * slot when one is free, so that large slots stay free for long frames (unless the next frame,
 * `need` bytes at least, is one). */
static void acc_shrink(struct rw_conn *c, size_t need)
{
  struct rw_worker *w = c->w;
  if (!c->acc_large || c->acc_len >= w->acc_pool.item_size || need >= w->acc_pool.item_size ||
      !w->acc_pool.nfree)
    return;
  uint32_t small = rw_pool_get(&w->acc_pool);
  memcpy(rw_pool_at(&w->acc_pool, small), acc_buf(c), c->acc_len);
  acc_put(c);
  c->acc = small;
}

/* The first error is the reason: what follows (a reset while flushing) is its consequence. */
static void note_reason(struct rw_conn *c, int err)
{
  if (!c->close_reason)
    c->close_reason = err;
}

void rw_conn_on_close(rw_conn *c, rw_close_fn fn, void *data)
{
  c->on_close = fn;
  c->close_data = data;
}

void rw_conn_free(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  rw_close_fn on_close = c->on_close;
  c->on_close = NULL; /* once, even if `on_close` dials again */
  c->on_drain = NULL;
  rw_stats_closed(c);
  if (on_close) {
    /* Whatever the callback calls (rw_conn_close) must not put a connection being freed back
     * on the flush list: it counts as on it already. */
    c->flags |= RW_CONN_DIRTY;
    on_close(c, c->close_reason, c->close_data);
  }
  rw_timer_cancel(&c->timer);
  bool released = w->driver->close(w, c);
  if (c->transport->release)
    c->transport->release(c); /* its slots: now, not when the driver lets go of the socket */
  c->transport = &rw_transport_plain;
  c->held = 0;
  rw_sendq_drop(w, c);
  paused_unlink(c);
  /* Until the driver releases it the slot is neither live nor free: late completions for it
   * are recognised and dropped, and its index is not reused. */
  c->flags = RW_CONN_ZOMBIE;
  if (released)
    rw_conn_release(c);
}

void rw_conn_release(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (c->stream) {
    rw_stream_fn fn = c->stream;
    c->stream = NULL;
    fn(c, c->stream_data, 0);
  }
  /* Now, not at close: a driver may have a receive into the slot in flight until it lets go. */
  acc_release(c);
  c->flags = 0;
  c->fd = -1;
  c->gen++;
  c->data = NULL;
  w->conn_free[w->nconn_free++] = c->idx;
  w->nlive--;
  /* At release, not at close: the accepted connections a worker holds, closing ones included,
   * never outnumber its slots. */
  if (c->counted)
    atomic_fetch_sub_explicit(&w->srv->nconns, 1, memory_order_relaxed);
  c->counted = false;
}

uint8_t *rw_conn_rx_window(struct rw_conn *c, size_t *out_cap)
{
  struct rw_worker *w = c->w;
  if (!rw_conn_wants_read(c))
    return NULL;
  /* Checked before reading, so that a raw protocol's chunk never needs holding back. */
  if (!can_dispatch(c)) {
    rw_conn_pause(c);
    return NULL;
  }
  if (!transport_can_read(c)) {
    rw_conn_pause(c);
    return NULL;
  }
  if (c->acc != RW_NONE && !decodes(c)) { /* (what is still encoded never lands in the slot) */
    if (!acc_make_room(c))
      return NULL;
    *out_cap = acc_room(c);
    return acc_buf(c) + c->acc_len;
  }
  /* A framed protocol may leave a partial frame behind: make sure a slot will be there. */
  if (may_hold(c) && !w->acc_pool.nfree) {
    rw_conn_pause(c);
    return NULL;
  }
  *out_cap = w->srv->cfg.recv_size;
  return w->rxbuf;
}

/* Keeps buf[off..len) for the next parse, a frame of at least `need` bytes; false if it cannot
 * (no slot free). */
static bool keep_remainder(struct rw_conn *c, uint8_t *buf, size_t off, size_t len, size_t need)
{
  struct rw_worker *w = c->w;
  size_t rest = len - off;
  if (c->acc != RW_NONE && buf == acc_buf(c)) {
    if (!rest)
      acc_release(c);
    else if (off)
      memmove(buf, buf + off, rest);
    c->acc_len = (uint32_t)rest;
    if (off)
      acc_shrink(c, need);
    return true;
  }
  if (!rest)
    return true;
  c->acc = rw_pool_get(&w->acc_pool);
  if (c->acc == RW_NONE)
    return false;
  memcpy(rw_pool_at(&w->acc_pool, c->acc), buf + off, rest);
  c->acc_len = (uint32_t)rest;
  return true;
}

/* rw_server_peek(): the messages in buf[0..len) parsed ahead with a copy of the parser's state
 * and shown to the hook, when at least two are there (one alone gains nothing from it). */
static void peek_ahead(struct rw_conn *c, const uint8_t *buf, size_t len)
{
  const rw_proto *proto = c->proto;
  _Alignas(max_align_t) unsigned char state[RW_PEEK_STATE], msg[RW_PROTO_MSG_MAX];
  memcpy(state, c->parser, proto->parser_size);
  size_t pos = 0;
  int shown = 0;
  for (int k = 0; k < RW_PEEK_MAX && pos < len; k++) {
    size_t used = 0;
    int rc = proto->next(state, buf + pos, len - pos, &used, msg);
    if (rc < 0 || !used || (k == 0 && pos + used == len))
      break;
    pos += used;
    c->peek(c, rc, msg);
    shown++;
  }
  if (shown)
    c->peek(c, -1, NULL);
}

/* rw_server_alternate(): the first byte received (nothing is parsed before it) picks the
 * connection's protocol, once; the parser starts afresh for an alternate. */
static void choose_protocol(struct rw_conn *c, uint8_t first)
{
  const rw_server *s = c->w->srv;
  c->flags &= ~RW_CONN_CHOOSE;
  for (unsigned i = 0; i < s->nalts; i++) {
    const struct rw_alternate *a = &s->alts[i];
    if (a->proto == c->proto && a->first_byte == first) {
      c->proto = a->alt;
      c->handlers = a->handlers;
      if (c->ps)
        c->ps = rw_stats_of(c->w, a->alt);
      c->peek = peek_of(s, a->alt);
      a->alt->parser_init(c->parser);
      return;
    }
  }
}

/* Parses and dispatches buf[0..len); buf[len] must be writable (it takes the sentinel).
 * Returns how many bytes were consumed or kept: fewer than len only when the rest could not be
 * kept, and the connection is then paused with the rest left to the caller. */
static size_t conn_parse(struct rw_conn *c, uint8_t *buf, size_t len)
{
  if ((c->flags & RW_CONN_CHOOSE) && len)
    choose_protocol(c, buf[0]);
  const rw_proto *proto = c->proto;
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  size_t off = 0, need = 0;
  uint64_t t = 0;     /* the clock when the last frame's handler returned (0: not read yet) */
  uint64_t first = 0; /* when the first frame started */
  buf[len] = 0;
  if (c->peek)
    peek_ahead(c, buf, len);
  while (off < len && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))) {
    if (!can_dispatch(c) || c->stream) {
      rw_conn_pause(c);
      break;
    }
    /* A frame's service time runs from its parse to its handler's return: one clock read per
     * frame, the end of one being the start of the next. */
    if (!t && c->ps)
      t = rw_ticks();
    if (c->inspect) { /* the application may refuse the frame before all of it is held */
      c->inspect(c, buf + off, len - off);
      if (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)) {
        note_reason(c, -EBADMSG); /* (refused input, as a spec's refusal that closes) */
        break;
      }
    }
    size_t used = 0;
    int rc = proto->next(c->parser, buf + off, len - off, &used, msg);
    if (rc == RW_PARSE_MORE) {
      need = used; /* (the frame's length at least, when the parser knows it) */
      break;
    }
    off += used;
    if (rc == RW_PARSE_SKIP)
      continue;
    if (rc >= 0) {
      int cmd = rc;
      if (!first)
        first = t;
      rc = proto->dispatch(c, c->handlers, cmd, msg);
      if (t)
        t = rc == -EAGAIN && proto->max_frame ? rw_stats_deferred(c) : rw_stats_frame(c, cmd, t);
      /* The handler cannot take it now: keep the frame and wait (framed protocols only: a raw
       * protocol has no slot to keep a chunk in, so there it is an error like any other). */
      if (rc == -EAGAIN && proto->max_frame) {
        off -= used;
        /* (A handler that started a stream is dispatched again once the stream is done.) */
        if (!c->stream)
          c->flags |= RW_CONN_WAITING;
        rw_conn_pause(c);
        break;
      }
    } else {
      int status = rc;
      t = 0; /* (the next frame's time starts after the error's reply) */
      rw_stats_parse_error(c, status);
      /* (rw_conn_refused_bytes: from the refused frame's first byte, however much it consumed) */
      c->w->refused_at = buf + off - used, c->w->refused_len = len - (off - used);
      rc = proto->on_error(c, c->handlers, status, msg);
      c->w->refused_at = NULL, c->w->refused_len = 0;
      if (rc < 0 || (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)))
        note_reason(c, -EBADMSG);
    }
    if (rc < 0)
      rw_conn_close_err(c, rc);
    if (!used)
      break; /* an error that consumed nothing (overlong) has closed the connection */
  }
  if (first && !c->ttfb_t0)
    c->ttfb_t0 = first; /* (time to first byte: from the batch's first frame) */
  if (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))
    off = len; /* nothing more will be parsed: drop the rest */
  if (keep_remainder(c, buf, off, len, need)) {
    acc_reserve(c, need);
    return len;
  }
  rw_conn_pause(c);
  return off;
}

/* Appends what fits behind the held bytes in the connection's slot; returns how many. */
static size_t acc_append(struct rw_conn *c, const uint8_t *at, size_t n)
{
  struct rw_worker *w = c->w;
  if (c->acc == RW_NONE) {
    c->acc = rw_pool_get(&w->acc_pool);
    if (c->acc == RW_NONE)
      return 0;
  }
  if (!acc_make_room(c))
    return 0; /* (paused until a large slot is free) */
  size_t room = acc_room(c);
  if (n > room)
    n = room;
  memcpy(acc_buf(c) + c->acc_len, at, n);
  c->acc_len += (uint32_t)n;
  return n;
}

size_t rw_conn_received(struct rw_conn *c, uint8_t *at, size_t n)
{
  c->last_active_ms = c->w->now_ms;
  if (c->ps)
    RW_STAT_ADD(c->w->stats.bytes_in, n);
  return c->transport->receive(c, at, n);
}

void rw_conn_held(struct rw_conn *c, size_t n)
{
  c->held = n;
}

size_t rw_conn_deliver(struct rw_conn *c, uint8_t *at, size_t n)
{
  struct rw_worker *w = c->w;
  size_t taken = n;
  c->last_active_ms = w->now_ms;
  if (c->acc != RW_NONE && at == acc_buf(c) + c->acc_len) {
    c->acc_len += (uint32_t)n; /* received in place, behind the held bytes */
    conn_parse(c, acc_buf(c), c->acc_len);
  } else if (c->acc != RW_NONE || (c->flags & RW_CONN_PAUSED)) {
    /* A driver buffer while bytes are held: order demands they go behind them. A paused
     * connection leaves them to the driver, except from a decoding transport: what it decoded
     * from the same receive has nowhere else to go, so it joins the slot (which must_wait
     * keeps roomy enough) and is parsed on resume. */
    taken = 0;
    while (taken < n && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)) &&
           (decodes(c) || !(c->flags & RW_CONN_PAUSED))) {
      size_t k = acc_append(c, at + taken, n - taken);
      if (!k)
        break;
      taken += k;
      if (!(c->flags & RW_CONN_PAUSED))
        conn_parse(c, acc_buf(c), c->acc_len);
    }
    if (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))
      taken = n;
  } else {
    taken = conn_parse(c, at, n);
  }
  if (must_wait(c))
    rw_conn_pause(c); /* (io_uring: what arrives meanwhile is held, still encoded) */
  rw_conn_mark_dirty(c);
  return taken;
}

/* A partial frame at EOF can never complete: it is dropped, unless the close is what ends it
 * (a body read to the close), which the protocol hears first. Replies already queued go out. */
static void eof_now(struct rw_conn *c)
{
  int rc = 0;
  if (c->acc == RW_NONE && c->proto->on_eof && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)))
    rc = c->proto->on_eof(c, c->handlers, c->parser);
  c->flags |= RW_CONN_EOF | RW_CONN_CLOSING;
  if (c->acc != RW_NONE)
    note_reason(c, -EPIPE);
  else if (rc < 0)
    note_reason(c, rc);
  acc_release(c);
  rw_conn_mark_dirty(c);
}

/* The peer finished sending. What it sent before still counts: a connection paused with frames
 * held (a handler waiting for an upstream, a full send queue) hears the end only once they are
 * parsed, so a request followed by a half-close is answered (rw_conn_try_resume ends it). */
void rw_conn_eof(struct rw_conn *c)
{
  if (c->acc != RW_NONE && (c->flags & RW_CONN_PAUSED) && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))) {
    c->flags |= RW_CONN_EOF; /* (read no more) */
    rw_conn_mark_dirty(c);
    return;
  }
  eof_now(c);
}

void rw_conn_on_drain(rw_conn *c, size_t mark, rw_drain_fn fn, void *data)
{
  c->on_drain = fn;
  c->drain_data = data;
  c->drain_mark = mark;
}

void rw_conn_sent(struct rw_conn *c, size_t n)
{
  rw_sendq_consume(c->w, c, n);
  if (c->on_drain && rw_conn_unsent(c) <= c->drain_mark) {
    rw_drain_fn fn = c->on_drain;
    c->on_drain = NULL; /* (once: fn may set it again) */
    fn(c, c->drain_data);
  }
  if (c->ps)
    RW_STAT_ADD(c->w->stats.bytes_out, n);
  c->last_active_ms = c->w->now_ms;
}

void rw_conn_send_blocked(struct rw_conn *c)
{
  c->flags |= RW_CONN_WANT_WRITE;
}

void rw_conn_send_started(struct rw_conn *c)
{
  c->flags |= RW_CONN_SENDING;
}

void rw_conn_send_done(struct rw_conn *c, int res)
{
  c->flags &= ~RW_CONN_SENDING;
  if (res > 0)
    rw_conn_sent(c, (size_t)res);
  else if (res < 0)
    c->flags |= RW_CONN_ABORT;
  rw_conn_mark_dirty(c);
}

void rw_conn_writable(struct rw_conn *c)
{
  c->flags &= ~RW_CONN_WANT_WRITE;
  rw_conn_mark_dirty(c);
}

void rw_conn_abort(struct rw_conn *c, int err)
{
  note_reason(c, err);
  c->flags |= RW_CONN_ABORT | RW_CONN_CLOSING;
  rw_conn_mark_dirty(c);
}

int rw_conn_write(rw_conn *c, const void *data, size_t len)
{
  const struct iovec iov = {(void *)data, len};
  return rw_conn_writev(c, &iov, 1);
}

/* A write that could not be queued closes the connection, saying why when it is the slab. */
static int write_failed(struct rw_conn *c, int rc)
{
  if (rc == -ENOBUFS)
    rw_log_limited(&c->w->slab_log, "send slab exhausted: closing a connection "
                                    "(raise --max-conns or the send slab)");
  rw_conn_abort(c, rc);
  return rc;
}

/* A reply's pieces are checked and marked once, then appended back to back. */
int rw_conn_writev(rw_conn *c, const struct iovec *iov, int n)
{
  if (c->flags & (RW_CONN_ABORT | RW_CONN_CLOSING))
    return -EPIPE;
  int rc = c->transport->write(c, iov, n);
  if (rc < 0)
    return write_failed(c, rc);
  rw_conn_mark_dirty(c);
  return 0;
}

void rw_conn_cork(rw_conn *c)
{
  c->flags |= RW_CONN_CORKED;
}

void rw_conn_uncork(rw_conn *c)
{
  if (c->flags & RW_CONN_CORKED) {
    c->flags &= ~RW_CONN_CORKED;
    rw_conn_mark_dirty(c);
  }
}

/* The flush loop resumes it (never from inside another connection's handler). */
void rw_conn_resume(rw_conn *c)
{
  if (c->flags & RW_CONN_WAITING) {
    c->flags &= ~RW_CONN_WAITING;
    if (c->flags & RW_CONN_PAUSED)
      paused_link(c);
    c->w->freed_resources = true;
    rw_conn_mark_dirty(c);
  }
}

void rw_conn_hold(struct rw_conn *c)
{
  rw_conn_pause(c);
  /* The flush loop offers paused connections room when resources were freed: say so, so that
   * the long reply starts this turn. */
  c->w->freed_resources = true;
}

void rw_conn_stream(rw_conn *c, rw_stream_fn fn, void *data)
{
  c->stream = fn;
  c->stream_data = data;
  rw_conn_hold(c);
}

void rw_conn_stream_end(struct rw_conn *c)
{
  c->stream = NULL;
}

void rw_conn_close(rw_conn *c)
{
  if (c->transport->close && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)))
    c->transport->close(c);
  c->flags |= RW_CONN_CLOSING;
  rw_conn_mark_dirty(c);
}

void rw_conn_close_err(struct rw_conn *c, int err)
{
  if (!(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)))
    note_reason(c, err);
  rw_conn_close(c);
}

size_t rw_conn_queued(const rw_conn *c)
{
  return rw_conn_unsent(c);
}

size_t rw_conn_room(const rw_conn *c)
{
  const struct rw_worker *w = c->w;
  return w->send_pool.nfree > w->send_reserve ? c->transport->room(c, w->send_pool.nfree - w->send_reserve)
                                              : 0;
}

/* What a stream may append now: up to the high water mark, and leaving the reserve of chunks
 * that other connections' dispatches count on. */
static size_t stream_room(const struct rw_conn *c)
{
  const struct rw_worker *w = c->w;
  size_t by_mark = w->srv->cfg.send_high_water - rw_conn_unsent(c);
  size_t by_slab = c->transport->room(c, w->send_pool.nfree - w->send_reserve + 1);
  return by_mark < by_slab ? by_mark : by_slab;
}

/* A stream in progress gets the room first; held frames are parsed before the socket is read
 * again, so order is kept. */
void rw_conn_try_resume(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (!can_dispatch(c) || (c->flags & RW_CONN_WAITING))
    return;
  if (c->stream && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT))) {
    int rc = c->stream(c, c->stream_data, stream_room(c));
    if (rc > 0) {
      rw_conn_mark_dirty(c);
      return;
    }
    c->stream = NULL;
    if (rc < 0) {
      rw_conn_close(c);
      return;
    }
    if (!can_dispatch(c))
      return;
  }
  if (may_hold(c) && c->acc == RW_NONE && !w->acc_pool.nfree)
    return;
  if (!transport_can_read(c))
    return;
  paused_unlink(c);
  c->flags &= ~RW_CONN_PAUSED;
  if (c->acc != RW_NONE)
    conn_parse(c, acc_buf(c), c->acc_len);
  if ((c->flags & RW_CONN_EOF) && !(c->flags & (RW_CONN_PAUSED | RW_CONN_CLOSING | RW_CONN_ABORT)))
    eof_now(c); /* the held frames are parsed: the end they were followed by */
  rw_conn_mark_dirty(c);
}

rw_worker *rw_conn_worker(const rw_conn *c)
{
  return c->w;
}

void *rw_conn_data(const rw_conn *c)
{
  return c->data;
}

void rw_conn_set_data(rw_conn *c, void *data)
{
  c->data = data;
}

void *rw_conn_user(const rw_conn *c)
{
  return c->w->user_size ? (uint8_t *)c->parser + c->w->user_off : NULL;
}

void *rw_conn_parser(rw_conn *c)
{
  return c->parser;
}

rw_handle rw_conn_handle(const rw_conn *c)
{
  return (rw_handle){c->idx, c->gen};
}

rw_conn *rw_conn_from_handle(rw_worker *w, rw_handle h)
{
  if (h.idx >= w->max_conns)
    return NULL;
  struct rw_conn *c = &w->conns[h.idx];
  return c->gen == h.gen && (c->flags & RW_CONN_LIVE) ? c : NULL;
}
