/* The scanners of include/ringwright/scan.h: what every generated parser of a text protocol
 * shares, compiled once instead of pasted into each generated file. */
#include <ringwright/proto.h>
#include <ringwright/scan.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

static bool same_ci(const uint8_t *a, const char *lower, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if ((a[i] >= 'A' && a[i] <= 'Z' ? a[i] | 0x20 : a[i]) != (uint8_t)lower[i])
      return false;
  return true;
}

/* Where a field value ends: the first byte at or after i that no value may hold (a control
 * byte other than HTAB, or DEL), which on a good line is the CR before its LF; len if none.
 * Sixteen bytes at a time with SSE2, else eight with a word test that may flag a good word
 * (then checked byte by byte) but never misses a bad one. */
static size_t value_end(const uint8_t *buf, size_t i, size_t len)
{
#ifdef __SSE2__
  const __m128i ctl = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f), tab = _mm_set1_epi8('\t');
  for (; i + 16 <= len; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
    __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v); /* v <= 0x1f */
    __m128i bad = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), low), _mm_cmpeq_epi8(v, del));
    unsigned m = (unsigned)_mm_movemask_epi8(bad);
    if (m)
      return i + (size_t)__builtin_ctz(m);
  }
#else
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  for (; i + 8 <= len; i += 8) {
    uint64_t x, y;
    memcpy(&x, buf + i, 8);
    y = x ^ (ones * 0x7f);
    if ((((x - ones * 0x20) & ~x) | ((y - ones) & ~y)) & highs)
      break;
  }
#endif
  for (; i < len; i++)
    if ((buf[i] < 0x20 && buf[i] != '\t') || buf[i] == 0x7f)
      return i;
  return len;
}

rw_span rw_scan_trim(const uint8_t *buf, const uint32_t off[2])
{
  const uint8_t *v = buf + off[0], *e = buf + off[1];
  while (v < e && (*v == ' ' || *v == '\t'))
    v++;
  while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  return (rw_span){v, (size_t)(e - v)};
}

bool rw_span_is_ci(rw_span v, const char *lower)
{
  size_t n = strlen(lower);
  return v.len == n && same_ci(v.p, lower, n);
}

void rw_scan_fields_start(rw_fields_scan *f, size_t pos)
{
  f->start = f->scan = pos;
  f->colon = 0;
  f->count = 0;
  f->note_n[0] = f->note_n[1] = 0;
}

/* The empty line at q ends the section (1), waits for its LF (0), or is malformed. */
static int section_end(rw_fields_scan *f, size_t *pos, const uint8_t *buf, size_t len, uint64_t limit,
                       size_t q)
{
  if (buf[q] != '\r' || (q + 1 < len && buf[q + 1] != '\n'))
    return RW_PARSE_BAD_DATA;
  if (q + 1 == len)
    return 0;
  if (q + 2 - f->start > limit)
    return RW_PARSE_FIELDS_TOO_LARGE;
  f->end = q;
  *pos = f->scan = q + 2;
  return 1;
}

int rw_scan_fields(rw_fields_scan *f, size_t *pos, const uint8_t *buf, size_t len, uint64_t limit,
                   const uint8_t cls[256], const rw_field_note *note)
{
  /* The current line's start lives in a local: f's size_t members could alias *pos, which
   * would cost a reload after every store to them. It goes back to *pos on every exit. */
  size_t i = f->scan, q = *pos;
  int r = 0;
  for (;;) {
    if (!f->colon) { /* four bytes a step (one branch), then byte by byte */
      while (i + 4 <= len && (cls[buf[i]] & cls[buf[i + 1]] & cls[buf[i + 2]] & cls[buf[i + 3]]))
        i += 4;
      while (i < len && cls[buf[i]])
        i++;
      if (i == len)
        break;
      if (i == q) { /* no name: the empty line that ends the section, or malformed */
        r = section_end(f, &q, buf, len, limit, q);
        if (r)
          goto out;
        break;
      }
      if (buf[i] != ':') {
        r = RW_PARSE_BAD_DATA;
        goto out;
      }
      f->colon = i++;
    }
    i = value_end(buf, i, len);
    if (i < len && (buf[i] != '\r' || (i + 1 < len && buf[i + 1] != '\n'))) {
      r = RW_PARSE_BAD_DATA;
      goto out;
    }
    if (i + 1 >= len)
      break;
    size_t c = f->colon, e = i + 1; /* the LF */
    if (e + 1 - f->start > limit) {
      r = RW_PARSE_FIELDS_TOO_LARGE;
      goto out;
    }
    for (int k = 0; k < 2 && note; k++) /* the body's framing fields, noted on the way */
      if (note[k].len == c - q && same_ci(buf + q, note[k].name, c - q) && f->note_n[k]++ == 0) {
        f->note_off[k][0] = (uint32_t)(c + 1);
        f->note_off[k][1] = (uint32_t)(e - 1);
      }
    f->count++;
    f->colon = 0;
    q = i = e + 1;
  }
  f->scan = i;
  r = len - f->start > limit ? RW_PARSE_FIELDS_TOO_LARGE : 0;
out:
  *pos = q;
  return r;
}

static int hexval(uint8_t c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* A chunk's size line at *pos: 1 with f->c_len set (c_state moves on), 0 for more bytes, or
 * RW_PARSE_BAD_DATA. */
static int size_line(rw_fields_scan *f, size_t *pos, const uint8_t *buf, size_t len)
{
  const uint8_t *nl = memchr(buf + f->scan, '\n', len - f->scan);
  if (!nl) {
    f->scan = len;
    return len - *pos > 4096 ? RW_PARSE_BAD_DATA : 0;
  }
  size_t e = (size_t)(nl - buf), i = *pos;
  uint64_t n = 0;
  int d, digits = 0;
  if (e - *pos > 4096 || e == *pos || buf[e - 1] != '\r')
    return RW_PARSE_BAD_DATA;
  while ((d = hexval(buf[i])) >= 0) {
    if (++digits > 15)
      return RW_PARSE_BAD_DATA;
    n = n * 16 + (uint64_t)d;
    i++;
  }
  if (!digits || (i != e - 1 && buf[i] != ';' && buf[i] != ' ' && buf[i] != '\t'))
    return RW_PARSE_BAD_DATA;
  for (; i < e - 1; i++)
    if (buf[i] != '\t' && (buf[i] < 0x20 || buf[i] == 0x7f))
      return RW_PARSE_BAD_DATA;
  *pos = f->scan = e + 1;
  f->c_len = n;
  return 1;
}

/* (A wrapper: rw_scan_chunks keeps its own call inlined.) */
int rw_scan_chunk_size(rw_fields_scan *f, size_t *pos, const uint8_t *buf, size_t len)
{
  return size_line(f, pos, buf, len);
}

int rw_scan_chunks(rw_fields_scan *f, size_t *pos, size_t body_start, const uint8_t *buf, size_t len,
                   uint64_t limit_data, uint64_t limit_fields, const uint8_t cls[256], uint32_t *n,
                   uint32_t (*items)[2], uint32_t nitems)
{
  for (;;) {
    if (f->c_state == 0) {
      int r = size_line(f, pos, buf, len);
      if (r <= 0)
        return r;
      if (f->c_len == 0) {
        f->c_state = 2;
        f->start = *pos;
        f->colon = 0;
        f->count = 0;
        continue;
      }
      f->b_total += f->c_len;
      if (f->b_total > limit_data || *pos - body_start > 2 * limit_data + limit_fields)
        return RW_PARSE_TOO_LARGE;
      f->c_state = 1;
    }
    if (f->c_state == 1) {
      if (len - *pos < f->c_len + 2)
        return 0;
      if (buf[*pos + f->c_len] != '\r' || buf[*pos + f->c_len + 1] != '\n')
        return RW_PARSE_BAD_DATA;
      if (*n < nitems) {
        items[*n][0] = (uint32_t)*pos;
        items[*n][1] = (uint32_t)(*pos + f->c_len);
      }
      (*n)++;
      *pos = f->scan = *pos + f->c_len + 2;
      f->c_state = 0;
      continue;
    }
    return rw_scan_fields(f, pos, buf, len, limit_fields, cls, NULL); /* the trailers */
  }
}
