"""The library behaves identically against real Glance 33 and against the reference server, which serves
Glance's own schema documents."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from glancecache_client.server.http.schema_api import SCHEMA_FILES, schema_document
from glancecache_client.server.runner import run_cluster

from ..roundtrip import run_scenario
from .conftest import RealGlance


def test_same_transcript_as_reference_server(real_glance: RealGlance, tmp_path: Path) -> None:
    glance_transcript = run_scenario(real_glance.url)
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path) as cluster:
        reference_transcript = run_scenario(cluster.urls[0])
    assert glance_transcript == reference_transcript


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_documents_are_glance33s(real_glance: RealGlance, name: str) -> None:
    response = httpx.get(f"{real_glance.url}/v2/schemas/{name}", timeout=30)
    assert response.status_code == 200
    assert response.content == schema_document(name)


def _tagged_scenario(endpoint: str) -> tuple[int, int, int]:
    """27 active images tagged here (more than Glance's default page of 25), one tagged but never uploaded, one
    active without the tag: (found with the server's page, found 4 a page, the tagged active images)."""
    from glancecache_client import CacheClient

    tag = f"golden-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=endpoint, timeout=30) as http:

        def create(name: str, tags: list[str], data: bytes | None) -> str:
            body = {"name": name, "container_format": "bare", "disk_format": "raw", "tags": tags}
            created = http.post("/v2/images", json=body)
            assert created.status_code == 201, created.text
            image_id = str(created.json()["id"])
            if data is not None:
                headers = {"Content-Type": "application/octet-stream"}
                assert http.put(f"/v2/images/{image_id}/file", content=data, headers=headers).status_code == 204
            return image_id

        wanted = {create(f"tagged-{index}", [tag, "other"], b"t") for index in range(27)}
        create("tagged-inactive", [tag], None)
        create("untagged", ["other"], b"u")
    with CacheClient(endpoint) as client:
        default_pages = client.images_tagged(tag)
        small_pages = client.images_tagged(tag, page_size=4)
    assert set(default_pages) == set(small_pages) == wanted
    return len(default_pages), len(small_pages), len(wanted)


def test_tag_lookup_pages_alike(real_glance: RealGlance, tmp_path: Path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path) as cluster:
        reference = _tagged_scenario(cluster.url)
    assert _tagged_scenario(real_glance.url) == reference == (27, 27, 27)


def test_tag_lookup_finds_hidden_images_on_real_glance(real_glance: RealGlance) -> None:
    """Glance 33 leaves os_hidden images out of GET /v2/images unless asked; a tag names them too."""
    from glancecache_client import CacheClient

    tag = f"hidden-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=real_glance.url, timeout=30) as http:
        ids = {}
        for name, hidden in (("shown", False), ("hidden", True)):
            body = {"name": name, "container_format": "bare", "disk_format": "raw", "tags": [tag], "os_hidden": hidden}
            created = http.post("/v2/images", json=body)
            assert created.status_code == 201, created.text
            ids[name] = str(created.json()["id"])
            headers = {"Content-Type": "application/octet-stream"}
            assert http.put(f"/v2/images/{ids[name]}/file", content=b"h", headers=headers).status_code == 204
        default_listing = http.get("/v2/images", params={"tag": tag}).json()["images"]
        assert [image["id"] for image in default_listing] == [ids["shown"]]  # Glance hides it by default
    with CacheClient(real_glance.url) as client:
        assert sorted(client.images_tagged(tag)) == sorted(ids.values())
