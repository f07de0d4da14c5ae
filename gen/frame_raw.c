/* The raw frame kind (`raw NAME;`): no framing at all, every chunk received is one message
 * for handler NAME, whose one field is `data`. */
#include "construct.h"

static int raw_check(struct spec *s)
{
  if (s->ncommands || s->ntokens || s->limit_line || s->otherwise.present || s->overlong.present) {
    diag_error(s->src, s->raw_pos,
               "a raw protocol has no framing: tokens, commands, limits, otherwise and "
               "on overlong do not apply");
    return -1;
  }
  return check_name(s->src, "raw handler", s->raw_name, s->raw_pos);
}

static unsigned raw_needs(const struct spec *s)
{
  (void)s;
  return 0;
}

static void emit_raw_parser(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  w_printf(out, "struct %s_parser {\n  char unused_;\n};\n\n", p);
  w_printf(out, "static void %s_parser_init(void *vp)\n{\n  (void)vp;\n}\n\n", p);
  w_printf(out,
           "/* Unframed: every chunk the runtime receives is one message. */\n"
           "static int %s_next(void *vp, const uint8_t *buf, size_t len, size_t *out_used, void *vmsg)\n"
           "{\n  union %s_msg *m = vmsg;\n  (void)vp;\n  *out_used = len;\n"
           "  if (!len)\n    return RW_PARSE_MORE;\n"
           "  m->%s.data = (rw_span){buf, len};\n  return 0;\n}\n\n",
           p, p, spec_member(s->raw_name));
}

static unsigned long long raw_max_frame(const struct spec *s)
{
  (void)s;
  return 0; /* nothing is held: each chunk is handed over as it came */
}

static int raw_dot(const struct spec *s, struct writer *out)
{
  w_printf(out, "  start -> handler_%s [label=\"every chunk\"];\n  handler_%s -> start;\n}\n", s->raw_name,
           s->raw_name);
  return w_error(out);
}

const struct frame_ops frame_raw = {
    .keyword = NULL,
    .check = raw_check,
    .needs = raw_needs,
    .emit_handlers = text_handlers,
    .emit_parser = emit_raw_parser,
    .emit_table = emit_text_table,
    .max_frame = raw_max_frame,
    .emit_dot = raw_dot,
};
