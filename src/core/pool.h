/* Internal: fixed pools of equal-sized items (pool.c), an index stack for O(1) get/put, and
 * the anonymous regions they live in. Every pool of the runtime (slots, chunks) is one of these;
 * the thread pool is the offload (offload.h). */
#ifndef RW_POOL_H
#define RW_POOL_H

#include <stddef.h>
#include <stdint.h>

/* No item, no slot, no chunk: the end of a list. */
#define RW_NONE UINT32_MAX

struct rw_pool {
  uint8_t *mem;
  uint32_t *free;
  uint32_t nfree, count;
  size_t item_size;
};
int rw_pool_init(struct rw_pool *p, uint32_t count, size_t item_size);
/* The same without reserving memory for the items (MAP_NORESERVE): for large items that are
 * made resident only while used and given back with rw_pool_discard(). */
int rw_pool_init_sparse(struct rw_pool *p, uint32_t count, size_t item_size);
void rw_pool_discard(struct rw_pool *p, uint32_t i);
void rw_pool_fini(struct rw_pool *p);
static inline uint32_t rw_pool_get(struct rw_pool *p)
{
  return p->nfree ? p->free[--p->nfree] : RW_NONE;
}
static inline void rw_pool_put(struct rw_pool *p, uint32_t i)
{
  p->free[p->nfree++] = i;
}
static inline uint8_t *rw_pool_at(const struct rw_pool *p, uint32_t i)
{
  return p->mem + (size_t)i * p->item_size;
}
size_t rw_pool_bytes(const struct rw_pool *p);
/* Anonymous memory that is only made resident when touched; NULL on failure. */
void *rw_region_alloc(size_t size);
void rw_region_free(void *p, size_t size);

#endif
