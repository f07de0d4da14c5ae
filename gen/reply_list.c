/* Templates with a variable number of arguments: a `spans(N)` parameter (up to N spans a call),
 * `count(list)` (their number, in decimal) and `each(list: parts)` (the parts once per span,
 * `it` the span): a RESP command from an array of arguments, still one gathered write. The
 * pieces go into a stack array sized from N, so nothing is allocated. The writer's locals end
 * in '_', which no spec name may: they cannot meet a parameter. */
#include <string.h>

#include "construct.h"

static const struct reply_param *param_of(const struct reply_decl *r, const char *name)
{
  for (size_t j = 0; j < r->nparams; j++)
    if (!strcmp(r->params[j].name, name))
      return &r->params[j];
  return NULL;
}

bool reply_has_list(const struct reply_decl *r)
{
  for (size_t j = 0; j < r->nparams; j++)
    if (r->params[j].type == PARAM_SPANS)
      return true;
  for (size_t k = 0; k < r->nparts; k++)
    if (r->parts[k].kind == PART_COUNT || r->parts[k].kind == PART_EACH)
      return true;
  return false;
}

/* Inside each(): literals, `it` and len(it). */
static int check_each(struct spec *s, const struct reply_part *each)
{
  int rc = 0;
  for (size_t k = 0; k < each->nsub; k++) {
    const struct reply_part *p = &each->sub[k];
    if (p->kind == PART_BYTES || ((p->kind == PART_PARAM || p->kind == PART_LEN) && !strcmp(p->param, "it")))
      continue;
    diag_error(s->src, p->pos, "each(%s: ...) holds strings, it and len(it)", each->param);
    rc = -1;
  }
  return rc;
}

int check_list_reply(struct spec *s, const struct reply_decl *r)
{
  int rc = 0;
  for (size_t j = 0; j < r->nparams; j++) {
    const char *name = r->params[j].name;
    if (!strncmp(name, "n_", 2) && param_of(r, name + 2) && param_of(r, name + 2)->type == PARAM_SPANS) {
      diag_error(s->src, r->params[j].pos, "'%s' is the count of the list '%s': name it otherwise", name,
                 name + 2);
      rc = -1;
    }
  }
  for (size_t k = 0; k < r->nparts; k++) {
    const struct reply_part *p = &r->parts[k];
    if (p->kind == PART_BYTES)
      continue;
    const struct reply_param *prm = param_of(r, p->param);
    bool list = p->kind == PART_COUNT || p->kind == PART_EACH;
    if (!prm) {
      diag_error(s->src, p->pos, "unknown parameter '%s' in reply '%s'", p->param, r->name);
      rc = -1;
    } else if (list != (prm->type == PARAM_SPANS)) {
      diag_error(s->src, p->pos,
                 list ? "count() and each() take a spans(N) parameter, and '%s' is not one"
                      : "'%s' is a list: write it with count() and each()",
                 p->param);
      rc = -1;
    } else if (p->kind == PART_EACH) {
      rc |= check_each(s, p);
    } else if (p->kind != PART_COUNT && p->kind != PART_PARAM && p->kind != PART_LEN) {
      diag_error(s->src, p->pos, "a template with a list has strings, parameters, len(), count() and each()");
      rc = -1;
    }
  }
  return rc;
}

/* One piece; `list`: inside each(list: ...), the item i. */
static void emit_piece(const struct reply_decl *r, const struct reply_part *p, const char *name,
                       const char *list, struct writer *w)
{
  if (p->kind == PART_BYTES) {
    w_printf(w, "iov[n_++] = (struct iovec){(void *)%s, sizeof %s - 1};\n", name, name);
  } else if (p->kind == PART_COUNT) {
    w_printf(w, "iov[n_++] = (struct iovec){%s, rw_fmt_u64(%s, n_%s)};\n", name, name, spec_member(p->param));
  } else if (list) { /* it, len(it) */
    if (p->kind == PART_LEN)
      w_printf(w, "iov[n_++] = (struct iovec){%s[i_], rw_fmt_u64(%s[i_], %s[i_].len)};\n", name, name, list);
    else
      w_printf(w, "iov[n_++] = (struct iovec){(void *)%s[i_].p, %s[i_].len};\n", list, list);
  } else {
    const struct reply_param *prm = param_of(r, p->param);
    const char *m = spec_member(p->param);
    if (p->kind == PART_LEN)
      w_printf(w, "iov[n_++] = (struct iovec){%s, rw_fmt_u64(%s, %s.len)};\n", name, name, m);
    else if (prm->type == PARAM_SPAN)
      w_printf(w, "iov[n_++] = (struct iovec){(void *)%s.p, %s.len};\n", m, m);
    else
      w_printf(w, "iov[n_++] = (struct iovec){%s, rw_fmt_%s(%s, %s)};\n", name,
               prm->type == PARAM_I64 ? "i64" : "u64", name, m);
  }
}

/* The storage of one piece: a literal, or a number's digits (one per item inside each()). */
static void emit_storage(const struct reply_decl *r, const struct reply_part *p, const char *name,
                         unsigned items, struct writer *w)
{
  if (p->kind == PART_BYTES) {
    w_printf(w, "static const char %s[] = ", name);
    w_cbytes(w, p->bytes, p->len);
    w_puts(w, ";\n");
  } else if (p->kind == PART_COUNT || p->kind == PART_LEN ||
             (p->kind == PART_PARAM && param_of(r, p->param) && param_of(r, p->param)->type != PARAM_SPAN &&
              strcmp(p->param, "it"))) {
    if (items)
      w_printf(w, "char %s[%u][24];\n", name, items);
    else
      w_printf(w, "char %s[24];\n", name);
  }
}

/* Its pieces: literals and numbers on the stack, the iovec array as long as the most spans
 * allow; a call with more spans than declared is -E2BIG, before anything is queued. */
void emit_list_writer(const struct spec *s, const struct reply_decl *r, struct writer *w)
{
  size_t pieces = 0;
  char name[48];
  (void)s;
  for (size_t k = 0; k < r->nparts; k++) {
    const struct reply_part *p = &r->parts[k];
    if (p->kind != PART_EACH) {
      snprintf(name, sizeof name, "p%zu_", k);
      emit_storage(r, p, name, 0, w);
      pieces++;
      continue;
    }
    unsigned items = param_of(r, p->param)->max;
    for (size_t j = 0; j < p->nsub; j++) {
      snprintf(name, sizeof name, "p%zu_%zu_", k, j);
      emit_storage(r, &p->sub[j], name, p->sub[j].kind == PART_BYTES ? 0 : items, w);
    }
    pieces += p->nsub * items;
  }
  w_printf(w, "struct iovec iov[%zu];\nint n_ = 0;\n", pieces);
  for (size_t j = 0; j < r->nparams; j++) {
    if (r->params[j].type != PARAM_SPANS)
      continue;
    w_open(w, "if (n_%s > %uu)\n", spec_member(r->params[j].name), r->params[j].max);
    w_puts(w, "return -E2BIG;\n");
    w_dedent(w);
  }
  for (size_t k = 0; k < r->nparts; k++) {
    const struct reply_part *p = &r->parts[k];
    snprintf(name, sizeof name, "p%zu_", k);
    if (p->kind != PART_EACH) {
      emit_piece(r, p, name, NULL, w);
      continue;
    }
    const char *list = spec_member(p->param);
    w_open(w, "for (size_t i_ = 0; i_ < n_%s; i_++) {\n", list);
    for (size_t j = 0; j < p->nsub; j++) {
      snprintf(name, sizeof name, "p%zu_%zu_", k, j);
      emit_piece(r, &p->sub[j], name, list, w);
    }
    w_close(w, "}\n");
  }
  w_puts(w, "return rw_conn_writev(c, iov, n_);\n");
}

/* The template in the header's comment. */
void emit_list_comment(const struct reply_part *p, struct writer *w)
{
  if (p->kind == PART_COUNT) {
    w_printf(w, "count(%s)", p->param);
    return;
  }
  w_printf(w, "each(%s:", p->param);
  for (size_t j = 0; j < p->nsub; j++) {
    w_putc(w, ' ');
    if (p->sub[j].kind == PART_BYTES)
      w_cbytes(w, p->sub[j].bytes, p->sub[j].len);
    else
      w_printf(w, p->sub[j].kind == PART_LEN ? "len(%s)" : "%s", p->sub[j].param);
  }
  w_putc(w, ')');
}
