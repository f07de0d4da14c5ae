/* kvd: what its RESP and memcache handlers share: the store, the clock, the counters. */
#ifndef KVD_H
#define KVD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ringwright/ringwright.h>

#include "memcache.gen.h"
#include "memcache_binary.gen.h"
#include "resp.gen.h"
#include "store.h"

#define KVD_VERSION "0.1.0"
#define KVD_NAME_MAX 128 /* bytes of a CLIENT SETNAME name kept per connection */
#define KVD_ADDR_MAX 56  /* "[ipv6]:port" and its NUL */

/* Per-worker counters: each written only by its worker, read by anyone (relaxed atomics, so
 * plain loads and stores on x86). Padded to a cache line pair so workers never share one. */
struct kvd_stats {
  _Atomic uint64_t cmd_get, cmd_set, cmd_flush, cmd_touch, get_hits, get_misses;
  _Atomic uint64_t delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses;
  _Atomic uint64_t cas_hits, cas_misses, cas_badval, touch_hits, touch_misses, total_items;
  _Atomic uint64_t commands;
} __attribute__((aligned(128)));

/* Per connection (rw_conn_user): the RESP client's name and id. */
struct kvd_conn {
  uint64_t id;
  kv_item *stream_it; /* a value going out from the store (stream.c), pinned */
  uint32_t stream_off, stream_end;
  bool stream_crlf; /* the stream ends with CRLF (text protocols; binary: nothing) */
  /* A multi-key command dispatched again (after a streamed value, or waiting for the log's room
   * or the send queue's): 0 at its start, else the request's items it has taken, where the next
   * one starts in the request (an offset: the frame may have moved) and what it has counted. */
  uint32_t next_key, next_off;
  int64_t next_n;
  uint64_t aof_wait; /* --fsync always: replies wait until the log is durable to here */
  bool aof_corked, aof_waiting;
  bool authed;       /* the password was given (see auth.c) */
  uint32_t name_len; /* CLIENT SETNAME's: written under the worker's registry lock */
  char name[KVD_NAME_MAX];
  /* The worker's registry of RESP clients (clients.c), joined at the first command */
  bool listed, kill; /* `kill`: CLIENT KILL marked it, its worker closes it */
  struct kvd_conn *cl_prev, *cl_next;
  rw_conn *conn;
  int fd;
  int64_t created_ms;
  _Atomic int64_t last_ms;        /* the last command's time (worker clock) */
  _Atomic(const char *) last_cmd; /* and its name, as CLIENT LIST's cmd= shows it */
  char addr[KVD_ADDR_MAX], laddr[KVD_ADDR_MAX];
};

struct kvd {
  kv_store store;
  unsigned workers;
  int64_t start_ms; /* CLOCK_MONOTONIC, for uptime */
  int resp_port, memcache_port;
  struct kvd_stats *stats; /* [workers] */
  _Atomic uint64_t next_client_id;
};

extern struct kvd kvd;

#define KVD_STAT(c, field) kvd_stat_add(&kvd_stats_of(c)->field, 1)

static inline struct kvd_stats *kvd_stats_of(const rw_conn *c)
{
  return &kvd.stats[rw_worker_id(rw_conn_worker(c))];
}

static inline void kvd_stat_add(_Atomic uint64_t *v, uint64_t n)
{
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Sum of one counter over every worker. */
uint64_t kvd_stat_sum(size_t offset);
#define KVD_STAT_SUM(field) kvd_stat_sum(offsetof(struct kvd_stats, field))

static inline int64_t kvd_now_ms(const rw_conn *c)
{
  return rw_worker_now_ms(rw_conn_worker(c));
}

/* CLOCK_REALTIME in ms, for expiry given as a Unix time. */
int64_t kvd_unix_ms(void);

/* The largest value: what one RESP request may carry (512 MiB, as redis). memcache's set takes
 * up to its own limit (1 MiB, memcached's default item size) but reads and appends to any. */
#define KVD_VALUE_MAX RESP_LIMIT_DATA
/* The longest key a write may store: an eviction's record copies the key, and must fit what the
 * log grants one allocation. */
#define KVD_KEY_MAX (1u << 20)
_Static_assert(MEMCACHE_LIMIT_DATA <= RESP_LIMIT_DATA, "memcache's values fit RESP's");

/* ---- stream.c ---- */
/* Values from this long go out from the item itself, over as many loop turns as it takes. */
#define KVD_STREAM_MIN (64u << 10)
/* Sends `it`'s value (KVD_STREAM_MIN bytes or more), and a CRLF after it when `crlf` (the text
 * protocols), as a stream, after the caller wrote the reply's header (shard locked); the item
 * stays pinned until it has gone out. Returns 1: nothing more may be written for this command
 * (a multi-key reply returns -EAGAIN and is dispatched again when the stream is done,
 * continuing after kvd_conn.next_key keys). */
int kvd_stream_value(rw_conn *c, kv_shard *sh, kv_item *it, bool crlf);
/* The same for `len` bytes of the value from `off` (GETRANGE). */
int kvd_stream_range(rw_conn *c, kv_shard *sh, kv_item *it, uint32_t off, uint32_t len, bool crlf);
/* A reply of one part per key (MGET, memcache's get) queues up to the length of its request, at
 * least KVD_REPLY_MIN, and only while the send slab has room for a value copied whole: then it
 * stops (kvd_wait_room) and goes on when dispatched again. So a million keys' replies wait for
 * the client to read them instead of exhausting the worker's send chunks, and the request is
 * parsed again about once per request-length of replies (more often when the slab is short). */
#define KVD_REPLY_MIN (256u << 10)
bool kvd_reply_full(rw_conn *c, size_t request_len);
/* Waits until the connection has room again; returns -EAGAIN for the handler to return (it is
 * dispatched again with the same frame then). */
int kvd_wait_room(rw_conn *c);

/* ---- memcache_store.c: memcached's operations, shared by its text and binary protocols ---- */
#define KVD_MC_VERSION "1.6.18-ringwright" /* what `version` and the stats say */
/* How an operation ended (>= 0); each protocol words it. The writes may also fail with
 * kvd_put()'s -E2BIG or -ENOMEM, or -EAGAIN: nothing was done or counted, the handler returns it
 * before replying and is dispatched again. */
enum {
  KVD_MC_DONE,        /* stored, deleted, counted */
  KVD_MC_NOT_STORED,  /* add: the key exists; replace, append, prepend: it does not */
  KVD_MC_EXISTS,      /* the item's CAS is not the one given */
  KVD_MC_NOT_FOUND,   /* no such key */
  KVD_MC_NON_NUMERIC, /* incr/decr of a value that is no number */
};
enum kvd_mc_mode { KVD_MC_SET, KVD_MC_ADD, KVD_MC_REPLACE, KVD_MC_APPEND, KVD_MC_PREPEND, KVD_MC_CAS };
/* memcached's exptime as a deadline (kv_item.expire_ms): 0 never, negative already expired (1),
 * up to 30 days relative seconds, beyond that a Unix time. */
int64_t kvd_mc_deadline(const rw_conn *c, int64_t exptime);
/* A storage command. `cas`: for KVD_MC_CAS the CAS the item must have (it must exist); for
 * append and prepend, when not 0, likewise. Done: *out_cas is the new item's. */
int kvd_mc_store(rw_conn *c, enum kvd_mc_mode mode, rw_span key, rw_span data, uint32_t flags,
                 int64_t expire_ms, uint64_t cas, uint64_t *out_cas);
/* The live item for a get (or, `touch`, a touch or gat: its expiry set first), counted as
 * memcached counts them; shard `sh` locked by the caller, who replies from the item. */
kv_item *kvd_mc_fetch(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, bool touch, int64_t expire_ms);
/* delete; `cas` when not 0 must be the item's. */
int kvd_mc_delete(rw_conn *c, rw_span key, uint64_t cas);
/* incr/decr by `delta` (incr wraps at 2^64, decr stops at 0); `cas` when not 0 must be the
 * item's. A missing key is created from `init` when given (binary), else not found. Done:
 * *out_value and *out_cas are the new value's. */
struct kvd_mc_initial {
  uint64_t value;
  int64_t expire_ms;
};
int kvd_mc_delta(rw_conn *c, rw_span key, bool incr, uint64_t delta, uint64_t cas,
                 const struct kvd_mc_initial *init, uint64_t *out_value, uint64_t *out_cas);
/* flush_all: every item now (at_ms 0), or those stored before `at_ms` once it passes. */
void kvd_mc_flush(rw_conn *c, int64_t at_ms);
/* The general stats, one `emit` each (stopping at its first error): its result. */
typedef int (*kvd_mc_stat_fn)(rw_conn *c, const void *arg, rw_span name, rw_span value);
int kvd_mc_stats(rw_conn *c, kvd_mc_stat_fn emit, const void *arg);
void kvd_mc_stats_reset(rw_conn *c);

/* ---- aof.c: the append-only file ---- */
enum kvd_fsync { KVD_FSYNC_ALWAYS, KVD_FSYNC_EVERYSEC, KVD_FSYNC_NO };
/* Opens (creating) and replays `path` into the store; 0 or -errno after saying why. */
int kvd_aof_open(const char *path, enum kvd_fsync policy, bool truncate_ok);
/* Takes the buffers once the server (its worker count) exists. 0 or -ENOMEM. */
int kvd_aof_start(rw_server *srv, uint32_t max_conns);
/* What the log's buffers and lists took at start (resident from then on); 0 without --aof. */
size_t kvd_aof_bytes(void);
void kvd_aof_worker_start(rw_worker *w);
void kvd_aof_turn_end(rw_worker *w, void *data);
void kvd_aof_close(void);
/* Before a write command changes anything: 0; -EAGAIN (the handler returns it: the command is
 * retried once the log has room); or the log's error (-errno: writes are refused). An admitted
 * command may append up to KVD_AOF_RECORDS records; one that writes more (MSET, DEL of many keys)
 * is admitted again before each further KVD_AOF_RECORDS, and stops there when it must wait. */
#define KVD_AOF_RECORDS 1024u
int kvd_aof_admit(rw_conn *c);
/* A write command's first step: -EAGAIN to the runtime (the frame is retried once the log has
 * room); a log that failed refuses the write with `refused`, the protocol's error reply. */
#define KVD_ADMIT(c, refused)                                                                \
  do {                                                                                       \
    int admit_ = kvd_aof_admit(c);                                                           \
    if (admit_ == -EAGAIN)                                                                   \
      return admit_;                                                                         \
    if (admit_ < 0) {                                                                        \
      ((struct kvd_conn *)rw_conn_user(c))->next_key = 0; /* (a continued MSET ends here) */ \
      return (refused);                                                                      \
    }                                                                                        \
  } while (0)
/* The store's operations for handlers (call with the shard locked): a lookup whose reply, with
 * --fsync always, waits for what it may see to be durable; writes, each journaled. */
kv_item *kvd_find(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, int64_t now_ms);
/* kvd_put: 0, -E2BIG, -ENOMEM, or -EAGAIN when the store's evictions must wait for the log's
 * next batch (the handler returns it before replying: the command is dispatched again). */
int kvd_put(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, rw_span a, rw_span b, uint32_t flags,
            int64_t expire_ms, const kv_item *keep, int64_t now_ms);
/* kvd_put() in two steps, for a value built in place: an unlinked item with room for `vlen`
 * bytes (kvd_put's errors), which the caller fills (value, flags, expiry) and links. */
int kvd_alloc(rw_conn *c, kv_shard *sh, rw_span key, uint32_t hash, size_t vlen, const kv_item *keep,
              kv_item **out_it);
void kvd_link(rw_conn *c, kv_shard *sh, kv_item *it, int64_t now_ms);
void kvd_delete(rw_conn *c, kv_shard *sh, kv_item *it);
void kvd_set_expire(rw_conn *c, kv_shard *sh, kv_item *it, int64_t expire_ms);
void kvd_flush(rw_conn *c);                    /* every shard, now */
void kvd_aof_flush(rw_conn *c, int64_t at_ms); /* a delayed flush_all's record */
/* A deadline on the worker's clock (kv_item.expire_ms) as the Unix ms it stands for. */
int64_t kvd_to_unix(rw_conn *c, int64_t mono_ms);
/* A read's reply waits, with --fsync always, for writes it may see (call with its shard locked). */
void kvd_aof_read(rw_conn *c);

/* ---- aof_replay.c: the log read back at start ---- */
/* What replay found: the log's valid prefix, and where it stopped. */
struct kvd_aof_replayed {
  uint64_t good;    /* the valid prefix's bytes: it ends after a batch's checksum record */
  uint64_t records; /* records applied (checksum records not counted) */
  uint64_t batches; /* batches whose checksum held */
  uint64_t bad_at;  /* where replay stopped: the record, or the checksum that failed */
  uint32_t crc;     /* CRC32C of the valid prefix: the next batch's checksum goes on from it */
  bool legacy;      /* no checksum record at all (a log from before them): replayed unverified */
};
/* Replays the log open on `fd` into the store. Damage (the file ends inside a record or a
 * batch, a batch fails its checksum) refuses to start, saying where, unless `truncate_ok`: then
 * the file is cut after its valid prefix, saying so. A record kvd does not write is refused
 * either way. 0 or -errno, having said why. */
int kvd_aof_load(int fd, const char *path, bool truncate_ok, struct kvd_aof_replayed *r);

/* ---- info.c: the RESP handlers' counters and inline scratch, taken at start (0 or -ENOMEM) ---- */
int kvd_info_init(unsigned workers);
/* kvd's series at /metrics and its commands' names for the runtime's counters (info.c). */
int kvd_info_register(rw_server *srv, uint32_t max_conns);

/* ---- auth.c: the password ---- */
/* The password (--requirepass), or the first line of a file (--requirepass-file): 0 or -errno,
 * having said why. */
int kvd_auth_set(const char *pass, size_t len);
int kvd_auth_load(const char *path);
bool kvd_auth_required(void);
/* Whether user/pass are redis's default user and the password (compared in constant time); without
 * a password, whether the user is the default one. */
bool kvd_auth_check(rw_span user, rw_span pass);
/* 0, or -EPERM after saying why: memcache without a password on a non-loopback address. */
int kvd_auth_listen_ok(const char *flag, const char *hostport);
/* Whether the connection may run commands. */
static inline bool kvd_authed(const rw_conn *c)
{
  return !kvd_auth_required() || ((const struct kvd_conn *)rw_conn_user(c))->authed;
}
/* resp_fault.c: redis's limits for unauthenticated clients, checked on a RESP connection's input
 * as it arrives while it is not `authed` (and a password is set). */
void kvd_resp_gate_input(rw_conn *c, bool authed);

/* ---- clients.c: CLIENT LIST, INFO and KILL across workers ---- */
int kvd_clients_init(unsigned workers);
/* rw_config.on_accept: a connection on a RESP listener joins its worker's registry. */
void kvd_client_accepted(rw_conn *c, const rw_proto *proto, void *data);
/* A RESP command of this connection (`cmd` as CLIENT LIST's cmd= shows it). */
void kvd_client_seen(rw_conn *c, const char *cmd);
/* The connection's id: given on first use, from one counter for the server. */
uint64_t kvd_client_id(rw_conn *c);
/* CLIENT SETNAME's copy, under the registry's lock (`name` already checked). */
void kvd_client_set_name(rw_conn *c, rw_span name);
/* CLIENT LIST | INFO | KILL (`sub` is a->item[1]). */
int kvd_client_command(rw_conn *c, const rw_list *a, rw_span sub);

/* ---- crc32c.c ---- */
/* CRC32C (Castagnoli) of `n` bytes at `p`, going on from `crc` (0 to start): the CRC of a then
 * b is kvd_crc32c(kvd_crc32c(0, a), b). */
uint32_t kvd_crc32c(uint32_t crc, const void *p, size_t n);

/* ---- resp.c ---- */
/* What the RESP command files (resp*.c, keys.c, info.c) read arguments with. */
extern const rw_span KVD_NOT_INT, KVD_SYNTAX;
/* A whole span as a signed 64-bit decimal, as redis's string2ll reads it. 0 or -EINVAL. */
int kvd_parse_i64(rw_span s, int64_t *out_v);
/* Whether `s` is `lit`, ignoring case. */
bool kvd_eq(rw_span s, const char *lit);

/* KEYS, SCAN, RANDOMKEY (keys.c), and redis's glob patterns (glob.c). */
int kvd_resp_keys(rw_conn *c, const rw_list *a);
int kvd_resp_scan(rw_conn *c, const rw_list *a);
int kvd_resp_randomkey(rw_conn *c, const rw_list *a);
bool kvd_glob(rw_span pattern, rw_span s);

/* Lookahead (rw_server_peek): a key the next commands of a pipeline will look up is noted and
 * its bucket prefetched; at the end of the lookahead each noted bucket's first item is. */
void kvd_peek_key(rw_span key);
void kvd_peek_end(void);
void kvd_resp_peek(rw_conn *c, int cmd, const void *msg);
void kvd_memcache_peek(rw_conn *c, int cmd, const void *msg);
void kvd_memcache_binary_peek(rw_conn *c, int cmd, const void *msg);

/* Handlers for the protocols: RESP, memcache text and binary (the binary one on the memcache
 * listeners, for connections whose first byte is 0x80). */
extern const struct resp_handlers kvd_resp_handlers;
extern const struct memcache_handlers kvd_memcache_handlers;
extern const struct memcache_binary_handlers kvd_memcache_binary_handlers;

#endif
