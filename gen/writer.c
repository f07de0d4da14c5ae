/* The indentation-aware writer of gen/writer.h. */
#include "writer.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

void w_init(struct writer *w, FILE *out)
{
  *w = (struct writer){.out = out, .bol = true};
}

static void put_indented(struct writer *w, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (w->bol && s[i] != '\n')
      for (int d = 0; d < w->depth; d++)
        fputs("  ", w->out);
    fputc(s[i], w->out);
    w->bol = s[i] == '\n';
  }
}

static void vwrite(struct writer *w, const char *fmt, va_list ap)
{
  char small[512];
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n < 0) {
    va_end(again);
    return;
  }
  if ((size_t)n < sizeof small) {
    put_indented(w, small, (size_t)n);
    va_end(again);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    perror("rwgen");
    exit(1);
  }
  vsnprintf(big, (size_t)n + 1, fmt, again);
  va_end(again);
  put_indented(w, big, (size_t)n);
  free(big);
}

void w_printf(struct writer *w, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vwrite(w, fmt, ap);
  va_end(ap);
}

void w_puts(struct writer *w, const char *s)
{
  size_t n = 0;
  while (s[n])
    n++;
  put_indented(w, s, n);
}

void w_putc(struct writer *w, char c)
{
  put_indented(w, &c, 1);
}

void w_raw(struct writer *w, const char *s)
{
  fputs(s, w->out);
  for (; *s; s++)
    w->bol = *s == '\n';
}

void w_indent(struct writer *w)
{
  w->depth++;
}

void w_dedent(struct writer *w)
{
  if (w->depth > 0)
    w->depth--;
}

void w_shift(struct writer *w, int n)
{
  w->depth = w->depth + n < 0 ? 0 : w->depth + n;
}

void w_open(struct writer *w, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vwrite(w, fmt, ap);
  va_end(ap);
  w->depth++;
}

void w_close(struct writer *w, const char *fmt, ...)
{
  w_dedent(w);
  va_list ap;
  va_start(ap, fmt);
  vwrite(w, fmt, ap);
  va_end(ap);
}

void w_cbytes(struct writer *w, const uint8_t *b, size_t n)
{
  w_putc(w, '"');
  for (size_t i = 0; i < n; i++) {
    if (b[i] == '"' || b[i] == '\\')
      w_printf(w, "\\%c", b[i]);
    else if (b[i] == '\r' || b[i] == '\n' || b[i] == '\t')
      w_printf(w, "\\%c", b[i] == '\r' ? 'r' : b[i] == '\n' ? 'n' : 't');
    else if (b[i] >= 0x20 && b[i] < 0x7f)
      w_putc(w, (char)b[i]);
    else
      w_printf(w, "\\%03o", b[i]);
  }
  w_putc(w, '"');
}

void w_upper(struct writer *w, const char *s)
{
  for (; *s; s++)
    w_putc(w, (char)toupper((unsigned char)*s));
}

int w_error(const struct writer *w)
{
  return ferror(w->out) ? -EIO : 0;
}
