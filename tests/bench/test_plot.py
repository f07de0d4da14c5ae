#!/usr/bin/python3
"""bench/plot against a fixed report (tests/bench/report.md): every picture is a whole PNG of
the expected size with each of its servers in that server's palette colour, linked once right
after its table; a second run changes nothing; a report that lacks some tables loses those
pictures and their links. Needs gnuplot (Debian: gnuplot-nox).
Run from the repository root: /usr/bin/python3 tests/bench/test_plot.py
"""
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURE = os.path.join(ROOT, "tests", "bench", "report.md")

# Colours of the palette in bench/plot, by server.
REDIS, MEMCACHED, NGINX, H2O = "D55E00", "009E73", "E69F00", "CC79A7"
FLOOR, URING, EPOLL = "000000", "0072B2", "56B4E9"

# Picture: (width, height), colours it must show, the heading of the table its link follows.
PICTURES = {
    "pingd.png": ((1000, 560), [URING, EPOLL, FLOOR, REDIS], "pingd vs redis-server"),
    "pingd-latency.png": ((1000, 771), [URING, EPOLL, REDIS], "pingd vs redis-server"),
    "kvd.png": ((1000, 792), [URING, EPOLL, REDIS, MEMCACHED], "memcache text"),
    "kvd-latency.png": ((1000, 771), [URING, EPOLL, REDIS, MEMCACHED], "memcache text"),
    "httpd.png": ((1000, 567), [URING, EPOLL, NGINX, H2O], "HTTPS: the same file"),
    "httpd-latency.png": ((1000, 546), [URING, EPOLL, NGINX, H2O], "HTTPS: the same file"),
}


def read_png(path):
    """Checks the signature, that IHDR comes first and IEND last, every chunk's CRC; returns
    (width, height, set of colours as RRGGBB) of an 8-bit RGB or RGBA image."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG signature"
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert len(body) == length and zlib.crc32(kind + body) == crc, f"{path}: bad {kind} chunk"
        chunks.append(kind)
        if kind == b"IHDR":
            assert length == 13, f"{path}: IHDR length {length}"
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", f"{path}: chunks {chunks[:1]}..{chunks[-1:]}"
    assert depth == 8 and ctype in (2, 6), f"{path}: depth {depth}, colour type {ctype}"
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, colours = zlib.decompress(idat), width * bpp, bytearray(width * bpp), set()
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(line[i:i + 3].hex().upper() for i in range(0, stride, bpp))
        prev = line
    return width, height, colours


class Plot(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.report = os.path.join(self.dir, "2026-01-02.md")
        shutil.copy(FIXTURE, self.report)
        self.plots = os.path.join(self.dir, "plots", "2026-01-02")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def plot(self):
        r = subprocess.run(["bash", os.path.join(ROOT, "bench", "plot"), self.report],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Nothing but the closing line: a gnuplot warning (say, no valid points) fails the test.
        self.assertEqual([l for l in r.stderr.splitlines() if not l.startswith("pictures in ")], [])
        with open(self.report) as f:
            return f.read()

    def check_links(self, text, names):
        lines = text.splitlines()
        links = [i for i, l in enumerate(lines) if l.startswith("![")]
        self.assertEqual(sorted(re.search(r"\(plots/2026-01-02/(.*)\)$", lines[i]).group(1) for i in links),
                         sorted(names))
        for i in links:
            name = re.search(r"([^/]*)\)$", lines[i]).group(1)
            heading = next(l for l in reversed(lines[:i]) if l.startswith("#"))
            self.assertIn(PICTURES[name][2], heading, f"{name} linked under {heading!r}")
            # Right after the table (or the picture before it), a blank line between.
            self.assertEqual(lines[i - 1], "")
            self.assertTrue(lines[i - 2].startswith("|") or lines[i - 2].startswith("!["), lines[i - 2])

    def test_every_picture(self):
        text = self.plot()
        self.assertEqual(sorted(os.listdir(self.plots)), sorted(PICTURES))
        for name, ((width, height), want, _) in PICTURES.items():
            w, h, colours = read_png(os.path.join(self.plots, name))
            self.assertEqual((w, h), (width, height), name)
            self.assertEqual([c for c in want if c not in colours], [], f"{name}: colours missing")
        self.check_links(text, PICTURES)
        # Every table stays as it was: the report differs from the fixture by the links alone.
        with open(FIXTURE) as f:
            self.assertEqual(re.sub(r"\n\n!\[[^\n]*", "", text), f.read())

        # A second run: the same report, the same pictures.
        self.assertEqual(self.plot(), text)
        self.assertEqual(sorted(os.listdir(self.plots)), sorted(PICTURES))

        # Without the httpd tables, the httpd pictures and their links go.
        with open(self.report, "w") as f:
            f.write(text[:text.index("## httpd benchmark")])
        text = self.plot()
        rest = [n for n in PICTURES if not n.startswith("httpd")]
        self.assertEqual(sorted(os.listdir(self.plots)), sorted(rest))
        self.check_links(text, rest)

    def test_missing_column(self):
        # A table whose columns changed stops bench/plot, naming the column, the report untouched.
        with open(self.report, "w") as f:
            with open(FIXTURE) as fixture:
                f.write(fixture.read().replace("| epoll rps/cpu |", "| epoll rps per CPU |"))
        with open(self.report) as f:
            before = f.read()
        r = subprocess.run(["bash", os.path.join(ROOT, "bench", "plot"), self.report],
                           capture_output=True, text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no column epoll rps/cpu", r.stderr)
        with open(self.report) as f:
            self.assertEqual(f.read(), before)

    def test_no_enhanced_text(self):
        # gnuplot's enhanced text would print "io_uring" as "io" with a subscript "u".
        with open(os.path.join(ROOT, "bench", "plot")) as f:
            terminals = [l for l in f if "set terminal" in l]
        self.assertTrue(terminals)
        for l in terminals:
            self.assertIn("noenhanced", l)


if __name__ == "__main__":
    unittest.main(verbosity=2)
