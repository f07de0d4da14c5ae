/* Entity tags and conditional requests (RFC 9110 8.8 and 13). A file's ETag is strong: it
 * names the file (device, inode) and its version (mtime to the nanosecond, size), so a file
 * replaced or rewritten gets another, and two workers or two restarts give the same one. */
#include <stdio.h>
#include <string.h>

#include "httpd.h"

void httpd_etag(const struct httpd_identity *id, uint64_t size, char out[HTTPD_ETAG_MAX])
{
  snprintf(out, HTTPD_ETAG_MAX, "\"%llx-%llx-%llx.%x-%llx\"", (unsigned long long)id->dev,
           (unsigned long long)id->ino, (unsigned long long)id->mtime, id->mtime_ns,
           (unsigned long long)size);
}

/* Matches `etag` against an If-Match / If-None-Match value: "*" or a list of entity tags.
 * `weak`: the weak comparison (W/ ignored on both sides); else the strong one (a W/ tag never
 * matches). A malformed list matches nothing. */
static bool etag_matches(rw_span v, const char *etag, bool weak)
{
  size_t elen = strlen(etag), i = 0;
  while (i < v.len && httpd_ows(v.p[i]))
    i++;
  if (i < v.len && v.p[i] == '*')
    return true;
  while (i < v.len) {
    if (v.p[i] == ',' || httpd_ows(v.p[i])) {
      i++;
      continue;
    }
    bool is_weak = false;
    if (v.len - i >= 2 && v.p[i] == 'W' && v.p[i + 1] == '/') {
      is_weak = true;
      i += 2;
    }
    if (i >= v.len || v.p[i] != '"')
      return false;
    size_t start = i++;
    while (i < v.len && v.p[i] != '"')
      i++;
    if (i >= v.len)
      return false;
    i++; /* past the closing quote */
    if ((weak || !is_weak) && i - start == elen && !memcmp(v.p + start, etag, elen))
      return true;
  }
  return false;
}

/* A date field that is valid and not in the future (RFC 9110 13.1.3, 13.1.4); -1 otherwise. */
static time_t date_field(const rw_list *headers, const char *name, time_t now)
{
  rw_span v;
  if (!rw_list_field(headers, name, &v))
    return -1;
  time_t t = httpd_parse_date(v);
  return t > now ? -1 : t;
}

enum httpd_precondition httpd_preconditions(const rw_list *headers, const char *etag, time_t mtime,
                                            time_t now)
{
  rw_span v;
  if (rw_list_field(headers, "if-match", &v)) {
    if (!etag_matches(v, etag, false))
      return HTTPD_PRECONDITION_FAILED;
  } else {
    time_t t = date_field(headers, "if-unmodified-since", now);
    if (t >= 0 && mtime > t)
      return HTTPD_PRECONDITION_FAILED;
  }
  if (rw_list_field(headers, "if-none-match", &v))
    return etag_matches(v, etag, true) ? HTTPD_NOT_MODIFIED : HTTPD_SERVE;
  time_t t = date_field(headers, "if-modified-since", now);
  return t >= 0 && mtime <= t ? HTTPD_NOT_MODIFIED : HTTPD_SERVE;
}

bool httpd_if_range(const rw_list *headers, const char *etag, time_t mtime)
{
  rw_span v;
  if (!rw_list_field(headers, "if-range", &v))
    return true;
  if (v.len && (v.p[0] == '"' || v.p[0] == 'W'))
    return etag_matches(v, etag, false) && v.p[0] == '"' && v.len == strlen(etag);
  /* A date validates only if it is exactly the file's (RFC 9110 13.1.5). */
  return httpd_parse_date(v) == mtime;
}
