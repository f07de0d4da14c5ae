/* Internal: the transport seam. Between the driver (bytes on a socket) and the connection layer
 * (frames, dispatch, the send chain) each connection's bytes pass through its transport: the
 * plain one hands them on as they are; TLS (src/tls/, in libringwright-tls) opens records into
 * plaintext and seals replies into records. A transport reaches the core only through its lower
 * API below and the send chain's (rw_sendq_reserve/commit, rw_sendq_append); the core reaches a
 * transport only through its table, so the connection layer knows frames, never records. */
#ifndef RW_TRANSPORT_H
#define RW_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct rw_conn;

struct rw_transport {
  const char *name; /* for log lines */
  /* n bytes came off the socket at `at` (at[n] writable); returns how many it took: the driver
   * keeps the rest and offers it again once the connection wants to read. Called with none (at
   * NULL) on an outbound connection just established, other than plain: the transport starts
   * its handshake and calls c->connect_done once it is through. */
  size_t (*receive)(struct rw_conn *c, uint8_t *at, size_t n);
  /* The application's reply, in order: into the send chain or held until flush. 0 or -errno. */
  int (*write)(struct rw_conn *c, const struct iovec *iov, int n);
  /* End of the turn: what it held goes into the send chain. 0, or -errno (the connection is
   * then aborted). NULL: it never holds anything. */
  int (*flush)(struct rw_conn *c);
  /* The application closes gracefully: what the peer must still be told (close_notify). NULL:
   * nothing. */
  void (*close)(struct rw_conn *c);
  /* Whether the socket may be read now: false when what a receive may leave over (a partial
   * unit) would have nowhere to wait. NULL: always. */
  bool (*can_receive)(const struct rw_conn *c);
  /* The payload `chunks` (>= 1) free send chunks carry once framed: what a stream may write. */
  size_t (*room)(const struct rw_conn *c, size_t chunks);
  /* The connection ends: gives back every slot and its state. NULL: it holds none. */
  void (*release)(struct rw_conn *c);
  /* 0: the bytes reach the core as they were received, so they may land in its accumulator slot
   * and what it cannot take stays with the driver. Otherwise the transport decodes them first:
   * they never land among plaintext, and one receive may deliver up to a receive's size plus
   * this many bytes (a unit held from the last receive) that the core must take whole. */
  uint32_t decode_hold;
};

/* The plain transport: bytes pass through unchanged. */
extern const struct rw_transport rw_transport_plain;

/* The largest unit a transport keeps across receives, the size of a slot of the worker's
 * transport pool: a TLS record's header and its largest body (2^14 + 256), 64-aligned. */
#define RW_TRANSPORT_SLOT (5 + 16384 + 256 + 59)

/* ---- the core's lower API, for transports (conn.c) ---- */
/* Hands decoded bytes at[0..n) to the connection layer (at[n] must be writable: the parser's
 * sentinel goes there); returns how many it took (fewer only when it could not keep them). */
size_t rw_conn_deliver(struct rw_conn *c, uint8_t *at, size_t n);
/* The transport holds `n` bytes of the application's writes outside the send chain: they
 * count as queued (the high water mark, rw_conn_queued) until it flushes them. */
void rw_conn_held(struct rw_conn *c, size_t n);

#endif
