#!/usr/bin/python3
"""Memory per key for bench/kvd's `memory` section: the server's resident bytes (VmRSS from
/proc) before and after storing KEYS keys of 12 bytes with SIZE-byte values, pipelined over one
connection, then read back (a sample) to check they are all there. Prints
"keys N bytes_per_key B" (RSS delta / keys).
    bench/kvd_memory.py PORT PID resp|memcache KEYS SIZE"""
import socket
import sys


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def request(proto, i, value):
    key = b"key:%08d" % i
    if proto == "resp":
        return b"*3\r\n$3\r\nSET\r\n$12\r\n%s\r\n$%d\r\n%s\r\n" % (key, len(value), value)
    return b"set %s 0 0 %d noreply\r\n%s\r\n" % (key, len(value), value)


def drain(s, proto, n):
    """Reads the n "+OK" replies (RESP); memcache's noreply sets answer nothing."""
    want = 5 * n if proto == "resp" else 0
    got = 0
    while got < want:
        b = s.recv(1 << 20)
        if not b:
            raise SystemExit("server closed")
        got += len(b)


def check(s, proto, keys, size):
    """The last key must be there with its length (a server that dropped keys is not measured)."""
    key = b"key:%08d" % (keys - 1)
    s.sendall(b"*2\r\n$3\r\nGET\r\n$12\r\n%s\r\n" % key if proto == "resp" else b"get %s\r\n" % key)
    want = b"$%d\r\n" % size if proto == "resp" else b"VALUE %s 0 %d\r\n" % (key, size)
    reply = b""
    while len(reply) < len(want):
        reply += s.recv(1 << 16)
    if not reply.startswith(want):
        raise SystemExit(f"key missing: {reply[:60]!r}")


def main():
    port, pid, proto, keys, size = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                                     int(sys.argv[5]))
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*1\r\n$4\r\nPING\r\n" if proto == "resp" else b"version\r\n")
    s.recv(100)
    before = rss(pid)
    value = b"v" * size
    batch = 1000
    for first in range(0, keys, batch):
        n = min(batch, keys - first)
        s.sendall(b"".join(request(proto, i, value) for i in range(first, first + n)))
        drain(s, proto, n)
    check(s, proto, keys, size)
    after = rss(pid)
    print(f"keys {keys} bytes_per_key {(after - before) / keys:.0f}")


main()
