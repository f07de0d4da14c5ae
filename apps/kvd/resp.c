/* kvd's RESP handlers: redis-server's string commands, replies and error texts (redis 7.0).
 * The spec (spec/resp.rw) has already split the request into items, checked the arity and
 * dispatched on the name; what is left is semantics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "resp_cmd.h"

const rw_span KVD_NOT_INT = S("ERR value is not an integer or out of range");
const rw_span KVD_SYNTAX = S("ERR syntax error");
static const rw_span OOM = S("OOM command not allowed when used memory > 'maxmemory'.");
static const rw_span MISCONF =
    S("MISCONF Errors writing to the AOF file: writes are refused (see the server's log)");
static const rw_span TOO_BIG = S("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

/* A whole span as a signed 64-bit decimal, as redis's string2ll reads it: no sign but '-', no
 * leading zeros, no blanks. 0 or -EINVAL. */
int kvd_parse_i64(rw_span s, int64_t *out_v)
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

bool kvd_eq(rw_span s, const char *lit)
{
  size_t n = strlen(lit);
  return s.len == n && !strncasecmp((const char *)s.p, lit, n);
}

int kvd_reply_misconf(rw_conn *c)
{
  return resp_reply_error(c, MISCONF);
}

int kvd_reply_errorf(rw_conn *c, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
  for (size_t i = 0; i < len; i++) /* an error line cannot hold line breaks: redis makes them spaces */
    if (msg[i] == '\r' || msg[i] == '\n')
      msg[i] = ' ';
  return resp_reply_error(c, (rw_span){(const uint8_t *)msg, len});
}

/* A write the store refused; -EAGAIN (it must wait for the log) goes back to the runtime, and
 * the command is dispatched again; -EPIPE: the log refuses writes. */
int kvd_reply_store_error(rw_conn *c, int err)
{
  if (err == -EAGAIN)
    return err;
  return resp_reply_error(c, err == -EPIPE ? MISCONF : err == -E2BIG ? TOO_BIG : OOM);
}

void kvd_list_from(const rw_list *a, rw_list_iter *it, uint32_t first)
{
  rw_span skip;
  rw_list_iter_init(a, it);
  while (it->i < first && !rw_list_next(a, it, &skip))
    ;
}

struct locked kvd_lookup(rw_conn *c, rw_span key)
{
  struct locked l = {.hash = kv_hash(key)};
  l.sh = kv_lock(&kvd.store, l.hash);
  l.it = kvd_find(c, l.sh, key, l.hash, kvd_now_ms(c));
  return l;
}

/* A bulk reply with the item's value, or null: 0, 1 when the value goes out as a stream (see
 * kvd_stream_value), or -errno. Shard locked. */
int kvd_reply_value(rw_conn *c, kv_shard *sh, kv_item *it)
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

void kvd_count_get(rw_conn *c, bool hit)
{
  KVD_STAT(c, cmd_get);
  if (hit)
    KVD_STAT(c, get_hits);
  else
    KVD_STAT(c, get_misses);
}

static int on_get(rw_conn *c, const rw_list *a)
{
  struct locked l = kvd_lookup(c, a->item[1]);
  kvd_count_get(c, l.it);
  int rc = kvd_reply_value(c, l.sh, l.it);
  kv_unlock(l.sh);
  return rc < 0 ? rc : 0;
}

/* "ERR invalid expire time in '<cmd>' command": 0 or -errno from the reply. */
int kvd_reply_bad_expire(rw_conn *c, const char *cmd)
{
  char msg[64];
  int len = snprintf(msg, sizeof msg, "ERR invalid expire time in '%s' command", cmd);
  return resp_reply_error(c, (rw_span){(const uint8_t *)msg, (size_t)len});
}

/* n units (unit_ms: 1000 or 1) from `unix_now`, or after the epoch when `absolute`, as a Unix-ms
 * deadline in *out. -ERANGE when that does not fit 64 bits: redis refuses such a time, and kvd's
 * log records every deadline as Unix ms. */
int kvd_unix_deadline(int64_t n, int64_t unit_ms, bool absolute, int64_t unix_now, int64_t *out)
{
  if (__builtin_mul_overflow(n, unit_ms, out) || (!absolute && __builtin_add_overflow(*out, unix_now, out)))
    return -ERANGE;
  return 0;
}

/* A Unix-ms deadline after `unix_now` as one on the worker's clock, which the store keeps. That
 * clock counts from boot, far behind Unix time, so any such deadline fits (saturated even so). */
int64_t kvd_worker_deadline(rw_conn *c, int64_t at, int64_t unix_now)
{
  int64_t ms;
  return __builtin_add_overflow(at - unix_now, kvd_now_ms(c), &ms) ? INT64_MAX : ms;
}

/* SET's and SETEX's expiry, as redis 7.0 takes it: a positive integer whose deadline fits 64-bit
 * Unix ms. 0 with the worker-clock deadline in *out_ms (1: already past, EXAT/PXAT in the past);
 * 1 after replying with an error; -EIO when the reply failed. */
int kvd_parse_expire(rw_conn *c, rw_span v, int64_t unit_ms, bool absolute, const char *cmd, int64_t *out_ms)
{
  int64_t n, at, unix_now = kvd_unix_ms();
  if (kvd_parse_i64(v, &n) < 0)
    return resp_reply_error(c, KVD_NOT_INT) < 0 ? -EIO : 1;
  if (n <= 0 || kvd_unix_deadline(n, unit_ms, absolute, unix_now, &at) < 0)
    return kvd_reply_bad_expire(c, cmd) < 0 ? -EIO : 1;
  *out_ms = at > unix_now ? kvd_worker_deadline(c, at, unix_now) : 1;
  return 0;
}

static const struct kvd_expiry_opt EXPIRY_OPTS[] = {
    {"ex", 1000, false}, {"px", 1, false}, {"exat", 1000, true}, {"pxat", 1, true}};

const struct kvd_expiry_opt *kvd_expiry_opt(rw_span opt)
{
  for (size_t i = 0; i < sizeof EXPIRY_OPTS / sizeof EXPIRY_OPTS[0]; i++)
    if (kvd_eq(opt, EXPIRY_OPTS[i].name))
      return &EXPIRY_OPTS[i];
  return NULL;
}

/* SET's options, as redis 7.0 parses them. */
struct set_opts {
  bool nx, xx, get, keepttl;
  const struct kvd_expiry_opt *expiry; /* NULL: none */
  rw_span ttl;                         /* the expiry's argument */
  int64_t expire_ms;                   /* 0: none */
};

/* 0 with the options parsed; 1 after replying with an error; -EIO when the reply failed. The
 * expiry is checked once every option has parsed (a syntax error comes first) and may repeat
 * ("EX 1 EX 2": the last), as in redis. */
static int parse_set_opts(rw_conn *c, const rw_list *a, struct set_opts *o)
{
  rw_list_iter it;
  rw_span opt;
  kvd_list_from(a, &it, 3);
  while (!rw_list_next(a, &it, &opt)) {
    const struct kvd_expiry_opt *expiry = kvd_expiry_opt(opt);
    if (kvd_eq(opt, "nx") && !o->xx) {
      o->nx = true;
    } else if (kvd_eq(opt, "xx") && !o->nx) {
      o->xx = true;
    } else if (kvd_eq(opt, "get")) {
      o->get = true;
    } else if (kvd_eq(opt, "keepttl") && !o->expiry) {
      o->keepttl = true;
    } else if (expiry && !o->keepttl && (!o->expiry || o->expiry == expiry) && it.i < a->count) {
      o->expiry = expiry;
      rw_list_next(a, &it, &o->ttl);
    } else {
      return resp_reply_error(c, KVD_SYNTAX) < 0 ? -EIO : 1;
    }
  }
  if (!o->expiry)
    return 0;
  return kvd_parse_expire(c, o->ttl, o->expiry->unit_ms, o->expiry->absolute, "set", &o->expire_ms);
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
    rc = kvd_reply_value(c, l->sh, old);
  if (old)
    kv_unpin(l->sh, old);
  kv_unlock(l->sh);
  if (err < 0)
    return kvd_reply_store_error(c, err);
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
  struct locked l = kvd_lookup(c, key);
  if ((o.nx && l.it) || (o.xx && !l.it)) {
    KVD_STAT(c, cmd_set);
    rc = o.get ? kvd_reply_value(c, l.sh, l.it) : resp_reply_null(c);
    kv_unlock(l.sh);
    return rc < 0 ? rc : 0;
  }
  int64_t expire = o.keepttl && l.it ? l.it->expire_ms : o.expire_ms;
  return put_and_reply(c, &l, key, val, expire, o.get, o.get || o.xx || o.keepttl);
}

static int on_setnx(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  struct locked l = kvd_lookup(c, a->item[1]);
  int err = 0;
  if (!l.it)
    err = kvd_put(c, l.sh, a->item[1], l.hash, a->item[2], (rw_span){0}, 0, 0, NULL, kvd_now_ms(c));
  if (err != -EAGAIN)
    KVD_STAT(c, cmd_set);
  bool existed = l.it != NULL;
  kv_unlock(l.sh);
  if (err < 0)
    return kvd_reply_store_error(c, err);
  return resp_reply_integer(c, existed ? 0 : 1);
}

/* SETEX and PSETEX. */
static int set_with_ttl(rw_conn *c, const rw_list *a, int64_t unit_ms, const char *cmd)
{
  int64_t expire;
  int rc = kvd_parse_expire(c, a->item[2], unit_ms, false, cmd, &expire);
  if (rc)
    return rc < 0 ? rc : 0;
  ADMIT(c);
  uint32_t h = kv_hash(a->item[1]);
  kv_shard *sh = kv_lock(&kvd.store, h);
  int err = kvd_put(c, sh, a->item[1], h, a->item[3], (rw_span){0}, 0, expire, NULL, kvd_now_ms(c));
  if (err != -EAGAIN)
    KVD_STAT(c, cmd_set);
  kv_unlock(sh);
  return err < 0 ? kvd_reply_store_error(c, err) : resp_reply_ok(c);
}

static int on_setex(rw_conn *c, const rw_list *a)
{
  return set_with_ttl(c, a, 1000, "setex");
}

static int on_psetex(rw_conn *c, const rw_list *a)
{
  return set_with_ttl(c, a, 1, "psetex");
}

static int on_getset(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  struct locked l = kvd_lookup(c, a->item[1]);
  return put_and_reply(c, &l, a->item[1], a->item[2], 0, true, true);
}

void kvd_resume_start(rw_conn *c, const rw_list *a, rw_list_iter *it, uint32_t first)
{
  struct kvd_conn *kc = rw_conn_user(c);
  if (kc->next_key)
    rw_list_iter_seek(a, it, kc->next_key, kc->next_off);
  else
    kvd_list_from(a, it, first);
}

int kvd_resume_stop(rw_conn *c, const rw_list *a, const rw_list_iter *it, int64_t n)
{
  struct kvd_conn *kc = rw_conn_user(c);
  kc->next_key = it->i;
  kc->next_off = (uint32_t)rw_list_iter_offset(a, it);
  kc->next_n = n;
  return -EAGAIN;
}

int64_t kvd_resume_count(rw_conn *c)
{
  struct kvd_conn *kc = rw_conn_user(c);
  return kc->next_key ? kc->next_n : 0;
}

bool kvd_resumed(rw_conn *c)
{
  return ((struct kvd_conn *)rw_conn_user(c))->next_key != 0;
}

void kvd_resume_done(rw_conn *c)
{
  ((struct kvd_conn *)rw_conn_user(c))->next_key = 0;
}

/* A write over many keys asks the log for room again every KVD_AOF_RECORDS records (admission
 * keeps room for that many, aof.c): 0, -EAGAIN to stop there, or the log's error. */
static int admit_more(rw_conn *c, uint32_t written)
{
  return written && written % KVD_AOF_RECORDS == 0 ? kvd_aof_admit(c) : 0;
}

/* A value that goes out as a stream ends this dispatch, and so does a full send queue
 * (kvd_reply_full): MGET is dispatched again when the stream is done or the replies have gone,
 * and goes on after the keys already answered. */
static int on_mget(rw_conn *c, const rw_list *a)
{
  rw_list_iter it;
  rw_span key;
  int rc = kvd_resumed(c) ? 0 : resp_reply_array(c, a->count - 1);
  kvd_resume_start(c, a, &it, 1);
  while (rc >= 0 && !rw_list_next(a, &it, &key)) {
    struct locked l = kvd_lookup(c, key);
    kvd_count_get(c, l.it);
    rc = kvd_reply_value(c, l.sh, l.it);
    kv_unlock(l.sh);
    if (rc >= 0 && it.i < a->count && (rc == 1 || kvd_reply_full(c, a->region.len))) {
      kvd_resume_stop(c, a, &it, 0);
      return rc == 1 ? -EAGAIN : kvd_wait_room(c);
    }
  }
  kvd_resume_done(c);
  return rc < 0 ? rc : 0;
}

/* Pair by pair, each under its own shard's lock (with several workers MSET is not atomic). A
 * pair that must wait for the log (-EAGAIN) is where the command resumes when dispatched again:
 * the pairs before it are not stored twice. 0, kvd_put()'s error, or -EPIPE when the log
 * refuses writes. */
static int put_pairs(rw_conn *c, const rw_list *a)
{
  rw_list_iter it, at;
  rw_span key, val;
  kvd_resume_start(c, a, &it, 1);
  int64_t now = kvd_now_ms(c);
  for (uint32_t i = 0;; i++) {
    at = it;
    if (rw_list_next(a, &it, &key) || rw_list_next(a, &it, &val))
      break;
    int err = admit_more(c, i);
    if (err < 0 && err != -EAGAIN)
      err = -EPIPE;
    if (!err) {
      uint32_t h = kv_hash(key);
      kv_shard *sh = kv_lock(&kvd.store, h);
      err = kvd_put(c, sh, key, h, val, (rw_span){0}, 0, 0, NULL, now);
      if (err != -EAGAIN)
        KVD_STAT(c, cmd_set);
      kv_unlock(sh);
    }
    if (err == -EAGAIN)
      return kvd_resume_stop(c, a, &at, 0);
    if (err < 0) {
      kvd_resume_done(c);
      return err;
    }
  }
  kvd_resume_done(c);
  return 0;
}

static int on_mset(rw_conn *c, const rw_list *a)
{
  if (a->count % 2 == 0)
    return resp_reply_wrong_args(c, S("mset"));
  ADMIT(c);
  int err = put_pairs(c, a);
  return err ? kvd_reply_store_error(c, err) : resp_reply_ok(c);
}

/* Whether any of MSETNX's keys exists. */
static bool any_key(rw_conn *c, const rw_list *a)
{
  rw_list_iter it;
  rw_span key, val;
  bool found = false;
  rw_list_iter_init(a, &it);
  rw_list_next(a, &it, &key);
  while (!found && !rw_list_next(a, &it, &key) && !rw_list_next(a, &it, &val)) {
    struct locked l = kvd_lookup(c, key);
    found = l.it != NULL;
    kv_unlock(l.sh);
  }
  return found;
}

/* MSETNX: nothing when any key exists, else MSET (a command resumed after waiting for the log
 * has already looked, and stored some pairs). */
static int on_msetnx(rw_conn *c, const rw_list *a)
{
  if (a->count % 2 == 0)
    return resp_reply_wrong_args(c, S("msetnx"));
  ADMIT(c);
  if (!kvd_resumed(c) && any_key(c, a))
    return resp_reply_integer(c, 0);
  int err = put_pairs(c, a);
  return err ? kvd_reply_store_error(c, err) : resp_reply_integer(c, 1);
}

/* DEL and EXISTS: how many of the keys exist (deleting them for DEL: a DEL that must wait for
 * the log's room stops at a key and goes on from there, its count kept). */
static int count_keys(rw_conn *c, const rw_list *a, bool del)
{
  rw_list_iter it, at;
  rw_span key;
  int64_t n = kvd_resume_count(c);
  kvd_resume_start(c, a, &it, 1);
  for (uint32_t i = 0;; i++) {
    at = it;
    if (rw_list_next(a, &it, &key))
      break;
    int err = del ? admit_more(c, i) : 0;
    if (err == -EAGAIN)
      return kvd_resume_stop(c, a, &at, n);
    if (err < 0) {
      kvd_resume_done(c);
      return kvd_reply_misconf(c);
    }
    struct locked l = kvd_lookup(c, key);
    if (l.it) {
      n++;
      if (del)
        kvd_delete(c, l.sh, l.it);
    }
    kv_unlock(l.sh);
  }
  kvd_resume_done(c);
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
  struct locked l = kvd_lookup(c, key);
  int64_t v = 0;
  if (l.it && kvd_parse_i64((rw_span){kv_value(l.it), l.it->vlen}, &v) < 0) {
    kv_unlock(l.sh);
    return resp_reply_error(c, KVD_NOT_INT);
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
  return err < 0 ? kvd_reply_store_error(c, err) : resp_reply_integer(c, v);
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
  if (kvd_parse_i64(a->item[2], &by) < 0)
    return resp_reply_error(c, KVD_NOT_INT);
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
  struct locked l = kvd_lookup(c, a->item[1]);
  rw_span old = l.it ? (rw_span){kv_value(l.it), l.it->vlen} : (rw_span){0};
  int64_t len = (int64_t)(old.len + a->item[2].len);
  int err = kvd_put(c, l.sh, a->item[1], l.hash, old, a->item[2], l.it ? l.it->flags : 0,
                    l.it ? l.it->expire_ms : 0, l.it, kvd_now_ms(c));
  kv_unlock(l.sh);
  return err < 0 ? kvd_reply_store_error(c, err) : resp_reply_integer(c, len);
}

static int on_strlen(rw_conn *c, const rw_list *a)
{
  struct locked l = kvd_lookup(c, a->item[1]);
  int64_t n = l.it ? l.it->vlen : 0;
  kv_unlock(l.sh);
  return resp_reply_integer(c, n);
}

static int get_ttl(rw_conn *c, const rw_list *a, bool ms)
{
  struct locked l = kvd_lookup(c, a->item[1]);
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
  struct locked l = kvd_lookup(c, a->item[1]);
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
  if (a->count > 2 || (a->count == 2 && !kvd_eq(a->item[1], "async") && !kvd_eq(a->item[1], "sync")))
    return resp_reply_error(c, KVD_SYNTAX);
  ADMIT(c);
  kvd_flush(c);
  KVD_STAT(c, cmd_flush);
  return resp_reply_ok(c);
}

static int on_select(rw_conn *c, const rw_list *a)
{
  int64_t db;
  if (kvd_parse_i64(a->item[1], &db) < 0)
    return resp_reply_error(c, KVD_NOT_INT);
  return db ? resp_reply_error(c, S("ERR DB index is out of range")) : resp_reply_ok(c);
}

/* redis 7.0's text: the name and the first arguments, quoted, at most 128 bytes of each. */
static int on_unknown(rw_conn *c, const rw_list *a)
{
  char msg[512];
  rw_span name = a->item[0];
  size_t n = (size_t)snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args beginning with: ",
                              (int)(name.len > 128 ? 128 : name.len), (const char *)name.p);
  size_t args = 0;
  rw_list_iter it;
  rw_span s;
  kvd_list_from(a, &it, 1);
  while (args < 128 && !rw_list_next(a, &it, &s)) {
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

/* Every command that needs the password when one is set (AUTH, HELLO, RESET and QUIT do not,
 * as in redis): each goes through gate(), which counts it for INFO commandstats. */
#define GATED(X)                     \
  X(ping, on_ping)                   \
  X(echo, on_echo)                   \
  X(get, on_get)                     \
  X(set, on_set)                     \
  X(setnx, on_setnx)                 \
  X(setex, on_setex)                 \
  X(getset, on_getset)               \
  X(mget, on_mget)                   \
  X(mset, on_mset)                   \
  X(del, on_del)                     \
  X(exists, on_exists)               \
  X(incr, on_incr)                   \
  X(decr, on_decr)                   \
  X(incrby, on_incrby)               \
  X(decrby, on_decrby)               \
  X(append, on_append)               \
  X(strlen, on_strlen)               \
  X(expire, kvd_on_expire)           \
  X(pexpire, kvd_on_pexpire)         \
  X(expireat, kvd_on_expireat)       \
  X(pexpireat, kvd_on_pexpireat)     \
  X(expiretime, kvd_on_expiretime)   \
  X(pexpiretime, kvd_on_pexpiretime) \
  X(getdel, kvd_on_getdel)           \
  X(getex, kvd_on_getex)             \
  X(getrange, kvd_on_getrange)       \
  X(substr, kvd_on_getrange)         \
  X(setrange, kvd_on_setrange)       \
  X(incrbyfloat, kvd_on_incrbyfloat) \
  X(msetnx, on_msetnx)               \
  X(psetex, on_psetex)               \
  X(rename, kvd_on_rename)           \
  X(renamenx, kvd_on_renamenx)       \
  X(copy, kvd_on_copy)               \
  X(unlink, on_del)                  \
  X(touch, on_exists)                \
  X(type, kvd_on_type)               \
  X(randomkey, kvd_resp_randomkey)   \
  X(keys, kvd_resp_keys)             \
  X(scan, kvd_resp_scan)             \
  X(flushdb, on_flushall)            \
  X(time, kvd_on_time)               \
  X(ttl, on_ttl)                     \
  X(pttl, on_pttl)                   \
  X(persist, on_persist)             \
  X(dbsize, on_dbsize)               \
  X(flushall, on_flushall)           \
  X(select, on_select)               \
  X(info, kvd_on_info)               \
  X(command, kvd_on_command)         \
  X(client, kvd_on_client)

enum {
#define X(name, fn) CMD_##name,
  GATED(X)
#undef X
      NCOUNTED
};

static const char *const counted_names[NCOUNTED] = {
#define X(name, fn) #name,
    GATED(X)
#undef X
};

/* Per worker: calls of each gated command, and those that replied with an error. */
struct cmd_stats {
  _Atomic uint64_t calls[NCOUNTED], failed[NCOUNTED], rejected[NCOUNTED];
};
static struct cmd_stats *cmd_stats;
static _Thread_local uint64_t errors_seen; /* this worker's error replies so far */

int kvd_resp_init(unsigned workers)
{
  cmd_stats = calloc(workers, sizeof *cmd_stats);
  return cmd_stats ? 0 : -ENOMEM;
}

size_t kvd_resp_ncounted(void)
{
  return NCOUNTED;
}

int kvd_resp_count_names(rw_server *s)
{
  return rw_server_command_names(s, &resp_proto, counted_names, NCOUNTED);
}

struct kvd_cmd_counts kvd_resp_counts(size_t i)
{
  struct kvd_cmd_counts n = {counted_names[i], 0, 0, 0};
  for (unsigned w = 0; w < kvd.workers; w++) {
    n.calls += atomic_load_explicit(&cmd_stats[w].calls[i], memory_order_relaxed);
    n.failed += atomic_load_explicit(&cmd_stats[w].failed[i], memory_order_relaxed);
    n.rejected += atomic_load_explicit(&cmd_stats[w].rejected[i], memory_order_relaxed);
  }
  return n;
}

/* The password's gate (NOAUTH is a rejected call, as in redis), then the handler, counted: a
 * call whose reply was an error failed. A command dispatched again (-EAGAIN) counts once. */
static int gate(rw_conn *c, const rw_list *a, unsigned cmd, const char *name,
                int (*fn)(rw_conn *, const rw_list *))
{
  struct cmd_stats *st = &cmd_stats[rw_worker_id(rw_conn_worker(c))];
  kvd_client_seen(c, name);
  if (!kvd_authed(c)) {
    kvd_stat_add(&st->rejected[cmd], 1);
    return kvd_reply_noauth(c);
  }
  uint64_t errors = errors_seen;
  rw_conn_count_as(c, cmd); /* (the runtime times it as this command, not as a RESP array) */
  int rc = fn(c, a);
  if (rc == -EAGAIN)
    return rc;
  kvd_stat_add(&st->calls[cmd], 1);
  if (errors_seen != errors)
    kvd_stat_add(&st->failed[cmd], 1);
  return rc;
}

void kvd_resp_error_seen(void)
{
  errors_seen++;
}

#define X(name, fn)                                     \
  static int gated_##name(rw_conn *c, const rw_list *a) \
  {                                                     \
    return gate(c, a, CMD_##name, #name, fn);           \
  }
GATED(X)
#undef X

/* The table's handlers by name, for requests kvd splits itself (inline commands). */
static const struct {
  const char *name;
  int (*fn)(rw_conn *, const rw_list *);
} by_name[] = {
#define X(name, fn) {#name, gated_##name},
    GATED(X)
#undef X
        {"auth", kvd_on_auth},
    {"hello", kvd_on_hello},
    {"reset", kvd_on_reset},
    {"quit", kvd_on_quit},
};

/* What the generated dispatcher does for a request it split: the table's arity, then the
 * handler (resp_command() finds the entry; by_name its handler). */
int kvd_resp_dispatch(rw_conn *c, const rw_list *a)
{
  if (!a->count)
    return 0; /* an empty line: nothing to do */
  const rw_command *e = resp_command(a->item[0]);
  if (!e)
    return on_unknown(c, a);
  if (e->at_least ? a->count < e->arity : a->count != e->arity)
    return resp_reply_wrong_args(c, (rw_span){(const uint8_t *)e->name, e->len});
  for (size_t i = 0; i < sizeof by_name / sizeof *by_name; i++)
    if (!strcmp(by_name[i].name, e->name))
      return by_name[i].fn(c, a);
  return on_unknown(c, a); /* (every table entry has a handler: resp_handlers has no gaps) */
}

const struct resp_handlers kvd_resp_handlers = {
#define X(name, fn) .name = gated_##name,
    GATED(X)
#undef X
        .auth = kvd_on_auth,
    .hello = kvd_on_hello,
    .reset = kvd_on_reset,
    .quit = kvd_on_quit,
    .unknown = on_unknown,
    .inline_cmd = kvd_on_inline,
    .odd_count = kvd_resp_odd_count,
    .refused = kvd_resp_refused,
};
