"""The manual builds with warnings as errors, offline, as html and as man pages, from the code itself.

The build runs ``sphinx-build -W`` as CI and a packager would, with every proxy variable pointing at a dead port,
so any download attempted at build time (an intersphinx inventory, a remote image) fails the build. The checks
then compare the output with the code: every click command and option, every ``openstack cache`` entry point,
every server option, every exit status and the library's public classes must appear, so a reference page that
stopped being generated (or was hand-copied and went stale) fails here.
"""

from __future__ import annotations

import argparse
import html
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest

from glancecache_client.cli import cli, exitcodes
from glancecache_client.server.__main__ import _parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

from glancecache_docs import exit_statuses  # noqa: E402

pytestmark = pytest.mark.slow  # two Sphinx builds, about 6 s


@dataclass
class Built:
    html: Path
    man: Path

    def page(self, name: str) -> str:
        """The text of one html page, tags removed and entities decoded."""
        raw = (self.html / f"{name}.html").read_text(encoding="utf-8")
        return html.unescape(re.sub(r"<[^>]+>", "", raw))

    def man_page(self, name: str) -> str:
        return (self.man / name).read_text(encoding="utf-8").replace("\\-", "-").replace("\\(aq", "'")


def offline_env() -> dict[str, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": "/nonexistent", "LC_ALL": "C.UTF-8"}
    env.update({name: dead for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")})
    return env


def sphinx_build(builder: str, out: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", builder, str(DOCS), str(out)],
        capture_output=True, text=True, timeout=300, env=offline_env(), cwd=ROOT, check=False,
    )
    assert done.returncode == 0, f"sphinx-build -b {builder} failed:\n{done.stderr}"
    assert "WARNING" not in done.stderr, done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("docs")
    sphinx_build("html", out / "html")
    sphinx_build("man", out / "man")
    return Built(out / "html", out / "man")


def test_man_build_yields_one_page_per_program(built: Built) -> None:
    assert sorted(path.name for path in built.man.glob("*.1")) == [
        "glancecache-exporter.1", "glancecache-server.1", "glancecache.1"
    ]  # fmt: skip
    assert built.man_page("glancecache.1").startswith(".\\\" Man page generated from reStructuredText")
    assert ".TH \"GLANCECACHE\" \"1\"" in built.man_page("glancecache.1")
    assert ".TH \"GLANCECACHE-SERVER\" \"1\"" in built.man_page("glancecache-server.1")
    exporter_page = built.man_page("glancecache-exporter.1")
    assert ".TH \"GLANCECACHE-EXPORTER\" \"1\"" in exporter_page
    for option in ("--listen", "--scrape-timeout", "--all-nodes"):
        assert option in exporter_page, option


def click_options(command: click.Command) -> set[str]:
    return {opt for param in command.params if isinstance(param, click.Option) and not param.hidden
            for opt in param.opts if opt.startswith("--")}


def test_cli_reference_has_every_command_and_option(built: Built) -> None:
    ctx = click.Context(cli, info_name="glancecache")
    commands = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    visible = {name: command for name, command in commands.items() if command is not None and not command.hidden}
    assert "cache-list" in visible and "cache-nodes-list" in visible
    for text in (built.page("reference/cli"), built.man_page("glancecache.1")):
        for option in click_options(cli):
            assert option in text, option
        for name, command in visible.items():
            assert f"glancecache {name}" in text, name
            for option in click_options(command):
                assert option in text, (name, option)


def test_osc_reference_has_every_entry_point_command(built: Built) -> None:
    names = [ep.name.replace("_", " ") for ep in entry_points(group="openstack.image_cache.v2")]
    assert "cache nodes list" in names
    text = built.page("reference/osc")
    for name in names:
        assert f"openstack {name}" in text, name
    assert "--host" in text


def test_server_reference_has_every_parser_option(built: Built) -> None:
    parser = _parser()
    options = [opt for action in parser._actions if not isinstance(action, argparse._HelpAction)
               for opt in action.option_strings if opt.startswith("--")]
    assert "--cache-admin-bind" in options
    for text in (built.page("reference/server"), built.man_page("glancecache-server.1")):
        for option in options:
            assert option in text, option


def test_exit_status_table_is_the_programs(built: Built) -> None:
    statuses = dict(exit_statuses(exitcodes.HELP))
    codes = {exitcodes.OK, exitcodes.ERROR, exitcodes.USAGE, exitcodes.AUTH, exitcodes.NOT_FOUND,
             exitcodes.UNAVAILABLE, exitcodes.PARTIAL}
    assert {int(code) for code in statuses} >= codes
    assert "different failures with nothing succeeded" in statuses["1"]  # a continuation line is kept
    text = " ".join(built.page("exit-codes").split())
    for code, meaning in statuses.items():
        assert f"{code} {meaning}" in text, (code, meaning)


def test_api_reference_is_generated_from_docstrings(built: Built) -> None:
    from glancecache_client import CacheClient, Cluster, errors

    text = built.page("reference/api")
    for name in ("CacheClient", "Cluster", "ClusterResult", "NodeResult", "CachedImage", "CacheState",
                 "GlanceCacheError", "UnsupportedFeature", "run_cluster", "ServerSettings"):
        assert name in text, name
    for cls in (CacheClient, Cluster):  # every public method, documented or not
        for name, member in vars(cls).items():
            if callable(member) and not name.startswith("_"):
                assert f"{name}(" in text, (cls.__name__, name)
    assert CacheClient.wait_cached.__doc__ is not None
    assert " ".join(CacheClient.wait_cached.__doc__.split()[:6]) in " ".join(text.split())
    assert " ".join((errors.TLSFailure.__doc__ or "").split()) in " ".join(text.split())


def test_json_contract_page_renders_each_schema(built: Built) -> None:
    text = built.page("json-output")
    for command in ("cache-list", "cache-clear", "cache-prune", "cache-nodes-list"):
        assert f"urn:glancecache-rows:1:{command}" in text
        assert list(built.html.glob(f"_downloads/*/{command}.json")), command
    assert "files_pruned" in text and "node_url" in text


def test_guides_link_the_generated_references(built: Built) -> None:
    for guide in ("install", "operating", "server", "library"):
        raw = (built.html / f"{guide}.html").read_text(encoding="utf-8")
        assert 'href="reference/' in raw, guide


def test_exporter_reference_has_every_option(built: Built) -> None:
    from glancecache_client.exporter.cli import exporter

    text = built.page("reference/exporter")
    assert {"--listen", "--scrape-timeout", "--host", "--os-cloud"} <= click_options(exporter)
    for option in click_options(exporter):
        assert option in text, option
