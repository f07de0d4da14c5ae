/* bytes(LEN): a data block whose length is a number field of the first line. Its length is
 * known before any of it arrives, so a refused frame skips it as it comes. */
#include <string.h>

#include "construct.h"

static int bytes_check(struct spec *s, struct command_decl *c, const struct rx *r)
{
  int len_i = -1;
  const struct field *lf = find_field(c, r->arg, &len_i);
  if (!lf || lf->kind != FIELD_NUM || lf->num == NUM_I64) {
    diag_error(s->src, r->pos,
               lf ? "the length of '%s' must be an unsigned number field"
                  : "unknown length field '%s' (capture it earlier in the command)",
               lf ? r->text : r->arg);
    return -1;
  }
  int f = part_add_field(s, c, r, FIELD_BYTES);
  if (f < 0)
    return -1;
  add_step(c, (struct step){.kind = STEP_BYTES, .field = f, .len_field = len_i});
  return 0;
}

static void bytes_step(const struct spec *s, const struct command_decl *c, const struct step *st,
                       struct writer *w)
{
  (void)s;
  int slot = c->fields[st->field].slot;
  w_printf(w, "uint64_t n = p->num[%d];\n", c->fields[st->len_field].slot);
  /* The frame needs at least this much: the runtime gives it a slot that holds it at once. */
  w_open(w, "if (len - p->pos < n) {\n");
  w_puts(w, "*out_used = p->pos + n;\n");
  w_puts(w, "return RW_PARSE_MORE;\n");
  w_close(w, "}\n");
  w_printf(w, "p->off[%d][0] = (uint32_t)p->pos;\n", slot);
  w_printf(w, "p->off[%d][1] = (uint32_t)(p->pos + n);\n", slot);
  w_puts(w, "p->pos += n;\n");
}

static unsigned long long bytes_max(const struct spec *s, const struct step *st)
{
  (void)st;
  return s->limit_data;
}

static void bytes_dot(const struct command_decl *c, const struct step *st, struct writer *w)
{
  w_printf(w, "bytes %s(%s)", c->fields[st->field].name, c->fields[st->len_field].name);
}

const struct part_ops part_bytes = {
    .keyword = "bytes",
    .rx = RX_BYTES,
    .nlits = 0,
    .step = STEP_BYTES,
    .needs = 0,
    .skippable = true,
    .check = bytes_check,
    .emit_step = bytes_step,
    .max_len = bytes_max,
    .dot_label = bytes_dot,
};
