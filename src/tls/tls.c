/* TLS over BoringSSL, shared by both drivers: the core hands a TLS connection's ciphertext here
 * (rw_tls_received) instead of to the parser; its plaintext writes go to the record layer
 * (rw_tls_write, record.c) instead of to the send chain. BoringSSL runs the handshake through a BIO of
 * our own that reads ciphertext from the driver's buffer, one record at a time, and writes
 * records straight into the send chain; once the handshake is complete our record layer
 * (record.c) takes the keys and handles every later record without BoringSSL, so records cost
 * no allocation (Debian's libssl would take and drop a buffer with malloc for each). What
 * BoringSSL allocates per connection (the SSL object, the BIO, the handshake state) is counted
 * in docs/tls.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <ringwright/cli.h>
#include <ringwright/tls.h>

#include "../core/conn.h"
#include "../core/log.h"
#include "../core/pool.h"
#include "../core/sendq.h"
#include "../core/tls_start.h"
#include "../core/worker.h"
#include "../core/transport.h"
#include "tls_conn.h"

struct rw_tls {
  SSL_CTX *ctx[RW_TLS_MAX_CERTS + 1]; /* [0]: the default; chosen per handshake (certs.c); NULL-ended */
  unsigned nctx;
  uint8_t alpn[256]; /* wire format: length-prefixed names */
  size_t alpn_len;
  bool server;
};

/* ---- the BIO: ciphertext in from the driver's buffer, out into the send chain ---- */

static BIO_METHOD *bio_method;

/* Hands BoringSSL at most the rest of the current record: it never holds bytes past a record
 * boundary, so whatever follows the handshake's last record stays with us for the record
 * layer. */
static int bio_read(BIO *b, char *out, int len)
{
  struct rw_conn *c = BIO_get_data(b);
  struct rw_tls_conn *t = c->transport_state;
  BIO_clear_retry_flags(b);
  if (!t->in_len) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = 0;
  while (n < (size_t)len && t->in_len) {
    size_t k;
    if (!t->hs_rec_left) { /* in a record's header */
      k = TLS_HEADER - t->hs_hdr_have;
      k = k < t->in_len ? k : t->in_len;
      k = k < (size_t)len - n ? k : (size_t)len - n;
      memcpy(t->hs_hdr + t->hs_hdr_have, t->in, k);
      t->hs_hdr_have += (uint8_t)k;
      if (t->hs_hdr_have == TLS_HEADER) {
        t->hs_hdr_have = 0;
        t->hs_rec_left = (uint32_t)t->hs_hdr[3] << 8 | t->hs_hdr[4];
      }
    } else {
      k = t->hs_rec_left < t->in_len ? t->hs_rec_left : t->in_len;
      k = k < (size_t)len - n ? k : (size_t)len - n;
      t->hs_rec_left -= (uint32_t)k;
    }
    memcpy(out + n, t->in, k);
    t->in += k;
    t->in_len -= k;
    n += k;
    if (!t->hs_rec_left && !t->hs_hdr_have)
      break; /* a record boundary */
  }
  return (int)n;
}

static int bio_write(BIO *b, const char *data, int len)
{
  struct rw_conn *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (rw_sendq_append(c->w, c, data, (size_t)len) < 0)
    return -1;
  rw_conn_mark_dirty(c);
  return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_setup(void)
{
  if (bio_method)
    return 0;
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringwright");
  if (!m || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
      !BIO_meth_set_ctrl(m, bio_ctrl))
    return -ENOMEM;
  bio_method = m;
  return 0;
}

/* ---- contexts ---- */

static int set_alpn(rw_tls *t, const char *const *alpn)
{
  for (; alpn && *alpn; alpn++) {
    size_t n = strlen(*alpn);
    if (!n || n > 255 || t->alpn_len + 1 + n > sizeof t->alpn)
      return -EINVAL;
    t->alpn[t->alpn_len++] = (uint8_t)n;
    memcpy(t->alpn + t->alpn_len, *alpn, n);
    t->alpn_len += n;
  }
  return 0;
}

/* Our first preference the client also offers. */
static int alpn_select(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in, unsigned in_len,
                       void *arg)
{
  (void)ssl;
  const rw_tls *t = arg;
  for (size_t i = 0; i < t->alpn_len; i += 1 + t->alpn[i])
    for (unsigned j = 0; j < in_len; j += 1u + in[j])
      if (in[j] == t->alpn[i] && j + 1u + in[j] <= in_len && !memcmp(in + j + 1, t->alpn + i + 1, in[j])) {
        *out = in + j + 1;
        *out_len = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
  return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *ctx_new(void)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (!ctx)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* TLS 1.2 with AEAD suites only (TLS 1.3's are all AEAD): our record layer speaks those. */
  if (!SSL_CTX_set_strict_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                           "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_keylog_callback(ctx, rw_tls_rec_keylog); /* the TLS 1.3 traffic secrets */
  return ctx;
}

/* The TLS transport: what the core calls for a connection rw_tls_conn_start() put on it. */
static const struct rw_transport tls_transport = {
    .name = "tls",
    .receive = rw_tls_received,
    .write = rw_tls_write,
    .flush = rw_tls_flush,
    .close = rw_tls_close_notify,
    .can_receive = rw_tls_can_receive,
    .room = rw_tls_room,
    .release = rw_tls_conn_free,
    .decode_hold = RW_TRANSPORT_SLOT, /* a record held from the last receive */
};

/* Every context installs the start: the core links without this library, so it has no other
 * way to reach it, and needs it only once a context exists. */
static const struct rw_tls_ops tls_ops = {.conn_start = rw_tls_conn_start};

static void install_ops(void)
{
  atomic_store_explicit(&rw_tls_table, &tls_ops, memory_order_release);
}

int rw_tls_server_new(const rw_tls_cert *certs, unsigned ncerts, const char *const *alpn, rw_tls **out_tls)
{
  if (!ncerts || ncerts > RW_TLS_MAX_CERTS || bio_setup() < 0)
    return -EINVAL;
  rw_tls *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  t->server = true;
  int rc = set_alpn(t, alpn);
  for (unsigned i = 0; !rc && i < ncerts; i++) {
    SSL_CTX *ctx = t->ctx[t->nctx++] = ctx_new();
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, certs[i].cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, certs[i].key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      rw_log("tls: cannot use certificate %s with key %s: %s", certs[i].cert_file, certs[i].key_file,
             ERR_reason_error_string(ERR_peek_last_error()));
      ERR_clear_error();
      rc = -EINVAL;
      break;
    }
    if (t->alpn_len)
      SSL_CTX_set_alpn_select_cb(ctx, alpn_select, t);
  }
  if (!rc) {
    rw_tls_certs_install(t->ctx);
    install_ops();
    *out_tls = t;
    return 0;
  }
  rw_tls_free(t);
  return rc;
}

int rw_tls_client_new(const char *ca_file, const char *const *alpn, rw_tls **out_tls)
{
  if (bio_setup() < 0)
    return -ENOMEM;
  rw_tls *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  SSL_CTX *ctx = t->ctx[t->nctx++] = ctx_new();
  int rc = set_alpn(t, alpn);
  if (!rc && (!ctx || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)) {
    rw_log("tls: cannot load CA file %s: %s", ca_file, ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    rc = -EINVAL;
  }
  if (!rc && t->alpn_len && SSL_CTX_set_alpn_protos(ctx, t->alpn, t->alpn_len) != 0)
    rc = -ENOMEM;
  if (rc) {
    rw_tls_free(t);
    return rc;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  install_ops();
  *out_tls = t;
  return 0;
}

void rw_tls_free(rw_tls *t)
{
  if (!t)
    return;
  for (unsigned i = 0; i < t->nctx; i++)
    SSL_CTX_free(t->ctx[i]);
  free(t);
}

/* ---- connections ---- */

int rw_tls_conn_start(struct rw_conn *c, rw_tls *t, const char *server_name)
{
  struct rw_tls_conn *tc = calloc(1, sizeof *tc);
  SSL *ssl = tc ? SSL_new(t->ctx[0]) : NULL;
  BIO *bio = ssl ? BIO_new(bio_method) : NULL;
  if (!bio) {
    SSL_free(ssl);
    free(tc);
    return -ENOMEM;
  }
  BIO_set_data(bio, c);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);
  SSL_set_app_data(ssl, c);
  tc->ssl = ssl;
  tc->part = RW_NONE;
  tc->out = RW_NONE;
  c->transport_state = tc;
  c->transport = &tls_transport;
  if (t->server) {
    SSL_set_accept_state(ssl);
    return 0;
  }
  SSL_set_connect_state(ssl);
  if (server_name && (!SSL_set_tlsext_host_name(ssl, server_name) || !SSL_set1_host(ssl, server_name)))
    return -ENOMEM;
  return 0;
}

void rw_tls_conn_free(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  if (!t)
    return;
  rw_tls_rec_free(c);
  SSL_free(t->ssl);
  free(t);
  c->transport_state = NULL;
}

static void tls_failed(struct rw_conn *c, const char *what)
{
  unsigned long e = ERR_peek_last_error();
  const char *why = e ? ERR_reason_error_string(e) : "connection closed";
  rw_log_limited(&c->w->transport_log, "tls: %s failed: %s", what, why ? why : "unknown");
  RW_STAT_ADD(c->w->stats.transport[RW_XS_FAIL_HANDSHAKE], 1);
  ERR_clear_error();
  /* What BoringSSL queued (an alert) still goes out; then the connection closes. */
  rw_conn_close(c);
}

/* Called with the handshake complete: the record layer takes over, and an outbound
 * connection's owner hears of it now. */
static bool handshaken(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  /* A TLS 1.3 server's session tickets wait in BoringSSL for the first write: a zero-byte
   * write sends them now (it returns 0), under sequence numbers the record layer then
   * continues from. Had they not all reached the send chain (no chunk free), the sequence
   * BoringSSL reports would not match the wire: the connection cannot go on. */
  int rc = 0;
  if (SSL_is_server(t->ssl) && SSL_version(t->ssl) == TLS1_3_VERSION && SSL_write(t->ssl, "", 0) < 0)
    rc = -ENOBUFS;
  ERR_clear_error();
  if (!rc)
    rc = rw_tls_rec_start(c);
  /* From here on BoringSSL must never seal or open a record itself (it would reuse our
   * sequence numbers): it loses its BIO. */
  SSL_set_bio(t->ssl, NULL, NULL);
  t->flags |= TLS_HANDSHAKEN;
  rw_connect_fn done = c->connect_done;
  c->connect_done = NULL;
  if (rc < 0) {
    rw_log_limited(&c->w->transport_log, "tls: cannot take over the negotiated connection (%s, %s): %s",
                   SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), strerror(-rc));
    RW_STAT_ADD(c->w->stats.transport[RW_XS_FAIL_TAKEOVER], 1);
    t->flags |= TLS_FAILED | TLS_SHUTDOWN_SENT; /* no keys to seal an alert with */
    rw_conn_abort(c, rc);                       /* (what was queued may end in a torn record: dropped) */
    if (done)
      done(NULL, -ECONNABORTED, c->connect_data);
    return false;
  }
  RW_STAT_ADD(c->w->stats.transport[RW_XS_HANDSHAKES], 1);
  if (done)
    done(c, 0, c->connect_data);
  return true;
}

size_t rw_tls_received(struct rw_conn *c, uint8_t *at, size_t n)
{
  struct rw_tls_conn *t = c->transport_state;
  rw_conn_mark_dirty(c);
  if (t->flags & TLS_HANDSHAKEN)
    return rw_tls_rec_received(c, at, n);
  t->in = at;
  t->in_len = n;
  int r = SSL_do_handshake(t->ssl);
  if (r != 1) {
    int err = SSL_get_error(t->ssl, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      rw_connect_fn done = c->connect_done;
      c->connect_done = NULL;
      tls_failed(c, "handshake");
      if (done)
        done(NULL, -ECONNABORTED, c->connect_data);
    }
    t->in_len = 0;
    return n;
  }
  if (!handshaken(c) || !t->in_len || (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)))
    return n;
  /* What followed the handshake's last record (a request sent right behind the Finished). */
  size_t rest = t->in_len;
  t->in_len = 0;
  return n - rest + rw_tls_rec_received(c, at + (n - rest), rest);
}

void rw_tls_close_notify(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  if (t->flags & TLS_HANDSHAKEN)
    rw_tls_rec_alert(c, 1, 0); /* close_notify; we do not wait for the peer's */
}

bool rw_tls_handshaken(const struct rw_conn *c)
{
  return c->transport == &tls_transport &&
         (((const struct rw_tls_conn *)c->transport_state)->flags & TLS_HANDSHAKEN);
}

const char *rw_conn_alpn(const rw_conn *c)
{
  static _Thread_local char name[256];
  if (c->transport != &tls_transport)
    return NULL;
  const uint8_t *p;
  unsigned len;
  SSL_get0_alpn_selected(((const struct rw_tls_conn *)c->transport_state)->ssl, &p, &len);
  if (len)
    memcpy(name, p, len);
  name[len] = 0;
  return name;
}

/* Here and not with the other flags (src/core/cli.c): it needs BoringSSL, which the core does
 * not link. */
int rw_cli_tls(const rw_cli *cli, const char *const *alpn, struct rw_tls **out_tls)
{
  if (!cli->ntls_cert || cli->ntls_cert != cli->ntls_key) {
    fprintf(stderr, "%s: a TLS listener needs --tls-cert and --tls-key, in pairs\n", cli->cfg.name);
    return -EINVAL;
  }
  rw_tls_cert certs[RW_CLI_MAX_CERTS];
  for (unsigned i = 0; i < cli->ntls_cert; i++)
    certs[i] = (rw_tls_cert){cli->tls_cert[i], cli->tls_key[i]};
  int rc = rw_tls_server_new(certs, cli->ntls_cert, alpn, out_tls);
  if (rc < 0)
    fprintf(stderr, "%s: cannot set up TLS (see the log line above)\n", cli->cfg.name);
  return rc;
}
