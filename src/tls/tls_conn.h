/* A TLS connection's state, shared by the handshake (tls.c, BoringSSL) and the record layer
 * (record.c, ours). BoringSSL runs the handshake; once it is complete the record layer takes
 * the traffic keys and seals and opens every later record itself, in the connection's own
 * buffers, so that no record costs an allocation (Debian's libssl takes and frees a buffer
 * with malloc for each record it handles). */
#ifndef RW_TLS_CONN_H
#define RW_TLS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <openssl/aead.h>
#include <openssl/ssl.h>

struct rw_conn;

enum {
  TLS_HANDSHAKEN = 1,
  TLS_SHUTDOWN_SENT = 2, /* close_notify or a fatal alert queued: nothing more is sealed */
  TLS_FAILED = 4,        /* a record was refused: the rest of the input is dropped */
  TLS_HAVE_READ_SECRET = 8,
  TLS_HAVE_WRITE_SECRET = 16,
};

/* One direction's keys: the AEAD with its key, the static IV (TLS 1.3 and ChaCha20: 12 bytes
 * XORed with the sequence number; TLS 1.2 AES-GCM: a 4-byte salt), the next sequence number
 * and (TLS 1.3) the traffic secret that KeyUpdate advances. */
struct tls_keys {
  EVP_AEAD_CTX aead;
  uint8_t iv[12];
  uint64_t seq;
  uint8_t secret[EVP_MAX_MD_SIZE];
};

/* The largest record body accepted: TLS 1.3 allows 2^14 + 256 (RFC 8446 5.2); TLS 1.2 with an
 * AEAD needs at most 2^14 + 24. */
#define TLS_MAX_BODY (16384 + 256)
#define TLS_HEADER 5

struct rw_tls_conn {
  SSL *ssl;
  const uint8_t *in; /* handshake: ciphertext not yet taken by BoringSSL */
  size_t in_len;
  uint8_t hs_hdr[TLS_HEADER]; /* handshake: the BIO hands BoringSSL one record at a time */
  uint8_t hs_hdr_have;
  uint32_t hs_rec_left;
  uint8_t flags;
  /* After the handshake: the record layer's state. */
  uint16_t version;    /* TLS1_2_VERSION or TLS1_3_VERSION */
  bool explicit_nonce; /* TLS 1.2 AES-GCM: 8 nonce bytes precede each record's body */
  const EVP_AEAD *aead;
  const EVP_MD *md; /* TLS 1.3: the HKDF hash */
  uint8_t secret_len;
  struct tls_keys rd, wr;
  uint32_t part, part_len; /* a record that crossed receives: a slot of the worker's pool */
  uint32_t out, out_len;   /* replies of this turn not yet sealed: another slot */
  /* A post-handshake message in progress across records: its header so far, then (once the
   * header is whole) its type and the body bytes still to come. */
  uint8_t msg_hdr[4], msg_hdr_have;
  uint8_t msg_type;
  uint32_t msg_left;
  uint8_t empty;            /* records in a row that carried no application data */
  bool key_update_answered; /* a KeyUpdate of ours went out after our last application data */
};

/* The TLS transport's operations (struct rw_transport, src/core/transport.h) and its start,
 * which tls.c installs for the core (struct rw_tls_ops, src/core/tls_start.h). */
struct rw_tls;
/* tls.c */
int rw_tls_conn_start(struct rw_conn *c, struct rw_tls *t, const char *server_name);
size_t rw_tls_received(struct rw_conn *c, uint8_t *at, size_t n);
void rw_tls_close_notify(struct rw_conn *c);
void rw_tls_conn_free(struct rw_conn *c);
/* record.c */
int rw_tls_write(struct rw_conn *c, const struct iovec *iov, int n);
size_t rw_tls_record_room(const struct rw_conn *c);
size_t rw_tls_room(const struct rw_conn *c, size_t chunks);
bool rw_tls_can_receive(const struct rw_conn *c);
void rw_tls_release_slot(struct rw_conn *c);
int rw_tls_flush(struct rw_conn *c);

/* record.c, for tls.c */
int rw_tls_rec_start(struct rw_conn *c);
size_t rw_tls_rec_received(struct rw_conn *c, uint8_t *at, size_t n);
void rw_tls_rec_alert(struct rw_conn *c, uint8_t level, uint8_t desc);
void rw_tls_rec_free(struct rw_conn *c);
void rw_tls_rec_keylog(const SSL *ssl, const char *line);

/* certs.c: a server's certificates, at most RW_TLS_MAX_CERTS in `ctxs` (NULL-terminated, living
 * as long as ctxs[0], the default): each handshake gets the first that covers the name asked
 * for and whose key type the client's signature algorithms accept. */
#define RW_TLS_MAX_CERTS 8
void rw_tls_certs_install(SSL_CTX *const *ctxs);

#endif
