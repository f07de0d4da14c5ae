/* rw_conn_refused_bytes() and rw_conn_inspect(): what an application may see of input the
 * parser has not consumed, to name a fault as a peer names it (redis's protocol errors) or to
 * refuse a frame before all of it is held. */
#include "conn.h"
#include "worker.h"

const uint8_t *rw_conn_refused_bytes(const rw_conn *c, size_t *out_len)
{
  *out_len = c->w->refused_len;
  return c->w->refused_at;
}

void rw_conn_inspect(rw_conn *c, rw_inspect_fn fn)
{
  c->inspect = fn;
}
