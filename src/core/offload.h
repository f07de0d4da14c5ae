/* Internal: the offload (offload.c), the server's thread pool for what would block a loop. */
#ifndef RW_OFFLOAD_H
#define RW_OFFLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ringwright/msg.h>
#include <ringwright/server.h>

#define RW_OFFLOAD_MAX_THREADS 64

struct rw_offload {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  rw_job *head, *tail;
  uint32_t waiting, limit; /* jobs queued (not yet running); `limit` for bounded submits */
  pthread_t thread[RW_OFFLOAD_MAX_THREADS];
  unsigned nthreads;
  bool stop;
};
int rw_offload_start(rw_server *s);
void rw_offload_stop(rw_server *s);
/* Queues j->run for a pool thread; j->msg.fn then runs on `w`. `bounded`: refuse with -EAGAIN
 * when the queue holds `limit` jobs. */
int rw_offload_submit(struct rw_worker *w, rw_job *j, bool bounded);
/* Jobs queued now, not yet running. */
uint32_t rw_offload_depth(rw_server *s);

#endif
