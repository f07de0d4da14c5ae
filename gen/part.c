/* The parts of a text frame's continuation (gen/construct.h): the table from a parse node, a
 * step kind or a keyword to its module, and what the parts' modules share. */
#include <stdlib.h>
#include <string.h>

#include "construct.h"

static const struct part_ops *const parts[] = {&part_bytes,  &part_literal, &part_array,
                                               &part_fields, &part_body,    &part_stream};

const struct part_ops *part_of_step(enum step_kind kind)
{
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (parts[i]->step == kind)
      return parts[i];
  return NULL;
}

const struct part_ops *part_of_rx(enum rx_kind kind)
{
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (parts[i]->keyword && parts[i]->rx == kind)
      return parts[i];
  return NULL;
}

const struct part_ops *part_of_keyword(const char *word, size_t len)
{
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (parts[i]->keyword && strlen(parts[i]->keyword) == len && !memcmp(parts[i]->keyword, word, len))
      return parts[i];
  return NULL;
}

int part_add_field(struct spec *s, struct command_decl *c, const struct rx *r, enum field_kind kind)
{
  if (check_name(s->src, "field", r->text, r->pos) < 0)
    return -1;
  return command_add_field(s->src, c, r->text, r->pos, kind, NUM_NONE, -1);
}

void add_step(struct command_decl *c, struct step st)
{
  struct step *steps = realloc(c->steps, (c->nsteps + 1) * sizeof *steps);
  if (!steps) {
    perror("rwgen");
    exit(1);
  }
  c->steps = steps;
  c->steps[c->nsteps++] = st;
}

/* A step keeps its two string arguments back to back: the first's length is st.len. */
static uint8_t *join_lits(const struct rx *r)
{
  uint8_t *b = malloc(r->litlen[0] + r->litlen[1] + 1);
  if (!b) {
    perror("rwgen");
    exit(1);
  }
  memcpy(b, r->lit[0], r->litlen[0]);
  memcpy(b + r->litlen[0], r->lit[1], r->litlen[1]);
  return b;
}

/* A refusal after the first line: a quiet frame (its quiet field captured bytes) sends nothing. */
void emit_cont_status(const struct command_decl *c, const char *status, struct writer *out)
{
  if (c->quiet_field >= 0) {
    int q = c->fields[c->quiet_field].slot;
    w_printf(out, "return p->off[%d][1] != p->off[%d][0] ? RW_PARSE_SKIP : %s;\n", q, q, status);
  } else {
    w_printf(out, "return %s;\n", status);
  }
}

/* What a refused data block and everything after it in the frame add up to (saturating). */
void emit_skip_total(const struct command_decl *c, size_t from, struct writer *out)
{
  w_puts(out, "uint64_t total = 0, add;\n");
  for (size_t k = from; k < c->nsteps; k++) {
    const struct step *st = &c->steps[k];
    if (st->kind == STEP_BYTES)
      w_printf(out, "add = p->num[%d];\n", c->fields[st->len_field].slot);
    else
      w_printf(out, "add = %zu;\n", st->len);
    w_puts(out, "total = total > UINT64_MAX - add ? UINT64_MAX : total + add;\n");
  }
}

/* The body step framed by fields list `f`, if any: its field names are noted during the scan. */
const struct step *body_notes(const struct command_decl *c, int f)
{
  for (size_t k = 0; k < c->nsteps; k++)
    if ((c->steps[k].kind == STEP_BODY || c->steps[k].kind == STEP_STREAM) && c->steps[k].len_field == f)
      return &c->steps[k];
  return NULL;
}

const struct step *list_step(const struct command_decl *c, size_t f, enum step_kind kind)
{
  for (size_t k = 0; k < c->nsteps; k++)
    if (c->steps[k].kind == kind && c->steps[k].field == (int)f)
      return &c->steps[k];
  return NULL;
}

void add_lit_step(struct command_decl *c, enum step_kind kind, int field, int len_field, const struct rx *r)
{
  add_step(c, (struct step){.kind = kind,
                            .field = field,
                            .len_field = len_field,
                            .bytes = join_lits(r),
                            .len = r->litlen[0],
                            .seplen = r->litlen[1]});
}
