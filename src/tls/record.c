/* The TLS record layer after the handshake: TLS 1.3 (RFC 8446 5) and TLS 1.2 with AEAD
 * ciphers (RFC 5288, 7905). BoringSSL runs the handshake and hands over the traffic keys (TLS
 * 1.3: the traffic secrets through the key-log hook; TLS 1.2: the key block) and the sequence
 * numbers it reached; from then on every record is opened in place where the driver received
 * it and sealed straight into the send chain. A record that crosses receives waits in a slot of
 * the worker's fixed pool. Nothing here allocates.
 *
 * Also handled here: alerts (close_notify ends the connection gracefully, others fatally),
 * KeyUpdate both ways (answered when asked; our own keys are rotated before AES-GCM's limit),
 * NewSessionTicket on client connections (passed over: the client keeps no sessions), and
 * anything else after the handshake, renegotiation included, is refused with a fatal alert. */
#include <errno.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/hkdf.h>
#include <openssl/mem.h>
#include <openssl/nid.h>

#include "../core/conn.h"
#include "../core/log.h"
#include "../core/pool.h"
#include "../core/sendq.h"
#include "../core/transport.h"
#include "../core/worker.h"
#include "tls_conn.h"

enum { CT_ALERT = 21, CT_HANDSHAKE = 22, CT_APPDATA = 23 };
enum {
  AL_CLOSE_NOTIFY = 0,
  AL_UNEXPECTED_MESSAGE = 10,
  AL_BAD_RECORD_MAC = 20,
  AL_RECORD_OVERFLOW = 22,
  AL_DECODE_ERROR = 50,
  AL_PROTOCOL_VERSION = 70,
  AL_INTERNAL_ERROR = 80,
  AL_USER_CANCELED = 90,
  AL_NO_RENEGOTIATION = 100,
};
enum { HS_CLIENT_HELLO = 1, HS_NEW_SESSION_TICKET = 4, HS_KEY_UPDATE = 24 };
enum { LEVEL_WARNING = 1, LEVEL_FATAL = 2 };

#define TAG_LEN 16
#define MAX_PLAIN 16384
/* Records sealed under one key before we rotate it: AES-GCM's limit is 2^24.5 full records
 * (RFC 8446 5.5); the same bound serves ChaCha20 too. */
#define KEY_UPDATE_AT (1ull << 24)
/* Records in a row without application data (empty records, warnings, tickets): more is a
 * peer keeping us busy for nothing (BoringSSL's own limit is the same). */
#define MAX_EMPTY 32

static void put_be64(uint8_t *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static size_t be16(const uint8_t *p)
{
  return (size_t)p[0] << 8 | p[1];
}

static bool v13(const struct rw_tls_conn *t)
{
  return t->version == TLS1_3_VERSION;
}

static bool stopped(const struct rw_conn *c)
{
  const struct rw_tls_conn *t = c->transport_state;
  return (c->flags & (RW_CONN_CLOSING | RW_CONN_ABORT)) || (t->flags & TLS_FAILED);
}

/* ---- keys ---- */

/* HKDF-Expand-Label(secret, label, "", out_len) (RFC 8446 7.1). */
static int expand_label(const struct rw_tls_conn *t, const uint8_t *secret, const char *label, uint8_t *out,
                        size_t out_len)
{
  uint8_t info[2 + 1 + 6 + 16 + 1];
  size_t l = strlen(label);
  info[0] = (uint8_t)(out_len >> 8);
  info[1] = (uint8_t)out_len;
  info[2] = (uint8_t)(6 + l);
  memcpy(info + 3, "tls13 ", 6);
  memcpy(info + 9, label, l);
  info[9 + l] = 0; /* empty context */
  return HKDF_expand(out, out_len, t->md, secret, t->secret_len, info, 10 + l) ? 0 : -EPROTO;
}

static int keys_init(struct tls_keys *k, const EVP_AEAD *aead, const uint8_t *key, size_t key_len)
{
  EVP_AEAD_CTX_cleanup(&k->aead);
  return EVP_AEAD_CTX_init(&k->aead, aead, key, key_len, TAG_LEN, NULL) ? 0 : -EPROTO;
}

/* TLS 1.3: a direction's keys from traffic secret `secret` (RFC 8446 7.3), derived aside and
 * committed (secret, key, IV, sequence 0) only when every step worked. Only the AEAD's own
 * initialisation could fail after the old key is gone: its callers then stop sealing. */
static int keys_from_secret(struct rw_tls_conn *t, struct tls_keys *k, const uint8_t *secret)
{
  uint8_t key[EVP_AEAD_MAX_KEY_LENGTH], iv[sizeof k->iv];
  size_t key_len = EVP_AEAD_key_length(t->aead);
  int rc = expand_label(t, secret, "key", key, key_len);
  if (!rc)
    rc = expand_label(t, secret, "iv", iv, sizeof iv);
  if (!rc)
    rc = keys_init(k, t->aead, key, key_len);
  if (!rc) {
    memmove(k->secret, secret, t->secret_len);
    memcpy(k->iv, iv, sizeof iv);
  }
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(iv, sizeof iv);
  return rc;
}

/* KeyUpdate: the next traffic secret and its keys; sequence numbers restart (RFC 8446 4.6.3). */
static int keys_update(struct rw_tls_conn *t, struct tls_keys *k)
{
  uint8_t next[EVP_MAX_MD_SIZE];
  int rc = expand_label(t, k->secret, "traffic upd", next, t->secret_len);
  if (!rc)
    rc = keys_from_secret(t, k, next);
  if (!rc)
    k->seq = 0;
  OPENSSL_cleanse(next, sizeof next);
  return rc;
}

static int hexval(char ch)
{
  return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* BoringSSL's key-log hook, set on every context: it is how a C caller learns the TLS 1.3
 * traffic secrets ("CLIENT_TRAFFIC_SECRET_0 <client random> <secret>", lower-case hex). */
void rw_tls_rec_keylog(const SSL *ssl, const char *line)
{
  struct rw_conn *c = SSL_get_app_data(ssl);
  struct rw_tls_conn *t = c ? c->transport_state : NULL;
  bool client = !strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24);
  if (!t || (!client && strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24)))
    return;
  const char *hex = strrchr(line, ' ') + 1;
  size_t n = strlen(hex) / 2;
  bool ours = client != (bool)SSL_is_server(ssl); /* the secret we write with */
  struct tls_keys *k = ours ? &t->wr : &t->rd;
  if (n > sizeof k->secret)
    return;
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return;
    k->secret[i] = (uint8_t)(hi << 4 | lo);
  }
  t->secret_len = (uint8_t)n;
  t->flags |= ours ? TLS_HAVE_WRITE_SECRET : TLS_HAVE_READ_SECRET;
}

/* TLS 1.2: keys and IVs from the key block (no MAC keys with an AEAD: RFC 5246 6.3). */
static int keys_tls12(struct rw_tls_conn *t)
{
  size_t key_len = EVP_AEAD_key_length(t->aead), iv_len = t->explicit_nonce ? 4 : 12;
  uint8_t kb[2 * (EVP_AEAD_MAX_KEY_LENGTH + 12)];
  size_t kb_len = SSL_get_key_block_len(t->ssl);
  if (kb_len != 2 * (key_len + iv_len) || !SSL_generate_key_block(t->ssl, kb, kb_len))
    return -EPROTO;
  bool server = SSL_is_server(t->ssl);
  const uint8_t *ckey = kb, *skey = kb + key_len, *civ = kb + 2 * key_len, *siv = civ + iv_len;
  memcpy(t->rd.iv, server ? civ : siv, iv_len);
  memcpy(t->wr.iv, server ? siv : civ, iv_len);
  int rc = keys_init(&t->rd, t->aead, server ? ckey : skey, key_len);
  if (!rc)
    rc = keys_init(&t->wr, t->aead, server ? skey : ckey, key_len);
  OPENSSL_cleanse(kb, sizeof kb);
  return rc;
}

int rw_tls_rec_start(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
  t->part = RW_NONE;
  t->version = (uint16_t)SSL_version(t->ssl);
  switch (cipher ? SSL_CIPHER_get_cipher_nid(cipher) : NID_undef) {
  case NID_aes_128_gcm: t->aead = EVP_aead_aes_128_gcm(); break;
  case NID_aes_256_gcm: t->aead = EVP_aead_aes_256_gcm(); break;
  case NID_chacha20_poly1305: t->aead = EVP_aead_chacha20_poly1305(); break;
  default: return -EPROTONOSUPPORT; /* the contexts allow AEAD suites only */
  }
  t->rd.seq = SSL_get_read_sequence(t->ssl);
  t->wr.seq = SSL_get_write_sequence(t->ssl);
  if (t->version == TLS1_2_VERSION) {
    t->explicit_nonce = SSL_CIPHER_get_cipher_nid(cipher) != NID_chacha20_poly1305;
    return keys_tls12(t);
  }
  if (!v13(t))
    return -EPROTONOSUPPORT;
  t->md = EVP_get_digestbynid(SSL_CIPHER_get_prf_nid(cipher));
  if (!t->md ||
      (t->flags & (TLS_HAVE_READ_SECRET | TLS_HAVE_WRITE_SECRET)) !=
          (TLS_HAVE_READ_SECRET | TLS_HAVE_WRITE_SECRET) ||
      t->secret_len != EVP_MD_size(t->md))
    return -EPROTO;
  int rc = keys_from_secret(t, &t->rd, t->rd.secret);
  return rc ? rc : keys_from_secret(t, &t->wr, t->wr.secret);
}

static void slot_put(struct rw_conn *c, uint32_t *slot, uint32_t *len)
{
  if (*slot == RW_NONE)
    return;
  rw_pool_put(&c->w->transport_pool, *slot);
  *slot = RW_NONE;
  *len = 0;
  c->w->freed_resources = true;
}

void rw_tls_release_slot(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  slot_put(c, &t->part, &t->part_len);
  slot_put(c, &t->out, &t->out_len);
}

void rw_tls_rec_free(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  rw_tls_release_slot(c);
  EVP_AEAD_CTX_cleanup(&t->rd.aead);
  EVP_AEAD_CTX_cleanup(&t->wr.aead);
  OPENSSL_cleanse(&t->rd, sizeof t->rd);
  OPENSSL_cleanse(&t->wr, sizeof t->wr);
}

/* ---- sealing ---- */

static size_t overhead(const struct rw_tls_conn *t)
{
  return TLS_HEADER + TAG_LEN + (v13(t) ? 1 : t->explicit_nonce ? 8 : 0);
}

/* The per-record nonce: the IV XOR the sequence number, or (TLS 1.2 AES-GCM) the salt and the
 * record's explicit part. */
static void nonce_of(const struct rw_tls_conn *t, const struct tls_keys *k, const uint8_t *explicit,
                     uint8_t out[12])
{
  if (t->explicit_nonce) {
    memcpy(out, k->iv, 4);
    memcpy(out + 4, explicit, 8);
    return;
  }
  uint8_t s[8];
  put_be64(s, k->seq);
  memcpy(out, k->iv, 12);
  for (int i = 0; i < 8; i++)
    out[4 + i] ^= s[i];
}

/* TLS 1.2's additional data: sequence number, type, version, plaintext length. */
static void ad12(uint8_t ad[13], uint64_t seq, uint8_t type, size_t len)
{
  put_be64(ad, seq);
  ad[8] = type;
  ad[9] = 3;
  ad[10] = 3;
  ad[11] = (uint8_t)(len >> 8);
  ad[12] = (uint8_t)len;
}

/* Seals `len` (<= 2^14) bytes of content `type` as one record into out[0, len + overhead). */
static int seal(struct rw_tls_conn *t, uint8_t type, const uint8_t *in, size_t len, uint8_t *out)
{
  struct tls_keys *k = &t->wr;
  size_t body = len + overhead(t) - TLS_HEADER;
  uint8_t nonce[12], ad[13], *ct = out + TLS_HEADER;
  if (k->seq == UINT64_MAX)
    return -EOVERFLOW; /* TLS 1.2 cannot rekey: a connection that sent 2^64 records ends */
  out[0] = v13(t) ? CT_APPDATA : type;
  out[1] = 3;
  out[2] = 3;
  out[3] = (uint8_t)(body >> 8);
  out[4] = (uint8_t)body;
  if (t->explicit_nonce) {
    put_be64(ct, k->seq);
    ct += 8;
  }
  nonce_of(t, k, out + TLS_HEADER, nonce);
  if (!v13(t))
    ad12(ad, k->seq, type, len);
  size_t tag_len;
  /* TLS 1.3's inner content type is sealed as "extra input", behind the content. The tag's
   * room is exact: BoringSSL refuses a tag buffer that reaches into the input, which may be the
   * chunk right after this one. */
  if (!EVP_AEAD_CTX_seal_scatter(&k->aead, ct, ct + len, &tag_len, TAG_LEN + v13(t), nonce, sizeof nonce, in,
                                 len, v13(t) ? &type : NULL, v13(t) ? 1 : 0, v13(t) ? out : ad,
                                 v13(t) ? TLS_HEADER : sizeof ad)) {
    ERR_clear_error();
    return -EPROTO; /* (the caller's connection is aborted; logged by rw_tls_write) */
  }
  k->seq++;
  return 0;
}

size_t rw_tls_record_room(const struct rw_conn *c)
{
  size_t most = c->w->send_pool.item_size - overhead(c->transport_state);
  return most < MAX_PLAIN ? most : MAX_PLAIN;
}

/* A record never straddles chunks: pieces just over half a chunk fill one each. */
size_t rw_tls_room(const struct rw_conn *c, size_t chunks)
{
  size_t room = rw_tls_record_room(c);
  return chunks > 1 ? chunks / 2 * room : room;
}

/* Seals content into the send chain, each record in place in one chunk: at the tail when it
 * fits there, else in a fresh chunk (the tail keeps what it holds). Records carry as much as a
 * chunk takes, so a file read in pieces of rw_tls_record_room() goes out one record a piece. */
static int seal_into_chain(struct rw_conn *c, uint8_t type, const uint8_t *p, size_t len)
{
  struct rw_tls_conn *t = c->transport_state;
  struct rw_worker *w = c->w;
  size_t oh = overhead(t), most = rw_tls_record_room(c);
  do {
    size_t room, k = len < most ? len : most;
    uint8_t *out = rw_sendq_reserve(w, c, k + oh, &room);
    if (!out)
      return -ENOBUFS;
    int rc = seal(t, type, p, k, out);
    if (rc)
      return rc;
    rw_sendq_commit(w, c, k + oh);
    p += k;
    len -= k;
  } while (len);
  rw_conn_mark_dirty(c);
  return 0;
}

/* Seals what the connection's writes gathered since the last flush. Its bytes were reported
 * held while they waited (they count towards the high water mark); the record's bytes, in the
 * send chain, replace them. */
static int seal_out(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  if (t->out == RW_NONE)
    return 0;
  uint32_t len = t->out_len;
  t->out_len = 0;
  rw_conn_held(c, 0);
  int rc = len ? seal_into_chain(c, CT_APPDATA, rw_pool_at(&c->w->transport_pool, t->out), len) : 0;
  slot_put(c, &t->out, &t->out_len);
  return rc;
}

/* Ours goes out under the old key; then the key changes. If the change fails nothing more may
 * be sealed (the sequence numbers of the old key would run on after the peer switched). */
static int send_key_update(struct rw_conn *c, bool request)
{
  struct rw_tls_conn *t = c->transport_state;
  const uint8_t msg[5] = {HS_KEY_UPDATE, 0, 0, 1, request};
  int rc = seal_out(c); /* what was written before goes under the old key */
  if (!rc)
    rc = seal_into_chain(c, CT_HANDSHAKE, msg, sizeof msg);
  if (rc)
    return rc;
  rc = keys_update(t, &t->wr);
  if (rc)
    t->flags |= TLS_SHUTDOWN_SENT;
  return rc;
}

/* Our key rotates before AES-GCM's limit (TLS 1.2 has no KeyUpdate: its 2^64 bound stands). */
static int rotate_if_due(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  return v13(t) && t->wr.seq >= KEY_UPDATE_AT ? send_key_update(c, false) : 0;
}

static int rec_flush(struct rw_conn *c)
{
  int rc = seal_out(c);
  return rc ? rc : rotate_if_due(c);
}

int rw_tls_flush(struct rw_conn *c)
{
  struct rw_tls_conn *t = c->transport_state;
  return (t->flags & TLS_HANDSHAKEN) && !(t->flags & TLS_SHUTDOWN_SENT) ? rec_flush(c) : 0;
}

/* Replies up to GATHER_MAX are gathered in the connection's out slot and sealed at the end of
 * the turn (or when the slot fills): a pipeline's sixteen replies leave as one record, not
 * sixteen, which spares the AEAD's fixed cost here and a record's worth of reads in the client.
 * Larger pieces (a file's chunk) are sealed at once from where they are, behind what was
 * gathered: copying them first would cost more than their records' overhead. */
#define GATHER_MAX 4096
int rw_tls_write(struct rw_conn *c, const struct iovec *iov, int n)
{
  struct rw_tls_conn *t = c->transport_state;
  if (!(t->flags & TLS_HANDSHAKEN))
    return -ENOTCONN;
  if (t->flags & TLS_SHUTDOWN_SENT)
    return -EPIPE;
  t->key_update_answered = false; /* a request after this data needs its own answer */
  size_t room = rw_tls_record_room(c), total = 0;
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  bool gather = total <= GATHER_MAX && total <= room;
  int rc = 0;
  if (t->out_len && (!gather || t->out_len + total > room))
    rc = rec_flush(c);
  if (!rc && gather && t->out == RW_NONE)
    t->out = rw_pool_get(&c->w->transport_pool); /* (none free: sealed at once below) */
  if (!rc && gather && t->out != RW_NONE) {
    rw_iov_gather(rw_pool_at(&c->w->transport_pool, t->out) + t->out_len, iov, n);
    t->out_len += (uint32_t)total;
    rw_conn_held(c, t->out_len);
    rw_conn_mark_dirty(c);
    return 0;
  }
  for (int i = 0; i < n && !rc; i++)
    if (iov[i].iov_len) /* (an empty piece may have a NULL base) */
      rc = seal_into_chain(c, CT_APPDATA, iov[i].iov_base, iov[i].iov_len);
  if (!rc)
    rc = rotate_if_due(c);
  if (rc && rc != -ENOBUFS)
    rw_log_limited(&c->w->transport_log, "tls: write failed: cannot seal a record: %s", strerror(-rc));
  return rc;
}

void rw_tls_rec_alert(struct rw_conn *c, uint8_t level, uint8_t desc)
{
  struct rw_tls_conn *t = c->transport_state;
  if (t->flags & TLS_SHUTDOWN_SENT)
    return;
  seal_out(c); /* what was written before goes first */
  t->flags |= TLS_SHUTDOWN_SENT;
  const uint8_t alert[2] = {level, desc};
  seal_into_chain(c, CT_ALERT, alert, sizeof alert); /* no room: the close goes without it */
}

/* ---- opening ---- */

/* A record refused: a fatal alert goes out, the connection closes, the rest is dropped. */
static void fail(struct rw_conn *c, uint8_t alert, const char *why)
{
  struct rw_tls_conn *t = c->transport_state;
  rw_log_limited(&c->w->transport_log, "tls: read failed: %s", why);
  rw_tls_rec_alert(c, LEVEL_FATAL, alert);
  RW_STAT_ADD(c->w->stats.transport[RW_XS_FAIL_RECORD], 1);
  t->flags |= TLS_FAILED;
  rw_conn_close_err(c, -EPROTO);
}

/* Decrypts rec[0, total) in place; returns 0 with the content type and the plaintext, or the
 * alert to send. */
static int open_record(struct rw_tls_conn *t, uint8_t *rec, size_t total, uint8_t *out_type, uint8_t **out_p,
                       size_t *out_len)
{
  struct tls_keys *k = &t->rd;
  size_t pre = t->explicit_nonce ? 8 : 0, blen = total - TLS_HEADER;
  uint8_t nonce[12], ad[13], *body = rec + TLS_HEADER;
  if (v13(t) ? rec[0] != CT_APPDATA : rec[0] < CT_ALERT || rec[0] > CT_APPDATA)
    return AL_UNEXPECTED_MESSAGE; /* (TLS 1.3 hides the type; ChangeCipherSpec is over) */
  if (!v13(t) && (rec[1] != 3 || rec[2] != 3))
    return AL_PROTOCOL_VERSION;
  if (blen < pre + TAG_LEN)
    return AL_BAD_RECORD_MAC;
  if (k->seq == UINT64_MAX)
    return AL_INTERNAL_ERROR;
  size_t clen = blen - pre, plen;
  nonce_of(t, k, body, nonce);
  if (!v13(t))
    ad12(ad, k->seq, rec[0], clen - TAG_LEN);
  uint8_t *p = body + pre;
  if (!EVP_AEAD_CTX_open(&k->aead, p, &plen, clen, nonce, sizeof nonce, p, clen, v13(t) ? rec : ad,
                         v13(t) ? TLS_HEADER : sizeof ad)) {
    ERR_clear_error();
    return AL_BAD_RECORD_MAC;
  }
  k->seq++;
  uint8_t type = rec[0];
  if (plen > MAX_PLAIN + (size_t)v13(t))
    return AL_RECORD_OVERFLOW;
  if (v13(t)) { /* content, type, zero padding */
    while (plen && !p[plen - 1])
      plen--;
    if (!plen)
      return AL_UNEXPECTED_MESSAGE;
    type = p[--plen];
  }
  *out_type = type;
  *out_p = p;
  *out_len = plen;
  return 0;
}

static void on_alert(struct rw_conn *c, const uint8_t *p, size_t len)
{
  struct rw_tls_conn *t = c->transport_state;
  if (len != 2) {
    fail(c, AL_DECODE_ERROR, "malformed alert");
  } else if (p[1] == AL_CLOSE_NOTIFY) {
    rw_conn_close(c); /* the peer is done: ours goes back, then the close */
  } else if (p[1] != AL_USER_CANCELED && (v13(t) || p[0] != LEVEL_WARNING)) {
    rw_log_limited(&c->w->transport_log, "tls: the peer sent alert %u: closing", p[1]);
    RW_STAT_ADD(c->w->stats.transport[RW_XS_FAIL_RECORD], 1);
    t->flags |= TLS_FAILED | TLS_SHUTDOWN_SENT; /* no reply to a fatal alert */
    rw_conn_close_err(c, -EPROTO);
  } /* a warning (TLS 1.2) or user_canceled: nothing to do */
}

/* The peer's KeyUpdate: its key changes for the next record. A request is answered unless one
 * of ours already went out since the last application data we sealed (one KeyUpdate covers
 * every request before it, RFC 8446 4.6.3), so a peer cannot make us queue a reply per record. */
static void on_key_update(struct rw_conn *c, uint8_t request)
{
  struct rw_tls_conn *t = c->transport_state;
  if (keys_update(t, &t->rd) < 0) {
    fail(c, AL_INTERNAL_ERROR, "key update"); /* (the write key still seals the alert) */
    return;
  }
  if (request && !t->key_update_answered && !(t->flags & TLS_SHUTDOWN_SENT)) {
    t->key_update_answered = true;
    if (send_key_update(c, false) < 0)
      fail(c, AL_INTERNAL_ERROR, "key update");
  }
}

/* Post-handshake messages (RFC 8446 4.6, 5.1): several in a record or one across several. A
 * client passes over NewSessionTicket; KeyUpdate is acted on once its one byte is there, which
 * must end its record (keys change at record boundaries). Anything else is refused. */
static void on_handshake(struct rw_conn *c, const uint8_t *p, size_t len)
{
  struct rw_tls_conn *t = c->transport_state;
  if (!len) {
    fail(c, AL_UNEXPECTED_MESSAGE, "empty handshake record");
    return;
  }
  while (len && !stopped(c)) {
    if (t->msg_hdr_have < 4) {
      size_t k = 4u - t->msg_hdr_have < len ? 4u - t->msg_hdr_have : len;
      memcpy(t->msg_hdr + t->msg_hdr_have, p, k);
      t->msg_hdr_have += (uint8_t)k;
      p += k;
      len -= k;
      if (t->msg_hdr_have < 4)
        return;
      t->msg_type = t->msg_hdr[0];
      t->msg_left = (uint32_t)t->msg_hdr[1] << 16 | (uint32_t)t->msg_hdr[2] << 8 | t->msg_hdr[3];
      bool ticket = v13(t) && t->msg_type == HS_NEW_SESSION_TICKET && !SSL_is_server(t->ssl);
      bool key_update = v13(t) && t->msg_type == HS_KEY_UPDATE;
      if (key_update && t->msg_left != 1) {
        fail(c, AL_DECODE_ERROR, "malformed KeyUpdate");
        return;
      }
      if (!ticket && !key_update) {
        bool renegotiation = !v13(t) && t->msg_type == HS_CLIENT_HELLO && SSL_is_server(t->ssl);
        fail(c, renegotiation ? AL_NO_RENEGOTIATION : AL_UNEXPECTED_MESSAGE,
             renegotiation ? "renegotiation refused" : "unexpected handshake message after the handshake");
        return;
      }
    }
    if (t->msg_type == HS_KEY_UPDATE) {
      if (!len)
        return; /* its byte comes in the next record */
      uint8_t request = p[0];
      t->msg_hdr_have = 0;
      t->msg_left = 0;
      if (request > 1)
        fail(c, AL_DECODE_ERROR, "malformed KeyUpdate");
      else if (len != 1)
        fail(c, AL_UNEXPECTED_MESSAGE, "KeyUpdate not at the end of its record");
      else
        on_key_update(c, request);
      return;
    }
    size_t k = len < t->msg_left ? len : t->msg_left; /* a ticket's body, passed over */
    t->msg_left -= (uint32_t)k;
    p += k;
    len -= k;
    if (!t->msg_left)
      t->msg_hdr_have = 0;
  }
}

/* One whole record at rec[0, total): opened in place, its content handed on. */
static void record(struct rw_conn *c, uint8_t *rec, size_t total)
{
  struct rw_tls_conn *t = c->transport_state;
  uint8_t type, *p;
  size_t len;
  int alert = open_record(t, rec, total, &type, &p, &len);
  if (alert) {
    fail(c, (uint8_t)alert, alert == AL_BAD_RECORD_MAC ? "bad record MAC" : "bad record");
    return;
  }
  if (type != CT_HANDSHAKE && t->msg_hdr_have) {
    fail(c, AL_UNEXPECTED_MESSAGE, "a handshake message interrupted");
    return;
  }
  if (type == CT_APPDATA && len) {
    t->empty = 0;
    /* Plaintext is handed on where it was decrypted; the byte after it (the type or the tag)
     * takes the parser's sentinel. */
    if (rw_conn_deliver(c, p, len) < len) {
      /* The connection could not hold what it was sent while paused: bounded memory wins. */
      rw_log_limited(&c->w->transport_log,
                     "tls: a paused connection sent more than a slot holds: closing it");
      t->flags |= TLS_FAILED;
      rw_conn_abort(c, -ENOBUFS);
    }
    return;
  }
  if (++t->empty > MAX_EMPTY)
    fail(c, AL_UNEXPECTED_MESSAGE, "too many records without data");
  else if (type == CT_ALERT)
    on_alert(c, p, len);
  else if (type == CT_HANDSHAKE)
    on_handshake(c, p, len);
  else if (type != CT_APPDATA)
    fail(c, AL_UNEXPECTED_MESSAGE, "unexpected record type");
}

static size_t record_total(const uint8_t *hdr)
{
  return TLS_HEADER + be16(hdr + 3);
}

/* Completes the held record from at[0, n): returns how much it took; *out_done when whole. */
static size_t part_fill(struct rw_conn *c, const uint8_t *at, size_t n, bool *out_done)
{
  struct rw_tls_conn *t = c->transport_state;
  uint8_t *rec = rw_pool_at(&c->w->transport_pool, t->part);
  size_t taken = 0;
  *out_done = false;
  while (taken < n) {
    size_t want = t->part_len < TLS_HEADER ? TLS_HEADER : record_total(rec);
    size_t k = want - t->part_len < n - taken ? want - t->part_len : n - taken;
    memcpy(rec + t->part_len, at + taken, k);
    t->part_len += (uint32_t)k;
    taken += k;
    if (t->part_len < TLS_HEADER)
      break;
    if (record_total(rec) - TLS_HEADER > TLS_MAX_BODY) {
      fail(c, AL_RECORD_OVERFLOW, "record too long");
      return n;
    }
    if (t->part_len == record_total(rec)) {
      *out_done = true;
      break;
    }
  }
  return taken;
}

size_t rw_tls_rec_received(struct rw_conn *c, uint8_t *at, size_t n)
{
  struct rw_tls_conn *t = c->transport_state;
  struct rw_worker *w = c->w;
  size_t off = 0;
  if (t->part != RW_NONE) {
    bool done;
    off = part_fill(c, at, n, &done);
    if (!done || stopped(c))
      return n;
    record(c, rw_pool_at(&w->transport_pool, t->part), t->part_len);
    slot_put(c, &t->part, &t->part_len);
  }
  while (!stopped(c) && n - off >= TLS_HEADER) {
    size_t total = record_total(at + off);
    if (total - TLS_HEADER > TLS_MAX_BODY) {
      fail(c, AL_RECORD_OVERFLOW, "record too long");
      break;
    }
    if (n - off < total)
      break;
    record(c, at + off, total);
    off += total;
  }
  if (stopped(c) || off == n)
    return n; /* (after a failure or close_notify the rest is dropped) */
  /* A record continues in a later receive: it waits in a slot. None free (io_uring: the driver
   * holds the rest; epoll asks before reading, see rw_tls_can_receive) pauses the connection. */
  t->part = rw_pool_get(&w->transport_pool);
  if (t->part == RW_NONE) {
    rw_conn_pause(c);
    return off;
  }
  memcpy(rw_pool_at(&w->transport_pool, t->part), at + off, n - off);
  t->part_len = (uint32_t)(n - off);
  return n;
}

/* Asked before reading (epoll), during the handshake too: the bytes that follow its last
 * record may end in a partial record, and a receive on epoll cannot be handed back. */
bool rw_tls_can_receive(const struct rw_conn *c)
{
  const struct rw_tls_conn *t = c->transport_state;
  return t->part != RW_NONE || c->w->transport_pool.nfree;
}
