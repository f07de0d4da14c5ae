/* Whether this kernel lets a process use io_uring: the tests that need it skip (exit 77 for
 * programs and scripts, cr_skip_test in Criterion) where io_uring_setup fails with ENOSYS (a
 * kernel without it) or EPERM (io_uring_disabled, a seccomp policy, tests/deny_uring). Any other
 * failure is not a reason to skip: the tests then run and say what went wrong. */
#ifndef RW_TEST_URING_H
#define RW_TEST_URING_H

#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Sets up a one-entry ring and closes it: 0 with `p` filled in, or io_uring_setup's errno. */
static inline int uring_try_setup(struct io_uring_params *p)
{
  memset(p, 0, sizeof *p);
  long fd = syscall(__NR_io_uring_setup, 1, p);
  if (fd < 0)
    return errno;
  close((int)fd);
  return 0;
}

/* 0 when io_uring can be set up here; else ENOSYS or EPERM with the reason in `why`. */
static inline int uring_unavailable(char *why, size_t len)
{
  struct io_uring_params p;
  int err = uring_try_setup(&p);
  if (err != ENOSYS && err != EPERM)
    return 0;
  snprintf(why, len, "io_uring is unavailable here (io_uring_setup: %s)", strerror(err));
  return err;
}

/* The features io_uring_setup reports here (IORING_FEAT_*), 0 without io_uring. */
static inline unsigned uring_features(void)
{
  struct io_uring_params p;
  return uring_try_setup(&p) ? 0 : p.features;
}

#endif
