/* kvd's append-only file read back at start (aof.c writes it). The file is mapped, not read: a
 * record of any size (a 512 MiB value) is parsed where it lies, by the generated RESP parser,
 * and the page after the file's end (anonymous, zero) is the parser's sentinel.
 *
 * The log is a sequence of batches, each its records then a checksum record ("KVDCRC" and the
 * CRC32C of every byte of the file before it, as 8 hex digits). A batch is applied only once its
 * checksum holds, so a damaged batch changes nothing and every batch before it stands: the
 * log's valid prefix ends after the last good checksum record. The sums chain (each covers the
 * whole file before it), so a batch deleted whole is caught at the next one. A log without any
 * checksum record (written before they existed) is replayed unverified, record by record. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvd.h"

/* One record, checked and decoded: what it does, not yet done. */
struct rec {
  enum { REC_SEED, REC_SUM, REC_SET, REC_DEL, REC_EXPIRE, REC_PERSIST, REC_FLUSH } kind;
  rw_span key, value;
  bool has_at;
  int64_t at; /* a Unix-ms deadline: SET's PXAT, PEXPIREAT's, FLUSHALL's PXAT */
  int64_t flags;
  uint64_t n; /* KVDSEED's seed, KVDCRC's sum */
};

static int64_t parse_num(rw_span s, bool *ok)
{
  int64_t v = 0;
  bool neg = s.len && s.p[0] == '-';
  *ok = s.len > (size_t)neg && s.len < 20;
  for (size_t i = neg; *ok && i < s.len; i++) {
    *ok = s.p[i] >= '0' && s.p[i] <= '9';
    v = v * 10 + (s.p[i] - '0');
  }
  return neg ? -v : v;
}

static bool is(rw_span s, const char *lit)
{
  return s.len == strlen(lit) && !memcmp(s.p, lit, s.len);
}

/* `s` as an unsigned number of `base` (10, or 16 in lowercase), up to `max` digits. */
static bool parse_unsigned(rw_span s, unsigned base, size_t max, uint64_t *out)
{
  uint64_t v = 0;
  if (!s.len || s.len > max)
    return false;
  for (size_t i = 0; i < s.len; i++) {
    uint8_t ch = s.p[i];
    unsigned d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : 16;
    if (d >= base)
      return false;
    v = v * base + d;
  }
  *out = v;
  return true;
}

/* SET's options after key and value: PXAT ms, FLAGS n. */
static bool decode_set(const rw_span *a, uint32_t count, struct rec *r)
{
  bool ok = count >= 3 && count % 2 == 1;
  r->value = a[2];
  for (uint32_t i = 3; ok && i + 1 < count; i += 2) {
    if (is(a[i], "PXAT")) {
      r->has_at = true;
      r->at = parse_num(a[i + 1], &ok);
    } else if (is(a[i], "FLAGS")) {
      r->flags = parse_num(a[i + 1], &ok);
    } else {
      ok = false;
    }
  }
  return ok;
}

/* False if `l` is not a record kvd writes (`first`: the file's first record, the only place
 * for the seed). */
static bool decode(const rw_list *l, bool first, struct rec *r)
{
  rw_span a[7];
  if (!l->count || l->count > 7)
    return false;
  rw_list_iter it;
  rw_list_iter_init(l, &it);
  for (uint32_t i = 0; i < l->count; i++)
    rw_list_next(l, &it, &a[i]);
  *r = (struct rec){.key = l->count > 1 ? a[1] : (rw_span){0}};
  bool ok = true;
  if (is(a[0], "KVDSEED")) { /* the hash seed the log was written with (see seed_log) */
    r->kind = REC_SEED;
    return first && l->count == 2 && parse_unsigned(a[1], 10, 20, &r->n);
  }
  if (is(a[0], "KVDCRC")) {
    r->kind = REC_SUM;
    return l->count == 2 && a[1].len == 8 && parse_unsigned(a[1], 16, 8, &r->n);
  }
  if (is(a[0], "FLUSHALL")) {
    r->kind = REC_FLUSH;
    r->has_at = l->count == 3;
    if (r->has_at)
      r->at = parse_num(a[2], &ok);
    return l->count == 1 || (r->has_at && is(a[1], "PXAT") && ok);
  }
  if (is(a[0], "SET")) {
    r->kind = REC_SET;
    return decode_set(a, l->count, r);
  }
  if (is(a[0], "PEXPIREAT")) {
    r->kind = REC_EXPIRE;
    r->at = parse_num(l->count == 3 ? a[2] : (rw_span){0}, &ok);
    return l->count == 3 && ok;
  }
  r->kind = is(a[0], "DEL") ? REC_DEL : REC_PERSIST;
  return l->count == 2 && (is(a[0], "DEL") || is(a[0], "PERSIST"));
}

/* ---- applying records ---- */

struct replay {
  const uint8_t *buf;
  size_t len;
  void *parser;
  int64_t now_mono, now_unix;
  uint32_t crc; /* of buf[0..out->good) */
  struct kvd_aof_replayed *out;
};

/* A Unix-ms deadline as a monotonic one (1: already past). */
static int64_t to_mono(const struct replay *x, int64_t unix_ms)
{
  int64_t m = unix_ms - x->now_unix + x->now_mono;
  return m > x->now_mono ? m : 1;
}

static void apply_flush(const struct replay *x, const struct rec *r)
{
  int64_t at = r->has_at ? to_mono(x, r->at) : 0;
  if (at <= x->now_mono + 1)
    kv_flush(&kvd.store);
  else
    atomic_store(&kvd.store.flush_at_ms, at);
}

/* A record about one key: SET, DEL, PEXPIREAT, PERSIST. */
static void apply_key(const struct replay *x, const struct rec *r)
{
  uint32_t h = kv_hash(r->key);
  kv_shard *sh = kv_lock(&kvd.store, h);
  kv_item *cur = kv_find(&kvd.store, sh, r->key, h, x->now_mono);
  int64_t at = r->has_at || r->kind == REC_EXPIRE ? to_mono(x, r->at) : 0;
  switch (r->kind) {
  case REC_SET:
    if (kv_put(&kvd.store, sh, r->key, h, r->value, (rw_span){0}, (uint32_t)r->flags, at, NULL, x->now_mono,
               NULL) < 0)
      fprintf(stderr, "kvd: AOF replay: no memory for a key (--memory smaller than before?)\n");
    break;
  case REC_DEL:
    if (cur)
      kv_delete(sh, cur);
    break;
  default: /* PEXPIREAT, PERSIST (at 0) */
    if (cur)
      kv_set_expire(sh, cur, at);
  }
  kv_unlock(sh);
}

static void apply(const struct replay *x, const struct rec *r)
{
  if (r->kind == REC_SEED)
    kv_set_hash_seed(r->n);
  else if (r->kind == REC_FLUSH)
    apply_flush(x, r);
  else if (r->kind != REC_SUM)
    apply_key(x, r);
}

/* Applies the records in buf[from..end), which scan() found whole and kvd's; how many (checksum
 * records not counted). */
static uint64_t apply_range(struct replay *x, size_t from, size_t end)
{
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  uint64_t n = 0;
  resp_proto.parser_init(x->parser);
  for (size_t at = from, used = 0; at < end; at += used) {
    struct rec r;
    resp_proto.next(x->parser, x->buf + at, x->len - at, &used, msg);
    decode(&((union resp_msg *)msg)->multibulk.args, at == 0, &r);
    apply(x, &r);
    n += r.kind != REC_SUM;
  }
  return n;
}

/* ---- batches ---- */

/* A batch as scanned: its records are buf[from..end); `rc` 0: its checksum record follows at
 * `end` (sum_len bytes, holding `sum`); -ENOMSG: the file ends after them (end = the file's
 * length); -ENODATA: it ends inside the record at `end`; -EBADMSG: unparsable bytes at `end`. */
struct batch {
  size_t from, end, sum_len;
  uint32_t sum;
  int rc;
  size_t foreign; /* the first whole record kvd does not write; SIZE_MAX: none */
};

static void scan(struct replay *x, size_t from, struct batch *b)
{
  _Alignas(max_align_t) unsigned char msg[RW_PROTO_MSG_MAX];
  *b = (struct batch){.from = from, .end = from, .rc = -ENOMSG, .foreign = SIZE_MAX};
  resp_proto.parser_init(x->parser);
  for (size_t used = 0; b->end < x->len; b->end += used) {
    struct rec r;
    int cmd = resp_proto.next(x->parser, x->buf + b->end, x->len - b->end, &used, msg);
    if (cmd == RW_PARSE_MORE || cmd != RESP_CMD_MULTIBULK) {
      b->rc = cmd == RW_PARSE_MORE ? -ENODATA : -EBADMSG;
      return;
    }
    bool ok = decode(&((union resp_msg *)msg)->multibulk.args, b->end == 0, &r);
    if (!ok && b->foreign == SIZE_MAX)
      b->foreign = b->end; /* (scanned on: the checksum says whether it is damage) */
    if (ok && r.kind == REC_SUM) {
      b->sum = (uint32_t)r.n;
      b->sum_len = used;
      b->rc = 0;
      return;
    }
  }
}

/* A log from before checksums: every whole record up to the first problem, unverified. */
static int replay_legacy(struct replay *x, const struct batch *b)
{
  size_t end = b->foreign < b->end ? b->foreign : b->end;
  x->out->records = apply_range(x, 0, end);
  x->crc = kvd_crc32c(0, x->buf, end);
  x->out->good = x->out->bad_at = end;
  x->out->legacy = true;
  return b->foreign < b->end ? -EBADMSG : b->rc == -ENOMSG ? 0 : b->rc;
}

/* The next batch: applied if its checksum holds. 0, or why not (struct batch's codes, and
 * -EILSEQ: the checksum does not match), with out->bad_at saying where. */
static int replay_batch(struct replay *x)
{
  struct kvd_aof_replayed *out = x->out;
  struct batch b;
  scan(x, out->good, &b);
  if (b.rc && !out->batches) /* no checksum record in the whole file */
    return replay_legacy(x, &b);
  out->bad_at = b.foreign < b.end ? b.foreign : b.end;
  if (b.rc)
    return b.foreign < b.end ? -EBADMSG : b.rc;
  uint32_t crc = kvd_crc32c(x->crc, x->buf + b.from, b.end - b.from);
  if (crc != b.sum) {
    out->bad_at = b.end;
    return -EILSEQ;
  }
  if (b.foreign < b.end) /* kvd did not write it, but the sum holds: not damage; refused */
    return -EBADMSG;
  out->records += apply_range(x, b.from, b.end);
  x->crc = kvd_crc32c(crc, x->buf + b.end, b.sum_len);
  out->good = b.end + b.sum_len;
  out->batches++;
  return 0;
}

/* Maps the file with a zero page after it, for the parser's sentinel; NULL if it cannot. */
static uint8_t *map_log(int fd, size_t len, size_t *span)
{
  *span = (len + 4096 + 4095) & ~(size_t)4095;
  uint8_t *buf = mmap(NULL, *span, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (buf == MAP_FAILED)
    return NULL;
  if (mmap(buf, len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
    munmap(buf, *span);
    return NULL;
  }
  madvise(buf, len, MADV_SEQUENTIAL);
  return buf;
}

/* Replays the file's valid prefix into the store. 0, -ENODATA (the file ends inside a record),
 * -ENOMSG (it ends after records their checksum record never followed), -EILSEQ (a batch's
 * checksum does not match), -EBADMSG (a record kvd does not write), or -errno. */
static int replay(int fd, size_t len, struct kvd_aof_replayed *out)
{
  *out = (struct kvd_aof_replayed){0};
  if (!len)
    return 0;
  size_t span;
  struct replay x = {.len = len, .out = out, .now_unix = kvd_unix_ms()};
  x.buf = map_log(fd, len, &span);
  x.parser = malloc(resp_proto.parser_size);
  if (!x.buf || !x.parser) {
    free(x.parser);
    if (x.buf)
      munmap((void *)x.buf, span);
    return -ENOMEM;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  x.now_mono = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  int rc = 0;
  while (!rc && out->good < len && !out->legacy)
    rc = replay_batch(&x);
  out->crc = x.crc;
  free(x.parser);
  munmap((void *)x.buf, span);
  return rc;
}

/* ---- what replay found, said ---- */

/* Why the log's valid prefix ends before the file does, as a phrase after the path. */
static void why(char *s, size_t n, int rc, const struct kvd_aof_replayed *r)
{
  unsigned long long batch = r->batches + 1, good = r->good, at = r->bad_at;
  if (rc == -ENODATA && (r->legacy || at == good))
    snprintf(s, n, "ends inside a record at byte %llu", at);
  else if (rc == -ENODATA)
    snprintf(s, n, "ends inside a record at byte %llu (batch %llu, from byte %llu, unfinished)", at, batch,
             good);
  else if (rc == -ENOMSG)
    snprintf(s, n, "ends inside batch %llu: its records from byte %llu have no checksum record", batch, good);
  else if (rc == -EILSEQ)
    snprintf(s, n, "batch %llu, bytes %llu to %llu, fails its checksum (CRC32C)", batch, good, at);
  else if (r->legacy)
    snprintf(s, n, "not a record kvd writes at byte %llu", at);
  else
    snprintf(s, n, "not a record kvd writes at byte %llu (batch %llu, from byte %llu)", at, batch, good);
}

/* The file cut after its valid prefix. 0 or -errno. */
static int cut(int fd, const char *path, long long size, const char *reason, const struct kvd_aof_replayed *r)
{
  char kept[64] = "";
  if (!r->legacy)
    snprintf(kept, sizeof kept, ", keeping the %llu batches before it", (unsigned long long)r->batches);
  fprintf(stderr, "kvd: AOF %s %s%s: truncated from %lld to %llu bytes (%llu records kept)\n", path, reason,
          kept, size, (unsigned long long)r->good, (unsigned long long)r->records);
  if (ftruncate(fd, (off_t)r->good) < 0 || fsync(fd) < 0) {
    fprintf(stderr, "kvd: truncating %s: %s\n", path, strerror(errno));
    return -errno;
  }
  return 0;
}

int kvd_aof_load(int fd, const char *path, bool truncate_ok, struct kvd_aof_replayed *r)
{
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  int rc = replay(fd, (size_t)st.st_size, r);
  if (rc == -ENOMEM)
    fprintf(stderr, "kvd: reading %s: %s\n", path, strerror(-rc));
  if (rc == 0 || rc == -ENOMEM)
    return rc;
  char reason[160];
  why(reason, sizeof reason, rc, r);
  if (rc != -EBADMSG && truncate_ok)
    return cut(fd, path, (long long)st.st_size, reason, r);
  if (rc == -EBADMSG)
    fprintf(stderr, "kvd: AOF %s: %s: refusing to start\n", path, reason);
  else
    fprintf(stderr,
            "kvd: AOF %s %s (the file has %lld bytes): refusing to start "
            "(--aof-truncated truncate keeps what comes before byte %llu and cuts the file "
            "there)\n",
            path, reason, (long long)st.st_size, (unsigned long long)r->good);
  return rc;
}
