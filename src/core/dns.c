/* Name resolution (include/ringwright/dns.h). getaddrinfo runs on the thread pool; the lookup's
 * state lives in a per-worker slot, not in the caller's query, so that a query that timed out
 * (or was cancelled) can be reused at once while the pool thread is still inside getaddrinfo:
 * the slot comes back when the thread does, and its late answer goes nowhere. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <ringwright/dns.h>

#include "dns.h"
#include "offload.h"
#include "pool.h"
#include "worker.h"

struct rw_dns_slot {
  rw_job job;
  rw_dns *q; /* NULL once the query timed out or was cancelled */
  uint32_t idx;
  int res;
  uint16_t port;
  char host[256];
  struct sockaddr_storage addr;
  socklen_t addrlen;
};

int rw_dns_init(struct rw_worker *w)
{
  uint32_t n = w->srv->cfg.dns_slots;
  w->dns = rw_region_alloc((size_t)n * sizeof *w->dns);
  w->dns_free = rw_region_alloc((size_t)n * sizeof *w->dns_free);
  if (!w->dns || !w->dns_free)
    return -ENOMEM;
  for (uint32_t i = 0; i < n; i++)
    w->dns_free[i] = n - 1 - i;
  w->ndns_free = n;
  return 0;
}

void rw_dns_fini(struct rw_worker *w)
{
  uint32_t n = w->srv->cfg.dns_slots;
  rw_region_free(w->dns, (size_t)n * sizeof *w->dns);
  rw_region_free(w->dns_free, (size_t)n * sizeof *w->dns_free);
  w->dns = NULL;
  w->dns_free = NULL;
}

size_t rw_dns_budget(const struct rw_worker *w)
{
  return (size_t)w->srv->cfg.dns_slots * (sizeof *w->dns + sizeof *w->dns_free);
}

static int gai_errno(int rc)
{
  switch (rc) {
  case 0: return 0;
  case EAI_AGAIN: return -EAGAIN;
  case EAI_MEMORY: return -ENOMEM;
  case EAI_SYSTEM: return errno ? -errno : -EIO;
  default: /* EAI_NONAME, EAI_NODATA, EAI_FAIL, ...: no usable answer */ return -ENOENT;
  }
}

/* On a pool thread. */
static void lookup(rw_job *j)
{
  struct rw_dns_slot *s = (struct rw_dns_slot *)j;
  char port[8];
  snprintf(port, sizeof port, "%u", s->port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *ai = NULL;
  s->res = gai_errno(getaddrinfo(s->host, port, &hints, &ai));
  if (!s->res && ai) {
    memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
    s->addrlen = ai->ai_addrlen;
  } else if (!s->res) {
    s->res = -ENOENT;
  }
  if (ai)
    freeaddrinfo(ai);
}

static void finish(rw_dns *q, int err)
{
  rw_timer_cancel(&q->timer);
  q->w->dns[q->slot].q = NULL;
  q->slot = RW_NONE;
  q->done(q, err);
}

static void answered(rw_worker *w, rw_msg *m)
{
  struct rw_dns_slot *s = (struct rw_dns_slot *)((uint8_t *)m - offsetof(struct rw_dns_slot, job.msg));
  rw_dns *q = s->q;
  w->dns_free[w->ndns_free++] = s->idx;
  w->ops_inflight--;
  if (!q)
    return;
  if (!s->res) {
    memcpy(&q->addr, &s->addr, s->addrlen);
    q->addrlen = s->addrlen;
  }
  finish(q, s->res);
}

static void timed_out(rw_timer *t)
{
  finish(t->data, -ETIMEDOUT);
}

int rw_resolve(rw_worker *w, rw_dns *q, const char *host, uint16_t port, uint32_t timeout_ms, rw_dns_fn done)
{
  size_t len = host ? strlen(host) : 0;
  if (!q || !done || !len || len >= sizeof w->dns->host)
    return -EINVAL;
  if (w->stopping)
    return -ESHUTDOWN;
  if (!w->ndns_free)
    return -EAGAIN;
  uint32_t i = w->dns_free[--w->ndns_free];
  struct rw_dns_slot *s = &w->dns[i];
  s->q = q;
  s->idx = i;
  s->port = port;
  memcpy(s->host, host, len + 1);
  s->job.run = lookup;
  s->job.msg.fn = answered;
  rw_offload_submit(w, &s->job, false); /* bounded by the slots, not by the task queue */
  w->ops_inflight++;
  q->w = w;
  q->slot = i;
  q->done = done;
  q->addrlen = 0;
  rw_timer_init(&q->timer, timed_out, q);
  rw_timer_arm(w, &q->timer, timeout_ms);
  return 0;
}

void rw_resolve_cancel(rw_dns *q)
{
  if (!q->w || q->slot == RW_NONE)
    return;
  rw_timer_cancel(&q->timer);
  q->w->dns[q->slot].q = NULL;
  q->slot = RW_NONE;
}

void rw_dns_stop(struct rw_worker *w)
{
  for (uint32_t i = 0; i < w->srv->cfg.dns_slots; i++)
    if (w->dns[i].q)
      finish(w->dns[i].q, -ECANCELED);
}
