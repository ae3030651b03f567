"""Fixtures for the reference server's HTTP tests: real clusters on real sockets, httpx clients.

Clusters are module-scoped (start-up is ~0.2 s each) and every test that needs "an empty cache" asks
for a fixture that empties all caches of the cluster first, as the scenarios assume.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glancecache_client.server.runner import ReferenceCluster, run_cluster

ADMIN = {
    "X-Identity-Status": "Confirmed",
    "X-Roles": "admin",
    "X-Project-Id": "p-admin",
    "X-User-Id": "u-admin",
}
MEMBER = {
    "X-Identity-Status": "Confirmed",
    "X-Roles": "member,reader",
    "X-Project-Id": "p-member",
    "X-User-Id": "u-member",
}
# shared/ sits beside the checkout (as in CI); the recorded traffic of real Glance 33 is there.
CAPTURES = Path(__file__).resolve().parents[3].parent / "shared" / "spec" / "captures" / "glance33-traffic.md"


def empty_caches(cluster: ReferenceCluster) -> None:
    for node in cluster.nodes:
        if node.engine is not None:
            node.engine.wait_idle(10)
            node.engine.delete_all_queued()
            node.engine.delete_all_cached()


def listing(http: httpx.Client, url: str, headers: dict[str, str] = ADMIN) -> dict[str, Any]:
    response = http.get(f"{url}/v2/cache", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cached_ids(http: httpx.Client, url: str) -> list[str]:
    return [entry["image_id"] for entry in listing(http, url)["cached_images"]]


def wait_cached(http: httpx.Client, url: str, image_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll GET /v2/cache (as Glance's functional tests do, but in 0.05 s steps) until the image is cached."""
    deadline = time.monotonic() + timeout
    while True:
        body = listing(http, url)
        if image_id in [entry["image_id"] for entry in body["cached_images"]]:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"image {image_id} was not cached on {url} within {timeout}s: {body}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def trusted_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    """Two nodes (L and R), trusted-header auth, centralized_db registry."""
    with run_cluster(2, auth="trusted", data_dir=tmp_path_factory.mktemp("trusted")) as cluster:
        yield cluster


@pytest.fixture
def cluster(trusted_cluster: ReferenceCluster) -> ReferenceCluster:
    empty_caches(trusted_cluster)
    return trusted_cluster


@pytest.fixture(scope="module")
def sqlite_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(1, auth="trusted", cache_driver="sqlite", data_dir=tmp_path_factory.mktemp("sqlite")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def disabled_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(1, auth="trusted", cache_enabled=False, data_dir=tmp_path_factory.mktemp("off")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def noauth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(1, auth="noauth", data_dir=tmp_path_factory.mktemp("noauth")) as cluster:
        yield cluster


@pytest.fixture
def noauth(noauth_cluster: ReferenceCluster) -> ReferenceCluster:
    empty_caches(noauth_cluster)
    return noauth_cluster


def write_policy(path: Path, rules: dict[str, str]) -> Path:
    import json

    path.write_text(json.dumps(rules))
    return path
