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
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kvd"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rwtest import MALLOC_COUNT, Server  # noqa: E402
from test_kvd import Reader, resp_cmd  # noqa: E402
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


def cert_args():
    d = CERTS.name
    return ["--tls-cert", f"{d}/localhost.crt", "--tls-key", f"{d}/localhost.key",
            "--tls-cert", f"{d}/other.test.crt", "--tls-key", f"{d}/other.test.key"]


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

    def test_session_resumption(self):
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # a ticket available right after the handshake
        session = None
        for attempt in range(2):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assertIn(b"200 OK", s.recv(65536))
                    if attempt:
                        self.assertTrue(s.session_reused)
                    session = s.session

    # ---- our record layer (src/tls/record.c): after the handshake every record is ours ----

    def raw(self, version):
        """A client whose ciphertext the test holds: handshake over a socket, then records made
        by Python's ssl in memory, to be cut, tampered with or forged before they are sent."""
        ctx = client_ctx(["http/1.1"])
        ctx.minimum_version = ctx.maximum_version = version
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
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
                self.assertTrue(data, "the server closed during the handshake")
                inc.write(data)
        sock.sendall(out.read())  # the client's Finished
        return sock, obj, inc, out

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
    unittest.main()
