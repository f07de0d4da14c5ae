/* kvd's append-only file: every change to the store, as a RESP command, appended through the
 * runtime's file path (rw_file_write / rw_file_fsync: SQEs on io_uring, the pool on epoll) and
 * replayed at start (aof_replay.c).
 *
 * Records describe effects, not requests, so that replay is deterministic: an item as it now is
 * ("SET key value [PXAT unix-ms] [FLAGS n]", whatever command made it: SET, INCR, APPEND,
 * memcache's cas...), "DEL key", "PEXPIREAT key unix-ms", "PERSIST key", "FLUSHALL [PXAT ms]".
 * A record is appended while its shard is locked, so records for one key are in store order.
 *
 * Batching: records go into a fill buffer (two fixed buffers, taken at start); at the end of a
 * worker's loop turn, if no write is in flight, the buffers swap and one write (plus, with
 * --fsync always, one fsync) covers everything the turn produced: group commit. A key or value
 * of KVD_AOF_REF_MIN bytes or more is not copied: the record refers to the item, pinned until the
 * batch is written, and the batch goes out as one gathered write (values up to 512 MiB cost no
 * buffer, and every record's copied part stays small). With --fsync
 * always a reply that acknowledges a write is corked (rw_conn_cork) until the fsync covering its
 * record completes, so nothing acknowledged is lost to a crash. A write command that finds the
 * fill buffer too full returns -EAGAIN: its connection waits (rw_conn_resume) for the swap.
 *
 * Checksums: each batch ends with a record "KVDCRC <8 hex digits>", the CRC32C of every byte of
 * the file before it, so replay finds damage inside a record (a flipped bit, zeroed bytes, a
 * record gone) that the RESP framing cannot, and, as the sums chain, a batch gone whole. The sum
 * is taken over the batch's pieces as they are gathered for the write, referred values included
 * where they lie (no copy), outside the lock; the record has a fixed length, so its bytes are
 * counted when the batch is swapped out, before the sum is known. The seed record is a batch of
 * its own. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvd.h"

/* Keys and values from this long are written from the item instead of copied. */
#define KVD_AOF_REF_MIN 1024
/* Room a write command may need between two admissions: KVD_AOF_RECORDS records, each with its
 * copied key and value under KVD_AOF_REF_MIN bytes, and two references. */
#define ROOM_PER_WORKER (KVD_AOF_RECORDS * (2 * KVD_AOF_REF_MIN + 256))
#define REFS_PER_WORKER (2 * KVD_AOF_RECORDS)
#define EVERYSEC_MS 1000
/* "*2\r\n$6\r\nKVDCRC\r\n$8\r\n" and 8 hex digits, CRLF: every batch's last record. */
#define SUM_LEN 30

/* A key or value written from its item, at `at` in its fill buffer. */
struct aof_ref {
  size_t at;
  const uint8_t *p;
  size_t len;
  kv_item *it;
};

struct aof_worker {
  rw_msg msg; /* "durable moved / room freed": posted by the worker that completed a write */
  atomic_bool pending;
  rw_handle *corked, *waiting;
  uint32_t ncorked, nwaiting;
  rw_timer everysec;
  rw_fileop sync_op;
  bool sync_inflight;
} __attribute__((aligned(64)));

static struct {
  bool on;
  enum kvd_fsync policy;
  int fd;
  const char *path;
  pthread_mutex_t lock;
  bool locking;
  uint8_t *buf[2];
  size_t cap, fill_len, room;
  size_t evict_granted; /* budgets granted to allocations under way (evict_room) */
  struct aof_ref *refs[2];
  uint32_t ref_cap, fill_refs, ref_room, batch_refs;
  uint64_t fill_bytes;  /* the fill buffer's bytes and its references' */
  struct iovec *iov;    /* the batch in flight, gathered, its checksum record last */
  char sum[2][SUM_LEN]; /* each side's checksum record */
  uint32_t crc;         /* CRC32C of the file up to the batch in flight's end (its checksum included) */
  uint32_t iov_n, iov_i;
  bool overflow;
  int fill;
  /* Byte offsets in the log since start: written under the lock, read without it by readers
   * that only need a bound (a stale `durable` only corks longer). */
  _Atomic uint64_t appended, durable;
  uint64_t base;        /* the file's size at start: the log since start begins there */
  size_t batch_len;     /* the batch in flight: its bytes, at file offset base + inflight_end - batch_len */
  size_t batch_buf_len; /* those of them in its buffer */
  bool inflight;
  uint64_t inflight_end;
  rw_fileop op;
  int error;
  rw_server *srv;
  unsigned workers;
  uint32_t max_conns;
  struct aof_worker *aw;
  uint64_t writes, fsyncs;
} aof = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void lock(void)
{
  if (aof.locking)
    pthread_mutex_lock(&aof.lock);
}

static void unlock(void)
{
  if (aof.locking)
    pthread_mutex_unlock(&aof.lock);
}

/* ---- records ---- */

/* A record is written between begin() and end(), under the lock. */
struct mark {
  size_t len;
  uint32_t refs;
  uint64_t bytes;
};

static struct mark begin(void)
{
  lock();
  return (struct mark){aof.fill_len, aof.fill_refs, aof.fill_bytes};
}

static void put(const void *p, size_t n)
{
  if (aof.fill_len + n > aof.cap) { /* admission keeps room: this is a bug, not load */
    aof.overflow = true;
    return;
  }
  memcpy(aof.buf[aof.fill] + aof.fill_len, p, n);
  aof.fill_len += n;
  aof.fill_bytes += n;
}

/* `n` bytes at `p` inside item `it` (its shard locked): copied when short, else referred to. */
static void put_ref(kv_item *it, const uint8_t *p, size_t n)
{
  if (n < KVD_AOF_REF_MIN) {
    put(p, n);
    return;
  }
  if (aof.fill_refs == aof.ref_cap) {
    aof.overflow = true;
    return;
  }
  kv_pin(kv_shard_of(&kvd.store, it->hash), it);
  aof.refs[aof.fill][aof.fill_refs++] = (struct aof_ref){aof.fill_len, p, n, it};
  aof.fill_bytes += n;
}

static void note(rw_conn *c);

/* Publishes the record (or drops it whole if it did not fit); `c`, when given, is the
 * connection whose reply depends on it. */
static void end(struct mark start, rw_conn *c)
{
  if (aof.overflow) {
    while (aof.fill_refs > start.refs) { /* (the record's items are locked: no unpin() here) */
      kv_item *it = aof.refs[aof.fill][--aof.fill_refs].it;
      kv_unpin(kv_shard_of(&kvd.store, it->hash), it);
    }
    aof.fill_len = start.len;
    aof.fill_bytes = start.bytes;
    aof.overflow = false;
    aof.error = -ENOBUFS;
  } else {
    atomic_store_explicit(&aof.appended,
                          atomic_load_explicit(&aof.appended, memory_order_relaxed) +
                              (aof.fill_bytes - start.bytes),
                          memory_order_relaxed);
    if (c)
      note(c);
  }
  unlock();
}

static void put_len(char lead, uint64_t n)
{
  char b[24];
  b[0] = lead;
  size_t k = 1 + rw_fmt_u64(b + 1, n);
  b[k++] = '\r';
  b[k++] = '\n';
  put(b, k);
}

static void put_arg(rw_span s)
{
  put_len('$', s.len);
  put(s.p, s.len);
  put("\r\n", 2);
}

/* An argument that lives in item `it`. */
static void put_item_arg(kv_item *it, rw_span s)
{
  put_len('$', s.len);
  put_ref(it, s.p, s.len);
  put("\r\n", 2);
}

static void put_str(const char *s)
{
  put_arg((rw_span){(const uint8_t *)s, strlen(s)});
}

static void put_num(int64_t v)
{
  char b[24];
  put_arg((rw_span){(const uint8_t *)b, rw_fmt_i64(b, v)});
}

/* A monotonic deadline as the Unix time it stands for. The clocks are read apart from when the
 * deadline was taken, so one at the end of the range (PXAT 9223372036854775807) may come out a
 * few ms past it: saturated, never wrapped into the past. */
int64_t kvd_to_unix(rw_conn *c, int64_t mono_ms)
{
  int64_t ms;
  return __builtin_add_overflow(mono_ms, kvd_unix_ms() - kvd_now_ms(c), &ms) ? INT64_MAX : ms;
}

/* Appends `h` to a per-worker list of handles, first dropping those of connections that have
 * closed if it is full (live connections never exceed its size). */
static void list_add(rw_worker *w, rw_handle *list, uint32_t *n, rw_handle h)
{
  if (*n == aof.max_conns) {
    uint32_t keep = 0;
    for (uint32_t i = 0; i < *n; i++)
      if (rw_conn_from_handle(w, list[i]))
        list[keep++] = list[i];
    *n = keep;
  }
  list[(*n)++] = h;
}

/* With --fsync always, the connection's replies so far wait until the log is durable to `upto`. */
static void wait_durable(rw_conn *c, uint64_t upto)
{
  struct kvd_conn *kc = rw_conn_user(c);
  kc->aof_wait = upto > kc->aof_wait ? upto : kc->aof_wait;
  rw_conn_cork(c);
  if (!kc->aof_corked) {
    rw_worker *w = rw_conn_worker(c);
    struct aof_worker *aw = &aof.aw[rw_worker_id(w)];
    kc->aof_corked = true;
    list_add(w, aw->corked, &aw->ncorked, rw_conn_handle(c));
  }
}

/* After a record for `c`'s command was appended (lock held). */
static void note(rw_conn *c)
{
  if (aof.policy == KVD_FSYNC_ALWAYS)
    wait_durable(c, aof.appended);
}

/* A read: with --fsync always its reply may show a write whose fsync is still in flight, so it
 * waits for that fsync too (redis holds every reply of the turn for the same reason). Called
 * with the key's shard locked: every record for what the read sees is counted in `appended`. */
void kvd_aof_read(rw_conn *c)
{
  if (!aof.on || aof.policy != KVD_FSYNC_ALWAYS)
    return;
  uint64_t appended = atomic_load_explicit(&aof.appended, memory_order_relaxed);
  if (appended > atomic_load_explicit(&aof.durable, memory_order_relaxed))
    wait_durable(c, appended);
}

/* The store evicted an item to make room (shard locked): without a record, replay would bring
 * it back. No reply waits on it: the write that caused it has its own record. */
static void evicted(kv_item *it)
{
  struct mark start = begin();
  /* The record takes the place of what its allocation was granted for it (the cost is at least
   * the record's bytes): granted and filled never count the same bytes twice. */
  size_t cost = KV_EVICT_COST(it->klen);
  aof.evict_granted -= cost < aof.evict_granted ? cost : aof.evict_granted;
  put_len('*', 2);
  put_str("DEL");
  put_arg(kv_key(it)); /* copied: the eviction is to free the item now (evict_room paid) */
  end(start, NULL);
}

/* The fill buffer's bytes nobody has claimed: neither filled nor granted to an allocation's
 * evictions (lock held). */
static size_t unclaimed(void)
{
  size_t claimed = aof.fill_len + aof.evict_granted;
  return claimed < aof.cap ? aof.cap - claimed : 0;
}

/* Evictions the log can take now: what the fill buffer has beyond the room kept for admitted
 * commands, reserved for this allocation (each record takes its cost out as it is written, see
 * evicted(); evict_done() returns the rest). KV_EVICT_COST is at least a DEL record's bytes. */
static size_t evict_room(void)
{
  lock();
  size_t free = unclaimed(), grant = free > aof.room ? free - aof.room : 0;
  aof.evict_granted += grant;
  unlock();
  return grant;
}

static void evict_done(size_t left)
{
  lock();
  aof.evict_granted -= left < aof.evict_granted ? left : aof.evict_granted;
  unlock();
}

void kvd_aof_item(rw_conn *c, kv_item *it)
{
  if (!aof.on)
    return;
  struct mark start = begin();
  put_len('*', 3 + (it->expire_ms ? 2 : 0) + (it->flags ? 2 : 0));
  put_str("SET");
  put_item_arg(it, kv_key(it));
  put_item_arg(it, (rw_span){kv_value(it), it->vlen});
  if (it->expire_ms) {
    put_str("PXAT");
    put_num(kvd_to_unix(c, it->expire_ms));
  }
  if (it->flags) {
    put_str("FLAGS");
    put_num(it->flags);
  }
  end(start, c);
}

void kvd_aof_del(rw_conn *c, kv_item *it)
{
  if (!aof.on)
    return;
  struct mark start = begin();
  put_len('*', 2);
  put_str("DEL");
  put_item_arg(it, kv_key(it));
  end(start, c);
}

void kvd_aof_expire(rw_conn *c, kv_item *it)
{
  if (!aof.on)
    return;
  struct mark start = begin();
  put_len('*', it->expire_ms ? 3 : 2);
  put_str(it->expire_ms ? "PEXPIREAT" : "PERSIST");
  put_item_arg(it, kv_key(it));
  if (it->expire_ms)
    put_num(kvd_to_unix(c, it->expire_ms));
  end(start, c);
}

void kvd_aof_flush(rw_conn *c, int64_t at_ms)
{
  if (!aof.on)
    return;
  struct mark start = begin();
  put_len('*', at_ms ? 3 : 1);
  put_str("FLUSHALL");
  if (at_ms) {
    put_str("PXAT");
    put_num(kvd_to_unix(c, at_ms));
  }
  end(start, c);
}

/* ---- the store's write operations, journaled ---- */

static int wait_room(rw_conn *c);

/* Whether records waiting to be written hold items pinned (they go once the batch is out). */
static bool log_pins(void)
{
  if (!aof.on)
    return false;
  lock();
  bool pins = aof.fill_refs || aof.inflight;
  unlock();
  return pins;
}

kv_item *kvd_find(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, int64_t now_ms)
{
  kv_item *it = kv_find(&kvd.store, sh, key, hash, now_ms);
  kvd_aof_read(c);
  return it;
}

/* Nothing larger than a request may carry (APPEND could build one), so that the log can replay
 * it: a SET record's key and value fit the RESP spec's limit for one request (its data, plus the
 * framing it allows for every item: a few short arguments' worth kept spare). */
static bool too_big(rw_span key, size_t vlen)
{
  return vlen > KVD_VALUE_MAX || key.len > KVD_KEY_MAX || key.len + vlen > (size_t)KVD_VALUE_MAX + 16384;
}

/* An allocation's failure as kvd_put() returns it. */
static int alloc_failed(rw_conn *c, int rc)
{
  if (rc == -EAGAIN) /* the evictions it needs are more than the log can take before a swap */
    return wait_room(c);
  if (rc == -EBUSY) /* pinned items are in the way: worth waiting for if the log holds pins */
    return log_pins() ? wait_room(c) : -ENOMEM;
  return rc;
}

int kvd_alloc(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, size_t vlen, const kv_item *keep,
              kv_item **out_it)
{
  if (too_big(key, vlen))
    return -E2BIG;
  int rc = kv_alloc(&kvd.store, sh, key, hash, vlen, keep, out_it);
  return rc < 0 ? alloc_failed(c, rc) : 0;
}

void kvd_link(rw_conn *c, kv_shard *sh, kv_item *it, int64_t now_ms)
{
  kv_link(sh, it, now_ms);
  kvd_aof_item(c, it);
}

int kvd_put(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, rw_span a, rw_span b, uint32_t flags,
            int64_t expire_ms, const kv_item *keep, int64_t now_ms)
{
  if (too_big(key, a.len + b.len))
    return -E2BIG;
  kv_item *it;
  int rc = kv_put(&kvd.store, sh, key, hash, a, b, flags, expire_ms, keep, now_ms, &it);
  if (rc < 0)
    return alloc_failed(c, rc);
  kvd_aof_item(c, it);
  return 0;
}

void kvd_delete(rw_conn *c, kv_shard *sh, kv_item *it)
{
  kvd_aof_del(c, it); /* (pinned if the record refers to it: deleted, kept until written) */
  kv_delete(sh, it);
}

void kvd_set_expire(rw_conn *c, kv_shard *sh, kv_item *it, int64_t expire_ms)
{
  kv_set_expire(sh, it, expire_ms);
  kvd_aof_expire(c, it);
}

/* Every shard locked while the record is appended: no write of another worker can fall between
 * the record and the flush. */
void kvd_flush(rw_conn *c)
{
  kv_store *st = &kvd.store;
  for (unsigned i = 0; i < st->nshards; i++)
    if (st->shards[i].locking)
      pthread_mutex_lock(&st->shards[i].lock);
  kvd_aof_flush(c, 0);
  for (unsigned i = 0; i < st->nshards; i++) {
    kv_clear(&st->shards[i]);
    kv_unlock(&st->shards[i]);
  }
}

/* ---- admission: a write command starts only with room for its records ---- */

/* The connection's command is dispatched again after the next batch swap: -EAGAIN. */
static int wait_room(rw_conn *c)
{
  struct kvd_conn *kc = rw_conn_user(c);
  if (!kc->aof_waiting) {
    rw_worker *w = rw_conn_worker(c);
    struct aof_worker *aw = &aof.aw[rw_worker_id(w)];
    kc->aof_waiting = true;
    list_add(w, aw->waiting, &aw->nwaiting, rw_conn_handle(c));
  }
  return -EAGAIN;
}

int kvd_aof_admit(rw_conn *c)
{
  if (!aof.on)
    return 0;
  lock();
  int err = aof.error;
  bool room = unclaimed() >= aof.room && aof.ref_cap - aof.fill_refs >= aof.ref_room;
  unlock();
  if (err)
    return err;
  return room ? 0 : wait_room(c);
}

/* ---- the write path ---- */

static bool submit_write(rw_worker *w);
static void write_done(rw_fileop *op, int64_t res);
static void unpin_batch(void);

/* On worker `w`: releases what the durable offset now covers and lets waiting writers retry. */
static void release(rw_worker *w)
{
  struct aof_worker *aw = &aof.aw[rw_worker_id(w)];
  uint64_t durable = atomic_load(&aof.durable);
  uint32_t keep = 0;
  for (uint32_t i = 0; i < aw->ncorked; i++) {
    rw_conn *c = rw_conn_from_handle(w, aw->corked[i]);
    if (!c)
      continue; /* closed meanwhile */
    struct kvd_conn *kc = rw_conn_user(c);
    if (kc->aof_wait <= durable) {
      kc->aof_corked = false;
      rw_conn_uncork(c);
    } else {
      aw->corked[keep++] = aw->corked[i];
    }
  }
  aw->ncorked = keep;
  for (uint32_t i = 0; i < aw->nwaiting; i++) {
    rw_conn *c = rw_conn_from_handle(w, aw->waiting[i]);
    if (c) {
      ((struct kvd_conn *)rw_conn_user(c))->aof_waiting = false;
      rw_conn_resume(c);
    }
  }
  aw->nwaiting = 0;
}

static void on_notify(rw_worker *w, rw_msg *m)
{
  (void)m;
  atomic_store(&aof.aw[rw_worker_id(w)].pending, false);
  release(w);
}

static void notify_all(rw_worker *self)
{
  for (unsigned i = 0; i < aof.workers; i++) {
    if (i == rw_worker_id(self))
      release(self);
    else if (!atomic_exchange(&aof.aw[i].pending, true))
      rw_worker_post(self, aof.srv, i, &aof.aw[i].msg);
  }
}

/* A write or fsync failed: with --fsync always nothing corked may ever be acknowledged, so the
 * process exits as redis does; otherwise writes are refused from now on (MISCONF). `ends_batch`:
 * the failure is the batch's own (its write, or its submission), which is then over; a failed
 * background fsync leaves a batch in flight alone (the kernel may still be reading its items). */
static void failed(rw_worker *w, int err, bool ends_batch)
{
  fprintf(stderr, "kvd: AOF %s: %s\n", aof.path, strerror(-err));
  if (aof.policy == KVD_FSYNC_ALWAYS) {
    fprintf(stderr, "kvd: cannot recover from an AOF error with --fsync always: exiting\n");
    _exit(1);
  }
  if (ends_batch)
    unpin_batch(); /* (before `inflight` drops: nothing else touches the batch until then) */
  lock();
  aof.error = err;
  if (ends_batch)
    aof.inflight = false;
  unlock();
  notify_all(w); /* writers waiting for room retry, and are refused */
}

static void batch_done(rw_worker *w)
{
  lock();
  aof.durable = aof.inflight_end;
  aof.inflight = false;
  unlock();
  /* What other workers appended meanwhile goes next; either way every worker hears of it. */
  if (!submit_write(w))
    notify_all(w);
}

static void fsync_done(rw_fileop *op, int64_t res)
{
  if (res < 0) {
    failed(op->job.w, (int)res, true);
    return;
  }
  aof.fsyncs++;
  batch_done(op->job.w);
}

/* The batch's pieces in file order: its buffer, with each reference's bytes at its place. */
static uint32_t gather(int side, size_t len, uint32_t nrefs, struct iovec *iov)
{
  uint32_t n = 0;
  size_t at = 0;
  for (uint32_t i = 0; i < nrefs; i++) {
    const struct aof_ref *r = &aof.refs[side][i];
    if (r->at > at)
      iov[n++] = (struct iovec){aof.buf[side] + at, r->at - at};
    iov[n++] = (struct iovec){(void *)r->p, r->len};
    at = r->at;
  }
  if (len > at)
    iov[n++] = (struct iovec){aof.buf[side] + at, len - at};
  return n;
}

/* A checksum record holding `crc`: fixed length, whatever the sum. */
static void sum_record(char out[SUM_LEN], uint32_t crc)
{
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "*2\r\n$6\r\nKVDCRC\r\n$8\r\n", SUM_LEN - 10);
  for (int i = 0; i < 8; i++)
    out[SUM_LEN - 10 + i] = hex[(crc >> (28 - 4 * i)) & 15];
  memcpy(out + SUM_LEN - 2, "\r\n", 2);
}

/* Ends the batch gathered in iov[0..n) with its checksum record (side `side`'s), the CRC32C of
 * the file up to it: taken over the pieces where they lie, referred values included. Call in
 * file order, one batch at a time. Returns the count of pieces, the record's included. */
static uint32_t seal(int side, struct iovec *iov, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    aof.crc = kvd_crc32c(aof.crc, iov[i].iov_base, iov[i].iov_len);
  sum_record(aof.sum[side], aof.crc);
  aof.crc = kvd_crc32c(aof.crc, aof.sum[side], SUM_LEN);
  iov[n] = (struct iovec){aof.sum[side], SUM_LEN};
  return n + 1;
}

/* Drops the first `done` bytes of iov[*i..n). */
static void iov_advance(struct iovec *iov, uint32_t n, uint32_t *i, size_t done)
{
  while (*i < n && done >= iov[*i].iov_len)
    done -= iov[(*i)++].iov_len;
  if (*i < n && done) {
    iov[*i].iov_base = (uint8_t *)iov[*i].iov_base + done;
    iov[*i].iov_len -= done;
  }
}

static int write_more(rw_worker *w)
{
  uint32_t k = aof.iov_n - aof.iov_i < IOV_MAX ? aof.iov_n - aof.iov_i : IOV_MAX;
  return rw_file_writev(w, &aof.op, aof.fd, aof.iov + aof.iov_i, (int)k, RW_FILE_POS, write_done);
}

/* The batch is in the file: the items its references pinned may go. Called without the log's
 * lock (the order is shard, then log: records are appended under their shard's lock), while
 * the batch is still in flight, so that nothing else touches its side. */
static void unpin_batch(void)
{
  for (uint32_t i = 0; i < aof.batch_refs; i++)
    kv_release(&kvd.store, aof.refs[aof.fill ^ 1][i].it);
  aof.batch_refs = 0;
}

static void write_done(rw_fileop *op, int64_t res)
{
  rw_worker *w = op->job.w;
  if (res <= 0) {
    failed(w, res < 0 ? (int)res : -EIO, true);
    return;
  }
  iov_advance(aof.iov, aof.iov_n, &aof.iov_i, (size_t)res);
  int rc = 0;
  if (aof.iov_i < aof.iov_n) { /* a short write, or more pieces than one call takes */
    rc = write_more(w);
  } else {
    unpin_batch();
    if (aof.policy == KVD_FSYNC_ALWAYS)
      rc = rw_file_fsync(w, &aof.op, aof.fd, true, fsync_done);
    else
      batch_done(w);
  }
  if (rc < 0)
    failed(w, rc, true);
}

/* Swaps the buffers and writes what was filled, unless a write is in flight (its completion
 * comes back here). True when it did, having told every worker (the fill buffer is free again,
 * and the durable offset they read is current). */
static bool submit_write(rw_worker *w)
{
  lock();
  if (aof.inflight || !aof.fill_bytes || aof.error) {
    unlock();
    return false;
  }
  int side = aof.fill;
  aof.inflight = true;
  aof.inflight_end = atomic_load_explicit(&aof.appended, memory_order_relaxed) + SUM_LEN;
  atomic_store_explicit(&aof.appended, aof.inflight_end, memory_order_relaxed);
  aof.batch_len = aof.fill_bytes + SUM_LEN;
  aof.batch_buf_len = aof.fill_len;
  aof.batch_refs = aof.fill_refs;
  aof.iov_n = gather(side, aof.fill_len, aof.fill_refs, aof.iov);
  aof.iov_i = 0;
  aof.fill ^= 1;
  aof.fill_len = 0;
  aof.fill_refs = 0;
  aof.fill_bytes = 0;
  unlock();
  aof.iov_n = seal(side, aof.iov, aof.iov_n); /* (the side is this worker's until the write ends) */
  aof.writes++;
  int rc = write_more(w);
  if (rc < 0)
    failed(w, rc, true);
  notify_all(w); /* the fill buffer is empty again: waiting writers may go on */
  return true;
}

void kvd_aof_turn_end(rw_worker *w, void *data)
{
  (void)data;
  if (aof.on)
    submit_write(w);
}

static void everysec_done(rw_fileop *op, int64_t res)
{
  struct aof_worker *aw = op->data;
  aw->sync_inflight = false;
  if (res < 0)
    failed(op->job.w, (int)res, false);
  else
    aof.fsyncs++;
}

static void everysec(rw_timer *t)
{
  rw_worker *w = t->data;
  struct aof_worker *aw = &aof.aw[rw_worker_id(w)];
  if (!aw->sync_inflight && !aof.error) {
    aw->sync_op.data = aw;
    if (rw_file_fsync(w, &aw->sync_op, aof.fd, true, everysec_done) == 0)
      aw->sync_inflight = true;
  }
  rw_timer_arm(w, t, EVERYSEC_MS);
}

void kvd_aof_worker_start(rw_worker *w)
{
  if (!aof.on || aof.policy != KVD_FSYNC_EVERYSEC || rw_worker_id(w) != 0)
    return;
  rw_timer *t = &aof.aw[0].everysec;
  rw_timer_init(t, everysec, w);
  rw_timer_arm(w, t, EVERYSEC_MS);
}

/* ---- start and stop ---- */

/* A new log starts with the store's hash seed ("KVDSEED n"), so that a replay puts every key in
 * the shard it was in: with a fresh seed the keys would spread over the shards differently, and a
 * shard that was full could not take its new share (a full store without eviction lost
 * acknowledged keys at restart). Written before anything else, synchronously, as a batch of its
 * own (with its checksum record). 0 or -errno. */
static int seed_log(int fd)
{
  char num[24], rec[64 + SUM_LEN];
  size_t n = rw_fmt_u64(num, kv_hash_seed());
  int len = snprintf(rec, sizeof rec, "*2\r\n$7\r\nKVDSEED\r\n$%zu\r\n%.*s\r\n", n, (int)n, num);
  struct iovec iov[2] = {{rec, (size_t)len}};
  seal(0, iov, 1);
  memcpy(rec + len, aof.sum[0], SUM_LEN);
  len += SUM_LEN;
  if (write(fd, rec, (size_t)len) != len || fsync(fd) < 0)
    return -(errno ? errno : EIO);
  return 0;
}

static void say_replayed(const char *path, const struct kvd_aof_replayed *r, enum kvd_fsync policy)
{
  if (r->legacy)
    fprintf(stderr,
            "kvd: AOF %s has no checksum records (written before kvd had them): replayed "
            "unverified; the batches appended from now on carry them, the first one covering "
            "the whole file before it\n",
            path);
  char batches[48] = "";
  if (!r->legacy)
    snprintf(batches, sizeof batches, " in %llu checksummed batches", (unsigned long long)r->batches);
  fprintf(stderr, "kvd: AOF %s: %llu records replayed%s, fsync %s\n", path, (unsigned long long)r->records,
          batches,
          policy == KVD_FSYNC_ALWAYS     ? "always"
          : policy == KVD_FSYNC_EVERYSEC ? "everysec"
                                         : "no");
  /* The store's layout is history's (pins and reads' LRU order are not in the log; a log older
   * than its seed record also spreads keys over shards anew): replaying into the same --memory
   * can need room the running server had, and evict keys it still held. Never silently. */
  struct kv_totals t;
  kv_totals(&kvd.store, &t);
  if (t.evictions)
    fprintf(stderr,
            "kvd: AOF replay had to evict %llu times to fit --memory (the slab layout "
            "differs from the last run's): keys the last run still held may be missing; a larger "
            "--memory keeps them\n",
            (unsigned long long)t.evictions);
}

int kvd_aof_open(const char *path, enum kvd_fsync policy, bool truncate_ok)
{
  int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "kvd: --aof %s: %s\n", path, strerror(errno));
    return -errno;
  }
  struct kvd_aof_replayed r = {0};
  int rc = kvd_aof_load(fd, path, truncate_ok, &r);
  aof.crc = r.crc; /* (the file, cut or not, now ends with its valid prefix) */
  if (!rc && !r.good && (rc = seed_log(fd)) < 0)
    fprintf(stderr, "kvd: writing %s: %s\n", path, strerror(-rc));
  struct stat st;
  if (!rc && fstat(fd, &st) < 0)
    rc = -errno;
  if (rc < 0) {
    close(fd);
    return rc;
  }
  say_replayed(path, &r, policy);
  aof.fd = fd;
  aof.path = path;
  aof.policy = policy;
  aof.base = (uint64_t)st.st_size;
  return 0;
}

/* Once the worker count is known: the buffers and per-worker lists, all taken here. */
int kvd_aof_start(rw_server *srv, uint32_t max_conns)
{
  if (aof.fd < 0)
    return 0;
  aof.srv = srv;
  aof.workers = rw_server_workers(srv);
  aof.locking = aof.workers > 1;
  aof.max_conns = max_conns;
  aof.room = (size_t)ROOM_PER_WORKER * aof.workers;
  aof.cap = aof.room * 4 > (16u << 20) ? aof.room * 4 : (16u << 20);
  aof.buf[0] = malloc(aof.cap);
  aof.buf[1] = malloc(aof.cap);
  aof.ref_room = REFS_PER_WORKER * aof.workers;
  aof.ref_cap = aof.ref_room * 4;
  aof.refs[0] = calloc(aof.ref_cap, sizeof(struct aof_ref));
  aof.refs[1] = calloc(aof.ref_cap, sizeof(struct aof_ref));
  aof.iov = calloc(2 * (size_t)aof.ref_cap + 2, sizeof(struct iovec)); /* (gather, then seal) */
  aof.aw = aligned_alloc(64, aof.workers * sizeof *aof.aw);
  if (!aof.buf[0] || !aof.buf[1] || !aof.refs[0] || !aof.refs[1] || !aof.iov || !aof.aw)
    return -ENOMEM; /* (the process exits: kvd_aof_close() frees what was taken) */
  memset(aof.aw, 0, aof.workers * sizeof *aof.aw);
  for (unsigned i = 0; i < aof.workers; i++) {
    aof.aw[i].msg.fn = on_notify;
    aof.aw[i].corked = calloc(max_conns, sizeof(rw_handle));
    aof.aw[i].waiting = calloc(max_conns, sizeof(rw_handle));
    if (!aof.aw[i].corked || !aof.aw[i].waiting)
      return -ENOMEM;
  }
  /* Resident now, not on the first write. */
  memset(aof.buf[0], 0, aof.cap);
  memset(aof.buf[1], 0, aof.cap);
  kvd.store.on_evict = evicted; /* after replay: its own evictions are not news */
  kvd.store.evict_room = evict_room;
  kvd.store.evict_done = evict_done;
  kvd.store.evict_room_max = aof.cap - aof.room;
  aof.on = true;
  return 0;
}

size_t kvd_aof_bytes(void)
{
  if (!aof.on)
    return 0;
  return 2 * aof.cap + 2 * (size_t)aof.ref_cap * sizeof(struct aof_ref) +
         (2 * (size_t)aof.ref_cap + 1) * sizeof(struct iovec) +
         aof.workers * (sizeof *aof.aw + 2 * (size_t)aof.max_conns * sizeof(rw_handle));
}

/* Writes iov[i..n) synchronously (at the stop, the workers gone). */
static void write_all(struct iovec *iov, uint32_t n, uint32_t i)
{
  while (i < n) {
    ssize_t k = writev(aof.fd, iov + i, n - i < IOV_MAX ? (int)(n - i) : IOV_MAX);
    if (k <= 0) {
      fprintf(stderr, "kvd: AOF %s: final write: %s\n", aof.path, strerror(errno));
      return;
    }
    iov_advance(iov, n, &i, (size_t)k);
  }
}

/* After the workers stopped: what is still buffered goes out synchronously, then fsync. */
void kvd_aof_close(void)
{
  if (aof.fd < 0)
    return;
  bool inflight = aof.on && aof.inflight;
  if (inflight) {
    /* The stop deadline passed with a batch in flight: how much of it reached the file is read
     * from the file's size, and the rest written here, so no record is torn or doubled. */
    struct stat st;
    uint64_t start = aof.base + aof.inflight_end - aof.batch_len, done = 0;
    if (fstat(aof.fd, &st) == 0 && (uint64_t)st.st_size > start)
      done = (uint64_t)st.st_size - start < aof.batch_len ? (uint64_t)st.st_size - start : aof.batch_len;
    fprintf(stderr,
            "kvd: AOF %s: a write was in flight at the stop deadline (%llu of %zu bytes "
            "written): finishing it\n",
            aof.path, (unsigned long long)done, aof.batch_len);
    uint32_t n = gather(aof.fill ^ 1, aof.batch_buf_len, aof.batch_refs, aof.iov), i = 0;
    aof.iov[n++] = (struct iovec){aof.sum[aof.fill ^ 1], SUM_LEN}; /* (sealed at submission) */
    iov_advance(aof.iov, n, &i, done);
    write_all(aof.iov, n, i);
  }
  if (aof.on && !aof.error) {
    if (aof.fill_bytes) {
      uint32_t n = gather(aof.fill, aof.fill_len, aof.fill_refs, aof.iov);
      write_all(aof.iov, seal(aof.fill, aof.iov, n), 0);
    }
    fsync(aof.fd);
  }
  if (aof.on)
    fprintf(stderr, "kvd: AOF %s: %llu batch writes, %llu fsyncs\n", aof.path, (unsigned long long)aof.writes,
            (unsigned long long)aof.fsyncs);
  close(aof.fd);
  aof.fd = -1;
  if (!inflight) { /* else the kernel may still hold a buffer: left to the exit */
    free(aof.buf[0]);
    free(aof.buf[1]);
    free(aof.iov);
  }
  free(aof.refs[0]);
  free(aof.refs[1]);
  for (unsigned i = 0; aof.aw && i < aof.workers; i++) {
    free(aof.aw[i].corked);
    free(aof.aw[i].waiting);
  }
  free(aof.aw);
  aof.on = false;
}
