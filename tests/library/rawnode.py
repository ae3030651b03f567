"""A hostile node on a real loopback socket: it reads each request's head and answers whatever bytes it is
told to, raw (no HTTP framework to tidy them up), optionally one byte at a time with a pause between.

Used by the hostile-node fuzz (tests/library/test_hostile_nodes.py) and the CLI's failure tests.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Answer = Callable[[str, str], bytes]  # (method, path) -> the raw bytes to send

VERSIONS = json.dumps(
    {"versions": [{"id": f"v2.{minor}", "status": "SUPPORTED", "links": []} for minor in range(18, -1, -1)]}
).encode()


def http(status: int = 200, body: bytes = b"", content_type: str = "application/json", **headers: str) -> bytes:
    """A well-formed HTTP/1.1 response (Content-Length set from the body unless given)."""
    fields = {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close"}
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return head.encode("latin-1") + b"\r\n" + body


def glance_versions_then(answer: Answer) -> Answer:
    """A node whose ``GET /versions`` is Glance's (cache API 2.14-2.18) and whose other answers are ``answer``'s."""

    def reply(method: str, path: str) -> bytes:
        if path.endswith("/versions"):
            return http(200, VERSIONS)
        return answer(method, path)

    return reply


class RawNode:
    """Serves until closed. ``answer`` may be replaced between requests; ``drip`` sends byte by byte with that
    pause between, for the requests ``drip_when(method, path)`` picks (all by default)."""

    def __init__(
        self, answer: Answer, drip: float = 0.0, drip_when: Callable[[str, str], bool] = lambda m, p: True
    ) -> None:
        self.answer = answer
        self.drip = drip
        self.drip_when = drip_when
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._server.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
                path = rest.split(" ", 1)[0]
                payload = self.answer(method, path)
                if self.drip and self.drip_when(method, path):
                    for index in range(len(payload)):
                        if self._stop.wait(self.drip):
                            return
                        conn.sendall(payload[index : index + 1])
                else:
                    conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)
                # Let the client read everything before the close (a close with unread input would reset).
                while conn.recv(4096):
                    pass
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._accepter.join()
        self._server.close()
        deadline = time.monotonic() + 10
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


@contextmanager
def raw_node(
    answer: Answer, drip: float = 0.0, drip_when: Callable[[str, str], bool] = lambda m, p: True
) -> Iterator[RawNode]:
    node = RawNode(answer, drip, drip_when)
    try:
        yield node
    finally:
        node.close()
