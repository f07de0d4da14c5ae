/* kvd's memcache text handlers: memcached 1.6's answers, worded from what the shared operations
 * (memcache_store.c) did. The spec (spec/memcache.rw) has parsed the line, the numbers and the
 * data block; error lines for malformed input are the spec's too. */
#include <errno.h>
#include <string.h>

#include "kvd.h"

#define KEY_MAX 250

/* What the six storage commands carry (each its own generated struct): copied out by field. */
struct store_msg {
  rw_span key;
  uint32_t flags;
  int64_t exptime;
  uint32_t bytes;
  rw_span noreply;
  rw_span data;
};

#define STORE_MSG(m) \
  ((struct store_msg){(m)->key, (m)->flags, (m)->exptime, (m)->bytes, (m)->noreply, (m)->data})

/* The text protocol's exptime: memcached keeps 32 bits of it (a value past them wraps, as its
 * conversion from long to int32_t does), and so does kvd: the same line expires the same way,
 * and no product overflows. */
static int64_t deadline(rw_conn *c, int64_t exptime)
{
  return kvd_mc_deadline(c, (int32_t)(uint32_t)(uint64_t)exptime);
}

#define ADMIT(c) KVD_ADMIT(c, rw_conn_write(c, AOF_ERROR, sizeof AOF_ERROR - 1))
static const char AOF_ERROR[] = "SERVER_ERROR AOF write error: writes refused\r\n";

/* A write the store refused (the callers return -EAGAIN, a write that must wait, themselves). */
static int reply_err(rw_conn *c, int err, bool quiet)
{
  if (quiet)
    return 0;
  return err == -E2BIG ? memcache_reply_too_large(c) : memcache_reply_no_memory(c);
}

static int do_store(rw_conn *c, const struct store_msg *m, enum kvd_mc_mode mode, uint64_t unique)
{
  ADMIT(c);
  uint64_t cas;
  int rc = kvd_mc_store(c, mode, m->key, m->data, m->flags, deadline(c, m->exptime), unique, &cas);
  if (rc == -EAGAIN)
    return rc;
  if (rc < 0 || m->noreply.len)
    return reply_err(c, rc, m->noreply.len);
  return rc == KVD_MC_DONE        ? memcache_reply_stored(c)
         : rc == KVD_MC_NOT_FOUND ? memcache_reply_not_found(c)
         : rc == KVD_MC_EXISTS    ? memcache_reply_exists(c)
                                  : memcache_reply_not_stored(c);
}

static int on_set(rw_conn *c, const struct memcache_set *m)
{
  return do_store(c, &STORE_MSG(m), KVD_MC_SET, 0);
}

static int on_add(rw_conn *c, const struct memcache_add *m)
{
  return do_store(c, &STORE_MSG(m), KVD_MC_ADD, 0);
}

static int on_replace(rw_conn *c, const struct memcache_replace *m)
{
  return do_store(c, &STORE_MSG(m), KVD_MC_REPLACE, 0);
}

static int on_append(rw_conn *c, const struct memcache_append *m)
{
  return do_store(c, &STORE_MSG(m), KVD_MC_APPEND, 0);
}

static int on_prepend(rw_conn *c, const struct memcache_prepend *m)
{
  return do_store(c, &STORE_MSG(m), KVD_MC_PREPEND, 0);
}

static int on_cas(rw_conn *c, const struct memcache_cas *m)
{
  return do_store(c, &STORE_MSG(m), KVD_MC_CAS, m->unique);
}

/* One VALUE line and the value: 0, 1 when the value goes out as a stream, or -errno. */
static int reply_item(rw_conn *c, kv_shard *sh, rw_span key, kv_item *it, bool with_cas)
{
  rw_span v = {kv_value(it), it->vlen};
  if (it->vlen < KVD_STREAM_MIN)
    return with_cas ? memcache_reply_value_cas(c, key, it->flags, v, it->cas)
                    : memcache_reply_value(c, key, it->flags, v);
  int rc = with_cas ? memcache_reply_value_cas_head(c, key, it->flags, it->vlen, it->cas)
                    : memcache_reply_value_head(c, key, it->flags, it->vlen);
  return rc < 0 ? rc : kvd_stream_value(c, sh, it, true);
}

/* get and gets: every key checked first (the spec leaves the list's key lengths to us), then
 * one VALUE per hit, then END. */
static int retrieve(rw_conn *c, rw_span keys, bool with_cas)
{
  rw_span rest = keys, key;
  while (!rw_span_next(&rest, ' ', &key))
    if (key.len > KEY_MAX)
      return memcache_reply_bad_format(c);
  int rc = 0;
  struct kvd_conn *kc = rw_conn_user(c);
  uint32_t done = kc->next_key;
  rest = keys;
  for (uint32_t i = 0; rc >= 0 && !rw_span_next(&rest, ' ', &key); i++) {
    if (i < done)
      continue; /* answered before a value that went out as a stream */
    uint32_t h = kv_hash(key);
    kv_shard *sh = kv_lock(&kvd.store, h);
    kv_item *it = kvd_mc_fetch(c, sh, key, h, false, 0);
    if (it)
      rc = reply_item(c, sh, key, it, with_cas);
    kv_unlock(sh);
    /* Dispatched again when the stream is done or the replies have gone (kvd_reply_full), for
     * the rest and END. */
    if (rc == 1 || (rc >= 0 && kvd_reply_full(c, keys.len))) {
      kc->next_key = i + 1;
      return rc == 1 ? -EAGAIN : kvd_wait_room(c);
    }
  }
  kc->next_key = 0;
  return rc < 0 ? rc : memcache_reply_end(c);
}

static int on_get(rw_conn *c, const struct memcache_get *m)
{
  return retrieve(c, m->keys, false);
}

static int on_gets(rw_conn *c, const struct memcache_gets *m)
{
  return retrieve(c, m->keys, true);
}

static int on_delete(rw_conn *c, const struct memcache_delete *m)
{
  ADMIT(c);
  int rc = kvd_mc_delete(c, m->key, 0);
  if (m->noreply.len)
    return 0;
  return rc == KVD_MC_DONE ? memcache_reply_deleted(c) : memcache_reply_not_found(c);
}

static int add_delta(rw_conn *c, rw_span key, uint64_t delta, bool incr, rw_span noreply)
{
  ADMIT(c);
  uint64_t v, cas;
  int rc = kvd_mc_delta(c, key, incr, delta, 0, NULL, &v, &cas);
  if (rc == -EAGAIN)
    return rc;
  if (rc < 0 || noreply.len)
    return reply_err(c, rc, noreply.len);
  return rc == KVD_MC_DONE        ? memcache_reply_number(c, v)
         : rc == KVD_MC_NOT_FOUND ? memcache_reply_not_found(c)
                                  : memcache_reply_non_numeric(c);
}

static int on_incr(rw_conn *c, const struct memcache_incr *m)
{
  return add_delta(c, m->key, m->delta, true, m->noreply);
}

static int on_decr(rw_conn *c, const struct memcache_decr *m)
{
  return add_delta(c, m->key, m->delta, false, m->noreply);
}

static int on_touch(rw_conn *c, const struct memcache_touch *m)
{
  ADMIT(c);
  uint32_t h = kv_hash(m->key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  kv_item *it = kvd_mc_fetch(c, sh, m->key, h, true, deadline(c, m->exptime));
  kv_unlock(sh);
  if (m->noreply.len)
    return 0;
  return it ? memcache_reply_touched(c) : memcache_reply_not_found(c);
}

/* flush_all [delay]: at once, every shard is emptied; with a delay, items stored before the
 * deadline disappear when it passes (checked lazily and by the sweep). */
static int flush(rw_conn *c, int64_t delay, rw_span noreply)
{
  ADMIT(c);
  kvd_mc_flush(c, delay > 0 ? deadline(c, delay) : 0);
  return noreply.len ? 0 : memcache_reply_ok(c);
}

static int on_flush_all(rw_conn *c, const struct memcache_flush_all *m)
{
  return flush(c, 0, m->noreply);
}

static int on_flush_all_in(rw_conn *c, const struct memcache_flush_all_in *m)
{
  return flush(c, m->delay, m->noreply);
}

static int on_verbosity(rw_conn *c, const struct memcache_verbosity *m)
{
  return m->noreply.len ? 0 : memcache_reply_ok(c);
}

static int stat_line(rw_conn *c, const void *arg, rw_span name, rw_span value)
{
  (void)arg;
  return memcache_reply_stat(c, name, value);
}

static int on_stats(rw_conn *c, const struct memcache_stats *m)
{
  rw_span rest = m->args, sub;
  if (rw_span_next(&rest, ' ', &sub)) {
    int rc = kvd_mc_stats(c, stat_line, NULL);
    return rc < 0 ? rc : memcache_reply_end(c);
  }
  if (sub.len == 5 && !memcmp(sub.p, "reset", 5)) {
    kvd_mc_stats_reset(c);
    return memcache_reply_reset(c);
  }
  static const char *const empty[] = {"settings", "items", "slabs", "sizes", "conns"};
  for (size_t i = 0; i < sizeof empty / sizeof *empty; i++)
    if (sub.len == strlen(empty[i]) && !memcmp(sub.p, empty[i], sub.len))
      return memcache_reply_end(c);
  return memcache_reply_error(c);
}

/* The lookahead: get and gets (their first key) and set, the commands a pipeline repeats. */
void kvd_memcache_peek(rw_conn *c, int cmd, const void *msg)
{
  (void)c;
  if (cmd < 0) {
    kvd_peek_end();
  } else if (cmd == MEMCACHE_CMD_GET || cmd == MEMCACHE_CMD_GETS) {
    rw_span keys = cmd == MEMCACHE_CMD_GET ? ((const struct memcache_get *)msg)->keys
                                           : ((const struct memcache_gets *)msg)->keys;
    const uint8_t *sp = memchr(keys.p, ' ', keys.len);
    kvd_peek_key((rw_span){keys.p, sp ? (size_t)(sp - keys.p) : keys.len});
  } else if (cmd == MEMCACHE_CMD_SET) {
    kvd_peek_key(((const struct memcache_set *)msg)->key);
  }
}

/* ---- the password (auth.c): memcached -Y's convention ---- */

static const char UNAUTHENTICATED[] = "CLIENT_ERROR unauthenticated\r\n";

/* Until the password is given, a `set` is the attempt ("username password" as its data, both
 * words not empty; noreply or not, memcached answers it) and every other command is refused. */
static int authenticate(rw_conn *c, const struct memcache_set *m)
{
  static const char BAD_FORMAT[] = "CLIENT_ERROR bad authentication token format\r\n";
  static const char FAILED[] = "CLIENT_ERROR authentication failure\r\n";
  const uint8_t *sp = memchr(m->data.p, ' ', m->data.len);
  rw_span user = {m->data.p, sp ? (size_t)(sp - m->data.p) : 0};
  rw_span pass = {sp + 1, sp ? m->data.len - user.len - 1 : 0};
  if (!user.len || !pass.len)
    return rw_conn_write(c, BAD_FORMAT, sizeof BAD_FORMAT - 1);
  if (!kvd_auth_check(user, pass))
    return rw_conn_write(c, FAILED, sizeof FAILED - 1);
  ((struct kvd_conn *)rw_conn_user(c))->authed = true;
  return memcache_reply_stored(c);
}

static int gated_on_set(rw_conn *c, const struct memcache_set *m)
{
  return kvd_authed(c) ? on_set(c, m) : authenticate(c, m);
}

#define GATE(fn, type)                                                    \
  static int gated_##fn(rw_conn *c, const struct memcache_##type *m)      \
  {                                                                       \
    if (kvd_authed(c))                                                    \
      return fn(c, m);                                                    \
    return rw_conn_write(c, UNAUTHENTICATED, sizeof UNAUTHENTICATED - 1); \
  }
GATE(on_get, get)
GATE(on_gets, gets)
GATE(on_add, add)
GATE(on_replace, replace)
GATE(on_append, append)
GATE(on_prepend, prepend)
GATE(on_cas, cas)
GATE(on_delete, delete)
GATE(on_incr, incr)
GATE(on_decr, decr)
GATE(on_touch, touch)
GATE(on_flush_all, flush_all)
GATE(on_flush_all_in, flush_all_in)
GATE(on_verbosity, verbosity)
GATE(on_stats, stats)
#undef GATE

const struct memcache_handlers kvd_memcache_handlers = {
    .get = gated_on_get,
    .gets = gated_on_gets,
    .set = gated_on_set,
    .add = gated_on_add,
    .replace = gated_on_replace,
    .append = gated_on_append,
    .prepend = gated_on_prepend,
    .cas = gated_on_cas,
    .delete_ = gated_on_delete,
    .incr = gated_on_incr,
    .decr = gated_on_decr,
    .touch = gated_on_touch,
    .flush_all = gated_on_flush_all,
    .flush_all_in = gated_on_flush_all_in,
    .verbosity = gated_on_verbosity,
    .stats = gated_on_stats,
};
