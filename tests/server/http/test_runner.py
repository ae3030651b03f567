"""ReferenceCluster runner options (admin listener, legacy-only nodes, sqlite driver), configuration files and
the ``glancecache-server`` script run as a real subprocess."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from glancecache_client.server.config import ConfigError, build_settings, read_config_file
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import wait_cached

SCRIPT = Path(sys.executable).parent / "glancecache-server"


def test_admin_listener_serves_only_cache_routes(tmp_path: Path, http: httpx.Client) -> None:
    with run_cluster(2, auth="noauth", cache_admin_bind="127.0.0.1:0", data_dir=tmp_path) as cluster:
        assert len(cluster.admin_urls) == 2 and not set(cluster.admin_urls) & set(cluster.urls)
        admin = cluster.admin_urls[0]
        image_id = cluster.upload_image(b"admin" * 100)
        assert http.get(f"{admin}/cache").json() == {"cached_images": [], "queued_images": []}
        assert http.put(f"{admin}/cache/{image_id}").status_code == 202
        wait_cached(http, cluster.urls[0], image_id, timeout=10)  # same node, same engine
        assert http.get(f"{admin}/cache/nodes/{image_id}").json() == [cluster.urls[0]]
        assert http.post(f"{admin}/cache/clean").status_code == 200
        assert http.post(f"{admin}/cache/prune").json() == {"total_files_pruned": 0, "total_bytes_pruned": 0}
        assert http.get(f"{admin}/cache/clean").headers["allow"] == "POST"
        assert http.delete(f"{admin}/cache/{image_id}").status_code == 204
        assert http.delete(f"{admin}/cache").status_code == 204
        assert http.get(f"{admin}/versions").status_code == 200
        for path in ("/v2/cache", "/v2/images", f"/v2/images/{image_id}/file", "/"):
            assert http.get(admin + path).status_code == 404, path
        # The second node's admin listener belongs to the second node.
        assert http.get(f"{cluster.admin_urls[1]}/cache").json()["cached_images"] == []


def test_legacy_only_node(tmp_path: Path, http: httpx.Client) -> None:
    with run_cluster(1, auth="noauth", legacy_only=True, data_dir=tmp_path) as cluster:
        versions = [v["id"] for v in http.get(f"{cluster.url}/versions").json()["versions"]]
        assert not {"v2.14", "v2.15", "v2.16", "v2.17", "v2.18"} & set(versions)
        assert versions[0] == "v2.9"
        assert http.get(f"{cluster.url}/v2/cache").status_code == 404
        assert http.get(f"{cluster.url}/v2.14/cache").status_code == 300
        image_id = cluster.upload_image(b"old" * 10)
        assert http.put(f"{cluster.url}/v2/queued_images/{image_id}").status_code == 200
        assert http.get(f"{cluster.url}/v2/queued_images").json() == {"queued_images": [image_id]}
        # Transparent caching still works on a pre-Yoga node.
        assert http.get(f"{cluster.url}/v2/images/{image_id}/file").content == b"old" * 10
        cached = http.get(f"{cluster.url}/v2/cached_images").json()["cached_images"]
        assert [entry["image_id"] for entry in cached] == [image_id]


def test_disabled_cache_has_no_legacy_routes(disabled_cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.get(f"{disabled_cluster.url}/v2/cached_images", headers={"X-Identity-Status": "Confirmed"})
    assert response.status_code == 404 and "The resource could not be found." in response.text
    assert disabled_cluster.nodes[0].engine is None


def test_added_latency(tmp_path: Path, http: httpx.Client) -> None:
    with run_cluster(1, added_latency=0.2, data_dir=tmp_path) as cluster:
        started = time.monotonic()
        assert http.get(f"{cluster.url}/v2/cache").status_code == 200
        assert time.monotonic() - started >= 0.2


def _two_free_ports_in_a_row() -> int:
    """A port ``p`` such that ``p`` and ``p + 1`` can both be bound now. Searched below the kernel's ephemeral range
    (32768 and up on Linux): a port the kernel handed out (the old probe) sits among the outgoing connections of
    every other test, so its neighbour was often taken and the test skipped in every full run."""
    for candidate in random.Random().sample(range(20000, 32000, 2), 50):
        with contextlib.ExitStack() as held:
            try:
                for port in (candidate, candidate + 1):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return candidate
    pytest.fail("no two consecutive free ports between 20000 and 32000")


def test_ports_are_consecutive_when_given(tmp_path: Path, http: httpx.Client) -> None:
    free = _two_free_ports_in_a_row()
    with run_cluster(2, port=free, data_dir=tmp_path / "c") as cluster:
        assert cluster.urls == [f"http://127.0.0.1:{free}", f"http://127.0.0.1:{free + 1}"]
        assert all(http.get(f"{url}/versions").status_code == 200 for url in cluster.urls)


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    for options, fragment in (
        ({"auth": "kerberos"}, "unknown auth mode"),
        ({"cache_driver": "xattr"}, "xattr"),
        ({"max_size": -1}, "image_cache_max_size"),
        ({"cache_admin_bind": "nowhere"}, "HOST:PORT"),
        ({"policy_file": tmp_path / "missing.json"}, "does not exist"),
    ):
        with pytest.raises(ConfigError, match=fragment), run_cluster(1, data_dir=tmp_path, **options):
            pass


def test_config_file_and_command_line_precedence(tmp_path: Path) -> None:
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"image_cache_dir = {tmp_path / 'cache'}\n"
        "image_cache_driver = sqlite\n"
        "image_cache_max_size = 1048576\n"
        "image_cache_stall_time = 60\n"
        "worker_self_reference_url = http://glance.example:9292/\n"
        "bind_port = 9999\n"
        "[oslo_policy]\npolicy_file = policy.yaml\n"
    )
    found = read_config_file(conf)
    assert found["cache_dir"] == tmp_path / "cache"
    assert found["self_reference_url"] == "http://glance.example:9292"
    assert found["policy_file"] == tmp_path / "policy.yaml"  # relative to the config file
    (tmp_path / "policy.yaml").write_text("{}")
    settings = build_settings(conf, {"max_size": 5, "port": 0})
    assert (settings.cache_driver, settings.max_size, settings.stall_time, settings.port) == ("sqlite", 5, 60, 0)
    with run_cluster(settings=settings) as cluster:
        engine = cluster.nodes[0].engine
        assert engine is not None and engine.driver == "sqlite" and engine.max_size == 5
        assert cluster.nodes[0].cache_dir == tmp_path / "cache"
        assert engine.node_url == "http://glance.example:9292"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[DEFAULT]\nimage_cache_max_size = lots\n", "image_cache_max_size must be an integer"),
        ("[DEFAULT]\nimage_cache_driver = xattr\n", "xattr"),
        ("not an ini file\n", "not a valid INI file"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, fragment: str) -> None:
    conf = tmp_path / "glance-api.conf"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as caught:
        build_settings(conf, {})
    assert "\n" not in str(caught.value)


# -- the glancecache-server script -------------------------------------------------------------------


def test_script_starts_nodes_prints_urls_and_exits_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(SCRIPT), "--nodes", "2", "--port", "0", "--auth", "keystone", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = [process.stdout.readline().strip() for _ in range(2)]
        assert all(url.startswith("http://127.0.0.1:") for url in urls) and urls[0] != urls[1]
        with httpx.Client(timeout=10) as http:
            for url in urls:
                assert http.get(f"{url}/versions").status_code == 200
            assert http.get(f"{urls[1]}/v2/cache").status_code == 401
            assert http.get(f"{urls[0]}/identity/v3").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stderr is not None
        assert f"OS_AUTH_URL={urls[0]}/identity/v3" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (tmp_path / "glance.sqlite").exists()  # --data-dir is kept


def test_script_exits_0_on_sigint(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(SCRIPT), "--port", "0", "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert httpx.get(f"{url}/v2/cache", timeout=10).status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    "args",
    [
        ["--image-cache-max-size", "-5"],
        ["--config-file", "/nonexistent/glance-api.conf"],
        ["--cache-admin-bind", "nowhere"],
        ["--nodes", "0"],
    ],
)
def test_script_bad_configuration_is_one_line_and_exit_2(args: list[str]) -> None:
    result = subprocess.run([str(SCRIPT), "--port", "0", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("glancecache-server: error: ")
    assert "Traceback" not in result.stderr


def test_the_listeners_of_a_process_share_one_event_loop_thread(tmp_path: Path, http: httpx.Client) -> None:
    """One thread runs the sockets of every node and admin listener of a process; a listener stopping leaves
    the others serving; the thread ends with the last one."""

    def loop_threads() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == "http"]

    before = len(loop_threads())
    with run_cluster(3, auth="noauth", cache_admin_bind="127.0.0.1:0", data_dir=tmp_path) as cluster:
        assert len(loop_threads()) == before + 1
        image_id = cluster.upload_image(b"shared loop" * 1000)
        for url in cluster.urls:
            assert http.get(f"{url}/v2/images/{image_id}/file").content == b"shared loop" * 1000
        for url in cluster.admin_urls:
            assert http.get(f"{url}/cache").status_code == 200
        cluster._listeners[0].stop()  # the first node's listener
        with pytest.raises(httpx.ConnectError):
            http.get(f"{cluster.urls[0]}/versions")
        for url in cluster.urls[1:] + cluster.admin_urls:
            assert http.get(f"{url}/versions").status_code == 200
    deadline = time.monotonic() + 5
    while len(loop_threads()) > before:
        assert time.monotonic() < deadline, "the event loop thread outlived the cluster"
        time.sleep(0.02)
