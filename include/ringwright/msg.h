/* Cross-worker messages: run a function on another worker's thread. The message is a struct
 * you own (embed it in your own state), so posting never allocates; it must stay valid until
 * its function has run. io_uring workers deliver it with IORING_OP_MSG_RING straight into the
 * target's completion queue; otherwise it goes on the target's lock-free inbox and the target is
 * woken through its eventfd. */
#ifndef RINGWRIGHT_MSG_H
#define RINGWRIGHT_MSG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_worker rw_worker;
typedef struct rw_server rw_server;
typedef struct rw_msg rw_msg;
typedef void (*rw_msg_fn)(rw_worker *to, rw_msg *m);

struct rw_msg {
  rw_msg *next;  /* private: the inbox link */
  rw_worker *to; /* private: the target, for a delivery that must be retried */
  rw_msg_fn fn;
  void *data; /* yours */
};

/* Work for the server's thread pool (file operations on epoll, tasks, name resolution): private
 * to the structs that embed it (rw_fileop, rw_task, rw_dns). run() runs on a pool thread, then
 * msg.fn on worker `w`. */
typedef struct rw_job rw_job;
struct rw_job {
  rw_msg msg;
  rw_job *next;
  rw_worker *w;
  void (*run)(rw_job *j);
};

/* Runs m->fn(worker `to`, m) on worker `to`'s thread, soon. `from` is the calling worker, or
 * NULL from a thread that is no worker. 0, or -EINVAL for an unknown worker. */
int rw_worker_post(rw_worker *from, rw_server *s, unsigned to, rw_msg *m);
/* How many workers the server runs (known from rw_server_create() on). */
unsigned rw_server_workers(const rw_server *s);

#ifdef __cplusplus
}
#endif

#endif
