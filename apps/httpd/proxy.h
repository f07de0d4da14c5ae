/* httpd as a reverse proxy (proxy.c): --proxy PREFIX=HOST:PORT routes, and the reader of the
 * upstream's responses (response.c) that the proxy's upstream connections run. */
#ifndef HTTPD_PROXY_H
#define HTTPD_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include <ringwright/ringwright.h>

#include "http1.gen.h"

/* ---- the upstream's responses (response.c) ----
 * A protocol descriptor like a generated one: a response's head is one message (status, fields,
 * how its body is framed), its body follows as pieces handed on as they arrive (never the whole
 * body at once), and a chunked body's end (after its trailers) is one more. Strict like
 * spec/http1.rw: a malformed status line or field, Content-Length with Transfer-Encoding, two
 * lengths, a coding other than chunked or a bad chunk size is an error: the connection closes
 * with -EBADMSG. The client tells the parser that it asked with HEAD (whose reply has no body)
 * before it sends the request: httpd_response_expect(). */
enum httpd_framing {
  HTTPD_BODY_NONE,    /* 1xx, 204, 304, a reply to HEAD, Content-Length: 0 */
  HTTPD_BODY_LENGTH,  /* Content-Length bytes */
  HTTPD_BODY_CHUNKED, /* chunked: pieces, then the end message */
  HTTPD_BODY_CLOSE,   /* until the upstream closes */
};

struct httpd_response_head {
  int status;
  uint8_t major, minor;
  rw_span reason;
  rw_list fields;
  enum httpd_framing framing;
  uint64_t length; /* HTTPD_BODY_LENGTH */
};

struct httpd_response_handlers {
  int (*head)(rw_conn *c, const struct httpd_response_head *h);
  /* `last`: the piece ends a Content-Length body. */
  int (*body)(rw_conn *c, rw_span piece, bool last);
  int (*end)(rw_conn *c); /* a chunked body's end, trailers read and dropped */
};

#define HTTPD_RESPONSE_FIELDS_MAX (64u << 10) /* status line and fields, and trailers */
extern const rw_proto httpd_response_proto;
/* The next response on upstream connection `c` answers a HEAD (`head`) or not. */
void httpd_response_expect(rw_conn *c, bool head);
/* The same on a parser state of httpd_response_proto.parser_size bytes (tests). */
void httpd_response_expect_state(void *parser, bool head);

/* ---- routes and forwarding (proxy.c) ---- */

#define HTTPD_PROXY_ROUTES 16
/* Parses PREFIX=HOST:PORT for --proxy; 0, or -1 after printing why. */
int httpd_proxy_add(const char *arg);
bool httpd_proxy_any(void);
/* Declares each route's upstream pool on `srv` (`max_conns` per worker, dialled and answering
 * within `timeout_ms`); 0 or -errno. */
int httpd_proxy_setup(rw_server *srv, uint32_t max_conns, uint32_t timeout_ms);
/* The route whose prefix is the longest that `path` starts with, or -1. */
int httpd_proxy_route(rw_span path);
/* Forwards the request to route `route`'s upstream; the handler returns what this returns. */
int httpd_proxy(rw_conn *c, const struct http1_request *m, int route, rw_span path);
/* Whether `c`'s proxied request has had its response and is dispatched again only to be
 * consumed: httpd_proxy() then needs no route, and the request need not be judged again. */
bool httpd_proxy_done(rw_conn *c);
/* Bytes of per-connection state the proxy needs (in rw_conn_user, after the file stream's). */
extern const size_t httpd_proxy_conn_size;

#endif
