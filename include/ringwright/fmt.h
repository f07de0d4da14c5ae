/* Decimal text for generated reply writers and handlers: no locale, no allocation. */
#ifndef RINGWRIGHT_FMT_H
#define RINGWRIGHT_FMT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Decimal text of `v` into `out` (at least 21 bytes), no terminator; returns the length. */
size_t rw_fmt_u64(char *out, uint64_t v);
size_t rw_fmt_i64(char *out, int64_t v);

#ifdef __cplusplus
}
#endif

#endif
