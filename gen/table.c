/* The dispatch table of a text spec: `table { NAME ARITY; ... }` picks a handler by a list's
 * first item, compared case-insensitively, and checks the item count (RESP's command table). */
#include <stdlib.h>
#include <string.h>

#include "construct.h"

int check_table(struct spec *s)
{
  int rc = 0;
  for (size_t i = 0; i < s->ntable; i++) {
    rc |= check_name(s->src, "table command", s->table[i].name, s->table[i].pos);
    for (size_t j = 0; j < i; j++) {
      if (!strcmp(s->table[i].name, s->table[j].name)) {
        diag_error(s->src, s->table[i].pos, "table command '%s' declared twice", s->table[i].name);
        rc = -1;
      }
    }
    for (size_t j = 0; j < s->ncommands; j++) {
      if (!strcmp(s->table[i].name, s->commands[j].name)) {
        diag_error(s->src, s->table[i].pos, "'%s' names both a command and a table command",
                   s->table[i].name);
        rc = -1;
      }
    }
  }
  if (s->arity.present && s->arity.reply_name) {
    const struct reply_decl *r = spec_find_reply(s, s->arity.reply_name);
    if (!r) {
      diag_error(s->src, s->arity.reply_pos, "unknown reply '%s'", s->arity.reply_name);
      rc = -1;
    } else if (r->nparams != 1 || r->params[0].type != PARAM_SPAN) {
      diag_error(s->src, s->arity.reply_pos, "the arity reply takes one span: the command's name");
      rc = -1;
    }
  }
  return rc;
}

/* The header's declarations of the table and its lookup. */
void emit_table_decl(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  w_printf(out,
           "/* The table, sorted by (length, name): see rw_command. */\n"
           "extern const rw_command %s_commands[];\nextern const size_t %s_ncommands;\n"
           "/* The entry for a name (any case), or NULL: the dispatcher's own lookup. */\n"
           "const rw_command *%s_command(rw_span name);\n\n",
           p, p, p);
}

static int cmp_entries(const void *a, const void *b)
{
  const struct table_entry *x = a, *y = b;
  size_t lx = strlen(x->name), ly = strlen(y->name);
  return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->name, y->name);
}

/* The table: entries sorted by (length, name) for a binary search that compares the wire's
 * bytes case-insensitively against lowercase names. */
void emit_text_table(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  struct table_entry *sorted = malloc(s->ntable * sizeof *sorted);
  if (!sorted) {
    perror("rwgen");
    exit(1);
  }
  memcpy(sorted, s->table, s->ntable * sizeof *sorted);
  qsort(sorted, s->ntable, sizeof *sorted, cmp_entries);
  w_printf(out, "const rw_command %s_commands[] = {\n", p);
  for (size_t i = 0; i < s->ntable; i++) {
    size_t idx = 0;
    for (; idx < s->ntable && strcmp(s->table[idx].name, sorted[i].name); idx++)
      ;
    w_printf(out, "    {\"%s\", %zu, %s, %u, %zu},\n", sorted[i].name, strlen(sorted[i].name),
             sorted[i].at_least ? "true" : "false", sorted[i].arity, idx);
  }
  w_printf(out, "};\n\nconst size_t %s_ncommands = %zu;\n\n", p, s->ntable);
  free(sorted);
  w_printf(
      out,
      "static int %s_lookup(rw_span name)\n{\n  size_t lo = 0, hi = sizeof %s_commands / sizeof "
      "%s_commands[0];\n"
      "  while (lo < hi) {\n    size_t mid = (lo + hi) / 2;\n    const rw_command *e = &%s_commands[mid];\n"
      "    int d = name.len < e->len ? -1 : name.len > e->len ? 1 : 0;\n"
      "    for (size_t i = 0; !d && i < name.len; i++) {\n"
      "      uint8_t ch = name.p[i] >= 'A' && name.p[i] <= 'Z' ? (uint8_t)(name.p[i] | 0x20) : name.p[i];\n"
      "      d = ch < (uint8_t)e->name[i] ? -1 : ch > (uint8_t)e->name[i] ? 1 : 0;\n    }\n"
      "    if (!d)\n      return (int)mid;\n    if (d < 0)\n      hi = mid;\n    else\n      lo = mid + 1;\n"
      "  }\n  return -1;\n}\n\n",
      p, p, p, p);
  w_printf(out,
           "const rw_command *%s_command(rw_span name)\n{\n  int i = %s_lookup(name);\n"
           "  return i < 0 ? NULL : &%s_commands[i];\n}\n\n",
           p, p, p);
  w_printf(out,
           "static int %s_table_dispatch(rw_conn *c, const struct %s_handlers *h, const rw_list *args)\n{\n"
           "  if (!args->count)\n    return 0; /* an empty command: nothing to do */\n"
           "  int i = %s_lookup(args->item[0]);\n  if (i < 0)\n    return h->unknown(c, args);\n"
           "  const rw_command *e = &%s_commands[i];\n"
           "  if (e->at_least ? args->count < e->arity : args->count != e->arity) {\n",
           p, p, p, p);
  if (s->arity.present && s->arity.reply_name)
    w_printf(out,
             "    int rc = %s_reply_%s(c, (rw_span){(const uint8_t *)e->name, e->len});\n"
             "    if (rc < 0)\n      return rc;\n%s    return 0;\n",
             p, s->arity.reply_name, s->arity.close ? "    rw_conn_close(c);\n" : "");
  else
    w_puts(out, "    rw_conn_close(c);\n    return 0;\n");
  w_puts(out, "  }\n  switch (e->idx) {\n");
  for (size_t i = 0; i < s->ntable; i++)
    w_printf(out, "  case %zu:\n    return h->%s(c, args);\n", i, spec_member(s->table[i].name));
  w_puts(out, "  default:\n    return -EINVAL;\n  }\n}\n\n");
}
