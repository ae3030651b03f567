"""The built wheel on Python 3.10, the oldest version ``requires-python`` admits.

mypy checks the code against 3.10 as well (the test command's second run); this runs it there. A 3.10
virtualenv gets the wheel with ``[cli,server]``: the server serves the schema documents python-glanceclient
needs, and ``glance --all-nodes`` reads a TOML node set through tomli, which ``[cli]`` brings on 3.10 only.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Artifacts, Venv, make_venv

pytestmark = pytest.mark.slow


def python310() -> str | None:
    """A real Python 3.10: pyenv's build where there is one, else python3.10 on PATH."""
    found = sorted(Path.home().glob(".pyenv/versions/3.10.*/bin/python3.10"))
    return str(found[-1]) if found else shutil.which("python3.10")


@pytest.fixture(scope="module")
def venv310(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    interpreter = python310()
    if interpreter is None:
        pytest.skip("no Python 3.10 interpreter on this machine (python3.10 or ~/.pyenv/versions/3.10.*)")
    venv = make_venv(tmp_path_factory.mktemp("py310") / "venv", interpreter)
    venv.pip("install", f"{artifacts.wheel}[cli,server]")
    return venv


@pytest.fixture
def server310(venv310: Venv, tmp_path: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [str(venv310.bin / "glancecache-server"), "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), process.stderr.read() if process.stderr else ""
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_venv_runs_python_3_10_with_tomli(venv310: Venv):
    probe = "import sys, tomli; print(sys.version_info[:2])"
    result = venv310.run("python", "-c", probe)
    assert result.returncode == 0 and result.stdout == b"(3, 10)\n", result.stderr


def test_server_and_cli_work_on_3_10(venv310: Venv, server310: str, tmp_path: Path):
    schema = httpx.get(f"{server310}/v2/schemas/image", timeout=10)
    assert schema.status_code == 200 and schema.json()["name"] == "image"
    nodes = tmp_path / "nodes.toml"
    nodes.write_text(f'[nodesets.local]\nhosts = ["{server310}"]\n')
    result = venv310.run(
        "glance", "--os-auth-type", "none", "--all-nodes", "cache-list", "-f", "json",
        env={"GLANCECACHE_CONFIG": str(nodes)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
