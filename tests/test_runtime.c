/* The runtime through its public API, in-process: timers, outbound connections, writes in
 * pieces, handles and stops, each on a real server with one worker. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ringwright/ringwright.h>

#include "backend.h"
#include "closed_port.h"
#include "echo.gen.h"
#include "kvt.gen.h"
#include "lenpfx.gen.h"
#include "mqtt.gen.h"
#include "watchdog.h"

static int echo_back(rw_conn *c, const struct echo_data *m)
{
  return rw_conn_write(c, m->data.p, m->data.len);
}

static const struct echo_handlers echo_server = {.data = echo_back};

static rw_server *new_server(void (*start)(rw_worker *, void *), void *data, uint32_t workers)
{
  rw_config cfg;
  rw_config_default(&cfg);
  cfg.name = "test";
  cfg.workers = workers;
  cfg.max_conns = 64;
  cfg.on_worker_start = start;
  cfg.data = data;
  cfg.backend = test_backend();
  rw_server *s;
  cr_assert_eq(rw_server_create(&cfg, &s), 0);
  return s;
}

/* ---- timers ---- */

struct timer_test {
  rw_server *srv;
  rw_worker *w;
  rw_timer t[5], cancelled, stopper;
  int64_t armed_at;
  int order[5], nfired;
  int64_t fired_after[5];
  bool cancelled_fired;
};

static void on_timer(rw_timer *t)
{
  struct timer_test *tt = t->data;
  int i = (int)(t - tt->t);
  tt->order[tt->nfired++] = i;
  tt->fired_after[i] = rw_worker_now_ms(tt->w) - tt->armed_at;
}

static void on_cancelled(rw_timer *t)
{
  ((struct timer_test *)t->data)->cancelled_fired = true;
}

static void on_stop(rw_timer *t)
{
  rw_server_stop(((struct timer_test *)t->data)->srv);
}

static const uint64_t delays[5] = {250, 30, 120, 0, 1500};

static void timers_start(rw_worker *w, void *data)
{
  struct timer_test *tt = data;
  arm_watchdog(w);
  tt->w = w;
  tt->armed_at = rw_worker_now_ms(w);
  for (int i = 0; i < 5; i++) {
    rw_timer_init(&tt->t[i], on_timer, tt);
    rw_timer_arm(w, &tt->t[i], delays[i]);
  }
  rw_timer_init(&tt->cancelled, on_cancelled, tt);
  rw_timer_arm(w, &tt->cancelled, 100);
  rw_timer_cancel(&tt->cancelled);
  cr_assert(!rw_timer_armed(&tt->cancelled));
  rw_timer_arm(w, &tt->t[4], 400); /* re-arming moves it */
  rw_timer_init(&tt->stopper, on_stop, tt);
  rw_timer_arm(w, &tt->stopper, 700);
}

Test(timer, fire_in_order_never_early_cancel_and_rearm)
{
  static struct timer_test tt;
  tt.srv = new_server(timers_start, &tt, 1);
  cr_assert_eq(rw_server_run(tt.srv), 0);
  rw_server_destroy(tt.srv);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s");
  cr_assert_eq(tt.nfired, 5);
  const int expect[5] = {3, 1, 2, 0, 4};
  for (int i = 0; i < 5; i++)
    cr_expect_eq(tt.order[i], expect[i], "position %d", i);
  const uint64_t effective[5] = {250, 30, 120, 0, 400};
  for (int i = 0; i < 5; i++) {
    cr_expect_geq(tt.fired_after[i], (int64_t)effective[i], "timer %d fired early", i);
    cr_expect_lt(tt.fired_after[i], (int64_t)effective[i] + 200, "timer %d fired late", i);
  }
  cr_expect(!tt.cancelled_fired);
}

/* ---- outbound connections ---- */

struct client_test {
  rw_server *srv;
  int port, refused_port, blackhole_port;
  char got[64];
  size_t gotlen;
  int done_ok, refused_err, timeout_err;
  rw_handle h;
  bool stale_checked;
  int pending;
};

static struct client_test ct;

static void maybe_stop(void)
{
  if (--ct.pending == 0)
    rw_server_stop(ct.srv);
}

static int client_data(rw_conn *c, const struct echo_data *m)
{
  memcpy(ct.got + ct.gotlen, m->data.p, m->data.len);
  ct.gotlen += m->data.len;
  if (ct.gotlen == 5) {
    cr_expect(rw_conn_from_handle(rw_conn_worker(c), ct.h) == c);
    rw_conn_close(c);
    maybe_stop();
  }
  return 0;
}

static const struct echo_handlers client_side = {.data = client_data};

static void connected(rw_conn *c, int err, void *data)
{
  (void)data;
  cr_assert_eq(err, 0, "connect: %s", strerror(-err));
  ct.done_ok++;
  ct.h = rw_conn_handle(c);
  cr_expect_eq(rw_conn_write(c, "hello", 5), 0);
}

static void refused(rw_conn *c, int err, void *data)
{
  (void)data;
  cr_expect_null(c);
  ct.refused_err = err;
  maybe_stop();
}

static void timed_out(rw_conn *c, int err, void *data)
{
  (void)data;
  cr_expect_null(c);
  ct.timeout_err = err;
  maybe_stop();
}

static void clients_start(rw_worker *w, void *data)
{
  (void)data;
  char addr[64];
  arm_watchdog(w);
  ct.pending = 3;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ct.port);
  cr_assert_eq(rw_connect(w, addr, &echo_proto, &client_side, 2000, connected, NULL), 0);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ct.refused_port);
  cr_assert_eq(rw_connect(w, addr, &echo_proto, &client_side, 2000, refused, NULL), 0);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ct.blackhole_port);
  cr_assert_eq(rw_connect(w, addr, &echo_proto, &client_side, 300, timed_out, NULL), 0);
}

/* A listener whose backlog is full and never accepts: SYNs to it are dropped, so a connect
 * hangs until its timeout. */
static int blackhole(int *out_fds)
{
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t len = sizeof sa;
  bind(l, (struct sockaddr *)&sa, len);
  listen(l, 0);
  getsockname(l, (struct sockaddr *)&sa, &len);
  out_fds[0] = l;
  for (int i = 1; i < 4; i++) {
    out_fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(out_fds[i], (struct sockaddr *)&sa, len);
  }
  usleep(50000);
  return ntohs(sa.sin_port);
}

Test(connect, established_refused_and_timed_out)
{
  int holes[4];
  ct.blackhole_port = blackhole(holes);
  ct.refused_port = closed_port();
  ct.srv = new_server(clients_start, NULL, 1);
  cr_assert_eq(rw_server_listen(ct.srv, "127.0.0.1:0", &echo_proto, &echo_server), 0);
  ct.port = rw_server_port(ct.srv, 0);
  cr_assert_gt(ct.port, 0);
  cr_assert_eq(rw_server_run(ct.srv), 0);
  rw_server_destroy(ct.srv);
  for (int i = 0; i < 4; i++)
    close(holes[i]);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s: %d callbacks pending", ct.pending);
  cr_expect_eq(ct.done_ok, 1);
  cr_expect_eq(ct.gotlen, 5);
  cr_expect_eq(memcmp(ct.got, "hello", 5), 0);
  cr_expect_eq(ct.refused_err, -ECONNREFUSED);
  cr_expect_eq(ct.timeout_err, -ETIMEDOUT);
}

/* ---- TLS client: verified against a CA, SNI, echoed through a TLS listener ---- */

struct tls_test {
  rw_server *srv;
  rw_tls *client;
  int port;
  char got[64];
  size_t gotlen;
  int ok, wrong_name_err, pending;
  char alpn[32];
};

static struct tls_test tt2;

static void tls_maybe_stop(void)
{
  if (--tt2.pending == 0)
    rw_server_stop(tt2.srv);
}

static int tls_client_data(rw_conn *c, const struct echo_data *m)
{
  memcpy(tt2.got + tt2.gotlen, m->data.p, m->data.len);
  tt2.gotlen += m->data.len;
  if (tt2.gotlen == 9) {
    rw_conn_close(c);
    tls_maybe_stop();
  }
  return 0;
}

static const struct echo_handlers tls_client_side = {.data = tls_client_data};

static void tls_connected(rw_conn *c, int err, void *data)
{
  (void)data;
  cr_assert_eq(err, 0, "TLS connect: %s", strerror(-err));
  tt2.ok++;
  snprintf(tt2.alpn, sizeof tt2.alpn, "%s", rw_conn_alpn(c));
  cr_expect_eq(rw_conn_write(c, "encrypted", 9), 0);
}

static void tls_wrong_name(rw_conn *c, int err, void *data)
{
  (void)data;
  cr_expect_null(c);
  tt2.wrong_name_err = err;
  tls_maybe_stop();
}

static void tls_clients_start(rw_worker *w, void *data)
{
  (void)data;
  char addr[64];
  arm_watchdog(w);
  tt2.pending = 2;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", tt2.port);
  cr_assert_eq(rw_connect_tls(w, addr, "localhost", tt2.client, &echo_proto, &tls_client_side, 2000,
                              tls_connected, NULL),
               0);
  cr_assert_eq(rw_connect_tls(w, addr, "not-this-name.test", tt2.client, &echo_proto, &tls_client_side, 2000,
                              tls_wrong_name, NULL),
               0);
}

/* A CA and a certificate for "localhost" it signed, made by the openssl command in `dir`. */
static void make_certs(char *dir)
{
  char cmd[1024];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(cmd, sizeof cmd,
           "cd %s && exec 2>/dev/null && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out "
           "ca.crt -days 1 -subj /CN=ca && "
           "openssl req -newkey rsa:2048 -nodes -keyout s.key -out s.csr -subj /CN=localhost && "
           "printf 'subjectAltName=DNS:localhost\\n' > s.ext && "
           "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out s.crt -days 1 -extfile "
           "s.ext",
           dir);
  cr_assert_eq(system(cmd), 0, "openssl could not make the certificates");
}

/* Certificates in `dir` (make_certs), a server context for them and a client context that
 * trusts their CA, no ALPN; tls_pair_free() undoes it all. */
static void tls_pair(char *dir, rw_tls **server, rw_tls **client)
{
  char cert[128], key[128], ca[128];
  make_certs(dir);
  snprintf(cert, sizeof cert, "%s/s.crt", dir);
  snprintf(key, sizeof key, "%s/s.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.crt", dir);
  cr_assert_eq(rw_tls_server_new(&(rw_tls_cert){cert, key}, 1, NULL, server), 0);
  cr_assert_eq(rw_tls_client_new(ca, NULL, client), 0);
}

static void tls_pair_free(const char *dir, rw_tls *server, rw_tls *client)
{
  char cmd[1024];
  rw_tls_free(server);
  rw_tls_free(client);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

Test(tls, client_verifies_server_and_echoes)
{
  char dir[] = "/tmp/rw-tls-XXXXXX", cmd[1024], cert[128], key[128], ca[128];
  make_certs(dir);
  snprintf(cert, sizeof cert, "%s/s.crt", dir);
  snprintf(key, sizeof key, "%s/s.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.crt", dir);
  static const char *const alpn[] = {"echo/1", NULL};
  rw_tls *server;
  cr_assert_eq(rw_tls_server_new(&(rw_tls_cert){cert, key}, 1, alpn, &server), 0);
  cr_assert_eq(rw_tls_client_new(ca, alpn, &tt2.client), 0);
  cr_expect_eq(rw_tls_server_new(&(rw_tls_cert){"/nonexistent.crt", key}, 1, NULL, &(rw_tls *){0}), -EINVAL);
  tt2.srv = new_server(tls_clients_start, NULL, 1);
  cr_assert_eq(rw_server_listen_tls(tt2.srv, "127.0.0.1:0", &echo_proto, &echo_server, server), 0);
  tt2.port = rw_server_port(tt2.srv, 0);
  cr_assert_eq(rw_server_run(tt2.srv), 0);
  rw_server_destroy(tt2.srv);
  rw_tls_free(server);
  rw_tls_free(tt2.client);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s: %d callbacks pending", tt2.pending);
  cr_expect_eq(tt2.ok, 1);
  cr_expect_eq(tt2.gotlen, 9);
  cr_expect_eq(memcmp(tt2.got, "encrypted", 9), 0);
  cr_expect_str_eq(tt2.alpn, "echo/1");
  cr_expect_eq(tt2.wrong_name_err, -ECONNABORTED, "a certificate for another name is refused");
}

/* Our client against OpenSSL's s_server (-rev: each line comes back reversed), on TLS 1.3 (its
 * NewSessionTickets arrive after our handshake and are passed over) and TLS 1.2. */
struct ossl_test {
  rw_server *srv;
  rw_tls *client;
  int port, err;
  char got[64];
  size_t gotlen;
};

static struct ossl_test ot;

static int ossl_data(rw_conn *c, const struct echo_data *m)
{
  size_t n = m->data.len < sizeof ot.got - ot.gotlen ? m->data.len : sizeof ot.got - ot.gotlen;
  memcpy(ot.got + ot.gotlen, m->data.p, n);
  ot.gotlen += n;
  if (memchr(ot.got, '\n', ot.gotlen)) {
    rw_conn_close(c);
    rw_server_stop(ot.srv);
  }
  return 0;
}

static const struct echo_handlers ossl_side = {.data = ossl_data};

static void ossl_connected(rw_conn *c, int err, void *data)
{
  (void)data;
  ot.err = err;
  if (!c)
    rw_server_stop(ot.srv);
  else
    cr_expect_eq(rw_conn_write(c, "encrypted\n", 10), 0);
}

static void ossl_start(rw_worker *w, void *data)
{
  (void)data;
  char addr[64];
  arm_watchdog(w);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ot.port);
  cr_assert_eq(
      rw_connect_tls(w, addr, "localhost", ot.client, &echo_proto, &ossl_side, 5000, ossl_connected, NULL),
      0);
}

Test(tls, client_against_openssl_s_server)
{
  char dir[] = "/tmp/rw-tls-XXXXXX", cmd[1024], ca[128], line[256];
  make_certs(dir);
  snprintf(ca, sizeof ca, "%s/ca.crt", dir);
  cr_assert_eq(rw_tls_client_new(ca, NULL, &ot.client), 0);
  static const char *const versions[] = {"-tls1_3", "-tls1_2"};
  for (int v = 0; v < 2; v++) {
    ot.port = closed_port();
    ot.gotlen = 0;
    ot.err = 1;
    snprintf(
        cmd, sizeof cmd,
        "exec openssl s_server -accept 127.0.0.1:%d -cert %s/s.crt -key %s/s.key -rev -naccept 1 %s 2>&1",
        ot.port, dir, dir, versions[v]);
    FILE *srv = popen(cmd, "r");
    cr_assert_not_null(srv);
    bool ready = false;
    while (!ready && fgets(line, sizeof line, srv))
      ready = !strncmp(line, "ACCEPT", 6);
    cr_assert(ready, "s_server did not start");
    ot.srv = new_server(ossl_start, NULL, 1);
    cr_assert_eq(rw_server_use_proto(ot.srv, &echo_proto), 0); /* a client only: no listener */
    cr_assert_eq(rw_server_run(ot.srv), 0);
    rw_server_destroy(ot.srv);
    pclose(srv); /* (it exits after its one connection) */
    cr_assert(!watchdog_fired, "%s: the test did not finish within 20 s", versions[v]);
    cr_expect_eq(ot.err, 0, "%s: %s", versions[v], strerror(-ot.err));
    cr_expect_eq(ot.gotlen, 10, "%s", versions[v]);
    cr_expect_eq(memcmp(ot.got, "detpyrcne\n", 10), 0, "%s: %.*s", versions[v], (int)ot.gotlen, ot.got);
  }
  rw_tls_free(ot.client);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

/* A client connection of a test is done (or never came): the last one stops the server. */
static void client_done(int *pending, rw_server *srv)
{
  if (--*pending == 0)
    rw_server_stop(srv);
}

/* ---- writes whose pieces include empty ones with a NULL base, plain and TLS ---- */

#define PIECES_TOTAL (128 * 1024)

struct pieces_test {
  rw_server *srv;
  rw_tls *client;
  int port[2], pending, err[2];
  uint32_t rng;
  uint8_t sent[PIECES_TOTAL];
  size_t got[2];
  bool wrong[2];
};

static struct pieces_test pt;

static uint32_t pieces_next(void)
{
  pt.rng ^= pt.rng << 13;
  pt.rng ^= pt.rng >> 17;
  pt.rng ^= pt.rng << 5;
  return pt.rng;
}

/* Echoes each chunk in writes of up to six pieces, about a third of them {NULL, 0} (what httpd
 * writes for a HEAD's body), after a write of nothing but such pieces. Writes reach past the
 * TLS record layer's gather limit (4 KiB), so both its ways are taken, and the plain chain's
 * copy into the tail as well as its chunk by chunk append. */
static int pieces_back(rw_conn *c, const struct echo_data *m)
{
  const struct iovec none[2] = {{NULL, 0}, {NULL, 0}};
  int rc = rw_conn_writev(c, none, 2);
  const uint8_t *p = m->data.p;
  size_t left = m->data.len;
  while (!rc && left) {
    struct iovec iov[6];
    int n = 1 + (int)(pieces_next() % 6);
    for (int i = 0; i < n; i++) {
      size_t k = pieces_next() % 3 ? 1 + pieces_next() % 3000 : 0;
      k = k < left ? k : left;
      iov[i] = (struct iovec){k ? (void *)p : NULL, k};
      p += k;
      left -= k;
    }
    rc = rw_conn_writev(c, iov, n);
  }
  return rc;
}

static const struct echo_handlers pieces_server = {.data = pieces_back};

static int pieces_client_data(rw_conn *c, const struct echo_data *m)
{
  int k = (int)(intptr_t)rw_conn_data(c);
  if (pt.got[k] + m->data.len > PIECES_TOTAL || memcmp(pt.sent + pt.got[k], m->data.p, m->data.len))
    pt.wrong[k] = true;
  pt.got[k] += m->data.len;
  if (pt.wrong[k] || pt.got[k] == PIECES_TOTAL) {
    rw_conn_close(c);
    client_done(&pt.pending, pt.srv);
  }
  return 0;
}

static const struct echo_handlers pieces_client = {.data = pieces_client_data};

static void pieces_connected(rw_conn *c, int err, void *data)
{
  int k = (int)(intptr_t)data;
  pt.err[k] = err;
  if (!c) {
    client_done(&pt.pending, pt.srv);
    return;
  }
  rw_conn_set_data(c, data);
  cr_expect_eq(rw_conn_write(c, pt.sent, PIECES_TOTAL), 0);
}

/* Client 0 dials port[0] in plain TCP, client 1 port[1] over TLS; `done` gets k as its data. */
static void dial_plain_and_tls(rw_worker *w, const int port[2], rw_tls *client, const rw_proto *proto,
                               const void *h, rw_connect_fn done)
{
  char addr[2][64];
  for (int k = 0; k < 2; k++)
    snprintf(addr[k], sizeof addr[k], "127.0.0.1:%d", port[k]);
  cr_assert_eq(rw_connect(w, addr[0], proto, h, 2000, done, (void *)0), 0);
  cr_assert_eq(rw_connect_tls(w, addr[1], "localhost", client, proto, h, 2000, done, (void *)1), 0);
}

static void pieces_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  pt.pending = 2;
  dial_plain_and_tls(w, pt.port, pt.client, &echo_proto, &pieces_client, pieces_connected);
}

Test(conn, writev_skips_empty_pieces_with_a_null_base_plain_and_tls)
{
  char dir[] = "/tmp/rw-tls-XXXXXX";
  rw_tls *server;
  tls_pair(dir, &server, &pt.client);
  pt.rng = 2463534242u;
  for (size_t i = 0; i < PIECES_TOTAL; i++)
    pt.sent[i] = (uint8_t)pieces_next();
  pt.srv = new_server(pieces_start, NULL, 1);
  cr_assert_eq(rw_server_listen(pt.srv, "127.0.0.1:0", &echo_proto, &pieces_server), 0);
  cr_assert_eq(rw_server_listen_tls(pt.srv, "127.0.0.1:0", &echo_proto, &pieces_server, server), 0);
  for (int k = 0; k < 2; k++)
    pt.port[k] = rw_server_port(pt.srv, (unsigned)k);
  cr_assert_eq(rw_server_run(pt.srv), 0);
  rw_server_destroy(pt.srv);
  tls_pair_free(dir, server, pt.client);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s: %d connections pending", pt.pending);
  for (int k = 0; k < 2; k++) {
    const char *what = k ? "TLS" : "plain";
    cr_expect_eq(pt.err[k], 0, "%s: connect: %s", what, strerror(-pt.err[k]));
    cr_expect(!pt.wrong[k], "%s: the bytes echoed differ at or after offset %zu", what, pt.got[k]);
    cr_expect_eq(pt.got[k], PIECES_TOTAL, "%s", what);
  }
}

/* ---- a protocol chosen by the first byte (rw_server_alternate) ---- */

/* A listener serving echo (raw: on its own it needs no accumulator slot) with lenpfx (framed)
 * as the alternate for a first byte 0x00. Four clients, plain and TLS: two speak lenpfx and send
 * their frame's header and payload in separate loop turns, so the frame must wait in a slot that
 * only the alternate's sizing provides; two speak echo with a 0x00 after their first byte, which
 * must not switch them. */
#define ALT_CLIENTS 4

struct alt_test {
  rw_server *srv;
  rw_tls *client;
  int port[2], pending, err[ALT_CLIENTS];
  char got[ALT_CLIENTS][32];
  size_t gotlen[ALT_CLIENTS];
  rw_timer later[ALT_CLIENTS];
  rw_conn *conn[ALT_CLIENTS];
};

static struct alt_test at;
static const char alt_echoed[] = "a\0b\0c"; /* what each echo client sends */

static int alt_frame_back(rw_conn *c, const struct lenpfx_frame *m)
{
  return lenpfx_reply_echo(c, m->payload);
}

static const struct lenpfx_handlers alt_server = {.frame = alt_frame_back};

static void alt_done(rw_conn *c, int k)
{
  rw_conn_close(c);
  at.conn[k] = NULL;
  client_done(&at.pending, at.srv);
}

static int alt_client_frame(rw_conn *c, const struct lenpfx_frame *m)
{
  int k = (int)(intptr_t)rw_conn_data(c);
  size_t n = m->payload.len < sizeof at.got[k] ? m->payload.len : sizeof at.got[k];
  memcpy(at.got[k], m->payload.p, n);
  at.gotlen[k] = n;
  alt_done(c, k);
  return 0;
}

static int alt_client_echo(rw_conn *c, const struct echo_data *m)
{
  int k = (int)(intptr_t)rw_conn_data(c);
  size_t n = m->data.len < sizeof at.got[k] - at.gotlen[k] ? m->data.len : sizeof at.got[k] - at.gotlen[k];
  memcpy(at.got[k] + at.gotlen[k], m->data.p, n);
  at.gotlen[k] += n;
  if (at.gotlen[k] >= sizeof alt_echoed - 1)
    alt_done(c, k);
  return 0;
}

static const struct lenpfx_handlers alt_client_lenpfx = {.frame = alt_client_frame};
static const struct echo_handlers alt_client_raw = {.data = alt_client_echo};

static void alt_payload(rw_timer *t)
{
  int k = (int)(t - at.later);
  if (at.conn[k])
    cr_expect_eq(rw_conn_write(at.conn[k], "framed", 6), 0);
}

static void alt_connected(rw_conn *c, int err, void *data)
{
  int k = (int)(intptr_t)data;
  at.err[k] = err;
  if (!c) {
    client_done(&at.pending, at.srv);
    return;
  }
  rw_conn_set_data(c, data);
  at.conn[k] = c;
  if (k % 2) {
    cr_expect_eq(rw_conn_write(c, alt_echoed, sizeof alt_echoed - 1), 0);
    return;
  }
  cr_expect_eq(rw_conn_write(c, "\0\0\0\6", 4), 0); /* the header now, the payload later */
  rw_timer_init(&at.later[k], alt_payload, NULL);
  rw_timer_arm(rw_conn_worker(c), &at.later[k], 50);
}

static void alt_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  at.pending = ALT_CLIENTS;
  for (int k = 0; k < ALT_CLIENTS; k++) {
    char addr[64];
    bool tls = k >= 2;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", at.port[tls]);
    const rw_proto *proto = k % 2 ? &echo_proto : &lenpfx_proto;
    const void *h = k % 2 ? (const void *)&alt_client_raw : (const void *)&alt_client_lenpfx;
    cr_assert_eq(tls ? rw_connect_tls(w, addr, "localhost", at.client, proto, h, 2000, alt_connected,
                                      (void *)(intptr_t)k)
                     : rw_connect(w, addr, proto, h, 2000, alt_connected, (void *)(intptr_t)k),
                 0);
  }
}

Test(conn, first_byte_picks_the_alternate_protocol_plain_and_tls)
{
  char dir[] = "/tmp/rw-tls-XXXXXX";
  rw_tls *server;
  tls_pair(dir, &server, &at.client);
  at.srv = new_server(alt_start, NULL, 1);
  cr_assert_eq(rw_server_listen(at.srv, "127.0.0.1:0", &echo_proto, &echo_server), 0);
  cr_assert_eq(rw_server_listen_tls(at.srv, "127.0.0.1:0", &echo_proto, &echo_server, server), 0);
  /* Handlers are checked at registration; a protocol is not its own alternate. */
  cr_expect_eq(rw_server_alternate(at.srv, &echo_proto, &lenpfx_proto, &(struct lenpfx_handlers){0}, 0),
               -EINVAL);
  cr_expect_eq(rw_server_alternate(at.srv, &echo_proto, &echo_proto, &echo_server, 0), -EINVAL);
  cr_assert_eq(rw_server_alternate(at.srv, &echo_proto, &lenpfx_proto, &alt_server, 0), 0);
  cr_expect_eq(rw_server_alternate(at.srv, &echo_proto, &lenpfx_proto, &alt_server, 0), -EINVAL,
               "one alternate per first byte");
  for (int k = 0; k < 2; k++)
    at.port[k] = rw_server_port(at.srv, (unsigned)k);
  cr_assert_eq(rw_server_run(at.srv), 0);
  rw_server_destroy(at.srv);
  tls_pair_free(dir, server, at.client);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s: %d connections pending", at.pending);
  for (int k = 0; k < ALT_CLIENTS; k++) {
    const char *what = k >= 2 ? "TLS" : "plain";
    cr_expect_eq(at.err[k], 0, "%s: connect: %s", what, strerror(-at.err[k]));
    if (k % 2)
      cr_expect(at.gotlen[k] == sizeof alt_echoed - 1 && !memcmp(at.got[k], alt_echoed, at.gotlen[k]),
                "%s: echo (first byte 'a') stays echo", what);
    else
      cr_expect(at.gotlen[k] == 6 && !memcmp(at.got[k], "framed", 6),
                "%s: a first byte 0x00 speaks lenpfx, its frame split across receives (got %zu bytes)", what,
                at.gotlen[k]);
  }
}

/* ---- cross-worker messages ---- */

struct pingpong {
  rw_server *srv;
  rw_msg m;
  int hops;
  int wrong_worker;
  pthread_t threads[2];
  bool thread_known[2];
  int from_outside;
  rw_msg outside;
};

static struct pingpong pp;

static void hop(rw_worker *to, rw_msg *m)
{
  unsigned id = rw_worker_id(to);
  if ((int)id != pp.hops % 2)
    pp.wrong_worker++;
  if (!pp.thread_known[id]) {
    pp.threads[id] = pthread_self();
    pp.thread_known[id] = true;
  } else if (!pthread_equal(pp.threads[id], pthread_self())) {
    pp.wrong_worker++;
  }
  if (++pp.hops == 2000) {
    /* The last hop runs on worker 1, like the outsider's message: no race on these. */
    if (pp.from_outside)
      rw_server_stop(pp.srv);
    return;
  }
  cr_assert_eq(rw_worker_post(to, pp.srv, id ^ 1, m), 0);
}

static void outside_msg(rw_worker *to, rw_msg *m)
{
  (void)m;
  pp.from_outside = (int)rw_worker_id(to) + 100;
  if (pp.hops == 2000)
    rw_server_stop(pp.srv);
}

static void *outsider(void *arg)
{
  (void)arg;
  rw_worker_post(NULL, pp.srv, 1, &pp.outside);
  return NULL;
}

static void pingpong_start(rw_worker *w, void *data)
{
  (void)data;
  if (rw_worker_id(w) != 0)
    return;
  arm_watchdog(w);
  pp.outside.fn = outside_msg;
  pthread_t t;
  pthread_create(&t, NULL, outsider, NULL);
  pthread_detach(t);
  pp.m.fn = hop;
  hop(w, &pp.m); /* hop 0 runs here, on worker 0 */
}

Test(msg, ping_pong_between_workers_and_from_outside)
{
  pp.srv = new_server(pingpong_start, NULL, 2);
  cr_assert_eq(rw_server_run(pp.srv), 0);
  rw_server_destroy(pp.srv);
  cr_assert(!watchdog_fired, "no stop within 20 s: %d hops, outsider %d", pp.hops, pp.from_outside);
  cr_expect_eq(pp.hops, 2000);
  cr_expect_eq(pp.wrong_worker, 0, "every message runs on its target's thread");
  cr_expect_eq(pp.from_outside, 101, "a message from a non-worker thread reaches worker 1");
}

/* ---- outbound correctness: declared protocols, client-only servers, close reasons, large
 * replies ---- */

/* A client protocol whose parser state is larger than the listener's (kvt's against echo's):
 * undeclared it is refused; declared, the pools make room for it and the application's
 * per-connection bytes behind the parser state stay its own. */
#define USER_BYTES 256

struct declare_test {
  rw_server *srv;
  int port, connect_rc, replies, pending;
  bool declare, user_intact;
};

static struct declare_test dt;

/* The user area still holds the pattern the connect callback wrote. */
static void declare_check_user(rw_conn *c)
{
  const uint8_t *u = rw_conn_user(c);
  dt.user_intact = true;
  for (size_t i = 0; i < USER_BYTES; i++)
    dt.user_intact &= u[i] == 0x5a;
}

static int declare_set(rw_conn *c, const struct kvt_set *m)
{
  (void)m;
  dt.replies++;
  declare_check_user(c);
  return 0;
}

static int declare_get(rw_conn *c, const struct kvt_get *m)
{
  (void)m;
  dt.replies++;
  declare_check_user(c);
  rw_conn_close(c);
  client_done(&dt.pending, dt.srv);
  return 0;
}

static int declare_put(rw_conn *c, const struct kvt_put *m)
{
  (void)c;
  (void)m;
  return 0;
}

static const struct kvt_handlers declare_client = {
    .get = declare_get, .set = declare_set, .put = declare_put};

static void declare_connected(rw_conn *c, int err, void *data)
{
  (void)data;
  cr_assert_eq(err, 0, "connect: %s", strerror(-err));
  memset(rw_conn_user(c), 0x5a, USER_BYTES);
  /* The echo listener sends them back: the client parses them with kvt's machine. */
  static const char lines[] = "set some-key 12345 noreply\r\nget another-key\r\n";
  cr_expect_eq(rw_conn_write(c, lines, sizeof lines - 1), 0);
}

static void declare_start(rw_worker *w, void *data)
{
  (void)data;
  char addr[64];
  arm_watchdog(w);
  dt.pending = 1;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", dt.port);
  cr_expect_eq(rw_server_use_proto(dt.srv, &kvt_proto), -EBUSY, "too late: the pools are sized");
  dt.connect_rc = rw_connect(w, addr, &kvt_proto, &declare_client, 2000, declare_connected, NULL);
  if (dt.connect_rc)
    client_done(&dt.pending, dt.srv);
}

static void run_declare(bool declare)
{
  dt = (struct declare_test){.declare = declare};
  rw_config cfg;
  rw_config_default(&cfg);
  cfg.name = "test";
  cfg.workers = 1;
  cfg.max_conns = 8;
  cfg.conn_user_size = USER_BYTES;
  cfg.on_worker_start = declare_start;
  cfg.backend = test_backend();
  cr_assert_eq(rw_server_create(&cfg, &dt.srv), 0);
  cr_assert_eq(rw_server_listen(dt.srv, "127.0.0.1:0", &echo_proto, &echo_server), 0);
  /* A framed listener too, so that there are accumulator slots for kvt's partial lines. */
  cr_assert_eq(rw_server_listen(dt.srv, "127.0.0.1:0", &lenpfx_proto, &alt_server), 0);
  if (declare)
    cr_assert_eq(rw_server_use_proto(dt.srv, &kvt_proto), 0);
  dt.port = rw_server_port(dt.srv, 0);
  cr_assert_eq(rw_server_run(dt.srv), 0);
  rw_server_destroy(dt.srv);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s");
}

Test(outbound, an_undeclared_protocol_is_refused)
{
  cr_assert_gt(kvt_proto.parser_size, echo_proto.parser_size);
  run_declare(false);
  cr_expect_eq(dt.connect_rc, -EINVAL, "rw_connect: %d", dt.connect_rc);
  /* (Had it connected, its parser would have written over the user area.) */
  cr_expect(!dt.replies || dt.user_intact, "the client's parser state overwrote its user area");
}

Test(outbound, a_declared_protocol_gets_room_for_its_parser_state)
{
  run_declare(true);
  cr_expect_eq(dt.connect_rc, 0);
  cr_expect_eq(dt.replies, 2);
  cr_expect(dt.user_intact, "the client's parser state overwrote its user area");
}

/* A peer outside the runtime: a thread per connection that does what the first byte the
 * client sends asks, so that each way a connection can end is the peer's doing. */
struct peer {
  int lfd, port, n;
  pthread_t accepter, conn[8];
};

/* What went wrong on the peer's threads (Criterion's assertions belong to the test's own). */
static atomic_int peer_failures;

static void peer_send(int fd, const void *p, size_t len)
{
  if (send(fd, p, len, MSG_NOSIGNAL) != (ssize_t)len)
    atomic_fetch_add(&peer_failures, 1);
}

/* Reads until the client closes: the peer's close then never finds unread bytes (a reset). */
static void peer_drain(int fd)
{
  char buf[4096];
  while (recv(fd, buf, sizeof buf, 0) > 0)
    ;
}

static void *peer_conn(void *arg)
{
  int fd = (int)(intptr_t)arg;
  char cmd = 0;
  if (recv(fd, &cmd, 1, 0) != 1)
    atomic_fetch_add(&peer_failures, 1);
  switch (cmd) {
  case 'c': /* a whole frame, then the peer closes: a clean close */
    peer_send(fd, "\0\0\0\3bye", 7);
    shutdown(fd, SHUT_WR);
    break;
  case 'a': /* a whole frame; the client closes */ peer_send(fd, "\0\0\0\3app", 7); break;
  case 'r': { /* a reset */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return NULL;
  }
  case 'g': /* a frame past lenpfx's 64 KiB limit: the spec closes */ peer_send(fd, "\0\x10\0\0", 4); break;
  case 'p': /* half a frame, then the peer closes */
    peer_send(fd, "\0\0\0\x10half", 8);
    shutdown(fd, SHUT_WR);
    break;
  default: /* silent: the client's idle timeout ends it */ break;
  }
  peer_drain(fd);
  close(fd);
  return NULL;
}

static void *peer_accept(void *arg)
{
  struct peer *p = arg;
  for (int i = 0; i < p->n; i++) {
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0 || pthread_create(&p->conn[i], NULL, peer_conn, (void *)(intptr_t)fd)) {
      atomic_fetch_add(&peer_failures, 1);
      p->n = i; /* (joined: only the threads that started) */
      break;
    }
  }
  return NULL;
}

static void peer_start(struct peer *p, int n)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t len = sizeof sa;
  atomic_store(&peer_failures, 0);
  p->n = n;
  p->lfd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(bind(p->lfd, (struct sockaddr *)&sa, len), 0);
  cr_assert_eq(listen(p->lfd, 16), 0);
  getsockname(p->lfd, (struct sockaddr *)&sa, &len);
  p->port = ntohs(sa.sin_port);
  cr_assert_eq(pthread_create(&p->accepter, NULL, peer_accept, p), 0);
}

static void peer_join(struct peer *p)
{
  pthread_join(p->accepter, NULL);
  for (int i = 0; i < p->n; i++)
    pthread_join(p->conn[i], NULL);
  close(p->lfd);
  cr_expect_eq(atomic_load(&peer_failures), 0, "the peer could not accept, read or send");
}

/* Each client sends one of these and hears its connection end once, for this reason. */
static const char reason_cmds[] = "capgrs";
#define REASONS (sizeof reason_cmds - 1)
static const int reason_expected[REASONS] = {0, 0, -EPIPE, -EBADMSG, -ECONNRESET, -ETIMEDOUT};

struct reason_test {
  rw_server *srv;
  struct peer peer;
  const char *cmds;     /* what client k sends: cmds[k] */
  bool stop_on_connect; /* stop the server once connected */
  int pending, connect_err[REASONS], reason[REASONS], heard[REASONS], frames[REASONS];
};

static struct reason_test rt;

static int reason_frame(rw_conn *c, const struct lenpfx_frame *m)
{
  int k = (int)(intptr_t)rw_conn_data(c);
  rt.frames[k]++;
  if (m->payload.len == 3 && !memcmp(m->payload.p, "app", 3))
    rw_conn_close(c);
  return 0;
}

static const struct lenpfx_handlers reason_client = {.frame = reason_frame};

static void reason_closed(rw_conn *c, int reason, void *data)
{
  int k = (int)(intptr_t)data;
  cr_expect_eq(rw_conn_data(c), data);
  cr_expect_eq(rw_conn_write(c, "x", 1), -EPIPE, "a closing connection takes no writes");
  rt.reason[k] = reason;
  if (rt.heard[k]++ == 0)
    client_done(&rt.pending, rt.srv);
}

static void reason_connected(rw_conn *c, int err, void *data)
{
  int k = (int)(intptr_t)data;
  rt.connect_err[k] = err;
  if (!c) {
    client_done(&rt.pending, rt.srv);
    return;
  }
  rw_conn_set_data(c, data);
  rw_conn_on_close(c, reason_closed, data);
  cr_expect_eq(rw_conn_write(c, &rt.cmds[k], 1), 0);
  if (rt.stop_on_connect)
    rw_server_stop(rt.srv);
}

/* The server has no listener: it only dials out. */
static void reason_start(rw_worker *w, void *data)
{
  (void)data;
  char addr[64];
  arm_watchdog(w);
  rt.pending = (int)strlen(rt.cmds);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", rt.peer.port);
  for (size_t k = 0; k < strlen(rt.cmds); k++)
    cr_assert_eq(
        rw_connect(w, addr, &lenpfx_proto, &reason_client, 2000, reason_connected, (void *)(intptr_t)k), 0);
}

Test(outbound, a_client_hears_why_its_connection_closed_once)
{
  rt = (struct reason_test){.cmds = reason_cmds};
  peer_start(&rt.peer, REASONS);
  rw_config cfg;
  rw_config_default(&cfg);
  cfg.name = "test";
  cfg.workers = 1;
  cfg.max_conns = 16;
  cfg.idle_timeout_ms = 400;
  cfg.on_worker_start = reason_start;
  cfg.backend = test_backend();
  cr_assert_eq(rw_server_create(&cfg, &rt.srv), 0);
  cr_assert_eq(rw_server_use_proto(rt.srv, &lenpfx_proto), 0);
  cr_assert_eq(rw_server_run(rt.srv), 0, "a server without listeners runs");
  rw_server_destroy(rt.srv);
  peer_join(&rt.peer);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s: %d clients pending", rt.pending);
  for (size_t k = 0; k < REASONS; k++) {
    cr_expect_eq(rt.connect_err[k], 0, "'%c': connect %d", reason_cmds[k], rt.connect_err[k]);
    cr_expect_eq(rt.heard[k], 1, "'%c': heard %d times", reason_cmds[k], rt.heard[k]);
    cr_expect_eq(rt.reason[k], reason_expected[k], "'%c': reason %d (%s), expected %d", reason_cmds[k],
                 rt.reason[k], strerror(-rt.reason[k]), reason_expected[k]);
  }
  cr_expect_eq(rt.frames[0], 1);
  cr_expect_eq(rt.frames[1], 1);
}

Test(outbound, a_stopping_server_tells_its_clients)
{
  rt = (struct reason_test){.cmds = "s", .stop_on_connect = true};
  peer_start(&rt.peer, 1);
  rt.srv = new_server(reason_start, NULL, 1);
  cr_assert_eq(rw_server_use_proto(rt.srv, &lenpfx_proto), 0);
  cr_assert_eq(rw_server_run(rt.srv), 0);
  rw_server_destroy(rt.srv);
  peer_join(&rt.peer);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s");
  cr_expect_eq(rt.heard[0], 1);
  cr_expect_eq(rt.reason[0], -ESHUTDOWN, "reason %d (%s)", rt.reason[0], strerror(-rt.reason[0]));
}

Test(outbound, a_server_with_nothing_to_do_is_refused)
{
  rw_config cfg;
  rw_config_default(&cfg);
  cfg.name = "test";
  cfg.workers = 1;
  cfg.backend = test_backend();
  rw_server *s;
  cr_assert_eq(rw_server_create(&cfg, &s), 0);
  cr_expect_eq(rw_server_run(s), -EINVAL);
  rw_server_destroy(s);
}

/* rw_config.batch_wait_us is checked as the CLI checks --batch-wait: up to RW_BATCH_WAIT_MAX_US. */
Test(config, batch_wait_past_its_bound_is_refused)
{
  rw_config cfg;
  rw_config_default(&cfg);
  cr_expect_eq(cfg.batch_wait_us, 20);
  rw_server *s;
  cfg.batch_wait_us = RW_BATCH_WAIT_MAX_US + 1;
  cr_expect_eq(rw_server_create(&cfg, &s), -EINVAL);
  cfg.batch_wait_us = RW_BATCH_WAIT_MAX_US;
  cr_assert_eq(rw_server_create(&cfg, &s), 0);
  rw_server_destroy(s);
}

/* A reply longer than an accumulator slot, to a client whose protocol no listener serves: it
 * moves to a large slot as a long request does, plain and over TLS. */
#define LARGE_PAYLOAD 60000

struct large_test {
  rw_server *srv;
  rw_tls *client;
  int port[2], pending, err[2];
  uint8_t frame[4 + LARGE_PAYLOAD];
  bool same[2];
};

static struct large_test lt;

static int large_frame(rw_conn *c, const struct lenpfx_frame *m)
{
  int k = (int)(intptr_t)rw_conn_data(c);
  lt.same[k] = m->payload.len == LARGE_PAYLOAD && !memcmp(m->payload.p, lt.frame + 4, LARGE_PAYLOAD);
  rw_conn_close(c);
  client_done(&lt.pending, lt.srv);
  return 0;
}

static const struct lenpfx_handlers large_client = {.frame = large_frame};

static void large_connected(rw_conn *c, int err, void *data)
{
  int k = (int)(intptr_t)data;
  lt.err[k] = err;
  if (!c) {
    client_done(&lt.pending, lt.srv);
    return;
  }
  rw_conn_set_data(c, data);
  cr_expect_eq(rw_conn_write(c, lt.frame, sizeof lt.frame), 0); /* the echo listener sends it back */
}

static void large_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  lt.pending = 2;
  dial_plain_and_tls(w, lt.port, lt.client, &lenpfx_proto, &large_client, large_connected);
}

Test(outbound, a_reply_longer_than_a_slot_uses_a_large_slot_plain_and_tls)
{
  char dir[] = "/tmp/rw-tls-XXXXXX";
  rw_tls *server;
  lt = (struct large_test){0};
  tls_pair(dir, &server, &lt.client);
  lt.frame[2] = LARGE_PAYLOAD >> 8;
  lt.frame[3] = LARGE_PAYLOAD & 0xff;
  for (size_t i = 4; i < sizeof lt.frame; i++)
    lt.frame[i] = (uint8_t)(i * 7 + (i >> 8));
  rw_config cfg;
  rw_config_default(&cfg);
  cfg.name = "test";
  cfg.workers = 1;
  cfg.max_conns = 16;
  cfg.recv_size = 4096; /* the reply arrives in many receives */
  cfg.accum_size = 4096;
  cfg.on_worker_start = large_start;
  cfg.backend = test_backend();
  cr_assert_eq(rw_server_create(&cfg, &lt.srv), 0);
  cr_assert_eq(rw_server_listen(lt.srv, "127.0.0.1:0", &echo_proto, &echo_server), 0);
  cr_assert_eq(rw_server_listen_tls(lt.srv, "127.0.0.1:0", &echo_proto, &echo_server, server), 0);
  cr_assert_eq(rw_server_use_proto(lt.srv, &lenpfx_proto), 0);
  for (int k = 0; k < 2; k++)
    lt.port[k] = rw_server_port(lt.srv, (unsigned)k);
  cr_assert_eq(rw_server_run(lt.srv), 0);
  rw_server_destroy(lt.srv);
  tls_pair_free(dir, server, lt.client);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s: %d replies pending", lt.pending);
  for (int k = 0; k < 2; k++) {
    cr_expect_eq(lt.err[k], 0, "%s: connect %d", k ? "tls" : "plain", lt.err[k]);
    cr_expect(lt.same[k], "%s: the reply differs from what was sent", k ? "tls" : "plain");
  }
}

/* The same over TLS, against a TLS listener of the runtime whose handler acts on the first
 * byte: close_notify after a whole frame is a clean close, a frame past the limit -EBADMSG. */
static const char tls_reason_cmds[] = "cg";
#define TLS_REASONS (sizeof tls_reason_cmds - 1)
static const int tls_reason_expected[TLS_REASONS] = {0, -EBADMSG};

static int tls_reason_script(rw_conn *c, const struct echo_data *m)
{
  if (m->data.len && m->data.p[0] == 'c') {
    cr_expect_eq(rw_conn_write(c, "\0\0\0\3bye", 7), 0);
    rw_conn_close(c);
  } else if (m->data.len && m->data.p[0] == 'g') {
    cr_expect_eq(rw_conn_write(c, "\0\x10\0\0", 4), 0);
  }
  return 0;
}

static const struct echo_handlers tls_reason_server = {.data = tls_reason_script};

static rw_tls *tls_reason_client;

static void tls_reason_start(rw_worker *w, void *data)
{
  (void)data;
  char addr[64];
  arm_watchdog(w);
  rt.pending = TLS_REASONS;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", rt.peer.port);
  for (size_t k = 0; k < TLS_REASONS; k++)
    cr_assert_eq(rw_connect_tls(w, addr, "localhost", tls_reason_client, &lenpfx_proto, &reason_client, 2000,
                                reason_connected, (void *)(intptr_t)k),
                 0);
}

Test(outbound, a_tls_client_hears_why_its_connection_closed_once)
{
  char dir[] = "/tmp/rw-tls-XXXXXX";
  rw_tls *server;
  rt = (struct reason_test){.cmds = tls_reason_cmds};
  tls_pair(dir, &server, &tls_reason_client);
  rt.srv = new_server(tls_reason_start, NULL, 1);
  cr_assert_eq(rw_server_listen_tls(rt.srv, "127.0.0.1:0", &echo_proto, &tls_reason_server, server), 0);
  cr_assert_eq(rw_server_use_proto(rt.srv, &lenpfx_proto), 0);
  rt.peer.port = rw_server_port(rt.srv, 0);
  cr_assert_eq(rw_server_run(rt.srv), 0);
  rw_server_destroy(rt.srv);
  tls_pair_free(dir, server, tls_reason_client);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s: %d clients pending", rt.pending);
  for (size_t k = 0; k < TLS_REASONS; k++) {
    cr_expect_eq(rt.connect_err[k], 0, "'%c': connect %d", tls_reason_cmds[k], rt.connect_err[k]);
    cr_expect_eq(rt.heard[k], 1, "'%c': heard %d times", tls_reason_cmds[k], rt.heard[k]);
    cr_expect_eq(rt.reason[k], tls_reason_expected[k], "'%c': reason %d (%s), expected %d",
                 tls_reason_cmds[k], rt.reason[k], strerror(-rt.reason[k]), tls_reason_expected[k]);
  }
  cr_expect_eq(rt.frames[0], 1);
}

/* ---- counters and histograms (stats.h) ---- */

/* A kvt server whose `get` frames the application counts as "fetch"; a client thread sends
 * known frames, an error, then quit, and reads the counters from outside the workers before
 * it stops the server. */
static const char *const stats_names[] = {"fetch"};

static struct stats_test {
  rw_server *srv;
  int port;
  rw_stats st;
  uint64_t fetch, fetch_ns, get, set, otherwise, timed;
  unsigned ncmds;
  const char *name;
} stt;

static int stats_get(rw_conn *c, const struct kvt_get *m)
{
  (void)m;
  rw_conn_count_as(c, 0);
  return rw_conn_write(c, "V\r\n", 3);
}

static int stats_set(rw_conn *c, const struct kvt_set *m)
{
  (void)m;
  return rw_conn_write(c, "S\r\n", 3);
}

static const struct kvt_handlers stats_server = {.get = stats_get, .set = stats_set, .put = declare_put};

static void *stats_client(void *arg)
{
  (void)arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)stt.port), .sin_addr.s_addr = htonl(0x7f000001)};
  static const char frames[] = "get a\r\nget b\r\nget c\r\nset k 1\r\nset k 2\r\nbogus\r\nquit\r\n";
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && write(fd, frames, sizeof frames - 1) > 0) {
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
      ; /* to EOF: quit closed it, and the close is counted before the socket goes */
  }
  close(fd);
  rw_server_stats(stt.srv, &stt.st);
  rw_server_command_totals(stt.srv, &kvt_proto, kvt_proto.ncommands, &stt.fetch, &stt.fetch_ns);
  uint64_t ns;
  rw_server_command_totals(stt.srv, &kvt_proto, 0, &stt.get, &ns);
  for (unsigned i = 0; i < kvt_proto.ncommands; i++)
    if (!strcmp(kvt_proto.command_names[i], "set"))
      rw_server_command_totals(stt.srv, &kvt_proto, i, &stt.set, &ns);
  stt.otherwise = rw_server_parse_errors(stt.srv, &kvt_proto, RW_PE_OTHERWISE);
  stt.ncmds = rw_server_ncommands(stt.srv, &kvt_proto);
  stt.name = rw_server_command_name(stt.srv, &kvt_proto, kvt_proto.ncommands);
  static rw_histogram h; /* (31 KiB: off the stack) */
  if (rw_server_command_time(stt.srv, &kvt_proto, kvt_proto.ncommands, &h) == 0)
    stt.timed = h.count;
  rw_server_stop(stt.srv);
  return NULL;
}

static void stats_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  if (rw_worker_id(w) != 0)
    return;
  pthread_t t;
  pthread_create(&t, NULL, stats_client, NULL);
  pthread_detach(t);
}

Test(stats, frames_errors_bytes_and_closes_are_counted_exactly)
{
  stt = (struct stats_test){.srv = new_server(stats_start, NULL, 2)};
  cr_assert_eq(rw_server_listen(stt.srv, "127.0.0.1:0", &kvt_proto, &stats_server), 0);
  cr_assert_eq(rw_server_command_names(stt.srv, &kvt_proto, stats_names, 1), 0);
  stt.port = rw_server_port(stt.srv, 0);
  cr_assert_eq(rw_server_run(stt.srv), 0);
  rw_server_destroy(stt.srv);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s");
  cr_expect_eq(stt.ncmds, kvt_proto.ncommands + 1);
  cr_expect_str_eq(stt.name, "fetch");
  cr_expect_eq(stt.fetch, 3, "get frames counted as the application's fetch");
  cr_expect_eq(stt.get, 0, "and not as the spec's get");
  cr_expect_eq(stt.timed, 3);
  cr_expect_gt(stt.fetch_ns, 0);
  cr_expect_eq(stt.set, 2);
  cr_expect_eq(stt.otherwise, 1);
  cr_expect_eq(stt.st.accepted, 1);
  cr_expect_eq(stt.st.closed[RW_CLOSED_LOCAL], 1, "quit: the spec closed it");
  cr_expect_eq(stt.st.open, 0);
  cr_expect_eq(stt.st.bytes_in,
               sizeof "get a\r\nget b\r\nget c\r\nset k 1\r\nset k 2\r\nbogus\r\nquit\r\n" - 1);
  cr_expect_eq(stt.st.bytes_out, 3 * 3 + 2 * 3 + sizeof "ERROR\r\nBYE\r\n" - 1);
}

/* ---- a real MQTT client against a server built from tests/specs/mqtt.rw ---- */

/* mosquitto 2.0's clients (mosquitto-clients): mosquitto_pub sends CONNECT, a QoS 1 PUBLISH and
 * DISCONNECT; mosquitto_sub sends CONNECT and SUBSCRIBE, and the server answers SUBACK and a
 * PUBLISH of 200 bytes (a remaining length of two bytes, written by mqttlen()). */
struct mqtt_test {
  rw_server *srv;
  uint16_t port;
  char topic[64], payload[64];
  unsigned qos, published, disconnects;
  int pub_rc;
  char sub_out[512];
  pthread_t client;
};
static struct mqtt_test mt;
static char mqtt_big[200];

static int mq_connect(rw_conn *c, const struct mqtt_packet *m)
{
  /* The variable header: protocol name "MQTT", level 4 (3.1.1). */
  if (m->payload.len < 7 || memcmp(m->payload.p, "\0\4MQTT\4", 7) != 0)
    return -EPROTO;
  return mqtt_reply_connack(c, 0);
}

static int mq_publish(rw_conn *c, const struct mqtt_packet *m)
{
  snprintf(mt.topic, sizeof mt.topic, "%.*s", (int)m->topic.len, (const char *)m->topic.p);
  snprintf(mt.payload, sizeof mt.payload, "%.*s", (int)m->payload.len, (const char *)m->payload.p);
  mt.qos = m->qos;
  mt.published++;
  return m->qos == 1 ? mqtt_reply_puback(c, m->id) : 0;
}

static int mq_subscribe(rw_conn *c, const struct mqtt_packet *m)
{
  /* One topic filter: its u16be length, the filter, the requested QoS. */
  if (m->payload.len < 3 || m->payload.len != 3u + (m->payload.p[0] << 8 | m->payload.p[1]))
    return -EPROTO;
  rw_span filter = {m->payload.p + 2, m->payload.len - 3};
  int rc = mqtt_reply_suback(c, m->id, 0);
  if (rc < 0)
    return rc;
  return mqtt_reply_publish(c, 2 + filter.len + sizeof mqtt_big, filter,
                            (rw_span){(const uint8_t *)mqtt_big, sizeof mqtt_big});
}

static int mq_pingreq(rw_conn *c, const struct mqtt_packet *m)
{
  (void)m;
  return mqtt_reply_pingresp(c);
}

static int mq_disconnect(rw_conn *c, const struct mqtt_packet *m)
{
  (void)c;
  (void)m;
  if (++mt.disconnects == 2)
    rw_server_stop(mt.srv);
  return -ECONNRESET; /* the client closes after DISCONNECT: so does the server */
}

static int mq_refuse(rw_conn *c, const struct mqtt_packet *m)
{
  (void)c;
  (void)m;
  return -EPROTO;
}

static int mq_refused(rw_conn *c, const struct mqtt_packet *m, int status)
{
  (void)status;
  return mq_refuse(c, m);
}

static const struct mqtt_handlers mqtt_server = {.connect = mq_connect,
                                                 .publish = mq_publish,
                                                 .puback = mq_refuse,
                                                 .pubrel = mq_refuse,
                                                 .subscribe = mq_subscribe,
                                                 .unsubscribe = mq_refuse,
                                                 .pingreq = mq_pingreq,
                                                 .disconnect = mq_disconnect,
                                                 .unknown = mq_refuse,
                                                 .refused = mq_refused};

static void *mqtt_clients(void *arg)
{
  (void)arg;
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "timeout 10 mosquitto_pub -h 127.0.0.1 -p %u -V mqttv311 -i rwpub -q 1 -t sensors/t1 -m hello",
           mt.port);
  mt.pub_rc = system(cmd);
  snprintf(cmd, sizeof cmd, "timeout 10 mosquitto_sub -h 127.0.0.1 -p %u -V mqttv311 -i rwsub -C 1 -t news",
           mt.port);
  FILE *f = popen(cmd, "r");
  if (f) {
    size_t n = fread(mt.sub_out, 1, sizeof mt.sub_out - 1, f);
    mt.sub_out[n] = 0;
    pclose(f);
  }
  return NULL;
}

static void mqtt_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
}

Test(mqtt, mosquitto_clients_publish_and_subscribe)
{
  for (size_t i = 0; i < sizeof mqtt_big; i++)
    mqtt_big[i] = (char)('a' + i % 26);
  mt = (struct mqtt_test){0};
  mt.srv = new_server(mqtt_start, NULL, 1);
  cr_assert_eq(rw_server_listen(mt.srv, "127.0.0.1:0", &mqtt_proto, &mqtt_server), 0);
  mt.port = rw_server_port(mt.srv, 0);
  cr_assert_eq(pthread_create(&mt.client, NULL, mqtt_clients, NULL), 0);
  cr_assert_eq(rw_server_run(mt.srv), 0);
  pthread_join(mt.client, NULL);
  rw_server_destroy(mt.srv);
  cr_assert(!watchdog_fired, "the test did not finish within 20 s");
  cr_expect_eq(mt.pub_rc, 0, "mosquitto_pub exited with %d (it waits for the PUBACK)", mt.pub_rc);
  cr_expect_eq(mt.published, 1);
  cr_expect_str_eq(mt.topic, "sensors/t1");
  cr_expect_str_eq(mt.payload, "hello");
  cr_expect_eq(mt.qos, 1);
  char expect[sizeof mqtt_big + 2];
  snprintf(expect, sizeof expect, "%.*s\n", (int)sizeof mqtt_big, mqtt_big);
  cr_expect_str_eq(mt.sub_out, expect, "mosquitto_sub printed what the server published");
  cr_expect_eq(mt.disconnects, 2);
}
