"""Server settings: one dataclass, Glance's own option names read from a glance-api.conf-style INI file.

Owns: ``ServerSettings`` (every knob of ``run_cluster`` and ``glancecache-server``), validation with one
clear line per mistake (``ConfigError``) and ``--config-file`` parsing. Precedence: built-in defaults,
then the config file, then command-line options.

Options read from the file, as Glance 33 reads them:
``[DEFAULT]`` ``image_cache_dir`` (absent or empty: the cache is off), ``image_cache_driver`` (any letter
case), ``image_cache_sqlite_db`` (the sqlite driver's database, relative to the cache directory),
``image_cache_max_size``, ``image_cache_stall_time``, ``worker_self_reference_url`` (required with the
centralized_db driver when the cache is on, as Glance requires it at start-up), ``bind_host``,
``bind_port``; ``[database]`` ``connection`` (the shared registry); ``[oslo_policy]`` ``policy_file``.
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTH_MODES = ("noauth", "trusted", "keystone")
CACHE_DRIVERS = ("centralized_db", "sqlite")
DEFAULT_MAX_SIZE = 10 * 1024**3  # Glance's image_cache_max_size default (10 GiB)
DEFAULT_STALL_TIME = 86400  # Glance's image_cache_stall_time default (one day)
DEFAULT_SQLITE_DB = "cache.db"  # Glance's image_cache_sqlite_db default
# Glance 33's start-up error (glance/sqlite_migration.py), word for word.
NEEDS_SELF_REFERENCE_URL = (
    "'worker_self_reference_url' needs to be set if `centralized_db` is defined as cache driver "
    "for image_cache_driver config option."
)


class ConfigError(ValueError):
    """Bad configuration; ``str()`` is the single line shown to the operator."""


@dataclass
class ServerSettings:
    """Everything needed to start a cluster of reference nodes."""

    nodes: int = 1
    bind: str = "127.0.0.1"
    port: int = 9292
    data_dir: Path | None = None
    auth: str = "noauth"
    cache_driver: str = "centralized_db"
    cache_enabled: bool = True
    cache_dir: Path | None = None
    sqlite_db: str = DEFAULT_SQLITE_DB
    max_size: int = DEFAULT_MAX_SIZE
    stall_time: int = DEFAULT_STALL_TIME
    self_reference_url: str | None = None
    registry_url: str | None = None
    policy_file: Path | None = None
    users_file: Path | None = None
    cache_admin_bind: str | None = None
    legacy_only: bool = False
    added_latency: float = 0.0
    threads: int = 8
    cache_workers: int = 4

    def validate(self) -> ServerSettings:
        if self.cache_workers < 0:
            raise ConfigError(f"--cache-workers must be 0 or more, got {self.cache_workers}")
        if self.nodes < 1:
            raise ConfigError(f"--nodes must be at least 1, got {self.nodes}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, got {self.port}")
        if self.port and self.port + self.nodes - 1 > 65535:
            raise ConfigError(f"{self.nodes} consecutive ports from {self.port} do not fit below 65536")
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"unknown auth mode {self.auth!r}; choose one of {', '.join(AUTH_MODES)}")
        self.cache_driver = self.cache_driver.strip().lower()  # oslo.config's ignore_case=True
        if self.cache_driver == "xattr":
            raise ConfigError(
                "image_cache_driver 'xattr' is not supported by this server; use centralized_db or sqlite"
            )
        if self.cache_driver not in CACHE_DRIVERS:
            raise ConfigError(
                f"unknown image_cache_driver {self.cache_driver!r}; choose one of {', '.join(CACHE_DRIVERS)}"
            )
        if not self.sqlite_db.strip():
            raise ConfigError("image_cache_sqlite_db must name a file")
        if self.max_size < 0:
            raise ConfigError(f"image_cache_max_size must be 0 or more bytes, got {self.max_size}")
        if self.stall_time < 0:
            raise ConfigError(f"image_cache_stall_time must be 0 or more seconds, got {self.stall_time}")
        if self.added_latency < 0:
            raise ConfigError(f"--added-latency must be 0 or more seconds, got {self.added_latency}")
        if self.self_reference_url is not None:
            if self.nodes > 1:
                raise ConfigError("worker_self_reference_url names one node; it cannot be used with --nodes above 1")
            if not self.self_reference_url.startswith(("http://", "https://")):
                raise ConfigError(f"worker_self_reference_url must be an http(s) URL, got {self.self_reference_url!r}")
        if self.cache_admin_bind is not None:
            parse_host_port(self.cache_admin_bind, "--cache-admin-bind")
        for label, path in (("policy file", self.policy_file), ("users file", self.users_file)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{label} {path} does not exist")
        return self


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; a host name other than localhost counts as open."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_door_warnings(settings: ServerSettings) -> list[str]:
    """The start-up warning (at most two lines) for a node anyone on the network may administer: noauth
    (every caller is admin) or trusted (callers name their own roles) on a non-loopback address."""
    if settings.auth == "keystone":
        return []
    exposed = [settings.bind] if not is_loopback(settings.bind) else []
    if settings.cache_admin_bind is not None:
        admin_host = parse_host_port(settings.cache_admin_bind, "--cache-admin-bind")[0]
        if not is_loopback(admin_host):
            exposed.append(settings.cache_admin_bind)
    if not exposed:
        return []
    who = "every caller is admin" if settings.auth == "noauth" else "any caller may claim admin in X-Roles"
    return [
        f"WARNING: --auth {settings.auth} listening on {', '.join(exposed)}: {who}; anyone who can reach it "
        "may delete images and clear caches.",
        "WARNING: bind to 127.0.0.1, or use --auth keystone, unless this network is closed to everyone else.",
    ]


def parse_host_port(text: str, label: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ConfigError naming ``label`` otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"{label} must be HOST:PORT (port 0 = any free port), got {text!r}")
    return host.strip("[]"), int(port_text)


def _int_option(value: str, name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value.strip()!r}") from None


def read_config_file(path: Path | str) -> dict[str, Any]:
    """Glance option values found in ``path``, keyed by ``ServerSettings`` field name."""
    path = Path(path)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} is not a valid INI file: {first}") from None
    defaults = parser.defaults()
    found: dict[str, Any] = {}
    if defaults.get("image_cache_dir", "").strip():
        found["cache_dir"] = Path(defaults["image_cache_dir"].strip())
    else:
        found["cache_enabled"] = False  # Glance runs without a cache when image_cache_dir is unset
    if "image_cache_driver" in defaults:
        found["cache_driver"] = defaults["image_cache_driver"].strip()
    if defaults.get("image_cache_sqlite_db", "").strip():
        found["sqlite_db"] = defaults["image_cache_sqlite_db"].strip()
    if "image_cache_max_size" in defaults:
        found["max_size"] = _int_option(defaults["image_cache_max_size"], "image_cache_max_size")
    if "image_cache_stall_time" in defaults:
        found["stall_time"] = _int_option(defaults["image_cache_stall_time"], "image_cache_stall_time")
    if defaults.get("worker_self_reference_url", "").strip():
        found["self_reference_url"] = defaults["worker_self_reference_url"].strip().rstrip("/")
    if defaults.get("bind_host", "").strip():
        found["bind"] = defaults["bind_host"].strip()
    if "bind_port" in defaults:
        found["port"] = _int_option(defaults["bind_port"], "bind_port")
    if parser.has_option("database", "connection"):
        connection = parser.get("database", "connection").strip()
        if connection:
            found["registry_url"] = connection
    if parser.has_option("oslo_policy", "policy_file"):
        policy_file = parser.get("oslo_policy", "policy_file").strip()
        if policy_file:
            candidate = Path(policy_file)
            # oslo.policy resolves a relative name next to the config file.
            found["policy_file"] = candidate if candidate.is_absolute() else path.parent / candidate
    return found


def build_settings(config_file: Path | str | None = None, overrides: Mapping[str, Any] | None = None) -> ServerSettings:
    """Defaults <- config file <- ``overrides`` (command-line values that were given), validated."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(read_config_file(config_file))
    known = {f.name for f in dataclasses.fields(ServerSettings)}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = value
    settings = ServerSettings(**values).validate()
    # A glance-api.conf describes one Glance node; with --nodes above 1 each node references itself.
    if (
        config_file is not None
        and settings.cache_enabled
        and settings.cache_driver == "centralized_db"
        and settings.self_reference_url is None
        and settings.nodes == 1
    ):
        raise ConfigError(NEEDS_SELF_REFERENCE_URL)
    return settings
