/* Connections as handlers see them. */
#ifndef RINGWRIGHT_CONN_H
#define RINGWRIGHT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_conn rw_conn;
typedef struct rw_worker rw_worker;
typedef struct rw_proto rw_proto;

/* A reference that survives the connection: the slot's generation changes when the connection
 * closes, so a stale handle resolves to NULL instead of to a stranger. */
typedef struct rw_handle {
  uint32_t idx;
  uint32_t gen;
} rw_handle;

/* Appends `len` bytes to the connection's send chain; they go out at the end of this loop turn,
 * coalesced with the other replies of the turn. Returns 0, -EPIPE when the connection is closing,
 * or -ENOBUFS when the send slab is exhausted (the connection is then closed). */
int rw_conn_write(rw_conn *c, const void *data, size_t len);

struct iovec;

/* The same for several pieces, appended in order as one reply. An empty piece may have a NULL
 * base: it is passed over. */
int rw_conn_writev(rw_conn *c, const struct iovec *iov, int n);

/* A reply too long to queue at once (a file): after writing its start, a handler hands the
 * rest to `fn`, which the runtime calls whenever the connection has room again, with `room`
 * the bytes it may append now (at least one send chunk). `fn` returns 1 while more remains, 0
 * when done, or -errno when it failed (having released what it held; the connection closes).
 * `room` 0 means the connection is closing before the reply was done: release what you hold.
 * Until `fn` is done nothing more is dispatched on the connection, so pipelined replies keep
 * their order. Over TLS every write becomes at least one record and records never straddle
 * send chunks: `room` counts on writes of a kilobyte or more (tiny writes may find the slab
 * short and fail with -ENOBUFS). */
typedef int (*rw_stream_fn)(rw_conn *c, void *data, size_t room);

/* Sends `len` bytes of file `fd` from `off` after what is queued, read off the loop (io_uring:
 * reads on the worker's ring; epoll: a small thread pool) straight into send chunks, one chunk
 * ahead of the socket and only below the high water mark. Nothing more is dispatched on the
 * connection until it is done; then `done(c, 0, data)` runs (or `done(c, -errno, data)` when the
 * read failed or the connection closed first; c is then closing). The caller keeps `fd` open
 * until `done`. Over TLS each chunk read is sealed into records. -EBUSY when a long reply is
 * already in progress. */
typedef void (*rw_file_done_fn)(rw_conn *c, int err, void *data);
int rw_conn_send_file(rw_conn *c, int fd, uint64_t off, uint64_t len, rw_file_done_fn done, void *data);
void rw_conn_stream(rw_conn *c, rw_stream_fn fn, void *data);

/* Closes gracefully: stops reading, sends what is queued, then closes the socket. */
void rw_conn_close(rw_conn *c);

/* Holds the connection's queued replies back (they are not sent) until rw_conn_uncork(): for
 * replies that may go out only once something else is done, such as an fsync. Parsing and
 * dispatch go on meanwhile. */
void rw_conn_cork(rw_conn *c);
void rw_conn_uncork(rw_conn *c);

/* A handler that cannot take its frame now (a resource of the application's is full) returns
 * -EAGAIN: the frame stays unconsumed and the connection stops reading and dispatching until
 * rw_conn_resume(), when the same frame is dispatched again. For framed protocols (a raw
 * protocol's -EAGAIN closes the connection like any other error).
 * A handler that started a stream (rw_conn_stream) and returns -EAGAIN is dispatched again with
 * the same frame as soon as the stream is done, without rw_conn_resume(): a reply of several
 * long parts (MGET's values) continues where the application noted it stopped. */
void rw_conn_resume(rw_conn *c);

/* Bytes queued and not yet accepted by the kernel. */
size_t rw_conn_queued(const rw_conn *c);

/* Bytes a handler may still append now without taking the send chunks that other connections'
 * dispatches count on (what a stream's `room` counts, without the high water mark): a handler
 * that writes one reply per argument (MGET) stops when it is short and goes on when dispatched
 * again, instead of exhausting the worker's send slab (a write that finds no chunk closes the
 * connection). */
size_t rw_conn_room(const rw_conn *c);

/* Calls `fn` once, the next time the kernel's acceptance of sent bytes leaves `mark` bytes or
 * fewer queued on `c` (a proxy that stopped reading one connection while another's queue was
 * full: both backends). Check rw_conn_queued() first: `fn` runs only after a send. One per
 * connection (a later call replaces it; `fn` NULL removes it). `fn` runs inside the loop's
 * send completion: it may resume connections (rw_conn_resume), not write to `c`. */
typedef void (*rw_drain_fn)(rw_conn *c, void *data);
void rw_conn_on_drain(rw_conn *c, size_t mark, rw_drain_fn fn, void *data);

/* The worker that owns the connection: its timers and clock. */
rw_worker *rw_conn_worker(const rw_conn *c);

/* The address of the connection's peer (or, with `local`, its own end) as a numeric host
 * ("192.0.2.1", "::1") in host[0..cap) and its port in *out_port. 0, or -errno: -ENOTSOCK for
 * a socket the process holds no descriptor of (an accepted connection on io_uring, unless
 * rw_config.peer_names), -ENOSPC when `cap` is too short (INET6_ADDRSTRLEN always fits), or
 * getpeername's error (-ENOTCONN once the peer has reset it). A system call each time: cache
 * the answer per connection. */
int rw_conn_name(const rw_conn *c, bool local, char *host, size_t cap, unsigned *out_port);
/* The connection's socket descriptor, or -1 where the process holds none (io_uring's direct
 * descriptors, above): for listings such as redis's CLIENT LIST, not for I/O. */
int rw_conn_fd(const rw_conn *c);

/* Per-connection data for the application; NULL until set. */
void *rw_conn_data(const rw_conn *c);
void rw_conn_set_data(rw_conn *c, void *data);

/* The connection's own rw_config.conn_user_size bytes, zeroed when it opens (NULL if none):
 * per-connection application state that needs no allocation. */
void *rw_conn_user(const rw_conn *c);
rw_handle rw_conn_handle(const rw_conn *c);
/* The connection's parser state (its protocol's own struct): for a client that tells its
 * response parser what it asked, such as that a reply to HEAD has no body. */
void *rw_conn_parser(rw_conn *c);
/* The live connection `h` names on worker `w`, or NULL if it has closed since. */
rw_conn *rw_conn_from_handle(rw_worker *w, rw_handle h);

/* Inside a parse error's handler (the spec's `refused`): the bytes the parser had not consumed,
 * from the refused frame's first byte to the last one received, in *out_len; so the application
 * can name the fault (redis's protocol errors). NULL and 0 anywhere else. */
const uint8_t *rw_conn_refused_bytes(const rw_conn *c, size_t *out_len);

/* An application's look at input before it is parsed: `fn` gets the bytes not yet consumed, from
 * the next frame's first byte to the last one received (while a refused frame's data is being
 * skipped, that data), before each frame is parsed and again on each receive while the frame is
 * incomplete. It may reply and close the connection, so that a frame is refused before all of it
 * is held (redis's limits for unauthenticated clients); the close's reason is then -EBADMSG, as
 * for a spec's refusal. NULL, the default: none. */
typedef void (*rw_inspect_fn)(rw_conn *c, const uint8_t *p, size_t n);
void rw_conn_inspect(rw_conn *c, rw_inspect_fn fn);

/* How a connection ended: `reason` is 0 for a clean close (the peer closed between frames or
 * sent TLS close_notify, the application or the spec closed it) or the first error that ended
 * it, a negative errno: -EBADMSG (input the spec refused with a close), -ECONNRESET (a reset),
 * -ETIMEDOUT (idle timeout), -EPIPE (the peer closed in the middle of a frame, which is
 * dropped), -EPROTO (a TLS record or alert refused), -ESHUTDOWN (the server is stopping),
 * -ENOBUFS (the send slab ran dry), or a handler's own error. */
typedef void (*rw_close_fn)(rw_conn *c, int reason, void *data);

/* Calls `fn` once when `c` closes, just before its socket goes: `c` can no longer be written,
 * but its data and user area are still there. One per connection (a later call replaces it);
 * for outbound connections, set it in the connect callback, so that a client hears when its
 * peer goes away or misbehaves. Safe to dial again from `fn`. */
void rw_conn_on_close(rw_conn *c, rw_close_fn fn, void *data);

/* Outbound TCP: `done` runs once, with the connection (err 0) or with NULL and -ECONNREFUSED,
 * -ETIMEDOUT, ... The connection then runs `proto` with `handlers`, like an accepted one.
 * `hostport` is a numeric address ("127.0.0.1:6379", "[::1]:80"). Returns 0 or -errno (no
 * callback then): -ENOSPC when the connection table is full, -EINVAL when `proto` is neither
 * served by a listener nor declared with rw_server_use_proto() (its state would not fit the
 * pools) or a handler it needs is missing. */
typedef void (*rw_connect_fn)(rw_conn *c, int err, void *data);
int rw_connect(rw_worker *w, const char *hostport, const rw_proto *proto, const void *handlers,
               uint32_t timeout_ms, rw_connect_fn done, void *data);

#ifdef __cplusplus
}
#endif

#endif
