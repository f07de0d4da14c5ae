/* Diagnostics in the one format editors and CI understand: file:line:col: error: message,
 * followed by the offending line and a caret under the column. */
#include <stdarg.h>
#include <string.h>

#include "spec.h"

static void quote_line(const struct source *src, FILE *err, int line, int col)
{
  const char *p = src->text, *end = src->text + src->len;
  for (int l = 1; l < line && p < end; p++)
    if (*p == '\n')
      l++;
  const char *eol = memchr(p, '\n', (size_t)(end - p));
  if (!eol)
    eol = end;
  fprintf(err, "  %.*s\n  ", (int)(eol - p), p);
  for (int i = 1; i < col; i++)
    fputc(p + i - 1 < eol && p[i - 1] == '\t' ? '\t' : ' ', err);
  fputs("^\n", err);
}

void diag_error(struct source *src, struct pos at, const char *fmt, ...)
{
  FILE *err = src->err ? src->err : stderr;
  va_list ap;
  fprintf(err, "%s:%d:%d: error: ", src->path, at.line, at.col);
  va_start(ap, fmt);
  vfprintf(err, fmt, ap);
  va_end(ap);
  fputc('\n', err);
  quote_line(src, err, at.line, at.col);
  src->nerrors++;
}
