"""The ``openstack cache ...`` commands: thin cliff adapters over :class:`glancecache_client.Cluster`.

Each command parses its arguments, asks the library, and hands cliff the typed rows of
:mod:`glancecache_client.views` (the same columns and rows the ``glance`` CLI prints), as lists so every cliff
formatter, ``-c`` and ``--sort-column`` work. Every command takes ``--host`` (repeatable); without it the image
endpoint comes from OSC (``image_endpoint_override``, then the catalog) and a warning says that a load-balanced
endpoint reaches one arbitrary node.

Failures never stop the other nodes or images: each is printed on stderr as one line naming the node, the image,
the HTTP status and the server's explanation, whatever succeeded is still printed, and the command then exits 1
with a count such as "Failed to queue 1 of 3 images". When nothing succeeded and every failure was a refused login
or permission (HTTP 401/403), the failure lines are all it prints and it exits 3, as the ``glance`` CLI does.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from cliff import command, lister
from osc_lib import exceptions

from glancecache_client import errors
from glancecache_client.models import ClearTarget
from glancecache_client.nodes import validate_image_id
from glancecache_client.views import Table, cache_table, clear_table, nodes_table, prune_table

if TYPE_CHECKING:
    from glancecache_client import Cluster, ClusterResult, NodeResult
    from osc_plugin.plugin import ImageCacheAPI

__all__ = [
    "CleanCache",
    "ClearCache",
    "DeleteCache",
    "ListCache",
    "ListCacheNodes",
    "PruneCache",
    "QueueCache",
]

T = TypeVar("T")

# The `glance` CLI's exit status for a refused login or permission, so scripts branch alike on both commands.
AUTH_REFUSED = 3


class _Refused(Exception):
    """Nothing succeeded and every failure was a 401/403 (already reported): exit AUTH_REFUSED."""


def _all_refused(result: ClusterResult[Any]) -> bool:
    """Whether the failures of ``result`` (if any) are all refused logins or permissions."""
    found = result.errors
    return bool(found) and all(isinstance(r.error, (errors.Unauthorized, errors.Forbidden)) for r in found)


def _refused_everywhere(result: ClusterResult[Any]) -> bool:
    return len(result.errors) == len(result) and _all_refused(result)


# -- shared plumbing ----------------------------------------------------------------------------------------


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


def _add_image_argument(parser: argparse.ArgumentParser, help_text: str, *, many: bool) -> None:
    parser.add_argument("images", metavar="<image>", nargs="+" if many else 1, help=help_text)


class _CacheCommandMixin:
    """Opening the cluster, the no-``--host`` warning, failure lines and image-name lookup."""

    app: Any
    # Whether a command without --host warns about load balancers (not for answers every node shares).
    warn_without_host = True

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
            if self.warn_without_host and not self._quiet():
                self._stderr(
                    f"Warning: no --host given, so this uses the image endpoint {endpoint}; if it is "
                    f"load-balanced, you see one arbitrary node's cache. Give --host NODE (repeatable) "
                    f"to choose nodes."
                )
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

    def _report(self, what: str, result: ClusterResult[Any]) -> int:
        """Print one line per failed node; return how many nodes failed."""
        for failed in result.errors:
            self._stderr(_failure_line(what, failed))
        return len(result.errors)

    def _image_ids(self, cluster: Cluster, names_or_ids: Iterable[str], action: str) -> list[tuple[str, str]]:
        """(argument, image id) for each argument that is an id or names exactly one image; others reported.

        Ids are used as given (no lookup, so entries whose image record was deleted stay reachable); anything
        else is looked up as a name with ``GET /v2/images?name=`` on the first node.
        """
        resolved: list[tuple[str, str]] = []
        for argument in names_or_ids:
            try:
                resolved.append((argument, validate_image_id(argument)))
                continue
            except errors.InvalidInput:
                pass
            try:
                resolved.append((argument, self._image_id_named(cluster.endpoints[0], argument)))
            except LookupError as exc:
                self._stderr(f"Failed to {action} {argument!r}: {exc}")
        return resolved

    def _image_id_named(self, endpoint: str, name: str) -> str:
        from keystoneauth1 import exceptions as ks_exceptions

        session = self._api().session
        try:
            response = session.get(
                f"{endpoint}/v2/images",
                params={"name": name, "limit": 2},
                headers={"Accept": "application/json"},
                raise_exc=False,
            )
        except ks_exceptions.ClientException as exc:
            raise LookupError(f"looking up the image name on {endpoint} failed: {exc}") from None
        if response.status_code != 200:
            explanation = errors.explanation_from_body(response.content, response.headers.get("content-type", ""))
            raise LookupError(
                f"looking up the image name on {endpoint} failed: HTTP {response.status_code}: {explanation}"
            )
        try:
            images = response.json().get("images", [])
            ids = [str(image["id"]) for image in images]
        except (ValueError, AttributeError, KeyError, TypeError):
            raise LookupError(f"{endpoint} answered the image name lookup with an unexpected body") from None
        if not ids:
            raise LookupError(f"no image is named {name!r} (and it is not an image ID)")
        if len(ids) > 1:
            raise LookupError(f"more than one image is named {name!r}: give the image ID instead")
        return ids[0]


def _failure_line(what: str, failed: NodeResult[Any]) -> str:
    error = failed.error
    detail = error.message if isinstance(error, errors.GlanceCacheError) else str(error)
    hint = ""
    if isinstance(error, errors.Forbidden):
        hint = " (Glance's cache API needs the admin role unless its policy says otherwise)"
    return f"Failed to {what} on {failed.node}: {detail}{hint}"


def _count(noun: str, failed: int, total: int, what: str) -> str:
    plural = "" if total == 1 else "s"
    return f"Failed to {what} on {failed} of {total} {noun}{plural}"


class _FanOutLister(_CacheCommandMixin, lister.Lister):
    """A Lister that prints what the healthy nodes returned and *then* exits 1 if any node failed; when every
    node failed it prints nothing but the failures.

    cliff's Lister.run always returns 0, so the failure is raised after the output is produced.
    """

    _failure: str | None = None

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._failure = None
        try:
            status = super().run(parsed_args)
        except _Refused:
            return AUTH_REFUSED
        if self._failure:
            raise exceptions.CommandError(self._failure)
        return status

    def _output(self, table: Table) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        return table.columns, list(table.rows)

    def _fan_out(
        self, parsed_args: argparse.Namespace, what: str, call: Callable[[Cluster], ClusterResult[T]]
    ) -> tuple[list[T], bool]:
        """Run ``call`` on the cluster; report failures. Returns the ok values and whether to show a node column."""
        with self._open_cluster(parsed_args) as cluster:
            result = call(cluster)
            total = len(cluster.endpoints)
        failed = self._report(what, result)
        if failed == total:
            # Nothing to show: fail before cliff prints an empty table (or "[]" to a pipeline).
            if _refused_everywhere(result):
                raise _Refused
            raise exceptions.CommandError(_count("node", failed, total, what))
        if failed:
            self._failure = _count("node", failed, total, what)
        return result.values, total > 1


# -- commands -----------------------------------------------------------------------------------------------


class ListCache(_FanOutLister):
    """List the cached and queued images of Glance API nodes"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_host_option(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        states, with_node = self._fan_out(parsed_args, "list the cache", lambda cluster: cluster.list())
        return self._output(cache_table(states, with_node=with_node))


class _CacheCommand(_CacheCommandMixin, command.Command):
    """A command that prints no table; it exits AUTH_REFUSED when it raises _Refused."""

    def run(self, parsed_args: argparse.Namespace) -> int:
        try:
            return int(super().run(parsed_args))
        except _Refused:
            return AUTH_REFUSED


class _PerImageCommand(_CacheCommand):
    """Queue or delete: one request per image per node, carrying on past failures."""

    verb = ""

    def _act(self, cluster: Cluster, image_id: str) -> ClusterResult[None]:
        raise NotImplementedError

    def _acceptable(self, result: ClusterResult[None]) -> bool:
        return result.ok

    def _each_image(self, parsed_args: argparse.Namespace, cluster: Cluster) -> tuple[list[str], int]:
        """Act on every image; return the ids that succeeded everywhere and how many images failed.

        Raises _Refused when nothing succeeded and every failure was a 401/403.
        """
        arguments: list[str] = list(parsed_args.images)
        resolved = self._image_ids(cluster, arguments, f"{self.verb} image")
        failed = len(arguments) - len(resolved)
        refused_only = not failed  # a name that could not be looked up is not a refusal
        done: list[str] = []
        for _argument, image_id in resolved:
            result = self._act(cluster, image_id)
            if self._acceptable(result):
                done.append(image_id)
                continue
            failed += 1
            refused_only = refused_only and _all_refused(result)
            for node_result in result.errors:
                self._stderr(_failure_line(f"{self.verb} image {image_id}", node_result))
        if failed and refused_only and not done:
            raise _Refused
        return done, failed


class QueueCache(_PerImageCommand):
    """Queue images for caching on Glance API nodes"""

    verb = "queue"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_image_argument(parser, "Image(s) to queue for caching (ID, or a name that is unique)", many=True)
        _add_host_option(parser)
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait until every queued image is cached on every node (polls the cache listing)",
        )
        parser.add_argument(
            "--timeout",
            metavar="<seconds>",
            type=_positive_seconds,
            default=300.0,
            help="With --wait: give up after this many seconds in total (default: 300)",
        )
        return parser

    def _act(self, cluster: Cluster, image_id: str) -> ClusterResult[None]:
        return cluster.queue(image_id)

    def take_action(self, parsed_args: argparse.Namespace) -> None:
        total = len(parsed_args.images)
        with self._open_cluster(parsed_args) as cluster:
            done, failed = self._each_image(parsed_args, cluster)
            if parsed_args.wait:
                failed += self._wait(cluster, done, parsed_args.timeout)
        if failed:
            raise exceptions.CommandError(f"Failed to queue {failed} of {total} images")

    def _wait(self, cluster: Cluster, image_ids: Sequence[str], timeout: float) -> int:
        """Wait for every image on every node within one overall deadline; return how many did not arrive."""
        from glancecache_client import NodeResult

        pairs = [(node, image_id) for image_id in image_ids for node in cluster.endpoints]
        failed = cluster.wait_until_cached(pairs, timeout=timeout, interval=_poll_interval(timeout))
        for (node, image_id), error in sorted(failed.items(), key=lambda item: item[0]):
            self._stderr(_failure_line(f"cache image {image_id}", NodeResult(node, error=error)))
        return len({image_id for _, image_id in failed})


class DeleteCache(_PerImageCommand):
    """Delete images from the cache and queue of Glance API nodes"""

    verb = "delete"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_image_argument(parser, "Image(s) to remove from the cache and queue (ID or unique name)", many=True)
        _add_host_option(parser)
        return parser

    def _act(self, cluster: Cluster, image_id: str) -> ClusterResult[None]:
        return cluster.delete(image_id)

    def _acceptable(self, result: ClusterResult[None]) -> bool:
        # Glance answers 204 for a known image a node does not hold, and 404 for an id it does not know as an image
        # -- unless that node still caches or queues it (an image deleted since). So across several nodes a 404
        # on some is the state asked for; it is a failure only when every node said 404, or on any other error.
        not_found = [r for r in result.errors if isinstance(r.error, errors.NotFound)]
        other = [r for r in result.errors if not isinstance(r.error, errors.NotFound)]
        return not other and len(not_found) < len(result)

    def take_action(self, parsed_args: argparse.Namespace) -> None:
        total = len(parsed_args.images)
        with self._open_cluster(parsed_args) as cluster:
            _done, failed = self._each_image(parsed_args, cluster)
        if failed:
            raise exceptions.CommandError(f"Failed to delete {failed} of {total} images")


class ClearCache(_FanOutLister):
    """Remove every image from the cache, the queue or both on Glance API nodes, and count what went"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--target",
            metavar="{both,cache,queue}",
            type=_clear_target,
            default=None,
            help="What to clear: both (default), cache (cached files) or queue (queued images)",
        )
        parser.add_argument("--cache", action="store_true", help="Clear the cached images (with --queue: clear both)")
        parser.add_argument("--queue", action="store_true", help="Clear the queued images (with --cache: clear both)")
        _add_host_option(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        target = _chosen_target(parsed_args)
        results, with_node = self._fan_out(parsed_args, "clear the cache", lambda cluster: cluster.clear(target))
        return self._output(clear_table(results, with_node=with_node))


class CleanCache(_CacheCommand):
    """Remove invalid and stalled files from the cache of Glance API nodes (Image API 2.18)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_host_option(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> None:
        with self._open_cluster(parsed_args) as cluster:
            result = cluster.clean()
            total = len(cluster.endpoints)
        failed = self._report("clean the cache", result)
        if _refused_everywhere(result):
            raise _Refused
        if failed:
            raise exceptions.CommandError(_count("node", failed, total, "clean the cache"))


class PruneCache(_FanOutLister):
    """Shrink the cache of Glance API nodes to its size limit, least recently used first (Image API 2.18)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_host_option(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        results, with_node = self._fan_out(parsed_args, "prune the cache", lambda cluster: cluster.prune())
        return self._output(prune_table(results, with_node=with_node))


class ListCacheNodes(_FanOutLister):
    """List the nodes whose cache holds an image (needs Glance's centralized_db cache driver)"""

    # The answer comes from the registry every node shares, so a load balancer changes nothing.
    warn_without_host = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_image_argument(parser, "Image to look for (ID or unique name)", many=False)
        _add_host_option(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        with self._open_cluster(parsed_args) as cluster:
            resolved = self._image_ids(cluster, parsed_args.images, "look up image")
            if not resolved:
                raise exceptions.CommandError(f"Failed to look up image {parsed_args.images[0]!r}")
            image_id = resolved[0][1]
            result = cluster.nodes(image_id)
            total = len(cluster.endpoints)
        what = f"list the nodes caching image {image_id}"
        failed = self._report(what, result)
        if _refused_everywhere(result):
            raise _Refused
        if failed:
            self._failure = _count("node", failed, total, what)
        # Several nodes read the same registry; show each node URL once, in the order first seen.
        urls = list(dict.fromkeys(url for urls in result.values for url in urls))
        return self._output(nodes_table(image_id, urls))


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
