/* Cross-worker messages. The fast path is the driver's (io_uring: MSG_RING into the target's
 * CQ); the general one is an intrusive lock-free stack per worker (Treiber push, whole-list
 * take) plus the target's eventfd, which works from any thread. */
#include <errno.h>

#include "driver.h"
#include "worker.h"

unsigned rw_server_workers(const rw_server *s)
{
  return s->nworkers;
}

int rw_worker_post(rw_worker *from, rw_server *s, unsigned to, rw_msg *m)
{
  if (to >= s->nworkers || !s->workers)
    return -EINVAL;
  struct rw_worker *target = &s->workers[to];
  if (from && from->driver->post && from->driver->post(from, target, m) == 0)
    return 0;
  rw_msg *head = atomic_load_explicit(&target->inbox, memory_order_relaxed);
  do {
    m->next = head;
  } while (!atomic_compare_exchange_weak_explicit(&target->inbox, &head, m, memory_order_release,
                                                  memory_order_relaxed));
  if (!head)
    rw_worker_wake(target); /* the first message of a batch wakes; the rest ride along */
  return 0;
}

void rw_worker_run_inbox(struct rw_worker *w)
{
  rw_msg *list = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
  rw_msg *fifo = NULL;
  while (list) { /* the stack holds newest first: reverse to run in posting order */
    rw_msg *next = list->next;
    list->next = fifo;
    fifo = list;
    list = next;
  }
  while (fifo) {
    rw_msg *next = fifo->next;
    fifo->fn(w, fifo);
    fifo = next;
  }
}
