"""One HTTP listener: an asyncio event loop on its own thread speaking HTTP/1.1 (h11), the WSGI app on a thread pool.

Why this stack: an idle or half-sent connection costs one small object in the event loop (no thread, no buffer
beyond what it sent), so 10,000 of them held open leave a normal request answering in milliseconds; waitress's
loop accepts one connection per turn and walks every connection in Python each turn, and has no deadline for a
request head that arrives a byte at a time. h11 (maintained by python-hyper, already installed with httpx) does
the HTTP/1.1 parsing and framing through its public API.

What this module owns:

- limits (``Limits``): an idle keep-alive connection is closed after ``idle_timeout``; a request head (request
  line and headers) must be complete within ``header_timeout`` of its first byte, however slowly it drips, or the
  connection gets ``408`` and is closed; a request body or a response that makes no progress for ``idle_timeout``
  while waiting on the client is cut. At ``connection_limit`` open connections, a new one closes the connection
  that has been idle (or half-sent) the longest; if every connection is busy with a request it gets ``503``.
- headers go out as the application spelled them, in its order (Glance sends ``x-openstack-request-id`` and
  ``Content-MD5`` verbatim); the listener adds ``Date``, and h11 adds the framing headers it needs
  (``Transfer-Encoding``, ``Connection: close``) after them.
- response bodies, files included (cache hits, Range reads), are read on the app's thread and written by the event
  loop, so reading the next chunk overlaps sending the last. No ``wsgi.file_wrapper`` is offered: on loopback this
  downloaded a 256 MiB cache hit in ~50 ms where sendfile(2) took 75-90 ms, as the kernel spends more per byte on
  the page-sized pieces of a sendfile, on both sides of the connection (README, Benchmarks). Image data is sent,
  and requests with streamed bodies (uploads) run, on a pool of ``STREAM_THREADS`` threads of their own, so
  downloads and uploads waiting on their clients never hold the threads API requests need.
- request bodies stream to the application as they arrive, with reading paused while more than
  ``BODY_BUFFER`` bytes wait for it, so an upload of any size uses bounded memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import resource
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

import h11

from ..config import ConfigError

log = logging.getLogger(__name__)

BODY_BUFFER = 4 * 1024 * 1024  # request body bytes held for the app before reading from the socket pauses
WRITE_BUFFER = 4 * 1024 * 1024  # response bytes queued for the socket before the app's thread waits
# Streamed answers (image data) are sent, and streamed request bodies (uploads) read, by a pool of their own, so
# clients that send or read slowly, or not at all, hold those threads and never the ones API requests need: with
# every request on one pool of 8, eight downloads nobody read, or eight uploads that stopped, made GET /v2/cache
# wait for --idle-timeout. Each stalled download holds about 2 x WRITE_BUFFER, each upload up to BODY_BUFFER.
STREAM_THREADS = 16
STREAMED_BODY = 64 * 1024  # request bodies above this size (or chunked) are streamed: their request runs on the pool
MAX_HEAD = 16 * 1024  # request line and headers: Glance's own max_header_line default (waitress allowed 256 KiB)
FD_RESERVE = 64  # descriptors kept for files, databases and the listening socket when clamping the limit


@dataclass(frozen=True)
class Limits:
    """How long a connection may stay idle or half-sent, and how many may be open (the CLI's listener options)."""

    idle_timeout: float = 60.0
    header_timeout: float = 20.0
    connection_limit: int = 10_000

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "header_timeout"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of seconds, not {value}")
        if self.connection_limit < 1:
            raise ConfigError(f"--connection-limit must be at least 1, not {self.connection_limit}")


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (each connection is a descriptor); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.info("Raised the open-file limit from %d to %d", soft, hard)
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("Could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft


class _AppSlot:
    """A WSGI app whose target is set after the socket is bound (the node URL needs the real port)."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "request before the node finished starting"
        return self.app(environ, start_response)


class ClientGone(ConnectionResetError):
    """The client went away (or was cut by a timeout) while the application was reading or answering."""


class _Flow:
    """What the app's thread and the event loop share about one request: body bytes in, write room out."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resume_reading: Callable[[], None]) -> None:
        self.loop = loop
        self.cond = threading.Condition()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.gone = False
        self.waiting_for_body = False
        self.reading_paused = False
        self.writes_paused = False
        self.queued = 0  # bytes handed to the loop and not yet written to the transport
        self._resume_reading = resume_reading

    # -- loop side
    def feed(self, data: bytes) -> bool:
        """Add body bytes; True when the socket should stop being read for now."""
        with self.cond:
            self.chunks.append(data)
            self.buffered += len(data)
            self.cond.notify_all()
            self.reading_paused = self.buffered > BODY_BUFFER
            return self.reading_paused

    def end(self) -> None:
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def lose(self) -> None:
        with self.cond:
            self.gone = True
            self.cond.notify_all()

    # -- app side: wsgi.input
    def read(self, size: int | None = -1) -> bytes:
        parts: list[bytes] = []
        want = -1 if size is None or size < 0 else size
        with self.cond:
            while want and not (self.eof and not self.chunks):
                if not self.chunks:
                    if self.gone:
                        raise ClientGone("the client closed the connection in the middle of the request body")
                    if parts:
                        break
                    self.waiting_for_body = True
                    self.cond.wait()
                    self.waiting_for_body = False
                    continue
                chunk = self.chunks.popleft()
                if 0 <= want < len(chunk):
                    self.chunks.appendleft(chunk[want:])
                    chunk = chunk[:want]
                parts.append(chunk)
                self.buffered -= len(chunk)
                if want > 0:
                    want -= len(chunk)
            if self.reading_paused and self.buffered <= BODY_BUFFER // 2:
                self.reading_paused = False
                self.loop.call_soon_threadsafe(self._resume_reading)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        line = b""
        while not line.endswith(b"\n") and (size is None or size < 0 or len(line) < size):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return line

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    # -- app side: room to write
    def wait_for_room(self) -> None:
        with self.cond:
            while not self.gone and (self.writes_paused or self.queued > WRITE_BUFFER):
                self.cond.wait()
            if self.gone:
                raise ClientGone("the client closed the connection before the response was sent")


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs each on the pool, sends its answer, enforces the limits."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.transport: asyncio.Transport | None = None
        self.flow: _Flow | None = None  # set while a request is being served
        self.since = time.monotonic()  # start of the idle wait, of the request head, or of the last progress
        self.head_started = False
        self.peer: tuple[str, int] = ("", 0)
        self.writing_paused = False  # the transport's own flag, carried over to the next request's flow

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Big image bodies go out in few large writes; the app's thread waits only beyond this much unsent.
        # Resuming after 512 KiB drained lets the idle timeout see a slow reader's progress.
        transport.set_write_buffer_limits(high=WRITE_BUFFER, low=WRITE_BUFFER - 512 * 1024)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        self.listener.admit(self)

    def data_received(self, data: bytes) -> None:
        self.since_progress()
        # Bytes beyond a request that is complete: a pipelined request. It is kept (this read's worth, at most)
        # and the rest waits in the socket until this one is answered. Reading is paused only then, not after
        # every request: a client that waits for its answer costs no pause and resume (two epoll changes).
        pipelined = self.flow is not None and self.flow.eof
        if self.flow is None and not self.head_started:
            self.head_started = True
            self.since = time.monotonic()
        try:
            self.h11.receive_data(data)
        except h11.RemoteProtocolError as exc:
            self.refuse(exc.error_status_hint)
            return
        self.process()
        if pipelined and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        with contextlib.suppress(h11.RemoteProtocolError):
            self.h11.receive_data(b"")
        if self.flow is None:
            self.close()
            return None
        self.process()
        return True  # half-closed: the request may still be answered

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.pop(self, None)
        if self.flow is not None:
            self.flow.lose()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.flow is not None:
            with self.flow.cond:
                self.flow.writes_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.since_progress()
        if self.flow is not None:
            with self.flow.cond:
                self.flow.writes_paused = False
                self.flow.cond.notify_all()

    # -- state
    def since_progress(self) -> None:
        if self.flow is not None:
            self.since = time.monotonic()

    def waiting_on_client(self) -> bool:
        """Whether the request in progress is stalled on the client (body not arriving, answer not read)."""
        flow = self.flow
        if flow is None:
            return True
        return flow.waiting_for_body or flow.writes_paused

    def deadline(self, limits: Limits) -> float:
        if self.flow is None and self.head_started:
            return self.since + limits.header_timeout
        return self.since + limits.idle_timeout

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def refuse(self, status: int) -> None:
        """Answer a short error and close (a malformed or too slow request head, no room for another connection)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # nothing of an answer sent yet
            reason = HTTPStatus(status).phrase
            body = f"{status} {reason}\n".encode()
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\nDate: {_http_date()}\r\n\r\n"
            )
            self.transport.write(head.encode("latin-1") + body)
        self.close()

    # -- requests
    def process(self) -> None:
        while self.flow is None or not self.flow.eof:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self.flow is None:
                    self.refuse(exc.error_status_hint)
                else:
                    self.abort()
                return
            if event is h11.NEED_DATA:
                if self.h11.they_are_waiting_for_100_continue and self.flow is not None:
                    self.write_now(
                        self.h11.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
                    )
                return
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                if isinstance(event, h11.ConnectionClosed) and self.flow is None:
                    self.close()
                return
            if isinstance(event, h11.Request):
                self.start_request(event)
            elif isinstance(event, h11.Data):
                assert self.flow is not None
                if self.flow.feed(bytes(event.data)) and self.transport is not None:
                    self.transport.pause_reading()
            elif isinstance(event, h11.EndOfMessage):
                assert self.flow is not None
                self.flow.end()

    def start_request(self, request: h11.Request) -> None:
        assert self.transport is not None
        # h11 bounds a head still arriving; one that came whole in a single read is measured here.
        if len(request.target) + sum(len(name) + len(value) + 4 for name, value in request.headers) > MAX_HEAD:
            self.refuse(431)
            return
        self.head_started = False
        self.since = time.monotonic()
        self.flow = _Flow(self.loop, self.resume_reading)
        self.flow.writes_paused = self.writing_paused
        environ = self.listener.environ(request, self.flow, self.peer)
        streamed = _streams_its_body(environ)
        pool = self.listener.streams if streamed else self.listener.pool
        pool.submit(self.listener.run_app, self, environ, self.flow, streamed)

    def resume_reading(self) -> None:
        """The app drained the body buffer: read on (unless the body is complete, see ``data_received``)."""
        if self.flow is not None and self.flow.eof:
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write_now(self, data: bytes | None) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def head(self, flow: _Flow, status: str, headers: list[tuple[str, str]]) -> bytes:
        """The response head, framed by h11 (loop side)."""
        code, _, reason = status.partition(" ")
        if not flow.eof:
            # The app answered without reading the whole request body: close rather than read the rest.
            headers = [*headers, ("Connection", "close")]
        return self.h11.send(h11.Response(status_code=int(code), headers=headers, reason=reason.encode("latin-1")))

    def send(self, flow: _Flow, head: tuple[str, list[tuple[str, str]]] | None, data: bytes, end: bool) -> None:
        """Loop side of the app's writes: h11 frames them, the transport sends them; ``end`` finishes the answer."""
        with flow.cond:
            flow.queued -= len(data)
            flow.cond.notify_all()
        if flow.gone or self.transport is None or self.transport.is_closing():
            return
        try:
            pieces = [self.head(flow, *head)] if head is not None else []
            if data:
                pieces += self.h11.send_with_data_passthrough(h11.Data(data=data)) or []
            if end:
                pieces.append(self.h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            log.error("Dropping a connection whose response broke HTTP framing: %s", exc)
            self.abort()
            return
        self.transport.writelines(pieces)
        if end:
            self.finish(flow)

    def finish(self, flow: _Flow) -> None:
        """The app's answer is complete: keep the connection for the next request, or close it."""
        if self.flow is not flow:
            return
        self.flow = None
        self.since = time.monotonic()
        if self.transport is None or self.transport.is_closing():
            return
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.transport.resume_reading()
            self.process()  # a pipelined request may be waiting
            if self.flow is None and self.h11.trailing_data[0]:
                self.head_started = True
            return
        self.close()


class LoopThread:
    """An asyncio event loop running on a thread of its own, shared by the listeners given it.

    The nodes of one server process share one: 25 nodes answering at once then wake one thread, which handles
    their sockets in a few turns of one loop, rather than 25 threads each paying a turn of its own loop for
    every request (and competing for the GIL to do so). The loop and its thread start with the first listener
    that starts and end when the last one stops.
    """

    def __init__(self, name: str = "http") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._users = 0
        self._running: tuple[asyncio.AbstractEventLoop, threading.Thread] | None = None

    def acquire(self) -> asyncio.AbstractEventLoop:
        """The running loop, started if no listener uses it yet."""
        with self._lock:
            self._users += 1
            if self._running is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._run, args=(loop,), name=self.name, daemon=True)
                thread.start()
                self._running = (loop, thread)
            return self._running[0]

    def release(self) -> None:
        """One listener less; the last one stops the loop and its thread."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._running is None:
                return
            (loop, thread), self._running = self._running, None
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()


class Listener:
    """An HTTP/1.1 server: accepting and all socket I/O on an event-loop thread, the WSGI app on ``threads``.

    ``loop``: the event-loop thread to use, shared with other listeners (without it the listener has its own).
    """

    def __init__(
        self, host: str, port: int, threads: int, limits: Limits | None = None, loop: LoopThread | None = None
    ) -> None:
        self.slot = _AppSlot()
        self.host = host
        self.limits = limits or Limits()
        fd_limit = raise_fd_limit()
        self.connection_limit = min(self.limits.connection_limit, max(1, fd_limit - FD_RESERVE))
        if self.connection_limit < self.limits.connection_limit:
            log.warning(
                "Open-file limit %d allows only %d connections, not %d",
                fd_limit,
                self.connection_limit,
                self.limits.connection_limit,
            )
        try:
            family, _, _, _, address = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            self.sock = socket.create_server(address[:2], family=family, backlog=min(4096, self.connection_limit))
        except OSError as exc:
            # create_server adds "(while attempting to bind ...)" to the errno's text; the address is said already.
            errno = exc.errno if not isinstance(exc, socket.gaierror) else None
            reason = os.strerror(errno) if errno and errno > 0 else (exc.strerror or str(exc))
            raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
        self.port: int = int(self.sock.getsockname()[1])
        self.loop_thread = loop or LoopThread(f"http-{self.port}")
        self.loop: asyncio.AbstractEventLoop  # the loop_thread's, from start()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"http-{self.port}")
        self.streams = concurrent.futures.ThreadPoolExecutor(
            max_workers=STREAM_THREADS, thread_name_prefix=f"http-{self.port}-stream"
        )
        self.connections: dict[_Connection, None] = {}  # the open connections (a dict as an ordered set)
        self._serving: concurrent.futures.Future[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self, app: Any) -> None:
        self.slot.app = app
        self.loop = self.loop_thread.acquire()
        self._serving = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)

    def stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is None:
            self.sock.close()
        else:
            self.loop.call_soon_threadsafe(self._stopped.set)
            with contextlib.suppress(Exception):
                serving.result(timeout=5)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.streams.shutdown(wait=True, cancel_futures=True)
        if serving is not None:
            self.loop_thread.release()

    # -- the event-loop thread
    async def _serve(self) -> None:
        server = await self.loop.create_server(lambda: _Connection(self), sock=self.sock)
        sweeper = asyncio.ensure_future(self._sweep())
        try:
            await self._stopped.wait()
        finally:
            sweeper.cancel()
            server.close()
            for conn in list(self.connections):
                conn.abort()
                if conn.flow is not None:
                    conn.flow.lose()  # the app's thread must not wait for a loop that is going away
            await asyncio.gather(sweeper, return_exceptions=True)
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _sweep(self) -> None:
        """Close what outstayed its time: idle connections, slow request heads, stalled bodies and downloads."""
        limits = self.limits
        step = max(0.05, min(1.0, limits.idle_timeout / 4, limits.header_timeout / 4))
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.waiting_on_client() and now > conn.deadline(limits):
                    if conn.flow is None and conn.head_started:
                        conn.refuse(408)
                    elif conn.flow is None:
                        conn.close()
                    else:
                        conn.abort()

    def admit(self, conn: _Connection) -> None:
        """Count a new connection; at the limit, close the longest-waiting connection that holds no request."""
        if len(self.connections) >= self.connection_limit:
            waiting = (c for c in self.connections if c.flow is None)
            victim = min(waiting, key=lambda c: c.since, default=None)
            if victim is None:
                conn.refuse(503)
                return
            self.connections.pop(victim, None)
            victim.abort()
        self.connections[conn] = None

    def environ(self, request: h11.Request, flow: _Flow, peer: tuple[str, int]) -> dict[str, Any]:
        target = bytes(request.target)
        if not target.startswith(b"/") and b"://" in target:  # absolute form
            target = b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
        path, _, query = target.partition(b"?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": self.host or "localhost",
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": peer[0],
            "REMOTE_PORT": str(peer[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": flow,
            "wsgi.input_terminated": True,
            "wsgi.errors": _LogStream(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            key = name.decode("latin-1").upper().replace("-", "_")
            text = value.decode("latin-1")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {text}" if key in environ else text
        return environ

    # -- the app's thread
    def run_app(self, conn: _Connection, environ: dict[str, Any], flow: _Flow, streamed: bool) -> None:
        """Run the app on one request and send its answer (``streamed``: on a thread of ``streams`` already)."""
        started: list[Any] = []  # [status, headers] once start_response is called
        head_sent = False

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            if exc_info is not None and head_sent:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return lambda data: None  # the legacy write() callable; the app never uses it

        def head() -> tuple[str, list[tuple[str, str]]] | None:
            """The head, the first time it is asked for; None after."""
            nonlocal head_sent
            if head_sent:
                return None
            if not started:
                raise RuntimeError("the application returned without calling start_response")
            head_sent = True
            return _verbatim_head(started[0], started[1])

        try:
            result = self.slot(environ, start_response)
        except (ClientGone, concurrent.futures.CancelledError):  # the client left, or the listener stopped
            return
        except Exception:
            log.exception("Serving %s %s failed", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            self._call(conn.abort)
            return
        if streamed or isinstance(result, list):  # a list is made whole (every answer but image data)
            self._send_body(conn, environ, flow, result, head)
            return
        try:
            sending = self.streams.submit(self._send_body, conn, environ, flow, result, head)
        except RuntimeError:  # the listener is stopping
            _close_body(result, environ)
            return
        # Cancelled before it started (the listener stopped): the body is still open, with a cache fill maybe.
        sending.add_done_callback(lambda done: _close_body(result, environ) if done.cancelled() else None)

    def _send_body(
        self,
        conn: _Connection,
        environ: dict[str, Any],
        flow: _Flow,
        result: Iterable[bytes],
        head: Callable[[], tuple[str, list[tuple[str, str]]] | None],
    ) -> None:
        """Iterate the app's answer into the connection; ``head()`` gives the head with the first piece only."""
        unclosed: Iterable[bytes] | None = result
        try:
            # One chunk is held back so that the last one goes with the end of the answer: a small answer
            # costs the event loop one wake-up.
            held = b""
            for chunk in result:
                if chunk:
                    if held:
                        self._push(conn, flow, head(), held, end=False)
                    held = chunk
            unclosed = None
            _close_body(result, environ)
            self._push(conn, flow, head(), held, end=True)
        except (ClientGone, concurrent.futures.CancelledError):  # the client left, or the listener stopped
            pass
        except Exception:
            log.exception("Serving %s %s failed", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            self._call(conn.abort)
        finally:
            if unclosed is not None:
                _close_body(unclosed, environ)
                self._call(conn.finish, flow)

    def _push(
        self, conn: _Connection, flow: _Flow, head: tuple[str, list[tuple[str, str]]] | None, data: bytes, end: bool
    ) -> None:
        """Hand a piece of the answer to the event loop, once the socket has room for it."""
        flow.wait_for_room()
        with flow.cond:
            flow.queued += len(data)
        self._call(conn.send, flow, head, data, end)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed: the listener stopped
            self.loop.call_soon_threadsafe(callback, *args)


def _streams_its_body(environ: dict[str, Any]) -> bool:
    """Whether a request comes with a body that may take its client long to send (an image upload): more than
    ``STREAMED_BODY`` bytes, or chunked. Such requests run on the stream pool, as answers with image data do."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    length = environ.get("CONTENT_LENGTH", "")
    return length.isdigit() and int(length) > STREAMED_BODY


def _verbatim_head(status: str, app_headers: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """The app's status and headers as sent: its spelling and order, then Date."""
    code = int(status.split(" ", 1)[0])
    headers = list(app_headers)
    if code in (204, 304) or 100 <= code < 200:
        # RFC 9110 forbids a length on these and h11 refuses to send one (waitress dropped it too).
        headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding")]
    if not any(name.lower() == "date" for name, _ in headers):
        headers.append(("Date", _http_date()))
    return status, headers


_DATE: list[tuple[int, str]] = [(0, "")]  # the Date header of the current second


def _http_date() -> str:
    """``formatdate(usegmt=True)``, formatted once a second rather than for every answer."""
    second = int(time.time())
    cached = _DATE[0]
    if cached[0] != second:
        cached = _DATE[0] = (second, formatdate(second, usegmt=True))
    return cached[1]


def _close_body(body: Iterable[bytes], environ: dict[str, Any]) -> None:
    """Close the app's answer (WSGI's close(): an aborted download aborts its cache fill, files close)."""
    close = getattr(body, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("Closing the response body of %s failed", environ["PATH_INFO"])


class _LogStream:
    """``wsgi.errors``: what the app writes there goes to this module's log."""

    def write(self, text: str) -> None:
        if text.strip():
            log.error("%s", text.rstrip())

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass
