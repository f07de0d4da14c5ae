/* The upstream's responses, read the way a generated parser reads a request: resumable at any
 * byte (a head that crosses receives waits in the connection's slot, and its end is searched
 * for from where the last search stopped), strict where smuggling lives, and a body handed on
 * piece by piece as it arrives. What a piece or an end moves the parser to is committed only
 * when its handler took it: a handler that returns -EAGAIN (its client is full) gets the same
 * bytes again once resumed. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "httpd.h"
#include "proxy.h"

enum { P_HEAD, P_LENGTH, P_CLOSE, P_SIZE, P_DATA, P_DATA_END, P_TRAILERS };
enum { CMD_HEAD, CMD_BODY, CMD_END };

struct parser {
  uint8_t phase;
  bool head_request; /* the response answers a HEAD: no body */
  uint32_t scanned;  /* bytes of a head searched for its end already */
  uint64_t left;     /* of the Content-Length body, or of the chunk */
};

struct msg {
  struct httpd_response_head head;
  rw_span piece;
  bool last;
  struct parser *p, next; /* what the parser becomes once the handler took the message */
};

#define CHUNK_LINE_MAX 4096

static bool tchar(uint8_t ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Field values, reasons, chunk extensions: no control byte but HTAB. */
static bool text(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
      return false;
  return true;
}

static bool digit(uint8_t ch)
{
  return ch >= '0' && ch <= '9';
}

/* "HTTP/d.d SSS[ reason]", the CRLF cut off. */
static bool status_line(const uint8_t *p, size_t n, struct httpd_response_head *h)
{
  if (n < 12 || memcmp(p, "HTTP/", 5) || !digit(p[5]) || p[6] != '.' || !digit(p[7]) || p[8] != ' ' ||
      !digit(p[9]) || !digit(p[10]) || !digit(p[11]) || (n > 12 && p[12] != ' ') || !text(p + 12, n - 12))
    return false;
  h->major = (uint8_t)(p[5] - '0');
  h->minor = (uint8_t)(p[7] - '0');
  h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
  h->reason = n > 12 ? (rw_span){p + 13, n - 13} : (rw_span){p + 12, 0};
  return h->major == 1 && h->status >= 100;
}

/* The value of a "name: value" line, blanks trimmed; false when the line is no field. */
static bool field(const uint8_t *p, size_t n, size_t *name_len, rw_span *value)
{
  size_t i = 0;
  while (i < n && tchar(p[i]))
    i++;
  if (!i || i == n || p[i] != ':' || !text(p + i + 1, n - i - 1))
    return false; /* (a blank before the colon, an obs-fold line: no field) */
  *name_len = i;
  const uint8_t *v = p + i + 1, *e = p + n;
  while (v < e && httpd_ows(*v))
    v++;
  while (e > v && httpd_ows(e[-1]))
    e--;
  *value = (rw_span){v, (size_t)(e - v)};
  return true;
}

static bool name_is(const uint8_t *p, size_t n, const char *name)
{
  return n == strlen(name) && !strncasecmp((const char *)p, name, n);
}

/* Content-Length's digits; false past 64 bits or with anything else in it. */
static bool length_value(rw_span v, uint64_t *out)
{
  uint64_t n = 0;
  if (!v.len)
    return false;
  for (size_t i = 0; i < v.len; i++) {
    if (!digit(v.p[i]) || n > (UINT64_MAX - 9) / 10)
      return false;
    n = n * 10 + (uint64_t)(v.p[i] - '0');
  }
  *out = n;
  return true;
}

/* The fields of p[0..n) (lines, each ending in CRLF): checked, listed, and their framing. */
static int fields(const uint8_t *p, size_t n, struct httpd_response_head *h, unsigned *lengths,
                  unsigned *codings, bool *chunked)
{
  rw_list_set(&h->fields, RW_LIST_FIELDS, 0, (rw_span){p, n});
  for (const uint8_t *end = p + n; p < end;) {
    const uint8_t *cr = memchr(p, '\r', (size_t)(end - p));
    if (!cr || cr + 1 >= end || cr[1] != '\n')
      return RW_PARSE_BAD_DATA; /* a bare CR inside a line */
    size_t name;
    rw_span v;
    if (!field(p, (size_t)(cr - p), &name, &v))
      return RW_PARSE_BAD_DATA;
    if (name_is(p, name, "content-length")) {
      ++*lengths;
      if (!length_value(v, &h->length))
        return RW_PARSE_BAD_DATA;
    } else if (name_is(p, name, "transfer-encoding")) {
      ++*codings;
      *chunked = v.len == 7 && !strncasecmp((const char *)v.p, "chunked", 7);
    }
    if (h->fields.count < RW_LIST_INLINE)
      h->fields.item[h->fields.count] = (rw_span){p, (size_t)(cr - p)};
    h->fields.count++;
    p = cr + 2;
  }
  return 0;
}

/* RFC 9112 6.3, for a response: no body for 1xx, 204, 304 and a reply to HEAD; chunked when
 * Transfer-Encoding says so (and nothing else may be said with it); else Content-Length; else
 * until the close. */
static int framing(const struct parser *p, struct httpd_response_head *h, unsigned lengths, unsigned codings,
                   bool chunked)
{
  if ((lengths && codings) || lengths > 1 || codings > 1 || (codings && !chunked))
    return RW_PARSE_BAD_DATA;
  if (h->status < 200 || h->status == 204 || h->status == 304 || p->head_request)
    h->framing = HTTPD_BODY_NONE;
  else if (codings)
    h->framing = HTTPD_BODY_CHUNKED;
  else if (lengths)
    h->framing = h->length ? HTTPD_BODY_LENGTH : HTTPD_BODY_NONE;
  else
    h->framing = HTTPD_BODY_CLOSE;
  return 0;
}

static int head(struct parser *p, const uint8_t *buf, size_t len, size_t *used, struct msg *m)
{
  if (len < 5 ? memcmp(buf, "HTTP/", len) : memcmp(buf, "HTTP/", 5))
    return RW_PARSE_INVALID;
  size_t from = p->scanned > 3 ? p->scanned - 3 : 0;
  const uint8_t *end = from < len ? memmem(buf + from, len - from, "\r\n\r\n", 4) : NULL;
  if (!end) {
    p->scanned = (uint32_t)(len < HTTPD_RESPONSE_FIELDS_MAX ? len : HTTPD_RESPONSE_FIELDS_MAX);
    return len > HTTPD_RESPONSE_FIELDS_MAX ? RW_PARSE_FIELDS_TOO_LARGE : RW_PARSE_MORE;
  }
  size_t n = (size_t)(end - buf) + 4;
  if (n > HTTPD_RESPONSE_FIELDS_MAX)
    return RW_PARSE_FIELDS_TOO_LARGE;
  const uint8_t *eol = memchr(buf, '\r', n);
  struct httpd_response_head *h = &m->head;
  *h = (struct httpd_response_head){.length = 0};
  if (eol[1] != '\n' || !status_line(buf, (size_t)(eol - buf), h))
    return RW_PARSE_BAD_DATA;
  unsigned lengths = 0, codings = 0;
  bool chunked = false;
  int rc = fields(eol + 2, (size_t)(end + 2 - (eol + 2)), h, &lengths, &codings, &chunked);
  if (rc || (rc = framing(p, h, lengths, codings, chunked)))
    return rc;
  m->next = (struct parser){.phase = P_HEAD, .head_request = p->head_request && h->status < 200};
  if (h->framing == HTTPD_BODY_LENGTH)
    m->next = (struct parser){.phase = P_LENGTH, .left = h->length};
  else if (h->framing == HTTPD_BODY_CHUNKED)
    m->next.phase = P_SIZE;
  else if (h->framing == HTTPD_BODY_CLOSE)
    m->next.phase = P_CLOSE;
  *used = n;
  return CMD_HEAD;
}

static int piece(struct parser *p, const uint8_t *buf, size_t len, size_t *used, struct msg *m)
{
  size_t n = p->phase == P_CLOSE || p->left > len ? len : (size_t)p->left;
  m->piece = (rw_span){buf, n};
  m->next = *p;
  if (p->phase != P_CLOSE)
    m->next.left -= n;
  m->last = p->phase == P_LENGTH && !m->next.left;
  if (m->last)
    m->next.phase = P_HEAD;
  else if (p->phase == P_DATA && !m->next.left)
    m->next.phase = P_DATA_END;
  *used = n;
  return CMD_BODY;
}

static int hexval(uint8_t c)
{
  return digit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "hex[ext]\r\n": the size goes into the parser; nothing for a handler. */
static int chunk_size(struct parser *p, const uint8_t *buf, size_t len, size_t *used)
{
  const uint8_t *nl = memchr(buf, '\n', len < CHUNK_LINE_MAX ? len : CHUNK_LINE_MAX);
  if (!nl)
    return len >= CHUNK_LINE_MAX ? RW_PARSE_BAD_DATA : RW_PARSE_MORE;
  size_t n = (size_t)(nl - buf), i = 0;
  uint64_t size = 0;
  if (!n || buf[n - 1] != '\r')
    return RW_PARSE_BAD_DATA;
  n--;
  for (int d; i < n && (d = hexval(buf[i])) >= 0; i++) {
    if (size >> 60)
      return RW_PARSE_BAD_DATA;
    size = size * 16 + (uint64_t)d;
  }
  size_t ext = i;
  while (ext < n && httpd_ows(buf[ext]))
    ext++;
  if (!i || (ext < n && buf[ext] != ';') || !text(buf + ext, n - ext))
    return RW_PARSE_BAD_DATA;
  p->phase = size ? P_DATA : P_TRAILERS;
  p->left = size;
  *used = (size_t)(nl - buf) + 1;
  return RW_PARSE_SKIP;
}

static int data_end(struct parser *p, const uint8_t *buf, size_t len, size_t *used)
{
  if (buf[0] != '\r' || (len > 1 && buf[1] != '\n'))
    return RW_PARSE_BAD_DATA;
  if (len < 2)
    return RW_PARSE_MORE;
  p->phase = P_SIZE;
  *used = 2;
  return RW_PARSE_SKIP;
}

/* Trailer fields, checked like fields and dropped (a proxy that re-chunks could pass them on;
 * httpd does not). */
static int trailers(struct parser *p, const uint8_t *buf, size_t len, size_t *used, struct msg *m)
{
  size_t n;
  if (len >= 2 && buf[0] == '\r' && buf[1] == '\n') {
    n = 2;
  } else {
    const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
      return len > HTTPD_RESPONSE_FIELDS_MAX ? RW_PARSE_FIELDS_TOO_LARGE : RW_PARSE_MORE;
    n = (size_t)(end - buf) + 4;
    unsigned lengths = 0, codings = 0;
    bool chunked;
    struct httpd_response_head h;
    if (fields(buf, n - 2, &h, &lengths, &codings, &chunked))
      return RW_PARSE_BAD_DATA;
  }
  m->next = (struct parser){.phase = P_HEAD, .head_request = p->head_request};
  *used = n;
  return CMD_END;
}

static int next(void *state, const uint8_t *buf, size_t len, size_t *used, void *out)
{
  struct parser *p = state;
  struct msg *m = out;
  m->p = p;
  *used = 0;
  switch (p->phase) {
  case P_HEAD: return head(p, buf, len, used, m);
  case P_SIZE: return chunk_size(p, buf, len, used);
  case P_DATA_END: return data_end(p, buf, len, used);
  case P_TRAILERS: return trailers(p, buf, len, used, m);
  default: return piece(p, buf, len, used, m);
  }
}

static void init(void *state)
{
  *(struct parser *)state = (struct parser){.phase = P_HEAD};
}

static int dispatch(rw_conn *c, const void *handlers, int cmd, const void *msg)
{
  const struct httpd_response_handlers *h = handlers;
  const struct msg *m = msg;
  int rc = cmd == CMD_HEAD   ? h->head(c, &m->head)
           : cmd == CMD_BODY ? h->body(c, m->piece, m->last)
                             : h->end(c);
  if (rc != -EAGAIN)
    *m->p = m->next;
  return rc;
}

/* Whatever the upstream got wrong closes its connection: the proxy answers 502 if it can. */
static int on_error(rw_conn *c, const void *handlers, int status, const void *msg)
{
  (void)c, (void)handlers, (void)status, (void)msg;
  return -EBADMSG;
}

static int check(const void *handlers)
{
  const struct httpd_response_handlers *h = handlers;
  return h && h->head && h->body && h->end ? 0 : -EINVAL;
}

static const char *const command_names[] = {"head", "body", "end"};

const rw_proto httpd_response_proto = {
    .name = "http1-response",
    .parser_size = sizeof(struct parser),
    .max_frame = HTTPD_RESPONSE_FIELDS_MAX,
    .ncommands = 3,
    .command_names = command_names,
    .parser_init = init,
    .next = next,
    .dispatch = dispatch,
    .on_error = on_error,
    .check_handlers = check,
};

void httpd_response_expect_state(void *parser, bool head)
{
  ((struct parser *)parser)->head_request = head;
}

void httpd_response_expect(rw_conn *c, bool head)
{
  httpd_response_expect_state(rw_conn_parser(c), head);
}
