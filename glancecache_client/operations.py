"""The command core: every cache command, run on many images over many nodes, as one :class:`Outcome`.

Both front ends (the ``glance`` CLI and the ``openstack cache`` plugin) call these functions and nothing below
them: a front end parses arguments, renders :mod:`~glancecache_client.views` rows and picks its exit status from
the Outcome. The loops over images and nodes, the rules about what counts as a failure, waiting, image-name
lookup and the one-line hint for each failure live here, once.

Rules (the same in both front ends):

- **Deleting an image some nodes answer 404 for.** Glance answers 204 for a known image a node does not hold, and
  404 for an id it does not know as an image unless that node still caches or queues it (an image deleted from
  Glance since). So for each image a 404 from a node is the state asked for ("not there") as long as at least one
  node accepted the delete; when *every* node answered 404 the image is reported not found, unless
  ``ignore_missing`` (then that is the state asked for too). Any other error is a failure.
- **Nodes of an image.** The answer comes from the registry every node shares, so one node is asked: the first
  that answers. A node that cannot be reached (or answers 5xx, or lacks the API) is passed over; its failure is
  reported only when no node answered.
- **Clear** works with only the ``cache_delete`` permission: the counts come from a listing before and after,
  and when a node's policy refuses the listing the counts are ``None`` (unknown) rather than the clear failing.
- **Image names.** ``resolve_names=True`` (OSC's convention) looks up each argument that is not an image id with
  ``GET /v2/images?name=`` on the first node; ``False`` (glanceclient's) takes ids only. Ids are validated and
  de-duplicated here, once.

- **Sync** settles the desired set (ids, names, each tag's active images, every page) once, on the first node
  that answers, before any node changes; if it cannot be settled nothing changes, and ``exact`` with an empty set
  is refused. Removing what a node no longer holds (404) is the state asked for.
- **Rows for failures.** :class:`Report` is an Outcome with a row for every item, failed ones included (a
  summary's dead node, a sync step that failed), each carrying its one-line error.

A new command is one function here returning an Outcome, plus one thin adapter in each front end.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from . import errors
from .client import CacheClient
from .cluster import Cluster, ClusterResult
from .models import CacheState, ClearResult, ClearTarget, NodeSummary, PruneResult, SyncStep
from .nodes import image_ids, validate_image_id, validate_seconds
from .views import CACHE_COLUMNS, ColumnRows, listing_rows

__all__ = [
    "LIST_STATES",
    "Failure",
    "Outcome",
    "Report",
    "Success",
    "catalog_warning",
    "clean",
    "clear",
    "delete",
    "describe",
    "each_listing",
    "each_listing_rows",
    "hint",
    "image_ids",
    "list_cache",
    "list_rows",
    "nodes_of",
    "prune",
    "queue",
    "summary",
    "sync",
]

T = TypeVar("T")
L = TypeVar("L")  # a listing: a CacheState, or its rows


def hint(error: BaseException) -> str:
    """What to do about ``error``, as a parenthesised clause (or "" when the message says it all)."""
    if isinstance(error, errors.Unauthorized):
        return _UNAUTHORIZED_HINTS.get(error.credentials, _UNAUTHORIZED_HINTS["none"])
    if isinstance(error, errors.Forbidden):
        return " (the cache API is admin-only by default: use an account with the admin role, or change the policy)"
    return ""


_UNAUTHORIZED_HINTS = {
    "none": (
        " (give credentials: --os-token, --os-cloud, or --os-auth-url with --os-username/--os-password;"
        " --os-auth-type none for a noauth node)"
    ),
    "token": (
        " (the node rejected the token given with --os-token/OS_TOKEN: it may have expired, been revoked or come"
        " from another cloud; get a fresh one with 'openstack token issue', or authenticate with --os-auth-url"
        " and a password)"
    ),
    "keystone": " (the node rejected the token Keystone issued: is the node using the same Keystone?)",
}


def catalog_warning(endpoint: str, how_to_choose: str = "--host NODE") -> str:
    """The one-line warning both front ends print when no node was named and the catalog's endpoint is used."""
    return (
        f"Warning: no --host given, so this uses the image endpoint {endpoint}; if it is load-balanced, you see "
        f"one arbitrary node's cache. Give {how_to_choose} (repeatable) to choose nodes."
    )


def describe(error: BaseException) -> str:
    """One line: the library's message (it names the node) and the hint."""
    return (" ".join(str(error).split()) or type(error).__name__) + hint(error)


@dataclass(frozen=True)
class Success(Generic[T]):
    """One thing that worked: on ``node``, for ``image`` (None for whole-node operations), giving ``value``."""

    node: str
    value: T
    image: str | None = None


@dataclass(frozen=True)
class Failure:
    """One thing that failed: what was being done, on which node (or "" before any node) and image."""

    action: str
    error: errors.GlanceCacheError
    node: str = ""
    image: str | None = None

    @property
    def refused(self) -> bool:
        """A refused login or permission (HTTP 401/403)."""
        return isinstance(self.error, (errors.Unauthorized, errors.Forbidden))

    @property
    def line(self) -> str:
        """One line, no trailing period: the error (it names the node) with its hint, prefixed with what was being
        done to which image for per-image work (``cannot queue 3c02...: http://n1:9292: HTTP 403 ...``)."""
        if self.image is None:
            return describe(self.error)
        return f"cannot {self.action} {self.image}: {describe(self.error)}"


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """Everything one command did: each success and each failure, per node and per image."""

    successes: tuple[Success[T], ...] = ()
    failures: tuple[Failure, ...] = ()
    images: tuple[str, ...] = field(default=())

    @property
    def values(self) -> list[T]:
        return [success.value for success in self.successes]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def refused_only(self) -> bool:
        """Nothing succeeded and every failure was a refused login or permission."""
        return not self.successes and bool(self.failures) and all(f.refused for f in self.failures)

    @property
    def failed_images(self) -> list[str]:
        """The images (ids, or names that resolved to nothing) with at least one failure, in order."""
        return list(dict.fromkeys(f.image for f in self.failures if f.image))


def _from_cluster(result: ClusterResult[T], action: str, image: str | None = None) -> Outcome[T]:
    successes: list[Success[T]] = []
    failures: list[Failure] = []
    for node_result in result:
        if node_result.error is None:
            successes.append(Success(node_result.node, node_result.value, image))  # type: ignore[arg-type]
        else:
            failures.append(Failure(action, node_result.error, node_result.node, image))
    return Outcome(tuple(successes), tuple(failures))


# -- whole-node operations ----------------------------------------------------------------------------------


LIST_STATES = ("cached", "queued")


def list_cache(
    cluster: Cluster, *, state: str | None = None, images: Sequence[str] = (), resolve_names: bool = False
) -> Outcome[CacheState]:
    """Every node's listing, filtered on the client (see :func:`each_listing`), as one Outcome."""
    return _gathered(each_listing(cluster, state=state, images=images, resolve_names=resolve_names))


def list_rows(
    cluster: Cluster, *, state: str | None = None, images: Sequence[str] = (), resolve_names: bool = False
) -> Outcome[ColumnRows]:
    """:func:`list_cache` as each node's rows (see :func:`each_listing_rows`)."""
    return _gathered(each_listing_rows(cluster, state=state, images=images, resolve_names=resolve_names))


def _gathered(items: Iterable[Success[T] | Failure]) -> Outcome[T]:
    successes: list[Success[T]] = []
    failures: list[Failure] = []
    for item in items:
        if isinstance(item, Failure):
            failures.append(item)
        else:
            successes.append(item)
    return Outcome(tuple(successes), tuple(failures))


def each_listing(
    cluster: Cluster, *, state: str | None = None, images: Sequence[str] = (), resolve_names: bool = False
) -> Iterator[Success[CacheState] | Failure]:
    """Each node's listing (or failure) in node order, each as soon as it and the nodes before it answered, so a
    caller can write one node's rows and let them go before the next node's arrive.

    Filters, applied on the client (Glance's API has none): ``state`` keeps only ``cached`` or only ``queued``
    entries; ``images`` keeps only those ids (names too with ``resolve_names``; a name that resolves to nothing
    is a Failure, and nothing is listed). A filtered listing is still a CacheState, so rows keep their shape.
    """
    return _each_listing(
        cluster, CacheState.from_api, _filtered, state=state, images=images, resolve_names=resolve_names
    )


def each_listing_rows(
    cluster: Cluster, *, state: str | None = None, images: Sequence[str] = (), resolve_names: bool = False
) -> Iterator[Success[ColumnRows] | Failure]:
    """:func:`each_listing` with each node's listing as its rows, ``list(views.cache_rows(listing))``, made
    straight from the node's JSON by :func:`views.listing_rows`: what a front end prints, without a model object
    per entry (most of a large listing's time). The same nodes, order, filters and failures."""
    return _each_listing(
        cluster, listing_rows, _filtered_rows, state=state, images=images, resolve_names=resolve_names
    )


def _each_listing(
    cluster: Cluster,
    build: Callable[[object, str], L],
    filtered: Callable[[L, str | None, frozenset[str] | None], L],
    *,
    state: str | None,
    images: Sequence[str],
    resolve_names: bool,
) -> Iterator[Success[L] | Failure]:
    if state is not None and state not in LIST_STATES:
        raise errors.InvalidInput(f"unknown state {state!r}: use {' or '.join(LIST_STATES)}")
    wanted: frozenset[str] | None = None
    if images:
        ids, unresolved = _resolve(cluster, images, resolve_names, "list the cache for")
        if unresolved:
            yield from unresolved
            return
        wanted = frozenset(ids)
    # The nodes are asked at once; each answer is parsed here, when its turn comes, so one parsed listing is held
    # at a time (with 10,000 entries a node, 16 parsed at once would be ~60 MB).
    for result in cluster.each(lambda client: client.listing_later(build)):
        if result.error is not None:
            yield Failure("list the cache", result.error, result.node)
            continue
        parse = result.value
        assert parse is not None
        try:
            listing = parse()
        except errors.GlanceCacheError as exc:
            yield Failure("list the cache", exc, result.node)
            continue
        yield Success(result.node, filtered(listing, state, wanted))
        del listing  # written out by the caller before the next node is parsed


def _filtered(listing: CacheState, state: str | None, wanted: frozenset[str] | None) -> CacheState:
    if state is None and wanted is None:
        return listing
    cached = () if state == "queued" else listing.cached
    queued = () if state == "cached" else listing.queued
    if wanted is not None:
        cached = tuple(image for image in cached if image.image_id in wanted)
        queued = tuple(image_id for image_id in queued if image_id in wanted)
    return CacheState(cached=cached, queued=queued, node=listing.node)


_IMAGE_ID, _STATE = CACHE_COLUMNS.index("image_id"), CACHE_COLUMNS.index("state")


def _filtered_rows(rows: ColumnRows, state: str | None, wanted: frozenset[str] | None) -> ColumnRows:
    """:func:`_filtered`, on rows."""
    if state is not None:
        rows = rows.where(_STATE, functools.partial(operator.eq, state))
    if wanted is not None:
        rows = rows.where(_IMAGE_ID, wanted.__contains__)
    return rows


def clean(cluster: Cluster) -> Outcome[None]:
    return _from_cluster(cluster.clean(), "clean the cache")


def prune(cluster: Cluster) -> Outcome[PruneResult]:
    return _from_cluster(cluster.prune(), "prune the cache")


def clear(cluster: Cluster, target: str | ClearTarget = ClearTarget.BOTH) -> Outcome[ClearResult]:
    """Clear every node; a count a node's policy will not let us have is None (see CacheClient.clear)."""
    return _from_cluster(cluster.clear(target), "clear the cache")


def nodes_of(cluster: Cluster, image: str, *, resolve_names: bool = False) -> Outcome[list[str]]:
    """The node URLs holding ``image``, asked of the first node that answers (the registry is shared)."""
    action = "list the nodes caching"
    found, unresolved = _resolve(cluster, [image], resolve_names, action)
    if unresolved:
        return Outcome(failures=unresolved)
    image_id = found[0]
    passed_over: list[Failure] = []
    for node, client in cluster.clients.items():
        try:
            return Outcome((Success(node, client.nodes(image_id), image_id),), images=(image_id,))
        except (errors.TransportError, errors.ServerError, errors.UnsupportedFeature) as exc:
            passed_over.append(Failure(action, exc, node, image_id))  # another node may answer
        except errors.GlanceCacheError as exc:
            return Outcome(failures=(Failure(action, exc, node, image_id),), images=(image_id,))
    return Outcome(failures=tuple(passed_over), images=(image_id,))


# -- per-image operations -----------------------------------------------------------------------------------


def _resolve(
    cluster: Cluster, given: Sequence[str], resolve_names: bool, action: str
) -> tuple[tuple[str, ...], tuple[Failure, ...]]:
    """Ids for ``given``: ids as given (validated), names looked up when ``resolve_names``."""
    if not resolve_names:
        return tuple(image_ids(given)), ()
    found: list[str] = []
    failures: list[Failure] = []
    client = next(iter(cluster.clients.values()))
    for text in given:
        try:
            found.append(validate_image_id(text))
            continue
        except errors.InvalidInput:
            pass
        try:
            found.append(client.image_id_named(text))
        except errors.GlanceCacheError as exc:
            failures.append(Failure(action, exc, client.endpoint, text))
    return tuple(dict.fromkeys(found)), tuple(failures)


def _each_image(
    cluster: Cluster, ids: Sequence[str], act: Callable[[CacheClient, str], None]
) -> dict[str, list[tuple[str, errors.GlanceCacheError | None]]]:
    """Run ``act`` for every id on every node (nodes concurrently): image id -> [(node, error or None)]."""

    def on_node(client: CacheClient) -> list[errors.GlanceCacheError | None]:
        outcomes: list[errors.GlanceCacheError | None] = []
        for image_id in ids:
            try:
                act(client, image_id)
                outcomes.append(None)
            except errors.GlanceCacheError as exc:
                outcomes.append(exc)
        return outcomes

    per_image: dict[str, list[tuple[str, errors.GlanceCacheError | None]]] = {image_id: [] for image_id in ids}
    for node_result in cluster.run(on_node):
        for image_id, error in zip(ids, node_result.value or [node_result.error] * len(ids), strict=True):
            per_image[image_id].append((node_result.node, error))
    return per_image


def _prepare_wait(
    cluster: Cluster, timeout: float, interval: float, action: str
) -> tuple[float, float, tuple[Failure, ...]]:
    """Checked wait settings, and a Failure per node that cannot cache on demand (pre-Yoga: only
    glance-cache-prefetcher does), so a wait is refused before anything changes rather than waited out."""
    timeout = validate_seconds(timeout)
    interval = validate_seconds(interval, "interval")
    checks = cluster.run(lambda client: client.check_can_wait())
    return timeout, interval, () if checks.ok else _from_cluster(checks, action).failures


def queue(
    cluster: Cluster,
    images: Sequence[str],
    *,
    resolve_names: bool = False,
    wait: bool = False,
    timeout: float = 300.0,
    interval: float = 1.0,
    on_waiting: Callable[[int], None] | None = None,
    on_cached: Callable[[int], None] | None = None,
) -> Outcome[None]:
    """Queue every image on every node; with ``wait``, succeed per (node, image) only once it is cached
    (``on_waiting(n)`` says how many (node, image) pairs it waits for, ``on_cached(n)`` as they arrive).

    ``timeout`` bounds the whole wait, its requests included. A node that cannot cache on demand (pre-Yoga,
    where only glance-cache-prefetcher does) makes ``wait`` refuse at once, before anything is queued.
    """
    ids, unresolved = _resolve(cluster, images, resolve_names, "queue")
    if wait:
        timeout, interval, refusals = _prepare_wait(cluster, timeout, interval, "queue (nothing queued)")
        if refusals:
            return Outcome(failures=unresolved + refusals)
    done: list[Success[None]] = []
    failures = list(unresolved)
    for image_id, answers in _each_image(cluster, ids, lambda client, i: client.queue(i)).items():
        for node, error in answers:
            if error is None:
                done.append(Success(node, None, image_id))
            else:
                failures.append(Failure("queue", error, node, image_id))
    if wait and done:
        pairs = [(success.node, success.image or "") for success in done]
        if on_waiting is not None:
            on_waiting(len(pairs))
        missed = cluster.wait_until_cached(pairs, timeout=timeout, interval=interval, on_cached=on_cached)
        done = [s for s in done if (s.node, s.image) not in missed]
        for (node, image_id), error in sorted(missed.items()):
            failures.append(Failure("cache", error, node, image_id))
    return Outcome(tuple(done), tuple(failures), ids)


def delete(
    cluster: Cluster, images: Sequence[str], *, resolve_names: bool = False, ignore_missing: bool = False
) -> Outcome[None]:
    """Remove every image from every node's cache and queue, under the 404 rule in this module's docstring."""
    ids, unresolved = _resolve(cluster, images, resolve_names, "delete")
    done: list[Success[None]] = []
    failures = list(unresolved)
    for image_id, answers in _each_image(cluster, ids, lambda client, i: client.delete(i)).items():
        missing = [node for node, error in answers if isinstance(error, errors.NotFound)]
        absent_is_fine = ignore_missing or len(missing) < len(answers)
        for node, error in answers:
            if error is None or (absent_is_fine and isinstance(error, errors.NotFound)):
                done.append(Success(node, None, image_id))
            else:
                failures.append(Failure("delete", error, node, image_id))
    return Outcome(tuple(done), tuple(failures), ids)


# -- desired state and summaries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report(Outcome[T]):
    """An Outcome with a row for every item, failed ones included (``items``, in node order): a summary's failed
    node and a sync step that failed are rows too, carrying their error."""

    items: tuple[T, ...] = ()


def summary(cluster: Cluster) -> Report[NodeSummary]:
    """Each node's totals (cached images and bytes, queued images, hits, last access); a node that fails gets a
    row with its one-line error, and a Failure."""
    successes: list[Success[NodeSummary]] = []
    failures: list[Failure] = []
    items: list[NodeSummary] = []
    for node_result in cluster.list():
        if node_result.error is None and node_result.value is not None:
            items.append(NodeSummary.of(node_result.value))
            successes.append(Success(node_result.node, items[-1]))
        elif node_result.error is not None:
            failures.append(Failure("summarize the cache", node_result.error, node_result.node))
            items.append(NodeSummary(node_result.node, error=describe(node_result.error)))
    return Report(tuple(successes), tuple(failures), items=tuple(items))


def sync(
    cluster: Cluster,
    images: Sequence[str] = (),
    *,
    tags: Sequence[str] = (),
    exact: bool = False,
    dry_run: bool = False,
    resolve_names: bool = False,
    wait: bool = False,
    timeout: float = 300.0,
    interval: float = 1.0,
    page_size: int | None = None,
    on_waiting: Callable[[int], None] | None = None,
    on_cached: Callable[[int], None] | None = None,
) -> Report[SyncStep]:
    """Bring every node's cache to a desired set: ``images`` plus every active image carrying any of ``tags``.

    On each node, queue each desired image that is neither cached nor queued (``keep`` the others); with
    ``exact``, also delete cached images outside the set and dequeue queued ones (removals go first, to make
    room). ``dry_run`` plans only. The desired set is settled once, before any node changes: names and tags are
    looked up on the first node that answers, and if that fails nothing changes. ``exact`` with an empty set is
    refused (InvalidInput), so a tag that matches nothing never empties every cache. ``wait`` then waits, as
    :func:`queue` does, until every node holds the whole set (``on_waiting(n)`` says how many (node, image)
    pairs it waits for, ``on_cached(n)`` as they arrive).
    """
    desired, failures = _desired_set(cluster, images, tags, resolve_names, page_size)
    if failures:
        return Report(failures=failures)
    if exact and not desired:
        why = " (no active image carries " + ", ".join(tags) + ")" if tags else ""
        refusal = errors.InvalidInput(
            f"refusing --exact with an empty desired set{why}: it would empty every node's cache;"
            " use cache-clear to empty caches on purpose"
        )
        return Report(failures=(Failure("sync", refusal),))
    if wait and not dry_run:
        timeout, interval, refusals = _prepare_wait(cluster, timeout, interval, "sync (nothing changed)")
        if refusals:
            return Report(failures=refusals, images=desired)

    def on_node(client: CacheClient) -> list[tuple[SyncStep, errors.GlanceCacheError | None]]:
        state = client.list()
        plan = _plan(state, desired, exact)
        if dry_run:
            return [(step, None) for step in plan]
        done: list[tuple[SyncStep, errors.GlanceCacheError | None]] = []
        for step in plan:
            try:
                if step.action == "queue":
                    client.queue(step.image_id)
                elif step.action != "keep":
                    _remove(client, step.image_id)
                done.append((step, None))
            except errors.GlanceCacheError as exc:
                done.append((step, exc))
        return done

    steps: dict[tuple[str, str], tuple[SyncStep, errors.GlanceCacheError | None]] = {}
    node_failures: list[Failure] = []
    for node_result in cluster.run(on_node):
        if node_result.error is not None:
            node_failures.append(Failure("list the cache", node_result.error, node_result.node))
        for step, error in node_result.value or ():
            steps[(step.node, step.image_id)] = (step, error)
    if wait and not dry_run:
        pairs = [key for key, (step, error) in steps.items() if error is None and step.action in ("queue", "keep")]
        if on_waiting is not None:
            on_waiting(len(pairs))
        missed = cluster.wait_until_cached(pairs, timeout=timeout, interval=interval, on_cached=on_cached)
        for key, error in missed.items():
            steps[key] = (steps[key][0], error)
    else:
        missed = {}
    return _sync_report(steps.values(), node_failures, desired, set(missed), applied=not dry_run)


def _desired_set(
    cluster: Cluster, images: Sequence[str], tags: Sequence[str], resolve_names: bool, page_size: int | None
) -> tuple[tuple[str, ...], tuple[Failure, ...]]:
    """The given ids (names resolved) plus each tag's active images, looked up once on the first node that
    answers; any failure is returned (then the set is unknown and nothing may change)."""
    given, unresolved = _resolve(cluster, images, resolve_names, "sync")
    if unresolved or not tags:
        return given, unresolved
    tagged: list[str] = []
    passed_over: list[Failure] = []
    for node, client in cluster.clients.items():
        try:
            for tag in dict.fromkeys(tags):
                tagged.extend(client.images_tagged(tag, page_size=page_size))
            return tuple(dict.fromkeys([*given, *tagged])), ()
        except (errors.TransportError, errors.ServerError, errors.UnsupportedFeature) as exc:
            passed_over.append(Failure("look up tagged images", exc, node))  # another node may answer
            tagged.clear()
        except errors.GlanceCacheError as exc:
            return (), (Failure("look up tagged images", exc, node),)
    return (), tuple(passed_over)


def _plan(state: CacheState, desired: Sequence[str], exact: bool) -> list[SyncStep]:
    """Removals first (they make room), then each desired image: keep what is cached or queued, queue the rest."""
    cached = {image.image_id for image in state.cached}
    present = cached | set(state.queued)
    wanted = set(desired)
    plan: list[SyncStep] = []
    if exact:
        plan += [
            SyncStep(state.node, image_id, "delete")
            for image_id in dict.fromkeys(image.image_id for image in state.cached)
            if image_id not in wanted
        ]
        plan += [
            SyncStep(state.node, image_id, "dequeue")
            for image_id in dict.fromkeys(state.queued)
            if image_id not in wanted and image_id not in cached
        ]
    for image_id in desired:
        plan.append(SyncStep(state.node, image_id, "keep" if image_id in present else "queue"))
    return plan


def _remove(client: CacheClient, image_id: str) -> None:
    """DELETE /v2/cache/{id} (removes a cached file and a queued entry alike); a 404 means it already went."""
    with contextlib.suppress(errors.NotFound):
        client.delete(image_id)


def _sync_report(
    steps: Iterable[tuple[SyncStep, errors.GlanceCacheError | None]],
    node_failures: Sequence[Failure],
    desired: tuple[str, ...],
    not_cached: set[tuple[str, str]],
    *,
    applied: bool,
) -> Report[SyncStep]:
    successes: list[Success[SyncStep]] = []
    failures = list(node_failures)
    items: list[SyncStep] = []
    for step, error in steps:
        result = None if not applied else "ok" if error is None else describe(error)
        item = SyncStep(step.node, step.image_id, step.action, result)
        items.append(item)
        if error is None:
            successes.append(Success(step.node, item, step.image_id))
        else:
            action = "cache" if (step.node, step.image_id) in not_cached else step.action
            failures.append(Failure(action, error, step.node, step.image_id))
    return Report(tuple(successes), tuple(failures), desired, items=tuple(items))
