/* Send chains (src/core/sendq.c), included whole: bytes appended in any pieces leave in order
 * whatever the chunk boundaries and however the kernel cuts the writes; reserve/commit fills in
 * place; the slab running dry is an error, never an overrun; every chunk comes back. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../../src/core/sendq.c"

#define CHUNK 64
#define CHUNKS 32

static struct rw_worker w;
static struct rw_conn c;
static uint32_t next_tab[CHUNKS], len_tab[CHUNKS];
static uint8_t model[CHUNK * CHUNKS]; /* what the chain must hold, oldest first */
static size_t mhead, mtail;

static void setup(void)
{
  cr_assert_eq(rw_pool_init(&w.send_pool, CHUNKS, CHUNK), 0);
  w.chunk_next = next_tab;
  w.chunk_len = len_tab;
  c = (struct rw_conn){.sq_head = RW_NONE, .sq_tail = RW_NONE, .w = &w};
  mhead = mtail = 0;
}

static void teardown(void)
{
  rw_pool_fini(&w.send_pool);
}

/* The chain's bytes, gathered through rw_sendq_iov as a driver would, equal the model's. */
static void check_chain(void)
{
  struct iovec iov[CHUNKS + 1];
  int n = rw_sendq_iov(&w, &c, iov, CHUNKS + 1);
  size_t at = mhead;
  for (int i = 0; i < n; i++) {
    cr_assert_leq(iov[i].iov_len, CHUNK);
    cr_assert_leq(at + iov[i].iov_len, mtail);
    cr_assert_arr_eq(iov[i].iov_base, model + at, iov[i].iov_len, "piece %d differs", i);
    at += iov[i].iov_len;
  }
  cr_assert_eq(at, mtail, "chain holds %zu bytes, model %zu", at - mhead, mtail - mhead);
  cr_assert_eq(c.queued, mtail - mhead);
}

static void model_add(const uint8_t *p, size_t n)
{
  memmove(model, model + mhead, mtail - mhead);
  mtail -= mhead;
  mhead = 0;
  memcpy(model + mtail, p, n);
  mtail += n;
}

/* Chunks held by the chain plus free ones: all of them, each once. */
static void check_accounting(void)
{
  bool seen[CHUNKS] = {0};
  uint32_t held = 0;
  for (uint32_t i = c.sq_head; i != RW_NONE; i = i == c.sq_tail ? RW_NONE : w.chunk_next[i], held++) {
    cr_assert_lt(i, CHUNKS);
    cr_assert_not(seen[i], "chunk %u twice in the chain", i);
    seen[i] = true;
  }
  for (uint32_t k = 0; k < w.send_pool.nfree; k++) {
    uint32_t i = w.send_pool.free[k];
    cr_assert_not(seen[i], "chunk %u both free and used", i);
    seen[i] = true;
  }
  cr_assert_eq(held + w.send_pool.nfree, CHUNKS);
}

TestSuite(sendq, .init = setup, .fini = teardown);

/* Random pieces in, random partial writes out (as short sends would cut them), for a long
 * time: the bytes leave in order and no chunk is lost or shared. */
Test(sendq, pieces_and_partial_writes)
{
  srand(3);
  uint8_t buf[3 * CHUNK], next = 0;
  for (int round = 0; round < 20000; round++) {
    if (rand() % 2) {
      size_t n = (size_t)rand() % (sizeof buf + 1);
      if (mtail - mhead + n > CHUNK * (CHUNKS - 2))
        continue;
      for (size_t i = 0; i < n; i++)
        buf[i] = next++;
      if (rand() % 2) {
        cr_assert_eq(rw_sendq_append(&w, &c, buf, n), 0);
      } else { /* the same bytes as up to three pieces, one of them empty with no base */
        size_t a = n ? (size_t)rand() % (n + 1) : 0;
        struct iovec v[3] = {{buf, a}, {NULL, 0}, {buf + a, n - a}};
        cr_assert_eq(rw_sendq_appendv(&w, &c, v, 3), 0);
      }
      model_add(buf, n);
    } else if (c.queued) {
      size_t n = 1 + (size_t)rand() % c.queued;
      rw_sendq_consume(&w, &c, n);
      mhead += n;
    }
    check_chain();
    check_accounting();
  }
  rw_sendq_drop(&w, &c);
  cr_assert_eq(w.send_pool.nfree, CHUNKS, "a drained chain gives every chunk back");
  cr_assert_eq(c.sq_head, RW_NONE);
  cr_assert_eq(c.queued, 0);
}

/* Exactly at the chunk boundary: a full chunk and then one byte more take two chunks. */
Test(sendq, chunk_boundaries)
{
  uint8_t buf[CHUNK + 1];
  memset(buf, 'a', sizeof buf);
  cr_assert_eq(rw_sendq_append(&w, &c, buf, CHUNK), 0);
  cr_assert_eq(w.send_pool.nfree, CHUNKS - 1);
  model_add(buf, CHUNK);
  buf[0] = 'b';
  cr_assert_eq(rw_sendq_append(&w, &c, buf, 1), 0);
  model_add(buf, 1);
  cr_assert_eq(w.send_pool.nfree, CHUNKS - 2);
  check_chain();
  /* A write that ends exactly at the first chunk's end releases it, and only it. */
  rw_sendq_consume(&w, &c, CHUNK);
  mhead += CHUNK;
  cr_assert_eq(w.send_pool.nfree, CHUNKS - 1);
  check_chain();
  rw_sendq_consume(&w, &c, 1);
  mhead += 1;
  cr_assert_eq(w.send_pool.nfree, CHUNKS, "the drained tail is released too");
  cr_assert_eq(c.sq_tail, RW_NONE);
}

/* reserve: room at the tail when the tail has `want`; otherwise a fresh chunk, the old tail
 * keeping what it holds; commit counts what was written. */
Test(sendq, reserve_commit)
{
  size_t room;
  uint8_t *p = rw_sendq_reserve(&w, &c, 10, &room);
  cr_assert_not_null(p);
  cr_assert_eq(room, CHUNK);
  memcpy(p, "0123456789", 10);
  rw_sendq_commit(&w, &c, 10);
  model_add((const uint8_t *)"0123456789", 10);
  check_chain();
  p = rw_sendq_reserve(&w, &c, CHUNK - 10, &room);
  cr_assert_eq(room, CHUNK - 10, "the tail had exactly enough");
  p = rw_sendq_reserve(&w, &c, CHUNK - 9, &room);
  cr_assert_eq(room, CHUNK, "a fresh chunk");
  cr_assert_eq(w.send_pool.nfree, CHUNKS - 2);
  memset(p, 'x', CHUNK - 9);
  rw_sendq_commit(&w, &c, CHUNK - 9);
  uint8_t xs[CHUNK];
  memset(xs, 'x', sizeof xs);
  model_add(xs, CHUNK - 9);
  check_chain(); /* 10 bytes, then CHUNK - 9: the first chunk was left as it was */
  struct iovec iov[4];
  cr_assert_eq(rw_sendq_iov(&w, &c, iov, 4), 2);
  cr_assert_eq(iov[0].iov_len, 10);
  /* A partial write inside the first chunk, then the rest appended behind the second. */
  rw_sendq_consume(&w, &c, 4);
  mhead += 4;
  cr_assert_eq(rw_sendq_append(&w, &c, "tail", 4), 0);
  model_add((const uint8_t *)"tail", 4);
  check_chain();
  check_accounting();
}

/* A chunk reserved and never filled goes back: dropped alone, or drained behind data. */
Test(sendq, empty_tail_released)
{
  size_t room;
  cr_assert_not_null(rw_sendq_reserve(&w, &c, 8, &room));
  cr_assert_eq(w.send_pool.nfree, CHUNKS - 1);
  rw_sendq_drop(&w, &c);
  cr_assert_eq(w.send_pool.nfree, CHUNKS);
  cr_assert_eq(c.sq_head, RW_NONE);
  cr_assert_eq(rw_sendq_append(&w, &c, "abc", 3), 0);
  cr_assert_not_null(rw_sendq_reserve(&w, &c, CHUNK, &room)); /* a fresh, empty tail */
  cr_assert_eq(w.send_pool.nfree, CHUNKS - 2);
  rw_sendq_consume(&w, &c, 3);
  cr_assert_eq(w.send_pool.nfree, CHUNKS, "the data's chunk and the empty tail");
  cr_assert_eq(c.sq_head, RW_NONE);
  cr_assert_eq(c.sq_tail, RW_NONE);
}

/* A whole chunk linked in (a file's read) keeps its length when more follows it. */
Test(sendq, append_chunk)
{
  cr_assert_eq(rw_sendq_append(&w, &c, "head", 4), 0);
  model_add((const uint8_t *)"head", 4);
  uint32_t k = rw_pool_get(&w.send_pool);
  memcpy(rw_pool_at(&w.send_pool, k), "filedata", 8);
  rw_sendq_append_chunk(&w, &c, k, 8);
  model_add((const uint8_t *)"filedata", 8);
  cr_assert_eq(rw_sendq_append(&w, &c, "more", 4), 0);
  model_add((const uint8_t *)"more", 4);
  check_chain();
  check_accounting();
}

/* The slab runs dry: -ENOBUFS (reserve: NULL), nothing written past it, the chain intact. */
Test(sendq, exhaustion)
{
  uint8_t buf[CHUNK * CHUNKS];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t)(i * 7);
  cr_assert_eq(rw_sendq_append(&w, &c, buf, sizeof buf - 5), 0);
  model_add(buf, sizeof buf - 5);
  cr_assert_eq(rw_sendq_append(&w, &c, buf, 10), -ENOBUFS);
  model_add(buf, 5); /* (what fitted went in) */
  check_chain();
  size_t room;
  cr_assert_null(rw_sendq_reserve(&w, &c, 1, &room));
  struct iovec v = {buf, 1};
  cr_assert_eq(rw_sendq_appendv(&w, &c, &v, 1), -ENOBUFS);
  rw_sendq_drop(&w, &c);
  cr_assert_eq(w.send_pool.nfree, CHUNKS);
}
