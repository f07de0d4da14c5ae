/* Internal: the counters and histograms each worker writes (stats.c): one writer per block,
 * relaxed atomic stores of its own loads (plain moves), so that readers on other threads may
 * sum them while they change. */
#ifndef RW_STATS_H
#define RW_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <ringwright/stats.h>

struct rw_worker;
struct rw_conn;

#define RW_STAT_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define RW_STAT_NONE 0xff /* a protocol not counted */
#define RW_MAX_STAT_PROTOS (2 * 8 + RW_MAX_PROTOS)

/* A worker's counters: on cache lines of their own (the worker is aligned for it). */
struct rw_stats_block {
  uint64_t accepted;
  uint64_t refused[RW_REFUSED__COUNT];
  uint64_t closed[RW_CLOSED__COUNT];
  uint64_t bytes_in, bytes_out;
  uint64_t pauses, large_waits, enobufs, cq_overflows;
  uint64_t transport[RW_XS__COUNT];
  uint64_t offload_rejected;
  uint64_t app[RW_APP_COUNTERS];
};

/* A worker's figures for one protocol: a histogram per command (the spec's, then the
 * application's names), one of time to first byte, parse errors by event. */
struct rw_proto_stats {
  rw_histogram *cmd;
  rw_histogram *ttfb;
  uint16_t nspec, nnames; /* the spec's commands, then the application's names */
  uint64_t parse_errors[RW_PE__COUNT];
};

/* The server's view: which protocols are counted, with how many commands each. */
struct rw_stat_proto {
  const rw_proto *proto;
  const char *const *names; /* rw_server_command_names() */
  unsigned nnames, ncmds;
};

/* The clock of service times: the TSC where it is invariant, else CLOCK_MONOTONIC. */
extern bool rw_clock_tsc;
extern uint64_t rw_clock_mult; /* ns = ticks * mult >> 32 */

static inline uint64_t rw_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
  if (rw_clock_tsc)
    return __rdtsc();
#endif
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rw_ticks_ns(uint64_t ticks)
{
  return rw_clock_tsc ? (uint64_t)(((unsigned __int128)ticks * rw_clock_mult) >> 32) : ticks;
}

/* Calibrates the clock (once per process) and lists the protocols counted: at run. */
int rw_stats_prepare(rw_server *s);
/* The worker's histograms (address space reserved; pages resident once written). */
int rw_stats_worker_init(struct rw_worker *w);
void rw_stats_worker_fini(struct rw_worker *w);
size_t rw_stats_worker_bytes(const rw_server *s);
/* The worker's figures for `proto` (NULL: not counted). */
struct rw_proto_stats *rw_stats_of(struct rw_worker *w, const rw_proto *proto);
/* The slot of `proto` among those counted (RW_STAT_NONE if it is not). */
uint8_t rw_stats_slot(const rw_server *s, const rw_proto *proto);

/* A parse error `status` (enum rw_parse_status) on the connection. */
void rw_stats_parse_error(struct rw_conn *c, int status);
/* The first bytes of a reply go to the kernel: time to first byte since its dispatch. */
void rw_stats_first_byte(struct rw_conn *c);
/* An accepted connection is freed: counted by why. */
void rw_stats_closed(struct rw_conn *c);

#endif
