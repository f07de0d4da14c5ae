/* Internal: the timer wheel (timer.c) behind include/ringwright/timer.h. */
#ifndef RW_TIMER_H
#define RW_TIMER_H

#include <stdint.h>

#include <ringwright/timer.h>

#define RW_WHEEL_SLOTS 1024
struct rw_wheel {
  rw_timer *slot[RW_WHEEL_SLOTS];
  int64_t done_tick; /* every tick up to this one has been processed */
  uint32_t armed;
};
void rw_wheel_init(struct rw_wheel *wh, int64_t now_ms);
/* Fires every timer due at `now_ms`. */
void rw_wheel_advance(struct rw_wheel *wh, int64_t now_ms);
/* Milliseconds until the next tick that may hold a due timer; -1 when none is armed. */
int rw_wheel_timeout(const struct rw_wheel *wh, int64_t now_ms);

#endif
