/* Files off the loop: open, read, write, fsync, stat, rename, unlink, mkdir, close. On io_uring
 * each is one SQE on the worker's ring (OPENAT, READ, WRITE, FSYNC, STATX, RENAMEAT, UNLINKAT,
 * MKDIRAT, CLOSE), submitted with the turn's other work; on epoll the server's thread pool runs
 * the system call and the completion comes back through the worker's inbox. Either way `done`
 * runs on the worker that asked, between I/O events.
 *
 * An operation is a struct you own (embed it in your own state): starting one never allocates.
 * The struct, and every buffer and path it names, must stay valid until `done` has run. A worker
 * that is stopping waits for its operations in flight (up to the shutdown deadline).
 *
 * O_DIRECT: open with O_DIRECT and read or write through buffers from the worker's fixed pool of
 * aligned buffers (rw_config.dio_buffers x dio_buffer_size, allocated at start). */
#ifndef RINGWRIGHT_FILE_H
#define RINGWRIGHT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_worker rw_worker;
typedef struct rw_fileop rw_fileop;
/* Defined by <sys/stat.h> with _GNU_SOURCE (or by <linux/stat.h>): declared here so that this
 * header compiles without either; rw_file_stat()'s caller needs the definition. */
struct statx;

/* `res` is what the system call returns (a descriptor, a byte count, 0) or -errno. */
typedef void (*rw_fileop_fn)(rw_fileop *op, int64_t res);

struct rw_fileop {
  /* private */
  rw_job job;
  uint8_t kind;
  int fd, flags;
  unsigned mode;
  const char *path, *path2;
  void *buf;
  size_t len;
  uint64_t off;
  int64_t res;
  rw_fileop_fn done;
  /* yours */
  void *data;
};

/* For rw_file_write()'s offset: at the file's position (with O_APPEND: at its end). */
#define RW_FILE_POS UINT64_MAX

/* Each returns 0 (`done` follows) or -errno (it does not): -EINVAL for a missing argument,
 * -EBUSY when the ring has no room this turn. `done` gets the result. */
int rw_file_open(rw_worker *w, rw_fileop *op, const char *path, int flags, unsigned mode, rw_fileop_fn done);
int rw_file_close(rw_worker *w, rw_fileop *op, int fd, rw_fileop_fn done);
/* Reads up to `len` bytes at `off` into `out` (res: bytes read, 0 at the end). */
int rw_file_read(rw_worker *w, rw_fileop *op, int fd, void *out, size_t len, uint64_t off, rw_fileop_fn done);
/* The same into iov[0..iovcnt) (READV; preadv on the pool); the array must stay valid too. */
int rw_file_readv(rw_worker *w, rw_fileop *op, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                  rw_fileop_fn done);
/* Writes up to `len` bytes at `off` (or RW_FILE_POS); res is how many: a short write is yours to
 * continue. */
int rw_file_write(rw_worker *w, rw_fileop *op, int fd, const void *data, size_t len, uint64_t off,
                  rw_fileop_fn done);
/* The same from iov[0..iovcnt) (WRITEV; pwritev/writev on the pool); the array must stay valid
 * until `done`. */
int rw_file_writev(rw_worker *w, rw_fileop *op, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                   rw_fileop_fn done);
/* fsync, or fdatasync with `datasync`. */
int rw_file_fsync(rw_worker *w, rw_fileop *op, int fd, bool datasync, rw_fileop_fn done);
/* statx(AT_FDCWD, path, 0, STATX_BASIC_STATS) into *out_stx. */
int rw_file_stat(rw_worker *w, rw_fileop *op, const char *path, struct statx *out_stx, rw_fileop_fn done);
int rw_file_rename(rw_worker *w, rw_fileop *op, const char *from, const char *to, rw_fileop_fn done);
int rw_file_unlink(rw_worker *w, rw_fileop *op, const char *path, rw_fileop_fn done);
int rw_file_mkdir(rw_worker *w, rw_fileop *op, const char *path, unsigned mode, rw_fileop_fn done);

/* An O_DIRECT buffer (aligned to 4096, rw_file_dio_size() bytes) from the worker's pool, or NULL
 * when every one is in use (or the pool is empty: rw_config.dio_buffers 0). */
void *rw_file_dio_get(rw_worker *w);
void rw_file_dio_put(rw_worker *w, void *buf);
size_t rw_file_dio_size(const rw_worker *w);

#ifdef __cplusplus
}
#endif

#endif
