/* httpd as a reverse proxy (proxy.c): --proxy PREFIX=HOST:PORT routes; the upstream connections
 * run spec/http1_response.rw's parser. */
#ifndef HTTPD_PROXY_H
#define HTTPD_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include <ringwright/ringwright.h>

#include "http1.gen.h"
#include "http1_response.gen.h"

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
/* Forwards the request's head to route `route`'s upstream; the handler returns what this
 * returns (-EAGAIN while no connection is leased, or, for a request without a body, until its
 * response is done). */
int httpd_proxy(rw_conn *c, const struct http1_request *m, int route, rw_span path);
/* Whether `c`'s proxied request has had its response and is dispatched again only to be
 * consumed: httpd_proxy() then needs no route, and the request need not be judged again. */
bool httpd_proxy_done(rw_conn *c);
/* A piece of the proxied request's body, sent up as it came (chunked when it came chunked);
 * -EAGAIN while the upstream's queue is above its high water mark. */
int httpd_proxy_body(rw_conn *c, rw_span piece);
/* The body's end; -EAGAIN until the response is done. */
int httpd_proxy_end(rw_conn *c);
/* The body passed --max-body: 413 when nothing was answered yet; the connection closes. */
int httpd_proxy_too_large(rw_conn *c);
/* Bytes of per-connection state the proxy needs (in rw_conn_user, after the file stream's). */
extern const size_t httpd_proxy_conn_size;

#endif
