"""An overall deadline for a request: connect, send and the whole response, not each read alone.

httpx's timeouts bound each socket operation, so a node that drips one byte a second never trips a 3 s read
timeout and a request can run for minutes. Here every socket operation of the transport is given the time
left until the deadline of the request in progress (a context variable set by :func:`bounded`), and fails
with httpcore's own timeout error once none is left, which httpx turns into ``httpx.TimeoutException``.

The same network backend can open a request's TCP connection ahead of the request (:func:`connect_early`): a
Cluster connects to every node while the one token they share is being fetched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

__all__ = ["bounded", "connect_early", "deadline_transport", "forget_early", "passed"]

EARLY_CONNECTION_AGE = 3.0
"""Seconds an early connection (``connect_early``) may wait for its request; an older one is replaced."""

_DEADLINE: ContextVar[float | None] = ContextVar("glancecache_deadline", default=None)


@contextmanager
def bounded(at: float) -> Iterator[None]:
    """Requests made inside the block end by ``at`` (a ``time.monotonic()`` value); nested blocks keep the
    earlier deadline, so a wait's deadline also bounds each request it makes."""
    current = _DEADLINE.get()
    token = _DEADLINE.set(at if current is None else min(at, current))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def passed(at: float) -> bool:
    """Whether deadline ``at`` has passed, give or take the few milliseconds by which a socket timeout set
    to the time left may fire before the monotonic clock reaches ``at``."""
    return time.monotonic() >= at - 0.05


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """The socket timeout to use now: the operation's own, cut to what is left of the deadline."""
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        # Shut the socket down before closing it: a request still in flight on another thread (a call of a Cluster
        # left by an exception or Ctrl-C) is blocked in recv, which close(2) alone does not wake.
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        # A TCP connection opened ahead of its request (see connect_early): host, port, when it was ready
        # (monotonic), and the stream or the exception connecting raised.
        self._early: tuple[str, int, float, httpcore.NetworkStream | Exception] | None = None

    def connect_early(self, host: str, port: int, timeout: float | None) -> None:
        """Open the TCP connection the next ``connect_tcp(host, port)`` will use (while a token is fetched, say).

        A failure is kept and raised by that ``connect_tcp``, as if it had happened there and then; a connection
        that waited more than ``EARLY_CONNECTION_AGE`` seconds, or that the peer has closed or written to, is
        closed and a new one opened instead, so an early connection never meets a server's limit on how long a
        connection may wait for its request. TLS, if any, is still negotiated over it by the request.
        """
        outcome: httpcore.NetworkStream | Exception
        try:
            outcome = self._inner.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout))
        except Exception as exc:
            outcome = exc
        with self._lock:
            previous, self._early = self._early, (host, port, time.monotonic(), outcome)
        _close_early(previous)

    def forget_early(self) -> None:
        """Close the early connection if no request took it."""
        with self._lock:
            previous, self._early = self._early, None
        _close_early(previous)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        with self._lock:
            early, self._early = self._early, None
        if early is not None:
            early_host, early_port, ready, outcome = early
            if (early_host, early_port) == (host, port) and local_address is None and not socket_options:
                if isinstance(outcome, Exception):
                    raise outcome
                fresh = time.monotonic() - ready <= EARLY_CONNECTION_AGE
                if fresh and not outcome.get_extra_info("is_readable"):
                    return _Stream(outcome)
            _close_early(early)
        stream = self._inner.connect_tcp(
            host, port, _left(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _Stream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _close_early(early: tuple[str, int, float, httpcore.NetworkStream | Exception] | None) -> None:
    if early is not None and not isinstance(early[3], Exception):
        early[3].close()


def connect_early(transport: httpx.BaseTransport, host: str, port: int, timeout: float | None) -> bool:
    """``_Backend.connect_early`` for a transport made by :func:`deadline_transport` with no connection open;
    False (nothing done) for any other transport."""
    backend = _backend_of(transport)
    if backend is None or transport._pool.connections:  # type: ignore[attr-defined]
        return False
    backend.connect_early(host, port, timeout)
    return True


def forget_early(transport: httpx.BaseTransport) -> None:
    backend = _backend_of(transport)
    if backend is not None:
        backend.forget_early()


def _backend_of(transport: httpx.BaseTransport) -> _Backend | None:
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    return backend if isinstance(backend, _Backend) else None


def deadline_transport(**options: Any) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport(**options)`` whose sockets honour :func:`bounded` deadlines."""
    transport = httpx.HTTPTransport(**options)
    pool = transport._pool  # httpx exposes no network_backend option; its pool (httpcore) takes one
    pool._network_backend = _Backend(pool._network_backend)  # (tests/library/test_limits.py proves it works)
    return transport
