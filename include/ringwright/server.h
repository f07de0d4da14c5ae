/* A server: fixed pools sized once from a config, listeners bound to generated protocols, and a
 * reactor loop that runs until SIGINT/SIGTERM or rw_server_stop(). */
#ifndef RINGWRIGHT_SERVER_H
#define RINGWRIGHT_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct rw_server rw_server;

typedef struct rw_config {
  const char *name;        /* prefix of log lines, usually the program name */
  uint32_t max_conns;      /* connection table size; more are refused */
  uint32_t recv_size;      /* bytes per receive */
  uint32_t accum_slots;    /* slots for frames that cross receives (0: max_conns / 4, >= 16) */
  uint32_t send_chunk;     /* bytes per send-slab chunk */
  uint32_t send_chunks;    /* chunks in the send slab (0: enough for 4 per connection) */
  uint32_t send_high_water; /* queued bytes above which a connection is no longer read */
  uint32_t shutdown_ms;    /* how long a graceful stop may flush before it closes regardless */
} rw_config;

/* Fills `cfg` with the defaults documented in README.md. */
void rw_config_default(rw_config *cfg);

/* Allocates every pool the config implies and prints the memory budget; 0 or -errno. */
int rw_server_create(const rw_config *cfg, rw_server **out_srv);

/* Binds HOST:PORT (port 0 picks one) for `proto` served by `handlers`, and prints the bound
 * address as "NAME: listening on ADDR (PROTO)"; 0 or -errno. */
int rw_server_listen(rw_server *s, const char *hostport, const rw_proto *proto,
                     const void *handlers);

/* Serves until SIGINT/SIGTERM or rw_server_stop(); then stops accepting, flushes what is queued
 * (bounded by shutdown_ms) and returns 0, or -errno if the loop itself failed. */
int rw_server_run(rw_server *s);

/* Asks the loop to stop gracefully; callable from handlers. */
void rw_server_stop(rw_server *s);

/* Closes every socket and releases every pool. */
void rw_server_destroy(rw_server *s);

/* Bytes reserved at start for all pools: the process does not grow past this. */
size_t rw_server_budget(const rw_server *s);

#endif
