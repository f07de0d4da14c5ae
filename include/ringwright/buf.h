/* Spans: a view of bytes owned by someone else (usually a receive buffer). */
#ifndef RINGWRIGHT_BUF_H
#define RINGWRIGHT_BUF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Valid only during the callback it is handed to: the bytes belong to the runtime. */
typedef struct rw_span {
  const uint8_t *p;
  size_t len;
} rw_span;

/* Splits the next `sep`-separated item off the front of `*rest` into `*out` (skipping runs of
 * `sep`); returns 0, or -1 when nothing is left. For lists a spec captures as one span. */
int rw_span_next(rw_span *rest, uint8_t sep, rw_span *out);

#ifdef __cplusplus
}
#endif

#endif
