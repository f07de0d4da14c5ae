/* kvd's memcache binary handlers: memcached 1.6.18's binary protocol, spoken on the memcache
 * listeners by connections whose first byte is 0x80 (rw_server_alternate). The spec
 * (spec/memcache_binary.rw) has framed each request and dispatched it by opcode; here are the
 * checks memcached makes of each opcode's lengths, its statuses with their texts, and its quiet
 * opcodes (answered only on error). What each command does is memcache_store.c's, shared with
 * the text protocol: a key stored here is the same item for `get` and RESP's GET. */
#include <errno.h>
#include <string.h>

#include "kvd.h"

#define KEY_MAX 250 /* memcached's: the binary header could say 65535 */

/* memcached's statuses (protocol_binary.h) */
enum {
  ST_OK = 0x00,
  ST_NOT_FOUND = 0x01,
  ST_EXISTS = 0x02,
  ST_TOO_LARGE = 0x03,
  ST_EINVAL = 0x04,
  ST_NOT_STORED = 0x05,
  ST_NON_NUMERIC = 0x06,
  ST_UNKNOWN = 0x81,
  ST_NO_MEMORY = 0x82,
};

/* What memcached requires of an opcode's lengths (dispatch_bin_command): each is checked after
 * the key's (250 bytes at most). UNKNOWN: an opcode memcached does not serve. */
enum shape {
  UNKNOWN,
  EMPTY, /* no extras, key or value: noop, version, quit */
  FLUSH, /* extras of 0 or 4 bytes alone */
  STORE, /* extras of 8 bytes (flags, expiration), a key, a value */
  KEY,   /* a key alone: get, delete */
  DELTA, /* extras of 20 bytes (delta, initial, expiration), a key */
  GROW,  /* a key and a value: append, prepend */
  STAT,  /* a key or none */
  TOUCH, /* extras of 4 bytes (expiration), a key */
  SASL,  /* a key and a value */
};

struct op {
  uint8_t shape;
  bool quiet;    /* answered only on error (a getq miss: not at all) */
  bool with_key; /* getk, gatk: the key comes back */
};

static const struct op ops[256] = {
    [0x00] = {KEY, 0, 0},
    [0x09] = {KEY, 1, 0},
    [0x0c] = {KEY, 0, 1},
    [0x0d] = {KEY, 1, 1},
    [0x01] = {STORE, 0, 0},
    [0x02] = {STORE, 0, 0},
    [0x03] = {STORE, 0, 0},
    [0x11] = {STORE, 1, 0},
    [0x12] = {STORE, 1, 0},
    [0x13] = {STORE, 1, 0},
    [0x04] = {KEY, 0, 0},
    [0x14] = {KEY, 1, 0},
    [0x05] = {DELTA, 0, 0},
    [0x06] = {DELTA, 0, 0},
    [0x15] = {DELTA, 1, 0},
    [0x16] = {DELTA, 1, 0},
    [0x07] = {EMPTY, 0, 0},
    [0x17] = {EMPTY, 1, 0},
    [0x08] = {FLUSH, 0, 0},
    [0x18] = {FLUSH, 1, 0},
    [0x0a] = {EMPTY, 0, 0},
    [0x0b] = {EMPTY, 0, 0},
    [0x0e] = {GROW, 0, 0},
    [0x0f] = {GROW, 0, 0},
    [0x19] = {GROW, 1, 0},
    [0x1a] = {GROW, 1, 0},
    [0x10] = {STAT, 0, 0},
    [0x1c] = {TOUCH, 0, 0},
    [0x1d] = {TOUCH, 0, 0},
    [0x1e] = {TOUCH, 1, 0},
    [0x23] = {TOUCH, 0, 1},
    [0x24] = {TOUCH, 1, 1},
    /* SASL: no authentication here, so memcached answers "Unknown command" to a well-formed
     * one (and "Invalid arguments" to the rest). */
    [0x20] = {EMPTY, 0, 0},
    [0x21] = {SASL, 0, 0},
    [0x22] = {SASL, 0, 0},
};

#define OP_TOUCH 0x1c
#define OP_QUIT 0x07

typedef struct memcache_binary_request req;

static const rw_span none = {0};

static rw_span text(const char *s)
{
  return (rw_span){(const uint8_t *)s, strlen(s)};
}

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void put_be32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* 0 when memcached would serve the request's lengths, else its status. Read from the header
 * (a refused request's parts are empty, its lengths still there). */
static int check(const req *m)
{
  uint32_t ext = m->extlen, key = m->keylen, body = m->total;
  bool ok = false;
  if (key > KEY_MAX)
    return ST_EINVAL;
  switch (ops[m->opcode].shape) {
  case UNKNOWN: return ST_UNKNOWN;
  case EMPTY: ok = !ext && !key && !body; break;
  case FLUSH: ok = !key && body == ext && (ext == 0 || ext == 4); break;
  case STORE: ok = ext == 8 && key; break;
  case KEY: ok = !ext && key && body == key; break;
  case DELTA: ok = ext == 20 && key && body == key + ext; break;
  case GROW:
  case SASL: ok = !ext && key; break;
  case STAT: ok = !ext; break;
  case TOUCH: ok = ext == 4 && key; break;
  }
  return ok ? 0 : ST_EINVAL;
}

/* An error, with memcached's text for it as the body (`why`: its own text, else the status's);
 * errors are answered for quiet opcodes too. */
static int reply_error(rw_conn *c, const req *m, int status, const char *why)
{
  static const char *const texts[] = {
      [ST_NOT_FOUND] = "Not found",    [ST_EXISTS] = "Data exists for key.",
      [ST_TOO_LARGE] = "Too large.",   [ST_EINVAL] = "Invalid arguments",
      [ST_NOT_STORED] = "Not stored.", [ST_NON_NUMERIC] = "Non-numeric server-side value for incr or decr",
  };
  if (!why)
    why = status == ST_UNKNOWN ? "Unknown command" : status == ST_NO_MEMORY ? "Out of memory" : texts[status];
  return memcache_binary_reply_response(c, m->opcode, (uint64_t)status, m->opaque, 0, none, none, text(why));
}

/* The status for how a shared operation ended (memcache_store.c), where memcached words it the
 * same for every command. */
static int status_of(int rc)
{
  switch (rc) {
  case KVD_MC_NOT_FOUND: return ST_NOT_FOUND;
  case KVD_MC_EXISTS: return ST_EXISTS;
  case KVD_MC_NOT_STORED: return ST_NOT_STORED;
  case KVD_MC_NON_NUMERIC: return ST_NON_NUMERIC;
  case -E2BIG: return ST_TOO_LARGE;
  default: return ST_NO_MEMORY;
  }
}

/* Lengths memcached refuses: "Invalid arguments", and the connection closes (it can no longer
 * be sure where the next request starts); an unknown opcode is answered and read past. */
static int refuse(rw_conn *c, const req *m, int status)
{
  int rc = reply_error(c, m, status, NULL);
  if (status == ST_EINVAL)
    rw_conn_close(c);
  return rc;
}

/* Every served opcode's first step. */
#define CHECK(c, m)             \
  do {                          \
    int st_ = check(m);         \
    if (st_)                    \
      return refuse(c, m, st_); \
  } while (0)

/* Success: nothing for a quiet opcode. */
static int reply_ok(rw_conn *c, const req *m, uint64_t cas, rw_span extras, rw_span value)
{
  if (ops[m->opcode].quiet)
    return 0;
  return memcache_binary_reply_response(c, m->opcode, ST_OK, m->opaque, cas, extras, none, value);
}

/* A failed write that cannot go to the log: memcached's binary form of a SERVER_ERROR. */
#define ADMIT(c, m) KVD_ADMIT(c, reply_error(c, m, ST_NO_MEMORY, "AOF write error: writes refused"))

/* get, getq, getk, getkq; touch, gat, gatq, gatk, gatkq. */
static int on_get(rw_conn *c, const req *m)
{
  CHECK(c, m);
  const struct op *o = &ops[m->opcode];
  bool touch = o->shape == TOUCH, with_value = m->opcode != OP_TOUCH;
  if (touch)
    ADMIT(c, m);
  /* (binary exptimes are unsigned: never "already expired" by sign) */
  int64_t expire_ms = touch ? kvd_mc_deadline(c, be32(m->extras.p)) : 0;
  uint32_t h = kv_hash(m->key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  kv_item *it = kvd_mc_fetch(c, sh, m->key, h, touch, expire_ms);
  int rc = 0;
  if (it) {
    uint8_t flags[4];
    put_be32(flags, it->flags);
    rw_span extras = {flags, 4}, key = o->with_key ? m->key : none;
    if (!with_value || it->vlen < KVD_STREAM_MIN) {
      rw_span v = with_value ? (rw_span){kv_value(it), it->vlen} : none;
      rc = memcache_binary_reply_response(c, m->opcode, ST_OK, m->opaque, it->cas, extras, key, v);
    } else {
      rc = memcache_binary_reply_response_head(c, m->opcode, ST_OK, m->opaque, it->cas, extras, key,
                                               4 + key.len + (uint64_t)it->vlen);
      if (rc >= 0)
        rc = kvd_stream_value(c, sh, it, false); /* (what follows waits for the stream) */
    }
  }
  kv_unlock(sh);
  if (it)
    return rc < 0 ? rc : 0;
  if (o->quiet)
    return 0;
  if (o->with_key) /* getk's miss carries the key and no text */
    return memcache_binary_reply_response(c, m->opcode, ST_NOT_FOUND, m->opaque, 0, none, m->key, none);
  return reply_error(c, m, ST_NOT_FOUND, NULL);
}

/* set, add, replace and their quiet forms; a CAS in the header makes any of them a cas. */
static int on_store(rw_conn *c, const req *m)
{
  CHECK(c, m);
  ADMIT(c, m);
  uint8_t base = m->opcode & 0x0f; /* (setq 0x11 is set 0x01...) */
  enum kvd_mc_mode mode = m->cas         ? KVD_MC_CAS
                          : base == 0x01 ? KVD_MC_SET
                          : base == 0x02 ? KVD_MC_ADD
                                         : KVD_MC_REPLACE;
  int64_t expire_ms = kvd_mc_deadline(c, be32(m->extras.p + 4));
  uint64_t cas = 0;
  int rc = kvd_mc_store(c, mode, m->key, m->value, be32(m->extras.p), expire_ms, m->cas, &cas);
  if (rc == -EAGAIN)
    return rc;
  if (rc == KVD_MC_DONE)
    return reply_ok(c, m, cas, none, none);
  if (rc == KVD_MC_NOT_STORED) /* memcached words it by the command */
    return reply_error(c, m, mode == KVD_MC_ADD ? ST_EXISTS : ST_NOT_FOUND, NULL);
  return reply_error(c, m, status_of(rc), rc == -ENOMEM ? "Out of memory allocating item" : NULL);
}

/* append, prepend and their quiet forms (a CAS in the header must match). */
static int on_grow(rw_conn *c, const req *m)
{
  CHECK(c, m);
  ADMIT(c, m);
  enum kvd_mc_mode mode = m->opcode == 0x0e || m->opcode == 0x19 ? KVD_MC_APPEND : KVD_MC_PREPEND;
  uint64_t cas = 0;
  int rc = kvd_mc_store(c, mode, m->key, m->value, 0, 0, m->cas, &cas);
  if (rc == -EAGAIN)
    return rc;
  if (rc == KVD_MC_DONE)
    return reply_ok(c, m, cas, none, none);
  /* (memcached: a value it cannot allocate is "Not stored." too) */
  return reply_error(c, m, rc < 0 ? ST_NOT_STORED : status_of(rc), NULL);
}

static int on_delete(rw_conn *c, const req *m)
{
  CHECK(c, m);
  ADMIT(c, m);
  int rc = kvd_mc_delete(c, m->key, m->cas);
  if (rc == KVD_MC_DONE)
    return reply_ok(c, m, 0, none, none);
  return reply_error(c, m, status_of(rc), NULL);
}

/* increment, decrement and their quiet forms. Extras: the delta, the initial value and its
 * expiration; a missing key is created with the initial value unless the expiration is
 * 0xffffffff. */
static int on_delta(rw_conn *c, const req *m)
{
  CHECK(c, m);
  ADMIT(c, m);
  bool incr = (m->opcode & 0x0f) == 0x05;
  uint32_t exptime = be32(m->extras.p + 16);
  struct kvd_mc_initial init = {be64(m->extras.p + 8), kvd_mc_deadline(c, exptime)};
  uint64_t v = 0, cas = 0;
  const struct kvd_mc_initial *create = exptime != 0xffffffffu ? &init : NULL;
  int rc = kvd_mc_delta(c, m->key, incr, be64(m->extras.p), m->cas, create, &v, &cas);
  if (rc == -EAGAIN)
    return rc;
  if (rc == KVD_MC_DONE) {
    uint8_t value[8];
    put_be32(value, (uint32_t)(v >> 32));
    put_be32(value + 4, (uint32_t)v);
    return reply_ok(c, m, cas, none, (rw_span){value, 8});
  }
  return reply_error(c, m, status_of(rc), rc < 0 ? "Out of memory incrementing value" : NULL);
}

static int on_flush(rw_conn *c, const req *m)
{
  CHECK(c, m);
  ADMIT(c, m);
  uint32_t exptime = m->extlen ? be32(m->extras.p) : 0;
  kvd_mc_flush(c, exptime ? kvd_mc_deadline(c, exptime) : 0);
  return reply_ok(c, m, 0, none, none);
}

/* noop (its answer tells a client that every quiet request before it was done), version,
 * quit and quitq (closing after what is queued). */
static int on_empty(rw_conn *c, const req *m)
{
  CHECK(c, m);
  int rc = reply_ok(c, m, 0, none, m->opcode == 0x0b ? text(KVD_MC_VERSION) : none);
  if ((m->opcode & 0x0f) == OP_QUIT)
    rw_conn_close(c);
  return rc;
}

/* One stat, one packet: its name as the key, its value as the value. */
static int stat_packet(rw_conn *c, const void *arg, rw_span name, rw_span value)
{
  const req *m = arg;
  return memcache_binary_reply_response(c, m->opcode, ST_OK, m->opaque, 0, none, name, value);
}

static bool starts(rw_span k, const char *word)
{
  return k.len >= strlen(word) && !memcmp(k.p, word, strlen(word));
}

static bool is(rw_span k, const char *word)
{
  return k.len == strlen(word) && starts(k, word);
}

/* stat: the general stats with an empty key; `reset` (memcached reads the key's first five
 * bytes) zeroes them; `settings`, `items`, `slabs`, `sizes` have nothing to say here; any other
 * key is not found. A packet with an empty key ends the list. */
static int on_stat(rw_conn *c, const req *m)
{
  CHECK(c, m);
  rw_span k = m->key;
  int rc = 0;
  if (!k.len)
    rc = kvd_mc_stats(c, stat_packet, m);
  else if (starts(k, "reset"))
    kvd_mc_stats_reset(c);
  else if (!starts(k, "settings") && !is(k, "items") && !is(k, "slabs") && !is(k, "sizes"))
    return reply_error(c, m, ST_NOT_FOUND, NULL);
  return rc < 0 ? rc : stat_packet(c, m, none, none);
}

/* Opcodes not in the spec's table: SASL's, answered as memcached without SASL answers them, and
 * the rest, "Unknown command" (the connection stays open). */
static int on_unknown(rw_conn *c, const req *m)
{
  int st = check(m);
  return refuse(c, m, st ? st : ST_UNKNOWN);
}

/* A request the spec refused at its header. Lengths that contradict each other (extras and key
 * longer than the body): memcached answers "Unknown command", and the spec closes. A body past
 * 1 MiB, being skipped: "Too large." for a write that memcached would have read so far; the
 * lengths memcached refuses as for any request; and a get, stat or touch with such a body
 * (memcached would read the bytes after its key as the next request) closes as invalid. */
static int on_refused(rw_conn *c, const req *m, int status)
{
  if (status == RW_PARSE_BAD_DATA)
    return reply_error(c, m, ST_UNKNOWN, NULL);
  int st = check(m);
  uint8_t shape = ops[m->opcode].shape;
  if (!st && (shape == STORE || shape == GROW))
    return reply_error(c, m, ST_TOO_LARGE, NULL);
  return refuse(c, m, st ? st : shape == SASL ? ST_UNKNOWN : ST_EINVAL);
}

/* The lookahead: the keys of gets and sets, the requests a pipeline repeats. */
void kvd_memcache_binary_peek(rw_conn *c, int cmd, const void *msg)
{
  (void)c;
  if (cmd < 0) {
    kvd_peek_end();
    return;
  }
  const req *m = msg;
  uint8_t shape = ops[m->opcode].shape;
  if ((shape == KEY || shape == STORE) && m->key.len)
    kvd_peek_key(m->key);
}

/* With a password (auth.c), binary connections are refused as memcached -Y refuses them: it
 * has no binary authentication (SASL) either. The reply is its text; the connection closes, as
 * kvd's binary connections cannot turn into text ones. */
static int unauthenticated(rw_conn *c)
{
  static const char MSG[] = "CLIENT_ERROR unauthenticated\r\n";
  int rc = rw_conn_write(c, MSG, sizeof MSG - 1);
  rw_conn_close(c);
  return rc;
}

#define GATE(fn)                                                             \
  static int gated_##fn(rw_conn *c, const struct memcache_binary_request *m) \
  {                                                                          \
    return kvd_authed(c) ? fn(c, m) : unauthenticated(c);                    \
  }
GATE(on_get)
GATE(on_store)
GATE(on_grow)
GATE(on_delete)
GATE(on_delta)
GATE(on_flush)
GATE(on_empty)
GATE(on_stat)
GATE(on_unknown)
#undef GATE

static int gated_on_refused(rw_conn *c, const struct memcache_binary_request *m, int why)
{
  return kvd_authed(c) ? on_refused(c, m, why) : unauthenticated(c);
}

const struct memcache_binary_handlers kvd_memcache_binary_handlers = {
    .get = gated_on_get,
    .getq = gated_on_get,
    .getk = gated_on_get,
    .getkq = gated_on_get,
    .touch = gated_on_get,
    .gat = gated_on_get,
    .gatq = gated_on_get,
    .gatk = gated_on_get,
    .gatkq = gated_on_get,
    .set = gated_on_store,
    .setq = gated_on_store,
    .add = gated_on_store,
    .addq = gated_on_store,
    .replace = gated_on_store,
    .replaceq = gated_on_store,
    .append = gated_on_grow,
    .appendq = gated_on_grow,
    .prepend = gated_on_grow,
    .prependq = gated_on_grow,
    .delete_ = gated_on_delete,
    .deleteq = gated_on_delete,
    .increment = gated_on_delta,
    .incrementq = gated_on_delta,
    .decrement = gated_on_delta,
    .decrementq = gated_on_delta,
    .flush = gated_on_flush,
    .flushq = gated_on_flush,
    .noop = gated_on_empty,
    .version = gated_on_empty,
    .quit = gated_on_empty,
    .quitq = gated_on_empty,
    .stat = gated_on_stat,
    .unknown = gated_on_unknown,
    .refused = gated_on_refused,
};
