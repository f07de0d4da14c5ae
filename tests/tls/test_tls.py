#!/usr/bin/python3
"""TLS end to end (BoringSSL in the runtime), with certificates made here by the openssl
command and real clients: curl --cacert, openssl s_client, Python's ssl, redis-cli --tls.
Run from the repository root: /usr/bin/python3 tests/tls/test_tls.py [-v]
$RW_BIN picks the build (default build/asan/bin), $RW_BACKEND the backend.
"""
import os
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
        """What BoringSSL allocates: counted and reported; none of ours per record."""
        if not os.path.exists(os.path.join(CERTS.name, "ca.crt")):
            make_certs()
        with tempfile.TemporaryDirectory() as root:
            with open(os.path.join(root, "index.html"), "w") as f:
                f.write("y" * 2000)
            srv = Server(["httpd", "--tls-listen", "127.0.0.1:0", "--root", root, "--workers", "1"] + cert_args()
                         + ["--listen", "127.0.0.1:0"], 2, binary="build/bin/httpd",
                         preload=MALLOC_COUNT)
            port = srv.ports[1]

            try:
                ctx = client_ctx()
                ctx.maximum_version = ssl.TLSVersion.TLSv1_3
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(65536)
                a = srv.malloc_count()
                for _ in range(500):
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    got = b""
                    while len(got) < 2000 or not got.endswith(b"y"):
                        got += s.recv(65536)
                b = srv.malloc_count()
                s.close()
                hs = []
                for _ in range(20):
                    c0 = srv.malloc_count()
                    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
                    t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    while t.recv(65536):
                        pass
                    t.close()
                    time.sleep(0.01)
                    hs.append(srv.malloc_count() - c0)
                per_request = (b - a) / 500
                print(f"\nTLS 1.3 on httpd: {per_request:.2f} malloc-family calls per request after the handshake, "
                      f"median {sorted(hs)[len(hs) // 2]} per connection (handshake, request, close)", file=sys.stderr)
                # BoringSSL's libssl takes and drops a record buffer each way with libc malloc (4
                # calls); anything more would be ours.
                self.assertLessEqual(per_request, 4)
            finally:
                self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
