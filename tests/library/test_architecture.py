"""Import direction: the library never imports the CLI stacks; the server never imports the client side."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import glancecache_client

PACKAGE = Path(glancecache_client.__file__).parent
LIBRARY = [p for p in PACKAGE.glob("*.py")]
SERVER = list((PACKAGE / "server").rglob("*.py"))
# The exporter's core (collector, exposition) is library code on prometheus-client; only its cli.py is a front end.
EXPORTER_CORE = [p for p in (PACKAGE / "exporter").glob("*.py") if p.name != "cli.py"]


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                base = ".".join((*parts, base)) if base else ".".join(parts)
                names.update(f"{base}.{alias.name}" for alias in node.names)
            names.add(base)
    return names


def matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def test_library_never_imports_cli_stacks() -> None:
    forbidden = ("click", "tabulate", "cliff", "osc_lib", "yaml", "glancecache_client.cli", "osc_plugin")
    for path in LIBRARY:
        bad = {m for m in imported_modules(path) if matches(m, forbidden)}
        assert not bad, f"{path.name} imports {bad}"


def test_library_never_needs_the_exporter() -> None:
    for path in LIBRARY:
        if path.name == "_scripts.py":
            continue  # the console scripts' launcher, which starts it
        bad = {m for m in imported_modules(path) if matches(m, ("prometheus_client", "glancecache_client.exporter"))}
        assert not bad, f"{path.name} imports {bad}"


def test_exporter_core_never_imports_cli_stacks() -> None:
    assert len(EXPORTER_CORE) >= 2, "exporter package is missing"
    forbidden = ("click", "tabulate", "cliff", "osc_lib", "yaml", "glancecache_client.cli", "osc_plugin")
    for path in EXPORTER_CORE:
        bad = {m for m in imported_modules(path) if matches(m, forbidden)}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_server_never_imports_client_side() -> None:
    assert SERVER, "server package is missing"
    client_side = (
        "glancecache_client.client",
        "glancecache_client.cluster",
        "glancecache_client.models",
        "glancecache_client.errors",
        "glancecache_client.auth",
        "glancecache_client.views",
        "glancecache_client.nodes",
        "glancecache_client.cli",
        "osc_plugin",
        "httpx",
        "keystoneauth1",
    )
    for path in SERVER:
        bad = {m for m in imported_modules(path) if matches(m, client_side)}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_import_does_not_load_keystoneauth_or_cli_stacks() -> None:
    # (click itself may appear: httpx imports it for its own command line when it is installed.)
    code = (
        "import sys, glancecache_client; "
        "print(sorted(m for m in ('keystoneauth1', 'tabulate', 'cliff', 'osc_lib', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_matches_all() -> None:
    for name in glancecache_client.__all__:
        assert getattr(glancecache_client, name) is not None, name
    code = "import glancecache_client as g; from glancecache_client import *; print(sorted(set(dir())-{'g'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(set(glancecache_client.__all__) | {"__annotations__", "__builtins__",
                                                                       "__doc__", "__loader__", "__name__",
                                                                       "__package__", "__spec__"}))


def test_bare_import_loads_no_http_stack() -> None:
    code = "import sys, glancecache_client; print(sorted(m for m in ('httpx', 'keystoneauth1') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


ENGINE = list((PACKAGE / "server" / "engine").rglob("*.py"))


def test_server_engine_never_imports_its_http_side() -> None:
    # The cache engine is usable (and tested) without a web stack: HTTP calls into it, never the reverse.
    assert len(ENGINE) >= 6, "server/engine package is missing"
    forbidden = ("glancecache_client.server.http", "werkzeug", "h11")
    for path in ENGINE:
        bad = {m for m in imported_modules(path) if matches(m, forbidden)}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_engine_check_sees_a_relative_import_of_http() -> None:
    # The check above can fail: a relative import climbing out of engine/ into http/ resolves to the http package.
    probe = PACKAGE / "server" / "engine" / "probe.py"
    names = imported_modules(probe, "from ..http import app\nfrom ..http.request import ApiRequest\n")
    assert {"glancecache_client.server.http.app", "glancecache_client.server.http.request"} <= names


def test_server_subclasses_no_private_class_of_a_library() -> None:
    # The serving stack is used through its public API only (asyncio.Protocol, h11's Connection and events):
    # a private class of h11, werkzeug or an HTTP server could change under us in any patch release.
    private_imports: set[str] = set()
    offenders = []
    for path in SERVER:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            third_party = isinstance(node, ast.ImportFrom) and not node.level
            if third_party and not (node.module or "").startswith("glancecache"):
                private_imports.update(a.asname or a.name for a in node.names if a.name.startswith("_"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    text = ast.unparse(base)
                    if any(part.startswith("_") for part in text.split(".")[1:]) or text in private_imports:
                        offenders.append(f"{path.relative_to(PACKAGE)}: {node.name}({text})")
    assert offenders == []
    assert any("asyncio.Protocol" in ast.unparse(b) for p in SERVER for n in ast.walk(ast.parse(p.read_text()))
               if isinstance(n, ast.ClassDef) for b in n.bases), "the listener's protocol class was not seen"
