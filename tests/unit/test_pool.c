/* Fixed pools (src/core/pool.c), included whole: every item handed out once until it comes
 * back, exhaustion answered with RW_NONE, items that do not overlap, and sparse pools that make
 * only touched items resident and give discarded ones back as zeros. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../src/core/pool.c"

Test(pool, exhaustion_and_free_list)
{
  struct rw_pool p;
  cr_assert_eq(rw_pool_init(&p, 100, 24), 0);
  cr_assert_eq(rw_pool_bytes(&p), 100 * (24 + sizeof(uint32_t)));
  bool used[100] = {0};
  for (uint32_t k = 0; k < 100; k++) {
    uint32_t i = rw_pool_get(&p);
    cr_assert_eq(i, k, "lowest index first: the first pages used are the first touched");
    used[i] = true;
    memset(rw_pool_at(&p, i), (int)i, 24);
  }
  cr_assert_eq(rw_pool_get(&p), RW_NONE);
  cr_assert_eq(rw_pool_get(&p), RW_NONE, "still dry, and the count does not wrap");
  for (uint32_t i = 0; i < 100; i++)
    for (int b = 0; b < 24; b++)
      cr_assert_eq(rw_pool_at(&p, i)[b], (uint8_t)i, "item %u overlaps another", i);
  /* Random give-back and take: the free list never holds an item twice or loses one. */
  srand(5);
  uint32_t nused = 100;
  for (int round = 0; round < 100000; round++) {
    uint32_t i = (uint32_t)rand() % 100;
    if (used[i]) {
      rw_pool_put(&p, i);
      used[i] = false;
      nused--;
    } else {
      uint32_t j = rw_pool_get(&p);
      cr_assert_neq(j, RW_NONE, "%u items used of 100", nused);
      cr_assert_not(used[j], "item %u handed out twice", j);
      used[j] = true;
      nused++;
    }
    cr_assert_eq(p.nfree + nused, 100);
  }
  rw_pool_fini(&p);
  cr_assert_null(p.mem);
  cr_assert_eq(p.count, 0);
}

Test(pool, last_in_first_out)
{
  struct rw_pool p;
  cr_assert_eq(rw_pool_init(&p, 8, 16), 0);
  uint32_t a = rw_pool_get(&p), b = rw_pool_get(&p);
  rw_pool_put(&p, a);
  rw_pool_put(&p, b);
  cr_assert_eq(rw_pool_get(&p), b, "the warmest item goes out first");
  cr_assert_eq(rw_pool_get(&p), a);
  rw_pool_fini(&p);
}

Test(pool, empty_pool)
{
  struct rw_pool p;
  cr_assert_eq(rw_pool_init(&p, 0, 64), 0);
  cr_assert_eq(rw_pool_get(&p), RW_NONE);
  rw_pool_fini(&p);
}

/* Resident pages of [p, p + len), from mincore. */
static size_t resident(const void *p, size_t len)
{
  size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = (len + pg - 1) / pg, r = 0;
  unsigned char *v = malloc(n);
  cr_assert_eq(mincore((void *)p, len, v), 0);
  for (size_t i = 0; i < n; i++)
    r += v[i] & 1;
  free(v);
  return r;
}

Test(pool, sparse)
{
  struct rw_pool p;
  size_t item = 1 << 20; /* 1 MiB items, 64 of them: address space, not memory */
  cr_assert_eq(rw_pool_init_sparse(&p, 64, item), 0);
  cr_assert_eq(resident(p.mem, 64 * item), 0);
  uint32_t i = rw_pool_get(&p);
  memset(rw_pool_at(&p, i), 0xab, item);
  cr_assert_eq(resident(p.mem, 64 * item), item / (size_t)sysconf(_SC_PAGESIZE), "only the item touched");
  rw_pool_discard(&p, i);
  cr_assert_eq(resident(rw_pool_at(&p, i), item), 0, "discarded pages go back");
  for (size_t b = 0; b < item; b += 4096)
    cr_assert_eq(rw_pool_at(&p, i)[b], 0, "a discarded item reads as zeros");
  rw_pool_put(&p, i);
  rw_pool_fini(&p);
}
