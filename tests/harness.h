/* End-to-end test harness: start a built server on an ephemeral port, talk to it over real
 * sockets, stop it with a signal and collect its exit status. */
#ifndef RW_TEST_HARNESS_H
#define RW_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct server {
  pid_t pid;
  int port;
  int errfd; /* the server's stderr, after the lines read while starting */
  char log[65536];
};

/* Starts $RW_BIN/<prog> (default build/asan/bin) with "--listen 127.0.0.1:0" and `args`
 * (NULL-terminated), and waits for its "listening on" line. */
void server_start(struct server *s, const char *prog, const char *const *args);
struct start_opts {
  const char *preload; /* LD_PRELOAD for the server */
  bool deny_io_uring;  /* a seccomp filter makes io_uring_setup fail with EPERM */
};

/* The same for a binary at `path`. $RW_BACKEND, when set, is passed as --backend to every
 * server the tests start (before `args`, which may override it). */
void server_start_bin(struct server *s, const char *path, const char *const *args,
                      const struct start_opts *opts);
/* Waits until the server's log contains `needle` (and the rest of that line); returns it. */
const char *server_wait_log(struct server *s, const char *needle, int ms);
/* Sends `sig`, waits for exit; returns the exit status (128+N if killed by signal N). */
int server_stop(struct server *s, int sig);
/* Reads what the server printed since start into s->log (non-blocking). */
void server_drain_log(struct server *s);

int tcp_connect(int port);
int tcp_connect_nb(int port);
void set_nonblock(int fd);
void write_all(int fd, const void *p, size_t n);
/* Reads exactly n bytes, or fewer at EOF; returns how many. Fails the test after `ms`. */
size_t read_n(int fd, void *p, size_t n, int ms);
/* True if the peer closes (EOF or reset) within `ms`, ignoring any data before it. */
int wait_closed(int fd, int ms);
uint64_t rng_next(uint64_t *state);
int run_status(const char *cmd);

#endif
