/* The RESP2 reply frame kind (`frame resp2;`): what a client of redis receives. A reply is one
 * value, an array's elements values in turn, nested to `limit depth`: no first line decides its
 * length, so the generated parser hands the bytes to the runtime's resumable scanner
 * (<ringwright/resp.h>), which checks the whole reply against the spec's limits, and the one
 * command's message is the checked reply, walked with rw_resp_walk.
 *
 *   command NAME = FIELD:value;    the reply, a span in the message as FIELD */
#include <stdlib.h>
#include <string.h>

#include "construct.h"
#include "parser.h"

static int resp2_parse(struct parser *ps, struct command_decl *d)
{
  char *name;
  struct pos at;
  if (expect_ident(ps, &name, &at) < 0)
    return -1;
  int f = command_add_field(ps->spec->src, d, name, at, FIELD_SPAN, NUM_NONE, -1);
  free(name);
  if (f < 0 || expect_punct(ps, ':') < 0)
    return -1;
  if (!is_word(ps, "value"))
    return expected(ps, "'value' (a RESP2 reply, nested arrays included)");
  return next(ps);
}

/* Declared, and within [lo, hi]: else a diagnostic at `frame resp2` (a missing limit has no
 * position of its own: the frame declaration has it). */
static int need_limit(struct spec *s, const char *name, uint64_t v, uint64_t lo, uint64_t hi, const char *why)
{
  if (v >= lo && v <= hi)
    return 0;
  diag_error(s->src, s->binary_pos, "a resp2 frame needs 'limit %s N;' with N from %llu to %llu: %s", name,
             (unsigned long long)lo, (unsigned long long)hi, why);
  return -1;
}

static int resp2_check(struct spec *s)
{
  int rc = 0;
  if (s->ncommands != 1) {
    diag_error(s->src, s->ncommands ? s->commands[1].pos : s->binary_pos,
               "a resp2 frame has exactly one command: the reply");
    rc = -1;
  }
  if (s->ntable || s->head_name || s->otherwise.present || s->bad_number.present ||
      s->fields_too_large.present) {
    diag_error(s->src, s->binary_pos,
               "a resp2 frame has no table, head, otherwise, bad_number or fields_too_large: "
               "its events are overlong, too_large and bad_data");
    rc = -1;
  }
  for (size_t i = 0; i < s->ncommands; i++)
    if (s->commands[i].action.present || s->commands[i].dispatch_field || s->commands[i].quiet) {
      diag_error(s->src, s->commands[i].pos,
                 "the reply '%s' goes to its handler: no action, dispatch or quiet", s->commands[i].name);
      rc = -1;
    }
  rc |= need_limit(s, "line", s->limit_line, LIMIT_LINE_MIN, LIMIT_LINE_MAX, "a status or length line");
  rc |= need_limit(s, "data", s->limit_data, 1, 1ULL << 40, "a whole reply's bytes");
  rc |= need_limit(s, "items", s->limit_items, 1, UINT32_MAX, "the elements of a reply's arrays");
  rc |= need_limit(s, "depth", s->limit_depth, 1, 32, "arrays inside arrays (RW_RESP_DEPTH_MAX)");
  return rc;
}

static unsigned resp2_needs(const struct spec *s)
{
  (void)s;
  return NEED_RESP;
}

static void resp2_handlers(const struct spec *s, struct writer *w)
{
  (void)s, (void)w; /* the reply's handler is the command's */
}

static void resp2_parser(const struct spec *s, struct writer *w)
{
  const char *p = s->protocol;
  const struct command_decl *c = &s->commands[0];
  w_printf(w, "struct %s_parser {\n  rw_resp_scan scan;\n};\n\n", p);
  w_printf(
      w, "static void %s_parser_init(void *vp)\n{\n  *(struct %s_parser *)vp = (struct %s_parser){0};\n}\n\n",
      p, p, p);
  w_printf(w,
           "static const rw_resp_limits %s_limits = {.line = %lluu, .reply = %lluu, .items = %lluu, .depth = "
           "%lluu};\n\n",
           p, (unsigned long long)s->limit_line, (unsigned long long)s->limit_data,
           (unsigned long long)s->limit_items, (unsigned long long)s->limit_depth);
  w_puts(w, "/* The scanner resumes from offsets into the reply: a reply split anywhere is read once. */\n");
  w_open(w, "static int %s_next(void *vp, const uint8_t *buf, size_t len, size_t *out_used, void *vmsg)\n{\n",
         p);
  w_printf(w, "struct %s_parser *p = vp;\nunion %s_msg *m = vmsg;\nsize_t n = 0;\n", p, p);
  w_printf(w, "int rc = rw_resp_scan_run(&p->scan, &%s_limits, buf, len, &n);\n", p);
  w_open(w, "if (rc < 0) {\n");
  w_puts(w, "*out_used = rc == RW_PARSE_MORE ? 0 : len;\nreturn rc;\n");
  w_close(w, "}\n");
  w_printf(w, "m->%s.%s = (rw_span){buf, n};\n*out_used = n;\nreturn ", spec_member(c->name),
           spec_member(c->fields[0].name));
  emit_cmd_enum(s, c->name, w);
  w_puts(w, ";\n");
  w_close(w, "}\n\n");
}

static unsigned long long resp2_max_frame(const struct spec *s)
{
  return s->limit_data; /* the whole reply is held until it is checked */
}

static int resp2_dot(const struct spec *s, struct writer *w)
{
  const char *cmd = s->commands[0].name;
  w_printf(w,
           "  value [label=\"value\\n+ - : $ *\\nlimit line %llu\"];\n"
           "  array [label=\"array: n values\\nlimit depth %llu\\nlimit items %llu\"];\n"
           "  start -> value;\n  value -> array [label=\"*n\"];\n  array -> value [label=\"each\"];\n"
           "  value -> handler_%s [label=\"reply complete\\nlimit data %llu\"];\n  handler_%s -> start;\n",
           (unsigned long long)s->limit_line, (unsigned long long)s->limit_depth,
           (unsigned long long)s->limit_items, cmd, (unsigned long long)s->limit_data, cmd);
  dot_action(w, "value", &s->overlong, "overlong");
  dot_action(w, "value", &s->too_large, "too_large");
  dot_action(w, "value", &s->bad_data, "bad_data");
  w_puts(w, "}\n");
  return w_error(w);
}

const struct frame_ops frame_resp2 = {
    .keyword = "resp2",
    .parse_command = resp2_parse,
    .check = resp2_check,
    .needs = resp2_needs,
    .emit_handlers = resp2_handlers,
    .emit_parser = resp2_parser,
    .max_frame = resp2_max_frame,
    .emit_dot = resp2_dot,
};
