"""Local Sphinx directives, and one sphinx-click fix, that render parts of the manual from the sources.

``exit-status``: the exit-status table, parsed from ``glancecache_client.cli.exitcodes.HELP`` (the text that
``glance --help`` prints), so the manual and the program can never disagree.

``row-schema NAME``: the columns of one command's JSON rows as a table, read from
``docs/schemas/glancecache-rows/<version>/NAME.json``, followed by the schema itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

SCHEMA_VERSION = "1"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "glancecache-rows" / SCHEMA_VERSION
_CODE_LINE = re.compile(r"^\s*(\d+)\s+(.*)$")


def exit_statuses(help_text: str) -> list[tuple[str, str]]:
    """(code, meaning) pairs from the ``Exit status:`` block; indented lines continue the previous meaning."""
    rows: list[tuple[str, str]] = []
    for line in help_text.splitlines():
        found = _CODE_LINE.match(line)
        if found:
            rows.append((found.group(1), found.group(2).strip()))
        elif rows and line.startswith("    ") and line.strip():
            code, meaning = rows[-1]
            rows[-1] = (code, f"{meaning} {line.strip()}")
    return rows


def _table(header: tuple[str, str, str] | tuple[str, str], rows: list[tuple[str, ...]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return lines


def _parse_rst(directive: SphinxDirective, lines: list[str], source: str) -> list[nodes.Node]:
    container = nodes.container()
    directive.state.nested_parse(StringList(lines, source=source), directive.content_offset, container)
    return container.children


class ExitStatusDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from glancecache_client.cli import exitcodes

        rows = exit_statuses(exitcodes.HELP)
        if not rows:
            raise self.error("no exit statuses found in glancecache_client.cli.exitcodes.HELP")
        return _parse_rst(self, _table(("Status", "Meaning"), rows), "exit-status")


def _type_text(spec: dict[str, Any]) -> str:
    kinds = spec.get("type", "any")
    text = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    if "enum" in spec:
        text += " (" + ", ".join(f"``{value}``" for value in spec["enum"] if value is not None) + ")"
    return text


class RowSchemaDirective(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        path = SCHEMA_DIR / f"{self.arguments[0]}.json"
        if not path.is_file():
            raise self.error(f"no row schema {path}")
        self.env.note_dependency(str(path))
        schema = json.loads(path.read_text(encoding="utf-8"))
        rows = [
            (f"``{name}``", _type_text(spec), spec.get("description", ""))
            for name, spec in schema["items"]["properties"].items()
        ]
        relative = Path("/") / path.relative_to(SCHEMA_DIR.parents[2])
        lines = [
            f"Schema ``{schema['$id']}``: :download:`{path.name} <{relative}>`",
            "",
            *_table(("Key", "Type", "Meaning"), rows),
        ]
        return _parse_rst(self, lines, str(path))


def drop_hidden_envvars(_app: Sphinx, ctx: Any, lines: list[str]) -> None:
    """sphinx-click lists the environment variable of a hidden option (a deprecated alias such as
    ``--os-auth-token``) and then links to an option it does not document; drop those entries."""
    hidden = {
        f".. _{ctx.command_path.replace(' ', '-')}-{param.name}-{param.envvar}:"
        for param in ctx.command.params
        if getattr(param, "hidden", False) and param.envvar
    }
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith(".. _"):
            skipping = line in hidden
        if not skipping:
            kept.append(line)
    lines[:] = kept


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx_click")
    # sphinx-click 6.2 registers "...-envvars" but emits "...-envars"; listen to both spellings.
    for event in ("sphinx-click-process-envvars", "sphinx-click-process-envars"):
        if event not in app.events.events:
            app.add_event(event)
        app.connect(event, drop_hidden_envvars)
    app.add_directive("exit-status", ExitStatusDirective)
    app.add_directive("row-schema", RowSchemaDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
