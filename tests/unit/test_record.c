/* The TLS record layer (src/tls/record.c), included whole, against known answers: RFC 8448
 * section 3's traffic secrets, IVs and records (TLS 1.3, TLS_AES_128_GCM_SHA256), and records
 * that tests/unit/record_vectors.py computes with python3-cryptography for what the RFC does not
 * show (a KeyUpdate continuing its trace; TLS 1.2 AES-GCM). Our side is the server. Every alert
 * the layer sends is read back by the test's own record opener; the core's connection calls are
 * replaced by recorders (the record layer's only contacts with conn.c: transport.h's lower API). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../../src/tls/record.c"

/* ---- the core, as the record layer sees it ---- */
static uint8_t plain[1 << 16];
static size_t plain_len;
static int closes, aborts;

size_t rw_conn_deliver(struct rw_conn *c, uint8_t *at, size_t n)
{
  (void)c;
  memcpy(plain + plain_len, at, n);
  plain_len += n;
  return n;
}
void rw_conn_held(struct rw_conn *c, size_t n)
{
  c->held = n;
}
void rw_conn_close(rw_conn *c)
{
  closes++;
  c->flags |= RW_CONN_CLOSING;
}
void rw_conn_close_err(struct rw_conn *c, int err)
{
  (void)err;
  rw_conn_close(c);
}
void rw_conn_abort(struct rw_conn *c, int err)
{
  (void)err;
  aborts++;
  c->flags |= RW_CONN_ABORT;
}
void rw_conn_pause(struct rw_conn *c)
{
  c->flags |= RW_CONN_PAUSED;
}
void rw_conn_mark_dirty(struct rw_conn *c)
{
  c->flags |= RW_CONN_DIRTY;
}

/* ---- vectors ---- */
/* Alert descriptions and levels as RFC 8446 6 numbers them (not record.c's names: a wrong
 * number there must fail here). */
enum {
  CLOSE_NOTIFY = 0,
  UNEXPECTED_MESSAGE = 10,
  BAD_RECORD_MAC = 20,
  RECORD_OVERFLOW = 22,
  DECODE_ERROR = 50,
  PROTOCOL_VERSION = 70,
  INTERNAL_ERROR = 80,
  USER_CANCELED = 90,
  NO_RENEGOTIATION = 100,
  WARNING = 1,
  FATAL = 2,
};

static size_t unhex(const char *s, uint8_t *out)
{
  size_t n = 0;
  for (; s[0] && s[1]; s += 2)
    out[n++] = (uint8_t)(hexval(s[0]) << 4 | hexval(s[1]));
  return n;
}

/* RFC 8448 section 3. */
#define C_SECRET "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"
#define S_SECRET "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
#define C_IV "5b78923dee08579033e523d9"
#define S_IV "cf782b88dd83549aadf1e984"
/* {client} send application_data record (seq 0), payload 00 01 .. 31 */
#define C_APP                                                                                                \
  "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b62974e1f" \
  "5a"                                                                                                       \
  "6292a2977014bd1e3deae63aeebb21694915e4"
/* {server} send application_data record (seq 1, after its NewSessionTicket), the same payload */
#define S_APP                                                                                                \
  "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb501a59a8fcc49c4b" \
  "f2"                                                                                                       \
  "e5f0a21c0047c2abf332540dd032e167c2955d"
#define C_ALERT "1703030013c9872760655666b74d7ff1153efd6db6d0b0e3" /* close_notify, seq 1 */
#define S_ALERT "1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9" /* close_notify, seq 2 */
/* record_vectors.py: the trace continued with a KeyUpdate. */
#define C_SECRET1 "fcdfcc72725aaee48bf64e4fd8b749cdbdbab39d90da0b26e2245ca6ea167207"
#define S_SECRET1 "51921b8aa3001976eb401d0a4319a8516416a6c56001a357e5d162031e84f916"
#define C_KEY_UPDATE "1703030016d08732885e9c37fd7edad287377db8486c7fcb28974e"
#define S_KEY_UPDATE "1703030016ac8fc3f16683a2187f7681ead842e4b06c55ffc8a059"
#define S_APP1 "170303002516cc703ff79ba0cd5d36965835b4dc1188bfd6bd42693915b5c52e8dde751904f955b91d23"
#define C_APP1 "170303002278b2dfe1e3e5a223fd1eb24ba1e41366753a50c698a14c427313d642d0f4a231c411"
/* record_vectors.py: TLS 1.2 AES-128-GCM. */
#define T12_C_APP \
  "170303002a0000000000000001d0757fd9b50dfc792d024b0f68da647580025d2a3f6ba481224b33f294ee063c1523"
#define T12_S_APP \
  "170303002b000000000000000130822b7b8edd2cea4922b2eca375f3641b403b1fe3adc297c20037385d4edfce380c64"
#define T12_S_ALERT "150303001a000000000000000242115094df4705e6c9a21d49fbad04fbb2ae"
#define T12_C_HELLO "160303001c000000000000000201703c8b682c46e7c6481b1bca1c5f79d46d0d59"

/* ---- a connection after the handshake ---- */
static struct rw_worker w;
static struct rw_conn c;
static struct rw_tls_conn t;
static uint32_t next_tab[64], len_tab[64];
static SSL_CTX *ctx;

static void common(uint16_t version)
{
  cr_assert_eq(rw_pool_init(&w.send_pool, 64, 16384 + 64), 0);
  cr_assert_eq(rw_pool_init(&w.transport_pool, 4, RW_TRANSPORT_SLOT), 0);
  w.chunk_next = next_tab;
  w.chunk_len = len_tab;
  c = (struct rw_conn){.w = &w,
                       .transport_state = &t,
                       .flags = RW_CONN_LIVE,
                       .acc = RW_NONE,
                       .sq_head = RW_NONE,
                       .sq_tail = RW_NONE};
  ctx = SSL_CTX_new(TLS_method());
  t.ssl = SSL_new(ctx);
  SSL_set_accept_state(t.ssl);
  SSL_set_app_data(t.ssl, &c);
  t.flags = TLS_HANDSHAKEN;
  t.part = t.out = RW_NONE;
  t.version = version;
  t.aead = EVP_aead_aes_128_gcm();
}

/* TLS 1.3 where RFC 8448's trace stands after the handshake: the secrets arrive through the
 * key-log hook as BoringSSL hands them over; the server sent its ticket (write seq 1). */
static void setup13(void)
{
  common(TLS1_3_VERSION);
  t.md = EVP_sha256();
  rw_tls_rec_keylog(t.ssl, "CLIENT_TRAFFIC_SECRET_0 00 " C_SECRET);
  rw_tls_rec_keylog(t.ssl, "SERVER_TRAFFIC_SECRET_0 00 " S_SECRET);
  cr_assert_eq(t.flags & (TLS_HAVE_READ_SECRET | TLS_HAVE_WRITE_SECRET),
               TLS_HAVE_READ_SECRET | TLS_HAVE_WRITE_SECRET);
  cr_assert_eq(keys_from_secret(&t, &t.rd, t.rd.secret), 0);
  cr_assert_eq(keys_from_secret(&t, &t.wr, t.wr.secret), 0);
  t.wr.seq = 1;
}

/* TLS 1.2 after Finished (seq 0 each way): record_vectors.py's keys and salts. */
static void setup12(void)
{
  common(TLS1_2_VERSION);
  t.explicit_nonce = true;
  uint8_t ck[16], sk[16];
  for (int i = 0; i < 16; i++)
    ck[i] = (uint8_t)(0x10 + i), sk[i] = (uint8_t)(0x40 + i);
  cr_assert_eq(keys_init(&t.rd, t.aead, ck, 16), 0);
  cr_assert_eq(keys_init(&t.wr, t.aead, sk, 16), 0);
  unhex("a0a1a2a3", t.rd.iv);
  unhex("b0b1b2b3", t.wr.iv);
  t.rd.seq = t.wr.seq = 1;
}

static void teardown(void)
{
  rw_tls_rec_free(&c);
  SSL_free(t.ssl);
  SSL_CTX_free(ctx);
  rw_sendq_drop(&w, &c);
  rw_pool_fini(&w.send_pool);
  rw_pool_fini(&w.transport_pool);
}

/* Everything sealed into the send chain so far, in order. */
static size_t sent(uint8_t *out)
{
  struct iovec iov[64];
  int n = rw_sendq_iov(&w, &c, iov, 64);
  size_t len = 0;
  for (int i = 0; i < n; i++) {
    memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
    len += iov[i].iov_len;
  }
  return len;
}

static void expect_sent(const char *hex)
{
  static uint8_t want[1 << 16], got[1 << 16];
  size_t wn = unhex(hex, want), gn = sent(got);
  cr_assert_eq(gn, wn, "sent %zu bytes, expected %zu", gn, wn);
  cr_assert_arr_eq(got, want, wn, "the records differ from the known answer");
}

/* Hands `hex` to the layer as one receive, or in pieces of `piece` bytes. */
static void receive_hex(const char *hex, size_t piece)
{
  static uint8_t buf[1 << 16];
  size_t n = unhex(hex, buf);
  for (size_t off = 0; off < n; off += piece) {
    size_t k = n - off < piece ? n - off : piece;
    cr_assert_eq(rw_tls_rec_received(&c, buf + off, k), k);
  }
}

static const uint8_t *payload50(void)
{
  static uint8_t p[50];
  for (int i = 0; i < 50; i++)
    p[i] = (uint8_t)i;
  return p;
}

static void write_flush(const void *p, size_t n)
{
  struct iovec v = {(void *)p, n};
  cr_assert_eq(rw_tls_write(&c, &v, 1), 0);
  cr_assert_eq(rw_tls_flush(&c), 0);
}

/* ---- the test's own records: sealed and opened with the AEAD directly, not by record.c ---- */
static void peer_nonce(const uint8_t iv[12], uint64_t seq, uint8_t out[12])
{
  memcpy(out, iv, 12);
  for (int i = 0; i < 8; i++)
    out[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
}

/* A TLS 1.3 record of the client's (under `peer_secret`) at `seq`: `content`, inner type, `pad`
 * zeros. */
static const char *peer_secret = C_SECRET;
static size_t peer_seal13(uint64_t seq, uint8_t type, const uint8_t *content, size_t len, size_t pad,
                          uint8_t *out)
{
  uint8_t key[16], iv[12], nonce[12], secret[32];
  static uint8_t inner[1 << 16];
  unhex(peer_secret, secret);
  cr_assert_eq(HKDF_expand(key, 16, EVP_sha256(), secret, 32, (const uint8_t *)"\0\x10\x09tls13 key\0", 13),
               1);
  cr_assert_eq(HKDF_expand(iv, 12, EVP_sha256(), secret, 32, (const uint8_t *)"\0\x0c\x08tls13 iv\0", 12), 1);
  if (len) /* (memcpy may not be handed NULL) */
    memcpy(inner, content, len);
  inner[len] = type;
  memset(inner + len + 1, 0, pad);
  size_t ilen = len + 1 + pad, olen;
  out[0] = 23, out[1] = 3, out[2] = 3, out[3] = (uint8_t)((ilen + 16) >> 8), out[4] = (uint8_t)(ilen + 16);
  EVP_AEAD_CTX a;
  cr_assert(EVP_AEAD_CTX_init(&a, EVP_aead_aes_128_gcm(), key, 16, 16, NULL));
  peer_nonce(iv, seq, nonce);
  cr_assert(EVP_AEAD_CTX_seal(&a, out + 5, &olen, ilen + 16, nonce, 12, inner, ilen, out, 5));
  EVP_AEAD_CTX_cleanup(&a);
  return 5 + olen;
}

static void peer_receive13(uint64_t seq, uint8_t type, const void *content, size_t len)
{
  static uint8_t rec[1 << 16];
  size_t n = peer_seal13(seq, type, content, len, 0, rec);
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
}

/* Opens our last TLS 1.3 record with the server's key 0 at `seq`: returns its inner type. */
static uint8_t peer_open13_last(uint64_t seq, uint8_t *content, size_t *len)
{
  static uint8_t out[1 << 16];
  size_t n = sent(out), at = 0;
  cr_assert_geq(n, 5 + 17);
  while (at + 5 + (size_t)(out[at + 3] << 8 | out[at + 4]) < n)
    at += 5 + (size_t)(out[at + 3] << 8 | out[at + 4]);
  uint8_t key[16], iv[12], nonce[12], secret[32];
  unhex(S_SECRET, secret);
  cr_assert_eq(HKDF_expand(key, 16, EVP_sha256(), secret, 32, (const uint8_t *)"\0\x10\x09tls13 key\0", 13),
               1);
  unhex(S_IV, iv);
  peer_nonce(iv, seq, nonce);
  EVP_AEAD_CTX a;
  cr_assert(EVP_AEAD_CTX_init(&a, EVP_aead_aes_128_gcm(), key, 16, 16, NULL));
  size_t blen = n - at - 5;
  cr_assert(EVP_AEAD_CTX_open(&a, content, len, blen, nonce, 12, out + at + 5, blen, out + at, 5),
            "our record does not open under the server's key at seq %llu", (unsigned long long)seq);
  EVP_AEAD_CTX_cleanup(&a);
  while (*len && !content[*len - 1])
    --*len;
  cr_assert_gt(*len, 0);
  return content[--*len];
}

/* The connection ended with a fatal alert `desc`, sealed as our record `seq`. */
static void expect_alert13(uint64_t seq, uint8_t desc)
{
  uint8_t content[64];
  size_t len;
  cr_assert_eq(peer_open13_last(seq, content, &len), CT_ALERT, "the last record is not an alert");
  cr_assert_eq(len, 2);
  cr_assert_eq(content[0], FATAL);
  cr_assert_eq(content[1], desc, "alert %u, expected %u", content[1], desc);
  cr_assert(t.flags & TLS_FAILED);
  cr_assert_eq(closes, 1);
  cr_assert_eq(plain_len, 0, "no plaintext from a refused record");
}

TestSuite(rfc8448, .init = setup13, .fini = teardown);

Test(rfc8448, traffic_keys)
{
  uint8_t iv[12];
  unhex(C_IV, iv);
  cr_assert_arr_eq(t.rd.iv, iv, 12, "client write IV");
  unhex(S_IV, iv);
  cr_assert_arr_eq(t.wr.iv, iv, 12, "server write IV");
  cr_assert_eq(t.secret_len, 32);
}

/* The test's own sealer agrees with the RFC: the records it makes below are real ones. */
Test(rfc8448, peer_sealer)
{
  uint8_t got[128], want[128];
  size_t n = peer_seal13(0, CT_APPDATA, payload50(), 50, 0, got);
  cr_assert_eq(n, unhex(C_APP, want));
  cr_assert_arr_eq(got, want, n);
}

Test(rfc8448, open)
{
  receive_hex(C_APP, 1 << 16);
  cr_assert_eq(plain_len, 50);
  cr_assert_arr_eq(plain, payload50(), 50);
  cr_assert_eq(t.rd.seq, 1);
  cr_assert_eq(closes + aborts, 0);
}

/* The same record in every cut: the piece that ends a receive waits in a slot. */
Test(rfc8448, open_in_pieces)
{
  for (size_t piece = 1; piece <= 72; piece++) {
    plain_len = 0;
    t.rd.seq = 0;
    receive_hex(C_APP, piece);
    cr_assert_eq(plain_len, 50, "pieces of %zu", piece);
    cr_assert_arr_eq(plain, payload50(), 50);
    cr_assert_eq(t.part, RW_NONE, "the slot goes back once the record is whole");
    cr_assert_eq(w.transport_pool.nfree, 4);
  }
}

Test(rfc8448, seal)
{
  write_flush(payload50(), 50);
  expect_sent(S_APP);
  cr_assert_eq(t.wr.seq, 2);
  cr_assert_eq(c.queued, 72);
}

/* Writes gathered in a turn leave as one record; an empty piece with no base adds nothing. */
Test(rfc8448, seal_gathered)
{
  struct iovec v[4] = {{(void *)payload50(), 20}, {NULL, 0}, {(void *)(payload50() + 20), 30}};
  cr_assert_eq(rw_tls_write(&c, v, 2), 0);
  cr_assert_eq(rw_tls_write(&c, v + 1, 2), 0);
  cr_assert_eq(c.queued + c.held, 50, "counted as queued while they wait");
  cr_assert_eq(rw_tls_flush(&c), 0);
  expect_sent(S_APP);
}

/* Both close_notify records of the trace: the client's closes the connection gracefully, ours
 * goes out behind our data. */
Test(rfc8448, close_notify)
{
  receive_hex(C_APP C_ALERT, 1 << 16);
  cr_assert_eq(plain_len, 50);
  cr_assert_eq(closes, 1);
  cr_assert_not(t.flags & TLS_FAILED);
  struct iovec v = {(void *)payload50(), 50};
  cr_assert_eq(rw_tls_write(&c, &v, 1), 0);
  rw_tls_rec_alert(&c, WARNING, CLOSE_NOTIFY); /* (seals the gathered data first) */
  expect_sent(S_APP S_ALERT);
  cr_assert_eq(rw_tls_write(&c, &v, 1), -EPIPE, "nothing is sealed after close_notify");
}

/* The client asks for a KeyUpdate: our answer goes under the old key, everything after under
 * the next secret, whose value and records match an independent computation. */
Test(rfc8448, key_update)
{
  write_flush(payload50(), 50);
  receive_hex(C_APP C_KEY_UPDATE, 1 << 16);
  cr_assert_eq(closes + aborts, 0);
  uint8_t s1[32], c1[32];
  unhex(C_SECRET1, c1);
  unhex(S_SECRET1, s1);
  cr_assert_arr_eq(t.rd.secret, c1, 32, "the client's next secret");
  cr_assert_arr_eq(t.wr.secret, s1, 32, "our next secret");
  cr_assert_eq(t.rd.seq, 0);
  cr_assert_eq(t.wr.seq, 0);
  write_flush("after the key update", 20);
  expect_sent(S_APP S_KEY_UPDATE S_APP1);
  receive_hex(C_APP1, 7);
  cr_assert_eq(plain_len, 50 + 17);
  cr_assert_arr_eq(plain + 50, "ping after update", 17);
}

/* A second request before we sent data again is covered by the first answer (RFC 8446 4.6.3):
 * a peer cannot make us queue a reply per record. */
Test(rfc8448, key_update_answered_once)
{
  uint8_t ku[5] = {HS_KEY_UPDATE, 0, 0, 1, 1}, out[256];
  peer_receive13(0, CT_HANDSHAKE, ku, 5);
  cr_assert_eq(t.wr.seq, 0, "answered: our key changed");
  size_t once = sent(out);
  peer_secret = C_SECRET1; /* the client's next request comes under its next key */
  peer_receive13(0, CT_HANDSHAKE, ku, 5);
  cr_assert_eq(closes + aborts, 0);
  cr_assert_eq(sent(out), once, "not answered twice");
  uint8_t s1[32];
  unhex(S_SECRET1, s1);
  cr_assert_arr_eq(t.wr.secret, s1, 32, "our key changed once");
  cr_assert_neq(memcmp(t.rd.secret, s1, 32), 0);
  /* After data of ours, a request needs its own answer again. */
  cr_assert(t.key_update_answered);
  write_flush("x", 1);
  cr_assert_not(t.key_update_answered);
}

/* Our own key rotates before AES-GCM's limit: a KeyUpdate, not requesting one, then key 1. */
Test(rfc8448, rotation_before_the_limit)
{
  t.wr.seq = KEY_UPDATE_AT - 1;
  write_flush("x", 1);
  uint8_t s1[32];
  unhex(S_SECRET1, s1);
  cr_assert_arr_eq(t.wr.secret, s1, 32);
  cr_assert_eq(t.wr.seq, 0);
  uint8_t content[64];
  size_t len;
  cr_assert_eq(peer_open13_last(KEY_UPDATE_AT, content, &len), CT_HANDSHAKE);
  cr_assert_eq(len, 5);
  cr_assert_arr_eq(content, ((uint8_t[]){HS_KEY_UPDATE, 0, 0, 1, 0}), 5);
}

/* Sequence numbers: one per record each way; a replayed or skipped one fails the tag. */
Test(rfc8448, replayed_record)
{
  receive_hex(C_APP C_APP, 1 << 16);
  cr_assert_eq(plain_len, 50);
  plain_len = 0;
  expect_alert13(1, BAD_RECORD_MAC);
}

Test(rfc8448, skipped_sequence_number)
{
  static uint8_t rec[128];
  size_t n = peer_seal13(1, CT_APPDATA, payload50(), 50, 0, rec);
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
  expect_alert13(1, BAD_RECORD_MAC);
}

Test(rfc8448, padding_and_sequence)
{
  static uint8_t rec[8192];
  size_t n = 0;
  for (int i = 0; i < 10; i++)
    n += peer_seal13((uint64_t)i, CT_APPDATA, payload50(), 50, (size_t)i * 100, rec + n);
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
  cr_assert_eq(plain_len, 500);
  cr_assert_eq(t.rd.seq, 10);
  for (int i = 0; i < 3; i++)
    write_flush(payload50(), 50);
  cr_assert_eq(t.wr.seq, 4);
}

/* ---- every alert this layer sends, each for a reason it names ---- */
Test(rfc8448, alert_bad_record_mac)
{
  static uint8_t rec[128];
  size_t n = unhex(C_APP, rec);
  rec[40] ^= 1;
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
  expect_alert13(1, BAD_RECORD_MAC);
}

Test(rfc8448, alert_record_overflow_length)
{
  uint8_t hdr[5] = {23, 3, 3, (TLS_MAX_BODY + 1) >> 8, (uint8_t)(TLS_MAX_BODY + 1)};
  cr_assert_eq(rw_tls_rec_received(&c, hdr, 5), 5);
  expect_alert13(1, RECORD_OVERFLOW);
}

Test(rfc8448, alert_record_overflow_plaintext)
{
  static uint8_t big[MAX_PLAIN + 1];
  peer_receive13(0, CT_APPDATA, big, sizeof big);
  expect_alert13(1, RECORD_OVERFLOW);
}

Test(rfc8448, alert_unexpected_outer_type)
{
  static uint8_t rec[128];
  size_t n = unhex(C_APP, rec);
  rec[0] = CT_HANDSHAKE;
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
  expect_alert13(1, UNEXPECTED_MESSAGE);
}

Test(rfc8448, alert_no_content_type)
{
  static uint8_t rec[128];
  size_t n = peer_seal13(0, 0, NULL, 0, 20, rec); /* all zeros: no type */
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
  expect_alert13(1, UNEXPECTED_MESSAGE);
}

Test(rfc8448, alert_ticket_to_a_server)
{
  uint8_t m[8] = {HS_NEW_SESSION_TICKET, 0, 0, 4, 1, 2, 3, 4};
  peer_receive13(0, CT_HANDSHAKE, m, sizeof m);
  expect_alert13(1, UNEXPECTED_MESSAGE);
}

Test(rfc8448, alert_empty_handshake_record)
{
  peer_receive13(0, CT_HANDSHAKE, NULL, 0);
  expect_alert13(1, UNEXPECTED_MESSAGE);
}

Test(rfc8448, alert_key_update_not_last)
{
  uint8_t m[6] = {HS_KEY_UPDATE, 0, 0, 1, 0, HS_KEY_UPDATE};
  peer_receive13(0, CT_HANDSHAKE, m, sizeof m);
  expect_alert13(1, UNEXPECTED_MESSAGE);
}

Test(rfc8448, alert_handshake_interrupted)
{
  uint8_t m[2] = {HS_KEY_UPDATE, 0};
  peer_receive13(0, CT_HANDSHAKE, m, sizeof m);
  peer_receive13(1, CT_APPDATA, "data", 4);
  expect_alert13(1, UNEXPECTED_MESSAGE);
}

/* 32 records in a row without data pass (BoringSSL's limit too); the 33rd does not. */
Test(rfc8448, alert_too_many_empty_records)
{
  for (uint64_t i = 0; i < 32; i++)
    peer_receive13(i, CT_APPDATA, NULL, 0);
  cr_assert_eq(closes, 0);
  peer_receive13(32, CT_APPDATA, NULL, 0);
  expect_alert13(1, UNEXPECTED_MESSAGE);
}

Test(rfc8448, alert_decode_error_key_update_length)
{
  uint8_t m[6] = {HS_KEY_UPDATE, 0, 0, 2, 0, 0};
  peer_receive13(0, CT_HANDSHAKE, m, sizeof m);
  expect_alert13(1, DECODE_ERROR);
}

Test(rfc8448, alert_decode_error_key_update_value)
{
  uint8_t m[5] = {HS_KEY_UPDATE, 0, 0, 1, 2};
  peer_receive13(0, CT_HANDSHAKE, m, sizeof m);
  expect_alert13(1, DECODE_ERROR);
}

Test(rfc8448, alert_decode_error_alert_length)
{
  uint8_t m[3] = {FATAL, 40, 0};
  peer_receive13(0, CT_ALERT, m, sizeof m);
  expect_alert13(1, DECODE_ERROR);
}

Test(rfc8448, alert_internal_error_sequence_exhausted)
{
  t.rd.seq = UINT64_MAX;
  receive_hex(C_APP, 1 << 16);
  expect_alert13(1, INTERNAL_ERROR);
}

/* ---- alerts received ---- */
Test(rfc8448, fatal_alert_received)
{
  uint8_t m[2] = {FATAL, 40};
  peer_receive13(0, CT_ALERT, m, 2);
  peer_receive13(1, CT_APPDATA, "late", 4); /* dropped */
  cr_assert_eq(closes, 1);
  cr_assert(t.flags & TLS_FAILED);
  cr_assert(t.flags & TLS_SHUTDOWN_SENT, "no reply to a fatal alert");
  uint8_t out[8];
  cr_assert_eq(sent(out), 0);
  cr_assert_eq(plain_len, 0);
}

Test(rfc8448, user_canceled_received)
{
  uint8_t m[2] = {WARNING, USER_CANCELED};
  peer_receive13(0, CT_ALERT, m, 2);
  peer_receive13(1, CT_APPDATA, "more", 4);
  cr_assert_eq(closes, 0);
  cr_assert_eq(plain_len, 4);
}

/* ---- TLS 1.2 AES-GCM ---- */
TestSuite(tls12, .init = setup12, .fini = teardown);

Test(tls12, open)
{
  receive_hex(T12_C_APP, 5);
  cr_assert_eq(plain_len, 18);
  cr_assert_arr_eq(plain, "GET / HTTP/1.1\r\n\r\n", 18);
  cr_assert_eq(t.rd.seq, 2);
}

Test(tls12, seal_and_close_notify)
{
  write_flush("HTTP/1.1 200 OK\r\n\r\n", 19);
  rw_tls_rec_alert(&c, WARNING, CLOSE_NOTIFY);
  expect_sent(T12_S_APP T12_S_ALERT);
}

static void expect_alert12(uint8_t desc)
{
  static uint8_t out[4096];
  size_t n = sent(out);
  cr_assert_eq(n, 5 + 8 + 2 + 16);
  cr_assert_eq(out[0], CT_ALERT);
  uint8_t sk[16], nonce[12], ad[13], content[32];
  for (int i = 0; i < 16; i++)
    sk[i] = (uint8_t)(0x40 + i);
  unhex("b0b1b2b3", nonce);
  memcpy(nonce + 4, out + 5, 8);
  memcpy(ad, out + 5, 8); /* explicit nonce = the sequence number */
  ad[8] = CT_ALERT, ad[9] = 3, ad[10] = 3, ad[11] = 0, ad[12] = 2;
  EVP_AEAD_CTX a;
  size_t len;
  cr_assert(EVP_AEAD_CTX_init(&a, EVP_aead_aes_128_gcm(), sk, 16, 16, NULL));
  cr_assert(EVP_AEAD_CTX_open(&a, content, &len, sizeof content, nonce, 12, out + 13, 18, ad, 13));
  EVP_AEAD_CTX_cleanup(&a);
  cr_assert_eq(len, 2);
  cr_assert_eq(content[0], FATAL);
  cr_assert_eq(content[1], desc, "alert %u, expected %u", content[1], desc);
  cr_assert_eq(closes, 1);
}

Test(tls12, alert_no_renegotiation)
{
  receive_hex(T12_C_APP T12_C_HELLO, 1 << 16);
  cr_assert_eq(plain_len, 18);
  expect_alert12(NO_RENEGOTIATION);
}

Test(tls12, alert_protocol_version)
{
  static uint8_t rec[128];
  size_t n = unhex(T12_C_APP, rec);
  rec[2] = 1; /* TLS 1.0 */
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
  expect_alert12(PROTOCOL_VERSION);
}

Test(tls12, alert_bad_record_mac_wrong_sequence)
{
  t.rd.seq = 2;
  receive_hex(T12_C_APP, 1 << 16);
  expect_alert12(BAD_RECORD_MAC);
}

Test(tls12, alert_unexpected_type)
{
  static uint8_t rec[128];
  size_t n = unhex(T12_C_APP, rec);
  rec[0] = 20; /* ChangeCipherSpec: over after the handshake */
  cr_assert_eq(rw_tls_rec_received(&c, rec, n), n);
  expect_alert12(UNEXPECTED_MESSAGE);
}

Test(tls12, sequence_exhausted)
{
  t.wr.seq = UINT64_MAX;
  struct iovec v = {(void *)payload50(), 50};
  cr_assert_eq(rw_tls_write(&c, &v, 1), 0); /* gathered */
  cr_assert_eq(rw_tls_flush(&c), -EOVERFLOW, "TLS 1.2 cannot rekey: the connection ends");
}
