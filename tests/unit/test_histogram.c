/* Log-linear histograms (src/core/histogram.c, include/ringwright/histogram.h), included
 * whole: bucket bounds that tile the range without gaps or overlap at the stated resolution,
 * and quantiles and cumulative counts that agree with a sorted copy of random values. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../../src/core/histogram.c"

static rw_histogram h; /* (32 KiB: off the stack) */

Test(histogram, buckets_tile_the_range)
{
  cr_assert_eq(rw_hist_lower(0), 0);
  for (unsigned i = 0; i + 1 < RW_HIST_BUCKETS; i++) {
    uint64_t lo = rw_hist_lower(i), hi = rw_hist_upper(i);
    cr_assert_lt(lo, hi, "bucket %u is empty", i);
    cr_assert_eq(hi, rw_hist_lower(i + 1), "a gap or overlap after bucket %u", i);
    cr_assert_eq(rw_hist_index(lo), i, "%llu is not in its bucket %u", (unsigned long long)lo, i);
    cr_assert_eq(rw_hist_index(hi - 1), i, "%llu is not in its bucket %u", (unsigned long long)(hi - 1), i);
    /* Two significant figures: a bucket is at most 1/128 of its values wide (exact below 256). */
    cr_assert(lo < 256 ? hi - lo == 1 : (hi - lo) * 128 <= lo, "bucket %u [%llu, %llu) too wide", i,
              (unsigned long long)lo, (unsigned long long)hi);
  }
  /* 100 s in nanoseconds is inside the range; everything past 2^37 shares the last bucket. */
  cr_assert_lt(rw_hist_index(100000000000ull), RW_HIST_BUCKETS - 1);
  cr_assert_eq(rw_hist_index(1ull << 37), RW_HIST_BUCKETS - 1);
  cr_assert_eq(rw_hist_index(UINT64_MAX), RW_HIST_BUCKETS - 1);
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* A value spread over 1 ns .. 100 s: a random magnitude, then a random mantissa. */
static uint64_t draw(void)
{
  int bits = rand() % 37;
  uint64_t v = ((uint64_t)rand() << 31 | (uint64_t)rand()) & ((1ull << bits) - 1);
  return v | 1ull << bits;
}

Test(histogram, quantiles_match_a_sorted_reference)
{
  enum { N = 20000 };
  static uint64_t v[N];
  srand(24);
  memset(&h, 0, sizeof h);
  uint64_t sum = 0;
  for (int i = 0; i < N; i++) {
    v[i] = draw();
    sum += v[i];
    rw_hist_record(&h, v[i]);
  }
  cr_assert_eq(h.count, N);
  cr_assert_eq(h.sum, sum);
  qsort(v, N, sizeof *v, cmp_u64);
  static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1};
  for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
    /* Nearest rank: the ceil(q N)-th smallest value (the first for q = 0). */
    size_t rank = (size_t)(qs[k] * N + 0.999999);
    uint64_t want = v[rank ? rank - 1 : 0], got = rw_hist_quantile(&h, qs[k]);
    /* The histogram answers with the top of the value's bucket: never below it, and above it
     * by less than the bucket's width. */
    cr_assert_geq(got, want, "q %g: %llu < %llu", qs[k], (unsigned long long)got, (unsigned long long)want);
    cr_assert_leq(got - want, want / 128, "q %g: %llu vs %llu", qs[k], (unsigned long long)got,
                  (unsigned long long)want);
  }
  /* Cumulative counts at bucket bounds are exact: values below the bound, and no others. */
  for (int k = 0; k < 200; k++) {
    unsigned i = (unsigned)rand() % (RW_HIST_BUCKETS - 1);
    uint64_t bound = rw_hist_upper(i) - 1;
    size_t below = 0;
    while (below < N && v[below] <= bound)
      below++;
    cr_assert_eq(rw_hist_count_le(&h, bound), below, "values <= %llu", (unsigned long long)bound);
  }
}

Test(histogram, merge_adds_workers)
{
  static rw_histogram a, b, m;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&m, 0, sizeof m);
  for (uint64_t i = 1; i <= 1000; i++)
    rw_hist_record(i % 2 ? &a : &b, i * 1000);
  rw_hist_merge(&m, &a);
  rw_hist_merge(&m, &b);
  cr_assert_eq(m.count, 1000);
  cr_assert_eq(m.sum, 500500ull * 1000);
  uint64_t median = rw_hist_quantile(&m, 0.5);
  cr_assert(median >= 500000 && median <= 500000 + 500000 / 128, "median %llu", (unsigned long long)median);
  cr_assert_eq(rw_hist_quantile(&(rw_histogram){0}, 0.5), 0, "an empty histogram has no quantile");
}
