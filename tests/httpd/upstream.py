"""A scripted HTTP/1.1 upstream for httpd's proxy tests: keep-alive, a thread per connection,
and a response per path under /p/ that is exact to the byte (well-formed, chunked, delimited by
the close, malformed, smuggling-shaped, slow, reset). It records every request it reads."""
import hashlib
import random
import socket
import struct
import threading
import time

BIG = random.Random(7).randbytes(4 * 1024 * 1024)


def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def read_exact(conn, buf, n):
    while len(buf) < n:
        chunk = conn.recv(max(65536, n - len(buf)))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf[:n], buf[n:]


def read_chunked(conn, buf, each):
    """A chunked body: each chunk's data to each(data); returns the rest of the buffer."""
    while True:
        while b"\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        line, buf = buf.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            while not buf.startswith(b"\r\n") and b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
            return buf[2:] if buf.startswith(b"\r\n") else buf.split(b"\r\n\r\n", 1)[1]
        while size:
            if not buf:
                buf = conn.recv(65536)
                if not buf:
                    raise EOFError
            take = buf[:size]
            each(take)
            size -= len(take)
            buf = buf[len(take):]
        _, buf = read_exact(conn, buf, 2)


def read_body(conn, buf, fields, each, limit=None):
    """The body the fields frame (Content-Length or chunked), piece by piece to each(data) as it
    arrives, up to `limit` bytes when one is given; returns the rest of the buffer."""
    if any(k.lower() == "transfer-encoding" for k, _ in fields):
        return read_chunked(conn, buf, each)
    n = sum(int(v) for k, v in fields if k.lower() == "content-length")
    n = n if limit is None else min(n, limit)
    while n:
        if not buf:
            buf = conn.recv(min(n, 65536))
            if not buf:
                raise EOFError
        take = buf[:n]
        each(take)
        n -= len(take)
        buf = buf[len(take):]
    return buf


class Upstream:
    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.requests = []  # (method, target, [(name, value)], body)
        self.accepted = 0
        self.sent = 0  # body bytes of /p/stream handed to the kernel
        self.close_next = False  # close a kept-alive connection on its next request, unanswered
        self.read_delay = 0  # /p/sink: seconds to sleep after each piece of a body it reads
        self.got = {}  # /p/sink, /p/early, /p/cut: body bytes read so far, by target
        self.start(port)

    def start(self, port):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.running = True
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        self.lsock.shutdown(socket.SHUT_RDWR)  # (wakes the accept: a close alone would not)
        self.lsock.close()
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.thread.join(5)

    def restart(self):
        self.stop()
        self.start(self.port)

    def accept_loop(self):
        while self.running:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        served = 0
        try:
            while True:
                head, buf = read_head(conn, buf)
                if head is None:
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ")
                fields = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
                if target.startswith(("/p/sink", "/p/early", "/p/cut")):
                    with self.lock:
                        self.requests.append((method, target, fields, None))
                    keep, buf = self.consume(conn, buf, target, fields)
                    if not keep:
                        return
                    continue
                parts = []
                buf = read_body(conn, buf, fields, parts.append)
                body = b"".join(parts)
                with self.lock:
                    self.requests.append((method, target, fields, body))
                    close_now = self.close_next and served > 0
                    if close_now:
                        self.close_next = False
                if close_now:
                    return
                served += 1
                if not self.respond(conn, method, target, body):
                    return
        except (EOFError, OSError):
            return
        finally:
            conn.close()

    def consume(self, conn, buf, target, fields):
        """Paths that read the body as it comes: /p/sink reads all of it (slowly with
        read_delay) and answers its length and sha256; /p/early answers after the first MiB
        and closes; /p/cut closes after the first MiB, unanswered. Returns (whether the
        connection goes on, the rest of the buffer)."""
        h = hashlib.sha256()
        with self.lock:
            self.got[target] = 0

        def each(data):
            h.update(data)
            with self.lock:
                self.got[target] += len(data)
            if self.read_delay:
                time.sleep(self.read_delay)
        if target.startswith("/p/sink"):
            buf = read_body(conn, buf, fields, each)
            out = b"%d %s" % (self.got[target], h.hexdigest().encode())
            # (Connection: close: other tests count the connections the proxy keeps.)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(out), out))
            return False, b""
        try:
            read_body(conn, buf, fields, each, 1 << 20) if not any(
                k.lower() == "transfer-encoding" for k, _ in fields) else None
        except EOFError:
            return False, b""
        if target.startswith("/p/early"):
            out = b"early %d" % self.got[target]
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(out), out))
            # A lingering close, as nginx's: what still comes is read until httpd closes, so that
            # unread bytes do not reset the connection under the answer.
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            while conn.recv(65536):
                pass
        return False, b""

    def respond(self, conn, method, target, body):
        """Answers; False when the connection is to end."""
        path = target.split("?")[0]
        if path.startswith("/p/echo") or path.startswith("/p/later"):
            if path.startswith("/p/later"):
                time.sleep(0.2)  # the client's next bytes (or its close) arrive meanwhile
            out = body or target.encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Sha: %s\r\n\r\n" %
                         (len(out), hashlib.sha256(out).hexdigest().encode()) + (b"" if method == "HEAD" else out))
        elif path == "/p/chunked":
            pieces = [b"abc", b"d" * 5000, b"e" * 70000, b"f"]
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n" +
                         b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-T: 1\r\n\r\n")
        elif path == "/p/close":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BIG[:100000])
            return False
        elif path == "/p/closebig":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BIG)
            return False
        elif path == "/p/big":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG)
        elif path == "/p/stream":
            total = 64 * len(BIG) // 4  # 64 MiB
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            for i in range(total // len(BIG)):
                for off in range(0, len(BIG), 65536):
                    conn.sendall(BIG[off:off + 65536])
                    with self.lock:
                        self.sent += 65536
        elif path == "/p/hop":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
                         b"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTrailer: X-T\r\nX-End: kept\r\n"
                         b"Content-Length: 2\r\n\r\nok")
        elif path == "/p/slow":
            time.sleep(3)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
        elif path == "/p/clte":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        elif path == "/p/twocl":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
        elif path == "/p/badchunk":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n")
            return False
        elif path == "/p/garbage":
            conn.sendall(b"HELLO\r\n\r\n")
        elif path == "/p/reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        elif path == "/p/304":
            conn.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
        elif path == "/p/interim":
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True
