#!/usr/bin/python3
"""The deployment files in deploy/, run: the systemd units through `systemd-analyze verify`, and
the scale-out recipes with Debian's engines in front of three local instances each (nutcracker
before kvd, haproxy before httpd), the committed files rendered with ephemeral ports.
Run from the repository root: /usr/bin/python3 tests/deploy/test_deploy.py [-v]
$RW_BIN picks the build (default build/asan/bin), $RW_BACKEND the backend.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import pymemcache.client.base
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.join(HERE, "..", "..", "deploy")
for d in ("lib", "kvd", "httpd", "tls"):
    sys.path.insert(0, os.path.join(HERE, "..", d))
from rwtest import BIN, Server  # noqa: E402
from test_httpd import read_response  # noqa: E402
from test_kvd import free_port, mc_session, resp_cmd, resp_session, wait_port  # noqa: E402
from test_tls import CERTS, client_ctx, make_certs  # noqa: E402

# Every wait below is bounded by this many seconds.
WAIT = 15


def render(name, subs):
    """deploy/NAME with each (pattern, replacement, count) applied: the count must be exact, so a
    recipe that drifts from what the test knows of it fails here instead of testing less."""
    with open(os.path.join(DEPLOY, name)) as f:
        text = f.read()
    for pattern, repl, count in subs:
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == count, f"{name}: {pattern!r} matched {n} times, not {count}"
    return text


def eventually(what, check, secs=WAIT):
    """Calls check() until it returns a true value (returned) or secs pass (an assertion)."""
    deadline = time.time() + secs
    last = None
    while time.time() < deadline:
        try:
            got = check()
            if got:
                return got
        except (OSError, EOFError, redis.RedisError, pymemcache.exceptions.MemcacheError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what} within {secs} s (last error: {last!r})")


class Proc:
    """An engine from Debian run in the foreground with its output in a file."""

    def __init__(self, argv, ports, cwd):
        self.log = os.path.join(cwd, argv[0].rsplit("/", 1)[-1] + ".log")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            for p in ports:
                wait_port(p, self.proc, argv[0], WAIT)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{e}: {self.text()}")

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def kill(proc):
    """A class cleanup: whatever a failed set-up or test left running goes (no-op once stopped)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# ---- the service units ----

class Units(unittest.TestCase):
    def unit(self, name, binary):
        """deploy/NAME.service with its ExecStart naming the built binary (verify wants it to
        exist), in a directory of its own under its own name; and the ExecStart arguments."""
        text = render(name + ".service", [(r"^ExecStart=/usr/local/bin/" + name, "ExecStart=" + binary, 1)])
        d = tempfile.mkdtemp(prefix="rw-unit-")
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, name + ".service")
        with open(path, "w") as f:
            f.write(text)
        args = re.search(r"^ExecStart=\S+ (.*?)(?<!\\)$", text, re.M | re.S).group(1).replace("\\\n", " ").split()
        return path, text, args

    def verify(self, path):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (Debian's systemd package): units not verified")
        out = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual((out.returncode, out.stdout + out.stderr), (0, ""))

    def limits(self, text, args, fds_per_conn):
        """LimitNOFILE covers --max-conns (times the fds each connection may hold)."""
        conns = int(args[args.index("--max-conns") + 1])
        nofile = int(re.search(r"^LimitNOFILE=(\d+)$", text, re.M).group(1))
        self.assertGreaterEqual(nofile, conns * fds_per_conn + 1024)

    def test_kvd_unit(self):
        path, text, args = self.unit("kvd", os.path.abspath(os.path.join(BIN, "kvd")))
        self.limits(text, args, 1)
        # The log lives in the state directory, the one place the service may write.
        self.assertIn("StateDirectory=kvd", text)
        self.assertEqual(args[args.index("--aof") + 1], "%S/kvd/appendonly.aof")
        self.verify(path)

    def test_httpd_unit(self):
        path, text, args = self.unit("httpd", os.path.abspath(os.path.join(BIN, "httpd")))
        self.limits(text, args, 2)
        # The access log is the file deploy/logrotate rotates, in the unit's LogsDirectory.
        self.assertEqual(args[args.index("--access-log") + 1], "%L/httpd/access.log")
        self.assertIn("LogsDirectory=httpd", text)
        self.verify(path)

    def test_hardening_keeps_what_the_appliances_need(self):
        """The system call filter lets io_uring through (else --backend auto quietly runs epoll)
        and --pin's affinity calls; the address families include IPv4 and IPv6."""
        for name in ("kvd", "httpd"):
            with open(os.path.join(DEPLOY, name + ".service")) as f:
                text = f.read()
            allowed = " ".join(re.findall(r"^SystemCallFilter=([^~].*)$", text, re.M)).split()
            denied = " ".join(re.findall(r"^SystemCallFilter=~(.*)$", text, re.M)).split()
            for call in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
                self.assertIn(call, allowed, name)
            self.assertNotIn("@resources", denied, name)
            families = re.search(r"^RestrictAddressFamilies=(.*)$", text, re.M).group(1).split()
            self.assertIn("AF_INET", families)
            self.assertIn("AF_INET6", families)
            if shutil.which("systemd-analyze"):
                # Every group the unit denies is one systemd knows, and none holds io_uring's calls.
                for group in denied:
                    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                                         text=True, timeout=30)
                    self.assertEqual(out.returncode, 0, out.stderr)
                    self.assertNotIn("io_uring", out.stdout)

    def test_logrotate_signals_httpd(self):
        with open(os.path.join(DEPLOY, "logrotate")) as f:
            text = f.read()
        with open(os.path.join(DEPLOY, "httpd.service")) as f:
            unit = f.read()
        # The rotated path is in the unit's LogsDirectory, and httpd's main process gets SIGHUP.
        logs = re.search(r"^LogsDirectory=(\S+)$", unit, re.M).group(1)
        self.assertRegex(text, r"(?m)^/var/log/%s/\S+ \{$" % re.escape(logs))
        self.assertRegex(text, r"postrotate\n\s+(#.*\n\s+)*systemctl kill --kill-who=main --signal=HUP httpd\.service")
        if shutil.which("logrotate"):
            d = tempfile.mkdtemp(prefix="rw-logrotate-")
            self.addCleanup(shutil.rmtree, d)
            out = subprocess.run(["logrotate", "-d", "-s", os.path.join(d, "state"), os.path.join(DEPLOY, "logrotate")],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertNotIn("error", out.stdout + out.stderr)

    def test_logrotate_rotates_and_signals(self):
        """The snippet run for real (forced) on a log in a temporary directory, its postrotate
        command swapped for one that leaves a mark: the log is moved aside, not created again
        (httpd reopens it by name), and the signal step runs once."""
        if not shutil.which("logrotate"):
            self.skipTest("logrotate is not installed (Debian's logrotate package): snippet not run")
        d = tempfile.mkdtemp(prefix="rw-logrotate-")
        self.addCleanup(shutil.rmtree, d)
        log, mark = os.path.join(d, "access.log"), os.path.join(d, "hup")
        conf = render("logrotate", [(r"^/var/log/httpd/access\.log ", log + " ", 1),
                                    (r"systemctl kill --kill-who=main --signal=HUP httpd\.service.*$", f"echo hup >>{mark}", 1)])
        with open(os.path.join(d, "conf"), "w") as f:
            f.write(conf)
        for day in range(2):
            with open(log, "w") as f:
                f.write(f'127.0.0.1 - - [06/Dec/2026:10:00:0{day} +0000] "GET / HTTP/1.1" 200 5 "-" "curl"\n')
            out = subprocess.run(["logrotate", "-f", "-s", os.path.join(d, "state"), os.path.join(d, "conf")],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertFalse(os.path.exists(log))
        # delaycompress: the newest rotated file stays plain, the one before is compressed.
        self.assertTrue(os.path.exists(log + ".1"))
        self.assertTrue(os.path.exists(log + ".2.gz"))
        with open(mark) as f:
            self.assertEqual(f.read().count("\n"), 2)



class Notify(unittest.TestCase):
    """Type=notify readiness: the appliance sends READY=1 to $NOTIFY_SOCKET (an AF_UNIX datagram
    socket, here the test's own, as systemd's would be) once it accepts connections."""

    def ready(self, argv, address, bind_to):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(bind_to)
            sock.settimeout(WAIT)
            srv = Server(argv, 1, env={"NOTIFY_SOCKET": address})
            try:
                msg = sock.recv(4096)
                # The datagram comes after every listener is up: each port accepts now.
                for port in srv.ports:
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
                self.assertEqual(msg, b"READY=1")
                self.assertNotIn("cannot notify", srv.text())
                sock.settimeout(0.5)
                with self.assertRaises(socket.timeout):  # once only
                    sock.recv(4096)
            finally:
                self.assertEqual(srv.stop(), 0, srv.text())

    def test_kvd_path(self):
        d = tempfile.mkdtemp(prefix="rw-notify-")
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "notify")
        self.ready(["kvd", "--resp", "127.0.0.1:0", "--memcache", "127.0.0.1:0", "--workers", "2", "--memory", "8m",
                    "--max-conns", "64"], path, path)

    def test_httpd_abstract(self):
        """systemd's own socket is a path, but the protocol also allows the abstract namespace."""
        name = f"rw-notify-{os.getpid()}-{time.monotonic_ns()}"
        self.ready(["httpd", "--listen", "127.0.0.1:0", "--root", HERE, "--max-conns", "64"], "@" + name,
                   "\0" + name)

    def test_a_bad_socket_is_logged_and_serving_goes_on(self):
        srv = Server(["httpd", "--listen", "127.0.0.1:0", "--root", HERE, "--max-conns", "64"], 1,
                     env={"NOTIFY_SOCKET": "/nonexistent/notify"})
        try:
            status, _, _ = http_get(srv.ports[0], "/test_deploy.py")
            self.assertEqual(status, 200)
            eventually("the log line", lambda: "cannot notify the service manager at NOTIFY_SOCKET="
                       "/nonexistent/notify: No such file or directory" in srv.text())
        finally:
            self.assertEqual(srv.stop(), 0, srv.text())

# ---- twemproxy in front of three kvd ----

class Twemproxy(unittest.TestCase):
    """deploy/twemproxy.yml with its three kvd on local ports: one keyspace over both pools."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("nutcracker"):
            raise unittest.SkipTest("nutcracker is not installed (Debian's nutcracker package)")
        cls.dir = tempfile.TemporaryDirectory(prefix="rw-twemproxy-")
        cls.resp_ports = [free_port() for _ in range(3)]
        cls.mc_ports = [free_port() for _ in range(3)]
        cls.kvd = [cls.start_kvd(i) for i in range(3)]
        cls.ref = cls.start_kvd(None)  # a lone kvd: what a direct client sees
        cls.resp, cls.mc, stats = free_port(), free_port(), free_port()
        subs = [(r"listen: 0\.0\.0\.0:6379$", f"listen: 127.0.0.1:{cls.resp}", 1),
                (r"listen: 0\.0\.0\.0:11211$", f"listen: 127.0.0.1:{cls.mc}", 1)]
        for i in range(3):
            subs += [(rf"- 10\.0\.0\.{i + 1}:6379:1 kvd{i + 1}$", f"- 127.0.0.1:{cls.resp_ports[i]}:1 kvd{i + 1}", 1),
                     (rf"- 10\.0\.0\.{i + 1}:11211:1 kvd{i + 1}$", f"- 127.0.0.1:{cls.mc_ports[i]}:1 kvd{i + 1}", 1)]
        conf = os.path.join(cls.dir.name, "twemproxy.yml")
        with open(conf, "w") as f:
            f.write(render("twemproxy.yml", subs))
        check = subprocess.run(["nutcracker", "-t", "-c", conf], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        cls.addClassCleanup(cls.dir.cleanup)
        cls.proxy = Proc(["nutcracker", "-c", conf, "-s", str(stats), "-a", "127.0.0.1"], [cls.resp, cls.mc],
                         cls.dir.name)

    @classmethod
    def start_kvd(cls, i):
        if i is None:
            ports = ["127.0.0.1:0", "127.0.0.1:0"]
            log = []
        else:
            ports = [f"127.0.0.1:{cls.resp_ports[i]}", f"127.0.0.1:{cls.mc_ports[i]}"]
            # Each behind the proxy keeps a log, as the unit's kvd does: a restart replays it.
            log = ["--aof", os.path.join(cls.dir.name, f"kvd{i + 1}.aof"), "--fsync", "always"]
        srv = Server(["kvd", "--resp", ports[0], "--memcache", ports[1], "--workers", "1", "--memory", "8m",
                      "--max-conns", "64"] + log, 2)
        srv.resp, srv.memcache = srv.ports
        cls.addClassCleanup(kill, srv.proc)
        return srv

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for srv in cls.kvd + [cls.ref]:
            if srv.proc.poll() is None:
                assert srv.stop() == 0, srv.text()

    def setUp(self):
        for i, srv in enumerate(self.kvd):
            if srv.proc.poll() is not None:  # a test that failed after its kill
                self.kvd[i] = self.start_kvd(i)
        for srv in self.kvd + [self.ref]:
            redis.Redis(port=srv.resp).flushall()

    def proxied(self):
        return redis.Redis(port=self.resp, socket_timeout=5)

    def owners(self, keys):
        """For each key, the indexes of the kvd that hold it (asked directly)."""
        def has(i, k):
            try:
                return self.kvd[i].proc.poll() is None and direct[i].exists(k)
            except redis.ConnectionError:
                return False

        direct = [redis.Redis(port=srv.resp, socket_timeout=5) for srv in self.kvd]
        return [[i for i in range(3) if has(i, k)] for k in keys]

    def test_keys_spread_over_one_keyspace(self):
        """Keys written through either pool land on one kvd each, all three used, and the key a
        RESP client writes is the key a memcache client reads through the proxy (and back)."""
        r = self.proxied()
        # Acknowledged writes (pymemcache's default is noreply): the two pools reach a kvd over
        # two connections, so a read over RESP can overtake an unacknowledged memcache write.
        m = pymemcache.client.base.Client(("127.0.0.1", self.mc), timeout=5, default_noreply=False)
        keys = [f"user:{i}" for i in range(300)]
        for i, k in enumerate(keys[:150]):
            r.set(k, f"v{i}")
        for i, k in enumerate(keys[150:], 150):
            m.set(k, f"v{i}")
        owners = self.owners(keys)
        self.assertTrue(all(len(o) == 1 for o in owners), owners)
        counts = [sum(o == [i] for o in owners) for i in range(3)]
        self.assertTrue(all(c >= 50 for c in counts), counts)
        for i, k in enumerate(keys):
            self.assertEqual(m.get(k), f"v{i}".encode())
            self.assertEqual(r.get(k), f"v{i}".encode())
        # The owner found directly is the one each protocol reaches: a memcache write replaces
        # the RESP value on the same kvd, never a second copy elsewhere.
        for k in keys[:30]:
            m.set(k, "again")
        self.assertEqual(self.owners(keys[:30]), owners[:30])
        self.assertEqual(r.mget(keys[:30]), [b"again"] * 30)

    # Every kvd command twemproxy forwards, with keys on all three kvd: through the proxy the
    # replies are the bytes a lone kvd gives a direct client (multi-key ones are split by key and
    # put together again by twemproxy).
    RESP_FORWARDED = [
        ("PING",), ("GET", "k"), ("SET", "k", "v"), ("GET", "k"), ("SET", "k", "v2", "NX"),
        ("SET", "k", "v3", "XX", "GET"), ("SET", "t", "v", "EX", "1000"), ("TTL", "t"), ("SETNX", "a", "1"),
        ("SETNX", "a", "2"), ("SETEX", "b", "1000", "x"), ("TTL", "b"), ("GETSET", "a", "3"),
        ("MSET", "m1", "1", "m2", "2", "m3", "3", "m4", "4", "m5", "5"), ("MGET", "m1", "m2", "nokey", "m3", "m4", "m5"),
        ("EXISTS", "m1"), ("EXISTS", "nokey"), ("DEL", "m1", "m2", "nokey", "m3"),
        ("MGET", "m1", "m2", "m3", "m4", "m5"), ("INCR", "c"), ("INCRBY", "c", "10"), ("DECR", "c"),
        ("DECRBY", "c", "3"), ("INCR", "k"), ("INCRBY", "c", "x"), ("APPEND", "ap", "hello"),
        ("APPEND", "ap", " world"), ("STRLEN", "ap"), ("EXPIRE", "ap", "1000"), ("TTL", "ap"),
        ("PEXPIRE", "ap", "1000000"), ("TTL", "ap"), ("PERSIST", "ap"), ("TTL", "ap"), ("PTTL", "ap"),
        ("EXPIRE", "ap", "-1"), ("GET", "ap"), ("SET", "bin", b"a\x00b\r\nc\xff"), ("GET", "bin"),
        ("SET", "k", "v", "PX", "100", "EX", "10"), ("SET", "k", "v", "EX", "abc"), ("GETSET", "nokey2", "v"),
        # Forwarded by twemproxy, not kvd's (HSET, LPUSH, SADD): kvd's unknown-command error comes
        # back; then kvd's own commands that twemproxy forwards too.
        ("HSET", "h", "f", "v"), ("LPUSH", "l", "x"), ("SADD", "s", "x"), ("GETDEL", "k"), ("GETEX", "k"),
        ("GETRANGE", "k", "0", "1"), ("SETRANGE", "k", "0", "x"), ("INCRBYFLOAT", "c", "1.5"),
        ("PSETEX", "k", "1000", "v"), ("EXPIREAT", "k", "99999999999"), ("TYPE", "k"), ("GET", "k"),
        # For redis-cli's sake twemproxy sends a bare COMMAND (no subcommand) to one kvd.
        ("COMMAND",),
    ]
    # kvd commands twemproxy 0.5.0 does not forward: it logs "parsed unsupported command" and
    # closes the client's connection.
    RESP_REFUSED = [("ECHO", "x"), ("SELECT", "0"), ("DBSIZE",), ("FLUSHALL",), ("INFO",),
                    ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "x"), ("COMMAND", "COUNT"), ("COMMAND", "INFO", "get")]

    def test_resp_through_the_proxy_matches_a_direct_client(self):
        keys = ["k", "t", "a", "b", "m1", "m2", "m3", "m4", "m5", "c", "ap", "bin"]
        proxied, direct = resp_session(self.resp, self.RESP_FORWARDED), resp_session(self.ref.resp, self.RESP_FORWARDED)
        for c, p, d in zip(self.RESP_FORWARDED, proxied, direct):
            self.assertEqual(p, d, c)
        self.assertEqual(len({o[0] for o in self.owners(keys) if o}), 3)

    def test_exists_counts_the_first_keys_kvd_only(self):
        """twemproxy 0.5.0 sends EXISTS with several keys whole to the first key's kvd, so it
        counts only the keys that live there (docs/deploy.md says so)."""
        keys = [f"x{i}" for i in range(12)]
        r = self.proxied()
        r.mset({k: "1" for k in keys})
        owners = self.owners(keys)
        self.assertGreater(len({o[0] for o in owners}), 1)
        self.assertEqual(r.exists(*keys), sum(o == owners[0] for o in owners))
        self.assertLess(r.exists(*keys), len(keys))

    def test_commands_twemproxy_refuses(self):
        for c in self.RESP_REFUSED:
            with socket.create_connection(("127.0.0.1", self.resp), timeout=5) as s:
                s.sendall(resp_cmd(*c))
                self.assertEqual(s.recv(100), b"", c)
        # redis-cli --pipe ends its stream with an ECHO of a random marker and waits for it to
        # come back, so through twemproxy it fails (straight to a kvd, the same input works).
        data = b"".join(resp_cmd("SET", f"p{i}", i) for i in range(100))
        through = subprocess.run(["redis-cli", "-p", str(self.resp), "--pipe"], input=data, capture_output=True,
                                 timeout=30)
        self.assertNotEqual(through.returncode, 0, through.stdout)
        direct = subprocess.run(["redis-cli", "-p", str(self.ref.resp), "--pipe"], input=data, capture_output=True,
                                timeout=30)
        self.assertEqual(direct.returncode, 0, direct.stdout + direct.stderr)
        self.assertIn(b"replies: 100", direct.stdout)

    MC_FORWARDED = [
        b"get k\r\n", b"set k 5 0 2\r\nhi\r\n", b"get k\r\n", b"add k 0 0 1\r\nx\r\n", b"add n 0 0 1\r\n1\r\n",
        b"replace k 7 0 3\r\nabc\r\n", b"replace nokey 0 0 1\r\nx\r\n", b"append k 0 0 2\r\nde\r\n",
        b"prepend k 0 0 2\r\nyz\r\n", b"get k n nokey a b c\r\n", b"set a 0 0 1\r\nA\r\n", b"set b 0 0 1\r\nB\r\n",
        b"get a b c k n\r\n", b"incr n 41\r\n", b"decr n 50\r\n", b"incr k 1\r\n", b"incr nokey 1\r\n",
        b"touch k 100\r\n", b"touch nokey 100\r\n", b"delete a\r\n", b"delete a\r\n", b"get a b\r\n",
        b"set q 0 0 1 noreply\r\nq\r\n", b"get q\r\n", b"version\r\n",
    ]
    MC_REFUSED = [b"stats\r\n", b"flush_all\r\n", b"verbosity 1\r\n"]

    @staticmethod
    def mc_items(reply):
        """A get's reply as its sorted VALUE items (header and data), then its END."""
        assert reply.endswith(b"END\r\n"), reply
        items, rest = [], reply[:-5]
        while rest:
            head, rest = rest.split(b"\r\n", 1)
            n = int(head.split()[3])
            items.append(head + b"\r\n" + rest[:n + 2])
            rest = rest[n + 2:]
        return sorted(items), b"END\r\n"

    def test_memcache_through_the_proxy_matches_a_direct_client(self):
        proxied, direct = mc_session(self.mc, self.MC_FORWARDED), mc_session(self.ref.memcache, self.MC_FORWARDED)
        # mc_session ends with a `version`: nothing left unread on either side.
        self.assertEqual(proxied[-1], direct[-1])
        for c, p, d in zip(self.MC_FORWARDED, proxied, direct):
            if c.startswith(b"get ") and c.count(b" ") > 1:
                # A multi-key get comes back grouped by kvd, not in the order asked: the same
                # items, each whole.
                p, d = self.mc_items(p), self.mc_items(d)
            self.assertEqual(p, d, c)
        self.assertEqual(len({o[0] for o in self.owners(["k", "n", "b", "q"]) if o}) > 1, True)
        # gets and cas: the unique comes from the owning kvd, and a cas with it succeeds once.
        m = pymemcache.client.base.Client(("127.0.0.1", self.mc), timeout=5, default_noreply=False)
        for k in ("k", "n", "b"):
            value, unique = m.gets(k)
            self.assertTrue(m.cas(k, b"new", unique))
            self.assertFalse(m.cas(k, b"newer", unique))
            self.assertEqual(m.get(k), b"new")
        for c in self.MC_REFUSED:
            with socket.create_connection(("127.0.0.1", self.mc), timeout=5) as s:
                s.sendall(c)
                self.assertEqual(s.recv(100), b"", c)

    def test_killed_kvd_is_ejected_and_rejoins(self):
        """SIGKILL one kvd: twemproxy ejects it (auto_eject_hosts) and its keys go to the other
        two, both protocols served throughout; restarted on its ports, it takes keys again."""
        r = self.proxied()
        m = pymemcache.client.base.Client(("127.0.0.1", self.mc), timeout=5, default_noreply=False)
        keys = [f"e:{i}" for i in range(200)]
        for k in keys:
            r.set(k, k)
        owners = self.owners(keys)
        victim = 1
        lost = [k for k, o in zip(keys, owners) if o == [victim]]
        self.assertTrue(lost)
        self.kvd[victim].proc.kill()
        self.kvd[victim].proc.wait()

        def served():
            for k in keys:
                r.set(k, "after")
                if m.get(k) != b"after":
                    return False
            return True

        eventually("service without the killed kvd", served)
        owners = self.owners(keys)  # asks the dead one too: a refused connection is "not there"
        self.assertTrue(all(len(o) == 1 and o != [victim] for o in owners), owners)

        self.kvd[victim] = self.start_kvd(victim)
        back = redis.Redis(port=self.kvd[victim].resp, socket_timeout=5)
        probes = [f"probe:{i}" for i in range(60)]

        def rejoined():
            for k in probes:
                r.set(k, "p")
            return back.exists(*probes) > 0

        eventually("the restarted kvd taking keys", rejoined)
        # It replayed its log: the keys it held read their values from before the kill, not
        # those written to the other kvd while it was out (docs/deploy.md: auto_eject_hosts).
        self.assertEqual(r.mget(lost), [k.encode() for k in lost])
        for k in keys:
            r.set(k, "rejoined")
        # Once back, the keys it held before the kill are its own again (the copies written to
        # the others meanwhile stay there, unread, until they expire or are evicted).
        self.assertTrue(all(victim in o for o in self.owners(lost)))
        self.assertEqual(r.mget(keys), [b"rejoined"] * len(keys))



# ---- haproxy in front of three httpd ----

def http_get(port, path, method="GET", host="localhost"):
    """(status, headers, body) of one request on a connection of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        status, headers, body, _ = read_response(s, to_head=method == "HEAD")
        return status, headers, body


class Haproxy(unittest.TestCase):
    """deploy/haproxy.cfg with its three httpd on local ports, each serving a root of its own
    (the same index.html, and who.txt naming the instance)."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("haproxy"):
            raise unittest.SkipTest("haproxy is not installed (Debian's haproxy package)")
        make_certs()
        cls.dir = tempfile.TemporaryDirectory(prefix="rw-haproxy-")
        cls.plain_ports = [free_port() for _ in range(3)]
        cls.tls_ports = [free_port() for _ in range(3)]
        cls.roots = []
        for i in range(3):
            root = os.path.join(cls.dir.name, f"www{i + 1}")
            os.mkdir(root)
            with open(os.path.join(root, "index.html"), "w") as f:
                f.write("<h1>one site, three servers</h1>\n")
            with open(os.path.join(root, "who.txt"), "w") as f:
                f.write(f"httpd{i + 1}")
            cls.roots.append(root)
        cls.httpd = [cls.start_httpd(i) for i in range(3)]
        cls.http, cls.https, cls.stats = free_port(), free_port(), free_port()
        conf = cls.render_conf(cls.stats)
        check = subprocess.run(["haproxy", "-c", "-f", conf], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        cls.addClassCleanup(cls.dir.cleanup)
        cls.proxy = Proc(["haproxy", "-db", "-f", conf], [cls.http, cls.https, cls.stats], cls.dir.name)

    @classmethod
    def render_conf(cls, stats, extra=""):
        """The recipe on local ports, with a stats page (CSV at /stats;csv) to watch the checks."""
        subs = [(r"bind :80$", f"bind 127.0.0.1:{cls.http}", 1), (r"bind :443$", f"bind 127.0.0.1:{cls.https}", 1),
                # Its log into the test's log file (a failure shows it), one line per session.
                (r"^global$", "global\n    log stdout format raw local0 info", 1),
                (r"^defaults$", "defaults\n    log global\n    option dontlognull\n    option tcplog", 1)]
        for i in range(3):
            subs += [(rf"server httpd{i + 1} 10\.0\.0\.{i + 1}:8080$", f"server httpd{i + 1} 127.0.0.1:{cls.plain_ports[i]}", 1),
                     (rf"server httpd{i + 1} 10\.0\.0\.{i + 1}:8443$", f"server httpd{i + 1} 127.0.0.1:{cls.tls_ports[i]}", 1)]
        text = render("haproxy.cfg", subs)
        text += f"\nlisten stats\n    mode http\n    bind 127.0.0.1:{stats}\n    stats enable\n    stats uri /stats\n"
        path = os.path.join(cls.dir.name, f"haproxy-{stats}.cfg")
        with open(path, "w") as f:
            f.write(text + extra)
        return path

    @classmethod
    def start_httpd(cls, i):
        d = CERTS.name
        srv = Server(["httpd", "--listen", f"127.0.0.1:{cls.plain_ports[i]}", "--tls-listen",
                      f"127.0.0.1:{cls.tls_ports[i]}", "--root", cls.roots[i], "--workers", "1", "--max-conns", "64",
                      "--tls-cert", f"{d}/localhost.crt", "--tls-key", f"{d}/localhost.key"], 2)
        cls.addClassCleanup(kill, srv.proc)
        return srv

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for srv in cls.httpd:
            if srv.proc.poll() is None:
                assert srv.stop() == 0, srv.text()

    def setUp(self):
        for i, srv in enumerate(self.httpd):
            if srv.proc.poll() is not None:  # a test that failed after its kill
                self.httpd[i] = self.start_httpd(i)
        self.all_up()

    def states(self, port=None):
        """{(backend, server): (status, check status, check code)} from the stats page."""
        with urllib.request.urlopen(f"http://127.0.0.1:{port or self.stats}/stats;csv", timeout=5) as f:
            rows = f.read().decode().splitlines()
        names = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            f = dict(zip(names, row.split(",")))
            if f["svname"] not in ("FRONTEND", "BACKEND"):
                out[(f["pxname"], f["svname"])] = (f["status"], f["check_status"], f["check_code"])
        return out

    def all_up(self):
        eventually("every server's checks passing",
                   lambda: all(st[0] == "UP" for st in self.states().values()) and len(self.states()) == 6)

    def https_get(self, path):
        ctx = client_ctx()
        with socket.create_connection(("127.0.0.1", self.https), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
                status, headers, body, _ = read_response(s)
                return status, body, s.getpeercert()

    def test_checks_pass_and_requests_spread(self):
        """With the recipe's checks every server is up (a 200 to the check's GET); round robin
        reaches all three, and a reply through haproxy is the one httpd gives directly."""
        for (backend, server), (status, check, code) in self.states().items():
            self.assertEqual((status, check, code), ("UP", "L7OK", "200"), (backend, server))
        seen = [http_get(self.http, "/who.txt")[2].decode() for _ in range(30)]
        self.assertEqual(sorted(set(seen)), ["httpd1", "httpd2", "httpd3"])
        self.assertTrue(all(seen.count(n) >= 5 for n in set(seen)), seen)
        for method in ("GET", "HEAD"):
            for path in ("/", "/index.html", "/missing", "/../etc/passwd"):
                ps, ph, pb = http_get(self.http, path, method)
                ds, dh, db = http_get(self.plain_ports[0], path, method)
                self.assertEqual((ps, pb), (ds, db), (method, path))
                for h in ("content-type", "content-length", "last-modified"):
                    self.assertEqual(ph.get(h), dh.get(h), (method, path, h))

    def test_checks_without_the_recipes_request_fail(self):
        """The gotchas the recipe's check avoids, shown: bare `option httpchk` (OPTIONS /) gets
        405 and a GET without Host gets 400, so each marks a healthy server down."""
        recipe = render("haproxy.cfg", [])
        block = recipe[recipe.index("\nbackend httpd\n") + 1:recipe.index("\nfrontend https")]
        bare = re.sub(r"^    http-check send .*\n", "", block, flags=re.M).replace("backend httpd\n", "backend bare\n")
        nohost = block.replace(" hdr Host health.check", "").replace("backend httpd\n", "backend nohost\n")
        extra = ""
        for b in (bare, nohost):
            for i in range(3):
                b = b.replace(f"10.0.0.{i + 1}:8080", f"127.0.0.1:{self.plain_ports[i]}")
            extra += "\n" + b
        stats = free_port()
        conf = self.render_conf(stats, extra)
        with open(conf) as f:
            text = f.read()
        # Listening ports other than the stats page are the running proxy's: moved aside.
        text = text.replace(f"bind 127.0.0.1:{self.http}", f"bind 127.0.0.1:{free_port()}")
        text = text.replace(f"bind 127.0.0.1:{self.https}", f"bind 127.0.0.1:{free_port()}")
        with open(conf, "w") as f:
            f.write(text)
        other = Proc(["haproxy", "-db", "-f", conf], [stats], self.dir.name)
        try:
            def failed():
                st = self.states(stats)
                got = {b: {st[(b, f"httpd{i + 1}")] for i in range(3)} for b in ("bare", "nohost", "httpd")}
                return got if all(v[0] == "DOWN" for b in ("bare", "nohost") for v in got[b]) else None

            got = eventually("the servers of the bare checks marked down", failed)
            self.assertEqual(got["bare"], {("DOWN", "L7STS", "405")})
            self.assertEqual(got["nohost"], {("DOWN", "L7STS", "400")})
            self.assertEqual({v[0] for v in got["httpd"]}, {"UP"})
        finally:
            other.stop()

    def test_tls_passthrough(self):
        """HTTPS through the TCP frontend: the certificate a client verifies is httpd's own (the
        test CA's), and the connections spread over the three."""
        seen = set()
        for _ in range(9):
            status, body, cert = self.https_get("/who.txt")
            self.assertEqual(status, 200)
            self.assertEqual(dict(x[0] for x in cert["subject"])["commonName"], "localhost")
            seen.add(body.decode())
        self.assertEqual(seen, {"httpd1", "httpd2", "httpd3"})
        status, body, _ = self.https_get("/")
        self.assertEqual((status, body), http_get(self.plain_ports[2], "/")[0::2])

    def test_killed_httpd_is_ejected_and_rejoins(self):
        """SIGKILL one httpd: requests go on being answered (option redispatch retries them on
        another), its checks mark it down on both backends; restarted, it is up and served again."""
        victim = 1
        self.httpd[victim].proc.kill()
        self.httpd[victim].proc.wait()

        def refused():
            # On io_uring the kernel tears the ring down after the process is gone, and its
            # listeners accept (then close) for that moment: wait until both refuse.
            for port in (self.plain_ports[victim], self.tls_ports[victim]):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return False
                except ConnectionRefusedError:
                    pass
            return True

        eventually("the killed httpd's ports refusing", refused)
        for _ in range(12):
            status, _, body = http_get(self.http, "/who.txt")
            self.assertEqual(status, 200)
            self.assertNotEqual(body, b"httpd2")
            self.assertIn(self.https_get("/who.txt")[1], (b"httpd1", b"httpd3"))
        eventually("the killed httpd marked down",
                   lambda: {b: st[0] for (b, sv), st in self.states().items() if sv == "httpd2"}
                   == {"httpd": "DOWN", "httpd_tls": "DOWN"})
        self.assertEqual({http_get(self.http, "/who.txt")[2] for _ in range(6)}, {b"httpd1", b"httpd3"})
        self.httpd[victim] = self.start_httpd(victim)
        self.all_up()
        self.assertIn(b"httpd2", {http_get(self.http, "/who.txt")[2] for _ in range(6)})
        self.assertIn(b"httpd2", {self.https_get("/who.txt")[1] for _ in range(6)})


if __name__ == "__main__":
    unittest.main()
