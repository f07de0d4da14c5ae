/* CLIENT LIST, INFO and KILL across workers: each worker keeps a registry of its RESP clients
 * (a list through their struct kvd_conn, in the order they were registered, so by id). A
 * connection joins when it is accepted and leaves when it closes. The list and the names are
 * changed under the worker's lock, which only those rare events and CLIENT LIST/KILL take; the
 * per-command fields (last command, last time) are single-writer relaxed atomics, so that a
 * command costs two plain stores. A kill is marked under the owner's lock and carried out by
 * the owner, woken through the runtime's cross-worker message (rw_worker_post). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "resp_cmd.h"

struct registry {
  pthread_mutex_t lock;
  struct kvd_conn *head, *tail;
  rw_msg kick;             /* "close the connections marked for killing" */
  atomic_bool kick_posted; /* `kick` is on its way */
} __attribute__((aligned(64)));

static struct registry *regs; /* [kvd.workers] */

static void run_kills(rw_worker *w, rw_msg *m);

int kvd_clients_init(unsigned workers)
{
  regs = aligned_alloc(64, workers * sizeof *regs);
  if (!regs)
    return -ENOMEM;
  for (unsigned i = 0; i < workers; i++) {
    memset(&regs[i], 0, sizeof regs[i]);
    pthread_mutex_init(&regs[i].lock, NULL);
    regs[i].kick = (rw_msg){.fn = run_kills, .data = &regs[i]};
  }
  return 0;
}

static struct registry *reg_of(const rw_conn *c)
{
  return &regs[rw_worker_id(rw_conn_worker(c))];
}

static void on_close(rw_conn *c, int reason, void *data)
{
  (void)reason, (void)data;
  struct registry *r = reg_of(c);
  struct kvd_conn *kc = rw_conn_user(c);
  pthread_mutex_lock(&r->lock);
  *(kc->cl_prev ? &kc->cl_prev->cl_next : &r->head) = kc->cl_next;
  *(kc->cl_next ? &kc->cl_next->cl_prev : &r->tail) = kc->cl_prev;
  pthread_mutex_unlock(&r->lock);
}

/* "ip:port", or "[ip6]:port" (redis's formatAddr); "?:0" when the socket cannot be named. */
static void name_end(rw_conn *c, bool local, char out[KVD_ADDR_MAX])
{
  char host[64];
  unsigned port = 0;
  if (rw_conn_name(c, local, host, sizeof host, &port) < 0)
    snprintf(host, sizeof host, "?");
  snprintf(out, KVD_ADDR_MAX, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

uint64_t kvd_client_id(rw_conn *c)
{
  struct kvd_conn *kc = rw_conn_user(c);
  if (!kc->id)
    kc->id = atomic_fetch_add_explicit(&kvd.next_client_id, 1, memory_order_relaxed) + 1;
  return kc->id;
}

/* Joins the worker's registry: at accept (rw_config.on_accept), or at the first command of a
 * connection that was not accepted on a RESP listener. */
static void join(rw_conn *c, int64_t now)
{
  struct kvd_conn *kc = rw_conn_user(c);
  kvd_client_id(c);
  kc->conn = c;
  kc->fd = rw_conn_fd(c);
  kc->created_ms = now;
  atomic_store_explicit(&kc->last_ms, now, memory_order_relaxed);
  name_end(c, false, kc->addr);
  name_end(c, true, kc->laddr);
  rw_conn_on_close(c, on_close, NULL);
  struct registry *r = reg_of(c);
  pthread_mutex_lock(&r->lock);
  kc->cl_prev = r->tail;
  *(r->tail ? &r->tail->cl_next : &r->head) = kc;
  r->tail = kc;
  kc->listed = true;
  pthread_mutex_unlock(&r->lock);
}

void kvd_client_accepted(rw_conn *c, const rw_proto *proto, void *data)
{
  (void)data;
  if (proto != &resp_proto)
    return;
  join(c, rw_worker_now_ms(rw_conn_worker(c)));
  kvd_resp_gate_input(c, false);
}

void kvd_client_seen(rw_conn *c, const char *cmd)
{
  struct kvd_conn *kc = rw_conn_user(c);
  int64_t now = rw_worker_now_ms(rw_conn_worker(c));
  if (!kc->listed)
    join(c, now);
  atomic_store_explicit(&kc->last_ms, now, memory_order_relaxed);
  atomic_store_explicit(&kc->last_cmd, cmd, memory_order_relaxed);
}

void kvd_client_set_name(rw_conn *c, rw_span name)
{
  struct kvd_conn *kc = rw_conn_user(c);
  struct registry *r = reg_of(c);
  pthread_mutex_lock(&r->lock); /* CLIENT LIST on another worker may be reading it */
  if (name.len)
    memcpy(kc->name, name.p, name.len);
  kc->name_len = (uint32_t)name.len;
  pthread_mutex_unlock(&r->lock);
}

/* One line of CLIENT LIST / INFO in redis 7.0's order (networking.c, catClientInfoString).
 * kvd's own figures: no query buffer of its own (requests are parsed where they were
 * received), so qbuf, qbuf-free and argv-mem are 0; replies go to the worker's shared send
 * slab, so rbs, rbp, obl, oll and omem are 0; tot-mem is the client's own state (struct
 * kvd_conn). */
static int format_line(const struct kvd_conn *kc, int64_t now_ms, char *out, size_t cap)
{
  int64_t last = atomic_load_explicit(&kc->last_ms, memory_order_relaxed);
  const char *cmd = atomic_load_explicit(&kc->last_cmd, memory_order_relaxed);
  int n =
      snprintf(out, cap,
               "id=%llu addr=%s laddr=%s fd=%d name=%.*s age=%lld idle=%lld flags=N db=0 sub=0 psub=0 ssub=0 "
               "multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 "
               "tot-mem=%zu events=r cmd=%s user=default redir=-1 resp=2\n",
               (unsigned long long)kc->id, kc->addr, kc->laddr, kc->fd, (int)kc->name_len, kc->name,
               (long long)((now_ms - kc->created_ms) / 1000), (long long)((now_ms - last) / 1000),
               sizeof(struct kvd_conn), cmd ? cmd : "NULL");
  return n < 0 ? 0 : n < (int)cap ? n : (int)cap - 1;
}

#define LINE_MAX_BYTES (512 + 2 * KVD_ADDR_MAX + KVD_NAME_MAX)

static void lock_all(void)
{
  for (unsigned i = 0; i < kvd.workers; i++) /* always in this order: no deadlock */
    pthread_mutex_lock(&regs[i].lock);
}

static void unlock_all(void)
{
  for (unsigned i = kvd.workers; i-- > 0;)
    pthread_mutex_unlock(&regs[i].lock);
}

/* The next client in id order across the workers' lists (each in id order), cursors moved. */
static const struct kvd_conn *next_by_id(const struct kvd_conn **cur)
{
  unsigned best = kvd.workers;
  for (unsigned i = 0; i < kvd.workers; i++)
    if (cur[i] && (best == kvd.workers || cur[i]->id < cur[best]->id))
      best = i;
  if (best == kvd.workers)
    return NULL;
  const struct kvd_conn *kc = cur[best];
  cur[best] = kc->cl_next;
  return kc;
}

/* The client whose id is `id`, or NULL (every registry locked). */
static const struct kvd_conn *by_id(uint64_t id)
{
  for (unsigned i = 0; i < kvd.workers; i++)
    for (const struct kvd_conn *kc = regs[i].head; kc; kc = kc->cl_next)
      if (kc->id == id)
        return kc;
  return NULL;
}

/* The next client to list: with `ids` (CLIENT LIST ID ...), the next id given that names a
 * client, in the order given; else the next in id order across the workers. */
static const struct kvd_conn *next_listed(const struct kvd_conn **cur, const rw_list *ids, rw_list_iter *at)
{
  if (!ids)
    return next_by_id(cur);
  for (rw_span s; !rw_list_next(ids, at, &s);) {
    int64_t id = 0;
    kvd_parse_i64(s, &id);
    const struct kvd_conn *kc = id > 0 ? by_id((uint64_t)id) : NULL;
    if (kc)
      return kc;
  }
  return NULL;
}

/* CLIENT LIST: one bulk string of every worker's clients, by id (or those `ids` names, from
 * its item 3 on), taken with every registry locked (a consistent view); its length is counted
 * in a first pass. */
static int client_list(rw_conn *c, int64_t now_ms, const rw_list *ids)
{
  const struct kvd_conn *cur[kvd.workers];
  char line[LINE_MAX_BYTES];
  uint64_t total = 0;
  lock_all();
  for (int pass = 0, rc = 0; pass < 2; pass++) {
    for (unsigned i = 0; i < kvd.workers; i++)
      cur[i] = regs[i].head;
    rw_list_iter at;
    if (ids)
      kvd_list_from(ids, &at, 3);
    if (pass && (rc = resp_reply_bulk_head(c, total)) < 0) {
      unlock_all();
      return rc;
    }
    for (const struct kvd_conn *kc; (kc = next_listed(cur, ids, &at));) {
      int n = format_line(kc, now_ms, line, sizeof line);
      if (!pass)
        total += (uint64_t)n;
      else if ((rc = rw_conn_write(c, line, (size_t)n)) < 0)
        break;
    }
    if (rc < 0) {
      unlock_all();
      return rc;
    }
  }
  unlock_all();
  return rw_conn_write(c, "\r\n", 2);
}

static int client_info(rw_conn *c, int64_t now_ms)
{
  char line[LINE_MAX_BYTES];
  int n = format_line(rw_conn_user(c), now_ms, line, sizeof line);
  return resp_reply_bulk(c, (rw_span){(const uint8_t *)line, (size_t)n});
}

/* On the worker that owns them: close the connections marked for killing. Closing runs
 * on_close, which takes the lock: each is found under it, then closed after. */
static void run_kills(rw_worker *w, rw_msg *m)
{
  (void)w;
  struct registry *r = m->data;
  atomic_store_explicit(&r->kick_posted, false, memory_order_relaxed);
  for (;;) {
    rw_conn *victim = NULL;
    pthread_mutex_lock(&r->lock);
    for (struct kvd_conn *kc = r->head; kc && !victim; kc = kc->cl_next)
      if (kc->kill) {
        kc->kill = false;
        victim = kc->conn;
      }
    pthread_mutex_unlock(&r->lock);
    if (!victim)
      return;
    rw_conn_close(victim);
  }
}

/* CLIENT KILL's filters (redis 7.0: ID, TYPE, ADDR, LADDR, USER, SKIPME). */
struct kill_filter {
  uint64_t id; /* 0: any */
  bool none;   /* TYPE master|replica|slave|pubsub: kvd has only normal clients */
  rw_span addr, laddr;
  bool skipme;
};

static bool span_is(rw_span s, const char *str)
{
  return s.len == strlen(str) && !memcmp(s.p, str, s.len);
}

static bool matches(const struct kill_filter *f, const struct kvd_conn *kc, const struct kvd_conn *self)
{
  return !f->none && (!f->id || kc->id == f->id) && (!f->addr.p || span_is(f->addr, kc->addr)) &&
         (!f->laddr.p || span_is(f->laddr, kc->laddr)) && !(f->skipme && kc == self);
}

/* Marks every client the filter matches (its owner closes it; this connection after its
 * reply); returns how many. */
static unsigned mark_kills(rw_conn *c, const struct kill_filter *f, bool *out_self)
{
  struct kvd_conn *self = rw_conn_user(c);
  unsigned killed = 0;
  bool kick[kvd.workers];
  lock_all();
  for (unsigned i = 0; i < kvd.workers; i++) {
    kick[i] = false;
    for (struct kvd_conn *kc = regs[i].head; kc; kc = kc->cl_next)
      if (matches(f, kc, self)) {
        killed++;
        if (kc == self)
          *out_self = true;
        else
          kc->kill = kick[i] = true;
      }
  }
  unlock_all();
  rw_worker *w = rw_conn_worker(c);
  for (unsigned i = 0; i < kvd.workers; i++)
    if (kick[i] && !atomic_exchange_explicit(&regs[i].kick_posted, true, memory_order_relaxed) &&
        rw_worker_post(w, rw_worker_server(w), i, &regs[i].kick) < 0)
      atomic_store_explicit(&regs[i].kick_posted, false, memory_order_relaxed);
  return killed;
}

/* The new form's filter pairs into *f: 0, or 1 after replying with redis's error. */
static int parse_filters(rw_conn *c, const rw_list *a, struct kill_filter *f)
{
  f->skipme = true;
  rw_list_iter it;
  rw_span opt, v;
  kvd_list_from(a, &it, 2);
  while (!rw_list_next(a, &it, &opt)) {
    if (rw_list_next(a, &it, &v))
      return resp_reply_error(c, KVD_SYNTAX) < 0 ? -EIO : 1;
    int64_t id;
    if (kvd_eq(opt, "id")) {
      if (kvd_parse_i64(v, &id) < 0 || id < 1)
        return resp_reply_error(c, S("ERR client-id should be greater than 0")) < 0 ? -EIO : 1;
      f->id = (uint64_t)id;
    } else if (kvd_eq(opt, "type")) {
      if (kvd_eq(v, "master") || kvd_eq(v, "replica") || kvd_eq(v, "slave") || kvd_eq(v, "pubsub"))
        f->none = true;
      else if (!kvd_eq(v, "normal"))
        return kvd_reply_errorf(c, "ERR Unknown client type '%.*s'", (int)(v.len > 128 ? 128 : v.len),
                                (const char *)v.p) < 0
                   ? -EIO
                   : 1;
    } else if (kvd_eq(opt, "addr")) {
      f->addr = v;
    } else if (kvd_eq(opt, "laddr")) {
      f->laddr = v;
    } else if (kvd_eq(opt, "user")) {
      if (!span_is(v, "default")) /* the one user there is */
        return kvd_reply_errorf(c, "ERR No such user '%.*s'", (int)(v.len > 128 ? 128 : v.len),
                                (const char *)v.p) < 0
                   ? -EIO
                   : 1;
    } else if (kvd_eq(opt, "skipme")) {
      if (kvd_eq(v, "yes"))
        f->skipme = true;
      else if (kvd_eq(v, "no"))
        f->skipme = false;
      else
        return resp_reply_error(c, KVD_SYNTAX) < 0 ? -EIO : 1;
    } else {
      return resp_reply_error(c, KVD_SYNTAX) < 0 ? -EIO : 1;
    }
  }
  return 0;
}

/* CLIENT KILL ip:port (the old form: +OK, or an error when no client has that address; it may
 * kill its own connection) or CLIENT KILL <filter> <value> ... (the number killed). */
static int client_kill(rw_conn *c, const rw_list *a)
{
  struct kill_filter f = {0};
  bool old = a->count == 3, self = false;
  if (old) {
    f.addr = a->item[2];
  } else {
    int rc = parse_filters(c, a, &f);
    if (rc)
      return rc < 0 ? rc : 0;
  }
  unsigned killed = mark_kills(c, &f, &self);
  int rc = !old     ? resp_reply_integer(c, killed)
           : killed ? resp_reply_ok(c)
                    : resp_reply_error(c, S("ERR No such client"));
  if (self)
    rw_conn_close(c); /* after the reply, which the close flushes */
  return rc;
}

int kvd_client_command(rw_conn *c, const rw_list *a, rw_span sub)
{
  struct kvd_conn *kc = rw_conn_user(c);
  int64_t now = rw_worker_now_ms(rw_conn_worker(c));
  if (kvd_eq(sub, "list")) {
    atomic_store_explicit(&kc->last_cmd, "client|list", memory_order_relaxed);
    /* TYPE normal lists everyone; the other types no one (kvd has only normal clients). */
    if (a->count == 4 && kvd_eq(a->item[2], "type")) {
      rw_span t = a->item[3];
      if (kvd_eq(t, "normal"))
        return client_list(c, now, NULL);
      if (kvd_eq(t, "master") || kvd_eq(t, "replica") || kvd_eq(t, "slave") || kvd_eq(t, "pubsub"))
        return resp_reply_bulk(c, S(""));
      return kvd_reply_errorf(c, "ERR Unknown client type '%.*s'", (int)(t.len > 128 ? 128 : t.len),
                              (const char *)t.p);
    }
    if (a->count > 3 && kvd_eq(a->item[2], "id")) {
      rw_list_iter it;
      rw_span s;
      kvd_list_from(a, &it, 3);
      while (!rw_list_next(a, &it, &s)) { /* every id is checked before anything is listed */
        int64_t id;
        if (kvd_parse_i64(s, &id) < 0)
          return resp_reply_error(c, S("ERR Invalid client ID"));
      }
      return client_list(c, now, a);
    }
    if (a->count != 2)
      return resp_reply_error(c, KVD_SYNTAX);
    return client_list(c, now, NULL);
  }
  if (kvd_eq(sub, "info")) {
    atomic_store_explicit(&kc->last_cmd, "client|info", memory_order_relaxed);
    if (a->count != 2)
      return resp_reply_wrong_args(c, S("client|info"));
    return client_info(c, now);
  }
  atomic_store_explicit(&kc->last_cmd, "client|kill", memory_order_relaxed);
  if (a->count < 3)
    return resp_reply_wrong_args(c, S("client|kill"));
  return client_kill(c, a);
}
