"""Connection refused, DNS failure, TLS failure and timeouts are distinct errors naming the node (real sockets)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from glancecache_client import CacheClient, errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def plain_http_server() -> Iterator[int]:
    """Answers anything with a plain-HTTP response (so a TLS handshake against it fails)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def test_connection_refused_names_node() -> None:
    port = free_port()
    with CacheClient(f"127.0.0.1:{port}") as client, pytest.raises(errors.ConnectionRefused) as info:
        client.list()
    assert info.value.node == f"http://127.0.0.1:{port}"
    assert str(info.value).startswith(f"http://127.0.0.1:{port}: connection refused")


def test_dns_failure() -> None:
    with CacheClient("no-such-host.invalid") as client, pytest.raises(errors.NameResolutionFailed) as info:
        client.list()
    assert "does not resolve" in str(info.value) and info.value.node == "http://no-such-host.invalid:9292"


def test_timeout(silent_server: int) -> None:
    with CacheClient(f"127.0.0.1:{silent_server}", timeout=0.3) as client, pytest.raises(errors.RequestTimeout):
        client.list()


def test_tls_failure(plain_http_server: int) -> None:
    with CacheClient(f"https://127.0.0.1:{plain_http_server}") as client, pytest.raises(errors.TLSFailure) as info:
        client.list()
    assert "--os-cacert" in str(info.value)


def test_transport_errors_share_a_base() -> None:
    for cls in (errors.ConnectionRefused, errors.NameResolutionFailed, errors.TLSFailure, errors.RequestTimeout):
        assert issubclass(cls, errors.TransportError) and issubclass(cls, errors.GlanceCacheError)
