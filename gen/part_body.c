/* body(FIELDS, "length-field", "coding-field"): a message body after a field section (RFC 9112
 * 6.3): chunked when the coding field says so, else the length field's bytes, else none. */
#include <string.h>

#include "construct.h"

static bool has_fields_step(const struct command_decl *c, int field)
{
  for (size_t k = 0; k < c->nsteps; k++)
    if (c->steps[k].kind == STEP_FIELDS && c->steps[k].field == field)
      return true;
  return false;
}

static int body_check(struct spec *s, struct command_decl *c, const struct rx *r)
{
  int fi = -1;
  const struct field *ff = find_field(c, r->arg, &fi);
  if (!ff || ff->kind != FIELD_LIST || !has_fields_step(c, fi)) {
    diag_error(s->src, r->pos, "body() needs a fields() list of this command, not '%s'", r->arg);
    return -1;
  }
  int f = part_add_field(s, c, r, FIELD_LIST);
  if (f < 0)
    return -1;
  add_lit_step(c, STEP_BODY, f, fi, r);
  return 0;
}

/* A message body after a field section (RFC 9112 6.3): chunked when the coding field says so,
 * else the length field's bytes, else none. Both fields, a repeated or malformed length, a
 * coding other than chunked: bad_data. The framing is decided once, from the fields as
 * received; a body past `limit data` is refused (a sized one is skipped as it arrives). */
static void body_step(const struct spec *s, const struct command_decl *c, const struct step *st,
                      struct writer *out)
{
  int slot = c->fields[st->field].slot;
  w_puts(out, "static const char len_name[] = ");
  w_cbytes(out, st->bytes, st->len);
  w_puts(out, ", coding_name[] = ");
  w_cbytes(out, st->bytes + st->len, st->seplen);
  w_printf(out,
           ";\n(void)len_name;\n(void)coding_name;\nif (!p->b_started) {\n"
           "  unsigned nl = p->fs.note_n[0], nc = p->fs.note_n[1];\n"
           "  rw_span lv = {0}, cv = {0};\n"
           "  if (nl)\n    lv = rw_scan_trim(buf, p->fs.note_off[0]);\n"
           "  if (nc)\n    cv = rw_scan_trim(buf, p->fs.note_off[1]);\n"
           "  if ((nl && nc) || nl > 1 || nc > 1 || (nc && !rw_span_is_ci(cv, \"chunked\")))\n"
           "    goto bad_body;\n  p->b_len = 0;\n"
           "  if (nl && rw_parse_u64(lv.p, lv.p + lv.len, UINT64_MAX, &p->b_len) < 0)\n"
           "    goto bad_body;\n"
           "  p->b_chunked = nc > 0;\n  p->b_start = (uint32_t)p->pos;\n"
           "  p->fs.scan = p->pos;\n  p->arr_n = 0;\n  p->fs.b_total = 0;\n  "
           "p->fs.c_state = 0;\n"
           "  p->b_started = true;\n"
           "  if (!p->b_chunked && p->b_len > %lluu) {\n"
           "    p->skip = p->b_len;\n    p->cmd = -1;\n    *out_used = p->pos;\n"
           "    return RW_PARSE_TOO_LARGE;\n  }\n}\n",
           (unsigned long long)s->limit_data);
  /* With `head`, the first wait for the body's bytes hands the head to its handler first. */
  char wait[128];
  if (s->head_name && !strcmp(s->head_name, c->name))
    snprintf(wait, sizeof wait, " {\n    if (!p->b_head)\n      goto head_%s;\n    goto more;\n  }", c->name);
  else
    snprintf(wait, sizeof wait, "\n    goto more;");
  w_printf(out,
           "if (!p->b_chunked) {\n  if (len - p->pos < p->b_len)%s\n"
           "  p->pos += p->b_len;\n} else {\n"
           "  int r = rw_scan_chunks(&p->fs, &p->pos, p->b_start, buf, len, %lluu, %lluu, name_class_%s,\n"
           "                         &p->arr_n, p->items, RW_LIST_INLINE);\n"
           "  if (r == 0)%s\n"
           "  if (r < 0) {\n    p->cmd = -1;\n    *out_used = len;\n    return r;\n"
           "  }\n}\n"
           "p->off[%d][0] = p->b_start;\np->off[%d][1] = (uint32_t)p->pos;\n",
           wait, (unsigned long long)s->limit_data, (unsigned long long)s->limit_fields, c->name, wait, slot,
           slot);
}

static void body_fill(const struct spec *s, const struct command_decl *c, const struct field *fd,
                      const struct step *st, bool head, struct writer *out)
{
  (void)s;
  (void)st;
  const char *cm = spec_member(c->name), *fm = spec_member(fd->name);
  if (head) {
    w_printf(out, "rw_list_set(&m->%s.%s, RW_LIST_SINGLE, 0, (rw_span){buf + p->b_start, 0});\n", cm, fm);
    return;
  }
  w_open(out, "{\n");
  w_printf(out, "rw_list *l = &m->%s.%s;\n", cm, fm);
  w_printf(out, "rw_span r = {buf + p->off[%d][0], p->off[%d][1] - p->off[%d][0]};\n", fd->slot, fd->slot,
           fd->slot);
  w_open(out, "if (p->b_chunked) {\n");
  w_puts(out, "rw_list_set(l, RW_LIST_CHUNKED, p->arr_n, r);\n");
  w_open(out, "for (uint32_t i = 0; i < p->arr_n && i < RW_LIST_INLINE; i++)\n");
  w_puts(out, "l->item[i] = (rw_span){buf + p->items[i][0], p->items[i][1] - p->items[i][0]};\n");
  w_dedent(out);
  w_close(out, "} else {\n");
  w_indent(out);
  w_puts(out, "rw_list_set(l, RW_LIST_SINGLE, p->b_len ? 1 : 0, r);\nl->item[0] = r;\n");
  w_close(out, "}\n");
  w_close(out, "}\n");
}

/* Chunk framing is held to no more than the data again. */
static unsigned long long body_max(const struct spec *s, const struct step *st)
{
  (void)st;
  return 2 * s->limit_data + 2 * s->limit_fields;
}

static void body_dot(const struct command_decl *c, const struct step *st, struct writer *w)
{
  w_printf(w, "bytes %s(%s)", c->fields[st->field].name, c->fields[st->len_field].name);
}

const struct part_ops part_body = {
    .keyword = "body",
    .rx = RX_BODY,
    .nlits = 2,
    .step = STEP_BODY,
    .needs = NEED_SCAN | NEED_ITEMS | NEED_FIELDS,
    .skippable = false,
    .check = body_check,
    .emit_step = body_step,
    .emit_fill = body_fill,
    .max_len = body_max,
    .dot_label = body_dot,
};
