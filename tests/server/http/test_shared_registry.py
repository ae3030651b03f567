"""Two server processes' worth of clusters sharing one PostgreSQL database and one data directory:
images, the centralized cache registry and identity tokens are cluster-wide."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from glancecache_client.server.runner import run_cluster

from ...keystone import password_session

pytestmark = pytest.mark.registry


@pytest.fixture
def postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"gc_http_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_two_clusters_share_images_registry_and_tokens(postgres_url: str, tmp_path: Path) -> None:
    common = {"auth": "keystone", "registry_url": postgres_url, "data_dir": tmp_path}
    with run_cluster(1, **common) as first, run_cluster(1, **common) as second, httpx.Client(timeout=30) as http:
        token = password_session(first.identity_url).get_token()
        headers = {"X-Auth-Token": token}  # issued by the first process's node, accepted by the second
        image_id = first.upload_image(b"shared" * 1000)
        assert http.get(f"{second.url}/v2/images/{image_id}", headers=headers).status_code == 200
        for url in (first.url, second.url):
            assert http.put(f"{url}/v2/cache/{image_id}", headers=headers).status_code == 202
        for cluster in (first, second):
            assert cluster.nodes[0].engine is not None and cluster.nodes[0].engine.wait_idle(10)
        nodes = http.get(f"{second.url}/v2/cache/nodes/{image_id}", headers=headers).json()
        assert sorted(nodes) == sorted([first.url, second.url])
        # Each node lists only its own entry.
        listed = http.get(f"{first.url}/v2/cache", headers=headers).json()["cached_images"]
        assert [entry["image_id"] for entry in listed] == [image_id]
        assert first.nodes[0].cache_dir != second.nodes[0].cache_dir
