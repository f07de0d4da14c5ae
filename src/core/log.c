/* Log lines go to stderr, one write each, prefixed by the program name. Nothing here allocates:
 * lines are formatted into a stack buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_name = "ringwright";

void rw_log_init(const char *name)
{
  if (name)
    log_name = name;
}

int64_t rw_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_v(const char *suffix, const char *fmt, va_list ap)
{
  char line[512];
  int n = snprintf(line, sizeof line, "%s: ", log_name);
  n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  if (n > (int)sizeof line - 40)
    n = (int)sizeof line - 40;
  n += snprintf(line + n, sizeof line - (size_t)n, "%s\n", suffix);
  ssize_t rc = write(STDERR_FILENO, line, (size_t)n);
  (void)rc;
}

void rw_log(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  log_v("", fmt, ap);
  va_end(ap);
}

void rw_log_limited(struct rw_ratelimit *rl, const char *fmt, ...)
{
  int64_t now = rw_now_ms();
  if (rl->last_ms && now - rl->last_ms < 1000) {
    rl->suppressed++;
    return;
  }
  char suffix[64] = "";
  if (rl->suppressed)
    snprintf(suffix, sizeof suffix, " (%llu more like this suppressed)", (unsigned long long)rl->suppressed);
  rl->last_ms = now;
  rl->suppressed = 0;
  va_list ap;
  va_start(ap, fmt);
  log_v(suffix, fmt, ap);
  va_end(ap);
}
