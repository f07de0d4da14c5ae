/* Files sent on a connection (rw_conn_send_file): a stream (rw_conn_stream) whose function reads
 * the file with rw_file_readv() (io_uring: READV on the worker's own ring; epoll: the thread
 * pool, completing through the worker's inbox) straight into send chunks that then join the send
 * chain (through any other transport than the plain one, each chunk read is written through it,
 * TLS sealing it into records, and goes back). One read in flight per connection, filling up to
 * RW_FILE_IOV chunks but only the room the stream is offered and the slab's spare: a client that
 * stops reading stops the disk too. The stream's state and its reads come from fixed per-worker
 * tables; nothing here allocates after start. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "pool.h"
#include "send_file.h"
#include "sendq.h"
#include "transport.h"
#include "worker.h"

/* The stream ends (its function is not called again) and its owner hears of it. */
static void finish(struct rw_conn *c, struct rw_file_stream *f, int err)
{
  rw_file_done_fn done = f->done;
  f->done = NULL;
  f->left = 0;
  rw_conn_stream_end(c);
  if (done)
    done(c, err, f->data);
}

static void read_done(rw_fileop *op, int64_t res);

/* The bytes read into each chunk: what the transport carries in one fresh chunk (plain: all of
 * it; TLS: one record's worth, so that each chunk read is sealed into one record). */
static size_t piece_size(const struct rw_conn *c)
{
  return c->transport->room(c, 1);
}

/* How many chunks the next read fills: the rest of the file, up to the room the stream was
 * offered (at least one piece) and what the slab can spare beyond the dispatch reserve. */
static uint32_t read_chunks(const struct rw_conn *c, const struct rw_file_stream *f, size_t room)
{
  const struct rw_worker *w = c->w;
  size_t piece = piece_size(c);
  uint64_t want = (f->left + piece - 1) / piece;
  uint64_t by_room = room / piece ? room / piece : 1;
  uint32_t spare = w->send_pool.nfree > w->send_reserve ? w->send_pool.nfree - w->send_reserve : 0;
  uint64_t n = want < by_room ? want : by_room;
  n = n < spare ? n : spare;
  return (uint32_t)(n < RW_FILE_IOV ? n : RW_FILE_IOV);
}

static void put_chunks(struct rw_worker *w, const struct rw_file_req *r, uint32_t from)
{
  for (uint32_t i = from; i < r->nchunks; i++)
    rw_pool_put(&w->send_pool, r->chunks[i]);
}

/* Starts the next read if the room allows one: 0 (started, or waiting for a request or chunks:
 * a completion or a chunk coming back calls again), or -errno. */
static int read_next(struct rw_conn *c, struct rw_file_stream *f, size_t room)
{
  struct rw_worker *w = c->w;
  uint32_t n = w->nfile_free ? read_chunks(c, f, room) : 0;
  if (!n)
    return 0;
  uint32_t ri = w->file_free[--w->nfile_free];
  struct rw_file_req *r = &w->file_reqs[ri];
  size_t piece = piece_size(c);
  uint64_t left = f->left;
  r->conn = rw_conn_handle(c);
  r->idx = ri;
  r->nchunks = n;
  for (uint32_t i = 0; i < n; i++) {
    r->chunks[i] = rw_pool_get(&w->send_pool); /* read_chunks() counted them free */
    r->iov[i] = (struct iovec){rw_pool_at(&w->send_pool, r->chunks[i]), left < piece ? (size_t)left : piece};
    left -= r->iov[i].iov_len;
  }
  f->req = ri;
  int rc = rw_file_readv(w, &r->op, f->fd, r->iov, (int)n, f->off, read_done);
  if (rc < 0) {
    f->req = RW_NONE;
    put_chunks(w, r, 0);
    w->file_free[w->nfile_free++] = ri;
  }
  return rc;
}

/* The stream's function: a read at a time; `room` 0: the connection went first. */
static int file_more(rw_conn *c, void *data, size_t room)
{
  struct rw_file_stream *f = data;
  if (!room) {
    finish(c, f, -ECONNABORTED); /* (a read in flight finds its connection gone) */
    return 0;
  }
  if (f->req != RW_NONE)
    return 1; /* its completion marks the connection dirty */
  int rc = read_next(c, f, room);
  if (rc < 0) {
    finish(c, f, rc);
    rw_conn_abort(c, rc);
    return rc;
  }
  return 1;
}

int rw_conn_send_file(rw_conn *c, int fd, uint64_t off, uint64_t len, rw_file_done_fn done, void *data)
{
  if (c->flags & (RW_CONN_ABORT | RW_CONN_CLOSING))
    return -EPIPE;
  if (!done)
    return -EINVAL;
  if (c->stream)
    return -EBUSY;
  if (!len) {
    done(c, 0, data);
    return 0;
  }
  struct rw_file_stream *f = &c->w->file_streams[c->idx];
  *f = (struct rw_file_stream){.fd = fd, .off = off, .left = len, .done = done, .data = data, .req = RW_NONE};
  rw_conn_stream(c, file_more, f);
  return 0;
}

/* The bytes read, chunk by chunk, onto the chain: the plain transport takes each chunk as it is;
 * any other writes it through (TLS: sealed into a record), and the chunk goes back. */
static int deliver(struct rw_conn *c, const struct rw_file_req *r, size_t res)
{
  struct rw_worker *w = c->w;
  uint32_t i = 0;
  int rc = 0;
  for (; i < r->nchunks && res && !rc; i++) {
    size_t k = res < r->iov[i].iov_len ? res : r->iov[i].iov_len;
    res -= k;
    if (c->transport == &rw_transport_plain) {
      rw_sendq_append_chunk(w, c, r->chunks[i], k);
    } else {
      const struct iovec iov = {r->iov[i].iov_base, k};
      rc = c->transport->write(c, &iov, 1);
      rw_pool_put(&w->send_pool, r->chunks[i]);
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
  struct rw_file_stream *f = c ? &w->file_streams[c->idx] : NULL;
  w->file_free[w->nfile_free++] = r->idx;
  w->freed_resources = true; /* paused connections may go on: a request is free again */
  if (!c || f->req != r->idx) {
    put_chunks(w, r, 0); /* the connection went away meanwhile */
    return;
  }
  f->req = RW_NONE;
  int rc = res < 0 ? (int)res : res == 0 ? -ENODATA : 0; /* ENODATA: shorter than promised */
  if (rc)
    put_chunks(w, r, 0);
  else
    rc = deliver(c, r, (size_t)res);
  if (rc) {
    finish(c, f, rc);
    rw_conn_abort(c, rc);
    return;
  }
  f->off += (uint64_t)res;
  f->left -= (uint64_t)res;
  if (!f->left)
    finish(c, f, 0);
  rw_conn_mark_dirty(c);
}
