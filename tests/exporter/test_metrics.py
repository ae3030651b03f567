"""The exporter scraped over real HTTP and parsed by prometheus-client's own parser, against a 3-node reference
cluster plus a dead node and a silent one: every value is checked against what the nodes really hold."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from glancecache_client import Cluster as Nodes
from glancecache_client.nodes import normalize_endpoint
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import SCRAPE_TIMEOUT, Exporter, Samples, running_exporter

DATA = b"export me " * 100


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def image_ids(samples: Samples, name: str, node: str) -> set[str]:
    return {dict(labels)["image_id"] for (sample, labels) in samples if sample == name and dict(labels)["node"] == node}


def cache_and_hit(cluster: ReferenceCluster, node_urls: list[str]) -> str:
    """A new image cached on the given nodes and downloaded once from each (one hit)."""
    image_id = cluster.upload_image(DATA)
    with Nodes(node_urls) as nodes:
        for url in node_urls:
            nodes.clients[url].queue(image_id)
        assert not nodes.wait_until_cached([(url, image_id) for url in node_urls], timeout=30, interval=0.05)
    for url in node_urls:
        httpx.get(f"{url}/v2/images/{image_id}/file", timeout=30).raise_for_status()
    return image_id


def test_every_value_matches_the_nodes_and_bad_nodes_are_down(cluster: ReferenceCluster, exporter: Exporter) -> None:
    live, dead, silent = exporter.nodes[:3], exporter.nodes[3], exporter.nodes[4]
    everywhere = cache_and_hit(cluster, live)
    first_only = cache_and_hit(cluster, live[:1])
    cluster.nodes[2].engine.hold_queue()  # type: ignore[union-attr]
    try:
        with Nodes([live[2]]) as third:
            queued = cluster.upload_image(DATA)
            third.queue(queued)

        samples, elapsed = exporter.scrape()
        # The silent node is cut off at the scrape timeout, and does not hold the others up beyond it.
        assert elapsed < SCRAPE_TIMEOUT + 2.0, elapsed

        with Nodes(live) as nodes:
            states = {result.node: result.value for result in nodes.list()}
    finally:
        cluster.nodes[2].engine.hold_queue(False)  # type: ignore[union-attr]

    assert states[live[0]] is not None and states[live[0]].is_cached(first_only)
    assert all(state is not None and state.is_cached(everywhere) for state in states.values())
    assert queued in states[live[2]].queued  # type: ignore[union-attr]
    for node, state in states.items():
        assert state is not None
        assert value(samples, "glance_cache_up", node=node) == 1
        assert value(samples, "glance_cache_images", node=node, state="cached") == len(state.cached)
        assert value(samples, "glance_cache_images", node=node, state="queued") == len(state.queued)
        assert value(samples, "glance_cache_size_bytes", node=node) == state.total_size
        assert value(samples, "glance_cache_hits", node=node) == sum(image.hits for image in state.cached)
        assert image_ids(samples, "glance_cache_image_size_bytes", node) == {i.image_id for i in state.cached}
        for image in state.cached:
            assert value(samples, "glance_cache_image_size_bytes", node=node, image_id=image.image_id) == image.size
            assert value(samples, "glance_cache_image_hits", node=node, image_id=image.image_id) == image.hits
        assert value(samples, "glance_cache_image_hits", node=node, image_id=everywhere) >= 1  # the download
        duration = value(samples, "glance_cache_scrape_duration_seconds", node=node)
        assert duration is not None and 0 < duration < SCRAPE_TIMEOUT

    for node in (dead, silent):
        assert value(samples, "glance_cache_up", node=node) == 0
        assert value(samples, "glance_cache_size_bytes", node=node) is None  # no made-up zeros
        assert value(samples, "glance_cache_images", node=node, state="cached") is None
    assert value(samples, "glance_cache_scrape_duration_seconds", node=silent) >= SCRAPE_TIMEOUT * 0.9
    assert value(samples, "glance_cache_scrape_duration_seconds", node=dead) < SCRAPE_TIMEOUT


def test_an_image_that_leaves_a_cache_leaves_the_metrics(cluster: ReferenceCluster, exporter: Exporter) -> None:
    node = exporter.nodes[1]
    image_id = cache_and_hit(cluster, [node])
    before, _ = exporter.scrape()
    assert image_id in image_ids(before, "glance_cache_image_size_bytes", node)

    with Nodes([node]) as nodes:
        nodes.delete(image_id).raise_first()
    after, _ = exporter.scrape()
    assert image_id not in image_ids(after, "glance_cache_image_size_bytes", node)
    assert image_id not in image_ids(after, "glance_cache_image_hits", node)
    assert value(after, "glance_cache_images", node=node, state="cached") == (
        value(before, "glance_cache_images", node=node, state="cached") - 1  # type: ignore[operator]
    )


def test_concurrent_scrapes_each_get_every_node(exporter: Exporter) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: exporter.scrape(), range(4)))
    for samples, elapsed in results:
        assert elapsed < SCRAPE_TIMEOUT + 2.0, elapsed
        ups = {node: value(samples, "glance_cache_up", node=node) for node in exporter.nodes}
        assert ups == dict(zip(exporter.nodes, [1, 1, 1, 0, 0], strict=True))


def test_only_metrics_and_the_landing_page_are_served(exporter: Exporter) -> None:
    assert "/metrics" in httpx.get(exporter.url + "/", timeout=10).text
    assert httpx.get(exporter.url + "/nothing", timeout=10).status_code == 404


def test_a_node_going_down_and_up_is_logged_once_each(tmp_path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path) as single:
        node = normalize_endpoint(single.urls[0])
        port = int(node.rsplit(":", 1)[1])
        with running_exporter("-H", node, "--os-auth-type", "none", "--scrape-timeout", "1") as exporter:
            samples, _ = exporter.scrape()
            assert value(samples, "glance_cache_up", node=node) == 1
            single.close()
            for _ in range(3):
                samples, _ = exporter.scrape()
                assert value(samples, "glance_cache_up", node=node) == 0
            with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path / "again", port=port) as again:
                assert normalize_endpoint(again.urls[0]) == node
                samples, _ = exporter.scrape()
                assert value(samples, "glance_cache_up", node=node) == 1
    lines = exporter.stderr.splitlines()
    assert sum(f"{node} is down: " in line for line in lines) == 1, exporter.stderr
    assert sum(f"{node} is up again" in line for line in lines) == 1, exporter.stderr
