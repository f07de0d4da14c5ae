/* kvd: memcached's operations over the shared store, as memcached 1.6 performs them. The text
 * protocol (memcache.c) and the binary one (memcache_binary.c) both call these: what a command
 * does, what it counts and how it ends are decided here once; each protocol words the outcome
 * (STORED or status 0, NOT_FOUND or "Not found", ...). Callers admit writes first (KVD_ADMIT),
 * with their own protocol's refusal. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kvd.h"

#define REALTIME_MAXDELTA (60 * 60 * 24 * 30) /* larger exptimes are Unix times */

int64_t kvd_mc_deadline(const rw_conn *c, int64_t exptime)
{
  if (exptime == 0)
    return 0;
  if (exptime < 0)
    return 1;
  int64_t now = kvd_now_ms(c);
  int64_t ms = exptime > REALTIME_MAXDELTA ? exptime * 1000 - (kvd_unix_ms() - now) : now + exptime * 1000;
  return ms > 1 ? ms : 1;
}

int kvd_mc_store(rw_conn *c, enum kvd_mc_mode mode, rw_span key, rw_span data, uint32_t flags,
                 int64_t expire_ms, uint64_t cas, uint64_t *out_cas)
{
  uint32_t h = kv_hash(key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  int64_t now = kvd_now_ms(c);
  kv_item *old = kvd_find(c, sh, key, h, now);
  bool grows = mode == KVD_MC_APPEND || mode == KVD_MC_PREPEND;
  int rc = KVD_MC_DONE;
  if ((mode == KVD_MC_ADD && old) || ((mode == KVD_MC_REPLACE || grows) && !old)) {
    rc = KVD_MC_NOT_STORED;
  } else if (mode == KVD_MC_CAS && !old) {
    rc = KVD_MC_NOT_FOUND;
  } else if ((mode == KVD_MC_CAS || (grows && cas)) && old->cas != cas) {
    rc = KVD_MC_EXISTS;
  } else if (grows) {
    /* The item keeps its flags and expiry; only the bytes grow. */
    rw_span cur = {kv_value(old), old->vlen};
    rw_span a = mode == KVD_MC_APPEND ? cur : data, b = mode == KVD_MC_APPEND ? data : cur;
    rc = kvd_put(c, sh, key, h, a, b, old->flags, old->expire_ms, old, now);
  } else {
    /* (cas and replace depend on `old`: it is kept from eviction, so that a write that must
     * wait and comes back finds it. set and add need not: a value may replace itself.) */
    const kv_item *keep = mode == KVD_MC_CAS || mode == KVD_MC_REPLACE ? old : NULL;
    rc = kvd_put(c, sh, key, h, data, (rw_span){0}, flags, expire_ms, keep, now);
  }
  if (rc == KVD_MC_DONE)
    *out_cas = kv_last_cas(sh);
  kv_unlock(sh);
  if (rc == -EAGAIN) /* dispatched again: counted then */
    return rc;
  KVD_STAT(c, cmd_set);
  if (mode == KVD_MC_CAS && rc >= 0)
    kvd_stat_add(rc == KVD_MC_DONE     ? &kvd_stats_of(c)->cas_hits
                 : rc == KVD_MC_EXISTS ? &kvd_stats_of(c)->cas_badval
                                       : &kvd_stats_of(c)->cas_misses,
                 1);
  if (rc == KVD_MC_DONE)
    KVD_STAT(c, total_items);
  return rc;
}

kv_item *kvd_mc_fetch(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, bool touch, int64_t expire_ms)
{
  kv_item *it = kvd_find(c, sh, key, hash, kvd_now_ms(c));
  if (it && touch)
    kvd_set_expire(c, sh, it, expire_ms);
  struct kvd_stats *st = kvd_stats_of(c);
  kvd_stat_add(touch ? &st->cmd_touch : &st->cmd_get, 1);
  kvd_stat_add(touch ? (it ? &st->touch_hits : &st->touch_misses) : (it ? &st->get_hits : &st->get_misses),
               1);
  return it;
}

int kvd_mc_delete(rw_conn *c, rw_span key, uint64_t cas)
{
  uint32_t h = kv_hash(key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  kv_item *it = kvd_find(c, sh, key, h, kvd_now_ms(c));
  int rc = !it ? KVD_MC_NOT_FOUND : cas && it->cas != cas ? KVD_MC_EXISTS : KVD_MC_DONE;
  if (rc == KVD_MC_DONE)
    kvd_delete(c, sh, it);
  kv_unlock(sh);
  if (rc == KVD_MC_DONE)
    KVD_STAT(c, delete_hits);
  else if (rc == KVD_MC_NOT_FOUND)
    KVD_STAT(c, delete_misses);
  return rc;
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

int kvd_mc_delta(rw_conn *c, rw_span key, bool incr, uint64_t delta, uint64_t cas,
                 const struct kvd_mc_initial *init, uint64_t *out_value, uint64_t *out_cas)
{
  uint32_t h = kv_hash(key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  int64_t now = kvd_now_ms(c);
  kv_item *it = kvd_find(c, sh, key, h, now);
  uint64_t v = 0;
  int rc = KVD_MC_DONE;
  char buf[24];
  if (!it && !init) {
    rc = KVD_MC_NOT_FOUND;
  } else if (!it) { /* (binary: created with the initial value, as an add) */
    v = init->value;
    rc = kvd_put(c, sh, key, h, (rw_span){(const uint8_t *)buf, rw_fmt_u64(buf, v)}, (rw_span){0}, 0,
                 init->expire_ms, NULL, now);
  } else if (!it->vlen) { /* (memcached looks at the CAS only for a value that could count) */
    rc = KVD_MC_NON_NUMERIC;
  } else if (cas && it->cas != cas) {
    rc = KVD_MC_EXISTS;
  } else if (!parse_counter((rw_span){kv_value(it), it->vlen}, &v)) {
    rc = KVD_MC_NON_NUMERIC;
  } else {
    /* incr wraps at 2^64; decr stops at 0: memcached's arithmetic. */
    v = incr ? v + delta : delta > v ? 0 : v - delta;
    rc = kvd_put(c, sh, key, h, (rw_span){(const uint8_t *)buf, rw_fmt_u64(buf, v)}, (rw_span){0}, it->flags,
                 it->expire_ms, it, now);
  }
  if (rc == KVD_MC_DONE) {
    *out_value = v;
    *out_cas = kv_last_cas(sh);
  }
  kv_unlock(sh);
  if (rc == -EAGAIN) /* dispatched again: counted then */
    return rc;
  struct kvd_stats *st = kvd_stats_of(c);
  if (it || !init) /* (a counter created from its initial value is neither) */
    kvd_stat_add(incr ? (it ? &st->incr_hits : &st->incr_misses) : (it ? &st->decr_hits : &st->decr_misses),
                 1);
  return rc;
}

void kvd_mc_flush(rw_conn *c, int64_t at_ms)
{
  KVD_STAT(c, cmd_flush);
  if (at_ms) {
    atomic_store(&kvd.store.flush_at_ms, at_ms);
    kvd_aof_flush(c, at_ms);
  } else {
    kvd_flush(c);
  }
}

/* The runtime's connection and byte counters as they were at the last `stats reset`: they only
 * grow, so memcached's reset is a baseline (any worker may write it: relaxed atomics). */
static struct {
  uint64_t accepted, refused, bytes_in, bytes_out;
} base;

static uint64_t since_reset(uint64_t now, const uint64_t *at_reset)
{
  uint64_t b = __atomic_load_n(at_reset, __ATOMIC_RELAXED);
  return now > b ? now - b : 0;
}

int kvd_mc_stats(rw_conn *c, kvd_mc_stat_fn emit, const void *arg)
{
  struct kv_totals t;
  kv_totals(&kvd.store, &t);
  rw_stats rs;
  rw_server_stats(rw_worker_server(rw_conn_worker(c)), &rs);
  int64_t up = (kvd_now_ms(c) - kvd.start_ms) / 1000;
  const struct {
    const char *name;
    uint64_t v;
  } stats[] = {
      {"pid", (uint64_t)getpid()},
      {"uptime", (uint64_t)up},
      {"time", (uint64_t)(kvd_unix_ms() / 1000)},
      {"pointer_size", 64},
      {"curr_connections", rs.open},
      {"total_connections", since_reset(rs.accepted, &base.accepted)},
      {"rejected_connections", since_reset(rs.refused[RW_REFUSED_MAX_CONNS], &base.refused)},
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
      {"bytes_read", since_reset(rs.bytes_in, &base.bytes_in)},
      {"bytes_written", since_reset(rs.bytes_out, &base.bytes_out)},
      {"limit_maxbytes", kvd.store.memory},
      {"bytes", t.bytes},
      {"curr_items", t.items},
      {"total_items", KVD_STAT_SUM(total_items)},
      {"expired_unfetched", t.expired},
      {"evictions", t.evictions},
      {"reclaimed", t.reclaimed_pages},
  };
  static const char version[] = "version", this[] = KVD_MC_VERSION;
  int rc = emit(c, arg, (rw_span){(const uint8_t *)version, sizeof version - 1},
                (rw_span){(const uint8_t *)this, sizeof this - 1});
  for (size_t i = 0; i < sizeof stats / sizeof *stats && rc >= 0; i++) {
    char num[24];
    rc = emit(c, arg, (rw_span){(const uint8_t *)stats[i].name, strlen(stats[i].name)},
              (rw_span){(const uint8_t *)num, rw_fmt_u64(num, stats[i].v)});
  }
  return rc;
}

void kvd_mc_stats_reset(rw_conn *c)
{
  rw_stats rs;
  rw_server_stats(rw_worker_server(rw_conn_worker(c)), &rs);
  __atomic_store_n(&base.accepted, rs.accepted, __ATOMIC_RELAXED);
  __atomic_store_n(&base.refused, rs.refused[RW_REFUSED_MAX_CONNS], __ATOMIC_RELAXED);
  __atomic_store_n(&base.bytes_in, rs.bytes_in, __ATOMIC_RELAXED);
  __atomic_store_n(&base.bytes_out, rs.bytes_out, __ATOMIC_RELAXED);
  /* Counters belong to their workers: zeroing another's races with its next increment, and
   * loses at most that one, as memcached's own reset may. */
  for (unsigned w = 0; w < kvd.workers; w++)
    for (_Atomic uint64_t *f = &kvd.stats[w].cmd_get; f <= &kvd.stats[w].commands; f++)
      atomic_store_explicit(f, 0, memory_order_relaxed);
}
