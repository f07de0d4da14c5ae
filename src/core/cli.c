/* The flags every appliance takes, parsed in one place so that they mean the same everywhere. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringwright/cli.h>

static const char common_usage[] =
    "  --listen HOST:PORT   address to serve on (repeatable; port 0 picks a free port)\n"
    "  --max-conns N        connection table size; connections past it are refused (default 1024)\n"
    "  --help               this text\n";

static void usage(FILE *out, const char *prog, const char *about, const char *default_listen)
{
  fprintf(out, "usage: %s [--listen HOST:PORT] [--max-conns N]\n\n%s\n\noptions:\n%s", prog, about,
          common_usage);
  fprintf(out, "\nWith no --listen it serves on %s. SIGINT or SIGTERM stop it gracefully.\n",
          default_listen);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
    return -EINVAL;
  *out = (uint32_t)v;
  return 0;
}

static const char *prog_name(const char *argv0)
{
  const char *slash = strrchr(argv0, '/');
  return slash ? slash + 1 : argv0;
}

int rw_cli_parse(int argc, char **argv, const char *about, const char *default_listen,
                 rw_cli *out)
{
  const char *prog = prog_name(argc > 0 ? argv[0] : "ringwright");
  memset(out, 0, sizeof *out);
  rw_config_default(&out->cfg);
  out->cfg.name = prog;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout, prog, about, default_listen);
      return 1;
    }
    bool is_listen = !strcmp(a, "--listen"), is_max = !strcmp(a, "--max-conns");
    if (!is_listen && !is_max) {
      fprintf(stderr, "%s: unknown argument '%s'\n", prog, a);
      usage(stderr, prog, about, default_listen);
      return -EINVAL;
    }
    if (!val) {
      fprintf(stderr, "%s: %s needs a value\n", prog, a);
      usage(stderr, prog, about, default_listen);
      return -EINVAL;
    }
    i++;
    if (is_listen) {
      if (out->nlisten == RW_CLI_MAX_LISTEN) {
        fprintf(stderr, "%s: at most %d --listen addresses\n", prog, RW_CLI_MAX_LISTEN);
        return -EINVAL;
      }
      out->listen[out->nlisten++] = val;
    } else if (parse_u32(val, 1, 1u << 22, &out->cfg.max_conns) < 0) {
      fprintf(stderr, "%s: --max-conns needs a number from 1 to %u, not '%s'\n", prog, 1u << 22,
              val);
      return -EINVAL;
    }
  }
  if (!out->nlisten)
    out->listen[out->nlisten++] = default_listen;
  return 0;
}

int rw_cli_serve(const rw_cli *cli, const rw_proto *proto, const void *handlers)
{
  rw_server *srv;
  if (rw_server_create(&cli->cfg, &srv) < 0) {
    fprintf(stderr, "%s: invalid configuration\n", cli->cfg.name);
    return 1;
  }
  int rc = 0;
  for (unsigned i = 0; rc == 0 && i < cli->nlisten; i++)
    rc = rw_server_listen(srv, cli->listen[i], proto, handlers);
  if (rc == 0)
    rc = rw_server_run(srv);
  rw_server_destroy(srv);
  return rc < 0 ? 1 : 0;
}
