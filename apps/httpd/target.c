/* Request targets in absolute form (RFC 9112 3.2.2): "http://host[:port]/path?query" names the
 * host itself, which replaces the Host field; what follows the authority is served as an
 * origin-form target would be. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "httpd.h"

/* Bytes an authority (host, IP literal, port) may hold: RFC 3986's reg-name and IP-literal
 * characters without userinfo's '@', which a server has no use for and nginx refuses too. */
static bool authority_byte(uint8_t c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~:[]", c);
}

int httpd_target(rw_span target, rw_span *host, rw_span *path)
{
  size_t scheme = 0;
  if (target.len >= 7 && !strncasecmp((const char *)target.p, "http://", 7))
    scheme = 7;
  else if (target.len >= 8 && !strncasecmp((const char *)target.p, "https://", 8))
    scheme = 8;
  if (!scheme) {
    *path = target; /* origin form (or a shape the path check refuses) */
    return 0;
  }
  size_t end = scheme;
  while (end < target.len && target.p[end] != '/' && target.p[end] != '?' && target.p[end] != '#') {
    if (!authority_byte(target.p[end]))
      return -EINVAL;
    end++;
  }
  if (end == scheme)
    return -EINVAL; /* "http:///x": no host */
  *host = (rw_span){target.p + scheme, end - scheme};
  /* "http://h" and "http://h?q" ask for the root. */
  static const uint8_t root[] = "/";
  *path = end < target.len && target.p[end] == '/' ? (rw_span){target.p + end, target.len - end}
                                                   : (rw_span){root, 1};
  return 0;
}
