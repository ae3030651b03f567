"""Use the reference server in another project's tests: a pytest fixture with real nodes on free ports.

Needs ``pip install 'glancecache-client[server]'`` in the test environment. Every test gets nodes that speak
Glance 33's cache API over real HTTP; nothing is mocked and nothing is left running afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from glancecache_client import Cluster
from glancecache_client.server.runner import ReferenceCluster, run_cluster


@pytest.fixture
def glance_nodes(tmp_path: Path) -> Iterator[ReferenceCluster]:
    """Two Glance nodes (noauth) sharing one image store and one centralized cache registry."""
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path) as nodes:
        yield nodes


def test_an_image_warmed_on_every_node(glance_nodes: ReferenceCluster) -> None:
    image_id = glance_nodes.upload_image(b"\x00" * 4096)  # an active image in the shared store

    with Cluster(glance_nodes.urls) as cluster:  # the code under test would do this part
        assert cluster.queue(image_id).ok
        assert cluster.wait_until_cached([(url, image_id) for url in glance_nodes.urls], timeout=30) == {}
        sizes = {result.node: [image.size for image in result.value.cached] for result in cluster.list()}

    assert sizes == {url: [4096] for url in glance_nodes.urls}
