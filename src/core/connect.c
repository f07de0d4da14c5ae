/* Outbound TCP connections. They take a slot in the same connection table as accepted ones and,
 * once established, run a protocol's machine the same way; until then the connection's timer
 * is the connect timeout. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringwright/tls.h>

#include <ringwright/dns.h>

#include "driver.h"
#include "addr.h"
#include "conn.h"
#include "connect.h"
#include "pool.h"
#include "tls_start.h"
#include "transport.h"
#include "worker.h"

static void connect_timed_out(rw_timer *t)
{
  rw_conn_connected(t->data, -ETIMEDOUT);
}

static int connect_addr(rw_worker *w, const struct sockaddr_storage *ss, socklen_t len,
                        const char *server_name, struct rw_tls *tls, const rw_proto *proto,
                        const void *handlers, uint32_t timeout_ms, rw_connect_fn done, void *data)
{
  if (w->stopping)
    return -ESHUTDOWN;
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct rw_conn *c = rw_conn_open(w, proto, handlers, fd);
  if (!c) {
    close(fd);
    return -ENOSPC;
  }
  c->flags |= RW_CONN_CONNECTING;
  if (tls && rw_tls_calls()->conn_start(c, tls, server_name) < 0) {
    rw_conn_abort(c, -ENOMEM);
    return -ENOMEM;
  }
  c->connect_done = done;
  c->connect_data = data;
  /* rw_conn_open() armed the idle timeout on the same timer: re-initialising it while armed
   * would leave the wheel pointing at it. */
  rw_timer_cancel(&c->timer);
  rw_timer_init(&c->timer, connect_timed_out, c);
  rw_timer_arm(w, &c->timer, timeout_ms);
  int rc = w->driver->connect(w, c, (const struct sockaddr *)ss, len);
  if (rc) {
    /* Nothing was started: the caller hears it from the return value, not the callback. */
    c->connect_done = NULL;
    rw_conn_abort(c, rc);
    return rc;
  }
  return 0;
}

/* ---- host names: resolve first, then connect within what is left of the timeout ---- */

struct rw_dial {
  rw_dns q;
  bool busy;
  const rw_proto *proto;
  const void *handlers;
  struct rw_tls *tls;
  rw_connect_fn done;
  void *data;
  int64_t deadline_ms;
  char server_name[256];
};

int rw_dial_init(struct rw_worker *w)
{
  w->dials = rw_region_alloc((size_t)w->srv->cfg.dns_slots * sizeof *w->dials);
  return w->dials ? 0 : -ENOMEM;
}

size_t rw_dial_budget(const struct rw_worker *w)
{
  return (size_t)w->srv->cfg.dns_slots * sizeof *w->dials;
}

void rw_dial_fini(struct rw_worker *w)
{
  rw_region_free(w->dials, (size_t)w->srv->cfg.dns_slots * sizeof *w->dials);
  w->dials = NULL;
}

static void resolved(rw_dns *q, int err)
{
  struct rw_dial *d = (struct rw_dial *)q;
  rw_worker *w = q->w;
  d->busy = false;
  int64_t left = d->deadline_ms - w->now_ms;
  if (!err && left <= 0)
    err = -ETIMEDOUT;
  if (!err)
    err = connect_addr(w, &q->addr, q->addrlen, d->server_name[0] ? d->server_name : NULL, d->tls, d->proto,
                       d->handlers, (uint32_t)left, d->done, d->data);
  if (err && d->done)
    d->done(NULL, err, d->data);
}

static int dial(rw_worker *w, const char *host, uint16_t port, const char *server_name, struct rw_tls *tls,
                const rw_proto *proto, const void *handlers, uint32_t timeout_ms, rw_connect_fn done,
                void *data)
{
  struct rw_dial *d = NULL;
  for (uint32_t i = 0; i < w->srv->cfg.dns_slots && !d; i++)
    if (!w->dials[i].busy)
      d = &w->dials[i];
  if (!d)
    return -EAGAIN;
  if (server_name && strlen(server_name) >= sizeof d->server_name)
    return -ENAMETOOLONG;
  *d = (struct rw_dial){.proto = proto,
                        .handlers = handlers,
                        .tls = tls,
                        .done = done,
                        .data = data,
                        .deadline_ms = w->now_ms + timeout_ms};
  if (server_name)
    strcpy(d->server_name, server_name);
  int rc = rw_resolve(w, &d->q, host, port, timeout_ms, resolved);
  if (!rc)
    d->busy = true;
  return rc;
}

static int connect_to(rw_worker *w, const char *hostport, const char *server_name, struct rw_tls *tls,
                      const rw_proto *proto, const void *handlers, uint32_t timeout_ms, rw_connect_fn done,
                      void *data)
{
  /* A protocol the pools were not sized for would write its parser state past the slot's. */
  if (!rw_server_speaks(w->srv, proto) || proto->check_handlers(handlers))
    return -EINVAL;
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = rw_addr_parse(hostport, true, &ss, &len);
  if (!rc)
    return connect_addr(w, &ss, len, server_name, tls, proto, handlers, timeout_ms, done, data);
  char host[256];
  const char *port;
  if (rw_addr_split(hostport, host, sizeof host, &port) || !host[0])
    return -EINVAL;
  return dial(w, host, (uint16_t)atoi(port), server_name ? server_name : host, tls, proto, handlers,
              timeout_ms, done, data);
}

int rw_connect(rw_worker *w, const char *hostport, const rw_proto *proto, const void *handlers,
               uint32_t timeout_ms, rw_connect_fn done, void *data)
{
  return connect_to(w, hostport, NULL, NULL, proto, handlers, timeout_ms, done, data);
}

int rw_connect_tls(rw_worker *w, const char *hostport, const char *server_name, struct rw_tls *tls,
                   const rw_proto *proto, const void *handlers, uint32_t timeout_ms, rw_connect_fn done,
                   void *data)
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
  if (c->transport != &rw_transport_plain) {
    /* The owner hears of it once the transport's handshake is through: start it (TLS: the
     * ClientHello). */
    c->connect_done = done;
    c->transport->receive(c, NULL, 0);
    return;
  }
  if (done)
    done(c, 0, c->connect_data);
}
