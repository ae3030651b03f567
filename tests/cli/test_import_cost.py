"""Help and argument parsing must stay free of heavy imports (httpx, keystoneauth1, tabulate, yaml).

Start-up time is measured in benchmarks/bench_cli.py; this only checks which modules the CLI's own code loads.
The package ``glancecache_client/__init__.py`` is replaced by an empty stand-in so that the check covers the
CLI modules alone (the library's public ``__init__`` is a separate concern).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import clean_env

PACKAGE = Path(__file__).resolve().parents[2] / "glancecache_client"
HEAVY = ("httpx", "httpcore", "keystoneauth1", "tabulate", "yaml", "ssl")

PROBE = f"""
import json, sys, types
package = types.ModuleType("glancecache_client")
package.__path__ = [{str(PACKAGE)!r}]
sys.modules["glancecache_client"] = package
from glancecache_client.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="glance")
except SystemExit:
    pass
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {HEAVY!r})), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["cache-list", "--help"], ["cache-queue", "--help"], ["--version"], ["image-list"], ["cache-list"]],
)
def test_help_and_parsing_load_click_only(argv):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=clean_env(), check=False
    )
    loaded = json.loads(result.stderr.strip().splitlines()[-1])
    assert loaded == [], loaded
