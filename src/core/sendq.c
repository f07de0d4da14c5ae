/* Send chains: each connection's queued output is a list of chunks from the worker's slab.
 * Replies written during a loop turn are appended back to back, so a turn's replies leave in
 * one sendmsg (or one send SQE) per connection. A chunk need not be full when the next one is
 * linked behind it (a file's chunk as read, a TLS record that did not fit): each keeps its
 * length. Nothing here allocates. */
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "pool.h"
#include "sendq.h"
#include "worker.h"

static uint32_t chunk_get(struct rw_worker *w)
{
  uint32_t i = rw_pool_get(&w->send_pool);
  if (i != RW_NONE)
    w->chunk_next[i] = RW_NONE;
  return i;
}

/* Makes chunk `i` (holding `len` bytes) the new tail of the chain. */
static void link_tail(struct rw_worker *w, struct rw_conn *c, uint32_t i, size_t len)
{
  w->chunk_next[i] = RW_NONE;
  if (c->sq_tail == RW_NONE) {
    c->sq_head = i;
    c->sq_head_off = 0;
  } else {
    w->chunk_len[c->sq_tail] = c->sq_tail_len;
    w->chunk_next[c->sq_tail] = i;
  }
  c->sq_tail = i;
  c->sq_tail_len = (uint32_t)len;
}

/* Room at the end of the chain: a fresh chunk when the tail is full. Returns the bytes free
 * there (0: the slab is exhausted). */
static size_t tail_room(struct rw_worker *w, struct rw_conn *c)
{
  size_t csize = w->send_pool.item_size;
  if (c->sq_tail == RW_NONE || c->sq_tail_len == csize) {
    uint32_t i = chunk_get(w);
    if (i == RW_NONE)
      return 0;
    link_tail(w, c, i, 0);
  }
  return csize - c->sq_tail_len;
}

int rw_sendq_append(struct rw_worker *w, struct rw_conn *c, const void *data, size_t len)
{
  const uint8_t *src = data;
  while (len) {
    size_t n = tail_room(w, c);
    if (!n)
      return -ENOBUFS;
    if (n > len)
      n = len;
    memcpy(rw_pool_at(&w->send_pool, c->sq_tail) + c->sq_tail_len, src, n);
    c->sq_tail_len += (uint32_t)n;
    c->queued += n;
    src += n;
    len -= n;
  }
  return 0;
}

uint8_t *rw_sendq_reserve(struct rw_worker *w, struct rw_conn *c, size_t want, size_t *out_room)
{
  size_t csize = w->send_pool.item_size;
  if (c->sq_tail != RW_NONE && c->sq_tail_len && csize - c->sq_tail_len < want) {
    uint32_t i = chunk_get(w); /* the tail stays as filled as it is */
    if (i == RW_NONE)
      return NULL;
    link_tail(w, c, i, 0);
  }
  size_t n = tail_room(w, c);
  *out_room = n;
  return n ? rw_pool_at(&w->send_pool, c->sq_tail) + c->sq_tail_len : NULL;
}

void rw_sendq_commit(struct rw_worker *w, struct rw_conn *c, size_t n)
{
  (void)w;
  c->sq_tail_len += (uint32_t)n;
  c->queued += n;
}

void rw_iov_gather(uint8_t *at, const struct iovec *iov, int n)
{
  for (int i = 0; i < n; i++) {
    /* An empty piece may have no base at all (a HEAD's body), and memcpy may not be handed a
     * NULL pointer even for no bytes. */
    if (!iov[i].iov_len)
      continue;
    memcpy(at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
}

int rw_sendq_appendv(struct rw_worker *w, struct rw_conn *c, const struct iovec *iov, int n)
{
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  /* The common case, a small reply that fits the tail chunk (behind others, or in a fresh one
   * when the chain is empty, as it is after every reply sent in full): one check, plain copies. */
  if (c->sq_tail == RW_NONE && total)
    tail_room(w, c); /* (a fresh chunk, when the slab has one) */
  if (c->sq_tail != RW_NONE && w->send_pool.item_size - c->sq_tail_len >= total) {
    rw_iov_gather(rw_pool_at(&w->send_pool, c->sq_tail) + c->sq_tail_len, iov, n);
    c->sq_tail_len += (uint32_t)total;
    c->queued += total;
    return 0;
  }
  for (int i = 0; i < n; i++) {
    int rc = rw_sendq_append(w, c, iov[i].iov_base, iov[i].iov_len);
    if (rc < 0)
      return rc;
  }
  return 0;
}

void rw_sendq_append_chunk(struct rw_worker *w, struct rw_conn *c, uint32_t chunk, size_t len)
{
  link_tail(w, c, chunk, len);
  c->queued += len;
}

int rw_sendq_iov(const struct rw_worker *w, const struct rw_conn *c, struct iovec *iov, int max)
{
  int n = 0;
  for (uint32_t i = c->sq_head; i != RW_NONE && n < max; i = w->chunk_next[i]) {
    size_t start = i == c->sq_head ? c->sq_head_off : 0;
    size_t end = i == c->sq_tail ? c->sq_tail_len : w->chunk_len[i];
    iov[n].iov_base = rw_pool_at(&w->send_pool, i) + start;
    iov[n].iov_len = end - start;
    n++;
  }
  return n;
}

void rw_sendq_consume(struct rw_worker *w, struct rw_conn *c, size_t n)
{
  c->queued -= n;
  while (n) {
    uint32_t i = c->sq_head;
    size_t end = i == c->sq_tail ? c->sq_tail_len : w->chunk_len[i];
    size_t avail = end - c->sq_head_off;
    if (n < avail) {
      c->sq_head_off += (uint32_t)n;
      return;
    }
    n -= avail;
    c->sq_head = w->chunk_next[i];
    c->sq_head_off = 0;
    if (i == c->sq_tail)
      c->sq_tail = RW_NONE;
    rw_pool_put(&w->send_pool, i);
    w->freed_resources = true;
  }
  /* A fully drained tail chunk is released too: the next reply starts a fresh chunk. */
  if (c->sq_tail != RW_NONE && c->sq_head == c->sq_tail && c->sq_head_off == c->sq_tail_len) {
    rw_pool_put(&w->send_pool, c->sq_tail);
    c->sq_head = c->sq_tail = RW_NONE;
    c->sq_head_off = c->sq_tail_len = 0;
    w->freed_resources = true;
  }
}

void rw_sendq_drop(struct rw_worker *w, struct rw_conn *c)
{
  if (c->queued)
    rw_sendq_consume(w, c, c->queued);
  else if (c->sq_head != RW_NONE)
    rw_sendq_consume(w, c, 0);
}
