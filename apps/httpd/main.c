/* httpd: serves the files under --root over HTTP/1.1 (spec/http1.rw; the one handler is in
 * request.c). Everything is allocated here, before the workers start. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd.h"
#include "proxy.h"

struct httpd_config httpd;

struct opts {
  const char *root, *tls_listen[4], *access_log;
  unsigned ntls;
  uint64_t max_body, cache, cache_file_max, proxy_timeout;
};

static const char usage[] =
    "  --root DIR             serve the files under DIR (default: the current directory)\n"
    "  --max-body BYTES       largest request body accepted: streamed to a --proxy upstream, else read\n"
    "                         and discarded (default 1m); larger gets 413\n"
    "  --cache BYTES          per worker, bytes of small files kept in memory (default 16m; 0: none)\n"
    "  --cache-file-max BYTES larger files are read from disk as they are sent (default 256k)\n"
    "  --tls-listen HOST:PORT serve HTTPS here too (repeatable; needs --tls-cert, --tls-key; ALPN "
    "http/1.1)\n"
    "  --header NAME:VALUE    add this header to every response (repeatable; e.g. "
    "Strict-Transport-Security)\n"
    "  --access-log FILE      one line per response in nginx's combined format, appended to FILE;\n"
    "                         SIGHUP reopens it (log rotation)\n"
    "  --proxy PREFIX=HOST:PORT  forward requests whose path starts with PREFIX to HOST:PORT "
    "(repeatable; the longest prefix wins)\n"
    "  --proxy-timeout SECONDS   a proxied request's connect and response head (default 60): 504 "
    "past it\n";

static char extra_headers[HTTPD_HEADERS_MAX];

/* Checks NAME:VALUE (NAME a token, VALUE without control bytes) and appends "NAME: VALUE\r\n". */
static int add_header(const char *arg)
{
  static const char tchar[] = "!#$%&'*+-.^_`|~";
  const char *colon = strchr(arg, ':');
  size_t name = colon ? (size_t)(colon - arg) : 0;
  for (size_t i = 0; i < name; i++)
    if (!((arg[i] >= 'a' && arg[i] <= 'z') || (arg[i] >= 'A' && arg[i] <= 'Z') ||
          (arg[i] >= '0' && arg[i] <= '9') || strchr(tchar, arg[i])))
      name = 0;
  const char *v = colon ? colon + 1 : "";
  while (*v == ' ' || *v == '\t')
    v++;
  size_t vlen = strlen(v);
  while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  for (size_t i = 0; i < vlen; i++)
    if ((unsigned char)v[i] < 0x20 ? v[i] != '\t' : v[i] == 0x7f)
      name = 0;
  if (!name) {
    fprintf(stderr,
            "httpd: --header takes NAME:VALUE (a token, then a value without control bytes), not '%s'\n",
            arg);
    return -1;
  }
  size_t used = strlen(extra_headers);
  if (used + name + vlen + 5 > sizeof extra_headers) {
    fprintf(stderr, "httpd: --header: at most %d bytes of headers in all\n", HTTPD_HEADERS_MAX - 1);
    return -1;
  }
  snprintf(extra_headers + used, sizeof extra_headers - used, "%.*s: %.*s\r\n", (int)name, arg, (int)vlen, v);
  return 0;
}

static int parse_opt(const char *flag, const char *val, void *data)
{
  struct opts *o = data;
  uint64_t *size = !strcmp(flag, "--max-body")         ? &o->max_body
                   : !strcmp(flag, "--cache")          ? &o->cache
                   : !strcmp(flag, "--cache-file-max") ? &o->cache_file_max
                                                       : NULL;
  if (!size && strcmp(flag, "--root") && strcmp(flag, "--tls-listen") && strcmp(flag, "--header") &&
      strcmp(flag, "--access-log") && strcmp(flag, "--proxy") && strcmp(flag, "--proxy-timeout"))
    return 0;
  if (!val) {
    fprintf(stderr, "httpd: %s needs a value\n", flag);
    return -1;
  }
  if (!strcmp(flag, "--header")) {
    if (add_header(val) < 0)
      return -1;
  } else if (!strcmp(flag, "--proxy")) {
    if (httpd_proxy_add(val) < 0)
      return -1;
  } else if (!strcmp(flag, "--proxy-timeout")) {
    char *end;
    unsigned long s = strtoul(val, &end, 10);
    if (*end || !s || s > 86400) {
      fprintf(stderr, "httpd: --proxy-timeout takes seconds (1 to 86400), not '%s'\n", val);
      return -1;
    }
    o->proxy_timeout = s;
  } else if (!strcmp(flag, "--tls-listen")) {
    if (o->ntls == sizeof o->tls_listen / sizeof *o->tls_listen) {
      fprintf(stderr, "httpd: at most 4 --tls-listen addresses\n");
      return -1;
    }
    o->tls_listen[o->ntls++] = val;
  } else if (!strcmp(flag, "--access-log")) {
    o->access_log = val;
  } else if (!size) {
    o->root = val;
  } else if (rw_cli_parse_size(val, size) < 0) {
    fprintf(stderr, "httpd: %s takes a byte count (64k, 16m, ...), not '%s'\n", flag, val);
    return -1;
  }
  return 2;
}

int main(int argc, char **argv)
{
  struct opts o = {.root = ".",
                   .max_body = 1u << 20,
                   .cache = 16u << 20,
                   .cache_file_max = 256u << 10,
                   .proxy_timeout = 60};
  /* Like nginx's client_header_timeout: a connection silent for a minute is closed. */
  const rw_cli_extra extra = {.usage = usage, .parse = parse_opt, .data = &o, .idle_timeout_ms = 60000};
  rw_cli cli;
  int rc = rw_cli_parse_ext(argc, argv, "Serves the files under --root over HTTP/1.1 (spec/http1.rw).",
                            "127.0.0.1:8080", &extra, &cli);
  if (rc)
    return rc > 0 ? 0 : 2;
  httpd.root_fd = open(o.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (httpd.root_fd < 0) {
    fprintf(stderr, "httpd: --root %s: %s\n", o.root, strerror(errno));
    return 1;
  }
  httpd.max_body = o.max_body;
  httpd.headers = extra_headers;
  httpd.cache_bytes = o.cache;
  httpd.cache_file_max = o.cache_file_max < o.cache ? o.cache_file_max : o.cache;
  cli.cfg.conn_user_size = (uint32_t)(httpd_proxy_any() ? httpd_proxy_conn_size : httpd_conn_size);
  /* The log's $remote_addr and the proxy's X-Forwarded-For, on io_uring too. */
  cli.cfg.peer_names = o.access_log != NULL || httpd_proxy_any();
  static const char *const alpn[] = {"http/1.1", NULL};
  rw_tls *tls = NULL;
  if (o.ntls && rw_cli_tls(&cli, alpn, &tls) < 0)
    return 1;
  rw_server *srv;
  if (rw_cli_server(&cli, &http1_proto, &httpd_handlers, &srv) < 0 || httpd_metrics_register(srv) < 0)
    return 1;
  if (httpd_proxy_setup(srv, cli.cfg.max_conns, (uint32_t)o.proxy_timeout * 1000) < 0) {
    rw_server_destroy(srv);
    return 1;
  }
  for (unsigned i = 0; i < o.ntls; i++)
    if (rw_server_listen_tls(srv, o.tls_listen[i], &http1_proto, &httpd_handlers, tls) < 0) {
      rw_server_destroy(srv);
      return 1;
    }
  /* SIGHUP reopens the access log (logrotate), with or without one: it never stops httpd. */
  rw_server_on_hup(srv, httpd_access_log_reopen, NULL);
  if (o.access_log && (rc = httpd_access_log_open(srv, o.access_log)) < 0) {
    fprintf(stderr, "httpd: --access-log %s: %s\n", o.access_log, strerror(-rc));
    rw_server_destroy(srv);
    return 1;
  }
  httpd.workers = rw_server_workers(srv);
  struct httpd_cache **caches = calloc(httpd.workers, sizeof *caches);
  for (unsigned i = 0; caches && i < httpd.workers; i++)
    if (httpd_cache_create(httpd.cache_bytes, &caches[i]) < 0) {
      free(caches);
      caches = NULL;
    }
  if (!caches) {
    fprintf(stderr, "httpd: cannot allocate %u file caches of %llu bytes\n", httpd.workers,
            (unsigned long long)httpd.cache_bytes);
    rw_server_destroy(srv);
    return 1;
  }
  httpd_worker_init(httpd.workers, caches);
  fprintf(stderr, "httpd: serving %s; file cache %.1f MiB per worker, files up to %llu KiB\n", o.root,
          (double)httpd.cache_bytes / (1 << 20), (unsigned long long)httpd.cache_file_max >> 10);
  rc = rw_cli_run(srv);
  httpd_access_log_close();
  rw_tls_free(tls);
  return rc;
}
