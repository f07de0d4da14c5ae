/* The scanners generated parsers call: decimal numbers parsed where they lie, the run of a
 * word's bytes, field sections ("name: value" lines up to an empty line) and chunked bodies.
 * They are runtime code, compiled once, so that a generated file holds only its own machine.
 * Applications rarely call them directly; their contracts are those a generated parser needs. */
#ifndef RINGWRIGHT_SCAN_H
#define RINGWRIGHT_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Numbers and words are read on every message: inline, because a call costs the fast path
 * more than the work (measured with bench/parse). */

/* p[0..e) as decimal digits, at most `max`: 0 and the value, or -1 (empty, a non-digit, over).
 * rw_parse_i64 allows one '-' first. */
static inline int rw_parse_u64(const uint8_t *p, const uint8_t *e, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  if (p == e)
    return -1;
  for (; p < e; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (d > 9 || v > (max - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static inline int rw_parse_u32(const uint8_t *p, const uint8_t *e, uint32_t *out)
{
  uint64_t v;
  if (rw_parse_u64(p, e, UINT32_MAX, &v) < 0)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

static inline int rw_parse_i64(const uint8_t *p, const uint8_t *e, int64_t *out)
{
  bool neg = p < e && *p == '-';
  uint64_t v;
  if (rw_parse_u64(p + neg, e, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &v) < 0)
    return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* The first byte at or after q (before end) that is a control byte, a space or DEL; end if
 * none. */
static inline const uint8_t *rw_scan_word(const uint8_t *q, const uint8_t *end)
{
#ifdef __SSE2__
  const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
  for (; end - q >= 16; q += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
    __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, sp), v), _mm_cmpeq_epi8(v, del));
    unsigned m = (unsigned)_mm_movemask_epi8(stop);
    if (m)
      return q + __builtin_ctz(m);
  }
#endif
  while (q<end && * q> 0x20 && *q != 0x7f)
    q++;
  return q;
}

/* A field name a scan notes on the way (a body's length and coding fields): lowercase. */
typedef struct rw_field_note {
  const char *name;
  size_t len;
} rw_field_note;

/* Where a field section or chunked body scan stands between calls; offsets from the frame's
 * start, so the frame may move. Zeroed by the caller before a section (rw_scan_fields_start). */
typedef struct rw_fields_scan {
  size_t scan;  /* where the byte scan stopped */
  size_t start; /* the section's first byte */
  size_t end;   /* done: where the empty line begins */
  size_t colon; /* the current line's colon once its name is read; 0 before */
  uint32_t count;
  uint32_t note_n[2];      /* how many times each noted field came */
  uint32_t note_off[2][2]; /* the first one's value */
  int c_state;             /* chunked: 0 size line, 1 data, 2 trailers */
  uint64_t c_len, b_total; /* chunked: the current chunk's length, the data's sum */
  uint32_t b_start;        /* chunked: the body's first byte */
} rw_fields_scan;

/* Starts a section at `pos`. */
void rw_scan_fields_start(rw_fields_scan *f, size_t pos);

/* Scans "name: value\r\n" lines from *pos up to the empty line: 1 when done (f->end before the
 * empty line, *pos after it), 0 for more bytes, or the error status (RW_PARSE_BAD_DATA,
 * RW_PARSE_FIELDS_TOO_LARGE). One pass over each byte however the input was split. A name
 * holds bytes whose cls[] entry is set; a blank before the colon, a folded line, a bare \n or a
 * control byte in a value is malformed. `note`: two names whose first value is noted, or NULL. */
int rw_scan_fields(rw_fields_scan *f, size_t *pos, const uint8_t *buf, size_t len, uint64_t limit,
                   const uint8_t cls[256], const rw_field_note *note);

/* Scans a chunked body that began at body_start from *pos: size lines (hex, optional ;extensions), data, CRLF, up to size
 * 0 and the trailer fields. Each chunk's data is counted in *n and, for the first
 * `nitems` of them, stored in items as offsets. 1 when done, 0 for more bytes, or the error
 * status. */
int rw_scan_chunks(rw_fields_scan *f, size_t *pos, size_t body_start, const uint8_t *buf, size_t len,
                   uint64_t limit_data, uint64_t limit_fields, const uint8_t cls[256], uint32_t *n,
                   uint32_t (*items)[2], uint32_t nitems);

/* A chunk's size line ("hex[;ext]\r\n") at *pos, searched from f->scan on (set it to *pos
 * first): 1 with the size in f->c_len and *pos after the line, 0 for more bytes, or
 * RW_PARSE_BAD_DATA. */
int rw_scan_chunk_size(rw_fields_scan *f, size_t *pos, const uint8_t *buf, size_t len);

/* A noted field's value (offsets from buf) without its surrounding blanks. */
rw_span rw_scan_trim(const uint8_t *buf, const uint32_t off[2]);
/* Whether v is `lower` in any case. */
bool rw_span_is_ci(rw_span v, const char *lower);

#ifdef __cplusplus
}
#endif

#endif
