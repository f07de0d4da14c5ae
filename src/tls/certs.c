/* A server's certificate, chosen per handshake from its ClientHello: among the certificates that
 * cover the name asked for (SNI), the first whose key type the client's signature algorithms
 * accept. nginx serves an RSA and an ECDSA certificate for one name side by side this way, so a
 * client that verifies only RSA signatures gets the RSA one instead of a failed handshake. */
#include <openssl/bytestring.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "tls_conn.h"

/* Does the client's signature_algorithms extension name an algorithm for this key type? A
 * client without it (TLS 1.2 allows that) accepts any: RFC 5246 7.4.1.4.1's defaults. */
static bool key_accepted(const SSL_CLIENT_HELLO *hello, SSL_CTX *ctx)
{
  const uint8_t *ext;
  size_t len;
  if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms, &ext, &len))
    return true;
  EVP_PKEY *key = SSL_CTX_get0_privatekey(ctx);
  int type = key ? EVP_PKEY_id(key) : EVP_PKEY_NONE;
  CBS cbs, algs;
  CBS_init(&cbs, ext, len);
  if (!CBS_get_u16_length_prefixed(&cbs, &algs))
    return true; /* malformed: BoringSSL refuses the hello itself */
  uint16_t alg;
  while (CBS_get_u16(&algs, &alg))
    if (SSL_get_signature_algorithm_key_type(alg) == type)
      return true;
  return false;
}

static enum ssl_select_cert_result_t select_cert(const SSL_CLIENT_HELLO *hello)
{
  SSL_CTX *const *ctxs = SSL_CTX_get_app_data(SSL_get_SSL_CTX(hello->ssl));
  const char *name = SSL_get_servername(hello->ssl, TLSEXT_NAMETYPE_host_name);
  /* The candidates: those covering the name; with no name, or none covering it, all of them. */
  unsigned covering = 0;
  bool covers[RW_TLS_MAX_CERTS] = {false};
  for (unsigned i = 0; name && ctxs[i]; i++) {
    covers[i] = X509_check_host(SSL_CTX_get0_certificate(ctxs[i]), name, strlen(name), 0, NULL) == 1;
    covering += covers[i];
  }
  SSL_CTX *pick = NULL, *first = NULL;
  for (unsigned i = 0; ctxs[i] && !pick; i++) {
    if (covering && !covers[i])
      continue;
    first = first ? first : ctxs[i];
    if (key_accepted(hello, ctxs[i]))
      pick = ctxs[i];
  }
  /* None acceptable: the first candidate, and BoringSSL fails the handshake as it must. */
  pick = pick ? pick : first;
  if (pick != SSL_get_SSL_CTX(hello->ssl))
    SSL_set_SSL_CTX(hello->ssl, pick);
  return ssl_select_cert_success;
}

void rw_tls_certs_install(SSL_CTX *const *ctxs)
{
  SSL_CTX_set_app_data(ctxs[0], (void *)ctxs);
  SSL_CTX_set_select_certificate_cb(ctxs[0], select_cert);
}
