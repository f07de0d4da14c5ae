/* Timers: a hashed timing wheel per worker (10 ms ticks). A timer is a struct you own, usually
 * embedded in your own state, so arming one never allocates. Callbacks run on the worker's
 * thread, between I/O events. */
#ifndef RINGWRIGHT_TIMER_H
#define RINGWRIGHT_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_worker rw_worker;
typedef struct rw_timer rw_timer;
typedef void (*rw_timer_fn)(rw_timer *t);

struct rw_timer {
  /* private: owned by the wheel while armed */
  rw_timer *next, *prev;
  rw_worker *w;
  int64_t expires_ms;
  rw_timer_fn fn;
  /* yours */
  void *data;
};

#define RW_TIMER_TICK_MS 10

/* Prepares `t` to call `fn(t)` when it expires; `data` is left for you in t->data. */
void rw_timer_init(rw_timer *t, rw_timer_fn fn, void *data);
/* Arms (or re-arms) `t` on worker `w` to fire after `delay_ms` (rounded up to the next tick). */
void rw_timer_arm(rw_worker *w, rw_timer *t, uint64_t delay_ms);
/* Disarms `t`; harmless if it is not armed. */
void rw_timer_cancel(rw_timer *t);
bool rw_timer_armed(const rw_timer *t);
/* The worker's clock (CLOCK_MONOTONIC, ms), read once per loop turn. */
int64_t rw_worker_now_ms(const rw_worker *w);

#ifdef __cplusplus
}
#endif

#endif
