"""What the Python end-to-end tests share: starting a built server on ephemeral ports and
reading its log, stopping it, and asking the malloc-counting interposer for its count."""
import ctypes
import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("RW_BIN", "build/asan/bin")
BACKEND = os.environ.get("RW_BACKEND", "")
MALLOC_COUNT = os.path.abspath("build/tests/malloc_count.so")
SKIP = 77  # the exit status tests/run counts as a skip


def uring_unavailable():
    """The reason io_uring cannot be used here, or None: io_uring_setup failing with ENOSYS (no
    io_uring in this kernel) or EPERM (io_uring_disabled, seccomp), as tests/uring.h decides."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    fd = libc.syscall(425, 1, params)  # __NR_io_uring_setup (the same number on every arch)
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    if err not in (errno.ENOSYS, errno.EPERM):
        return None
    return f"io_uring is unavailable here (io_uring_setup: {os.strerror(err)})"


def skip_without_uring():
    """Exits with SKIP, loudly, when $RW_BACKEND asks for io_uring and the kernel refuses it."""
    why = uring_unavailable() if BACKEND == "uring" else None
    if why:
        print(f"SKIPPED {os.path.basename(sys.argv[0])}: RW_BACKEND=uring: {why}", file=sys.stderr)
        sys.exit(SKIP)


def rss_kib(pid):
    """A process's resident memory now, KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Server:
    """argv[0] is a program in $RW_BIN (or `binary`); waits for `want` "listening on" lines and
    the memory budget line; self.ports and self.protos ("resp", "http1, tls", ...) are in the
    order the listeners were opened. $RW_BACKEND, when set, is passed as --backend."""

    def __init__(self, argv, want=1, binary=None, preload=None, env=None):
        cmd = [binary or os.path.join(BIN, argv[0])] + list(argv[1:])
        if BACKEND:
            cmd += ["--backend", BACKEND]
        env = dict(os.environ, **(env or {}))
        if preload:
            env["LD_PRELOAD"] = preload
        # O_APPEND: the server's writes always land at the end. (A plain temporary file shares
        # its offset with our reads: a line written just after text() seeks to 0 overwrote the
        # start of the log, and malloc_count() then missed its line.)
        fd, path = tempfile.mkstemp(prefix="rw-log-")
        os.close(fd)
        self.log = open(path, "a+b")
        os.unlink(path)
        self.proc = subprocess.Popen(cmd, stderr=self.log, env=env)
        deadline = time.time() + 15
        while time.time() < deadline:
            text = self.text()
            # "(PROTO)", or "(PROTO, tls)" for a TLS listener: self.protos keeps the whole label.
            found = re.findall(r"listening on 127\.0\.0\.1:(\d+) \((\w+(?:, tls)?)\)", text)
            if len(found) >= want and "memory budget" in text:
                self.ports = [int(p) for p, _ in found]
                self.protos = [proto for _, proto in found]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"{argv[0]} did not start: " + self.text())

    def budget(self):
        """The runtime's start-up budget line, MiB: (resident at most, the part of it that only
        long frames make resident, address space reserved)."""
        m = re.search(r"memory budget ([\d.]+) MiB resident at most(?: \(([\d.]+) MiB of it only "
                      r"while long frames arrive\))?, ([\d.]+) MiB address space reserved", self.text())
        if not m:
            raise AssertionError("no budget line: " + self.text())
        return float(m.group(1)), float(m.group(2) or 0), float(m.group(3))

    def __del__(self):
        # The log outlives stop() (callers read it after), so it is closed with the object.
        log = getattr(self, "log", None)
        if log:
            log.close()

    def text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        """SIGTERM, and the exit status (-9 if it had to be killed)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def malloc_count(self):
        """The process's malloc-family calls so far (started with preload=MALLOC_COUNT)."""
        before = self.text()
        self.proc.send_signal(signal.SIGUSR2)
        for _ in range(300):
            found = re.findall(r"malloc-count (\d+)\n", self.text()[len(before):])
            if found:
                return int(found[0])
            time.sleep(0.01)
        raise AssertionError("no malloc-count from the server: " + self.text())
