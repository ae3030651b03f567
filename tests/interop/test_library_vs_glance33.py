"""The library behaves identically against real Glance 33 and against the reference server, which serves
Glance's own schema documents."""

from __future__ import annotations

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
