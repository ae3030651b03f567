"""``glance`` installed beside python-glanceclient 4.13, as on a working OpenStack client machine.

A throwaway virtualenv gets python-glanceclient with the real Glance peer's pinned dependencies, then this
project's built wheel with ``[cli]``, whose ``glance`` replaces glanceclient's. glanceclient's own console
script is kept as ``glanceclient-alone`` before that, and every non-cache command must give exactly what it
gives: the same bytes on stdout and stderr and the same exit status, against a reference server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from glancecache_client import __version__
from glancecache_client.cli.dispatch import GLANCECLIENT_PRESENT, takes_value
from glancecache_client.server.runner import run_cluster

from .conftest import PEER_FREEZE, Artifacts, Venv, make_venv, one_line

pytestmark = pytest.mark.slow

MISSING_ID = "0b7a9a86-3bd6-4a57-8d7b-1b3a4e3a8f00"


@dataclass(frozen=True)
class Node:
    url: str
    image: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> list[str]:
        """glanceclient's own way to reach a noauth node, written before the command."""
        return ["--os-image-url", self.url, "--os-auth-token", "fake"]


@pytest.fixture(scope="module")
def venv(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    if not PEER_FREEZE.is_file():
        pytest.skip(f"no {PEER_FREEZE}: the real Glance peer's pinned versions are needed for python-glanceclient")
    venv = make_venv(tmp_path_factory.mktemp("coexist") / "venv")
    venv.pip("install", "-c", str(PEER_FREEZE), "python-glanceclient")
    shutil.copy(venv.bin / "glance", venv.bin / "glanceclient-alone")
    venv.pip("install", f"{artifacts.wheel}[cli]")
    return venv


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path_factory.mktemp("node")) as cluster:
        image = cluster.upload_image(b"coexistence" * 100, name="coexistence")
        cluster.upload_image(b"second" * 10, name="second")
        yield Node(cluster.urls[0], image)


def same_as_glanceclient_alone(
    venv: Venv, args: list[str], env: dict[str, str] | None = None, program: str = "glance"
) -> subprocess.CompletedProcess[bytes]:
    ours = venv.run(program, *args, env=env)
    alone = venv.run("glanceclient-alone", *args, env=env)
    assert (ours.returncode, ours.stdout, ours.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    return ours


def test_the_venv_holds_glanceclient_4_13_and_our_glance(venv: Venv):
    assert venv.run("glanceclient-alone", "--version").stdout == b"4.13.0\n"
    assert "glancecache_client" in (venv.bin / "glance").read_text()


# name: (arguments and environment for a node, the exit status glanceclient gives)
CASES: dict[str, tuple[Callable[[Node], tuple[list[str], dict[str, str]]], int]] = {
    "image-list": (lambda n: ([*n.token, "image-list"], {}), 0),
    "image-show": (lambda n: ([*n.token, "image-show", n.image], {}), 0),
    "image-show of a missing image": (lambda n: ([*n.token, "image-show", MISSING_ID], {}), 1),
    "help image-list": (lambda n: (["help", "image-list"], {}), 0),
    "--os-image-api-version 2": (lambda n: (["--os-image-api-version", "2", *n.token, "image-list"], {}), 0),
    "global options of several kinds before the command": (
        lambda n: (["-v", "--timeout", "20", f"--os-image-url={n.url}", "--os-auth-token", "x", "image-list"], {}),
        0,
    ),
    "settings from OS_* variables": (lambda n: (["image-list"], {"OS_IMAGE_URL": n.url, "OS_AUTH_TOKEN": "x"}), 0),
    "usage error": (lambda n: ([*n.token, "image-list", "--no-such-option"], {}), 2),
    "no credentials at all": (lambda n: (["image-list"], {}), 1),
    "a command neither has": (lambda n: (["image-lst"], {}), 2),
}


@pytest.mark.parametrize("case", CASES)
def test_other_commands_are_exactly_glanceclients(venv: Venv, node: Node, case: str):
    arguments, status = CASES[case]
    args, env = arguments(node)
    result = same_as_glanceclient_alone(venv, args, env=env)
    assert result.returncode == status, result.stderr
    if status == 0 and "image-list" in args and "help" not in args:  # a listing: it reached the node
        assert node.image.encode() in result.stdout


def test_glancecache_name_hands_over_too(venv: Venv, node: Node):
    same_as_glanceclient_alone(venv, [*node.token, "image-list"], program="glancecache")


def test_stdin_reaches_glanceclient(venv: Venv, node: Node):
    created = httpx.post(
        f"{node.url}/v2/images", json={"name": "piped", "disk_format": "raw", "container_format": "bare"}
    )
    image = created.json()["id"]
    data = os.urandom(4096)
    result = venv.run("glance", *node.token, "image-upload", image, input=data)
    assert result.returncode == 0, result.stderr
    shown = httpx.get(f"{node.url}/v2/images/{image}").json()
    assert (shown["status"], shown["size"], shown["checksum"]) == ("active", 4096, hashlib.md5(data).hexdigest())


def test_cache_commands_stay_ours(venv: Venv, node: Node):
    wait = ["--wait", "--interval", "0.1", "--timeout", "30"]
    queued = venv.run("glance", *node.token, "cache-queue", node.image, *wait)
    assert queued.returncode == 0, queued.stderr  # glanceclient's cache-queue has no --wait
    listed = venv.run("glance", *node.token, "cache-list", "-f", "json")
    assert listed.returncode == 0, listed.stderr  # glanceclient's -f is --force, and it has no JSON output
    rows = json.loads(listed.stdout)
    assert [(row["image_id"], row["state"]) for row in rows] == [(node.image, "cached")]
    helped = venv.run("glance", "help", "cache-list")
    assert helped.returncode == 0 and helped.stdout.startswith(b"Usage: glance cache-list [OPTIONS]")


def test_glance_help_shows_both_sets(venv: Venv):
    result = venv.run("glance", "help")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "List the images cached and queued on each node." in text  # our cache-list
    assert "List images you can access." in text  # glanceclient's image-list
    assert "Get cache state." not in text  # glanceclient's cache-list entry: ours answers that name
    assert text.index("cache-list") < text.index("image-list")


@pytest.mark.parametrize("args", [["--help"], ["cache-list", "--help"], ["help", "cache-list"]])
def test_our_help_stays_fast_it_loads_neither_glanceclient_nor_the_http_stack(venv: Venv, args: list[str]):
    result = venv.run("glance", *args, python_options=["-X", "importtime"])
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.decode().splitlines()}
    assert "click" in imported  # the probe works
    assert not {name for name in imported if name.split(".")[0] in {"glanceclient", "httpx", "keystoneauth1"}}
    # Only the top-level help points at glanceclient's commands.
    assert result.stdout.decode().rstrip().endswith(GLANCECLIENT_PRESENT) == (args == ["--help"])


def test_version_names_both(venv: Venv):
    version = venv.run("glance", "--version")
    lines = version.stdout.decode().splitlines()
    assert lines == [f"glance (glancecache-client) {__version__}", "python-glanceclient 4.13.0"]


def test_global_options_of_glanceclient_are_told_apart_by_whether_they_take_a_value(venv: Venv):
    probe = (
        "import json\n"
        "from glanceclient.shell import OpenStackImagesShell\n"
        "found = {}\n"
        "for argv in ([], ['--os-token', 'x'], ['--os-auth-type', 'v3applicationcredential']):\n"
        "    for action in OpenStackImagesShell().get_base_parser(argv)._actions:\n"
        "        found.update({option: action.nargs != 0 for option in action.option_strings})\n"
        "print(json.dumps(found))\n"
    )
    result = venv.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    options: dict[str, bool] = json.loads(result.stdout)
    assert len(options) > 30
    wrong = {option for option, value in options.items() if takes_value(option) != value}
    assert not wrong, wrong


def test_the_cli_install_without_server_extra_says_so(venv: Venv):
    result = venv.run("glancecache-server", "--port", "0")
    assert result.returncode == 2
    assert "pip install 'glancecache-client[server]'" in one_line(result)


# The two tests below change the virtualenv and put it back.


def test_without_the_cli_extra_other_commands_still_reach_glanceclient(venv: Venv, node: Node):
    version = venv.run("python", "-c", "import importlib.metadata as m; print(m.version('click'))").stdout.decode()
    venv.pip("uninstall", "-y", "click")
    try:
        same_as_glanceclient_alone(venv, [*node.token, "image-list"])
        same_as_glanceclient_alone(venv, ["help"])
        result = venv.run("glance", *node.token, "cache-list")
        assert result.returncode == 2
        assert "pip install 'glancecache-client[cli]'" in one_line(result)
    finally:
        venv.pip("install", "--no-deps", f"click=={version.strip()}")


def test_uninstall_removes_bin_glance_and_reinstalling_glanceclient_restores_it(venv: Venv, artifacts: Artifacts):
    try:
        venv.pip("uninstall", "-y", "glancecache-client")
        assert not Path(venv.bin, "glance").exists()
        venv.pip("install", "--no-deps", "--force-reinstall", "-c", str(PEER_FREEZE), "python-glanceclient")
        assert venv.run("glance", "--version").stdout == b"4.13.0\n"
    finally:
        venv.pip("install", "--no-deps", "--force-reinstall", str(artifacts.wheel))
    assert venv.run("glance", "--version").stdout.startswith(b"glance (glancecache-client) ")
