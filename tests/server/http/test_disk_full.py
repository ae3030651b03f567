"""A full disk is a clean answer: an upload larger than the free space is Glance 33's 413 "Image storage media is
full", the image goes back to ``queued`` and keeps no partial file; a cache fill that runs out of space
fails without disturbing the download or anything already cached. Nothing stored before is lost.

The disk is a real 2 MiB tmpfs when the tests run as root (as here and in CI); elsewhere the store's writer
is swapped for one that fails with ENOSPC after the same number of bytes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glancecache_client.server.engine import store as store_module
from glancecache_client.server.engine.digesting import DigestingWriter as _REAL_WRITER
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import wait_cached

SMALL_FS = 2 * 1024 * 1024
FULL_MESSAGE = "Image storage media is full: There is not enough disk space on the image storage media."
# Recorded from real Glance 33 with its filesystem store on a 2 MiB tmpfs (Accept: application/json).
GLANCE_413_JSON = (
    '{"message": "Image storage media is full: There is not enough disk space on the image storage media.'
    '<br /><br />\\n\\n\\n", "code": "413 Request Entity Too Large", "title": "Request Entity Too Large"}'
)


@contextlib.contextmanager
def small_disk(path: Path, size: int = SMALL_FS) -> Iterator[bool]:
    """Mount a ``size``-byte tmpfs on ``path``; yields False (nothing mounted) where that is not possible."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
        mounted = done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


class _FillingWriter:
    """Stands in for a full disk: the DigestingWriter's writes fail with ENOSPC past ``room`` bytes."""

    room = SMALL_FS

    def __init__(self, out: Any, **kwargs: Any) -> None:
        self._inner = _REAL_WRITER(out, **kwargs)
        self._written = 0

    def write(self, chunk: bytes) -> None:
        self._written += len(chunk)
        if self._written > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._inner.write(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def store_on_small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReferenceCluster]:
    with small_disk(tmp_path / "data" / "images") as mounted:
        if not mounted:
            monkeypatch.setattr(store_module, "DigestingWriter", _FillingWriter)
        with run_cluster(1, auth="noauth", data_dir=tmp_path / "data", cache_workers=0) as cluster:
            yield cluster


def _new_image(http: httpx.Client, url: str) -> str:
    response = http.post(f"{url}/v2/images", json={"name": "big", "disk_format": "raw", "container_format": "bare"})
    assert response.status_code == 201
    return str(response.json()["id"])


def _upload(http: httpx.Client, url: str, image_id: str, data: Any, accept: str = "application/json") -> httpx.Response:
    headers = {"Content-Type": "application/octet-stream", "Accept": accept}
    return http.put(f"{url}/v2/images/{image_id}/file", content=data, headers=headers)


def test_upload_larger_than_free_space_is_413(store_on_small_disk: ReferenceCluster, http: httpx.Client) -> None:
    url = store_on_small_disk.url
    kept = b"k" * 300_000
    kept_id = _new_image(http, url)
    assert _upload(http, url, kept_id, kept).status_code == 204

    big_id = _new_image(http, url)
    response = _upload(http, url, big_id, b"b" * (3 * SMALL_FS // 2))
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.text == GLANCE_413_JSON
    assert FULL_MESSAGE in _upload(http, url, big_id, b"b" * (3 * SMALL_FS // 2), accept="").text

    # The image can be uploaded again once there is room, and nothing partial was left behind.
    assert http.get(f"{url}/v2/images/{big_id}").json()["status"] == "queued"
    images_dir = store_on_small_disk.store.images_dir
    assert sorted(p.name for p in images_dir.iterdir()) == [kept_id]
    assert _upload(http, url, big_id, b"s" * 1000).status_code == 204

    # What was stored before is intact.
    download = http.get(f"{url}/v2/images/{kept_id}/file")
    assert download.status_code == 200 and download.content == kept
    assert http.get(f"{url}/v2/images/{kept_id}").json()["checksum"] == hashlib.md5(kept).hexdigest()


def test_chunked_upload_past_free_space_is_413(store_on_small_disk: ReferenceCluster, http: httpx.Client) -> None:
    url = store_on_small_disk.url
    image_id = _new_image(http, url)

    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b"c" * 100_000

    response = _upload(http, url, image_id, chunks())
    assert response.status_code == 413 and response.text == GLANCE_413_JSON
    assert http.get(f"{url}/v2/images/{image_id}").json()["status"] == "queued"


@pytest.fixture
def cache_on_small_disk(tmp_path: Path) -> Iterator[ReferenceCluster]:
    with small_disk(tmp_path / "cache") as mounted:
        if not mounted:
            # (The writer's ENOSPC path is unit-tested in tests/server/engine/test_digesting.py.)
            pytest.skip("needs root to mount a small tmpfs for the cache directory")
        with run_cluster(1, auth="noauth", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache") as cluster:
            yield cluster


def test_cache_fill_out_of_space_fails_cleanly(cache_on_small_disk: ReferenceCluster, http: httpx.Client) -> None:
    cluster = cache_on_small_disk
    small = b"s" * 200_000
    small_id = cluster.upload_image(small)
    assert http.put(f"{cluster.url}/v2/cache/{small_id}").status_code == 202
    wait_cached(http, cluster.url, small_id)

    big = os.urandom(3 * SMALL_FS // 2)
    big_id = cluster.upload_image(big)
    # A download that would fill the cache still gets every byte.
    download = http.get(f"{cluster.url}/v2/images/{big_id}/file")
    assert download.status_code == 200 and download.content == big
    # A queued fill fails the same way; the image is never listed as cached.
    assert http.put(f"{cluster.url}/v2/cache/{big_id}").status_code == 202
    engine = cluster.nodes[0].engine
    assert engine is not None
    engine.wait_idle(10)
    listing = http.get(f"{cluster.url}/v2/cache").json()
    assert [entry["image_id"] for entry in listing["cached_images"]] == [small_id]
    # The image cached before is intact and served from the cache.
    hit = http.get(f"{cluster.url}/v2/images/{small_id}/file")
    assert hit.status_code == 200 and hit.content == small
    # Clean removes what the failed fills left in invalid/; then the disk has room again.
    assert http.post(f"{cluster.url}/v2/cache/clean").status_code == 200
    assert not any((cluster.nodes[0].cache_dir or Path()).glob("invalid/*"))
