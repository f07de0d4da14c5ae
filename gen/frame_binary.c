/* The header-first binary frame kind (`frame binary;`): its checks, parser, table and picture.
 *
 * A binary command is a fixed-size header of literal bytes and integers (u8 .. u64, big or
 * little endian), then parts whose sizes are sums and differences of those integers:
 *
 *   command request = 0x80 opcode:u8 keylen:u16be extlen:u8 ... total:u32be ...
 *                     extras:bytes(extlen) key:bytes(keylen) value:bytes(total - extlen - keylen)
 *                     -> dispatch opcode;
 *
 * The generated parser waits for the header, checks its literals (as soon as they arrive: a
 * wrong magic is refused at once), decodes the integers, computes every length in 64 bits (a
 * difference that would go below zero is bad_data, never a wild read), bounds their sum by
 * `limit data` before anything of the parts is held (past it: too_large, and the parts are
 * skipped as they arrive), then waits for the whole frame. Nothing waits for a newline. Each
 * call costs the header's few bytes, so a frame split anywhere parses in O(total bytes). */
#include <stdlib.h>
#include <string.h>

#include "construct.h"
#include "parser.h"

/* --- the syntax: STRING | NUMBER (one byte) | NAME:INT | NAME:bytes(TERM (+|- TERM)*) ---------- */

static struct bin_item *add_bin(struct command_decl *d, enum bin_kind kind, struct pos at)
{
  d->bin = xgrow(d->bin, d->nbin, sizeof *d->bin);
  struct bin_item *b = &d->bin[d->nbin++];
  b->kind = kind;
  b->pos = at;
  b->field = -1;
  return b;
}

/* bytes(a + b - 3): the terms of a computed length. */
static int parse_bin_length(struct parser *ps, struct bin_item *b)
{
  bool neg = false;
  for (;;) {
    if (b->nterms == BIN_TERMS) {
      diag_error(ps->spec->src, ps->tok.pos, "a length has at most %d terms", BIN_TERMS);
      return -1;
    }
    struct bin_term *t = &b->terms[b->nterms++];
    t->neg = neg;
    t->pos = ps->tok.pos;
    t->item = -1;
    if (ps->tok.kind == T_NUMBER) {
      t->value = ps->tok.value;
      if (next(ps) < 0)
        return -1;
    } else if (expect_ident(ps, &t->name, &t->pos) < 0) {
      return -1;
    }
    if (is_punct(ps, ')'))
      return next(ps);
    if (!is_punct(ps, '+') && !is_punct(ps, '-'))
      return expected(ps, "'+', '-' or ')'");
    neg = is_punct(ps, '-');
    if (next(ps) < 0)
      return -1;
  }
}

static int parse_bin_item(struct parser *ps, struct command_decl *d)
{
  struct pos at = ps->tok.pos;
  if (is_word(ps, "if")) { /* gen/part_flags.c: the item after it is present when it holds */
    struct bin_cond conds[BIN_CONDS] = {0};
    size_t n = 0;
    if (parse_cond(ps, conds, &n) < 0)
      return -1;
    if (ps->tok.kind != T_IDENT)
      return expected(ps, "a field after the condition");
    if (parse_bin_item(ps, d) < 0)
      return -1;
    memcpy(d->bin[d->nbin - 1].conds, conds, sizeof conds);
    d->bin[d->nbin - 1].nconds = n;
    return 0;
  }
  if (ps->tok.kind == T_STRING || ps->tok.kind == T_NUMBER) {
    struct bin_item *b = add_bin(d, BIN_LIT, at);
    b->lit = xcalloc(ps->tok.len + 1, 1);
    if (ps->tok.kind == T_STRING) {
      b->len = lex_unescape(&ps->tok, b->lit);
    } else if (ps->tok.value > 255) {
      diag_error(ps->spec->src, at, "a byte is 0..255 (0x00..0xff): write wider magic as a string");
      return -1;
    } else {
      b->lit[0] = (uint8_t)ps->tok.value;
      b->len = 1;
    }
    return next(ps);
  }
  char *name;
  if (expect_ident(ps, &name, &at) < 0)
    return -1;
  if (expect_punct(ps, ':') < 0) {
    free(name);
    return -1;
  }
  bool le = false;
  unsigned width = ps->tok.kind == T_IDENT ? int_type(ps->tok.start, ps->tok.len, &le) : 0;
  enum varint_form vform = ps->tok.kind == T_IDENT ? varint_form_of(ps->tok.start, ps->tok.len) : VARINT_NONE;
  struct bin_item *b = add_bin(d, width ? BIN_INT : vform ? BIN_VARINT : BIN_BYTES, at);
  b->name = name;
  if (width || vform) {
    b->len = width ? width : varint_max_bytes(vform);
    b->le = le;
    b->vform = vform;
    return next(ps);
  }
  if (is_word(ps, "bits")) {
    b->kind = BIN_BITS;
    return parse_bits(ps, b);
  }
  bool rest = is_word(ps, "rest");
  if (!rest && !is_word(ps, "bytes"))
    return expected(ps, "an integer type (u8, u16be, u16le, u24be, u24le, u32be, u32le, u64be, "
                        "u64le), a varint (varint, varint32, mqttlen), bits(field, shift, width), "
                        "bytes(length) or rest(length)");
  if (next(ps) < 0 || expect_punct(ps, '(') < 0)
    return -1;
  if (!rest)
    return parse_bin_length(ps, b);
  b->kind = BIN_REST;
  b->nterms = 1;
  b->terms[0].item = -1;
  if (expect_ident(ps, &b->terms[0].name, &b->terms[0].pos) < 0)
    return -1;
  return expect_punct(ps, ')');
}

/* A binary frame: its items up to the action or the dispatch. */
static int binary_parse(struct parser *ps, struct command_decl *d)
{
  while (ps->tok.kind != T_ARROW && !is_punct(ps, ';') && ps->tok.kind != T_EOF)
    if (parse_bin_item(ps, d) < 0)
      return -1;
  if (!d->nbin)
    return expected(ps, "the frame's fields");
  return 0;
}

/* --- the checks ------------------------------------------------------------------------------ */

static enum num_type int_num(unsigned width)
{
  return width == 1 ? NUM_U8 : width == 2 ? NUM_U16 : width <= 4 ? NUM_U32 : NUM_U64;
}

static bool is_int_item(const struct bin_item *b)
{
  return b->kind == BIN_INT || b->kind == BIN_VARINT || b->kind == BIN_BITS;
}

static enum num_type item_num(const struct bin_item *b)
{
  if (b->kind == BIN_VARINT)
    return varint_num(b->vform);
  return int_num(b->kind == BIN_BITS ? (b->bits + 7) / 8 : (unsigned)b->len);
}

static int add_bin_field(struct spec *s, struct command_decl *c, struct bin_item *b)
{
  bool num = is_int_item(b);
  b->field = command_add_field(s->src, c, b->name, b->pos, num ? FIELD_NUM : FIELD_BYTES,
                               num ? item_num(b) : NUM_NONE, -1);
  return b->field < 0 ? -1 : 0;
}

/* Each term of a length names an integer before it, or is a constant. */
static int resolve_terms(struct spec *s, struct command_decl *c, struct bin_item *b)
{
  int rc = 0;
  for (size_t t = 0; t < b->nterms; t++) {
    struct bin_term *term = &b->terms[t];
    if (!term->name)
      continue;
    for (size_t i = 0; i < c->nbin && &c->bin[i] != b; i++)
      if (is_int_item(&c->bin[i]) && !strcmp(c->bin[i].name, term->name))
        term->item = (int)i;
    if (term->item < 0) {
      diag_error(s->src, term->pos, "unknown length field '%s' (an integer of the header)", term->name);
      rc = -1;
    }
  }
  return rc;
}

/* A frame read item after item: its rest() is last, and a part that is refused as too large
 * has a known end only when nothing but the rest follows it. */
static int check_seq(struct spec *s, struct command_decl *c)
{
  int rc = 0;
  size_t first_part = c->nbin;
  for (size_t i = 0; i < c->nbin; i++) {
    const struct bin_item *b = &c->bin[i];
    if (b->kind == BIN_REST && i + 1 != c->nbin) {
      diag_error(s->src, b->pos, "rest() is the frame's last item");
      rc = -1;
    }
    if (b->kind == BIN_BYTES && first_part == c->nbin && !(seq_bound(c) >= 0 && (int)i > seq_bound(c)))
      first_part = i;
  }
  int bound = seq_bound(c);
  if (bound >= 0 && c->bin[bound].nconds) {
    diag_error(s->src, c->bin[bound].pos, "rest() reads its length from a field that is always there");
    rc = -1;
  }
  if (first_part + 1 < c->nbin && !(s->too_large.present && s->too_large.close)) {
    diag_error(s->src, c->bin[first_part].pos,
               "fields follow this part: a frame refused as too large here has no known end, so "
               "on too_large must close (or bound the frame with rest(length))");
    rc = -1;
  }
  return rc;
}

static int check_frame(struct spec *s, struct command_decl *c)
{
  int rc = 0;
  size_t off = 0;
  bool parts = false, fixed = true;
  for (size_t i = 0; i < c->nbin; i++) {
    struct bin_item *b = &c->bin[i];
    /* A field after a part, too, has no fixed offset: the frame is read item after item. */
    c->seq |= b->kind == BIN_VARINT || b->kind == BIN_BITS || b->kind == BIN_REST || b->nconds ||
              (parts && b->kind != BIN_BYTES);
    if (b->kind == BIN_BYTES || b->kind == BIN_REST) {
      parts = true;
      fixed = false;
      rc |= resolve_terms(s, c, b);
    } else if (b->kind != BIN_BITS) {
      fixed &= b->kind != BIN_VARINT && !b->nconds;
      b->off = fixed ? off : SIZE_MAX; /* SIZE_MAX: its place depends on what precedes it */
      off += b->len;
    }
    rc |= check_flags(s, c, i);
    if (b->name && add_bin_field(s, c, b) < 0)
      rc = -1;
  }
  c->header = off;
  if (!off) {
    diag_error(s->src, c->pos, "a binary frame starts with a header of fixed size");
    rc = -1;
  }
  if (parts && !s->limit_data) {
    diag_error(s->src, c->pos, "command '%s' has parts: declare 'limit data N;' (their sum's bound)",
               c->name);
    rc = -1;
  }
  if (!rc && c->seq)
    rc = check_seq(s, c);
  return rc;
}

static const struct bin_item *find_int(const struct command_decl *c, const char *name)
{
  for (size_t i = 0; i < c->nbin; i++)
    if (is_int_item(&c->bin[i]) && !strcmp(c->bin[i].name, name))
      return &c->bin[i];
  return NULL;
}

static int check_int_table(struct spec *s, struct command_decl *c)
{
  if (!c->dispatch_field)
    return 0;
  const struct bin_item *d = find_int(c, c->dispatch_field);
  if (!d) {
    diag_error(s->src, c->dispatch_pos, "dispatch needs an integer field of '%s'", c->name);
    return -1;
  }
  if (!s->ntable) {
    diag_error(s->src, c->dispatch_pos, "dispatch needs a 'table { NAME VALUE; ... };'");
    return -1;
  }
  int rc = 0;
  for (size_t i = 0; i < s->ntable; i++) {
    unsigned bits = d->kind == BIN_BITS ? d->bits : d->kind == BIN_VARINT ? 64 : 8 * (unsigned)d->len;
    if (bits < 32 && s->table[i].arity >> bits) {
      if (d->kind == BIN_INT)
        diag_error(s->src, s->table[i].pos, "%u does not fit '%s' (%zu bytes)", s->table[i].arity, d->name,
                   d->len);
      else
        diag_error(s->src, s->table[i].pos, "%u does not fit '%s' (%u bits)", s->table[i].arity, d->name,
                   bits);
      rc = -1;
    }
    for (size_t j = 0; j < i; j++) {
      if (s->table[j].arity == s->table[i].arity) {
        diag_error(s->src, s->table[i].pos, "'%s' and '%s' have the same value %u", s->table[j].name,
                   s->table[i].name, s->table[i].arity);
        rc = -1;
      }
    }
  }
  return rc;
}

static int binary_check(struct spec *s)
{
  int rc = 0;
  if (s->ncommands != 1) {
    diag_error(s->src, s->ncommands ? s->commands[1].pos : s->binary_pos,
               "a binary spec has one frame command (dispatch its kinds by a field and a table)");
    return -1;
  }
  if (s->raw_name || s->ntokens) {
    diag_error(s->src, s->binary_pos, "a binary spec has no tokens and is not raw");
    rc = -1;
  }
  if (s->bad_data.present && !s->bad_data.close) {
    /* A frame whose lengths contradict each other has no known end: nothing after it parses. */
    diag_error(s->src, s->bad_data.pos, "on bad_data must close in a binary spec");
    rc = -1;
  }
  struct command_decl *c = &s->commands[0];
  if (c->quiet) {
    diag_error(s->src, c->quiet_pos, "quiet is for line frames (a binary handler stays quiet itself)");
    rc = -1;
  }
  c->quiet_field = -1;
  if (!rc)
    rc = check_frame(s, c);
  if (!rc)
    rc = check_int_table(s, c);
  return rc;
}

/* --- the parser -------------------------------------------------------------------------- */

static void emit_read_int(const struct command_decl *c, const struct bin_item *b, struct writer *w)
{
  w_printf(w, "f->%s = (%s)(", spec_member(b->name), num_ctype(c->fields[b->field].num));
  for (size_t k = 0; k < b->len; k++) {
    size_t at = b->off + (b->le ? k : b->len - 1 - k); /* the byte worth 256^k */
    w_printf(w, "%s(uint64_t)buf[%zu]", k ? " | " : "", at);
    if (k)
      w_printf(w, " << %zu", 8 * k);
  }
  w_puts(w, ");\n");
}

/* The part's length into n<i>; a difference below zero jumps to bad. */
void emit_length(const struct command_decl *c, const struct bin_item *b, size_t i, struct writer *w)
{
  w_printf(w, "uint64_t n%zu = 0;\n", i);
  for (size_t t = 0; t < b->nterms; t++) {
    const struct bin_term *term = &b->terms[t];
    char v[96];
    if (term->item >= 0)
      snprintf(v, sizeof v, "(uint64_t)f->%s", spec_member(c->bin[term->item].name));
    else
      snprintf(v, sizeof v, "%lluu", (unsigned long long)term->value);
    if (term->neg) {
      w_open(w, "if (n%zu < %s)\n", i, v);
      w_puts(w, "goto bad;\n");
      w_dedent(w);
      w_printf(w, "n%zu -= %s;\n", i, v);
    } else {
      w_printf(w, "n%zu = n%zu > UINT64_MAX - %s ? UINT64_MAX : n%zu + %s;\n", i, i, v, i, v);
    }
  }
}

/* `*out_used = USED; return STATUS;` as a block under `head` (an if). */
void emit_return(struct writer *w, const char *head, const char *used, const char *status)
{
  w_open(w, "%s {\n", head);
  w_printf(w, "*out_used = %s;\nreturn %s;\n", used, status);
  w_close(w, "}\n");
}

/* The literals are checked as soon as their bytes arrive: a wrong magic is refused at once. */
static void emit_literals(const struct command_decl *c, struct writer *w)
{
  for (size_t i = 0; i < c->nbin; i++) {
    const struct bin_item *b = &c->bin[i];
    if (b->kind != BIN_LIT || b->off == SIZE_MAX) /* a literal after a varint: gen/frame_binary_seq.c */
      continue;
    w_printf(w, "static const uint8_t lit%zu[] = {", i);
    for (size_t k = 0; k < b->len; k++)
      w_printf(w, "%s0x%02x", k ? ", " : "", b->lit[k]);
    w_puts(w, "};\n");
    char head[160];
    snprintf(head, sizeof head,
             "if (len > %zuu && memcmp(buf + %zu, lit%zu, len - %zu < %zu ? len - %zu : %zu) != 0)", b->off,
             b->off, i, b->off, b->len, b->off, b->len);
    emit_return(w, head, "len", "RW_PARSE_INVALID");
  }
}

/* Parts: empty until the frame is whole, so a refusal's handler sees the header only. Their
 * sum is bounded before anything of them is held. */
static void emit_parts(const struct spec *s, const struct command_decl *c, struct writer *w)
{
  w_puts(w, "uint64_t total = 0;\n");
  for (size_t i = 0; i < c->nbin; i++) {
    const struct bin_item *b = &c->bin[i];
    if (b->kind != BIN_BYTES)
      continue;
    w_printf(w, "f->%s = (rw_span){buf + %zu, 0};\n", spec_member(b->name), c->header);
    emit_length(c, b, i, w);
    w_printf(w, "total = total > UINT64_MAX - n%zu ? UINT64_MAX : total + n%zu;\n", i, i);
  }
  w_open(w, "if (total > %lluu) {\n", (unsigned long long)s->limit_data);
  w_printf(w, "p->skip = total;\n*out_used = %zu;\nreturn RW_PARSE_TOO_LARGE;\n", c->header);
  w_close(w, "}\n");
  char head[64];
  snprintf(head, sizeof head, "if (len - %zu < total)", c->header);
  emit_return(w, head, "0", "RW_PARSE_MORE");
  w_printf(w, "size_t at = %zu;\n", c->header);
  for (size_t i = 0; i < c->nbin; i++) {
    const struct bin_item *b = &c->bin[i];
    if (b->kind == BIN_BYTES)
      w_printf(w, "f->%s = (rw_span){buf + at, (size_t)n%zu};\nat += (size_t)n%zu;\n", spec_member(b->name),
               i, i);
  }
}

static void emit_binary_parser(const struct spec *s, struct writer *w)
{
  const char *p = s->protocol;
  const struct command_decl *c = &s->commands[0];
  if (c->seq)
    w_puts(w, "/* A frame read item after item: the parser keeps only a count of bytes to skip; each\n"
              " * call reads the items again (their few bytes are cheaper to read than to save) and\n"
              " * waits for the frame's end. */\n");
  else
    w_printf(w,
             "/* A header-first frame: the parser keeps only a count of bytes to skip; each call\n"
             " * reads the %zu-byte header again (it is cheaper than saving it) and waits for the\n"
             " * frame's end. */\n",
             c->header);
  w_open(w, "struct %s_parser {\n", p);
  w_puts(w, "uint64_t skip; /* bytes of a refused frame's parts still to discard */\n");
  w_close(w, "};\n\n");
  w_open(w, "static void %s_parser_init(void *vp)\n{\n", p);
  w_printf(w, "*(struct %s_parser *)vp = (struct %s_parser){0};\n", p, p);
  w_close(w, "}\n\n");
  w_open(w, "static int %s_next(void *vp, const uint8_t *buf, size_t len, size_t *out_used, void *vmsg)\n{\n",
         p);
  w_printf(w, "struct %s_parser *p = vp;\nstruct %s_%s *f = &((union %s_msg *)vmsg)->%s;\n", p, p, c->name, p,
           spec_member(c->name));
  w_open(w, "if (p->skip) {\n");
  w_puts(w, "size_t n = len < p->skip ? len : (size_t)p->skip;\np->skip -= n;\n*out_used = n;\n"
            "return RW_PARSE_SKIP;\n");
  w_close(w, "}\n");
  emit_literals(c, w);
  if (c->seq) {
    emit_seq_body(s, c, w);
    w_close(w, "}\n\n");
    return;
  }
  char head[64];
  snprintf(head, sizeof head, "if (len < %zuu)", c->header);
  emit_return(w, head, "0", "RW_PARSE_MORE");
  for (size_t i = 0; i < c->nbin; i++)
    if (c->bin[i].kind == BIN_INT)
      emit_read_int(c, &c->bin[i], w);
  emit_parts(s, c, w);
  w_puts(w, "*out_used = at;\nreturn ");
  emit_cmd_enum(s, c->name, w);
  w_puts(w, ";\n");
  bool any_diff = false;
  for (size_t i = 0; i < c->nbin; i++)
    for (size_t t = 0; t < c->bin[i].nterms; t++)
      any_diff |= c->bin[i].terms[t].neg;
  if (any_diff) {
    w_shift(w, -1); /* a label: column 0 */
    w_puts(w, "bad: /* lengths that contradict each other: the frame's end is unknown */\n");
    w_shift(w, 1);
    w_puts(w, "*out_used = len;\nreturn RW_PARSE_BAD_DATA;\n");
  }
  w_close(w, "}\n\n");
}

/* Dispatch by an integer field: a switch the compiler turns into a jump table. */
static void emit_binary_table(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  const struct command_decl *c = &s->commands[0];
  w_printf(
      out,
      "static int %s_table_dispatch(rw_conn *c, const struct %s_handlers *h, const struct %s_%s *msg)\n{\n"
      "  switch (msg->%s) {\n",
      p, p, p, c->name, spec_member(c->dispatch_field));
  for (size_t i = 0; i < s->ntable; i++)
    w_printf(out, "  case %uu:\n    return h->%s(c, msg);\n", s->table[i].arity,
             spec_member(s->table[i].name));
  w_puts(out, "  default:\n    return h->unknown(c, msg);\n  }\n}\n\n");
}

static int emit_binary_dot(const struct spec *s, struct writer *out)
{
  const struct command_decl *c = &s->commands[0];
  w_printf(out, "  header [label=\"header\\n%s%zu bytes\"];\n  start -> header;\n", c->seq ? "up to " : "",
           c->header);
  char prev[160] = "header";
  for (size_t i = 0; i < c->nbin; i++) {
    const struct bin_item *b = &c->bin[i];
    if (b->kind != BIN_BYTES && b->kind != BIN_REST && !(c->seq && b->kind != BIN_LIT))
      continue;
    w_printf(out, "  part_%s [label=\"", b->name);
    if (b->nconds)
      dot_cond(c, b, out);
    if (b->kind == BIN_INT || b->kind == BIN_VARINT) {
      w_printf(out, "%s: %s\"];\n  %s -> part_%s;\n", b->name,
               b->kind == BIN_VARINT ? varint_name(b->vform) : "integer", prev, b->name);
      snprintf(prev, sizeof prev, "part_%s", b->name);
      continue;
    }
    if (b->kind == BIN_BITS) {
      w_printf(out, "%s: bits(%s, %u, %u)\"];\n  %s -> part_%s;\n", b->name, c->bin[b->terms[0].item].name,
               b->shift, b->bits, prev, b->name);
      snprintf(prev, sizeof prev, "part_%s", b->name);
      continue;
    }
    w_printf(out, "%s: %s(", b->name, b->kind == BIN_REST ? "rest" : "bytes");
    for (size_t t = 0; t < b->nterms; t++) {
      if (t)
        w_puts(out, b->terms[t].neg ? " - " : " + ");
      if (b->terms[t].item >= 0)
        w_puts(out, c->bin[b->terms[t].item].name);
      else
        w_printf(out, "%llu", (unsigned long long)b->terms[t].value);
    }
    w_printf(out, ")\"];\n  %s -> part_%s;\n", prev, b->name);
    snprintf(prev, sizeof prev, "part_%s", b->name);
  }
  w_printf(out, "  frame_end [shape=ellipse, label=\"%s\"];\n  %s -> frame_end;\n", c->name, prev);
  if (c->dispatch_field) {
    w_printf(out, "  frame_end -> table [label=\"by %s\"];\n  table [shape=diamond, label=\"table\"];\n",
             c->dispatch_field);
    for (size_t i = 0; i < s->ntable; i++)
      w_printf(out, "  table -> handler_%s [label=\"0x%02x\"];\n  handler_%s -> start;\n", s->table[i].name,
               s->table[i].arity, s->table[i].name);
    w_puts(out, "  table -> handler_unknown [label=\"other\"];\n");
  } else {
    w_printf(out, "  frame_end -> handler_%s;\n  handler_%s -> start;\n", c->name, c->name);
  }
  w_printf(out,
           "  too_large [shape=note, label=\"too_large: %s\"];\n  header -> too_large;\n"
           "  bad_data [shape=note, label=\"bad_data: %s\"];\n  header -> bad_data;\n"
           "  invalid [shape=note, label=\"wrong literal: close\"];\n  header -> invalid;\n}\n",
           dot_event(&s->too_large), dot_event(&s->bad_data));
  return w_error(out);
}

/* The header: table entries and refusals take the frame's message (its header's fields). */
static void binary_handlers(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  const char *cn = s->commands[0].name;
  for (size_t i = 0; i < s->ntable; i++)
    w_printf(out, "  int (*%s)(rw_conn *c, const struct %s_%s *msg); /* %s %u */\n",
             spec_member(s->table[i].name), p, cn, s->commands[0].dispatch_field, s->table[i].arity);
  if (s->ntable)
    w_printf(out, "  int (*unknown)(rw_conn *c, const struct %s_%s *msg); /* a value not in the table */\n",
             p, cn);
  if (uses_refuse(s))
    w_printf(out,
             "  /* A refused frame (status: RW_PARSE_TOO_LARGE, RW_PARSE_BAD_DATA): its header's fields,\n"
             "   * its parts empty. */\n"
             "  int (*refused)(rw_conn *c, const struct %s_%s *msg, int status);\n",
             p, cn);
}

static unsigned binary_needs(const struct spec *s)
{
  (void)s;
  return 0; /* integers are read where they lie: nothing of the runtime's scanners */
}

/* The header, then parts whose sum `limit data` bounds. */
static unsigned long long binary_max_frame(const struct spec *s)
{
  return s->commands[0].header + s->limit_data;
}

const struct frame_ops frame_binary = {
    .keyword = "binary",
    .parse_command = binary_parse,
    .check = binary_check,
    .needs = binary_needs,
    .emit_handlers = binary_handlers,
    .emit_parser = emit_binary_parser,
    .emit_table = emit_binary_table,
    .max_frame = binary_max_frame,
    .emit_dot = emit_binary_dot,
};
