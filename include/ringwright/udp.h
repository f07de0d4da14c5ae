/* UDP sockets: each worker binds its own (SO_REUSEPORT); datagrams are received into the
 * worker's receive buffer and handed to a callback as a span. Nothing is queued for sending:
 * a datagram the kernel cannot take now is dropped, as UDP allows, and the caller is told. */
#ifndef RINGWRIGHT_UDP_H
#define RINGWRIGHT_UDP_H

#include <stddef.h>
#include <sys/socket.h>

#include "buf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_udp rw_udp;
typedef struct rw_worker rw_worker;

/* One datagram from `from`; `dgram` is valid during the call. */
typedef void (*rw_udp_fn)(rw_udp *u, const struct sockaddr *from, socklen_t fromlen, rw_span dgram,
                          void *data);

/* Sends one datagram; 0, -EAGAIN (dropped: the socket buffer is full), or -errno. */
int rw_udp_send(rw_udp *u, const struct sockaddr *to, socklen_t tolen, const void *p, size_t len);
rw_worker *rw_udp_worker(const rw_udp *u);

#ifdef __cplusplus
}
#endif

#endif
