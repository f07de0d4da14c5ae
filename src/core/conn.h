/* Internal: connections (conn.c): the path from received bytes to replies, shared by every
 * driver and transport. */
#ifndef RW_CONN_H
#define RW_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringwright/conn.h>
#include <ringwright/server.h>
#include <ringwright/timer.h>

#include "transport.h"

struct rw_worker;

enum {
  RW_CONN_LIVE = 1 << 0,
  RW_CONN_CLOSING = 1 << 1,    /* no more reading; close once the send chain is empty */
  RW_CONN_ABORT = 1 << 2,      /* close now, drop what is queued */
  RW_CONN_EOF = 1 << 3,        /* the peer finished sending */
  RW_CONN_PAUSED = 1 << 4,     /* not read until the send chain drains or pools refill */
  RW_CONN_DIRTY = 1 << 5,      /* on the worker's flush list */
  RW_CONN_WANT_WRITE = 1 << 6, /* the kernel refused bytes; wait for writability */
  RW_CONN_CONNECTING = 1 << 7, /* outbound, not yet established */
  RW_CONN_SENDING = 1 << 8,    /* a send is in flight (completion-based drivers) */
  RW_CONN_ZOMBIE = 1 << 9,     /* closed, waiting for the driver to release the slot */
  RW_CONN_CORKED = 1 << 10,    /* rw_conn_cork(): queued bytes wait for rw_conn_uncork() */
  RW_CONN_WAITING = 1 << 11,   /* a handler said -EAGAIN: paused until rw_conn_resume() */
  RW_CONN_CHOOSE = 1 << 12,    /* accepted where rw_server_alternate() applies: the first byte
                                  received picks the protocol */
  RW_CONN_DIRECT = 1 << 13,    /* fd is an index in io_uring's fixed-file table, no descriptor */
};

struct rw_conn {
  int fd;
  uint32_t flags;
  uint32_t gen;
  uint32_t idx;
  const rw_proto *proto;
  const void *handlers;
  rw_peek_fn peek;       /* rw_server_peek(), NULL: none */
  rw_inspect_fn inspect; /* rw_conn_inspect(), NULL: none */
  struct rw_worker *w;
  void *parser;
  void *data;
  /* input: bytes of an unfinished frame (or of frames held while paused) */
  uint32_t acc;
  uint32_t acc_len;
  bool acc_large; /* acc is in the server's large pool: a frame longer than a slot */
  bool counted;   /* accepted: one of the server's --max-conns until released */
  /* output: a chain of slab chunks */
  uint32_t sq_head, sq_tail;
  uint32_t sq_head_off, sq_tail_len;
  size_t queued; /* bytes in the send chain (sendq.c); rw_conn_unsent() adds `held` */
  int64_t last_active_ms;
  rw_timer timer;                       /* idle timeout, or connect timeout while connecting */
  const struct rw_transport *transport; /* between the socket and the parser (transport.h) */
  void *transport_state;                /* the transport's own (TLS: struct rw_tls_conn) */
  size_t held;                          /* written, held by the transport outside the chain */
  rw_stream_fn stream;                  /* a long reply in progress: no dispatch until it is done */
  void *stream_data;
  rw_connect_fn connect_done;
  void *connect_data;
  rw_close_fn on_close; /* rw_conn_on_close() */
  void *close_data;
  rw_drain_fn on_drain; /* rw_conn_on_drain() */
  void *drain_data;
  size_t drain_mark;
  int close_reason;          /* the first error that ended it (0: none, a clean close) */
  struct rw_proto_stats *ps; /* its protocol's figures (stats.c); NULL: not counted */
  uint16_t count_as;         /* rw_conn_count_as() for the frame in dispatch (UINT16_MAX: none) */
  bool past_limit;           /* the last parse error was a limit passed (a close for it is a limit's) */
  uint64_t ttfb_t0;          /* ticks when a reply's first frame was dispatched (0: none waiting) */
  struct rw_conn *dirty_next;
  struct rw_conn *paused_prev, *paused_next;
};

struct rw_conn *rw_conn_open(struct rw_worker *w, const rw_proto *proto, const void *handlers, int fd);
/* Where the next receive should land and how much fits; NULL when the connection may not be
 * read now (paused, closing, or no slot to keep a partial frame). */
uint8_t *rw_conn_rx_window(struct rw_conn *c, size_t *out_cap);
/* n bytes were received at `at`: either the window rw_conn_rx_window() gave, or a buffer of the
 * driver's; at[n] must be writable (the parser's sentinel goes there). Returns how many were
 * taken; the driver keeps the rest and offers it again once the connection wants to read. */
size_t rw_conn_received(struct rw_conn *c, uint8_t *at, size_t n);
/* Holds dispatch on the connection while a long reply (a stream, a file) is in progress; the
 * flush loop offers it room this turn. */
void rw_conn_hold(struct rw_conn *c);
/* Ends the stream in progress from outside its function (a completion finished it): the
 * function is not called again. */
void rw_conn_stream_end(struct rw_conn *c);

/* Bytes written and not yet taken by the kernel: the send chain's and the transport's. */
static inline size_t rw_conn_unsent(const struct rw_conn *c)
{
  return c->queued + c->held;
}

void rw_conn_eof(struct rw_conn *c);
/* The kernel took n bytes of the send chain: they go, and the connection counts as active. */
void rw_conn_sent(struct rw_conn *c, size_t n);
/* The socket takes no more now: nothing is sent until rw_conn_writable(). */
void rw_conn_send_blocked(struct rw_conn *c);
/* A completion-based driver's send of the chain is in flight: the kernel owns its chunks until
 * rw_conn_send_done() reports what it took (bytes, or -errno: the connection aborts). */
void rw_conn_send_started(struct rw_conn *c);
void rw_conn_send_done(struct rw_conn *c, int res);
/* The socket takes bytes again after RW_CONN_WANT_WRITE. */
void rw_conn_writable(struct rw_conn *c);
void rw_conn_abort(struct rw_conn *c, int err);
/* rw_conn_close() for a reason the owner hears (rw_conn_on_close): an error, or -ETIMEDOUT. */
void rw_conn_close_err(struct rw_conn *c, int err);
/* An outbound connection finished connecting with `err` (0: established). */
void rw_conn_connected(struct rw_conn *c, int err);
void rw_conn_free(struct rw_conn *c);
void rw_conn_release(struct rw_conn *c);
/* (Re)starts the idle timeout when the config has one. */
void rw_conn_arm_idle(struct rw_conn *c);
void rw_conn_mark_dirty(struct rw_conn *c);
/* Stops reading until resources come back (rw_conn_try_resume). */
void rw_conn_pause(struct rw_conn *c);
bool rw_conn_wants_read(const struct rw_conn *c);
bool rw_conn_wants_write(const struct rw_conn *c);
/* Graceful stop: every connection closes once flushed; with `abort`, at once. */
void rw_worker_close_all(struct rw_worker *w, bool abort);
void rw_conn_try_resume(struct rw_conn *c);

#endif
