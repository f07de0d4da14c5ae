/* The runtime's counters and latency histograms. Each worker writes its own (no lock, no
 * atomic read-modify-write on the hot path); these functions sum over the workers, from any
 * thread, while the server runs. docs/metrics.md lists every figure and its Prometheus name. */
#ifndef RINGWRIGHT_STATS_H
#define RINGWRIGHT_STATS_H

#include <stdint.h>

#include "histogram.h"
#include "proto.h"
#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why an accepted connection was closed. */
enum rw_close_why {
  RW_CLOSED_PEER,  /* the peer closed or reset it */
  RW_CLOSED_IDLE,  /* silent past --idle-timeout (or past the stop deadline) */
  RW_CLOSED_ERROR, /* a protocol error or a socket error */
  RW_CLOSED_LIMIT, /* a limit: a frame past the spec's, a pool without room */
  RW_CLOSED_LOCAL, /* the application closed it, or the server stopped */
  RW_CLOSED__COUNT
};

/* Why a connection was refused at accept. */
enum rw_refuse_why {
  RW_REFUSED_MAX_CONNS, /* --max-conns were open */
  RW_REFUSED_STOPPING,  /* the server was stopping */
  RW_REFUSED_MEMORY,    /* no memory for its transport (a TLS session) */
  RW_REFUSED__COUNT
};

/* Parse errors, by the parser's event (enum rw_parse_status). */
enum rw_parse_event {
  RW_PE_OTHERWISE,        /* a frame that matched no command */
  RW_PE_OVERLONG,         /* past the spec's line or frame limit */
  RW_PE_INVALID,          /* bytes that start no frame */
  RW_PE_TOO_LARGE,        /* a data block past the spec's limit */
  RW_PE_BAD_NUMBER,       /* a number out of its type's range */
  RW_PE_BAD_DATA,         /* a data block not followed by what the spec expects */
  RW_PE_FIELDS_TOO_LARGE, /* a field section past the spec's limit */
  RW_PE_SPEC,             /* an error the spec declares (a number token's own reply) */
  RW_PE__COUNT
};

/* The transport's counters (TLS: the runtime's core does not know what they mean; the
 * transport adds to them). */
enum rw_transport_stat {
  RW_XS_HANDSHAKES,     /* handshakes completed */
  RW_XS_FAIL_HANDSHAKE, /* failures: the handshake */
  RW_XS_FAIL_RECORD,    /* a record after it (bad MAC, bad type, a fatal alert) */
  RW_XS_FAIL_TAKEOVER,  /* the negotiated session could not be taken over */
  RW_XS__COUNT
};

typedef struct rw_stats {
  uint64_t accepted;
  uint64_t refused[RW_REFUSED__COUNT];
  uint64_t closed[RW_CLOSED__COUNT];
  uint64_t bytes_in, bytes_out;     /* as the socket saw them (TLS records included) */
  uint64_t pauses;                  /* a connection stopped being read: its replies or the pools full */
  uint64_t large_waits;             /* a long frame found no large slot free and waited */
  uint64_t enobufs;                 /* io_uring: a receive ended for want of provided buffers */
  uint64_t cq_overflows;            /* io_uring: loop turns that found the completion queue overflowed */
  uint64_t transport[RW_XS__COUNT]; /* TLS handshakes and failures (enum rw_transport_stat) */
  uint64_t offload_rejected;        /* rw_task_submit() refused: the queue was full */
  uint64_t open;                    /* accepted connections not yet closed */
  uint64_t offload_depth;           /* jobs waiting for a pool thread now */
} rw_stats;

/* Sums every worker's counters into `out`. Valid while the server runs (zeros before). */
void rw_server_stats(const rw_server *s, rw_stats *out);

/* The names Prometheus series carry for the enums above ("peer", "max_conns", ...). */
const char *rw_close_why_name(unsigned why);
const char *rw_refuse_why_name(unsigned why);
const char *rw_parse_event_name(unsigned event);
/* The failure reason of transport counter `i` ("handshake", ...; NULL: not a failure). */
const char *rw_transport_fail_name(unsigned i);

/* Commands an application tells apart inside a spec's command (RESP's one `command` frame
 * carries GET, SET, ...): `names[0..n)` are counted and timed as commands of `proto` besides
 * the spec's own, when a handler calls rw_conn_count_as(). `names` must outlive the server.
 * Call before rw_server_run(); 0, -EBUSY once it runs, -EINVAL (proto unknown), -ENOSPC. */
int rw_server_command_names(rw_server *s, const rw_proto *proto, const char *const *names, unsigned n);
/* Counts and times the frame being dispatched as names[i] of rw_server_command_names(). */
void rw_conn_count_as(rw_conn *c, unsigned i);

/* The commands of `proto` counted: the spec's, then the application's names; 0 if unknown. */
unsigned rw_server_ncommands(const rw_server *s, const rw_proto *proto);
const char *rw_server_command_name(const rw_server *s, const rw_proto *proto, unsigned cmd);
/* Frames of command `cmd` dispatched, and the nanoseconds their handlers took in all. */
void rw_server_command_totals(const rw_server *s, const rw_proto *proto, unsigned cmd, uint64_t *out_calls,
                              uint64_t *out_ns);
/* The service time of command `cmd` (frame parsed to handler returned, in nanoseconds), summed
 * over workers into `out` (which it first clears). 0 or -EINVAL. */
int rw_server_command_time(const rw_server *s, const rw_proto *proto, unsigned cmd, rw_histogram *out);
/* Time to first byte on connections speaking `proto`: from a frame's dispatch to the first of
 * the reply's bytes handed to the kernel (ns). 0 or -EINVAL. */
int rw_server_ttfb(const rw_server *s, const rw_proto *proto, rw_histogram *out);
/* Parse errors on connections speaking `proto`, by event. */
uint64_t rw_server_parse_errors(const rw_server *s, const rw_proto *proto, unsigned event);

/* Counters of the application's own, per worker like the runtime's: a worker adds to its own
 * (rw_worker_count) and rw_server_app_counter() sums them. */
#define RW_APP_COUNTERS 32
void rw_worker_count(rw_worker *w, unsigned i, uint64_t n);
uint64_t rw_server_app_counter(const rw_server *s, unsigned i);

#ifdef __cplusplus
}
#endif

#endif
