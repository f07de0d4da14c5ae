#!/usr/bin/python3
"""Long values for bench/kvd's `large` section: COUNT times SET (or GET) of one SIZE-MiB value
on one connection (redis-py, as an application would), printed in rwload's "key value" form:
requests, rps, p50_us, p99_us. GETs check the length they got back.
    bench/kvd_large.py PORT set|get SIZE_MIB COUNT"""
import sys
import time

import redis


def main():
    port, op, size, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) << 20, int(sys.argv[4])
    r = redis.Redis(port=port, socket_timeout=300)
    value = b"v" * size
    lat = []
    t0 = time.monotonic()
    for _ in range(count):
        t = time.monotonic()
        if op == "set":
            r.set("large", value)
        elif len(r.get("large") or b"") != size:
            print("errors 1")
            return
        lat.append(time.monotonic() - t)
    elapsed = time.monotonic() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6
    print(f"requests {count} rps {count / elapsed:.2f} p50_us {p(0.5):.0f} p99_us {p(0.99):.0f}")


main()
