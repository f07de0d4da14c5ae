/* The kvd store: one keyspace that RESP and memcache share, in a fixed budget taken at start.
 *
 * Memory is split into shards (one per worker); a key's hash picks its shard, and each shard
 * has its own lock, hash table, slab pages and LRU lists, so workers only meet on the same
 * shard. Within a shard, items live in slab classes (chunk sizes growing by 1.25x) carved from
 * 1 MiB pages; a full shard evicts the least recently used item of the class it needs, or, when
 * that class owns no page yet, takes a page with no live item from another class, or else empties
 * the page holding the oldest item of the richest class and hands it over (so the budget never
 * calcifies into one size). With eviction off, only empty pages move, and a full shard answers
 * -ENOMEM. Expiry is lazy (every lookup checks) plus a bounded sweep per tick.
 *
 * An item larger than a page (values up to 512 MiB) takes a run of adjacent pages, so its value
 * stays one span. The run is the window of pages that costs the fewest evictions (with eviction
 * off: a window of empty pages, else -ENOMEM); its items are evicted and its free chunks leave
 * their classes. Runs have an LRU list of their own and are evicted whole.
 *
 * Pins: a reply that outlives its handler (a value streamed out over many loop turns, a log
 * record written from the item) pins the item. A pinned item that is deleted or replaced leaves
 * the keyspace at once but keeps its memory until the last pin goes; pages holding pinned items
 * are never reclaimed or evicted into.
 *
 * Calls take the shard lock through kv_lock() and release it with kv_unlock(); an item pointer
 * is valid only while its shard is locked, or while pinned. Nothing here allocates after
 * kv_store_create(). */
#ifndef KVD_STORE_H
#define KVD_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringwright/buf.h>

/* A page holds the largest item: 1 MiB of value, a key, the header. */
#define KV_PAGE_SIZE ((1u << 20) + 4096)
#define KV_MAX_CLASSES 160
#define KV_PAGE_FREE 0xff
#define KV_PAGE_RUN 0xfe
/* Items link to each other by kv_ref: 8-byte units from the shard's first page, plus one (0:
 * none), so a shard's pages span at most 32 GiB. */
#define KV_SHARD_MAX ((size_t)UINT32_MAX << 3)

typedef uint32_t kv_ref;

/* 56 bytes: with a 12-byte key and a 32-byte value, a 104-byte chunk. */
typedef struct kv_item {
  kv_ref hnext;      /* hash chain */
  kv_ref prev, next; /* LRU (most recent first), or the free list (next only) */
  uint32_t hash, klen, vlen, flags;
  uint32_t pins;
  uint32_t bumped_ms; /* (low bits of) when a hit last moved it to the front of its LRU */
  uint8_t cls, live;
  uint8_t doomed;    /* deleted while pinned: freed by the last kv_unpin() */
  uint64_t cas;      /* also its age: a delayed flush drops the items with a CAS up to its mark */
  int64_t expire_ms; /* CLOCK_MONOTONIC ms; 0: never */
  uint8_t data[];    /* key, then value */
} kv_item;

struct kv_class {
  uint32_t size;  /* chunk bytes */
  uint32_t pages; /* pages this class owns */
  uint64_t items; /* live items */
  kv_item *free;  /* free chunks */
  kv_item *head, *tail;
};

/* The hash table grows with what is stored (one bucket per item at most), doubling into the
 * other of two reserved regions; the items move over a few buckets per write (and per sweep),
 * never all at once. While it moves, tab[0]'s buckets below `moved` live in tab[1] (bucket b as
 * b and b + size of tab[0]); a key's bucket is found by that rule with one probe. */
struct kv_table {
  kv_ref *tab[2];
  uint32_t mask[2];
  uint32_t moved;    /* tab[0]'s buckets already moved to tab[1] */
  bool growing;      /* tab[1] is filling */
  uint32_t max_mask; /* the largest table the regions hold */
  kv_ref *region[2]; /* each (max_mask + 1) buckets, resident only as used */
};

typedef struct kv_shard {
  pthread_mutex_t lock;
  bool locking; /* false with one worker: nobody to exclude */
  unsigned id, nshards;
  uint8_t *pages;
  uint32_t npages, free_pages, free_hint;
  uint32_t *page_live; /* items per page, pinned dead ones included: an empty page can move */
  uint32_t *page_pins; /* pins on the page's items (a run's: on its first page) */
  uint32_t *page_head; /* a run's pages: the run's first page */
  uint32_t *page_cost; /* what evicting the page's live items costs the owner (KV_EVICT_COST) */
  uint8_t *page_cls;   /* the class each carved page serves, or KV_PAGE_FREE / KV_PAGE_RUN */
  struct kv_table t;
  uint32_t sweep_pos;
  const _Atomic int64_t *flush_at_ms; /* the store's */
  int64_t flush_seen;                 /* the delayed flush that flush_cas stands for */
  uint64_t flush_cas;                 /* items with a CAS up to this were stored before it */
  uint64_t cas_next;
  uint64_t items, bytes, expires; /* live items, their key+value bytes, those with a TTL */
  uint64_t evictions, expired, reclaimed_pages;
  struct kv_class cls[KV_MAX_CLASSES];
  unsigned ncls; /* slab classes; cls[ncls] is the class of runs (its LRU and page count) */
} kv_shard;

enum kv_policy { KV_EVICT_LRU, KV_EVICT_NONE };

typedef struct kv_store {
  kv_shard *shards;
  unsigned nshards;
  enum kv_policy policy;
  size_t memory;
  _Atomic int64_t flush_at_ms;   /* items stored before this are gone once it passes (0: none) */
  void (*on_evict)(kv_item *it); /* called (shard locked) before an item is evicted */
  /* What evictions the owner can take now, in KV_EVICT_COST units (NULL: no limit): kvd's log
   * must have room for a record per evicted item. evict_room() grants (and reserves) a budget
   * for one allocation; each eviction spends KV_EVICT_COST of it (on_evict is told), and
   * evict_done() gives back what is left when the allocation is over. An allocation
   * that would need more evicts what it may and fails with -EAGAIN, to be retried once the owner
   * has room again; -ENOMEM when it evicted nothing and a whole budget (evict_room_max, what an
   * idle owner grants) would not have been enough either. */
  size_t (*evict_room)(void);
  void (*evict_done)(size_t left);
  size_t evict_room_max;
} kv_store;

/* An eviction's cost to the owner: about the bytes of the record that says so. */
#define KV_EVICT_COST(klen) (32 + (size_t)(klen))

/* Takes `memory` bytes (at least 4 MiB per shard) for `nshards` shards. 0 or -errno. */
int kv_store_create(size_t memory, unsigned nshards, enum kv_policy policy, kv_store *out_st);
void kv_store_destroy(kv_store *st);

uint32_t kv_hash(rw_span key);
/* The seed of kv_hash() (drawn at random by kv_store_create()); it picks each key's shard, so a
 * store rebuilt from a log must use the seed the log was written with. Set it only while the
 * store is empty. */
uint64_t kv_hash_seed(void);
void kv_set_hash_seed(uint64_t seed);
kv_shard *kv_lock(kv_store *st, uint32_t hash);
kv_shard *kv_shard_of(const kv_store *st, uint32_t hash); /* without locking it */
void kv_unlock(kv_shard *sh);

static inline rw_span kv_key(const kv_item *it)
{
  return (rw_span){it->data, it->klen};
}
static inline uint8_t *kv_value(kv_item *it)
{
  return it->data + it->klen;
}

/* Hints for a key about to be looked up: its bucket, then (once that has had time to arrive)
 * the first item in it. No lock is taken: a stale pointer costs a useless prefetch, never a
 * fault (a prefetch does not fault, and items live in the store's own mapping). */
void kv_prefetch_bucket(const kv_store *st, uint32_t hash);
void kv_prefetch_item(const kv_store *st, uint32_t hash);

/* The live item for `key`, or NULL (an expired or flushed one is removed on the way); a hit
 * moves to the front of its LRU. */
kv_item *kv_find(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, int64_t now_ms);
/* A fresh, unlinked item with room for `vlen` value bytes, the key copied in; the caller fills
 * the value and fields, then kv_link()s it. `keep` (may be NULL) is never evicted to make room.
 * -ENOMEM: no room (eviction off, or nothing evictable, or larger than the shard); -EAGAIN: the
 * evictions it needs are more than evict_room() allows now (some were done: try again later);
 * -EBUSY: a run of pages could be had but for pinned items (try again once they are unpinned). */
int kv_alloc(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, size_t vlen, const kv_item *keep,
             kv_item **out_it);
/* Links `it`, replacing (and freeing) any item with its key; assigns it a new CAS value. */
void kv_link(kv_shard *sh, kv_item *it, int64_t now_ms);
/* The CAS value the shard's latest kv_link() gave (its lock held since): a write's new CAS. */
static inline uint64_t kv_last_cas(const kv_shard *sh)
{
  return sh->cas_next * sh->nshards + sh->id;
}
/* Keeps `it`'s memory (not its place in the keyspace) until kv_unpin(); shard locked for both. */
void kv_pin(kv_shard *sh, kv_item *it);
void kv_unpin(kv_shard *sh, kv_item *it);
/* kv_unpin() taking the item's shard lock (the caller holds none). */
void kv_release(kv_store *st, kv_item *it);
/* Gives back an item from kv_alloc() that was not linked. */
void kv_discard(kv_shard *sh, kv_item *it);
/* Unlinks and frees a linked item. */
void kv_delete(kv_shard *sh, kv_item *it);
/* Changes an item's expiry, keeping the count of items with a TTL right. */
void kv_set_expire(kv_shard *sh, kv_item *it, int64_t expire_ms);
/* Stores key = a ++ b with `flags` and `expire_ms` (0: none), replacing any item with the key:
 * kv_alloc() and kv_link() in one. `keep` is an item that must survive the allocation (the one
 * a or b points into); the new item in *out_it when that is not NULL. 0, or kv_alloc()'s error. */
int kv_put(kv_store *st, kv_shard *sh, rw_span key, uint32_t hash, rw_span a, rw_span b, uint32_t flags,
           int64_t expire_ms, const kv_item *keep, int64_t now_ms, kv_item **out_it);
/* Frees every item of the shard. */
void kv_clear(kv_shard *sh);
/* Removes expired items from the next `buckets` buckets; returns how many it removed. */
unsigned kv_sweep(kv_store *st, kv_shard *sh, unsigned buckets, int64_t now_ms);

/* One step of the 64-bit LCG (Knuth's MMIX constants) the keyspace draws use: cheap and
 * good enough to pick buckets and shards, not for anything secret. */
static inline uint64_t kv_lcg_next(uint64_t x)
{
  return x * 6364136223846793005ull + 1442695040888963407ull;
}

/* Keyspace walks, shard locked: fn(arg, it) for each live item (expired ones are skipped). */
typedef void (*kv_visit_fn)(void *arg, kv_item *it);
/* The items of one bucket, chosen by `cursor` as redis's SCAN chooses: the next cursor is the
 * reverse-binary increment over the table's mask (0: every bucket visited), so that an item
 * present through a whole walk is visited at least once however the table grows in between. */
uint64_t kv_scan(kv_shard *sh, uint64_t cursor, int64_t now_ms, kv_visit_fn fn, void *arg);
void kv_each(kv_shard *sh, int64_t now_ms, kv_visit_fn fn, void *arg);
/* A live item drawn at random (from a random bucket) with `rnd`'s help, or NULL: none. */
kv_item *kv_random(kv_shard *sh, uint64_t rnd, int64_t now_ms);
/* Shard i, locked as kv_lock() would lock it. */
kv_shard *kv_lock_shard(kv_store *st, unsigned i);

/* Empties every shard (each under its lock). */
void kv_flush(kv_store *st);

/* Totals over all shards, each read under its lock. */
struct kv_totals {
  uint64_t items, bytes, expires, evictions, expired, reclaimed_pages;
};
void kv_totals(kv_store *st, struct kv_totals *out);

#endif
