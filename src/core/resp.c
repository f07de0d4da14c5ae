/* RESP2 replies: checked once as they arrive (include/ringwright/resp.h), walked afterwards
 * without checks. The scan resumes from offsets, so a reply split at any byte is read in
 * O(its bytes): a bulk string's bytes are counted, never searched, and a long line is searched
 * from where the last call stopped. */
#include <string.h>

#include <ringwright/proto.h>
#include <ringwright/resp.h>

/* A decimal line's value: digits with an optional '-', no more than int64 holds. */
static bool decimal(const uint8_t *p, size_t n, int64_t *out)
{
  bool neg = n && p[0] == '-';
  size_t i = neg;
  uint64_t v = 0, most = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  if (i == n)
    return false;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9' || v > (most - (uint64_t)(p[i] - '0')) / 10)
      return false;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

/* The end of the line at buf[s->pos]: its LF's offset, or a status. */
static int line_end(rw_resp_scan *s, const rw_resp_limits *lim, const uint8_t *buf, size_t len,
                    size_t *out_lf)
{
  size_t from = (size_t)(s->pos + s->scanned), most = (size_t)(s->pos + lim->line);
  size_t to = len < most ? len : most;
  const uint8_t *lf = from < to ? memchr(buf + from, '\n', to - from) : NULL;
  if (!lf) {
    s->scanned = to - s->pos;
    return len >= most ? RW_PARSE_OVERLONG : RW_PARSE_MORE;
  }
  *out_lf = (size_t)(lf - buf);
  /* One CR, just before the LF: a bare CR inside would end the line for some readers only. */
  const uint8_t *cr = memchr(buf + s->pos, '\r', *out_lf - s->pos);
  return cr && cr == lf - 1 ? 0 : RW_PARSE_BAD_DATA;
}

/* One value ends: the arrays it completes close with it. True when the reply is complete. */
static bool value_done(rw_resp_scan *s)
{
  while (s->depth && --s->left[s->depth - 1] == 0)
    s->depth--;
  return !s->depth;
}

/* An array of n elements opens: deeper or longer than the limits is bad data. */
static int open_array(rw_resp_scan *s, const rw_resp_limits *lim, int64_t n)
{
  if (s->depth >= lim->depth || (uint64_t)n > lim->items - s->items)
    return RW_PARSE_BAD_DATA;
  s->items += (uint64_t)n;
  s->left[s->depth++] = n;
  return 0;
}

/* One value at s->pos: 1 when it completed the reply, 0 when more values follow, or a status. */
static int value(rw_resp_scan *s, const rw_resp_limits *lim, const uint8_t *buf, size_t len)
{
  size_t lf;
  int rc = line_end(s, lim, buf, len, &lf);
  if (rc)
    return rc;
  uint8_t kind = buf[s->pos];
  const uint8_t *digits = buf + s->pos + 1;
  size_t ndigits = lf - 1 - (size_t)s->pos - 1;
  size_t next = lf + 1;
  int64_t n = 0;
  if (kind != '+' && kind != '-' && (!decimal(digits, ndigits, &n) || (kind != ':' && n < -1)))
    return RW_PARSE_BAD_DATA;
  switch (kind) {
  case '+':
  case '-':
  case ':': break;
  case '$':
    if (n >= 0) {
      if (next > lim->reply || (uint64_t)n > lim->reply - next)
        return RW_PARSE_TOO_LARGE;
      if (len < next + (size_t)n + 2)
        return RW_PARSE_MORE;
      if (buf[next + (size_t)n] != '\r' || buf[next + (size_t)n + 1] != '\n')
        return RW_PARSE_BAD_DATA;
      next += (size_t)n + 2;
    }
    break;
  case '*':
    if (n > 0 && (rc = open_array(s, lim, n)) < 0)
      return rc;
    if (n > 0) {
      s->pos = next;
      s->scanned = 0;
      return 0;
    }
    break;
  default: return RW_PARSE_BAD_DATA;
  }
  s->pos = next;
  s->scanned = 0;
  return value_done(s);
}

int rw_resp_scan_run(rw_resp_scan *s, const rw_resp_limits *lim, const uint8_t *buf, size_t len,
                     size_t *out_len)
{
  for (;;) {
    if (s->pos >= len)
      return RW_PARSE_MORE;
    int rc = value(s, lim, buf, len);
    if (rc < 0)
      return rc;
    if (s->pos > lim->reply)
      return RW_PARSE_TOO_LARGE;
    if (rc) {
      *out_len = (size_t)s->pos;
      *s = (rw_resp_scan){.pos = 0};
      return 0;
    }
  }
}

bool rw_resp_walk(rw_span *rest, rw_resp_value *out)
{
  if (!rest->len)
    return false;
  const uint8_t *p = rest->p, *lf = memchr(p, '\n', rest->len);
  size_t n = (size_t)(lf - 1 - (p + 1));
  const uint8_t *next = lf + 1;
  *out = (rw_resp_value){.kind = p[0], .str = {p + 1, n}};
  if (p[0] == ':' || p[0] == '$' || p[0] == '*')
    decimal(p + 1, n, &out->integer);
  if ((p[0] == '$' || p[0] == '*') && out->integer < 0) {
    out->nil = true;
    out->str = (rw_span){next, 0};
  } else if (p[0] == '$') {
    out->str = (rw_span){next, (size_t)out->integer};
    next += out->integer + 2;
  } else if (p[0] == '*') {
    out->str = (rw_span){next, 0};
  }
  rest->len -= (size_t)(next - rest->p);
  rest->p = next;
  return true;
}
