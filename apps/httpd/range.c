/* Range headers (RFC 9110 14.1.2, 14.2): "bytes=" and a list of first-last, first- and -suffix
 * specs. Unsatisfiable specs are dropped; none left is a 416. What cannot be a valid bytes
 * range set (another unit, a malformed spec) is ignored and the whole file sent, which RFC 9110
 * allows; so is a set of more than HTTPD_RANGES_MAX ranges or of more bytes than the file has
 * (overlaps asked to multiply the reply), as nginx does; and any Range of an empty file. */
#include <errno.h>
#include <strings.h>

#include "httpd.h"

bool httpd_number(rw_span v, size_t *i, uint64_t *out)
{
  size_t start = *i;
  uint64_t n = 0;
  while (*i < v.len && v.p[*i] >= '0' && v.p[*i] <= '9') {
    if (n > (UINT64_MAX - 9) / 10)
      return false;
    n = n * 10 + (v.p[(*i)++] - '0');
  }
  *out = n;
  return *i > start;
}

/* One spec at v.p[*i] into *r: 1 satisfiable, 0 not, -1 malformed. */
static int spec(rw_span v, size_t *i, uint64_t size, struct httpd_range *r)
{
  uint64_t first, last;
  if (*i < v.len && v.p[*i] == '-') {
    ++*i;
    if (!httpd_number(v, i, &last))
      return -1;
    if (!last)
      return 0;
    r->len = last < size ? last : size;
    r->off = size - r->len;
    return 1;
  }
  if (!httpd_number(v, i, &first) || *i >= v.len || v.p[(*i)++] != '-')
    return -1;
  last = UINT64_MAX;
  if (*i < v.len && v.p[*i] >= '0' && v.p[*i] <= '9' && (!httpd_number(v, i, &last) || last < first))
    return -1;
  if (first >= size)
    return 0;
  r->off = first;
  r->len = (last < size - 1 ? last : size - 1) - first + 1;
  return 1;
}

int httpd_parse_ranges(rw_span v, uint64_t size, struct httpd_ranges *out)
{
  /* An empty file has no byte to range over: it is sent whole (as nginx does). */
  if (!size || v.len < 6 || strncasecmp((const char *)v.p, "bytes=", 6))
    return 0;
  out->count = 0;
  unsigned specs = 0;
  uint64_t total = 0;
  for (size_t i = 6; i < v.len;) {
    if (v.p[i] == ',' || httpd_ows(v.p[i])) {
      i++;
      continue;
    }
    struct httpd_range r;
    int rc = spec(v, &i, size, &r);
    while (i < v.len && httpd_ows(v.p[i]))
      i++;
    if (rc < 0 || (i < v.len && v.p[i] != ','))
      return 0; /* specs are separated by commas, blanks around them */
    specs++;
    if (!rc)
      continue;
    if (out->count == HTTPD_RANGES_MAX || (total += r.len) > size)
      return 0;
    out->r[out->count++] = r;
  }
  if (!specs)
    return 0;
  return out->count ? 1 : -ERANGE;
}
