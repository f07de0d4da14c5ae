/* The backend a Criterion test's servers run, from $RW_BACKEND (epoll, uring; unset: auto).
 * With RW_BACKEND=uring on a kernel that refuses io_uring the calling test is skipped, with the
 * reason in Criterion's report, rather than failed or passed. */
#ifndef RW_TEST_BACKEND_H
#define RW_TEST_BACKEND_H

#include <criterion/criterion.h>
#include <stdlib.h>

#include <ringwright/server.h>

#include "uring.h"

/* Skips the calling test when $RW_BACKEND asks for io_uring and this kernel refuses it. */
static inline void skip_without_uring(void)
{
  const char *b = getenv("RW_BACKEND");
  char why[128];
  if (b && !strcmp(b, "uring") && uring_unavailable(why, sizeof why))
    cr_skip_test("RW_BACKEND=uring: %s", why);
}

static inline enum rw_backend test_backend(void)
{
  const char *b = getenv("RW_BACKEND");
  skip_without_uring();
  return b && !strcmp(b, "epoll")   ? RW_BACKEND_EPOLL
         : b && !strcmp(b, "uring") ? RW_BACKEND_URING
                                    : RW_BACKEND_AUTO;
}

#endif
