"""Cluster: run any cache operation on many Glance nodes at once, keeping every node's result or error.

The cache is local to each node, so an operator behind a load balancer has to ask every node. A Cluster holds
one pooled :class:`~glancecache_client.CacheClient` per node, shares one token source between them (so a
keystone session authenticates once for the whole fan-out), runs calls concurrently on a thread pool, and
returns per-node results and per-node errors side by side: a failing node never hides the healthy ones.
"""

from __future__ import annotations

import builtins
import collections
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from .auth import SessionTokens, TokenSource, token_source_for
from .client import CacheClient
from .deadline import bounded, passed
from .errors import CacheWaitTimeout, GlanceCacheError, InvalidInput, RequestTimeout
from .models import CachedImage, CacheState, ClearResult, ClearTarget, PruneResult
from .nodes import normalize_endpoint, validate_image_id, validate_seconds

if TYPE_CHECKING:
    from keystoneauth1.session import Session

__all__ = ["Cluster", "ClusterResult", "NodeResult"]

T = TypeVar("T")


@dataclass(frozen=True)
class NodeResult(Generic[T]):
    """One node's outcome: a value, or the error that node raised."""

    node: str
    value: T | None = None
    error: GlanceCacheError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ClusterResult(Generic[T]):
    """Every node's outcome, in the order the nodes were given."""

    results: tuple[NodeResult[T], ...]

    def __iter__(self) -> Iterator[NodeResult[T]]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def ok(self) -> bool:
        """True when no node failed."""
        return all(result.ok for result in self.results)

    @property
    def values(self) -> list[T]:
        """The values of the nodes that succeeded."""
        return [result.value for result in self.results if result.ok]  # type: ignore[misc]

    @property
    def errors(self) -> list[NodeResult[T]]:
        """The nodes that failed, with their errors."""
        return [result for result in self.results if not result.ok]

    def raise_first(self) -> None:
        """Raise the first node's error, if any node failed."""
        for result in self.results:
            if result.error is not None:
                raise result.error


class Cluster:
    """Many Glance API nodes, addressed together. Nodes are ``host``, ``host:port`` or URLs."""

    def __init__(
        self,
        endpoints: Iterable[str],
        *,
        token: str | None = None,
        session: Session | None = None,
        auth: Any = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        timeout: float = 30.0,
        max_workers: int | None = None,
        token_source: TokenSource | None = None,
        transport_factory: Callable[[str], httpx.BaseTransport] | None = None,
    ) -> None:
        """``transport_factory(node_url)`` gives each node's httpx transport (tests, proxies, embedding):
        without it every node gets the library's own deadline-enforcing transport."""
        if token_source is None:
            token_source = token_source_for(token=token, session=session, auth=auth, verify=verify, cert=cert)
        self.token_source = token_source
        self.clients: dict[str, CacheClient] = {}
        for endpoint in endpoints:
            url = normalize_endpoint(endpoint)  # checked here, once; CacheClient gets the canonical URL
            if url in self.clients:
                continue  # the same node twice would double every side effect
            transport = transport_factory(url) if transport_factory is not None else None
            self.clients[url] = CacheClient(
                url, verify=verify, cert=cert, timeout=timeout, token_source=token_source, transport=transport
            )
        if not self.clients:
            raise InvalidInput("no nodes given: pass at least one host, host:port or URL")
        # One thread per node, uncapped: the work is waiting on the network, so a cap below the node count makes
        # the last nodes wait a whole round trip for a free thread (100 nodes took 2.5x one node's time at 64).
        # Threads start only as calls are submitted, and an idle one costs little but its (virtual) stack.
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers or len(self.clients), thread_name_prefix="glancecache"
        )
        self._lock = threading.Lock()
        self._running: set[Future[Any]] = set()  # calls submitted and not done yet
        self._closed = False

    @property
    def endpoints(self) -> list[str]:
        return list(self.clients)

    def run(self, operation: Callable[[CacheClient], T]) -> ClusterResult[T]:
        """Run ``operation`` on every node concurrently; library errors become per-node results."""
        return ClusterResult(tuple(self.each(operation)))

    def each(self, operation: Callable[[CacheClient], T]) -> Iterator[NodeResult[T]]:
        """Run ``operation`` on every node concurrently and yield each node's result in node order, as soon as it
        and the nodes before it are done: a caller can use and drop one node's (possibly large) answer before
        taking the next. Library errors become per-node results, as in :meth:`run`."""

        def one(client: CacheClient, early: bool = False) -> NodeResult[T]:
            try:
                if early:
                    client._connect_early()
                return NodeResult(client.endpoint, value=operation(client))
            except GlanceCacheError as exc:
                return NodeResult(client.endpoint, error=exc)
            finally:
                if early:
                    client._forget_early()

        if len(self.clients) == 1:
            yield one(next(iter(self.clients.values())))
            return
        # Cold (a keystone session without a token yet): the first node's thread fetches the token, and every
        # other node's thread opens its connection meanwhile rather than after it (see CacheClient._connect_early).
        source = self.token_source
        cold = isinstance(source, SessionTokens) and not source.has_token
        pending = collections.deque(
            self._submit(one, client, cold and index > 0) for index, client in enumerate(self.clients.values())
        )
        while pending:
            yield pending.popleft().result()  # popped: the future no longer holds the answer once it is used

    def list(self) -> ClusterResult[CacheState]:
        return self.run(lambda client: client.list())

    def queue(self, image_id: str) -> ClusterResult[None]:
        image_id = validate_image_id(image_id)
        return self.run(lambda client: client.queue(image_id))

    def delete(self, image_id: str) -> ClusterResult[None]:
        image_id = validate_image_id(image_id)
        return self.run(lambda client: client.delete(image_id))

    def clear(self, target: str | ClearTarget = ClearTarget.BOTH) -> ClusterResult[ClearResult]:
        try:
            parsed = ClearTarget.parse(target)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return self.run(lambda client: client.clear(parsed))

    def clean(self) -> ClusterResult[None]:
        return self.run(lambda client: client.clean())

    def prune(self) -> ClusterResult[PruneResult]:
        return self.run(lambda client: client.prune())

    def nodes(self, image_id: str) -> ClusterResult[builtins.list[str]]:
        image_id = validate_image_id(image_id)
        return self.run(lambda client: client.nodes(image_id))

    def wait_cached(self, image_id: str, timeout: float = 300.0, interval: float = 1.0) -> ClusterResult[CachedImage]:
        image_id = validate_image_id(image_id)
        return self.run(lambda client: client.wait_cached(image_id, timeout=timeout, interval=interval))

    def wait_until_cached(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        timeout: float = 300.0,
        interval: float = 1.0,
        on_cached: Callable[[int], None] | None = None,
    ) -> dict[tuple[str, str], GlanceCacheError]:
        """Wait until every ``(node, image_id)`` pair is cached, within one overall ``timeout``.

        Each round lists every node that still has pending pairs once (concurrently), however many images it
        waits for; ``timeout`` bounds those requests too. ``on_cached(n)`` is told as pairs arrive (for progress
        bars). Returns the pairs that did not make it, each with why: the node's error (CannotWait at once for a
        pre-Yoga node, where only glance-cache-prefetcher caches queued images), or CacheWaitTimeout.
        """
        timeout = validate_seconds(timeout)
        interval = validate_seconds(interval, "interval")
        pending: set[tuple[str, str]] = set()
        for given_node, image_id in pairs:
            node = normalize_endpoint(given_node)
            if node not in self.clients:
                raise InvalidInput(f"{node} is not a node of this cluster: use one of {', '.join(self.clients)}")
            pending.add((node, validate_image_id(image_id)))
        failed: dict[tuple[str, str], GlanceCacheError] = {}
        deadline = time.monotonic() + timeout
        while pending:
            listings = self.run(functools.partial(_list_if_waiting, {node for node, _ in pending}, deadline))
            for listing in listings:
                mine = {pair for pair in pending if pair[0] == listing.node}
                if isinstance(listing.error, RequestTimeout) and passed(deadline):
                    continue  # the wait's deadline cut the listing short: these pairs timed out
                if listing.error is not None:
                    failed.update(dict.fromkeys(mine, listing.error))
                    pending -= mine
                    continue
                state = listing.value
                arrived = {pair for pair in mine if state is not None and state.is_cached(pair[1])}
                pending -= arrived
                if arrived and on_cached is not None:
                    on_cached(len(arrived))
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            time.sleep(min(interval, remaining))
        for node, image_id in pending:
            failed[(node, image_id)] = CacheWaitTimeout(node, image_id, timeout)
        return failed

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")  # the executor's own words
            future = self._pool.submit(fn, *args)
            self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    def close(self, *, abandon: bool = False) -> None:
        """Wait for the calls under way (an ``each`` left unfinished may have some), then close every node's
        connections. The idle threads are told to end afterwards, and not waited for: joining 100 of them
        took 3-10 ms (and ending them first slowed the closing of the connections).

        With ``abandon`` (what leaving the ``with`` block by an exception does, Ctrl-C included) nothing is waited
        for: calls not started are cancelled and every node's connections are closed at once, which ends the
        requests in flight with an error. A request already sent may still take effect on its node. (Waiting
        made Ctrl-C in front of a node answering slowly take as long as that node.)
        """
        with self._lock:
            self._closed = True
            running = list(self._running)
        if abandon:
            for future in running:
                future.cancel()  # those not started yet; no call can be submitted any more
        else:
            wait(running)
        for client in self.clients.values():
            client.close()
        self._pool.shutdown(wait=False)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(abandon=exc_type is not None)


def _list_if_waiting(waiting: set[str], deadline: float, client: CacheClient) -> CacheState | None:
    if client.endpoint not in waiting:
        return None
    with bounded(deadline):
        client.check_can_wait()
        return client.list()
