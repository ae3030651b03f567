"""Fixtures for the CLI tests: a CliRunner with a clean environment, addresses where nothing listens, and
``https_nodes`` (tests/tls.py): reference nodes behind real TLS terminators."""

from __future__ import annotations

import os
import pty
import shutil
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from glancecache_client.cli import cli
from tests.tls import https_nodes  # noqa: F401  (a fixture, for test_e2e_tls.py)


def _script(name: str) -> str:
    """The running interpreter's console script (any virtualenv, not only <repo>/.venv)."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(beside):
        return beside
    found = shutil.which(name, path=sysconfig.get_path("scripts"))
    if found is None:
        raise RuntimeError(f"no {name} script beside {sys.executable}: pip install -e '.[test]' in this environment")
    return found


GLANCE = _script("glance")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without OS_* / GLANCECACHE_* settings, so the developer's cloud never leaks into a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCECACHE_"))}
    env["GLANCECACHE_CONFIG"] = os.path.join(os.sep, "nonexistent", "glancecache-nodes.toml")
    env.update(extra or {})
    return env


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OS_", "GLANCECACHE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GLANCECACHE_CONFIG", os.path.join(os.sep, "nonexistent", "glancecache-nodes.toml"))


@pytest.fixture
def invoke() -> Iterator[object]:
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, env=env, prog_name="glance")

    yield run


def dead_address() -> str:
    """host:port on loopback where nothing listens (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def one_line_error(result: Result) -> str:
    """The single stderr line of a failed run; fails the test on a traceback or several lines."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def run_on_a_terminal(argv: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, bytes, bytes]:
    """Run ``argv`` with stderr on a pseudo-terminal (as in an operator's shell) and stdout on a pipe: its exit
    status, its stdout and everything it drew on the terminal."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=terminal, env=env)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed when the process ended
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = process.communicate(timeout=timeout)
    finally:
        os.close(controller)
    return process.returncode, stdout, shown
