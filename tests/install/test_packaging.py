"""The sdist and wheel as PyPI users and packagers meet them, and the README's commands as CI runs them."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import HeaderParser

import pytest

from glancecache_client import __version__

from .conftest import ROOT, Artifacts


def wheel_metadata(artifacts: Artifacts) -> Message:
    with zipfile.ZipFile(artifacts.wheel) as wheel:
        return HeaderParser().parsestr(wheel.read(f"glancecache_client-{__version__}.dist-info/METADATA").decode())


def sdist_members(artifacts: Artifacts) -> set[str]:
    prefix = f"glancecache_client-{__version__}/"
    with tarfile.open(artifacts.sdist) as sdist:
        return {name.removeprefix(prefix) for name in sdist.getnames()}


@pytest.mark.slow
def test_metadata_names_the_license_and_the_project_urls(artifacts: Artifacts):
    metadata = wheel_metadata(artifacts)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert metadata["Description-Content-Type"] == "text/markdown"


@pytest.mark.slow
def test_extras_declare_what_their_code_imports_and_pin_no_peer_exactly(artifacts: Artifacts):
    requires = wheel_metadata(artifacts).get_all("Requires-Dist") or []
    cli = [r for r in requires if 'extra == "cli"' in r]
    assert any(r.startswith("openstacksdk") for r in cli)  # --os-cloud reads clouds.yaml through it
    assert any(r.startswith("tomli") and 'python_version < "3.11"' in r for r in cli)  # node sets on 3.10
    pinned = [r for r in requires if "==" in r.split(";")[0]]  # the version part, not the marker
    assert not pinned, f"exact pins belong in constraints/ci.txt, not in published metadata: {pinned}"


@pytest.mark.slow
def test_wheel_carries_the_license_and_no_tests(artifacts: Artifacts):
    with zipfile.ZipFile(artifacts.wheel) as wheel:
        names = set(wheel.namelist())
        license_text = wheel.read(f"glancecache_client-{__version__}.dist-info/licenses/LICENSE").decode()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert not {name for name in names if name.startswith(("tests/", "benchmarks/", "docs/"))}
    assert {"glancecache_client/py.typed", "glancecache_client/server/http/schemas/image.json"} <= names


@pytest.mark.slow
def test_sdist_carries_tests_docs_benchmarks_changelog_and_license(artifacts: Artifacts):
    members = sdist_members(artifacts)
    expected = {"LICENSE", "README.md", "CHANGELOG.md", "PKG-INFO", "constraints/ci.txt", "tests/install/conftest.py"}
    # Every tracked file under these directories, so a new test, benchmark or docs page cannot be left out.
    tracked = subprocess.run(
        ["git", "ls-files", "tests", "benchmarks", "docs"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if tracked.returncode == 0:
        expected |= set(tracked.stdout.split())
    missing = expected - members
    assert not missing, missing
    assert not {name for name in members if "__pycache__" in name or name.endswith(".pyc")}
    with tarfile.open(artifacts.sdist) as sdist:
        pkg_info = sdist.extractfile(f"glancecache_client-{__version__}/PKG-INFO")
        assert pkg_info is not None
        assert "License-File: LICENSE" in pkg_info.read().decode()


@pytest.mark.slow
def test_twine_check_passes_on_both(artifacts: Artifacts):
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(artifacts.sdist), str(artifacts.wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_changelog_has_a_dated_section_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.MULTILINE)
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{__version__}]")


def test_readme_test_command_is_exactly_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.DOTALL)
    test_command = blocks[1].strip()
    assert "-c constraints/ci.txt" in test_command and "--python-version 3.10" in test_command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    manual = ROOT / "docs" / "install.rst"
    if manual.exists():  # the manual repeats it
        assert test_command in [line.strip() for line in manual.read_text().splitlines()]
