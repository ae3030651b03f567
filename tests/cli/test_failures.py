"""The installed ``glance`` against broken, slow and odd nodes: every failure is one line and the README's exit
status, a broken node never hides a healthy one, a timeout bounds the whole run, Ctrl-C exits 130."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from glancecache_client import CacheClient
from glancecache_client.cli import exitcodes
from glancecache_client.server.runner import ReferenceCluster, run_cluster
from tests.library.rawnode import glance_versions_then, http, raw_node

from .conftest import GLANCE, clean_env, dead_address, one_line_error
from .test_e2e_cluster import assert_no_traceback, glance

EMPTY = http(200, b'{"cached_images": [], "queued_images": []}')
IMAGE = "3c021162-1e38-461a-a362-e154bf54e241"


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReferenceCluster, str]]:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path_factory.mktemp("good")) as running:
        image = running.upload_image(b"healthy " * 64, name="healthy")
        queued = glance("-H", running.url, "cache-queue", "--wait", "--timeout", "30", "--interval", "0.1", image)
        assert queued.returncode == 0, queued.stderr
        yield running, image


BROKEN = {
    "gzip-over-plain": http(200, b"this is not gzip", content_encoding="gzip"),
    "epoch-1e20": http(
        200, json.dumps({"cached_images": [{"image_id": IMAGE, "last_accessed": 1e20}], "queued_images": []}).encode()
    ),
    "html-200": http(200, b"<html><body>Welcome</body></html>", content_type="text/html"),
    "truncated": http(200, b'{"cached_images": [], "queued_images": []}', Content_Length="500"),
    "garbage": b"\x00\xffnot http at all\r\n\r\n",
    "negative-size": http(
        200, json.dumps({"cached_images": [{"image_id": IMAGE, "size": -1}], "queued_images": []}).encode()
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_node_never_hides_the_healthy_one(good: tuple[ReferenceCluster, str], kind: str) -> None:
    running, image = good
    with raw_node(glance_versions_then(lambda method, path: BROKEN[kind])) as bad:
        result = glance("-H", running.url, "-H", bad.url, "cache-list", "-f", "json")
    assert result.returncode == exitcodes.PARTIAL, result.stderr
    rows = json.loads(result.stdout)
    assert {(row["node"], row["image_id"]) for row in rows} == {(running.url, image)}
    lines = error_lines(result.stderr)
    failures = [line for line in lines if bad.url in line]
    assert len(failures) == 1 and failures[0].startswith(f"Error: {bad.url}: "), lines
    assert lines == [*failures, "Error: 1 of 2 operations failed"]


def test_a_node_that_drips_is_cut_off_at_the_timeout() -> None:
    # One byte a second: before, `glance --timeout 3` ran for two minutes here.
    with raw_node(glance_versions_then(lambda method, path: EMPTY), drip=1.0) as slow:
        started = time.monotonic()
        result = glance("--timeout", "3", "-H", slow.url, "cache-list")
        elapsed = time.monotonic() - started
    assert result.returncode == exitcodes.UNAVAILABLE
    assert "no complete answer within the 3 s timeout" in one_line_error_of(result.stderr)
    assert elapsed < 8, f"took {elapsed:.1f} s"


def test_cache_queue_wait_timeout_bounds_the_whole_wait() -> None:
    # Queueing answers at once; every listing drips: a 2 s wait must not last a listing's 30 s timeout.
    def answer(method: str, path: str) -> bytes:
        return http(202, b"") if method == "PUT" else EMPTY

    with raw_node(glance_versions_then(answer), drip=0.5, drip_when=lambda m, p: p == "/v2/cache") as slow:
        started = time.monotonic()
        result = glance("-H", slow.url, "cache-queue", "--wait", "--timeout", "2", "--interval", "0.2", IMAGE)
        elapsed = time.monotonic() - started
    assert result.returncode == exitcodes.ERROR, result.stderr
    assert "was not cached within 2 s" in one_line_error_of(result.stderr)
    assert elapsed < 7, f"took {elapsed:.1f} s"


def one_line_error_of(stderr: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "-inf", "soon"])
def test_nonsense_timeouts_are_usage_errors(invoke, value: str) -> None:
    result = invoke("--timeout", value, "-H", dead_address(), "cache-list")
    assert result.exit_code == exitcodes.USAGE and "--timeout" in one_line_error(result)
    queued = invoke("-H", dead_address(), "cache-queue", "--wait", "--timeout", value, IMAGE)
    assert queued.exit_code == exitcodes.USAGE and "--timeout" in one_line_error(queued)


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: yes", "abc\n", "two words"])
def test_a_token_with_a_line_break_is_a_usage_error(invoke, token: str) -> None:
    result = invoke("--os-token", token, "-H", dead_address(), "cache-list")
    assert result.exit_code == exitcodes.USAGE and "token" in one_line_error(result)


@pytest.mark.parametrize("address", ["http://[fe80::1", "http://[bad", "https://[::1/image"])
def test_a_malformed_node_address_is_a_usage_error(invoke, address: str) -> None:
    result = invoke("-H", address, "cache-list")
    assert result.exit_code == exitcodes.USAGE and "invalid node address" in one_line_error(result)


@pytest.mark.parametrize("command", ["cache-queue", "cache-delete", "cache-nodes-list"])
def test_a_malformed_image_id_is_refused_before_keystone_is_asked(invoke, command: str) -> None:
    # Keystone's address is dead: a login attempt would be exit 5, so exit 2 proves nothing was asked.
    identity = ["--os-auth-url", f"http://{dead_address()}/v3", "--os-username", "u", "--os-password", "p"]
    result = invoke(*identity, "--os-project-name", "p", "-H", dead_address(), command, "not-an-id")
    assert result.exit_code == exitcodes.USAGE and "invalid image id 'not-an-id'" in one_line_error(result)


def test_a_plain_web_server_is_not_a_glance_node(tmp_path) -> None:
    (tmp_path / "index.html").write_text("<html><body>hello</body></html>")
    port = dead_address().rsplit(":", 1)[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", port],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        result = None
        for _ in range(100):  # until it listens
            result = glance("-H", f"127.0.0.1:{port}", "cache-list")
            if "connection refused" not in result.stderr:
                break
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(10)
    assert result is not None and result.returncode == exitcodes.UNAVAILABLE, result
    assert "not a Glance image node" in one_line_error_of(result.stderr)


def test_a_node_answering_an_empty_object_to_everything_fails() -> None:
    with raw_node(lambda method, path: http(200, b"{}")) as odd:
        result = glance("-H", odd.url, "cache-list")
    assert result.returncode != exitcodes.OK
    assert odd.url in one_line_error_of(result.stderr)
    with raw_node(glance_versions_then(lambda method, path: http(200, b"{}"))) as odd:
        listed = glance("-H", odd.url, "cache-list")
    assert listed.returncode == exitcodes.ERROR
    assert "cached_images and queued_images" in one_line_error_of(listed.stderr)


def test_wait_on_a_pre_yoga_node_is_refused_at_once(tmp_path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, legacy_only=True) as legacy:
        image = legacy.upload_image(b"legacy " * 32, name="legacy")
        started = time.monotonic()
        result = glance("-H", legacy.url, "cache-queue", "--wait", image)
        elapsed = time.monotonic() - started
        listed = glance("-H", legacy.url, "cache-list", "-f", "json")
    assert result.returncode == exitcodes.UNAVAILABLE
    assert "only glance-cache-prefetcher run from cron caches queued images" in one_line_error_of(result.stderr)
    assert elapsed < 10
    assert json.loads(listed.stdout) == []  # refused before queueing anything


def test_ctrl_c_during_a_wait_exits_130_with_one_line(tmp_path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, cache_workers=0) as held:
        image = held.upload_image(b"never cached " * 16, name="held")
        process = subprocess.Popen(
            [GLANCE, "-H", held.url, "cache-queue", "--wait", "--interval", "0.1", image],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with CacheClient(held.url) as client:  # until glance has queued it and is waiting
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and image not in client.list().queued:
                    time.sleep(0.1)
            time.sleep(0.3)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == exitcodes.INTERRUPTED == 130, stderr
    assert stdout == ""
    assert one_line_error_of(stderr) == "Error: interrupted: requests already sent to nodes may have taken effect"


def test_insecure_says_once_that_verification_is_off(https_nodes) -> None:
    result = glance("--insecure", "-H", https_nodes.urls[0], "cache-list", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == [
        "Warning: TLS verification is off (--insecure/OS_INSECURE): certificates of the nodes and Keystone are "
        "not checked"
    ]
    from_env = glance("-H", https_nodes.urls[0], "cache-list", "-f", "json", env={"OS_INSECURE": "true"})
    assert from_env.returncode == 0 and from_env.stderr == result.stderr
    verified = glance("-H", https_nodes.urls[0], "cache-list", env={"OS_INSECURE": "false"})
    assert verified.returncode == exitcodes.UNAVAILABLE and "certificate verify failed" in verified.stderr
    assert_no_traceback(verified)


def test_help_says_what_the_timeouts_bound(invoke) -> None:
    top = " ".join(invoke("--help").output.split())
    assert "may take as a whole: connecting, sending and reading the complete answer" in top
    assert "OS_INSECURE" in top and "OS_CERT" in top and "OS_KEY" in top and "130" in top
    queue = " ".join(invoke("cache-queue", "--help").output.split())
    assert "Without --wait: each request's overall timeout" in queue
