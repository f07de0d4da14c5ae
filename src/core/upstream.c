/* Upstream connection pools. Each worker keeps, per declared upstream, a fixed table of entries:
 * a connection being dialled, leased to a request, idle (kept alive, on a list, most recently
 * released first) or closing. The pool owns each connection's close callback, so that an
 * upstream closing an idle connection takes it out of the pool before anyone can lease it, and a
 * lease's owner hears when its connection goes. */
#include <errno.h>
#include <string.h>

#include <ringwright/timer.h>

#include "conn.h"
#include "pool.h"
#include "server.h"
#include "upstream.h"
#include "worker.h"

enum { ENTRY_FREE, ENTRY_DIALLING, ENTRY_LEASED, ENTRY_IDLE, ENTRY_CLOSING };
enum { REQ_NONE, REQ_WAITING, REQ_DIALLING, REQ_LEASED };

int rw_server_upstream(rw_server *s, const rw_upstream_config *cfg, rw_upstream **out)
{
  if (!cfg->hostport || !cfg->proto || !cfg->handlers || !cfg->max_conns || cfg->max_idle > cfg->max_conns ||
      strlen(cfg->hostport) >= sizeof s->upstreams[0].hostport)
    return -EINVAL;
  if (s->workers)
    return -EBUSY;
  if (s->nupstreams == RW_MAX_UPSTREAMS)
    return -ENOSPC;
  int rc = rw_server_use_proto(s, cfg->proto);
  if (rc)
    return rc;
  struct rw_upstream *u = &s->upstreams[s->nupstreams];
  u->cfg = *cfg;
  strcpy(u->hostport, cfg->hostport);
  u->cfg.hostport = u->hostport;
  u->idx = s->nupstreams++;
  *out = u;
  return 0;
}

static size_t pool_bytes(const struct rw_upstream *u)
{
  return (size_t)u->cfg.max_conns * (sizeof(struct rw_upstream_entry) + sizeof(uint32_t));
}

static void idle_fired(rw_timer *t);

int rw_upstreams_init(struct rw_worker *w)
{
  rw_server *s = w->srv;
  if (!s->nupstreams)
    return 0;
  w->upstreams = rw_region_alloc(s->nupstreams * sizeof *w->upstreams);
  if (!w->upstreams)
    return -ENOMEM;
  for (unsigned i = 0; i < s->nupstreams; i++) {
    const struct rw_upstream *u = &s->upstreams[i];
    struct rw_upstream_pool *p = &w->upstreams[i];
    uint32_t n = u->cfg.max_conns;
    *p = (struct rw_upstream_pool){.w = w, .u = u, .idle_head = RW_NONE, .nfree = n};
    p->e = rw_region_alloc(pool_bytes(u));
    if (!p->e)
      return -ENOMEM;
    p->free = (uint32_t *)(p->e + n);
    for (uint32_t k = 0; k < n; k++) {
      p->e[k] = (struct rw_upstream_entry){.pool = p};
      rw_timer_init(&p->e[k].idle_timer, idle_fired, &p->e[k]);
      p->free[k] = n - 1 - k;
    }
  }
  return 0;
}

size_t rw_upstreams_budget(const struct rw_worker *w)
{
  size_t n = w->srv->nupstreams * sizeof *w->upstreams;
  for (unsigned i = 0; i < w->srv->nupstreams; i++)
    n += pool_bytes(&w->srv->upstreams[i]);
  return n;
}

void rw_upstreams_fini(struct rw_worker *w)
{
  if (!w->upstreams)
    return;
  for (unsigned i = 0; i < w->srv->nupstreams; i++)
    if (w->upstreams[i].e)
      rw_region_free(w->upstreams[i].e, pool_bytes(&w->srv->upstreams[i]));
  rw_region_free(w->upstreams, w->srv->nupstreams * sizeof *w->upstreams);
  w->upstreams = NULL;
}

/* ---- the idle list and the waiting requests ---- */

static uint32_t entry_idx(const struct rw_upstream_entry *e)
{
  return (uint32_t)(e - e->pool->e);
}

static void idle_push(struct rw_upstream_pool *p, struct rw_upstream_entry *e)
{
  e->idle_prev = RW_NONE;
  e->idle_next = p->idle_head;
  if (p->idle_head != RW_NONE)
    p->e[p->idle_head].idle_prev = entry_idx(e);
  p->idle_head = entry_idx(e);
  p->nidle++;
}

static void idle_unlink(struct rw_upstream_pool *p, struct rw_upstream_entry *e)
{
  if (e->idle_prev != RW_NONE)
    p->e[e->idle_prev].idle_next = e->idle_next;
  else
    p->idle_head = e->idle_next;
  if (e->idle_next != RW_NONE)
    p->e[e->idle_next].idle_prev = e->idle_prev;
  p->nidle--;
  rw_timer_cancel(&e->idle_timer);
}

static void wait_push(struct rw_upstream_pool *p, rw_upstream_req *r)
{
  r->next = NULL;
  r->prev = p->wait_tail;
  if (p->wait_tail)
    p->wait_tail->next = r;
  else
    p->wait_head = r;
  p->wait_tail = r;
  r->state = REQ_WAITING;
}

static void wait_unlink(struct rw_upstream_pool *p, rw_upstream_req *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    p->wait_head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    p->wait_tail = r->prev;
  r->next = r->prev = NULL;
  r->state = REQ_NONE;
}

/* ---- leases ---- */

static struct rw_upstream_pool *pool_of(rw_worker *w, const rw_upstream *u)
{
  return &w->upstreams[u->idx];
}

static rw_conn *entry_conn(const struct rw_upstream_entry *e)
{
  return rw_conn_from_handle(e->pool->w, e->h);
}

static void lease(struct rw_upstream_entry *e, rw_upstream_req *r, rw_conn *c)
{
  e->state = ENTRY_LEASED;
  e->req = r;
  r->state = REQ_LEASED;
  r->slot = entry_idx(e);
  rw_conn_set_data(c, r);
}

/* Starts the graceful close; the entry is free once the close callback has run. */
static void entry_close(struct rw_upstream_entry *e)
{
  rw_conn *c = entry_conn(e);
  if (e->state == ENTRY_IDLE)
    idle_unlink(e->pool, e);
  e->state = ENTRY_CLOSING;
  e->req = NULL;
  rw_conn_set_data(c, NULL);
  rw_conn_close(c);
}

static void idle_fired(rw_timer *t)
{
  entry_close(t->data);
}

static void dialled(rw_conn *c, int err, void *data);

static int dial(struct rw_upstream_pool *p, rw_upstream_req *r)
{
  uint32_t i = p->free[--p->nfree];
  struct rw_upstream_entry *e = &p->e[i];
  const rw_upstream_config *cfg = &p->u->cfg;
  e->state = ENTRY_DIALLING;
  e->req = r;
  int rc = rw_connect(p->w, cfg->hostport, cfg->proto, cfg->handlers, cfg->connect_timeout_ms, dialled, e);
  if (rc) {
    e->state = ENTRY_FREE;
    e->req = NULL;
    p->free[p->nfree++] = i;
    return rc;
  }
  p->dialled++;
  r->state = REQ_DIALLING;
  r->slot = i;
  return 0;
}

/* A slot came free: the first waiting request dials it. */
static void serve_waiter(struct rw_upstream_pool *p)
{
  rw_upstream_req *r = p->wait_head;
  if (!r || !p->nfree)
    return;
  wait_unlink(p, r);
  int rc = dial(p, r);
  if (rc)
    r->ready(r, NULL, rc);
}

/* A connection nobody leases: to the first waiting request, else kept alive while there is room. */
static void entry_give(struct rw_upstream_entry *e, rw_conn *c)
{
  struct rw_upstream_pool *p = e->pool;
  rw_upstream_req *r = p->wait_head;
  if (r) {
    wait_unlink(p, r);
    p->reused++;
    lease(e, r, c);
    r->ready(r, c, 0);
    return;
  }
  if (p->nidle >= p->u->cfg.max_idle) {
    entry_close(e);
    return;
  }
  e->state = ENTRY_IDLE;
  e->req = NULL;
  rw_conn_set_data(c, NULL);
  idle_push(p, e);
  if (p->u->cfg.idle_ms)
    rw_timer_arm(p->w, &e->idle_timer, p->u->cfg.idle_ms);
}

static void entry_closed(rw_conn *c, int reason, void *data)
{
  struct rw_upstream_entry *e = data;
  struct rw_upstream_pool *p = e->pool;
  rw_upstream_req *r = e->state == ENTRY_LEASED ? e->req : NULL;
  if (e->state == ENTRY_IDLE)
    idle_unlink(p, e);
  e->state = ENTRY_FREE;
  e->req = NULL;
  p->free[p->nfree++] = entry_idx(e);
  if (r) {
    r->state = REQ_NONE;
    r->closed(r, c, reason);
  }
  serve_waiter(p);
}

static void dialled(rw_conn *c, int err, void *data)
{
  struct rw_upstream_entry *e = data;
  struct rw_upstream_pool *p = e->pool;
  rw_upstream_req *r = e->req;
  e->req = NULL;
  if (err) {
    e->state = ENTRY_FREE;
    p->free[p->nfree++] = entry_idx(e);
    if (r) {
      r->state = REQ_NONE;
      r->ready(r, NULL, err);
    }
    serve_waiter(p);
    return;
  }
  e->h = rw_conn_handle(c);
  rw_conn_on_close(c, entry_closed, e);
  if (!r) {
    entry_give(e, c); /* its request was cancelled meanwhile */
    return;
  }
  lease(e, r, c);
  r->ready(r, c, 0);
}

/* ---- the public calls ---- */

void rw_upstream_req_init(rw_upstream_req *r, rw_upstream_ready_fn ready, rw_upstream_closed_fn closed,
                          void *data)
{
  *r = (rw_upstream_req){.ready = ready, .closed = closed, .slot = RW_NONE, .data = data};
}

int rw_upstream_acquire(rw_worker *w, rw_upstream *u, rw_upstream_req *r, rw_conn **out)
{
  if (r->state != REQ_NONE)
    return -EBUSY;
  struct rw_upstream_pool *p = pool_of(w, u);
  r->w = w;
  r->u = u;
  *out = NULL;
  if (p->idle_head != RW_NONE) {
    struct rw_upstream_entry *e = &p->e[p->idle_head];
    rw_conn *c = entry_conn(e);
    idle_unlink(p, e);
    p->reused++;
    lease(e, r, c);
    *out = c;
    return 0;
  }
  if (!p->nfree) {
    wait_push(p, r);
    return 0;
  }
  return dial(p, r);
}

void rw_upstream_cancel(rw_upstream_req *r)
{
  if (r->state == REQ_WAITING)
    wait_unlink(pool_of(r->w, r->u), r);
  else if (r->state == REQ_DIALLING) {
    pool_of(r->w, r->u)->e[r->slot].req = NULL;
    r->state = REQ_NONE;
  }
}

rw_conn *rw_upstream_conn(const rw_upstream_req *r)
{
  return r->state == REQ_LEASED ? entry_conn(&pool_of(r->w, r->u)->e[r->slot]) : NULL;
}

void rw_upstream_release(rw_upstream_req *r, bool reuse)
{
  if (r->state != REQ_LEASED)
    return;
  struct rw_upstream_entry *e = &pool_of(r->w, r->u)->e[r->slot];
  rw_conn *c = entry_conn(e);
  r->state = REQ_NONE;
  e->req = NULL;
  /* A connection that is ending cannot carry another request. */
  if (reuse && !(c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT | RW_CONN_EOF)))
    entry_give(e, c);
  else
    entry_close(e);
}

void rw_upstream_stats_get(rw_worker *w, const rw_upstream *u, rw_upstream_stats *out)
{
  const struct rw_upstream_pool *p = pool_of(w, u);
  *out = (rw_upstream_stats){
      .open = u->cfg.max_conns - p->nfree, .idle = p->nidle, .dialled = p->dialled, .reused = p->reused};
}
