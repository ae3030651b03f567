"""``glancecache-server``: run reference Glance nodes with the image cache from the command line.

Owns: argument parsing (argparse; the server must not depend on the CLI's click), logging set-up,
printing every node URL on stdout as soon as all nodes listen (one per line, flushed; in keystone
mode the OS_AUTH_URL goes to stderr), and shutdown on SIGINT/SIGTERM with exit status 0.
Bad configuration prints one line on stderr and exits 2. A node anyone on the network may administer
(noauth or trusted beyond loopback) gets a two-line warning on stderr at start-up. Heavy modules are
imported only after the arguments are parsed, so ``--help`` and errors are instant.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .._version import __version__

PROG = "glancecache-server"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run Glance-compatible image nodes with the image cache API (a reference server).",
    )
    add = parser.add_argument
    add("--version", action="version", version=f"%(prog)s (glancecache-client) {__version__}")
    add("--bind", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, help="port of the first node (default 9292; 0 = any free port)")
    add("--nodes", type=int, help="number of nodes, on consecutive ports (default 1)")
    add("--data-dir", type=Path, help="keep images, database and caches here (default: a temporary dir)")
    add("--auth", choices=("noauth", "trusted", "keystone"), help="identity mode (default noauth)")
    add("--cache-driver", choices=("centralized_db", "sqlite"), help="cache registry driver")
    add("--no-cache", action="store_true", help="run without the image cache (cache API answers 404)")
    add("--image-cache-max-size", type=int, metavar="BYTES", help="prune target size (default 10 GiB)")
    add("--image-cache-stall-time", type=int, metavar="SECONDS", help="age of stalled partial files")
    add("--registry-url", help="shared database URL (postgresql+psycopg://..., mysql+pymysql://...)")
    add("--policy-file", type=Path, help="JSON or YAML policy overrides")
    add("--users-file", type=Path, help="JSON or YAML users for --auth keystone")
    add("--cache-admin-bind", metavar="HOST:PORT", help="also serve the cache API under /cache here")
    add("--legacy-cache-api", action="store_true", help="behave like a pre-Yoga Glance (no /v2/cache)")
    add("--added-latency", type=float, metavar="SECONDS", help="sleep this long in every request")
    add("--cache-workers", type=int, metavar="N",
        help="threads caching queued images (default 4; 0 = queued images stay queued, for tests)")  # fmt: skip
    # The listener's limits (README "Limits and failure behaviour"); defaults are those of listener.Limits.
    add("--idle-timeout", type=float, metavar="SECONDS",
        help="close a connection idle this long, or stalled in a body or a download (default 60)")  # fmt: skip
    add("--header-timeout", type=float, metavar="SECONDS",
        help="answer 408 and close when a request line and headers take longer than this (default 20)")  # fmt: skip
    add("--connection-limit", type=int, metavar="N",
        help="open connections at most; beyond it the longest-idle one is closed (default 10000)")  # fmt: skip
    add("--config-file", type=Path, help="glance-api.conf style file ([DEFAULT] image_cache_* options)")
    add("--log-level", default="WARNING", type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level on stderr (default WARNING; INFO adds one line per request and every cache event)")  # fmt: skip
    add("--log-format", default="text", choices=("text", "json"),
        help="log lines as text (default) or as one JSON object per line")  # fmt: skip
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (they win over the config file)."""
    mapping = {
        "bind": args.bind,
        "port": args.port,
        "nodes": args.nodes,
        "data_dir": args.data_dir,
        "auth": args.auth,
        "cache_driver": args.cache_driver,
        "max_size": args.image_cache_max_size,
        "stall_time": args.image_cache_stall_time,
        "registry_url": args.registry_url,
        "policy_file": args.policy_file,
        "users_file": args.users_file,
        "cache_admin_bind": args.cache_admin_bind,
        "added_latency": args.added_latency,
        "cache_workers": args.cache_workers,
    }
    found = {key: value for key, value in mapping.items() if value is not None}
    if args.no_cache:
        found["cache_enabled"] = False
    if args.legacy_cache_api:
        found["legacy_only"] = True
    return found


def _limits(args: argparse.Namespace, limits_cls: Any) -> Any:
    """The listener limits given on the command line over their defaults (ConfigError when out of range)."""
    given = {
        "idle_timeout": args.idle_timeout,
        "header_timeout": args.header_timeout,
        "connection_limit": args.connection_limit,
    }
    return limits_cls(**{key: value for key, value in given.items() if value is not None})


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .logs import configure as configure_logging
    from .logs import notice

    configure_logging(args.log_level, args.log_format)

    def tell(text: str) -> None:
        print(notice(text, args.log_format, PROG), file=sys.stderr, flush=True)

    from .config import ConfigError, build_settings, open_door_warnings
    from .http.listener import Limits
    from .runner import start_cluster

    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        settings = build_settings(args.config_file, _overrides(args))
        limits = _limits(args, Limits)
        for line in open_door_warnings(settings):
            tell(f"{PROG}: {line}")
        cluster = start_cluster(settings, limits)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # start-up failure outside configuration (disk, database): one line
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG}: error: could not start: {detail}", file=sys.stderr)
        return 1
    try:
        for url in cluster.urls:
            print(url)
        sys.stdout.flush()
        if cluster.identity_url is not None:
            tell(f"OS_AUTH_URL={cluster.identity_url}")
        for admin_url in cluster.admin_urls:
            tell(f"cache admin listener: {admin_url}/cache")
        while not stop.wait(0.5):
            pass
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
