/* Log-linear histograms (include/ringwright/histogram.h): the reading side. Recording is
 * inline in the header: an index from the value's leading bit, two stores. */
#include <ringwright/histogram.h>

uint64_t rw_hist_lower(unsigned i)
{
  if (i < (2u << RW_HIST_SUB_BITS))
    return i;
  unsigned shift = (i >> RW_HIST_SUB_BITS) - 1;
  return (uint64_t)(i - (shift << RW_HIST_SUB_BITS)) << shift;
}

uint64_t rw_hist_upper(unsigned i)
{
  if (i < (2u << RW_HIST_SUB_BITS))
    return i + 1;
  unsigned shift = (i >> RW_HIST_SUB_BITS) - 1;
  return (uint64_t)(i - (shift << RW_HIST_SUB_BITS) + 1) << shift;
}

static uint64_t load(const uint64_t *p)
{
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void rw_hist_merge(rw_histogram *dst, const rw_histogram *src)
{
  /* (The sum first: read while being written, it may then fall behind the buckets but never
   * get ahead of them.) */
  dst->sum += load(&src->sum);
  uint64_t n = 0;
  for (unsigned i = 0; i < RW_HIST_BUCKETS; i++) {
    uint64_t b = load(&src->bucket[i]);
    dst->bucket[i] += b;
    n += b;
  }
  /* The count from the buckets themselves: a reader's count then always matches them. */
  dst->count += n;
}

uint64_t rw_hist_count_le(const rw_histogram *h, uint64_t v)
{
  unsigned last = rw_hist_index(v);
  uint64_t n = 0;
  for (unsigned i = 0; i <= last; i++)
    n += h->bucket[i];
  return n;
}

uint64_t rw_hist_quantile(const rw_histogram *h, double q)
{
  uint64_t total = 0;
  for (unsigned i = 0; i < RW_HIST_BUCKETS; i++)
    total += h->bucket[i];
  if (!total)
    return 0;
  q = q < 0 ? 0 : q > 1 ? 1 : q;
  /* Nearest rank: the smallest value with at least q of all values at or below it. */
  double r = q * (double)total;
  uint64_t rank = (uint64_t)r;
  if ((double)rank < r || rank < 1)
    rank++;
  uint64_t seen = 0;
  for (unsigned i = 0; i < RW_HIST_BUCKETS; i++) {
    seen += h->bucket[i];
    if (seen >= rank)
      return rw_hist_upper(i) - 1;
  }
  return rw_hist_upper(RW_HIST_BUCKETS - 1) - 1;
}
