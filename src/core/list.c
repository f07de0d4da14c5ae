/* Walking a list field. The parser validated the region when it received it, so walking
 * trusts its shape: no check fails here on data the parser accepted. */
#include <string.h>

#include <ringwright/list.h>

void rw_list_iter_init(const rw_list *l, rw_list_iter *it)
{
  it->p = l->region.p;
  it->i = 0;
}

static int is_blank(uint8_t c)
{
  return c == ' ' || c == '\t';
}

static int hexval(uint8_t c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

int rw_list_next(const rw_list *l, rw_list_iter *it, rw_span *out)
{
  if (it->i >= l->count)
    return -1;
  const uint8_t *p = it->p;
  if (l->kind == RW_LIST_SINGLE) {
    *out = l->region;
  } else if (l->kind == RW_LIST_FIELDS) {
    const uint8_t *end = l->region.p + l->region.len;
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
      nl = end;
    *out = (rw_span){p, (size_t)(nl - p) - (nl > p && nl[-1] == '\r')};
    p = nl < end ? nl + 1 : end;
  } else if (l->kind == RW_LIST_CHUNKED) {
    uint64_t n = 0;
    for (int d; (d = hexval(*p)) >= 0; p++)
      n = n * 16 + (uint64_t)d;
    p = (const uint8_t *)memchr(p, '\n', (size_t)(l->region.p + l->region.len - p)) + 1;
    *out = (rw_span){p, (size_t)n};
    p += n + 2;
  } else if (l->kind == RW_LIST_WORDS) {
    const uint8_t *end = l->region.p + l->region.len;
    while (p < end && is_blank(*p))
      p++;
    const uint8_t *start = p;
    while (p < end && !is_blank(*p))
      p++;
    *out = (rw_span){start, (size_t)(p - start)};
  } else {
    p += l->prefix_len;
    uint64_t n = 0;
    while (*p >= '0' && *p <= '9')
      n = n * 10 + (uint64_t)(*p++ - '0');
    p += l->sep_len;
    *out = (rw_span){p, (size_t)n};
    p += n + l->sep_len;
  }
  it->p = p;
  it->i++;
  return 0;
}

rw_span rw_list_at(const rw_list *l, uint32_t i)
{
  if (i < RW_LIST_INLINE)
    return i < l->count ? l->item[i] : (rw_span){NULL, 0};
  rw_list_iter it;
  rw_span s = {NULL, 0};
  rw_list_iter_init(l, &it);
  while (it.i <= i && rw_list_next(l, &it, &s) == 0)
    ;
  return s;
}

void rw_list_words(rw_list *l, const uint8_t *p, size_t n)
{
  const uint8_t *end = p + n;
  rw_list_set(l, RW_LIST_WORDS, 0, (rw_span){p, n});
  while (p < end) {
    while (p < end && is_blank(*p))
      p++;
    if (p == end)
      break;
    const uint8_t *w = p;
    while (p < end && !is_blank(*p))
      p++;
    if (l->count < RW_LIST_INLINE)
      l->item[l->count] = (rw_span){w, (size_t)(p - w)};
    l->count++;
  }
}

static int lower(uint8_t c)
{
  return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

unsigned rw_list_field(const rw_list *l, const char *name, rw_span *out)
{
  size_t nlen = strlen(name);
  unsigned found = 0;
  rw_list_iter it;
  rw_span line;
  rw_list_iter_init(l, &it);
  while (rw_list_next(l, &it, &line) == 0) {
    if (line.len <= nlen || line.p[nlen] != ':')
      continue;
    size_t i = 0;
    while (i < nlen && lower(line.p[i]) == lower((uint8_t)name[i]))
      i++;
    if (i < nlen)
      continue;
    if (!found++) {
      const uint8_t *v = line.p + nlen + 1, *e = line.p + line.len;
      while (v < e && is_blank(*v))
        v++;
      while (e > v && is_blank(e[-1]))
        e--;
      *out = (rw_span){v, (size_t)(e - v)};
    }
  }
  return found;
}
