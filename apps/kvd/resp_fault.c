/* redis 7.0's protocol errors for a malformed RESP request (networking.c: processInlineBuffer,
 * processMultibulkBuffer), each followed by a close. The spec refuses such a request (its
 * `refused` handler, or `odd_count` for an array header that is no plain count); here the bytes
 * are read again as redis reads them, from the request's first byte, to name the fault redis
 * names. Where redis would read on and kvd does not, kvd keeps its strictness (docs/kvd.md lists
 * each case): a CR must be followed by LF and a bulk string by CRLF, else a request boundary is a
 * guess; a line that cannot become valid is refused when its bad byte arrives, not once its CR
 * has (redis waits for up to 64 KiB of it).
 *
 * With a password set, an unauthenticated connection is inspected before each parse
 * (rw_conn_inspect), as redis checks its limits for those clients (at most 10 items of at most
 * 16 KiB) on each header as it arrives, not once the whole request is held. */
#include <limits.h>
#include <stdio.h>

#include "resp_cmd.h"

#define INLINE_MAX 65536 /* redis's PROTO_INLINE_MAX_SIZE: a line without its end past this is refused */
#define BULK_MAX (512 * 1024 * 1024LL) /* redis's proto-max-bulk-len */
#define UNAUTH_ITEMS 10
#define UNAUTH_BULK 16384

enum walk {
  WALK_OK,    /* a whole request, or the first bytes of a valid one, or an inline command */
  WALK_MORE,  /* redis would wait for more bytes before judging */
  WALK_LIMIT, /* within redis's rules, past kvd's own limits (items, data in all) */
  WALK_FAULT, /* redis's fault, or kvd's stricter one: `text` */
};

struct fault {
  enum walk walk;
  rw_span text;
  uint8_t got; /* for "expected '$', got '%c'" */
};

#define FAULT(lit) ((struct fault){WALK_FAULT, S("ERR Protocol error: " lit), 0})
#define ONLY(w) ((struct fault){.walk = (w)})
#define EXPECTED_DOLLAR "expected '$', got '"

/* A line's number as string2ll reads it: p[0..n). */
static bool number(const uint8_t *p, size_t n, int64_t *out)
{
  return kvd_parse_i64((rw_span){p, n}, out) == 0;
}

/* The array header at p[0] == '*': its count in *count and the first item's offset in *pos. */
static struct fault header(const uint8_t *p, size_t n, bool authed, bool whole, int64_t *count, size_t *pos)
{
  const uint8_t *cr = memchr(p, '\r', n);
  if (cr && cr - p > INLINE_MAX)
    cr = NULL; /* redis gave up before it came */
  if (!cr) {
    if (n > INLINE_MAX)
      return FAULT("too big mbulk count string");
    return whole ? FAULT("invalid multibulk length") : ONLY(WALK_MORE);
  }
  size_t at = (size_t)(cr - p);
  if (at + 1 == n && !whole)
    return ONLY(WALK_MORE); /* redis waits for the byte after CR */
  if (!number(p + 1, at - 1, count) || *count > INT_MAX)
    return FAULT("invalid multibulk length");
  if (*count > UNAUTH_ITEMS && !authed)
    return FAULT("unauthenticated multibulk length");
  if (at + 1 == n || p[at + 1] != '\n')
    return FAULT("invalid multibulk length"); /* (redis skips the byte after CR, whatever it is) */
  *pos = at + 2;
  return ONLY(WALK_OK);
}

/* One bulk string at p[*pos]: its header and data, *pos moved past them. */
static struct fault bulk(const uint8_t *p, size_t n, bool authed, bool whole, size_t *pos)
{
  const uint8_t *b = p + *pos;
  size_t left = n - *pos;
  if (!left)
    return ONLY(WALK_MORE);
  if (b[0] != '$') {
    if (!b[0]) /* (redis looks for the line's end with strchr, which stops there: it never answers) */
      return FAULT("invalid request");
    return (struct fault){WALK_FAULT, S("ERR Protocol error: " EXPECTED_DOLLAR), b[0]};
  }
  const uint8_t *cr = memchr(b, '\r', left);
  if ((!cr || (size_t)(cr - b) + 1 == left) && !whole)
    return ONLY(WALK_MORE);
  size_t at = cr ? (size_t)(cr - b) : left; /* (refused without its CR: judged on what came) */
  int64_t len;
  if (!number(b + 1, at - 1, &len) || len < 0 || len > BULK_MAX)
    return FAULT("invalid bulk length");
  if (len > UNAUTH_BULK && !authed)
    return FAULT("unauthenticated bulk length");
  if (at + 1 >= left)
    return ONLY(WALK_MORE);
  if (b[at + 1] != '\n')
    return FAULT("invalid bulk length"); /* (redis skips the byte after CR) */
  size_t end = at + 2 + (size_t)len;
  if (left < end + 2)
    return ONLY(WALK_MORE);
  if (b[end] != '\r' || b[end + 1] != '\n')
    return FAULT("expected CRLF after bulk data"); /* (redis skips two bytes, whatever they are) */
  *pos += end + 2;
  return ONLY(WALK_OK);
}

/* The first request in p[0..n) as redis reads it. `whole`: the parser refused it, so its bytes
 * are judged as they are; else redis's own waiting applies. */
static struct fault walk(const uint8_t *p, size_t n, bool authed, bool whole)
{
  if (!n || p[0] != '*')
    return ONLY(WALK_OK); /* inline: redis's limit is on its length alone */
  int64_t count;
  size_t pos;
  struct fault f = header(p, n, authed, whole, &count, &pos);
  if (f.walk != WALK_OK || count <= 0)
    return f;
  if (count > RESP_LIMIT_ITEMS)
    return ONLY(WALK_LIMIT);
  for (int64_t i = 0; i < count; i++)
    if ((f = bulk(p, n, authed, whole, &pos)).walk != WALK_OK)
      return f;
  return f;
}

static int reply_fault(rw_conn *c, struct fault f)
{
  int rc;
  if (f.got) /* "expected '$', got '": the byte, then "'" */
    rc = kvd_reply_errorf(c, "%.*s%c'", (int)f.text.len, (const char *)f.text.p, f.got);
  else
    rc = resp_reply_error(c, f.text);
  rw_conn_close(c);
  return rc;
}

int kvd_resp_refused(rw_conn *c, int status)
{
  size_t n;
  const uint8_t *p = rw_conn_refused_bytes(c, &n);
  struct fault f = walk(p, n, kvd_authed(c), true);
  if (f.walk == WALK_LIMIT)
    f = FAULT("invalid multibulk length"); /* past `limit items`: redis 6's limit, and its text */
  if (f.walk == WALK_FAULT)
    return reply_fault(c, f);
  if (status == RW_PARSE_OVERLONG && n && p[0] != '*')
    return resp_reply_error(c, S("ERR Protocol error: too big inline request"));
  /* kvd's own limits (items, data in all): the spec's texts */
  return status == RW_PARSE_OVERLONG ? resp_reply_too_big(c) : resp_reply_bad_request(c);
}

int kvd_resp_odd_count(rw_conn *c, const struct resp_odd_count *m)
{
  struct fault f = walk(m->line.p, m->line.len, kvd_authed(c), true);
  if (f.walk == WALK_OK)
    return 0; /* a count below 1: an empty request, as redis takes it */
  if (f.walk != WALK_FAULT)
    f = FAULT("invalid multibulk length");
  return reply_fault(c, f);
}

int kvd_resp_odd_inline(rw_conn *c, rw_span line)
{
  struct fault f = walk(line.p, line.len, kvd_authed(c), true);
  return reply_fault(c, f.walk == WALK_FAULT ? f : FAULT("invalid multibulk length"));
}

static void inspect(rw_conn *c, const uint8_t *p, size_t n)
{
  struct fault f = walk(p, n, false, false);
  if (f.walk == WALK_FAULT)
    reply_fault(c, f);
}

void kvd_resp_gate_input(rw_conn *c, bool authed)
{
  rw_conn_inspect(c, authed || !kvd_auth_required() ? NULL : inspect);
}
