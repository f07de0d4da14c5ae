/* kvd: a key-value appliance. One store (store.h), generated protocols over it: RESP
 * (spec/resp.rw, handlers in resp.c) and memcache, text (spec/memcache.rw, handlers in
 * memcache.c) or binary (spec/memcache_binary.rw, memcache_binary.c) on the same listeners.
 * Everything is allocated here, before the workers start. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvd.h"

#define DEFAULT_RESP "127.0.0.1:7379"
#define DEFAULT_MEMCACHE "127.0.0.1:7211"
#define SWEEP_EVERY_MS 100
#define SWEEP_BUCKETS 4096 /* per tick and shard: a bounded pause, a full pass every few seconds */

struct kvd kvd;

struct opts {
  const char *resp, *memcache, *resp_tls, *memcache_tls, *aof, *pass, *pass_file;
  uint64_t memory;
  enum kv_policy policy;
  enum kvd_fsync fsync;
  bool aof_truncate;
};

static const char usage[] =
    "  --resp HOST:PORT       serve RESP (redis clients) here (default " DEFAULT_RESP
    " when neither is given)\n"
    "  --memcache HOST:PORT   serve memcache here, text or binary by a connection's first byte\n"
    "                         (default " DEFAULT_MEMCACHE ")\n"
    "  --resp-tls HOST:PORT   serve RESP over TLS here (needs --tls-cert, --tls-key; ALPN redis)\n"
    "  --memcache-tls HOST:PORT  serve memcache over TLS here\n"
    "  --memory BYTES         the store's fixed budget, taken at start (default 64m; k, m, g suffixes)\n"
    "  --evict lru|off        when full: evict least recently used items (default), or refuse writes\n"
    "                         with redis's OOM error / memcached's SERVER_ERROR out of memory\n"
    "  --aof FILE             log every write to FILE (RESP commands) and replay it at start\n"
    "  --fsync always|everysec|no  when the log reaches the disk: before the reply (always),\n"
    "                         once a second (default), or when the kernel decides\n"
    "  --aof-truncated refuse|truncate  a log ending inside a record or a batch, or with a batch\n"
    "                         failing its checksum: refuse to start (default), or keep the batches\n"
    "                         before it and cut the file there, with a log line\n"
    "  --requirepass PASS     clients must authenticate: RESP with AUTH or HELLO AUTH (user default),\n"
    "                         memcache text with a first `set` of \"default PASS\" (memcached -Y)\n"
    "  --requirepass-file FILE  the same, the password being FILE's first line (not in ps output)\n";

static int parse_opt(const char *flag, const char *val, void *data)
{
  struct opts *o = data;
  const char **addr = !strcmp(flag, "--resp")           ? &o->resp
                      : !strcmp(flag, "--memcache")     ? &o->memcache
                      : !strcmp(flag, "--resp-tls")     ? &o->resp_tls
                      : !strcmp(flag, "--memcache-tls") ? &o->memcache_tls
                                                        : NULL;
  if (!addr && strcmp(flag, "--memory") && strcmp(flag, "--evict") && strcmp(flag, "--aof") &&
      strcmp(flag, "--fsync") && strcmp(flag, "--aof-truncated") && strcmp(flag, "--requirepass") &&
      strcmp(flag, "--requirepass-file"))
    return 0;
  if (!val) {
    fprintf(stderr, "kvd: %s needs a value\n", flag);
    return -1;
  }
  if (addr) {
    *addr = val;
  } else if (!strcmp(flag, "--aof")) {
    o->aof = val;
  } else if (!strcmp(flag, "--requirepass")) {
    o->pass = val;
  } else if (!strcmp(flag, "--requirepass-file")) {
    o->pass_file = val;
  } else if (!strcmp(flag, "--fsync")) {
    if (strcmp(val, "always") && strcmp(val, "everysec") && strcmp(val, "no")) {
      fprintf(stderr, "kvd: --fsync takes always, everysec or no, not '%s'\n", val);
      return -1;
    }
    o->fsync = val[0] == 'a' ? KVD_FSYNC_ALWAYS : val[0] == 'e' ? KVD_FSYNC_EVERYSEC : KVD_FSYNC_NO;
  } else if (!strcmp(flag, "--aof-truncated")) {
    if (strcmp(val, "refuse") && strcmp(val, "truncate")) {
      fprintf(stderr, "kvd: --aof-truncated takes refuse or truncate, not '%s'\n", val);
      return -1;
    }
    o->aof_truncate = val[0] == 't';
  } else if (!strcmp(flag, "--memory")) {
    if (rw_cli_parse_size(val, &o->memory) < 0) {
      fprintf(stderr, "kvd: --memory takes a byte count (64m, 1g, ...), not '%s'\n", val);
      return -1;
    }
  } else if (!strcmp(val, "lru") || !strcmp(val, "off")) {
    o->policy = val[0] == 'l' ? KV_EVICT_LRU : KV_EVICT_NONE;
  } else {
    fprintf(stderr, "kvd: --evict takes lru or off, not '%s'\n", val);
    return -1;
  }
  return 2;
}

int64_t kvd_unix_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t kvd_stat_sum(size_t offset)
{
  uint64_t sum = 0;
  for (unsigned w = 0; w < kvd.workers; w++)
    sum += atomic_load_explicit((_Atomic uint64_t *)((char *)&kvd.stats[w] + offset), memory_order_relaxed);
  return sum;
}

/* Each worker sweeps the shard with its own number for expired items, a slice per tick. */
static rw_timer *sweepers;

static void sweep(rw_timer *t)
{
  rw_worker *w = t->data;
  int64_t now = rw_worker_now_ms(w);
  kv_shard *sh = &kvd.store.shards[rw_worker_id(w)];
  if (sh->locking)
    pthread_mutex_lock(&sh->lock);
  kv_sweep(&kvd.store, sh, SWEEP_BUCKETS, now);
  kv_unlock(sh);
  rw_timer_arm(w, t, SWEEP_EVERY_MS);
}

static void worker_start(rw_worker *w, void *data)
{
  (void)data;
  rw_timer *t = &sweepers[rw_worker_id(w)];
  rw_timer_init(t, sweep, w);
  rw_timer_arm(w, t, SWEEP_EVERY_MS);
  kvd_aof_worker_start(w);
}

/* ---- lookahead: prefetching a pipeline's keys (rw_server_peek) ---- */

static _Thread_local uint32_t peeked[RW_PEEK_MAX];
static _Thread_local unsigned npeeked;

void kvd_peek_key(rw_span key)
{
  if (npeeked == RW_PEEK_MAX)
    return;
  uint32_t h = kv_hash(key);
  kv_prefetch_bucket(&kvd.store, h);
  peeked[npeeked++] = h;
}

void kvd_peek_end(void)
{
  for (unsigned i = 0; i < npeeked; i++)
    kv_prefetch_item(&kvd.store, peeked[i]);
  npeeked = 0;
}

static int setup(rw_server *srv, uint32_t srv_max_conns, const struct opts *o, rw_tls *tls)
{
  int rc = 0;
  unsigned i = 0;
  if (o->resp && !(rc = rw_server_listen(srv, o->resp, &resp_proto, &kvd_resp_handlers)))
    kvd.resp_port = rw_server_port(srv, i++);
  if (!rc && o->memcache &&
      !(rc = rw_server_listen(srv, o->memcache, &memcache_proto, &kvd_memcache_handlers)))
    kvd.memcache_port = rw_server_port(srv, i++);
  if (!rc && o->resp_tls)
    rc = rw_server_listen_tls(srv, o->resp_tls, &resp_proto, &kvd_resp_handlers, tls);
  if (!rc && o->memcache_tls)
    rc = rw_server_listen_tls(srv, o->memcache_tls, &memcache_proto, &kvd_memcache_handlers, tls);
  if (!rc)
    rc = rw_server_peek(srv, &resp_proto, kvd_resp_peek);
  if (!rc)
    rc = rw_server_peek(srv, &memcache_proto, kvd_memcache_peek);
  /* memcached's binary protocol on the same listeners, chosen as memcached chooses it: by a
   * connection's first byte, the binary request magic. */
  if (!rc && (o->memcache || o->memcache_tls))
    rc = rw_server_alternate(srv, &memcache_proto, &memcache_binary_proto, &kvd_memcache_binary_handlers,
                             0x80);
  if (!rc)
    rc = rw_server_peek(srv, &memcache_binary_proto, kvd_memcache_binary_peek);
  if (rc < 0)
    return rc;
  kvd.workers = rw_server_workers(srv);
  rc = kv_store_create(o->memory, kvd.workers, o->policy, &kvd.store);
  if (rc < 0) {
    fprintf(stderr, "kvd: cannot take --memory %llu for %u workers (at least 4 MiB each): %s\n",
            (unsigned long long)o->memory, kvd.workers, strerror(-rc));
    return rc;
  }
  kvd.stats = aligned_alloc(128, kvd.workers * sizeof *kvd.stats);
  sweepers = calloc(kvd.workers, sizeof *sweepers);
  if (!kvd.stats || !sweepers)
    return -ENOMEM;
  memset(kvd.stats, 0, kvd.workers * sizeof *kvd.stats);
  if (kvd_info_init(kvd.workers) < 0 || kvd_clients_init(kvd.workers) < 0 ||
      kvd_info_register(srv, srv_max_conns) < 0)
    return -ENOMEM;
  /* The log is replayed into the store before anything is served. */
  if (o->aof && ((rc = kvd_aof_open(o->aof, o->fsync, o->aof_truncate)) < 0 ||
                 (rc = kvd_aof_start(srv, srv_max_conns)) < 0))
    return rc;
  /* With the runtime's budget line that follows, what the process can make resident. */
  char log[48] = "";
  if (kvd_aof_bytes())
    snprintf(log, sizeof log, ", log buffers %.1f MiB", (double)kvd_aof_bytes() / (1 << 20));
  fprintf(stderr, "kvd: store %.1f MiB in %u shard%s (resident as it fills), eviction %s%s\n",
          (double)kvd.store.memory / (1 << 20), kvd.workers, kvd.workers == 1 ? "" : "s",
          o->policy == KV_EVICT_LRU ? "lru" : "off", log);
  return 0;
}

int main(int argc, char **argv)
{
  struct opts o = {.memory = 64u << 20, .policy = KV_EVICT_LRU, .fsync = KVD_FSYNC_EVERYSEC};
  const rw_cli_extra extra = {.usage = usage, .parse = parse_opt, .data = &o, .own_listen_flags = true};
  rw_cli cli;
  int rc = rw_cli_parse_ext(argc, argv, "A key-value store speaking RESP and memcache over one keyspace.",
                            DEFAULT_RESP, &extra, &cli);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (cli.nlisten) {
    fprintf(stderr, "kvd: use --resp and --memcache to say which protocol an address serves\n");
    return 2;
  }
  rw_tls *tls = NULL;
  static const char *const alpn[] = {"redis", NULL};
  if ((o.resp_tls || o.memcache_tls) && rw_cli_tls(&cli, alpn, &tls) < 0)
    return 1;
  if (!o.resp && !o.memcache && !o.resp_tls && !o.memcache_tls) {
    o.resp = DEFAULT_RESP;
    o.memcache = DEFAULT_MEMCACHE;
  }
  if ((o.pass && o.pass_file) || (o.pass && kvd_auth_set(o.pass, strlen(o.pass)) < 0) ||
      (o.pass_file && kvd_auth_load(o.pass_file) < 0)) {
    if (o.pass && o.pass_file)
      fprintf(stderr, "kvd: --requirepass and --requirepass-file: give one\n");
    return 2;
  }
  if ((o.memcache && kvd_auth_listen_ok("--memcache", o.memcache) < 0) ||
      (o.memcache_tls && kvd_auth_listen_ok("--memcache-tls", o.memcache_tls) < 0))
    return 2;
  cli.cfg.conn_user_size = sizeof(struct kvd_conn);
  cli.cfg.peer_names = true; /* CLIENT LIST's addr= and laddr=, on io_uring too */
  /* Requests up to 1 MiB wait in accumulator slots; longer ones (values up to 512 MiB) move to
   * the runtime's large slots, resident only while such a request is arriving. */
  if (!cli.cfg.accum_size)
    cli.cfg.accum_size = (1u << 20) + (64u << 10);
  cli.cfg.on_worker_start = worker_start;
  cli.cfg.on_accept = kvd_client_accepted;
  cli.cfg.on_turn_end = kvd_aof_turn_end;
  rw_server *srv;
  if (rw_server_create(&cli.cfg, &srv) < 0) {
    fprintf(stderr, "kvd: invalid configuration\n");
    return 1;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  kvd.start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  if (setup(srv, cli.cfg.max_conns, &o, tls) < 0) {
    kvd_aof_close();
    rw_server_destroy(srv);
    return 1;
  }
  rc = rw_cli_run(srv);
  kvd_aof_close();
  rw_tls_free(tls);
  kv_store_destroy(&kvd.store);
  free(sweepers);
  free(kvd.stats);
  return rc;
}
