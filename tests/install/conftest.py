"""Throwaway virtualenvs holding this project as users install it: from its built wheel, not the source tree.

The sdist and wheel are built once per session with ``python -m build`` (the wheel from the sdist, as a
packager builds it). Each virtualenv is created without pip and filled by this environment's pip through
``pip --python``, which reuses pip's download cache, so a virtualenv costs seconds rather than a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The real Glance 33 peer's pinned versions: python-glanceclient 4.13 and its dependencies.
PEER_FREEZE = ROOT.parent / "shared" / "peers" / "real-glance" / "requirements-freeze.txt"


@dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path


@dataclass(frozen=True)
class Venv:
    path: Path
    home: Path  # HOME for the programs run here (python-glanceclient caches schemas under ~/.glanceclient)

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def pip(self, *args: str) -> None:
        command = [sys.executable, "-m", "pip", "--python", str(self.bin / "python"), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"

    def run(
        self,
        program: str,
        *args: str,
        env: dict[str, str] | None = None,
        input: bytes | None = None,
        python_options: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one of this virtualenv's programs in a clean environment; output as bytes, never checked."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCECACHE_", "PYTHON"))}
        base.update(HOME=str(self.home), GLANCECACHE_CONFIG=os.path.join(os.sep, "nonexistent", "nodes.toml"))
        base.update(env or {})
        argv = [str(self.bin / program), *args]
        if python_options:
            argv = [str(self.bin / "python"), *python_options, *argv]
        return subprocess.run(argv, capture_output=True, env=base, input=input, timeout=120, check=False)


def make_venv(path: Path, python: str = sys.executable) -> Venv:
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True)
    home = path.parent / "home"
    home.mkdir(exist_ok=True)
    return Venv(path, home)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Artifacts(sdist, wheel)


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The single stderr line of a failed run; fails on a traceback, on several lines or on output on stdout."""
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert result.stdout == b"", result.stdout
    return lines[0]
