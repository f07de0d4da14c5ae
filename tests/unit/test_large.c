/* The accumulator (the slot a connection keeps an unfinished frame in, src/core/conn.c) and the
 * server's large slots (src/core/large.c), both included whole: a frame outgrowing its slot
 * moves to a large slot with its bytes, moves back once only the start of the next frames is
 * left, waits (paused) when no large slot is free and is told when one is, and an idle large
 * slot gives its pages back after a second. */
#include <criterion/criterion.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/core/conn.c"
#include "../../src/core/large.c"

#define ACC 256
#define BIG 65536

static rw_server srv;
static struct rw_worker ws[2];
static struct rw_worker *w = &ws[0];
static struct rw_conn conns[3];

static void setup(void)
{
  srv = (rw_server){.workers = ws, .nworkers = 2};
  cr_assert_eq(rw_large_init(&srv, 2, BIG), 0);
  for (int i = 0; i < 2; i++) {
    ws[i] = (struct rw_worker){.srv = &srv, .id = (unsigned)i, .now_ms = 5000};
    cr_assert_eq(rw_pool_init(&ws[i].acc_pool, 3, ACC), 0);
    rw_wheel_init(&ws[i].wheel, ws[i].now_ms);
    ws[i].wakefd = eventfd(0, EFD_NONBLOCK);
  }
  for (int i = 0; i < 3; i++)
    conns[i] = (struct rw_conn){.w = w, .acc = RW_NONE, .flags = RW_CONN_LIVE};
}

static void teardown(void)
{
  for (int i = 0; i < 2; i++) {
    rw_pool_fini(&ws[i].acc_pool);
    close(ws[i].wakefd);
  }
  rw_large_fini(&srv);
}

TestSuite(acc, .init = setup, .fini = teardown);

static void fill(uint8_t *p, size_t n, size_t from)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)((from + i) * 31 + 7);
}

static void check_bytes(const uint8_t *p, size_t n, size_t from)
{
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(p[i], (uint8_t)((from + i) * 31 + 7), "byte %zu", from + i);
}

/* A frame appended in pieces fills its slot to one byte short (the parser's sentinel), moves to
 * a large slot with every byte, and the accumulator slot goes back. */
Test(acc, grows_into_a_large_slot)
{
  struct rw_conn *c = &conns[0];
  uint8_t piece[100];
  size_t total = 0;
  while (total < 3000) {
    fill(piece, sizeof piece, total);
    size_t k = acc_append(c, piece, sizeof piece);
    cr_assert_gt(k, 0, "appending at %zu", total);
    total += k;
    if (k < sizeof piece) { /* the slot was full: the rest goes in after it grew */
      cr_assert_eq(total, ACC - 1, "a slot takes its size less the sentinel's byte");
      cr_assert_not(c->acc_large);
      size_t more = acc_append(c, piece + k, sizeof piece - k);
      cr_assert_eq(more, sizeof piece - k);
      cr_assert(c->acc_large);
      cr_assert_eq(w->acc_pool.nfree, 3, "the accumulator slot went back");
      cr_assert_eq(srv.large.pool.nfree, 1);
      total += more;
    }
  }
  cr_assert_eq(c->acc_len, total);
  check_bytes(acc_buf(c), total, 0);
  cr_assert_eq(acc_room(c), BIG - 1 - total);
}

/* Once only the start of the next frames is left, the large slot goes back for long frames. */
Test(acc, shrinks_back)
{
  struct rw_conn *c = &conns[0];
  uint8_t buf[4000];
  fill(buf, sizeof buf, 0);
  cr_assert_eq(acc_append(c, buf, sizeof buf), ACC - 1);
  cr_assert_eq(acc_append(c, buf + ACC - 1, sizeof buf - (ACC - 1)), sizeof buf - (ACC - 1));
  cr_assert(c->acc_large);
  uint32_t big = c->acc;
  /* A frame of 3,900 bytes was parsed: 100 remain, moved to the front, then to a small slot. */
  cr_assert(keep_remainder(c, acc_buf(c), 3900, sizeof buf, 0));
  cr_assert_not(c->acc_large);
  cr_assert_eq(c->acc_len, 100);
  check_bytes(acc_buf(c), 100, 3900);
  cr_assert_eq(srv.large.pool.nfree, 2);
  cr_assert_neq(srv.large.idle_ms[big], 0, "returned still resident: lingers");
  cr_assert(rw_timer_armed(&w->large_timer));
  /* Parsed to the end: the slot itself goes back. */
  cr_assert(keep_remainder(c, acc_buf(c), 100, 100, 0));
  cr_assert_eq(c->acc, RW_NONE);
  cr_assert_eq(w->acc_pool.nfree, 3);
}

/* A frame the parser says is long (its length hint) takes a large slot at once, with the few
 * bytes it has, and keeps it while the hint says the frame is still long; a short hint moves
 * nothing. */
Test(acc, length_hint_takes_a_large_slot_at_once)
{
  struct rw_conn *c = &conns[0];
  uint8_t rx[500];
  fill(rx, sizeof rx, 0);
  cr_assert(keep_remainder(c, rx, 400, sizeof rx, 120));
  acc_reserve(c, 120);
  cr_assert_not(c->acc_large, "a frame that fits its slot stays there");
  acc_release(c);
  cr_assert(keep_remainder(c, rx, 400, sizeof rx, 5000));
  acc_reserve(c, 5000);
  cr_assert(c->acc_large);
  cr_assert_eq(c->acc_len, 100);
  check_bytes(acc_buf(c), 100, 400);
  cr_assert_eq(w->acc_pool.nfree, 3, "the accumulator slot went back");
  cr_assert_eq(acc_room(c), BIG - 1 - 100, "the rest is received in place");
  /* 60 bytes of it parsed (a frame before it): the next frame is still long, the slot stays. */
  cr_assert(keep_remainder(c, acc_buf(c), 60, 100, 4000));
  cr_assert(c->acc_large);
  check_bytes(acc_buf(c), 40, 460);
}

/* What is left in the driver's buffer goes to a fresh slot; none free: refused (the caller
 * pauses). */
Test(acc, remainder_to_a_slot)
{
  uint8_t rx[500];
  fill(rx, sizeof rx, 0);
  for (int i = 0; i < 3; i++) {
    cr_assert(keep_remainder(&conns[i], rx, 450, sizeof rx, 0));
    check_bytes(acc_buf(&conns[i]), 50, 450);
  }
  struct rw_conn extra = {.w = w, .acc = RW_NONE};
  cr_assert_not(keep_remainder(&extra, rx, 450, sizeof rx, 0));
  cr_assert(keep_remainder(&extra, rx, 500, sizeof rx, 0), "nothing left: nothing to keep");
}

/* Two connections hold both large slots; a third waits, paused, and its worker counts as
 * waiting once however often it asks. A slot put back by another worker wakes this one. */
Test(acc, waits_for_a_large_slot)
{
  uint8_t buf[ACC * 2];
  fill(buf, sizeof buf, 0);
  conns[2].w = &ws[1]; /* the waiter lives on worker 1 */
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(acc_append(&conns[i], buf, ACC - 1), ACC - 1);
    size_t k = acc_append(&conns[i], buf, 10);
    cr_assert_eq(k, i < 2 ? 10 : 0, "connection %d", i);
  }
  struct rw_conn *waiter = &conns[2];
  cr_assert(waiter->flags & RW_CONN_PAUSED);
  cr_assert_eq(ws[1].paused, waiter);
  cr_assert_not(waiter->acc_large);
  check_bytes(acc_buf(waiter), ACC - 1, 0);
  cr_assert_eq(acc_append(waiter, buf, 10), 0);
  cr_assert_eq(srv.large.waiters, 1, "one waiting worker, counted once");
  cr_assert(ws[1].large_waiting);
  uint64_t n;
  cr_assert_lt(read(ws[1].wakefd, &n, sizeof n), 0, "not woken yet");
  acc_release(&conns[0]); /* worker 0 puts a slot back */
  cr_assert_eq(read(ws[1].wakefd, &n, sizeof n), (ssize_t)sizeof n, "the waiting worker is woken");
  cr_assert_eq(read(ws[0].wakefd, &n, sizeof n), -1, "the putting worker is not");
  rw_large_tick(&ws[1]);
  cr_assert_eq(srv.large.waiters, 0);
  cr_assert_not(ws[1].large_waiting);
  cr_assert(ws[1].freed_resources, "its paused connections try again");
  waiter->flags &= ~RW_CONN_PAUSED;
  cr_assert_eq(acc_append(waiter, buf, 10), 10);
  cr_assert(waiter->acc_large);
  check_bytes(acc_buf(waiter), ACC - 1, 0);
}

static size_t resident(const void *p, size_t len)
{
  size_t pg = (size_t)sysconf(_SC_PAGESIZE), r = 0;
  unsigned char v[BIG / 4096 + 1];
  cr_assert_eq(mincore((void *)p, len, v), 0);
  for (size_t i = 0; i < (len + pg - 1) / pg; i++)
    r += v[i] & 1;
  return r;
}

/* A large slot keeps its pages for a second after use (a slot reused at once costs no faults),
 * then gives them back; one taken again meanwhile keeps them. */
Test(acc, linger_then_discard)
{
  uint32_t a = rw_large_get(w), b = rw_large_get(w);
  memset(rw_pool_at(&srv.large.pool, a), 1, BIG);
  memset(rw_pool_at(&srv.large.pool, b), 2, BIG);
  rw_large_put(w, a);
  w->now_ms += 600;
  rw_large_put(w, b);
  cr_assert_gt(resident(rw_pool_at(&srv.large.pool, a), BIG), 0);
  w->now_ms += 500; /* a idle 1.1 s, b 0.5 s */
  rw_wheel_advance(&w->wheel, w->now_ms);
  cr_assert_eq(resident(rw_pool_at(&srv.large.pool, a), BIG), 0, "a's pages went back");
  cr_assert_eq(resident(rw_pool_at(&srv.large.pool, b), BIG), BIG / (size_t)sysconf(_SC_PAGESIZE),
               "b lingers");
  cr_assert(rw_timer_armed(&w->large_timer), "checked again while one lingers");
  cr_assert_eq(rw_large_get(w), b, "the warm slot goes out first");
  cr_assert_eq(srv.large.idle_ms[b], 0);
  w->now_ms += 1100;
  rw_wheel_advance(&w->wheel, w->now_ms);
  cr_assert_eq(rw_pool_at(&srv.large.pool, b)[BIG - 1], 2, "a slot in use keeps its bytes");
  cr_assert_not(rw_timer_armed(&w->large_timer));
}
