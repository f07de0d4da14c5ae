/* The fast path for a linear first line (a module of the text frame).
 *
 * When a spec has one command and its first line is a plain sequence of literals, one-byte
 * classes and `[class]+` runs, each run followed by something that cannot continue it, and the
 * line ends at its first LF, then matching it greedily left to right gives exactly what the DFA
 * would (no other rule can match longer: the catch-all stops at the same LF). The generated
 * parser tries that at the start of a frame: runs whose class holds every byte from 0x21 up
 * except DEL are skipped 16 bytes at a time (SSE2), the rest by table. Anything else (no match,
 * too little input) falls back to the DFA from the frame's start, so errors, limits and split
 * input keep their one implementation. */
#include <string.h>

#include "construct.h"

enum lin_kind { LIN_LIT, LIN_ONE, LIN_RUN };

struct lin {
  enum lin_kind kind;
  uint8_t bytes[64]; /* LIT */
  size_t len;
  uint8_t cls[32]; /* ONE, RUN */
  const char *cap; /* the capture's field name, or NULL */
  bool wide;       /* RUN: every byte 0x21..0xff but 0x7f is in the class */
};

#define LIN_MAX 16

/* One element from `r` (a literal, a class, a token reference, a capture of one of those). */
static bool lin_elem(const struct spec *s, const struct rx *r, const char *cap, struct lin *out)
{
  r = rx_unwrap(r);
  if (r->kind == RX_CAPTURE && !cap)
    return lin_elem(s, r->kids[0], r->text, out);
  if (r->kind == RX_REF) {
    const struct token_decl *t = spec_find_token(s, r->text);
    return t && lin_elem(s, t->rx, cap, out);
  }
  *out = (struct lin){.cap = cap};
  if (r->kind == RX_STR && r->text[0] == '"' && strlen(r->text) <= sizeof out->bytes && !cap) {
    struct token t = {.start = r->text, .len = strlen(r->text)};
    out->kind = LIN_LIT;
    out->len = lex_unescape(&t, out->bytes);
    return out->len > 0;
  }
  if (r->kind == RX_CLASS) {
    out->kind = LIN_ONE;
    class_bitmap(r->text, out->cls);
    return true;
  }
  const struct rx *k = r->kind == RX_REPEAT ? rx_unwrap(r->kids[0]) : NULL;
  if (k && k->kind == RX_CLASS && r->min == 1 && r->max < 0) {
    out->kind = LIN_RUN;
    class_bitmap(k->text, out->cls);
    out->wide = true;
    for (unsigned b = 0x21; b < 256; b++)
      out->wide &= b == 0x7f || in_cls(out->cls, b);
    return true;
  }
  return false;
}

static bool lin_first(const struct lin *e, unsigned b)
{
  return e->kind == LIN_LIT ? e->bytes[0] == b : in_cls(e->cls, b);
}

/* The command's first line as elements, if it is linear in the sense above. */
static size_t lin_rule(const struct spec *s, const struct command_decl *c, struct lin out[LIN_MAX])
{
  const struct rx *r = rx_unwrap(c->rx);
  size_t n = 0, nk = r->kind == RX_SEQ ? r->nkids : 1;
  for (size_t i = 0; i < nk; i++) {
    const struct rx *k = r->kind == RX_SEQ ? r->kids[i] : r;
    if (k->kind == RX_BYTES || k->kind == RX_ARRAY || k->kind == RX_FIELDS || k->kind == RX_BODY ||
        k->kind == RX_STREAM)
      break; /* the continuation: not part of the first line */
    if (n == LIN_MAX || !lin_elem(s, k, NULL, &out[n]))
      return 0;
    n++;
  }
  if (!n || out[n - 1].kind != LIN_LIT ||
      memchr(out[n - 1].bytes, '\n', out[n - 1].len) != out[n - 1].bytes + out[n - 1].len - 1)
    return 0;
  for (size_t i = 0; i < n; i++) {
    /* No LF before the end, and each run stops where the next element starts. */
    if (out[i].kind == LIN_LIT && i != n - 1 && memchr(out[i].bytes, '\n', out[i].len))
      return 0;
    if (out[i].kind != LIN_LIT && in_cls(out[i].cls, '\n'))
      return 0;
    if (out[i].kind == LIN_RUN)
      for (unsigned b = 0; b < 256; b++)
        if (in_cls(out[i].cls, b) && lin_first(&out[i + 1], b))
          return 0;
  }
  return n;
}

/* The fast path's code, before the DFA; jumps to the rule's action (label fast_CMD). */
void emit_fast_line(const struct spec *s, struct writer *out)
{
  struct lin e[LIN_MAX];
  size_t n = s->ncommands == 1 ? lin_rule(s, &s->commands[0], e) : 0;
  if (!n)
    return;
  const char *cn = s->commands[0].name;
  w_puts(out, "  if (p->state < 0) { /* a new frame: the linear first line, matched greedily */\n");
  for (size_t i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "lin_cls%zu", i);
    if (e[i].kind != LIN_LIT) {
      w_printf(out, "  static const uint8_t %s[256] = ", name);
      emit_cls_table(e[i].cls, out);
      w_puts(out, ";\n");
    }
  }
  w_puts(out, "    const uint8_t *q = buf, *end = buf + len;\n");
  for (size_t i = 0; i < n; i++) {
    if (e[i].cap)
      w_printf(out, "    f_%s_%s_s = q;\n", cn, e[i].cap);
    if (e[i].kind == LIN_LIT) {
      w_puts(out, "    {\n      static const uint8_t lit[] = ");
      w_cbytes(out, e[i].bytes, e[i].len);
      w_printf(out,
               ";\n      if (end - q < %zu || memcmp(q, lit, %zu) != 0)\n        goto dfa;\n"
               "      q += %zu;\n    }\n",
               e[i].len, e[i].len, e[i].len);
    } else if (e[i].kind == LIN_ONE) {
      w_printf(out, "    if (q == end || !lin_cls%zu[*q])\n      goto dfa;\n    q++;\n", i);
    } else {
      w_puts(out, "    {\n      const uint8_t *run = q;\n");
      if (e[i].wide)
        w_puts(out, "      q = rw_scan_word(q, end);\n");
      w_printf(out,
               "      while (q < end && lin_cls%zu[*q])\n        q++;\n"
               "      if (q == run || q == end)\n        goto dfa;\n    }\n",
               i);
    }
    if (e[i].cap)
      w_printf(out, "    f_%s_%s_e = q;\n", cn, e[i].cap);
  }
  w_printf(out, "    cur = q;\n    goto fast_%s;\n  }\ndfa:\n", cn);
}

bool has_fast_line(const struct spec *s)
{
  struct lin e[LIN_MAX];
  return s->ncommands == 1 && lin_rule(s, &s->commands[0], e) > 0;
}
