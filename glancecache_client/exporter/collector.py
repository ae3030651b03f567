"""The metrics: one custom prometheus-client Collector that asks every node afresh on each scrape.

Nothing is kept between scrapes but the requests still in flight, so an image that left a node's cache, or a
node removed from the command line, simply stops being reported (no stale gauge lingers). Each node is asked
on its own thread within one deadline per scrape (``scrape_timeout``): a slow or dead node shows
``glance_cache_up 0`` when the deadline passes, and the other nodes' answers are served all the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..cluster import Cluster
from ..deadline import bounded
from ..models import CacheState

__all__ = ["CacheCollector", "NodeScrape"]

log = logging.getLogger(__name__)

# How long past the deadline a scrape still waits for a node's thread. Every socket operation already ends at
# the deadline; this covers what runs outside it (a keystoneauth1 token refresh has its own timeout).
GRACE = 0.25


@dataclass(frozen=True)
class NodeScrape:
    """One node's answer to one scrape: its cache state, or why there is none."""

    node: str
    state: CacheState | None
    error: str | None
    seconds: float


class CacheCollector(Collector):
    """Collects the cache metrics of every node of ``cluster``; ``close()`` when done (the cluster is the
    caller's to close)."""

    def __init__(self, cluster: Cluster, scrape_timeout: float = 10.0) -> None:
        self.cluster = cluster
        self.scrape_timeout = scrape_timeout
        # One thread per node, so a node that hangs until the deadline never holds up another's request.
        self._pool = ThreadPoolExecutor(max_workers=len(cluster.clients), thread_name_prefix="glancecache-scrape")
        self._lock = threading.Lock()
        # A node's request still running when a second scrape starts (two Prometheus servers, or a hang past
        # the grace) is shared, not repeated: a dead node never piles up threads.
        self._in_flight: dict[str, Future[NodeScrape]] = {}
        self._down: dict[str, str] = {}  # node -> its last error, to log changes rather than every scrape

    def scrape(self) -> list[NodeScrape]:
        """Ask every node now; returns within about ``scrape_timeout`` whatever the nodes do."""
        started = time.monotonic()
        deadline = started + self.scrape_timeout
        futures = {node: self._submit(node, deadline) for node in self.cluster.clients}
        wait(futures.values(), timeout=self.scrape_timeout + GRACE)
        scrapes = []
        for node, future in futures.items():
            if future.done():
                scrapes.append(future.result())
            else:
                waited = time.monotonic() - started
                scrapes.append(NodeScrape(node, None, f"no answer within {self.scrape_timeout:g} s", waited))
        self._log_changes(scrapes)
        return scrapes

    def _submit(self, node: str, deadline: float) -> Future[NodeScrape]:
        with self._lock:
            running = self._in_flight.get(node)
            if running is not None and not running.done():
                return running
            future = self._pool.submit(self._ask, node, deadline)
            self._in_flight[node] = future
            return future

    def _ask(self, node: str, deadline: float) -> NodeScrape:
        started = time.monotonic()
        try:
            with bounded(deadline):
                state = self.cluster.clients[node].list()
        except Exception as exc:  # a scrape never fails: whatever went wrong is this node's error
            message = " ".join(str(exc).split()) or type(exc).__name__
            return NodeScrape(node, None, message, time.monotonic() - started)
        return NodeScrape(node, state, None, time.monotonic() - started)

    def _log_changes(self, scrapes: list[NodeScrape]) -> None:
        with self._lock:  # (concurrent scrapes)
            for scrape in scrapes:
                before = self._down.get(scrape.node)
                if scrape.error is not None and scrape.error != before:
                    log.warning("%s is down: %s", scrape.node, scrape.error)
                    self._down[scrape.node] = scrape.error
                elif scrape.error is None and before is not None:
                    log.warning("%s is up again", scrape.node)
                    del self._down[scrape.node]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        scrapes = self.scrape()
        up = _gauge("glance_cache_up", "1 if the node's cache API answered this scrape, else 0.", "node")
        images = _gauge("glance_cache_images", "Images cached on the node, or queued for it.", "node", "state")
        size = _gauge("glance_cache_size_bytes", "Bytes of all cached images on the node.", "node")
        hits = _gauge("glance_cache_hits", "Hits of the images now cached on the node (drops as one leaves).", "node")
        image_size = _gauge("glance_cache_image_size_bytes", "Size of one cached image.", "node", "image_id")
        image_hits = _gauge("glance_cache_image_hits", "Cache hits of one cached image.", "node", "image_id")
        duration = _gauge(
            "glance_cache_scrape_duration_seconds", "How long the node took to answer this scrape.", "node"
        )
        for scrape in scrapes:
            node = scrape.node
            up.add_metric([node], 0 if scrape.state is None else 1)
            duration.add_metric([node], scrape.seconds)
            state = scrape.state
            if state is None:
                continue  # a node that did not answer has no values, rather than made-up zeros
            images.add_metric([node, "cached"], len(state.cached))
            images.add_metric([node, "queued"], len(state.queued))
            size.add_metric([node], state.total_size)
            hits.add_metric([node], sum(image.hits for image in state.cached))
            for image in state.cached:
                image_size.add_metric([node, image.image_id], image.size)
                image_hits.add_metric([node, image.image_id], image.hits)
        yield from (up, images, size, hits, image_size, image_hits, duration)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    # Gauges, hits included: a hit count leaves with its image, so it is not a counter that only grows.
    return GaugeMetricFamily(name, documentation, labels=list(labels))
