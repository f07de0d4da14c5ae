/* Upstream connection pools: kept-alive outbound connections to one HOST:PORT, per worker,
 * bounded and idle-timed, so that a proxy or a cache in front of a database reuses connections
 * instead of dialling for every request. Every pool is sized at start; leasing a connection
 * never allocates. */
#ifndef RINGWRIGHT_UPSTREAM_H
#define RINGWRIGHT_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_server rw_server;
typedef struct rw_upstream rw_upstream;
typedef struct rw_upstream_req rw_upstream_req;

typedef struct rw_upstream_config {
  const char *hostport;  /* where to dial, as for rw_connect() */
  const rw_proto *proto; /* what its connections speak (declared with rw_server_use_proto) */
  const void *handlers;  /* their handlers; rw_conn_data() is the lease's rw_upstream_req */
  uint32_t max_conns;    /* per worker: connections open at once, leased, idle or dialling */
  uint32_t max_idle;     /* per worker: kept-alive connections waiting for a request */
  uint32_t idle_ms;      /* an idle connection closes after this long (0: only when full) */
  uint32_t connect_timeout_ms;
} rw_upstream_config;

/* Called once a request has a connection (err 0) or cannot have one (c NULL, -ECONNREFUSED,
 * -ETIMEDOUT, ...: the request is no longer pending). */
typedef void (*rw_upstream_ready_fn)(rw_upstream_req *r, rw_conn *c, int err);
/* The leased connection closed before it was released (`reason` as for rw_conn_on_close: a
 * reset, the peer's close, an error); it is no longer yours, nothing is to be released. */
typedef void (*rw_upstream_closed_fn)(rw_upstream_req *r, rw_conn *c, int reason);

/* A request for a connection, and then the lease: a struct you own (in a connection's user area,
 * say), so that waiting and leasing never allocate. */
struct rw_upstream_req {
  /* private */
  rw_upstream_req *next, *prev;
  rw_worker *w;
  rw_upstream *u;
  rw_upstream_ready_fn ready;
  rw_upstream_closed_fn closed;
  uint32_t slot; /* the pool entry leased or dialling for it */
  uint8_t state;
  /* yours */
  void *data;
};

/* Declares an upstream before rw_server_run() (its protocol too): each worker gets a pool of
 * cfg->max_conns entries for it. 0, -EINVAL (no hostport, proto or handlers, max_conns 0 or
 * max_idle above it), -EBUSY once the server runs, -ENOSPC past RW_MAX_UPSTREAMS. */
#define RW_MAX_UPSTREAMS 16
int rw_server_upstream(rw_server *s, const rw_upstream_config *cfg, rw_upstream **out);

/* Prepares `r`; `data` is left for you in r->data. */
void rw_upstream_req_init(rw_upstream_req *r, rw_upstream_ready_fn ready, rw_upstream_closed_fn closed,
                          void *data);

/* Asks worker `w`'s pool of `u` for a connection. 0 with *out set: a kept-alive one, leased to
 * `r` now (no callback). 0 with *out NULL: `ready` runs later, once a connection is dialled or,
 * with max_conns open, once one is released or closes. Otherwise -errno (-EBUSY: `r` is already
 * pending or leasing; rw_connect()'s errors). The most recently released idle connection goes
 * first; one the upstream closed while idle has left the pool already. */
int rw_upstream_acquire(rw_worker *w, rw_upstream *u, rw_upstream_req *r, rw_conn **out);

/* Gives up a pending request (its owner is going away): `ready` will not run. A dial started
 * for it goes on, for the next request or the idle list. Harmless when `r` is not pending. */
void rw_upstream_cancel(rw_upstream_req *r);

/* Ends the lease. With `reuse`, only once the connection's response is complete and nothing of
 * it is left unread: the connection goes to the next waiting request or the idle list (or
 * closes when max_idle are idle already). Without, it closes. Harmless when `r` leases
 * nothing. */
void rw_upstream_release(rw_upstream_req *r, bool reuse);

/* The connection `r` leases, or NULL. */
rw_conn *rw_upstream_conn(const rw_upstream_req *r);

/* Worker `w`'s figures for `u`: connections open (idle, leased, dialling), idle, dialled since
 * start and leases served by a kept-alive connection. */
typedef struct rw_upstream_stats {
  uint32_t open, idle;
  uint64_t dialled, reused;
} rw_upstream_stats;
void rw_upstream_stats_get(rw_worker *w, const rw_upstream *u, rw_upstream_stats *out);

#ifdef __cplusplus
}
#endif

#endif
