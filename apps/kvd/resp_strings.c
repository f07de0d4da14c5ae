/* kvd's RESP string commands beyond GET and SET: GETDEL, GETEX, GETRANGE (SUBSTR), SETRANGE,
 * INCRBYFLOAT, with redis 7.0's replies and error texts. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "resp_cmd.h"

/* redis's MAX_LONG_DOUBLE_CHARS: the longest float it reads, and room for any it writes. */
#define LD_CHARS (5 * 1024)

int kvd_on_getdel(rw_conn *c, const rw_list *a)
{
  ADMIT(c);
  struct locked l = kvd_lookup(c, a->item[1]);
  kvd_count_get(c, l.it);
  int rc = kvd_reply_value(c, l.sh, l.it); /* (a streamed value stays pinned past the delete) */
  if (rc >= 0 && l.it)
    kvd_delete(c, l.sh, l.it);
  kv_unlock(l.sh);
  return rc < 0 ? rc : 0;
}

/* GETEX's options, as redis 7.0 parses them: one expiry (which may repeat, the last counts) or
 * PERSIST. */
struct getex_opts {
  const struct kvd_expiry_opt *expiry;
  rw_span ttl;
  bool persist;
};

static bool parse_getex(const rw_list *a, struct getex_opts *o)
{
  rw_list_iter it;
  rw_span opt;
  kvd_list_from(a, &it, 2);
  while (!rw_list_next(a, &it, &opt)) {
    const struct kvd_expiry_opt *expiry = kvd_expiry_opt(opt);
    if (expiry && !o->persist && (!o->expiry || o->expiry == expiry) && it.i < a->count) {
      o->expiry = expiry;
      rw_list_next(a, &it, &o->ttl);
    } else if (kvd_eq(opt, "persist") && !o->expiry) {
      o->persist = true;
    } else {
      return false;
    }
  }
  return true;
}

/* The value, then its TTL changed. As in redis, the time is checked only when the key exists
 * (a missing key is a null whatever the time), and a deadline in the past deletes it. */
int kvd_on_getex(rw_conn *c, const rw_list *a)
{
  struct getex_opts o = {0};
  if (!parse_getex(a, &o))
    return resp_reply_error(c, KVD_SYNTAX);
  if (o.expiry || o.persist)
    ADMIT(c);
  struct locked l = kvd_lookup(c, a->item[1]);
  kvd_count_get(c, l.it);
  int64_t expire = 0;
  int rc = 0;
  if (l.it && o.expiry)
    rc = kvd_parse_expire(c, o.ttl, o.expiry->unit_ms, o.expiry->absolute, "getex", &expire);
  if (!rc)
    rc = kvd_reply_value(c, l.sh, l.it);
  else
    l.it = NULL; /* the time was refused: nothing changes */
  if (rc >= 0 && l.it) {
    if (expire == 1)
      kvd_delete(c, l.sh, l.it);
    else if (expire)
      kvd_set_expire(c, l.sh, l.it, expire);
    else if (o.persist && l.it->expire_ms)
      kvd_set_expire(c, l.sh, l.it, 0);
  }
  kv_unlock(l.sh);
  return rc < 0 ? rc : 0;
}

/* GETRANGE's start and end as redis clamps them to a value of `len` bytes: 0 with *out_off and
 * *out_n (0: the empty string). */
static void clamp_range(int64_t start, int64_t end, uint64_t len, uint64_t *out_off, uint64_t *out_n)
{
  *out_off = *out_n = 0;
  if (start < 0 && end < 0 && start > end)
    return;
  int64_t n = (int64_t)len;
  if (start < 0)
    start += n;
  if (end < 0)
    end += n;
  if (start < 0)
    start = 0;
  if (end < 0)
    end = 0;
  if (end >= n)
    end = n - 1;
  if (start > end || !len)
    return;
  *out_off = (uint64_t)start;
  *out_n = (uint64_t)(end - start + 1);
}

int kvd_on_getrange(rw_conn *c, const rw_list *a)
{
  int64_t start, end;
  if (kvd_parse_i64(a->item[2], &start) < 0 || kvd_parse_i64(a->item[3], &end) < 0)
    return resp_reply_error(c, KVD_NOT_INT);
  struct locked l = kvd_lookup(c, a->item[1]);
  uint64_t off = 0, n = 0;
  if (l.it)
    clamp_range(start, end, l.it->vlen, &off, &n);
  int rc;
  if (n < KVD_STREAM_MIN) {
    rc = resp_reply_bulk(c, (rw_span){l.it ? kv_value(l.it) + off : (const uint8_t *)"", n});
  } else {
    rc = resp_reply_bulk_head(c, n);
    if (rc >= 0)
      rc = kvd_stream_range(c, l.sh, l.it, (uint32_t)off, (uint32_t)n, true);
  }
  kv_unlock(l.sh);
  return rc < 0 ? rc : 0;
}

/* A new item for SETRANGE: the old value (or nothing), zeros up to `off`, `v` there, and the old
 * value's rest after it; flags and TTL kept. 0 or kvd_alloc()'s error. */
static int splice(rw_conn *c, struct locked *l, rw_span key, uint64_t off, rw_span v, uint64_t *out_len)
{
  size_t olen = l->it ? l->it->vlen : 0, end = off + v.len, len = end > olen ? end : olen;
  kv_item *it;
  int err = kvd_alloc(c, l->sh, key, l->hash, len, l->it, &it);
  if (err < 0)
    return err;
  uint8_t *d = kv_value(it);
  size_t head = olen < off ? olen : off;
  if (head)
    memcpy(d, kv_value(l->it), head);
  memset(d + head, 0, off - head);
  memcpy(d + off, v.p, v.len);
  if (olen > end)
    memcpy(d + end, kv_value(l->it) + end, olen - end);
  it->flags = l->it ? l->it->flags : 0;
  it->expire_ms = l->it ? l->it->expire_ms : 0;
  kvd_link(c, l->sh, it, kvd_now_ms(c));
  *out_len = len;
  return 0;
}

int kvd_on_setrange(rw_conn *c, const rw_list *a)
{
  int64_t off;
  rw_span key = a->item[1], v = a->item[3];
  if (kvd_parse_i64(a->item[2], &off) < 0)
    return resp_reply_error(c, KVD_NOT_INT);
  if (off < 0)
    return resp_reply_error(c, S("ERR offset is out of range"));
  if (v.len) /* (setting nothing changes nothing: a read) */
    ADMIT(c);
  struct locked l = kvd_lookup(c, key);
  uint64_t len = l.it ? l.it->vlen : 0;
  int err = 0;
  if (v.len && (uint64_t)off + v.len > KVD_VALUE_MAX) {
    kv_unlock(l.sh);
    return resp_reply_error(c, S("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
  }
  if (v.len)
    err = splice(c, &l, key, (uint64_t)off, v, &len);
  kv_unlock(l.sh);
  return err ? kvd_reply_store_error(c, err) : resp_reply_integer(c, (int64_t)len);
}

/* A whole span as a long double, as redis's string2ld reads it: strtold on a NUL-terminated
 * copy, which must take every byte. 0 or -EINVAL. */
static int parse_ld(rw_span s, long double *out_v)
{
  char buf[LD_CHARS], *end;
  if (!s.len || s.len >= sizeof buf)
    return -EINVAL;
  memcpy(buf, s.p, s.len);
  buf[s.len] = 0;
  errno = 0;
  long double v = strtold(buf, &end);
  if (isspace((unsigned char)buf[0]) || (size_t)(end - buf) != s.len ||
      (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) ||
      errno == EINVAL || isnan(v))
    return -EINVAL;
  *out_v = v;
  return 0;
}

/* redis's ld2string in its human mode: %.17Lf, trailing zeros (and a bare point) trimmed, "-0"
 * as "0". The length. */
static size_t format_ld(char *buf, size_t cap, long double v)
{
  int n = snprintf(buf, cap, "%.17Lf", v);
  size_t len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
  if (memchr(buf, '.', len)) {
    while (buf[len - 1] == '0')
      len--;
    if (buf[len - 1] == '.')
      len--;
  }
  if (len == 2 && buf[0] == '-' && buf[1] == '0')
    buf[0] = '0', len = 1;
  return len;
}

int kvd_on_incrbyfloat(rw_conn *c, const rw_list *a)
{
  static const rw_span NOT_FLOAT = S("ERR value is not a valid float");
  long double v = 0, by;
  char buf[LD_CHARS];
  ADMIT(c);
  struct locked l = kvd_lookup(c, a->item[1]);
  if ((l.it && parse_ld((rw_span){kv_value(l.it), l.it->vlen}, &v) < 0) || parse_ld(a->item[2], &by) < 0) {
    kv_unlock(l.sh);
    return resp_reply_error(c, NOT_FLOAT);
  }
  v += by;
  if (isnan(v) || isinf(v)) {
    kv_unlock(l.sh);
    return resp_reply_error(c, S("ERR increment would produce NaN or Infinity"));
  }
  rw_span out = {(const uint8_t *)buf, format_ld(buf, sizeof buf, v)};
  int err = kvd_put(c, l.sh, a->item[1], l.hash, out, (rw_span){0}, l.it ? l.it->flags : 0,
                    l.it ? l.it->expire_ms : 0, l.it, kvd_now_ms(c));
  kv_unlock(l.sh);
  return err < 0 ? kvd_reply_store_error(c, err) : resp_reply_bulk(c, out);
}
