/* Internal: file operations (file.c) behind include/ringwright/file.h. */
#ifndef RW_FILE_H
#define RW_FILE_H

#include <stdint.h>

#include <ringwright/file.h>

enum rw_fileop_kind {
  RW_FOP_OPEN = 1,
  RW_FOP_CLOSE,
  RW_FOP_READ,
  RW_FOP_READV,
  RW_FOP_WRITE,
  RW_FOP_WRITEV,
  RW_FOP_FSYNC,
  RW_FOP_FDATASYNC,
  RW_FOP_STAT,
  RW_FOP_RENAME,
  RW_FOP_UNLINK,
  RW_FOP_MKDIR,
};
/* The driver finished `op` (io_uring) with `res`. */
void rw_fileop_complete(rw_fileop *op, int64_t res);

#endif
