/* Flag bits of a captured field and the conditions that make a binary item present
 * (gen/construct.h).
 *
 *   type:bits(b0, 4, 4)        (b0 >> 4) & 0xf: a field of its own, reading no bytes
 *   qos:bits(b0, 1, 2)         MQTT's QoS, the fixed header's bits 2..1
 *   if (qos || type == 4) id:u16be
 *
 * A bits field is an integer like any other: a length's term, a condition's atom, the field a
 * table dispatches by. A condition is one or more atoms joined by `||`, each a field of the
 * frame read before the item (not zero) or a field equal to a constant (`type == 3`); an item
 * that is absent reads no bytes and its field is zero (an empty span). */
#include <stdlib.h>
#include <string.h>

#include "construct.h"
#include "parser.h"

/* bits(FIELD, SHIFT, WIDTH), after the keyword. */
int parse_bits(struct parser *ps, struct bin_item *b)
{
  b->nterms = 1;
  b->terms[0].item = -1;
  if (next(ps) < 0 || expect_punct(ps, '(') < 0 ||
      expect_ident(ps, &b->terms[0].name, &b->terms[0].pos) < 0 || expect_punct(ps, ',') < 0)
    return -1;
  uint64_t v[2];
  for (int i = 0; i < 2; i++) {
    if (ps->tok.kind != T_NUMBER)
      return expected(ps, i ? "the width in bits" : "the shift in bits");
    v[i] = ps->tok.value;
    if (next(ps) < 0 || expect_punct(ps, i ? ')' : ',') < 0)
      return -1;
  }
  if (v[1] < 1 || v[1] > 63 || v[0] > 63 || v[0] + v[1] > 64) {
    diag_error(ps->spec->src, b->pos, "bits(field, shift, width) takes 1..63 bits within 64");
    return -1;
  }
  b->shift = (unsigned)v[0];
  b->bits = (unsigned)v[1];
  return 0;
}

/* if (ATOM || ATOM ...), before an item: ATOM is NAME or NAME == NUMBER. */
int parse_cond(struct parser *ps, struct bin_cond *conds, size_t *out_n)
{
  if (next(ps) < 0 || expect_punct(ps, '(') < 0)
    return -1;
  for (;;) {
    if (*out_n == BIN_CONDS) {
      diag_error(ps->spec->src, ps->tok.pos, "a condition has at most %d atoms", BIN_CONDS);
      return -1;
    }
    struct bin_cond *a = &conds[(*out_n)++];
    a->item = -1;
    if (expect_ident(ps, &a->name, &a->pos) < 0)
      return -1;
    if (is_punct(ps, '=')) {
      if (next(ps) < 0 || expect_punct(ps, '=') < 0)
        return -1;
      if (ps->tok.kind != T_NUMBER)
        return expected(ps, "a number after '=='");
      a->eq = true;
      a->value = ps->tok.value;
      if (next(ps) < 0)
        return -1;
    }
    if (is_punct(ps, ')'))
      return next(ps);
    if (!is_punct(ps, '|'))
      return expected(ps, "'||', '==' or ')'");
    if (next(ps) < 0 || expect_punct(ps, '|') < 0)
      return -1;
  }
}

/* An integer item of c named `name` before item `before`, or -1. */
static int earlier_int(const struct command_decl *c, const char *name, size_t before)
{
  for (size_t i = 0; i < before; i++) {
    const struct bin_item *b = &c->bin[i];
    if ((b->kind == BIN_INT || b->kind == BIN_VARINT || b->kind == BIN_BITS) && !strcmp(b->name, name))
      return (int)i;
  }
  return -1;
}

/* A bits field's source and every condition's atoms name integers read before the item. */
int check_flags(struct spec *s, struct command_decl *c, size_t i)
{
  struct bin_item *b = &c->bin[i];
  int rc = 0;
  if (b->kind == BIN_BITS && (b->terms[0].item = earlier_int(c, b->terms[0].name, i)) < 0) {
    diag_error(s->src, b->terms[0].pos, "bits() of '%s', which is not an integer field before it",
               b->terms[0].name);
    rc = -1;
  }
  for (size_t k = 0; k < b->nconds; k++) {
    struct bin_cond *a = &b->conds[k];
    if ((a->item = earlier_int(c, a->name, i)) < 0) {
      diag_error(s->src, a->pos, "a condition reads '%s', which is not an integer field before the item",
                 a->name);
      rc = -1;
    }
  }
  return rc;
}

void emit_bits(const struct command_decl *c, const struct bin_item *b, struct writer *w)
{
  w_printf(w, "f->%s = (%s)(((uint64_t)f->%s >> %u) & 0x%llxu);\n", spec_member(b->name),
           num_ctype(c->fields[b->field].num), spec_member(c->bin[b->terms[0].item].name), b->shift,
           (unsigned long long)((1ull << b->bits) - 1));
}

/* `if (COND) {` for an item with a condition. */
void emit_cond_open(const struct command_decl *c, const struct bin_item *b, struct writer *w)
{
  w_puts(w, "if (");
  for (size_t k = 0; k < b->nconds; k++) {
    const struct bin_cond *a = &b->conds[k];
    w_printf(w, "%sf->%s", k ? " || " : "", spec_member(c->bin[a->item].name));
    if (a->eq)
      w_printf(w, " == %lluu", (unsigned long long)a->value);
  }
  w_open(w, ") {\n");
}

void dot_cond(const struct command_decl *c, const struct bin_item *b, struct writer *w)
{
  w_puts(w, "if ");
  for (size_t k = 0; k < b->nconds; k++) {
    const struct bin_cond *a = &b->conds[k];
    w_printf(w, "%s%s", k ? " || " : "", c->bin[a->item].name);
    if (a->eq)
      w_printf(w, " == %llu", (unsigned long long)a->value);
  }
  w_puts(w, ": ");
}
