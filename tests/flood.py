"""A connection flood against a server on loopback: idle and slowloris connections held open, probed.

Used by tests/server/http/test_flood.py and benchmarks/bench_flood.py. Everything here targets 127.0.0.1 only,
opens a bounded number of sockets with non-blocking connects (so a server that stops accepting costs a bounded
wait, not a connect timeout per socket), and closes every socket it opened.

- ``Flood``: ``idle`` connections that send nothing and ``slow`` connections that send the start of a request
  (``GET /v2/cache HTTP/1.1`` and a Host line) and then one byte of a header every ``drip`` seconds, never ending it.
- ``probe``: the time a fresh connection takes to get a whole ``GET /v2/cache`` answer (None if none came in time).
- ``rss_mib``: a process's resident memory from /proc/PID/status.
- ``raise_nofile``: lift this process's RLIMIT_NOFILE soft limit to its hard limit.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import select
import socket
import threading
import time
from types import TracebackType

SLOW_START = b"GET /v2/cache HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: "


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def probe(port: int, timeout: float = 5.0, path: str = "/v2/cache") -> float | None:
    """Seconds until a fresh connection has the whole answer to ``GET path``; None if no answer within timeout."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            received = b""
            while True:
                sock.settimeout(max(0.001, timeout - (time.monotonic() - start)))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return None
    if not received.startswith(b"HTTP/1.1 200"):
        return None
    return time.monotonic() - start


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``timeout`` seconds; data it sends is skipped."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except BlockingIOError:
            continue
    return False


class Flood:
    """Hold ``idle`` + ``slow`` connections to 127.0.0.1:``port`` until closed (use as a context manager)."""

    def __init__(self, port: int, idle: int, slow: int, drip: float = 1.0, connect_wait: float = 10.0) -> None:
        self.port = port
        self.drip = drip
        self.connect_wait = connect_wait
        self.idle = self._open(idle)
        self.slow = self._open(slow)
        self._stop = threading.Event()
        self._dripper: threading.Thread | None = None
        if self.slow:
            for sock in self.slow:
                with contextlib.suppress(OSError):
                    sock.send(SLOW_START)
            self._dripper = threading.Thread(target=self._drip, name="slowloris", daemon=True)
            self._dripper.start()

    def _open(self, count: int) -> list[socket.socket]:
        pending: dict[int, socket.socket] = {}
        try:
            for _ in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                code = sock.connect_ex(("127.0.0.1", self.port))
                if code not in (0, errno.EINPROGRESS):
                    sock.close()
                    raise OSError(code, f"connect to 127.0.0.1:{self.port} failed")
                pending[sock.fileno()] = sock
        except BaseException:
            for sock in pending.values():
                sock.close()
            raise
        # Wait (bounded) for the kernel to complete the handshakes; a server whose backlog is full never does.
        connected: list[socket.socket] = []
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + self.connect_wait
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                poller.unregister(fd)
                sock = pending.pop(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected.append(sock)
                else:
                    sock.close()
        for sock in pending.values():
            sock.close()
        return connected

    def _drip(self) -> None:
        while not self._stop.wait(self.drip):
            for sock in self.slow:
                with contextlib.suppress(OSError):
                    sock.send(b"x")

    @property
    def held(self) -> int:
        return len(self.idle) + len(self.slow)

    def close(self) -> None:
        self._stop.set()
        if self._dripper is not None:
            self._dripper.join()
        for sock in self.idle + self.slow:
            sock.close()
        self.idle, self.slow = [], []

    def __enter__(self) -> Flood:
        return self

    def __exit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        self.close()
