/* httpd: a static file server over the generated HTTP/1.1 parser (spec/http1.rw). */
#ifndef HTTPD_H
#define HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <ringwright/ringwright.h>

#include "http1.gen.h"

#define HTTPD_PATH_MAX 1024 /* a normalised path, relative to the root */

struct httpd_config {
  int root_fd; /* O_PATH directory: every open resolves beneath it */
  uint64_t max_body;
  uint64_t cache_bytes;    /* per worker */
  uint64_t cache_file_max; /* larger files stream from disk */
  unsigned workers;
};

extern struct httpd_config httpd;

/* Turns a request target into a path relative to the root: origin-form only, the query cut,
 * %XX decoded, empty and "." segments dropped, ".." applied (never above the root). A target
 * ending in '/' gets "index.html". 0, or -EINVAL (answer 400). */
int httpd_normalise(rw_span target, char out_path[HTTPD_PATH_MAX]);

/* Splits an absolute-form target ("http://host:port/path?query", RFC 9112 3.2.2) into its host
 * and its path ("/" when it has none); an origin-form target is the path as it is, and the host
 * is left alone. 0, or -EINVAL (answer 400). */
int httpd_target(rw_span target, rw_span *host, rw_span *path);

/* The Content-Type for a path, by its extension. */
const char *httpd_mime(const char *path);

/* A file as served: its bytes (cached) or its descriptor (streamed). */
struct httpd_file {
  int fd;              /* -1 when cached */
  const uint8_t *data; /* cached bytes, valid until the worker's next cache call */
  uint64_t size;
  time_t mtime;
};

/* Per-worker cache of small files, validated against the file (reopened beneath the root)
 * at most once a second. Opens `path` beneath the root: 0 with the file, -ENOENT (404),
 * -EACCES (403), or another -errno. The caller closes out->fd when it is not -1. */
struct httpd_cache;
int httpd_cache_create(uint64_t bytes, struct httpd_cache **out_cache);
int httpd_open(struct httpd_cache *cache, const char *path, int64_t now_ms, struct httpd_file *out);

/* The request handler, and the bytes of per-connection state it needs (rw_conn_user). */
extern const struct http1_handlers httpd_handlers;
extern const size_t httpd_conn_size;
/* Per-worker state the handler needs: its cache. Set up before the loops start. */
void httpd_worker_init(unsigned nworkers, struct httpd_cache **caches);

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), 29 bytes and a NUL. */
void httpd_format_date(time_t t, char out[30]);
/* The same parsed; -1 if it is not one. */
time_t httpd_parse_date(rw_span s);

#endif
