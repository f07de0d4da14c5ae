/* array(COUNT, "prefix", "sep"): COUNT length-prefixed items (RESP's bulk strings): per item,
 * PREFIX DIGITS SEP, that many bytes, SEP. The parser keeps the first RW_LIST_INLINE items'
 * offsets and nothing per item beyond them, so `limit items` costs no memory: the list's region
 * reaches every item. A count past the limit is a bad number (redis: "invalid multibulk
 * length"), not an overlong frame: it is refused before any item arrives. */
#include <string.h>

#include "construct.h"

static int array_check(struct spec *s, struct command_decl *c, const struct rx *r)
{
  int cnt_i = -1;
  const struct field *cf = find_field(c, r->arg, &cnt_i);
  if (!cf || cf->kind != FIELD_NUM || cf->num == NUM_I64) {
    diag_error(s->src, r->pos, "the count of array '%s' must be an unsigned number field", r->text);
    return -1;
  }
  int f = part_add_field(s, c, r, FIELD_LIST);
  if (f < 0)
    return -1;
  if (!r->litlen[1] || r->litlen[1] > 4 || r->litlen[0] > 4) {
    diag_error(s->src, r->pos, "an array's prefix and separator are 0..4 and 1..4 bytes");
    return -1;
  }
  add_lit_step(c, STEP_ARRAY, f, cnt_i, r);
  return 0;
}

/* A length-prefixed array: per item, PREFIX DIGITS SEP, that many bytes, SEP. The item header
 * is re-read from its start when it arrives split (it is a few bytes), the data is not. The
 * length hint reaches the end of the item being received, not further: items still to come may
 * turn out malformed, and a hint never claims more than the frame holds. A request of many short
 * items grows into a large slot when it has filled its accumulator slot (one copy of that). */
static void array_step(const struct spec *s, const struct command_decl *c, const struct step *st,
                       struct writer *out)
{
  int cnt = c->fields[st->len_field].slot, slot = c->fields[st->field].slot;
  w_puts(out, "static const uint8_t prefix[] = ");
  w_cbytes(out, st->bytes, st->len);
  w_puts(out, ", sep[] = ");
  w_cbytes(out, st->bytes + st->len, st->seplen);
  w_printf(out, ";\nconst size_t plen = %zu, slen = %zu;\n", st->len, st->seplen);
  w_printf(out,
           "if (!p->arr_started) {\n  if (p->num[%d] > %lluu) {\n"
           "    *out_used = p->pos;\n    p->cmd = -1;\n    return RW_PARSE_BAD_NUMBER;\n"
           "  }\n  p->arr_left = p->num[%d];\n  p->arr_n = 0;\n"
           "  p->arr_start = (uint32_t)p->pos;\n  p->in_item = false;\n"
           "  p->arr_started = true;\n}\n",
           cnt, (unsigned long long)s->limit_items, cnt);
  w_puts(out, "while (p->arr_left) {\n  if (!p->in_item) {\n    size_t q = p->pos, d = 0;\n"
              "    uint64_t n = 0;\n    if (len - q < plen)\n      goto more;\n"
              "    if (memcmp(buf + q, prefix, plen) != 0)\n      goto bad_array;\n    q += plen;\n"
              "    for (; q < len && buf[q] >= '0' && buf[q] <= '9'; q++, d++) {\n"
              "      if (d == 19 || (d && !n))\n        goto bad_array; /* (a leading zero) */\n"
              "      n = n * 10 + (uint64_t)(buf[q] - '0');\n    }\n"
              "    if (len - q < slen)\n      goto more;\n"
              "    if (!d || memcmp(buf + q, sep, slen) != 0)\n      goto bad_array;\n");
  w_printf(out,
           "    if (n > %lluu) {\n      *out_used = p->pos;\n      p->cmd = -1;\n"
           "      return RW_PARSE_OVERLONG;\n    }\n",
           (unsigned long long)s->limit_data);
  w_printf(out,
           "    if (q - p->arr_start + n > %lluu) { /* the array's data in all */\n"
           "      *out_used = p->pos;\n      p->cmd = -1;\n      return RW_PARSE_OVERLONG;\n"
           "    }\n",
           (unsigned long long)(s->limit_data + s->limit_items * (st->len + 19 + 2 * st->seplen)));
  w_puts(out, "    p->el_len = n;\n    p->pos = q + slen;\n    p->in_item = true;\n  }\n"
              "  if (len - p->pos < p->el_len + slen) { /* the length hint: see part_bytes */\n"
              "    *out_used = p->pos + p->el_len + slen;\n    return RW_PARSE_MORE;\n  }\n"
              "  if (memcmp(buf + p->pos + p->el_len, sep, slen) != 0)\n    goto bad_array;\n"
              "  if (p->arr_n < RW_LIST_INLINE) {\n"
              "    p->items[p->arr_n][0] = (uint32_t)p->pos;\n"
              "    p->items[p->arr_n][1] = (uint32_t)(p->pos + p->el_len);\n  }\n"
              "  p->pos += p->el_len + slen;\n  p->arr_n++;\n  p->arr_left--;\n"
              "  p->in_item = false;\n}\n");
  w_printf(out, "p->off[%d][0] = p->arr_start;\np->off[%d][1] = (uint32_t)p->pos;\n", slot, slot);
}

static void array_fill(const struct spec *s, const struct command_decl *c, const struct field *fd,
                       const struct step *st, bool head, struct writer *out)
{
  (void)s;
  (void)head;
  const char *cm = spec_member(c->name), *fm = spec_member(fd->name);
  w_open(out, "{\n");
  w_printf(out, "rw_list *l = &m->%s.%s;\n", cm, fm);
  w_puts(out, "static const uint8_t sep[] = ");
  w_cbytes(out, st->bytes + st->len, st->seplen);
  w_puts(out, ";\n");
  w_printf(out,
           "rw_list_set(l, RW_LIST_PREFIXED, p->arr_n,\n"
           "            (rw_span){buf + p->off[%d][0], p->off[%d][1] - p->off[%d][0]});\n",
           fd->slot, fd->slot, fd->slot);
  w_printf(out, "l->prefix_len = %zu;\nl->sep_len = %zu;\nmemcpy(l->sep, sep, %zu);\n", st->len, st->seplen,
           st->seplen);
  w_open(out, "for (uint32_t i = 0; i < p->arr_n && i < RW_LIST_INLINE; i++)\n");
  w_puts(out, "l->item[i] = (rw_span){buf + p->items[i][0], p->items[i][1] - p->items[i][0]};\n");
  w_dedent(out);
  w_close(out, "}\n");
}

/* An array's data in all is bounded by `limit data`, plus each item's header. */
static unsigned long long array_max(const struct spec *s, const struct step *st)
{
  return s->limit_data + s->limit_items * (st->len + 19 + 2 * st->seplen);
}

static void array_dot(const struct command_decl *c, const struct step *st, struct writer *w)
{
  w_printf(w, "array %s(%s)", c->fields[st->field].name, c->fields[st->len_field].name);
}

const struct part_ops part_array = {
    .keyword = "array",
    .rx = RX_ARRAY,
    .nlits = 2,
    .step = STEP_ARRAY,
    .needs = NEED_ITEMS,
    .skippable = false,
    .check = array_check,
    .emit_step = array_step,
    .emit_fill = array_fill,
    .max_len = array_max,
    .dot_label = array_dot,
};
