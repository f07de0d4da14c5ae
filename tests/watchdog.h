/* Criterion's own timeout is unreliable: an in-process test arms this watchdog on its worker
 * (from on_worker_start), which stops the server after 20 s; the test then fails on
 * watchdog_fired. Shared by test_runtime and test_offload. */
#ifndef RW_TEST_WATCHDOG_H
#define RW_TEST_WATCHDOG_H

#include <stdbool.h>

#include <ringwright/server.h>
#include <ringwright/timer.h>

static rw_timer watchdog;
static bool watchdog_fired;

static void watchdog_bark(rw_timer *t)
{
  watchdog_fired = true;
  rw_server_stop(t->data);
}

static void arm_watchdog(rw_worker *w)
{
  watchdog_fired = false;
  rw_timer_init(&watchdog, watchdog_bark, rw_worker_server(w));
  rw_timer_arm(w, &watchdog, 20000);
}

#endif
