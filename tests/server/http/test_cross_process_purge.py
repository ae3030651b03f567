"""Deleting an image purges it from every node of the cluster, also from nodes in other processes.

Two ``glancecache-server`` processes (A and B) share one data directory and one database (SQLite in the
data directory, PostgreSQL or MariaDB): after ``DELETE /v2/images/ID`` on A, B must not list the image,
must answer 404 for its file, and must remove its cache file (and a queue entry for it) promptly, also
when B was in the middle of filling its cache with the image when A deleted it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .server_process import ServerProcess, private_database, running, upload

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.registry),
            pytest.param("mariadb", marks=pytest.mark.registry)]  # fmt: skip
PROMPTLY = 5.0  # seconds B may take to notice a deletion made by another process


@pytest.fixture(params=BACKENDS)
def registry_args(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    if request.param == "sqlite":
        yield []  # <data-dir>/glance.sqlite, shared through the data directory
        return
    with private_database(request.param) as url:
        yield ["--registry-url", url]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _cache_dir(server: ServerProcess, data_dir: Path) -> Path:
    return data_dir / "nodes" / server.url.split("://", 1)[1].replace(":", "-") / "cache"


def _listing(http: httpx.Client, url: str) -> tuple[list[str], list[str]]:
    body = http.get(f"{url}/v2/cache").json()
    return [entry["image_id"] for entry in body["cached_images"]], body["queued_images"]


def _eventually(condition: Callable[[], bool], timeout: float = PROMPTLY) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_cached(http: httpx.Client, url: str, image_id: str) -> None:
    assert _eventually(lambda: image_id in _listing(http, url)[0], timeout=30), f"{image_id} not cached on {url}"


def test_delete_on_one_process_purges_the_other(tmp_path: Path, registry_args: list[str], http: httpx.Client) -> None:
    data_dir = tmp_path / "data"
    common = ["--data-dir", str(data_dir), "--auth", "noauth", *registry_args]
    with (
        running(tmp_path / "a.log", *common) as a,
        running(tmp_path / "b.log", *common, "--cache-workers", "0") as b,
    ):
        cached = upload(http, a.url, b"cached" * 10_000)
        queued = upload(http, a.url, b"queued" * 10_000)
        assert http.put(f"{a.url}/v2/cache/{cached}").status_code == 202
        assert http.get(f"{b.url}/v2/images/{cached}/file").content == b"cached" * 10_000  # fills B's cache
        assert http.put(f"{b.url}/v2/cache/{queued}").status_code == 202  # B has no workers: stays queued
        _wait_cached(http, a.url, cached)
        _wait_cached(http, b.url, cached)
        b_cache = _cache_dir(b, data_dir)
        assert (b_cache / cached).is_file() and (b_cache / "queue" / queued).is_file()
        assert sorted(http.get(f"{a.url}/v2/cache/nodes/{cached}").json()) == sorted([a.url, b.url])

        for image_id in (cached, queued):
            assert http.delete(f"{a.url}/v2/images/{image_id}").status_code == 204

        # At once: B neither lists nor serves the deleted images.
        assert _listing(http, b.url) == ([], [])
        assert http.get(f"{b.url}/v2/images/{cached}/file").status_code == 404
        # Promptly, without any request to B: its files are gone too.
        assert _eventually(lambda: not (b_cache / cached).exists()), os.listdir(b_cache)
        assert _eventually(lambda: not (b_cache / "queue" / queued).exists())
        assert not (_cache_dir(a, data_dir) / cached).exists()
        assert _listing(http, a.url) == ([], [])


def test_fill_in_progress_when_another_process_deletes(tmp_path: Path, registry_args: list[str],
                                                      http: httpx.Client) -> None:  # fmt: skip
    data_dir = tmp_path / "data"
    common = ["--data-dir", str(data_dir), "--auth", "noauth", *registry_args]
    payload = os.urandom(48 * 1024 * 1024)  # far more than the server and socket buffers hold
    with running(tmp_path / "a.log", *common) as a, running(tmp_path / "b.log", *common) as b:
        image_id = upload(http, a.url, payload)
        b_cache = _cache_dir(b, data_dir)
        received = bytearray()
        with http.stream("GET", f"{b.url}/v2/images/{image_id}/file") as response:
            assert response.status_code == 200
            chunks = response.iter_raw()
            received += next(chunks)
            # B is now filling its cache and waits for this slow client.
            assert _eventually((b_cache / "incomplete" / image_id).exists)
            assert http.delete(f"{a.url}/v2/images/{image_id}").status_code == 204
            for chunk in chunks:
                received += chunk
        assert bytes(received) == payload  # a download that began before the delete completes

        def nothing_left() -> bool:
            leftovers = [p for sub in ("", "incomplete", "invalid") for p in (b_cache / sub).glob(f"*{image_id}*")]
            return not leftovers and _listing(http, b.url) == ([], [])

        assert _eventually(nothing_left), {sub: os.listdir(b_cache / sub) for sub in ("", "incomplete", "invalid")}
        assert http.get(f"{b.url}/v2/images/{image_id}/file").status_code == 404


def test_reused_image_id_is_never_served_from_an_old_copy(tmp_path: Path, registry_args: list[str],
                                                         http: httpx.Client) -> None:  # fmt: skip
    data_dir = tmp_path / "data"
    common = ["--data-dir", str(data_dir), "--auth", "noauth", *registry_args]
    with running(tmp_path / "a.log", *common) as a, running(tmp_path / "b.log", *common) as b:
        image_id = upload(http, a.url, b"old bytes")
        assert http.get(f"{b.url}/v2/images/{image_id}/file").content == b"old bytes"
        _wait_cached(http, b.url, image_id)
        assert http.delete(f"{a.url}/v2/images/{image_id}").status_code == 204
        # This server (unlike Glance, which keeps deleted rows) lets a client create the same id again.
        created = http.post(f"{a.url}/v2/images", json={"id": image_id, "container_format": "bare"})
        assert created.status_code == 201
        assert http.put(
            f"{a.url}/v2/images/{image_id}/file", content=b"new bytes",
            headers={"Content-Type": "application/octet-stream"},
        ).status_code == 204  # fmt: skip
        assert http.get(f"{b.url}/v2/images/{image_id}/file").content == b"new bytes"
