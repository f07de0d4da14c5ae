/* Blocking tasks (include/ringwright/task.h): a job on the server's thread pool whose
 * completion runs on the worker that submitted it. */
#include <errno.h>
#include <stddef.h>

#include <ringwright/task.h>

#include "worker.h"
#include "offload.h"

static void task_run(rw_job *j)
{
  rw_task *t = (rw_task *)j;
  t->run(t);
}

static void task_done(rw_worker *w, rw_msg *m)
{
  rw_task *t = (rw_task *)((uint8_t *)m - offsetof(rw_task, job.msg));
  w->ops_inflight--;
  t->done(t);
}

int rw_task_submit(rw_worker *w, rw_task *t, rw_task_fn run, rw_task_fn done)
{
  if (!t || !run || !done)
    return -EINVAL;
  if (w->stopping)
    return -ESHUTDOWN;
  t->run = run;
  t->done = done;
  t->job.run = task_run;
  t->job.msg.fn = task_done;
  int rc = rw_offload_submit(w, &t->job, true);
  if (!rc)
    w->ops_inflight++;
  return rc;
}
