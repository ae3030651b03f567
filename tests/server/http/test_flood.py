"""The reference server under connection floods, run as its own ``glancecache-server`` process on loopback.

- with N idle and N slowloris connections held (N = GLANCECACHE_FLOOD_N, default 5,000: 10,000 in all, fewer
  when this machine's open-file limit cannot hold them), a fresh ``GET /v2/cache`` answers within 1 s and the
  server's RSS stays under 200 MiB;
- an idle connection is closed after ``--idle-timeout``, a request head dripping a byte at a time gets 408 and
  is closed after ``--header-timeout``, a request body that stops arriving and a download nobody reads (a cache hit
  or streamed from the store) are cut after ``--idle-timeout``; heads that are malformed or too large get 400 / 431;
- at ``--connection-limit`` the longest-idle connection makes room for a new one, and a new connection finds
  503 only when every connection holds a request in progress.

Each test is bounded: the flood's sockets are opened with non-blocking connects and closed on exit, the server
process is terminated (killed if it does not stop), and every wait has a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.flood import SLOW_START, Flood, closed_by_peer, probe, raise_nofile, rss_mib

SCRIPT = Path(sys.executable).parent / "glancecache-server"
FLOOD_N = int(os.environ.get("GLANCECACHE_FLOOD_N", "5000"))
RSS_GOAL_MIB = 200.0


class Server:
    """``glancecache-server --port 0 --auth noauth`` with extra options, stopped on exit."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        argv = [str(SCRIPT), "--port", "0", "--auth", "noauth", "--data-dir", str(tmp_path), *options]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr = ""
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            self.stop()
            pytest.fail(f"glancecache-server did not start: {self.stderr}")
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()


def new_image(http: httpx.Client, url: str) -> str:
    image_id: str = http.post(f"{url}/v2/images", json={"disk_format": "raw", "container_format": "bare"}).json()["id"]
    return image_id


def upload_head(image_id: str, length: int = 1_000_000) -> bytes:
    """The head of an image upload whose body is to come."""
    return (
        f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    class Started(Server):
        def __init__(self, *options: str) -> None:
            super().__init__(tmp_path / str(len(started)), *options)
            started.append(self)

    yield Started
    for server in started:
        server.stop()


@pytest.mark.slow  # about 10 s: 10,000 connections opened, held and closed
def test_answers_within_a_second_with_idle_and_slowloris_connections_held(server_factory: type[Server]) -> None:
    # The server inherits this process's raised limit; it raises its own soft limit to the hard one as well.
    limit = raise_nofile()
    per_kind = min(FLOOD_N, (limit - 200) // 2)
    if per_kind < 600:
        pytest.skip(f"an open-file limit of {limit} cannot hold a meaningful flood")
    server = server_factory()
    assert probe(server.port) is not None
    with Flood(server.port, idle=per_kind, slow=per_kind, drip=1.0) as flood:
        assert flood.held == 2 * per_kind, "the kernel did not complete every handshake: the server stopped accepting"
        time.sleep(2)  # let the server accept them all and the slow ones drip
        latencies = [probe(server.port, timeout=5) for _ in range(5)]
        rss = rss_mib(server.process.pid)
    assert all(latency is not None and latency < 1.0 for latency in latencies), (
        f"GET /v2/cache with {2 * per_kind} connections held took {latencies} s (None: no answer within 5 s)"
    )
    assert rss < RSS_GOAL_MIB, f"server RSS {rss:.0f} MiB with {2 * per_kind} connections held"


def test_idle_connection_is_closed_after_idle_timeout(server_factory: type[Server]) -> None:
    server = server_factory("--idle-timeout", "1", "--header-timeout", "5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle:
        assert not closed_by_peer(idle, 0.5)
        assert closed_by_peer(idle, 3.0), "an idle connection outlived --idle-timeout 1 by 2.5 s"
    # A kept-alive connection is closed the same way once its last answer is sent.
    with httpx.Client(timeout=5) as http:
        assert http.get(f"{server.url}/v2/cache").status_code == 200
        time.sleep(2.5)
        assert http.get(f"{server.url}/v2/cache").status_code == 200  # httpx reconnects


def test_dripping_request_head_gets_408_after_header_timeout(server_factory: type[Server]) -> None:
    server = server_factory("--idle-timeout", "30", "--header-timeout", "1.5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
        slow.sendall(SLOW_START)
        start = time.monotonic()
        received = b""
        slow.settimeout(0.2)
        while time.monotonic() - start < 6:
            try:
                slow.send(b"x")  # a byte every 0.2 s: never idle, never finished
                chunk = slow.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
        elapsed = time.monotonic() - start
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received[:200]
    assert 1.0 < elapsed < 4.0, f"the dripping head was cut after {elapsed:.1f} s, not about 1.5 s"


def test_stalled_upload_body_is_cut_after_idle_timeout(server_factory: type[Server]) -> None:
    server = server_factory("--idle-timeout", "1", "--header-timeout", "5")
    with httpx.Client(timeout=5) as http:
        image_id = new_image(http, server.url)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as upload:
        upload.sendall(upload_head(image_id) + b"z" * 1000)
        assert closed_by_peer(upload, 4.0), "an upload that stopped sending outlived --idle-timeout 1"
    with httpx.Client(timeout=5) as http:
        assert http.get(f"{server.url}/v2/images/{image_id}").json()["status"] == "queued"


LARGE_IMAGE = 48 * 1024 * 1024  # far more than the socket buffers and the server's write buffers hold


def large_image(url: str, cached: bool) -> str:
    """The id of a LARGE_IMAGE image uploaded to the server, and cached there with ``cached``."""
    with httpx.Client(timeout=30) as http:
        image_id = new_image(http, url)
        upload = http.put(
            f"{url}/v2/images/{image_id}/file",
            content=os.urandom(1024 * 1024) * (LARGE_IMAGE // (1024 * 1024)),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert upload.status_code == 204
        if cached:
            http.put(f"{url}/v2/cache/{image_id}")
            deadline = time.monotonic() + 20
            while image_id not in http.get(f"{url}/v2/cache").text:
                assert time.monotonic() < deadline, "the image was never cached"
                time.sleep(0.1)
    return image_id


def download_request(image_id: str) -> bytes:
    return f"GET /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


@pytest.mark.parametrize("cached", [True, False], ids=["cache-hit", "streamed-from-store"])
def test_download_that_is_not_read_is_cut_after_idle_timeout(server_factory: type[Server], cached: bool) -> None:
    server = server_factory("--idle-timeout", "1", "--header-timeout", "5")
    size = LARGE_IMAGE
    image_id = large_image(server.url, cached)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as download:
        download.sendall(download_request(image_id))
        time.sleep(3)  # the client reads nothing for 3 s
        received, start = 0, time.monotonic()
        while chunk := download.recv(1 << 20):
            received += len(chunk)
            assert time.monotonic() - start < 5, "the stalled download was not cut"
    assert 0 < received < size, f"received {received} of {size} bytes"
    assert probe(server.port) is not None


@pytest.mark.parametrize("stalled_by", ["downloads-nobody-reads", "uploads-that-stopped"])
def test_stalled_image_transfers_leave_api_requests_answering(server_factory: type[Server], stalled_by: str) -> None:
    """More image transfers stalled at once than a node has request threads (8): each holds a thread, but not one
    that API requests need, so the cache listing still answers at once (it waited for --idle-timeout)."""
    server = server_factory("--idle-timeout", "60")
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(12)]
    try:
        if stalled_by == "downloads-nobody-reads":
            image_id = large_image(server.url, cached=True)
            for download in stalled:
                download.sendall(download_request(image_id))
            for download in stalled:
                assert download.recv(12) == b"HTTP/1.1 200"  # it is being sent; nothing more is read
        else:
            with httpx.Client(timeout=5) as http:
                images = [new_image(http, server.url) for _ in stalled]
            for upload, image_id in zip(stalled, images, strict=True):
                upload.sendall(upload_head(image_id) + b"z" * 1000)  # and nothing more
            time.sleep(0.5)  # every upload has begun
        with httpx.Client(timeout=3) as http:
            listing = http.get(f"{server.url}/v2/cache")
        assert listing.status_code == 200
    finally:
        for transfer in stalled:
            transfer.close()
    assert probe(server.port) is not None


def test_connection_limit_closes_the_longest_idle_then_answers_503(server_factory: type[Server]) -> None:
    server = server_factory("--connection-limit", "2", "--idle-timeout", "30")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as oldest:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as newer:
            time.sleep(0.2)
            assert probe(server.port) is not None  # the third connection answers...
            assert closed_by_peer(oldest, 2.0)  # ...in place of the longest-idle one
            assert not closed_by_peer(newer, 0.3)
    with httpx.Client(timeout=5) as http:
        images = [new_image(http, server.url) for _ in range(2)]
    busy = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in images]
    try:
        for sock, image_id in zip(busy, images, strict=True):
            sock.sendall(upload_head(image_id) + b"z")  # a request in progress: its body is still coming
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as refused:
            refused.sendall(b"GET /v2/cache HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = refused.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer[:200]
    finally:
        for sock in busy:
            sock.close()


def test_malformed_and_oversized_request_heads(server_factory: type[Server]) -> None:
    server = server_factory()

    def answer(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(raw)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        return received

    assert answer(b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request\r\n")
    big = b"GET /v2/cache HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    assert answer(big).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")  # sent at once
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:  # still arriving
        sock.sendall(big[:-4])
        assert sock.recv(65536).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert probe(server.port) is not None
