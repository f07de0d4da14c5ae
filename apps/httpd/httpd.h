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
  const char *headers; /* --header lines, each ending in \r\n ("" when none) */
};

extern struct httpd_config httpd;

/* Turns a request target into a path relative to the root: origin-form only, the query cut,
 * %XX decoded, empty and "." segments dropped, ".." applied (never above the root). A target
 * ending in '/' gets "index.html". 0, or -EINVAL (answer 400). */
int httpd_normalise(rw_span target, char out_path[HTTPD_PATH_MAX]);

/* Optional whitespace between the parts of a field value (RFC 9110 5.6.3). */
static inline bool httpd_ows(uint8_t ch)
{
  return ch == ' ' || ch == '\t';
}
/* A request body's length: its pieces' (a chunked body's chunks) in one walk (rw_list_at per
 * piece walks from the start each time: 80,000 one-byte chunks took a worker 54 s). */
static inline uint64_t httpd_body_len(const rw_list *body)
{
  uint64_t n = 0;
  rw_list_iter it;
  rw_span piece;
  rw_list_iter_init(body, &it);
  while (!rw_list_next(body, &it, &piece))
    n += piece.len;
  return n;
}
/* Does a Connection field (any of them) list `token` (case-insensitively, among its
 * comma-separated tokens)? The request's keep-alive and close, and the hop-by-hop fields a
 * proxy drops (proxy.c). */
bool httpd_connection_lists(const rw_list *fields, rw_span token);
/* Splits an absolute-form target ("http://host:port/path?query", RFC 9112 3.2.2) into its host
 * and its path ("/" when it has none); an origin-form target is the path as it is, and the host
 * is left alone. 0, or -EINVAL (answer 400). */
int httpd_target(rw_span target, rw_span *host, rw_span *path);

/* The Content-Type for a path, by its extension. */
const char *httpd_mime(const char *path);

/* Where a percent-encoded copy of a path (for a Location) fits: every byte may take three. */
#define HTTPD_LOCATION_MAX (3 * HTTPD_PATH_MAX + 2)
/* Writes "/path/" percent-encoded where a URI needs it into out; returns its length. */
size_t httpd_dir_location(const char *path, char out[HTTPD_LOCATION_MAX]);

/* What tells one version of a file from another: the ETag and Last-Modified come from it. */
struct httpd_identity {
  uint64_t dev, ino;
  time_t mtime;
  uint32_t mtime_ns;
};

/* A file as served: its bytes (cached) or its descriptor (streamed). */
struct httpd_file {
  int fd;              /* -1 when cached */
  const uint8_t *data; /* cached bytes, valid until the worker's next cache call */
  uint64_t size;
  struct httpd_identity id;
};

/* Per-worker cache of small files, validated against the file (reopened beneath the root)
 * at most once a second. Opens `path` beneath the root: 0 with the file, -ENOENT (404),
 * -EISDIR (a directory), -EACCES (403), or another -errno. With `remember_absent`, a missing
 * file is remembered as missing for the same second. The caller closes out->fd when it is not
 * -1. */
struct httpd_cache;
int httpd_cache_create(uint64_t bytes, struct httpd_cache **out_cache);
int httpd_open(struct httpd_cache *cache, const char *path, int64_t now_ms, bool remember_absent,
               struct httpd_file *out);

/* The strong entity tag of a file version, quotes included. */
#define HTTPD_ETAG_MAX 72
void httpd_etag(const struct httpd_identity *id, uint64_t size, char out[HTTPD_ETAG_MAX]);

/* RFC 9110 13.2.2's preconditions for a GET or HEAD of a file with `etag` and `mtime`, in its
 * order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since. */
enum httpd_precondition { HTTPD_SERVE, HTTPD_NOT_MODIFIED, HTTPD_PRECONDITION_FAILED };
enum httpd_precondition httpd_preconditions(const rw_list *headers, const char *etag, time_t mtime,
                                            time_t now);
/* Whether a Range applies: no If-Range, or one naming this version (strongly). */
bool httpd_if_range(const rw_list *headers, const char *etag, time_t mtime);

/* The byte ranges of a Range header, satisfiable ones only, in the order asked. */
#define HTTPD_RANGES_MAX 16
struct httpd_range {
  uint64_t off, len;
};
struct httpd_ranges {
  unsigned count;
  struct httpd_range r[HTTPD_RANGES_MAX];
};
/* Parses `value` against a representation of `size` bytes: 1 with the ranges to send, 0 when
 * the whole representation is sent instead (no valid "bytes=" set, more than HTTPD_RANGES_MAX,
 * more bytes asked than the file holds, or an empty file), -ERANGE when none is satisfiable (416). */
int httpd_parse_ranges(rw_span value, uint64_t size, struct httpd_ranges *out);
/* The decimal number at v.p[*i] into *out, *i moved past it; false if there is none or it
 * overflows 64 bits. */
bool httpd_number(rw_span v, size_t *i, uint64_t *out);

/* Precompressed siblings, in the order preferred at equal q: ".br" then ".gz". */
enum httpd_coding { HTTPD_IDENTITY, HTTPD_BR, HTTPD_GZIP, HTTPD_CODINGS };
extern const char *const httpd_coding_suffix[HTTPD_CODINGS];
extern const char *const httpd_coding_name[HTTPD_CODINGS];
/* The q-value (0 to 1000) an Accept-Encoding value gives a coding: listed, else "*", else 0
 * (identity: 1, acceptable but preferred to no listed coding, RFC 9110 12.5.3). */
unsigned httpd_coding_q(rw_span accept, enum httpd_coding coding);

/* The request handler, and the bytes of per-connection state it needs (rw_conn_user). */
extern const struct http1_handlers httpd_handlers;
extern const size_t httpd_conn_size;
/* Per-worker state the handler needs: its cache. Set up before the loops start. */
void httpd_worker_init(unsigned nworkers, struct httpd_cache **caches);

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), 29 bytes and a NUL. */
void httpd_format_date(time_t t, char out[30]);
/* An HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime); -1 if it is none. */
time_t httpd_parse_date(rw_span s);

/* A response's head (request.c): the status line and headers, the file's validators among them. */
struct httpd_response {
  int status;
  const char *reason;
  const char *type;          /* NULL: no Content-Type */
  uint64_t length;           /* Content-Length */
  const char *extra;         /* more header lines, each ending in \r\n */
  time_t mtime;              /* 0: no Last-Modified */
  const char *etag;          /* NULL: none */
  const char *encoding;      /* Content-Encoding; NULL: none */
  const char *content_range; /* "bytes a-b/len" or "bytes * /len"; NULL: none */
  bool ranges;               /* Accept-Ranges: bytes */
  bool vary;                 /* Vary: Accept-Encoding */
  bool keep_alive, http10;
  bool close_later;     /* !keep_alive, but the request's body is read first (on_end closes) */
  int proxy_route;      /* a --proxy route's index + 1 (proxy.h); 0: none */
  rw_span proxy_target; /* the target as the upstream gets it: origin-form */
};
/* The head fits HTTPD_HEAD_MAX bytes with every --header and an `extra` of HTTPD_EXTRA_MAX (a
 * Location with a query from a request line of at most 8 KiB). */
#define HTTPD_HEADERS_MAX 2048
#define HTTPD_EXTRA_MAX (HTTPD_LOCATION_MAX + 8192 + 16)
#define HTTPD_HEAD_MAX (1024 + HTTPD_HEADERS_MAX + HTTPD_EXTRA_MAX)
size_t httpd_format_head(const struct httpd_response *r, char *out, size_t cap);
/* Whether the connection closes once `r` is sent: not kept alive, and no body of the request
 * left to read first (a client still sending it would get a reset, and might lose `r`). */
static inline bool httpd_closes_now(const struct httpd_response *r)
{
  return !r->keep_alive && !r->close_later;
}
/* Counts a response by its status class (request.c), for httpd_responses_total at /metrics. */
void httpd_count(rw_conn *c, int status);
int httpd_metrics_register(rw_server *srv);
/* An error or bodiless status with a short text body (none for HEAD or 304). */
int httpd_reply_status(rw_conn *c, struct httpd_response *r, bool head);
/* Serves `path` (serve.c): the file, a range of it, 304, 412, 416, 301 for a directory, or an
 * error status. `target` is the request's, for the redirect's query. */
int httpd_serve(rw_conn *c, struct httpd_response *r, const char *path, rw_span target,
                const rw_list *headers, bool head, bool get);
/* Per connection (rw_conn_user): the file being streamed, and what is left of a multipart. */
struct httpd_stream {
  int fd;
  bool close_after;
  unsigned next, count; /* the next range to send, of count */
  uint64_t size;
  const char *type;
  char boundary[24];
  struct httpd_range r[HTTPD_RANGES_MAX];
};

/* All of a connection's state (rw_conn_user): the stream first, then the peer's address as the
 * access log writes it ("" until its first line). */
struct httpd_conn {
  struct httpd_stream stream;
  char peer[46];     /* INET6_ADDRSTRLEN */
  bool in_request;   /* a request's head was taken and its end not yet */
  bool proxied;      /* its body goes up (proxy.c) */
  bool close_at_end; /* answered with a close: once its body is read */
  uint64_t body;     /* its body bytes read so far */
};

/* The peer's address ("-" when it cannot be had), looked up on the connection's first request
 * and kept with it (struct httpd_conn): the access log's $remote_addr, the proxy's
 * X-Forwarded-For. */
const char *httpd_remote_addr(rw_conn *c);

/* The access log (access_log.c, --access-log): nginx's combined format, one line per response,
 * written off the loop; a line that finds the worker's buffer full is dropped and counted. */
int httpd_access_log_open(rw_server *srv, const char *path);
/* The line for the response `r` to `m` (NULL: a request refused before it was parsed). */
void httpd_access_log(rw_conn *c, const struct http1_request *m, const struct httpd_response *r, bool head);
/* A request's fields as its line needs them, kept past its head for a response that ends
 * after its body was read (a proxied upload): escaped, a request line and referer or
 * user-agent too long for it cut short with "...". */
struct httpd_log_kept {
  uint16_t request, len; /* text[0..request): "$request"; then "$http_referer\" \"$http_user_agent" */
  bool head;
  char text[1024];
};
void httpd_access_log_keep(const struct http1_request *m, struct httpd_log_kept *k);
void httpd_access_log_kept(rw_conn *c, const struct httpd_log_kept *k, const struct httpd_response *r);
/* rw_server_on_hup's handler: reopens the log by its name. */
void httpd_access_log_reopen(rw_worker *w, void *data);
/* Lines dropped so far, all workers together (any thread). */
uint64_t httpd_access_log_dropped(void);
/* After the server has stopped: writes what is left, says how many lines were written and
 * dropped, and closes the file. */
void httpd_access_log_close(void);

#endif
