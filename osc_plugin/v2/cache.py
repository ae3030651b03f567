"""The ``openstack cache ...`` commands: thin cliff adapters over :mod:`glancecache_client.operations`.

Each command parses its arguments, calls one core function, and hands cliff the rows of
:mod:`glancecache_client.views` under OSC's own column headers (``ID``, ``State``, ``Last Accessed (UTC)``, ...
as ``openstack cached image list`` shows them, plus ``Node`` and ``Checksum``), with absent values shown as OSC
shows them (``N/A``). Rows are sorted here, on their typed values, so ``--sort-column Size`` sorts numbers even
where a queued image has none. Images are given by ID or unique name, as OSC's commands take them. Every command
takes ``--host`` (repeatable); without it the image endpoint comes from OSC (``image_endpoint_override``, then the
catalog) and a one-line warning says that a load-balanced endpoint reaches one arbitrary node, unless
``--os-endpoint`` named the endpoint explicitly.

Failures never stop the other nodes or images (the core's rule): each is printed on stderr as one line naming the
node, the image, the HTTP status, the server's explanation and the library's hint; whatever succeeded is still
printed, and the command then exits 1 with a count such as "Failed to queue 1 of 3 images". When nothing
succeeded and every failure was a refused login or permission (HTTP 401/403), the failure lines are all it prints
and it exits 3, as the ``glance`` CLI does.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from cliff import command, lister
from osc_lib import exceptions

from glancecache_client import errors
from glancecache_client import operations as core
from glancecache_client.models import ClearTarget
from glancecache_client.views import (
    CACHE_COLUMNS,
    HEADERS,
    Table,
    clear_table,
    nodes_table,
    prune_table,
    summary_table,
    sync_table,
)

if TYPE_CHECKING:
    from glancecache_client import Cluster
    from glancecache_client.operations import Failure, Outcome
    from osc_plugin.plugin import ImageCacheAPI

__all__ = [
    "CleanCache",
    "ClearCache",
    "DeleteCache",
    "ListCache",
    "ListCacheNodes",
    "PruneCache",
    "QueueCache",
    "SummarizeCache",
    "SyncCache",
]

T = TypeVar("T")

# The `glance` CLI's exit status for a refused login or permission, so scripts branch alike on both commands.
AUTH_REFUSED = 3
# ... and for a command line refused before anything changed (cache sync --exact with an empty set).
USAGE_REFUSED = 2
# How OSC's `openstack cached image list` shows a value the node did not give.
ABSENT = "N/A"


class _Refused(Exception):
    """Nothing succeeded and every failure was a 401/403 (already reported): exit AUTH_REFUSED."""


class _UsageRefused(Exception):
    """Nothing was done because the input was refused (already reported): exit USAGE_REFUSED."""


def _add_host_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        metavar="<host>",
        action="append",
        dest="hosts",
        default=[],
        help=(
            "Glance API node to act on: host, host:port or URL (repeat for several nodes). "
            "Default: the image endpoint from image_endpoint_override or the service catalog"
        ),
    )


def _add_wait_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        metavar="<seconds>",
        type=_positive_seconds,
        default=300.0,
        help="With --wait: give up after this many seconds in total (default: 300)",
    )


def _add_image_argument(parser: argparse.ArgumentParser, help_text: str, *, many: bool) -> None:
    parser.add_argument("images", metavar="<image>", nargs="+" if many else 1, help=help_text)


class _WaitProgress:
    """``caching: 3/8`` on stderr, redrawn in place as (node, image) pairs get cached, while a ``--wait`` waits;
    only when stderr is a terminal, so a pipeline or a log gets nothing but the command's own lines."""

    def __init__(self, stream: Any, wanted: bool) -> None:
        self.stream = stream
        self.shown = wanted and callable(getattr(stream, "isatty", None)) and stream.isatty()
        self.total: int | None = None
        self.done = 0

    def start(self, total: int) -> None:
        if self.shown and total:
            self.total = total
            self._draw()

    def advance(self, count: int) -> None:
        if self.total is not None:
            self.done += count
            self._draw()

    def end(self) -> None:
        if self.total is not None:
            self.total = None
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        self.stream.write(f"\rcaching: {self.done}/{self.total}")
        self.stream.flush()


def _failure_line(failure: Failure) -> str:
    what = f"{failure.action} image {failure.image}" if failure.image else failure.action
    where = f" on {failure.node}" if failure.node else ""
    return f"Failed to {what}{where}: {failure.error.message}{core.hint(failure.error)}"


class _CacheCommandMixin:
    """Opening the cluster (with the no-``--host`` warning) and turning an Outcome into lines and a status."""

    app: Any
    # Whether a command without --host warns about load balancers (not for answers every node shares).
    warn_without_host = True
    # What a failure count counts: "image" for per-image commands, "node" for whole-node ones.
    counted = "node"
    verb = ""
    # Whether rows that carry their own error (a summary's failed node) are printed even when nothing succeeded.
    failed_rows = False
    _refused_rows = False
    # Whether input the core refused before changing anything exits USAGE_REFUSED, as `glance` does.
    usage_refusals = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)  # type: ignore[misc]
        self.add_arguments(parser)
        _add_host_option(parser)
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The command's own arguments (every command also takes --host)."""

    def _every_node(self, parsed_args: argparse.Namespace, operation: Callable[[Cluster], T]) -> tuple[T, int]:
        """Run one core operation on the chosen nodes (closed after); its Outcome and how many nodes there were."""
        with self._open_cluster(parsed_args) as cluster:
            return operation(cluster), len(cluster.clients)

    @contextlib.contextmanager
    def _waiting(self, parsed_args: argparse.Namespace, *, shown: bool) -> Iterator[dict[str, Any]]:
        """The keyword arguments of a core operation that may wait (``--wait``, ``--timeout``, names resolved),
        with its progress counted on stderr (when ``shown`` and stderr is a terminal) until the block ends."""
        progress = _WaitProgress(self.app.stderr, shown)
        try:
            yield {
                "resolve_names": True,
                "wait": parsed_args.wait,
                "timeout": parsed_args.timeout,
                "interval": _poll_interval(parsed_args.timeout),
                "on_waiting": progress.start,
                "on_cached": progress.advance,
            }
        finally:
            progress.end()

    def _api(self) -> ImageCacheAPI:
        api: ImageCacheAPI = self.app.client_manager.image_cache
        return api

    def _open_cluster(self, parsed_args: argparse.Namespace) -> Cluster:
        api = self._api()
        hosts: list[str] = list(parsed_args.hosts)
        if not hosts:
            try:
                endpoint = api.endpoint
            except LookupError as exc:
                raise exceptions.CommandError(str(exc)) from None
            if self.warn_without_host and not api.endpoint_is_explicit and not self._quiet():
                self._stderr(core.catalog_warning(endpoint))
            hosts = [endpoint]
        try:
            return api.cluster(hosts)
        except errors.InvalidInput as exc:
            raise exceptions.CommandError(str(exc)) from None

    def _quiet(self) -> bool:
        options = getattr(self.app, "options", None)
        return getattr(options, "verbose_level", 1) == 0

    def _stderr(self, line: str) -> None:
        self.app.stderr.write(line + "\n")
        self.app.stderr.flush()

    def _conclude(self, outcome: Outcome[Any], total: int) -> str | None:
        """Print each failure; raise when there is nothing to show; else the count message for a failed run."""
        for failure in outcome.failures:
            self._stderr(_failure_line(failure))
        if not outcome.failures:
            return None
        if outcome.refused_only:
            if not self.failed_rows:
                raise _Refused
            self._refused_rows = True  # print the rows, then exit AUTH_REFUSED
        invalid = all(isinstance(failure.error, errors.InvalidInput) for failure in outcome.failures)
        if self.usage_refusals and not outcome.successes and invalid:
            raise _UsageRefused
        if self.counted == "image":
            # A failure about no image in particular (a node that cannot wait) fails every image.
            whole = any(failure.image is None for failure in outcome.failures)
            failed = total if whole else len(outcome.failed_images)
        else:
            failed = len({failure.node for failure in outcome.failures})
        plural = "s" if total != 1 or self.counted == "image" else ""  # "Failed to queue 1 of 1 images", as before
        on = "" if self.counted == "image" else " on"
        message = f"Failed to {self.verb}{on} {failed} of {total} {self.counted}{plural}"
        if not outcome.successes and not self.failed_rows:
            raise exceptions.CommandError(message)  # before cliff prints an empty table (or "[]" to a pipeline)
        return message


class _CacheLister(_CacheCommandMixin, lister.Lister):
    """A Lister that prints what succeeded and *then* exits 1 if anything failed; when nothing succeeded it prints
    nothing but the failures. cliff's Lister.run always returns 0, so the failure is raised after the output."""

    _failure: str | None = None

    @property
    def need_sort_by_cliff(self) -> bool:
        return False  # sorted here on typed values: cliff cannot order "N/A" among numbers

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._failure = None
        try:
            status = super().run(parsed_args)
        except _Refused:
            return AUTH_REFUSED
        except _UsageRefused:
            return USAGE_REFUSED
        if self._refused_rows:
            self._stderr(self._failure or "")
            return AUTH_REFUSED
        if self._failure:
            raise exceptions.CommandError(self._failure)
        return status

    def _rows(
        self, parsed_args: argparse.Namespace, outcome: Outcome[Any], total: int, table: Table
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        self._failure = self._conclude(outcome, total)
        keys = [_column_key(table, name) for name in getattr(parsed_args, "sort_columns", None) or []]
        descending = getattr(parsed_args, "sort_direction", "asc") == "desc"
        table = table.sorted_by([key for key in keys if key], descending=descending)
        headers = tuple(HEADERS.get(column, column) for column in table.columns)
        return headers, [tuple(ABSENT if value is None else value for value in row) for row in table.rows]


def _column_key(table: Table, name: str) -> str | None:
    """The JSON key of a column named by its OSC header or its key, in any case (None: cliff ignores it too)."""
    wanted = _normalized(name)
    for column in table.columns:
        if wanted in (_normalized(column), _normalized(HEADERS.get(column, column))):
            return column
    return None


def _normalized(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


class _CacheCommand(_CacheCommandMixin, command.Command):
    """A command that prints no table; it exits AUTH_REFUSED when nothing but refusals happened."""

    def run(self, parsed_args: argparse.Namespace) -> int:
        try:
            return int(super().run(parsed_args))
        except _Refused:
            return AUTH_REFUSED
        except _UsageRefused:
            return USAGE_REFUSED

    def _finish(self, outcome: Outcome[Any], total: int) -> None:
        message = self._conclude(outcome, total)
        if message:
            raise exceptions.CommandError(message)


# -- commands -----------------------------------------------------------------------------------------------


class ListCache(_CacheLister):
    """List the cached and queued images of Glance API nodes"""

    verb = "list the cache"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state",
            choices=core.LIST_STATES,
            type=str.lower,
            default=None,
            help="Show only cached or only queued images (filtered on the client)",
        )
        parser.add_argument(
            "--image",
            metavar="<image>",
            action="append",
            dest="filter_images",
            default=[],
            help="Show only this image, by ID or unique name (repeat for several)",
        )

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        outcome, total = self._every_node(
            parsed_args,
            lambda cluster: core.list_rows(
                cluster, state=parsed_args.state, images=parsed_args.filter_images, resolve_names=True
            ),
        )
        rows = [row for node_rows in outcome.values for row in node_rows]
        return self._rows(parsed_args, outcome, total, Table(CACHE_COLUMNS, rows))


class QueueCache(_CacheCommand):
    """Queue images for caching on Glance API nodes"""

    verb = "queue"
    counted = "image"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_image_argument(parser, "Image(s) to queue for caching (ID, or a name that is unique)", many=True)
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait until every queued image is cached on every node (polls the cache listing)",
        )
        _add_wait_timeout(parser)

    def take_action(self, parsed_args: argparse.Namespace) -> None:
        with self._waiting(parsed_args, shown=parsed_args.wait) as wait:
            outcome, _nodes = self._every_node(
                parsed_args, lambda cluster: core.queue(cluster, parsed_args.images, **wait)
            )
        self._finish(outcome, len(parsed_args.images))


class DeleteCache(_CacheCommand):
    """Delete images from the cache and queue of Glance API nodes"""

    verb = "delete"
    counted = "image"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_image_argument(parser, "Image(s) to remove from the cache and queue (ID or unique name)", many=True)

    def take_action(self, parsed_args: argparse.Namespace) -> None:
        outcome, _nodes = self._every_node(
            parsed_args, lambda cluster: core.delete(cluster, parsed_args.images, resolve_names=True)
        )
        self._finish(outcome, len(parsed_args.images))


class ClearCache(_CacheLister):
    """Remove every image from the cache, the queue or both on Glance API nodes, and count what went"""

    verb = "clear the cache"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--target",
            metavar="{both,cache,queue}",
            type=_clear_target,
            default=None,
            help="What to clear: both (default), cache (cached files) or queue (queued images)",
        )
        parser.add_argument("--cache", action="store_true", help="Clear the cached images (with --queue: clear both)")
        parser.add_argument("--queue", action="store_true", help="Clear the queued images (with --cache: clear both)")

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        target = _chosen_target(parsed_args)
        outcome, total = self._every_node(parsed_args, lambda cluster: core.clear(cluster, target))
        return self._rows(parsed_args, outcome, total, clear_table(outcome.values))


class CleanCache(_CacheCommand):
    """Remove invalid and stalled files from the cache of Glance API nodes (Image API 2.18)"""

    verb = "clean the cache"

    def take_action(self, parsed_args: argparse.Namespace) -> None:
        self._finish(*self._every_node(parsed_args, core.clean))


class PruneCache(_CacheLister):
    """Shrink the cache of Glance API nodes to its size limit, least recently used first (Image API 2.18)"""

    verb = "prune the cache"

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        outcome, total = self._every_node(parsed_args, core.prune)
        return self._rows(parsed_args, outcome, total, prune_table(outcome.values))


class ListCacheNodes(_CacheLister):
    """List the nodes whose cache holds an image (needs Glance's centralized_db cache driver)"""

    verb = "list the nodes caching"
    counted = "image"
    # The answer comes from the registry every node shares, so a load balancer changes nothing.
    warn_without_host = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_image_argument(parser, "Image to look for (ID or unique name)", many=False)

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        (image,) = parsed_args.images
        outcome, _nodes = self._every_node(
            parsed_args, lambda cluster: core.nodes_of(cluster, image, resolve_names=True)
        )
        urls: Sequence[str] = [url for urls in outcome.values for url in urls]
        image_id = outcome.images[0] if outcome.images else image
        return self._rows(parsed_args, outcome, 1, nodes_table(image_id, urls))


class SyncCache(_CacheLister):
    """Bring the cache of Glance API nodes to a desired set of images: the given ones plus those with a --tag"""

    verb = "sync"
    failed_rows = True  # a failed step is a row with its error
    usage_refusals = True  # --exact with an empty set exits 2, as in `glance`

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("images", metavar="<image>", nargs="*", help="Image(s) of the set (ID or unique name)")
        parser.add_argument(
            "--tag",
            metavar="<tag>",
            action="append",
            dest="tags",
            default=[],
            help="Also every active image carrying this tag (repeat for several: any of them)",
        )
        parser.add_argument(
            "--exact",
            action="store_true",
            help="Also delete cached images and dequeue queued ones outside the set (refused if the set is empty)",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the plan and change nothing")
        parser.add_argument("--wait", action="store_true", help="Wait until every node holds the whole set")
        _add_wait_timeout(parser)

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        if not parsed_args.images and not parsed_args.tags:
            raise exceptions.CommandError("nothing to sync: give images or --tag <tag>")
        with self._waiting(parsed_args, shown=parsed_args.wait and not parsed_args.dry_run) as wait:
            outcome, total = self._every_node(
                parsed_args,
                lambda cluster: core.sync(
                    cluster,
                    parsed_args.images,
                    tags=parsed_args.tags,
                    exact=parsed_args.exact,
                    dry_run=parsed_args.dry_run,
                    **wait,
                ),
            )
        if outcome.ok and not outcome.items:
            self._stderr("the desired set is empty: nothing to sync")
        table = sync_table(outcome.items, applied=not parsed_args.dry_run)
        if not table.rows:
            self.failed_rows = False  # nothing was planned: the failures are the whole answer
        return self._rows(parsed_args, outcome, total, table)


class SummarizeCache(_CacheLister):
    """Show how the cache of each Glance API node stands: one row per node, a failing node's included"""

    verb = "summarize the cache"
    failed_rows = True  # a failed node is a row with its error

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--human-readable",
            action="store_true",
            help="In tables, show Cached Bytes in KiB/MiB/GiB (other formats keep integers)",
        )

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        outcome, total = self._every_node(parsed_args, core.summary)
        human = parsed_args.human_readable and getattr(parsed_args, "formatter", "table") == "table"
        return self._rows(parsed_args, outcome, total, summary_table(outcome.items, human_readable=human))


# -- argument types -----------------------------------------------------------------------------------------


def _clear_target(value: str) -> ClearTarget:
    try:
        return ClearTarget.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _chosen_target(parsed_args: argparse.Namespace) -> ClearTarget:
    """--target, or the additive --cache/--queue flags (both flags mean both, unlike OSC's cached image clear)."""
    flags = [
        t for t, given in ((ClearTarget.CACHE, parsed_args.cache), (ClearTarget.QUEUE, parsed_args.queue)) if given
    ]
    from_flags = None if not flags else flags[0] if len(flags) == 1 else ClearTarget.BOTH
    if parsed_args.target is not None and from_flags is not None and parsed_args.target is not from_flags:
        raise exceptions.CommandError(
            f"--target {parsed_args.target.value} contradicts --cache/--queue: give one or the other"
        )
    chosen: ClearTarget = parsed_args.target or from_flags or ClearTarget.BOTH
    return chosen


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"the timeout must be more than 0 seconds, not {value}")
    return seconds


def _poll_interval(timeout: float) -> float:
    # Poll often enough for short waits in scripts, rarely enough not to hammer a node on long ones.
    return min(1.0, max(0.1, timeout / 100))
