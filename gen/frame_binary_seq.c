/* A binary frame read item after item (gen/construct.h): the parser of a frame whose fields do
 * not all sit at fixed offsets, because a varint, a condition or a part comes before them.
 *
 *   command packet = b0:u8 remaining:mqttlen type:bits(b0, 4, 4) qos:bits(b0, 1, 2)
 *                    if (type == 3) topic_len:u16be  if (type == 3) topic:bytes(topic_len)
 *                    if (qos) id:u16be  payload:rest(remaining) -> dispatch type;
 *
 * Each call reads the items from the frame's first byte with a cursor, returning "more" when
 * one is not all there: the items are a few bytes and the parts are jumped over, so a frame
 * split anywhere parses in O(total bytes). rest(LEN) bounds the frame: once LEN is read, it is
 * checked against `limit data` (past it: too_large, and LEN bytes are skipped as they arrive),
 * and every item after it must end within it, so a frame that announces fewer bytes than its
 * fields need is bad_data at once, never a read into the next frame. */
#include <string.h>

#include "construct.h"

/* The item rest() reads its length from, or -1. */
int seq_bound(const struct command_decl *c)
{
  if (!c->nbin || c->bin[c->nbin - 1].kind != BIN_REST)
    return -1;
  return c->bin[c->nbin - 1].terms[0].item;
}

static bool uses_bad(const struct command_decl *c)
{
  bool bad = seq_bound(c) >= 0;
  for (size_t i = 0; i < c->nbin; i++) {
    bad |= c->bin[i].kind == BIN_VARINT;
    for (size_t t = 0; t < c->bin[i].nterms && c->bin[i].kind == BIN_BYTES; t++)
      bad |= c->bin[i].terms[t].neg;
  }
  return bad;
}

/* Waits for n bytes at the cursor; within the announced end, else bad. */
static void emit_need(size_t n, bool bounded, struct writer *w)
{
  if (bounded) {
    w_open(w, "if (lim - at < %zuu)\n", n);
    w_puts(w, "goto bad; /* past the frame's announced end */\n");
    w_dedent(w);
  }
  char head[64];
  snprintf(head, sizeof head, "if (len - at < %zuu)", n);
  emit_return(w, head, "0", "RW_PARSE_MORE");
}

static void emit_lit(const struct bin_item *b, size_t i, bool bounded, struct writer *w)
{
  emit_need(b->len, bounded, w);
  if (b->off != SIZE_MAX) { /* at a fixed offset: checked as its bytes arrived (frame_binary.c) */
    w_printf(w, "at += %zu;\n", b->len);
    return;
  }
  w_printf(w, "static const uint8_t lit%zu[] = ", i);
  w_cbytes(w, b->lit, b->len);
  w_puts(w, ";\n");
  char head[64];
  snprintf(head, sizeof head, "if (memcmp(buf + at, lit%zu, %zu) != 0)", i, b->len);
  emit_return(w, head, "len", "RW_PARSE_INVALID");
  w_printf(w, "at += %zu;\n", b->len);
}

static void emit_int(const struct command_decl *c, const struct bin_item *b, bool bounded, struct writer *w)
{
  emit_need(b->len, bounded, w);
  w_printf(w, "f->%s = (%s)(", spec_member(b->name), num_ctype(c->fields[b->field].num));
  for (size_t k = 0; k < b->len; k++) {
    size_t at = b->le ? k : b->len - 1 - k; /* the byte worth 256^k */
    w_printf(w, "%s(uint64_t)buf[at + %zu]", k ? " | " : "", at);
    if (k)
      w_printf(w, " << %zu", 8 * k);
  }
  w_printf(w, ");\nat += %zu;\n", b->len);
}

/* A part: bounded by the frame's announced end, or else counted against `limit data`. */
static void emit_part(const struct spec *s, const struct command_decl *c, size_t i, bool bounded,
                      struct writer *w)
{
  const struct bin_item *b = &c->bin[i];
  emit_length(c, b, i, w);
  if (bounded) {
    w_open(w, "if (lim - at < n%zu)\n", i);
    w_puts(w, "goto bad; /* past the frame's announced end */\n");
    w_dedent(w);
  } else {
    w_printf(w, "total = total > UINT64_MAX - n%zu ? UINT64_MAX : total + n%zu;\n", i, i);
    w_open(w, "if (total > %lluu) {\n", (unsigned long long)s->limit_data);
    w_printf(w, "p->skip = n%zu;\n*out_used = at;\nreturn RW_PARSE_TOO_LARGE;\n", i);
    w_close(w, "}\n");
  }
  char head[64];
  snprintf(head, sizeof head, "if (len - at < n%zu)", i);
  emit_return(w, head, "0", "RW_PARSE_MORE");
  w_printf(w, "f->%s = (rw_span){buf + at, (size_t)n%zu};\nat += (size_t)n%zu;\n", spec_member(b->name), i,
           i);
}

/* The length rest() reads: past `limit data` the frame is refused and skipped as it arrives. */
static void emit_bound(const struct spec *s, const struct bin_item *b, struct writer *w)
{
  const char *m = spec_member(b->name);
  w_open(w, "if (f->%s > %lluu) {\n", m, (unsigned long long)s->limit_data);
  w_printf(w, "p->skip = f->%s;\n*out_used = at;\nreturn RW_PARSE_TOO_LARGE;\n", m);
  w_close(w, "}\n");
  w_printf(w, "lim = at + (size_t)f->%s;\n", m);
}

static void emit_item(const struct spec *s, const struct command_decl *c, size_t i, int bound,
                      struct writer *w)
{
  const struct bin_item *b = &c->bin[i];
  bool bounded = bound >= 0 && (int)i > bound;
  if (b->nconds)
    emit_cond_open(c, b, w);
  switch (b->kind) {
  case BIN_LIT: emit_lit(b, i, bounded, w); break;
  case BIN_INT: emit_int(c, b, bounded, w); break;
  case BIN_VARINT: emit_read_varint(b, bounded, w); break;
  case BIN_BITS: emit_bits(c, b, w); break;
  case BIN_BYTES: emit_part(s, c, i, bounded, w); break;
  case BIN_REST:
    emit_return(w, "if (len < lim)", "0", "RW_PARSE_MORE");
    w_printf(w, "f->%s = (rw_span){buf + at, lim - at};\nat = lim;\n", spec_member(b->name));
    break;
  }
  if ((int)i == bound)
    emit_bound(s, b, w);
  if (b->nconds)
    w_close(w, "}\n");
}

void emit_seq_body(const struct spec *s, const struct command_decl *c, struct writer *w)
{
  int bound = seq_bound(c);
  w_printf(w, "*f = (struct %s_%s){0}; /* an absent item reads as zero */\nsize_t at = 0;\n", s->protocol,
           c->name);
  if (bound >= 0)
    w_puts(w, "size_t lim = SIZE_MAX; /* the frame's end, once rest()'s length is read */\n");
  bool counted = false;
  for (size_t i = 0; i < c->nbin; i++)
    counted |= c->bin[i].kind == BIN_BYTES && !(bound >= 0 && (int)i > bound);
  if (counted)
    w_puts(w, "uint64_t total = 0;\n");
  for (size_t i = 0; i < c->nbin; i++)
    emit_item(s, c, i, bound, w);
  w_puts(w, "*out_used = at;\nreturn ");
  emit_cmd_enum(s, c->name, w);
  w_puts(w, ";\n");
  if (uses_bad(c)) {
    w_shift(w, -1); /* a label: column 0 */
    w_puts(w, "bad: /* an over-long varint, or fields past the frame's end: its end is unknown */\n");
    w_shift(w, 1);
    w_puts(w, "*out_used = len;\nreturn RW_PARSE_BAD_DATA;\n");
  }
}
