/* The emitters' output: an indentation-aware writer. Text goes through w_printf/w_puts; every
 * line it starts is indented by the current depth (two spaces a level), so a construct emits
 * its block at depth 0 of its own and the caller decides where the block sits. Empty lines stay
 * empty. Preprocessor lines and re2c rule bodies that must start in column 0 use w_raw. */
#ifndef RWGEN_WRITER_H
#define RWGEN_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct writer {
  FILE *out;
  int depth;
  bool bol; /* at the beginning of a line: the next byte gets the indentation first */
};

void w_init(struct writer *w, FILE *out);
/* Writes formatted text, indenting each line it begins. */
void w_printf(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void w_puts(struct writer *w, const char *s);
void w_putc(struct writer *w, char c);
/* Writes text as it is, without indentation (labels, preprocessor lines). */
void w_raw(struct writer *w, const char *s);
/* w_printf of a line that opens a block (it should end in '{' or ':'), then one level deeper. */
void w_open(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One level shallower, then w_printf of the line that closes the block. */
void w_close(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void w_indent(struct writer *w);
void w_dedent(struct writer *w);
/* n levels deeper (n < 0: shallower): where a block is written inside hand-indented text. */
void w_shift(struct writer *w, int n);
/* `n` bytes as a C string literal, quotes included. */
void w_cbytes(struct writer *w, const uint8_t *b, size_t n);
/* `s` in upper case (enum and macro names). */
void w_upper(struct writer *w, const char *s);
/* 0, or -EIO when the stream failed. */
int w_error(const struct writer *w);

#endif
