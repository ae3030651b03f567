"""One HTTP listener: a waitress server on its own event-loop thread, tuned for big image bodies.

Owns the waitress integration and its two adjustments:

- headers go out as the application spelled them, in its order (waitress title-cases and sorts them;
  Glance sends ``x-openstack-request-id`` and ``Content-MD5`` verbatim). Framing (Content-Length,
  chunking, keep-alive) stays waitress's own decision.
- bodies given as ``wsgi.file_wrapper`` (cache hits, Range reads) are sent with ``os.sendfile``, straight
  from the page cache to the socket, instead of waitress's read-a-slice/seek/send loop in Python.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from typing import Any

from .config import ConfigError

log = logging.getLogger(__name__)

SENDFILE_SLICE = 16 * 1024 * 1024
_DISCONNECTED = {errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.EPIPE, errno.EBADF}


class _AppSlot:
    """A WSGI app whose target is set after the socket is bound (the node URL needs the real port)."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "request before the node finished starting"
        return self.app(environ, start_response)


def _channel_class() -> Any:
    from waitress.buffers import ReadOnlyFileBasedBuffer
    from waitress.channel import HTTPChannel
    from waitress.task import WSGITask

    class VerbatimHeaderTask(WSGITask):
        def build_response_header(self) -> bytes:
            spelled = {"-".join(p.capitalize() for p in name.split("-")): name for name, _ in self.response_headers}
            built: bytes = super().build_response_header()
            status_line = built.split(b"\r\n", 1)[0].decode("latin-1")
            lines = [status_line] + [f"{spelled.get(name, name)}: {value}" for name, value in self.response_headers]
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    class ImageChannel(HTTPChannel):
        task_class = VerbatimHeaderTask

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # waitress hands the socket at most SO_SNDBUF bytes (16 KiB at accept time) per send();
            # streamed bodies go out in far fewer event-loop turns with larger slices.
            self.sendbuf_len = max(self.sendbuf_len, 4 * 1024 * 1024)

        def _flush_some(self, do_close: bool = True) -> bool:
            # waitress's loop over the output buffers, with file buffers handed to sendfile(2).
            sent = 0
            while True:
                outbuf = self.outbufs[0]
                remaining = outbuf.__len__()
                blocked = False
                while remaining > 0:
                    if isinstance(outbuf, ReadOnlyFileBasedBuffer) and hasattr(outbuf.file, "fileno"):
                        count = self._sendfile(outbuf, remaining, do_close)
                    else:
                        count = self.send(outbuf.get(self.sendbuf_len), do_close=do_close)
                    if not count:
                        blocked = True
                        break
                    outbuf.skip(count, True)
                    remaining -= count
                    sent += count
                    self.total_outbufs_len -= count
                if blocked or len(self.outbufs) == 1:
                    break
                finished = self.outbufs.pop(0)  # type: ignore[attr-defined]
                try:
                    finished.close()
                except Exception:
                    log.exception("Closing a finished output buffer failed")
            if sent:
                self.last_activity = time.time()
            return bool(sent)

        def _sendfile(self, outbuf: Any, remaining: int, do_close: bool) -> int:
            sock = self.socket
            assert sock is not None
            try:
                return os.sendfile(
                    sock.fileno(), outbuf.file.fileno(), outbuf.file.tell(), min(remaining, SENDFILE_SLICE)
                )
            except BlockingIOError:
                return 0
            except OSError as exc:
                if exc.errno in _DISCONNECTED:
                    if do_close:
                        self.handle_close()
                    return 0
                raise

    return ImageChannel


class Listener:
    """One waitress server running its event loop on a daemon thread."""

    def __init__(self, host: str, port: int, threads: int) -> None:
        from waitress.server import create_server

        # waitress warns "Task queue depth is N" whenever a request waits for a thread: routine under any
        # concurrent load, and it floods the logs of tests and benchmarks. Real errors still show.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.slot = _AppSlot()
        try:
            server: Any = create_server(
                self.slot,
                map={},
                host=host,
                port=port,
                threads=threads,
                ident="",
                channel_timeout=300,
                connection_limit=1000,
                asyncore_use_poll=True,
                # Streamed (store) downloads: keep the outgoing buffer in memory instead of a temp file.
                outbuf_overflow=32 * 1024 * 1024,
                # Image uploads: waitress's 1 GiB default body limit is far below real image sizes.
                max_request_body_size=1 << 40,
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        server.channel_class = _channel_class()
        self.server = server
        self.port: int = int(server.effective_port)
        self.host = host
        self.thread = threading.Thread(target=server.run, name=f"waitress-{self.port}", daemon=True)

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
        self.thread.start()

    def stop(self) -> None:
        server = self.server

        def close_everything() -> None:
            for dispatcher in list(server._map.values()):
                with contextlib.suppress(Exception):
                    dispatcher.close()

        if self.thread.is_alive():
            try:
                server.trigger.pull_trigger(close_everything)
            except OSError:
                close_everything()
            self.thread.join(timeout=5)
        else:
            close_everything()
        server.task_dispatcher.shutdown(timeout=2)
