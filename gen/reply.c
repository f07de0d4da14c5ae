/* Replies: templates of literal bytes, span and number parameters, len() and binary integers,
 * each written as one gathered rw_conn_writev() by a generated function. */
#include <string.h>

#include "construct.h"

int check_reply(struct spec *s, const struct reply_decl *r)
{
  int rc = check_name(s->src, "reply", r->name, r->pos);
  if (reply_has_list(r))
    return rc | check_list_reply(s, r);
  for (size_t i = 0; i < r->nparams; i++) {
    rc |= check_name(s->src, "parameter", r->params[i].name, r->params[i].pos);
    for (size_t j = 0; j < i; j++) {
      if (!strcmp(r->params[i].name, r->params[j].name)) {
        diag_error(s->src, r->params[i].pos, "parameter '%s' declared twice", r->params[i].name);
        rc = -1;
      }
    }
  }
  for (size_t i = 0; i < r->nparts; i++) {
    const struct reply_part *p = &r->parts[i];
    if (p->kind == PART_BYTES)
      continue;
    for (size_t k = 0; k < sizeof p->more / sizeof p->more[0] && p->more[k]; k++) {
      const struct reply_param *more = NULL;
      for (size_t j = 0; j < r->nparams; j++)
        if (!strcmp(r->params[j].name, p->more[k]))
          more = &r->params[j];
      if (!more || more->type != PARAM_SPAN) {
        diag_error(s->src, p->pos, "len() sums span parameters of '%s', and '%s' is %s", r->name, p->more[k],
                   more ? "a number" : "none");
        rc = -1;
      }
    }
    const struct reply_param *found = NULL;
    for (size_t j = 0; j < r->nparams; j++)
      if (!strcmp(r->params[j].name, p->param))
        found = &r->params[j];
    if (!found) {
      diag_error(s->src, p->pos, "unknown parameter '%s' in reply '%s'", p->param, r->name);
      rc = -1;
    } else if ((p->kind == PART_LEN || (p->kind == PART_INT && p->of_len)) && found->type != PARAM_SPAN) {
      diag_error(s->src, p->pos, "len() takes a span parameter, and '%s' is a number", p->param);
      rc = -1;
    } else if (p->kind == PART_INT && !p->of_len && found->type == PARAM_SPAN) {
      diag_error(s->src, p->pos, "an integer part takes a number parameter, and '%s' is a span", p->param);
      rc = -1;
    }
  }
  return rc;
}

static void reply_signature(const struct spec *s, const struct reply_decl *r, struct writer *out)
{
  w_printf(out, "int %s_reply_%s(rw_conn *c", s->protocol, r->name);
  for (size_t i = 0; i < r->nparams; i++) {
    const struct reply_param *p = &r->params[i];
    if (p->type == PARAM_SPANS)
      w_printf(out, ", const rw_span *%s, size_t n_%s", spec_member(p->name), spec_member(p->name));
    else
      w_printf(out, ", %s %s",
               p->type == PARAM_SPAN  ? "rw_span"
               : p->type == PARAM_I64 ? "int64_t"
                                      : "uint64_t",
               spec_member(p->name));
  }
  w_putc(out, ')');
}

static const struct reply_param *find_param(const struct reply_decl *r, const char *name)
{
  for (size_t j = 0; j < r->nparams; j++)
    if (!strcmp(r->params[j].name, name))
      return &r->params[j];
  return NULL;
}

/* A reply is one rw_conn_writev() of its pieces: literals, spans, and numbers formatted into
 * small stack buffers; nothing is allocated and a span's bytes are copied once, into the chain. */
/* The bytes of a binary integer part, in the part's order, into intK. */
static void emit_int_part(const struct reply_part *part, size_t k, struct writer *w)
{
  char shift[32];
  if (part->le)
    snprintf(shift, sizeof shift, "8 * i");
  else
    snprintf(shift, sizeof shift, "8 * (%u - 1 - i)", part->width);
  char value[256];
  int n = snprintf(value, sizeof value, "%s%s", spec_member(part->param), part->of_len ? ".len" : "");
  for (size_t j = 0; j < sizeof part->more / sizeof part->more[0] && part->more[j] && n > 0; j++)
    n += snprintf(value + n, sizeof value - (size_t)n, " + %s.len", spec_member(part->more[j]));
  if (part->vform) {
    emit_varint_part(part, k, value, w);
    return;
  }
  w_printf(w, "uint8_t int%zu[%u];\n", k, part->width);
  w_open(w, "for (unsigned i = 0; i < %uu; i++)\n", part->width);
  w_printf(w, "int%zu[i] = (uint8_t)((uint64_t)(%s) >> (%s));\n", k, value, shift);
  w_dedent(w);
}

/* One piece of the gathered write. */
static void emit_iov(const struct reply_decl *r, const struct reply_part *part, size_t k, struct writer *w)
{
  const struct reply_param *prm = part->kind == PART_BYTES ? NULL : find_param(r, part->param);
  const char *name = part->kind == PART_BYTES ? NULL : spec_member(part->param);
  if (part->kind == PART_BYTES)
    w_printf(w, "{(void *)lit%zu, sizeof lit%zu - 1},\n", k, k);
  else if (part->kind == PART_INT && part->vform)
    w_printf(w, "{int%zu, int%zu_n},\n", k, k);
  else if (part->kind == PART_INT)
    w_printf(w, "{int%zu, sizeof int%zu},\n", k, k);
  else if (part->kind == PART_LEN)
    w_printf(w, "{num%zu, rw_fmt_u64(num%zu, %s.len)},\n", k, k, name);
  else if (prm->type == PARAM_SPAN)
    w_printf(w, "{(void *)%s.p, %s.len},\n", name, name);
  else
    w_printf(w, "{num%zu, rw_fmt_%s(num%zu, %s)},\n", k, prm->type == PARAM_I64 ? "i64" : "u64", k, name);
}

void emit_reply_writer(const struct spec *s, const struct reply_decl *r, struct writer *w)
{
  reply_signature(s, r, w);
  w_open(w, "\n{\n");
  if (reply_has_list(r)) {
    emit_list_writer(s, r, w);
    w_close(w, "}\n\n");
    return;
  }
  for (size_t k = 0; k < r->nparts; k++) {
    const struct reply_part *part = &r->parts[k];
    if (part->kind == PART_BYTES) {
      w_printf(w, "static const char lit%zu[] = ", k);
      w_cbytes(w, part->bytes, part->len);
      w_puts(w, ";\n");
    } else if (part->kind == PART_INT) {
      emit_int_part(part, k, w);
    } else if (part->kind == PART_LEN || find_param(r, part->param)->type != PARAM_SPAN) {
      w_printf(w, "char num%zu[24];\n", k);
    }
  }
  w_puts(w, "const struct iovec iov[] = {\n");
  w_shift(w, 2); /* (the initializer's own indentation, as clang-format lays it out) */
  for (size_t k = 0; k < r->nparts; k++)
    emit_iov(r, &r->parts[k], k, w);
  w_shift(w, -2);
  w_puts(w, "};\nreturn rw_conn_writev(c, iov, sizeof iov / sizeof iov[0]);\n");
  w_close(w, "}\n\n");
}

/* The header's declaration of a reply writer, with the template as its comment. */
void emit_reply_decl(const struct spec *s, const struct reply_decl *r, struct writer *out)
{
  w_puts(out, "/* Writes");
  for (size_t k = 0; k < r->nparts; k++) {
    const struct reply_part *part = &r->parts[k];
    w_putc(out, ' ');
    if (part->kind == PART_BYTES)
      w_cbytes(out, part->bytes, part->len);
    else if (part->kind == PART_INT && part->vform)
      w_printf(out, part->of_len ? "%s(len(%s))" : "%s(%s)", varint_name(part->vform), part->param);
    else if (part->kind == PART_COUNT || part->kind == PART_EACH)
      emit_list_comment(part, out);
    else if (part->kind == PART_INT)
      w_printf(out, part->of_len ? "u%u%s(len(%s))" : "u%u%s(%s)", part->width * 8,
               part->width == 1 ? ""
               : part->le       ? "le"
                                : "be",
               part->param);
    else
      w_printf(out, part->kind == PART_LEN ? "len(%s)" : "%s", part->param);
  }
  w_puts(out, ". */\n");
  reply_signature(s, r, out);
  w_puts(out, ";\n");
}
