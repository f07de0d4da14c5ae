/* File operations (include/ringwright/file.h): one request struct, filled here, run either by
 * the driver (io_uring: an SQE) or on the thread pool (epoll: the system call itself). Both end
 * in rw_fileop_complete() on the worker's thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "worker.h"
#include "fault.h"
#include "file.h"
#include "offload.h"
#include "pool.h"

/* On a pool thread: the blocking system call. */
static void run_blocking(rw_job *j)
{
  rw_fileop *op = (rw_fileop *)j;
  ssize_t r;
  switch (op->kind) {
  case RW_FOP_OPEN: r = open(op->path, op->flags | O_CLOEXEC, op->mode); break;
  case RW_FOP_CLOSE: r = close(op->fd); break;
  case RW_FOP_READ: r = pread(op->fd, op->buf, op->len, (off_t)op->off); break;
  case RW_FOP_READV: r = preadv(op->fd, op->buf, (int)op->len, (off_t)op->off); break;
  case RW_FOP_WRITE:
    r = op->off == RW_FILE_POS ? write(op->fd, op->buf, op->len)
                               : pwrite(op->fd, op->buf, op->len, (off_t)op->off);
    break;
  case RW_FOP_WRITEV:
    r = op->off == RW_FILE_POS ? writev(op->fd, op->buf, (int)op->len)
                               : pwritev(op->fd, op->buf, (int)op->len, (off_t)op->off);
    break;
  case RW_FOP_FSYNC: r = fsync(op->fd); break;
  case RW_FOP_FDATASYNC: r = fdatasync(op->fd); break;
  case RW_FOP_STAT: r = statx(AT_FDCWD, op->path, 0, STATX_BASIC_STATS, op->buf); break;
  case RW_FOP_RENAME: r = rename(op->path, op->path2); break;
  case RW_FOP_UNLINK: r = unlink(op->path); break;
  case RW_FOP_MKDIR: r = mkdir(op->path, op->mode); break;
  default: r = -1; errno = EINVAL;
  }
  op->res = r < 0 ? -errno : r;
}

static void pool_done(rw_worker *w, rw_msg *m)
{
  (void)w;
  rw_fileop *op = (rw_fileop *)((uint8_t *)m - offsetof(rw_fileop, job.msg));
  rw_fileop_complete(op, op->res);
}

void rw_fileop_complete(rw_fileop *op, int64_t res)
{
  op->job.w->ops_inflight--;
  int fault = res >= 0 ? rw_fault(RW_FAULT_FILE, 0) : 0; /* test builds: RW_FAULTS=file=... */
  if (fault < 0)
    res = fault;
  op->done(op, res);
}

static int start(rw_worker *w, rw_fileop *op, enum rw_fileop_kind kind, rw_fileop_fn done)
{
  if (!done)
    return -EINVAL;
  op->kind = (uint8_t)kind;
  op->done = done;
  op->job.w = w;
  op->job.run = run_blocking;
  op->job.msg.fn = pool_done;
  int rc = w->driver->file_op ? w->driver->file_op(w, op) : rw_offload_submit(w, &op->job, false);
  if (!rc)
    w->ops_inflight++;
  return rc;
}

int rw_file_open(rw_worker *w, rw_fileop *op, const char *path, int flags, unsigned mode, rw_fileop_fn done)
{
  if (!path)
    return -EINVAL;
  op->path = path;
  op->flags = flags;
  op->mode = mode;
  return start(w, op, RW_FOP_OPEN, done);
}

int rw_file_close(rw_worker *w, rw_fileop *op, int fd, rw_fileop_fn done)
{
  op->fd = fd;
  return start(w, op, RW_FOP_CLOSE, done);
}

int rw_file_read(rw_worker *w, rw_fileop *op, int fd, void *out, size_t len, uint64_t off, rw_fileop_fn done)
{
  if (!out || len > INT32_MAX)
    return -EINVAL;
  op->fd = fd;
  op->buf = out;
  op->len = len;
  op->off = off;
  return start(w, op, RW_FOP_READ, done);
}

/* READV and WRITEV: the array travels in buf, its length in len. */
static int vector_op(rw_worker *w, rw_fileop *op, int kind, int fd, const struct iovec *iov, int iovcnt,
                     uint64_t off, rw_fileop_fn done)
{
  if (!iov || iovcnt < 1 || iovcnt > IOV_MAX)
    return -EINVAL;
  op->fd = fd;
  op->buf = (void *)iov;
  op->len = (size_t)iovcnt;
  op->off = off;
  return start(w, op, kind, done);
}

int rw_file_readv(rw_worker *w, rw_fileop *op, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                  rw_fileop_fn done)
{
  return vector_op(w, op, RW_FOP_READV, fd, iov, iovcnt, off, done);
}

int rw_file_write(rw_worker *w, rw_fileop *op, int fd, const void *data, size_t len, uint64_t off,
                  rw_fileop_fn done)
{
  if (!data || len > INT32_MAX)
    return -EINVAL;
  op->fd = fd;
  op->buf = (void *)data;
  op->len = len;
  op->off = off;
  return start(w, op, RW_FOP_WRITE, done);
}

int rw_file_writev(rw_worker *w, rw_fileop *op, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                   rw_fileop_fn done)
{
  return vector_op(w, op, RW_FOP_WRITEV, fd, iov, iovcnt, off, done);
}

int rw_file_fsync(rw_worker *w, rw_fileop *op, int fd, bool datasync, rw_fileop_fn done)
{
  op->fd = fd;
  return start(w, op, datasync ? RW_FOP_FDATASYNC : RW_FOP_FSYNC, done);
}

int rw_file_stat(rw_worker *w, rw_fileop *op, const char *path, struct statx *out_stx, rw_fileop_fn done)
{
  if (!path || !out_stx)
    return -EINVAL;
  op->path = path;
  op->buf = out_stx;
  return start(w, op, RW_FOP_STAT, done);
}

int rw_file_rename(rw_worker *w, rw_fileop *op, const char *from, const char *to, rw_fileop_fn done)
{
  if (!from || !to)
    return -EINVAL;
  op->path = from;
  op->path2 = to;
  return start(w, op, RW_FOP_RENAME, done);
}

int rw_file_unlink(rw_worker *w, rw_fileop *op, const char *path, rw_fileop_fn done)
{
  if (!path)
    return -EINVAL;
  op->path = path;
  return start(w, op, RW_FOP_UNLINK, done);
}

int rw_file_mkdir(rw_worker *w, rw_fileop *op, const char *path, unsigned mode, rw_fileop_fn done)
{
  if (!path)
    return -EINVAL;
  op->path = path;
  op->mode = mode;
  return start(w, op, RW_FOP_MKDIR, done);
}

/* ---- O_DIRECT buffers: a per-worker pool of page-aligned items (mmap is page-aligned and
 * every item is a multiple of 4096) ---- */

void *rw_file_dio_get(rw_worker *w)
{
  uint32_t i = rw_pool_get(&w->dio_pool);
  return i == RW_NONE ? NULL : rw_pool_at(&w->dio_pool, i);
}

void rw_file_dio_put(rw_worker *w, void *buf)
{
  if (buf)
    rw_pool_put(&w->dio_pool, (uint32_t)(((uint8_t *)buf - w->dio_pool.mem) / w->dio_pool.item_size));
}

size_t rw_file_dio_size(const rw_worker *w)
{
  return w->dio_pool.count ? w->dio_pool.item_size : 0;
}
