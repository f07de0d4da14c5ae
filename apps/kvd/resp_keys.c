/* kvd's RESP keyspace commands: expiry (EXPIRE family with NX|XX|GT|LT, EXPIRETIME), RENAME,
 * COPY, TYPE, RANDOMKEY, with redis 7.0's replies and error texts. */
#include <limits.h>
#include <stdio.h>

#include "resp_cmd.h"

/* EXPIRE's conditions. */
enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

/* The options after the time, as redis 7.0 parses them: 0 with *out_flags, or 1 after replying
 * with redis's error (-EIO when the reply failed). */
static int expire_flags(rw_conn *c, const rw_list *a, int *out_flags)
{
  static const char *const names[] = {"nx", "xx", "gt", "lt"};
  int f = 0;
  rw_list_iter it;
  rw_span opt;
  kvd_list_from(a, &it, 3);
  while (!rw_list_next(a, &it, &opt)) {
    int bit = 0;
    for (int i = 0; i < 4 && !bit; i++)
      bit = kvd_eq(opt, names[i]) ? 1 << i : 0;
    if (!bit) { /* redis prints the option as a C string: up to its first NUL */
      const void *nul = memchr(opt.p, 0, opt.len);
      int len = nul ? (int)((const uint8_t *)nul - opt.p) : (int)opt.len;
      return kvd_reply_errorf(c, "ERR Unsupported option %.*s", len > 256 ? 256 : len, (const char *)opt.p) <
                     0
                 ? -EIO
                 : 1;
    }
    f |= bit;
  }
  const char *bad = NULL;
  if ((f & EXP_NX) && (f & (EXP_XX | EXP_GT | EXP_LT)))
    bad = "ERR NX and XX, GT or LT options at the same time are not compatible";
  else if ((f & EXP_GT) && (f & EXP_LT))
    bad = "ERR GT and LT options at the same time are not compatible";
  if (bad)
    return resp_reply_error(c, (rw_span){(const uint8_t *)bad, strlen(bad)}) < 0 ? -EIO : 1;
  *out_flags = f;
  return 0;
}

/* Whether the conditions let a deadline `at` (Unix ms) replace the current one (`cur`, -1:
 * none); GT takes none as infinite, LT too unless `at` is less. */
static bool expire_allowed(int f, int64_t cur, int64_t at)
{
  if ((f & EXP_NX) && cur != -1)
    return false;
  if ((f & EXP_XX) && cur == -1)
    return false;
  if ((f & EXP_GT) && (cur == -1 || at <= cur))
    return false;
  return !((f & EXP_LT) && cur != -1 && at >= cur);
}

/* EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: a deadline from now, or at a Unix time; one in the past
 * deletes the key, as redis does. One that does not fit 64-bit Unix ms is refused, key or not. */
static int set_deadline(rw_conn *c, const rw_list *a, int64_t unit_ms, bool absolute, const char *cmd)
{
  int flags, rc = expire_flags(c, a, &flags);
  if (rc)
    return rc < 0 ? rc : 0;
  int64_t n, at, unix_now = kvd_unix_ms();
  if (kvd_parse_i64(a->item[2], &n) < 0)
    return resp_reply_error(c, KVD_NOT_INT);
  if (kvd_unix_deadline(n, unit_ms, absolute, unix_now, &at) < 0)
    return kvd_reply_bad_expire(c, cmd);
  ADMIT(c);
  struct locked l = kvd_lookup(c, a->item[1]);
  bool done = l.it && expire_allowed(flags, l.it->expire_ms ? kvd_to_unix(c, l.it->expire_ms) : -1, at);
  if (done && at <= unix_now)
    kvd_delete(c, l.sh, l.it);
  else if (done)
    kvd_set_expire(c, l.sh, l.it, kvd_worker_deadline(c, at, unix_now));
  kv_unlock(l.sh);
  return resp_reply_integer(c, done);
}

int kvd_on_expire(rw_conn *c, const rw_list *a)
{
  return set_deadline(c, a, 1000, false, "expire");
}

int kvd_on_pexpire(rw_conn *c, const rw_list *a)
{
  return set_deadline(c, a, 1, false, "pexpire");
}

int kvd_on_expireat(rw_conn *c, const rw_list *a)
{
  return set_deadline(c, a, 1000, true, "expireat");
}

int kvd_on_pexpireat(rw_conn *c, const rw_list *a)
{
  return set_deadline(c, a, 1, true, "pexpireat");
}

/* EXPIRETIME, PEXPIRETIME: the deadline as a Unix time; -1 none, -2 no key. Seconds are
 * rounded as redis rounds them (at the top of the range: as if unsigned, as redis's build does). */
static int get_deadline(rw_conn *c, const rw_list *a, bool ms)
{
  struct locked l = kvd_lookup(c, a->item[1]);
  int64_t v = !l.it ? -2 : !l.it->expire_ms ? -1 : kvd_to_unix(c, l.it->expire_ms);
  kv_unlock(l.sh);
  if (v >= 0 && !ms)
    v = (int64_t)(((uint64_t)v + 500) / 1000);
  return resp_reply_integer(c, v);
}

int kvd_on_expiretime(rw_conn *c, const rw_list *a)
{
  return get_deadline(c, a, false);
}

int kvd_on_pexpiretime(rw_conn *c, const rw_list *a)
{
  return get_deadline(c, a, true);
}

/* Two keys' shards, locked in shard order (kvd_flush locks every shard in that order too), so
 * that RENAME and COPY see and change both at once. */
struct two {
  kv_shard *src, *dst;
  uint32_t hsrc, hdst;
};

static struct two lock_two(rw_span src, rw_span dst)
{
  struct two t = {.hsrc = kv_hash(src), .hdst = kv_hash(dst)};
  t.src = kv_shard_of(&kvd.store, t.hsrc);
  t.dst = kv_shard_of(&kvd.store, t.hdst);
  uint32_t first = t.src->id <= t.dst->id ? t.hsrc : t.hdst, second = first == t.hsrc ? t.hdst : t.hsrc;
  kv_lock(&kvd.store, first);
  if (t.src != t.dst)
    kv_lock(&kvd.store, second);
  return t;
}

static void unlock_two(struct two *t)
{
  kv_unlock(t->src);
  if (t->src != t->dst)
    kv_unlock(t->dst);
}

static bool same_span(rw_span a, rw_span b)
{
  return a.len == b.len && !memcmp(a.p, b.p, a.len);
}

/* dst = src with its flags and TTL (RENAME, COPY): the value copied (the store has no relink
 * across shards) under both shards' locks; the source deleted when `move`. A dst that exists is
 * replaced when `overwrite`, else nothing is done; so when they are the same key. 0 or kvd_put()'s
 * error, with *out_found (src exists) and *out_done (dst written). */
static int copy_key(rw_conn *c, rw_span src, rw_span dst, bool overwrite, bool move, bool *out_found,
                    bool *out_done)
{
  struct two t = lock_two(src, dst);
  int64_t now = kvd_now_ms(c);
  kv_item *it = kvd_find(c, t.src, src, t.hsrc, now);
  int err = 0;
  *out_found = it != NULL;
  *out_done = false;
  if (it && !same_span(src, dst) && (overwrite || !kvd_find(c, t.dst, dst, t.hdst, now))) {
    err = kvd_put(c, t.dst, dst, t.hdst, (rw_span){kv_value(it), it->vlen}, (rw_span){0}, it->flags,
                  it->expire_ms, it, now);
    if (!err && move)
      kvd_delete(c, t.src, it);
    *out_done = !err;
  }
  unlock_two(&t);
  return err;
}

/* RENAME and RENAMENX (nx). */
static int rename_key(rw_conn *c, const rw_list *a, bool nx)
{
  ADMIT(c);
  bool found, moved;
  int err = copy_key(c, a->item[1], a->item[2], !nx, true, &found, &moved);
  if (!found)
    return resp_reply_error(c, S("ERR no such key"));
  if (err)
    return kvd_reply_store_error(c, err);
  return nx ? resp_reply_integer(c, moved) : resp_reply_ok(c);
}

int kvd_on_rename(rw_conn *c, const rw_list *a)
{
  return rename_key(c, a, false);
}

int kvd_on_renamenx(rw_conn *c, const rw_list *a)
{
  return rename_key(c, a, true);
}

/* COPY's options: 0 with *out_replace, or 1 after replying with redis's error (-EIO when the
 * reply failed). kvd has one database: DB 0 is it, any other is out of range, as in a redis
 * with `databases 1`. */
static int copy_opts(rw_conn *c, const rw_list *a, bool *out_replace)
{
  const char *bad = NULL;
  rw_list_iter it;
  rw_span opt, v;
  kvd_list_from(a, &it, 3);
  while (!bad && !rw_list_next(a, &it, &opt)) {
    int64_t db;
    if (kvd_eq(opt, "replace")) {
      *out_replace = true;
    } else if (kvd_eq(opt, "db") && !rw_list_next(a, &it, &v)) {
      if (kvd_parse_i64(v, &db) < 0)
        bad = "ERR value is not an integer or out of range";
      else if (db < INT_MIN || db > INT_MAX)
        bad = "ERR value is out of range, value must between -2147483648 and 2147483647";
      else if (db)
        bad = "ERR DB index is out of range";
    } else {
      bad = "ERR syntax error";
    }
  }
  if (!bad && same_span(a->item[1], a->item[2]))
    bad = "ERR source and destination objects are the same";
  if (!bad)
    return 0;
  return resp_reply_error(c, (rw_span){(const uint8_t *)bad, strlen(bad)}) < 0 ? -EIO : 1;
}

int kvd_on_copy(rw_conn *c, const rw_list *a)
{
  bool replace = false;
  int rc = copy_opts(c, a, &replace);
  if (rc)
    return rc < 0 ? rc : 0;
  ADMIT(c);
  bool found, copied;
  int err = copy_key(c, a->item[1], a->item[2], replace, false, &found, &copied);
  return err ? kvd_reply_store_error(c, err) : resp_reply_integer(c, copied);
}

int kvd_on_type(rw_conn *c, const rw_list *a)
{
  struct locked l = kvd_lookup(c, a->item[1]);
  bool found = l.it != NULL;
  kv_unlock(l.sh);
  return resp_reply_simple(c, found ? S("string") : S("none"));
}
