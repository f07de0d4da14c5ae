/* Request targets to file paths, and paths back to URIs. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "httpd.h"

static int hexval(uint8_t c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One segment ends: drop it if empty or ".", pop one for "..", keep it otherwise. `seg` is
 * where the segment starts in out (after its '/'). */
static int end_segment(char *out, size_t *len, size_t seg)
{
  size_t n = *len - seg;
  if (n == 0 || (n == 1 && out[seg] == '.')) {
    *len = seg;
    return 0;
  }
  if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
    if (seg < 2)
      return -EINVAL;      /* above the root */
    size_t prev = seg - 1; /* the '/' before this segment */
    while (prev > 0 && out[prev - 1] != '/')
      prev--;
    *len = prev;
    return 0;
  }
  if (*len + 1 >= HTTPD_PATH_MAX)
    return -EINVAL;
  out[(*len)++] = '/';
  return 0;
}

int httpd_normalise(rw_span target, char out_path[HTTPD_PATH_MAX])
{
  if (!target.len || target.p[0] != '/')
    return -EINVAL;
  size_t end = 0;
  while (end < target.len && target.p[end] != '?' && target.p[end] != '#')
    end++; /* the query is not part of the path */
  /* out holds "seg/seg/..." with a '/' after each kept segment; the leading '/' is implied. A
   * path whose last segment is empty, "." or ".." names a directory. */
  size_t len = 0, seg = 0;
  bool dir = false;
  for (size_t i = 1; i <= end; i++) {
    uint8_t ch = i < end ? target.p[i] : '/';
    if (ch == '/') {
      size_t n = len - seg;
      dir = n == 0 || (n == 1 && out_path[seg] == '.') || (n == 2 && !memcmp(out_path + seg, "..", 2));
      if (end_segment(out_path, &len, seg) < 0)
        return -EINVAL;
      seg = len;
      continue;
    }
    if (ch == '%') {
      if (i + 2 >= end)
        return -EINVAL;
      int h = hexval(target.p[i + 1]), l = hexval(target.p[i + 2]);
      if (h < 0 || l < 0)
        return -EINVAL;
      ch = (uint8_t)(h << 4 | l);
      i += 2;
      /* A decoded '/' or NUL would change what the path means: refused. */
      if (ch == '/' || ch == 0)
        return -EINVAL;
    }
    if (len + 1 >= HTTPD_PATH_MAX)
      return -EINVAL;
    out_path[len++] = (char)ch;
  }
  /* len ends after a '/' (or is 0). */
  static const char index[] = "index.html";
  if (dir || len == 0) {
    if (len + sizeof index > HTTPD_PATH_MAX)
      return -EINVAL;
    memcpy(out_path + len, index, sizeof index);
    return 0;
  }
  out_path[len - 1] = 0;
  return 0;
}

/* RFC 3986's pchar without '%' (and '/', which separates segments): what a Location may hold
 * unencoded. */
static bool uri_safe(uint8_t ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("-._~!$&'()*+,;=:@/", ch));
}

size_t httpd_dir_location(const char *path, char out[HTTPD_LOCATION_MAX])
{
  static const char hex[] = "0123456789ABCDEF";
  /* Built from the normalised path, not the target: "//host" must not become a redirect away. */
  size_t n = 0;
  out[n++] = '/';
  for (const uint8_t *p = (const uint8_t *)path; *p; p++) {
    if (uri_safe(*p)) {
      out[n++] = (char)*p;
    } else {
      out[n++] = '%';
      out[n++] = hex[*p >> 4];
      out[n++] = hex[*p & 15];
    }
  }
  out[n++] = '/';
  return n;
}
