/* HTTP dates (RFC 9110 5.6.7): IMF-fixdate out; IMF-fixdate, RFC 850 and asctime in. */
#include <string.h>

#include "httpd.h"

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

static int month(const uint8_t *p)
{
  for (int i = 0; i < 12; i++)
    if (!memcmp(p, months[i], 3))
      return i;
  return -1;
}

/* "08:49:37" at p into tm; false if it is not a time. */
static bool clock_at(const uint8_t *p, struct tm *tm)
{
  tm->tm_hour = num(p, 2);
  tm->tm_min = num(p + 3, 2);
  tm->tm_sec = num(p + 6, 2);
  return p[2] == ':' && p[5] == ':' && tm->tm_hour >= 0 && tm->tm_hour < 24 && tm->tm_min >= 0 &&
         tm->tm_min < 60 && tm->tm_sec >= 0 && tm->tm_sec < 61;
}

static time_t to_time(struct tm *tm)
{
  if (tm->tm_mday < 1 || tm->tm_mday > 31 || tm->tm_mon < 0 || tm->tm_year < 70)
    return -1;
  return timegm(tm);
}

/* The day name, its comma or blank, and where the rest starts; the name itself is not checked
 * against the date (RFC 9110 lets a recipient ignore a wrong one). */
static size_t skip_day(rw_span s)
{
  size_t i = 0;
  while (i < s.len && i < 10 && ((s.p[i] | 0x20) >= 'a' && (s.p[i] | 0x20) <= 'z'))
    i++;
  return i;
}

time_t httpd_parse_date(rw_span s)
{
  struct tm tm = {0};
  size_t d = skip_day(s);
  const uint8_t *p = s.p + d;
  size_t n = s.len - d;
  /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (the form servers send). */
  if (d == 3 && n == 26 && p[0] == ',' && p[1] == ' ' && p[4] == ' ' && p[8] == ' ' && p[13] == ' ' &&
      !memcmp(p + 22, " GMT", 4)) {
    tm.tm_mday = num(p + 2, 2);
    tm.tm_mon = month(p + 5);
    tm.tm_year = num(p + 9, 4) - 1900;
    return clock_at(p + 14, &tm) ? to_time(&tm) : -1;
  }
  /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year is read in 1970-2069. */
  if (d >= 6 && n == 24 && p[0] == ',' && p[1] == ' ' && p[4] == '-' && p[8] == '-' && p[11] == ' ' &&
      !memcmp(p + 20, " GMT", 4)) {
    tm.tm_mday = num(p + 2, 2);
    tm.tm_mon = month(p + 5);
    int yy = num(p + 9, 2);
    tm.tm_year = yy < 0 ? -1 : yy < 70 ? yy + 100 : yy;
    return clock_at(p + 12, &tm) ? to_time(&tm) : -1;
  }
  /* asctime: "Sun Nov  6 08:49:37 1994" (the day padded with a blank). */
  if (d == 3 && n == 21 && p[0] == ' ' && p[4] == ' ' && p[7] == ' ' && p[16] == ' ') {
    tm.tm_mon = month(p + 1);
    tm.tm_mday = p[5] == ' ' ? num(p + 6, 1) : num(p + 5, 2);
    tm.tm_year = num(p + 17, 4) - 1900;
    return clock_at(p + 8, &tm) ? to_time(&tm) : -1;
  }
  return -1;
}
