/* The server: configuration, listeners and the pools every worker owns. Pools are sized when
 * the server starts running, once every listener (and so every protocol's frame limit and
 * parser size) is known; after that nothing is allocated. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

#define ROUND_UP(x, a) (((x) + (a) - 1) / (a) * (a))

void rw_config_default(rw_config *cfg)
{
  *cfg = (rw_config){
      .name = "ringwright",
      .max_conns = 1024,
      .recv_size = 64 * 1024,
      .send_chunk = 16 * 1024,
      .send_high_water = 256 * 1024,
      .shutdown_ms = 5000,
  };
}

static int check_config(const rw_config *cfg)
{
  if (cfg->max_conns < 1 || cfg->max_conns > (1u << 22) || cfg->recv_size < 512 ||
      cfg->recv_size > (64u << 20) || cfg->send_chunk < 512 || cfg->send_chunk > (64u << 20) ||
      cfg->send_high_water < cfg->send_chunk)
    return -EINVAL;
  return 0;
}

int rw_server_create(const rw_config *cfg, rw_server **out_srv)
{
  int rc = check_config(cfg);
  if (rc)
    return rc;
  rw_server *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->cfg = *cfg;
  rw_log_init(cfg->name);
  for (unsigned i = 0; i < RW_MAX_LISTENERS; i++)
    s->listeners[i].fd = -1;
  *out_srv = s;
  return 0;
}

static int listen_socket(const char *hostport, char *out_addr, size_t addrlen)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = rw_addr_parse(hostport, &ss, &len);
  if (rc)
    return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  rw_addr_format((struct sockaddr *)&ss, out_addr, addrlen);
  return fd;
}

int rw_server_listen(rw_server *s, const char *hostport, const rw_proto *proto, const void *handlers)
{
  if (s->nlisteners == RW_MAX_LISTENERS)
    return -ENOSPC;
  int rc = proto->check_handlers(handlers);
  if (rc) {
    rw_log("%s: a handler the spec needs is missing", proto->name);
    return rc;
  }
  struct rw_listener *ln = &s->listeners[s->nlisteners];
  int fd = listen_socket(hostport, ln->addr, sizeof ln->addr);
  if (fd < 0) {
    rw_log("cannot listen on %s: %s", hostport, strerror(-fd));
    return fd;
  }
  ln->fd = fd;
  ln->proto = proto;
  ln->handlers = handlers;
  s->nlisteners++;
  rw_log("listening on %s (%s)", ln->addr, proto->name);
  return 0;
}

/* Sizes every pool from the config and the listeners' protocols. */
static int worker_init(rw_server *s, struct rw_worker *w)
{
  const rw_config *cfg = &s->cfg;
  size_t frame = 0, parser = 16;
  for (unsigned i = 0; i < s->nlisteners; i++) {
    const rw_proto *p = s->listeners[i].proto;
    frame = p->max_frame > frame ? p->max_frame : frame;
    parser = p->parser_size > parser ? p->parser_size : parser;
  }
  uint32_t n = cfg->max_conns;
  /* Unframed protocols never hold bytes back: they need no slots. */
  uint32_t slots = !frame ? 0 : cfg->accum_slots ? cfg->accum_slots : (n / 4 > 16 ? n / 4 : 16);
  uint32_t chunks = cfg->send_chunks ? cfg->send_chunks : n * 4;
  w->srv = s;
  w->parser_stride = ROUND_UP(parser, 64);
  /* A slot holds the longest frame plus one receive, and the parser's sentinel. */
  size_t slot = ROUND_UP((frame > cfg->recv_size ? frame : cfg->recv_size) + 1, 64);
  w->send_reserve = (uint32_t)((cfg->recv_size + cfg->send_chunk - 1) / cfg->send_chunk) + 1;
  if (chunks < w->send_reserve * 2)
    chunks = w->send_reserve * 2;
  w->conns = rw_region_alloc((size_t)n * sizeof *w->conns);
  w->conn_free = rw_region_alloc((size_t)n * sizeof *w->conn_free);
  w->parsers = rw_region_alloc((size_t)n * w->parser_stride);
  w->chunk_next = rw_region_alloc((size_t)chunks * sizeof *w->chunk_next);
  w->rxbuf = rw_region_alloc(cfg->recv_size + 1);
  if (!w->conns || !w->conn_free || !w->parsers || !w->chunk_next || !w->rxbuf ||
      rw_pool_init(&w->acc_pool, slots, slot) < 0 || rw_pool_init(&w->send_pool, chunks, cfg->send_chunk) < 0)
    return -ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    w->conns[i] = (struct rw_conn){.fd = -1, .idx = i, .w = w, .parser = w->parsers + (size_t)i * w->parser_stride};
    w->conn_free[i] = n - 1 - i;
  }
  w->nconn_free = n;
  s->budget = (size_t)n * (sizeof *w->conns + sizeof *w->conn_free + w->parser_stride) +
              (size_t)chunks * sizeof *w->chunk_next + cfg->recv_size + 1 +
              rw_pool_bytes(&w->acc_pool) + rw_pool_bytes(&w->send_pool);
  char slots_desc[64] = "no accumulator slots (unframed)";
  if (slots)
    snprintf(slots_desc, sizeof slots_desc, "%u accumulator slots x %zu KiB", slots, slot >> 10);
  rw_log("%s backend, 1 worker, %u connections, memory budget %.1f MiB "
         "(recv %u KiB, %s, %u send chunks x %u KiB)",
         w->driver->name, n, (double)s->budget / (1 << 20), cfg->recv_size >> 10, slots_desc,
         chunks, cfg->send_chunk >> 10);
  return 0;
}

static void worker_fini(rw_server *s, struct rw_worker *w)
{
  uint32_t n = s->cfg.max_conns;
  rw_region_free(w->conns, (size_t)n * sizeof *w->conns);
  rw_region_free(w->conn_free, (size_t)n * sizeof *w->conn_free);
  rw_region_free(w->parsers, (size_t)n * w->parser_stride);
  rw_region_free(w->chunk_next, (size_t)w->send_pool.count * sizeof *w->chunk_next);
  rw_region_free(w->rxbuf, s->cfg.recv_size + 1);
  rw_pool_fini(&w->acc_pool);
  rw_pool_fini(&w->send_pool);
  memset(w, 0, sizeof *w);
}

int rw_server_run(rw_server *s)
{
  struct rw_worker *w = &s->worker;
  if (!s->nlisteners)
    return -EINVAL;
  w->driver = &rw_driver_epoll;
  int rc = worker_init(s, w);
  if (!rc)
    rc = w->driver->init(w);
  if (!rc)
    rc = w->driver->run(w);
  w->driver->fini(w);
  worker_fini(s, w);
  return rc;
}

void rw_server_stop(rw_server *s)
{
  s->stop = 1;
}

size_t rw_server_budget(const rw_server *s)
{
  return s->budget;
}

void rw_server_destroy(rw_server *s)
{
  if (!s)
    return;
  for (unsigned i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].fd >= 0)
      close(s->listeners[i].fd);
  free(s);
}
