"""Malformed and unexpected request bodies, and a full image store, sent to real Glance 33 and to a reference
node side by side: status, Content-Type and body must be equal, except where Glance answers 500 (the cases
marked ``glance_500`` in tests/server/http/glance33_bodies.py), where the reference node answers 400.

    GLANCECACHE_INTEROP=1 .venv/bin/pytest tests/interop/test_bodies_vs_glance33.py -q
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from glancecache_client.server.runner import ReferenceCluster, run_cluster

from ..server.http.glance33_bodies import ACCEPT_CASES, CASES, TEXT_PLAIN, Case, plain_error
from ..server.http.test_wire import raw_request, split_response
from .conftest import PEER, RealGlance, interop_enabled, start_real_glance

UNKNOWN = "00000000-0000-4000-8000-000000000000"
SMALL_FS = 2 * 1024 * 1024

Answer = tuple[int, str, bytes]  # status, Content-Type, body


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(1, auth="noauth", cache_workers=0, data_dir=tmp_path_factory.mktemp("ours")) as cluster:
        yield cluster


def make_ids(url: str) -> dict[str, str]:
    """An active and a queued image on the node at ``url``, made through its image API."""
    with httpx.Client(base_url=url, timeout=30) as http:
        made = {}
        for name in ("active", "queued"):
            response = http.post("/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare"})
            made[name] = response.json()["id"]
        upload = http.put(
            f"/v2/images/{made['active']}/file", content=b"a" * 10, headers={"Content-Type": "application/octet-stream"}
        )
        assert upload.status_code == 204
    return {**made, "unknown": UNKNOWN}


@pytest.fixture(scope="module")
def both(real_glance: RealGlance, reference: ReferenceCluster) -> dict[str, tuple[str, dict[str, str]]]:
    return {"glance": (real_glance.url, make_ids(real_glance.url)), "ours": (reference.url, make_ids(reference.url))}


def answer(url: str, ids: dict[str, str], case: Case) -> Answer:
    headers = dict(case.headers)
    if not case.body:
        headers["Content-Length"] = "0"
    status_line, header_list, body = split_response(raw_request(url, case.method, case.path.format(**ids), headers,
                                                                case.body))  # fmt: skip
    content_type = {name.lower(): value for name, value in header_list}.get("content-type", "")
    if 200 <= int(status_line.split()[1]) < 300:
        body = b""  # success bodies (listings, prune counts) depend on each node's state, not on the request
    return int(status_line.split()[1]), content_type, body


@pytest.mark.parametrize("case", CASES + [case for case, _, _ in ACCEPT_CASES], ids=Case.label)
def test_same_answer_as_glance_33(both: dict[str, tuple[str, dict[str, str]]], case: Case) -> None:
    glance = answer(*both["glance"], case)
    ours = answer(*both["ours"], case)
    if case.glance_500:
        assert glance[0] == 500, glance
        assert case.message is not None and ours == (400, TEXT_PLAIN, plain_error(400, case.message))
    else:
        assert ours == glance


# -- a full image store ----------------------------------------------------------------------------------


def _mount_small(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def full_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Real Glance and a reference node, each with its image store on a 2 MiB tmpfs."""
    enabled, reason = interop_enabled()
    if not enabled:
        pytest.skip(reason)
    glance_root = tmp_path_factory.mktemp("glance-full")
    ours_root = tmp_path_factory.mktemp("ours-full")
    mounts = [glance_root / "images", ours_root / "images"]
    try:
        if not all(_mount_small(path) for path in mounts):
            pytest.skip("needs root to mount small tmpfs image stores")
        glance, env, args = start_real_glance(glance_root)
        try:
            with run_cluster(1, auth="noauth", data_dir=ours_root) as cluster:
                yield glance.url, cluster.url
        finally:
            subprocess.run(["bash", str(PEER / "stop.sh"), *args], env=env, capture_output=True, timeout=60)
    finally:
        for path in mounts:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.mark.parametrize("accept", ["application/json", "*/*", ""])
def test_full_store_same_413_as_glance_33(full_pair: tuple[str, str], accept: str) -> None:
    answers = []
    for url in full_pair:
        ids = make_ids(url)
        fresh = make_ids(url)["queued"]
        case = replace(CASES[0], method="PUT", path="/v2/images/{fresh}/file", body=b"b" * (3 * SMALL_FS // 2),
                       headers={"Content-Type": "application/octet-stream", "Accept": accept})  # fmt: skip
        answers.append(answer(url, {**ids, "fresh": fresh}, case))
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get(f"/v2/images/{fresh}").json()["status"] == "queued"
            assert http.get(f"/v2/images/{ids['active']}/file").content == b"a" * 10
    assert answers[0][0] == 413
    assert answers[1] == answers[0]
