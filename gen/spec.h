/* The generator's model of a protocol spec: tokens from the lexer, the syntax tree the parser
 * builds, and the entry points of each pass (lex -> parse -> check -> emit). */
#ifndef RWGEN_SPEC_H
#define RWGEN_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A position in the spec source; line and col count from 1, col in bytes. */
struct pos {
  int line, col;
};

/* The source being compiled: diagnostics quote its lines. */
struct source {
  const char *path;
  const char *stem; /* file name without directory and .rw: names the outputs */
  const char *text;
  size_t len;
  FILE *err; /* where diagnostics go; NULL: stderr */
  int nerrors;
};

void diag_error(struct source *src, struct pos at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum tok_kind {
  T_EOF,
  T_IDENT,
  T_NUMBER, /* digits with an optional size suffix: 64KiB, 1MiB, 100 */
  T_STRING, /* "..." case-sensitive literal */
  T_ISTRING, /* '...' case-insensitive literal */
  T_CLASS,   /* [...] byte class */
  T_ARROW,   /* -> */
  T_PUNCT,   /* one of ; = ( ) | * + ? { } , : . */
};

struct token {
  enum tok_kind kind;
  struct pos pos;
  const char *start; /* into source text */
  size_t len;
  uint64_t value; /* T_NUMBER: the value with its suffix applied */
};

struct lexer {
  struct source *src;
  size_t off;
  struct pos pos;
};

void lex_init(struct lexer *lx, struct source *src);
/* Returns 0 and the next token, or -1 after reporting a lexical error. */
int lex_next(struct lexer *lx, struct token *out_tok);

/* Decodes the escapes of a T_STRING/T_ISTRING token into bytes; returns the length. `out` must
 * hold tok->len bytes. Escapes were validated by the lexer. */
size_t lex_unescape(const struct token *tok, uint8_t *out);

/* Regular expressions (re2c syntax, validated and re-emitted). */
enum rx_kind { RX_STR, RX_CLASS, RX_ANY, RX_REF, RX_ALT, RX_SEQ, RX_REPEAT, RX_CAPTURE };

struct rx {
  enum rx_kind kind;
  struct pos pos;
  char *text; /* STR/CLASS: as written; REF: token name; CAPTURE: field name */
  struct rx **kids;
  size_t nkids;
  int min, max; /* REPEAT: max < 0 means unbounded */
};

struct token_decl {
  char *name;
  struct pos pos;
  struct rx *rx;
};

struct reply_decl {
  char *name;
  struct pos pos;
  uint8_t *bytes;
  size_t len;
};

/* What the spec itself does for a message: write a reply, then maybe close. */
struct action {
  bool present;
  struct pos pos;
  char *reply_name;
  struct pos reply_pos;
  bool close;
};

struct command_decl {
  char *name;
  struct pos pos;
  struct rx *rx;
  struct action action; /* when present the command needs no handler */
  char **fields;        /* capture names, in order of appearance */
  size_t nfields;
};

struct spec {
  struct source *src;
  char *protocol;
  struct pos protocol_pos;
  uint64_t limit_line; /* 0: not declared */
  struct pos limit_pos;
  char *raw_name; /* `raw NAME;`: unframed protocol, every chunk goes to NAME */
  struct pos raw_pos;
  struct token_decl *tokens;
  size_t ntokens;
  struct command_decl *commands;
  size_t ncommands;
  struct reply_decl *replies;
  size_t nreplies;
  struct action otherwise; /* a complete line no command matched */
  struct action overlong;  /* a frame past `limit line` */
};

/* Parses the whole source; returns 0, or -1 with diagnostics printed (src->nerrors > 0). */
int spec_parse(struct source *src, struct spec *out_spec);
/* Semantic checks (names, references, captures, limits); 0 or -1 with diagnostics. */
int spec_check(struct spec *spec);
void spec_free(struct spec *spec);

/* Emitters: the public header and the re2c input of the generated protocol; 0 or -errno. */
int emit_header(const struct spec *spec, FILE *out);
int emit_re(const struct spec *spec, FILE *out);

const struct token_decl *spec_find_token(const struct spec *spec, const char *name);
const struct reply_decl *spec_find_reply(const struct spec *spec, const char *name);

#endif
