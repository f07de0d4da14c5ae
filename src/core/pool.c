/* Fixed pools. Memory comes from anonymous mappings so that a pool sized for the worst case
 * costs address space at start and resident memory only as it is used; the free list is a
 * separate index stack so that building it does not touch the items themselves. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pool.h"

void *rw_region_alloc(size_t size)
{
  void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void rw_region_free(void *p, size_t size)
{
  if (p)
    munmap(p, size ? size : 1);
}

static int pool_init(struct rw_pool *p, uint32_t count, size_t item_size, int flags)
{
  p->count = count;
  p->item_size = item_size;
  size_t bytes = (size_t)count * item_size;
  p->mem = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
  if (p->mem == MAP_FAILED)
    p->mem = NULL;
  p->free = rw_region_alloc((size_t)count * sizeof *p->free);
  if (!p->mem || !p->free) {
    rw_pool_fini(p);
    return -ENOMEM;
  }
  /* Lowest index on top: the first items used are the first pages touched. */
  for (uint32_t i = 0; i < count; i++)
    p->free[i] = count - 1 - i;
  p->nfree = count;
  return 0;
}

int rw_pool_init(struct rw_pool *p, uint32_t count, size_t item_size)
{
  return pool_init(p, count, item_size, 0);
}

int rw_pool_init_sparse(struct rw_pool *p, uint32_t count, size_t item_size)
{
  return pool_init(p, count, item_size, MAP_NORESERVE);
}

/* The item's pages go back to the kernel; it reads as zeros when touched again. */
void rw_pool_discard(struct rw_pool *p, uint32_t i)
{
  madvise(rw_pool_at(p, i), p->item_size, MADV_DONTNEED);
}

void rw_pool_fini(struct rw_pool *p)
{
  rw_region_free(p->mem, (size_t)p->count * p->item_size);
  rw_region_free(p->free, (size_t)p->count * sizeof *p->free);
  p->mem = NULL;
  p->free = NULL;
  p->nfree = p->count = 0;
}

size_t rw_pool_bytes(const struct rw_pool *p)
{
  return (size_t)p->count * (p->item_size + sizeof *p->free);
}
