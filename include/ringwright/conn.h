/* Connections as handlers see them. */
#ifndef RINGWRIGHT_CONN_H
#define RINGWRIGHT_CONN_H

#include <stddef.h>

typedef struct rw_conn rw_conn;

/* Appends `len` bytes to the connection's send chain; they go out at the end of this loop turn,
 * coalesced with the other replies of the turn. Returns 0, -EPIPE when the connection is closing,
 * or -ENOBUFS when the send slab is exhausted (the connection is then closed). */
int rw_conn_write(rw_conn *c, const void *data, size_t len);

/* Closes gracefully: stops reading, sends what is queued, then closes the socket. */
void rw_conn_close(rw_conn *c);

/* Bytes queued and not yet accepted by the kernel. */
size_t rw_conn_queued(const rw_conn *c);

#endif
