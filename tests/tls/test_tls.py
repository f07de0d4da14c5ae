#!/usr/bin/python3
"""TLS end to end (BoringSSL in the runtime), with certificates made here by the openssl
command and real clients: curl --cacert, openssl s_client, Python's ssl, redis-cli --tls.
Run from the repository root: /usr/bin/python3 tests/tls/test_tls.py [-v]
$RW_BIN picks the build (default build/asan/bin), $RW_BACKEND the backend.
"""
import os
import random
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kvd"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "httpd"))
from rwtest import MALLOC_COUNT, Server, skip_without_uring  # noqa: E402
from test_httpd import closed, multipart, read_response  # noqa: E402
from test_kvd import Reader, mcb, mcb_parse, resp_cmd  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402  (python3-cryptography)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand  # noqa: E402
CERTS = tempfile.TemporaryDirectory()


def make_certs():
    d = CERTS.name
    run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=ringwright test CA")
    for name in ("localhost", "other.test"):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{name},IP:127.0.0.1\n")
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext")
    # An ECDSA (P-256) certificate for localhost too, to serve beside the RSA one.
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ec.key",
        "-out", "ec.csr", "-subj", "/CN=localhost")
    run("openssl", "x509", "-req", "-in", "ec.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "ec.crt", "-days", "1", "-extfile", "localhost.ext")


def cert_args():
    d = CERTS.name
    return ["--tls-cert", f"{d}/localhost.crt", "--tls-key", f"{d}/localhost.key",
            "--tls-cert", f"{d}/other.test.crt", "--tls-key", f"{d}/other.test.key"]


def memory_handshake(ctx, port):
    """A handshake over a socket through Python's memory BIOs; returns (socket, SSLObject,
    incoming BIO, outgoing BIO) with the client's Finished sent and nothing read after it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed during the handshake")
            inc.write(data)
    sock.sendall(out.read())  # the client's Finished
    return sock, obj, inc, out


def client_ctx(alpn=None):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS.name, "ca.crt"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class Https(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        make_certs()
        cls.dir = tempfile.TemporaryDirectory()
        with open(os.path.join(cls.dir.name, "index.html"), "w") as f:
            f.write("<h1>secure</h1>\n")
        cls.big = os.urandom(2 * 1024 * 1024 + 5)
        with open(os.path.join(cls.dir.name, "big.bin"), "wb") as f:
            f.write(cls.big)
        cls.srv = Server(["httpd", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", cls.dir.name,
                          "--workers", "2"] + cert_args(), 2)
        cls.plain, cls.port = cls.srv.ports

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.text()
        cls.dir.cleanup()

    def https(self, path, server_name="localhost", version=None, close=False):
        ctx = client_ctx(["http/1.1"])
        if version:
            ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name, suppress_ragged_eofs=False) as s:
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, b"Connection: close\r\n" if close else b""))
                data = b""
                while True:
                    chunk = s.recv(65536)  # raises on an EOF without close_notify
                    if not chunk:
                        break
                    data += chunk
                    if not close and b"\r\n\r\n" in data:
                        head, body = data.split(b"\r\n\r\n", 1)
                        n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                        if len(body) >= n:
                            break
                return s.version(), s.selected_alpn_protocol(), s.getpeercert(), data

    def test_versions_alpn_and_close_notify(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            got, alpn, _, data = self.https(b"/", version=version, close=True)
            self.assertEqual(got, version.name.replace("v1_", "v1.").replace("TLS", "TLS"))
            self.assertEqual(alpn, "http/1.1")
            self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"))
            self.assertTrue(data.endswith(b"<h1>secure</h1>\n"))  # and a clean close_notify

    def test_start_up_lines_tell_the_tls_listener(self):
        self.assertEqual(self.srv.protos, ["http1", "http1, tls"])

    def test_head_of_any_size(self):
        """HEAD of a streamed file (past --cache-file-max) and of a cached one over TLS 1.2 and
        1.3: the file's length and no body, first on a connection or pipelined behind other
        replies; then the same through openssl s_client -quiet."""
        reqs = [(b"HEAD", b"/big.bin"), (b"GET", b"/index.html"), (b"HEAD", b"/big.bin"), (b"HEAD", b"/index.html"),
                (b"HEAD", b"/big.bin")]
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_ctx(["http/1.1"])
            ctx.minimum_version = ctx.maximum_version = version
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=10),
                                 server_hostname="localhost") as s:
                s.sendall(b"".join(b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % r for r in reqs)
                          + b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                buf = b""
                for method, path in reqs + [(b"HEAD", b"/big.bin")]:
                    status, headers, body, buf = read_response(s, buf, to_head=method == b"HEAD")
                    size = len(self.big) if path == b"/big.bin" else 16
                    self.assertEqual((status, int(headers["content-length"])), (200, size), (version, method, path))
                    self.assertEqual(body, b"" if method == b"HEAD" else b"<h1>secure</h1>\n", (version, method, path))
                self.assertEqual(buf, b"", version)
                self.assertTrue(closed(s), version)
        out = subprocess.run(["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{self.port}"],
                             input=b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                             capture_output=True, timeout=30)
        self.assertTrue(out.stdout.startswith(b"HTTP/1.1 200 OK\r\n"), out.stdout + out.stderr)
        self.assertIn(b"Content-Length: %d\r\n" % len(self.big), out.stdout)
        self.assertTrue(out.stdout.endswith(b"\r\n\r\n"), out.stdout)

    def test_sni_picks_the_certificate(self):
        for name in ("localhost", "other.test"):
            _, _, cert, _ = self.https(b"/", server_name=name)
            self.assertIn(("DNS", name), cert["subjectAltName"])

    def test_large_file(self):
        _, _, _, data = self.https(b"/big.bin", close=True)
        self.assertEqual(data.split(b"\r\n\r\n", 1)[1], self.big)

    def test_curl_and_s_client(self):
        out = subprocess.run(["curl", "-sS", "--cacert", os.path.join(CERTS.name, "ca.crt"), "-w", "%{http_code}",
                              f"https://localhost:{self.port}/", f"https://localhost:{self.port}/index.html"],
                             capture_output=True, timeout=30)
        self.assertEqual(out.stdout, b"<h1>secure</h1>\n200<h1>secure</h1>\n200", out.stderr)
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-alpn", "http/1.1",
                              "-servername", "localhost", "-CAfile", os.path.join(CERTS.name, "ca.crt")],
                             input=b"", capture_output=True, timeout=30).stdout
        self.assertIn(b"ALPN protocol: http/1.1", out)
        self.assertIn(b"Verify return code: 0 (ok)", out)

    def test_ranges_over_tls(self):
        """Ranges of a streamed file over TLS: one, several (multipart, each part read off the
        loop and sealed), a 416, and curl -C - resuming a partial download."""
        base, ca = f"https://localhost:{self.port}", os.path.join(CERTS.name, "ca.crt")
        big = self.big
        out = subprocess.run(["curl", "-sS", "--cacert", ca, "-r", "1000-300000", f"{base}/big.bin"],
                             capture_output=True, timeout=30)
        self.assertEqual(out.stdout, big[1000:300001], out.stderr)
        out = subprocess.run(["curl", "-sS", "--cacert", ca, "-D", "-", "-r", "0-9,100000-200000,-20",
                              f"{base}/big.bin"], capture_output=True, timeout=30)
        head, body = out.stdout.split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().lower().split("\r\n")[1:])
        self.assertEqual(int(headers["content-length"]), len(body))
        headers["content-type"] = head.decode().split("Content-Type: ")[1].split("\r\n")[0]
        self.assertEqual([p[2] for p in multipart(headers, body)], [big[:10], big[100000:200001], big[-20:]])
        out = subprocess.run(["curl", "-sS", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", "-r",
                              f"{len(big)}-", f"{base}/big.bin"], capture_output=True, timeout=30)
        self.assertEqual(out.stdout, b"416")
        with tempfile.TemporaryDirectory() as d:
            dest = os.path.join(d, "big.bin")
            with open(dest, "wb") as f:
                f.write(big[:12345])
            out = subprocess.run(["curl", "-sS", "--cacert", ca, "-C", "-", "-o", dest, "-w", "%{http_code}",
                                  f"{base}/big.bin"], capture_output=True, timeout=30)
            self.assertEqual(out.stdout, b"206", out.stderr)
            with open(dest, "rb") as f:
                self.assertEqual(f.read(), big)

    def test_session_resumption(self):
        # TLS 1.2: the ticket comes in the handshake; TLS 1.3: after it, sealed by BoringSSL
        # before the record layer takes over (at the sequence numbers it then continues from).
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_ctx()
            ctx.minimum_version = ctx.maximum_version = version
            session = None
            for attempt in range(2):
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        self.assertIn(b"200 OK", s.recv(65536))
                        self.assertTrue(s.session.has_ticket, version)
                        self.assertEqual(s.session_reused, attempt == 1, version)
                        session = s.session

    def test_protocol_edges_over_tls(self):
        """Over TLS as in plain: 100 Continue before the body, a refusal at once, HTTP/1.2 served,
        HTTP/2.0 505, an absolute-form target, and the parser's 431 with Date and Server."""
        ctx = client_ctx()

        def conn():
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            return ctx.wrap_socket(raw, server_hostname="localhost")

        with conn() as s:
            s.sendall(b"GET /index.html HTTP/1.2\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
            # (The file may be answered at once after the 100, its body read and dropped later.)
            want = b"HTTP/1.1 100 Continue\r\n\r\n"
            got = b""
            while len(got) < len(want):
                got += s.recv(len(want) - len(got))
            self.assertEqual(got, want)
            s.sendall(b"abcGET https://localhost/ HTTP/1.1\r\nHost: y\r\n\r\n")
            status, _, body, buf = read_response(s)
            self.assertEqual((status, body), (200, b"<h1>secure</h1>\n"))
            self.assertEqual(read_response(s, buf)[:3:2], (200, b"<h1>secure</h1>\n"))
        for req, want in ((b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", 405),
                          (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
                          (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"x" * 70000 + b"\r\n\r\n", 431)):
            with conn() as s:
                s.sendall(req)
                status, headers, _, _ = read_response(s)
                self.assertEqual((status, headers["connection"], headers["server"]), (want, "close", "ringwright-httpd"))
                self.assertIn("date", headers)
                self.assertTrue(closed(s))

    def test_certificate_by_signature_algorithms(self):
        """An ECDSA and an RSA certificate for one name (ECDSA the default, as listed first): a
        client that accepts only RSA signatures gets the RSA one, an ECDSA-only client the
        ECDSA one, with SNI or without, on TLS 1.2 and 1.3 (as nginx serves them)."""
        d = CERTS.name
        srv = Server(["httpd", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", self.dir.name,
                      "--tls-cert", f"{d}/ec.crt", "--tls-key", f"{d}/ec.key"] + cert_args(), 2)
        try:
            port = srv.ports[1]
            for version in ("-tls1_2", "-tls1_3"):
                for sigalgs, kind, bits in (("RSA-PSS+SHA256", "RSA-PSS", 2048), ("ECDSA+SHA256", "ECDSA", 256),
                                            ("RSA-PSS+SHA256:ECDSA+SHA256", "ECDSA", 256)):
                    for name in (["-servername", "localhost"], ["-noservername"]):
                        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", version,
                                              "-sigalgs", sigalgs, "-CAfile", f"{d}/ca.crt", "-ign_eof"] + name,
                                             input=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                             capture_output=True, timeout=30).stdout
                        what = (version, sigalgs, name)
                        self.assertIn(b"Peer signature type: %s\n" % kind.encode(), out, what)
                        self.assertIn(b"Server public key is %d bit" % bits, out, what)
                        self.assertIn(b"Verify return code: 0 (ok)", out, what)
                        self.assertIn(b"<h1>secure</h1>", out, what)
            # SNI still picks by name first: other.test has only its RSA certificate.
            out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "other.test",
                                  "-sigalgs", "RSA-PSS+SHA256:ECDSA+SHA256", "-CAfile", f"{d}/ca.crt"],
                                 input=b"", capture_output=True, timeout=30).stdout
            self.assertIn(b"subject=CN = other.test", out)
            # A client that accepts no key type we have still fails, on that connection only.
            out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-sigalgs",
                                  "ed25519"], input=b"", capture_output=True, timeout=30)
            self.assertNotIn(b"Peer signature type", out.stdout)
            self.assertEqual(self.https(b"/")[3].split(b"\r\n\r\n", 1)[1], b"<h1>secure</h1>\n")
        finally:
            self.assertEqual(srv.stop(), 0, srv.text())

    # ---- our record layer (src/tls/record.c): after the handshake every record is ours ----

    def raw(self, version):
        """A client whose ciphertext the test holds: records made by Python's ssl in memory, to
        be cut, tampered with or forged before they are sent."""
        ctx = client_ctx(["http/1.1"])
        ctx.minimum_version = ctx.maximum_version = version
        return memory_handshake(ctx, self.port)

    def read_plain(self, sock, obj, inc, until):
        """Plaintext until `until(data)` holds or the server closes; the TLS error if one ends it."""
        data = b""
        while not until(data):
            try:
                data += obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLError, ssl.SSLZeroReturnError) as e:
                return data, e
            chunk = sock.recv(65536)
            if not chunk:
                inc.write_eof()
            else:
                inc.write(chunk)
        return data, None

    def test_records_cut_at_any_byte(self):
        rng = random.Random(7)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            sock, obj, inc, out = self.raw(version)
            with sock:
                # Twenty requests, one record each, some over 4 KiB; the ciphertext goes out in
                # pieces of 1..300 bytes, so records (and their headers) cross receives.
                for i in range(20):
                    obj.write(b"GET /index.html?%d HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n"
                              % (i, b"p" * rng.randrange(0, 6000)))
                ct = out.read()
                at = 0
                while at < len(ct):
                    n = rng.randrange(1, 300)
                    sock.sendall(ct[at:at + n])
                    at += n
                    if rng.random() < 0.2:
                        time.sleep(0.002)
                data, err = self.read_plain(sock, obj, inc, lambda d: d.count(b"<h1>secure</h1>\n") == 20)
                self.assertIsNone(err, version)
                self.assertEqual(data.count(b"HTTP/1.1 200 OK\r\n"), 20, version)

    def test_tampered_forged_and_oversized_records_are_refused(self):
        cases = [  # (what is done to the ciphertext of one request, the alert the server sends)
            ("a flipped bit", lambda ct: ct[:-1] + bytes([ct[-1] ^ 1]), "BAD_RECORD_MAC"),
            ("a length over 2^14 + 256", lambda ct: b"\x17\x03\x03\x41\x01" + b"x" * 64, "RECORD_OVERFLOW"),
            ("a plaintext alert after the handshake", lambda ct: b"\x15\x03\x03\x00\x02\x01\x00",
             "UNEXPECTED_MESSAGE"),
        ]
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            for what, spoil, alert in cases:
                if "plaintext alert" in what and version == ssl.TLSVersion.TLSv1_2:
                    continue  # (TLS 1.2 has no hidden content type: that record is merely undecryptable)
                sock, obj, inc, out = self.raw(version)
                with sock:
                    obj.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    sock.sendall(spoil(out.read()))
                    data, err = self.read_plain(sock, obj, inc, lambda d: False)
                    self.assertEqual(data, b"", what)
                    self.assertIsInstance(err, ssl.SSLError, what)
                    self.assertIn(alert, str(err).upper().replace(" ", "_"), f"{version} {what}: {err}")
        self.assertIn("tls: read failed: bad record MAC", self.srv.text())
        self.assertTrue(self.https(b"/")[3].startswith(b"HTTP/1.1 200"))  # everyone else goes on

    def test_key_update_both_ways(self):
        # openssl s_client's "K": a KeyUpdate asking for ours back; "k": one that does not. Each
        # request after it is read under the client's new key and answered under our new one.
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-tls1_3", "-crlf",
                              "-CAfile", os.path.join(CERTS.name, "ca.crt"), "-servername", "localhost"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        got = b""
        try:
            for i, cmd in enumerate((b"K\n", b"k\n", b"K\n")):
                p.stdin.write(cmd)
                p.stdin.flush()
                time.sleep(0.2)
                p.stdin.write(b"GET / HTTP/1.1\nHost: x\n\n")
                p.stdin.flush()
                deadline = time.time() + 10
                while got.count(b"<h1>secure</h1>") <= i and time.time() < deadline:
                    got += os.read(p.stdout.fileno(), 65536)
        finally:
            p.stdin.close()
            p.wait(timeout=10)
            got += p.stdout.read()
            p.stdout.close()
        self.assertEqual(got.count(b"KEYUPDATE"), 3, got[-2000:])
        self.assertEqual(got.count(b"HTTP/1.1 200 OK"), 3, got[-2000:])

    def test_every_cipher_suite(self):
        for cipher in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"):
            ctx = client_ctx()
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(cipher)
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=10),
                                 server_hostname="localhost") as s:
                self.assertEqual(s.cipher()[0], cipher)
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(1 << 20):
                    data += chunk
                self.assertEqual(data.split(b"\r\n\r\n", 1)[1], self.big, cipher)
        for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"):
            out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-tls1_3",
                                  "-ciphersuites", suite, "-ign_eof", "-CAfile", os.path.join(CERTS.name, "ca.crt")],
                                 input=b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                 capture_output=True, timeout=30).stdout
            self.assertIn(b"Cipher is " + suite.encode(), out)
            self.assertIn(b"\r\n\r\n" + self.big, out, suite)
        # CBC suites are not offered: a client that has nothing else is refused.
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-SHA")
        with self.assertRaises(ssl.SSLError):
            ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=10), server_hostname="localhost")

    def test_bad_clients_close_only_their_connection(self):
        # Plaintext HTTP to the TLS port: the handshake fails, that connection closes.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(65536)
            self.assertIn(first[:1], (b"", b"\x15"))  # at most an alert record, then the close
            self.assertTrue(not first or s.recv(65536) == b"")
        # A truncated handshake, then silence: closed when the peer goes away, no harm done.
        hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-msg"],
                               input=b"", capture_output=True, timeout=30)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        # Verification against the wrong name fails on the client, the server goes on.
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.https(b"/", server_name="wrong.test")
        # A client asking to renegotiate (TLS 1.2): refused, the connection closed.
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-tls1_2",
                              "-CAfile", os.path.join(CERTS.name, "ca.crt")], input=b"R\n", capture_output=True,
                             timeout=30)
        self.assertIn(b"RENEGOTIATING", out.stdout + out.stderr)
        self.assertNotIn(b"Verify return code: 0 (ok)\n---\nread R BLOCK\n", out.stdout)
        # And everyone else is still served, plain and TLS.
        self.assertTrue(self.https(b"/")[3].startswith(b"HTTP/1.1 200"))
        with socket.create_connection(("127.0.0.1", self.plain), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"200 OK", s.recv(65536))
        self.assertEqual(hello.returncode in (0, 1), True)


class Tls13Peer:
    """A TLS 1.3 client whose records after the handshake are made here: Python's ssl runs the
    handshake and logs the traffic secrets; from then on this class seals and opens records
    itself (RFC 8446 5.2, 7.3), so that a test can send what no TLS library would."""
    SUITES = {"TLS_AES_128_GCM_SHA256": (AESGCM, 16, hashes.SHA256()),
              "TLS_AES_256_GCM_SHA384": (AESGCM, 32, hashes.SHA384()),
              "TLS_CHACHA20_POLY1305_SHA256": (ChaCha20Poly1305, 32, hashes.SHA256())}

    def __init__(self, port):
        keylog = tempfile.NamedTemporaryFile(suffix=".keys")
        ctx = client_ctx(["http/1.1"])
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.keylog_filename = keylog.name
        self.sock, obj, _, _ = memory_handshake(ctx, port)
        self.aead, self.key_len, self.hash = self.SUITES[obj.cipher()[0]]
        with open(keylog.name) as f:  # "LABEL client-random secret" lines, after a comment
            secrets = {f[0]: f[2] for f in (line.split() for line in f) if len(f) == 3}
        self.w = self.keys(bytes.fromhex(secrets["CLIENT_TRAFFIC_SECRET_0"]))
        self.r = self.keys(bytes.fromhex(secrets["SERVER_TRAFFIC_SECRET_0"]))
        self.buf = b""
        self.server_key_updates = 0

    def label(self, secret, label, length):
        info = struct.pack(">HB", length, 6 + len(label)) + b"tls13 " + label + b"\x00"
        return HKDFExpand(algorithm=self.hash, length=length, info=info).derive(secret)

    def keys(self, secret):
        return {"secret": secret, "aead": self.aead(self.label(secret, b"key", self.key_len)),
                "iv": self.label(secret, b"iv", 12), "seq": 0}

    def update(self, k):
        k.update(self.keys(self.label(k["secret"], b"traffic upd", self.hash.digest_size)))

    @staticmethod
    def nonce(k):
        return bytes(a ^ b for a, b in zip(k["iv"], k["seq"].to_bytes(12, "big")))

    def record(self, ctype, content, pad=0, inner=None):
        inner = content + bytes([ctype]) + bytes(pad) if inner is None else inner
        header = struct.pack(">BHH", 23, 0x0303, len(inner) + 16)
        ct = self.w["aead"].encrypt(self.nonce(self.w), inner, header)
        self.w["seq"] += 1
        return header + ct

    def read(self, until):
        """Application data until `until(data)`; then (data, alert or None, eof)."""
        data = b""
        while not until(data):
            while len(self.buf) >= 5 and len(self.buf) >= 5 + struct.unpack(">H", self.buf[3:5])[0]:
                n = 5 + struct.unpack(">H", self.buf[3:5])[0]
                header, body, self.buf = self.buf[:5], self.buf[5:n], self.buf[n:]
                inner = self.r["aead"].decrypt(self.nonce(self.r), body, header).rstrip(b"\x00")
                self.r["seq"] += 1
                ctype, content = inner[-1], inner[:-1]
                if ctype == 21:
                    return data, content[1], False
                if ctype == 22 and content[0] == 24:  # the server's KeyUpdate: its key changes
                    self.server_key_updates += 1
                    self.update(self.r)
                if ctype == 23:
                    data += content
            if until(data):
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                return data, None, True
            self.buf += chunk
        return data, None, False


class RecordLayer(unittest.TestCase):
    """What our record layer (src/tls/record.c) does with records no TLS library would send."""
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(CERTS.name, "ca.crt")):
            make_certs()
        cls.dir = tempfile.TemporaryDirectory()
        with open(os.path.join(cls.dir.name, "index.html"), "w") as f:
            f.write("<h1>secure</h1>\n")
        with open(os.path.join(cls.dir.name, "big.bin"), "wb") as f:
            f.write(os.urandom(300 * 1024))  # past --cache-file-max: a HEAD writes an empty body with no base
        cls.srv = Server(["httpd", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--root", cls.dir.name,
                          "--workers", "1"] + cert_args(), 2)
        cls.port = cls.srv.ports[1]

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.text()
        cls.dir.cleanup()

    GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    # Replies whose bodies are empty pieces: a cached file's (a base, no bytes) and a streamed
    # one's (no base at all).
    HEADS = (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")

    def served(self, data):
        return data.endswith(b"<h1>secure</h1>\n")

    def test_padding_and_a_key_update_split_across_records(self):
        p = Tls13Peer(self.port)
        with p.sock:
            p.sock.sendall(p.record(23, self.GET, pad=300))  # padded: the type is found behind zeros
            data, alert, _ = p.read(self.served)
            self.assertIsNone(alert)
            # KeyUpdate(update_requested): its header in one record, its byte in the next.
            ku = p.record(22, bytes([24, 0, 0, 1]))
            p.sock.sendall(ku + p.record(22, bytes([1])))
            p.update(p.w)
            p.sock.sendall(p.record(23, self.GET))  # under our new key...
            data, alert, _ = p.read(self.served)  # ...answered under the server's new key
            self.assertIsNone(alert)
            self.assertTrue(self.served(data))
            self.assertEqual(p.server_key_updates, 1)

    def test_key_update_requests_in_a_row_get_one_answer(self):
        p = Tls13Peer(self.port)
        with p.sock:
            records = b""
            for _ in range(20):
                records += p.record(22, bytes([24, 0, 0, 1, 1]))
                p.update(p.w)
            p.sock.sendall(records + p.record(23, self.GET))
            data, alert, _ = p.read(self.served)
            self.assertIsNone(alert)
            self.assertGreaterEqual(p.server_key_updates, 1)
            self.assertLess(p.server_key_updates, 20)

    def test_random_records_never_hurt_the_server(self):
        """300 connections each send a random run of correctly encrypted records (any content
        type, handshake messages cut anywhere, KeyUpdates, alerts, padding, now and then a
        corrupted byte or a skipped sequence number), cut at random points; the requests among
        them include HEADs, whose replies write empty pieces. The sanitizer build must survive
        every one and go on serving."""
        rng = random.Random(1234)

        def handshake_bytes():
            kind = rng.choice([24, 24, 4, 1, 2, 20, rng.randrange(256)])
            body = bytes([rng.randrange(3)]) if kind == 24 and rng.random() < 0.7 else rng.randbytes(rng.randrange(8))
            msg = bytes([kind]) + len(body).to_bytes(3, "big") + body
            if rng.random() < 0.3:
                msg = msg[:rng.randrange(len(msg) + 1)]
            return msg

        for _ in range(300):
            p = Tls13Peer(self.port)
            with p.sock:
                out = b""
                for _ in range(rng.randrange(1, 8)):
                    r = rng.random()
                    if r < 0.3:
                        request = rng.choice((self.GET,) + self.HEADS)
                        content, ctype = request if rng.random() < 0.5 else rng.randbytes(rng.randrange(200)), 23
                    elif r < 0.7:
                        content, ctype = handshake_bytes(), 22
                    elif r < 0.85:
                        content, ctype = rng.randbytes(rng.randrange(4)), 21
                    else:
                        content, ctype = rng.randbytes(rng.randrange(50)), rng.randrange(256)
                    rec = p.record(ctype, content, pad=rng.choice([0, 0, 1, 100]))
                    if ctype == 22 and content[:1] == b"\x18" and len(content) == 5:
                        p.update(p.w)  # a whole KeyUpdate: the server reads on under our next key
                    if rng.random() < 0.05:
                        i = rng.randrange(len(rec))
                        rec = rec[:i] + bytes([rec[i] ^ 1 << rng.randrange(8)]) + rec[i + 1:]
                    if rng.random() < 0.03:
                        p.w["seq"] += 1
                    out += rec
                at = 0
                try:
                    while at < len(out):
                        n = rng.randrange(1, 600)
                        p.sock.sendall(out[at:at + n])
                        at += n
                    p.sock.shutdown(socket.SHUT_WR)
                    p.sock.settimeout(2)
                    while p.sock.recv(65536):
                        pass
                except OSError:
                    pass  # reset, already closed, or a server still waiting for the rest: all fine
        self.assertIsNone(self.srv.proc.poll(), "the server died: " + self.srv.text()[-3000:])
        p = Tls13Peer(self.port)
        with p.sock:
            p.sock.sendall(p.record(23, self.GET))
            self.assertTrue(self.served(p.read(self.served)[0]))

    def test_records_that_break_the_rules_get_the_matching_alert(self):
        cases = [  # (what, records made by the peer, alert: 10 unexpected_message, 50 decode_error...)
            ("a KeyUpdate not at the end of its record",
             lambda p: p.record(22, bytes([24, 0, 0, 1, 0, 24])), 10),
            ("a KeyUpdate of two bytes", lambda p: p.record(22, bytes([24, 0, 0, 2, 0, 0])), 50),
            ("a KeyUpdate asking for something else", lambda p: p.record(22, bytes([24, 0, 0, 1, 7])), 50),
            ("an empty handshake record", lambda p: p.record(22, b""), 10),
            ("application data inside a handshake message",
             lambda p: p.record(22, bytes([24, 0])) + p.record(23, self.GET), 10),
            ("a message the server never takes", lambda p: p.record(22, bytes([4, 0, 0, 0])), 10),
            ("a record with no content type", lambda p: p.record(23, b"", inner=bytes(40)), 10),
            ("plaintext over 2^14 bytes", lambda p: p.record(23, b"x" * 16385), 22),
            ("a record under a stale sequence number",
             lambda p: (lambda r: (p.w.update(seq=p.w["seq"] - 1), r)[1])(p.record(23, self.GET)) * 2, 20),
            ("more than 32 records without data", lambda p: b"".join(p.record(23, b"") for _ in range(40)), 10),
        ]
        for what, make, alert in cases:
            p = Tls13Peer(self.port)
            with p.sock:
                p.sock.sendall(make(p))
                data, got, eof = p.read(lambda d: False)
                self.assertEqual(got, alert, f"{what}: alert {got}, eof {eof}, data {data[:60]!r}")
        self.assertIn("tls: read failed: ", self.srv.text())  # (rate-limited: not every case's line)
        p = Tls13Peer(self.port)  # and the server goes on
        with p.sock:
            p.sock.sendall(p.record(23, self.GET))
            self.assertTrue(self.served(p.read(self.served)[0]))


class RedisTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(CERTS.name, "ca.crt")):
            make_certs()
        cls.srv = Server(["kvd", "--resp", "127.0.0.1:0", "--resp-tls", "127.0.0.1:0", "--memcache-tls", "127.0.0.1:0",
                          "--workers", "2"] + cert_args(), 3)
        cls.plain, cls.tls, cls.mc = cls.srv.ports

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.text()

    def test_redis_cli_tls(self):
        p = ["redis-cli", "-p", str(self.tls), "--tls", "--cacert", os.path.join(CERTS.name, "ca.crt"), "--sni",
             "localhost"]
        out = subprocess.run(p + ["set", "secure", "value"], capture_output=True, timeout=30)
        self.assertEqual(out.stdout, b"OK\n", out.stderr)
        # One store: the plain port sees it.
        out = subprocess.run(["redis-cli", "-p", str(self.plain), "get", "secure"], capture_output=True, timeout=30)
        self.assertEqual(out.stdout, b"value\n")

    def test_pipelined_resp_and_memcache_over_tls(self):
        ctx = client_ctx(["redis"])
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.tls), timeout=10),
                             server_hostname="localhost") as s:
            self.assertEqual(s.selected_alpn_protocol(), "redis")
            s.sendall(b"".join(resp_cmd("SET", f"k{i}", "x" * i) for i in range(200)) + resp_cmd("GET", "k199"))
            r = Reader(s)
            for _ in range(200):
                self.assertEqual(r.line(), b"+OK\r\n")
            self.assertEqual(r.reply(), b"$199\r\n" + b"x" * 199 + b"\r\n")
        with client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", self.mc), timeout=10),
                                      server_hostname="localhost") as s:
            s.sendall(b"get k5\r\n")
            r = Reader(s)
            self.assertEqual(r.line() + r.line() + r.line(), b"VALUE k5 0 5\r\nxxxxx\r\nEND\r\n")


    def test_memcache_binary_over_tls(self):
        """The memcache TLS listener speaks binary too, chosen by the plaintext's first byte."""
        with client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", self.mc), timeout=10),
                                      server_hostname="localhost") as s:
            s.sendall(mcb(0x01, b"bk", struct.pack(">II", 3, 0), b"v" * 100_000) + mcb(0x09, b"nokey") + mcb(0x0c, b"bk"))
            buf, got = b"", []
            while len(got) < 2:
                buf += s.recv(1 << 20)
                got, _ = mcb_parse(buf)
            self.assertEqual(got[0][1:8], (0x01, 0, 0, 0, 0, 0, 0))
            self.assertEqual(got[1][1:8], (0x0c, 2, 4, 0, 0, 4 + 2 + 100_000, 0))
            self.assertEqual(got[1][9], b"\0\0\0\x03bk" + b"v" * 100_000)
        with client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", self.mc), timeout=10),
                                      server_hostname="localhost") as s:
            s.sendall(b"get bk\r\n")
            r = Reader(s)
            self.assertEqual(r.line(), b"VALUE bk 3 100000\r\n")
            self.assertEqual(r.exact(100_002), b"v" * 100_000 + b"\r\n")


class RedisTlsLargeValues(unittest.TestCase):
    def test_long_values_over_tls_wait_for_a_large_slot(self):
        """One worker, two large slots, both held by plain clients halfway through 30 MB values:
        a TLS client's 3 MB value waits (its plaintext has nowhere to go) and is stored once a
        slot is free, instead of being cut off; then a long value streams back over TLS."""
        if not os.path.exists(os.path.join(CERTS.name, "ca.crt")):
            make_certs()
        srv = Server(["kvd", "--resp", "127.0.0.1:0", "--resp-tls", "127.0.0.1:0", "--workers", "1",
                      "--memory", "256m"] + cert_args(), 2)
        try:
            plain, tls = srv.ports
            big = [os.urandom(30_000_000) for _ in range(2)]
            holders = [socket.create_connection(("127.0.0.1", plain), timeout=30) for _ in big]
            reqs = [resp_cmd("SET", f"p{i}", v) for i, v in enumerate(big)]
            for h, q in zip(holders, reqs):
                h.sendall(q[:15_000_000])
            time.sleep(0.3)
            v = os.urandom(3_000_000)
            with client_ctx(["redis"]).wrap_socket(socket.create_connection(("127.0.0.1", tls), timeout=30),
                                                   server_hostname="localhost") as s:
                sender = threading.Thread(target=s.sendall, args=(resp_cmd("SET", "t", v),))
                sender.start()
                time.sleep(0.5)  # it waits: both large slots are taken
                for h, q in zip(holders, reqs):
                    h.sendall(q[15_000_000:])
                    self.assertEqual(Reader(h).line(), b"+OK\r\n")
                    h.close()
                sender.join()
                r = Reader(s)
                self.assertEqual(r.line(), b"+OK\r\n")
                s.sendall(resp_cmd("GET", "p0"))
                self.assertEqual(r.reply(), b"$30000000\r\n" + big[0] + b"\r\n")
            self.assertEqual(redis.Redis(port=plain).get("t"), v)
        finally:
            self.assertEqual(srv.stop(), 0)


class Allocation(unittest.TestCase):
    def test_mallocs_per_handshake_and_per_request(self):
        """What BoringSSL allocates for a handshake: counted and reported; after it, nothing per
        record (our record layer), on TLS 1.2 and 1.3."""
        if not os.path.exists(os.path.join(CERTS.name, "ca.crt")):
            make_certs()
        with tempfile.TemporaryDirectory() as root:
            with open(os.path.join(root, "index.html"), "w") as f:
                f.write("y" * 2000)
            with open(os.path.join(root, "big.bin"), "wb") as f:
                f.write(b"z" * 300000)
            srv = Server(["httpd", "--tls-listen", "127.0.0.1:0", "--root", root, "--workers", "1"] + cert_args()
                         + ["--listen", "127.0.0.1:0"], 2, binary="build/bin/httpd",
                         preload=MALLOC_COUNT)
            port = srv.ports[1]

            def get(s, path, n):
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                got = b""
                while not got.endswith(b"\r\n\r\n" + (b"y" if path == b"/index.html" else b"z") * n):
                    got += s.recv(1 << 20)
                    self.assertLess(len(got), n + 1000)

            try:
                for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                    ctx = client_ctx()
                    ctx.minimum_version = ctx.maximum_version = version
                    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                        server_hostname="localhost")
                    for _ in range(20):  # warm-up: the pools' pages, the file cache
                        get(s, b"/index.html", 2000)
                        get(s, b"/big.bin", 300000)
                    a = srv.malloc_count()
                    for _ in range(500):
                        get(s, b"/index.html", 2000)
                    for _ in range(20):
                        get(s, b"/big.bin", 300000)  # many records each way through the chain
                    b = srv.malloc_count()
                    s.close()
                    hs = []
                    for _ in range(20):
                        c0 = srv.malloc_count()
                        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                            server_hostname="localhost")
                        t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        while t.recv(65536):
                            pass
                        t.close()
                        time.sleep(0.01)
                        hs.append(srv.malloc_count() - c0)
                    print(f"\n{version.name} on httpd: {b - a} malloc-family calls in 520 requests after the "
                          f"handshake, median {sorted(hs)[len(hs) // 2]} per connection (handshake, request, close)",
                          file=sys.stderr)
                    self.assertEqual(b - a, 0, version)
            finally:
                self.assertEqual(srv.stop(), 0)



if __name__ == "__main__":
    skip_without_uring()
    unittest.main()
