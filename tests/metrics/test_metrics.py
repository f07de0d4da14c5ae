#!/usr/bin/python3
"""The runtime's counters and histograms as /metrics serves them (docs/metrics.md): known
traffic in, exact counts out (frames per command, bytes, connections closed by reason, parse
errors by event); kvd's INFO and the histograms agreeing; `promtool check metrics` on kvd's and
httpd's output; and a real Prometheus server scraping kvd, queried back through its HTTP API.
Run from the repository root: /usr/bin/python3 tests/metrics/test_metrics.py [-v]
$RW_BIN picks the build (default build/asan/bin), $RW_BACKEND the backend.
"""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
for d in ("lib", "kvd", "httpd", "tls"):
    sys.path.insert(0, os.path.join(HERE, "..", d))
from rwtest import MALLOC_COUNT, Server, skip_without_uring  # noqa: E402
from test_httpd import read_response  # noqa: E402
from test_kvd import Reader, free_port, resp_cmd, wait_port  # noqa: E402
from test_tls import CERTS, cert_args, client_ctx, make_certs  # noqa: E402

WAIT = 15


def metrics_port(server):
    m = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", server.text())
    assert m, "no metrics line: " + server.text()
    return int(m.group(1))


def scrape_text(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        return r.read().decode()


def parse(text):
    """{(name, frozenset of label pairs): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(what, check, secs=WAIT):
    deadline = time.time() + secs
    while True:
        got = check()
        if got or time.time() > deadline:
            assert got, f"{what} within {secs} s"
            return got
        time.sleep(0.1)


def session(port, payloads, resp=True):
    """Sends each payload and reads its reply (a RESP reply, or a memcache line); returns every
    byte received."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        r = Reader(s)
        for p in payloads:
            s.sendall(p)
            got += r.reply() if resp else r.line()
    return got


class Kvd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kvd = Server(["kvd", "--workers", "2", "--resp", "127.0.0.1:0", "--memcache", "127.0.0.1:0",
                          "--metrics", "127.0.0.1:0", "--idle-timeout", "1"], want=3)
        cls.resp, cls.mc = cls.kvd.ports[0], cls.kvd.ports[1]
        cls.mport = metrics_port(cls.kvd)

    @classmethod
    def tearDownClass(cls):
        cls.kvd.stop()

    def scrape(self):
        return parse(scrape_text(self.mport))

    def closed(self, samples):
        return {r: get(samples, "rw_connections_closed_total", reason=r)
                for r in ("peer", "idle", "error", "limit", "local")}

    def test_frames_bytes_and_peer_closes_are_exact(self):
        before = self.scrape()
        sent = [resp_cmd("SET", f"k{i}", "v" * i) for i in range(7)] + [resp_cmd("GET", f"k{i}") for i in range(5)]
        got = session(self.resp, sent)
        mc_sent = [b"set m%d 0 0 2\r\nab\r\n" % i for i in range(3)]
        got += session(self.mc, mc_sent, resp=False)
        after = eventually("both connections closed", lambda: (
            lambda s: get(s, "rw_connections_closed_total", reason="peer") - self.closed(before)["peer"] >= 2 and s)(
            self.scrape()))
        d = lambda name, **l: get(after, name, **l) - get(before, name, **l)  # noqa: E731
        self.assertEqual(d("rw_frames_total", protocol="resp", command="set"), 7)
        self.assertEqual(d("rw_frames_total", protocol="resp", command="get"), 5)
        self.assertEqual(d("rw_frames_total", protocol="memcache", command="set"), 3)
        self.assertEqual(d("rw_connections_accepted_total"), 2)
        self.assertEqual(d("rw_connections_closed_total", reason="peer"), 2)
        self.assertEqual(d("rw_received_bytes_total"), sum(map(len, sent + mc_sent)))
        self.assertEqual(d("rw_sent_bytes_total"), len(got))
        # The service time histograms count the same frames.
        self.assertEqual(d("rw_service_time_seconds_count", protocol="resp", command="set"), 7)
        self.assertEqual(get(after, "rw_service_time_seconds_bucket", protocol="resp", command="set", le="+Inf"),
                         get(after, "rw_service_time_seconds_count", protocol="resp", command="set"))
        self.assertGreater(d("rw_service_time_seconds_sum", protocol="resp", command="get"), 0)
        self.assertGreater(d("rw_ttfb_seconds_count", protocol="resp"), 0)

    def test_parse_errors_and_close_reasons(self):
        before = self.scrape()
        # memcache: an unknown command (ERROR, the connection stays), a data block not followed
        # by CRLF (answered, and what follows it is a line of its own: ERROR again), then a line
        # past the spec's 64 KiB limit (closed: a limit).
        with socket.create_connection(("127.0.0.1", self.mc), timeout=10) as s:
            r = Reader(s)
            s.sendall(b"bogus\r\n")
            self.assertEqual(r.line(), b"ERROR\r\n")
            s.sendall(b"set k 0 0 2\r\nabXY\r\n")
            self.assertTrue(r.line().startswith(b"CLIENT_ERROR"))
            self.assertEqual(r.line(), b"ERROR\r\n")
            s.sendall(b"g" * (70 << 10))
            self.assertTrue(r.line().startswith(b"CLIENT_ERROR"))
            self.assertEqual(s.recv(100), b"")
        # RESP: a bulk string not followed by CRLF: an error reply, closed (a protocol error).
        with socket.create_connection(("127.0.0.1", self.resp), timeout=10) as s:
            s.sendall(b"*1\r\n$3\r\nabcXY")
            self.assertTrue(Reader(s).line().startswith(b"-ERR"))
            self.assertEqual(s.recv(100), b"")
        # QUIT: kvd closes (local); a silent connection past --idle-timeout 1 (idle).
        with socket.create_connection(("127.0.0.1", self.resp), timeout=10) as s:
            s.sendall(resp_cmd("QUIT"))
            self.assertEqual(Reader(s).line(), b"+OK\r\n")
            self.assertEqual(s.recv(100), b"")
        with socket.create_connection(("127.0.0.1", self.resp), timeout=10) as s:
            s.settimeout(5)
            self.assertEqual(s.recv(100), b"")
        want = {"peer": 0, "idle": 1, "error": 1, "limit": 1, "local": 1}
        base = self.closed(before)
        after = eventually("closes counted", lambda: (lambda s: self.closed(s) == {
            k: base[k] + want[k] for k in want} and s)(self.scrape()))
        d = lambda name, **l: get(after, name, **l) - get(before, name, **l)  # noqa: E731
        self.assertEqual(d("rw_parse_errors_total", protocol="memcache", event="otherwise"), 2)
        self.assertEqual(d("rw_parse_errors_total", protocol="memcache", event="bad_data"), 1)
        self.assertEqual(d("rw_parse_errors_total", protocol="memcache", event="overlong"), 1)
        self.assertEqual(d("rw_parse_errors_total", protocol="resp", event="bad_data"), 1)
        self.assertEqual(d("rw_connections_accepted_total"), 4)

    def test_info_comes_from_the_same_counters(self):
        session(self.resp, [resp_cmd("INCR", "calls")] * 4)
        s = self.scrape()
        with socket.create_connection(("127.0.0.1", self.resp), timeout=10) as sock:
            sock.sendall(resp_cmd("INFO", "commandstats"))
            info = Reader(sock).reply().decode()
        m = re.search(r"cmdstat_incr:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+),rejected_calls=0,"
                      r"failed_calls=0\r\n", info)
        self.assertIsNotNone(m, info)
        calls, usec = int(m.group(1)), int(m.group(2))
        self.assertEqual(calls, get(s, "rw_frames_total", protocol="resp", command="incr"))
        self.assertGreaterEqual(calls, 4)
        sum_us = get(s, "rw_service_time_seconds_sum", protocol="resp", command="incr") * 1e6
        self.assertLessEqual(abs(usec - sum_us), 1.0)
        self.assertAlmostEqual(float(m.group(3)), sum_us / calls, delta=0.01)

    def test_other_paths_and_methods(self):
        with socket.create_connection(("127.0.0.1", self.mport), timeout=10) as s:
            s.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _, rest = read_response(s)
            self.assertEqual(status, 404)
            s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            status, headers, _, rest = read_response(s, rest)
            self.assertEqual((status, headers["allow"]), (405, "GET, HEAD"))
            # Keep-alive: a scrape on the same connection, then one with a query string.
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body, rest = read_response(s, rest)
            self.assertEqual(status, 200)
            self.assertIn(b"rw_frames_total{", body)
            s.sendall(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, _, body, rest = read_response(s, rest)
            self.assertEqual(status, 200)
            self.assertEqual(s.recv(100), b"")

    @unittest.skipUnless(shutil.which("promtool"), "promtool is not installed (Debian's prometheus)")
    def test_promtool_checks_kvd(self):
        session(self.resp, [resp_cmd("SET", "p", "1"), resp_cmd("GET", "p")])
        text = scrape_text(self.mport)
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout + p.stderr, b"", "promtool's remarks")

    @unittest.skipUnless(shutil.which("prometheus"), "prometheus is not installed")
    def test_prometheus_scrapes_kvd(self):
        before = get(self.scrape(), "rw_frames_total", protocol="resp", command="set")
        session(self.resp, [resp_cmd("SET", f"prom{i}", i) for i in range(11)])
        want = before + 11
        with tempfile.TemporaryDirectory(prefix="rw-prom-") as tmp:
            port = free_port()
            with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        "scrape_configs:\n  - job_name: kvd\n    static_configs:\n"
                        f"      - targets: ['127.0.0.1:{self.mport}']\n")
            with open(os.path.join(tmp, "prometheus.log"), "wb") as log:
                prom = subprocess.Popen(
                    ["prometheus", "--config.file", os.path.join(tmp, "prometheus.yml"),
                     "--storage.tsdb.path", os.path.join(tmp, "data"), "--web.listen-address",
                     f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
            try:
                wait_port(port, prom, "prometheus", WAIT)
                query = urllib.parse.quote('rw_frames_total{job="kvd",protocol="resp",command="set"}')

                def value():
                    url = f"http://127.0.0.1:{port}/api/v1/query?query={query}"
                    try:
                        with urllib.request.urlopen(url, timeout=5) as r:
                            res = json.load(r)["data"]["result"]
                    except OSError:
                        return None
                    return res and float(res[0]["value"][1]) == want and res
                res = eventually("prometheus has the SETs", value, secs=30)
                self.assertEqual(res[0]["metric"]["instance"], f"127.0.0.1:{self.mport}")
            finally:
                prom.terminate()
                prom.wait(timeout=20)


class Tls(unittest.TestCase):
    def test_handshakes_and_failures(self):
        """Two completed handshakes; a client that does not trust the certificate (the server
        hears its alert: a handshake failure); plain text to the TLS port (the same)."""
        if not os.path.exists(os.path.join(CERTS.name, "ca.crt")):
            make_certs()
        kvd = Server(["kvd", "--workers", "2", "--resp-tls", "127.0.0.1:0", "--metrics", "127.0.0.1:0"] + cert_args(),
                     want=2)
        try:
            mport, port = metrics_port(kvd), kvd.ports[0]
            for _ in range(2):
                with client_ctx(["redis"]).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                                       server_hostname="localhost") as s:
                    s.sendall(resp_cmd("PING"))
                    self.assertEqual(Reader(s).line(), b"+PONG\r\n")
            with self.assertRaises(ssl.SSLError):
                ssl.create_default_context().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                                         server_hostname="localhost")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\n\r\n")
                s.settimeout(5)
                while s.recv(4096):
                    pass
            s = eventually("the failures counted", lambda: (
                lambda m: get(m, "rw_tls_failures_total", reason="handshake") == 2 and m)(parse(scrape_text(mport))))
            self.assertEqual(get(s, "rw_tls_handshakes_total"), 2)
            self.assertEqual(get(s, "rw_tls_failures_total", reason="record"), 0)
            self.assertEqual(get(s, "rw_connections_accepted_total"), 4)
        finally:
            self.assertEqual(kvd.stop(), 0)


class NoMalloc(unittest.TestCase):
    def test_scrapes_and_info_allocate_nothing_after_warm_up(self):
        """The optimised kvd under the malloc-counting interposer: traffic, scrapes, INFO and
        memcache's stats after a warm-up round of the same make no malloc-family call."""
        kvd = Server(["kvd", "--workers", "2", "--resp", "127.0.0.1:0", "--memcache", "127.0.0.1:0",
                      "--metrics", "127.0.0.1:0"], want=3, binary="build/bin/kvd", preload=MALLOC_COUNT)
        try:
            mport = metrics_port(kvd)

            def round_of_use():
                session(kvd.ports[0], [resp_cmd("SET", "a", "1"), resp_cmd("GET", "a"), resp_cmd("INFO", "everything")])
                session(kvd.ports[1], [b"set m 0 0 1\r\nx\r\n", b"stats\r\n"], resp=False)
                for _ in range(3):
                    self.assertIn("rw_service_time_seconds_bucket{", scrape_text(mport))
            round_of_use()
            before = kvd.malloc_count()
            for _ in range(5):
                round_of_use()
            self.assertEqual(kvd.malloc_count(), before)
        finally:
            self.assertEqual(kvd.stop(), 0)


class Httpd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rw-metrics-www-")
        with open(os.path.join(cls.root, "index.html"), "w") as f:
            f.write("hello\n")
        cls.httpd = Server(["httpd", "--root", cls.root, "--workers", "2", "--listen", "127.0.0.1:0",
                            "--metrics", "127.0.0.1:0"], want=2)
        cls.port, cls.mport = cls.httpd.ports[0], metrics_port(cls.httpd)

    @classmethod
    def tearDownClass(cls):
        cls.httpd.stop()
        shutil.rmtree(cls.root)

    def test_responses_by_class_and_ttfb(self):
        before = parse(scrape_text(self.mport))
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            rest = b""
            for path in ["/index.html"] * 3 + ["/missing"] * 2:
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
                status, _, _, rest = read_response(s, rest)
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400, closed
            status, _, _, rest = read_response(s, rest)
            self.assertEqual(status, 400)
        after = parse(scrape_text(self.mport))
        d = lambda name, **l: get(after, name, **l) - get(before, name, **l)  # noqa: E731
        self.assertEqual(d("httpd_responses_total", **{"class": "2xx"}), 3)
        self.assertEqual(d("httpd_responses_total", **{"class": "4xx"}), 3)
        self.assertEqual(d("rw_frames_total", protocol="http1", command="request"), 6)
        self.assertEqual(d("rw_ttfb_seconds_count", protocol="http1"), 6)
        # Scrapes are not counted as the traffic they report.
        self.assertEqual(d("rw_connections_accepted_total"), 1)

    @unittest.skipUnless(shutil.which("promtool"), "promtool is not installed (Debian's prometheus)")
    def test_promtool_checks_httpd(self):
        urllib.request.urlopen(f"http://127.0.0.1:{self.port}/index.html", timeout=10).read()
        text = scrape_text(self.mport)
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout + p.stderr, b"", "promtool's remarks")


if __name__ == "__main__":
    skip_without_uring()
    unittest.main()
