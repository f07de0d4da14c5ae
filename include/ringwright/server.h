/* A server: workers (one thread, one reactor, one set of fixed pools each), listeners bound to
 * generated protocols, and a loop that runs until SIGINT/SIGTERM or rw_server_stop(). */
#ifndef RINGWRIGHT_SERVER_H
#define RINGWRIGHT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "timer.h"
#include "udp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_server rw_server;

enum rw_backend { RW_BACKEND_AUTO, RW_BACKEND_URING, RW_BACKEND_EPOLL };

#define RW_BATCH_WAIT_MAX_US 10000

typedef struct rw_config {
  const char *name;         /* prefix of log lines, usually the program name */
  enum rw_backend backend;  /* auto: io_uring when it can be set up, else epoll */
  uint32_t workers;         /* threads, each with its own reactor (0: one per online CPU) */
  bool pin;                 /* pin worker i to CPU i */
  bool peer_names;          /* rw_conn_name() answers for accepted connections on io_uring too
                               (accepted into the fd table, not the ring's fixed files) */
  uint32_t max_conns;       /* accepted connections open at once, all workers together; more are
                               refused. Each worker has this many connection slots (also taken by
                               its outbound connections and process pipes) */
  uint32_t idle_timeout_ms; /* close connections silent this long (0: never) */
  uint32_t recv_size;       /* bytes per receive */
  uint32_t recv_buffers;    /* io_uring: provided buffers per worker at most (0: half its even
                               share of max_conns, 64..4096); 16 circulate at start, doubling
                               when a receive finds none */
  uint32_t accum_slots;     /* per worker, for frames that cross receives (0: a quarter of its even
                               share of max_conns, >= 16) */
  uint32_t accum_size;      /* frame bytes a slot holds, plus one receive (0: the longest frame
                               of the protocols served, alternates included, at most 4 MiB) */
  uint32_t large_slots;     /* the server's, shared by every worker, for frames longer than a
                               slot, each as long as the longest frame: resident only while used
                               (0: 2 when a listener's frames can outgrow a slot) */
  uint32_t tls_slots;       /* per worker, for TLS records that cross receives and replies not
                               yet sealed, 16.3 KiB each (0: with a TLS listener, max_conns plus
                               the worker's even share of it, else 16) */
  uint32_t send_chunk;      /* bytes per send-slab chunk */
  uint32_t send_chunks;     /* per worker (0: 4 per connection of its even share of max_conns) */
  uint32_t send_high_water; /* queued bytes above which a connection is no longer read */
  uint32_t shutdown_ms;     /* how long a graceful stop may flush before it closes regardless */
  uint32_t send_zc_min;     /* io_uring: sends of at least this many bytes use send_zc (0: never) */
  uint32_t batch_wait_us;   /* under load: once a completion (io_uring, Linux 6.12+) or a ready
                               connection (epoll) is there, wait up to this long for more before
                               a turn (fewer wake-ups, this much more latency at most per wait); a
                               wait that finds a single one turns it off until they come in twos
                               again (default 20; 0: never; at most RW_BATCH_WAIT_MAX_US) */
  uint32_t conn_user_size;  /* bytes of zeroed per-connection state for the application (rw_conn_user) */
  uint32_t pool_threads;    /* the thread pool for blocking work: tasks, lookups, epoll's files */
  uint32_t task_queue;      /* rw_task_submit() jobs that may wait, all workers together */
  uint32_t dns_slots;       /* per worker: rw_resolve() lookups in flight */
  uint32_t dio_buffers;     /* per worker: O_DIRECT buffers (rw_file_dio_get) */
  uint32_t dio_buffer_size; /* bytes each, a multiple of 4096 */
  /* Runs on the worker's thread for each accepted connection, before any of its bytes are read
   * (`proto`: its listener's protocol; rw_conn_user is zeroed): per-connection set-up such as
   * a registry of clients. The connection may be written or closed from here. */
  void (*on_accept)(rw_conn *c, const rw_proto *proto, void *data);
  /* HOST:PORT to serve Prometheus metrics on (rw_server_metrics() when the server starts
   * running, after every other listener); NULL: none. */
  const char *metrics;
  /* Runs on each worker's thread before its loop starts: set up timers, dial out. */
  void (*on_worker_start)(rw_worker *w, void *data);
  /* Runs on each worker once per loop turn, after the turn's events were handled and before its
   * replies go to the kernel: the place to batch work the turn produced (a log write). */
  void (*on_turn_end)(rw_worker *w, void *data);
  void *data;
} rw_config;

/* Fills `cfg` with the defaults documented in docs/appliances.md and docs/runtime.md. */
void rw_config_default(rw_config *cfg);

/* Checks the config and prepares a server; pools are allocated by rw_server_run(). 0 or -errno. */
int rw_server_create(const rw_config *cfg, rw_server **out_srv);

/* Binds HOST:PORT (port 0 picks one; every worker then shares it through SO_REUSEPORT) for
 * `proto` served by `handlers`, and logs "listening on ADDR (PROTO)"; 0 or -errno. */
int rw_server_listen(rw_server *s, const char *hostport, const rw_proto *proto, const void *handlers);

/* Declares a protocol that connections will speak though no listener serves it: outbound ones
 * (rw_connect, rw_connect_tls) and child processes' (rw_spawn). Every pool is sized at start
 * for the protocols known then (each connection slot holds the largest parser state; the
 * accumulator and large slots hold the longest frame), and those are the listeners', their
 * alternates' and the ones declared here: a connection with any other protocol is refused with
 * -EINVAL. Declaring a protocol a listener serves is harmless. Call before rw_server_run(); 0,
 * -EBUSY once it runs, or -ENOSPC past RW_MAX_PROTOS declarations. */
#define RW_MAX_PROTOS 16
int rw_server_use_proto(rw_server *s, const rw_proto *proto);

/* SIGHUP: `fn(w, data)` runs on worker 0's thread (`w`) each time the process receives one, as
 * an ordinary event of its loop (the place to reopen logs: rw_logfile_reopen). Without it,
 * SIGHUP keeps its default action and ends the process. Call before rw_server_run(); 0,
 * -EINVAL, or -EBUSY once it runs. */
int rw_server_on_hup(rw_server *s, void (*fn)(rw_worker *w, void *data), void *data);

/* Lookahead for the connections speaking `proto` (accepted or dialled): when a receive holds
 * two or more whole messages, `fn` sees up to RW_PEEK_MAX of them (the command and message
 * the handlers will get) before any is dispatched, then once more with cmd -1 and msg NULL. It
 * is the place to prefetch what the handlers will touch (kvd: each key's hash bucket, then the
 * items): a pipeline's cache misses overlap instead of following one another. `fn` may not
 * write to the connection or keep the message; every message is dispatched afterwards as
 * always. Parsers with more than RW_PEEK_STATE bytes of state are not looked ahead, nor those
 * whose bodies stream (an on_eof hook: their state moves only as the handlers take messages),
 * -EINVAL. Call before rw_server_run(); 0 or -errno. */
#define RW_PEEK_MAX 16
#define RW_PEEK_STATE 2048
typedef void (*rw_peek_fn)(rw_conn *c, int cmd, const void *msg);
int rw_server_peek(rw_server *s, const rw_proto *proto, rw_peek_fn fn);

/* Two protocols on one port, told apart by the first byte a client sends (memcached's text and
 * binary protocols): on the listeners serving `proto`, plain or TLS (the plaintext's first
 * byte), a connection whose first received byte is `first_byte` speaks `alt`, served by
 * `alt_handlers`, instead; any other first byte keeps `proto`. The choice is made once, before
 * anything is parsed, and holds for the connection's life. Pools are sized for `alt` too (its
 * parser state, its longest frame); a lookahead (rw_server_peek) registered for `alt` applies.
 * Checks `alt_handlers` now. Call before rw_server_run(); 0, -EINVAL (a handler missing, `alt`
 * is `proto`, or `first_byte` is taken for `proto`) or -ENOSPC. */
int rw_server_alternate(rw_server *s, const rw_proto *proto, const rw_proto *alt, const void *alt_handlers,
                        uint8_t first_byte);

/* The port listener `i` (in rw_server_listen() order) is bound to, or -EINVAL. */
int rw_server_port(const rw_server *s, unsigned i);

/* Binds a UDP socket on HOST:PORT in every worker; `fn` gets each datagram. 0 or -errno. */
int rw_server_udp(rw_server *s, const char *hostport, rw_udp_fn fn, void *data);

/* Allocates every pool, logs the memory budget (resident at most, address space reserved),
 * starts the workers, sends READY=1 to $NOTIFY_SOCKET when it is set (systemd's Type=notify)
 * and serves until SIGINT, SIGTERM or rw_server_stop(); then stops
 * accepting, flushes what is queued (bounded by shutdown_ms) and returns 0, or -errno if a loop
 * could not start or failed. A server needs no listener: one that only dials out (from
 * on_worker_start) runs the same way. -EINVAL when it has nothing to do: no listener, no UDP
 * socket and no on_worker_start. */
int rw_server_run(rw_server *s);

/* Asks every worker to stop gracefully; callable from any worker's callbacks. */
void rw_server_stop(rw_server *s);
rw_server *rw_worker_server(const rw_worker *w);
/* The worker's index, 0 .. workers-1. */
unsigned rw_worker_id(const rw_worker *w);

/* Closes every socket and releases every pool. */
void rw_server_destroy(rw_server *s);

/* Bytes the runtime's pools (every worker's and the server's large slots) can make resident at
 * most, under any load: its memory does not grow past this. Valid once running. */
size_t rw_server_budget(const rw_server *s);
/* Address space those pools mapped at start; the runtime maps no more for them. */
size_t rw_server_reserved(const rw_server *s);
/* The backend the workers run ("epoll", "io_uring"); valid once running. */
const char *rw_server_backend(const rw_server *s);

#ifdef __cplusplus
}
#endif

#endif
