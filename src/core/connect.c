/* Outbound TCP connections. They take a slot in the same connection table as accepted ones and,
 * once established, run a protocol's machine the same way; until then the connection's timer
 * is the connect timeout. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringwright/tls.h>

#include "core.h"

static void connect_timed_out(rw_timer *t)
{
  rw_conn_connected(t->data, -ETIMEDOUT);
}

static int connect_to(rw_worker *w, const char *hostport, const char *server_name, struct rw_tls *tls,
                      const rw_proto *proto, const void *handlers, uint32_t timeout_ms,
                      rw_connect_fn done, void *data)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = rw_addr_parse(hostport, true, &ss, &len);
  if (rc)
    return rc;
  if (w->stopping)
    return -ESHUTDOWN;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct rw_conn *c = rw_conn_open(w, proto, handlers, fd);
  if (!c) {
    close(fd);
    return -ENOSPC;
  }
  c->flags |= RW_CONN_CONNECTING;
  if (tls && rw_tls_conn_start(c, tls, server_name) < 0) {
    rw_conn_abort(c, -ENOMEM);
    return -ENOMEM;
  }
  c->connect_done = done;
  c->connect_data = data;
  rw_timer_init(&c->timer, connect_timed_out, c);
  rw_timer_arm(w, &c->timer, timeout_ms);
  rc = w->driver->connect(w, c, (struct sockaddr *)&ss, len);
  if (rc) {
    /* Nothing was started: the caller hears it from the return value, not the callback. */
    c->connect_done = NULL;
    rw_conn_abort(c, rc);
    return rc;
  }
  return 0;
}

int rw_connect(rw_worker *w, const char *hostport, const rw_proto *proto, const void *handlers,
               uint32_t timeout_ms, rw_connect_fn done, void *data)
{
  return connect_to(w, hostport, NULL, NULL, proto, handlers, timeout_ms, done, data);
}

int rw_connect_tls(rw_worker *w, const char *hostport, const char *server_name, struct rw_tls *tls,
                   const rw_proto *proto, const void *handlers, uint32_t timeout_ms,
                   rw_connect_fn done, void *data)
{
  return connect_to(w, hostport, server_name, tls, proto, handlers, timeout_ms, done, data);
}

void rw_conn_connected(struct rw_conn *c, int err)
{
  struct rw_worker *w = c->w;
  if (!(c->flags & RW_CONN_CONNECTING))
    return;
  c->flags &= ~RW_CONN_CONNECTING;
  rw_connect_fn done = c->connect_done;
  c->connect_done = NULL;
  rw_timer_cancel(&c->timer);
  if (err) {
    rw_conn_abort(c, err);
    if (done)
      done(NULL, err, c->connect_data);
    return;
  }
  c->last_active_ms = w->now_ms;
  rw_conn_arm_idle(c);
  rw_conn_mark_dirty(c);
  if (c->tls) {
    /* The owner hears of it once the handshake is through: start it (the ClientHello). */
    c->connect_done = done;
    rw_tls_received(c, NULL, 0);
    return;
  }
  if (done)
    done(c, 0, c->connect_data);
}
