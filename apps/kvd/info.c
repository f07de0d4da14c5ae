/* kvd's INFO: redis 7.0's sections, those kvd has figures for, and its error counts
 * (errorstats: every error reply a handler writes goes through kvd_resp_error). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "resp_cmd.h"

#undef resp_reply_error
#undef resp_reply_wrong_args

/* The first words of kvd's error replies; errorstats counts by them, as redis does. */
static const char *const prefixes[] = {"ERR", "NOAUTH", "WRONGPASS", "NOPROTO", "OOM", "MISCONF"};
#define NPREFIX (sizeof prefixes / sizeof *prefixes)

struct err_stats {
  _Atomic uint64_t n[NPREFIX];
} __attribute__((aligned(64)));
static struct err_stats *err_stats;
static uint32_t maxclients; /* --max-conns */

int kvd_info_init(unsigned workers)
{
  err_stats = aligned_alloc(64, workers * sizeof *err_stats); /* (calloc's need not be 64-aligned) */
  if (err_stats)
    memset(err_stats, 0, workers * sizeof *err_stats);
  int rc = err_stats ? kvd_resp_init(workers) : -ENOMEM;
  return rc < 0 ? rc : kvd_inline_init(workers);
}

static void count_error(rw_conn *c, rw_span msg)
{
  size_t i = 0, word = 0;
  while (word < msg.len && msg.p[word] != ' ')
    word++;
  while (i + 1 < NPREFIX && !(strlen(prefixes[i]) == word && !memcmp(prefixes[i], msg.p, word)))
    i++; /* (every error kvd writes starts with one of them: the last is not a catch-all) */
  kvd_stat_add(&err_stats[rw_worker_id(rw_conn_worker(c))].n[i], 1);
  kvd_resp_error_seen();
}

int kvd_resp_error(rw_conn *c, rw_span msg)
{
  count_error(c, msg);
  return resp_reply_error(c, msg);
}

int kvd_resp_wrong_args(rw_conn *c, rw_span name)
{
  count_error(c, S("ERR"));
  return resp_reply_wrong_args(c, name);
}

/* The reply under construction: sections appended, cut (never overrun) at its capacity. */
struct text {
  char buf[8192];
  size_t n;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(t->buf + t->n, sizeof t->buf - t->n, fmt, ap);
  va_end(ap);
  if (w > 0)
    t->n = t->n + (size_t)w < sizeof t->buf ? t->n + (size_t)w : sizeof t->buf - 1;
}

/* Whether a section is asked for: by name; or, for the default sections, by no argument,
 * "default", "all" or "everything"; commandstats by "all" and "everything" too. */
static bool want(const rw_list *a, const char *name, bool in_default)
{
  if (a->count < 2)
    return in_default;
  rw_list_iter it;
  rw_span s;
  kvd_list_from(a, &it, 1);
  while (!rw_list_next(a, &it, &s)) {
    if (kvd_eq(s, name) || kvd_eq(s, "all") || kvd_eq(s, "everything") ||
        (in_default && kvd_eq(s, "default")))
      return true;
  }
  return false;
}

static void server_section(rw_conn *c, struct text *t)
{
  int64_t up = (kvd_now_ms(c) - kvd.start_ms) / 1000;
  add(t,
      "# Server\r\nredis_version:7.0.15\r\nkvd_version:" KVD_VERSION "\r\n"
      "redis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nmultiplexing_api:%s\r\n"
      "process_id:%d\r\ntcp_port:%d\r\nuptime_in_seconds:%lld\r\n"
      "uptime_in_days:%lld\r\nexecutable:kvd\r\n\r\n",
      rw_server_backend(rw_worker_server(rw_conn_worker(c))), (int)getpid(), kvd.resp_port, (long long)up,
      (long long)(up / 86400));
}

static void cpu_section(struct text *t)
{
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  add(t,
      "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\nused_cpu_sys_children:%ld.%06ld\r\n"
      "used_cpu_user_children:%ld.%06ld\r\n\r\n",
      (long)self.ru_stime.tv_sec, (long)self.ru_stime.tv_usec, (long)self.ru_utime.tv_sec,
      (long)self.ru_utime.tv_usec, (long)children.ru_stime.tv_sec, (long)children.ru_stime.tv_usec,
      (long)children.ru_utime.tv_sec, (long)children.ru_utime.tv_usec);
}

/* Calls, and those rejected (NOAUTH) or failed (an error reply), of the commands run at least
 * once; the time their handlers took is the runtime's (rw_conn_count_as in resp.c). */
static void commandstats_section(const rw_server *s, struct text *t)
{
  add(t, "# Commandstats\r\n");
  for (size_t i = 0; i < kvd_resp_ncounted(); i++) {
    struct kvd_cmd_counts n = kvd_resp_counts(i);
    uint64_t timed, ns;
    rw_server_command_totals(s, &resp_proto, resp_proto.ncommands + (unsigned)i, &timed, &ns);
    if (n.calls || n.rejected)
      add(t, "cmdstat_%s:calls=%llu,usec=%llu,usec_per_call=%.2f,rejected_calls=%llu,failed_calls=%llu\r\n",
          n.name, (unsigned long long)n.calls, (unsigned long long)(ns / 1000),
          timed ? (double)ns / 1000.0 / (double)timed : 0.0, (unsigned long long)n.rejected,
          (unsigned long long)n.failed);
  }
  add(t, "\r\n");
}

/* Redis's clients section, from the runtime's counters (RESP and memcache clients alike). */
static void clients_section(const rw_stats *st, struct text *t)
{
  add(t, "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%u\r\nblocked_clients:0\r\n\r\n",
      (unsigned long long)st->open, maxclients);
}

static uint64_t frames_total(const rw_server *s)
{
  uint64_t n = 0;
  for (const rw_proto *const *p =
           (const rw_proto *const[]){&resp_proto, &memcache_proto, &memcache_binary_proto, NULL};
       *p; p++)
    for (unsigned i = 0; i < rw_server_ncommands(s, *p); i++) {
      uint64_t calls, ns;
      rw_server_command_totals(s, *p, i, &calls, &ns);
      n += calls;
    }
  return n;
}

static void errorstats_section(struct text *t)
{
  add(t, "# Errorstats\r\n");
  for (size_t i = 0; i < NPREFIX; i++) {
    uint64_t n = 0;
    for (unsigned w = 0; w < kvd.workers; w++)
      n += atomic_load_explicit(&err_stats[w].n[i], memory_order_relaxed);
    if (n)
      add(t, "errorstat_%s:count=%llu\r\n", prefixes[i], (unsigned long long)n);
  }
  add(t, "\r\n");
}

int kvd_on_info(rw_conn *c, const rw_list *a)
{
  static _Thread_local struct text t; /* (8 KiB: off the stack, and no allocation) */
  t.n = 0;
  if (want(a, "server", true))
    server_section(c, &t);
  struct kv_totals tot;
  kv_totals(&kvd.store, &tot);
  const rw_server *s = rw_worker_server(rw_conn_worker(c));
  rw_stats st;
  rw_server_stats(s, &st);
  if (want(a, "clients", true))
    clients_section(&st, &t);
  if (want(a, "memory", true))
    add(&t, "# Memory\r\nused_memory:%llu\r\nmaxmemory:%zu\r\nmaxmemory_policy:%s\r\n\r\n",
        (unsigned long long)tot.bytes, kvd.store.memory,
        kvd.store.policy == KV_EVICT_LRU ? "allkeys-lru" : "noeviction");
  if (want(a, "stats", true))
    add(&t,
        "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
        "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\nrejected_connections:%llu\r\n"
        "expired_keys:%llu\r\nevicted_keys:%llu\r\nkeyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n\r\n",
        (unsigned long long)st.accepted, (unsigned long long)frames_total(s), (unsigned long long)st.bytes_in,
        (unsigned long long)st.bytes_out, (unsigned long long)st.refused[RW_REFUSED_MAX_CONNS],
        (unsigned long long)tot.expired, (unsigned long long)tot.evictions,
        (unsigned long long)KVD_STAT_SUM(get_hits), (unsigned long long)KVD_STAT_SUM(get_misses));
  if (want(a, "cpu", true))
    cpu_section(&t);
  if (want(a, "commandstats", false))
    commandstats_section(s, &t);
  if (want(a, "errorstats", true))
    errorstats_section(&t);
  if (want(a, "keyspace", true)) {
    add(&t, "# Keyspace\r\n");
    if (tot.items)
      add(&t, "db0:keys=%llu,expires=%llu,avg_ttl=0\r\n", (unsigned long long)tot.items,
          (unsigned long long)tot.expires);
  }
  /* Like redis: no blank line after the last section. */
  while (t.n >= 4 && t.buf[t.n - 1] == '\n' && t.buf[t.n - 3] == '\n')
    t.n -= 2;
  return resp_reply_bulk(c, (rw_span){(const uint8_t *)t.buf, t.n});
}

/* kvd's own series at /metrics: the keyspace and the store's figures, as INFO has them. */
static void kvd_metrics(rw_metrics_out *o, void *data)
{
  (void)data;
  struct kv_totals tot;
  kv_totals(&kvd.store, &tot);
  static const struct {
    const char *name, *type, *help;
    size_t off;
  } series[] = {
      {"kvd_keys", "gauge", "Keys in the store.", offsetof(struct kv_totals, items)},
      {"kvd_keys_with_expiry", "gauge", "Keys with a time to live.", offsetof(struct kv_totals, expires)},
      {"kvd_memory_used_bytes", "gauge", "Bytes the store's items take.", offsetof(struct kv_totals, bytes)},
      {"kvd_expired_keys_total", "counter", "Keys removed on expiry.", offsetof(struct kv_totals, expired)},
      {"kvd_evicted_keys_total", "counter", "Keys evicted for memory.",
       offsetof(struct kv_totals, evictions)},
  };
  for (size_t i = 0; i < sizeof series / sizeof *series; i++) {
    rw_metrics_family(o, series[i].name, series[i].type, series[i].help);
    rw_metrics_u64(o, series[i].name, NULL, *(const uint64_t *)((const char *)&tot + series[i].off));
  }
  rw_metrics_family(o, "kvd_memory_limit_bytes", "gauge", "--memory.");
  rw_metrics_u64(o, "kvd_memory_limit_bytes", NULL, kvd.store.memory);
  rw_metrics_family(o, "kvd_keyspace_hits_total", "counter", "Reads that found their key.");
  rw_metrics_u64(o, "kvd_keyspace_hits_total", NULL, KVD_STAT_SUM(get_hits));
  rw_metrics_family(o, "kvd_keyspace_misses_total", "counter", "Reads that did not find their key.");
  rw_metrics_u64(o, "kvd_keyspace_misses_total", NULL, KVD_STAT_SUM(get_misses));
}

int kvd_info_register(rw_server *srv, uint32_t max_conns)
{
  maxclients = max_conns;
  int rc = kvd_resp_count_names(srv);
  return rc < 0 ? rc : rw_server_metrics_add(srv, kvd_metrics, NULL);
}
