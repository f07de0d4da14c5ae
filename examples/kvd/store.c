/* The kvd store: shards of slab pages, a fixed hash table and per-class LRU lists (store.h). */
#include "store.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#define MIN_CHUNK 64
#define GROWTH 1.25
#define SHARD_MIN (4u << 20)

static size_t item_bytes(size_t klen, size_t vlen)
{
  return sizeof(kv_item) + klen + vlen;
}

/* Chosen at random when the store is made: which keys share a bucket cannot be known from
 * outside, so a client cannot pile its keys into one chain (hash flooding). */
static uint64_t hash_seed = 0x9e3779b97f4a7c15ull;

static uint64_t avalanche(uint64_t h)
{
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

/* Eight bytes a step (a 16-byte key is two multiplies, not sixteen), then murmur3's finaliser:
 * the high bits pick the shard and the low bits the bucket, so both must mix well. */
uint32_t kv_hash(rw_span key)
{
  const uint8_t *p = key.p;
  size_t n = key.len;
  uint64_t h = hash_seed ^ (n * 0x9e3779b97f4a7c15ull);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  uint64_t tail = 0;
  for (size_t i = 0; i < n; i++)
    tail |= (uint64_t)p[i] << (8 * i);
  h = avalanche(h ^ tail);
  return (uint32_t)h;
}

static void init_classes(kv_shard *sh)
{
  double size = MIN_CHUNK;
  unsigned n = 0;
  while (n < KV_MAX_CLASSES - 1 && size < KV_PAGE_SIZE / 2) {
    sh->cls[n++].size = ((uint32_t)size + 7) & ~7u;
    size *= GROWTH;
  }
  sh->cls[n++].size = KV_PAGE_SIZE; /* the largest: one item per page */
  sh->ncls = n;
}

static int shard_init(kv_shard *sh, unsigned id, unsigned nshards, uint8_t *mem, size_t bytes)
{
  *sh = (kv_shard){.id = id, .nshards = nshards, .locking = nshards > 1};
  /* About one bucket per 256 bytes of memory, a power of two, from the shard's own bytes. */
  size_t nb = 1;
  while (nb * 2 * 256 <= bytes)
    nb *= 2;
  sh->buckets = (kv_item **)mem;
  sh->bucket_mask = (uint32_t)nb - 1;
  /* Then the per-page tables (sized for as many pages as could fit), then the pages. */
  size_t maxpages = bytes / KV_PAGE_SIZE;
  sh->page_live = (uint32_t *)(mem + nb * sizeof(kv_item *));
  sh->page_cls = (uint8_t *)(sh->page_live + maxpages);
  size_t table = (nb * sizeof(kv_item *) + maxpages * 5 + 4095) & ~(size_t)4095;
  sh->pages = mem + table;
  sh->npages = (uint32_t)((bytes - table) / KV_PAGE_SIZE);
  init_classes(sh);
  return pthread_mutex_init(&sh->lock, NULL) ? -ENOMEM : 0;
}

int kv_store_create(size_t memory, unsigned nshards, enum kv_policy policy, kv_store *out_st)
{
  if (!nshards || memory / nshards < SHARD_MIN)
    return -EINVAL;
  size_t per = memory / nshards & ~(size_t)4095;
  uint64_t seed;
  if (getrandom(&seed, sizeof seed, 0) == sizeof seed)
    hash_seed = seed;
  *out_st = (kv_store){.nshards = nshards, .policy = policy, .memory = per * nshards};
  /* One mapping for everything; the kernel backs it as items arrive, never past `memory`. */
  uint8_t *mem = mmap(NULL, per * nshards, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    return -ENOMEM;
  out_st->shards = mmap(NULL, nshards * sizeof(kv_shard), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (out_st->shards == MAP_FAILED) {
    munmap(mem, per * nshards);
    return -ENOMEM;
  }
  for (unsigned i = 0; i < nshards; i++)
    if (shard_init(&out_st->shards[i], i, nshards, mem + (size_t)i * per, per) < 0)
      return -ENOMEM;
  return 0;
}

void kv_store_destroy(kv_store *st)
{
  if (!st->shards)
    return;
  for (unsigned i = 0; i < st->nshards; i++)
    pthread_mutex_destroy(&st->shards[i].lock);
  munmap(st->shards[0].buckets, st->memory);
  munmap(st->shards, st->nshards * sizeof(kv_shard));
  st->shards = NULL;
}

/* The high bits pick the shard; the low bits pick the bucket within it. */
static kv_shard *shard_of(const kv_store *st, uint32_t hash)
{
  return &st->shards[(uint64_t)(hash >> 16) * st->nshards >> 16];
}

void kv_prefetch_bucket(const kv_store *st, uint32_t hash)
{
  const kv_shard *sh = shard_of(st, hash);
  __builtin_prefetch(&sh->buckets[hash & sh->bucket_mask]);
}

void kv_prefetch_item(const kv_store *st, uint32_t hash)
{
  const kv_shard *sh = shard_of(st, hash);
  kv_item *it = __atomic_load_n(&sh->buckets[hash & sh->bucket_mask], __ATOMIC_RELAXED);
  if (it)
    __builtin_prefetch(it);
}

kv_shard *kv_lock(kv_store *st, uint32_t hash)
{
  kv_shard *sh = shard_of(st, hash);
  if (sh->locking)
    pthread_mutex_lock(&sh->lock);
  return sh;
}

void kv_unlock(kv_shard *sh)
{
  if (sh->locking)
    pthread_mutex_unlock(&sh->lock);
}

static uint32_t page_of(const kv_shard *sh, const void *p)
{
  return (uint32_t)(((const uint8_t *)p - sh->pages) / KV_PAGE_SIZE);
}

static void lru_unlink(struct kv_class *c, kv_item *it)
{
  if (it->prev)
    it->prev->next = it->next;
  else
    c->head = it->next;
  if (it->next)
    it->next->prev = it->prev;
  else
    c->tail = it->prev;
  it->prev = it->next = NULL;
}

static void lru_push(struct kv_class *c, kv_item *it)
{
  it->prev = NULL;
  it->next = c->head;
  if (c->head)
    c->head->prev = it;
  else
    c->tail = it;
  c->head = it;
}

static kv_item **bucket_of(kv_shard *sh, uint32_t hash)
{
  return &sh->buckets[hash & sh->bucket_mask];
}

static void hash_unlink(kv_shard *sh, kv_item *it)
{
  kv_item **pp = bucket_of(sh, it->hash);
  while (*pp != it)
    pp = &(*pp)->hnext;
  *pp = it->hnext;
}

static void chunk_free(kv_shard *sh, kv_item *it)
{
  struct kv_class *c = &sh->cls[it->cls];
  it->live = 0;
  it->next = c->free;
  c->free = it;
}

void kv_delete(kv_shard *sh, kv_item *it)
{
  struct kv_class *c = &sh->cls[it->cls];
  hash_unlink(sh, it);
  lru_unlink(c, it);
  c->items--;
  sh->page_live[page_of(sh, it)]--;
  sh->items--;
  sh->bytes -= it->klen + it->vlen;
  if (it->expire_ms)
    sh->expires--;
  chunk_free(sh, it);
}

void kv_set_expire(kv_shard *sh, kv_item *it, int64_t expire_ms)
{
  if (it->live)
    sh->expires += (expire_ms != 0) - (it->expire_ms != 0);
  it->expire_ms = expire_ms;
}

static bool is_dead(kv_store *st, const kv_item *it, int64_t now_ms)
{
  if (it->expire_ms && it->expire_ms <= now_ms)
    return true;
  int64_t flush = atomic_load_explicit(&st->flush_at_ms, memory_order_relaxed);
  return flush && flush <= now_ms && it->stored_ms <= flush;
}

kv_item *kv_find(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, int64_t now_ms)
{
  for (kv_item *it = *bucket_of(sh, hash); it; it = it->hnext) {
    if (it->hash != hash || it->klen != key.len || memcmp(it->data, key.p, key.len))
      continue;
    if (is_dead(st, it, now_ms)) {
      sh->expired++;
      kv_delete(sh, it);
      return NULL;
    }
    struct kv_class *c = &sh->cls[it->cls];
    if (c->head != it) {
      lru_unlink(c, it);
      lru_push(c, it);
    }
    return it;
  }
  return NULL;
}

static unsigned class_for(const kv_shard *sh, size_t bytes)
{
  unsigned lo = 0, hi = sh->ncls - 1;
  while (lo < hi) {
    unsigned mid = (lo + hi) / 2;
    if (sh->cls[mid].size >= bytes)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

static void page_carve(kv_shard *sh, uint32_t page, unsigned cls)
{
  struct kv_class *c = &sh->cls[cls];
  uint8_t *base = sh->pages + (size_t)page * KV_PAGE_SIZE;
  uint32_t n = KV_PAGE_SIZE / c->size;
  for (uint32_t i = n; i-- > 0;) {
    kv_item *it = (kv_item *)(base + (size_t)i * c->size);
    it->cls = (uint8_t)cls;
    chunk_free(sh, it);
  }
  sh->page_cls[page] = (uint8_t)cls;
  sh->page_live[page] = 0;
  c->pages++;
}

/* Takes `page` (all its chunks free) from its class and gives it to class `to`. */
static void page_move(kv_shard *sh, uint32_t page, unsigned to)
{
  struct kv_class *c = &sh->cls[sh->page_cls[page]];
  kv_item **pp = &c->free;
  while (*pp)
    if (page_of(sh, *pp) == page)
      *pp = (*pp)->next;
    else
      pp = &(*pp)->next;
  c->pages--;
  sh->reclaimed_pages++;
  page_carve(sh, page, to);
}

/* An item pushed out to make room: counted, told to the owner (kvd logs it), deleted. */
static void evict(kv_store *st, kv_shard *sh, kv_item *it)
{
  sh->evictions++;
  if (st->on_evict)
    st->on_evict(it);
  kv_delete(sh, it);
}

/* A page for class `to` from another class: one with no live item if there is one; else (when
 * eviction is on) the page holding the oldest item of the class with the most pages, its live
 * items evicted (never `keep`: then this fails). */
static bool page_reclaim(kv_store *st, kv_shard *sh, unsigned to, const kv_item *keep)
{
  for (uint32_t p = 0; p < sh->pages_used; p++)
    if (!sh->page_live[p] && sh->page_cls[p] != to) {
      page_move(sh, p, to);
      return true;
    }
  if (st->policy == KV_EVICT_NONE)
    return false;
  unsigned from = sh->ncls;
  for (unsigned i = 0; i < sh->ncls; i++)
    if (i != to && sh->cls[i].tail && (from == sh->ncls || sh->cls[i].pages > sh->cls[from].pages))
      from = i;
  if (from == sh->ncls)
    return false;
  struct kv_class *c = &sh->cls[from];
  uint32_t page = page_of(sh, c->tail);
  if (keep && page_of(sh, keep) == page)
    return false;
  uint8_t *base = sh->pages + (size_t)page * KV_PAGE_SIZE;
  for (uint32_t i = 0; i < KV_PAGE_SIZE / c->size; i++) {
    kv_item *it = (kv_item *)(base + (size_t)i * c->size);
    if (it->live)
      evict(st, sh, it);
  }
  page_move(sh, page, to);
  return true;
}

static kv_item *chunk_get(kv_store *st, kv_shard *sh, unsigned cls, const kv_item *keep)
{
  struct kv_class *c = &sh->cls[cls];
  for (int tries = 0; tries < 2; tries++) {
    if (c->free) {
      kv_item *it = c->free;
      c->free = it->next;
      return it;
    }
    if (sh->pages_used < sh->npages) {
      page_carve(sh, sh->pages_used++, cls);
      continue;
    }
    /* The least recently used of this class, unless that is the item being kept. */
    kv_item *victim = c->tail;
    if (victim && victim == keep)
      victim = victim->prev;
    if (victim && st->policy == KV_EVICT_LRU) {
      evict(st, sh, victim);
      continue;
    }
    if (!page_reclaim(st, sh, cls, keep))
      return NULL;
  }
  return NULL;
}

int kv_alloc(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, size_t vlen, const kv_item *keep,
             kv_item **out_it)
{
  size_t need = item_bytes(key.len, vlen);
  if (need > KV_PAGE_SIZE)
    return -E2BIG;
  unsigned cls = class_for(sh, need);
  kv_item *it = chunk_get(st, sh, cls, keep);
  if (!it)
    return -ENOMEM;
  *it = (kv_item){.hash = hash, .klen = (uint32_t)key.len, .vlen = (uint32_t)vlen, .cls = (uint8_t)cls};
  memcpy(it->data, key.p, key.len);
  *out_it = it;
  return 0;
}

void kv_discard(kv_shard *sh, kv_item *it)
{
  chunk_free(sh, it);
}

void kv_link(kv_shard *sh, kv_item *it, int64_t now_ms)
{
  kv_item **pp = bucket_of(sh, it->hash);
  for (kv_item *old = *pp; old; old = old->hnext)
    if (old->hash == it->hash && old->klen == it->klen && !memcmp(old->data, it->data, it->klen)) {
      kv_delete(sh, old);
      break;
    }
  it->hnext = *pp;
  *pp = it;
  it->live = 1;
  it->stored_ms = now_ms;
  /* Unique across shards: the shard's counter, interleaved by shard number. */
  it->cas = ++sh->cas_next * sh->nshards + sh->id;
  struct kv_class *c = &sh->cls[it->cls];
  lru_push(c, it);
  c->items++;
  sh->page_live[page_of(sh, it)]++;
  sh->items++;
  sh->bytes += it->klen + it->vlen;
  if (it->expire_ms)
    sh->expires++;
}

int kv_put(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, rw_span a, rw_span b,
           uint32_t flags, int64_t expire_ms, const kv_item *keep, int64_t now_ms, kv_item **out_it)
{
  kv_item *it;
  int rc = kv_alloc(st, sh, key, hash, a.len + b.len, keep, &it);
  if (rc < 0)
    return rc;
  if (a.len)
    memcpy(kv_value(it), a.p, a.len);
  if (b.len)
    memcpy(kv_value(it) + a.len, b.p, b.len);
  it->flags = flags;
  it->expire_ms = expire_ms;
  kv_link(sh, it, now_ms);
  if (out_it)
    *out_it = it;
  return 0;
}

void kv_clear(kv_shard *sh)
{
  for (uint32_t b = 0; b <= sh->bucket_mask; b++)
    while (sh->buckets[b])
      kv_delete(sh, sh->buckets[b]);
}

unsigned kv_sweep(kv_store *st, kv_shard *sh, unsigned buckets, int64_t now_ms)
{
  unsigned removed = 0;
  for (unsigned i = 0; i < buckets; i++) {
    kv_item **pp = &sh->buckets[sh->sweep_pos++ & sh->bucket_mask];
    while (*pp) {
      kv_item *it = *pp;
      if (is_dead(st, it, now_ms)) {
        sh->expired++;
        kv_delete(sh, it); /* unlinks *pp: look at the same place again */
        removed++;
      } else {
        pp = &it->hnext;
      }
    }
  }
  return removed;
}

void kv_flush(kv_store *st)
{
  for (unsigned i = 0; i < st->nshards; i++) {
    kv_shard *sh = &st->shards[i];
    if (sh->locking)
      pthread_mutex_lock(&sh->lock);
    kv_clear(sh);
    kv_unlock(sh);
  }
}

void kv_totals(kv_store *st, struct kv_totals *out)
{
  *out = (struct kv_totals){0};
  for (unsigned i = 0; i < st->nshards; i++) {
    kv_shard *sh = &st->shards[i];
    if (sh->locking)
      pthread_mutex_lock(&sh->lock);
    out->items += sh->items;
    out->bytes += sh->bytes;
    out->expires += sh->expires;
    out->evictions += sh->evictions;
    out->expired += sh->expired;
    out->reclaimed_pages += sh->reclaimed_pages;
    kv_unlock(sh);
  }
}
