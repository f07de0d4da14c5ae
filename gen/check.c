/* Semantic checks: everything the parser cannot see locally. Names become C identifiers in the
 * generated code, so they are held to a small safe alphabet; every reference must resolve; the
 * memory a connection may buffer must be bounded by a declared limit. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "construct.h"

static const char *const c_keywords[] = {
    "auto",     "break",  "case",   "char",     "const",    "continue", "default",  "do",
    "double",   "else",   "enum",   "extern",   "float",    "for",      "goto",     "if",
    "inline",   "int",    "long",   "register", "restrict", "return",   "short",    "signed",
    "sizeof",   "static", "struct", "switch",   "typedef",  "union",    "unsigned", "void",
    "volatile", "while",  "bool",   "true",     "false"};

int check_name(struct source *src, const char *kind, const char *name, struct pos at)
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
  case RX_STREAM:
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

static bool is_continuation(const struct rx *r)
{
  return part_of_rx(r->kind) != NULL;
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

const struct field *find_field(const struct command_decl *c, const char *name, int *out_i)
{
  for (size_t i = 0; i < c->nfields; i++) {
    if (!strcmp(c->fields[i].name, name)) {
      *out_i = (int)i;
      return &c->fields[i];
    }
  }
  return NULL;
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
      if (!is_continuation(seq->kids[i]))
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
    const struct rx *r = seq->kids[i];
    const struct part_ops *part =
        r->kind == RX_STR && r->text[0] == '"' ? &part_literal : part_of_rx(r->kind);
    if (!part) {
      diag_error(s->src, r->pos,
                 "after a data block only \"literal\" strings and more data blocks may follow");
      return -1;
    }
    if (part->check(s, c, r) < 0)
      return -1;
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
  if (!s->binary) /* a binary frame is checked after its command */
    rc |= spec_frame(s)->check(s);
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
    if (s->binary || s->resp2) { /* a frame with a syntax of its own checks it */
      rc |= check_action_at(s, &c->action, false);
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
    bool streams = false; /* (a streamed body is never held whole) */
    for (size_t k = 0; k < c->nsteps; k++)
      streams |= c->steps[k].kind == STEP_STREAM;
    if (!rc && !s->limit_data && !streams) {
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
    rc |= check_action_at(s, &c->action, false);
    rc |= check_dispatch(s, c);
    if (!rc)
      rc |= check_quiet(s, c);
    if (!rc)
      assign_slots(s, c);
  }
  if (s->binary && !rc)
    rc |= frame_binary.check(s);
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
  if (!rc)
    rc |= check_stream_spec(s);
  return rc ? -1 : 0;
}
