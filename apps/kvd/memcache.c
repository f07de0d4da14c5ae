/* kvd's memcache handlers: memcached 1.6's answers over the shared store. The spec
 * (spec/memcache.rw) has parsed the line, the numbers and the data block; error lines for
 * malformed input are the spec's too. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvd.h"

#define S(lit) ((rw_span){(const uint8_t *)(lit), sizeof(lit) - 1})
#define KEY_MAX 250
#define REALTIME_MAXDELTA (60 * 60 * 24 * 30) /* larger exptimes are Unix times */

/* What the six storage commands carry (each its own generated struct): copied out by field. */
struct store_msg {
  rw_span key;
  uint32_t flags;
  int64_t exptime;
  uint32_t bytes;
  rw_span noreply;
  rw_span data;
};

#define STORE_MSG(m) ((struct store_msg){(m)->key, (m)->flags, (m)->exptime, (m)->bytes, (m)->noreply, (m)->data})

enum store_mode { SET, ADD, REPLACE, APPEND, PREPEND, CAS };

/* memcached's exptime: 0 never; negative already expired; up to 30 days relative seconds;
 * beyond that a Unix time. memcached keeps 32 bits of it (a value past them wraps, as its
 * conversion from long to int32_t does), and so does kvd: the same line expires the same way,
 * and no product overflows. Returns a monotonic deadline (1: already past). */
static int64_t deadline(rw_conn *c, int64_t exptime)
{
  exptime = (int32_t)(uint32_t)(uint64_t)exptime;
  if (exptime == 0)
    return 0;
  if (exptime < 0)
    return 1;
  int64_t now = kvd_now_ms(c);
  int64_t ms = exptime > REALTIME_MAXDELTA ? exptime * 1000 - (kvd_unix_ms() - now) : now + exptime * 1000;
  return ms > 1 ? ms : 1;
}

#define ADMIT(c) KVD_ADMIT(c, rw_conn_write(c, AOF_ERROR, sizeof AOF_ERROR - 1))
static const char AOF_ERROR[] = "SERVER_ERROR AOF write error: writes refused\r\n";

/* A write the store refused (the callers return -EAGAIN, a write that must wait, themselves). */
static int reply_err(rw_conn *c, int err, bool quiet)
{
  if (quiet)
    return 0;
  return err == -E2BIG ? memcache_reply_too_large(c) : memcache_reply_no_memory(c);
}

static int do_store(rw_conn *c, const struct store_msg *m, enum store_mode mode, uint64_t unique)
{
  ADMIT(c);
  bool quiet = m->noreply.len;
  uint32_t h = kv_hash(m->key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  int64_t now = kvd_now_ms(c);
  kv_item *old = kvd_find(c, sh, m->key, h, now);
  int (*answer)(rw_conn *) = memcache_reply_stored;
  int err = 0;
  if ((mode == ADD && old) || ((mode == REPLACE || mode == APPEND || mode == PREPEND) && !old)) {
    answer = memcache_reply_not_stored;
  } else if (mode == CAS && !old) {
    answer = memcache_reply_not_found;
    KVD_STAT(c, cas_misses);
  } else if (mode == CAS && old->cas != unique) {
    answer = memcache_reply_exists;
    KVD_STAT(c, cas_badval);
  } else if (mode == APPEND || mode == PREPEND) {
    /* The item keeps its flags and expiry; only the bytes grow. */
    rw_span cur = {kv_value(old), old->vlen};
    rw_span a = mode == APPEND ? cur : m->data, b = mode == APPEND ? m->data : cur;
    err = kvd_put(c, sh, m->key, h, a, b, old->flags, old->expire_ms, old, now);
  } else {
    /* (cas and replace depend on `old`: it is kept from eviction, so that a write that must
     * wait and comes back finds it. set and add need not: a value may replace itself.) */
    const kv_item *keep = mode == CAS || mode == REPLACE ? old : NULL;
    err = kvd_put(c, sh, m->key, h, m->data, (rw_span){0}, m->flags, deadline(c, m->exptime), keep, now);
  }
  kv_unlock(sh);
  if (err == -EAGAIN) /* dispatched again: counted then */
    return err;
  KVD_STAT(c, cmd_set);
  if (mode == CAS && answer == memcache_reply_stored)
    KVD_STAT(c, cas_hits);
  if (!err && answer == memcache_reply_stored)
    KVD_STAT(c, total_items);
  if (err < 0)
    return reply_err(c, err, quiet);
  return quiet ? 0 : answer(c);
}

static int on_set(rw_conn *c, const struct memcache_set *m)
{
  return do_store(c, &STORE_MSG(m), SET, 0);
}

static int on_add(rw_conn *c, const struct memcache_add *m)
{
  return do_store(c, &STORE_MSG(m), ADD, 0);
}

static int on_replace(rw_conn *c, const struct memcache_replace *m)
{
  return do_store(c, &STORE_MSG(m), REPLACE, 0);
}

static int on_append(rw_conn *c, const struct memcache_append *m)
{
  return do_store(c, &STORE_MSG(m), APPEND, 0);
}

static int on_prepend(rw_conn *c, const struct memcache_prepend *m)
{
  return do_store(c, &STORE_MSG(m), PREPEND, 0);
}

static int on_cas(rw_conn *c, const struct memcache_cas *m)
{
  return do_store(c, &STORE_MSG(m), CAS, m->unique);
}

/* One VALUE line and the value: 0, 1 when the value goes out as a stream, or -errno. */
static int reply_item(rw_conn *c, kv_shard *sh, rw_span key, kv_item *it, bool with_cas)
{
  rw_span v = {kv_value(it), it->vlen};
  if (it->vlen < KVD_STREAM_MIN)
    return with_cas ? memcache_reply_value_cas(c, key, it->flags, v, it->cas)
                    : memcache_reply_value(c, key, it->flags, v);
  int rc = with_cas ? memcache_reply_value_cas_head(c, key, it->flags, it->vlen, it->cas)
                    : memcache_reply_value_head(c, key, it->flags, it->vlen);
  return rc < 0 ? rc : kvd_stream_value(c, sh, it);
}

/* get and gets: every key checked first (the spec leaves the list's key lengths to us), then
 * one VALUE per hit, then END. */
static int retrieve(rw_conn *c, rw_span keys, bool with_cas)
{
  rw_span rest = keys, key;
  while (!rw_span_next(&rest, ' ', &key))
    if (key.len > KEY_MAX)
      return memcache_reply_bad_format(c);
  int rc = 0;
  int64_t now = kvd_now_ms(c);
  struct kvd_conn *kc = rw_conn_user(c);
  uint32_t done = kc->next_key;
  rest = keys;
  for (uint32_t i = 0; rc >= 0 && !rw_span_next(&rest, ' ', &key); i++) {
    if (i < done)
      continue; /* answered before a value that went out as a stream */
    uint32_t h = kv_hash(key);
    kv_shard *sh = kv_lock(&kvd.store, h);
    kv_item *it = kvd_find(c, sh, key, h, now);
    KVD_STAT(c, cmd_get);
    if (it) {
      KVD_STAT(c, get_hits);
      rc = reply_item(c, sh, key, it, with_cas);
    } else {
      KVD_STAT(c, get_misses);
    }
    kv_unlock(sh);
    if (rc == 1) { /* dispatched again when the stream is done, for the rest and END */
      kc->next_key = i + 1;
      return -EAGAIN;
    }
  }
  kc->next_key = 0;
  return rc < 0 ? rc : memcache_reply_end(c);
}

static int on_get(rw_conn *c, const struct memcache_get *m)
{
  return retrieve(c, m->keys, false);
}

static int on_gets(rw_conn *c, const struct memcache_gets *m)
{
  return retrieve(c, m->keys, true);
}

static int on_delete(rw_conn *c, const struct memcache_delete *m)
{
  ADMIT(c);
  uint32_t h = kv_hash(m->key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  kv_item *it = kvd_find(c, sh, m->key, h, kvd_now_ms(c));
  if (it)
    kvd_delete(c, sh, it);
  kv_unlock(sh);
  if (it)
    KVD_STAT(c, delete_hits);
  else
    KVD_STAT(c, delete_misses);
  if (m->noreply.len)
    return 0;
  return it ? memcache_reply_deleted(c) : memcache_reply_not_found(c);
}

/* memcached's number: decimal digits (trailing blanks allowed, as its own padding leaves) that
 * fit 64 bits. */
static bool parse_counter(rw_span v, uint64_t *out_v)
{
  size_t n = v.len;
  while (n && v.p[n - 1] == ' ')
    n--;
  if (!n || n > 20)
    return false;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9' || __builtin_mul_overflow(x, 10, &x) ||
        __builtin_add_overflow(x, (uint64_t)(v.p[i] - '0'), &x))
      return false;
  }
  *out_v = x;
  return true;
}

static int add_delta(rw_conn *c, rw_span key, uint64_t delta, bool incr, rw_span noreply)
{
  ADMIT(c);
  uint32_t h = kv_hash(key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  int64_t now = kvd_now_ms(c);
  kv_item *it = kvd_find(c, sh, key, h, now);
  uint64_t v = 0;
  int err = 0;
  bool numeric = it && parse_counter((rw_span){kv_value(it), it->vlen}, &v);
  if (numeric) {
    /* incr wraps at 2^64; decr stops at 0: memcached's arithmetic. */
    v = incr ? v + delta : delta > v ? 0 : v - delta;
    char buf[24];
    size_t n = rw_fmt_u64(buf, v);
    err = kvd_put(c, sh, key, h, (rw_span){(const uint8_t *)buf, n}, (rw_span){0}, it->flags, it->expire_ms, it, now);
  }
  kv_unlock(sh);
  if (err == -EAGAIN) /* dispatched again: counted then */
    return err;
  struct kvd_stats *st = kvd_stats_of(c);
  kvd_stat_add(incr ? (it ? &st->incr_hits : &st->incr_misses) : (it ? &st->decr_hits : &st->decr_misses), 1);
  if (err < 0 || noreply.len)
    return err < 0 ? reply_err(c, err, noreply.len) : 0;
  if (!it)
    return memcache_reply_not_found(c);
  if (!numeric)
    return memcache_reply_non_numeric(c);
  return memcache_reply_number(c, v);
}

static int on_incr(rw_conn *c, const struct memcache_incr *m)
{
  return add_delta(c, m->key, m->delta, true, m->noreply);
}

static int on_decr(rw_conn *c, const struct memcache_decr *m)
{
  return add_delta(c, m->key, m->delta, false, m->noreply);
}

static int on_touch(rw_conn *c, const struct memcache_touch *m)
{
  ADMIT(c);
  uint32_t h = kv_hash(m->key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  kv_item *it = kvd_find(c, sh, m->key, h, kvd_now_ms(c));
  if (it)
    kvd_set_expire(c, sh, it, deadline(c, m->exptime));
  kv_unlock(sh);
  KVD_STAT(c, cmd_touch);
  if (it)
    KVD_STAT(c, touch_hits);
  else
    KVD_STAT(c, touch_misses);
  if (m->noreply.len)
    return 0;
  return it ? memcache_reply_touched(c) : memcache_reply_not_found(c);
}

/* flush_all [delay]: at once, every shard is emptied; with a delay, items stored before the
 * deadline disappear when it passes (checked lazily and by the sweep). */
static int flush(rw_conn *c, int64_t delay, rw_span noreply)
{
  ADMIT(c);
  KVD_STAT(c, cmd_flush);
  if (delay > 0) {
    atomic_store(&kvd.store.flush_at_ms, deadline(c, delay));
    kvd_aof_flush(c, deadline(c, delay));
  } else {
    kvd_flush(c);
  }
  return noreply.len ? 0 : memcache_reply_ok(c);
}

static int on_flush_all(rw_conn *c, const struct memcache_flush_all *m)
{
  return flush(c, 0, m->noreply);
}

static int on_flush_all_in(rw_conn *c, const struct memcache_flush_all_in *m)
{
  return flush(c, m->delay, m->noreply);
}

static int on_verbosity(rw_conn *c, const struct memcache_verbosity *m)
{
  return m->noreply.len ? 0 : memcache_reply_ok(c);
}

static int stat_num(rw_conn *c, const char *name, uint64_t v)
{
  return memcache_reply_stat_num(c, (rw_span){(const uint8_t *)name, strlen(name)}, v);
}

static int general_stats(rw_conn *c)
{
  struct kv_totals t;
  kv_totals(&kvd.store, &t);
  int64_t up = (kvd_now_ms(c) - kvd.start_ms) / 1000;
  const struct {
    const char *name;
    uint64_t v;
  } stats[] = {
      {"pid", (uint64_t)getpid()},
      {"uptime", (uint64_t)up},
      {"time", (uint64_t)(kvd_unix_ms() / 1000)},
      {"pointer_size", 64},
      {"threads", kvd.workers},
      {"cmd_get", KVD_STAT_SUM(cmd_get)},
      {"cmd_set", KVD_STAT_SUM(cmd_set)},
      {"cmd_flush", KVD_STAT_SUM(cmd_flush)},
      {"cmd_touch", KVD_STAT_SUM(cmd_touch)},
      {"get_hits", KVD_STAT_SUM(get_hits)},
      {"get_misses", KVD_STAT_SUM(get_misses)},
      {"get_expired", t.expired},
      {"delete_misses", KVD_STAT_SUM(delete_misses)},
      {"delete_hits", KVD_STAT_SUM(delete_hits)},
      {"incr_misses", KVD_STAT_SUM(incr_misses)},
      {"incr_hits", KVD_STAT_SUM(incr_hits)},
      {"decr_misses", KVD_STAT_SUM(decr_misses)},
      {"decr_hits", KVD_STAT_SUM(decr_hits)},
      {"cas_misses", KVD_STAT_SUM(cas_misses)},
      {"cas_hits", KVD_STAT_SUM(cas_hits)},
      {"cas_badval", KVD_STAT_SUM(cas_badval)},
      {"touch_hits", KVD_STAT_SUM(touch_hits)},
      {"touch_misses", KVD_STAT_SUM(touch_misses)},
      {"limit_maxbytes", kvd.store.memory},
      {"bytes", t.bytes},
      {"curr_items", t.items},
      {"total_items", KVD_STAT_SUM(total_items)},
      {"expired_unfetched", t.expired},
      {"evictions", t.evictions},
      {"reclaimed", t.reclaimed_pages},
  };
  int rc = memcache_reply_stat(c, S("version"), S("1.6.18-ringwright"));
  for (size_t i = 0; i < sizeof stats / sizeof *stats && rc >= 0; i++)
    rc = stat_num(c, stats[i].name, stats[i].v);
  return rc < 0 ? rc : memcache_reply_end(c);
}

static int on_stats(rw_conn *c, const struct memcache_stats *m)
{
  rw_span rest = m->args, sub;
  if (rw_span_next(&rest, ' ', &sub))
    return general_stats(c);
  if (sub.len == 5 && !memcmp(sub.p, "reset", 5)) {
    /* Counters belong to their workers: zeroing another's races with its next increment, and
     * loses at most that one, as memcached's own reset may. */
    for (unsigned w = 0; w < kvd.workers; w++)
      for (_Atomic uint64_t *f = &kvd.stats[w].cmd_get; f <= &kvd.stats[w].commands; f++)
        atomic_store_explicit(f, 0, memory_order_relaxed);
    return memcache_reply_reset(c);
  }
  static const char *const empty[] = {"settings", "items", "slabs", "sizes", "conns"};
  for (size_t i = 0; i < sizeof empty / sizeof *empty; i++)
    if (sub.len == strlen(empty[i]) && !memcmp(sub.p, empty[i], sub.len))
      return memcache_reply_end(c);
  return memcache_reply_error(c);
}

/* The lookahead: get and gets (their first key) and set, the commands a pipeline repeats. */
void kvd_memcache_peek(rw_conn *c, int cmd, const void *msg)
{
  (void)c;
  if (cmd < 0) {
    kvd_peek_end();
  } else if (cmd == MEMCACHE_CMD_GET || cmd == MEMCACHE_CMD_GETS) {
    rw_span keys = cmd == MEMCACHE_CMD_GET ? ((const struct memcache_get *)msg)->keys
                                           : ((const struct memcache_gets *)msg)->keys;
    const uint8_t *sp = memchr(keys.p, ' ', keys.len);
    kvd_peek_key((rw_span){keys.p, sp ? (size_t)(sp - keys.p) : keys.len});
  } else if (cmd == MEMCACHE_CMD_SET) {
    kvd_peek_key(((const struct memcache_set *)msg)->key);
  }
}

const struct memcache_handlers kvd_memcache_handlers = {
    .get = on_get, .gets = on_gets, .set = on_set, .add = on_add, .replace = on_replace,
    .append = on_append, .prepend = on_prepend, .cas = on_cas, .delete_ = on_delete,
    .incr = on_incr, .decr = on_decr, .touch = on_touch, .flush_all = on_flush_all,
    .flush_all_in = on_flush_all_in, .verbosity = on_verbosity, .stats = on_stats,
};
