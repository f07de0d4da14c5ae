/* Semantic checks: everything the parser cannot see locally. Names become C identifiers in the
 * generated code, so they are held to a small safe alphabet; every reference must resolve; the
 * memory a connection may buffer must be bounded by a declared limit. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#define LIMIT_LINE_MIN 16
#define LIMIT_LINE_MAX (64ULL * 1024 * 1024)

static const char *const c_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "bool", "true", "false"};

static int check_name(struct source *src, const char *kind, const char *name, struct pos at)
{
  size_t n = strlen(name);
  bool ok = n > 0 && n <= 48 && name[0] >= 'a' && name[0] <= 'z' && !strstr(name, "__") &&
            name[n - 1] != '_';
  for (size_t i = 0; ok && i < n; i++)
    ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
  if (!ok) {
    diag_error(src, at, "%s name '%s' must be lowercase letters, digits and single '_', "
                        "start with a letter and be at most 48 bytes", kind, name);
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

static int add_field(struct rx_ctx *cx, struct rx *r)
{
  struct command_decl *c = cx->cmd;
  for (size_t i = 0; i < c->nfields; i++) {
    if (!strcmp(c->fields[i], r->text)) {
      diag_error(cx->spec->src, r->pos, "field '%s' captured twice in command '%s'", r->text,
                 c->name);
      return -1;
    }
  }
  char **f = realloc(c->fields, (c->nfields + 1) * sizeof *f);
  char *name = strdup(r->text);
  if (!f || !name) {
    perror("rwgen");
    exit(1);
  }
  c->fields = f;
  c->fields[c->nfields++] = name;
  return 0;
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
    if (check_name(src, "field", r->text, r->pos) < 0 || add_field(cx, r) < 0)
      return -1;
    break;
  case RX_REPEAT:
    cx->repeat_depth++;
    break;
  default:
    break;
  }
  for (size_t i = 0; i < r->nkids; i++)
    rc |= check_rx(cx, r->kids[i]);
  if (r->kind == RX_REPEAT)
    cx->repeat_depth--;
  return rc;
}

static int check_action(struct spec *s, const struct action *a)
{
  if (a->present && a->reply_name && !spec_find_reply(s, a->reply_name)) {
    diag_error(s->src, a->reply_pos, "unknown reply '%s'", a->reply_name);
    return -1;
  }
  return 0;
}

/* Reports a name declared twice among `n` entries of `stride` bytes whose name and pos are at
 * the given offsets (tokens, commands and replies share this). */
static int check_unique(struct source *src, const char *kind, const void *base, size_t n,
                        size_t stride, size_t name_off, size_t pos_off)
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

#define UNIQUE(src, kind, arr, n, type)                                                          \
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
    diag_error(s->src, s->limit_pos, "limit line must be between %d bytes and 64MiB",
               LIMIT_LINE_MIN);
    return -1;
  }
  return 0;
}

int spec_check(struct spec *s)
{
  struct source *src = s->src;
  if (!s->protocol) {
    diag_error(src, (struct pos){1, 1}, "missing 'protocol NAME;'");
    return -1;
  }
  int rc = check_name(src, "protocol", s->protocol, s->protocol_pos);
  rc |= check_framing(s);
  rc |= UNIQUE(src, "token", s->tokens, s->ntokens, struct token_decl);
  rc |= UNIQUE(src, "command", s->commands, s->ncommands, struct command_decl);
  rc |= UNIQUE(src, "reply", s->replies, s->nreplies, struct reply_decl);
  for (size_t i = 0; i < s->ntokens; i++) {
    struct rx_ctx cx = {.spec = s, .ntokens_visible = i};
    rc |= check_name(src, "token", s->tokens[i].name, s->tokens[i].pos);
    rc |= check_rx(&cx, s->tokens[i].rx);
  }
  for (size_t i = 0; i < s->ncommands; i++) {
    struct command_decl *c = &s->commands[i];
    struct rx_ctx cx = {.spec = s, .cmd = c, .ntokens_visible = s->ntokens};
    rc |= check_name(src, "command", c->name, c->pos);
    rc |= check_rx(&cx, c->rx);
    rc |= check_action(s, &c->action);
  }
  for (size_t i = 0; i < s->nreplies; i++)
    rc |= check_name(src, "reply", s->replies[i].name, s->replies[i].pos);
  rc |= check_action(s, &s->otherwise);
  rc |= check_action(s, &s->overlong);
  return rc ? -1 : 0;
}
