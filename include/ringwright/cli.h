/* The command line every appliance shares: one parser, one usage text, one set of flags. */
#ifndef RINGWRIGHT_CLI_H
#define RINGWRIGHT_CLI_H

#include "server.h"

#define RW_CLI_MAX_LISTEN 8

typedef struct rw_cli {
  const char *listen[RW_CLI_MAX_LISTEN]; /* --listen HOST:PORT, in order given */
  unsigned nlisten;
  rw_config cfg;
} rw_cli;

/* Parses the common flags (--listen, --max-conns, --help) into `out_cli`, with defaults from
 * rw_config_default() and `default_listen` when no --listen is given. Returns 0 to go on,
 * 1 when --help was printed (exit 0), or -EINVAL after printing the error and usage to stderr
 * (exit 2). `about` is one line describing the program, shown in the usage. */
int rw_cli_parse(int argc, char **argv, const char *about, const char *default_listen,
                 rw_cli *out_cli);

/* Serves `proto` with `handlers` on every --listen address until SIGINT/SIGTERM; returns the
 * process exit status (0 after a graceful stop, 1 if it could not start or the loop failed). */
int rw_cli_serve(const rw_cli *cli, const rw_proto *proto, const void *handlers);

#endif
