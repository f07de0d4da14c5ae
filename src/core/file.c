/* Files sent on a connection (rw_conn_send_file): read off the loop with rw_file_read(), a send
 * chunk at a time, straight into the chunk that then joins the send chain (over TLS the chunk
 * is sealed into records instead) (io_uring: READ on
 * the worker's own ring; epoll: the thread pool, completing through the worker's inbox). One
 * read in flight per connection, and only while the connection is under its high water mark:
 * a client that stops reading stops the disk too. Requests come from a fixed per-worker table;
 * nothing here allocates after start. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

int rw_conn_send_file(rw_conn *c, int fd, uint64_t off, uint64_t len, rw_file_done_fn done, void *data)
{
  if (c->flags & (RW_CONN_ABORT | RW_CONN_CLOSING))
    return -EPIPE;
  if (!done)
    return -EINVAL;
  if (c->file.done || c->file.req != RW_NONE || c->stream)
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

static void read_done(rw_fileop *op, int64_t res);

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
  /* Over TLS the read's chunk is sealed into records afterwards: two more chunks must be there
   * then, beyond the reserve other connections' dispatches count on. */
  if (c->tls && w->send_pool.nfree < w->send_reserve + 3)
    return true; /* a chunk coming back resumes paused connections */
  uint32_t chunk = rw_pool_get(&w->send_pool);
  if (chunk == RW_NONE)
    return true;
  uint32_t ri = w->file_free[--w->nfile_free];
  struct rw_file_req *r = &w->file_reqs[ri];
  size_t n = w->send_pool.item_size < c->file.left ? w->send_pool.item_size : (size_t)c->file.left;
  r->conn = rw_conn_handle(c);
  r->idx = ri;
  r->chunk = chunk;
  c->file.req = ri;
  int rc = rw_file_read(w, &r->op, c->file.fd, rw_pool_at(&w->send_pool, chunk), n, c->file.off,
                        read_done);
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

static void read_done(rw_fileop *op, int64_t res)
{
  struct rw_file_req *r = (struct rw_file_req *)op;
  struct rw_worker *w = op->job.w;
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
    finish(c, res < 0 ? (int)res : -ENODATA); /* ENODATA: the file is shorter than promised */
    rw_conn_abort(c, res < 0 ? (int)res : -ENODATA);
    return;
  }
  if (c->tls) {
    /* The records need the plaintext: sealed from the chunk into the chain, then it goes back. */
    const struct iovec iov = {rw_pool_at(&w->send_pool, chunk), (size_t)res};
    int rc = rw_tls_write(c, &iov, 1);
    rw_pool_put(&w->send_pool, chunk);
    if (rc < 0) {
      finish(c, rc);
      rw_conn_abort(c, rc);
      return;
    }
  } else {
    rw_sendq_append_chunk(w, c, chunk, (size_t)res);
  }
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
