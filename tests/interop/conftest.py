"""The opt-in interop tier: real Glance 33 from shared/peers/real-glance (GLANCECACHE_INTEROP=1 to run).

The peer needs its own virtualenv (built on first start, about a minute), so these tests are opt-in; each
module starts a fresh Glance on a free loopback port with its own data directory and stops it afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PEER = Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "real-glance"
VENV = Path(os.environ.get("RG_VENV", "/tmp/real-glance/venv"))


def interop_enabled() -> tuple[bool, str]:
    if os.environ.get("GLANCECACHE_INTEROP") != "1":
        return False, "interop tier is opt-in: set GLANCECACHE_INTEROP=1 to run against real Glance 33"
    if not (PEER / "start.sh").exists():
        return False, f"real Glance peer not found at {PEER}"
    return True, ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    enabled, reason = interop_enabled()
    for item in items:
        if "tests/interop" in str(item.fspath):
            item.add_marker(pytest.mark.interop)
            if not enabled:
                item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RealGlance:
    url: str
    venv: Path


def start_real_glance(
    root: Path, auth: str = "noauth", driver: str = "centralized_db", extra_env: dict[str, str] | None = None
) -> tuple[RealGlance, dict[str, str], list[str]]:
    port = free_port()
    env = {**os.environ, "RG_ROOT": str(root), "RG_VENV": str(VENV), **(extra_env or {})}
    args = [str(port), auth, driver]
    done = subprocess.run(["bash", str(PEER / "start.sh"), *args], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"real Glance did not start: {done.stderr[-2000:]}")
    return RealGlance(f"http://127.0.0.1:{port}", VENV), env, args


@pytest.fixture(scope="module")
def real_glance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGlance]:
    enabled, reason = interop_enabled()
    if not enabled:
        pytest.skip(reason)
    glance, env, args = start_real_glance(tmp_path_factory.mktemp("real-glance"))
    try:
        yield glance
    finally:
        subprocess.run(["bash", str(PEER / "stop.sh"), *args], env=env, capture_output=True, timeout=60)
