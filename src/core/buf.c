/* Spans: splitting a captured list of items. */
#include <string.h>

#include <ringwright/buf.h>

int rw_span_next(rw_span *rest, uint8_t sep, rw_span *out)
{
  const uint8_t *p = rest->p, *end = rest->p + rest->len;
  while (p < end && *p == sep)
    p++;
  if (p == end) {
    *rest = (rw_span){end, 0};
    return -1;
  }
  const uint8_t *q = memchr(p, sep, (size_t)(end - p));
  if (!q)
    q = end;
  *out = (rw_span){p, (size_t)(q - p)};
  *rest = (rw_span){q, (size_t)(end - q)};
  return 0;
}
