/* The plain transport: received bytes go to the connection layer as they are, replies straight
 * into the send chain. It holds nothing, so it has no flush, close or release step. */
#include "worker.h"
#include "conn.h"
#include "sendq.h"
#include "tls_start.h"
#include "transport.h"

/* Set by the TLS library (src/tls/tls.c) whenever it makes a context; see tls_start.h. */
_Atomic(const struct rw_tls_ops *) rw_tls_table;

static int plain_write(struct rw_conn *c, const struct iovec *iov, int n)
{
  return rw_sendq_appendv(c->w, c, iov, n);
}

static size_t plain_room(const struct rw_conn *c, size_t chunks)
{
  return chunks * c->w->send_pool.item_size;
}

const struct rw_transport rw_transport_plain = {
    .name = "plain",
    .receive = rw_conn_deliver,
    .write = plain_write,
    .room = plain_room,
};
