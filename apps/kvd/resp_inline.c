/* kvd's inline commands (`SET "a b" v` typed at nc or piped into redis-cli): the line split as
 * redis's sdssplitargs splits it (blanks; "double quotes" with \xHH, \n, \r, \t, \b, \a and
 * \<char> escapes; 'single quotes' with \'; a closing quote must end the word), then dispatched through the spec's table like a multibulk request. An unbalanced quote
 * gets redis's protocol error and the connection closes. So does a line with a NUL byte: redis
 * looks for its end with strchr and never finds it (it answers nothing until 64 KiB have come).
 *
 * The words are written, unquoted, into the worker's scratch as a RESP array body ($len CRLF
 * bytes CRLF each), so the handlers walk them as they walk any request (rw_list). Each input byte
 * yields at most 3.5 output bytes (a one-byte word and its blank: "$1\r\na\r\n"), so four times the
 * longest line always fits: no allocation per request. */
#include <ctype.h>
#include <stdlib.h>

#include "resp_cmd.h"

#define SCRATCH (4 * (size_t)RESP_LIMIT_LINE)
/* A line's words (each a byte and a blank at least) are never more than an array may carry. */
_Static_assert(RESP_LIMIT_LINE / 2 <= RESP_LIMIT_ITEMS, "an inline command's words fit the item limit");

static uint8_t *scratch; /* [workers][SCRATCH] */

int kvd_inline_init(unsigned workers)
{
  scratch = malloc(workers * SCRATCH); /* (resident only as far as lines have needed) */
  return scratch ? 0 : -ENOMEM;
}

/* The words being built: the array body, its spans. */
struct words {
  uint8_t *out, *end;
  rw_list l;
  uint8_t *word; /* the current word's first byte in `out` */
};

static int hexval(int ch)
{
  return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

/* A word starts: its header's room is kept (5 digits: a word is shorter than a line). */
static void word_start(struct words *w)
{
  w->word = w->out + 8; /* "$" 5 digits CRLF, moved down once the length is known */
  w->out = w->word;
}

static void word_end(struct words *w)
{
  size_t len = (size_t)(w->out - w->word);
  char head[8];
  head[0] = '$';
  size_t h = 1 + rw_fmt_u64(head + 1, len);
  head[h++] = '\r';
  head[h++] = '\n';
  uint8_t *start = w->word - 8;
  memcpy(start, head, h);
  memmove(start + h, w->word, len);
  if (w->l.count < RW_LIST_INLINE)
    w->l.item[w->l.count] = (rw_span){start + h, len};
  w->l.count++;
  w->out = start + h + len;
  *w->out++ = '\r';
  *w->out++ = '\n';
}

/* One byte of a double-quoted word at p[0..n): how many it took (an escape takes more). */
static size_t quoted_byte(const uint8_t *p, size_t n, uint8_t *out)
{
  if (p[0] != '\\' || n < 2) {
    *out = p[0];
    return 1;
  }
  if (p[1] == 'x' && n >= 4 && isxdigit(p[2]) && isxdigit(p[3])) {
    *out = (uint8_t)(hexval(p[2]) * 16 + hexval(p[3]));
    return 4;
  }
  static const char from[] = "nrtba", to[] = "\n\r\t\b\a";
  const char *e = memchr(from, p[1], 5);
  *out = e ? (uint8_t)to[e - from] : p[1];
  return 2;
}

/* Splits p[0..n) into `w`: 0, or -EINVAL for an unbalanced quote (or a closing one followed by
 * something other than a blank). */
static int split(const uint8_t *p, size_t n, struct words *w)
{
  size_t i = 0;
  for (;;) {
    while (i < n && isspace(p[i]))
      i++;
    if (i == n)
      return 0;
    word_start(w);
    bool dq = false, sq = false;
    for (;;) {
      if (dq || sq) {
        if (i == n)
          return -EINVAL;
        if (dq && p[i] == '"') {
          if (i + 1 < n && !isspace(p[i + 1]))
            return -EINVAL;
          i++;
          break;
        }
        if (sq && p[i] == '\'') {
          if (i + 1 < n && !isspace(p[i + 1]))
            return -EINVAL;
          i++;
          break;
        }
        if (sq && p[i] == '\\' && i + 1 < n && p[i + 1] == '\'')
          *w->out++ = '\'', i += 2;
        else if (sq)
          *w->out++ = p[i++];
        else
          i += quoted_byte(p + i, n - i, w->out++);
      } else if (i == n || p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
        break;
      } else if (p[i] == '"' || p[i] == '\'') {
        dq = p[i] == '"', sq = p[i] == '\'';
        i++;
      } else {
        *w->out++ = p[i++];
      }
    }
    word_end(w);
  }
}

int kvd_on_inline(rw_conn *c, const struct resp_inline_cmd *m)
{
  rw_span line = m->line;
  size_t n = line.len;
  if (line.p[0] == '*') /* an array's header with a CR in it that ends no line */
    return kvd_resp_odd_inline(c, line);
  if (memchr(line.p, 0, n)) {
    int rc = resp_reply_bad_request(c);
    rw_conn_close(c);
    return rc;
  }
  if (n && line.p[n - 1] == '\r')
    n--;
  struct words w = {.out = scratch + rw_worker_id(rw_conn_worker(c)) * SCRATCH};
  uint8_t *base = w.out;
  rw_list_set(&w.l, RW_LIST_PREFIXED, 0, (rw_span){0});
  if (split(line.p, n, &w) < 0) {
    int rc = resp_reply_error(c, S("ERR Protocol error: unbalanced quotes in request"));
    rw_conn_close(c);
    return rc;
  }
  w.l.region = (rw_span){base, (size_t)(w.out - base)};
  w.l.prefix_len = 1;
  w.l.sep_len = 2;
  memcpy(w.l.sep, "\r\n", 2);
  return kvd_resp_dispatch(c, &w.l);
}
