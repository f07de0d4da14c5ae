/* Off-loop work through the public API, in-process, on the backend $RW_BACKEND names: file
 * operations (and O_DIRECT through the worker's aligned buffers), blocking tasks and their
 * bounded queue, name resolution with its deadline, rw_connect() to a host name, and the two
 * ways an application holds a connection back (rw_conn_cork, a handler's -EAGAIN). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ringwright/ringwright.h>

#include "backend.h"
#include "echo.gen.h"
#include "kvt.gen.h"
#include "watchdog.h"

static void config(rw_config *cfg, void (*start)(rw_worker *, void *))
{
  rw_config_default(cfg);
  cfg->name = "test";
  cfg->workers = 1;
  cfg->max_conns = 16;
  cfg->backend = test_backend();
  cfg->on_worker_start = start;
}

/* Runs a one-worker server (listening on `listen`, echo) until a callback stops it. */
static int run_server(rw_config *cfg, const char *listen, const struct echo_handlers *h, rw_server **out_srv)
{
  rw_server *s;
  cr_assert_eq(rw_server_create(cfg, &s), 0);
  cr_assert_eq(rw_server_listen(s, listen, &echo_proto, h), 0);
  *out_srv = s;
  return rw_server_port(s, 0);
}

static int echo_back(rw_conn *c, const struct echo_data *m)
{
  return rw_conn_write(c, m->data.p, m->data.len);
}
static const struct echo_handlers echo_server = {.data = echo_back};

/* ---- files: a chain of operations, each started from the previous one's completion ---- */

static struct {
  rw_worker *w;
  pthread_t loop;
  rw_fileop op;
  char dir[256], sub[300], f[320], g[320];
  int fd, step;
  int64_t res[16];
  bool wrong_thread;
  struct statx stx;
  char buf[64];
  struct iovec iov[2];
} ft;

static void file_step(rw_fileop *op, int64_t res);

static void file_next(void)
{
  rw_worker *w = ft.w;
  rw_fileop *op = &ft.op;
  int rc = 0;
  switch (ft.step) {
  case 0: rc = rw_file_mkdir(w, op, ft.sub, 0755, file_step); break;
  case 1: rc = rw_file_open(w, op, ft.f, O_CREAT | O_WRONLY | O_APPEND | O_TRUNC, 0644, file_step); break;
  case 2: rc = rw_file_write(w, op, ft.fd, "hello ", 6, RW_FILE_POS, file_step); break;
  case 3: /* "world", gathered from two pieces, at the end (O_APPEND) */
    ft.iov[0] = (struct iovec){(void *)"wo", 2};
    ft.iov[1] = (struct iovec){(void *)"rld", 3};
    rc = rw_file_writev(w, op, ft.fd, ft.iov, 2, RW_FILE_POS, file_step);
    break;
  case 4: rc = rw_file_fsync(w, op, ft.fd, false, file_step); break;
  case 5: rc = rw_file_fsync(w, op, ft.fd, true, file_step); break;
  case 6: rc = rw_file_close(w, op, ft.fd, file_step); break;
  case 7: rc = rw_file_stat(w, op, ft.f, &ft.stx, file_step); break;
  case 8: rc = rw_file_rename(w, op, ft.f, ft.g, file_step); break;
  case 9: rc = rw_file_open(w, op, ft.g, O_RDONLY, 0, file_step); break;
  case 10: rc = rw_file_read(w, op, ft.fd, ft.buf, sizeof ft.buf, 0, file_step); break;
  case 11: /* "world" at offset 6, scattered over two buffers */
    ft.iov[0] = (struct iovec){ft.buf + 32, 3};
    ft.iov[1] = (struct iovec){ft.buf + 48, 8};
    rc = rw_file_readv(w, op, ft.fd, ft.iov, 2, 6, file_step);
    break;
  case 12: rc = rw_file_close(w, op, ft.fd, file_step); break;
  case 13: rc = rw_file_unlink(w, op, ft.g, file_step); break;
  case 14: rc = rw_file_stat(w, op, ft.g, &ft.stx, file_step); break;
  default: rw_server_stop(rw_worker_server(w)); return;
  }
  cr_assert_eq(rc, 0, "step %d: %s", ft.step, strerror(-rc));
}

static void file_step(rw_fileop *op, int64_t res)
{
  (void)op;
  ft.wrong_thread |= !pthread_equal(pthread_self(), ft.loop);
  ft.res[ft.step] = res;
  if (ft.step == 1 || ft.step == 9)
    ft.fd = (int)res;
  if (ft.step == 7)
    cr_expect_eq(ft.stx.stx_size, 11, "stat after the writes");
  ft.step++;
  file_next();
}

static void files_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  ft.w = w;
  ft.loop = pthread_self();
  cr_expect_eq(rw_file_read(w, &ft.op, 0, NULL, 1, 0, file_step), -EINVAL);
  file_next();
}

static void make_dir(char *out, size_t len)
{
  snprintf(out, len, "build/tmp/offload.XXXXXX");
  mkdir("build/tmp", 0755);
  cr_assert_not_null(mkdtemp(out));
}

Test(file, operations_complete_on_the_worker_in_order)
{
  make_dir(ft.dir, sizeof ft.dir);
  snprintf(ft.sub, sizeof ft.sub, "%s/sub", ft.dir);
  snprintf(ft.f, sizeof ft.f, "%s/f", ft.sub);
  snprintf(ft.g, sizeof ft.g, "%s/g", ft.sub);
  rw_config cfg;
  config(&cfg, files_start);
  rw_server *s;
  run_server(&cfg, "127.0.0.1:0", &echo_server, &s);
  cr_assert_eq(rw_server_run(s), 0);
  rw_server_destroy(s);
  cr_assert(!watchdog_fired, "stuck at step %d", ft.step);
  cr_expect(!ft.wrong_thread, "a completion ran off the worker's thread");
  cr_expect_eq(ft.res[0], 0, "mkdir");
  cr_expect_geq(ft.res[1], 0, "open");
  cr_expect_eq(ft.res[2], 6);
  cr_expect_eq(ft.res[3], 5, "writev");
  cr_expect_eq(ft.res[4], 0, "fsync");
  cr_expect_eq(ft.res[5], 0, "fdatasync");
  cr_expect_eq(ft.res[6], 0, "close");
  cr_expect_eq(ft.res[7], 0, "stat");
  cr_expect_eq(ft.res[8], 0, "rename");
  cr_expect_eq(ft.res[10], 11, "read");
  cr_expect_eq(memcmp(ft.buf, "hello world", 11), 0);
  cr_expect_eq(ft.res[11], 5, "readv at an offset");
  cr_expect_eq(memcmp(ft.buf + 32, "wor", 3), 0);
  cr_expect_eq(memcmp(ft.buf + 48, "ld", 2), 0);
  cr_expect_eq(ft.res[13], 0, "unlink");
  cr_expect_eq(ft.res[14], -ENOENT, "stat after unlink");
  rmdir(ft.sub);
  rmdir(ft.dir);
}

/* ---- O_DIRECT through the worker's aligned buffers ---- */

static struct {
  rw_worker *w;
  rw_fileop op;
  char path[320];
  int fd, step;
  uint8_t *a, *b;
  int64_t res[8];
  bool third_null, aligned, same;
} dt;

static void dio_step(rw_fileop *op, int64_t res);

static void dio_next(void)
{
  rw_worker *w = dt.w;
  int rc = 0;
  switch (dt.step) {
  case 0: rc = rw_file_open(w, &dt.op, dt.path, O_CREAT | O_RDWR | O_DIRECT, 0644, dio_step); break;
  case 1: rc = rw_file_write(w, &dt.op, dt.fd, dt.a, 8192, 0, dio_step); break;
  case 2: rc = rw_file_read(w, &dt.op, dt.fd, dt.b, 4096, 4096, dio_step); break;
  case 3: rc = rw_file_close(w, &dt.op, dt.fd, dio_step); break;
  default:
    dt.same = !memcmp(dt.b, dt.a + 4096, 4096); /* the pool is unmapped once the server stops */
    rw_file_dio_put(w, dt.a);
    rw_file_dio_put(w, dt.b);
    cr_expect_not_null(rw_file_dio_get(w), "a buffer put back is there again");
    rw_server_stop(rw_worker_server(w));
    return;
  }
  cr_assert_eq(rc, 0);
}

static void dio_step(rw_fileop *op, int64_t res)
{
  (void)op;
  dt.res[dt.step] = res;
  if (dt.step == 0)
    dt.fd = (int)res;
  dt.step++;
  dio_next();
}

static void dio_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  dt.w = w;
  cr_expect_eq(rw_file_dio_size(w), 65536);
  dt.a = rw_file_dio_get(w);
  dt.b = rw_file_dio_get(w);
  dt.third_null = rw_file_dio_get(w) == NULL;
  dt.aligned = dt.a && dt.b && !((uintptr_t)dt.a % 4096) && !((uintptr_t)dt.b % 4096);
  cr_assert(dt.a && dt.b);
  for (int i = 0; i < 8192; i++)
    dt.a[i] = (uint8_t)(i * 7 + i / 4096);
  dio_next();
}

Test(file, o_direct_with_aligned_buffers_from_the_pool)
{
  char dir[256];
  make_dir(dir, sizeof dir);
  snprintf(dt.path, sizeof dt.path, "%s/direct", dir);
  rw_config cfg;
  config(&cfg, dio_start);
  cfg.dio_buffers = 2;
  rw_server *s;
  run_server(&cfg, "127.0.0.1:0", &echo_server, &s);
  cr_assert_eq(rw_server_run(s), 0);
  rw_server_destroy(s);
  cr_assert(!watchdog_fired);
  cr_expect(dt.third_null, "the pool holds two buffers");
  cr_expect(dt.aligned);
  cr_expect_geq(dt.res[0], 0, "open O_DIRECT: %s", strerror((int)-dt.res[0]));
  cr_expect_eq(dt.res[1], 8192);
  cr_expect_eq(dt.res[2], 4096);
  cr_expect(dt.same, "read back what was written");
  unlink(dt.path);
  rmdir(dir);
}

/* ---- tasks: off the loop, back on it, and a bounded queue ---- */

static struct {
  rw_server *srv;
  rw_task t[5];
  int val[5];
  pthread_t loop;
  sem_t started, release;
  int done, ran_on_loop, done_off_loop;
  int rc[5];
} tk;

static void task_run(rw_task *t)
{
  tk.ran_on_loop += pthread_equal(pthread_self(), tk.loop);
  if (t == &tk.t[0]) {
    sem_post(&tk.started);
    sem_wait(&tk.release);
  }
  *(int *)t->data *= 2;
}

static void release_first(rw_timer *t)
{
  (void)t;
  sem_post(&tk.release);
}

static void task_done(rw_task *t)
{
  (void)t;
  tk.done_off_loop += !pthread_equal(pthread_self(), tk.loop);
  if (++tk.done == 3)
    rw_server_stop(tk.srv);
}

static rw_timer release_timer;

static void tasks_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  tk.loop = pthread_self();
  tk.srv = rw_worker_server(w);
  for (int i = 0; i < 5; i++) {
    tk.val[i] = i + 1;
    tk.t[i].data = &tk.val[i];
  }
  cr_expect_eq(rw_task_submit(w, &tk.t[0], NULL, task_done), -EINVAL);
  /* The one pool thread takes the first task and blocks in it; two more fill the queue
   * (task_queue 2); the fourth is refused at once. */
  tk.rc[0] = rw_task_submit(w, &tk.t[0], task_run, task_done);
  sem_wait(&tk.started);
  tk.rc[1] = rw_task_submit(w, &tk.t[1], task_run, task_done);
  tk.rc[2] = rw_task_submit(w, &tk.t[2], task_run, task_done);
  tk.rc[3] = rw_task_submit(w, &tk.t[3], task_run, task_done);
  /* The loop is not blocked meanwhile: a timer releases the first task. */
  rw_timer_init(&release_timer, release_first, NULL);
  rw_timer_arm(w, &release_timer, 50);
}

Test(task, runs_off_the_loop_completes_on_it_queue_bounded)
{
  sem_init(&tk.started, 0, 0);
  sem_init(&tk.release, 0, 0);
  rw_config cfg;
  config(&cfg, tasks_start);
  cfg.pool_threads = 1;
  cfg.task_queue = 2;
  rw_server *s;
  run_server(&cfg, "127.0.0.1:0", &echo_server, &s);
  cr_assert_eq(rw_server_run(s), 0);
  rw_server_destroy(s);
  cr_assert(!watchdog_fired, "%d tasks done", tk.done);
  cr_expect_eq(tk.rc[0], 0);
  cr_expect_eq(tk.rc[1], 0);
  cr_expect_eq(tk.rc[2], 0);
  cr_expect_eq(tk.rc[3], -EAGAIN, "a full queue refuses: %d", tk.rc[3]);
  cr_expect_eq(tk.done, 3);
  cr_expect_eq(tk.ran_on_loop, 0, "run() ran on the worker's thread");
  cr_expect_eq(tk.done_off_loop, 0, "done() ran off the worker's thread");
  cr_expect_eq(tk.val[0], 2);
  cr_expect_eq(tk.val[1], 4);
  cr_expect_eq(tk.val[2], 6);
  cr_expect_eq(tk.val[3], 4, "the refused task never ran");
}

/* ---- name resolution: an answer, a deadline, a late answer dropped, a dial by name ---- */

static struct {
  rw_server *srv;
  rw_worker *w;
  rw_task blocker;
  rw_dns q1, q2, q3;
  int q1_calls, q1_err, q2_err, q3_calls;
  struct sockaddr_storage q2_addr;
  char hostport[64];
  int connected_err;
  char got[8];
  size_t gotlen;
  uint16_t port;
} dn;

static void blocker_run(rw_task *t)
{
  (void)t;
  sem_wait(&tk.release);
}

static void blocker_done(rw_task *t)
{
  (void)t;
}

static int client_data(rw_conn *c, const struct echo_data *m)
{
  memcpy(dn.got + dn.gotlen, m->data.p, m->data.len);
  dn.gotlen += m->data.len;
  if (dn.gotlen >= 5) {
    rw_conn_close(c);
    rw_server_stop(dn.srv);
  }
  return 0;
}
static const struct echo_handlers client_side = {.data = client_data};

static void connected(rw_conn *c, int err, void *data)
{
  (void)data;
  dn.connected_err = err;
  if (err) {
    rw_server_stop(dn.srv);
    return;
  }
  rw_conn_write(c, "hello", 5);
}

static void q2_done(rw_dns *q, int err)
{
  dn.q2_err = err;
  dn.q2_addr = q->addr;
  /* The name again, this time to connect to our own listener. */
  int rc = rw_connect(dn.w, dn.hostport, &echo_proto, &client_side, 2000, connected, NULL);
  cr_assert_eq(rc, 0, "rw_connect by name: %s", strerror(-rc));
}

static void q3_done(rw_dns *q, int err)
{
  (void)q;
  (void)err;
  dn.q3_calls++;
}

static void q1_done(rw_dns *q, int err)
{
  (void)q;
  dn.q1_calls++;
  dn.q1_err = err;
  /* The pool thread is free again once the blocker returns; the late answer for q1 must go
   * nowhere, and q1 itself is reusable at once. */
  sem_post(&tk.release);
  cr_assert_eq(rw_resolve(dn.w, &dn.q2, "localhost", 4242, 2000, q2_done), 0);
}

static void dns_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  dn.w = w;
  dn.srv = rw_worker_server(w);
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  cr_expect_eq(rw_resolve(w, &dn.q1, longname, 80, 1000, q1_done), -EINVAL);
  /* The only pool thread is busy: the lookup cannot finish before its deadline. */
  cr_assert_eq(rw_task_submit(w, &dn.blocker, blocker_run, blocker_done), 0);
  cr_assert_eq(rw_resolve(w, &dn.q1, "localhost", 80, 100, q1_done), 0);
  /* A cancelled lookup never calls back, neither by its deadline nor by its answer. */
  cr_assert_eq(rw_resolve(w, &dn.q3, "localhost", 80, 50, q3_done), 0);
  rw_resolve_cancel(&dn.q3);
}

Test(dns, answers_times_out_and_connects_by_name)
{
  sem_init(&tk.release, 0, 0);
  /* Listen where "localhost" resolves first (127.0.0.1 or ::1, as the system orders them). */
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *ai;
  cr_assert_eq(getaddrinfo("localhost", "0", &hints, &ai), 0);
  char listen[80];
  cr_assert_eq(getnameinfo(ai->ai_addr, ai->ai_addrlen, listen + 1, 64, NULL, 0, NI_NUMERICHOST), 0);
  bool v6 = ai->ai_family == AF_INET6;
  freeaddrinfo(ai);
  char spec[96];
  if (v6)
    snprintf(spec, sizeof spec, "[%s]:0", listen + 1);
  else
    snprintf(spec, sizeof spec, "%s:0", listen + 1);
  rw_config cfg;
  config(&cfg, dns_start);
  cfg.pool_threads = 1;
  rw_server *s;
  int port = run_server(&cfg, spec, &echo_server, &s);
  snprintf(dn.hostport, sizeof dn.hostport, "localhost:%d", port);
  cr_assert_eq(rw_server_run(s), 0);
  rw_server_destroy(s);
  cr_assert(!watchdog_fired);
  cr_expect_eq(dn.q1_calls, 1, "a timed-out lookup calls back once");
  cr_expect_eq(dn.q1_err, -ETIMEDOUT);
  cr_expect_eq(dn.q3_calls, 0, "a cancelled lookup called back");
  cr_expect_eq(dn.q2_err, 0, "localhost: %s", strerror(-dn.q2_err));
  int fam = dn.q2_addr.ss_family;
  cr_expect(fam == AF_INET || fam == AF_INET6);
  uint16_t p = fam == AF_INET ? ((struct sockaddr_in *)&dn.q2_addr)->sin_port
                              : ((struct sockaddr_in6 *)&dn.q2_addr)->sin6_port;
  cr_expect_eq(ntohs(p), 4242);
  cr_expect_eq(dn.connected_err, 0, "connect: %s", strerror(-dn.connected_err));
  cr_expect_eq(dn.gotlen, 5);
  cr_expect_eq(memcmp(dn.got, "hello", 5), 0);
}

/* ---- holding a connection back: cork, and a handler's -EAGAIN ---- */

static struct {
  rw_timer uncork, resume;
  rw_handle h;
  rw_worker *w;
  int calls;
  char seen[8][16];
} hb;

static void do_uncork(rw_timer *t)
{
  rw_conn *c = rw_conn_from_handle(hb.w, hb.h);
  (void)t;
  if (c)
    rw_conn_uncork(c);
}

static void do_resume(rw_timer *t)
{
  rw_conn *c = rw_conn_from_handle(hb.w, hb.h);
  (void)t;
  if (c)
    rw_conn_resume(c);
}

/* "c...": the reply is corked for 200 ms. */
static int corking_echo(rw_conn *c, const struct echo_data *m)
{
  hb.w = rw_conn_worker(c);
  hb.h = rw_conn_handle(c);
  rw_conn_cork(c);
  rw_timer_init(&hb.uncork, do_uncork, NULL);
  rw_timer_arm(hb.w, &hb.uncork, 200);
  return rw_conn_write(c, m->data.p, m->data.len);
}
static const struct echo_handlers corking = {.data = corking_echo};

/* kvt's get: the first delivery of "get waited" is refused with -EAGAIN and the connection
 * resumed 200 ms later; every get answers its key. */
static int waiting_get(rw_conn *c, const struct kvt_get *m)
{
  hb.w = rw_conn_worker(c);
  hb.h = rw_conn_handle(c);
  if (hb.calls < 8)
    snprintf(hb.seen[hb.calls++], sizeof hb.seen[0], "%.*s", (int)m->key.len, (const char *)m->key.p);
  if (hb.calls == 1) {
    rw_timer_init(&hb.resume, do_resume, NULL);
    rw_timer_arm(hb.w, &hb.resume, 200);
    return -EAGAIN;
  }
  const struct iovec iov[2] = {{(void *)m->key.p, m->key.len}, {"\r\n", 2}};
  return rw_conn_writev(c, iov, 2);
}
static int unused_set(rw_conn *c, const struct kvt_set *m)
{
  (void)m;
  return rw_conn_write(c, "ERROR\r\n", 7);
}
static int unused_put(rw_conn *c, const struct kvt_put *m)
{
  (void)m;
  return rw_conn_write(c, "ERROR\r\n", 7);
}
static const struct kvt_handlers waiting = {.get = waiting_get, .set = unused_set, .put = unused_put};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct hold_client {
  int port, kvt_port;
  double cork_wait, again_wait;
  char cork_got[8], again_got[16];
  rw_server *srv;
};

/* Runs `s` until `client` (on a thread of its own, with `arg`) stops it, then destroys it. */
static void serve_client(rw_server *s, void *(*client)(void *), void *arg)
{
  pthread_t th;
  pthread_create(&th, NULL, client, arg);
  cr_assert_eq(rw_server_run(s), 0);
  pthread_join(th, NULL);
  rw_server_destroy(s);
}

static void exchange(int port, const char *msg, size_t want, char *out, double *out_wait)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(0x7f000001)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  double t0 = now_s();
  cr_assert_eq(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
  size_t got = 0;
  while (got < want) {
    ssize_t n = read(fd, out + got, want - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  *out_wait = now_s() - t0;
  close(fd);
}

static void *hold_client_main(void *arg)
{
  struct hold_client *hc = arg;
  exchange(hc->port, "corked", 6, hc->cork_got, &hc->cork_wait);
  exchange(hc->kvt_port, "get waited\r\nget after\r\n", 15, hc->again_got, &hc->again_wait);
  rw_server_stop(hc->srv);
  return NULL;
}

Test(conn, cork_holds_replies_and_eagain_redelivers_the_frame)
{
  rw_config cfg;
  config(&cfg, NULL);
  rw_server *s;
  struct hold_client hc = {0};
  hc.port = run_server(&cfg, "127.0.0.1:0", &corking, &s);
  cr_assert_eq(rw_server_listen(s, "127.0.0.1:0", &kvt_proto, &waiting), 0);
  hc.kvt_port = rw_server_port(s, 1);
  hc.srv = s;
  serve_client(s, hold_client_main, &hc);
  cr_expect_str_eq(hc.cork_got, "corked");
  cr_expect_geq(hc.cork_wait, 0.19, "the corked reply left after %.3f s", hc.cork_wait);
  cr_expect_str_eq(hc.again_got, "waited\r\nafter\r\n", "replies in order: %s", hc.again_got);
  cr_expect_geq(hc.again_wait, 0.19, "the refused frame was answered after %.3f s", hc.again_wait);
  cr_expect_eq(hb.calls, 3, "dispatches: %d", hb.calls);
  cr_expect_str_eq(hb.seen[0], "waited");
  cr_expect_str_eq(hb.seen[1], "waited", "the same frame is dispatched again");
  cr_expect_str_eq(hb.seen[2], "after", "the next frame waits its turn");
}

/* ---- a handler that started a stream and returns -EAGAIN: dispatched again after it ---- */

#define ST_LEN 300000
static struct {
  int dispatches;
  size_t sent;
  bool continued;
  rw_server *srv;
  int port;
} st;

static int st_more(rw_conn *c, void *data, size_t room)
{
  (void)data;
  if (!room)
    return 0;
  static char xs[65536];
  memset(xs, 'x', sizeof xs);
  size_t n = ST_LEN - st.sent < room ? ST_LEN - st.sent : room;
  n = n < sizeof xs ? n : sizeof xs;
  int rc = rw_conn_write(c, xs, n);
  st.sent += n;
  return rc < 0 ? rc : st.sent < ST_LEN;
}

static int st_get(rw_conn *c, const struct kvt_get *m)
{
  st.dispatches++;
  if (m->key.len == 5 && !memcmp(m->key.p, "multi", 5)) {
    if (st.continued)
      return rw_conn_write(c, ":B\r\n", 4);
    st.continued = true;
    int rc = rw_conn_write(c, "A:", 2);
    rw_conn_stream(c, st_more, NULL);
    return rc < 0 ? rc : -EAGAIN; /* the rest of the reply after the stream */
  }
  const struct iovec iov[2] = {{(void *)m->key.p, m->key.len}, {"\r\n", 2}};
  return rw_conn_writev(c, iov, 2);
}
static const struct kvt_handlers streaming = {.get = st_get, .set = unused_set, .put = unused_put};

static void *st_client(void *arg)
{
  (void)arg;
  static char out[ST_LEN + 64];
  double wait;
  exchange(st.port, "get multi\r\nget after\r\n", ST_LEN + 2 + 4 + 7, out, &wait);
  bool ok = !memcmp(out, "A:", 2) && !memcmp(out + 2 + ST_LEN, ":B\r\nafter\r\n", 11);
  for (size_t i = 2; ok && i < 2 + ST_LEN; i++)
    ok = out[i] == 'x';
  st.continued = ok; /* (read by the test after the server stopped) */
  rw_server_stop(st.srv);
  return NULL;
}

/* A server of the kvt test protocol with `h`, `peek` (may be NULL) looking ahead; its port. */
static int kvt_server(const struct kvt_handlers *h, rw_peek_fn peek, rw_server **out_srv)
{
  rw_config cfg;
  config(&cfg, NULL);
  cr_assert_eq(rw_server_create(&cfg, out_srv), 0);
  cr_assert_eq(rw_server_listen(*out_srv, "127.0.0.1:0", &kvt_proto, h), 0);
  if (peek)
    cr_assert_eq(rw_server_peek(*out_srv, &kvt_proto, peek), 0);
  return rw_server_port(*out_srv, 0);
}

Test(conn, a_stream_then_eagain_dispatches_the_frame_again_when_it_is_done)
{
  rw_server *s;
  st.port = kvt_server(&streaming, NULL, &s);
  st.srv = s;
  serve_client(s, st_client, NULL);
  cr_expect(st.continued, "A:, the streamed bytes, :B, then the next reply, in that order");
  cr_expect_eq(st.dispatches, 3, "multi twice (the second after the stream), then after: %d", st.dispatches);
}

/* ---- rw_server_peek: a pipeline's messages seen before any is dispatched ---- */

static struct {
  char log[512];
  rw_server *srv;
  int port;
} pk;

static void pk_note(const char *what, rw_span key)
{
  size_t n = strlen(pk.log);
  snprintf(pk.log + n, sizeof pk.log - n, "%s%.*s ", what, (int)key.len, (const char *)key.p);
}

static void pk_peek(rw_conn *c, int cmd, const void *msg)
{
  (void)c;
  if (cmd < 0)
    pk_note("end", (rw_span){0});
  else if (cmd == KVT_CMD_GET)
    pk_note("p:", ((const struct kvt_get *)msg)->key);
  else
    pk_note("other", (rw_span){0});
}

static int pk_get(rw_conn *c, const struct kvt_get *m)
{
  pk_note("d:", m->key);
  const struct iovec iov[2] = {{(void *)m->key.p, m->key.len}, {"\r\n", 2}};
  return rw_conn_writev(c, iov, 2);
}
static const struct kvt_handlers peeking = {.get = pk_get, .set = unused_set, .put = unused_put};

static void *pk_client(void *arg)
{
  (void)arg;
  char out[64];
  double wait;
  /* Three in one write (one receive), then one alone, then a pipeline cut mid-frame. */
  exchange(pk.port, "get a\r\nget b\r\nget c\r\n", 9, out, &wait);
  exchange(pk.port, "get d\r\n", 3, out, &wait);
  exchange(pk.port, "get e\r\nget f\r\nget g", 6, out, &wait); /* g never completes */
  rw_server_stop(pk.srv);
  return NULL;
}

Test(conn, peek_sees_a_pipeline_before_it_is_dispatched)
{
  rw_server *s;
  pk.port = kvt_server(&peeking, pk_peek, &s);
  pk.srv = s;
  serve_client(s, pk_client, NULL);
  /* Each whole message ahead, in order, then the end mark, then the dispatches; a lone message
   * is not looked ahead; an incomplete frame is neither. */
  cr_expect_str_eq(pk.log, "p:a p:b p:c end d:a d:b d:c d:d p:e p:f end d:e d:f ");
}

/* ---- rw_conn_inspect: input seen before it is parsed, and refused there ---- */

static struct {
  char log[256];
  bool refused_bytes_outside; /* rw_conn_refused_bytes() gave bytes outside a parse error */
  int closed, reasons[2];     /* the connections' close reasons, in order */
  rw_server *srv;
  int port;
} ins;

/* Logs what it sees (CRLF as '|'); answers a frame that starts "get bad" itself and closes. */
static void in_look(rw_conn *c, const uint8_t *p, size_t n)
{
  size_t len, at = strlen(ins.log);
  ins.refused_bytes_outside |= rw_conn_refused_bytes(c, &len) != NULL || len;
  for (size_t i = 0; i < n && at + 2 < sizeof ins.log; i++)
    if (p[i] != '\r')
      ins.log[at++] = p[i] == '\n' ? '|' : (char)p[i];
  ins.log[at++] = ' ';
  ins.log[at] = 0;
  if (n >= 7 && !memcmp(p, "get bad", 7)) {
    rw_conn_write(c, "NO\r\n", 4);
    rw_conn_close(c);
  }
}

static void in_closed(rw_conn *c, int reason, void *data)
{
  (void)c, (void)data;
  ins.reasons[ins.closed++ & 1] = reason;
}

static void in_accept(rw_conn *c, const rw_proto *proto, void *data)
{
  (void)proto, (void)data;
  rw_conn_inspect(c, in_look);
  rw_conn_on_close(c, in_closed, NULL);
}

static void *in_client(void *arg)
{
  (void)arg;
  char out[64] = {0};
  double wait;
  exchange(ins.port, "get a\r\nget b\r\n", 6, out, &wait);
  cr_expect(!memcmp(out, "a\r\nb\r\n", 6));
  memset(out, 0, sizeof out);
  exchange(ins.port, "get c\r\nget bad\r\nget d\r\n", 63, out, &wait); /* (reads to the close) */
  cr_expect_str_eq(out, "c\r\nNO\r\n");
  rw_server_stop(ins.srv);
  return NULL;
}

Test(conn, inspect_sees_each_frame_before_its_parse_and_may_refuse_it)
{
  rw_config cfg;
  config(&cfg, NULL);
  cfg.on_accept = in_accept;
  rw_server *s;
  cr_assert_eq(rw_server_create(&cfg, &s), 0);
  cr_assert_eq(rw_server_listen(s, "127.0.0.1:0", &kvt_proto, &peeking), 0);
  ins.port = rw_server_port(s, 0);
  ins.srv = s;
  serve_client(s, in_client, NULL);
  /* Every frame from its first byte on, before it is parsed; after the refusal nothing more is
   * parsed ("get d" is neither seen nor answered). */
  cr_expect_str_eq(ins.log, "get a|get b| get b| get c|get bad|get d| get bad|get d| ");
  cr_expect(!ins.refused_bytes_outside);
  cr_expect_eq(ins.closed, 2);
  /* One for refused input; the other closed by its client between frames (or by the stop, had
   * its end not been read yet), in either order. */
  int a = ins.reasons[0], b = ins.reasons[1], other = a == -EBADMSG ? b : a;
  cr_expect((a == -EBADMSG || b == -EBADMSG) && (other == 0 || other == -ESHUTDOWN), "close reasons %d, %d",
            a, b);
}

/* ---- child processes: stdio as connections, exit status as an event ---- */

static struct {
  rw_server *srv;
  rw_worker *w;
  rw_proc talker, sleeper;
  char out[64], err[64];
  size_t outlen, errlen;
  int talker_status, sleeper_status, exits;
  int missing_rc, kill_rc, undeclared_rc;
  bool pidfds; /* the children are watched through pidfds (else the worker polls for exits) */
} sp;

static void spawn_maybe_stop(void)
{
  if (sp.exits == 2 && strstr(sp.out, "got hello\n") && strstr(sp.err, "err\n"))
    rw_server_stop(sp.srv);
}

static int child_output(rw_conn *c, const struct echo_data *m)
{
  rw_handle h = rw_conn_handle(c);
  bool is_err = h.idx == sp.talker.err.idx && h.gen == sp.talker.err.gen;
  char *buf = is_err ? sp.err : sp.out;
  size_t *len = is_err ? &sp.errlen : &sp.outlen;
  size_t n = m->data.len < 63 - *len ? m->data.len : 63 - *len;
  memcpy(buf + *len, m->data.p, n);
  *len += n;
  buf[*len] = 0;
  spawn_maybe_stop();
  return 0;
}
static const struct echo_handlers child_side = {.data = child_output};

static void on_child_exit(rw_proc *p, int status)
{
  if (p == &sp.talker)
    sp.talker_status = status;
  else
    sp.sleeper_status = status;
  sp.exits++;
  spawn_maybe_stop();
}

static void spawn_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  sp.w = w;
  sp.srv = rw_worker_server(w);
  char *talker[] = {"sh", "-c", "echo out; echo err >&2; read x; echo \"got $x\"; exit 3", NULL};
  cr_assert_eq(rw_spawn(w, &sp.talker, talker, &echo_proto, &child_side, on_child_exit), 0);
  rw_conn *in = rw_conn_from_handle(w, sp.talker.io);
  cr_assert_not_null(in);
  cr_expect_eq(rw_conn_write(in, "hello\n", 6), 0, "its stdin is the same connection");
  char *sleeper[] = {"sleep", "30", NULL};
  cr_assert_eq(rw_spawn(w, &sp.sleeper, sleeper, &echo_proto, &child_side, on_child_exit), 0);
  sp.pidfds = sp.talker.pidfd >= 0 && sp.sleeper.pidfd >= 0;
  sp.kill_rc = rw_proc_kill(&sp.sleeper, SIGTERM);
  char *missing[] = {"rw-no-such-program", NULL};
  rw_proc nope;
  sp.missing_rc = rw_spawn(w, &nope, missing, &echo_proto, &child_side, on_child_exit);
  /* No listener serves kvt and it was not declared: its parser state would not fit the slots. */
  sp.undeclared_rc = rw_spawn(w, &nope, talker, &kvt_proto, &waiting, on_child_exit);
}

static void spawn_test(void)
{
  rw_config cfg;
  config(&cfg, spawn_start);
  rw_server *s;
  run_server(&cfg, "127.0.0.1:0", &echo_server, &s);
  cr_assert_eq(rw_server_run(s), 0);
  rw_server_destroy(s);
  cr_assert(!watchdog_fired, "exits %d, out '%s', err '%s'", sp.exits, sp.out, sp.err);
  cr_expect_str_eq(sp.out, "out\ngot hello\n");
  cr_expect_str_eq(sp.err, "err\n");
  cr_expect(WIFEXITED(sp.talker_status) && WEXITSTATUS(sp.talker_status) == 3, "status %#x",
            sp.talker_status);
  cr_expect_eq(sp.kill_rc, 0);
  cr_expect(WIFSIGNALED(sp.sleeper_status) && WTERMSIG(sp.sleeper_status) == SIGTERM, "status %#x",
            sp.sleeper_status);
  cr_expect_eq(sp.missing_rc, -ENOENT);
  cr_expect_eq(sp.undeclared_rc, -EINVAL);
}

Test(spawn, stdio_as_connections_and_exit_status_as_an_event)
{
  spawn_test();
  cr_expect(sp.pidfds);
}

/* A kernel before pidfds (pidfd_open failing with ENOSYS, injected): the worker polls for each
 * child's exit and reaps it; the same events, the same statuses. */
Test(spawn, without_pidfds_the_worker_polls_for_the_exit)
{
  setenv("RW_FAULTS", "pidfd=ENOSYS/1", 1);
  spawn_test();
  cr_expect(!sp.pidfds);
}

/* ---- log files: lines in batches off the loop, dropped and counted when both halves are
 * taken, reopened by name on SIGHUP ---- */

static struct {
  char dir[64], path[96], moved[96];
  rw_logfile *lf;
  rw_timer t;
  int step;
  unsigned before, after; /* lines read back from the moved file and the new one */
  bool hup_on_worker0;
} lt;

/* The file's lines, read back (test code: a blocking read on the worker is fine here). */
static unsigned count_lines(const char *path)
{
  char buf[8192];
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  unsigned lines = 0;
  for (ssize_t i = 0; i < n; i++)
    lines += buf[i] == '\n';
  return lines;
}

static void log_line(rw_worker *w, char ch, size_t len)
{
  char *p = rw_logfile_reserve(lt.lf, w, len);
  if (!p)
    return;
  memset(p, ch, len - 1);
  p[len - 1] = '\n';
  rw_logfile_commit(lt.lf, w, len);
}

static void on_hup(rw_worker *w, void *data)
{
  (void)data;
  lt.hup_on_worker0 = rw_worker_id(w) == 0;
  rw_logfile_reopen(lt.lf, w);
}

/* Each step runs 200 ms after the last: long enough for a batch's write (50 ms after its first
 * line) to have landed. */
static void log_step(rw_timer *t)
{
  rw_worker *w = t->data;
  switch (lt.step++) {
  case 0:
    for (int i = 0; i < 10; i++)
      log_line(w, 'a', 8);
    log_line(w, 'x', 300); /* longer than a half (256): dropped */
    break;
  case 1:
    lt.before = count_lines(lt.path);
    rename(lt.path, lt.moved); /* as logrotate does; then the signal */
    kill(getpid(), SIGHUP);
    break;
  case 2:
    for (int i = 0; i < 3; i++)
      log_line(w, 'b', 8);
    break;
  case 3:
    /* Within one callback no write can complete: two lines fill a half, the next two the
     * other while the first is written, and the six after find both taken. */
    for (int i = 0; i < 10; i++)
      log_line(w, 'c', 100);
    break;
  default:
    lt.after = count_lines(lt.path);
    rw_server_stop(rw_worker_server(w));
    return;
  }
  rw_timer_arm(w, t, 200);
}

static void log_start(rw_worker *w, void *data)
{
  (void)data;
  arm_watchdog(w);
  rw_timer_init(&lt.t, log_step, w);
  rw_timer_arm(w, &lt.t, 10);
}

Test(logfile, batches_drops_counted_reopened_on_sighup)
{
  make_dir(lt.dir, sizeof lt.dir);
  snprintf(lt.path, sizeof lt.path, "%s/access.log", lt.dir);
  snprintf(lt.moved, sizeof lt.moved, "%s/access.log.1", lt.dir);
  rw_config cfg;
  config(&cfg, log_start);
  rw_server *s;
  run_server(&cfg, "127.0.0.1:0", &echo_server, &s);
  cr_assert_eq(rw_logfile_open(s, lt.path, 256, &lt.lf), 0);
  cr_expect_eq(rw_server_on_hup(s, NULL, NULL), -EINVAL);
  cr_assert_eq(rw_server_on_hup(s, on_hup, NULL), 0);
  cr_assert_eq(rw_server_run(s), 0);
  rw_server_destroy(s);
  cr_assert(!watchdog_fired, "stuck at step %d", lt.step);
  cr_expect(lt.hup_on_worker0, "SIGHUP's handler ran on worker 0");
  cr_expect_eq(lt.before, 10);
  cr_expect_eq(count_lines(lt.moved), 10, "lines before the reopen stay in the moved file");
  cr_expect_eq(lt.after, 3 + 4, "the new file: 3 lines, then the 4 that found room");
  rw_logfile_drain(lt.lf);
  cr_expect_eq(rw_logfile_written(lt.lf), 17);
  cr_expect_eq(rw_logfile_dropped(lt.lf), 1 + 6);
  rw_logfile_close(lt.lf);
  unlink(lt.path);
  unlink(lt.moved);
  rmdir(lt.dir);
}
