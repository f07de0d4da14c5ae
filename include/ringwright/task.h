/* Blocking work off the loop: run(t) on the server's thread pool, then done(t) on the worker
 * that asked. The queue is bounded (rw_config.task_queue jobs waiting, all workers together):
 * a full queue is an error the caller sees at once, not a stall. The task is a struct you own;
 * it must stay valid until done() has run. */
#ifndef RINGWRIGHT_TASK_H
#define RINGWRIGHT_TASK_H

#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_task rw_task;
typedef void (*rw_task_fn)(rw_task *t);

struct rw_task {
  /* private */
  rw_job job;
  rw_task_fn run, done;
  /* yours */
  void *data;
};

/* 0, or -EAGAIN when the queue is full, -EINVAL without run/done, -ESHUTDOWN once the worker
 * is stopping. */
int rw_task_submit(rw_worker *w, rw_task *t, rw_task_fn run, rw_task_fn done);

#ifdef __cplusplus
}
#endif

#endif
