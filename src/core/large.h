/* Internal: the server's large slots (large.c), shared by every worker, for frames longer than
 * an accumulator slot. */
#ifndef RW_LARGE_H
#define RW_LARGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ringwright/server.h>

#include "pool.h"

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

#endif
