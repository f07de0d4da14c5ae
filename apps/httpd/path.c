/* Request targets to file paths, content types, and HTTP dates. */
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

const char *httpd_mime(const char *path)
{
  static const struct {
    const char *ext, *type;
  } types[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"xml", "application/xml"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"mp4", "video/mp4"},
      {"gz", "application/gzip"},
  };
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  if (dot && (!slash || dot > slash))
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
      if (!strcasecmp(dot + 1, types[i].ext))
        return types[i].type;
  return "application/octet-stream";
}

static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void httpd_format_date(time_t t, char out[30])
{
  struct tm tm;
  gmtime_r(&t, &tm);
  /* By hand: strftime's %a and %b follow the locale. */
  static const char digits[] = "0123456789";
  char *p = out;
  memcpy(p, days[tm.tm_wday], 3);
  p += 3;
  *p++ = ',';
  *p++ = ' ';
  *p++ = digits[tm.tm_mday / 10];
  *p++ = digits[tm.tm_mday % 10];
  *p++ = ' ';
  memcpy(p, months[tm.tm_mon], 3);
  p += 3;
  *p++ = ' ';
  int y = tm.tm_year + 1900;
  *p++ = digits[y / 1000 % 10];
  *p++ = digits[y / 100 % 10];
  *p++ = digits[y / 10 % 10];
  *p++ = digits[y % 10];
  *p++ = ' ';
  *p++ = digits[tm.tm_hour / 10];
  *p++ = digits[tm.tm_hour % 10];
  *p++ = ':';
  *p++ = digits[tm.tm_min / 10];
  *p++ = digits[tm.tm_min % 10];
  *p++ = ':';
  *p++ = digits[tm.tm_sec / 10];
  *p++ = digits[tm.tm_sec % 10];
  memcpy(p, " GMT", 5);
}

static int num(const uint8_t *p, int n)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

time_t httpd_parse_date(rw_span s)
{
  /* "Sun, 06 Nov 1994 08:49:37 GMT": the one format servers send (RFC 9110 5.6.7). */
  const uint8_t *p = s.p;
  if (s.len != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
      p[19] != ':' || p[22] != ':' || memcmp(p + 25, " GMT", 4))
    return -1;
  struct tm tm = {0};
  tm.tm_mday = num(p + 5, 2);
  tm.tm_year = num(p + 12, 4) - 1900;
  tm.tm_hour = num(p + 17, 2);
  tm.tm_min = num(p + 20, 2);
  tm.tm_sec = num(p + 23, 2);
  tm.tm_mon = -1;
  for (int i = 0; i < 12; i++)
    if (!memcmp(p + 8, months[i], 3))
      tm.tm_mon = i;
  if (tm.tm_mday < 1 || tm.tm_year < 70 || tm.tm_hour < 0 || tm.tm_min < 0 || tm.tm_sec < 0 || tm.tm_mon < 0)
    return -1;
  return timegm(&tm);
}
