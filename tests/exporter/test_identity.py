"""The exporter takes glance's identity from OS_* variables: one Keystone token serves every node and every
scrape; a wrong password stops it at start with glance's one-line error and exit status 3."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from glancecache_client.nodes import normalize_endpoint
from glancecache_client.server.runner import ReferenceCluster, run_cluster
from tests.cli.conftest import clean_env

from .conftest import EXPORTER, running_exporter


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=2, auth="keystone", data_dir=tmp_path_factory.mktemp("keystone")) as running:
        yield running


def os_env(cluster: ReferenceCluster, password: str = "admin") -> dict[str, str]:
    assert cluster.identity_url is not None
    return {
        "OS_AUTH_URL": cluster.identity_url,
        "OS_USERNAME": "admin",
        "OS_PASSWORD": password,
        "OS_PROJECT_NAME": "admin",
    }


def test_one_token_from_os_variables_serves_every_scrape(keystone: ReferenceCluster) -> None:
    before = keystone.tokens_issued
    args = [arg for url in keystone.urls for arg in ("-H", url)]
    with running_exporter(*args, env=os_env(keystone)) as exporter:
        for _ in range(3):
            samples, _ = exporter.scrape()
            for url in keystone.urls:
                assert samples[("glance_cache_up", (("node", normalize_endpoint(url)),))] == 1
    assert keystone.tokens_issued == before + 1


def test_a_wrong_password_stops_it_at_start_with_exit_3(keystone: ReferenceCluster) -> None:
    result = subprocess.run(
        [EXPORTER, "-H", keystone.url], capture_output=True, text=True, env=clean_env(os_env(keystone, "wrong")),
        timeout=60, check=False,
    )
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: authentication at "), result.stderr
