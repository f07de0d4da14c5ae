/* stream(FIELDS, "length-field", "coding-field", options): a message body framed as RFC 9112 6.3
 * says and handed on as it arrives instead of gathered into one frame. The command's handler gets
 * the head (the first line and fields, and how the body is framed), CMD_body each piece of body
 * bytes (a chunked body's data only), CMD_end once the body is complete. What a piece moves the
 * parser to is committed only when its handler took it: -EAGAIN gets the same piece again once
 * the connection is resumed. The framing and the body's steps are runtime code
 * (<ringwright/body.h>); this module writes the calls, the handlers and their dispatch.
 *
 * Options: `status: FIELD` (a response: no body for a 1xx, 204 or 304 FIELD), `until_close` (a
 * response with no length runs to the close, which the runtime reports through on_eof). A
 * request has neither: with no length its body is empty. */
#include <string.h>

#include "construct.h"
#include "parser.h"

static int stream_opt(struct parser *ps, struct rx *r)
{
  struct source *src = ps->spec->src;
  struct pos at = ps->tok.pos;
  if (is_word(ps, "until_close")) {
    if (r->until_close) {
      diag_error(src, at, "until_close given twice");
      return -1;
    }
    r->until_close = true;
    r->until_pos = at;
    return next(ps);
  }
  if (!is_word(ps, "status"))
    return expected(ps, "a stream() option ('status: FIELD' or 'until_close')");
  if (r->status) {
    diag_error(src, at, "status given twice");
    return -1;
  }
  r->status_pos = at;
  if (next(ps) < 0 || expect_punct(ps, ':') < 0)
    return -1;
  struct pos fat;
  return expect_ident(ps, &r->status, &fat);
}

static int stream_check(struct spec *s, struct command_decl *c, const struct rx *r)
{
  int fi = -1, si = -1;
  const struct field *ff = find_field(c, r->arg, &fi);
  if (!ff || ff->kind != FIELD_LIST || !list_step(c, (size_t)fi, STEP_FIELDS)) {
    diag_error(s->src, r->pos, "stream() needs a fields() list of this command, not '%s'", r->arg);
    return -1;
  }
  if (r->status) {
    const struct field *sf = find_field(c, r->status, &si);
    if (!sf || sf->kind != FIELD_NUM) {
      diag_error(s->src, r->status_pos, "status: needs a number field of the first line, not '%s'",
                 r->status);
      return -1;
    }
  }
  if ((r->status || r->until_close) && !s->client) {
    diag_error(s->src, r->status ? r->status_pos : r->until_pos,
               "%s describes a response: declare 'role client;'", r->status ? "status:" : "until_close");
    return -1;
  }
  for (size_t k = 0; k < c->nsteps; k++) {
    if (c->steps[k].kind == STEP_STREAM) {
      diag_error(s->src, r->pos, "a command streams one body");
      return -1;
    }
  }
  int f = part_add_field(s, c, r, FIELD_STREAM);
  if (f < 0)
    return -1;
  add_lit_step(c, STEP_STREAM, f, fi, r);
  c->steps[c->nsteps - 1].status_field = si;
  c->steps[c->nsteps - 1].until_close = r->until_close;
  return 0;
}

/* Once the head was taken: the body's steps, each a message, framing bytes skipped. */
static void emit_body_steps(const struct spec *s, const struct command_decl *c, struct writer *w)
{
  w_open(w, "if (p->b_started) { /* the head was taken: the body, step by step */\n");
  w_printf(w, "int r = rw_body_next(&p->body, &p->fs, buf, len, %lluu, name_class_%s, &sm->step);\n",
           (unsigned long long)s->limit_fields, c->name);
  w_open(w, "if (r == RW_PARSE_SKIP) {\n");
  w_puts(w, "*out_used = sm->step.used;\nreturn r;\n");
  w_close(w, "}\n");
  w_open(w, "if (r == RW_PARSE_MORE)\n");
  w_puts(w, "goto more;\n");
  w_dedent(w);
  w_open(w, "if (r < 0) {\n");
  w_puts(w, "p->cmd = -1;\n*out_used = len;\nreturn r;\n");
  w_close(w, "}\n");
  w_puts(w, "sm->p = p;\nsm->head = false;\n*out_used = sm->step.used;\nreturn ");
  emit_cmd_enum(s, c->name, w);
  w_puts(w, ";\n");
  w_close(w, "}\n");
}

/* Before: the framing, decided from the fields as received (again if the head is offered again),
 * then the head goes out (stream_done). */
static void emit_framing(const struct spec *s, const struct command_decl *c, const struct step *st,
                         struct writer *w)
{
  const char *fm = spec_member(c->fields[st->field].name);
  w_puts(w, "rw_span lv = {0}, cv = {0};\n");
  w_open(w, "if (p->fs.note_n[0])\n");
  w_puts(w, "lv = rw_scan_trim(buf, p->fs.note_off[0]);\n");
  w_dedent(w);
  w_open(w, "if (p->fs.note_n[1])\n");
  w_puts(w, "cv = rw_scan_trim(buf, p->fs.note_off[1]);\n");
  w_dedent(w);
  w_puts(w, "bool none = ");
  if (st->status_field >= 0) {
    int slot = c->fields[st->status_field].slot;
    w_printf(w, "p->num[%d] < 200 || p->num[%d] == 204 || p->num[%d] == 304", slot, slot, slot);
    w_puts(w, s->expect_head ? " || p->expect_head;\n" : ";\n");
  } else {
    w_puts(w, s->expect_head ? "p->expect_head;\n" : "false;\n");
  }
  w_printf(w,
           "if (rw_body_frame(p->fs.note_n[0], lv, p->fs.note_n[1], cv, none, %s, &m->%s.%s, &sm->step.next) "
           "< 0)\n",
           st->until_close ? "true" : "false", spec_member(c->name), fm);
  w_puts(w, "  goto bad_body;\n");
  w_puts(w, "sm->step.events = sm->step.next.phase == RW_BODY_ENDING ? RW_BODY_END : 0;\n");
}

static void stream_step(const struct spec *s, const struct command_decl *c, const struct step *st,
                        struct writer *w)
{
  w_printf(w, "struct %s_stream *sm = (struct %s_stream *)(void *)m;\n", s->protocol, s->protocol);
  emit_body_steps(s, c, w);
  emit_framing(s, c, st, w);
}

/* The head: the message was filled (its body field by rw_body_frame); the frame goes on. */
static void stream_done(const struct spec *s, const struct command_decl *c, const struct step *st,
                        struct writer *w)
{
  (void)st;
  const char *P = s->protocol;
  w_printf(w, "    struct %s_stream *sm = (struct %s_stream *)(void *)m;\n", P, P);
  w_puts(w, "    sm->p = p;\n    sm->head = true;\n    sm->step.used = p->pos;\n    *out_used = p->pos;\n"
            "    return ");
  emit_cmd_enum(s, c->name, w);
  w_puts(w, ";\n");
}

static void stream_fill(const struct spec *s, const struct command_decl *c, const struct field *fd,
                        const struct step *st, bool head, struct writer *w)
{
  (void)s, (void)c, (void)fd, (void)st, (void)head; /* (rw_body_frame wrote it) */
  (void)w;
}

/* What a connection may hold of it: the trailers (a piece is never held past one receive). */
static unsigned long long stream_max(const struct spec *s, const struct step *st)
{
  (void)st;
  return s->limit_fields;
}

static void stream_dot(const struct command_decl *c, const struct step *st, struct writer *w)
{
  w_printf(w, "stream %s(%s)", c->fields[st->field].name, c->fields[st->len_field].name);
}

const struct part_ops part_stream = {
    .keyword = "stream",
    .rx = RX_STREAM,
    .nlits = 2,
    .step = STEP_STREAM,
    .needs = NEED_SCAN | NEED_ITEMS | NEED_FIELDS | NEED_BODY,
    .skippable = false,
    .parse_opt = stream_opt,
    .check = stream_check,
    .emit_step = stream_step,
    .emit_done = stream_done,
    .emit_fill = stream_fill,
    .max_len = stream_max,
    .dot_label = stream_dot,
};

/* --- what the rest of the generated code holds for streamed commands ------------------------ */

static const struct step *stream_step_of(const struct command_decl *c)
{
  return c->nsteps && c->steps[c->nsteps - 1].kind == STEP_STREAM ? &c->steps[c->nsteps - 1] : NULL;
}

bool is_streamed(const struct command_decl *c)
{
  return stream_step_of(c) != NULL;
}

/* `role client`, `expect head`: a client's spec, a streamed body whose head it can announce. */
int check_stream_spec(struct spec *s)
{
  bool any = false;
  for (size_t i = 0; i < s->ncommands; i++) {
    const struct command_decl *c = &s->commands[i];
    for (size_t k = 0; k + 1 < c->nsteps; k++) {
      if (c->steps[k].kind == STEP_STREAM) {
        diag_error(s->src, c->pos, "command '%s': stream() must be its last part", c->name);
        return -1;
      }
    }
    if (is_streamed(c) && (c->action.present || c->dispatch_field)) {
      diag_error(s->src, c->pos, "command '%s' streams its body: it needs a handler", c->name);
      return -1;
    }
    any |= is_streamed(c);
  }
  if (s->expect_head && (s->binary || s->resp2 || s->raw_name)) {
    diag_error(s->src, s->expect_pos, "expect head needs a text frame with a stream() body");
    return -1;
  }
  if (s->expect_head && !s->client) {
    diag_error(s->src, s->expect_pos, "expect head is a client's: declare 'role client;'");
    return -1;
  }
  if (s->expect_head && !any) {
    diag_error(s->src, s->expect_pos, "expect head needs a command with a stream() body");
    return -1;
  }
  return 0;
}

/* The header: a streamed command's piece and end handlers. */
void emit_stream_handlers(const struct spec *s, const struct command_decl *c, struct writer *w)
{
  const char *cm = spec_member(c->name);
  (void)s;
  w_printf(w,
           "  /* %s's body as it arrives (chunk data only), then its end. -EAGAIN: offered again, the\n"
           "   * parser where it was, once the connection is resumed (rw_conn_resume). */\n"
           "  int (*%s_body)(rw_conn *c, rw_span piece);\n  int (*%s_end)(rw_conn *c);\n",
           c->name, cm, cm);
}

void emit_stream_required(const struct spec *s, struct writer *w)
{
  for (size_t i = 0; i < s->ncommands; i++) {
    if (!is_streamed(&s->commands[i]))
      continue;
    const char *cm = spec_member(s->commands[i].name);
    w_open(w, "if (!h->%s_body || !h->%s_end)\n", cm, cm);
    w_puts(w, "return -EINVAL;\n");
    w_dedent(w);
  }
}

void emit_stream_decls(const struct spec *s, struct writer *w)
{
  if (!s->expect_head)
    return;
  const char *P = s->protocol;
  w_printf(
      w,
      "/* Before a request is sent: whether its response answers a HEAD (no body, whatever its\n"
      " * fields say); it holds until a final (non-1xx) response's head. On the connection's\n"
      " * parser, or on a parser state of %s_proto.parser_size bytes. */\n"
      "void %s_expect_head(rw_conn *c, bool head);\nvoid %s_parser_expect_head(void *parser, bool head);\n",
      P, P, P);
}

/* The .re, before the parser's continuation: what next() hands dispatch besides the message. */
void emit_stream_msg(const struct spec *s, struct writer *w)
{
  const char *P = s->protocol;
  w_printf(w,
           "/* A streamed command's message: the head (`head`), or a step of its body; dispatch commits\n"
           " * what it moves the parser to once the handlers took it. */\n"
           "struct %s_stream {\n  union %s_msg m;\n  struct %s_parser *p;\n  bool head;\n  rw_body_step "
           "step;\n};\n"
           "_Static_assert(sizeof(struct %s_stream) <= RW_PROTO_MSG_MAX, \"message too large\");\n\n",
           P, P, P, P);
}

/* Dispatch of a streamed command: head, piece, end, each committed once taken. */
void emit_stream_dispatch(const struct spec *s, const struct command_decl *c, struct writer *w)
{
  const char *P = s->protocol, *cm = spec_member(c->name);
  const struct step *st = stream_step_of(c);
  w_printf(w, "const struct %s_stream *sm = (const struct %s_stream *)(const void *)m;\n", P, P);
  w_printf(w, "struct %s_parser *p = sm->p;\nint rc;\n", P);
  w_open(w, "if (sm->head) {\n");
  w_printf(w, "if ((rc = h->%s(c, &m->%s)) != 0)\n  return rc;\n", cm, cm);
  w_puts(w, "p->b_started = true;\np->body = sm->step.next;\n");
  if (s->expect_head) {
    if (st->status_field >= 0)
      w_printf(w,
               "if (p->num[%d] >= 200)\n  p->expect_head = false; /* (1xx: the final response follows) */\n",
               c->fields[st->status_field].slot);
    else
      w_puts(w, "p->expect_head = false;\n");
  }
  w_close(w, "} else if (sm->step.events & RW_BODY_PIECE) {\n");
  w_indent(w);
  w_printf(w, "if ((rc = h->%s_body(c, sm->step.piece)) != 0)\n  return rc;\n", cm);
  w_puts(w, "p->body = sm->step.next;\n");
  w_close(w, "}\n");
  w_open(w, "if (!(sm->step.events & RW_BODY_END))\n");
  w_puts(w, "return 0;\n");
  w_dedent(w);
  w_open(w, "if (sm->head || (sm->step.events & RW_BODY_PIECE)) { /* taken: its bytes come again with the "
            "end */\n");
  w_puts(w, "p->body.phase = RW_BODY_ENDING;\np->body.done = (uint32_t)sm->step.used;\n");
  w_close(w, "}\n");
  w_printf(w, "if ((rc = h->%s_end(c)) != 0)\n  return rc;\n", cm);
  w_puts(w, "p->cmd = -1; /* the message is done: a new frame starts */\nreturn 0;\n");
}

/* The .re, after dispatch: the end of a body that runs to the close, and `expect head`. */
void emit_stream_support(const struct spec *s, struct writer *w)
{
  const char *P = s->protocol;
  w_open(w, "static int %s_on_eof(rw_conn *c, const void *vh, void *vp)\n{\n", P);
  w_printf(w, "const struct %s_handlers *h = vh;\nstruct %s_parser *p = vp;\n", P, P);
  w_puts(w, "int rc;\n(void)h;\n(void)c;\n");
  for (size_t i = 0; i < s->ncommands; i++) {
    const struct command_decl *c = &s->commands[i];
    if (!is_streamed(c))
      continue;
    w_puts(w, "if (p->cmd == ");
    emit_cmd_enum(s, c->name, w);
    w_open(w, " && p->b_started) {\n");
    if (stream_step_of(c)->until_close) {
      w_open(w, "if (p->body.framing != RW_BODY_CLOSE)\n");
      w_puts(w, "return -EPIPE; /* cut short */\n");
      w_dedent(w);
      w_puts(w, "p->cmd = -1;\n");
      w_printf(w, "rc = h->%s_end(c);\n", spec_member(c->name));
      w_puts(w, "return rc == -EAGAIN ? 0 : rc; /* (nothing can come again after the close) */\n");
    } else {
      w_puts(w, "return -EPIPE; /* cut short */\n");
    }
    w_close(w, "}\n");
  }
  w_puts(w, "(void)rc;\nreturn 0;\n");
  w_close(w, "}\n\n");
  if (!s->expect_head)
    return;
  w_open(w, "void %s_parser_expect_head(void *parser, bool head)\n{\n", P);
  w_printf(w, "((struct %s_parser *)parser)->expect_head = head;\n", P);
  w_close(w, "}\n\n");
  w_open(w, "void %s_expect_head(rw_conn *c, bool head)\n{\n", P);
  w_printf(w, "%s_parser_expect_head(rw_conn_parser(c), head);\n", P);
  w_close(w, "}\n\n");
}
