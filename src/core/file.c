/* Files sent on a connection (rw_conn_send_file): read off the loop, a send chunk at a time,
 * straight into the chunk that then joins the send chain. io_uring reads with IORING_OP_READ on
 * the worker's own ring; epoll hands the read to a small thread pool whose completions come
 * back through the worker's message inbox. One read in flight per connection, and only while
 * the connection is under its high water mark: a client that stops reading stops the disk too.
 * Requests come from a fixed per-worker table; nothing here allocates after start. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

/* ---- the epoll backend's pool: a few threads doing pread ---- */

#define POOL_THREADS 2

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct rw_file_req *head, *tail;
  pthread_t thread[POOL_THREADS];
  unsigned nthreads;
  bool stop;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *pool_main(void *arg)
{
  (void)arg;
  pthread_setname_np(pthread_self(), "rw-file"); /* not a worker: not pinned */
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    while (!pool.head && !pool.stop)
      pthread_cond_wait(&pool.cond, &pool.lock);
    if (!pool.head)
      break;
    struct rw_file_req *r = pool.head;
    pool.head = r->next;
    if (!pool.head)
      pool.tail = NULL;
    pthread_mutex_unlock(&pool.lock);
    ssize_t n = pread(r->fd, r->buf, r->len, (off_t)r->off);
    r->res = n < 0 ? -errno : (int)n;
    rw_worker_post(NULL, r->w->srv, r->w->id, &r->msg);
    pthread_mutex_lock(&pool.lock);
  }
  pthread_mutex_unlock(&pool.lock);
  return NULL;
}

int rw_file_pool_start(void)
{
  pool.stop = false;
  for (; pool.nthreads < POOL_THREADS; pool.nthreads++)
    if (pthread_create(&pool.thread[pool.nthreads], NULL, pool_main, NULL))
      return -EAGAIN;
  return 0;
}

/* Lets the threads finish the reads they hold (their chunks live until the server is
 * destroyed) and joins them. */
void rw_file_pool_stop(void)
{
  pthread_mutex_lock(&pool.lock);
  pool.stop = true;
  pool.head = pool.tail = NULL; /* queued reads are dropped: their workers have stopped */
  pthread_cond_broadcast(&pool.cond);
  pthread_mutex_unlock(&pool.lock);
  for (unsigned i = 0; i < pool.nthreads; i++)
    pthread_join(pool.thread[i], NULL);
  pool.nthreads = 0;
}

static void pool_done(rw_worker *w, rw_msg *m)
{
  rw_file_read_done(w, m->data, ((struct rw_file_req *)m->data)->res);
}

static int pool_submit(struct rw_file_req *r)
{
  r->next = NULL;
  r->msg.fn = pool_done;
  r->msg.data = r;
  pthread_mutex_lock(&pool.lock);
  if (pool.tail)
    pool.tail->next = r;
  else
    pool.head = r;
  pool.tail = r;
  pthread_cond_signal(&pool.cond);
  pthread_mutex_unlock(&pool.lock);
  return 0;
}

/* ---- per connection ---- */

int rw_conn_send_file(rw_conn *c, int fd, uint64_t off, uint64_t len, rw_file_done_fn done, void *data)
{
  if (c->flags & (RW_CONN_ABORT | RW_CONN_CLOSING))
    return -EPIPE;
  if (!done)
    return -EINVAL;
  if (c->file.done || c->file.req != RW_NONE || c->stream || c->tls)
    return -EBUSY;
  if (!len) {
    done(c, 0, data);
    return 0;
  }
  c->file = (struct rw_conn_file){.fd = fd, .off = off, .left = len, .done = done, .data = data, .req = RW_NONE};
  rw_conn_hold(c); /* no dispatch meanwhile; rw_file_pump() runs whenever there is room */
  return 0;
}

static void finish(struct rw_conn *c, int err)
{
  rw_file_done_fn done = c->file.done;
  void *data = c->file.data;
  c->file.done = NULL;
  c->file.left = 0;
  if (done)
    done(c, err, data);
}

/* Starts the next read if there is room and none in flight. Returns true while the file is
 * not done (dispatch stays paused). */
bool rw_file_pump(struct rw_conn *c)
{
  struct rw_worker *w = c->w;
  if (c->file.req != RW_NONE)
    return true;
  if (!c->file.left)
    return false;
  if (!w->nfile_free)
    return true; /* every request busy: a completion will call again */
  uint32_t chunk = rw_pool_get(&w->send_pool);
  if (chunk == RW_NONE)
    return true;
  uint32_t ri = w->file_free[--w->nfile_free];
  struct rw_file_req *r = &w->file_reqs[ri];
  size_t n = w->send_pool.item_size < c->file.left ? w->send_pool.item_size : (size_t)c->file.left;
  *r = (struct rw_file_req){.w = w, .conn = rw_conn_handle(c), .idx = ri, .chunk = chunk,
                            .fd = c->file.fd, .off = c->file.off, .len = n,
                            .buf = rw_pool_at(&w->send_pool, chunk)};
  c->file.req = ri;
  int rc = w->driver->read_file ? w->driver->read_file(w, r) : pool_submit(r);
  if (rc < 0) {
    c->file.req = RW_NONE;
    rw_pool_put(&w->send_pool, chunk);
    w->file_free[w->nfile_free++] = ri;
    finish(c, rc);
    rw_conn_abort(c, rc);
    return false;
  }
  return true;
}

void rw_file_read_done(struct rw_worker *w, struct rw_file_req *r, int res)
{
  struct rw_conn *c = rw_conn_from_handle(w, r->conn);
  uint32_t chunk = r->chunk;
  w->file_free[w->nfile_free++] = r->idx;
  w->freed_resources = true; /* paused connections may go on: a request is free again */
  if (!c || c->file.req != r->idx) {
    rw_pool_put(&w->send_pool, chunk); /* the connection went away meanwhile */
    return;
  }
  c->file.req = RW_NONE;
  if (res <= 0) {
    rw_pool_put(&w->send_pool, chunk);
    finish(c, res < 0 ? res : -ENODATA); /* ENODATA: the file is shorter than promised */
    rw_conn_abort(c, res < 0 ? res : -ENODATA);
    return;
  }
  rw_sendq_append_chunk(w, c, chunk, (size_t)res);
  c->file.off += (uint64_t)res;
  c->file.left -= (uint64_t)res;
  if (!c->file.left)
    finish(c, 0);
  rw_conn_mark_dirty(c);
}

void rw_file_conn_closing(struct rw_conn *c)
{
  if (c->file.done)
    finish(c, -ECONNABORTED);
}
