/* A "literal" after a data block: bytes the frame must hold there (memcache's \r\n after the
 * value), else bad_data. */
#include <stdlib.h>
#include <string.h>

#include "construct.h"

static int literal_check(struct spec *s, struct command_decl *c, const struct rx *r)
{
  (void)s;
  struct token t = {.start = r->text, .len = strlen(r->text)};
  uint8_t *b = malloc(t.len);
  if (!b) {
    perror("rwgen");
    exit(1);
  }
  add_step(c, (struct step){.kind = STEP_LITERAL, .bytes = b, .len = lex_unescape(&t, b)});
  return 0;
}

static void literal_step(const struct spec *s, const struct command_decl *c, const struct step *st,
                         struct writer *w)
{
  (void)s;
  w_puts(w, "static const uint8_t lit[] = ");
  w_cbytes(w, st->bytes, st->len);
  w_puts(w, ";\n");
  w_open(w, "if (len - p->pos < %zu)\n", st->len);
  w_puts(w, "goto more;\n");
  w_dedent(w);
  w_open(w, "if (memcmp(buf + p->pos, lit, %zu) != 0) {\n", st->len);
  w_printf(w, "*out_used = p->pos + %zu;\n", st->len);
  w_puts(w, "p->cmd = -1;\n");
  emit_cont_status(c, "RW_PARSE_BAD_DATA", w);
  w_close(w, "}\n");
  w_printf(w, "p->pos += %zu;\n", st->len);
}

static unsigned long long literal_max(const struct spec *s, const struct step *st)
{
  (void)s;
  return st->len;
}

/* The C spelling of the bytes, with its quotes and backslashes escaped for dot. */
static void literal_dot(const struct command_decl *c, const struct step *st, struct writer *w)
{
  (void)c;
  char *lit;
  size_t litlen;
  FILE *m = open_memstream(&lit, &litlen);
  if (!m) {
    perror("rwgen");
    exit(1);
  }
  struct writer mw;
  w_init(&mw, m);
  w_cbytes(&mw, st->bytes, st->len);
  fclose(m);
  w_puts(w, "literal ");
  for (size_t j = 0; j < litlen; j++) {
    if (lit[j] == '"' || lit[j] == '\\')
      w_putc(w, '\\');
    w_putc(w, lit[j]);
  }
  free(lit);
}

const struct part_ops part_literal = {
    .keyword = NULL, /* a "string" of the pattern, after a data block */
    .rx = RX_STR,
    .step = STEP_LITERAL,
    .needs = 0,
    .skippable = true,
    .check = literal_check,
    .emit_step = literal_step,
    .max_len = literal_max,
    .dot_label = literal_dot,
};
