/* The server: configuration, listeners, workers and the pools each worker owns. Pools are sized
 * when the server starts running, once every listener and declared protocol (and so every
 * protocol's frame limit and parser size) is known; after that nothing is allocated. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ringwright/metrics.h>
#include <ringwright/tls.h>

#include "send_file.h"
#include "addr.h"
#include "conn.h"
#include "connect.h"
#include "dns.h"
#include "driver.h"
#include "fault.h"
#include "large.h"
#include "log.h"
#include "offload.h"
#include "pool.h"
#include "server.h"
#include "timer.h"
#include "transport.h"
#include "worker.h"
#include "notify.h"

#define ROUND_UP(x, a) (((x) + (a)-1) / (a) * (a))

void rw_config_default(rw_config *cfg)
{
  *cfg = (rw_config){
      .name = "ringwright",
      .backend = RW_BACKEND_AUTO,
      .max_conns = 1024,
      .recv_size = 64 * 1024,
      .send_chunk = 16 * 1024,
      .send_high_water = 256 * 1024,
      .shutdown_ms = 5000,
      .batch_wait_us = 20,
      .pool_threads = 2,
      .task_queue = 1024,
      .dns_slots = 16,
      .dio_buffer_size = 64 * 1024,
  };
}

static int check_config(const rw_config *cfg)
{
  if (cfg->max_conns < 1 || cfg->max_conns > (1u << 22) || cfg->recv_size < 512 ||
      cfg->recv_size > (64u << 20) || cfg->send_chunk < 512 || cfg->send_chunk > (64u << 20) ||
      cfg->send_high_water < cfg->send_chunk || cfg->workers > 1024 || cfg->pool_threads < 1 ||
      cfg->pool_threads > RW_OFFLOAD_MAX_THREADS || cfg->dio_buffer_size % 4096 ||
      (cfg->dio_buffers && !cfg->dio_buffer_size) || cfg->batch_wait_us > RW_BATCH_WAIT_MAX_US)
    return -EINVAL;
  return 0;
}

static unsigned worker_count(const rw_config *cfg)
{
  if (cfg->workers)
    return cfg->workers;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

int rw_server_create(const rw_config *cfg, rw_server **out_srv)
{
  int rc = check_config(cfg);
  if (rc)
    return rc;
  /* Aligned as it says: its counters have a cache line of their own. */
  rw_server *s = aligned_alloc(_Alignof(rw_server), ROUND_UP(sizeof *s, _Alignof(rw_server)));
  if (!s)
    return -ENOMEM;
  memset(s, 0, sizeof *s);
  s->cfg = *cfg;
  s->nworkers = worker_count(cfg);
  rw_log_init(cfg->name);
  *out_srv = s;
  return 0;
}

int rw_server_use_proto(rw_server *s, const rw_proto *proto)
{
  if (s->workers)
    return -EBUSY; /* the pools are sized already */
  if (rw_server_speaks(s, proto))
    return 0;
  if (s->nuses == RW_MAX_PROTOS)
    return -ENOSPC;
  s->uses[s->nuses++] = proto;
  return 0;
}

/* The protocols pools are sized for: the listeners', their alternates', the declared ones. */
unsigned rw_server_nprotos(const rw_server *s)
{
  return s->nlisteners + s->nalts + s->nuses;
}

const rw_proto *rw_server_proto_at(const rw_server *s, unsigned i)
{
  if (i < s->nlisteners)
    return s->listeners[i].proto;
  i -= s->nlisteners;
  return i < s->nalts ? s->alts[i].alt : s->uses[i - s->nalts];
}

bool rw_server_speaks(const rw_server *s, const rw_proto *proto)
{
  for (unsigned i = 0; i < rw_server_nprotos(s); i++)
    if (rw_server_proto_at(s, i) == proto)
      return true;
  return false;
}

int rw_server_peek(rw_server *s, const rw_proto *proto, rw_peek_fn fn)
{
  if (s->npeeks == RW_MAX_LISTENERS || proto->parser_size > RW_PEEK_STATE || proto->on_eof)
    return -EINVAL;
  s->peeks[s->npeeks].proto = proto;
  s->peeks[s->npeeks++].fn = fn;
  return 0;
}

int rw_server_alternate(rw_server *s, const rw_proto *proto, const rw_proto *alt, const void *alt_handlers,
                        uint8_t first_byte)
{
  if (s->nalts == RW_MAX_LISTENERS)
    return -ENOSPC;
  if (alt == proto)
    return -EINVAL;
  for (unsigned i = 0; i < s->nalts; i++)
    if (s->alts[i].proto == proto && s->alts[i].first_byte == first_byte)
      return -EINVAL;
  int rc = alt->check_handlers(alt_handlers);
  if (rc) {
    rw_log("%s: a handler the spec needs is missing", alt->name);
    return rc;
  }
  s->alts[s->nalts++] = (struct rw_alternate){proto, alt, alt_handlers, first_byte};
  rw_log("%s connections whose first byte is 0x%02x speak %s", proto->name, first_byte, alt->name);
  return 0;
}

/* The one place a stream listener is bound; its start-up line says whether it speaks TLS, so
 * that a plain and a TLS listener of the same protocol can be told apart. */
static int listen_on(rw_server *s, const char *hostport, const rw_proto *proto, const void *handlers,
                     struct rw_tls *tls)
{
  if (s->nlisteners == RW_MAX_LISTENERS)
    return -ENOSPC;
  int rc = proto->check_handlers(handlers);
  if (rc) {
    rw_log("%s: a handler the spec needs is missing", proto->name);
    return rc;
  }
  struct rw_listener *ln = &s->listeners[s->nlisteners];
  rc = rw_addr_parse(hostport, false, &ln->ss, &ln->sslen);
  int fd = rc ? rc : rw_socket_bind(&ln->ss, ln->sslen, SOCK_STREAM);
  if (fd < 0) {
    rw_log("cannot listen on %s: %s", hostport, strerror(-fd));
    return fd;
  }
  /* Port 0 is resolved now, so that every worker's socket shares the port this one got. */
  getsockname(fd, (struct sockaddr *)&ln->ss, &ln->sslen);
  rw_addr_format((struct sockaddr *)&ln->ss, ln->addr, sizeof ln->addr);
  ln->fd0 = fd;
  ln->proto = proto;
  ln->handlers = handlers;
  ln->transport_ctx = tls;
  s->nlisteners++;
  rw_log("listening on %s (%s%s)", ln->addr, proto->name, tls ? ", tls" : "");
  return 0;
}

int rw_server_listen(rw_server *s, const char *hostport, const rw_proto *proto, const void *handlers)
{
  return listen_on(s, hostport, proto, handlers, NULL);
}

int rw_server_listen_tls(rw_server *s, const char *hostport, const rw_proto *proto, const void *handlers,
                         struct rw_tls *tls)
{
  return listen_on(s, hostport, proto, handlers, tls);
}

int rw_server_port(const rw_server *s, unsigned i)
{
  if (i >= s->nlisteners)
    return -EINVAL;
  const struct sockaddr_storage *ss = &s->listeners[i].ss;
  return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                         : ((const struct sockaddr_in *)ss)->sin_port);
}

int rw_server_udp(rw_server *s, const char *hostport, rw_udp_fn fn, void *data)
{
  if (s->nudp == RW_MAX_UDP)
    return -ENOSPC;
  struct rw_udp_spec *u = &s->udps[s->nudp];
  int rc = rw_addr_parse(hostport, false, &u->ss, &u->sslen);
  int fd = rc ? rc : rw_socket_bind(&u->ss, u->sslen, SOCK_DGRAM);
  if (fd < 0) {
    rw_log("cannot bind UDP %s: %s", hostport, strerror(-fd));
    return fd;
  }
  getsockname(fd, (struct sockaddr *)&u->ss, &u->sslen);
  char addr[64];
  rw_addr_format((struct sockaddr *)&u->ss, addr, sizeof addr);
  u->fd0 = fd;
  u->fn = fn;
  u->data = data;
  s->nudp++;
  rw_log("listening on %s (udp)", addr);
  return 0;
}

/* Worker 0 uses the sockets bound at listen time; the others bind their own on the same
 * addresses, and the kernel spreads connections among them (SO_REUSEPORT). */
static int worker_sockets(rw_server *s, struct rw_worker *w)
{
  for (unsigned i = 0; i < s->nlisteners; i++) {
    const struct rw_listener *ln = &s->listeners[i];
    w->lfd[i] = w->id == 0 ? ln->fd0 : rw_socket_bind(&ln->ss, ln->sslen, SOCK_STREAM);
    if (w->lfd[i] < 0)
      return w->lfd[i];
  }
  for (unsigned i = 0; i < s->nudp; i++) {
    const struct rw_udp_spec *u = &s->udps[i];
    int fd = w->id == 0 ? u->fd0 : rw_socket_bind(&u->ss, u->sslen, SOCK_DGRAM);
    if (fd < 0)
      return fd;
    w->udp[i] = (struct rw_udp){.w = w, .fd = fd, .fn = u->fn, .data = u->data};
  }
  return 0;
}

/* What every worker's pools hold, for the protocols connections may speak: the listeners', the
 * alternates their connections may switch to (rw_server_alternate) and those declared for
 * outbound connections and child processes (rw_server_use_proto). Connection slots: the whole cap, so that a worker can take
 * every connection when the kernel's hash sends it all of them (--max-conns is one count for all
 * workers; a slot is 1-2 KiB). The pools whose shortage is backpressure, not refusal
 * (accumulator slots, send chunks, io_uring's receive buffers), take the cap's even split: a
 * worker sent more than its share reads more slowly, and they do not grow with the worker count.
 * Large slots are the server's, shared by every worker (large.c): their count bounds what long
 * frames can make resident, whatever the worker count. */
struct plan {
  uint32_t share, slots, chunks, tls_slots, large_slots;
  size_t parser, slot, large;
  bool tls;
};

static void plan_pools(const rw_server *s, struct plan *p)
{
  const rw_config *cfg = &s->cfg;
  size_t frame = 0;
  *p = (struct plan){.parser = 16};
  for (unsigned i = 0; i < rw_server_nprotos(s); i++) {
    const rw_proto *pr = rw_server_proto_at(s, i);
    frame = pr->max_frame > frame ? pr->max_frame : frame;
    p->parser = pr->parser_size > p->parser ? pr->parser_size : p->parser;
    p->tls |= i < s->nlisteners && s->listeners[i].transport_ctx != NULL;
  }
  p->share = (cfg->max_conns + s->nworkers - 1) / s->nworkers;
  /* Unframed protocols never hold bytes back: they need no slots. */
  p->slots = !frame ? 0 : cfg->accum_slots ? cfg->accum_slots : p->share / 4 > 16 ? p->share / 4 : 16;
  p->chunks = cfg->send_chunks ? cfg->send_chunks : p->share * 4;
  /* With a TLS listener: one per connection the worker may hold (a record half received waits in
   * one, so peers that leave records half-sent can never starve the others), and its share again
   * for replies gathered until the turn ends (none free: sealed at once). Outbound TLS
   * connections need slots too: a few are always there. Pages are touched only as slots are
   * used. */
  p->tls_slots = cfg->tls_slots ? cfg->tls_slots : p->tls ? cfg->max_conns + p->share : 16;
  /* A slot holds the longest frame plus one receive, and the parser's sentinel; a protocol
   * whose frames may be longer than that (a 512 MiB RESP value) moves such a frame to a large
   * slot, resident only while one is being received. */
  size_t slot_frame = cfg->accum_size ? cfg->accum_size : frame < (4u << 20) ? frame : (4u << 20);
  if (slot_frame > frame)
    slot_frame = frame;
  p->slot = ROUND_UP(slot_frame + cfg->recv_size + 1, 64);
  p->large = ROUND_UP(frame + cfg->recv_size + 1, 4096);
  p->large_slots = !frame || slot_frame >= frame ? 0 : cfg->large_slots ? cfg->large_slots : 2;
}

static void log_plan(const rw_server *s, const struct plan *p)
{
  char slots[64] = "no accumulator slots (unframed)", tls[48] = "";
  if (p->slots)
    snprintf(slots, sizeof slots, "%u accumulator slots x %zu KiB", p->slots, p->slot >> 10);
  if (p->tls)
    snprintf(tls, sizeof tls, ", %u TLS record slots", p->tls_slots);
  rw_log("per worker: %u connection slots, recv %u KiB, %s, %u send chunks x %u KiB%s", s->cfg.max_conns,
         s->cfg.recv_size >> 10, slots, p->chunks, s->cfg.send_chunk >> 10, tls);
  if (p->large_slots)
    rw_log("longer frames: %u large slots x %zu MiB shared by all workers, resident only while frames "
           "arrive in them",
           p->large_slots, p->large >> 20);
}

static int worker_alloc(rw_server *s, struct rw_worker *w, const struct plan *p)
{
  const rw_config *cfg = &s->cfg;
  uint32_t n = w->max_conns;
  w->file_streams = rw_region_alloc((size_t)n * sizeof *w->file_streams);
  w->file_reqs = rw_region_alloc((size_t)n * sizeof *w->file_reqs);
  w->file_free = rw_region_alloc((size_t)n * sizeof *w->file_free);
  w->conns = rw_region_alloc((size_t)n * sizeof *w->conns);
  w->conn_free = rw_region_alloc((size_t)n * sizeof *w->conn_free);
  w->parsers = rw_region_alloc((size_t)n * w->parser_stride);
  w->chunk_next = rw_region_alloc((size_t)p->chunks * sizeof *w->chunk_next);
  w->chunk_len = rw_region_alloc((size_t)p->chunks * sizeof *w->chunk_len);
  w->rxbuf = rw_region_alloc(cfg->recv_size + 1);
  if (!w->conns || !w->conn_free || !w->parsers || !w->chunk_next || !w->chunk_len || !w->rxbuf ||
      !w->file_streams || !w->file_reqs || !w->file_free ||
      rw_pool_init(&w->acc_pool, p->slots, p->slot) < 0 ||
      rw_pool_init(&w->send_pool, p->chunks, cfg->send_chunk) < 0 ||
      rw_pool_init(&w->transport_pool, p->tls_slots, RW_TRANSPORT_SLOT) < 0 ||
      rw_pool_init(&w->dio_pool, cfg->dio_buffers, cfg->dio_buffer_size) < 0 || rw_dns_init(w) < 0 ||
      rw_dial_init(w) < 0 || rw_upstreams_init(w) < 0 || rw_stats_worker_init(w) < 0)
    return -ENOMEM;
  return 0;
}

/* Every byte the worker's pools took: all of it can become resident (pages touched once stay
 * resident), so it counts in full towards both figures. */
static size_t worker_bytes(const struct rw_worker *w)
{
  size_t n = w->max_conns;
  return n * (sizeof *w->conns + sizeof *w->conn_free + w->parser_stride + sizeof *w->file_streams +
              sizeof *w->file_reqs + sizeof *w->file_free) +
         (size_t)w->send_pool.count * (sizeof *w->chunk_next + sizeof *w->chunk_len) + w->srv->cfg.recv_size +
         1 + rw_pool_bytes(&w->acc_pool) + rw_pool_bytes(&w->send_pool) + rw_pool_bytes(&w->transport_pool) +
         rw_pool_bytes(&w->dio_pool) + rw_dns_budget(w) + rw_dial_budget(w) + rw_upstreams_budget(w) +
         rw_stats_worker_bytes(w->srv) + (w->driver->budget ? w->driver->budget(w) : 0);
}

/* No descriptor yet: what worker_fini() closes is only what worker_init() opened. */
static void worker_reset(rw_server *s, struct rw_worker *w, unsigned id)
{
  w->srv = s;
  w->id = id;
  w->wakefd = -1;
  for (unsigned i = 0; i < RW_MAX_LISTENERS; i++)
    w->lfd[i] = -1;
  for (unsigned i = 0; i < RW_MAX_UDP; i++)
    w->udp[i].fd = -1;
}

static int worker_init(rw_server *s, struct rw_worker *w, const struct plan *p)
{
  const rw_config *cfg = &s->cfg;
  uint32_t n = cfg->max_conns;
  w->max_conns = n;
  w->share = p->share;
  w->driver = s->driver;
  /* The application's per-connection bytes live right after the parser's state. */
  w->user_off = ROUND_UP(p->parser, 64);
  w->user_size = cfg->conn_user_size;
  w->parser_stride = w->user_off + ROUND_UP(cfg->conn_user_size, 64);
  w->send_reserve = (uint32_t)((cfg->recv_size + cfg->send_chunk - 1) / cfg->send_chunk) + 1;
  if (p->tls) /* records never straddle chunks: as many again in the worst case */
    w->send_reserve *= 2;
  struct plan q = *p;
  if (q.chunks < w->send_reserve * 2)
    q.chunks = w->send_reserve * 2;
  if (worker_alloc(s, w, &q) < 0)
    return -ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    w->conns[i] =
        (struct rw_conn){.fd = -1, .idx = i, .w = w, .parser = w->parsers + (size_t)i * w->parser_stride};
    w->conn_free[i] = n - 1 - i;
    w->file_free[i] = i;
  }
  w->nfile_free = n;
  w->nconn_free = n;
  w->now_ms = rw_now_ms();
  rw_wheel_init(&w->wheel, w->now_ms);
  w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wakefd < 0)
    return -errno;
  w->budget = worker_bytes(w);
  s->resident += w->budget;
  s->reserved += w->budget;
  if (w->id == 0)
    log_plan(s, &q);
  return worker_sockets(s, w);
}

static void worker_fini(rw_server *s, struct rw_worker *w)
{
  uint32_t n = w->max_conns;
  /* Worker 0's sockets are the server's own: rw_server_destroy() closes those. */
  for (unsigned i = 0; i < s->nlisteners && w->id != 0; i++)
    if (w->lfd[i] >= 0)
      close(w->lfd[i]);
  for (unsigned i = 0; i < s->nudp && w->id != 0; i++)
    if (w->udp[i].fd >= 0)
      close(w->udp[i].fd);
  if (w->wakefd >= 0)
    close(w->wakefd);
  rw_region_free(w->conns, (size_t)n * sizeof *w->conns);
  rw_region_free(w->conn_free, (size_t)n * sizeof *w->conn_free);
  rw_region_free(w->parsers, (size_t)n * w->parser_stride);
  rw_region_free(w->file_streams, (size_t)n * sizeof *w->file_streams);
  rw_region_free(w->file_reqs, (size_t)n * sizeof *w->file_reqs);
  rw_region_free(w->file_free, (size_t)n * sizeof *w->file_free);
  rw_region_free(w->chunk_next, (size_t)w->send_pool.count * sizeof *w->chunk_next);
  rw_region_free(w->chunk_len, (size_t)w->send_pool.count * sizeof *w->chunk_len);
  rw_region_free(w->rxbuf, s->cfg.recv_size + 1);
  rw_pool_fini(&w->acc_pool);
  rw_pool_fini(&w->send_pool);
  rw_pool_fini(&w->transport_pool);
  rw_pool_fini(&w->dio_pool);
  rw_dns_fini(w);
  rw_dial_fini(w);
  rw_upstreams_fini(w);
  rw_stats_worker_fini(w);
}

static void pin_to_cpu(struct rw_worker *w)
{
  cpu_set_t online, set;
  if (sched_getaffinity(0, sizeof online, &online) < 0)
    return;
  /* Worker i takes the i-th CPU this process may run on. */
  int count = CPU_COUNT(&online), want = (int)(w->id % (unsigned)count), seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (CPU_ISSET(cpu, &online) && seen++ == want) {
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      return;
    }
  }
}

static void *worker_main(void *arg)
{
  struct rw_worker *w = arg;
  rw_server *s = w->srv;
  if (s->cfg.pin)
    pin_to_cpu(w);
  w->rc = w->driver->init(w);
  if (!w->rc && s->cfg.on_worker_start)
    s->cfg.on_worker_start(w, s->cfg.data);
  if (!w->rc)
    w->rc = w->driver->run(w);
  w->driver->fini(w);
  if (w->rc) {
    rw_log("worker %u failed: %s", w->id, strerror(-w->rc));
    rw_server_stop(s); /* one worker down takes the server down cleanly, not half of it */
  }
  return NULL;
}

static const struct rw_driver *choose_driver(const rw_config *cfg)
{
  char why[160] = "";
  if (cfg->backend == RW_BACKEND_EPOLL)
    return &rw_driver_epoll;
  int rc = rw_driver_uring.probe(why, sizeof why);
  if (rc == 0)
    return &rw_driver_uring;
  if (cfg->backend == RW_BACKEND_URING) {
    rw_log("io_uring backend unavailable: %s", why);
    return NULL;
  }
  rw_log("io_uring unavailable (%s): falling back to epoll", why);
  return &rw_driver_epoll;
}

/* What the pools can make resident at most, under any load, and the address space they took:
 * each summed on its own, so that the line stays true should they ever differ. */
static void log_budget(const rw_server *s, size_t large)
{
  char part[80] = "";
  if (large)
    snprintf(part, sizeof part, " (%.1f MiB of it only while long frames arrive)", (double)large / (1 << 20));
  rw_log("%s backend, %u worker%s, %u connections at most%s, memory budget %.1f MiB resident at "
         "most%s, %.1f MiB address space reserved",
         s->driver->name, s->nworkers, s->nworkers == 1 ? "" : "s", s->cfg.max_conns,
         s->nworkers == 1 ? "" : " (all workers together)", (double)s->resident / (1 << 20), part,
         (double)s->reserved / (1 << 20));
}

/* SIGINT/SIGTERM (and SIGHUP, with rw_server_on_hup) are blocked in every thread (the mask is
 * inherited) and read by worker 0
 * through its signalfd, so a signal is an ordinary event in one loop, never an interruption. */
int rw_server_run(rw_server *s)
{
  if (!s->nlisteners && !s->nudp && !s->cfg.on_worker_start)
    return -EINVAL; /* nothing would ever happen */
  rw_fault_init();
  if (s->cfg.metrics && !s->metrics_bound) {
    int bound = rw_server_metrics(s, s->cfg.metrics);
    if (bound < 0)
      return bound;
  }
  s->driver = choose_driver(&s->cfg);
  if (!s->driver)
    return -ENOSYS;
  int rc = rw_stats_prepare(s);
  if (rc)
    return rc;
  /* Aligned: each worker's counters are on cache lines of their own. */
  s->workers = aligned_alloc(_Alignof(struct rw_worker), s->nworkers * sizeof *s->workers);
  if (!s->workers)
    return -ENOMEM;
  memset(s->workers, 0, s->nworkers * sizeof *s->workers);
  rc = rw_metrics_start(s);
  struct plan plan;
  plan_pools(s, &plan);
  if (!rc)
    rc = rw_large_init(s, plan.large_slots, plan.large);
  size_t large = (size_t)plan.large_slots * plan.large;
  s->resident = s->reserved = rw_large_bytes(s) + rw_metrics_bytes(s);
  for (unsigned i = 0; i < s->nworkers; i++)
    worker_reset(s, &s->workers[i], i);
  for (unsigned i = 0; i < s->nworkers && !rc; i++)
    rc = worker_init(s, &s->workers[i], &plan);
  if (!rc)
    log_budget(s, large);
  sigset_t mask, old;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (s->on_hup) /* else SIGHUP keeps its default action */
    sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, &old);
  /* The thread pool starts with signals blocked, like the workers. */
  bool pool = !rc;
  if (pool)
    rc = rw_offload_start(s);
  unsigned started = 1;
  for (; !rc && started < s->nworkers; started++) {
    rc = -pthread_create(&s->workers[started].thread, NULL, worker_main, &s->workers[started]);
    if (rc)
      rw_server_stop(s);
  }
  /* Every listener is bound and every worker set up: connections are accepted from here on. */
  if (!rc)
    rw_notify("READY=1");
  if (!rc || started > 1) {
    worker_main(&s->workers[0]);
    for (unsigned i = 1; i < started; i++)
      pthread_join(s->workers[i].thread, NULL);
  }
  if (pool)
    rw_offload_stop(s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  for (unsigned i = 0; i < s->nworkers; i++) {
    if (!rc)
      rc = s->workers[i].rc;
    worker_fini(s, &s->workers[i]);
  }
  rw_large_fini(s);
  rw_metrics_stop(s);
  free(s->workers);
  s->workers = NULL;
  return rc;
}

void rw_server_stop(rw_server *s)
{
  atomic_store(&s->stop, 1);
  for (unsigned i = 0; s->workers && i < s->nworkers; i++)
    if (s->workers[i].wakefd >= 0)
      rw_worker_wake(&s->workers[i]);
}

size_t rw_server_budget(const rw_server *s)
{
  return s->resident;
}

size_t rw_server_reserved(const rw_server *s)
{
  return s->reserved;
}

const char *rw_server_backend(const rw_server *s)
{
  return s->driver ? s->driver->name : "none";
}

void rw_server_destroy(rw_server *s)
{
  if (!s)
    return;
  for (unsigned i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].fd0 >= 0)
      close(s->listeners[i].fd0);
  for (unsigned i = 0; i < s->nudp; i++)
    if (s->udps[i].fd0 >= 0)
      close(s->udps[i].fd0);
  rw_metrics_free(s);
  free(s);
}
