/* HOST:PORT as users write it: "127.0.0.1:7000", "[::1]:7000", "localhost:0", ":7000" (all
 * IPv4 interfaces). Names are resolved at start-up (or off the loop: dns.c); a numeric address
 * is parsed without the resolver, which allocates, since rw_connect() dials from the loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"

int rw_addr_split(const char *hostport, char *host, size_t hostlen, const char **out_port)
{
  const char *colon;
  if (hostport[0] == '[') {
    const char *end = strchr(hostport, ']');
    if (!end || end[1] != ':')
      return -EINVAL;
    if ((size_t)(end - hostport - 1) >= hostlen)
      return -ENAMETOOLONG;
    memcpy(host, hostport + 1, (size_t)(end - hostport - 1));
    host[end - hostport - 1] = 0;
    colon = end + 1;
  } else {
    colon = strrchr(hostport, ':');
    if (!colon)
      return -EINVAL;
    if ((size_t)(colon - hostport) >= hostlen)
      return -ENAMETOOLONG;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
  }
  *out_port = colon + 1;
  char *end;
  long port = strtol(*out_port, &end, 10);
  if (!**out_port || *end || port < 0 || port > 65535)
    return -EINVAL;
  return 0;
}

int rw_addr_parse(const char *hostport, bool numeric, struct sockaddr_storage *out, socklen_t *out_len)
{
  char host[256];
  const char *port;
  int rc = rw_addr_split(hostport, host, sizeof host, &port);
  if (rc)
    return rc;
  uint16_t nport = htons((uint16_t)atoi(port));
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  memset(out, 0, sizeof *out);
  if (host[0] && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = nport;
    *out_len = sizeof *v4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = nport;
    *out_len = sizeof *v6;
    return 0;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0)};
  struct addrinfo *res;
  if (getaddrinfo(host[0] ? host : "0.0.0.0", port, &hints, &res) != 0)
    return -EADDRNOTAVAIL;
  memcpy(out, res->ai_addr, res->ai_addrlen);
  *out_len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

void rw_addr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
  char host[NI_MAXHOST], port[NI_MAXSERV];
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV)) {
    snprintf(out, outlen, "?");
    return;
  }
  snprintf(out, outlen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

int rw_socket_bind(const struct sockaddr_storage *ss, socklen_t len, int type)
{
  int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1, rc = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Accepted sockets inherit TCP_NODELAY from the listener: no setsockopt per connection. */
  if (type == SOCK_STREAM)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (const struct sockaddr *)ss, len) < 0 || (type == SOCK_STREAM && listen(fd, 4096) < 0))
    rc = -errno;
  if (rc) {
    close(fd);
    return rc;
  }
  return fd;
}
