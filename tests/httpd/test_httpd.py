#!/usr/bin/python3
"""httpd end to end: curl, Python's http.client, raw sockets (pipelining, byte-at-a-time input,
smuggling shapes, slow readers), wrk and h2load smoke runs. Run from the repository root:
    /usr/bin/python3 tests/httpd/test_httpd.py [-v]
$RW_BIN picks the build (default build/asan/bin), $RW_BACKEND the backend.
"""
import email.utils
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rwtest import MALLOC_COUNT, Server, skip_without_uring  # noqa: E402


class Httpd(Server):
    """httpd serving `root` on an ephemeral port (self.port)."""

    def __init__(self, root, *args, binary=None, preload=None):
        super().__init__(["httpd", "--listen", "127.0.0.1:0", "--root", root] + list(args), 1,
                         binary=binary, preload=preload)
        self.port = self.ports[0]


def read_response(sock, buf=b"", to_head=False):
    """One HTTP response from a raw socket: (status, headers dict, body, rest of buffer). The
    answer to a HEAD (`to_head`) has no body, whatever its Content-Length says."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed before a response: %r" % buf)
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = 0 if to_head else int(headers.get("content-length", 0))
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed in a body")
        buf += chunk
    return status, headers, buf[:n], buf[n:]


def closed(sock, secs=5):
    sock.settimeout(secs)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Files(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        root = cls.root = os.path.join(cls.dir.name, "www")
        os.makedirs(os.path.join(root, "sub", "deeper"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<h1>home</h1>\n")
        with open(os.path.join(root, "sub", "index.html"), "w") as f:
            f.write("sub index\n")
        with open(os.path.join(root, "style.css"), "w") as f:
            f.write("body{}\n")
        with open(os.path.join(root, "a b.txt"), "w") as f:
            f.write("spaced\n")
        cls.big = os.urandom(3 * 1024 * 1024 + 17)  # streamed: past the cache's file limit
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(cls.big)
        with open(os.path.join(cls.dir.name, "secret.txt"), "w") as f:
            f.write("outside the root\n")
        os.symlink(os.path.join(cls.dir.name, "secret.txt"), os.path.join(root, "escape"))
        os.symlink("../secret.txt", os.path.join(root, "sub", "relescape"))
        os.symlink("style.css", os.path.join(root, "inside-link.css"))
        cls.srv = Httpd(root, "--workers", "2")

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.text()
        cls.dir.cleanup()

    def get(self, path, method="GET", headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    def test_get_head_types(self):
        r, body = self.get("/")
        self.assertEqual((r.status, body), (200, b"<h1>home</h1>\n"))
        self.assertEqual(r.getheader("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(r.getheader("Content-Length"), "14")
        mtime = os.stat(os.path.join(self.root, "index.html")).st_mtime
        self.assertEqual(r.getheader("Last-Modified"), email.utils.formatdate(int(mtime), usegmt=True))
        self.assertLess(abs(email.utils.parsedate_to_datetime(r.getheader("Date")).timestamp() - time.time()), 5)
        r, body = self.get("/style.css", "HEAD")
        self.assertEqual((r.status, body, r.getheader("Content-Length")), (200, b"", "7"))
        self.assertEqual(r.getheader("Content-Type"), "text/css; charset=utf-8")
        self.assertEqual(self.get("/sub/")[1], b"sub index\n")
        self.assertEqual(self.get("/a%20b.txt?x=1#frag")[1], b"spaced\n")
        self.assertEqual(self.get("/inside-link.css")[1], b"body{}\n")

    def test_errors(self):
        self.assertEqual(self.get("/nope.html")[0].status, 404)
        self.assertEqual(self.get("/sub/deeper/")[0].status, 404)  # no index
        self.assertEqual(self.get("/", "DELETE")[0].status, 405)
        self.assertEqual(self.get("/", "DELETE")[0].getheader("Allow"), "GET, HEAD")
        self.assertEqual(self.get("/", "POST")[0].status, 405)

    def test_host_checked_for_every_method(self):
        """No Host, or two, gets 400 and a close whatever the method (RFC 9112 3.2); with one,
        the methods httpd does not serve get 405 and the connection goes on."""
        for method in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"BREW"):
            head = method == b"HEAD"
            for hosts in (b"", b"Host: a\r\nHost: b\r\n"):
                with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
                    s.sendall(method + b" / HTTP/1.1\r\n" + hosts + b"Content-Length: 0\r\n\r\n")
                    status, headers, _, rest = read_response(s, to_head=head)
                    self.assertEqual((status, headers.get("connection")), (400, "close"), (method, hosts))
                    self.assertEqual(rest, b"", (method, hosts))
                    self.assertTrue(closed(s), (method, hosts))
            with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
                s.sendall(method + b" / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                          b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers, _, buf = read_response(s, to_head=head)
                self.assertEqual(status, 200 if method in (b"GET", b"HEAD") else 405, method)
                if status == 405:
                    self.assertEqual(headers["allow"], "GET, HEAD")
                status, _, body, _ = read_response(s, buf)
                self.assertEqual((status, body), (200, b"body{}\n"), method)

    def test_head_of_any_size(self):
        """HEAD of a streamed file (past --cache-file-max) and of a cached one: the file's length,
        no body, first on a connection or pipelined behind other replies."""
        reqs = [(b"HEAD", b"/big.bin"), (b"GET", b"/style.css"), (b"HEAD", b"/big.bin"), (b"HEAD", b"/style.css"),
                (b"HEAD", b"/big.bin"), (b"GET", b"/style.css")]
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
            s.sendall(b"".join(b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % r for r in reqs)
                      + b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            buf = b""
            for method, path in reqs + [(b"HEAD", b"/big.bin")]:
                status, headers, body, buf = read_response(s, buf, to_head=method == b"HEAD")
                size = len(self.big) if path == b"/big.bin" else 7
                self.assertEqual((status, int(headers["content-length"])), (200, size), (method, path))
                self.assertEqual(body, b"" if method == b"HEAD" else b"body{}\n", (method, path))
            self.assertEqual(buf, b"")
            self.assertTrue(closed(s))

    def test_nothing_outside_the_root(self):
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt", "/%2E%2e/secret.txt",
                     "/sub/%2e%2e/%2e%2e/secret.txt", "/escape", "/sub/relescape", "/a%00b", "/a%2fb",
                     "/%zz"):
            with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
                s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, body, _ = read_response(s)
                self.assertIn(status, (400, 404), path)
                self.assertNotIn(b"outside", body)
        # ".." that stays inside is fine.
        self.assertEqual(self.get("/sub/../style.css")[1], b"body{}\n")

    def test_if_modified_since(self):
        r, _ = self.get("/style.css")
        lm = r.getheader("Last-Modified")
        r, body = self.get("/style.css", headers={"If-Modified-Since": lm})
        self.assertEqual((r.status, body), (304, b""))
        self.assertEqual(r.getheader("Last-Modified"), lm)
        older = email.utils.formatdate(time.time() - 86400 * 400, usegmt=True)
        self.assertEqual(self.get("/style.css", headers={"If-Modified-Since": older})[0].status, 200)
        self.assertEqual(self.get("/style.css", headers={"If-Modified-Since": "garbage"})[0].status, 200)

    def test_changed_file_seen(self):
        path = os.path.join(self.root, "changing.txt")
        with open(path, "w") as f:
            f.write("one\n")
        self.assertEqual(self.get("/changing.txt")[1], b"one\n")
        with open(path, "w") as f:
            f.write("two, longer\n")
        os.utime(path, (time.time() + 5, time.time() + 5))
        time.sleep(1.1)  # entries are revalidated at most once a second
        self.assertEqual(self.get("/changing.txt")[1], b"two, longer\n")
        os.unlink(path)
        time.sleep(1.1)
        self.assertEqual(self.get("/changing.txt")[0].status, 404)

    def test_large_file_streamed(self):
        r, body = self.get("/big.bin")
        self.assertEqual(r.status, 200)
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(self.big).digest())
        self.assertEqual(r.getheader("Content-Type"), "application/octet-stream")

    def test_curl(self):
        out = subprocess.run(["curl", "-sS", "--http1.1", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
                              f"http://127.0.0.1:{self.srv.port}/", f"http://127.0.0.1:{self.srv.port}/style.css",
                              f"http://127.0.0.1:{self.srv.port}/nope"], capture_output=True, timeout=30)
        # Three requests, one connection: keep-alive.
        self.assertEqual(out.stdout, b"200 1\n200 0\n404 0\n")
        out = subprocess.run(["curl", "-sS", "-I", f"http://127.0.0.1:{self.srv.port}/big.bin"],
                             capture_output=True, timeout=30)
        self.assertIn(b"Content-Length: %d" % len(self.big), out.stdout)
        out = subprocess.run(["curl", "-sS", "--http1.0", "-D", "-", "-o", "/dev/null",
                              f"http://127.0.0.1:{self.srv.port}/"], capture_output=True, timeout=30)
        self.assertIn(b"Connection: close", out.stdout)

    def test_pipelined_in_order_and_byte_at_a_time(self):
        reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in
                        (b"/", b"/style.css", b"/nope", b"/big.bin", b"/sub/", b"/style.css"))
        want = [(200, b"<h1>home</h1>\n"), (200, b"body{}\n"), (404, None), (200, self.big),
                (200, b"sub index\n"), (200, b"body{}\n")]
        for step in (len(reqs), 1, 13):
            with socket.create_connection(("127.0.0.1", self.srv.port), timeout=20) as s:
                for i in range(0, len(reqs), step):
                    s.sendall(reqs[i:i + step])
                buf = b""
                for status, body in want:
                    got_status, _, got_body, buf = read_response(s, buf)
                    self.assertEqual(got_status, status, step)
                    if body is not None:
                        self.assertEqual(got_body, body, step)

    def test_keep_alive_rules(self):
        cases = [(b"HTTP/1.1", b"", False), (b"HTTP/1.1", b"Connection: close\r\n", True),
                 (b"HTTP/1.0", b"", True), (b"HTTP/1.0", b"Connection: keep-alive\r\n", False),
                 (b"HTTP/1.1", b"Connection: Upgrade, CLOSE\r\n", True)]
        for version, extra, closes in cases:
            with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
                s.sendall(b"GET / " + version + b"\r\nHost: x\r\n" + extra + b"\r\n")
                status, headers, _, _ = read_response(s)
                self.assertEqual(status, 200)
                self.assertEqual(closed(s, 1), closes, (version, extra))

    def test_bodies(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
            # A body (sized, then chunked) is read and discarded; the connection goes on.
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                      b"GET /style.css HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabc\r\n0\r\nTrailer: t\r\n\r\nGET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            for body in (b"<h1>home</h1>\n", b"body{}\n", b"sub index\n"):
                status, _, got, buf = read_response(s, buf)
                self.assertEqual((status, got), (200, body))

    def test_hostile_requests(self):
        shapes = {
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd": 400,
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n": 400,
            b"GET / HTTP/1.1\r\n\r\n": 400,  # no Host
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n": 400,
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n": 400,
            b"GET nothing HTTP/1.1\r\nHost: x\r\n\r\n": 400,
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n": 414,
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 70000 + b"\r\n\r\n": 431,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n": 413,
        }
        for req, status in shapes.items():
            with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
                s.sendall(req)
                got, headers, _, _ = read_response(s)
                self.assertEqual(got, status, req[:60])
                self.assertTrue(closed(s), req[:60])
        # And the server still serves.
        self.assertEqual(self.get("/")[0].status, 200)

    def test_stalled_and_garbage_clients_time_out(self):
        """A TLS hello on the plain port, half a request, a request trickling a byte a second:
        each is closed by the idle timeout (no line ever completes), the others still served."""
        srv = Httpd(self.root, "--idle-timeout", "1")
        try:
            socks = []
            for junk in (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, b"GET / HTT"):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                s.sendall(junk)
                socks.append(s)
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            c.request("GET", "/style.css")
            self.assertEqual(c.getresponse().read(), b"body{}\n")
            for s in socks:
                t0 = time.time()
                self.assertTrue(closed(s, 5))
                self.assertLess(time.time() - t0, 4)
                s.close()
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_slow_reader_bounded(self):
        """Clients that ask for the big file and never read: the others are still served."""
        idle = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
            idle.append(s)
        time.sleep(0.5)
        for _ in range(20):
            self.assertEqual(self.get("/style.css")[1], b"body{}\n")
        # One of them reads at last: every byte of all three arrives, in order.
        s = idle[0]
        buf = b""
        for _ in range(3):
            status, _, body, buf = read_response(s, buf)
            self.assertEqual((status, len(body)), (200, len(self.big)))
            self.assertEqual(body, self.big)
        for s in idle:
            s.close()

    def test_wrk_and_h2load_smoke(self):
        out = subprocess.run(["wrk", "-t", "1", "-c", "20", "-d", "2", f"http://127.0.0.1:{self.srv.port}/index.html"],
                             capture_output=True, timeout=60).stdout.decode()
        self.assertRegex(out, r"Requests/sec:\s+[\d.]+")
        self.assertNotIn("Non-2xx", out)
        self.assertNotIn("Socket errors", out)
        out = subprocess.run(["h2load", "--h1", "-n", "2000", "-c", "10", "-m", "4",
                              f"http://127.0.0.1:{self.srv.port}/style.css"], capture_output=True, timeout=60).stdout.decode()
        self.assertIn("2000 succeeded, 0 failed, 0 errored", out)
        self.assertIn("status codes: 2000 2xx", out)


class Memory(unittest.TestCase):
    def test_no_malloc_after_warm_up(self):
        with tempfile.TemporaryDirectory() as root:
            with open(os.path.join(root, "index.html"), "w") as f:
                f.write("x" * 1000)
            with open(os.path.join(root, "big.bin"), "wb") as f:
                f.write(os.urandom(2 * 1024 * 1024))
            k = Httpd(root, "--workers", "2", binary="build/bin/httpd",
                      preload=MALLOC_COUNT)

            def load():
                subprocess.run(["h2load", "--h1", "-n", "4000", "-c", "20", "-m", "4",
                                f"http://127.0.0.1:{k.port}/index.html"], capture_output=True, timeout=60)
                for _ in range(5):
                    c = http.client.HTTPConnection("127.0.0.1", k.port, timeout=10)
                    c.request("GET", "/big.bin")
                    self.assertEqual(len(c.getresponse().read()), 2 * 1024 * 1024)
                    c.request("GET", "/nope")
                    c.getresponse().read()
                    c.close()

            try:
                load()
                before = k.malloc_count()
                load()
                self.assertEqual(k.malloc_count(), before)
            finally:
                self.assertEqual(k.stop(), 0)


if __name__ == "__main__":
    skip_without_uring()
    unittest.main()
