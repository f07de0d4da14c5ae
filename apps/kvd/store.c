/* The kvd store: shards of slab pages, a fixed hash table and per-class LRU lists (store.h). */
#include "store.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#define MIN_CHUNK 64
#define KV_BUMP_MS 1000
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

static void init_classes(kv_shard *sh)
{
  double size = MIN_CHUNK;
  unsigned n = 0;
  while (n < KV_MAX_CLASSES - 2 && size < KV_PAGE_SIZE / 2) {
    sh->cls[n++].size = ((uint32_t)size + 7) & ~7u;
    size *= GROWTH;
  }
  sh->cls[n++].size = KV_PAGE_SIZE; /* the largest: one item per page */
  sh->ncls = n;                     /* cls[n]: runs (size 0) */
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
  sh->page_pins = sh->page_live + maxpages;
  sh->page_head = sh->page_pins + maxpages;
  sh->page_cost = sh->page_head + maxpages;
  sh->page_cls = (uint8_t *)(sh->page_cost + maxpages);
  size_t table = (nb * sizeof(kv_item *) + maxpages * 17 + 4095) & ~(size_t)4095;
  sh->pages = mem + table;
  sh->npages = (uint32_t)((bytes - table) / KV_PAGE_SIZE);
  sh->free_pages = sh->npages;
  memset(sh->page_cls, KV_PAGE_FREE, sh->npages);
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
  out_st->shards =
      mmap(NULL, nshards * sizeof(kv_shard), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
kv_shard *kv_shard_of(const kv_store *st, uint32_t hash)
{
  return &st->shards[(uint64_t)(hash >> 16) * st->nshards >> 16];
}

void kv_prefetch_bucket(const kv_store *st, uint32_t hash)
{
  const kv_shard *sh = kv_shard_of(st, hash);
  __builtin_prefetch(&sh->buckets[hash & sh->bucket_mask]);
}

void kv_prefetch_item(const kv_store *st, uint32_t hash)
{
  const kv_shard *sh = kv_shard_of(st, hash);
  kv_item *it = __atomic_load_n(&sh->buckets[hash & sh->bucket_mask], __ATOMIC_RELAXED);
  if (it)
    __builtin_prefetch(it);
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
  lru_unlink(c, it);
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
    /* A hit moves the item to the front at most once a second (memcached: once a minute):
     * moving touches its two neighbours and the list head, cache misses a hot key need not
     * pay on every hit; the order is approximate to the second. */
    struct kv_class *c = &sh->cls[it->cls];
    if (c->head != it && (uint32_t)now_ms - it->bumped_ms >= KV_BUMP_MS) {
      lru_unlink(c, it);
      lru_push(c, it);
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
  kv_item **pp = &c->free;
  while (*pp) {
    uint32_t p = page_of(sh, *pp);
    if (p >= first && p < first + n)
      *pp = (*pp)->next;
    else
      pp = &(*pp)->next;
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
      c->free = it->next;
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
      victim = victim->prev;
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
  it->bumped_ms = (uint32_t)now_ms;
  /* Unique across shards: the shard's counter, interleaved by shard number. */
  ++sh->cas_next;
  it->cas = kv_last_cas(sh);
  struct kv_class *c = &sh->cls[it->cls];
  lru_push(c, it);
  c->items++;
  if (!is_run(sh, it))
    sh->page_live[page_of(sh, it)]++;
  sh->page_cost[page_of(sh, it)] += (uint32_t)KV_EVICT_COST(it->klen);
  sh->items++;
  sh->bytes += it->klen + it->vlen;
  if (it->expire_ms)
    sh->expires++;
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

/* RANDOMKEY: the first live item from bucket `r` on (wrapping), or NULL. Not uniform (an item
 * after a run of empty buckets is likelier), as redis's is not either; O(buckets) at worst. */
kv_item *kv_random(kv_store *st, kv_shard *sh, uint64_t r, int64_t now_ms)
{
  if (!sh->items)
    return NULL;
  for (uint32_t i = 0; i <= sh->bucket_mask; i++)
    for (kv_item *it = sh->buckets[(r + i) & sh->bucket_mask]; it; it = it->hnext)
      if (!is_dead(st, it, now_ms))
        return it;
  return NULL;
}

/* kv_lock() for a shard picked without a key (RANDOMKEY walks them in turn). */
void kv_lock_shard(kv_shard *sh)
{
  if (sh->locking)
    pthread_mutex_lock(&sh->lock);
}
