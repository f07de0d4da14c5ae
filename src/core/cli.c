/* The flags every appliance takes, parsed in one place so that they mean the same everywhere. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringwright/cli.h>

/* The common flags' lines, in three parts: --listen is left out for an appliance with listen
 * flags of its own, and --idle-timeout shows the appliance's own default. */
static const char listen_usage[] =
    "  --listen HOST:PORT     address to serve on (repeatable; port 0 picks a free port)\n";
static const char common_usage[] =
    "  --backend B            auto (default: io_uring, else epoll), uring or epoll\n"
    "  --workers N            worker threads, each with its own reactor (default: one per CPU)\n"
    "  --pin                  pin worker i to CPU i\n"
    "  --max-conns N          connections open at once, all workers together; more are refused (default "
    "1024)\n";
static const char tail_usage[] =
    "  --send-zc-min BYTES    io_uring: zero-copy sends from this size (default 0: never)\n"
    "  --batch-wait USEC      under load, wait this long for more events per turn (default 20; 0: never)\n"
    "  --recv-buffers N       io_uring: provided receive buffers per worker (default: by --max-conns)\n"
    "  --tls-cert FILE        certificate chain (PEM) for TLS listeners; repeat with --tls-key for SNI\n"
    "  --tls-key FILE         its private key (PEM)\n"
    "  --metrics HOST:PORT    serve Prometheus metrics at http://HOST:PORT/metrics\n"
    "  --help                 this text\n";

static void usage(FILE *out, const char *prog, const char *about, const char *default_listen,
                  const rw_cli_extra *extra)
{
  bool own_listen = extra && extra->own_listen_flags;
  char idle[16] = "0: never";
  if (extra && extra->idle_timeout_ms)
    snprintf(idle, sizeof idle, "%u", extra->idle_timeout_ms / 1000);
  fprintf(out, "usage: %s [options]\n\n%s\n\noptions:\n%s%s%s", prog, about,
          extra && extra->usage ? extra->usage : "", own_listen ? "" : listen_usage, common_usage);
  fprintf(out, "  --idle-timeout SECONDS close connections silent this long (default %s)\n%s", idle,
          tail_usage);
  if (own_listen)
    fputs("\nSIGINT or SIGTERM stop it gracefully.\n", out);
  else
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

int rw_cli_parse_size(const char *s, uint64_t *out_bytes)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || s[0] == '-')
    return -EINVAL;
  unsigned shift = 0;
  if (*end) {
    const char *units = "kmgt";
    const char *u = strchr(units, *end | 0x20);
    if (!u || !*u)
      return -EINVAL;
    shift = 10 * (unsigned)(u - units + 1);
    end++;
    if ((*end | 0x20) == 'i')
      end++;
    if ((*end | 0x20) == 'b')
      end++;
    if (*end)
      return -EINVAL;
  }
  if (shift && v > (UINT64_MAX >> shift))
    return -ERANGE;
  *out_bytes = (uint64_t)v << shift;
  return 0;
}

static const char *prog_name(const char *argv0)
{
  const char *slash = strrchr(argv0, '/');
  return slash ? slash + 1 : argv0;
}

static int parse_backend(const char *v, enum rw_backend *out)
{
  static const struct {
    const char *name;
    enum rw_backend b;
  } names[] = {{"auto", RW_BACKEND_AUTO},
               {"uring", RW_BACKEND_URING},
               {"io_uring", RW_BACKEND_URING},
               {"epoll", RW_BACKEND_EPOLL}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!strcmp(v, names[i].name)) {
      *out = names[i].b;
      return 0;
    }
  }
  return -EINVAL;
}

/* The numeric flags: each a uint32_t field of rw_config, given in its unit times `scale`. */
static const struct {
  const char *flag, *what;
  uint32_t min, max, scale;
  size_t offset;
} numeric[] = {
    {"--workers", "a number", 1, 1024, 1, offsetof(rw_config, workers)},
    {"--max-conns", "a number", 1, 1u << 22, 1, offsetof(rw_config, max_conns)},
    {"--idle-timeout", "seconds", 0, 86400 * 7, 1000, offsetof(rw_config, idle_timeout_ms)},
    {"--send-zc-min", "a byte count", 0, UINT32_MAX, 1, offsetof(rw_config, send_zc_min)},
    {"--batch-wait", "microseconds", 0, RW_BATCH_WAIT_MAX_US, 1, offsetof(rw_config, batch_wait_us)},
    {"--recv-buffers", "a number", 1, 32768, 1, offsetof(rw_config, recv_buffers)},
};

/* One flag with a value; returns 0, or -EINVAL after printing what is wrong with it. */
static int parse_valued(rw_cli *out, const char *prog, const char *flag, const char *val)
{
  rw_config *cfg = &out->cfg;
  if (!strcmp(flag, "--listen")) {
    if (out->nlisten == RW_CLI_MAX_LISTEN) {
      fprintf(stderr, "%s: at most %d --listen addresses\n", prog, RW_CLI_MAX_LISTEN);
      return -EINVAL;
    }
    out->listen[out->nlisten++] = val;
    return 0;
  }
  if (!strcmp(flag, "--tls-cert") || !strcmp(flag, "--tls-key")) {
    bool cert = flag[6] == 'c';
    unsigned *n = cert ? &out->ntls_cert : &out->ntls_key;
    if (*n == RW_CLI_MAX_CERTS) {
      fprintf(stderr, "%s: at most %d certificates\n", prog, RW_CLI_MAX_CERTS);
      return -EINVAL;
    }
    (cert ? out->tls_cert : out->tls_key)[(*n)++] = val;
    return 0;
  }
  if (!strcmp(flag, "--metrics")) {
    cfg->metrics = val;
    return 0;
  }
  if (!strcmp(flag, "--backend")) {
    if (parse_backend(val, &cfg->backend) == 0)
      return 0;
    fprintf(stderr, "%s: --backend takes auto, uring or epoll, not '%s'\n", prog, val);
    return -EINVAL;
  }
  for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++) {
    if (strcmp(flag, numeric[i].flag))
      continue;
    uint32_t v;
    if (parse_u32(val, numeric[i].min, numeric[i].max, &v) < 0) {
      fprintf(stderr, "%s: %s needs %s from %u to %u, not '%s'\n", prog, flag, numeric[i].what,
              numeric[i].min, numeric[i].max, val);
      return -EINVAL;
    }
    *(uint32_t *)((char *)cfg + numeric[i].offset) = v * numeric[i].scale;
    return 0;
  }
  return -EINVAL; /* not reached: takes_value() admitted only known flags */
}

static bool takes_value(const char *flag)
{
  if (!strcmp(flag, "--listen") || !strcmp(flag, "--backend") || !strcmp(flag, "--tls-cert") ||
      !strcmp(flag, "--tls-key") || !strcmp(flag, "--metrics"))
    return true;
  for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++)
    if (!strcmp(flag, numeric[i].flag))
      return true;
  return false;
}

int rw_cli_parse_ext(int argc, char **argv, const char *about, const char *default_listen,
                     const rw_cli_extra *extra, rw_cli *out)
{
  const char *prog = prog_name(argc > 0 ? argv[0] : "ringwright");
  memset(out, 0, sizeof *out);
  rw_config_default(&out->cfg);
  out->cfg.name = prog;
  if (extra && extra->idle_timeout_ms)
    out->cfg.idle_timeout_ms = extra->idle_timeout_ms;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout, prog, about, default_listen, extra);
      return 1;
    }
    if (!strcmp(a, "--pin")) {
      out->cfg.pin = true;
      continue;
    }
    int used = extra && extra->parse ? extra->parse(a, val, extra->data) : 0;
    if (used < 0) {
      usage(stderr, prog, about, default_listen, extra);
      return -EINVAL;
    }
    if (used > 0) {
      i += used - 1;
      continue;
    }
    if (!takes_value(a)) {
      fprintf(stderr, "%s: unknown argument '%s'\n", prog, a);
      usage(stderr, prog, about, default_listen, extra);
      return -EINVAL;
    }
    if (!val) {
      fprintf(stderr, "%s: %s needs a value\n", prog, a);
      usage(stderr, prog, about, default_listen, extra);
      return -EINVAL;
    }
    if (parse_valued(out, prog, a, val) < 0)
      return -EINVAL;
    i++;
  }
  if (!out->nlisten && default_listen && (!extra || !extra->own_listen_flags))
    out->listen[out->nlisten++] = default_listen;
  return 0;
}

int rw_cli_parse(int argc, char **argv, const char *about, const char *default_listen, rw_cli *out)
{
  return rw_cli_parse_ext(argc, argv, about, default_listen, NULL, out);
}

int rw_cli_server(const rw_cli *cli, const rw_proto *proto, const void *handlers, rw_server **out_srv)
{
  rw_server *srv;
  int rc = rw_server_create(&cli->cfg, &srv);
  if (rc < 0) {
    fprintf(stderr, "%s: invalid configuration\n", cli->cfg.name);
    return rc;
  }
  for (unsigned i = 0; rc == 0 && i < cli->nlisten; i++)
    rc = rw_server_listen(srv, cli->listen[i], proto, handlers);
  if (rc < 0) {
    rw_server_destroy(srv);
    return rc;
  }
  *out_srv = srv;
  return 0;
}

int rw_cli_run(rw_server *srv)
{
  int rc = rw_server_run(srv);
  rw_server_destroy(srv);
  return rc < 0 ? 1 : 0;
}

int rw_cli_serve(const rw_cli *cli, const rw_proto *proto, const void *handlers)
{
  rw_server *srv;
  if (rw_cli_server(cli, proto, handlers, &srv) < 0)
    return 1;
  return rw_cli_run(srv);
}
