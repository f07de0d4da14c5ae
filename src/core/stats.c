/* Counters and latency histograms (include/ringwright/stats.h): each worker writes its own
 * block, readers sum. The histograms of a worker are one region, a histogram per command of
 * each protocol counted; pages become resident only for commands that are used. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "offload.h"
#include "pool.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

bool rw_clock_tsc;
uint64_t rw_clock_mult = 1ull << 32;

static uint64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The TSC is a clock only where the CPU says it runs at one rate in every state. */
static bool tsc_invariant(void)
{
#if defined(__x86_64__) || defined(__i386__)
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return false;
  char line[4096];
  bool constant = false, nonstop = false;
  while (fgets(line, sizeof line, f) && !(constant && nonstop)) {
    if (strncmp(line, "flags", 5))
      continue;
    constant = strstr(line, " constant_tsc") != NULL;
    nonstop = strstr(line, " nonstop_tsc") != NULL;
    break;
  }
  fclose(f);
  return constant && nonstop;
#else
  return false;
#endif
}

/* Two milliseconds of the monotonic clock against the TSC: the ratio to 0.1%. */
static void clock_calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
  if (!tsc_invariant())
    return;
  uint64_t n0 = mono_ns(), t0 = __rdtsc(), n1, t1;
  do {
    n1 = mono_ns();
    t1 = __rdtsc();
  } while (n1 - n0 < 2000000);
  if (t1 <= t0)
    return;
  rw_clock_mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
  rw_clock_tsc = true;
#endif
}

static pthread_once_t calibrated = PTHREAD_ONCE_INIT;

int rw_stats_prepare(rw_server *s)
{
  pthread_once(&calibrated, clock_calibrate);
  s->nstat = 0;
  for (unsigned i = 0; i < rw_server_nprotos(s); i++) {
    const rw_proto *p = rw_server_proto_at(s, i);
    if ((i < s->nlisteners && s->listeners[i].uncounted) || rw_stats_slot(s, p) != RW_STAT_NONE)
      continue; /* (the metrics listener's protocol is counted only when another serves it) */
    if (s->nstat == RW_MAX_STAT_PROTOS)
      return -ENOSPC;
    struct rw_stat_proto *sp = &s->stat[s->nstat++];
    *sp = (struct rw_stat_proto){.proto = p, .ncmds = p->ncommands};
    for (unsigned k = 0; k < s->nnamed; k++)
      if (s->named[k].proto == p) {
        sp->names = s->named[k].names;
        sp->nnames = s->named[k].n;
        sp->ncmds += sp->nnames;
      }
  }
  return 0;
}

struct rw_proto_stats *rw_stats_of(struct rw_worker *w, const rw_proto *proto)
{
  uint8_t i = rw_stats_slot(w->srv, proto);
  return i == RW_STAT_NONE ? NULL : &w->pstats[i];
}

uint8_t rw_stats_slot(const rw_server *s, const rw_proto *proto)
{
  for (unsigned i = 0; i < s->nstat; i++)
    if (s->stat[i].proto == proto)
      return (uint8_t)i;
  return RW_STAT_NONE;
}

static size_t hist_count(const rw_server *s)
{
  size_t n = 0;
  for (unsigned i = 0; i < s->nstat; i++)
    n += s->stat[i].ncmds + 1; /* (and time to first byte) */
  return n;
}

size_t rw_stats_worker_bytes(const rw_server *s)
{
  return hist_count(s) * sizeof(rw_histogram) + s->nstat * sizeof(struct rw_proto_stats);
}

int rw_stats_worker_init(struct rw_worker *w)
{
  const rw_server *s = w->srv;
  w->pstats = rw_region_alloc(s->nstat * sizeof *w->pstats);
  w->hists = rw_region_alloc(hist_count(s) * sizeof *w->hists);
  if (!w->pstats || !w->hists)
    return -ENOMEM;
  rw_histogram *h = w->hists;
  for (unsigned i = 0; i < s->nstat; i++) {
    w->pstats[i].cmd = h;
    w->pstats[i].nspec = (uint16_t)s->stat[i].proto->ncommands;
    w->pstats[i].nnames = (uint16_t)s->stat[i].nnames;
    h += s->stat[i].ncmds;
    w->pstats[i].ttfb = h++;
  }
  return 0;
}

void rw_stats_worker_fini(struct rw_worker *w)
{
  const rw_server *s = w->srv;
  rw_region_free(w->pstats, s->nstat * sizeof *w->pstats);
  rw_region_free(w->hists, hist_count(s) * sizeof *w->hists);
  w->pstats = NULL;
  w->hists = NULL;
}

/* (Checked against the protocol's names when the frame is recorded: nothing to look up here.) */
void rw_conn_count_as(rw_conn *c, unsigned i)
{
  c->count_as = i < UINT16_MAX ? (uint16_t)i : UINT16_MAX - 1;
}

void rw_stats_parse_error(struct rw_conn *c, int status)
{
  static const uint8_t events[] = {
      [-RW_PARSE_UNKNOWN] = RW_PE_OTHERWISE,
      [-RW_PARSE_OVERLONG] = RW_PE_OVERLONG,
      [-RW_PARSE_INVALID] = RW_PE_INVALID,
      [-RW_PARSE_TOO_LARGE] = RW_PE_TOO_LARGE,
      [-RW_PARSE_BAD_NUMBER] = RW_PE_BAD_NUMBER,
      [-RW_PARSE_BAD_DATA] = RW_PE_BAD_DATA,
      [-RW_PARSE_FIELDS_TOO_LARGE] = RW_PE_FIELDS_TOO_LARGE,
  };
  if (!c->ps || status == RW_PARSE_HEAD || status == RW_PARSE_SKIP)
    return;
  unsigned e = status <= RW_PARSE_SPEC_ERROR(0)             ? RW_PE_SPEC
               : -status < (int)sizeof events && status < 0 ? events[-status]
                                                            : RW_PE_OTHERWISE;
  uint64_t *n = &c->ps->parse_errors[e];
  RW_STAT_ADD(*n, 1);
  /* A limit passed, not malformed bytes: the close it may bring counts as a limit's. */
  c->past_limit = e == RW_PE_OVERLONG || e == RW_PE_TOO_LARGE || e == RW_PE_FIELDS_TOO_LARGE;
}

void rw_stats_first_byte(struct rw_conn *c)
{
  if (c->ttfb_t0 && c->ps)
    rw_hist_record(c->ps->ttfb, rw_ticks_ns(rw_ticks() - c->ttfb_t0));
  c->ttfb_t0 = 0;
}

/* The first error decides (conn.c keeps it); a clean close is the peer's when it sent EOF. */
static unsigned close_why(const struct rw_conn *c, bool eof)
{
  switch (c->close_reason) {
  case 0: return eof ? RW_CLOSED_PEER : RW_CLOSED_LOCAL;
  case -ETIMEDOUT: return RW_CLOSED_IDLE;
  case -ESHUTDOWN: return RW_CLOSED_LOCAL;
  case -EPIPE:
  case -ECONNRESET: return RW_CLOSED_PEER;
  case -EBADMSG: return c->past_limit ? RW_CLOSED_LIMIT : RW_CLOSED_ERROR;
  case -ENOBUFS:
  case -ENOMEM: return RW_CLOSED_LIMIT;
  default: return RW_CLOSED_ERROR;
  }
}

void rw_stats_closed(struct rw_conn *c)
{
  if (!c->counted || !c->ps)
    return;
  uint64_t *n = &c->w->stats.closed[close_why(c, c->flags & RW_CONN_EOF)];
  RW_STAT_ADD(*n, 1);
}

/* ---- reading ---- */

static uint64_t load(const uint64_t *p)
{
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void sum_into(uint64_t *dst, const uint64_t *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] += load(&src[i]);
}

void rw_server_stats(const rw_server *s, rw_stats *out)
{
  *out = (rw_stats){0};
  for (unsigned i = 0; s->workers && i < s->nworkers; i++) {
    const struct rw_stats_block *b = &s->workers[i].stats;
    out->accepted += load(&b->accepted);
    sum_into(out->refused, b->refused, RW_REFUSED__COUNT);
    sum_into(out->closed, b->closed, RW_CLOSED__COUNT);
    out->bytes_in += load(&b->bytes_in);
    out->bytes_out += load(&b->bytes_out);
    out->pauses += load(&b->pauses);
    out->large_waits += load(&b->large_waits);
    out->enobufs += load(&b->enobufs);
    out->cq_overflows += load(&b->cq_overflows);
    sum_into(out->transport, b->transport, RW_XS__COUNT);
    out->offload_rejected += load(&b->offload_rejected);
  }
  /* (Not the --max-conns count: that one includes metrics scrapes.) */
  uint64_t closed = 0;
  for (unsigned i = 0; i < RW_CLOSED__COUNT; i++)
    closed += out->closed[i];
  out->open = out->accepted > closed ? out->accepted - closed : 0;
  out->offload_depth = rw_offload_depth((rw_server *)s);
}

static const struct rw_stat_proto *stat_of(const rw_server *s, const rw_proto *proto, unsigned *slot)
{
  uint8_t i = rw_stats_slot(s, proto);
  if (i == RW_STAT_NONE || !s->workers)
    return NULL;
  *slot = i;
  return &s->stat[i];
}

unsigned rw_server_ncommands(const rw_server *s, const rw_proto *proto)
{
  unsigned slot;
  const struct rw_stat_proto *sp = stat_of(s, proto, &slot);
  return sp ? sp->ncmds : 0;
}

const char *rw_server_command_name(const rw_server *s, const rw_proto *proto, unsigned cmd)
{
  unsigned slot;
  const struct rw_stat_proto *sp = stat_of(s, proto, &slot);
  if (!sp || cmd >= sp->ncmds)
    return NULL;
  return cmd < proto->ncommands ? proto->command_names[cmd] : sp->names[cmd - proto->ncommands];
}

void rw_server_command_totals(const rw_server *s, const rw_proto *proto, unsigned cmd, uint64_t *out_calls,
                              uint64_t *out_ns)
{
  unsigned slot;
  const struct rw_stat_proto *sp = stat_of(s, proto, &slot);
  *out_calls = *out_ns = 0;
  for (unsigned i = 0; sp && cmd < sp->ncmds && i < s->nworkers; i++) {
    const rw_histogram *h = &s->workers[i].pstats[slot].cmd[cmd];
    *out_ns += load(&h->sum);
    for (unsigned b = 0; b < RW_HIST_BUCKETS; b++) /* (the hot path keeps no count) */
      *out_calls += load(&h->bucket[b]);
  }
}

/* Sums the workers' histogram `pick` of protocol `slot`. */
static void sum_hist(const rw_server *s, unsigned slot, unsigned cmd, bool ttfb, rw_histogram *out)
{
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < s->nworkers; i++) {
    const struct rw_proto_stats *ps = &s->workers[i].pstats[slot];
    rw_hist_merge(out, ttfb ? ps->ttfb : &ps->cmd[cmd]);
  }
}

int rw_server_command_time(const rw_server *s, const rw_proto *proto, unsigned cmd, rw_histogram *out)
{
  unsigned slot;
  const struct rw_stat_proto *sp = stat_of(s, proto, &slot);
  if (!sp || cmd >= sp->ncmds)
    return -EINVAL;
  sum_hist(s, slot, cmd, false, out);
  return 0;
}

int rw_server_ttfb(const rw_server *s, const rw_proto *proto, rw_histogram *out)
{
  unsigned slot;
  if (!stat_of(s, proto, &slot))
    return -EINVAL;
  sum_hist(s, slot, 0, true, out);
  return 0;
}

uint64_t rw_server_parse_errors(const rw_server *s, const rw_proto *proto, unsigned event)
{
  unsigned slot;
  uint64_t n = 0;
  if (!stat_of(s, proto, &slot) || event >= RW_PE__COUNT)
    return 0;
  for (unsigned i = 0; i < s->nworkers; i++)
    n += load(&s->workers[i].pstats[slot].parse_errors[event]);
  return n;
}

int rw_server_command_names(rw_server *s, const rw_proto *proto, const char *const *names, unsigned n)
{
  if (s->workers)
    return -EBUSY;
  if (n > UINT16_MAX - 1)
    return -EINVAL;
  if (s->nnamed == RW_MAX_PROTOS)
    return -ENOSPC;
  s->named[s->nnamed].proto = proto;
  s->named[s->nnamed].names = names;
  s->named[s->nnamed++].n = n;
  return 0;
}

void rw_worker_count(rw_worker *w, unsigned i, uint64_t n)
{
  if (i < RW_APP_COUNTERS)
    RW_STAT_ADD(w->stats.app[i], n);
}

uint64_t rw_server_app_counter(const rw_server *s, unsigned i)
{
  uint64_t n = 0;
  for (unsigned k = 0; s->workers && i < RW_APP_COUNTERS && k < s->nworkers; k++)
    n += load(&s->workers[k].stats.app[i]);
  return n;
}

static const char *name_of(const char *const *names, unsigned n, unsigned i)
{
  return i < n ? names[i] : "unknown";
}

const char *rw_close_why_name(unsigned why)
{
  static const char *const names[] = {"peer", "idle", "error", "limit", "local"};
  return name_of(names, RW_CLOSED__COUNT, why);
}

const char *rw_refuse_why_name(unsigned why)
{
  static const char *const names[] = {"max_conns", "stopping", "memory"};
  return name_of(names, RW_REFUSED__COUNT, why);
}

const char *rw_parse_event_name(unsigned event)
{
  static const char *const names[] = {"otherwise",  "overlong", "invalid",          "too_large",
                                      "bad_number", "bad_data", "fields_too_large", "spec"};
  return name_of(names, RW_PE__COUNT, event);
}

const char *rw_transport_fail_name(unsigned i)
{
  static const char *const names[] = {NULL, "handshake", "record", "takeover"};
  return i < RW_XS__COUNT ? names[i] : NULL;
}
