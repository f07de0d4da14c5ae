/* Name resolution off the loop: getaddrinfo on the server's thread pool, with a deadline the
 * loop keeps (a resolver that hangs costs a pool thread, never the worker). rw_connect() and
 * rw_connect_tls() resolve host names through it. */
#ifndef RINGWRIGHT_DNS_H
#define RINGWRIGHT_DNS_H

#include <stdint.h>
#include <sys/socket.h>

#include "timer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_dns rw_dns;
/* err: 0 (q->addr holds the first address, with the port), -ENOENT (no such name), -ETIMEDOUT,
 * -EAGAIN (a temporary failure), -ECANCELED (the worker is stopping). */
typedef void (*rw_dns_fn)(rw_dns *q, int err);

struct rw_dns {
  /* private */
  rw_worker *w;
  uint32_t slot;
  rw_timer timer;
  rw_dns_fn done;
  /* the answer */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  /* yours */
  void *data;
};

/* Resolves `host` (a name or a numeric address) for a TCP `port`. The query is a struct you
 * own, free to reuse once `done` has run. 0, or -EINVAL (a name longer than 255 bytes), -EAGAIN
 * (every one of the worker's rw_config.dns_slots lookups is in flight). */
int rw_resolve(rw_worker *w, rw_dns *q, const char *host, uint16_t port, uint32_t timeout_ms, rw_dns_fn done);
/* Forgets a lookup in flight: `done` will not run. */
void rw_resolve_cancel(rw_dns *q);

#ifdef __cplusplus
}
#endif

#endif
