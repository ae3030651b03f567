"""The installed console scripts: both names, shell completion, and the --wait progress bar on a terminal."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest

from glancecache_client.cli.dispatch import GLANCECLIENT_ABSENT
from glancecache_client.server.runner import run_cluster

from .conftest import GLANCE, clean_env, run_on_a_terminal
from .test_e2e_cluster import DATA, hosts

GLANCECACHE = os.path.join(os.path.dirname(GLANCE), "glancecache")
SERVER = os.path.join(os.path.dirname(GLANCE), "glancecache-server")

# tests/install runs the hand-over to python-glanceclient in a virtualenv that has it; here it must be absent.
without_glanceclient = pytest.mark.skipif(
    importlib.util.find_spec("glanceclient") is not None, reason="python-glanceclient is installed in this venv"
)


def test_both_script_names_run_the_same_cli():
    for script, name in ((GLANCE, "glance"), (GLANCECACHE, "glancecache")):
        result = subprocess.run([script, "--version"], capture_output=True, text=True, env=clean_env(), check=False)
        assert result.returncode == 0
        assert result.stdout.startswith(f"{name} (glancecache-client) ")


def test_server_script_has_a_version():
    result = subprocess.run([SERVER, "--version"], capture_output=True, text=True, env=clean_env(), check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("glancecache-server (glancecache-client) ")


@without_glanceclient
def test_top_level_help_says_where_the_other_commands_are():
    for argv in (["--help"], ["help"]):
        result = subprocess.run([GLANCE, *argv], capture_output=True, text=True, env=clean_env(), check=False)
        assert result.returncode == 0
        assert "cache-list" in result.stdout
        assert result.stdout.rstrip().endswith(GLANCECLIENT_ABSENT)


@without_glanceclient
def test_other_commands_without_glanceclient_are_one_line_naming_it():
    for argv in (["image-list"], ["--os-image-url", "http://g1:9292", "image-show", "x"], ["help", "image-list"]):
        result = subprocess.run([GLANCE, *argv], capture_output=True, text=True, env=clean_env(), check=False)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "pip install python-glanceclient" in lines[0], result.stderr
        assert result.stdout == ""


def test_bash_completion_offers_the_cache_commands():
    env = clean_env({"_GLANCE_COMPLETE": "bash_complete", "COMP_WORDS": "glance cache-", "COMP_CWORD": "1"})
    result = subprocess.run([GLANCE], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    offered = {line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line}
    assert {"cache-list", "cache-queue", "cache-delete", "cache-clear", "cache-nodes-list"} <= offered
    for shell in ("bash", "zsh", "fish"):
        source = subprocess.run(
            [GLANCE],
            capture_output=True,
            text=True,
            check=False,
            env=clean_env({"_GLANCE_COMPLETE": f"{shell}_source"}),
        )
        assert source.returncode == 0 and "_GLANCE_COMPLETE" in source.stdout, shell


def test_wait_shows_a_progress_bar_only_when_stderr_is_a_terminal(tmp_path):
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path) as cluster:
        image = cluster.upload_image(DATA, name="progress")
        argv = [GLANCE, *hosts(cluster.urls), "cache-queue", "--wait", "--interval", "0.1", "--timeout", "30", image]
        status, stdout, shown = run_on_a_terminal(argv, clean_env())
        assert status == 0, shown
        assert stdout == b""
        assert b"caching" in shown and b"2/2" in shown
