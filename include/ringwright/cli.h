/* The command line every appliance shares: one parser, one usage text, one set of flags. */
#ifndef RINGWRIGHT_CLI_H
#define RINGWRIGHT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RW_CLI_MAX_LISTEN 8
#define RW_CLI_MAX_CERTS 8

struct rw_tls;

typedef struct rw_cli {
  const char *listen[RW_CLI_MAX_LISTEN]; /* --listen HOST:PORT, in order given */
  unsigned nlisten;
  const char *tls_cert[RW_CLI_MAX_CERTS], *tls_key[RW_CLI_MAX_CERTS]; /* --tls-cert/--tls-key pairs */
  unsigned ntls_cert, ntls_key;
  rw_config cfg;
} rw_cli;

/* An appliance's own flags, parsed alongside the common ones. `parse` sees every argument
 * first: it returns how many it consumed (1 for a switch, 2 for a flag and its value; `val` is
 * NULL when there is none), 0 when the flag is not its own, or -1 after printing an error. */
typedef struct rw_cli_extra {
  const char *usage; /* lines for the options section, each "  --flag ...  meaning\n" */
  int (*parse)(const char *flag, const char *val, void *data);
  void *data;
  bool own_listen_flags;    /* the appliance names its addresses with flags of its own (kvd --resp,
                            --memcache): --listen is not in its usage and no default is added
                            (given anyway, it is in nlisten for the appliance to refuse) */
  uint32_t idle_timeout_ms; /* the appliance's default for --idle-timeout, shown in the usage (0:
                               the library's, none) */
} rw_cli_extra;

/* Parses the common flags (--listen, --backend, --workers, --pin, --max-conns, --idle-timeout,
 * --metrics (into cfg.metrics), --help) into `out_cli`, with defaults from rw_config_default() and `default_listen` when no
 * --listen is given. Returns 0 to go on, 1 when --help was printed (exit 0), or -EINVAL after
 * printing the error and usage to stderr (exit 2). `about` is shown in the usage. */
int rw_cli_parse(int argc, char **argv, const char *about, const char *default_listen, rw_cli *out_cli);
/* The same with an appliance's own flags. */
int rw_cli_parse_ext(int argc, char **argv, const char *about, const char *default_listen,
                     const rw_cli_extra *extra, rw_cli *out_cli);

/* The server TLS context from --tls-cert/--tls-key (pairs in order; the first is the default,
 * the others chosen by SNI) offering `alpn` (NULL-terminated, may be NULL). 0, or -EINVAL after
 * printing why (no certificate given, unpaired flags, a file that does not load). Part of
 * libringwright-tls (pkg-config ringwright-tls), like the contexts in tls.h. */
int rw_cli_tls(const rw_cli *cli, const char *const *alpn, struct rw_tls **out_tls);

/* A byte count as flags take it: digits, optionally followed by k, m, g or t (powers of 1024,
 * "64m", "64MiB", "64MB" alike). 0, -EINVAL or -ERANGE. */
int rw_cli_parse_size(const char *s, uint64_t *out_bytes);

/* Serves `proto` with `handlers` on every --listen address until SIGINT/SIGTERM; returns the
 * process exit status (0 after a graceful stop, 1 if it could not start or the loop failed).
 * The same in two steps, for appliances that add listeners of their own in between: */
int rw_cli_serve(const rw_cli *cli, const rw_proto *proto, const void *handlers);
/* Creates the server from the flags and listens on every --listen address; 0 or -errno. */
int rw_cli_server(const rw_cli *cli, const rw_proto *proto, const void *handlers, rw_server **out_srv);
/* Runs and destroys `srv`; returns the process exit status. */
int rw_cli_run(rw_server *srv);

#ifdef __cplusplus
}
#endif

#endif
