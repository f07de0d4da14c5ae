/* TLS for any connection, on either driver: server listeners and outbound connections.
 * BoringSSL runs the handshake over the connection's own buffers; after it, records are opened
 * in place in the driver's receive buffer and sealed straight into the send chain by the
 * runtime's own record layer (TLS 1.3, and TLS 1.2 with AEAD suites): nothing is allocated per
 * record. Handlers see plaintext and write plaintext, as on a plain connection.
 *
 * Contexts (rw_tls_*), rw_conn_alpn() and rw_cli_tls() are in libringwright-tls (pkg-config
 * ringwright-tls, which adds BoringSSL), apart from libringwright, so that a program without
 * TLS links no BoringSSL; the listener and connect calls below take one of its contexts. */
#ifndef RINGWRIGHT_TLS_H
#define RINGWRIGHT_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "proto.h"
#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_tls rw_tls;

/* A certificate chain (PEM, leaf first) and its private key (PEM). */
typedef struct rw_tls_cert {
  const char *cert_file, *key_file;
} rw_tls_cert;

/* A server context: `certs[0]` is the default; a client naming (SNI) a host that another
 * certificate covers gets that one. `alpn`: protocols offered in order of preference (NULL-
 * terminated, may be NULL). TLS 1.2 and 1.3, session tickets on. 0 or -errno (-EINVAL with a
 * log line naming the file that failed). */
int rw_tls_server_new(const rw_tls_cert *certs, unsigned ncerts, const char *const *alpn, rw_tls **out_tls);
/* A client context verifying servers against the CAs in `ca_file` (PEM). */
int rw_tls_client_new(const char *ca_file, const char *const *alpn, rw_tls **out_tls);
void rw_tls_free(rw_tls *tls);

/* rw_server_listen() with TLS on every accepted connection; it logs "listening on ADDR (PROTO,
 * tls)". */
int rw_server_listen_tls(rw_server *s, const char *hostport, const rw_proto *proto, const void *handlers,
                         rw_tls *tls);

/* rw_connect() over TLS: `server_name` is sent as SNI and the certificate must match it;
 * `done` runs once the handshake is complete (or failed: NULL and -ECONNABORTED). */
int rw_connect_tls(rw_worker *w, const char *hostport, const char *server_name, rw_tls *tls,
                   const rw_proto *proto, const void *handlers, uint32_t timeout_ms, rw_connect_fn done,
                   void *data);

/* The protocol ALPN chose for the connection ("" if none, NULL on a plain connection). */
const char *rw_conn_alpn(const rw_conn *c);

#ifdef __cplusplus
}
#endif

#endif
