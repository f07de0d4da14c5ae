/* Latency histograms: log-linear buckets in fixed memory (like HdrHistogram), two significant
 * figures from 1 ns to 137 s. Values below 256 have a bucket each; above, every power of two
 * is split into 128 equal buckets, so a bucket is at most 1/128 (0.8%) of its values wide.
 * The runtime keeps one per command per worker (rw_server_command_time in stats.h); an
 * application may keep its own. */
#ifndef RINGWRIGHT_HISTOGRAM_H
#define RINGWRIGHT_HISTOGRAM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RW_HIST_SUB_BITS 7
#define RW_HIST_MAX_BIT 36 /* values from 2^37 on share the last bucket */
#define RW_HIST_BUCKETS ((RW_HIST_MAX_BIT - RW_HIST_SUB_BITS + 2) << RW_HIST_SUB_BITS)

typedef struct rw_histogram {
  uint64_t count, sum; /* values recorded, and their total */
  uint64_t bucket[RW_HIST_BUCKETS];
} rw_histogram;

/* The bucket that holds `v`. */
static inline unsigned rw_hist_index(uint64_t v)
{
  if (v < (2u << RW_HIST_SUB_BITS))
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  if (msb > RW_HIST_MAX_BIT)
    return RW_HIST_BUCKETS - 1;
  unsigned shift = msb - RW_HIST_SUB_BITS;
  return (shift << RW_HIST_SUB_BITS) + (unsigned)(v >> shift);
}

/* Adds one value. Only the owner writes a histogram; the stores are relaxed atomics (plain
 * moves), so that other threads may read it while it is written. */
static inline void rw_hist_record(rw_histogram *h, uint64_t v)
{
  uint64_t *b = &h->bucket[rw_hist_index(v)];
  __atomic_store_n(b, *b + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&h->count, h->count + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&h->sum, h->sum + v, __ATOMIC_RELAXED);
}

/* The smallest value of bucket `i`, and the smallest of the next (its bound, exclusive). */
uint64_t rw_hist_lower(unsigned i);
uint64_t rw_hist_upper(unsigned i);
/* Adds `src` into `dst` (read with relaxed loads: `src` may be written meanwhile). */
void rw_hist_merge(rw_histogram *dst, const rw_histogram *src);
/* Values recorded in the buckets up to the one holding `v`: those <= v, to the bucket's width. */
uint64_t rw_hist_count_le(const rw_histogram *h, uint64_t v);
/* The value at quantile q (0..1): the largest value of the bucket that holds it; 0 when empty. */
uint64_t rw_hist_quantile(const rw_histogram *h, double q);

#ifdef __cplusplus
}
#endif

#endif
