/* Large slots: a frame longer than an accumulator slot (a 512 MiB RESP value) is received into
 * one of the server's few large slots, shared by every worker. Their number bounds what long
 * frames can make resident however many workers there are; shared, any worker can take every
 * one, and a slot keeps its pages when it passes from one worker to another. A slot's pages are
 * resident while frames arrive in it and for a second after its last use (a fault per page for
 * every 512 MiB request would cost more than the copy), then go back to the kernel. The lock is
 * taken when a frame outgrows its accumulator slot and when it is done, never per receive. */
#include <errno.h>

#include "large.h"
#include "pool.h"
#include "worker.h"

#define LINGER_MS 1000

int rw_large_init(rw_server *s, uint32_t count, size_t size)
{
  struct rw_large *l = &s->large;
  if (pthread_mutex_init(&l->lock, NULL))
    return -ENOMEM;
  l->ready = true;
  l->idle_ms = rw_region_alloc(count * sizeof *l->idle_ms);
  if (!l->idle_ms || rw_pool_init_sparse(&l->pool, count, size) < 0)
    return -ENOMEM;
  return 0;
}

void rw_large_fini(rw_server *s)
{
  struct rw_large *l = &s->large;
  if (!l->ready)
    return;
  rw_region_free(l->idle_ms, l->pool.count * sizeof *l->idle_ms);
  rw_pool_fini(&l->pool);
  pthread_mutex_destroy(&l->lock);
  *l = (struct rw_large){0};
}

size_t rw_large_bytes(const rw_server *s)
{
  return rw_pool_bytes(&s->large.pool) + s->large.pool.count * sizeof *s->large.idle_ms;
}

uint32_t rw_large_get(struct rw_worker *w)
{
  struct rw_large *l = &w->srv->large;
  pthread_mutex_lock(&l->lock);
  uint32_t i = rw_pool_get(&l->pool);
  if (i != RW_NONE) {
    l->idle_ms[i] = 0; /* in use (its pages may still be resident: so much the better) */
  } else if (!w->large_waiting) {
    RW_STAT_ADD(w->stats.large_waits, 1);
    w->large_waiting = true;
    l->waiters++;
  }
  pthread_mutex_unlock(&l->lock);
  return i;
}

/* Every free slot idle for a second gives its pages back; checked again while any lingers. */
static void linger_done(rw_timer *t)
{
  struct rw_worker *w = t->data;
  struct rw_large *l = &w->srv->large;
  bool left = false;
  pthread_mutex_lock(&l->lock);
  for (uint32_t i = 0; i < l->pool.count; i++) {
    if (!l->idle_ms[i])
      continue;
    if (w->now_ms - l->idle_ms[i] >= LINGER_MS) {
      rw_pool_discard(&l->pool, i);
      l->idle_ms[i] = 0;
    } else {
      left = true;
    }
  }
  pthread_mutex_unlock(&l->lock);
  if (left)
    rw_timer_arm(w, t, LINGER_MS);
}

/* A worker whose connection waits for a slot sleeps until told: wake them all (contention
 * only). */
static void wake_others(struct rw_worker *w)
{
  rw_server *s = w->srv;
  for (unsigned i = 0; i < s->nworkers; i++)
    if (&s->workers[i] != w)
      rw_worker_wake(&s->workers[i]);
}

void rw_large_put(struct rw_worker *w, uint32_t i)
{
  struct rw_large *l = &w->srv->large;
  pthread_mutex_lock(&l->lock);
  l->idle_ms[i] = w->now_ms ? w->now_ms : 1;
  rw_pool_put(&l->pool, i);
  bool waited = l->waiters;
  pthread_mutex_unlock(&l->lock);
  if (!w->large_timer.fn)
    rw_timer_init(&w->large_timer, linger_done, w);
  if (!rw_timer_armed(&w->large_timer))
    rw_timer_arm(w, &w->large_timer, LINGER_MS);
  if (waited)
    wake_others(w);
}

void rw_large_tick(struct rw_worker *w)
{
  struct rw_large *l = &w->srv->large;
  pthread_mutex_lock(&l->lock);
  bool free = l->pool.nfree;
  if (free) {
    w->large_waiting = false;
    l->waiters--;
  }
  pthread_mutex_unlock(&l->lock);
  if (free)
    w->freed_resources = true; /* paused connections try again (and wait again if too late) */
}
