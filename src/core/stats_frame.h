/* Internal: the per-frame accounting (conn.c's only, inline: it runs for every frame). */
#ifndef RW_STATS_FRAME_H
#define RW_STATS_FRAME_H

#include <ringwright/histogram.h>

#include "conn.h"
#include "stats.h"
#include "worker.h"

/* A frame of command `cmd` was parsed and dispatched from `t0` (ticks) until now: its service
 * time goes into its command's histogram (the application's name for it, when its handler
 * gave one). Returns the clock now: the next frame's start. (Its count is the buckets' sum:
 * one store less per frame.) */
/* rw_hist_record() without the count, which readers take from the buckets (rw_hist_merge). */
static inline void rw_hist_add(rw_histogram *h, uint64_t v)
{
  uint64_t *b = &h->bucket[rw_hist_index(v)];
  __atomic_store_n(b, *b + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&h->sum, h->sum + v, __ATOMIC_RELAXED);
}

static inline uint64_t rw_stats_frame(struct rw_conn *c, int cmd, uint64_t t0)
{
  struct rw_proto_stats *ps = c->ps;
  unsigned i = (unsigned)cmd, as = c->count_as;
  if (as != UINT16_MAX) {
    c->count_as = UINT16_MAX;
    if (as < ps->nnames)
      i = ps->nspec + as;
  }
  uint64_t now = rw_ticks();
  rw_hist_add(&ps->cmd[i], rw_ticks_ns(now - t0));
  return now;
}

/* The frame will be dispatched again (its handler said -EAGAIN): it counts then. */
static inline uint64_t rw_stats_deferred(struct rw_conn *c)
{
  c->count_as = UINT16_MAX;
  return 0;
}

#endif
