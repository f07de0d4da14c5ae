/* Semantic checks: everything the parser cannot see locally. Names become C identifiers in the
 * generated code, so they are held to a small safe alphabet; every reference must resolve; the
 * memory a connection may buffer must be bounded by a declared limit. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#define LIMIT_LINE_MIN 16
#define LIMIT_LINE_MAX (64ULL * 1024 * 1024)

static const char *const c_keywords[] = {
    "auto",     "break",  "case",   "char",     "const",    "continue", "default",  "do",
    "double",   "else",   "enum",   "extern",   "float",    "for",      "goto",     "if",
    "inline",   "int",    "long",   "register", "restrict", "return",   "short",    "signed",
    "sizeof",   "static", "struct", "switch",   "typedef",  "union",    "unsigned", "void",
    "volatile", "while",  "bool",   "true",     "false"};

static int check_name(struct source *src, const char *kind, const char *name, struct pos at)
{
  size_t n = strlen(name);
  bool ok = n > 0 && n <= 48 && name[0] >= 'a' && name[0] <= 'z' && !strstr(name, "__") && name[n - 1] != '_';
  for (size_t i = 0; ok && i < n; i++)
    ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
  if (!ok) {
    diag_error(src, at,
               "%s name '%s' must be lowercase letters, digits and single '_', "
               "start with a letter and be at most 48 bytes",
               kind, name);
    return -1;
  }
  for (size_t i = 0; i < sizeof c_keywords / sizeof c_keywords[0]; i++) {
    if (!strcmp(name, c_keywords[i])) {
      diag_error(src, at, "%s name '%s' is a C keyword", kind, name);
      return -1;
    }
  }
  return 0;
}

/* Legal spec names that C++ (to C++20) or C23 reserve as keywords, or that a C standard header
 * may define as an object-like macro. The generated code spells them with a trailing '_'
 * wherever they stand alone as identifiers (struct members, handlers, reply parameters), in C
 * and C++ alike, so that the header declares the same thing to both: memcache's command
 * `delete` is the member `delete_`. No spec name ends in '_', so the spelling is free. */
static const char *const member_renamed[] = {"alignas_",
                                             "alignof_",
                                             "and_",
                                             "and_eq_",
                                             "asm_",
                                             "bitand_",
                                             "bitor_",
                                             "catch_",
                                             "char8_t_",
                                             "char16_t_",
                                             "char32_t_",
                                             "class_",
                                             "co_await_",
                                             "co_return_",
                                             "co_yield_",
                                             "compl_",
                                             "complex_",
                                             "concept_",
                                             "const_cast_",
                                             "consteval_",
                                             "constexpr_",
                                             "constinit_",
                                             "decltype_",
                                             "delete_",
                                             "dynamic_cast_",
                                             "errno_",
                                             "explicit_",
                                             "export_",
                                             "friend_",
                                             "imaginary_",
                                             "math_errhandling_",
                                             "mutable_",
                                             "namespace_",
                                             "new_",
                                             "noexcept_",
                                             "noreturn_",
                                             "not_",
                                             "not_eq_",
                                             "nullptr_",
                                             "operator_",
                                             "or_",
                                             "or_eq_",
                                             "private_",
                                             "protected_",
                                             "public_",
                                             "reinterpret_cast_",
                                             "requires_",
                                             "static_assert_",
                                             "static_cast_",
                                             "template_",
                                             "this_",
                                             "thread_local_",
                                             "throw_",
                                             "try_",
                                             "typeid_",
                                             "typename_",
                                             "typeof_",
                                             "typeof_unqual_",
                                             "using_",
                                             "virtual_",
                                             "wchar_t_",
                                             "xor_",
                                             "xor_eq_"};

const char *spec_member(const char *name)
{
  size_t n = strlen(name);
  for (size_t i = 0; i < sizeof member_renamed / sizeof member_renamed[0]; i++)
    if (!strncmp(member_renamed[i], name, n) && !strcmp(member_renamed[i] + n, "_"))
      return member_renamed[i];
  return name;
}

const struct token_decl *spec_find_token(const struct spec *s, const char *name)
{
  for (size_t i = 0; i < s->ntokens; i++)
    if (!strcmp(s->tokens[i].name, name))
      return &s->tokens[i];
  return NULL;
}

const struct reply_decl *spec_find_reply(const struct spec *s, const char *name)
{
  for (size_t i = 0; i < s->nreplies; i++)
    if (!strcmp(s->replies[i].name, name))
      return &s->replies[i];
  return NULL;
}

struct rx_ctx {
  struct spec *spec;
  struct command_decl *cmd; /* NULL inside a token: captures are not allowed there */
  size_t ntokens_visible;   /* tokens may refer only to tokens declared before them */
  int repeat_depth;
};

int command_add_field(struct source *src, struct command_decl *c, const char *name, struct pos at,
                      enum field_kind kind, enum num_type num, int token)
{
  for (size_t i = 0; i < c->nfields; i++) {
    if (!strcmp(c->fields[i].name, name)) {
      diag_error(src, at, "field '%s' captured twice in command '%s'", name, c->name);
      return -1;
    }
  }
  struct field *f = realloc(c->fields, (c->nfields + 1) * sizeof *f);
  char *copy = strdup(name);
  if (!f || !copy) {
    perror("rwgen");
    exit(1);
  }
  c->fields = f;
  c->fields[c->nfields++] =
      (struct field){.name = copy, .kind = kind, .num = num, .token = token, .slot = -1};
  return (int)c->nfields - 1;
}

static int add_field(struct rx_ctx *cx, const char *name, struct pos at, enum field_kind kind,
                     enum num_type num, int token)
{
  return command_add_field(cx->spec->src, cx->cmd, name, at, kind, num, token) < 0 ? -1 : 0;
}

/* The token a capture names (its index), or -1 for a pattern. A capture of a numeric token
 * yields a number, anything else a span. */
static int capture_token(const struct spec *s, const struct rx *cap)
{
  const struct rx *kid = cap->kids[0];
  if (kid->kind != RX_REF)
    return -1;
  const struct token_decl *t = spec_find_token(s, kid->text);
  return t ? (int)(t - s->tokens) : -1;
}

static int check_rx(struct rx_ctx *cx, struct rx *r)
{
  struct source *src = cx->spec->src;
  int rc = 0;
  switch (r->kind) {
  case RX_REF:
    for (size_t i = 0; i < cx->ntokens_visible; i++)
      if (!strcmp(cx->spec->tokens[i].name, r->text))
        return 0;
    diag_error(src, r->pos,
               spec_find_token(cx->spec, r->text) ? "token '%s' is used before its declaration"
                                                  : "unknown token '%s'",
               r->text);
    return -1;
  case RX_CAPTURE:
    if (!cx->cmd) {
      diag_error(src, r->pos, "captures belong in commands, not in tokens");
      return -1;
    }
    if (cx->repeat_depth) {
      diag_error(src, r->pos, "capture '%s' inside a repetition is not supported", r->text);
      return -1;
    }
    if (check_name(src, "field", r->text, r->pos) < 0)
      return -1;
    {
      int tok = capture_token(cx->spec, r);
      enum num_type num = tok >= 0 ? cx->spec->tokens[tok].num : NUM_NONE;
      if (add_field(cx, r->text, r->pos, num ? FIELD_NUM : FIELD_SPAN, num, tok) < 0)
        return -1;
    }
    break;
  case RX_BYTES:
  case RX_ARRAY:
  case RX_FIELDS:
  case RX_BODY:
    diag_error(src, r->pos, "a data block belongs at the top level of a command, after its first line");
    return -1;
  case RX_WORDS: {
    if (!cx->cmd || cx->repeat_depth) {
      diag_error(src, r->pos, "words() is a command's capture, outside repetitions");
      return -1;
    }
    const struct token_decl *t = spec_find_token(cx->spec, r->arg);
    if (!t || t - cx->spec->tokens >= (ptrdiff_t)cx->ntokens_visible) {
      diag_error(src, r->pos, "unknown token '%s'", r->arg);
      return -1;
    }
    if (check_name(src, "field", r->text, r->pos) < 0 ||
        add_field(cx, r->text, r->pos, FIELD_LIST, NUM_NONE, (int)(t - cx->spec->tokens)) < 0)
      return -1;
    break;
  }
  case RX_REPEAT: cx->repeat_depth++; break;
  default: break;
  }
  for (size_t i = 0; i < r->nkids; i++)
    rc |= check_rx(cx, r->kids[i]);
  if (r->kind == RX_REPEAT)
    cx->repeat_depth--;
  return rc;
}

/* `event`: the action answers a parse error (otherwise, on ...), where a text spec may refuse
 * too: its `refused` handler gets the status. */
static int check_action_at(struct spec *s, const struct action *a, bool event)
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

static int check_action(struct spec *s, const struct action *a)
{
  return check_action_at(s, a, false);
}

/* Reports a name declared twice among `n` entries of `stride` bytes whose name and pos are at
 * the given offsets (tokens, commands and replies share this). */
static int check_unique(struct source *src, const char *kind, const void *base, size_t n, size_t stride,
                        size_t name_off, size_t pos_off)
{
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    const char *a = *(char *const *)((const char *)base + i * stride + name_off);
    for (size_t j = 0; j < i; j++) {
      const char *b = *(char *const *)((const char *)base + j * stride + name_off);
      if (a && b && !strcmp(a, b)) {
        struct pos at = *(const struct pos *)((const char *)base + i * stride + pos_off);
        diag_error(src, at, "%s '%s' declared twice", kind, a);
        rc = -1;
        break;
      }
    }
  }
  return rc;
}

#define UNIQUE(src, kind, arr, n, type) \
  check_unique(src, kind, arr, n, sizeof(type), offsetof(type, name), offsetof(type, pos))

static int check_framing(struct spec *s)
{
  struct pos start = {1, 1};
  if (s->raw_name) {
    if (s->ncommands || s->ntokens || s->limit_line || s->otherwise.present || s->overlong.present) {
      diag_error(s->src, s->raw_pos,
                 "a raw protocol has no framing: tokens, commands, limits, otherwise and "
                 "on overlong do not apply");
      return -1;
    }
    return check_name(s->src, "raw handler", s->raw_name, s->raw_pos);
  }
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

static bool is_continuation(const struct rx *r)
{
  return r->kind == RX_BYTES || r->kind == RX_ARRAY || r->kind == RX_FIELDS || r->kind == RX_BODY;
}

static int hexdig(char c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* One byte of a class, at *p (an escape or a plain byte); advances *p. */
static int class_byte(const char **p)
{
  const char *s = *p;
  if (*s != '\\') {
    *p = s + 1;
    return (unsigned char)*s;
  }
  *p = s + 2;
  switch (s[1]) {
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  case 'x': *p = s + 4; return hexdig(s[2]) * 16 + hexdig(s[3]);
  default: return (unsigned char)s[1];
  }
}

/* The bytes a class `[...]` (as written; escapes validated by the lexer) stands for. */
void class_bitmap(const char *text, uint8_t out[32])
{
  const char *p = text + 1;
  bool neg = *p == '^';
  memset(out, 0, 32);
  if (neg)
    p++;
  while (*p && *p != ']') {
    int lo = class_byte(&p), hi = lo;
    if (*p == '-' && p[1] != ']' && p[1]) {
      p++;
      hi = class_byte(&p);
    }
    for (int ch = lo; ch <= hi && ch < 256; ch++)
      out[ch >> 3] |= (uint8_t)(1u << (ch & 7));
  }
  for (int i = 0; neg && i < 32; i++)
    out[i] = (uint8_t)~out[i];
}

const struct rx *rx_unwrap(const struct rx *r)
{
  while (r && (r->kind == RX_ALT || r->kind == RX_SEQ) && r->nkids == 1)
    r = r->kids[0];
  return r;
}

/* fields(token): the token must be one class repeated (`[...]+`), so that the generated scan can
 * test each byte with a table. */
static int fields_class(struct spec *s, const struct rx *r, uint8_t out[32])
{
  const struct token_decl *t = spec_find_token(s, r->arg);
  const struct rx *x = t ? rx_unwrap(t->rx) : NULL;
  if (!x || x->kind != RX_REPEAT || x->min != 1 || x->max >= 0 || x->kids[0]->kind != RX_CLASS) {
    diag_error(s->src, r->pos, t ? "fields() needs a token of the form [class]+" : "unknown token '%s'",
               r->arg);
    return -1;
  }
  class_bitmap(x->kids[0]->text, out);
  return 0;
}

static const struct field *find_field(const struct command_decl *c, const char *name, int *out_i)
{
  for (size_t i = 0; i < c->nfields; i++) {
    if (!strcmp(c->fields[i].name, name)) {
      *out_i = (int)i;
      return &c->fields[i];
    }
  }
  return NULL;
}

/* A step keeps its two string arguments back to back: the first's length is st.len. */
static uint8_t *join_lits(const struct rx *r)
{
  uint8_t *b = malloc(r->litlen[0] + r->litlen[1] + 1);
  if (!b) {
    perror("rwgen");
    exit(1);
  }
  memcpy(b, r->lit[0], r->litlen[0]);
  memcpy(b + r->litlen[0], r->lit[1], r->litlen[1]);
  return b;
}

static bool has_fields_step(const struct command_decl *c, int field)
{
  for (size_t k = 0; k < c->nsteps; k++)
    if (c->steps[k].kind == STEP_FIELDS && c->steps[k].field == field)
      return true;
  return false;
}

static void add_step(struct command_decl *c, struct step st)
{
  struct step *steps = realloc(c->steps, (c->nsteps + 1) * sizeof *steps);
  if (!steps) {
    perror("rwgen");
    exit(1);
  }
  c->steps = steps;
  c->steps[c->nsteps++] = st;
}

/* Moves what follows the first data block of a command out of its pattern and into steps:
 * data blocks, and the literal strings around them. */
static int split_continuation(struct spec *s, struct command_decl *c)
{
  struct rx *alt = c->rx;
  size_t first = SIZE_MAX;
  for (size_t a = 0; a < alt->nkids; a++) {
    struct rx *seq = alt->kids[a];
    for (size_t i = 0; i < seq->nkids; i++) {
      enum rx_kind k = seq->kids[i]->kind;
      if (k != RX_BYTES && k != RX_ARRAY && k != RX_FIELDS && k != RX_BODY)
        continue;
      if (alt->nkids > 1) {
        diag_error(s->src, seq->kids[i]->pos,
                   "a command with a data block cannot have alternatives "
                   "at its top level: group them in parentheses");
        return -1;
      }
      if (first == SIZE_MAX)
        first = i;
    }
  }
  if (first == SIZE_MAX)
    return 0;
  struct rx *seq = alt->kids[0];
  if (first == 0) {
    diag_error(s->src, seq->kids[0]->pos, "a data block must follow the line that gives its length");
    return -1;
  }
  for (size_t i = first; i < seq->nkids; i++) {
    struct rx *r = seq->kids[i];
    if (r->kind == RX_FIELDS || r->kind == RX_BODY) {
      struct step st = {.kind = r->kind == RX_FIELDS ? STEP_FIELDS : STEP_BODY};
      if (r->kind == RX_FIELDS && fields_class(s, r, st.name_class) < 0)
        return -1;
      if (r->kind == RX_BODY) {
        int fi = -1;
        const struct field *ff = find_field(c, r->arg, &fi);
        if (!ff || ff->kind != FIELD_LIST || !has_fields_step(c, fi)) {
          diag_error(s->src, r->pos, "body() needs a fields() list of this command, not '%s'", r->arg);
          return -1;
        }
        st.len_field = fi;
        st.bytes = join_lits(r);
        st.len = r->litlen[0];
        st.seplen = r->litlen[1];
      }
      struct rx_ctx cx = {.spec = s, .cmd = c};
      if (check_name(s->src, "field", r->text, r->pos) < 0 ||
          add_field(&cx, r->text, r->pos, FIELD_LIST, NUM_NONE, -1) < 0) {
        free(st.bytes);
        return -1;
      }
      st.field = (int)c->nfields - 1;
      add_step(c, st);
    } else if (r->kind == RX_ARRAY) {
      int cnt_i = -1;
      const struct field *cf = find_field(c, r->arg, &cnt_i);
      if (!cf || cf->kind != FIELD_NUM || cf->num == NUM_I64) {
        diag_error(s->src, r->pos, "the count of array '%s' must be an unsigned number field", r->text);
        return -1;
      }
      struct rx_ctx cx = {.spec = s, .cmd = c};
      if (check_name(s->src, "field", r->text, r->pos) < 0 ||
          add_field(&cx, r->text, r->pos, FIELD_LIST, NUM_NONE, -1) < 0)
        return -1;
      uint8_t *b = join_lits(r);
      if (!r->litlen[1] || r->litlen[1] > 4 || r->litlen[0] > 4) {
        diag_error(s->src, r->pos, "an array's prefix and separator are 0..4 and 1..4 bytes");
        free(b);
        return -1;
      }
      add_step(c, (struct step){.kind = STEP_ARRAY,
                                .field = (int)c->nfields - 1,
                                .len_field = cnt_i,
                                .bytes = b,
                                .len = r->litlen[0],
                                .seplen = r->litlen[1]});
    } else if (r->kind == RX_BYTES) {
      int len_i = -1;
      const struct field *lf = find_field(c, r->arg, &len_i);
      if (!lf || lf->kind != FIELD_NUM || lf->num == NUM_I64) {
        diag_error(s->src, r->pos,
                   lf ? "the length of '%s' must be an unsigned number field"
                      : "unknown length field '%s' (capture it earlier in the command)",
                   lf ? r->text : r->arg);
        return -1;
      }
      struct rx_ctx cx = {.spec = s, .cmd = c};
      if (check_name(s->src, "field", r->text, r->pos) < 0 ||
          add_field(&cx, r->text, r->pos, FIELD_BYTES, NUM_NONE, -1) < 0)
        return -1;
      add_step(c, (struct step){.kind = STEP_BYTES, .field = (int)c->nfields - 1, .len_field = len_i});
    } else if (r->kind == RX_STR && r->text[0] == '"') {
      struct token t = {.start = r->text, .len = strlen(r->text)};
      uint8_t *b = malloc(t.len);
      if (!b) {
        perror("rwgen");
        exit(1);
      }
      add_step(c, (struct step){.kind = STEP_LITERAL, .bytes = b, .len = lex_unescape(&t, b)});
    } else {
      diag_error(s->src, r->pos,
                 "after a data block only \"literal\" strings and more data blocks may follow");
      return -1;
    }
  }
  /* Detach the continuation from the pattern; it is freed with the command. */
  struct rx *rest = calloc(1, sizeof *rest);
  if (!rest) {
    perror("rwgen");
    exit(1);
  }
  rest->kind = RX_SEQ;
  rest->kids = malloc((seq->nkids - first) * sizeof *rest->kids);
  if (!rest->kids) {
    perror("rwgen");
    exit(1);
  }
  memcpy(rest->kids, seq->kids + first, (seq->nkids - first) * sizeof *rest->kids);
  rest->nkids = seq->nkids - first;
  seq->nkids = first;
  c->cont = rest;
  return 0;
}

/* Saved offsets and numbers: a continuation keeps its first line's fields in the parser. */
static void assign_slots(struct spec *s, struct command_decl *c)
{
  for (size_t i = 0; i < c->nfields; i++) {
    struct field *f = &c->fields[i];
    f->slot = f->kind == FIELD_NUM ? c->nnums++ : c->nspans++;
  }
  if (c->nsteps) {
    s->max_spans = c->nspans > s->max_spans ? c->nspans : s->max_spans;
    s->max_nums = c->nnums > s->max_nums ? c->nnums : s->max_nums;
  }
}

static int check_reply(struct spec *s, const struct reply_decl *r)
{
  int rc = check_name(s->src, "reply", r->name, r->pos);
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

static int check_dispatch(struct spec *s, const struct command_decl *c)
{
  if (!c->dispatch_field)
    return 0;
  int i;
  const struct field *f = find_field(c, c->dispatch_field, &i);
  if (!f || f->kind != FIELD_LIST) {
    diag_error(s->src, c->dispatch_pos, "dispatch needs a list field of '%s' (words() or array())", c->name);
    return -1;
  }
  if (!s->ntable) {
    diag_error(s->src, c->dispatch_pos, "dispatch needs a 'table { ... };'");
    return -1;
  }
  return 0;
}

/* The bytes a pattern can match, one bit each (case-insensitive strings: both cases). */
static void rx_bytes(const struct spec *s, const struct rx *r, uint8_t out[32], int depth)
{
  uint8_t cls[32];
  switch (r->kind) {
  case RX_STR:
    for (const char *q = r->text + 1; *q && q[1]; q++) {
      unsigned b = (unsigned char)*q;
      if (*q == '\\') /* an escape: its byte, or \xHH */
        b = q[1] == 'x'   ? (unsigned)strtoul((char[3]){q[2], q[3], 0}, NULL, 16)
            : q[1] == 'n' ? '\n'
            : q[1] == 'r' ? '\r'
            : q[1] == 't' ? '\t'
                          : (unsigned char)q[1],
        q += q[1] == 'x' ? 3 : 1;
      out[b / 8] |= (uint8_t)(1u << (b % 8));
      if (r->text[0] == '\'' && b < 128 && ((b | 0x20) >= 'a' && (b | 0x20) <= 'z'))
        out[(b ^ 0x20) / 8] |= (uint8_t)(1u << ((b ^ 0x20) % 8));
    }
    return;
  case RX_CLASS:
    class_bitmap(r->text, cls);
    for (int i = 0; i < 32; i++)
      out[i] |= cls[i];
    return;
  case RX_ANY: memset(out, 0xff, 32); return;
  case RX_REF: {
    const struct token_decl *t = spec_find_token(s, r->text);
    if (t && depth < 32)
      rx_bytes(s, t->rx, out, depth + 1);
    return;
  }
  default:
    for (size_t i = 0; i < r->nkids; i++)
      rx_bytes(s, r->kids[i], out, depth);
  }
}

/* A number is decimal text: a pattern that can match NUL, a blank or a line end cannot be one
 * (`number u32 len = [\x00-\xff]{4};` means a binary integer: that is `frame binary;`). A
 * pattern looser than digits but still one token (memcache's `arg`) is fine: the number's own
 * check refuses a field that is no number. */
static int check_number_pattern(struct spec *s, const struct token_decl *t)
{
  uint8_t b[32] = {0};
  rx_bytes(s, t->rx, b, 0);
  static const unsigned bad[] = {0x00, '\n', '\r', ' '};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (b[bad[i] / 8] & (1u << (bad[i] % 8))) {
      diag_error(s->src, t->rx->pos,
                 "number '%s' matches byte 0x%02x, which no decimal number holds "
                 "(a binary integer is a field of a 'frame binary;' spec, e.g. n:u32be)",
                 t->name, bad[i]);
      return -1;
    }
  }
  return 0;
}

/* `quiet FIELD`: a span of the first line, on a command whose spec action does not close (a
 * quiet frame still closes when the spec says so, but then there is nothing to keep quiet). */
static int check_quiet(struct spec *s, struct command_decl *c)
{
  c->quiet_field = -1;
  if (!c->quiet)
    return 0;
  int i;
  const struct field *f = find_field(c, c->quiet, &i);
  if (!f || f->kind != FIELD_SPAN) {
    diag_error(s->src, c->quiet_pos, "quiet needs a span field of '%s''s first line, not '%s'", c->name,
               c->quiet);
    return -1;
  }
  if (c->action.close) {
    diag_error(s->src, c->quiet_pos, "a command that closes cannot be quiet");
    return -1;
  }
  c->quiet_field = i;
  return 0;
}

static int check_table(struct spec *s)
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

/* Where field `name` is captured in r (true), for diagnostics. */
static bool capture_pos(const struct rx *r, const char *name, struct pos *out)
{
  if (!r)
    return false;
  bool names_field = r->kind != RX_STR && r->kind != RX_CLASS && r->kind != RX_REF && r->text;
  if (names_field && !strcmp(r->text, name)) {
    *out = r->pos;
    return true;
  }
  for (size_t i = 0; i < r->nkids; i++)
    if (capture_pos(r->kids[i], name, out))
      return true;
  return false;
}

static bool is_word_digits(const char *name, const char *word)
{
  size_t n = strlen(word);
  if (strncmp(name, word, n) || !name[n])
    return false;
  for (name += n; *name; name++)
    if (*name < '0' || *name > '9')
      return false;
  return true;
}

/* Names that would collide with what rwgen generates: the header's own tags beside each
 * command's struct P_NAME (enum P_cmd, union P_msg, struct P_handlers, struct P_parser); the
 * table's `unknown` handler; a reply writer's own names (rw_conn *c, iov, litN, numN) and the
 * runtime's (rw_...) and types (..._t), which a parameter would hide; and the parser's capture
 * tags, named COMMAND_FIELD, which two commands must not spell alike. */
/* `head CMD;`: CMD is a text command whose last step is a body, so that its head (first line
 * and fields) is whole when the body is awaited. */
static int check_head(struct spec *s)
{
  if (!s->head_name)
    return 0;
  const struct command_decl *c = NULL;
  for (size_t i = 0; i < s->ncommands && !c; i++)
    if (!strcmp(s->commands[i].name, s->head_name))
      c = &s->commands[i];
  if (!c) {
    diag_error(s->src, s->head_pos, "head names no command: '%s'", s->head_name);
    return -1;
  }
  if (s->binary || c->action.present || c->dispatch_field || !c->nsteps ||
      c->steps[c->nsteps - 1].kind != STEP_BODY) {
    diag_error(s->src, s->head_pos, "head needs a command with a handler whose last field is a body()");
    return -1;
  }
  return 0;
}

static int check_generated_names(struct spec *s)
{
  static const char *const taken[] = {"cmd", "msg", "handlers", "parser"};
  static const char unknown[] = "'unknown' is the handler rwgen generates for names not in the table";
  int rc = 0;
  for (size_t i = 0; i <= s->ncommands; i++) {
    const char *name = i < s->ncommands ? s->commands[i].name : s->raw_name;
    struct pos at = i < s->ncommands ? s->commands[i].pos : s->raw_pos;
    for (size_t k = 0; name && k < sizeof taken / sizeof taken[0]; k++) {
      if (!strcmp(name, taken[k])) {
        diag_error(s->src, at, "'%s' would name struct %s_%s, which rwgen generates for itself", name,
                   s->protocol, name);
        rc = -1;
      }
    }
    if (name && s->ntable && !strcmp(name, "unknown")) {
      diag_error(s->src, at, "%s", unknown);
      rc = -1;
    }
  }
  for (size_t i = 0; i < s->ntable; i++) {
    if (!strcmp(s->table[i].name, "unknown")) {
      diag_error(s->src, s->table[i].pos, "%s", unknown);
      rc = -1;
    }
  }
  for (size_t i = 0; i < s->nreplies; i++) {
    for (size_t k = 0; k < s->replies[i].nparams; k++) {
      const struct reply_param *p = &s->replies[i].params[k];
      size_t n = strlen(p->name);
      if (!strcmp(p->name, "c") || !strcmp(p->name, "iov") || is_word_digits(p->name, "lit") ||
          is_word_digits(p->name, "num") || !strncmp(p->name, "rw_", 3) ||
          (n > 2 && !strcmp(p->name + n - 2, "_t"))) {
        diag_error(s->src, p->pos,
                   "parameter name '%s' is taken by the reply writer rwgen generates "
                   "(c, iov, litN, numN, rw_..., ..._t)",
                   p->name);
        rc = -1;
      }
    }
  }
  for (size_t i = 0; i < s->ncommands; i++) {
    const struct command_decl *c = &s->commands[i];
    for (size_t f = 0; f < c->nfields; f++) {
      char tag[128];
      snprintf(tag, sizeof tag, "%s_%s", c->name, c->fields[f].name);
      for (size_t j = 0; j < i; j++) {
        const struct command_decl *d = &s->commands[j];
        for (size_t g = 0; g < d->nfields; g++) {
          char other[128];
          snprintf(other, sizeof other, "%s_%s", d->name, d->fields[g].name);
          struct pos at = c->pos;
          if (strcmp(tag, other))
            continue;
          if (!capture_pos(c->rx, c->fields[f].name, &at))
            capture_pos(c->cont, c->fields[f].name, &at);
          diag_error(s->src, at,
                     "field '%s' of command '%s' and field '%s' of command '%s' both "
                     "name the parser's capture %s: rename one",
                     c->fields[f].name, c->name, d->fields[g].name, d->name, tag);
          rc = -1;
        }
      }
    }
  }
  return rc;
}

int spec_check(struct spec *s)
{
  struct source *src = s->src;
  if (!s->protocol) {
    diag_error(src, (struct pos){1, 1}, "missing 'protocol NAME;'");
    return -1;
  }
  int rc = check_name(src, "protocol", s->protocol, s->protocol_pos);
  rc |= s->binary ? 0 : check_framing(s);
  rc |= UNIQUE(src, "token", s->tokens, s->ntokens, struct token_decl);
  rc |= UNIQUE(src, "command", s->commands, s->ncommands, struct command_decl);
  rc |= UNIQUE(src, "reply", s->replies, s->nreplies, struct reply_decl);
  for (size_t i = 0; i < s->ntokens; i++) {
    struct rx_ctx cx = {.spec = s, .ntokens_visible = i};
    rc |= check_name(src, "token", s->tokens[i].name, s->tokens[i].pos);
    rc |= check_rx(&cx, s->tokens[i].rx);
    if (s->tokens[i].num && check_number_pattern(s, &s->tokens[i]) < 0)
      rc = -1;
  }
  /* Replies are checked before the actions that name them. */
  for (size_t i = 0; i < s->ncommands; i++) {
    struct command_decl *c = &s->commands[i];
    struct rx_ctx cx = {.spec = s, .cmd = c, .ntokens_visible = s->ntokens};
    rc |= check_name(src, "command", c->name, c->pos);
    if (s->binary) { /* its frame is checked by binary_check, below */
      rc |= check_action(s, &c->action);
      continue;
    }
    /* Data blocks are taken out of the pattern first; what remains must be regular. */
    for (size_t a = 0; a < c->rx->nkids; a++)
      for (size_t k = 0; k < c->rx->kids[a]->nkids; k++)
        if (is_continuation(c->rx->kids[a]->kids[k]) && c->rx->nkids == 1)
          goto has_data;
    rc |= check_rx(&cx, c->rx);
    goto checked;
  has_data:
    for (size_t k = 0; k < c->rx->kids[0]->nkids && !is_continuation(c->rx->kids[0]->kids[k]); k++)
      rc |= check_rx(&cx, c->rx->kids[0]->kids[k]);
    if (!rc)
      rc |= split_continuation(s, c);
    for (size_t k = 0; !rc && c->action.present && k < c->nsteps; k++) {
      if (c->steps[k].kind != STEP_BYTES && c->steps[k].kind != STEP_LITERAL) {
        diag_error(src, c->action.pos,
                   "command '%s' is answered by the spec, so its data is skipped: "
                   "only data blocks and literals can be",
                   c->name);
        rc = -1;
      }
    }
    if (!rc && !s->limit_data) {
      diag_error(src, c->pos, "command '%s' has a data block: declare 'limit data N;'", c->name);
      rc = -1;
    }
    for (size_t k = 0; !rc && k < c->nsteps; k++) {
      if (c->steps[k].kind == STEP_ARRAY && !s->limit_items) {
        diag_error(src, c->pos, "command '%s' has an array: declare 'limit items N;'", c->name);
        rc = -1;
      }
      if (c->steps[k].kind == STEP_FIELDS && !s->limit_fields) {
        diag_error(src, c->pos, "command '%s' has fields: declare 'limit fields N;'", c->name);
        rc = -1;
      }
    }
  checked:
    rc |= check_action(s, &c->action);
    rc |= check_dispatch(s, c);
    if (!rc)
      rc |= check_quiet(s, c);
    if (!rc)
      assign_slots(s, c);
  }
  if (s->binary && !rc)
    rc |= binary_check(s);
  for (size_t i = 0; i < s->nreplies; i++)
    rc |= check_reply(s, &s->replies[i]);
  rc |= check_action_at(s, &s->otherwise, true);
  rc |= check_action_at(s, &s->overlong, true);
  rc |= check_action_at(s, &s->too_large, true);
  rc |= check_action_at(s, &s->bad_number, true);
  rc |= check_action_at(s, &s->bad_data, true);
  rc |= check_table(s);
  rc |= check_action_at(s, &s->fields_too_large, true);
  for (size_t i = 0; i < s->ntokens; i++)
    rc |= check_action_at(s, &s->tokens[i].overflow, true);
  rc |= check_generated_names(s);
  if (!rc)
    rc |= check_head(s);
  return rc ? -1 : 0;
}
