"""No accidental open door: ``glancecache-server`` listening beyond loopback in a mode where any caller can be
admin (noauth; trusted, where the caller's own headers name its roles) says so loudly on stderr at start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from glancecache_client.server.config import ServerSettings, open_door_warnings

SCRIPT = Path(sys.executable).parent / "glancecache-server"


def start_and_stop(*args: str) -> tuple[str, str]:
    """Run the script until it prints its URL, stop it with SIGTERM; (first stdout line, all of stderr)."""
    process = subprocess.Popen(
        [str(SCRIPT), "--port", "0", "--no-cache", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT then prints every thread's stack
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().strip()
        process.send_signal(signal.SIGTERM)
        try:
            # communicate, not wait: stderr is read while the server stops, so it can never block on a full pipe.
            # (Once, on a CI machine just after test_flood, a server took over 15 s to stop; say where it hung.)
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            stacks = process.communicate(timeout=10)[1]
            pytest.fail(f"glancecache-server {' '.join(args)} did not exit within 30 s of SIGTERM:\n{stacks[-4000:]}")
        assert process.returncode == 0, stderr
        return url, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_noauth_on_every_address_warns_at_start_up() -> None:
    url, stderr = start_and_stop("--bind", "0.0.0.0", "--auth", "noauth")
    assert url.startswith("http://")  # it still starts
    lines = [line for line in stderr.splitlines() if "WARNING" in line]
    assert 1 <= len(lines) <= 2, stderr
    assert "0.0.0.0" in lines[0] and "--auth noauth" in lines[0] and "admin" in lines[0]
    assert "Traceback" not in stderr


def test_loopback_and_keystone_stay_quiet() -> None:
    for args in (("--auth", "noauth"), ("--bind", "0.0.0.0", "--auth", "keystone")):
        _, stderr = start_and_stop(*args)
        assert "WARNING" not in stderr, (args, stderr)


@pytest.mark.parametrize(
    ("settings", "warns"),
    [
        (ServerSettings(bind="127.0.0.1"), False),
        (ServerSettings(bind="127.0.0.2"), False),
        (ServerSettings(bind="::1"), False),
        (ServerSettings(bind="localhost"), False),
        (ServerSettings(bind="0.0.0.0"), True),
        (ServerSettings(bind="::"), True),
        (ServerSettings(bind="192.0.2.10"), True),
        (ServerSettings(bind="glance.example"), True),
        (ServerSettings(bind="0.0.0.0", auth="trusted"), True),
        (ServerSettings(bind="0.0.0.0", auth="keystone"), False),
        (ServerSettings(cache_admin_bind="0.0.0.0:9393"), True),
        (ServerSettings(cache_admin_bind="127.0.0.1:9393"), False),
    ],
)
def test_which_settings_warn(settings: ServerSettings, warns: bool) -> None:
    warnings = open_door_warnings(settings)
    assert bool(warnings) is warns
    assert len(warnings) <= 2 and all("\n" not in line for line in warnings)
