"""The ``glancecache-exporter`` command: ``glance``'s node and identity options, ``--listen`` and
``--scrape-timeout``; it serves until SIGTERM or Ctrl-C.

The node and identity options are ``glance``'s own (the click parameters of its group, and its group callback
to turn them into ``Settings``), so ``-H``, ``--all-nodes``, ``OS_*`` and ``--os-cloud`` mean exactly what
they mean there. ``_glance`` and ``_open_cluster`` below are the only code that knows where those live, so a
refactoring of the ``glance`` command layer touches the exporter there alone.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any, NoReturn

import click
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from .._version import __version__
from ..cluster import Cluster
from .collector import CacheCollector
from .exposition import DEFAULT_LISTEN, bind, metrics_app, parse_listen

__all__ = ["exporter", "main"]

log = logging.getLogger("glancecache_client.exporter")

EPILOG = """\b
Prometheus scrape config (prometheus.yml):
  scrape_configs:
    - job_name: glance_cache
      scrape_interval: 30s
      scrape_timeout: 15s      # more than --scrape-timeout
      static_configs:
        - targets: ["127.0.0.1:9480"]"""


def _glance() -> click.Group:
    """``glance``'s command group, whose global options the exporter takes."""
    from glancecache_client.cli.main import cli

    return cli


def _open_cluster(ctx: click.Context, glance_options: dict[str, Any]) -> Cluster:
    """The Cluster ``glance`` would act on with these options (CliError, a one-line error, otherwise)."""
    from glancecache_client.cli.settings import NodeChoice

    callback = _glance().callback
    assert callback is not None
    ctx.invoke(callback, **glance_options)  # records the options as glance's Settings in ctx.obj
    cluster: Cluster = ctx.obj.open_cluster(NodeChoice())
    return cluster


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2], ctx, param) from None


@click.command(
    "glancecache-exporter",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.version_option(__version__, "--version", message="%(prog)s (glancecache-client) %(version)s")
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    callback=_listen,
    help="Where to serve /metrics ([::1]:PORT for IPv6, :PORT for every IPv4 address).",
)
@click.option(
    "--scrape-timeout",
    type=float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long each node may take to answer a scrape; a node that takes longer shows glance_cache_up 0.",
)
@click.pass_context
def exporter(ctx: click.Context, /, listen: tuple[str, int], scrape_timeout: float, **glance_options: Any) -> None:
    """Serve the Glance image cache of every node as Prometheus metrics.

    Pick nodes as with glance: --host (repeatable) or --all-nodes. Each scrape asks every node at once.
    """
    if not 0 < scrape_timeout < float("inf"):
        message = f"{scrape_timeout!r} is not a positive number of seconds"
        raise click.BadParameter(message, ctx, param_hint="--scrape-timeout")
    cluster = _open_cluster(ctx, glance_options)
    collector = CacheCollector(cluster, scrape_timeout=scrape_timeout)
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)  # the exporter's own CPU and memory, as every exporter shows
    host, port = listen
    try:
        server = bind(listen, metrics_app(registry))
    except OSError as exc:
        collector.close()
        cluster.close()
        reason = exc.strerror or str(exc)
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason} (choose another with --listen)") from None
    signal.signal(signal.SIGTERM, _stop)
    shown = f"[{host}]" if ":" in host else host
    log.info("serving http://%s:%d/metrics for %d node(s)", shown, server.server_port, len(cluster.clients))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        ctx.exit(130)  # 128 + SIGINT, as for glance
    finally:
        server.server_close()
        collector.close()
        cluster.close()


def _stop(signum: int, frame: object) -> None:
    sys.exit(0)  # SystemExit leaves serve_forever, and the finally block closes everything


def main() -> NoReturn:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("glancecache-exporter: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # (--debug gives the library logger a handler of its own)
    try:
        code = exporter.main(prog_name="glancecache-exporter", standalone_mode=False)
    except click.UsageError as exc:  # one line, as glance shows them, not click's three
        message = " ".join(exc.format_message().split())
        click.echo(f"Error: {message} (see 'glancecache-exporter --help')", err=True)
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Abort:  # Ctrl-C before serving
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


exporter.params.extend(param for param in _glance().params if param.name != "version")
