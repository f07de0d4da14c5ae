/* The io_uring driver (in progress). */
#include <errno.h>
#include <stdio.h>

#include "../core/core.h"

static int uring_probe(char *why, size_t whylen)
{
  snprintf(why, whylen, "the io_uring driver is not built yet");
  return -ENOSYS;
}

const struct rw_driver rw_driver_uring = {
    .name = "io_uring",
    .probe = uring_probe,
};
