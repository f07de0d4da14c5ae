/* The spec lexer: turns source text into tokens with positions. Strings and classes keep their
 * re2c spelling (they are re-emitted as written), so escapes are validated here, where a
 * position can still be reported, rather than left for re2c to reject. */
#include <ctype.h>
#include <string.h>

#include "spec.h"

void lex_init(struct lexer *lx, struct source *src)
{
  lx->src = src;
  lx->off = 0;
  lx->pos = (struct pos){1, 1};
}

static int peek(const struct lexer *lx, size_t ahead)
{
  size_t i = lx->off + ahead;
  return i < lx->src->len ? (unsigned char)lx->src->text[i] : -1;
}

static void advance(struct lexer *lx)
{
  if (lx->src->text[lx->off++] == '\n') {
    lx->pos.line++;
    lx->pos.col = 1;
  } else {
    lx->pos.col++;
  }
}

static void skip_blanks_and_comments(struct lexer *lx)
{
  for (;;) {
    int c = peek(lx, 0);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      advance(lx);
    } else if (c == '#') {
      while (peek(lx, 0) >= 0 && peek(lx, 0) != '\n')
        advance(lx);
    } else {
      return;
    }
  }
}

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Validates one escape at the cursor (just after the backslash). */
static int lex_escape(struct lexer *lx, struct pos at)
{
  int c = peek(lx, 0);
  if (c < 0 || !strchr("nrt\\\"'x]-^", c)) {
    diag_error(lx->src, at, "unknown escape '\\%c' (use \\n \\r \\t \\\\ \\\" \\' \\xHH)", c < 0 ? ' ' : c);
    return -1;
  }
  advance(lx);
  if (c == 'x') {
    if (hexval(peek(lx, 0)) < 0 || hexval(peek(lx, 1)) < 0) {
      diag_error(lx->src, at, "\\x needs two hex digits");
      return -1;
    }
    advance(lx);
    advance(lx);
  }
  return 0;
}

/* Scans a quoted literal or a class up to its closing delimiter. */
static int lex_delimited(struct lexer *lx, int close, const char *what, struct token *t)
{
  advance(lx);
  for (;;) {
    int c = peek(lx, 0);
    if (c < 0 || c == '\n') {
      diag_error(lx->src, t->pos, "unterminated %s", what);
      return -1;
    }
    struct pos at = lx->pos;
    advance(lx);
    if (c == close)
      break;
    if (c == '\\' && lex_escape(lx, at) < 0)
      return -1;
  }
  t->len = (size_t)(lx->src->text + lx->off - t->start);
  if (t->len == 2 && close != ']') {
    diag_error(lx->src, t->pos, "empty %s", what);
    return -1;
  }
  return 0;
}

static const struct {
  const char *name;
  uint64_t mult;
} suffixes[] = {{"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024ULL * 1024 * 1024}};

/* 0x followed by hex digits: a byte or an opcode in binary specs. */
static int lex_hex(struct lexer *lx, struct token *t)
{
  uint64_t v = 0;
  advance(lx);
  advance(lx);
  if (!isxdigit(peek(lx, 0))) {
    diag_error(lx->src, t->pos, "expected hex digits after 0x");
    return -1;
  }
  while (isxdigit(peek(lx, 0))) {
    if (v >> 60) {
      diag_error(lx->src, t->pos, "number too large");
      return -1;
    }
    v = v * 16 + (uint64_t)hexval(peek(lx, 0));
    advance(lx);
  }
  t->kind = T_NUMBER;
  t->value = v;
  t->len = (size_t)(lx->src->text + lx->off - t->start);
  return 0;
}

static int lex_number(struct lexer *lx, struct token *t)
{
  uint64_t v = 0;
  if (peek(lx, 0) == '0' && (peek(lx, 1) == 'x' || peek(lx, 1) == 'X'))
    return lex_hex(lx, t);
  while (isdigit(peek(lx, 0))) {
    unsigned d = (unsigned)(peek(lx, 0) - '0');
    if (v > (UINT64_MAX - d) / 10) {
      diag_error(lx->src, t->pos, "number too large");
      return -1;
    }
    v = v * 10 + d;
    advance(lx);
  }
  const char *sfx = lx->src->text + lx->off;
  size_t n = 0;
  while (isalpha(peek(lx, n)))
    n++;
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    if (strlen(suffixes[i].name) == n && memcmp(sfx, suffixes[i].name, n) == 0) {
      if (v > UINT64_MAX / suffixes[i].mult) {
        diag_error(lx->src, t->pos, "number too large");
        return -1;
      }
      t->value = v * suffixes[i].mult;
      while (n--)
        advance(lx);
      t->kind = T_NUMBER;
      t->len = (size_t)(lx->src->text + lx->off - t->start);
      return 0;
    }
  }
  diag_error(lx->src, lx->pos, "unknown size suffix '%.*s' (use B, KiB, MiB or GiB)", (int)n, sfx);
  return -1;
}

int lex_next(struct lexer *lx, struct token *t)
{
  skip_blanks_and_comments(lx);
  memset(t, 0, sizeof *t);
  t->pos = lx->pos;
  t->start = lx->src->text + lx->off;
  int c = peek(lx, 0);
  if (c < 0) {
    t->kind = T_EOF;
    return 0;
  }
  if (isalpha(c) || c == '_') {
    while (isalnum(peek(lx, 0)) || peek(lx, 0) == '_')
      advance(lx);
    t->kind = T_IDENT;
    t->len = (size_t)(lx->src->text + lx->off - t->start);
    return 0;
  }
  if (isdigit(c))
    return lex_number(lx, t);
  if (c == '"') {
    t->kind = T_STRING;
    return lex_delimited(lx, '"', "string", t);
  }
  if (c == '\'') {
    t->kind = T_ISTRING;
    return lex_delimited(lx, '\'', "string", t);
  }
  if (c == '[') {
    t->kind = T_CLASS;
    return lex_delimited(lx, ']', "character class", t);
  }
  if (c == '-' && peek(lx, 1) == '>') {
    advance(lx);
    advance(lx);
    t->kind = T_ARROW;
    t->len = 2;
    return 0;
  }
  if (strchr(";=()|*+?{},:.-", c)) { /* '-' alone: a difference in a binary length */
    advance(lx);
    t->kind = T_PUNCT;
    t->len = 1;
    return 0;
  }
  diag_error(lx->src, t->pos, isprint(c) ? "unexpected character '%c'" : "unexpected byte 0x%02x", c);
  advance(lx);
  return -1;
}

size_t lex_unescape(const struct token *tok, uint8_t *out)
{
  size_t n = 0;
  for (size_t i = 1; i + 1 < tok->len; i++) {
    char c = tok->start[i];
    if (c != '\\') {
      out[n++] = (uint8_t)c;
      continue;
    }
    c = tok->start[++i];
    switch (c) {
    case 'n': out[n++] = '\n'; break;
    case 'r': out[n++] = '\r'; break;
    case 't': out[n++] = '\t'; break;
    case 'x':
      out[n++] = (uint8_t)(hexval(tok->start[i + 1]) * 16 + hexval(tok->start[i + 2]));
      i += 2;
      break;
    default: out[n++] = (uint8_t)c; break;
    }
  }
  return n;
}
