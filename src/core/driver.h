/* Internal: the driver interface (src/drivers/), one per backend. */
#ifndef RW_DRIVER_H
#define RW_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <ringwright/file.h>
#include <ringwright/msg.h>
#include <ringwright/spawn.h>

struct rw_worker;
struct rw_conn;

struct rw_driver {
  const char *name;
  /* Runs on the worker's thread: ring or epoll set, listeners, wake fd. 0 or -errno. */
  int (*init)(struct rw_worker *w);
  int (*run)(struct rw_worker *w);
  void (*fini)(struct rw_worker *w);
  /* The connection's interest changed (paused, resumed, wants writability). */
  void (*update)(struct rw_worker *w, struct rw_conn *c);
  /* Hands the queued bytes to the kernel (rw_sendq_iov/rw_sendq_consume); sets
   * RW_CONN_WANT_WRITE when the kernel takes no more. 0 or -errno (the connection aborts). */
  int (*send)(struct rw_worker *w, struct rw_conn *c);
  /* The connection is finished: close its socket. Returns true if the slot may be reused now;
   * false if the driver calls rw_conn_release() once the kernel is done with it. */
  bool (*close)(struct rw_worker *w, struct rw_conn *c);
  /* Starts an outbound connection on c->fd (a new non-blocking socket). 0 or -errno. */
  int (*connect)(struct rw_worker *w, struct rw_conn *c, const struct sockaddr *sa, socklen_t len);
  /* Closes the worker's listening sockets: the first step of a graceful stop. */
  void (*stop_accepting)(struct rw_worker *w);
  /* 0 if this backend can run here, else -errno with a reason in `why`. */
  int (*probe)(char *why, size_t whylen);
  /* Starts a file operation; rw_fileop_complete() follows. NULL: the thread pool runs it.
   * 0 or -errno. */
  int (*file_op)(struct rw_worker *w, rw_fileop *op);
  /* Takes a connected socket the core opened (rw_conn_open) and starts reading it. 0 or -errno. */
  int (*adopt)(struct rw_worker *w, struct rw_conn *c);
  /* Calls wt->fn(wt, res) once `fd` is readable (res > 0) or the watch failed (-errno). */
  int (*watch)(struct rw_worker *w, int fd, struct rw_proc_watch *wt);
  /* Bytes the driver itself reserves per worker (buffer rings, per-connection state). */
  size_t (*budget)(const struct rw_worker *w);
  /* Delivers `m` to worker `to` from worker `from` (both on this driver) without the inbox;
   * 0, or -errno to fall back to the inbox. NULL: always the inbox. */
  int (*post)(struct rw_worker *from, struct rw_worker *to, rw_msg *m);
};

extern const struct rw_driver rw_driver_epoll;
extern const struct rw_driver rw_driver_uring;

#endif
