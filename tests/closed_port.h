/* A loopback port on which nothing listens, for tests of refused connections. Shared by
 * test_runtime and test_upstream. */
#ifndef RW_TEST_CLOSED_PORT_H
#define RW_TEST_CLOSED_PORT_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int closed_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t len = sizeof sa;
  bind(fd, (struct sockaddr *)&sa, len);
  getsockname(fd, (struct sockaddr *)&sa, &len);
  close(fd);
  return ntohs(sa.sin_port);
}

#endif
