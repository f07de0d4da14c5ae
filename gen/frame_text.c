/* The line-first text frame kind (the default, `frame lines;`): every frame starts with a
 * first line matched by one re2c DFA (resumable, storable state), whose captures are spans and
 * numbers; a command may continue with parts (gen/part_*.c) tracked by offsets, so that the
 * frame may move between calls. */
#include <stdlib.h>
#include <string.h>

#include "construct.h"

static void emit_rx(const struct spec *s, const char *cmd, const struct rx *r, struct writer *out)
{
  switch (r->kind) {
  case RX_STR:
  case RX_CLASS: w_puts(out, r->text); return;
  case RX_ANY: w_puts(out, "[^]"); return;
  case RX_BYTES: /* split off into the continuation by the checks: never in a pattern */
  case RX_ARRAY:
  case RX_FIELDS:
  case RX_BODY:
  case RX_STREAM: return;
  case RX_WORDS:
    w_printf(out, "@f_%s_%s_s tok_%s ([ \\t]+ tok_%s)* @f_%s_%s_e", cmd, r->text, r->arg, r->arg, cmd,
             r->text);
    return;
  case RX_REF: w_printf(out, "tok_%s", r->text); return;
  case RX_CAPTURE:
    w_printf(out, "@f_%s_%s_s ", cmd, r->text);
    emit_rx(s, cmd, r->kids[0], out);
    w_printf(out, " @f_%s_%s_e", cmd, r->text);
    return;
  case RX_SEQ:
    for (size_t i = 0; i < r->nkids; i++) {
      if (i)
        w_putc(out, ' ');
      emit_rx(s, cmd, r->kids[i], out);
    }
    return;
  case RX_ALT:
    if (r->nkids > 1)
      w_putc(out, '(');
    for (size_t i = 0; i < r->nkids; i++) {
      if (i)
        w_puts(out, " | ");
      emit_rx(s, cmd, r->kids[i], out);
    }
    if (r->nkids > 1)
      w_putc(out, ')');
    return;
  case RX_REPEAT:
    w_putc(out, '(');
    emit_rx(s, cmd, r->kids[0], out);
    w_putc(out, ')');
    if (r->min == 0 && r->max < 0)
      w_putc(out, '*');
    else if (r->min == 1 && r->max < 0)
      w_putc(out, '+');
    else if (r->min == 0 && r->max == 1)
      w_putc(out, '?');
    else if (r->max < 0)
      w_printf(out, "{%d,}", r->min);
    else if (r->max == r->min)
      w_printf(out, "{%d}", r->min);
    else
      w_printf(out, "{%d,%d}", r->min, r->max);
    return;
  }
}

static void emit_user_tags(const struct spec *s, struct writer *out, const char *fmt)
{
  for (size_t i = 0; i < s->ncommands; i++) {
    const struct command_decl *c = &s->commands[i];
    for (size_t f = 0; f < c->nfields; f++) {
      if (c->fields[f].kind == FIELD_BYTES || c->fields[f].kind == FIELD_STREAM ||
          (c->fields[f].kind == FIELD_LIST && c->fields[f].token < 0))
        continue; /* not in the pattern: the continuation finds it */
      for (const char *e = "se"; *e; e++) {
        char tag[128];
        snprintf(tag, sizeof tag, "f_%s_%s_%c", c->name, c->fields[f].name, *e);
        for (const char *q = fmt; *q; q++) {
          if (q[0] == '@' && q[1] == '@') {
            w_puts(out, tag);
            q++;
          } else {
            w_putc(out, *q);
          }
        }
      }
    }
  }
}

/* A command whose continuation is only data blocks and literals: its total length is known once
 * the first line's length fields are read, so a refusal can skip it (arrays and bodies cannot). */
static bool skippable(const struct command_decl *c)
{
  for (size_t k = 0; k < c->nsteps; k++)
    if (!part_of_step(c->steps[k].kind)->skippable)
      return false;
  return c->nsteps > 0;
}

static bool is_len_field(const struct command_decl *c, size_t f)
{
  for (size_t k = 0; k < c->nsteps; k++)
    if (c->steps[k].kind == STEP_BYTES && c->steps[k].len_field == (int)f)
      return true;
  return false;
}

/* A refused first line returns `status`. When the frame declared data blocks and their lengths
 * were read, they are skipped as they arrive: a refused line never lets its data be parsed as
 * frames (memcached's `set <bad key> 0 0 9` followed by `flush_all` as data). A quiet frame
 * sends nothing: its bytes are consumed as a skip. */
static void emit_refusal(const struct command_decl *c, const char *status, bool skip, struct writer *out)
{
  if (skip) {
    w_puts(out, "{\n");
    w_shift(out, 1);
    emit_skip_total(c, 0, out);
    w_shift(out, -1);
    w_puts(out, "  p->skip = total;\n");
  }
  if (c->quiet_field >= 0)
    w_printf(out, "  return quiet ? RW_PARSE_SKIP : %s;\n", status);
  else
    w_printf(out, "  return %s;\n", status);
  if (skip)
    w_puts(out, "}\n");
}

static void emit_span_field(const struct spec *s, const struct command_decl *c, const struct field *fd,
                            bool skip, struct writer *out)
{
  const char *cn = c->name, *fn = fd->name;
  if (fd->kind == FIELD_LIST && !c->nsteps) {
    w_printf(out, "rw_list_words(&m->%s.%s, f_%s_%s_s, (size_t)(f_%s_%s_e - f_%s_%s_s));\n", spec_member(cn),
             spec_member(fn), cn, fn, cn, fn, cn, fn);
    return;
  }
  if (fd->kind == FIELD_SPAN && fd->token >= 0 && s->tokens[fd->token].max_len) {
    char status[64];
    if (s->tokens[fd->token].overflow.present)
      snprintf(status, sizeof status, "RW_PARSE_SPEC_ERROR(%d)", fd->token);
    else
      snprintf(status, sizeof status, "RW_PARSE_UNKNOWN");
    w_printf(out, "if ((size_t)(f_%s_%s_e - f_%s_%s_s) > %lluu)\n", cn, fn, cn, fn,
             (unsigned long long)s->tokens[fd->token].max_len);
    emit_refusal(c, status, skip, out);
  }
  if (fd->kind == FIELD_SPAN && !c->nsteps) {
    w_printf(out, "m->%s.%s = (rw_span){f_%s_%s_s, (size_t)(f_%s_%s_e - f_%s_%s_s)};\n", spec_member(cn),
             spec_member(fn), cn, fn, cn, fn, cn, fn);
  } else { /* spans, and words built at completion */
    w_printf(out,
             "p->off[%d][0] = (uint32_t)(f_%s_%s_s - buf);\n"
             "p->off[%d][1] = (uint32_t)(f_%s_%s_e - buf);\n",
             fd->slot, cn, fn, fd->slot, cn, fn);
  }
}

/* A number is parsed into a local of its type (or of 64 bits when it wraps), then stored in the
 * message, or in the parser when the command continues. */
static void emit_num_field(const struct spec *s, const struct command_decl *c, const struct field *fd,
                           bool skip, struct writer *out)
{
  const char *cn = c->name, *fn = fd->name;
  bool wrap = s->tokens[fd->token].wrap && fd->num == NUM_U32;
  const char *ctype = wrap ? "uint64_t" : num_ctype(fd->num);
  w_printf(out, "%s tmp_%s;\n", ctype, fn);
  if (fd->num == NUM_I64)
    w_printf(out, "if (rw_parse_i64(f_%s_%s_s, f_%s_%s_e, &tmp_%s) < 0)\n", cn, fn, cn, fn, fn);
  else if (fd->num == NUM_U32 && !wrap)
    w_printf(out, "if (rw_parse_u32(f_%s_%s_s, f_%s_%s_e, &tmp_%s) < 0)\n", cn, fn, cn, fn, fn);
  else
    w_printf(out, "if (rw_parse_u64(f_%s_%s_s, f_%s_%s_e, UINT64_MAX, &tmp_%s) < 0)\n", cn, fn, cn, fn, fn);
  char status[64];
  if (s->tokens[fd->token].overflow.present)
    snprintf(status, sizeof status, "RW_PARSE_SPEC_ERROR(%d)", fd->token);
  else
    snprintf(status, sizeof status, "RW_PARSE_BAD_NUMBER");
  emit_refusal(c, status, skip, out);
  /* A wrapping number is cut to its type; an i64 keeps its bits in the parser's u64 slot. */
  const char *cast = wrap ? "(uint32_t)" : (c->nsteps && fd->num == NUM_I64) ? "(uint64_t)" : "";
  if (c->nsteps)
    w_printf(out, "p->num[%d] = %stmp_%s;\n", fd->slot, cast, fn);
  else
    w_printf(out, "m->%s.%s = %stmp_%s;\n", spec_member(cn), spec_member(fn), cast, fn);
}

static void emit_field(const struct spec *s, const struct command_decl *c, const struct field *fd, bool skip,
                       struct writer *out)
{
  if (fd->kind == FIELD_BYTES || fd->kind == FIELD_STREAM || (fd->kind == FIELD_LIST && fd->token < 0))
    return;
  if (fd->kind == FIELD_NUM)
    emit_num_field(s, c, fd, skip, out);
  else
    emit_span_field(s, c, fd, skip, out);
}

/* Whether capture `name` sits in one branch of an alternation under r (so may not take part). */
static bool in_branch(const struct rx *r, const char *name, bool branch)
{
  if (r->kind == RX_CAPTURE && !strcmp(r->text, name))
    return branch;
  for (size_t i = 0; i < r->nkids; i++)
    if (in_branch(r->kids[i], name, branch || (r->kind == RX_ALT && r->nkids > 1)))
      return true;
  return false;
}

/* A matched first line: spans and numbers go straight into the message, or, when the command
 * continues with data, into the parser as offsets (the buffer may move before it completes).
 * The lengths of data blocks are read first, so that any other refusal can skip the blocks. */
static void emit_fields(const struct spec *s, const struct command_decl *c, struct writer *out)
{
  /* re2c leaves the tags of a branch not taken NULL: such a span is empty, at the line's end. */
  for (size_t f = 0; f < c->nfields; f++) {
    const char *fn = c->fields[f].name;
    if (c->fields[f].kind == FIELD_SPAN && in_branch(c->rx, fn, false))
      w_printf(out, "if (!f_%s_%s_s)\n  f_%s_%s_s = f_%s_%s_e = cur;\n", c->name, fn, c->name, fn, c->name,
               fn);
  }
  if (c->quiet_field >= 0) {
    const char *q = c->fields[c->quiet_field].name;
    w_printf(out, "const bool quiet = f_%s_%s_e != f_%s_%s_s;\n(void)quiet;\n", c->name, q, c->name, q);
  }
  bool skip = skippable(c);
  for (size_t f = 0; skip && f < c->nfields; f++)
    if (is_len_field(c, f))
      emit_field(s, c, &c->fields[f], false, out);
  for (size_t f = 0; f < c->nfields; f++)
    if (!skip || !is_len_field(c, f))
      emit_field(s, c, &c->fields[f], skip, out);
}

static void emit_re2c_rules(const struct spec *s, struct writer *out)
{
  w_puts(out, "  /*!re2c\n"
              "    re2c:api:style = free-form;\n"
              "    re2c:define:YYCTYPE = uint8_t;\n"
              "    re2c:define:YYCURSOR = cur;\n"
              "    re2c:define:YYMARKER = mar;\n"
              "    re2c:define:YYLIMIT = lim;\n"
              "    re2c:define:YYGETSTATE = \"p->state\";\n"
              "    re2c:define:YYSETSTATE = \"p->state = @@;\";\n"
              "    re2c:define:YYFILL = \"goto need_more;\";\n"
              "    re2c:variable:yyaccept = \"p->yyaccept\";\n"
              "    re2c:eof = 0;\n"
              "    re2c:tags = 1;\n"
              "    re2c:tags:expression = \"p->@@\";\n\n");
  for (size_t i = 0; i < s->ntokens; i++) {
    w_printf(out, "    tok_%s = ", s->tokens[i].name);
    emit_rx(s, NULL, s->tokens[i].rx, out);
    w_puts(out, ";\n");
  }
  w_putc(out, '\n');
  for (size_t i = 0; i < s->ncommands; i++) {
    const struct command_decl *c = &s->commands[i];
    w_puts(out, "    ");
    emit_rx(s, c->name, c->rx, out);
    w_puts(out, " {\n");
    if (has_fast_line(s))
      w_printf(out, "    fast_%s:\n", c->name);
    w_puts(out, "      if (FRAME_TOO_LONG())\n        return RW_PARSE_OVERLONG;\n"
                "      *out_used = (size_t)(cur - buf);\n");
    w_shift(out, 3); /* the rule's action block */
    emit_fields(s, c, out);
    w_shift(out, -3);
    if (c->action.present && c->nsteps) {
      /* Answered by the spec: its data is never needed, so it is skipped as it arrives. */
      w_puts(out, "      {\n");
      w_shift(out, 4);
      emit_skip_total(c, 0, out);
      w_shift(out, -4);
      w_puts(out, "        p->skip = total;\n      }\n");
    }
    if (c->nsteps && !c->action.present) {
      w_puts(out, "      p->cmd = ");
      emit_cmd_enum(s, c->name, out);
      w_puts(out, ";\n      p->step = 0;\n      p->pos = (size_t)(cur - buf);\n");
      if (spec_needs(s) & NEED_ITEMS)
        w_puts(out, "      p->arr_started = false;\n");
      if (spec_needs(s) & NEED_FIELDS)
        w_puts(out, "      p->f_started = p->b_started = p->b_head = false;\n      p->fs.c_state = 0;\n");
      w_puts(out, "      goto cont;\n    }\n");
      continue;
    }
    w_puts(out, c->quiet_field >= 0 && c->action.present ? "      return quiet ? RW_PARSE_SKIP : "
                                                         : "      return ");
    emit_cmd_enum(s, c->name, out);
    w_puts(out, ";\n    }\n");
  }
  w_puts(out, "    [^\\n]* \"\\n\" {\n      if (FRAME_TOO_LONG())\n        return RW_PARSE_OVERLONG;\n"
              "      *out_used = (size_t)(cur - buf);\n      return RW_PARSE_UNKNOWN;\n    }\n"
              "    * { *out_used = (size_t)(cur - buf); return RW_PARSE_INVALID; }\n"
              "    $ { *out_used = 0; return RW_PARSE_MORE; }\n"
              "  */\n");
}

/* Whether a first line captures a number (parsed from its digits by the runtime's parser). */
static bool has_text_numbers(const struct spec *s)
{
  for (size_t i = 0; i < s->ncommands; i++)
    for (size_t f = 0; f < s->commands[i].nfields; f++)
      if (s->commands[i].fields[f].kind == FIELD_NUM && s->commands[i].fields[f].token >= 0)
        return true;
  return false;
}

static void emit_framed_parser(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  w_printf(out,
           "/* Parser state survives between calls (re2c storable state): a frame split across\n"
           " * reads is resumed, not rescanned. Positions are pointers into the caller's buffer;\n"
           " * when the runtime moves the unconsumed bytes it hands the new address and every\n"
           " * saved position is shifted by the same distance. */\n"
           "struct %s_parser {\n  const uint8_t *cur, *mar;\n  uintptr_t base;\n  int state;\n"
           "  unsigned yyaccept;\n",
           p);
  if (spec_has_steps(s)) {
    w_printf(out,
             "  /* A command continuing after its first line: where it is, and its first line's\n"
             "   * fields as offsets from the frame's start and as numbers. */\n"
             "  int cmd;\n  unsigned step;\n  size_t pos;\n"
             "  uint64_t skip; /* bytes of a refused data block still to discard */\n"
             "  uint32_t off[%d][2];\n  uint64_t num[%d];\n",
             s->max_spans ? s->max_spans : 1, s->max_nums ? s->max_nums : 1);
  }
  if (spec_needs(s) & NEED_ITEMS)
    w_puts(out, "  /* An array or chunked body in progress: items left, items seen, where each begins, the\n"
                "   * current item's length and whether its header was read. */\n"
                "  uint64_t arr_left, el_len;\n  uint32_t arr_n, arr_start;\n  bool arr_started, in_item;\n"
                "  uint32_t items[RW_LIST_INLINE][2];\n");
  if (spec_needs(s) & NEED_FIELDS)
    w_printf(out,
             "  /* A field section, then a body: how far lines were scanned, where the section\n"
             "   * began and ended, how many fields; the body's framing and progress. */\n"
             "  rw_fields_scan fs;\n  uint32_t lcount[%d];\n"
             "  bool f_started, b_started, b_chunked, b_head;\n  uint64_t b_len;\n  uint32_t b_start;\n",
             s->max_spans ? s->max_spans : 1);
  if (spec_needs(s) & NEED_BODY)
    w_printf(out, "  /* A streamed body once its head was taken (b_started)%s. */\n  rw_body_state body;\n%s",
             s->expect_head ? ", and whether the next response answers a HEAD" : "",
             s->expect_head ? "  bool expect_head;\n" : "");
  w_puts(out, "  /*!stags:re2c format = \"  const uint8_t *@@;\\n\"; */\n};\n\n");
  w_printf(out,
           "static void %s_parser_init(void *vp)\n{\n  struct %s_parser *p = vp;\n"
           "  *p = (struct %s_parser){.state = -1%s};\n}\n\n",
           p, p, p, spec_has_steps(s) ? ", .cmd = -1" : "");
  w_printf(out, "#define SHIFT(ptr) ((ptr) = (const uint8_t *)((uintptr_t)(ptr) + delta))\n");
  /* A frame longer than the limit is refused however it was split: the same check runs when a
   * frame completes in one piece and when a partial frame is held. */
  w_printf(out, "#define FRAME_TOO_LONG() ((size_t)(cur - buf) > %lluu)\n\n",
           (unsigned long long)s->limit_line);
  if (spec_has_steps(s)) {
    w_printf(out,
             "static int %s_cont(struct %s_parser *p, const uint8_t *buf, size_t len,\n"
             "                    size_t *out_used, union %s_msg *m);\n\n",
             p, p, p);
  }
  w_printf(out,
           "static void %s_rebase(struct %s_parser *p, const uint8_t *buf)\n{\n"
           "  uintptr_t delta = (uintptr_t)buf - p->base;\n  SHIFT(p->cur);\n  SHIFT(p->mar);\n",
           p, p);
  w_puts(out, "  /*!stags:re2c format = \"  if (p->@@)\\n    SHIFT(p->@@);\\n\"; */\n}\n\n");
  w_printf(out,
           "static int %s_next(void *vp, const uint8_t *buf, size_t len, size_t *out_used, void *vmsg)\n"
           "{\n  struct %s_parser *p = vp;\n  union %s_msg *m = vmsg;\n  const uint8_t *lim = buf + len;\n"
           "  uint8_t yych;\n",
           p, p, p);
  /* Named tags are final positions re2c assigns when a rule matches: locals, never saved. */
  emit_user_tags(s, out, "  const uint8_t *@@;\n");
  w_puts(out, "\n  (void)m;\n");
  if (spec_has_steps(s)) {
    w_puts(out, "  if (p->skip) { /* a refused data block: discarded as it arrives, never buffered */\n"
                "    size_t n = len < p->skip ? len : (size_t)p->skip;\n    p->skip -= n;\n"
                "    *out_used = n;\n    return RW_PARSE_SKIP;\n  }\n"
                "  if (p->cmd >= 0)\n    goto cont;\n");
  }
  /* The cursor and marker live in locals (registers) while the machine runs, and in the
   * parser only across calls: a store per byte into the parser would cost more than the DFA. */
  w_printf(out,
           "  const uint8_t *cur = buf, *mar = buf;\n"
           "  if (p->state >= 0) {\n    %s_rebase(p, buf);\n    cur = p->cur;\n    mar = p->mar;\n  }\n",
           p);
  emit_fast_line(s, out);
  w_puts(out, "  /*!getstate:re2c*/\n");
  emit_re2c_rules(s, out);
  w_printf(out,
           "need_more:\n  if (len > %lluu)\n    return RW_PARSE_OVERLONG;\n"
           "  p->cur = cur;\n  p->mar = mar;\n"
           "  p->base = (uintptr_t)buf;\n  *out_used = 0;\n  return RW_PARSE_MORE;\n",
           (unsigned long long)s->limit_line);
  if (spec_has_steps(s))
    w_printf(out, "cont:\n  return %s_cont(p, buf, len, out_used, m);\n", p);
  w_puts(out, "}\n\n");
}

/* The message's fields from the parser's offsets; `head`: the body not yet there (empty). */
/* The message's fields from the parser's offsets; `head`: the body not yet there (empty). A
 * field a step filled is the step's part to write; the first line's are numbers, words and
 * spans. */
static void emit_fill(const struct spec *s, const struct command_decl *c, bool head, struct writer *out)
{
  w_shift(out, 2);
  for (size_t f = 0; f < c->nfields; f++) {
    const struct field *fd = &c->fields[f];
    const char *cm = spec_member(c->name), *fm = spec_member(fd->name);
    const struct step *st = NULL;
    for (size_t k = 0; k < c->nsteps && !st; k++)
      if (c->steps[k].field == (int)f && c->steps[k].kind != STEP_LITERAL)
        st = &c->steps[k];
    const struct part_ops *part = st ? part_of_step(st->kind) : NULL;
    if (part && part->emit_fill)
      part->emit_fill(s, c, fd, st, head, out);
    else if (fd->kind == FIELD_NUM)
      w_printf(out, "m->%s.%s = (%s)p->num[%d];\n", cm, fm, num_ctype(fd->num), fd->slot);
    else if (fd->kind == FIELD_LIST && fd->token >= 0)
      w_printf(out, "rw_list_words(&m->%s.%s, buf + p->off[%d][0], p->off[%d][1] - p->off[%d][0]);\n", cm, fm,
               fd->slot, fd->slot, fd->slot);
    else
      w_printf(out, "m->%s.%s = (rw_span){buf + p->off[%d][0], p->off[%d][1] - p->off[%d][0]};\n", cm, fm,
               fd->slot, fd->slot, fd->slot);
  }
  w_shift(out, -2);
}

static void emit_cont_command(const struct spec *s, const struct command_decl *c, struct writer *out)
{
  w_puts(out, "  case ");
  emit_cmd_enum(s, c->name, out);
  w_puts(out, ":\n    switch (p->step) {\n");
  for (size_t k = 0; k < c->nsteps; k++) {
    const struct step *st = &c->steps[k];
    w_printf(out, "    case %zu: {\n", k);
    w_shift(out, 3);
    if (k == 0) {
      /* Every block's length is known from the first line: refuse before buffering any. */
      for (size_t j = 0; j < c->nsteps; j++) {
        if (c->steps[j].kind != STEP_BYTES)
          continue;
        w_open(out, "if (p->num[%d] > %lluu) {\n", c->fields[c->steps[j].len_field].slot,
               (unsigned long long)s->limit_data);
        emit_skip_total(c, 0, out);
        w_puts(out, "p->skip = total;\np->cmd = -1;\n*out_used = p->pos;\n");
        emit_cont_status(c, "RW_PARSE_TOO_LARGE", out);
        w_close(out, "}\n");
      }
    }
    const struct part_ops *part = part_of_step(st->kind);
    part->emit_step(s, c, st, out);
    if (!part->emit_done) /* (that step stays where it is until the frame is done) */
      w_printf(out, "p->step = %zu;\n", k + 1);
    w_shift(out, -3);
    w_puts(out, "    }\n      /* fall through */\n");
  }
  w_puts(out, "    default:\n      break;\n    }\n");
  emit_fill(s, c, false, out);
  const struct part_ops *last = part_of_step(c->steps[c->nsteps - 1].kind);
  if (last->emit_done) {
    last->emit_done(s, c, &c->steps[c->nsteps - 1], out);
  } else {
    w_puts(out, "    *out_used = p->pos;\n    p->cmd = -1;\n    return ");
    emit_cmd_enum(s, c->name, out);
    w_puts(out, ";\n");
  }
  if (s->head_name && !strcmp(s->head_name, c->name)) {
    /* Nothing consumed: the frame goes on parsing from here once more bytes come. */
    w_printf(out, "  head_%s:\n    p->b_head = true;\n", c->name);
    emit_fill(s, c, true, out);
    w_puts(out, "    *out_used = 0;\n    return RW_PARSE_HEAD;\n");
  }
}

static void emit_cont(const struct spec *s, struct writer *out)
{
  const char *p = s->protocol;
  if (spec_needs(s) & NEED_FIELDS)
    emit_fields_tables(s, out);
  if (spec_needs(s) & NEED_BODY)
    emit_stream_msg(s, out);
  w_printf(out,
           "static int %s_cont(struct %s_parser *p, const uint8_t *buf, size_t len, size_t *out_used,\n"
           "                    union %s_msg *m)\n{\n  switch (p->cmd) {\n",
           p, p, p);
  for (size_t i = 0; i < s->ncommands; i++)
    if (s->commands[i].nsteps && !s->commands[i].action.present) /* (those skip their data) */
      emit_cont_command(s, &s->commands[i], out);
  w_puts(out, "  default:\n    break;\n  }\n  p->cmd = -1;\n  *out_used = len;\n  return RW_PARSE_INVALID;\n"
              "more:\n  *out_used = 0;\n  return RW_PARSE_MORE;\n");
  if (spec_has_step(s, STEP_ARRAY))
    w_puts(out, "bad_array: /* the frame cannot be resynchronised: the spec's bad_data, then close */\n"
                "  p->cmd = -1;\n  *out_used = len;\n  return RW_PARSE_BAD_DATA;\n");
  if (spec_has_step(s, STEP_BODY) || spec_has_step(s, STEP_STREAM))
    w_puts(out, "bad_body: /* a body whose framing cannot be trusted: bad_data, and the spec closes */\n"
                "  p->cmd = -1;\n  *out_used = len;\n  return RW_PARSE_BAD_DATA;\n");
  w_puts(out, "}\n\n");
}

/* A frame kind's own checks: a line-first frame is bounded by `limit line`. */
static int text_check(struct spec *s)
{
  struct pos start = {1, 1};
  if (!s->ncommands) {
    diag_error(s->src, start, "no commands: declare at least one 'command', or 'raw NAME;'");
    return -1;
  }
  if (!s->limit_line) {
    diag_error(s->src, start, "missing 'limit line N;': a connection's buffered frame must be bounded");
    return -1;
  }
  if (s->limit_line < LIMIT_LINE_MIN || s->limit_line > LIMIT_LINE_MAX) {
    diag_error(s->src, s->limit_pos, "limit line must be between %d bytes and 64MiB", LIMIT_LINE_MIN);
    return -1;
  }
  return 0;
}

static unsigned text_needs(const struct spec *s)
{
  return has_fast_line(s) || has_text_numbers(s) ? NEED_SCAN : 0;
}

void text_handlers(const struct spec *s, struct writer *out)
{
  for (size_t i = 0; i < s->ntable; i++)
    w_printf(out, "  int (*%s)(rw_conn *c, const rw_list *args); /* %u%s items */\n",
             spec_member(s->table[i].name), s->table[i].arity, s->table[i].at_least ? " or more" : "");
  if (s->ntable)
    w_puts(out, "  int (*unknown)(rw_conn *c, const rw_list *args); /* a name not in the table */\n");
  if (uses_refuse(s))
    w_puts(out,
           "  /* A parse error the spec refuses (status: RW_PARSE_UNKNOWN, RW_PARSE_OVERLONG, ...): the\n"
           "   * frame may not have parsed at all, so the status is all there is. */\n"
           "  int (*refused)(rw_conn *c, int status);\n");
}

static void text_parser(const struct spec *s, struct writer *out)
{
  emit_framed_parser(s, out);
  if (spec_has_steps(s))
    emit_cont(s, out);
}

/* The longest frame a connection may have to hold: the first line plus, for a command that
 * continues, its parts at their limits. */
static unsigned long long text_max_frame(const struct spec *s)
{
  unsigned long long most = 0;
  for (size_t i = 0; i < s->ncommands; i++) {
    unsigned long long n = 0;
    for (size_t k = 0; k < s->commands[i].nsteps; k++) {
      const struct step *st = &s->commands[i].steps[k];
      n += part_of_step(st->kind)->max_len(s, st);
    }
    most = n > most ? n : most;
  }
  return s->limit_line + most;
}

static int text_dot(const struct spec *s, struct writer *out)
{
  w_printf(out,
           "  line [label=\"first line\\n(re2c DFA, resumable)\\nlimit line %llu\"];\n"
           "  start -> line;\n",
           (unsigned long long)s->limit_line);
  for (size_t i = 0; i < s->ncommands; i++) {
    const struct command_decl *c = &s->commands[i];
    w_printf(out, "  cmd_%s [shape=ellipse, label=\"%s\"];\n  line -> cmd_%s;\n", c->name, c->name, c->name);
    char prev[160];
    snprintf(prev, sizeof prev, "cmd_%s", c->name);
    for (size_t k = 0; k < c->nsteps; k++) {
      const struct step *st = &c->steps[k];
      char node[160];
      snprintf(node, sizeof node, "%s_step%zu", c->name, k);
      w_printf(out, "  %s [label=\"", node);
      part_of_step(st->kind)->dot_label(c, st, out);
      w_puts(out, "\"];\n");
      w_printf(out, "  %s -> %s;\n", prev, node);
      snprintf(prev, sizeof prev, "%s", node);
    }
    if (c->dispatch_field)
      w_printf(out, "  %s -> table [label=\"by %s\"];\n", prev, c->dispatch_field);
    else if (c->action.present)
      dot_action(out, prev, &c->action, "done");
    else
      w_printf(out, "  %s -> handler_%s;\n  handler_%s -> start;\n", prev, c->name, c->name);
  }
  if (s->ntable) {
    w_puts(out, "  table [shape=diamond, label=\"table\\n(case-insensitive)\"];\n");
    for (size_t i = 0; i < s->ntable; i++)
      w_printf(out, "  table -> handler_%s [label=\"%s %u%s\"];\n  handler_%s -> start;\n", s->table[i].name,
               s->table[i].name, s->table[i].arity, s->table[i].at_least ? "+" : "", s->table[i].name);
    w_puts(out, "  table -> handler_unknown [label=\"other\"];\n");
    dot_action(out, "table", &s->arity, "arity");
  }
  dot_action(out, "line", &s->otherwise, "otherwise");
  dot_action(out, "line", &s->overlong, "overlong");
  if (s->limit_data) {
    dot_action(out, "line", &s->too_large, "too_large");
    dot_action(out, "line", &s->bad_data, "bad_data");
  }
  w_puts(out, "}\n");
  return w_error(out);
}

const struct frame_ops frame_text = {
    .keyword = "lines",
    .check = text_check,
    .needs = text_needs,
    .emit_handlers = text_handlers,
    .emit_parser = text_parser,
    .emit_table = emit_text_table,
    .max_frame = text_max_frame,
    .emit_dot = text_dot,
};
