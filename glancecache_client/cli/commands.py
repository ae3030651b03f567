"""The ``cache-*`` commands: parse, call the library on every chosen node, hand rows to ``output.emit``.

Names match python-glanceclient's for muscle memory. Each command is thin: ``connected`` builds the Cluster
(through ``Settings`` in ``ctx.obj``) inside the error boundary, and ``Report`` turns outcomes into the exit status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from . import exitcodes
from .main import SECONDS, cli, node_options
from .output import CliError, OutputSpec, Report, emit, error_boundary, output_options
from .settings import NodeChoice, Settings

if TYPE_CHECKING:
    from glancecache_client.client import CacheClient
    from glancecache_client.cluster import Cluster
    from glancecache_client.views import Table

__all__ = ["cli"]

EXAMPLE_ID = "3c021162-1e38-461a-a362-e154bf54e241"


@dataclass
class Run:
    """One command's work: the Cluster, and the Report of what succeeded and failed."""

    cluster: Cluster
    report: Report

    @property
    def several(self) -> bool:
        """Several nodes: output rows gain a leading ``node`` column."""
        return len(self.cluster.clients) > 1

    def emit(self, table: Table, output: OutputSpec) -> None:
        """Print rows, unless every node failed (then the errors on stderr are the whole answer)."""
        if self.report.succeeded:
            emit(table, output)


@contextmanager
def connected(settings: Settings, nodes: NodeChoice) -> Iterator[Run]:
    """Build the Cluster, run the command body, close it, then exit with the collected status."""
    report = Report()
    with error_boundary():
        cluster = settings.open_cluster(nodes)
        try:
            yield Run(cluster, report)
        finally:
            cluster.close()
    report.finish()


def read_image_ids(given: Sequence[str]) -> list[str]:
    """Validated, de-duplicated ids from the arguments, or from stdin when the only argument is ``-``."""
    from glancecache_client.errors import InvalidInput
    from glancecache_client.nodes import validate_image_id

    if "-" in given:
        if len(given) > 1:
            raise CliError("'-' (read ids from stdin) must be the only IMAGE_ID", exitcodes.USAGE)
        stream = sys.stdin
        given = [line.strip() for line in stream if line.strip() and not line.lstrip().startswith("#")]
    ids: list[str] = []
    for text in given:
        try:
            image_id = validate_image_id(text)
        except InvalidInput as exc:
            raise CliError(str(exc), exitcodes.USAGE) from None
        if image_id not in ids:
            ids.append(image_id)
    return ids


def for_each_id(
    run: Run, image_ids: Sequence[str], operation: Callable[[CacheClient, str], None], what: str
) -> list[tuple[str, str]]:
    """Apply ``operation`` to every id on every node (nodes concurrently); return the (node, id) that worked.

    A failed id does not stop the others: every failure is reported and counted.
    """
    from glancecache_client.errors import GlanceCacheError

    def on_node(client: CacheClient) -> list[tuple[str, GlanceCacheError | None]]:
        outcomes: list[tuple[str, GlanceCacheError | None]] = []
        for image_id in image_ids:
            try:
                operation(client, image_id)
                outcomes.append((image_id, None))
            except GlanceCacheError as exc:
                outcomes.append((image_id, exc))
        return outcomes

    done: list[tuple[str, str]] = []
    for node_result in run.cluster.run(on_node):
        if node_result.error is not None:  # discovery failed: every id failed on this node
            run.report.fail(node_result.error, f"cannot {what} on this node")
            continue
        for image_id, error in node_result.value or []:
            if error is None:
                run.report.ok()
                done.append((node_result.node, image_id))
            else:
                run.report.fail(error, f"cannot {what} {image_id}")
    return done


# -- commands ----------------------------------------------------------------------------------------------


@cli.command("cache-list")
@node_options
@output_options
@click.pass_obj
def cache_list(settings: Settings, nodes: NodeChoice, output: OutputSpec) -> None:
    """List the images cached and queued on each node.

    Columns: image_id, state (cached or queued), size (bytes), hits, last_accessed, last_modified
    (ISO-8601 UTC), checksum; with several nodes, node first.

    \b
    Examples:
      glance --host glance1 cache-list
      glance -H glance1 -H glance2 cache-list -f json
      glance --all-nodes cache-list -c node -c image_id --sort-column size --sort-descending
    """
    from glancecache_client.views import cache_table

    with connected(settings, nodes) as run:
        states = run.report.collect(run.cluster.list())
        run.emit(cache_table(states, with_node=run.several), output)


@cli.command("cache-queue")
@click.argument("image_ids", nargs=-1, required=True, metavar="IMAGE_ID...")
@click.option("--wait", is_flag=True, help="Return only when every image is cached on every node.")
@click.option(
    "--timeout",
    "wait_timeout",
    type=SECONDS,
    default=None,
    metavar="SECONDS",
    help=(
        "With --wait: give up (exit 1) after this long (default 300); no request runs past it. Without --wait:"
        " each request's overall timeout, as the global --timeout."
    ),
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="With --wait: time between checks of each node's cache.",
)
@node_options
@click.pass_obj
def cache_queue(
    settings: Settings,
    *,
    nodes: NodeChoice,
    image_ids: tuple[str, ...],
    wait: bool,
    wait_timeout: float | None,
    interval: float,
) -> None:
    """Queue active images for caching on each node.

    IMAGE_ID: one or more image UUIDs, or - alone to read them from stdin, one per line. With --wait, a
    progress bar shows on stderr when it is a terminal. --wait is refused at once (exit 5, nothing queued)
    for a pre-Yoga node, where only glance-cache-prefetcher run from cron caches queued images.

    \b
    Examples:
      glance --host glance1 cache-queue 3c021162-1e38-461a-a362-e154bf54e241
      glance --all-nodes cache-queue --wait --timeout 600 3c021162-1e38-461a-a362-e154bf54e241
      openstack image list -f value -c ID | glance --all-nodes cache-queue -
    """
    ids = read_image_ids(image_ids)
    if not ids:
        click.echo("no image ids given on stdin: nothing to queue", err=True)
        return
    if wait_timeout is not None and not wait:
        settings.timeout = wait_timeout
    with connected(settings, nodes) as run:
        if wait and not can_wait(run):
            return
        queued = for_each_id(run, ids, lambda client, image_id: client.queue(image_id), "queue")
        if wait and queued:
            wait_until_cached(run, queued, wait_timeout or 300.0, interval)


def can_wait(run: Run) -> bool:
    """Whether every node can cache on demand; each node that cannot (or cannot be asked) is one line."""
    checks = run.cluster.run(lambda client: client.check_can_wait())
    for check in checks.errors:
        assert check.error is not None
        run.report.fail(check.error, "not queued")
    return checks.ok


def wait_until_cached(run: Run, pairs: list[tuple[str, str]], timeout: float, interval: float) -> None:
    """Wait (Cluster.wait_until_cached) and turn each pair that never arrived into a reported failure."""
    from glancecache_client.errors import CacheWaitTimeout

    with progress(len(pairs)) as advance:
        failed = run.cluster.wait_until_cached(pairs, timeout=timeout, interval=interval, on_cached=advance)
    for (_, image_id), error in sorted(failed.items(), key=lambda item: item[0]):
        what = "" if isinstance(error, CacheWaitTimeout) else f"cannot check that {image_id} is cached"
        run.report.retract(error, what)


@contextmanager
def progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when stderr is a terminal; nothing at all otherwise."""
    stderr = sys.stderr
    if not stderr.isatty():
        yield lambda _count: None
        return
    with click.progressbar(length=total, label="caching", file=stderr, show_pos=True) as bar:
        yield bar.update


@cli.command("cache-delete")
@click.argument("image_ids", nargs=-1, required=True, metavar="IMAGE_ID...")
@click.option(
    "--ignore-missing",
    is_flag=True,
    help="Succeed where a node answers 404 (an image Glance no longer knows and that node does not hold).",
)
@node_options
@click.pass_obj
def cache_delete(settings: Settings, nodes: NodeChoice, image_ids: tuple[str, ...], ignore_missing: bool) -> None:
    """Remove images from each node's cache and queue.

    IMAGE_ID: one or more image UUIDs, or - alone to read them from stdin, one per line.

    \b
    Examples:
      glance --host glance1 cache-delete 3c021162-1e38-461a-a362-e154bf54e241
      glance --host glance1 cache-list -f value -c image_id | glance --host glance1 cache-delete -
    """
    ids = read_image_ids(image_ids)
    if not ids:
        click.echo("no image ids given on stdin: nothing to delete", err=True)
        return

    def delete(client: CacheClient, image_id: str) -> None:
        from glancecache_client.errors import NotFound

        try:
            client.delete(image_id)
        except NotFound:
            if not ignore_missing:
                raise

    with connected(settings, nodes) as run:
        for_each_id(run, ids, delete, "delete")


def stdin_is_terminal() -> bool:
    """Whether a person can answer a prompt (a pipe or cron job never can)."""
    return sys.stdin.isatty()


CLEAR_TARGETS = ("both", "cache", "queue", "cached", "queued")


@cli.command("cache-clear")
@click.option(
    "--target",
    type=click.Choice(CLEAR_TARGETS, case_sensitive=False),
    default="both",
    show_default=True,
    help="What to empty: the cache (cached), the queue (queued) or both.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (it is never asked off a terminal).")
@node_options
@output_options
@click.pass_obj
def cache_clear(settings: Settings, nodes: NodeChoice, target: str, yes: bool, output: OutputSpec) -> None:
    """Empty the cache, the queue or both on each node, and print how many entries each lost.

    Asks for confirmation when run on a terminal, unless --yes.

    \b
    Examples:
      glance --host glance1 cache-clear --target queue --yes
      glance --all-nodes cache-clear -f json
    """
    from glancecache_client.models import ClearTarget
    from glancecache_client.views import clear_table

    parsed = ClearTarget.parse(target)
    with connected(settings, nodes) as run:
        if not yes and stdin_is_terminal():
            what = {"both": "the cache and the queue", "cache": "the cache", "queue": "the queue"}[parsed.value]
            where = ", ".join(run.cluster.endpoints)
            if not click.confirm(f"Empty {what} on {where}?", err=True):
                raise CliError("nothing cleared", exitcodes.ERROR)
        results = run.report.collect(run.cluster.clear(parsed), "cannot clear")
        run.emit(clear_table(results, with_node=run.several), output)


@cli.command("cache-clean")
@node_options
@click.pass_obj
def cache_clean(settings: Settings, nodes: NodeChoice) -> None:
    """Remove invalid and stalled files from each node's cache (Image API 2.18).

    \b
    Example:
      glance --all-nodes cache-clean
    """
    with connected(settings, nodes) as run:
        run.report.collect(run.cluster.clean(), "cannot clean")


@cli.command("cache-prune")
@node_options
@output_options
@click.pass_obj
def cache_prune(settings: Settings, nodes: NodeChoice, output: OutputSpec) -> None:
    """Shrink each node's cache to its configured size, least recently used first, and print what went.

    \b
    Example:
      glance --all-nodes cache-prune -f json
    """
    from glancecache_client.views import prune_table

    with connected(settings, nodes) as run:
        results = run.report.collect(run.cluster.prune(), "cannot prune")
        run.emit(prune_table(results, with_node=run.several), output)


@cli.command("cache-nodes-list")
@click.argument("image_id", metavar="IMAGE_ID")
@node_options
@output_options
@click.pass_obj
def cache_nodes_list(settings: Settings, nodes: NodeChoice, image_id: str, output: OutputSpec) -> None:
    """List the node URLs where an image is cached (needs the centralized_db cache driver).

    \b
    Example:
      glance --host glance1 cache-nodes-list 3c021162-1e38-461a-a362-e154bf54e241
    """
    from glancecache_client.views import Table, Value, nodes_table

    if image_id == "-":
        raise CliError("cache-nodes-list takes one IMAGE_ID, not -", exitcodes.USAGE)
    (valid_id,) = read_image_ids([image_id])
    with connected(settings, nodes) as run:
        rows: list[tuple[Value, ...]] = []
        for node_result in run.cluster.nodes(valid_id):
            if node_result.error is not None:
                run.report.fail(node_result.error, "cannot list the nodes")
                continue
            run.report.ok()
            table = nodes_table(valid_id, node_result.value or [])
            rows += [((node_result.node, *row) if run.several else row) for row in table.rows]
        columns = ("node", "image_id", "node_url") if run.several else ("image_id", "node_url")
        run.emit(Table(columns, rows), output)


@cli.command("help", hidden=True)
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show help for a command (python-glanceclient's ``glance help cache-list`` still works)."""
    parent = ctx.parent or ctx
    if not command:
        click.echo(parent.get_help())
        return
    found = cli.get_command(parent, command)
    if found is None:
        raise click.UsageError(f"no command '{command}': see 'glance --help' for the cache commands", parent)
    with click.Context(found, info_name=command, parent=parent) as sub:
        click.echo(found.get_help(sub))
