/* rw_conn_name() and rw_conn_fd(): the addresses at either end of a connection, for logs and client lists. A
 * connection that io_uring accepted straight into its fixed-file table has no descriptor that
 * getpeername could take: rw_config.peer_names makes the driver accept into the fd table. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conn.h"

int rw_conn_name(const rw_conn *c, bool local, char *host, size_t cap, unsigned *out_port)
{
  if (c->flags & RW_CONN_DIRECT || c->fd < 0)
    return -ENOTSOCK;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if ((local ? getsockname(c->fd, (struct sockaddr *)&ss, &len)
             : getpeername(c->fd, (struct sockaddr *)&ss, &len)) < 0)
    return -errno;
  const void *addr;
  unsigned port;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    addr = &in->sin_addr, port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    addr = &in6->sin6_addr, port = ntohs(in6->sin6_port);
  } else {
    return -EAFNOSUPPORT; /* a process pipe: AF_UNIX */
  }
  if (!inet_ntop(ss.ss_family, addr, host, (socklen_t)cap))
    return -ENOSPC;
  if (out_port)
    *out_port = port;
  return 0;
}

int rw_conn_fd(const rw_conn *c)
{
  return c->flags & RW_CONN_DIRECT ? -1 : c->fd;
}
