/* Internal: the log (log.c): lines to stderr, some rate-limited, and the clock they use. */
#ifndef RW_LOG_H
#define RW_LOG_H

#include <stddef.h>
#include <stdint.h>

void rw_log_init(const char *name);
void rw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* At most one line per second per call site; counts what it suppressed. */
struct rw_ratelimit {
  int64_t last_ms;
  uint64_t suppressed;
};
void rw_log_limited(struct rw_ratelimit *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t rw_now_ms(void);

#endif
