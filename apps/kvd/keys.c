/* KEYS, SCAN and RANDOMKEY: walks of the keyspace, as redis 7.0 answers them.
 *
 * A SCAN cursor is a bucket cursor of one shard (store.h's kv_scan) times the shard count, plus
 * the shard: a walk takes the shards in turn, each in redis's reverse-binary order, so that the
 * guarantee of redis's SCAN holds across the table's growth. Replies are counted before they
 * are written (array lengths come first), both passes under the same locks. */
#include <errno.h>

#include "kvd.h"
#include "resp_cmd.h"

#define SCAN_REPLY_MAX (1u << 20) /* key bytes one SCAN reply carries at most: bounded output */

static const rw_span BAD_CURSOR = {(const uint8_t *)"ERR invalid cursor", 18};

/* What one walk selects and does: count the keys that match, or write them. */
struct walk {
  rw_conn *c;
  rw_span pattern;
  bool all;   /* no pattern, or "*" */
  bool none;  /* TYPE names a type no key has */
  bool write; /* second pass: reply with each */
  uint64_t keys, bytes, seen;
  int rc;
};

static void visit(void *arg, kv_item *it)
{
  struct walk *w = arg;
  w->seen++;
  if (w->none || (!w->all && !kvd_glob(w->pattern, kv_key(it))))
    return;
  w->keys++;
  w->bytes += it->klen;
  if (w->write && w->rc >= 0)
    w->rc = resp_reply_bulk(w->c, kv_key(it));
}

int kvd_resp_keys(rw_conn *c, const rw_list *a)
{
  struct walk w = {.c = c, .pattern = a->item[1], .all = kvd_eq(a->item[1], "*")};
  int64_t now = kvd_now_ms(c);
  kv_store *st = &kvd.store;
  /* Every shard locked for both passes: the count written first stays true. */
  for (unsigned i = 0; i < st->nshards; i++)
    kv_each(kv_lock_shard(st, i), now, visit, &w);
  w.rc = resp_reply_array(c, w.keys);
  w.write = true;
  for (unsigned i = 0; i < st->nshards; i++)
    kv_each(&st->shards[i], now, visit, &w);
  for (unsigned i = 0; i < st->nshards; i++)
    kv_unlock(&st->shards[i]);
  return w.rc < 0 ? w.rc : 0;
}

/* redis's cursor: strtoul's reading (a sign, wrapping when '-'; "" is 0), refused when it
 * starts with a blank, has anything after the digits, or overflows. A NUL ends it, as in C. */
static int parse_cursor(rw_span s, uint64_t *out)
{
  size_t i = 0, n = s.len;
  for (size_t k = 0; k < n; k++)
    if (!s.p[k])
      n = k;
  if (n && (s.p[0] == ' ' || (s.p[0] >= '\t' && s.p[0] <= '\r')))
    return -EINVAL;
  bool neg = n && s.p[0] == '-';
  i += n && (s.p[0] == '-' || s.p[0] == '+');
  uint64_t v = 0;
  size_t digits = 0;
  for (; i < n && s.p[i] >= '0' && s.p[i] <= '9'; i++, digits++)
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s.p[i] - '0'), &v))
      return -EINVAL;
  if (i < n || (!digits && n))
    return -EINVAL;
  *out = neg ? 0 - v : v;
  return 0;
}

/* Where one SCAN call walks: from shard `first` at bucket cursor `v` through shard `last`, the
 * shards between walked whole, `steps` buckets of the last (an empty shard is passed over, as
 * redis answers an empty keyspace at once). */
struct span {
  unsigned first, last;
  uint64_t v, next;
  uint64_t steps;
};

/* As redis: until `count` keys were seen or 10 x count buckets, or here also SCAN_REPLY_MAX key
 * bytes; the shards it enters are locked (in order, as KEYS locks them). */
static void scan_plan(kv_store *st, struct span *sp, int64_t count, int64_t now, struct walk *w)
{
  uint64_t buckets = count > INT64_MAX / 10 ? INT64_MAX : (uint64_t)count * 10;
  uint64_t v = sp->v;
  for (unsigned s = sp->first;; s++, v = 0) {
    kv_shard *sh = kv_lock_shard(st, s);
    sp->last = s;
    sp->steps = 0;
    if (sh->items)
      do {
        v = kv_scan(sh, v, now, visit, w);
        sp->steps++;
      } while (v && --buckets && w->seen < (uint64_t)count && w->bytes < SCAN_REPLY_MAX);
    else
      v = 0;
    if (v || s + 1 == st->nshards || !buckets || w->seen >= (uint64_t)count || w->bytes >= SCAN_REPLY_MAX)
      break;
  }
  sp->next = v ? v * st->nshards + sp->last : sp->last + 1 < st->nshards ? sp->last + 1 : 0;
}

/* The reply: the next cursor, then the keys that the same steps select again. */
static int scan_reply(rw_conn *c, kv_store *st, const struct span *sp, int64_t now, struct walk *w)
{
  char num[24];
  int rc = resp_reply_array(c, 2);
  if (rc >= 0)
    rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)num, rw_fmt_u64(num, sp->next)});
  if (rc >= 0)
    rc = resp_reply_array(c, w->keys);
  w->rc = rc;
  w->write = true;
  uint64_t v = sp->v;
  for (unsigned s = sp->first; s <= sp->last; s++, v = 0) {
    kv_shard *sh = &st->shards[s];
    if (!sh->items)
      continue;
    if (s < sp->last)
      do
        v = kv_scan(sh, v, now, visit, w);
      while (v);
    else
      for (uint64_t i = 0; i < sp->steps; i++)
        v = kv_scan(sh, v, now, visit, w);
  }
  return w->rc;
}

int kvd_resp_scan(rw_conn *c, const rw_list *a)
{
  uint64_t cursor;
  if (parse_cursor(a->item[1], &cursor) < 0)
    return resp_reply_error(c, BAD_CURSOR);
  struct walk w = {.c = c, .all = true};
  int64_t count = 10;
  rw_list_iter it;
  rw_span opt, v;
  kvd_list_from(a, &it, 2);
  while (!rw_list_next(a, &it, &opt)) {
    if (rw_list_next(a, &it, &v))
      return resp_reply_error(c, KVD_SYNTAX);
    if (kvd_eq(opt, "count")) {
      if (kvd_parse_i64(v, &count) < 0)
        return resp_reply_error(c, KVD_NOT_INT);
      if (count < 1)
        return resp_reply_error(c, KVD_SYNTAX);
    } else if (kvd_eq(opt, "match")) {
      w.pattern = v;
      w.all = kvd_eq(w.pattern, "*");
    } else if (kvd_eq(opt, "type")) {
      w.none = !kvd_eq(v, "string"); /* every kvd key is a string */
    } else {
      return resp_reply_error(c, KVD_SYNTAX);
    }
  }
  kv_store *st = &kvd.store;
  struct span sp = {.first = (unsigned)(cursor % st->nshards), .v = cursor / st->nshards};
  int64_t now = kvd_now_ms(c);
  scan_plan(st, &sp, count, now, &w);
  int rc = scan_reply(c, st, &sp, now, &w);
  for (unsigned s = sp.first; s <= sp.last; s++)
    kv_unlock(&st->shards[s]);
  return rc < 0 ? rc : 0;
}

int kvd_resp_randomkey(rw_conn *c, const rw_list *a)
{
  (void)a;
  kv_store *st = &kvd.store;
  static _Thread_local uint64_t rnd;
  if (!rnd)
    rnd = (uint64_t)kvd_now_ms(c) * 0x9e3779b97f4a7c15ull ^ (uintptr_t)&rnd;
  rnd = kv_lcg_next(rnd);
  /* A shard with probability by its items (read unlocked: a guide), then the others in turn. */
  uint64_t total = 0;
  for (unsigned i = 0; i < st->nshards; i++)
    total += __atomic_load_n(&st->shards[i].items, __ATOMIC_RELAXED);
  uint64_t r = total ? (rnd >> 11) % total : 0;
  unsigned first = 0;
  for (uint64_t n;
       first + 1 < st->nshards && r >= (n = __atomic_load_n(&st->shards[first].items, __ATOMIC_RELAXED));
       first++)
    r -= n;
  for (unsigned k = 0; k < st->nshards; k++) {
    kv_shard *sh = kv_lock_shard(st, (first + k) % st->nshards);
    kv_item *it = kv_random(sh, rnd, kvd_now_ms(c));
    int rc = it ? resp_reply_bulk(c, kv_key(it)) : 0;
    kv_unlock(sh);
    if (it)
      return rc < 0 ? rc : 0;
  }
  return resp_reply_null(c);
}
