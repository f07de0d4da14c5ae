/* Upstream connection pools (upstream.h) on a real server with one worker: its echo listener is
 * the upstream, and the pool's connections speak echo to it. Each test runs on the backend
 * $RW_BACKEND names. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringwright/ringwright.h>

#include "backend.h"
#include "closed_port.h"
#include "echo.gen.h"
#include "watchdog.h"

#define JOBS 8

/* One request through the pool: send `msg`, expect it back, release. */
struct job {
  rw_upstream_req r;
  char msg[16];
  char got[16];
  size_t got_len;
  bool immediate, done;
  int ready_err, ready_calls, closed_calls, closed_reason;
};

struct up_test {
  rw_server *srv;
  rw_worker *w;
  rw_upstream *u;
  rw_upstream_config cfg;
  int port;
  struct job job[JOBS];
  int acquire_rc[JOBS];
  uint32_t max_open;
  rw_timer later;
  rw_upstream_stats mid, end;
  void (*start)(void);
  void (*then)(void);
};

static struct up_test ut;

/* The upstream: echoes, and closes after echoing "bye"; closes at once on "cut". */
static int upstream_data(rw_conn *c, const struct echo_data *m)
{
  if (m->data.len >= 3 && !memcmp(m->data.p, "cut", 3)) {
    rw_conn_close(c);
    return 0;
  }
  int rc = rw_conn_write(c, m->data.p, m->data.len);
  if (m->data.len >= 3 && !memcmp(m->data.p, "bye", 3))
    rw_conn_close(c);
  return rc;
}

static const struct echo_handlers upstream_side = {.data = upstream_data};

static void note_open(void)
{
  rw_upstream_stats st;
  rw_upstream_stats_get(ut.w, ut.u, &st);
  if (st.open > ut.max_open)
    ut.max_open = st.open;
}

/* The pool's side: the lease's request is the connection's data while leased. */
static int client_data(rw_conn *c, const struct echo_data *m)
{
  struct job *j = rw_conn_data(c) ? ((rw_upstream_req *)rw_conn_data(c))->data : NULL;
  if (!j)
    return -EPROTO; /* bytes on an idle connection: nobody asked */
  cr_assert_leq(j->got_len + m->data.len, sizeof j->got);
  memcpy(j->got + j->got_len, m->data.p, m->data.len);
  j->got_len += m->data.len;
  if (j->got_len == strlen(j->msg)) {
    j->done = true;
    note_open();
    rw_upstream_release(&j->r, true);
    cr_expect_null(rw_upstream_conn(&j->r), "released: no longer leased");
    if (ut.then)
      ut.then();
  }
  return 0;
}

static const struct echo_handlers client_side = {.data = client_data};

static void job_send(struct job *j, rw_conn *c)
{
  cr_expect_eq(rw_upstream_conn(&j->r), c);
  cr_expect_eq(rw_conn_write(c, j->msg, strlen(j->msg)), 0);
}

static void job_ready(rw_upstream_req *r, rw_conn *c, int err)
{
  struct job *j = r->data;
  j->ready_calls++;
  j->ready_err = err;
  if (c)
    job_send(j, c);
  else if (ut.then)
    ut.then();
}

static void job_closed(rw_upstream_req *r, rw_conn *c, int reason)
{
  struct job *j = r->data;
  cr_expect_eq(rw_conn_write(c, "x", 1), -EPIPE, "closing: no more writes");
  j->closed_calls++;
  j->closed_reason = reason;
  if (ut.then)
    ut.then();
}

/* Starts job k: a kept-alive connection at once, or a callback later. */
static void job_start(int k, const char *msg)
{
  struct job *j = &ut.job[k];
  rw_upstream_req_init(&j->r, job_ready, job_closed, j);
  snprintf(j->msg, sizeof j->msg, "%s", msg);
  rw_conn *c;
  ut.acquire_rc[k] = rw_upstream_acquire(ut.w, ut.u, &j->r, &c);
  j->immediate = c != NULL;
  if (c)
    job_send(j, c);
  note_open();
}

static void test_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  ut.w = w;
  ut.start();
}

static void run(void (*start)(void), void (*then)(void), uint16_t port_override)
{
  rw_config cfg;
  rw_config_default(&cfg);
  cfg.name = "test";
  cfg.workers = 1;
  cfg.max_conns = 32;
  /* As appliances run: a dial re-arms the timer the idle timeout has armed already. */
  cfg.idle_timeout_ms = 60000;
  cfg.on_worker_start = test_start;
  cfg.backend = test_backend();
  ut.start = start;
  ut.then = then;
  cr_assert_eq(rw_server_create(&cfg, &ut.srv), 0);
  cr_assert_eq(rw_server_listen(ut.srv, "127.0.0.1:0", &echo_proto, &upstream_side), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port_override ? port_override : rw_server_port(ut.srv, 0));
  ut.cfg.hostport = addr;
  ut.cfg.proto = &echo_proto;
  ut.cfg.handlers = &client_side;
  ut.cfg.connect_timeout_ms = 2000;
  cr_assert_eq(rw_server_upstream(ut.srv, &ut.cfg, &ut.u), 0);
  cr_assert_eq(rw_server_run(ut.srv), 0);
  rw_server_destroy(ut.srv);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s");
}

static void later(uint64_t ms, void (*fn)(rw_timer *))
{
  rw_timer_init(&ut.later, fn, NULL);
  rw_timer_arm(ut.w, &ut.later, ms);
}

static void stop_now(rw_timer *t)
{
  (void)t;
  rw_upstream_stats_get(ut.w, ut.u, &ut.end);
  rw_server_stop(ut.srv);
}

/* ---- reuse: one after another, every request after the first finds the connection idle ---- */

static int seq_next;

static void seq_then(void)
{
  if (++seq_next < JOBS)
    job_start(seq_next, "ping");
  else
    later(50, stop_now);
}

static void seq_start(void)
{
  seq_next = 0;
  job_start(0, "ping");
}

Test(upstream, a_released_connection_is_reused)
{
  ut = (struct up_test){.cfg = {.max_conns = 4, .max_idle = 2}};
  run(seq_start, seq_then, 0);
  for (int k = 0; k < JOBS; k++) {
    cr_expect_eq(ut.acquire_rc[k], 0);
    cr_expect(ut.job[k].done, "job %d", k);
    cr_expect_eq(ut.job[k].immediate, k > 0, "job %d: %s", k, k ? "dialled again" : "no dial");
    cr_expect_eq(ut.job[k].closed_calls, 0);
  }
  cr_expect_eq(ut.end.dialled, 1);
  cr_expect_eq(ut.end.reused, JOBS - 1);
  cr_expect_eq(ut.end.idle, 1);
  cr_expect_eq(ut.max_open, 1);
}

/* ---- idle timeout: a connection idle past idle_ms closes, the next request dials ---- */

static void idle_second(rw_timer *t)
{
  (void)t;
  rw_upstream_stats_get(ut.w, ut.u, &ut.mid);
  job_start(1, "again");
}

static void idle_then(void)
{
  if (!ut.job[1].done)
    later(400, idle_second); /* (after the first job) */
  else
    later(10, stop_now);
}

static void idle_start(void)
{
  job_start(0, "first");
}

Test(upstream, an_idle_connection_times_out)
{
  ut = (struct up_test){.cfg = {.max_conns = 4, .max_idle = 4, .idle_ms = 100}};
  run(idle_start, idle_then, 0);
  cr_expect(ut.job[0].done);
  cr_expect(ut.job[1].done);
  cr_expect_eq(ut.mid.open, 0, "the idle connection closed after 100 ms");
  cr_expect_eq(ut.mid.idle, 0);
  cr_expect(!ut.job[1].immediate, "the second request dialled");
  cr_expect_eq(ut.end.dialled, 2);
  cr_expect_eq(ut.end.reused, 0);
}

/* ---- bounds: more requests than max_conns wait for a released one; max_idle stay ---- */

static int bound_done;

static void bound_then(void)
{
  if (++bound_done == JOBS)
    later(100, stop_now);
}

static void bound_start(void)
{
  bound_done = 0;
  for (int k = 0; k < JOBS; k++) {
    char msg[16];
    snprintf(msg, sizeof msg, "job-%d", k);
    job_start(k, msg);
  }
}

Test(upstream, the_bounds_hold)
{
  ut = (struct up_test){.cfg = {.max_conns = 2, .max_idle = 1}};
  run(bound_start, bound_then, 0);
  for (int k = 0; k < JOBS; k++) {
    cr_expect_eq(ut.acquire_rc[k], 0);
    cr_expect(ut.job[k].done, "job %d", k);
    cr_expect_eq(ut.job[k].got_len, strlen(ut.job[k].msg));
    cr_expect_eq(memcmp(ut.job[k].got, ut.job[k].msg, ut.job[k].got_len), 0, "job %d got another's reply", k);
    cr_expect_eq(ut.job[k].ready_calls, 1, "job %d", k);
  }
  cr_expect_eq(ut.max_open, 2, "never more than max_conns open");
  cr_expect_eq(ut.end.dialled, 2);
  cr_expect_eq(ut.end.reused, JOBS - 2, "the waiting requests took released connections");
  cr_expect_eq(ut.end.idle, 1, "max_idle kept, the other closed");
  cr_expect_eq(ut.end.open, 1);
}

/* ---- an upstream that closes an idle connection: dropped, never handed out ---- */

static void closed_second(rw_timer *t)
{
  (void)t;
  rw_upstream_stats_get(ut.w, ut.u, &ut.mid);
  job_start(1, "hello");
}

static void closed_then(void)
{
  if (!ut.job[1].done)
    later(200, closed_second);
  else
    later(10, stop_now);
}

static void closed_start(void)
{
  job_start(0, "bye");
}

Test(upstream, a_connection_closed_while_idle_is_dropped)
{
  ut = (struct up_test){.cfg = {.max_conns = 4, .max_idle = 4}};
  run(closed_start, closed_then, 0);
  cr_expect(ut.job[0].done);
  cr_expect_eq(ut.job[0].closed_calls, 0, "released before the upstream closed: not the lease's news");
  cr_expect_eq(ut.mid.open, 0, "the upstream's close took it out of the pool");
  cr_expect_eq(ut.mid.idle, 0);
  cr_expect(!ut.job[1].immediate);
  cr_expect(ut.job[1].done);
  cr_expect_eq(ut.end.dialled, 2);
  cr_expect_eq(ut.end.reused, 0);
}

/* ---- a leased connection that the upstream closes: the lease hears it ---- */

static void lease_closed_then(void)
{
  later(10, stop_now);
}

static void lease_closed_start(void)
{
  job_start(0, "cut");
}

Test(upstream, a_lease_hears_its_connection_close)
{
  ut = (struct up_test){.cfg = {.max_conns = 1, .max_idle = 1}};
  run(lease_closed_start, lease_closed_then, 0);
  cr_expect_eq(ut.job[0].ready_calls, 1);
  cr_expect(!ut.job[0].done);
  cr_expect_eq(ut.job[0].closed_calls, 1);
  cr_expect_eq(ut.job[0].closed_reason, 0, "the upstream closed between frames: %d", ut.job[0].closed_reason);
  cr_expect_null(rw_upstream_conn(&ut.job[0].r));
  cr_expect_eq(ut.end.open, 0);
}

/* ---- refused: each request hears the error, the next one in line dials anew ---- */

static int refused_calls;

static void refused_then(void)
{
  if (++refused_calls == 3)
    later(10, stop_now);
}

static void refused_start(void)
{
  refused_calls = 0;
  for (int k = 0; k < 3; k++)
    job_start(k, "x");
}

Test(upstream, a_refused_dial_is_each_requests_error)
{
  ut = (struct up_test){.cfg = {.max_conns = 1, .max_idle = 1}};
  run(refused_start, refused_then, (uint16_t)closed_port());
  for (int k = 0; k < 3; k++) {
    cr_expect_eq(ut.acquire_rc[k], 0);
    cr_expect_eq(ut.job[k].ready_calls, 1, "job %d", k);
    cr_expect_eq(ut.job[k].ready_err, -ECONNREFUSED, "job %d: %d", k, ut.job[k].ready_err);
  }
  cr_expect_eq(ut.end.open, 0);
  cr_expect_eq(ut.end.dialled, 3);
}

/* ---- cancel: the dial goes on and its connection waits idle ---- */

static void cancel_start(void)
{
  job_start(0, "x");
  rw_upstream_cancel(&ut.job[0].r);
  cr_expect_eq(rw_upstream_acquire(ut.w, ut.u, &ut.job[0].r, &(rw_conn *){NULL}), 0,
               "cancelled: free to ask again");
  rw_upstream_cancel(&ut.job[0].r);
  later(300, stop_now);
}

Test(upstream, a_cancelled_request_hears_nothing)
{
  ut = (struct up_test){.cfg = {.max_conns = 1, .max_idle = 1}};
  run(cancel_start, NULL, 0);
  cr_expect_eq(ut.job[0].ready_calls, 0);
  cr_expect_eq(ut.end.open, 1);
  cr_expect_eq(ut.end.idle, 1, "the dialled connection waits for the next request");
  cr_expect_eq(ut.end.dialled, 1, "the second request waited for the first's dial");
}

/* ---- declaring ---- */

Test(upstream, bad_declarations_are_refused)
{
  rw_config cfg;
  rw_config_default(&cfg);
  rw_server *s;
  rw_upstream *u;
  cr_assert_eq(rw_server_create(&cfg, &s), 0);
  rw_upstream_config c = {.hostport = "127.0.0.1:1", .proto = &echo_proto, .handlers = &client_side};
  cr_expect_eq(rw_server_upstream(s, &c, &u), -EINVAL, "max_conns 0");
  c.max_conns = 2;
  c.max_idle = 3;
  cr_expect_eq(rw_server_upstream(s, &c, &u), -EINVAL, "max_idle above max_conns");
  c.max_idle = 2;
  for (int i = 0; i < RW_MAX_UPSTREAMS; i++)
    cr_expect_eq(rw_server_upstream(s, &c, &u), 0);
  cr_expect_eq(rw_server_upstream(s, &c, &u), -ENOSPC);
  rw_server_destroy(s);
}
