"""A glance-api.conf given with ``--config-file`` is read as Glance 33 reads it: ``image_cache_driver`` in any
letter case, ``image_cache_sqlite_db`` honoured, no ``image_cache_dir`` = no cache, and centralized_db without
``worker_self_reference_url`` refused at start-up with Glance's own message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from glancecache_client.server.config import ConfigError, build_settings
from glancecache_client.server.runner import run_cluster

# glance/sqlite_migration.py (Glance 33), raised at start-up when the cache is enabled.
NEEDS_SELF_URL = (
    "'worker_self_reference_url' needs to be set if `centralized_db` is defined as cache driver "
    "for image_cache_driver config option."
)


def conf(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "glance-api.conf"
    path.write_text("[DEFAULT]\n" + "".join(f"{line}\n" for line in lines))
    return path


@pytest.mark.parametrize("spelling", ["SQLite", "SQLITE", " sqlite "])
def test_cache_driver_is_case_insensitive(tmp_path: Path, spelling: str) -> None:
    path = conf(tmp_path, f"image_cache_dir = {tmp_path / 'cache'}", f"image_cache_driver = {spelling}")
    assert build_settings(path, {}).cache_driver == "sqlite"


def test_centralized_db_in_capitals_needs_the_self_url_too(tmp_path: Path) -> None:
    path = conf(tmp_path, f"image_cache_dir = {tmp_path / 'cache'}", "image_cache_driver = Centralized_DB")
    with pytest.raises(ConfigError, match="worker_self_reference_url"):
        build_settings(path, {})


@pytest.mark.parametrize("name", ["my-cache.sqlite", "ABSOLUTE"])
def test_sqlite_db_name_is_honoured(tmp_path: Path, http: httpx.Client, name: str) -> None:
    cache_dir = tmp_path / "cache"
    db_name = str(tmp_path / "elsewhere.db") if name == "ABSOLUTE" else name
    path = conf(
        tmp_path, f"image_cache_dir = {cache_dir}", "image_cache_driver = sqlite", f"image_cache_sqlite_db = {db_name}"
    )
    settings = build_settings(path, {"port": 0, "data_dir": tmp_path / "data"})
    with run_cluster(settings=settings) as cluster:
        image_id = cluster.upload_image(b"q" * 100)
        assert http.put(f"{cluster.url}/v2/cache/{image_id}").status_code == 202
        engine = cluster.nodes[0].engine
        assert engine is not None
        engine.wait_idle(10)
        assert http.get(f"{cluster.url}/v2/cache").json()["cached_images"][0]["image_id"] == image_id
    expected = Path(db_name) if Path(db_name).is_absolute() else cache_dir / db_name
    assert expected.is_file()
    assert not (cache_dir / "cache.db").exists()


def test_config_file_without_cache_dir_disables_the_cache(tmp_path: Path, http: httpx.Client) -> None:
    path = conf(tmp_path, "image_cache_max_size = 1048576")
    settings = build_settings(path, {"port": 0, "data_dir": tmp_path / "data"})
    assert settings.cache_enabled is False
    with run_cluster(settings=settings) as cluster:
        assert cluster.nodes[0].engine is None
        response = http.get(f"{cluster.url}/v2/cache", headers={"Accept": "application/json"})
        assert response.status_code == 404
        assert response.json()["message"].startswith("Caching via API is not supported at this site.")


def test_centralized_db_without_self_url_is_refused(tmp_path: Path) -> None:
    for driver_line in ("image_cache_driver = centralized_db", "# the default driver is centralized_db"):
        path = conf(tmp_path, f"image_cache_dir = {tmp_path / 'cache'}", driver_line)
        with pytest.raises(ConfigError) as caught:
            build_settings(path, {})
        assert str(caught.value) == NEEDS_SELF_URL
    # As in Glance: not checked when the cache is off, and the URL makes it start.
    assert build_settings(conf(tmp_path, "image_cache_driver = centralized_db"), {}).cache_enabled is False
    path = conf(tmp_path, f"image_cache_dir = {tmp_path / 'cache'}", "worker_self_reference_url = http://n1:9292")
    assert build_settings(path, {}).self_reference_url == "http://n1:9292"


def test_script_refuses_centralized_db_without_self_url(tmp_path: Path) -> None:
    path = conf(tmp_path, f"image_cache_dir = {tmp_path / 'cache'}")
    done = subprocess.run(
        [sys.executable, "-m", "glancecache_client.server", "--config-file", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,  # a server that starts instead of refusing fails here
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"glancecache-server: error: {NEEDS_SELF_URL}\n"
