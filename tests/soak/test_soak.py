#!/usr/bin/python3
"""A bounded soak: the optimised kvd and httpd side by side under a mixed load with connection
churn for $RW_SOAK_SECONDS (default 120) after a warm-up, loopback only. Checks that resident
memory stays flat and that neither process calls malloc after the warm-up, /metrics scrapes
included. Prints what it did.
Run from the repository root: /usr/bin/python3 tests/soak/test_soak.py
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import pymemcache.client.base

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "kvd"))
from test_kvd import Kvd  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "httpd"))
from test_httpd import Httpd  # noqa: E402
from rwtest import MALLOC_COUNT, rss_kib  # noqa: E402

SECONDS = int(os.environ.get("RW_SOAK_SECONDS", "120"))


class Soak(unittest.TestCase):
    def test_mixed_load_with_churn(self):
        root = tempfile.TemporaryDirectory()
        with open(os.path.join(root.name, "index.html"), "w") as f:
            f.write("s" * 4000)
        with open(os.path.join(root.name, "big.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        kvd = Kvd("--workers", "2", "--memory", "32m", "--metrics", "127.0.0.1:0", binary="build/bin/kvd",
                  preload=MALLOC_COUNT)
        httpd = Httpd(root.name, "--workers", "2", "--metrics", "127.0.0.1:0", binary="build/bin/httpd",
                      preload=MALLOC_COUNT)
        totals = {"redis-benchmark requests": 0, "memcache ops": 0, "http requests": 0, "connections": 0,
                  "scrapes": 0}
        metrics = [int(re.search(r"metrics at http://127\.0\.0\.1:(\d+)/", p.text()).group(1)) for p in (kvd, httpd)]

        def round_of_load():
            n = 20000
            subprocess.run(["redis-benchmark", "-p", str(kvd.resp), "-t", "set,get,incr", "-n", str(n), "-c", "20",
                            "-P", "4", "-r", "50000", "-d", "100", "-q"], capture_output=True, timeout=120, check=True)
            totals["redis-benchmark requests"] += 3 * n
            totals["connections"] += 60
            for i in range(20):  # churn: short-lived memcache clients
                m = pymemcache.client.base.Client(("127.0.0.1", kvd.memcache), default_noreply=False, no_delay=True)
                m.set(f"mc{i}", b"v" * (100 + i * 50))
                m.get_many([f"mc{i}", f"key:{i:012d}"])
                m.close()
                totals["memcache ops"] += 2
                totals["connections"] += 1
            out = subprocess.run(["h2load", "--h1", "-n", "4000", "-c", "40", "-m", "2",
                                  f"http://127.0.0.1:{httpd.port}/index.html"], capture_output=True, timeout=120).stdout
            self.assertIn(b"4000 succeeded", out)
            totals["http requests"] += 4000
            totals["connections"] += 40
            s = socket.create_connection(("127.0.0.1", httpd.port), timeout=10)
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = 0
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
            s.close()
            self.assertGreater(got, 1 << 20)
            totals["http requests"] += 1
            totals["connections"] += 1
            for port in metrics:  # a scrape renders into the worker's buffer: nothing allocated
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    self.assertIn(b"rw_frames_total{", r.read())
                totals["scrapes"] += 1

        try:
            for _ in range(3):  # warm-up: the key space written, every pool touched
                round_of_load()
            base_rss = {p: rss_kib(p.proc.pid) for p in (kvd, httpd)}
            base_malloc = {p: p.malloc_count() for p in (kvd, httpd)}
            peak = dict(base_rss)
            half = {}
            rounds = 0
            start = time.time()
            while time.time() < start + SECONDS:
                round_of_load()
                rounds += 1
                for p in (kvd, httpd):
                    peak[p] = max(peak[p], rss_kib(p.proc.pid))
                    if time.time() >= start + SECONDS / 2:
                        half.setdefault(p, peak[p])
            for p, name in ((kvd, "kvd"), (httpd, "httpd")):
                # The store and the file cache are mapped at start and become resident as they
                # fill, within their budgets; flat means no growth once they have.
                late = peak[p] - half.get(p, peak[p])
                calls = p.malloc_count() - base_malloc[p]
                print(f"\n{name}: RSS {base_rss[p] / 1024:.1f} MiB after warm-up, {half.get(p, 0) / 1024:.1f} MiB "
                      f"half-way, peak {peak[p] / 1024:.1f} MiB (+{late} KiB in the second half); "
                      f"{calls} malloc-family calls after warm-up", file=sys.stderr)
                self.assertLess(late, 2048, f"{name} RSS still growing: +{late} KiB in the second half")
                self.assertEqual(calls, 0, f"{name} allocated after warm-up")
            print(f"soak: {SECONDS} s, {rounds} rounds: " + ", ".join(f"{v} {k}" for k, v in totals.items()),
                  file=sys.stderr)
        finally:
            self.assertEqual(kvd.stop(), 0)
            self.assertEqual(httpd.stop(), 0)
            root.cleanup()


if __name__ == "__main__":
    unittest.main()
