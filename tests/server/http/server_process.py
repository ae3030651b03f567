"""Real ``glancecache-server`` processes for tests: start one, talk HTTP to it, read its log file, stop it.

Owns: ``ServerProcess`` (stderr goes to a file, so a chatty log can never fill a pipe and stall the server;
stdout gives the node URLs), ``private_database`` as a context manager, and ``upload``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from .. import databases

SCRIPT = Path(sys.executable).parent / "glancecache-server"


class ServerProcess:
    """One ``glancecache-server`` subprocess (``--port 0``); ``urls`` once it listens, ``log`` its stderr."""

    def __init__(self, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._log_file = log_path.open("w")
        self.process = subprocess.Popen(
            [str(SCRIPT), "--port", "0", *args], stdout=subprocess.PIPE, stderr=self._log_file, text=True
        )
        self.urls: list[str] = []

    def wait_listening(self, nodes: int = 1, timeout: float = 60) -> list[str]:
        assert self.process.stdout is not None
        stdout = self.process.stdout
        lines: list[str] = []

        def read() -> None:
            for _ in range(nodes):
                lines.append(stdout.readline().strip())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if len(lines) != nodes or not all(line.startswith("http") for line in lines):
            raise AssertionError(f"server did not start: stdout {lines}, log:\n{self.log()}")
        self.urls = lines
        return lines

    @property
    def url(self) -> str:
        return self.urls[0]

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log_file.close()
        return self.process.returncode


@contextlib.contextmanager
def running(log_path: Path, *args: str, nodes: int = 1) -> Iterator[ServerProcess]:
    server = ServerProcess(log_path, *args)
    try:
        server.wait_listening(nodes)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def private_database(kind: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL or MariaDB test server; skips if that server does not answer."""
    yield from databases.private_database(kind, "gc_purge")


def upload(http: httpx.Client, url: str, data: bytes) -> str:
    """Create an image on the node at ``url`` (noauth) and upload ``data``; returns its id."""
    created = http.post(f"{url}/v2/images", json={"container_format": "bare", "disk_format": "raw"})
    assert created.status_code == 201, created.text
    image_id: str = created.json()["id"]
    stored = http.put(
        f"{url}/v2/images/{image_id}/file", content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert stored.status_code == 204, stored.text
    return image_id
