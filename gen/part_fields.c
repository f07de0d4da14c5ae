/* fields(NAME): "name: value" lines up to an empty line (HTTP's header section), scanned by the
 * runtime's rw_scan_fields; names are tested against a byte table of the token NAME's class. */
#include <string.h>

#include "construct.h"

/* fields(token): the token must be one class repeated (`[...]+`), so that the generated scan can
 * test each byte with a table. */
static int fields_class(struct spec *s, const struct rx *r, uint8_t out[32])
{
  const struct token_decl *t = spec_find_token(s, r->arg);
  const struct rx *x = t ? rx_unwrap(t->rx) : NULL;
  if (!x || x->kind != RX_REPEAT || x->min != 1 || x->max >= 0 || x->kids[0]->kind != RX_CLASS) {
    diag_error(s->src, r->pos, t ? "fields() needs a token of the form [class]+" : "unknown token '%s'",
               r->arg);
    return -1;
  }
  class_bitmap(x->kids[0]->text, out);
  return 0;
}

static int fields_check(struct spec *s, struct command_decl *c, const struct rx *r)
{
  struct step st = {.kind = STEP_FIELDS};
  if (fields_class(s, r, st.name_class) < 0)
    return -1;
  int f = part_add_field(s, c, r, FIELD_LIST);
  if (f < 0)
    return -1;
  st.field = f;
  add_step(c, st);
  return 0;
}

static void fields_step(const struct spec *s, const struct command_decl *c, const struct step *st,
                        struct writer *w)
{
  int slot = c->fields[st->field].slot;
  const struct step *bs = body_notes(c, st->field);
  if (bs) { /* the body's framing fields, noted during the scan */
    w_puts(w, "static const rw_field_note notes[2] = {{");
    w_cbytes(w, bs->bytes, bs->len);
    w_printf(w, ", %zu}, {", bs->len);
    w_cbytes(w, bs->bytes + bs->len, bs->seplen);
    w_printf(w, ", %zu}};\n", bs->seplen);
  }
  w_open(w, "if (!p->f_started) {\n");
  w_puts(w, "rw_scan_fields_start(&p->fs, p->pos);\np->f_started = true;\n");
  w_close(w, "}\n");
  w_printf(w, "int r = rw_scan_fields(&p->fs, &p->pos, buf, len, %lluu, name_class_%s, %s);\n",
           (unsigned long long)s->limit_fields, c->name, bs ? "notes" : "NULL");
  w_open(w, "if (r == 0)\n");
  w_puts(w, "goto more;\n");
  w_dedent(w);
  w_open(w, "if (r < 0) {\n");
  w_puts(w, "p->cmd = -1;\n*out_used = len;\nreturn r;\n");
  w_close(w, "}\n");
  w_printf(w, "p->off[%d][0] = (uint32_t)p->fs.start;\n", slot);
  w_printf(w, "p->off[%d][1] = (uint32_t)p->fs.end;\n", slot);
  w_printf(w, "p->lcount[%d] = p->fs.count;\n", slot);
}

static void fields_fill(const struct spec *s, const struct command_decl *c, const struct field *fd,
                        const struct step *st, bool head, struct writer *w)
{
  (void)s;
  (void)st;
  (void)head;
  w_printf(w,
           "rw_list_set(&m->%s.%s, RW_LIST_FIELDS, p->lcount[%d],\n"
           "            (rw_span){buf + p->off[%d][0], p->off[%d][1] - p->off[%d][0]});\n",
           spec_member(c->name), spec_member(fd->name), fd->slot, fd->slot, fd->slot, fd->slot);
}

static unsigned long long fields_max(const struct spec *s, const struct step *st)
{
  (void)st;
  return s->limit_fields;
}

static void fields_dot(const struct command_decl *c, const struct step *st, struct writer *w)
{
  w_printf(w, "bytes %s(%s)", c->fields[st->field].name, c->fields[st->len_field].name);
}

void emit_fields_tables(const struct spec *s, struct writer *out)
{
  for (size_t i = 0; i < s->ncommands; i++) {
    const struct command_decl *c = &s->commands[i];
    for (size_t k = 0; k < c->nsteps; k++) {
      if (c->steps[k].kind != STEP_FIELDS)
        continue;
      /* A byte per entry, not a bit: one load per name byte on the hot path. */
      w_printf(out,
               "/* the bytes a field name of '%s' may hold */\nstatic const uint8_t name_class_%s[256] = ",
               c->name, c->name);
      emit_cls_table(c->steps[k].name_class, out);
      w_puts(out, ";\n\n");
    }
  }
}

const struct part_ops part_fields = {
    .keyword = "fields",
    .rx = RX_FIELDS,
    .nlits = 0,
    .step = STEP_FIELDS,
    .needs = NEED_SCAN | NEED_ITEMS | NEED_FIELDS,
    .skippable = false,
    .check = fields_check,
    .emit_step = fields_step,
    .emit_fill = fields_fill,
    .max_len = fields_max,
    .dot_label = fields_dot,
};
