/* Internal: the server (server.c): its listeners, its workers and what they share. */
#ifndef RW_SERVER_H
#define RW_SERVER_H

#include <stdatomic.h>
#include <sys/socket.h>

#include <ringwright/server.h>
#include <ringwright/udp.h>

#include "large.h"
#include "offload.h"
#include "upstream.h"
#include "stats.h"

#define RW_MAX_LISTENERS 8
#define RW_MAX_UDP 8

struct rw_worker;
struct rw_driver;

struct rw_listener {
  const rw_proto *proto;
  void *transport_ctx; /* its connections' transport starts from it (struct rw_tls); NULL: plain */
  const void *handlers;
  struct sockaddr_storage ss; /* the bound address (port resolved) */
  socklen_t sslen;
  int fd0;        /* worker 0's socket, bound at rw_server_listen() to learn the port */
  bool uncounted; /* its frames are not counted (the metrics listener's own) */
  char addr[64];
};

struct rw_udp_spec {
  struct sockaddr_storage ss;
  socklen_t sslen;
  int fd0;
  rw_udp_fn fn;
  void *data;
};

struct rw_server {
  rw_config cfg;
  struct rw_listener listeners[RW_MAX_LISTENERS];
  unsigned nlisteners;
  struct rw_udp_spec udps[RW_MAX_UDP];
  unsigned nudp;
  struct rw_worker *workers;
  unsigned nworkers;
  const struct rw_driver *driver;
  size_t resident; /* what every pool can make resident at most */
  size_t reserved; /* address space the pools took at start */
  atomic_int stop;
  struct rw_offload offload;
  struct {
    const rw_proto *proto;
    rw_peek_fn fn;
  } peeks[RW_MAX_LISTENERS];
  unsigned npeeks;
  void (*on_hup)(rw_worker *w, void *data); /* rw_server_on_hup(); NULL: SIGHUP ends the process */
  void *hup_data;
  /* Written when a connection is accepted or released, never per request: on a cache line of
   * its own, away from `stop`, which every loop reads each turn. */
  _Alignas(64) atomic_uint nconns; /* accepted connections not yet released: at most max_conns */
  _Alignas(64) struct rw_large large;
  struct rw_alternate { /* rw_server_alternate() */
    const rw_proto *proto, *alt;
    const void *handlers;
    uint8_t first_byte;
  } alts[RW_MAX_LISTENERS];
  unsigned nalts;
  const rw_proto *uses[RW_MAX_PROTOS]; /* rw_server_use_proto() */
  unsigned nuses;
  struct rw_upstream upstreams[RW_MAX_UPSTREAMS]; /* rw_server_upstream() */
  unsigned nupstreams;
  struct rw_stat_proto stat[RW_MAX_STAT_PROTOS]; /* the protocols counted (stats.c) */
  unsigned nstat;
  struct {
    const rw_proto *proto;
    const char *const *names;
    unsigned n;
  } named[RW_MAX_PROTOS]; /* rw_server_command_names() */
  unsigned nnamed;
  struct rw_metrics *metrics; /* rw_server_metrics(), rw_server_metrics_add(): NULL when neither */
  bool metrics_bound;         /* the metrics listener is bound */
};

/* The metrics listener's buffers (metrics.c): allocated at run, freed after, and its state. */
int rw_metrics_start(rw_server *s);
size_t rw_metrics_bytes(const rw_server *s);
void rw_metrics_stop(rw_server *s);
void rw_metrics_free(rw_server *s);

/* Whether pools were sized for `proto`: a listener's, an alternate's or a declared one. */
bool rw_server_speaks(const rw_server *s, const rw_proto *proto);
/* Those protocols: the listeners', their alternates', the declared ones, in that order. */
unsigned rw_server_nprotos(const rw_server *s);
const rw_proto *rw_server_proto_at(const rw_server *s, unsigned i);

#endif
