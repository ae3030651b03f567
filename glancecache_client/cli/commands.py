"""The ``cache-*`` commands: parse, call the library on every chosen node, hand rows to ``output.emit``.

Names match python-glanceclient's for muscle memory. Each command is thin: ``connected`` builds the Cluster
(through ``Settings`` in ``ctx.obj``) inside the error boundary, one function of
:mod:`glancecache_client.operations` does the work, and ``output.finish`` prints its Outcome and exits with its
status. No loop over images or nodes and no rule about failures lives here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import exitcodes
from .main import SECONDS, cli, node_options
from .output import CliError, OutputSpec, error_boundary, finish, finish_streaming, output_options
from .settings import NodeChoice, Settings

if TYPE_CHECKING:
    from glancecache_client.cluster import Cluster
    from glancecache_client.views import ColumnRows

__all__ = ["cli"]

EXAMPLE_ID = "3c021162-1e38-461a-a362-e154bf54e241"
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def connected(settings: Settings, nodes: NodeChoice, *, warn: bool = True) -> Iterator[Cluster]:
    """Build the Cluster inside the error boundary, run the command body, close it (the library loads only once
    the options are known good, so usage errors stay fast)."""
    # Left by an error or Ctrl-C, the Cluster abandons its calls in flight rather than waiting for them.
    with error_boundary(), settings.open_cluster(nodes, warn=warn) as cluster:
        yield cluster


def read_image_ids(given: Sequence[str]) -> list[str]:
    """The arguments, or the lines of stdin when the only argument is ``-``, checked by the library's one id check
    before any node (or Keystone) is asked, so a typo is a usage error (exit 2), never a network failure."""
    from glancecache_client.nodes import image_ids

    if "-" in given:
        if len(given) > 1:
            raise CliError("'-' (read ids from stdin) must be the only IMAGE_ID", exitcodes.USAGE)
        given = [line.strip() for line in sys.stdin if line.strip() and not line.lstrip().startswith("#")]
    with error_boundary():
        return image_ids(given)


# -- commands ----------------------------------------------------------------------------------------------


@cli.command("cache-list")
@click.option(
    "--state",
    type=click.Choice(("cached", "queued"), case_sensitive=False),
    default=None,
    help="Show only cached or only queued images (filtered here: Glance's API has no filter).",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="IMAGE_ID",
    help="Show only this image (repeatable), on every node that caches or queues it.",
)
@node_options
@output_options
@click.pass_obj
def cache_list(
    settings: Settings, nodes: NodeChoice, state: str | None, images: tuple[str, ...], output: OutputSpec
) -> None:
    """List the images cached and queued on each node.

    Columns: node, image_id, state (cached or queued), size (bytes), hits, last_accessed, last_modified
    (ISO-8601 UTC), checksum. The filters keep the rows' shape. json, yaml, csv and value are written node
    by node as answers arrive (in node order); a table or --sort-column waits for every node.

    \b
    Examples:
      glance --host glance1 cache-list
      glance -H glance1 -H glance2 cache-list -f json
      glance --all-nodes cache-list --state queued -f value -c node -c image_id
      glance --all-nodes cache-list --image 3c021162-1e38-461a-a362-e154bf54e241
      glance --all-nodes cache-list -c node -c image_id --sort-column size --sort-descending
    """
    from glancecache_client.views import CACHE_COLUMNS

    with connected(settings, nodes) as cluster:
        from glancecache_client import operations as core  # the library loads once the options are good

        listings = core.each_listing_rows(cluster, state=state.lower() if state else None, images=images)
        finish_streaming(listings, CACHE_COLUMNS, _rows, output)


def _rows(rows: ColumnRows) -> ColumnRows:
    return rows  # each_listing_rows's values are already the rows


def wait_options(command: F) -> F:
    """``--timeout`` (the whole wait with --wait, else each request's) and ``--interval``, for commands that wait."""
    timeout = click.option(
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
    interval = click.option(
        "--interval",
        type=click.FloatRange(min=0.05),
        default=1.0,
        show_default=True,
        metavar="SECONDS",
        help="With --wait: time between checks of each node's cache.",
    )
    return timeout(interval(command))


@cli.command("cache-queue")
@click.argument("image_ids", nargs=-1, required=True, metavar="IMAGE_ID...")
@click.option("--wait", is_flag=True, help="Return only when every image is cached on every node.")
@wait_options
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
    with connected(settings, nodes) as cluster, waiting_progress(wait) as bar:
        from glancecache_client import operations as core  # the library loads once the options are good

        outcome = core.queue(
            cluster,
            ids,
            wait=wait,
            timeout=wait_timeout or 300.0,
            interval=interval,
            on_waiting=bar.start,
            on_cached=bar.advance,
        )
    finish(outcome)


@cli.command("cache-delete")
@click.argument("image_ids", nargs=-1, required=True, metavar="IMAGE_ID...")
@click.option(
    "--ignore-missing",
    is_flag=True,
    help=(
        "Succeed even when every node answers 404 (an image Glance no longer knows and no node holds). A 404 from"
        " some nodes is always fine when another node removed the image."
    ),
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
    with connected(settings, nodes) as cluster:
        from glancecache_client import operations as core  # the library loads once the options are good

        outcome = core.delete(cluster, ids, ignore_missing=ignore_missing)
    finish(outcome)


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

    Asks for confirmation when run on a terminal, unless --yes. Needs only the cache_delete permission: where a
    node's policy refuses the listing that counts entries, the counts are empty (null in JSON).

    \b
    Examples:
      glance --host glance1 cache-clear --target queue --yes
      glance --all-nodes cache-clear -f json
    """
    from glancecache_client.models import ClearTarget
    from glancecache_client.views import clear_table

    parsed = ClearTarget.parse(target)
    with connected(settings, nodes) as cluster:
        from glancecache_client import operations as core  # the library loads once the options are good

        if not yes and stdin_is_terminal():
            what = {"both": "the cache and the queue", "cache": "the cache", "queue": "the queue"}[parsed.value]
            where = ", ".join(cluster.endpoints)
            if not click.confirm(f"Empty {what} on {where}?", err=True):
                raise CliError("nothing cleared", exitcodes.ERROR)
        outcome = core.clear(cluster, parsed)
    finish(outcome, clear_table(outcome.values), output)


@cli.command("cache-clean")
@node_options
@click.pass_obj
def cache_clean(settings: Settings, nodes: NodeChoice) -> None:
    """Remove invalid and stalled files from each node's cache (Image API 2.18).

    \b
    Example:
      glance --all-nodes cache-clean
    """
    with connected(settings, nodes) as cluster:
        from glancecache_client import operations as core  # the library loads once the options are good

        outcome = core.clean(cluster)
    finish(outcome)


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

    with connected(settings, nodes) as cluster:
        from glancecache_client import operations as core  # the library loads once the options are good

        outcome = core.prune(cluster)
    finish(outcome, prune_table(outcome.values), output)


@cli.command("cache-nodes-list")
@click.argument("image_id", metavar="IMAGE_ID")
@node_options
@output_options
@click.pass_obj
def cache_nodes_list(settings: Settings, nodes: NodeChoice, image_id: str, output: OutputSpec) -> None:
    """List the node URLs where an image is cached (needs the centralized_db cache driver).

    The answer is cluster-wide (every node reads one registry), so one node is asked: the first that answers.

    \b
    Example:
      glance --host glance1 cache-nodes-list 3c021162-1e38-461a-a362-e154bf54e241
    """
    from glancecache_client.views import nodes_table

    if image_id == "-":
        raise CliError("cache-nodes-list takes one IMAGE_ID, not -", exitcodes.USAGE)
    (image_id,) = read_image_ids([image_id])
    with connected(settings, nodes, warn=False) as cluster:  # a cluster-wide answer: a load balancer is fine
        from glancecache_client import operations as core  # the library loads once the options are good

        outcome = core.nodes_of(cluster, image_id)
    urls = [url for urls in outcome.values for url in urls]
    finish(outcome, nodes_table(outcome.images[0] if outcome.images else image_id, urls), output)


@cli.command("cache-sync")
@click.argument("image_ids", nargs=-1, metavar="[IMAGE_ID... | -]")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Also every active image carrying TAG (repeatable).")
@click.option(
    "--exact",
    is_flag=True,
    help="Also delete cached images and dequeue queued ones outside the set (refused when the set is empty).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--wait", is_flag=True, help="Return only when every node holds the whole set.")
@wait_options
@node_options
@output_options
@click.pass_obj
def cache_sync(
    settings: Settings,
    *,
    nodes: NodeChoice,
    output: OutputSpec,
    image_ids: tuple[str, ...],
    tags: tuple[str, ...],
    exact: bool,
    dry_run: bool,
    wait: bool,
    wait_timeout: float | None,
    interval: float,
) -> None:
    """Bring each node's cache to a desired set of images: the IMAGE_IDs plus every active image with a --tag.

    On each node, images of the set that are neither cached nor queued are queued (action queue; keep for the
    others); with --exact, cached images outside the set are deleted and queued ones dequeued. Tags are looked
    up once, on the first node that answers. Columns: node, image_id, action (queue, keep, delete, dequeue),
    and, unless --dry-run, result (ok, or the one-line error). Exit 0 when every step succeeded (with --wait:
    every node holds the set), 6 when some failed. --exact with an empty set is refused (exit 2).

    \b
    Examples:
      glance --all-nodes cache-sync --tag golden --dry-run
      glance --all-nodes cache-sync --tag golden --exact --wait --timeout 1800
      openstack image list -f value -c ID --tag golden | glance --all-nodes cache-sync -
    """
    from glancecache_client.views import sync_table

    ids = read_image_ids(image_ids)
    if not image_ids and not tags:
        raise CliError("nothing to sync: give IMAGE_IDs, - to read them from stdin, or --tag TAG", exitcodes.USAGE)
    if wait_timeout is not None and not wait:
        settings.timeout = wait_timeout
    with connected(settings, nodes) as cluster, waiting_progress(wait and not dry_run) as bar:
        from glancecache_client import operations as core  # the library loads once the options are good

        outcome = core.sync(
            cluster,
            ids,
            tags=tags,
            exact=exact,
            dry_run=dry_run,
            wait=wait,
            timeout=wait_timeout or 300.0,
            interval=interval,
            on_waiting=bar.start,
            on_cached=bar.advance,
        )
    if outcome.ok and not outcome.items:
        click.echo("the desired set is empty: nothing to sync", err=True)
    finish(outcome, sync_table(outcome.items, applied=not dry_run), output, failed_rows=True)


class WaitingProgress:
    """The progress bar of cache-queue --wait and cache-sync --wait, on stderr when it is a terminal (nothing at
    all otherwise); it starts once the core knows how many (node, image) pairs it waits for."""

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted and sys.stderr.isatty()
        self.bar: Any = None

    def start(self, total: int) -> None:
        if self.wanted and total:
            self.bar = click.progressbar(length=total, label="caching", file=sys.stderr, show_pos=True)
            self.bar.__enter__()

    def advance(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)


@contextmanager
def waiting_progress(wanted: bool) -> Iterator[WaitingProgress]:
    shown = WaitingProgress(wanted)
    try:
        yield shown
    finally:
        if shown.bar is not None:
            shown.bar.__exit__(None, None, None)


@cli.command("cache-summary")
@click.option("--human-readable", is_flag=True, help="In tables, show cached_bytes in KiB/MiB/GiB.")
@node_options
@output_options
@click.pass_obj
def cache_summary(settings: Settings, nodes: NodeChoice, output: OutputSpec, human_readable: bool) -> None:
    """Print how each node's cache stands: one row per node, a failing node's included.

    Columns: node, cached_images, cached_bytes (their total size), queued_images, hits (total), last_accessed
    (the most recent, ISO-8601 UTC; empty if never), error (empty when the node answered, else its one-line
    error; then the counts are empty). Exit 6 when some nodes failed, the failure's status when all did.

    \b
    Examples:
      glance --all-nodes cache-summary --human-readable
      glance --all-nodes cache-summary -f json
    """
    from glancecache_client.views import summary_table

    with connected(settings, nodes) as cluster:
        from glancecache_client import operations as core  # the library loads once the options are good

        outcome = core.summary(cluster)
    table = summary_table(outcome.items, human_readable=human_readable and output.fmt == "table")
    finish(outcome, table, output, failed_rows=True)


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
