/* The timer wheel (src/core/timer.c), included whole to reach its static parts: timers never
 * fire early, fire in deadline order, can be cancelled (from a callback too), survive the
 * wheel wrapping around many times and long stalls, and keep working at any point in time. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../../src/core/timer.c"

static struct rw_worker w;

struct probe {
  rw_timer t;
  int64_t armed_at, delay, fired_at;
  int fired;
};

static int64_t fire_seq[4096];
static int nfired;

static void on_fire(rw_timer *t)
{
  struct probe *p = (struct probe *)t;
  p->fired++;
  p->fired_at = w.now_ms;
  fire_seq[nfired++] = p->armed_at + p->delay;
}

static void start_at(int64_t now)
{
  w.now_ms = now;
  rw_wheel_init(&w.wheel, now);
  nfired = 0;
}

static void arm(struct probe *p, int64_t delay)
{
  rw_timer_init(&p->t, on_fire, p);
  p->armed_at = w.now_ms;
  p->delay = delay;
  p->fired = 0;
  rw_timer_arm(&w, &p->t, (uint64_t)delay);
}

/* Moves the clock to `to` in steps of `step` ms, as a loop that wakes that often would. */
static void run_until(int64_t to, int64_t step)
{
  while (w.now_ms < to) {
    w.now_ms = w.now_ms + step < to ? w.now_ms + step : to;
    rw_wheel_advance(&w.wheel, w.now_ms);
  }
}

#define N 600
static struct probe probes[N];

/* Random delays from random start times, the clock moved in random steps: every timer fires
 * once, never before its delay, and (with the clock moving 1 ms at a time) within a tick of it. */
Test(timer, never_early_never_late)
{
  srand(7);
  for (int round = 0; round < 20; round++) {
    start_at(1000000 + rand() % 100000);
    for (int i = 0; i < N; i++)
      arm(&probes[i], rand() % 30000);
    int64_t end = w.now_ms + 31000;
    int64_t step = round % 2 ? 1 : 1 + rand() % 37;
    run_until(end, step);
    for (int i = 0; i < N; i++) {
      struct probe *p = &probes[i];
      cr_assert_eq(p->fired, 1, "timer %d (delay %lld) fired %d times", i, (long long)p->delay, p->fired);
      cr_assert_geq(p->fired_at, p->armed_at + p->delay, "fired %lld ms early",
                    (long long)(p->armed_at + p->delay - p->fired_at));
      cr_assert_lt(p->fired_at, p->armed_at + p->delay + RW_TIMER_TICK_MS + step, "fired %lld ms late",
                   (long long)(p->fired_at - p->armed_at - p->delay));
    }
    cr_assert_eq(w.wheel.armed, 0);
  }
}

/* Deadlines in different ticks fire in deadline order. */
Test(timer, order)
{
  start_at(5003);
  srand(11);
  for (int i = 0; i < N; i++)
    arm(&probes[i], (rand() % 2000) * RW_TIMER_TICK_MS);
  run_until(w.now_ms + 21000, 1);
  cr_assert_eq(nfired, N);
  for (int i = 1; i < nfired; i++)
    cr_assert_leq(tick_of(fire_seq[i - 1] + RW_TIMER_TICK_MS - 1),
                  tick_of(fire_seq[i] + RW_TIMER_TICK_MS - 1), "fire %d out of order", i);
}

/* Delays of several revolutions of the wheel: the slot is visited each revolution, the timer
 * stays until its own. */
Test(timer, wheel_wraps)
{
  int64_t rev = (int64_t)RW_WHEEL_SLOTS * RW_TIMER_TICK_MS;
  start_at(77);
  for (int i = 0; i < 8; i++)
    arm(&probes[i], rev * i + 5 + i);
  arm(&probes[8], rev * 5 - 1);
  run_until(w.now_ms + 8 * rev + 100, 3);
  for (int i = 0; i < 9; i++) {
    cr_assert_eq(probes[i].fired, 1, "timer %d", i);
    cr_assert_geq(probes[i].fired_at, probes[i].armed_at + probes[i].delay, "timer %d early", i);
    cr_assert_lt(probes[i].fired_at, probes[i].armed_at + probes[i].delay + 2 * RW_TIMER_TICK_MS,
                 "timer %d late", i);
  }
}

/* A stall longer than a revolution: one advance fires everything due and nothing else. */
Test(timer, long_stall)
{
  int64_t rev = (int64_t)RW_WHEEL_SLOTS * RW_TIMER_TICK_MS;
  start_at(123456);
  for (int i = 0; i < 100; i++)
    arm(&probes[i], i * 250); /* 0 .. 24.75 s */
  w.now_ms += rev + 1234;     /* 11.5 s */
  rw_wheel_advance(&w.wheel, w.now_ms);
  for (int i = 0; i < 100; i++) {
    bool due = probes[i].armed_at + probes[i].delay <= w.now_ms;
    cr_assert_eq(probes[i].fired, due, "timer %d (delay %lld) fired %d", i, (long long)probes[i].delay,
                 probes[i].fired);
  }
  run_until(w.now_ms + 2 * rev, 5);
  for (int i = 0; i < 100; i++)
    cr_assert_eq(probes[i].fired, 1, "timer %d", i);
}

/* Far into the clock's range (a monotonic clock after years; tick numbers far past the wheel's
 * size) and across a multiple of the wheel's span. */
Test(timer, any_time)
{
  int64_t bases[] = {0, (int64_t)RW_WHEEL_SLOTS * RW_TIMER_TICK_MS - 3, INT64_C(1) << 40, INT64_MAX / 4};
  for (unsigned b = 0; b < sizeof bases / sizeof bases[0]; b++) {
    start_at(bases[b]);
    for (int i = 0; i < 50; i++)
      arm(&probes[i], i * 37);
    run_until(w.now_ms + 2000, 1);
    for (int i = 0; i < 50; i++) {
      cr_assert_eq(probes[i].fired, 1, "base %u timer %d", b, i);
      cr_assert_geq(probes[i].fired_at, probes[i].armed_at + probes[i].delay);
    }
  }
}

Test(timer, cancel)
{
  start_at(1000);
  for (int i = 0; i < 100; i++)
    arm(&probes[i], 50 + i % 7);
  for (int i = 0; i < 100; i += 2)
    rw_timer_cancel(&probes[i].t);
  cr_assert_eq(w.wheel.armed, 50);
  rw_timer_cancel(&probes[0].t); /* twice: nothing */
  cr_assert_eq(w.wheel.armed, 50);
  cr_assert_not(rw_timer_armed(&probes[0].t));
  run_until(2000, 1);
  for (int i = 0; i < 100; i++)
    cr_assert_eq(probes[i].fired, i % 2, "timer %d", i);
  cr_assert_eq(w.wheel.armed, 0);
  for (int s = 0; s < RW_WHEEL_SLOTS; s++)
    cr_assert_null(w.wheel.slot[s]);
}

/* A callback cancels the timer after it in the same slot, and re-arms itself. */
static struct probe *victim;
static void cancel_other(rw_timer *t)
{
  on_fire(t);
  rw_timer_cancel(&victim->t);
  struct probe *p = (struct probe *)t;
  if (p->fired < 3)
    rw_timer_arm(&w, t, 0); /* "now": the next tick, never this one again */
}

Test(timer, cancel_from_callback_and_rearm)
{
  start_at(0);
  arm(&probes[1], 100);
  arm(&probes[0], 100); /* head of the slot: fires first */
  probes[0].t.fn = cancel_other;
  victim = &probes[1];
  run_until(100, 1);
  cr_assert_eq(probes[0].fired, 1);
  cr_assert_eq(probes[1].fired, 0);
  cr_assert(rw_timer_armed(&probes[0].t));
  run_until(130, 1);
  cr_assert_eq(probes[0].fired, 3);
  cr_assert_not(rw_timer_armed(&probes[0].t));
  cr_assert_eq(w.wheel.armed, 0);
}

Test(timer, timeout)
{
  start_at(1005);
  cr_assert_eq(rw_wheel_timeout(&w.wheel, w.now_ms), -1);
  arm(&probes[0], 500);
  int t = rw_wheel_timeout(&w.wheel, w.now_ms);
  cr_assert(t >= 1 && t <= RW_TIMER_TICK_MS, "%d", t);
  /* Never 0, even when the next tick is already due: the loop must not spin. */
  cr_assert_eq(rw_wheel_timeout(&w.wheel, w.now_ms + 100), 1);
}
