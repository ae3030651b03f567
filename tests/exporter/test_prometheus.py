"""A real Prometheus server (Debian's ``prometheus`` package) scrapes the exporter and answers queries about it.

The test starts its own Prometheus on a free loopback port with a temporary config and storage, scraping every
two seconds, and stops it at the end. Where /usr/bin/prometheus is missing it skips, saying how to install it
(.ci/run installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glancecache_client.server.runner import ReferenceCluster

from .conftest import Exporter, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(),
    reason="no Prometheus server here: apt-get install prometheus (Debian's package) to run this test",
)


@pytest.fixture
def prometheus(tmp_path: Path, exporter: Exporter) -> Iterator[str]:
    target = exporter.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        # Prometheus' timeout must exceed the exporter's --scrape-timeout (1 s here, cutting off the silent
        # node), and may not exceed the interval.
        "  scrape_interval: 2s\n"
        "  scrape_timeout: 2s\n"
        "scrape_configs:\n"
        "  - job_name: glance_cache\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    try:
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5)
    except httpx.TransportError:
        return []  # not listening yet
    if response.status_code != 200:
        return []
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_every_node(prometheus: str, exporter: Exporter, cluster: ReferenceCluster) -> None:
    live, down = exporter.nodes[:3], exporter.nodes[3:]
    deadline = time.monotonic() + 60
    results: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        results = query(prometheus, "glance_cache_up")
        if len(results) == len(exporter.nodes):
            break
        time.sleep(0.5)
    ups = {result["metric"]["node"]: float(result["value"][1]) for result in results}
    assert ups == {**dict.fromkeys(live, 1.0), **dict.fromkeys(down, 0.0)}, results
    assert {result["metric"]["job"] for result in results} == {"glance_cache"}

    # Prometheus saw the scrape as a success (its own `up`), though two nodes are down.
    target_up = query(prometheus, 'up{job="glance_cache"}')
    assert [float(result["value"][1]) for result in target_up] == [1.0]

    images = query(prometheus, 'glance_cache_images{state="cached"}')
    assert {result["metric"]["node"] for result in images} == set(live)
    from glancecache_client import Cluster as Nodes

    with Nodes(live) as nodes:
        cached = {result.node: len(result.value.cached) for result in nodes.list() if result.value is not None}
    # (Images cached by other tests of this module stay cached, so the counts are compared, not assumed.)
    assert {result["metric"]["node"]: float(result["value"][1]) for result in images} == {
        node: float(count) for node, count in cached.items()
    }
