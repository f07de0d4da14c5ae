/* A hashed timing wheel: 1024 slots of 10 ms. Arming and cancelling are O(1) list operations;
 * each tick walks one slot and fires what is due, leaving timers due in a later revolution where
 * they are. Connections' idle timers are re-armed lazily (only when they fire early), so traffic
 * costs a timestamp store, not a wheel operation. */
#include <ringwright/timer.h>

#include "worker.h"
#include "timer.h"

static int64_t tick_of(int64_t ms)
{
  return ms / RW_TIMER_TICK_MS;
}

void rw_timer_init(rw_timer *t, rw_timer_fn fn, void *data)
{
  *t = (rw_timer){.fn = fn, .data = data};
}

bool rw_timer_armed(const rw_timer *t)
{
  return t->w != NULL;
}

static void unlink_timer(rw_timer *t)
{
  struct rw_wheel *wh = &t->w->wheel;
  if (t->prev)
    t->prev->next = t->next;
  else
    wh->slot[tick_of(t->expires_ms) % RW_WHEEL_SLOTS] = t->next;
  if (t->next)
    t->next->prev = t->prev;
  t->next = t->prev = NULL;
  t->w = NULL;
  wh->armed--;
}

void rw_timer_cancel(rw_timer *t)
{
  if (t->w)
    unlink_timer(t);
}

void rw_timer_arm(rw_worker *w, rw_timer *t, uint64_t delay_ms)
{
  rw_timer_cancel(t);
  struct rw_wheel *wh = &w->wheel;
  /* Rounded up to a tick boundary: when that tick is processed the timer is due, never early. */
  t->expires_ms =
      (w->now_ms + (int64_t)delay_ms + RW_TIMER_TICK_MS - 1) / RW_TIMER_TICK_MS * RW_TIMER_TICK_MS;
  /* Never into a tick already processed: it would wait a whole revolution. */
  if (tick_of(t->expires_ms) <= wh->done_tick)
    t->expires_ms = (wh->done_tick + 1) * RW_TIMER_TICK_MS;
  rw_timer **head = &wh->slot[tick_of(t->expires_ms) % RW_WHEEL_SLOTS];
  t->w = w;
  t->prev = NULL;
  t->next = *head;
  if (*head)
    (*head)->prev = t;
  *head = t;
  wh->armed++;
}

int64_t rw_worker_now_ms(const rw_worker *w)
{
  return w->now_ms;
}

void rw_wheel_init(struct rw_wheel *wh, int64_t now_ms)
{
  *wh = (struct rw_wheel){.done_tick = tick_of(now_ms)};
}

static void fire_slot(struct rw_wheel *wh, uint32_t s, int64_t now_ms)
{
  rw_timer *t = wh->slot[s];
  while (t) {
    rw_timer *next = t->next;
    if (t->expires_ms <= now_ms) {
      unlink_timer(t);
      t->fn(t); /* may arm timers, including this one: into later ticks only */
      /* `next` may have been cancelled by the callback: restart the slot walk. */
      t = wh->slot[s];
      continue;
    }
    t = next;
  }
}

void rw_wheel_advance(struct rw_wheel *wh, int64_t now_ms)
{
  int64_t target = tick_of(now_ms);
  if (!wh->armed) {
    wh->done_tick = target;
    return;
  }
  /* After a long stall, one revolution visits every slot. */
  int64_t from = wh->done_tick + 1;
  if (target - from >= RW_WHEEL_SLOTS)
    from = target - RW_WHEEL_SLOTS + 1;
  for (int64_t tick = from; tick <= target && wh->armed; tick++) {
    wh->done_tick = tick;
    fire_slot(wh, (uint32_t)(tick % RW_WHEEL_SLOTS), now_ms);
  }
  wh->done_tick = target;
}

int rw_wheel_timeout(const struct rw_wheel *wh, int64_t now_ms)
{
  if (!wh->armed)
    return -1;
  int64_t next = (wh->done_tick + 1) * RW_TIMER_TICK_MS - now_ms;
  return next < 1 ? 1 : (int)next;
}
