/* The kvd store: shards of slab pages, a fixed hash table and per-class LRU lists (store.h). */
#include "store.h"

#include <assert.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#define MIN_CHUNK 64
#define KV_BUMP_MS 1000
#define SHARD_MIN (4u << 20)
#define TABLE_MIN 64u   /* buckets of a fresh table */
#define ITEM_MIN 64u    /* the fewest bytes an item takes: bounds the table */
#define MOVE_BUCKETS 4u /* tab[0] buckets a write moves while the table grows */

static_assert(sizeof(kv_item) == 56, "the item header is 56 bytes");

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

uint64_t kv_hash_seed(void)
{
  return hash_seed;
}

void kv_set_hash_seed(uint64_t seed)
{
  hash_seed = seed;
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

/* Chunks 8 bytes apart up to 128 bytes, then about 1/16 apart (a multiple of 8 each): an item
 * wastes under 6% of its chunk on average, where 1.25x steps wasted up to 20%. */
static void init_classes(kv_shard *sh)
{
  uint32_t size = MIN_CHUNK;
  unsigned n = 0;
  while (n < KV_MAX_CLASSES - 2 && size < KV_PAGE_SIZE / 2) {
    sh->cls[n++].size = size;
    uint32_t step = (size / 16 + 7) & ~7u;
    size += step > 8 ? step : 8;
  }
  sh->cls[n++].size = KV_PAGE_SIZE; /* the largest: one item per page */
  sh->ncls = n;                     /* cls[n]: runs (size 0) */
}

/* The largest table a shard of `bytes` needs: one bucket per smallest item it could hold. */
static uint32_t table_max(size_t bytes)
{
  size_t nb = TABLE_MIN;
  while (nb * 2 * ITEM_MIN <= bytes && nb * 2 <= (size_t)1 << 31)
    nb *= 2;
  return (uint32_t)nb;
}

static int shard_init(kv_shard *sh, unsigned id, const kv_store *st, uint8_t *mem, size_t bytes,
                      kv_ref *tables)
{
  *sh = (kv_shard){
      .id = id, .nshards = st->nshards, .locking = st->nshards > 1, .flush_at_ms = &st->flush_at_ms};
  uint32_t nb = table_max(bytes);
  sh->t = (struct kv_table){.tab = {tables, tables + nb},
                            .mask = {TABLE_MIN - 1},
                            .max_mask = nb - 1,
                            .region = {tables, tables + nb}};
  /* The per-page tables (sized for as many pages as could fit), then the pages. */
  size_t maxpages = bytes / KV_PAGE_SIZE;
  sh->page_live = (uint32_t *)mem;
  sh->page_pins = sh->page_live + maxpages;
  sh->page_head = sh->page_pins + maxpages;
  sh->page_cost = sh->page_head + maxpages;
  sh->page_cls = (uint8_t *)(sh->page_cost + maxpages);
  size_t table = (maxpages * 17 + 4095) & ~(size_t)4095;
  sh->pages = mem + table;
  sh->npages = (uint32_t)((bytes - table) / KV_PAGE_SIZE);
  sh->free_pages = sh->npages;
  memset(sh->page_cls, KV_PAGE_FREE, sh->npages);
  init_classes(sh);
  return pthread_mutex_init(&sh->lock, NULL) ? -ENOMEM : 0;
}

/* Each shard's two table regions, after one another: address space only until used. */
static size_t tables_bytes(const kv_store *st)
{
  return (size_t)st->nshards * 2 * table_max(st->memory / st->nshards) * sizeof(kv_ref);
}

int kv_store_create(size_t memory, unsigned nshards, enum kv_policy policy, kv_store *out_st)
{
  if (!nshards || memory / nshards < SHARD_MIN || memory / nshards > KV_SHARD_MAX)
    return -EINVAL;
  size_t per = memory / nshards & ~(size_t)4095;
  uint64_t seed;
  if (getrandom(&seed, sizeof seed, 0) == sizeof seed)
    hash_seed = seed;
  *out_st = (kv_store){.nshards = nshards, .policy = policy, .memory = per * nshards};
  /* One mapping for the pages, one for the hash tables; the kernel backs them as items arrive,
   * the pages never past `memory`. */
  uint8_t *mem = mmap(NULL, per * nshards, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    return -ENOMEM;
  kv_ref *tables = mmap(NULL, tables_bytes(out_st), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  out_st->shards =
      mmap(NULL, nshards * sizeof(kv_shard), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (tables == MAP_FAILED || out_st->shards == MAP_FAILED) {
    munmap(mem, per * nshards);
    if (tables != MAP_FAILED)
      munmap(tables, tables_bytes(out_st));
    return -ENOMEM;
  }
  uint32_t nb = table_max(per);
  for (unsigned i = 0; i < nshards; i++)
    if (shard_init(&out_st->shards[i], i, out_st, mem + (size_t)i * per, per, tables + (size_t)i * 2 * nb) <
        0)
      return -ENOMEM;
  return 0;
}

void kv_store_destroy(kv_store *st)
{
  if (!st->shards)
    return;
  for (unsigned i = 0; i < st->nshards; i++)
    pthread_mutex_destroy(&st->shards[i].lock);
  munmap(st->shards[0].page_live, st->memory);
  munmap(st->shards[0].t.region[0], tables_bytes(st));
  munmap(st->shards, st->nshards * sizeof(kv_shard));
  st->shards = NULL;
}

/* The high bits pick the shard; the low bits pick the bucket within it. */
kv_shard *kv_shard_of(const kv_store *st, uint32_t hash)
{
  return &st->shards[(uint64_t)(hash >> 16) * st->nshards >> 16];
}

/* Where a key's chain starts: tab[0], or tab[1] once its tab[0] bucket has moved. */
static kv_ref *bucket_at(const struct kv_table *t, uint32_t hash)
{
  uint32_t b = hash & t->mask[0];
  return t->growing && b < t->moved ? &t->tab[1][hash & t->mask[1]] : &t->tab[0][b];
}

static kv_item *at_ref(const kv_shard *sh, kv_ref r)
{
  return r ? (kv_item *)(sh->pages + ((size_t)(r - 1) << 3)) : NULL;
}

static kv_ref ref_of(const kv_shard *sh, const kv_item *it)
{
  return it ? (kv_ref)(((size_t)((const uint8_t *)it - sh->pages) >> 3) + 1) : 0;
}

void kv_prefetch_bucket(const kv_store *st, uint32_t hash)
{
  const kv_shard *sh = kv_shard_of(st, hash);
  __builtin_prefetch(bucket_at(&sh->t, hash));
}

/* Unlocked: the table may be growing under it, so what it reads is only a hint; whatever mix
 * of old and new fields it sees, the bucket is inside a region (both tables always point at
 * one, no mask exceeds the regions'), and the ref is checked to be inside the pages. */
void kv_prefetch_item(const kv_store *st, uint32_t hash)
{
  const kv_shard *sh = kv_shard_of(st, hash);
  kv_ref r = __atomic_load_n(bucket_at(&sh->t, hash), __ATOMIC_RELAXED);
  if (r && r <= (kv_ref)((size_t)sh->npages * KV_PAGE_SIZE >> 3))
    __builtin_prefetch(at_ref(sh, r));
}

kv_shard *kv_lock(kv_store *st, uint32_t hash)
{
  kv_shard *sh = kv_shard_of(st, hash);
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

static void lru_unlink(kv_shard *sh, struct kv_class *c, kv_item *it)
{
  kv_item *prev = at_ref(sh, it->prev), *next = at_ref(sh, it->next);
  if (prev)
    prev->next = it->next;
  else
    c->head = next;
  if (next)
    next->prev = it->prev;
  else
    c->tail = prev;
  it->prev = it->next = 0;
}

static void lru_push(kv_shard *sh, struct kv_class *c, kv_item *it)
{
  it->prev = 0;
  it->next = ref_of(sh, c->head);
  if (c->head)
    c->head->prev = ref_of(sh, it);
  else
    c->tail = it;
  c->head = it;
}

static void hash_unlink(kv_shard *sh, kv_item *it)
{
  kv_ref *pp = bucket_at(&sh->t, it->hash), r = ref_of(sh, it);
  while (*pp != r)
    pp = &at_ref(sh, *pp)->hnext;
  *pp = it->hnext;
}

/* Moves up to `n` of tab[0]'s buckets to tab[1] (and empty ones up to 8n); the last one moved,
 * tab[1] is the table and tab[0]'s region goes back to the kernel. */
static void table_move(kv_shard *sh, unsigned n)
{
  struct kv_table *t = &sh->t;
  for (unsigned empty = 8 * n; t->growing && n && empty; t->moved++) {
    if (t->moved > t->mask[0]) {
      madvise(t->tab[0], ((size_t)t->mask[0] + 1) * sizeof(kv_ref), MADV_DONTNEED);
      t->tab[0] = t->tab[1];
      t->mask[0] = t->mask[1];
      t->growing = false;
      t->moved = 0;
      return;
    }
    kv_ref r = t->tab[0][t->moved];
    r ? n-- : empty--;
    while (r) {
      kv_item *it = at_ref(sh, r);
      r = it->hnext;
      kv_ref *to = &t->tab[1][it->hash & t->mask[1]];
      it->hnext = *to;
      *to = ref_of(sh, it);
    }
    t->tab[0][t->moved] = 0;
  }
}

/* More items than buckets: tab[1] twice as large, in the region tab[0] is not in (zeros). */
static void table_grow(kv_shard *sh)
{
  struct kv_table *t = &sh->t;
  if (t->growing || sh->items <= t->mask[0] || t->mask[0] >= t->max_mask)
    return;
  t->tab[1] = t->tab[0] == t->region[0] ? t->region[1] : t->region[0];
  t->mask[1] = t->mask[0] * 2 + 1;
  t->moved = 0;
  t->growing = true;
}

/* An empty shard's table back to its first size, the rest of both regions to the kernel. */
static void table_reset(kv_shard *sh)
{
  struct kv_table *t = &sh->t;
  size_t bytes = ((size_t)t->max_mask + 1) * sizeof(kv_ref);
  madvise(t->region[0], bytes, MADV_DONTNEED);
  madvise(t->region[1], bytes, MADV_DONTNEED);
  t->tab[0] = t->region[0];
  t->mask[0] = TABLE_MIN - 1;
  t->growing = false;
  t->moved = 0;
}

static void chunk_free(kv_shard *sh, kv_item *it)
{
  struct kv_class *c = &sh->cls[it->cls];
  it->live = 0;
  it->next = ref_of(sh, c->free);
  c->free = it;
}

static bool is_run(const kv_shard *sh, const kv_item *it)
{
  return it->cls == sh->ncls;
}

static uint32_t run_pages(const kv_item *it)
{
  return (uint32_t)((item_bytes(it->klen, it->vlen) + KV_PAGE_SIZE - 1) / KV_PAGE_SIZE);
}

/* A run's pages become free pages. */
static void run_free(kv_shard *sh, kv_item *it)
{
  uint32_t first = page_of(sh, it), n = run_pages(it);
  for (uint32_t p = first; p < first + n; p++)
    sh->page_cls[p] = KV_PAGE_FREE;
  sh->cls[sh->ncls].pages -= n;
  sh->free_pages += n;
  if (first < sh->free_hint)
    sh->free_hint = first;
}

/* The memory of an item no longer in the keyspace (or never linked). */
static void item_free(kv_shard *sh, kv_item *it)
{
  it->live = 0;
  it->doomed = 0;
  if (is_run(sh, it)) {
    run_free(sh, it);
  } else {
    sh->page_live[page_of(sh, it)]--;
    chunk_free(sh, it);
  }
}

void kv_delete(kv_shard *sh, kv_item *it)
{
  struct kv_class *c = &sh->cls[it->cls];
  sh->page_cost[page_of(sh, it)] -= (uint32_t)KV_EVICT_COST(it->klen);
  hash_unlink(sh, it);
  lru_unlink(sh, c, it);
  c->items--;
  sh->items--;
  sh->bytes -= it->klen + it->vlen;
  if (it->expire_ms)
    sh->expires--;
  if (it->pins) { /* out of the keyspace now; the memory when the last pin goes */
    it->live = 0;
    it->doomed = 1;
    return;
  }
  item_free(sh, it);
}

void kv_pin(kv_shard *sh, kv_item *it)
{
  it->pins++;
  sh->page_pins[page_of(sh, it)]++;
}

void kv_unpin(kv_shard *sh, kv_item *it)
{
  it->pins--;
  sh->page_pins[page_of(sh, it)]--;
  if (!it->pins && it->doomed)
    item_free(sh, it);
}

void kv_release(kv_store *st, kv_item *it)
{
  kv_shard *sh = kv_lock(st, it->hash);
  kv_unpin(sh, it);
  kv_unlock(sh);
}

void kv_set_expire(kv_shard *sh, kv_item *it, int64_t expire_ms)
{
  if (it->live)
    sh->expires += (expire_ms != 0) - (it->expire_ms != 0);
  it->expire_ms = expire_ms;
}

/* A delayed flush that has come is marked on its first sight by a shard: the items it holds
 * then (CAS up to the latest given) were stored before it. Every link looks first, so none
 * stored since passes for older. */
static void flush_check(kv_shard *sh, int64_t now_ms)
{
  int64_t flush = atomic_load_explicit(sh->flush_at_ms, memory_order_relaxed);
  if (flush && flush <= now_ms && flush != sh->flush_seen) {
    sh->flush_seen = flush;
    sh->flush_cas = sh->cas_next ? kv_last_cas(sh) : 0;
  }
}

static bool is_dead(kv_shard *sh, const kv_item *it, int64_t now_ms)
{
  if (it->expire_ms && it->expire_ms <= now_ms)
    return true;
  flush_check(sh, now_ms);
  return it->cas <= sh->flush_cas;
}

kv_item *kv_find(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, int64_t now_ms)
{
  (void)st;
  for (kv_item *it = at_ref(sh, *bucket_at(&sh->t, hash)); it; it = at_ref(sh, it->hnext)) {
    if (it->hash != hash || it->klen != key.len || memcmp(it->data, key.p, key.len))
      continue;
    if (is_dead(sh, it, now_ms)) {
      sh->expired++;
      kv_delete(sh, it);
      return NULL;
    }
    /* A hit moves the item to the front at most once a second (memcached: once a minute):
     * moving touches its two neighbours and the list head, cache misses a hot key need not
     * pay on every hit; the order is approximate to the second. */
    struct kv_class *c = &sh->cls[it->cls];
    if (c->head != it && (uint32_t)now_ms - it->bumped_ms >= KV_BUMP_MS) {
      lru_unlink(sh, c, it);
      lru_push(sh, c, it);
      it->bumped_ms = (uint32_t)now_ms;
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
  sh->page_cost[page] = 0;
  c->pages++;
}

/* Takes pages [first, first + n) out of class `cls`: their chunks (all free) leave its free
 * list, in one pass whatever n is. */
static void pages_leave(kv_shard *sh, unsigned cls, uint32_t first, uint32_t n)
{
  struct kv_class *c = &sh->cls[cls];
  kv_item *prev = NULL;
  for (kv_item *it = c->free; it;) {
    kv_item *next = at_ref(sh, it->next);
    uint32_t p = page_of(sh, it);
    if (p < first || p >= first + n)
      prev = it;
    else if (prev)
      prev->next = it->next;
    else
      c->free = next;
    it = next;
  }
}

/* Takes `page` (all its chunks free) from its class and gives it to class `to`. */
static void page_move(kv_shard *sh, uint32_t page, unsigned to)
{
  pages_leave(sh, sh->page_cls[page], page, 1);
  sh->cls[sh->page_cls[page]].pages--;
  sh->reclaimed_pages++;
  page_carve(sh, page, to);
}

/* A page no class or run holds, or UINT32_MAX. */
static uint32_t page_take_free(kv_shard *sh)
{
  if (!sh->free_pages)
    return UINT32_MAX;
  for (uint32_t p = sh->free_hint; p < sh->npages; p++)
    if (sh->page_cls[p] == KV_PAGE_FREE) {
      sh->free_hint = p + 1;
      sh->free_pages--;
      return p;
    }
  return UINT32_MAX; /* (the hint only moves past taken pages: not reached) */
}

/* An item pushed out to make room: counted, told to the owner (kvd logs it), deleted. */
static void evict(kv_store *st, kv_shard *sh, kv_item *it)
{
  sh->evictions++;
  if (st->on_evict)
    st->on_evict(it);
  kv_delete(sh, it);
}

/* What one allocation may still evict, asked of the owner (st->evict_room) at its first
 * eviction only, and whether it ran short. */
struct budget {
  const kv_store *st;
  size_t granted, left;
  bool asked, short_of;
  bool pinned; /* a run found no window only because pinned items were in the way */
};

static bool afford(struct budget *b, const kv_item *it)
{
  size_t cost = KV_EVICT_COST(it->klen);
  if (!b->asked) {
    b->asked = true;
    b->granted = b->left = b->st->evict_room ? b->st->evict_room() : SIZE_MAX;
  }
  if (cost > b->left) {
    b->short_of = true;
    return false;
  }
  b->left -= cost;
  return true;
}

static bool is_carved(const kv_shard *sh, uint32_t p)
{
  return sh->page_cls[p] < KV_PAGE_RUN;
}

/* Evicts the live items of carved page `page` (none of them pinned) as far as the budget goes;
 * true when the page is empty. */
static bool page_empty(kv_store *st, kv_shard *sh, uint32_t page, struct budget *b)
{
  uint32_t size = sh->cls[sh->page_cls[page]].size;
  uint8_t *base = sh->pages + (size_t)page * KV_PAGE_SIZE;
  for (uint32_t i = 0; i < KV_PAGE_SIZE / size && sh->page_live[page]; i++) {
    kv_item *it = (kv_item *)(base + (size_t)i * size);
    if (it->live) {
      if (!afford(b, it))
        return false;
      evict(st, sh, it);
    }
  }
  return true;
}

/* Whether the page that `it` starts on may be emptied: nothing on it pinned, `keep` not on it. */
static bool page_evictable(const kv_shard *sh, const kv_item *it, const kv_item *keep)
{
  uint32_t p = page_of(sh, it);
  return !sh->page_pins[p] && !(keep && page_of(sh, keep) == p);
}

/* A page for class `to` when no free page is left (chunk_get took those): one with no live item
 * from another class; else (when eviction is on) the page holding the oldest item of the class with the most pages, its live
 * items evicted (a run: evicted whole). Never a page with `keep` or a pinned item on it. */
static bool page_reclaim(kv_store *st, kv_shard *sh, unsigned to, const kv_item *keep, struct budget *b)
{
  for (uint32_t p = 0; p < sh->npages; p++)
    if (is_carved(sh, p) && !sh->page_live[p] && sh->page_cls[p] != to) {
      page_move(sh, p, to);
      return true;
    }
  if (st->policy == KV_EVICT_NONE)
    return false;
  unsigned from = KV_MAX_CLASSES;
  for (unsigned i = 0; i <= sh->ncls; i++)
    if (i != to && sh->cls[i].tail && page_evictable(sh, sh->cls[i].tail, keep) &&
        (from == KV_MAX_CLASSES || sh->cls[i].pages > sh->cls[from].pages))
      from = i;
  if (from == KV_MAX_CLASSES)
    return false;
  kv_item *tail = sh->cls[from].tail;
  if (from == sh->ncls) { /* a run: evicted whole, its pages free */
    if (!afford(b, tail))
      return false;
    evict(st, sh, tail);
    page_carve(sh, page_take_free(sh), to);
    return true;
  }
  uint32_t page = page_of(sh, tail);
  if (!page_empty(st, sh, page, b))
    return false;
  page_move(sh, page, to);
  return true;
}

static kv_item *chunk_get(kv_store *st, kv_shard *sh, unsigned cls, const kv_item *keep, struct budget *b)
{
  struct kv_class *c = &sh->cls[cls];
  for (int tries = 0; tries < 2; tries++) {
    if (c->free) {
      kv_item *it = c->free;
      c->free = at_ref(sh, it->next);
      return it;
    }
    uint32_t p = page_take_free(sh);
    if (p != UINT32_MAX) {
      page_carve(sh, p, cls);
      continue;
    }
    /* The least recently used of this class, unless that is the item being kept or pinned
     * (evicting that would free nothing). */
    kv_item *victim = c->tail;
    for (int k = 0; victim && (victim == keep || victim->pins) && k < 8; k++)
      victim = at_ref(sh, victim->prev);
    if (victim && (victim == keep || victim->pins))
      victim = NULL;
    if (victim && st->policy == KV_EVICT_LRU) {
      if (!afford(b, victim))
        return NULL;
      evict(st, sh, victim);
      continue;
    }
    if (!page_reclaim(st, sh, cls, keep, b))
      return NULL;
  }
  return NULL;
}

/* What emptying page p for a run would cost (a run's whole cost on each of its pages: a guide
 * for choosing, the budget counts exactly); UINT32_MAX: it cannot be emptied. */
static uint32_t window_cost(const kv_shard *sh, uint32_t p, const kv_item *keep, enum kv_policy policy,
                            bool ignore_pins)
{
  uint8_t cls = sh->page_cls[p];
  if (cls == KV_PAGE_FREE)
    return 0;
  uint32_t head = cls == KV_PAGE_RUN ? sh->page_head[p] : p;
  if ((sh->page_pins[head] && !ignore_pins) || (keep && page_of(sh, keep) == head))
    return UINT32_MAX;
  uint32_t cost = sh->page_cost[head];
  return cost && policy == KV_EVICT_NONE ? UINT32_MAX : cost;
}

/* The window of n adjacent pages that costs the least to empty, or UINT32_MAX. */
static uint32_t run_window(const kv_shard *sh, uint32_t n, const kv_item *keep, enum kv_policy policy,
                           bool ignore_pins)
{
  uint64_t sum = 0, best_sum = UINT64_MAX;
  uint32_t blocked = 0, best = UINT32_MAX;
  for (uint32_t p = 0; p < sh->npages; p++) {
    uint32_t c = window_cost(sh, p, keep, policy, ignore_pins);
    c == UINT32_MAX ? blocked++ : (sum += c);
    if (p >= n) {
      uint32_t o = window_cost(sh, p - n, keep, policy, ignore_pins);
      o == UINT32_MAX ? blocked-- : (sum -= o);
    }
    if (p + 1 >= n && !blocked && sum < best_sum) {
      best_sum = sum;
      best = p + 1 - n;
      if (!sum)
        break;
    }
  }
  return best;
}

/* A run of n pages for one item: the cheapest window emptied (its items evicted, its free
 * chunks taken out of their classes), or NULL (b->short_of: part of it was emptied). */
static kv_item *run_get(kv_store *st, kv_shard *sh, uint32_t n, const kv_item *keep, struct budget *b)
{
  uint32_t first = n <= sh->npages ? run_window(sh, n, keep, st->policy, false) : UINT32_MAX;
  if (first == UINT32_MAX) {
    b->pinned = n <= sh->npages && run_window(sh, n, keep, st->policy, true) != UINT32_MAX;
    return NULL;
  }
  for (uint32_t p = first; p < first + n; p++) {
    if (sh->page_cls[p] == KV_PAGE_RUN) {
      kv_item *run = (kv_item *)(sh->pages + (size_t)sh->page_head[p] * KV_PAGE_SIZE);
      if (!afford(b, run))
        return NULL;
      evict(st, sh, run);
    } else if (is_carved(sh, p) && !page_empty(st, sh, p, b)) {
      return NULL;
    }
  }
  bool left[KV_MAX_CLASSES] = {0};
  for (uint32_t p = first; p < first + n; p++) {
    if (is_carved(sh, p)) {
      left[sh->page_cls[p]] = true;
      sh->cls[sh->page_cls[p]].pages--;
      sh->reclaimed_pages++;
    } else { /* free (an evicted run's pages are free by now) */
      sh->free_pages--;
    }
    sh->page_cls[p] = KV_PAGE_RUN;
    sh->page_head[p] = first;
    sh->page_live[p] = 0;
    sh->page_cost[p] = 0;
  }
  for (unsigned i = 0; i < sh->ncls; i++)
    if (left[i])
      pages_leave(sh, i, first, n);
  sh->cls[sh->ncls].pages += n;
  return (kv_item *)(sh->pages + (size_t)first * KV_PAGE_SIZE);
}

int kv_alloc(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, size_t vlen, const kv_item *keep,
             kv_item **out_it)
{
  size_t need = item_bytes(key.len, vlen);
  struct budget b = {.st = st};
  unsigned cls;
  kv_item *it;
  if (need > KV_PAGE_SIZE) {
    cls = sh->ncls;
    it = run_get(st, sh, (uint32_t)((need + KV_PAGE_SIZE - 1) / KV_PAGE_SIZE), keep, &b);
  } else {
    cls = class_for(sh, need);
    it = chunk_get(st, sh, cls, keep, &b);
  }
  if (b.asked && st->evict_done)
    st->evict_done(b.left);
  /* Short of budget: worth waiting for only if it made progress (its records will go out and
   * the next budget is fresh) or a fuller budget may come. */
  if (!it)
    return b.short_of && (b.left < b.granted || b.granted < st->evict_room_max) ? -EAGAIN
           : b.pinned                                                           ? -EBUSY
                                                                                : -ENOMEM;
  *it = (kv_item){.hash = hash, .klen = (uint32_t)key.len, .vlen = (uint32_t)vlen, .cls = (uint8_t)cls};
  memcpy(it->data, key.p, key.len);
  *out_it = it;
  return 0;
}

void kv_discard(kv_shard *sh, kv_item *it)
{
  if (is_run(sh, it))
    run_free(sh, it);
  else
    chunk_free(sh, it);
}

void kv_link(kv_shard *sh, kv_item *it, int64_t now_ms)
{
  flush_check(sh, now_ms);
  table_move(sh, MOVE_BUCKETS);
  kv_ref *pp = bucket_at(&sh->t, it->hash);
  for (kv_item *old = at_ref(sh, *pp); old; old = at_ref(sh, old->hnext))
    if (old->hash == it->hash && old->klen == it->klen && !memcmp(old->data, it->data, it->klen)) {
      kv_delete(sh, old);
      break;
    }
  it->hnext = *pp;
  *pp = ref_of(sh, it);
  it->live = 1;
  it->bumped_ms = (uint32_t)now_ms;
  /* Unique across shards: the shard's counter, interleaved by shard number. */
  ++sh->cas_next;
  it->cas = kv_last_cas(sh);
  struct kv_class *c = &sh->cls[it->cls];
  lru_push(sh, c, it);
  c->items++;
  if (!is_run(sh, it))
    sh->page_live[page_of(sh, it)]++;
  sh->page_cost[page_of(sh, it)] += (uint32_t)KV_EVICT_COST(it->klen);
  sh->items++;
  sh->bytes += it->klen + it->vlen;
  if (it->expire_ms)
    sh->expires++;
  table_grow(sh);
}

int kv_put(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, rw_span a, rw_span b, uint32_t flags,
           int64_t expire_ms, const kv_item *keep, int64_t now_ms, kv_item **out_it)
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

/* Calls fn on each chain of tab[0]'s bucket b (both halves once it has moved); fn returns
 * false to stop. */
static bool bucket_chains(kv_shard *sh, uint32_t b, bool (*fn)(kv_shard *sh, kv_ref *head, void *arg),
                          void *arg)
{
  struct kv_table *t = &sh->t;
  if (!t->growing || b >= t->moved)
    return fn(sh, &t->tab[0][b], arg);
  return fn(sh, &t->tab[1][b], arg) && fn(sh, &t->tab[1][b + t->mask[0] + 1], arg);
}

static bool chain_clear(kv_shard *sh, kv_ref *head, void *arg)
{
  (void)arg;
  while (*head)
    kv_delete(sh, at_ref(sh, *head));
  return true;
}

void kv_clear(kv_shard *sh)
{
  for (uint32_t b = 0; b <= sh->t.mask[0]; b++)
    bucket_chains(sh, b, chain_clear, NULL);
  if (!sh->items)
    table_reset(sh);
}

struct sweep {
  int64_t now_ms;
  unsigned removed;
};

static bool chain_sweep(kv_shard *sh, kv_ref *pp, void *arg)
{
  struct sweep *w = arg;
  while (*pp) {
    kv_item *it = at_ref(sh, *pp);
    if (is_dead(sh, it, w->now_ms)) {
      sh->expired++;
      kv_delete(sh, it); /* unlinks *pp: look at the same place again */
      w->removed++;
    } else {
      pp = &it->hnext;
    }
  }
  return true;
}

unsigned kv_sweep(kv_store *st, kv_shard *sh, unsigned buckets, int64_t now_ms)
{
  (void)st;
  struct sweep w = {.now_ms = now_ms};
  table_move(sh, buckets);
  for (unsigned i = 0; i < buckets; i++)
    bucket_chains(sh, sh->sweep_pos++ & sh->t.mask[0], chain_sweep, &w);
  return w.removed;
}

struct visit {
  int64_t now_ms;
  kv_visit_fn fn;
  void *arg;
};

static bool chain_visit(kv_shard *sh, kv_ref *head, void *arg)
{
  struct visit *v = arg;
  for (kv_item *it = at_ref(sh, *head); it; it = at_ref(sh, it->hnext))
    if (!is_dead(sh, it, v->now_ms))
      v->fn(v->arg, it);
  return true;
}

static uint64_t reverse(uint64_t v)
{
  v = (v >> 1 & 0x5555555555555555ull) | (v & 0x5555555555555555ull) << 1;
  v = (v >> 2 & 0x3333333333333333ull) | (v & 0x3333333333333333ull) << 2;
  v = (v >> 4 & 0x0f0f0f0f0f0f0f0full) | (v & 0x0f0f0f0f0f0f0f0full) << 4;
  return __builtin_bswap64(v);
}

/* While the table grows, bucket b of tab[0] stands for its two halves in tab[1]: visiting it
 * visits both, so the walk goes by tab[0]'s mask whatever has moved. */
uint64_t kv_scan(kv_shard *sh, uint64_t cursor, int64_t now_ms, kv_visit_fn fn, void *arg)
{
  uint64_t mask = sh->t.mask[0];
  struct visit v = {now_ms, fn, arg};
  bucket_chains(sh, (uint32_t)(cursor & mask), chain_visit, &v);
  return reverse(reverse(cursor | ~mask) + 1);
}

void kv_each(kv_shard *sh, int64_t now_ms, kv_visit_fn fn, void *arg)
{
  struct visit v = {now_ms, fn, arg};
  for (uint32_t b = 0; b <= sh->t.mask[0]; b++)
    bucket_chains(sh, b, chain_visit, &v);
}

struct pick {
  uint64_t rnd;
  uint32_t live;
  kv_item *it;
};

/* Reservoir sampling over a chain's live items: each equally likely. */
static void pick_one(void *arg, kv_item *it)
{
  struct pick *p = arg;
  p->rnd = kv_lcg_next(p->rnd);
  if ((p->rnd >> 33) % ++p->live == 0)
    p->it = it;
}

/* Random buckets first (the table is at least half full while it grows); a sparse one (after
 * deletes) is walked from a random place instead, so an item is found if there is one. */
kv_item *kv_random(kv_shard *sh, uint64_t rnd, int64_t now_ms)
{
  struct pick p = {.rnd = rnd};
  struct visit v = {now_ms, pick_one, &p};
  uint32_t mask = sh->t.mask[0];
  for (int tries = 0; sh->items && tries < 256 && !p.it; tries++) {
    p.rnd = kv_lcg_next(p.rnd);
    bucket_chains(sh, (uint32_t)(p.rnd >> 32) & mask, chain_visit, &v);
  }
  uint32_t start = (uint32_t)(p.rnd >> 32);
  for (uint32_t i = 0; sh->items && i <= mask && !p.it; i++)
    bucket_chains(sh, (start + i) & mask, chain_visit, &v);
  return p.it;
}

kv_shard *kv_lock_shard(kv_store *st, unsigned i)
{
  kv_shard *sh = &st->shards[i];
  if (sh->locking)
    pthread_mutex_lock(&sh->lock);
  return sh;
}

void kv_flush(kv_store *st)
{
  for (unsigned i = 0; i < st->nshards; i++) {
    kv_shard *sh = kv_lock_shard(st, i);
    kv_clear(sh);
    kv_unlock(sh);
  }
}

void kv_totals(kv_store *st, struct kv_totals *out)
{
  *out = (struct kv_totals){0};
  for (unsigned i = 0; i < st->nshards; i++) {
    kv_shard *sh = kv_lock_shard(st, i);
    out->items += sh->items;
    out->bytes += sh->bytes;
    out->expires += sh->expires;
    out->evictions += sh->evictions;
    out->expired += sh->expired;
    out->reclaimed_pages += sh->reclaimed_pages;
    kv_unlock(sh);
  }
}
