"""A cold Cluster (a keystone session without a token yet) opens every other node's connection while the first
node's thread fetches the one token, so the requests go out at once when it arrives; nothing else changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpcore
import httpx
import pytest

from glancecache_client import CacheClient, Cluster, deadline, errors
from glancecache_client.server.http.listener import Limits
from glancecache_client.server.runner import ReferenceCluster, run_cluster
from tests.tls import HTTPSNodes

from .test_transport_errors import free_port


class SlowSession:
    """A keystoneauth1 Session stand-in: its one token comes once ``ready()`` holds (or after ``wait`` s)."""

    def __init__(self, ready: Callable[[], bool] = lambda: False, wait: float = 10.0) -> None:
        self.ready, self.wait = ready, wait
        self.issued = 0
        self.was_ready = False

    def get_token(self) -> str:
        self.issued += 1
        deadline = time.monotonic() + self.wait
        while not self.ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.was_ready = self.ready()
        return "token"

    def invalidate(self) -> bool:
        return True


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[ReferenceCluster]:
    with run_cluster(4, auth="noauth", data_dir=tmp_path) as cluster:
        yield cluster


def _open_connections(cluster: ReferenceCluster, index: int) -> int:
    return len(cluster._listeners[index].connections)


def test_the_other_nodes_are_connected_while_the_token_is_fetched(nodes: ReferenceCluster) -> None:
    session = SlowSession(lambda: all(_open_connections(nodes, index) == 1 for index in (1, 2, 3)))
    with Cluster(nodes.urls, session=session) as cluster:  # type: ignore[arg-type]
        listed = cluster.list()
        assert listed.ok, listed.errors
        assert session.was_ready and session.issued == 1
        # Each node's request went over its early connection: one connection per node, still open.
        assert [_open_connections(nodes, index) for index in range(4)] == [1, 1, 1, 1]
        again = cluster.list()  # warm: the kept-alive connections, no early connecting
        assert again.ok and [_open_connections(nodes, index) for index in range(4)] == [1, 1, 1, 1]
    deadline_at = time.monotonic() + 5
    while any(_open_connections(nodes, index) for index in range(4)):
        assert time.monotonic() < deadline_at, "the cluster's connections outlived it"
        time.sleep(0.01)


def test_a_node_refusing_the_early_connection_fails_as_it_did(nodes: ReferenceCluster) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with Cluster([nodes.urls[0], dead, nodes.urls[1]], session=SlowSession(wait=0.2)) as cluster:  # type: ignore[arg-type]
        listed = cluster.list()
    assert [result.node for result in listed.errors] == [dead]
    assert isinstance(listed.errors[0].error, errors.ConnectionRefused)
    assert str(listed.errors[0].error).startswith(f"{dead}: connection refused")


def test_an_early_connection_the_node_closed_is_replaced(tmp_path: Path) -> None:
    # The node drops connections idle for 0.2 s; the token takes 1 s: every early connection is gone by then.
    with run_cluster(3, auth="noauth", data_dir=tmp_path, limits=Limits(idle_timeout=0.2, header_timeout=0.2)) as nodes:
        with Cluster(nodes.urls, session=SlowSession(wait=1.0)) as cluster:  # type: ignore[arg-type]
            listed = cluster.list()
    assert listed.ok, listed.errors


def test_an_early_connection_that_waited_too_long_is_replaced(nodes: ReferenceCluster,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(deadline, "EARLY_CONNECTION_AGE", 0.05)
    opened: list[tuple[str, int]] = []
    real = httpcore.SyncBackend.connect_tcp

    def counted(self: httpcore.SyncBackend, host: str, port: int, *args: object, **kwargs: object) -> object:
        opened.append((host, port))
        return real(self, host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", counted)
    with Cluster(nodes.urls, session=SlowSession(wait=0.3)) as cluster:  # type: ignore[arg-type]
        listed = cluster.list()
    assert listed.ok, listed.errors
    assert len(opened) == 3 + 4  # three early connections, too old to trust when the token came: four new ones


def test_the_timeout_counts_from_the_early_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Connecting to the second node takes 0.8 s and it answers after 0.5 s: 1.3 s in all, over its 1 s timeout,
    # whether it connects early or not (the early connection does not restart the clock).
    with run_cluster(2, auth="noauth", data_dir=tmp_path, added_latency=0.5) as nodes:
        slow_port = int(nodes.urls[1].rsplit(":", 1)[1])
        real = httpcore.SyncBackend.connect_tcp

        def slow_to_connect(self: httpcore.SyncBackend, host: str, port: int, *args: object, **kw: object) -> object:
            if port == slow_port:
                time.sleep(0.8)
            return real(self, host, port, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", slow_to_connect)
        with Cluster(nodes.urls, session=SlowSession(wait=0), timeout=1) as cluster:  # type: ignore[arg-type]
            listed = cluster.list()
    assert [result.node for result in listed.errors] == [nodes.urls[1]]
    assert isinstance(listed.errors[0].error, errors.RequestTimeout)


def test_early_connections_carry_tls(https_nodes: HTTPSNodes) -> None:
    proxies = [https_nodes.proxy(url) for url in https_nodes.urls]
    before = [proxy.connections for proxy in proxies]
    with Cluster(https_nodes.urls, session=SlowSession(wait=0.3), verify=str(https_nodes.certs.ca)) as cluster:  # type: ignore[arg-type]
        listed = cluster.list()
    assert listed.ok, listed.errors
    assert [proxy.connections for proxy in proxies] == [count + 1 for count in before]  # one each, TLS over it
    with Cluster(https_nodes.urls, session=SlowSession(wait=0.3)) as untrusting:  # type: ignore[arg-type]
        refused = untrusting.list()  # the system trust store: the handshake over the early connection fails
    assert all(isinstance(result.error, errors.TLSFailure) for result in refused)


def test_a_client_closed_before_its_first_request_refuses_it_and_closes_its_transport() -> None:
    closed: list[bool] = []

    class Recording(httpx.MockTransport):
        def close(self) -> None:
            closed.append(True)

    client = CacheClient("n1", transport=Recording(lambda request: httpx.Response(500)))
    client.close()
    assert closed == [True]
    with pytest.raises(RuntimeError, match="client has been closed"):
        client.list()


def test_close_waits_for_the_calls_under_way() -> None:
    done: list[str] = []

    def slow(client: CacheClient) -> None:
        time.sleep(0.3)
        done.append(client.endpoint)

    cluster = Cluster([f"n{i}" for i in range(4)])
    results = cluster.each(slow)
    next(results)  # the first node's result; the others may still be running
    cluster.close()
    assert sorted(done) == [f"http://n{i}:9292" for i in range(4)]
    assert threading.active_count() < 100
