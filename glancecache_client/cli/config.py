"""Which nodes ``--all-nodes`` means: ``GLANCECACHE_HOSTS``, else a named node set in a small TOML file.

The file is ``$GLANCECACHE_CONFIG``, else ``$XDG_CONFIG_HOME/glancecache/nodes.toml`` (``~/.config/...``)::

    default = "prod"

    [nodesets.prod]
    hosts = ["glance1", "glance2:9292", "https://glance3.example.com:9292"]

Every problem is a :class:`NodeSetError` whose message says what to fix; the CLI shows it on one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["HOSTS_ENV", "NodeSetError", "config_path", "hosts_from_env", "load_node_set"]

HOSTS_ENV = "GLANCECACHE_HOSTS"
CONFIG_ENV = "GLANCECACHE_CONFIG"


class NodeSetError(Exception):
    """The node set cannot be determined; the message says how to define one."""


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "glancecache" / "nodes.toml"


def hosts_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """``GLANCECACHE_HOSTS=g1,g2:9292`` as a list; empty when unset. Spaces around commas are allowed."""
    env = os.environ if environ is None else environ
    return [host.strip() for host in env.get(HOSTS_ENV, "").split(",") if host.strip()]


def load_node_set(name: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The hosts of node set ``name``, or of the file's ``default`` set when ``name`` is None."""
    path = config_path(environ)
    how = f'define one in {path} as [nodesets.NAME] hosts = ["host1", "host2:9292"], or set {HOSTS_ENV}'
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NodeSetError(f"no node set configured: {how}") from None
    except OSError as exc:
        raise NodeSetError(f"cannot read {path}: {exc.strerror}") from None
    data = _parse_toml(text, path)
    node_sets = data.get("nodesets", {})
    if not isinstance(node_sets, dict):
        raise NodeSetError(f"{path}: 'nodesets' must be a table of [nodesets.NAME] sections")
    if name is None:
        default = data.get("default")
        if default is None and len(node_sets) == 1:
            default = next(iter(node_sets))
        if not isinstance(default, str):
            known = ", ".join(sorted(node_sets)) or "none defined"
            raise NodeSetError(
                f'{path}: no default node set: add default = "NAME" or pass --node-set NAME (sets: {known})'
            )
        name = default
    entry = node_sets.get(name)
    if entry is None:
        known = ", ".join(sorted(node_sets)) or "none defined"
        raise NodeSetError(f"unknown node set {name!r} in {path} (sets: {known})")
    hosts = entry.get("hosts") if isinstance(entry, dict) else None
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise NodeSetError(f'{path}: [nodesets.{name}] needs hosts = ["host1", "host2:9292"] (a list of strings)')
    return [host.strip() for host in hosts]


def _parse_toml(text: str, path: Path) -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the [cli] extra installs tomli there
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NodeSetError(f"{path} is not valid TOML: {exc}") from None
