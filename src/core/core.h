/* Internal: the reactor core shared by every driver. Drivers move bytes between sockets and
 * the core; the core owns connections, pools, parsing, dispatch, timers and send chains. */
#ifndef RW_CORE_H
#define RW_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <ringwright/conn.h>
#include <ringwright/dns.h>
#include <ringwright/file.h>
#include <ringwright/msg.h>
#include <ringwright/spawn.h>
#include <ringwright/server.h>

#include "transport.h"

#define RW_NONE UINT32_MAX
#define RW_MAX_LISTENERS 8
#define RW_MAX_UDP 8
#define RW_POOL_MAX_THREADS 64

/* ---- log.c ---- */
void rw_log_init(const char *name);
void rw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* At most one line per second per call site; counts what it suppressed. */
struct rw_ratelimit {
  int64_t last_ms;
  uint64_t suppressed;
};
void rw_log_limited(struct rw_ratelimit *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t rw_now_ms(void);

/* ---- addr.c ---- */
/* HOST:PORT into `host` (brackets of an IPv6 address removed) and the port's digits. */
int rw_addr_split(const char *hostport, char *host, size_t hostlen, const char **out_port);
/* `numeric`: refuse host names (no resolver may run on a worker thread). */
int rw_addr_parse(const char *hostport, bool numeric, struct sockaddr_storage *out_addr, socklen_t *out_len);
void rw_addr_format(const struct sockaddr *sa, char *out, size_t outlen);
/* A non-blocking socket of `type` bound to `ss` with SO_REUSEPORT (and listening, for TCP);
 * returns the fd or -errno. */
int rw_socket_bind(const struct sockaddr_storage *ss, socklen_t len, int type);

/* ---- pool.c: fixed pools of equal-sized items, an index stack for O(1) get/put ---- */
struct rw_pool {
  uint8_t *mem;
  uint32_t *free;
  uint32_t nfree, count;
  size_t item_size;
};
int rw_pool_init(struct rw_pool *p, uint32_t count, size_t item_size);
/* The same without reserving memory for the items (MAP_NORESERVE): for large items that are
 * made resident only while used and given back with rw_pool_discard(). */
int rw_pool_init_sparse(struct rw_pool *p, uint32_t count, size_t item_size);
void rw_pool_discard(struct rw_pool *p, uint32_t i);
void rw_pool_fini(struct rw_pool *p);
static inline uint32_t rw_pool_get(struct rw_pool *p)
{
  return p->nfree ? p->free[--p->nfree] : RW_NONE;
}
static inline void rw_pool_put(struct rw_pool *p, uint32_t i)
{
  p->free[p->nfree++] = i;
}
static inline uint8_t *rw_pool_at(const struct rw_pool *p, uint32_t i)
{
  return p->mem + (size_t)i * p->item_size;
}
size_t rw_pool_bytes(const struct rw_pool *p);
/* Anonymous memory that is only made resident when touched; NULL on failure. */
void *rw_region_alloc(size_t size);
void rw_region_free(void *p, size_t size);

/* ---- large.c: the server's large slots, shared by every worker ---- */
struct rw_large {
  pthread_mutex_t lock;
  struct rw_pool pool; /* sparse: pages resident only while used */
  int64_t *idle_ms;    /* per slot: when it came back still resident (0: in use, or given back) */
  uint32_t waiters;    /* workers with a connection waiting for a slot */
  bool ready;
};
struct rw_worker;
int rw_large_init(rw_server *s, uint32_t count, size_t size);
void rw_large_fini(rw_server *s);
size_t rw_large_bytes(const rw_server *s);
/* A free slot, or RW_NONE: the worker is then waiting, and rw_large_tick() says when to retry. */
uint32_t rw_large_get(struct rw_worker *w);
void rw_large_put(struct rw_worker *w, uint32_t i);
/* Once per loop turn while the worker waits: once a slot is free, its paused connections try
 * again. */
void rw_large_tick(struct rw_worker *w);

/* ---- timer.c: the wheel ---- */
#define RW_WHEEL_SLOTS 1024
struct rw_wheel {
  rw_timer *slot[RW_WHEEL_SLOTS];
  int64_t done_tick; /* every tick up to this one has been processed */
  uint32_t armed;
};
void rw_wheel_init(struct rw_wheel *wh, int64_t now_ms);
/* Fires every timer due at `now_ms`. */
void rw_wheel_advance(struct rw_wheel *wh, int64_t now_ms);
/* Milliseconds until the next tick that may hold a due timer; -1 when none is armed. */
int rw_wheel_timeout(const struct rw_wheel *wh, int64_t now_ms);

/* ---- offload.c: the server's thread pool, for what would block a loop ---- */
struct rw_offload {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  rw_job *head, *tail;
  uint32_t waiting, limit; /* jobs queued (not yet running); `limit` for bounded submits */
  pthread_t thread[RW_POOL_MAX_THREADS];
  unsigned nthreads;
  bool stop;
};
int rw_offload_start(rw_server *s);
void rw_offload_stop(rw_server *s);
/* Queues j->run for a pool thread; j->msg.fn then runs on `w`. `bounded`: refuse with -EAGAIN
 * when the queue holds `limit` jobs. */
int rw_offload_submit(struct rw_worker *w, rw_job *j, bool bounded);

/* ---- the connection ---- */
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
};

struct rw_listener {
  const rw_proto *proto;
  void *transport_ctx; /* its connections' transport starts from it (struct rw_tls); NULL: plain */
  const void *handlers;
  struct sockaddr_storage ss; /* the bound address (port resolved) */
  socklen_t sslen;
  int fd0; /* worker 0's socket, bound at rw_server_listen() to learn the port */
  char addr[64];
};

struct rw_udp {
  struct rw_worker *w;
  int fd;
  rw_udp_fn fn;
  void *data;
};

struct rw_udp_spec {
  struct sockaddr_storage ss;
  socklen_t sslen;
  int fd0;
  rw_udp_fn fn;
  void *data;
};

struct rw_conn {
  int fd;
  uint32_t flags;
  uint32_t gen;
  uint32_t idx;
  uint32_t events; /* the driver's current interest set */
  const rw_proto *proto;
  const void *handlers;
  rw_peek_fn peek; /* rw_server_peek(), NULL: none */
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
  struct rw_conn *dirty_next;
  struct rw_conn *paused_prev, *paused_next;
};

struct rw_driver;

struct rw_worker {
  rw_server *srv;
  unsigned id;
  const struct rw_driver *driver;
  void *drv; /* the driver's own state */
  pthread_t thread;
  int rc;
  int lfd[RW_MAX_LISTENERS];
  struct rw_udp udp[RW_MAX_UDP];
  int wakefd;              /* eventfd: other threads wake this worker */
  _Atomic(rw_msg *) inbox; /* messages posted without MSG_RING, newest first */
  atomic_bool ready;       /* the driver is set up: others may deliver straight to it */
  uint32_t max_conns;      /* connection slots: the whole cap (any worker may be sent every one) */
  uint32_t share;          /* the cap split evenly: what pools with backpressure are sized by */
  struct rw_conn *conns;
  uint32_t *conn_free;
  uint32_t nconn_free;
  uint32_t nlive;
  uint8_t *parsers;
  size_t parser_stride;
  size_t user_off, user_size;          /* rw_conn_user(): offset from the parser state, bytes */
  struct rw_file_stream *file_streams; /* rw_conn_send_file() in progress, by connection */
  struct rw_file_req *file_reqs;       /* their reads, one per connection at most */
  uint32_t *file_free, nfile_free;
  uint32_t ops_inflight; /* file operations, tasks and lookups not yet completed */
  struct rw_pool dio_pool;
  struct rw_dns_slot *dns;
  uint32_t *dns_free, ndns_free;
  struct rw_dial *dials; /* as many as dns slots */
  uint8_t *rxbuf;
  struct rw_pool acc_pool;
  rw_timer large_timer; /* gives back the pages of large slots idle for a second (large.c) */
  bool large_waiting;   /* a connection waits for a large slot: none was free */
  struct rw_pool send_pool;
  struct rw_pool transport_pool; /* RW_TRANSPORT_SLOT: units that cross receives, held replies */
  uint32_t *chunk_next;
  uint32_t *chunk_len;   /* bytes in a chain's chunk once it is no longer the tail */
  uint32_t send_reserve; /* chunks that must stay free to start a dispatch */
  struct rw_conn *dirty;
  struct rw_conn *paused;
  bool freed_resources; /* a slot or chunk came back this turn: paused connections may go on */
  bool stopping;
  int64_t now_ms;
  int64_t deadline_ms;
  struct rw_wheel wheel;
  size_t budget;
  struct rw_ratelimit refuse_log, slab_log, accept_log, transport_log;
};

struct rw_server {
  rw_config cfg;
  struct rw_listener listeners[RW_MAX_LISTENERS];
  unsigned nlisteners;
  struct rw_udp_spec udps[RW_MAX_UDP];
  unsigned nudp;
  struct rw_worker *workers;
  unsigned nworkers;
  const struct rw_driver *driver;
  size_t resident; /* what every pool can make resident at most */
  size_t reserved; /* address space the pools took at start */
  atomic_int stop;
  struct rw_offload pool;
  struct {
    const rw_proto *proto;
    rw_peek_fn fn;
  } peeks[RW_MAX_LISTENERS];
  unsigned npeeks;
  /* Written when a connection is accepted or released, never per request: on a cache line of
   * its own, away from `stop`, which every loop reads each turn. */
  _Alignas(64) atomic_uint nconns; /* accepted connections not yet released: at most max_conns */
  _Alignas(64) struct rw_large large;
  struct rw_alternate { /* rw_server_alternate() */
    const rw_proto *proto, *alt;
    const void *handlers;
    uint8_t first_byte;
  } alts[RW_MAX_LISTENERS];
  unsigned nalts;
};

/* ---- fileop.c ---- */
enum rw_fileop_kind {
  RW_FOP_OPEN = 1,
  RW_FOP_CLOSE,
  RW_FOP_READ,
  RW_FOP_READV,
  RW_FOP_WRITE,
  RW_FOP_WRITEV,
  RW_FOP_FSYNC,
  RW_FOP_FDATASYNC,
  RW_FOP_STAT,
  RW_FOP_RENAME,
  RW_FOP_UNLINK,
  RW_FOP_MKDIR,
};
/* The driver finished `op` (io_uring) with `res`. */
void rw_fileop_complete(rw_fileop *op, int64_t res);

/* ---- send_file.c: rw_conn_send_file(), a stream reading into send chunks, one read at a time ---- */
struct rw_file_stream {
  int fd;
  uint64_t off, left;
  uint32_t req; /* the read in flight, or RW_NONE */
  rw_file_done_fn done;
  void *data;
};
#define RW_FILE_IOV 16 /* send chunks one read may fill (16 x 16 KiB: the high water mark) */
struct rw_file_req {
  rw_fileop op;
  rw_handle conn;
  uint32_t idx, nchunks;
  uint32_t chunks[RW_FILE_IOV];
  struct iovec iov[RW_FILE_IOV];
};

/* ---- dns.c ---- */
struct rw_dns_slot;
int rw_dns_init(struct rw_worker *w);
void rw_dns_fini(struct rw_worker *w);
size_t rw_dns_budget(const struct rw_worker *w);
void rw_dns_stop(struct rw_worker *w); /* a stopping worker fails its lookups with -ECANCELED */

/* ---- connect.c: outbound connections to a host name wait for its lookup in a dial ---- */
struct rw_dial;
int rw_dial_init(struct rw_worker *w);
void rw_dial_fini(struct rw_worker *w);
size_t rw_dial_budget(const struct rw_worker *w);

/* ---- the driver interface: one per backend ---- */
struct rw_driver {
  const char *name;
  /* Runs on the worker's thread: ring or epoll set, listeners, wake fd. 0 or -errno. */
  int (*init)(struct rw_worker *w);
  int (*run)(struct rw_worker *w);
  void (*fini)(struct rw_worker *w);
  /* The connection's interest changed (paused, resumed, wants writability). */
  void (*update)(struct rw_worker *w, struct rw_conn *c);
  /* Hands the queued bytes to the kernel (rw_sendq_iov/rw_sendq_consume); sets
   * RW_CONN_WANT_WRITE when the kernel takes no more. 0 or -errno (the connection aborts). */
  int (*send)(struct rw_worker *w, struct rw_conn *c);
  /* The connection is finished: close its socket. Returns true if the slot may be reused now;
   * false if the driver calls rw_conn_release() once the kernel is done with it. */
  bool (*close)(struct rw_worker *w, struct rw_conn *c);
  /* Starts an outbound connection on c->fd (a new non-blocking socket). 0 or -errno. */
  int (*connect)(struct rw_worker *w, struct rw_conn *c, const struct sockaddr *sa, socklen_t len);
  /* Closes the worker's listening sockets: the first step of a graceful stop. */
  void (*stop_accepting)(struct rw_worker *w);
  /* 0 if this backend can run here, else -errno with a reason in `why`. */
  int (*probe)(char *why, size_t whylen);
  /* Starts a file operation; rw_fileop_complete() follows. NULL: the thread pool runs it.
   * 0 or -errno. */
  int (*file_op)(struct rw_worker *w, rw_fileop *op);
  /* Takes a connected socket the core opened (rw_conn_open) and starts reading it. 0 or -errno. */
  int (*adopt)(struct rw_worker *w, struct rw_conn *c);
  /* Calls wt->fn(wt, res) once `fd` is readable (res > 0) or the watch failed (-errno). */
  int (*watch)(struct rw_worker *w, int fd, struct rw_proc_watch *wt);
  /* Bytes the driver itself reserves per worker (buffer rings, per-connection state). */
  size_t (*budget)(const struct rw_worker *w);
  /* Delivers `m` to worker `to` from worker `from` (both on this driver) without the inbox;
   * 0, or -errno to fall back to the inbox. NULL: always the inbox. */
  int (*post)(struct rw_worker *from, struct rw_worker *to, rw_msg *m);
};

extern const struct rw_driver rw_driver_epoll;
extern const struct rw_driver rw_driver_uring;

/* ---- worker.c ---- */
/* Called by drivers once per loop turn after waiting: clock, timers, stop requests. */
void rw_worker_tick(struct rw_worker *w);
/* Runs the end-of-turn work: flush every dirty connection, free closed ones, resume paused. */
void rw_worker_flush(struct rw_worker *w);
/* True once a stopping worker has no connection left (or its deadline passed). */
bool rw_worker_done(struct rw_worker *w);
/* How long the driver may wait for events: 0 with work pending, else until the next timer. */
int rw_worker_timeout(struct rw_worker *w);
void rw_worker_wake(struct rw_worker *w);
/* An accepted connection on listener `li`; NULL when refused (the driver then closes `fd`). */
struct rw_conn *rw_worker_accepted(struct rw_worker *w, unsigned li, int fd);
void rw_worker_udp_input(struct rw_udp *u);
void rw_worker_close_listeners(struct rw_worker *w);
/* Worker 0's signalfd for SIGINT/SIGTERM (fd or -errno), and what to do when it is readable. */
int rw_worker_signalfd(void);
void rw_worker_on_signalfd(struct rw_worker *w, int fd);
/* Runs every message in the worker's inbox, oldest first (drivers call it when woken). */
void rw_worker_run_inbox(struct rw_worker *w);

/* ---- conn.c: what every driver calls ---- */
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

/* Fault injection (src/core/fault.c): in test builds only, the drivers ask at each site whether
 * to fail; in the optimised build these are no-ops the compiler removes. */
enum rw_fault_site { RW_FAULT_ACCEPT, RW_FAULT_RECV, RW_FAULT_SEND, RW_FAULT_FILE, RW_FAULT_PIDFD };
#ifdef RW_FAULT_INJECTION
void rw_fault_init(void);
int rw_fault(enum rw_fault_site site, int res); /* res, or the injected -errno */
size_t rw_fault_short(size_t len);              /* len, or a shorter length to send */
uint32_t rw_fault_cq_entries(void);             /* io_uring CQ size to force (0: as usual) */
#else
static inline void rw_fault_init(void)
{
}
static inline int rw_fault(enum rw_fault_site site, int res)
{
  (void)site;
  return res;
}
static inline size_t rw_fault_short(size_t len)
{
  return len;
}
static inline uint32_t rw_fault_cq_entries(void)
{
  return 0;
}
#endif

/* Bytes written and not yet taken by the kernel: the send chain's and the transport's. */
static inline size_t rw_conn_unsent(const struct rw_conn *c)
{
  return c->queued + c->held;
}

void rw_conn_eof(struct rw_conn *c);
/* The socket takes bytes again after RW_CONN_WANT_WRITE. */
void rw_conn_writable(struct rw_conn *c);
void rw_conn_abort(struct rw_conn *c, int err);
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

/* ---- sendq.c ---- */
int rw_sendq_append(struct rw_worker *w, struct rw_conn *c, const void *data, size_t len);
/* The same for several pieces, in order. */
int rw_sendq_appendv(struct rw_worker *w, struct rw_conn *c, const struct iovec *iov, int n);
/* Copies the pieces back to back from `at` on, passing over empty ones (whose base may be
 * NULL). */
void rw_iov_gather(uint8_t *at, const struct iovec *iov, int n);
/* Links a whole chunk holding `len` bytes at the end of the chain (copied behind a partly
 * filled tail instead). */
/* The free bytes at the chain's tail, at least `want` (<= a chunk) of them: a fresh chunk when
 * the tail has less (it keeps what it holds). NULL if the slab is exhausted. To be filled in
 * place and then counted with rw_sendq_commit. */
uint8_t *rw_sendq_reserve(struct rw_worker *w, struct rw_conn *c, size_t want, size_t *out_room);
void rw_sendq_commit(struct rw_worker *w, struct rw_conn *c, size_t n);
void rw_sendq_append_chunk(struct rw_worker *w, struct rw_conn *c, uint32_t chunk, size_t len);
/* Fills up to `max` iovecs with the queued bytes, oldest first; returns how many. */
int rw_sendq_iov(const struct rw_worker *w, const struct rw_conn *c, struct iovec *iov, int max);
/* n bytes were accepted by the kernel: release what they covered. */
void rw_sendq_consume(struct rw_worker *w, struct rw_conn *c, size_t n);
void rw_sendq_drop(struct rw_worker *w, struct rw_conn *c);

#endif
