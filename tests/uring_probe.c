/* uring_probe: exit 0 when io_uring can be set up here, 77 (the skip status tests/run counts)
 * with the reason on stderr when the kernel refuses it (ENOSYS, EPERM); see tests/uring.h. */
#include "uring.h"

int main(void)
{
  char why[128];
  if (!uring_unavailable(why, sizeof why))
    return 0;
  fprintf(stderr, "%s\n", why);
  return 77;
}
