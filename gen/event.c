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

/* The action's statements at the writer's depth. The generated code keeps them at the depth of
 * the `if (status == ...) {` that holds them, as it always did. */
void emit_action(const struct spec *s, const struct action *a, struct writer *w)
{
  if (a->refuse) { /* on_error: a binary frame's refusal has its header, in m */
    if (s->binary)
      w_printf(w, "int rc = h->refused(c, &m->%s, status);\n", spec_member(s->commands[0].name));
    else
      w_puts(w, "int rc = h->refused(c, status);\n");
    w_open(w, "if (rc < 0)\n");
    w_puts(w, "return rc;\n");
    w_dedent(w);
    if (a->close)
      w_puts(w, "rw_conn_close(c);\n");
    w_puts(w, "return 0;\n");
    return;
  }
  if (a->present && !a->reply_name && !a->close) {
    w_puts(w, "(void)c; /* ignored */\nreturn 0;\n");
    return;
  }
  if (a->reply_name) {
    w_printf(w, "int rc = %s_reply_%s(c);\n", s->protocol, a->reply_name);
    w_open(w, "if (rc < 0)\n");
    w_puts(w, "return rc;\n");
    w_dedent(w);
  }
  if (a->close || !a->present)
    w_puts(w, "rw_conn_close(c);\n");
  w_puts(w, "return 0;\n");
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
/* One event's branch of on_error. */
static void emit_event(const struct spec *s, const char *cond, const char *note, const struct action *a,
                       struct writer *w)
{
  w_printf(w, "if (%s) {%s\n", cond, note);
  emit_action(s, a, w);
  w_puts(w, "}\n");
}

void emit_on_error(const struct spec *s, struct writer *w)
{
  const char *p = s->protocol;
  w_open(w, "static int %s_on_error(rw_conn *c, const void *vh, int status, const void *vm)\n{\n", p);
  if (uses_refuse(s) || s->head_name)
    w_printf(w, "const struct %s_handlers *h = vh;\n", p);
  else
    w_puts(w, "(void)vh;\n");
  if ((uses_refuse(s) && s->binary) || s->head_name)
    w_printf(w, "const union %s_msg *m = vm;\n", p);
  else
    w_puts(w, "(void)vm;\n");
  if (s->head_name) {
    w_open(w, "if (status == RW_PARSE_HEAD)\n");
    w_printf(w, "return h->%s_head(c, &m->%s);\n", s->head_name, spec_member(s->head_name));
    w_dedent(w);
  }
  if (!s->raw_name) {
    emit_event(s, "status == RW_PARSE_UNKNOWN", "", &s->otherwise, w);
    emit_event(s, "status == RW_PARSE_OVERLONG", "", &s->overlong, w);
    const struct {
      const char *status;
      const struct action *a;
    } more[] = {{"status == RW_PARSE_TOO_LARGE", &s->too_large},
                {"status == RW_PARSE_BAD_NUMBER", &s->bad_number},
                {"status == RW_PARSE_BAD_DATA", &s->bad_data},
                {"status == RW_PARSE_FIELDS_TOO_LARGE", &s->fields_too_large}};
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++)
      if (more[k].a->present) /* undeclared: the default below closes */
        emit_event(s, more[k].status, "", more[k].a, w);
    for (size_t k = 0; k < s->ntokens; k++) {
      if (!s->tokens[k].overflow.present)
        continue;
      char cond[64], note[128];
      snprintf(cond, sizeof cond, "status == RW_PARSE_SPEC_ERROR(%zu)", k);
      snprintf(note, sizeof note, " /* %s out of range or too long */", s->tokens[k].name);
      emit_event(s, cond, note, &s->tokens[k].overflow, w);
    }
  }
  w_puts(w, "(void)status;\nrw_conn_close(c);\nreturn 0;\n");
  w_close(w, "}\n\n");
}

const char *dot_event(const struct action *a)
{
  return !a->present ? "close"
         : a->refuse ? (a->close ? "refused, close" : "refused, skip")
         : a->close  ? "close"
                     : "reply";
}
