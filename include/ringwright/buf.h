/* Spans: a view of bytes owned by someone else (usually a receive buffer). */
#ifndef RINGWRIGHT_BUF_H
#define RINGWRIGHT_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Valid only during the callback it is handed to: the bytes belong to the runtime. */
typedef struct rw_span {
  const uint8_t *p;
  size_t len;
} rw_span;

#endif
