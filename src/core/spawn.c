/* Child processes (include/ringwright/spawn.h). The child's stdio are AF_UNIX stream sockets,
 * blocking on its side (programs expect that), non-blocking connections on ours; its exit comes
 * from a pidfd the driver watches, then waitid(P_PIDFD) reaps it. Without pidfds (ENOSYS), a
 * timer of the worker's polls waitid(WNOHANG) every 50 ms: no thread is held, a stopping
 * worker is never kept waiting past its deadline, and only this thread reaps, so the pid stays
 * the child's until then. posix_spawn's file actions allocate a little inside libc: spawning is
 * not a hot path. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ringwright/spawn.h>

#include "driver.h"
#include "conn.h"
#include "fault.h"
#include "worker.h"

extern char **environ;

/* Reaps the child (it has exited) and reports its status in waitpid's encoding. */
static void reap(rw_proc *p, idtype_t type, id_t id)
{
  siginfo_t si = {0};
  int status = 0;
  if (waitid(type, id, &si, WEXITED) < 0) {
    status = 0xff << 8; /* cannot be learnt: reported as exit status 255 */
  } else if (si.si_code == CLD_EXITED) {
    status = (si.si_status & 0xff) << 8;
  } else {
    status = (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
  }
  p->pid = 0;
  p->w->ops_inflight--;
  p->on_exit(p, status);
}

static void exited(struct rw_proc_watch *wt, int res)
{
  rw_proc *p = (rw_proc *)wt;
  if (res < 0) /* the watch failed: the child is ended so that its status can be had */
    pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
  int pidfd = p->pidfd;
  p->pidfd = -1;
  reap(p, P_PIDFD, (id_t)pidfd);
  close(pidfd);
}

#define POLL_MS 50

/* Without pidfds: has the child exited? (WNOWAIT: reap() collects it.) */
static void poll_exit(rw_timer *t)
{
  rw_proc *p = t->data;
  siginfo_t si = {0};
  if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && !si.si_pid) {
    rw_timer_arm(p->w, t, POLL_MS);
    return;
  }
  reap(p, P_PID, (id_t)p->pid);
}

/* Our end of a pair becomes a connection; -ENOSPC if no slot. */
static int adopt(struct rw_worker *w, int fd, const rw_proto *proto, const void *handlers, rw_handle *out_h)
{
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  struct rw_conn *c = rw_conn_open(w, proto, handlers, fd);
  if (!c) {
    close(fd);
    return -ENOSPC;
  }
  *out_h = rw_conn_handle(c);
  int rc = w->driver->adopt(w, c);
  if (rc < 0)
    rw_conn_abort(c, rc);
  return rc;
}

static int start_child(rw_proc *p, char *const argv[], int io, int err)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGINT);
  sigaddset(&dfl, SIGTERM);
  sigaddset(&dfl, SIGPIPE);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, io, 0);
  posix_spawn_file_actions_adddup2(&fa, io, 1);
  posix_spawn_file_actions_adddup2(&fa, err, 2);
  posix_spawnattr_init(&attr);
  /* Workers block SIGINT/SIGTERM (worker 0 reads them from a signalfd): the child must not. */
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dfl);
  int rc = -posix_spawnp(&p->pid, argv[0], &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return rc;
}

int rw_spawn(rw_worker *w, rw_proc *p, char *const argv[], const rw_proto *proto, const void *handlers,
             rw_proc_exit_fn on_exit)
{
  if (!p || !argv || !argv[0] || !on_exit || !w->driver->adopt || !w->driver->watch ||
      !rw_server_speaks(w->srv, proto))
    return -EINVAL;
  p->pid = 0; /* no child until there is one (rw_proc_kill) */
  p->pidfd = -1;
  if (w->stopping)
    return -ESHUTDOWN;
  if (w->nconn_free < 2)
    return -ENOSPC;
  int io[2], err[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io) < 0)
    return -errno;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, err) < 0) {
    int e = -errno;
    close(io[0]);
    close(io[1]);
    return e;
  }
  int rc = start_child(p, argv, io[1], err[1]);
  close(io[1]);
  close(err[1]);
  if (!rc) {
    int injected = rw_fault(RW_FAULT_PIDFD, 0);
    p->pidfd = injected ? -1 : pidfd_open(p->pid, 0);
    rc = injected ? injected : p->pidfd < 0 ? -errno : 0;
    if (rc == -ENOSYS) /* an older kernel: the worker polls for the exit (below) */
      rc = 0;
    else if (rc) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, NULL, 0);
    }
  }
  if (rc) {
    p->pid = 0; /* (rw_proc_kill: no child) */
    close(io[0]);
    close(err[0]);
    return rc;
  }
  p->w = w;
  p->on_exit = on_exit;
  p->watch.fn = exited;
  /* Slots were counted above: these cannot fail for want of one. */
  adopt(w, io[0], proto, handlers, &p->io);
  adopt(w, err[0], proto, handlers, &p->err);
  if (p->pidfd < 0) {
    rw_timer_init(&p->poll, poll_exit, p);
    rw_timer_arm(w, &p->poll, POLL_MS);
    w->ops_inflight++; /* (a stopping worker waits for it, up to its deadline) */
    return 0;
  }
  rc = w->driver->watch(w, p->pidfd, &p->watch);
  if (rc < 0) {
    /* Without a watch the exit would never be heard: stop the child, reap it, drop its pipes. */
    struct rw_conn *c;
    if ((c = rw_conn_from_handle(w, p->io)))
      rw_conn_abort(c, rc);
    if ((c = rw_conn_from_handle(w, p->err)))
      rw_conn_abort(c, rc);
    pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
    waitpid(p->pid, NULL, 0);
    close(p->pidfd);
    p->pidfd = -1;
    p->pid = 0;
    return rc;
  }
  w->ops_inflight++;
  return 0;
}

int rw_proc_kill(rw_proc *p, int sig)
{
  if (p->pidfd >= 0)
    return pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
  if (p->pid > 0) /* no pidfd: the child is reaped only on this thread, its pid is still its own */
    return kill(p->pid, sig) < 0 ? -errno : 0;
  return -ESRCH;
}
