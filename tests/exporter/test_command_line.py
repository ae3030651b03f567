"""The exporter's command line: glance's node options, one-line errors with exit 2 (usage) or 1, no traceback."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.cli.conftest import clean_env

from .conftest import EXPORTER, free_port


def exporter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXPORTER, *args], capture_output=True, text=True, env=clean_env(env), timeout=60, check=False
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "no node given: use --host HOST"),
        (("-H", "127.0.0.1", "--listen", "9480"), "give HOST:PORT"),
        (("-H", "127.0.0.1", "--listen", "::1:9480"), "in brackets"),
        (("-H", "127.0.0.1", "--listen", "127.0.0.1:99999"), "give HOST:PORT"),
        (("-H", "127.0.0.1", "--scrape-timeout", "0"), "--scrape-timeout"),
        (("-H", "127.0.0.1", "--scrape-timeout", "nan"), "--scrape-timeout"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], expected: str) -> None:
    result = exporter(*args)
    assert result.returncode == 2, result.stderr
    assert expected in one_line(result)


def test_a_taken_port_is_one_line_and_exit_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = exporter("-H", "127.0.0.1", "--os-auth-type", "none", "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    line = one_line(result)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--listen" in line


def test_nodes_from_glancecache_hosts_with_all_nodes() -> None:
    """--all-nodes reads GLANCECACHE_HOSTS as glance does (the exporter says how many nodes it serves), and
    SIGTERM stops it with status 0."""
    port = free_port()
    process = subprocess.Popen(
        [EXPORTER, "--all-nodes", "--os-auth-type", "none", "--listen", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env({"GLANCECACHE_HOSTS": "127.0.0.1:1,127.0.0.2:1"}),
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert line.strip() == f"glancecache-exporter: serving http://127.0.0.1:{port}/metrics for 2 node(s)"
    assert process.returncode == 0
