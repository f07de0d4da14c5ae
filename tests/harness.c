#include "harness.h"

#include "backend.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void server_drain_log(struct server *s)
{
  fcntl(s->errfd, F_SETFL, O_NONBLOCK);
  size_t len = strlen(s->log);
  for (;;) {
    if (len + 1 >= sizeof s->log)
      return;
    ssize_t n = read(s->errfd, s->log + len, sizeof s->log - 1 - len);
    if (n <= 0)
      return;
    len += (size_t)n;
    s->log[len] = 0;
  }
}

void server_start(struct server *s, const char *prog, const char *const *args)
{
  const char *dir = getenv("RW_BIN") ? getenv("RW_BIN") : "build/asan/bin";
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, prog);
  server_start_bin(s, path, args, NULL);
}

void server_start_bin(struct server *s, const char *path, const char *const *args,
                      const struct start_opts *opts)
{
  const char *argv[42];
  int argc = 0;
  if (opts && opts->deny_io_uring)
    argv[argc++] = "build/tests/deny_uring";
  argv[argc++] = path;
  argv[argc++] = "--listen";
  argv[argc++] = "127.0.0.1:0";
  const char *backend = getenv("RW_BACKEND");
  skip_without_uring();
  if (backend && *backend) {
    argv[argc++] = "--backend";
    argv[argc++] = backend;
  }
  for (; args && *args && argc < 39; args++)
    argv[argc++] = *args;
  argv[argc] = NULL;
  int pipefd[2];
  cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
  memset(s, 0, sizeof *s);
  s->pid = fork();
  cr_assert(s->pid >= 0);
  if (s->pid == 0) {
    /* A test that fails mid-way must not leave its server running (and holding pipes). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(pipefd[1], 2);
    if (opts && opts->preload)
      setenv("LD_PRELOAD", opts->preload, 1);
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
    _exit(127);
  }
  close(pipefd[1]);
  s->errfd = pipefd[0];
  const char *at = server_wait_log(s, "listening on 127.0.0.1:", 10000);
  s->port = atoi(at + strlen("listening on 127.0.0.1:"));
  /* The worker threads are up once the budget line is out. */
  server_wait_log(s, "memory budget", 10000);
}

const char *server_wait_log(struct server *s, const char *needle, int ms)
{
  int64_t deadline = now_ms() + ms;
  const char *at;
  while (!(at = strstr(s->log, needle)) || !strchr(at, '\n')) {
    struct pollfd pfd = {.fd = s->errfd, .events = POLLIN};
    int left = (int)(deadline - now_ms());
    cr_assert(left > 0 && poll(&pfd, 1, left) > 0, "no \"%s\" from the server: %s", needle, s->log);
    size_t len = strlen(s->log);
    cr_assert(len + 1 < sizeof s->log, "server log full");
    ssize_t n = read(s->errfd, s->log + len, sizeof s->log - 1 - len);
    cr_assert(n > 0, "server exited: %s", s->log);
    s->log[len + (size_t)n] = 0;
  }
  return at;
}

int server_stop(struct server *s, int sig)
{
  int st;
  if (sig)
    kill(s->pid, sig);
  for (int i = 0; i < 2000; i++) {
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
      server_drain_log(s);
      close(s->errfd);
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    usleep(10000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &st, 0);
  server_drain_log(s);
  cr_assert_fail("server did not exit within 20 s of signal %d; log:\n%s", sig, s->log);
  return -1;
}

int tcp_connect(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void set_nonblock(int fd)
{
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int tcp_connect_nb(int port)
{
  int fd = tcp_connect(port);
  set_nonblock(fd);
  return fd;
}

void write_all(int fd, const void *p, size_t n)
{
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      poll(&pfd, 1, 1000);
      continue;
    }
    cr_assert(w > 0, "write: %s", strerror(errno));
    c += w;
    n -= (size_t)w;
  }
}

size_t read_n(int fd, void *p, size_t n, int ms)
{
  char *c = p;
  size_t got = 0;
  int64_t deadline = now_ms() + ms;
  while (got < n) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int left = (int)(deadline - now_ms());
    cr_assert(left > 0 && poll(&pfd, 1, left) > 0, "timed out after %zu of %zu bytes", got, n);
    ssize_t r = read(fd, c + got, n - got);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  return got;
}

int wait_closed(int fd, int ms)
{
  char buf[4096];
  int64_t deadline = now_ms() + ms;
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int left = (int)(deadline - now_ms());
    if (left <= 0 || poll(&pfd, 1, left) <= 0)
      return 0;
    ssize_t r = read(fd, buf, sizeof buf);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
      return 1;
  }
}

uint64_t rng_next(uint64_t *s)
{
  /* xorshift64*: reproducible from the seed printed by the test */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

int run_status(const char *cmd)
{
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
