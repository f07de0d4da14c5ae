/* Internal: a worker (worker.c): one thread, one reactor, its own pools and connections. */
#ifndef RW_WORKER_H
#define RW_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ringwright/msg.h>
#include <ringwright/udp.h>

#include "log.h"
#include "pool.h"
#include "server.h"
#include "stats.h"
#include "timer.h"

struct rw_conn;
struct rw_driver;

struct rw_udp {
  struct rw_worker *w;
  int fd;
  rw_udp_fn fn;
  void *data;
};

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
  struct rw_dial *dials;              /* as many as dns slots */
  struct rw_upstream_pool *upstreams; /* one per rw_server_upstream() */
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
  bool freed_resources;      /* a slot or chunk came back this turn: paused connections may go on */
  const uint8_t *refused_at; /* rw_conn_refused_bytes() while a parse error is handled */
  size_t refused_len;
  bool stopping;
  int64_t now_ms;
  int64_t deadline_ms;
  struct rw_wheel wheel;
  size_t budget;
  struct rw_ratelimit refuse_log, slab_log, accept_log, transport_log;
  struct rw_proto_stats *pstats;            /* by protocol counted (stats.c) */
  rw_histogram *hists;                      /* their histograms, one region */
  _Alignas(64) struct rw_stats_block stats; /* written by this worker only */
};

/* Called by drivers once per loop turn after waiting: clock, timers, stop requests. */
void rw_worker_tick(struct rw_worker *w);
/* Runs the end-of-turn work: flush every dirty connection, free closed ones, resume paused. */
void rw_worker_flush(struct rw_worker *w);
/* True once a stopping worker has no connection left (or its deadline passed). */
bool rw_worker_done(struct rw_worker *w);
/* How long the driver may wait for events: 0 with work pending, else until the next timer. */
int rw_worker_timeout(struct rw_worker *w);
void rw_worker_wake(struct rw_worker *w);
/* An accepted connection on listener `li` (`direct`: `fd` is an index in io_uring's fixed-file
 * table); NULL when refused (the driver then closes `fd`). Runs rw_config.on_accept. */
struct rw_conn *rw_worker_accepted(struct rw_worker *w, unsigned li, int fd, bool direct);
void rw_worker_udp_input(struct rw_udp *u);
void rw_worker_close_listeners(struct rw_worker *w);
/* Worker 0's signalfd for SIGINT/SIGTERM/SIGHUP (fd or -errno), and what to do when it is readable. */
int rw_worker_signalfd(void);
void rw_worker_on_signalfd(struct rw_worker *w, int fd);
/* Runs every message in the worker's inbox, oldest first (drivers call it when woken). */
void rw_worker_run_inbox(struct rw_worker *w);

#endif
