/* Internal: addresses (addr.c): HOST:PORT parsed and formatted, sockets bound. */
#ifndef RW_ADDR_H
#define RW_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* HOST:PORT into `host` (brackets of an IPv6 address removed) and the port's digits. */
int rw_addr_split(const char *hostport, char *host, size_t hostlen, const char **out_port);
/* `numeric`: refuse host names (no resolver may run on a worker thread). */
int rw_addr_parse(const char *hostport, bool numeric, struct sockaddr_storage *out_addr, socklen_t *out_len);
void rw_addr_format(const struct sockaddr *sa, char *out, size_t outlen);
/* A non-blocking socket of `type` bound to `ss` with SO_REUSEPORT (and listening, for TCP);
 * returns the fd or -errno. */
int rw_socket_bind(const struct sockaddr_storage *ss, socklen_t len, int type);

#endif
