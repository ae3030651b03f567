"""Every console script run without its extra: one line with the exact ``pip install``, exit 2, no traceback.

The virtualenv holds the built wheel alone, installed with ``--no-deps``: not even httpx or keystoneauth1.
That is stricter than a bare ``pip install glancecache-client``: a script that imported anything beyond the
standard library before checking its extra would fail here with a ModuleNotFoundError traceback.
"""

from __future__ import annotations

import pytest

from .conftest import Artifacts, Venv, make_venv, one_line

pytestmark = pytest.mark.slow

CLI = "pip install 'glancecache-client[cli]'"
SERVER = "pip install 'glancecache-client[server]'"
EXPORTER = "pip install 'glancecache-client[exporter]'"


@pytest.fixture(scope="module")
def bare(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = make_venv(tmp_path_factory.mktemp("bare") / "venv")
    venv.pip("install", "--no-deps", str(artifacts.wheel))
    return venv


@pytest.mark.parametrize(
    ("script", "args", "install"),
    [
        ("glance", ["cache-list"], CLI),
        ("glance", ["-H", "glance1", "cache-queue", "3c021162-1e38-461a-a362-e154bf54e241"], CLI),
        ("glance", ["help", "cache-list"], CLI),
        ("glance", ["--help"], CLI),
        ("glance", [], CLI),
        ("glancecache", ["--version"], CLI),
        ("glancecache", ["cache-list"], CLI),
        ("glancecache-server", ["--nodes", "1"], SERVER),
        ("glancecache-server", ["--version"], SERVER),
        ("glancecache-exporter", ["-H", "glance1"], EXPORTER),
    ],
)
def test_a_script_without_its_extra_says_what_to_install(bare: Venv, script: str, args: list[str], install: str):
    result = bare.run(script, *args)
    line = one_line(result)
    assert result.returncode == 2
    assert line.startswith(f"{script}: ") and install in line, line


def test_other_commands_without_glanceclient_name_both_packages(bare: Venv):
    line = one_line(result := bare.run("glance", "--os-image-url", "http://127.0.0.1:9", "image-list"))
    assert result.returncode == 2
    assert CLI in line and "pip install python-glanceclient" in line, line


def test_the_package_imports_without_any_dependency(bare: Venv):
    # The precondition of the tests above (no click, httpx or werkzeug here), and the lazy ``cli`` package.
    probe = (
        "import importlib.util as u, glancecache_client.cli\n"
        "print([m for m in ('click', 'httpx', 'werkzeug') if u.find_spec(m)])"
    )
    result = bare.run("python", "-c", probe)
    assert result.returncode == 0 and result.stdout == b"[]\n", result.stderr
