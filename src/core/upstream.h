/* Internal: upstream connection pools (upstream.c): what rw_server_upstream() declares, and each
 * worker's pool for it. */
#ifndef RW_UPSTREAM_H
#define RW_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <ringwright/timer.h>
#include <ringwright/upstream.h>

struct rw_worker;

struct rw_upstream {
  rw_upstream_config cfg;
  char hostport[256];
  unsigned idx; /* its pool in each worker's array */
};

/* One connection of a pool, from its dial to its close. */
struct rw_upstream_entry {
  struct rw_upstream_pool *pool;
  rw_handle h;
  rw_timer idle_timer;
  rw_upstream_req *req; /* the lease, or the request a dial is for */
  uint32_t idle_prev, idle_next;
  uint8_t state;
};

struct rw_upstream_pool {
  struct rw_worker *w;
  const struct rw_upstream *u;
  struct rw_upstream_entry *e; /* u->cfg.max_conns of them */
  uint32_t *free, nfree;
  uint32_t idle_head, nidle; /* most recently released first */
  rw_upstream_req *wait_head, *wait_tail;
  uint64_t dialled, reused;
};

/* Each worker's pools, one per declared upstream, sized at start. */
int rw_upstreams_init(struct rw_worker *w);
size_t rw_upstreams_budget(const struct rw_worker *w);
void rw_upstreams_fini(struct rw_worker *w);

#endif
