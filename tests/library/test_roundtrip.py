"""The library over real HTTP against the bundled reference server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from glancecache_client import CacheClient, Cluster, errors
from glancecache_client.server.runner import run_cluster

from ..keystone import password_session
from ..roundtrip import create_image, run_scenario

EXPECTED = [
    ("versions", ["2.14", "2.16", "2.18"]),
    ("empty", (0, 0)),
    ("queue A", "ok"),
    ("A cached", (1024, 0, True)),
    ("A checksum absent or md5", True),
    ("A modified recently, in UTC", True),
    ("queue A again", "ok"),
    ("listing after queue", ([True], [])),
    ("nodes A", True),
    ("nodes B", []),
    ("nodes unknown", "NotFound 404"),
    ("queue non-active", "BadRequest 400"),
    ("queue unknown", "NotFound 404"),
    ("delete unknown", "NotFound 404"),
    ("delete existing uncached", "ok"),
    ("queue malformed", "InvalidInput"),
    ("download fills cache", True),
    ("hits after one cached read", 1),
    ("prune under limit", (0, 0)),
    ("clean", "ok"),
    ("clear queue", (0, 0)),
    ("clear cache", (2, 0)),
    ("after clears", (0, 0)),
    ("clear both", (0, 0)),
    ("delete after clear", "ok"),
    ("clear bad target", "InvalidInput"),
]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path_factory.mktemp("roundtrip")) as cluster:
        yield list(cluster.urls)


def test_scenario_against_reference_server(tmp_path: Path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path) as cluster:
        assert run_scenario(cluster.urls[0]) == EXPECTED


def test_cluster_fan_out_keeps_nodes_apart(two_nodes: list[str]) -> None:
    first, second = two_nodes
    image = create_image(first, b"x" * 300, "fan-out")
    with Cluster(two_nodes) as cluster:
        CacheClient(first).queue(image)
        CacheClient(first).wait_cached(image, timeout=30, interval=0.1)
        listing = {result.node: result.value for result in cluster.list()}
        assert listing[first] is not None and listing[first].is_cached(image)
        assert listing[second] is not None and not listing[second].is_cached(image)
        assert cluster.nodes(image).values == [[first], [first]]
        assert cluster.queue(image).ok
        assert all(r.ok for r in cluster.wait_cached(image, timeout=30, interval=0.1))
        assert sorted(cluster.nodes(image).values[0]) == sorted(two_nodes)
        cleared = cluster.clear("cache")
        assert [(c.node, c.cached) for c in cleared.values] == [(first, 1), (second, 1)]


def test_partial_failure_keeps_healthy_results(two_nodes: list[str]) -> None:
    dead = "http://127.0.0.1:1"
    with Cluster([*two_nodes, dead]) as cluster:
        result = cluster.list()
    assert [r.ok for r in result] == [True, True, False]
    assert isinstance(result.errors[0].error, errors.ConnectionRefused)
    assert len(result.values) == 2


def test_disabled_cache_is_unsupported_feature(tmp_path: Path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, cache_enabled=False) as cluster:
        with CacheClient(cluster.urls[0]) as client, pytest.raises(errors.UnsupportedFeature) as info:
            client.list()
    assert "v2.14" in str(info.value) and info.value.node == cluster.urls[0]


def test_legacy_node_through_deprecated_endpoints(tmp_path: Path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, legacy_only=True) as cluster:
        url = cluster.urls[0]
        image = create_image(url, b"legacy" * 100, "legacy")
        with CacheClient(url) as client:
            assert "2.14" not in client.versions
            client.queue(image)
            assert client.list().queued == (image,)  # the deprecated queue has no worker: it stays queued
            cleared = client.clear("queue")
            assert (cleared.cached, cleared.queued) == (0, 1)
            with pytest.raises(errors.UnsupportedFeature, match="v2.18"):
                client.prune()


def test_cache_admin_listener(tmp_path: Path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, cache_admin_bind="127.0.0.1:0") as cluster:
        admin = cluster.admin_urls[0] + "/cache"  # the listener serves the cache endpoints under /cache
        image = create_image(cluster.urls[0], b"adm" * 100, "admin-listener")
        with CacheClient(admin) as client:
            client.queue(image)
            assert client.wait_cached(image, timeout=30, interval=0.1).size == 300
            assert client.prune().files == 0
            assert client.nodes(image) == [cluster.urls[0]]


def test_keystone_session_one_token_for_all_nodes(tmp_path: Path) -> None:
    with run_cluster(nodes=3, auth="keystone", data_dir=tmp_path) as cluster:
        before = cluster.tokens_issued
        with Cluster(cluster.urls, session=password_session(cluster.identity_url)) as fan_out:
            assert fan_out.list().ok
            assert fan_out.prune().ok
        assert cluster.tokens_issued - before == 1

        with CacheClient(cluster.urls[0], session=password_session(cluster.identity_url, "demo")) as client:
            with pytest.raises(errors.Forbidden) as info:
                client.list()
        assert "cache_list" in info.value.explanation and info.value.request_id
        with CacheClient(cluster.urls[0], token="not-a-token") as client, pytest.raises(errors.Unauthorized):
            client.list()


def test_wait_until_cached_many_pairs(tmp_path: Path) -> None:
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path, cache_workers=0) as cluster:
        first, second = cluster.urls
        ready, never = cluster.upload_image(b"r" * 500), cluster.upload_image(b"n" * 500)
        CacheClient(first).queue(ready)  # no workers: only a download fills the cache here
        assert httpx.get(f"{first}/v2/images/{ready}/file").status_code == 200
        arrived: list[int] = []
        with Cluster(cluster.urls) as nodes:
            failed = nodes.wait_until_cached(
                [(first, ready), (second, never)], timeout=0.5, interval=0.05, on_cached=arrived.append
            )
            assert sum(arrived) == 1
            assert list(failed) == [(second, never)]
            assert isinstance(failed[(second, never)], errors.CacheWaitTimeout)
            with pytest.raises(errors.InvalidInput, match="not a node of this cluster"):
                nodes.wait_until_cached([("http://elsewhere:9292", ready)])
