/* Files sent on a connection (rw_conn_send_file): read off the loop with rw_file_readv() (io_uring:
 * READV on the worker's own ring; epoll: the thread pool, completing through the worker's
 * inbox) straight into send chunks that then join the send chain (over TLS each chunk is sealed
 * into records instead). One read in flight per connection, filling up to RW_FILE_IOV chunks
 * but only what the connection's high water mark and the slab's spare allow: a client that stops
 * reading stops the disk too. Requests come from a fixed per-worker table; nothing here
 * allocates after start. */
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
  c->file =
      (struct rw_conn_file){.fd = fd, .off = off, .left = len, .done = done, .data = data, .req = RW_NONE};
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

/* The bytes read into each chunk: all of it, or over TLS what one record sealed into a fresh
 * chunk carries (one record per chunk read, none split across chunks). */
static size_t piece_size(const struct rw_conn *c)
{
  return c->transport->room(c, 1);
}

/* How many chunks the next read fills: the rest of the file, up to what the connection may
 * queue (its high water mark) and what the slab can spare beyond the dispatch reserve. Over
 * TLS each chunk read is sealed into another chunk afterwards, so half of that. */
static uint32_t read_chunks(const struct rw_conn *c)
{
  const struct rw_worker *w = c->w;
  size_t chunk = piece_size(c);
  uint64_t want = (c->file.left + chunk - 1) / chunk;
  size_t unsent = rw_conn_unsent(c);
  size_t room = w->srv->cfg.send_high_water > unsent ? w->srv->cfg.send_high_water - unsent : 0;
  uint64_t by_mark = room / chunk ? room / chunk : 1;
  uint32_t spare = w->send_pool.nfree > w->send_reserve ? w->send_pool.nfree - w->send_reserve : 0;
  if (c->transport != &rw_transport_plain)
    spare = spare > 2 ? (spare - 2) / 2 : 0;
  uint64_t n = want < by_mark ? want : by_mark;
  n = n < spare ? n : spare;
  return (uint32_t)(n < RW_FILE_IOV ? n : RW_FILE_IOV);
}

static void put_chunks(struct rw_worker *w, const struct rw_file_req *r, uint32_t from)
{
  for (uint32_t i = from; i < r->nchunks; i++)
    rw_pool_put(&w->send_pool, r->chunks[i]);
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
  uint32_t n = read_chunks(c);
  if (!n)
    return true; /* a chunk coming back resumes paused connections */
  uint32_t ri = w->file_free[--w->nfile_free];
  struct rw_file_req *r = &w->file_reqs[ri];
  size_t chunk = piece_size(c);
  uint64_t left = c->file.left;
  r->conn = rw_conn_handle(c);
  r->idx = ri;
  r->nchunks = n;
  for (uint32_t i = 0; i < n; i++) {
    r->chunks[i] = rw_pool_get(&w->send_pool); /* read_chunks() counted them free */
    r->iov[i] = (struct iovec){rw_pool_at(&w->send_pool, r->chunks[i]), left < chunk ? (size_t)left : chunk};
    left -= r->iov[i].iov_len;
  }
  c->file.req = ri;
  int rc = rw_file_readv(w, &r->op, c->file.fd, r->iov, (int)n, c->file.off, read_done);
  if (rc < 0) {
    c->file.req = RW_NONE;
    put_chunks(w, r, 0);
    w->file_free[w->nfile_free++] = ri;
    finish(c, rc);
    rw_conn_abort(c, rc);
    return false;
  }
  return true;
}

/* The bytes read, chunk by chunk, onto the chain (over TLS: sealed into records from each
 * chunk, which then goes back). */
static int deliver(struct rw_conn *c, const struct rw_file_req *r, size_t res)
{
  struct rw_worker *w = c->w;
  uint32_t i = 0;
  int rc = 0;
  for (; i < r->nchunks && res && !rc; i++) {
    size_t k = res < r->iov[i].iov_len ? res : r->iov[i].iov_len;
    res -= k;
    if (c->transport != &rw_transport_plain) {
      const struct iovec iov = {r->iov[i].iov_base, k};
      rc = c->transport->write(c, &iov, 1);
      rw_pool_put(&w->send_pool, r->chunks[i]);
    } else {
      rw_sendq_append_chunk(w, c, r->chunks[i], k);
    }
  }
  put_chunks(w, r, i); /* those a short read left empty */
  return rc;
}

static void read_done(rw_fileop *op, int64_t res)
{
  struct rw_file_req *r = (struct rw_file_req *)op;
  struct rw_worker *w = op->job.w;
  struct rw_conn *c = rw_conn_from_handle(w, r->conn);
  w->file_free[w->nfile_free++] = r->idx;
  w->freed_resources = true; /* paused connections may go on: a request is free again */
  if (!c || c->file.req != r->idx) {
    put_chunks(w, r, 0); /* the connection went away meanwhile */
    return;
  }
  c->file.req = RW_NONE;
  int rc = res < 0 ? (int)res : res == 0 ? -ENODATA : 0; /* ENODATA: shorter than promised */
  if (rc)
    put_chunks(w, r, 0);
  else
    rc = deliver(c, r, (size_t)res);
  if (rc) {
    finish(c, rc);
    rw_conn_abort(c, rc);
    return;
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
