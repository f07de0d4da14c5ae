/* Accept-Encoding (RFC 9110 12.5.3) for precompressed siblings: "file.br" and "file.gz" next to
 * "file", served as they are with Content-Encoding, as nginx's gzip_static and brotli_static
 * do. Codings are case-insensitive tokens, each with an optional q from 0 to 1 (three
 * decimals); q=0 refuses. */
#include <string.h>
#include <strings.h>

#include "httpd.h"

const char *const httpd_coding_suffix[HTTPD_CODINGS] = {"", ".br", ".gz"};
const char *const httpd_coding_name[HTTPD_CODINGS] = {"identity", "br", "gzip"};

/* "q=0.5" parameters' value in thousandths; 1000 when there is no q. */
static unsigned qvalue(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i + 1 < n; i++) {
    if ((p[i] | 0x20) != 'q' || p[i + 1] != '=' || (i && p[i - 1] != ';' && !httpd_ows(p[i - 1])))
      continue;
    i += 2;
    unsigned q = i < n && p[i] == '1' ? 1000 : 0, scale = 100;
    if (i < n && p[i] != '0' && p[i] != '1')
      return 0; /* malformed: as if refused */
    for (i += 2; i < n && p[i] >= '0' && p[i] <= '9' && scale && q < 1000; i++, scale /= 10)
      q += (unsigned)(p[i] - '0') * scale;
    return q;
  }
  return 1000;
}

unsigned httpd_coding_q(rw_span v, enum httpd_coding coding)
{
  const char *name = httpd_coding_name[coding];
  size_t name_len = strlen(name);
  int star = -1, listed = -1;
  for (size_t i = 0; i < v.len;) {
    while (i < v.len && (httpd_ows(v.p[i]) || v.p[i] == ','))
      i++;
    size_t start = i;
    while (i < v.len && v.p[i] != ',' && v.p[i] != ';' && !httpd_ows(v.p[i]))
      i++;
    size_t tok = i - start, params = i;
    while (i < v.len && v.p[i] != ',')
      i++;
    unsigned q = qvalue(v.p + params, i - params);
    bool is = (tok == name_len && !strncasecmp((const char *)v.p + start, name, tok)) ||
              (coding == HTTPD_GZIP && tok == 6 && !strncasecmp((const char *)v.p + start, "x-gzip", 6));
    if (is)
      listed = (int)q;
    else if (tok == 1 && v.p[start] == '*')
      star = (int)q;
  }
  if (listed >= 0)
    return (unsigned)listed;
  if (star >= 0)
    return (unsigned)star;
  return coding == HTTPD_IDENTITY ? 1 : 0; /* acceptable unless refused, but preferred to none */
}
