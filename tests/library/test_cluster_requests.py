"""Cluster fan-out: per-node results and errors side by side, one token source for every node."""

from __future__ import annotations

import httpx
import pytest

from glancecache_client import Cluster, errors
from glancecache_client.auth import SessionTokens

from .conftest import IMAGE, MODERN
from .test_transport_errors import free_port


def test_healthy_nodes_survive_a_dead_one() -> None:
    dead = f"127.0.0.1:{free_port()}"
    with Cluster(["127.0.0.1:1", dead]) as cluster:
        result = cluster.list()
    assert len(result) == 2 and not result.ok
    assert [r.node for r in result] == ["http://127.0.0.1:1", f"http://{dead}"]
    assert all(isinstance(r.error, errors.ConnectionRefused) for r in result.errors)
    with pytest.raises(errors.ConnectionRefused):
        result.raise_first()


def test_duplicates_are_dropped_and_empty_is_refused() -> None:
    with Cluster(["n1", "http://n1:9292", "n2"]) as cluster:
        assert cluster.endpoints == ["http://n1:9292", "http://n2:9292"]
    with pytest.raises(errors.InvalidInput, match="no nodes given"):
        Cluster([])


def test_bad_id_rejected_before_fan_out() -> None:
    with Cluster(["n1", "n2"]) as cluster, pytest.raises(errors.InvalidInput):
        cluster.queue("nope")


class CountingSession:
    def __init__(self) -> None:
        self.issued = 0

    def get_token(self) -> str:
        self.issued += 1
        return "shared-token"

    def invalidate(self) -> bool:
        return True


def test_one_token_for_every_node() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/versions":
            return httpx.Response(200, json=MODERN)
        seen.append((request.url.host, request.headers.get("x-auth-token")))
        return httpx.Response(200, json={"cached_images": [], "queued_images": [IMAGE]})

    session = CountingSession()
    made: list[str] = []

    def transports(node: str) -> httpx.BaseTransport:
        made.append(node)
        return httpx.MockTransport(handler)

    nodes = [f"n{i}" for i in range(8)]
    with Cluster(nodes, token_source=SessionTokens(session), transport_factory=transports) as cluster:  # type: ignore[arg-type]
        result = cluster.list()
    assert result.ok and [state.queued for state in result.values] == [(IMAGE,)] * 8
    assert made == [f"http://n{i}:9292" for i in range(8)]  # the factory is asked once per node, canonical URL
    assert sorted(host for host, _ in seen) == nodes
    assert {token for _, token in seen} == {"shared-token"}
    assert session.issued == 1


def test_every_node_is_asked_at_once_and_answers_come_in_node_order() -> None:
    # 100 nodes, each answering only once all 100 requests are in flight: a pool smaller than the node count (it was
    # capped at 64) would never get there and time out. Results come back in the order the nodes were given.
    import threading

    count = 100
    everyone = threading.Barrier(count, timeout=20)

    def handler(request: httpx.Request) -> httpx.Response:
        everyone.wait()
        return httpx.Response(200, json={"cached_images": [], "queued_images": [IMAGE]})

    nodes = [f"n{i}" for i in range(count)]
    with Cluster(nodes, transport_factory=lambda _node: httpx.MockTransport(handler)) as cluster:
        listed = cluster.list()
        assert listed.ok, listed.errors[:1]
        everyone.reset()
        results = list(cluster.each(lambda client: client.list()))
    assert all(result.ok for result in results), [r.error for r in results if r.error][:1]
    assert [result.node for result in results] == [f"http://n{i}:9292" for i in range(count)]
