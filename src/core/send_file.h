/* Internal: rw_conn_send_file() (send_file.c), a stream reading into send chunks, one read at a
 * time. */
#ifndef RW_SEND_FILE_H
#define RW_SEND_FILE_H

#include <stdint.h>
#include <sys/uio.h>

#include <ringwright/conn.h>
#include <ringwright/file.h>

struct rw_file_stream {
  int fd;
  uint64_t off, left;
  uint32_t req; /* the read in flight, or RW_NONE */
  rw_file_done_fn done;
  void *data;
};
#define RW_FILE_IOV 16 /* send chunks one read may fill (16 x 16 KiB: the high water mark) */
struct rw_file_req {
  rw_fileop op;
  rw_handle conn;
  uint32_t idx, nchunks;
  uint32_t chunks[RW_FILE_IOV];
  struct iovec iov[RW_FILE_IOV];
};

#endif
