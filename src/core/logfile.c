/* Log files written off the loop (include/ringwright/logfile.h). Each worker owns two halves:
 * lines go into the filling one; the other is either empty or being written by one
 * rw_file_write in flight. A write never waits on the loop and a line never waits on a write:
 * when both halves are taken the line is dropped and counted, so a slow disk costs lines, not
 * latency. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringwright/file.h>
#include <ringwright/logfile.h>
#include <ringwright/msg.h>
#include <ringwright/server.h>
#include <ringwright/timer.h>

#include "log.h"

struct lf_worker {
  rw_logfile *lf;
  rw_worker *w; /* known from its first line or message */
  int fd;
  uint8_t *buf[2];
  uint32_t used[2], lines[2];
  unsigned fill;      /* the half lines go into */
  uint32_t done;      /* bytes of the half being written that the kernel took */
  bool writing;       /* `op` writes half fill ^ 1 */
  bool opening;       /* `op` reopens the file */
  bool reopen;        /* a reopen was asked: started once no write is in flight */
  bool closing;       /* `close_op` closes the file a reopen replaced */
  atomic_bool posted; /* `msg` is on its way to this worker */
  rw_fileop op, close_op;
  rw_timer timer;
  rw_msg msg;
  _Atomic uint64_t written, dropped; /* written by this worker only, summed by readers */
  struct rw_ratelimit err_log;
} __attribute__((aligned(64)));

struct rw_logfile {
  rw_server *srv;
  char *path;
  size_t half;
  unsigned n;
  struct lf_worker *ws;
};

static void pump(struct lf_worker *lw);

/* One writer per counter: a relaxed load and store, no locked instruction. */
static void bump(_Atomic uint64_t *v, uint64_t by)
{
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + by, memory_order_relaxed);
}

static struct lf_worker *of(rw_logfile *lf, rw_worker *w)
{
  struct lf_worker *lw = &lf->ws[rw_worker_id(w) % lf->n];
  lw->w = w;
  return lw;
}

static void on_timer(rw_timer *t)
{
  pump(t->data);
}

/* Comes back later when the ring or the task queue had no room this turn. */
static void retry_later(struct lf_worker *lw)
{
  if (!rw_timer_armed(&lw->timer))
    rw_timer_arm(lw->w, &lw->timer, RW_LOGFILE_FLUSH_MS);
}

static void on_written(rw_fileop *op, int64_t res)
{
  struct lf_worker *lw = op->data;
  unsigned h = lw->fill ^ 1;
  lw->writing = false;
  if (res == 0)
    res = -EIO; /* no progress: do not spin on it */
  if (res < 0) {
    rw_log_limited(&lw->err_log, "%s: write: %s: %u lines dropped", lw->lf->path, strerror((int)-res),
                   lw->lines[h]);
    bump(&lw->dropped, lw->lines[h]);
  } else if (lw->done + (uint64_t)res < lw->used[h]) {
    lw->done += (uint32_t)res; /* a short write: the rest goes next */
    pump(lw);
    return;
  } else {
    bump(&lw->written, lw->lines[h]);
  }
  lw->used[h] = lw->lines[h] = lw->done = 0;
  pump(lw);
}

static void on_closed(rw_fileop *op, int64_t res)
{
  (void)res;
  ((struct lf_worker *)op->data)->closing = false;
}

static void on_reopened(rw_fileop *op, int64_t res)
{
  struct lf_worker *lw = op->data;
  lw->opening = false;
  if (res < 0) {
    rw_log("%s: reopen: %s: still writing to the file it replaced", lw->lf->path, strerror((int)-res));
  } else {
    int old = lw->fd;
    lw->fd = (int)res;
    /* The old descriptor is closed off the loop too; if the last close is still in flight
     * (two reopens in a row), this one is done here. */
    if (lw->closing || rw_file_close(lw->w, &lw->close_op, old, on_closed) < 0)
      close(old);
    else
      lw->closing = true;
  }
  pump(lw);
}

/* Starts what is due: a reopen once no write is in flight, else the older full half, else the
 * filling one (swapped first). One operation in flight at a time keeps lines in order. */
static void pump(struct lf_worker *lw)
{
  if (lw->writing || lw->opening)
    return;
  if (lw->reopen) {
    lw->reopen = false;
    lw->opening =
        rw_file_open(lw->w, &lw->op, lw->lf->path, O_WRONLY | O_APPEND | O_CREAT, 0644, on_reopened) == 0;
    if (!lw->opening) {
      lw->reopen = true;
      retry_later(lw);
    }
    return;
  }
  unsigned h = lw->fill ^ 1;
  if (!lw->used[h]) {
    if (!lw->used[lw->fill])
      return;
    h = lw->fill;
    lw->fill ^= 1;
  }
  if (rw_file_write(lw->w, &lw->op, lw->fd, lw->buf[h] + lw->done, lw->used[h] - lw->done, RW_FILE_POS,
                    on_written) == 0)
    lw->writing = true;
  else
    retry_later(lw);
}

static void on_reopen_msg(rw_worker *w, rw_msg *m)
{
  struct lf_worker *lw = m->data;
  lw->w = w;
  atomic_store_explicit(&lw->posted, false, memory_order_relaxed);
  lw->reopen = true;
  pump(lw);
}

int rw_logfile_open(rw_server *s, const char *path, size_t half_size, rw_logfile **out_lf)
{
  if (!s || !path || !half_size || half_size > UINT32_MAX || !out_lf)
    return -EINVAL;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  unsigned n = rw_server_workers(s);
  rw_logfile *lf = calloc(1, sizeof *lf);
  if (lf) {
    lf->ws = aligned_alloc(64, n * sizeof *lf->ws);
    lf->path = strdup(path);
  }
  uint8_t *bufs = lf && lf->ws && lf->path ? malloc(2 * half_size * n) : NULL;
  if (!bufs) {
    close(fd);
    if (lf)
      free(lf->ws), free(lf->path);
    free(lf);
    return -ENOMEM;
  }
  *lf = (rw_logfile){.srv = s, .path = lf->path, .half = half_size, .n = n, .ws = lf->ws};
  for (unsigned i = 0; i < n; i++) {
    struct lf_worker *lw = &lf->ws[i];
    memset(lw, 0, sizeof *lw);
    lw->lf = lf;
    lw->fd = i ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : fd;
    lw->buf[0] = bufs + 2 * half_size * i;
    lw->buf[1] = lw->buf[0] + half_size;
    lw->op.data = lw->close_op.data = lw;
    rw_timer_init(&lw->timer, on_timer, lw);
    lw->msg = (rw_msg){.fn = on_reopen_msg, .data = lw};
    if (lw->fd < 0) {
      int rc = -errno;
      lf->n = i;
      rw_logfile_close(lf);
      return rc;
    }
  }
  *out_lf = lf;
  return 0;
}

char *rw_logfile_reserve(rw_logfile *lf, rw_worker *w, size_t len)
{
  struct lf_worker *lw = of(lf, w);
  if (lw->used[lw->fill] + len > lf->half) {
    /* The filling half is full: it becomes the one written, if that one is free. */
    if (len > lf->half || lw->used[lw->fill ^ 1]) {
      bump(&lw->dropped, 1);
      return NULL;
    }
    lw->fill ^= 1;
    pump(lw);
  }
  return (char *)lw->buf[lw->fill] + lw->used[lw->fill];
}

void rw_logfile_commit(rw_logfile *lf, rw_worker *w, size_t len)
{
  struct lf_worker *lw = of(lf, w);
  lw->used[lw->fill] += (uint32_t)len;
  lw->lines[lw->fill]++;
  if (!lw->writing && !rw_timer_armed(&lw->timer))
    rw_timer_arm(w, &lw->timer, RW_LOGFILE_FLUSH_MS);
}

void rw_logfile_reopen(rw_logfile *lf, rw_worker *from)
{
  for (unsigned i = 0; i < lf->n; i++) {
    struct lf_worker *lw = &lf->ws[i];
    if (!atomic_exchange_explicit(&lw->posted, true, memory_order_relaxed) &&
        rw_worker_post(from, lf->srv, i, &lw->msg) < 0)
      atomic_store_explicit(&lw->posted, false, memory_order_relaxed);
  }
}

static uint64_t sum(const rw_logfile *lf, size_t field)
{
  uint64_t total = 0;
  for (unsigned i = 0; i < lf->n; i++)
    total += atomic_load_explicit((_Atomic uint64_t *)((char *)&lf->ws[i] + field), memory_order_relaxed);
  return total;
}

uint64_t rw_logfile_written(const rw_logfile *lf)
{
  return sum(lf, offsetof(struct lf_worker, written));
}

uint64_t rw_logfile_dropped(const rw_logfile *lf)
{
  return sum(lf, offsetof(struct lf_worker, dropped));
}

/* Blocking, after the loops: what the halves hold, older first. */
static void drain(struct lf_worker *lw)
{
  for (unsigned k = 0; k < 2; k++) {
    unsigned h = lw->fill ^ 1 ^ k;
    if (lw->writing && h == (lw->fill ^ 1)) { /* its write never completed: its fate is unknown */
      bump(&lw->dropped, lw->lines[h]);
      continue;
    }
    uint32_t off = h == (lw->fill ^ 1) ? lw->done : 0;
    while (off < lw->used[h]) {
      ssize_t r = write(lw->fd, lw->buf[h] + off, lw->used[h] - off);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      off += (uint32_t)r;
    }
    bump(off < lw->used[h] ? &lw->dropped : &lw->written, lw->lines[h]);
    lw->used[h] = lw->lines[h] = lw->done = 0;
    lw->writing = false;
  }
}

void rw_logfile_drain(rw_logfile *lf)
{
  for (unsigned i = 0; lf && i < lf->n; i++)
    drain(&lf->ws[i]);
}

void rw_logfile_close(rw_logfile *lf)
{
  if (!lf)
    return;
  rw_logfile_drain(lf);
  for (unsigned i = 0; i < lf->n; i++)
    close(lf->ws[i].fd);
  if (lf->ws)
    free(lf->ws[0].buf[0]);
  free(lf->ws);
  free(lf->path);
  free(lf);
}
