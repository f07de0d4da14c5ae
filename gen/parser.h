/* The spec parser's state and the token helpers that gen/parse.c shares with the modules whose
 * constructs have a syntax of their own (a binary frame's items). */
#ifndef RWGEN_PARSER_H
#define RWGEN_PARSER_H

#include "spec.h"

struct parser {
  struct lexer lx;
  struct token tok;
  struct spec *spec;
  int depth;
};

/* Allocation that cannot fail (rwgen exits): zeroed; `p` grown by one zeroed element. */
void *xcalloc(size_t n, size_t size);
void *xgrow(void *p, size_t n, size_t size);
char *tok_str(const struct token *t);
/* The next token into ps->tok: 0, or -1 after a lexical error. */
int next(struct parser *ps);
bool is_punct(const struct parser *ps, char c);
bool is_word(const struct parser *ps, const char *w);
/* Reports "expected WHAT, found ..." at the current token; returns -1. */
int expected(struct parser *ps, const char *what);
int expect_punct(struct parser *ps, char c);
int expect_ident(struct parser *ps, char **out_name, struct pos *out_pos);
/* An integer type of a binary frame: width in bytes and byte order; 0 if `name` is none. */
unsigned int_type(const char *name, size_t n, bool *out_le);

#endif
