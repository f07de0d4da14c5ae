/* Child processes: posix_spawn with the child's stdin+stdout on one connection and its stderr
 * on another (AF_UNIX socket pairs, so both drivers read them like any socket, running the
 * protocol you give), and its exit status delivered as an event on the worker that spawned it
 * (a pidfd watched by the loop: no SIGCHLD handler, no waitpid polling). On a kernel without
 * pidfds (before Linux 5.3) the worker looks every 50 ms instead (waitid with WNOHANG, on a
 * timer of its own) and reaps the child once it has exited. */
#ifndef RINGWRIGHT_SPAWN_H
#define RINGWRIGHT_SPAWN_H

#include <sys/types.h>

#include "conn.h"
#include "timer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_proc rw_proc;
/* `status` as waitpid(2) reports it: WIFEXITED/WEXITSTATUS, WIFSIGNALED/WTERMSIG apply. */
typedef void (*rw_proc_exit_fn)(rw_proc *p, int status);

struct rw_proc {
  /* private */
  struct rw_proc_watch {
    void (*fn)(struct rw_proc_watch *wt, int res);
  } watch;
  rw_worker *w;
  int pidfd; /* -1 without pidfds: `poll` then looks for the exit */
  rw_timer poll;
  rw_proc_exit_fn on_exit;
  /* the child */
  pid_t pid;
  rw_handle io;  /* its stdin and stdout: what you write it reads, what it prints you receive */
  rw_handle err; /* its stderr */
  /* yours */
  void *data;
};

/* Starts argv[0] (searched in PATH) with `argv` and the server's environment, signals unblocked
 * and at their defaults. Both connections run `proto` with `handlers` (rw_conn_from_handle(w,
 * p->io) reaches them); `on_exit` runs once the child has exited and been reaped. The struct is
 * yours and must stay valid until then. 0, or -errno: -EINVAL when `proto` is neither served by
 * a listener nor declared (rw_server_use_proto), -ENOSPC when the worker has no two free
 * connection slots, -ENOENT and others from posix_spawn. */
int rw_spawn(rw_worker *w, rw_proc *p, char *const argv[], const rw_proto *proto, const void *handlers,
             rw_proc_exit_fn on_exit);
/* A child is an operation in flight: a stopping worker waits for its exit (up to the stop
 * deadline) and does not signal it; send it a signal yourself when the server stops. */

/* Sends `sig` to the child (through its pidfd: never to a recycled pid; without pidfds, by pid,
 * which is safe from the worker's thread: only it reaps the child). 0 or -errno. */
int rw_proc_kill(rw_proc *p, int sig);

#ifdef __cplusplus
}
#endif

#endif
