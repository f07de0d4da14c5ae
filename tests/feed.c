#include "feed.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.gen.h"
#include "lenpfx.gen.h"
#include "memcache_binary.gen.h"
#include "mqtt.gen.h"
#include "pbdelim.gen.h"
#include "kvt.gen.h"
#include "memcache.gen.h"
#include "ping.gen.h"
#include "resp.gen.h"
#include "resp_reply.gen.h"
#include <ringwright/resp.h>

int feeder_init(struct feeder *f, const rw_proto *proto, describe_fn describe, size_t cap)
{
  memset(f, 0, sizeof *f);
  if (proto->parser_size > sizeof f->parser)
    return -EINVAL;
  f->proto = proto;
  f->describe = describe;
  f->cap = cap;
  f->bufs[0] = malloc(cap + 1);
  f->bufs[1] = malloc(cap + 1);
  f->logcap = 1 << 16;
  f->log = calloc(1, f->logcap);
  if (!f->bufs[0] || !f->bufs[1] || !f->log) {
    feeder_fini(f);
    return -ENOMEM;
  }
  proto->parser_init(f->parser);
  return 0;
}

void feeder_fini(struct feeder *f)
{
  free(f->bufs[0]);
  free(f->bufs[1]);
  free(f->log);
  f->bufs[0] = f->bufs[1] = NULL;
  f->log = NULL;
}

static bool log_line(struct feeder *f, const char *s)
{
  size_t n = strlen(s);
  if (f->loglen + n + 2 > f->logcap) {
    size_t cap = (f->logcap + n + 2) * 2;
    char *log = realloc(f->log, cap);
    if (!log)
      return false;
    f->log = log;
    f->logcap = cap;
  }
  memcpy(f->log + f->loglen, s, n);
  f->loglen += n;
  f->log[f->loglen++] = '\n';
  f->log[f->loglen] = 0;
  return true;
}

static bool fault(struct feeder *f, const char *why)
{
  f->fault = why;
  return false;
}

bool feed(struct feeder *f, const uint8_t *data, size_t n)
{
  if (f->closed || f->fault)
    return !f->fault;
  uint8_t *src = f->bufs[f->cur], *dst = f->bufs[f->cur ^ 1];
  if (f->pending + n > f->cap)
    return fault(f, "the parser held more than the frame limit allows");
  memcpy(dst, src, f->pending);
  memcpy(dst + f->pending, data, n);
  memset(src, 0xAA, f->cap + 1); /* poison the old address: a stale pointer reads garbage */
  f->cur ^= 1;
  size_t len = f->pending + n, off = 0;
  dst[len] = 0;
  _Alignas(16) unsigned char msg[RW_PROTO_MSG_MAX];
  while (off < len) {
    size_t used = 0;
    int rc = f->proto->next(f->parser, dst + off, len - off, &used, msg);
    if (rc == RW_PARSE_MORE) {
      if (used && used <= len - off)
        return fault(f, "a length hint that the bytes at hand already meet");
      if (used)
        f->hint_end = f->done + used;
      break;
    }
    if (used > len - off)
      return fault(f, "the parser consumed more than it was given");
    if (rc != RW_PARSE_SKIP && rc != RW_PARSE_HEAD && used) {
      if (f->done + used < f->hint_end)
        return fault(f, "a length hint past the end of its frame");
      f->hints += f->hint_end != 0;
      f->hint_end = 0;
    }
    if (rc == RW_PARSE_SKIP) { /* discarded bytes of a refused block, as the runtime does */
      if (!used)
        return fault(f, "a skip that consumed nothing");
      off += used;
      f->done += used;
      continue;
    }
    if (rc == RW_PARSE_HEAD) { /* a head before its body; then more bytes are awaited */
      if (used)
        return fault(f, "a head that consumed bytes");
      f->describe(0, msg, f->head, sizeof f->head); /* (the specs fed here: head on command 0) */
      f->heads++;
      break;
    }
    if (f->frame_ends && used && !f->frame_ends[f->done + used])
      return fault(f, "a message or error made from bytes inside a declared data block");
    char line[2048];
    if (rc >= 0)
      f->describe(rc, msg, line, sizeof line);
    else
      snprintf(line, sizeof line, "error %d", rc);
    if (!log_line(f, line))
      return fault(f, "out of memory");
    if (rc == RW_PARSE_OVERLONG || rc == RW_PARSE_INVALID || (rc < 0 && f->errors_close) ||
        (rc < 0 && rc == f->closes_on)) {
      f->closed = true;
      return true;
    }
    if (!used)
      return fault(f, "a message that consumed nothing");
    off += used;
    f->done += used;
  }
  memmove(dst, dst + off, len - off);
  f->pending = len - off;
  return true;
}

/* ---- an oracle's framing ---- */

/* One token of a line: the run of non-space bytes at *p, or false at the line's end. */
static bool next_token(const uint8_t **p, const uint8_t *e, const uint8_t **out_s, size_t *out_n)
{
  while (*p < e && **p == ' ')
    (*p)++;
  if (*p == e)
    return false;
  *out_s = *p;
  while (*p < e && **p != ' ')
    (*p)++;
  *out_n = (size_t)(*p - *out_s);
  return true;
}

static bool token_is(const uint8_t *s, size_t n, const char *word)
{
  return n == strlen(word) && memcmp(s, word, n) == 0;
}

/* The block a memcache line declares (0: none), including its CRLF. */
static uint64_t declared_block(const uint8_t *line, const uint8_t *e)
{
  static const char *const verbs[] = {"set", "add", "replace", "append", "prepend", "cas"};
  const uint8_t *tok[5];
  size_t len[5], k = 0;
  if (e > line && e[-1] == '\r')
    e--;
  while (k < 5 && next_token(&line, e, &tok[k], &len[k]))
    k++;
  if (k < 5)
    return 0;
  bool storage = false;
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    storage |= token_is(tok[0], len[0], verbs[i]);
  uint64_t v = 0;
  for (size_t i = 0; storage && i < len[4]; i++) {
    unsigned d = (unsigned)(tok[4][i] - '0');
    if (d > 9 || v > (UINT64_MAX - d) / 10)
      return 0;
    v = v * 10 + d;
  }
  return storage ? (uint64_t)(uint32_t)v + 2 : 0;
}

void memcache_frames(const uint8_t *data, size_t n, uint8_t *out)
{
  memset(out, 0, n + 1);
  size_t pos = 0;
  while (pos < n) {
    const uint8_t *nl = memchr(data + pos, '\n', n - pos);
    if (!nl)
      break;
    size_t end = (size_t)(nl - data) + 1;
    out[end] = 1;
    uint64_t block = declared_block(data + pos, nl);
    if (block > n - end)
      break;
    pos = end + block;
    out[pos] = 1;
  }
}

/* ---- describers ---- */

/* Appends to out[0..outlen) at *n, truncating (never past the end, however long the input). */
static void append(char *out, size_t outlen, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *out, size_t outlen, size_t *n, const char *fmt, ...)
{
  if (*n + 1 >= outlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(out + *n, outlen - *n, fmt, ap);
  va_end(ap);
  if (k > 0)
    *n = *n + (size_t)k < outlen ? *n + (size_t)k : outlen - 1;
}

#define SPAN(s) (int)(s).len, (const char *)(s).p

void describe_ping(int cmd, const void *msg, char *out, size_t outlen)
{
  (void)msg;
  snprintf(out, outlen, "%s", ping_proto.command_names[cmd]);
}

void describe_echo(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union echo_msg *m = vmsg;
  snprintf(out, outlen, "%s %zu", echo_proto.command_names[cmd], m->data.data.len);
}

void describe_kvt(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union kvt_msg *m = vmsg;
  switch (cmd) {
  case KVT_CMD_GET: snprintf(out, outlen, "get [%.*s]", SPAN(m->get.key)); break;
  case KVT_CMD_SET: snprintf(out, outlen, "set [%.*s] [%.*s]", SPAN(m->set.key), SPAN(m->set.flags)); break;
  case KVT_CMD_PUT: {
    size_t n = 0;
    append(out, outlen, &n, "put %u [%.*s]", m->put.names.count, SPAN(m->put.data));
    for (uint32_t i = 0; i < m->put.names.count; i++) {
      rw_span w = rw_list_at(&m->put.names, i);
      append(out, outlen, &n, " [%.*s]", SPAN(w));
    }
    break;
  }
  default: snprintf(out, outlen, "%s", kvt_proto.command_names[cmd]);
  }
}

void describe_memcache(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union memcache_msg *m = vmsg;
  const char *name = memcache_proto.command_names[cmd];
  switch (cmd) {
  case MEMCACHE_CMD_GET:
  case MEMCACHE_CMD_GETS: {
    size_t n = 0;
    append(out, outlen, &n, "%s", name);
    rw_span rest = cmd == MEMCACHE_CMD_GET ? m->get.keys : m->gets.keys, k;
    while (rw_span_next(&rest, ' ', &k) == 0)
      append(out, outlen, &n, " [%.*s]", SPAN(k));
    break;
  }
  case MEMCACHE_CMD_SET:
  case MEMCACHE_CMD_ADD:
  case MEMCACHE_CMD_REPLACE:
  case MEMCACHE_CMD_APPEND:
  case MEMCACHE_CMD_PREPEND: {
    const struct memcache_set *s = (const void *)&m->set; /* same layout for the storage family */
    snprintf(out, outlen, "%s [%.*s] %u %lld %u [%.*s]%s", name, SPAN(s->key), s->flags,
             (long long)s->exptime, s->bytes, SPAN(s->data), s->noreply.len ? " noreply" : "");
    break;
  }
  case MEMCACHE_CMD_CAS:
    snprintf(out, outlen, "cas [%.*s] %u %u %llu [%.*s]", SPAN(m->cas.key), m->cas.flags, m->cas.bytes,
             (unsigned long long)m->cas.unique, SPAN(m->cas.data));
    break;
  case MEMCACHE_CMD_DELETE:
    snprintf(out, outlen, "delete [%.*s]%s", SPAN(m->delete_.key), m->delete_.noreply.len ? " noreply" : "");
    break;
  case MEMCACHE_CMD_INCR:
  case MEMCACHE_CMD_DECR:
    snprintf(out, outlen, "%s [%.*s] %llu", name, SPAN(m->incr.key), (unsigned long long)m->incr.delta);
    break;
  case MEMCACHE_CMD_TOUCH:
    snprintf(out, outlen, "touch [%.*s] %lld", SPAN(m->touch.key), (long long)m->touch.exptime);
    break;
  case MEMCACHE_CMD_STATS: snprintf(out, outlen, "stats [%.*s]", SPAN(m->stats.args)); break;
  default: snprintf(out, outlen, "%s", name);
  }
}

static void describe_list(const rw_list *l, char *out, size_t outlen)
{
  size_t n = 0;
  append(out, outlen, &n, "%u:", l->count);
  rw_list_iter it;
  rw_span item;
  rw_list_iter_init(l, &it);
  while (rw_list_next(l, &it, &item) == 0)
    append(out, outlen, &n, " [%.*s]", SPAN(item));
  /* The first items are also there directly, and must agree with the walk. */
  for (uint32_t i = 0; i < l->count && i < RW_LIST_INLINE; i++) {
    rw_span a = rw_list_at(l, i);
    if (a.len != l->item[i].len || a.p != l->item[i].p)
      abort();
  }
}

void describe_resp(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union resp_msg *m = vmsg;
  size_t n = 0;
  append(out, outlen, &n, "%s ", resp_proto.command_names[cmd]);
  if (cmd == RESP_CMD_MULTIBULK)
    describe_list(&m->multibulk.args, out + n, outlen - n);
  else if (cmd == RESP_CMD_INLINE_CMD)
    append(out, outlen, &n, "[%.*s]", SPAN(m->inline_cmd.line));
}

void describe_lenpfx(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union lenpfx_msg *m = vmsg;
  (void)cmd;
  snprintf(out, outlen, "frame %u [%.*s]", m->frame.len, SPAN(m->frame.payload));
}

/* Binary bytes as hex, so a log line stays one line. */
static void append_hex(char *out, size_t outlen, size_t *n, rw_span s)
{
  for (size_t i = 0; i < s.len; i++)
    append(out, outlen, n, "%02x", s.p[i]);
}

void describe_memcache_binary(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const struct memcache_binary_request *r = &((const union memcache_binary_msg *)vmsg)->request;
  size_t n = 0;
  (void)cmd;
  append(out, outlen, &n, "op %02x dtype %u vb %u opaque %08x cas %llu extras ", r->opcode, r->dtype,
         r->vbucket, r->opaque, (unsigned long long)r->cas);
  append_hex(out, outlen, &n, r->extras);
  append(out, outlen, &n, " key [%.*s] value [%.*s]", SPAN(r->key), SPAN(r->value));
}

void describe_mqtt(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const struct mqtt_packet *m = &((const union mqtt_msg *)vmsg)->packet;
  size_t n = 0;
  (void)cmd;
  append(out, outlen, &n, "type %u flags %x qos %u len %u topic [%.*s] id %u payload ", m->type, m->flags,
         m->qos, m->remaining, SPAN(m->topic), m->id);
  append_hex(out, outlen, &n, m->payload);
}

void describe_pbdelim(int cmd, const void *vmsg, char *out, size_t outlen)
{
  const union pbdelim_msg *m = vmsg;
  (void)cmd;
  snprintf(out, outlen, "message %llu [%.*s]", (unsigned long long)m->message.len, SPAN(m->message.body));
}

/* A reply's values in order, every string's bytes read (a checksum of them: a 20 MB bulk fits). */
void describe_resp_reply(int cmd, const void *vmsg, char *out, size_t outlen)
{
  rw_span r = ((const union resp_reply_msg *)vmsg)->reply.data;
  size_t n = 0;
  rw_resp_value v;
  (void)cmd;
  append(out, outlen, &n, "reply %zu bytes:", r.len);
  while (rw_resp_walk(&r, &v)) {
    uint32_t sum = 0;
    for (size_t i = 0; i < v.str.len; i++)
      sum = sum * 31 + v.str.p[i];
    append(out, outlen, &n, " %c%s%lld/%zu/%08x", v.kind, v.nil ? "nil" : "", (long long)v.integer, v.str.len,
           (unsigned)sum);
  }
}
