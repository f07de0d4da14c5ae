#!/usr/bin/env python3
"""Prints the known-answer records tests/unit/test_record.c checks that RFC 8448 does not give:
a TLS 1.3 KeyUpdate exchange continuing RFC 8448 section 3's trace, and TLS 1.2 AES-GCM records
(RFC 5246 6.2.3.3, RFC 5288 3). Computed with python3-cryptography (OpenSSL), written from the
RFCs apart from src/tls/record.c, so that the C test compares against another implementation.
"""
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand


def expand_label(secret, label, length):
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def keys(secret):
    return expand_label(secret, b"key", 16), expand_label(secret, b"iv", 12)


def seal13(secret, seq, ctype, content):
    key, iv = keys(secret)
    nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big")))
    inner = content + bytes([ctype])
    hdr = bytes([23, 3, 3]) + (len(inner) + 16).to_bytes(2, "big")
    return hdr + AESGCM(key).encrypt(nonce, inner, hdr)


def seal12(key, salt, seq, ctype, content):
    explicit = seq.to_bytes(8, "big")
    ad = explicit + bytes([ctype, 3, 3]) + len(content).to_bytes(2, "big")
    body = explicit + AESGCM(key).encrypt(salt + explicit, content, ad)
    return bytes([ctype, 3, 3]) + len(body).to_bytes(2, "big") + body


def show(name, b):
    print(f"{name} ({len(b)}): {b.hex()}")


# RFC 8448 section 3: the application traffic secrets.
c0 = bytes.fromhex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
s0 = bytes.fromhex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
c1, s1 = expand_label(c0, b"traffic upd", 32), expand_label(s0, b"traffic upd", 32)
show("client secret 1", c1)
show("server secret 1", s1)
# The client asks for a KeyUpdate (seq 1, after its application data record at seq 0) ...
show("client KeyUpdate(update_requested), seq 1", seal13(c0, 1, 22, bytes([24, 0, 0, 1, 1])))
# ... the server answers under its old key (seq 2, after its data at 1), then both use new keys.
show("server KeyUpdate(update_not_requested), seq 2", seal13(s0, 2, 22, bytes([24, 0, 0, 1, 0])))
show("server data under key 1, seq 0", seal13(s1, 0, 23, b"after the key update"))
show("client data under key 1, seq 0", seal13(c1, 0, 23, b"ping after update"))

# TLS 1.2, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: the client's and server's write keys and salts.
ck, csalt = bytes(range(0x10, 0x20)), bytes.fromhex("a0a1a2a3")
sk, ssalt = bytes(range(0x40, 0x50)), bytes.fromhex("b0b1b2b3")
show("tls12 client data, seq 1", seal12(ck, csalt, 1, 23, b"GET / HTTP/1.1\r\n\r\n"))
show("tls12 server data, seq 1", seal12(sk, ssalt, 1, 23, b"HTTP/1.1 200 OK\r\n\r\n"))
show("tls12 server alert close_notify, seq 2", seal12(sk, ssalt, 2, 21, bytes([1, 0])))
show("tls12 client ClientHello (renegotiation), seq 2", seal12(ck, csalt, 2, 22, bytes([1, 0, 0, 0])))
