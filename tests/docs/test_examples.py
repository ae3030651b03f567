"""The library examples of the manual (docs/examples/) run as printed, against reference nodes.

Each script is run as a user would run it (a subprocess, node URLs on the command line, identity in OS_*), and
its output and exit status are checked, on success and on the failure it says it handles.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from glancecache_client.server.runner import ReferenceCluster, run_cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
MISSING = "11111111-2222-4333-8444-555555555555"


def example(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=120, env={**clean, **(env or {})}, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path_factory.mktemp("examples")) as cluster:
        yield cluster


def test_warm_cache_then_report(nodes: ReferenceCluster) -> None:
    image_id = nodes.upload_image(b"w" * 3000)
    warmed = example("warm_cache.py", image_id, *nodes.urls)
    assert warmed.returncode == 0, warmed
    assert warmed.stdout.splitlines() == [f"{url}: cached" for url in nodes.urls]

    report = example("cache_report.py", *nodes.urls)
    assert report.returncode == 0, report
    for url in nodes.urls:
        assert f"{url}: " in report.stdout and "FAILED" not in report.stdout


def test_warm_cache_names_what_failed(nodes: ReferenceCluster) -> None:
    done = example("warm_cache.py", MISSING, *nodes.urls)
    assert done.returncode == 1
    assert [line.split(": ")[1] for line in done.stdout.splitlines()] == ["NOT cached", "NOT cached"], done.stdout


def test_report_shows_healthy_nodes_beside_a_dead_one(nodes: ReferenceCluster) -> None:
    dead = dead_url()
    done = example("cache_report.py", nodes.urls[0], dead)
    assert done.returncode == 1
    healthy, failed = done.stdout.splitlines()
    assert healthy.startswith(f"{nodes.urls[0]}: ") and "cached" in healthy
    assert failed.startswith(f"{dead}: FAILED: ")


@pytest.fixture(scope="module")
def keystone_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=2, auth="keystone", data_dir=tmp_path_factory.mktemp("examples-ks")) as cluster:
        yield cluster


def login(cluster: ReferenceCluster, user: str) -> dict[str, str]:
    assert cluster.identity_url is not None
    return {"OS_AUTH_URL": cluster.identity_url, "OS_USERNAME": user, "OS_PASSWORD": user, "OS_PROJECT_NAME": user}


def test_keystone_prune_as_admin_and_as_member(keystone_nodes: ReferenceCluster) -> None:
    tokens = keystone_nodes.tokens_issued
    done = example("keystone_prune.py", *keystone_nodes.urls, env=login(keystone_nodes, "admin"))
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == [f"{url}: pruned 0 files, 0 bytes" for url in keystone_nodes.urls]
    assert keystone_nodes.tokens_issued - tokens == 1  # one token for every node

    refused = example("keystone_prune.py", *keystone_nodes.urls, env=login(keystone_nodes, "demo"))
    assert refused.returncode == 3
    assert refused.stdout.splitlines() == [
        f"{url}: refused (403): this user may not manage the cache" for url in keystone_nodes.urls
    ]


@pytest.mark.slow
def test_pytest_fixture_example_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLES / "test_with_reference_nodes.py"), "-q", "-p",
         "no:cacheprovider", f"--basetemp={tmp_path}"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
