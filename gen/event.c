/* Events and actions: what the spec does for a parse error (`otherwise`, `on EVENT`) or for a
 * command it answers itself (`-> reply NAME`, `-> close`, `-> refuse`), checked, written into
 * the generated on_error and dispatch, and drawn. */
#include <string.h>

#include "construct.h"

/* `event`: the action answers a parse error (otherwise, on ...), where a text spec may refuse
 * too: its `refused` handler gets the status. */
int check_action_at(struct spec *s, const struct action *a, bool event)
{
  if (a->refuse && !s->binary && !event) {
    diag_error(s->src, a->pos, "refuse answers a parse error or a binary frame: use 'reply' here");
    return -1;
  }
  if (!a->present || !a->reply_name)
    return 0;
  const struct reply_decl *r = spec_find_reply(s, a->reply_name);
  if (!r) {
    diag_error(s->src, a->reply_pos, "unknown reply '%s'", a->reply_name);
    return -1;
  }
  if (r->nparams) {
    diag_error(s->src, a->reply_pos, "reply '%s' takes parameters: call it from a handler", r->name);
    return -1;
  }
  return 0;
}

/* Whether an event goes to the `refused` handler (a binary frame's header with its status; a
 * text spec's status alone). */
bool uses_refuse(const struct spec *s)
{
  bool any = s->too_large.refuse || s->bad_data.refuse || s->otherwise.refuse || s->overlong.refuse ||
             s->bad_number.refuse || s->fields_too_large.refuse;
  for (size_t i = 0; i < s->ntokens; i++)
    any |= s->tokens[i].overflow.refuse;
  return any;
}

void emit_action(const struct spec *s, const struct action *a, struct writer *out)
{
  if (a->refuse && s->binary) { /* (on_error of a binary spec: the header is in m) */
    w_printf(out, "  int rc = h->refused(c, &m->%s, status);\n  if (rc < 0)\n    return rc;\n%s  return 0;\n",
             spec_member(s->commands[0].name), a->close ? "  rw_conn_close(c);\n" : "");
    return;
  }
  if (a->refuse) { /* (on_error of a text spec) */
    w_printf(out, "  int rc = h->refused(c, status);\n  if (rc < 0)\n    return rc;\n%s  return 0;\n",
             a->close ? "  rw_conn_close(c);\n" : "");
    return;
  }
  if (a->present && !a->reply_name && !a->close) {
    w_puts(out, "  (void)c; /* ignored */\n  return 0;\n");
    return;
  }
  if (a->reply_name) {
    w_printf(out, "  int rc = %s_reply_%s(c);\n  if (rc < 0)\n    return rc;\n", s->protocol, a->reply_name);
  }
  if (a->close || !a->present)
    w_puts(out, "  rw_conn_close(c);\n");
  w_puts(out, "  return 0;\n");
}

void dot_action(struct writer *out, const char *from, const struct action *a, const char *edge)
{
  char label[256];
  if (!a->present)
    snprintf(label, sizeof label, "close");
  else if (a->refuse)
    snprintf(label, sizeof label, "refused%s", a->close ? ", close" : "");
  else if (a->reply_name)
    snprintf(label, sizeof label, "reply %s%s", a->reply_name, a->close ? ", close" : "");
  else
    snprintf(label, sizeof label, a->close ? "close" : "ignore");
  w_printf(out, "  \"%s:%s\" [shape=note, label=\"%s\"];\n  %s -> \"%s:%s\" [label=\"%s\"];\n", from, edge,
           label, from, from, edge, edge);
}

/* The generated on_error: each declared event's action; an undeclared one closes. */
void emit_on_error(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  w_printf(out, "static int %s_on_error(rw_conn *c, const void *vh, int status, const void *vm)\n{\n", p);
  if (uses_refuse(s) || s->head_name)
    w_printf(out, "  const struct %s_handlers *h = vh;\n", p);
  else
    w_puts(out, "  (void)vh;\n");
  if ((uses_refuse(s) && s->binary) || s->head_name)
    w_printf(out, "  const union %s_msg *m = vm;\n", p);
  else
    w_puts(out, "  (void)vm;\n");
  if (s->head_name)
    w_printf(out, "  if (status == RW_PARSE_HEAD)\n    return h->%s_head(c, &m->%s);\n", s->head_name,
             spec_member(s->head_name));
  if (!s->raw_name) {
    w_puts(out, "  if (status == RW_PARSE_UNKNOWN) {\n");
    emit_action(s, &s->otherwise, out);
    w_puts(out, "  }\n  if (status == RW_PARSE_OVERLONG) {\n");
    emit_action(s, &s->overlong, out);
    w_puts(out, "  }\n");
    const struct {
      const char *status;
      const struct action *a;
    } more[] = {{"RW_PARSE_TOO_LARGE", &s->too_large},
                {"RW_PARSE_BAD_NUMBER", &s->bad_number},
                {"RW_PARSE_BAD_DATA", &s->bad_data},
                {"RW_PARSE_FIELDS_TOO_LARGE", &s->fields_too_large}};
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++) {
      if (!more[k].a->present)
        continue; /* undeclared: the default below closes */
      w_printf(out, "  if (status == %s) {\n", more[k].status);
      emit_action(s, more[k].a, out);
      w_puts(out, "  }\n");
    }
    for (size_t k = 0; k < s->ntokens; k++) {
      if (!s->tokens[k].overflow.present)
        continue;
      w_printf(out, "  if (status == RW_PARSE_SPEC_ERROR(%zu)) { /* %s out of range or too long */\n", k,
               s->tokens[k].name);
      emit_action(s, &s->tokens[k].overflow, out);
      w_puts(out, "  }\n");
    }
  }
  w_puts(out, "  (void)status;\n  rw_conn_close(c);\n  return 0;\n}\n\n");
}

const char *dot_event(const struct action *a)
{
  return !a->present ? "close"
         : a->refuse ? (a->close ? "refused, close" : "refused, skip")
         : a->close  ? "close"
                     : "reply";
}
