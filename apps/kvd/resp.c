/* kvd's RESP handlers: redis-server's string commands, replies and error texts (redis 7.0).
 * The spec (spec/resp.rw) has already split the request into items, checked the arity and
 * dispatched on the name; what is left is semantics. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kvd.h"

#define S(lit) ((rw_span){(const uint8_t *)(lit), sizeof(lit) - 1})

static const rw_span NOT_INT = S("ERR value is not an integer or out of range");
static const rw_span SYNTAX = S("ERR syntax error");
static const rw_span OOM = S("OOM command not allowed when used memory > 'maxmemory'.");
static const rw_span MISCONF =
    S("MISCONF Errors writing to the AOF file: writes are refused (see the server's log)");
static const rw_span TOO_BIG = S("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

/* A whole span as a signed 64-bit decimal, as redis's string2ll reads it: no sign but '-', no
 * leading zeros, no blanks. 0 or -EINVAL. */
static int parse_i64(rw_span s, int64_t *out_v)
{
  if (!s.len || s.len > 20)
    return -EINVAL;
  if (s.len == 1 && s.p[0] == '0') {
    *out_v = 0;
    return 0;
  }
  bool neg = s.p[0] == '-';
  size_t i = neg;
  if (i == s.len || s.p[i] < '1' || s.p[i] > '9')
    return -EINVAL;
  uint64_t v = 0;
  for (; i < s.len; i++) {
    if (s.p[i] < '0' || s.p[i] > '9' || __builtin_mul_overflow(v, 10, &v) ||
        __builtin_add_overflow(v, (uint64_t)(s.p[i] - '0'), &v))
      return -EINVAL;
  }
  if (v > (uint64_t)INT64_MAX + neg)
    return -EINVAL;
  *out_v = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

static bool eq(rw_span s, const char *lit)
{
  size_t n = strlen(lit);
  return s.len == n && !strncasecmp((const char *)s.p, lit, n);
}

#define ADMIT(c) KVD_ADMIT(c, resp_reply_error(c, MISCONF))

/* A write the store refused; -EAGAIN (it must wait for the log) goes back to the runtime, and
 * the command is dispatched again. */
static int reply_store_error(rw_conn *c, int err)
{
  if (err == -EAGAIN)
    return err;
  return resp_reply_error(c, err == -E2BIG ? TOO_BIG : OOM);
}

/* The shard of `key`, locked, and the live item there (or NULL). */
struct locked {
  kv_shard *sh;
  kv_item *it;
  uint32_t hash;
};

static struct locked lookup(rw_conn *c, rw_span key)
{
  struct locked l = {.hash = kv_hash(key)};
  l.sh = kv_lock(&kvd.store, l.hash);
  l.it = kvd_find(c, l.sh, key, l.hash, kvd_now_ms(c));
  return l;
}

/* A bulk reply with the item's value, or null: 0, 1 when the value goes out as a stream (see
 * kvd_stream_value), or -errno. Shard locked. */
static int reply_value(rw_conn *c, kv_shard *sh, kv_item *it)
{
  if (!it)
    return resp_reply_null(c);
  if (it->vlen < KVD_STREAM_MIN)
    return resp_reply_bulk(c, (rw_span){kv_value(it), it->vlen});
  int rc = resp_reply_bulk_head(c, it->vlen);
  return rc < 0 ? rc : kvd_stream_value(c, sh, it, true);
}

static int on_ping(rw_conn *c, const rw_list *a)
{
  if (a->count > 2)
    return resp_reply_wrong_args(c, S("ping"));
  return a->count == 2 ? resp_reply_bulk(c, a->item[1]) : resp_reply_pong(c);
}

static int on_echo(rw_conn *c, const rw_list *a)
{
  return resp_reply_bulk(c, a->item[1]);
}

static void count_get(rw_conn *c, bool hit)
{
  KVD_STAT(c, cmd_get);
  if (hit)
    KVD_STAT(c, get_hits);
  else
    KVD_STAT(c, get_misses);
}

static int on_get(rw_conn *c, const rw_list *a)
{
  struct locked l = lookup(c, a->item[1]);
  count_get(c, l.it);
  int rc = reply_value(c, l.sh, l.it);
  kv_unlock(l.sh);
  return rc < 0 ? rc : 0;
}

/* "ERR invalid expire time in '<cmd>' command": 0 or -errno from the reply. */
static int reply_bad_expire(rw_conn *c, const char *cmd)
{
  char msg[64];
  int len = snprintf(msg, sizeof msg, "ERR invalid expire time in '%s' command", cmd);
  return resp_reply_error(c, (rw_span){(const uint8_t *)msg, (size_t)len});
}

/* n units (unit_ms: 1000 or 1) from `unix_now`, or after the epoch when `absolute`, as a Unix-ms
 * deadline in *out. -ERANGE when that does not fit 64 bits: redis refuses such a time, and kvd's
 * log records every deadline as Unix ms. */
static int unix_deadline(int64_t n, int64_t unit_ms, bool absolute, int64_t unix_now, int64_t *out)
{
  if (__builtin_mul_overflow(n, unit_ms, out) || (!absolute && __builtin_add_overflow(*out, unix_now, out)))
    return -ERANGE;
  return 0;
}

/* A Unix-ms deadline after `unix_now` as one on the worker's clock, which the store keeps. That
 * clock counts from boot, far behind Unix time, so any such deadline fits (saturated even so). */
static int64_t worker_deadline(rw_conn *c, int64_t at, int64_t unix_now)
{
  int64_t ms;
  return __builtin_add_overflow(at - unix_now, kvd_now_ms(c), &ms) ? INT64_MAX : ms;
}

/* SET's and SETEX's expiry, as redis 7.0 takes it: a positive integer whose deadline fits 64-bit
 * Unix ms. 0 with the worker-clock deadline in *out_ms (1: already past, EXAT/PXAT in the past);
 * 1 after replying with an error; -EIO when the reply failed. */
static int parse_expire(rw_conn *c, rw_span v, int64_t unit_ms, bool absolute, const char *cmd,
                        int64_t *out_ms)
{
  int64_t n, at, unix_now = kvd_unix_ms();
  if (parse_i64(v, &n) < 0)
    return resp_reply_error(c, NOT_INT) < 0 ? -EIO : 1;
  if (n <= 0 || unix_deadline(n, unit_ms, absolute, unix_now, &at) < 0)
    return reply_bad_expire(c, cmd) < 0 ? -EIO : 1;
  *out_ms = at > unix_now ? worker_deadline(c, at, unix_now) : 1;
  return 0;
}

/* SET's expiry options. */
struct expiry_opt {
  const char *name;
  int64_t unit_ms;
  bool absolute; /* a Unix time, else from now */
};

static const struct expiry_opt EXPIRY_OPTS[] = {
    {"ex", 1000, false}, {"px", 1, false}, {"exat", 1000, true}, {"pxat", 1, true}};

static const struct expiry_opt *expiry_opt(rw_span opt)
{
  for (size_t i = 0; i < sizeof EXPIRY_OPTS / sizeof EXPIRY_OPTS[0]; i++)
    if (eq(opt, EXPIRY_OPTS[i].name))
      return &EXPIRY_OPTS[i];
  return NULL;
}

/* SET's options, as redis 7.0 parses them. */
struct set_opts {
  bool nx, xx, get, keepttl;
  const struct expiry_opt *expiry; /* NULL: none */
  rw_span ttl;                     /* the expiry's argument */
  int64_t expire_ms;               /* 0: none */
};

/* 0 with the options parsed; 1 after replying with an error; -EIO when the reply failed. The
 * expiry is checked once every option has parsed (a syntax error comes first) and may repeat
 * ("EX 1 EX 2": the last), as in redis. */
static int parse_set_opts(rw_conn *c, const rw_list *a, struct set_opts *o)
{
  for (uint32_t j = 3; j < a->count; j++) {
    rw_span opt = rw_list_at(a, j);
    const struct expiry_opt *expiry = expiry_opt(opt);
    if (eq(opt, "nx") && !o->xx) {
      o->nx = true;
    } else if (eq(opt, "xx") && !o->nx) {
      o->xx = true;
    } else if (eq(opt, "get")) {
      o->get = true;
    } else if (eq(opt, "keepttl") && !o->expiry) {
      o->keepttl = true;
    } else if (expiry && !o->keepttl && (!o->expiry || o->expiry == expiry) && j + 1 < a->count) {
      o->expiry = expiry;
      o->ttl = rw_list_at(a, ++j);
    } else {
      return resp_reply_error(c, SYNTAX) < 0 ? -EIO : 1;
    }
  }
  if (!o->expiry)
    return 0;
  return parse_expire(c, o->ttl, o->expiry->unit_ms, o->expiry->absolute, "set", &o->expire_ms);
}

/* Stores key = val (shard locked, unlocked here), then replies OK, or with the old value
 * (reply_old: SET ... GET, GETSET), which stays pinned while the new one replaces it. Nothing is
 * replied before the store has taken it, so a write that must wait (-EAGAIN) is dispatched
 * again as if new; `keep_old` when the command depends on the old item (GET, XX, KEEPTTL): it is
 * then not evicted to make room, so the command finds it again (else the old item may go, as a
 * value larger than half the shard must be able to replace itself). */
static int put_and_reply(rw_conn *c, struct locked *l, rw_span key, rw_span val, int64_t expire,
                         bool reply_old, bool keep_old)
{
  kv_item *old = reply_old ? l->it : NULL;
  if (old)
    kv_pin(l->sh, old);
  int rc = 0, err = kvd_put(c, l->sh, key, l->hash, val, (rw_span){0}, 0, expire, keep_old ? l->it : NULL,
                            kvd_now_ms(c));
  if (err != -EAGAIN) /* (dispatched again: counted then) */
    KVD_STAT(c, cmd_set);
  if (!err && reply_old)
    rc = reply_value(c, l->sh, old);
  if (old)
    kv_unpin(l->sh, old);
  kv_unlock(l->sh);
  if (err < 0)
    return reply_store_error(c, err);
  if (rc < 0)
    return rc;
  return reply_old ? 0 : resp_reply_ok(c);
}

static int on_set(rw_conn *c, const rw_list *a)
{
  struct set_opts o = {0};
  int rc = parse_set_opts(c, a, &o);
  if (rc)
    return rc < 0 ? rc : 0;
  rw_span key = a->item[1], val = a->item[2];
  ADMIT(c);
  struct locked l = lookup(c, key);
  if ((o.nx && l.it) || (o.xx && !l.it)) {
    KVD_STAT(c, cmd_set);
    rc = o.get ? reply_value(c, l.sh, l.it) : resp_reply_null(c);
    kv_unlock(l.sh);
    return rc < 0 ? rc : 0;
  }
  int64_t expire = o.keepttl && l.it ? l.it->expire_ms : o.expire_ms;
  return put_and_reply(c, &l, key, val, expire, o.get, o.get || o.xx || o.keepttl);
}

static int on_setnx(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  struct locked l = lookup(c, a->item[1]);
  int err = 0;
  if (!l.it)
    err = kvd_put(c, l.sh, a->item[1], l.hash, a->item[2], (rw_span){0}, 0, 0, NULL, kvd_now_ms(c));
  if (err != -EAGAIN)
    KVD_STAT(c, cmd_set);
  bool existed = l.it != NULL;
  kv_unlock(l.sh);
  if (err < 0)
    return reply_store_error(c, err);
  return resp_reply_integer(c, existed ? 0 : 1);
}

static int on_setex(rw_conn *c, const rw_list *a)
{
  int64_t expire;
  int rc = parse_expire(c, a->item[2], 1000, false, "setex", &expire);
  if (rc)
    return rc < 0 ? rc : 0;
  ADMIT(c);
  uint32_t h = kv_hash(a->item[1]);
  kv_shard *sh = kv_lock(&kvd.store, h);
  int err = kvd_put(c, sh, a->item[1], h, a->item[3], (rw_span){0}, 0, expire, NULL, kvd_now_ms(c));
  if (err != -EAGAIN)
    KVD_STAT(c, cmd_set);
  kv_unlock(sh);
  return err < 0 ? reply_store_error(c, err) : resp_reply_ok(c);
}

static int on_getset(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  struct locked l = lookup(c, a->item[1]);
  return put_and_reply(c, &l, a->item[1], a->item[2], 0, true, true);
}

/* A value that goes out as a stream ends this dispatch: MGET is dispatched again when it is
 * done and goes on after the keys already answered. */
static int on_mget(rw_conn *c, const rw_list *a)
{
  struct kvd_conn *kc = rw_conn_user(c);
  uint32_t done = kc->next_key;
  int rc = done ? 0 : resp_reply_array(c, a->count - 1);
  rw_list_iter it;
  rw_span key;
  rw_list_iter_init(a, &it);
  rw_list_next(a, &it, &key); /* the name */
  for (uint32_t i = 0; rc >= 0 && !rw_list_next(a, &it, &key); i++) {
    if (i < done)
      continue;
    struct locked l = lookup(c, key);
    count_get(c, l.it);
    rc = reply_value(c, l.sh, l.it);
    kv_unlock(l.sh);
    if (rc == 1 && i + 2 < a->count) {
      kc->next_key = i + 1;
      return -EAGAIN;
    }
  }
  kc->next_key = 0;
  return rc < 0 ? rc : 0;
}

/* Pair by pair, each under its own shard's lock (with several workers MSET is not atomic). A
 * pair that must wait for the log (-EAGAIN) is where the command resumes when dispatched again:
 * the pairs before it are not stored twice. */
static int on_mset(rw_conn *c, const rw_list *a)
{
  if (a->count % 2 == 0)
    return resp_reply_wrong_args(c, S("mset"));
  ADMIT(c);
  struct kvd_conn *kc = rw_conn_user(c);
  rw_list_iter it;
  rw_span key, val;
  rw_list_iter_init(a, &it);
  rw_list_next(a, &it, &key);
  int64_t now = kvd_now_ms(c);
  for (uint32_t i = 0; !rw_list_next(a, &it, &key) && !rw_list_next(a, &it, &val); i++) {
    if (i < kc->next_key)
      continue;
    uint32_t h = kv_hash(key);
    kv_shard *sh = kv_lock(&kvd.store, h);
    int err = kvd_put(c, sh, key, h, val, (rw_span){0}, 0, 0, NULL, now);
    if (err != -EAGAIN)
      KVD_STAT(c, cmd_set);
    kv_unlock(sh);
    if (err < 0) {
      kc->next_key = err == -EAGAIN ? i : 0;
      return reply_store_error(c, err);
    }
  }
  kc->next_key = 0;
  return resp_reply_ok(c);
}

/* DEL and EXISTS: how many of the keys exist (deleting them for DEL). */
static int count_keys(rw_conn *c, const rw_list *a, bool del)
{
  rw_list_iter it;
  rw_span key;
  int64_t n = 0;
  rw_list_iter_init(a, &it);
  rw_list_next(a, &it, &key);
  while (!rw_list_next(a, &it, &key)) {
    struct locked l = lookup(c, key);
    if (l.it) {
      n++;
      if (del)
        kvd_delete(c, l.sh, l.it);
    }
    kv_unlock(l.sh);
  }
  return resp_reply_integer(c, n);
}

static int on_del(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  return count_keys(c, a, true);
}

static int on_exists(rw_conn *c, const rw_list *a)
{
  return count_keys(c, a, false);
}

/* INCR, DECR, INCRBY, DECRBY: the value as a redis integer, plus `by`; keeps the TTL. */
static int add_by(rw_conn *c, rw_span key, int64_t by)
{
  ADMIT(c);
  struct locked l = lookup(c, key);
  int64_t v = 0;
  if (l.it && parse_i64((rw_span){kv_value(l.it), l.it->vlen}, &v) < 0) {
    kv_unlock(l.sh);
    return resp_reply_error(c, NOT_INT);
  }
  if (__builtin_add_overflow(v, by, &v)) {
    kv_unlock(l.sh);
    return resp_reply_error(c, S("ERR increment or decrement would overflow"));
  }
  char buf[24];
  size_t n = rw_fmt_i64(buf, v);
  int err = kvd_put(c, l.sh, key, l.hash, (rw_span){(const uint8_t *)buf, n}, (rw_span){0},
                    l.it ? l.it->flags : 0, l.it ? l.it->expire_ms : 0, l.it, kvd_now_ms(c));
  kv_unlock(l.sh);
  return err < 0 ? reply_store_error(c, err) : resp_reply_integer(c, v);
}

static int on_incr(rw_conn *c, const rw_list *a)
{
  return add_by(c, a->item[1], 1);
}

static int on_decr(rw_conn *c, const rw_list *a)
{
  return add_by(c, a->item[1], -1);
}

static int by_arg(rw_conn *c, const rw_list *a, bool negate)
{
  int64_t by;
  if (parse_i64(a->item[2], &by) < 0)
    return resp_reply_error(c, NOT_INT);
  if (negate && by == INT64_MIN)
    return resp_reply_error(c, S("ERR decrement would overflow"));
  return add_by(c, a->item[1], negate ? -by : by);
}

static int on_incrby(rw_conn *c, const rw_list *a)
{
  return by_arg(c, a, false);
}

static int on_decrby(rw_conn *c, const rw_list *a)
{
  return by_arg(c, a, true);
}

static int on_append(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  struct locked l = lookup(c, a->item[1]);
  rw_span old = l.it ? (rw_span){kv_value(l.it), l.it->vlen} : (rw_span){0};
  int64_t len = (int64_t)(old.len + a->item[2].len);
  int err = kvd_put(c, l.sh, a->item[1], l.hash, old, a->item[2], l.it ? l.it->flags : 0,
                    l.it ? l.it->expire_ms : 0, l.it, kvd_now_ms(c));
  kv_unlock(l.sh);
  return err < 0 ? reply_store_error(c, err) : resp_reply_integer(c, len);
}

static int on_strlen(rw_conn *c, const rw_list *a)
{
  struct locked l = lookup(c, a->item[1]);
  int64_t n = l.it ? l.it->vlen : 0;
  kv_unlock(l.sh);
  return resp_reply_integer(c, n);
}

/* EXPIRE and PEXPIRE: a TTL from now; zero or negative deletes the key, as redis does. A TTL
 * whose deadline does not fit 64-bit Unix ms is refused, key or not. */
static int set_ttl(rw_conn *c, const rw_list *a, int64_t unit_ms, const char *cmd)
{
  int64_t n, at, unix_now = kvd_unix_ms();
  if (parse_i64(a->item[2], &n) < 0)
    return resp_reply_error(c, NOT_INT);
  if (unix_deadline(n, unit_ms, false, unix_now, &at) < 0)
    return reply_bad_expire(c, cmd);
  ADMIT(c);
  struct locked l = lookup(c, a->item[1]);
  bool found = l.it != NULL;
  if (found && at <= unix_now)
    kvd_delete(c, l.sh, l.it);
  else if (found)
    kvd_set_expire(c, l.sh, l.it, worker_deadline(c, at, unix_now));
  kv_unlock(l.sh);
  return resp_reply_integer(c, found);
}

static int on_expire(rw_conn *c, const rw_list *a)
{
  return set_ttl(c, a, 1000, "expire");
}

static int on_pexpire(rw_conn *c, const rw_list *a)
{
  return set_ttl(c, a, 1, "pexpire");
}

static int get_ttl(rw_conn *c, const rw_list *a, bool ms)
{
  struct locked l = lookup(c, a->item[1]);
  int64_t v = !l.it ? -2 : !l.it->expire_ms ? -1 : l.it->expire_ms - kvd_now_ms(c);
  kv_unlock(l.sh);
  if (v >= 0 && !ms)
    v = (v + 500) / 1000;
  return resp_reply_integer(c, v);
}

static int on_ttl(rw_conn *c, const rw_list *a)
{
  return get_ttl(c, a, false);
}

static int on_pttl(rw_conn *c, const rw_list *a)
{
  return get_ttl(c, a, true);
}

static int on_persist(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  struct locked l = lookup(c, a->item[1]);
  bool had = l.it && l.it->expire_ms;
  if (had)
    kvd_set_expire(c, l.sh, l.it, 0);
  kv_unlock(l.sh);
  return resp_reply_integer(c, had);
}

static int on_dbsize(rw_conn *c, const rw_list *a)
{
  (void)a;
  struct kv_totals t;
  kv_totals(&kvd.store, &t);
  return resp_reply_integer(c, (int64_t)t.items);
}

static int on_flushall(rw_conn *c, const rw_list *a)
{
  if (a->count > 2 || (a->count == 2 && !eq(a->item[1], "async") && !eq(a->item[1], "sync")))
    return resp_reply_error(c, SYNTAX);
  ADMIT(c);
  kvd_flush(c);
  KVD_STAT(c, cmd_flush);
  return resp_reply_ok(c);
}

static int on_select(rw_conn *c, const rw_list *a)
{
  int64_t db;
  if (parse_i64(a->item[1], &db) < 0)
    return resp_reply_error(c, NOT_INT);
  return db ? resp_reply_error(c, S("ERR DB index is out of range")) : resp_reply_ok(c);
}

static bool want_section(const rw_list *a, const char *name)
{
  if (a->count < 2)
    return true;
  for (uint32_t i = 1; i < a->count; i++) {
    rw_span s = rw_list_at(a, i);
    if (eq(s, name) || eq(s, "all") || eq(s, "everything") || eq(s, "default"))
      return true;
  }
  return false;
}

static int on_info(rw_conn *c, const rw_list *a)
{
  char buf[2048];
  size_t n = 0;
  int64_t up = (kvd_now_ms(c) - kvd.start_ms) / 1000;
  if (want_section(a, "server"))
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "# Server\r\nredis_version:7.0.15\r\nkvd_version:" KVD_VERSION "\r\n"
                          "redis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nmultiplexing_api:%s\r\n"
                          "process_id:%d\r\ntcp_port:%d\r\nuptime_in_seconds:%lld\r\n"
                          "uptime_in_days:%lld\r\nexecutable:kvd\r\n\r\n",
                          rw_server_backend(rw_worker_server(rw_conn_worker(c))), (int)getpid(),
                          kvd.resp_port, (long long)up, (long long)(up / 86400));
  struct kv_totals t;
  kv_totals(&kvd.store, &t);
  if (want_section(a, "memory"))
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "# Memory\r\nused_memory:%llu\r\nmaxmemory:%zu\r\nmaxmemory_policy:%s\r\n\r\n",
                          (unsigned long long)t.bytes, kvd.store.memory,
                          kvd.store.policy == KV_EVICT_LRU ? "allkeys-lru" : "noeviction");
  if (want_section(a, "stats"))
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "# Stats\r\nexpired_keys:%llu\r\nevicted_keys:%llu\r\nkeyspace_hits:%llu\r\n"
                          "keyspace_misses:%llu\r\n\r\n",
                          (unsigned long long)t.expired, (unsigned long long)t.evictions,
                          (unsigned long long)KVD_STAT_SUM(get_hits),
                          (unsigned long long)KVD_STAT_SUM(get_misses));
  if (want_section(a, "keyspace")) {
    n += (size_t)snprintf(buf + n, sizeof buf - n, "# Keyspace\r\n");
    if (t.items)
      n += (size_t)snprintf(buf + n, sizeof buf - n, "db0:keys=%llu,expires=%llu,avg_ttl=0\r\n",
                            (unsigned long long)t.items, (unsigned long long)t.expires);
  }
  /* Like redis: no blank line after the last section. */
  while (n >= 2 && buf[n - 1] == '\n' && buf[n - 3] == '\n')
    n -= 2;
  return resp_reply_bulk(c, (rw_span){(const uint8_t *)buf, n});
}

/* COMMAND: described from the spec's own table; key positions are kvd's knowledge. */
static void key_spec(const char *name, int64_t out[3])
{
  static const char *const keyless[] = {"ping",    "echo",   "dbsize", "flushall", "select", "info",
                                        "command", "client", "quit",   "keys",     "scan",   "randomkey"};
  out[0] = out[1] = out[2] = 1;
  for (size_t i = 0; i < sizeof keyless / sizeof *keyless; i++)
    if (!strcmp(name, keyless[i]))
      out[0] = out[1] = out[2] = 0;
  if (!strcmp(name, "mget") || !strcmp(name, "del") || !strcmp(name, "exists"))
    out[1] = -1;
  if (!strcmp(name, "mset"))
    out[1] = -1, out[2] = 2;
}

static int reply_command(rw_conn *c, const rw_command *e)
{
  int64_t keys[3];
  key_spec(e->name, keys);
  int rc = resp_reply_array(c, 6);
  if (rc >= 0)
    rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)e->name, e->len});
  if (rc >= 0)
    rc = resp_reply_integer(c, e->at_least ? -(int64_t)e->arity : e->arity);
  if (rc >= 0)
    rc = resp_reply_array(c, 0);
  for (int i = 0; i < 3 && rc >= 0; i++)
    rc = resp_reply_integer(c, keys[i]);
  return rc;
}

static int on_command(rw_conn *c, const rw_list *a)
{
  int rc = 0;
  if (a->count == 1) {
    rc = resp_reply_array(c, resp_ncommands);
    for (size_t i = 0; i < resp_ncommands && rc >= 0; i++)
      rc = reply_command(c, &resp_commands[i]);
    return rc;
  }
  rw_span sub = a->item[1];
  if (eq(sub, "count") && a->count == 2)
    return resp_reply_integer(c, (int64_t)resp_ncommands);
  if (eq(sub, "docs")) /* no documentation to offer: an empty map */
    return resp_reply_array(c, 0);
  if (eq(sub, "list") && a->count == 2) {
    rc = resp_reply_array(c, resp_ncommands);
    for (size_t i = 0; i < resp_ncommands && rc >= 0; i++)
      rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)resp_commands[i].name, resp_commands[i].len});
    return rc;
  }
  if (eq(sub, "info")) {
    rc = resp_reply_array(c, a->count - 2);
    for (uint32_t i = 2; i < a->count && rc >= 0; i++) {
      const rw_command *e = resp_command(rw_list_at(a, i));
      rc = e ? reply_command(c, e) : resp_reply_null(c); /* redis too: a null bulk */
    }
    return rc;
  }
  char msg[96];
  int len = snprintf(msg, sizeof msg, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
                     (int)(sub.len > 40 ? 40 : sub.len), (const char *)sub.p);
  return resp_reply_error(c, (rw_span){(const uint8_t *)msg, (size_t)len});
}

static int client_setname(rw_conn *c, struct kvd_conn *kc, rw_span name)
{
  for (size_t i = 0; i < name.len; i++)
    if (name.p[i] < '!' || name.p[i] > '~')
      return resp_reply_error(c,
                              S("ERR Client names cannot contain spaces, newlines or special characters."));
  if (name.len > KVD_NAME_MAX)
    return resp_reply_error(c, S("ERR Client name too long (kvd keeps 128 bytes)"));
  memcpy(kc->name, name.p, name.len);
  kc->name_len = (uint32_t)name.len;
  return resp_reply_ok(c);
}

static int on_client(rw_conn *c, const rw_list *a)
{
  struct kvd_conn *kc = rw_conn_user(c);
  rw_span sub = a->item[1];
  if (eq(sub, "setname"))
    return a->count == 3 ? client_setname(c, kc, a->item[2]) : resp_reply_wrong_args(c, S("client|setname"));
  if (eq(sub, "getname")) {
    if (a->count != 2)
      return resp_reply_wrong_args(c, S("client|getname"));
    return kc->name_len ? resp_reply_bulk(c, (rw_span){(const uint8_t *)kc->name, kc->name_len})
                        : resp_reply_null(c);
  }
  if (eq(sub, "id") && a->count == 2) {
    if (!kc->id)
      kc->id = atomic_fetch_add_explicit(&kvd.next_client_id, 1, memory_order_relaxed) + 1;
    return resp_reply_integer(c, (int64_t)kc->id);
  }
  char msg[96];
  int len = snprintf(msg, sizeof msg, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.",
                     (int)(sub.len > 40 ? 40 : sub.len), (const char *)sub.p);
  return resp_reply_error(c, (rw_span){(const uint8_t *)msg, (size_t)len});
}

static int on_quit(rw_conn *c, const rw_list *a)
{
  (void)a;
  int rc = resp_reply_ok(c);
  rw_conn_close(c);
  return rc;
}

/* redis 7.0's text: the name and the first arguments, quoted, at most 128 bytes of each. */
static int on_unknown(rw_conn *c, const rw_list *a)
{
  char msg[512];
  rw_span name = a->item[0];
  size_t n = (size_t)snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args beginning with: ",
                              (int)(name.len > 128 ? 128 : name.len), (const char *)name.p);
  size_t args = 0;
  for (uint32_t i = 1; i < a->count && args < 128; i++) {
    rw_span s = rw_list_at(a, i);
    size_t take = s.len < 128 - args ? s.len : 128 - args;
    int w = snprintf(msg + n, sizeof msg - n, "'%.*s' ", (int)take, (const char *)s.p);
    n += (size_t)w;
    args += (size_t)w;
  }
  /* An error line cannot hold line breaks: redis turns them into spaces. */
  for (size_t i = 0; i < n; i++)
    if (msg[i] == '\r' || msg[i] == '\n')
      msg[i] = ' ';
  return resp_reply_error(c, (rw_span){(const uint8_t *)msg, n});
}

/* The key of a pipelined command, for the lookahead: the first argument, which is the key of
 * every keyed command kvd serves (MGET/MSET/DEL/EXISTS: their first key). */
void kvd_resp_peek(rw_conn *c, int cmd, const void *msg)
{
  (void)c;
  const struct resp_multibulk *m = msg;
  if (cmd < 0)
    kvd_peek_end();
  else if (cmd == RESP_CMD_MULTIBULK && m->args.count >= 2)
    kvd_peek_key(m->args.item[1]);
}

const struct resp_handlers kvd_resp_handlers = {
    .ping = on_ping,
    .echo = on_echo,
    .get = on_get,
    .set = on_set,
    .setnx = on_setnx,
    .setex = on_setex,
    .getset = on_getset,
    .mget = on_mget,
    .mset = on_mset,
    .del = on_del,
    .exists = on_exists,
    .incr = on_incr,
    .decr = on_decr,
    .incrby = on_incrby,
    .decrby = on_decrby,
    .append = on_append,
    .strlen = on_strlen,
    .expire = on_expire,
    .pexpire = on_pexpire,
    .ttl = on_ttl,
    .pttl = on_pttl,
    .persist = on_persist,
    .dbsize = on_dbsize,
    .flushall = on_flushall,
    .select = on_select,
    .info = on_info,
    .command = on_command,
    .client = on_client,
    .quit = on_quit,
    .keys = kvd_resp_keys,
    .scan = kvd_resp_scan,
    .randomkey = kvd_resp_randomkey,
    .unknown = on_unknown,
};
