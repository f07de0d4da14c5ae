/* The server's thread pool: a few threads (rw_config.pool_threads, signals blocked, not pinned)
 * for work that would block a loop: file operations on epoll, rw_task_submit() tasks and
 * name resolution. A job is an intrusive struct its owner embeds, so queueing never allocates;
 * when run() returns, the job's message is posted back to the worker that submitted it. */
#include <errno.h>
#include <pthread.h>

#include "offload.h"
#include "worker.h"

static void *pool_main(void *arg)
{
  struct rw_offload *p = arg;
  pthread_setname_np(pthread_self(), "rw-pool");
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (!p->head && !p->stop)
      pthread_cond_wait(&p->cond, &p->lock);
    if (!p->head)
      break;
    rw_job *j = p->head;
    p->head = j->next;
    if (!p->head)
      p->tail = NULL;
    p->waiting--;
    pthread_mutex_unlock(&p->lock);
    j->run(j);
    rw_worker_post(NULL, j->w->srv, j->w->id, &j->msg);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int rw_offload_start(rw_server *s)
{
  struct rw_offload *p = &s->offload;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  p->head = p->tail = NULL;
  p->waiting = 0;
  p->limit = s->cfg.task_queue;
  p->stop = false;
  for (p->nthreads = 0; p->nthreads < s->cfg.pool_threads; p->nthreads++)
    if (pthread_create(&p->thread[p->nthreads], NULL, pool_main, p))
      return -EAGAIN;
  return 0;
}

/* Runs once every worker has stopped: jobs still queued are dropped (nobody waits for them),
 * jobs running are finished (a stuck getaddrinfo delays the exit by its own timeout). */
void rw_offload_stop(rw_server *s)
{
  struct rw_offload *p = &s->offload;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  p->head = p->tail = NULL;
  p->waiting = 0;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->nthreads; i++)
    pthread_join(p->thread[i], NULL);
  p->nthreads = 0;
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->lock);
}

int rw_offload_submit(struct rw_worker *w, rw_job *j, bool bounded)
{
  struct rw_offload *p = &w->srv->offload;
  j->next = NULL;
  j->w = w;
  pthread_mutex_lock(&p->lock);
  if (bounded && p->waiting >= p->limit) {
    pthread_mutex_unlock(&p->lock);
    RW_STAT_ADD(w->stats.offload_rejected, 1);
    return -EAGAIN;
  }
  if (p->tail)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  p->waiting++;
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
  return 0;
}

uint32_t rw_offload_depth(rw_server *s)
{
  struct rw_offload *p = &s->offload;
  if (!p->nthreads)
    return 0;
  pthread_mutex_lock(&p->lock);
  uint32_t n = p->waiting;
  pthread_mutex_unlock(&p->lock);
  return n;
}
