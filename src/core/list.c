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

int rw_list_next(const rw_list *l, rw_list_iter *it, rw_span *out)
{
  if (it->i >= l->count)
    return -1;
  const uint8_t *p = it->p;
  if (l->kind == RW_LIST_WORDS) {
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
  *l = (rw_list){.kind = RW_LIST_WORDS, .region = {p, n}};
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
