"""A hypothesis state machine over real HTTP: a 2-node reference cluster driven through the library.

Every run starts its own cluster (``run_cluster(nodes=2, auth="noauth")`` on ephemeral ports, a small
``max_size`` and a fresh data directory), so runs are independent. Cache operations go through one
``CacheClient`` per node; the image API (upload, full and ranged download, deactivate/reactivate, delete)
through plain httpx. A plain Python model of each node's cache predicts, after every step: each node's listing
(ids, sizes, hits, last_accessed order; the queue is always empty because every queue is waited out), the
files in each node's cache directory, ``nodes(image_id)``, and the counts ``clear`` and ``prune`` return
(prune: least recently accessed first, stopping at or under ``max_size``).

``max_size`` is about two images' worth, and every run starts with a few images cached on each node: with
only 15 examples, random steps alone seldom filled a node past three images' worth before a clear emptied it,
so prune was rarely exercised. Shrinking is off (see the settings at the bottom)."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from glancecache_client import CacheClient, CacheState, errors
from glancecache_client.server.runner import run_cluster

NODES = 2
# Sizes in steps of 8 bytes, so a node often holds exactly MAX_SIZE: prune's "at or under" boundary gets hit.
IMAGE_BYTES = st.sampled_from([8, 16, 24]).flatmap(lambda size: st.binary(min_size=size, max_size=size))
MAX_SIZE = 32  # about two images' worth: a node holding two or more is often over it
MAX_LIVE_IMAGES = 5
MAX_IMAGES = 8  # ever uploaded in one run
WAIT_TIMEOUT = 10.0  # only reached when something is wrong
POLL_INTERVAL = 0.005

pytestmark = pytest.mark.timeout(120)


@dataclass
class Entry:
    """One image in one node's cache, as the model expects it."""

    size: int
    hits: int
    tick: int  # logical time of the last full read (or of caching, if never read): the LRU key


class ClusterCacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="glancecache-api-sm-"))
        self._running = run_cluster(nodes=NODES, auth="noauth", max_size=MAX_SIZE, data_dir=self.tmp)
        self.cluster = self._running.__enter__()
        self.urls = list(self.cluster.urls)
        self.http = httpx.Client(timeout=30)
        self.clients = [CacheClient(url, timeout=30) for url in self.urls]
        self.data: dict[str, bytes] = {}  # every image ever uploaded, by id
        self.active: set[str] = set()  # live images with data, status active
        self.deactivated: set[str] = set()  # live images with data, status deactivated
        self.deleted: set[str] = set()
        self.no_data = ""  # a live image whose data was never uploaded (status "queued")
        self.unknown = ""  # an id no image ever had
        self.caches: list[dict[str, Entry]] = [{} for _ in range(NODES)]
        self.tick = 0

    def teardown(self) -> None:
        for client in self.clients:
            client.close()
        self.http.close()
        self._running.__exit__(None, None, None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------------------------

    def _now(self) -> int:
        self.tick += 1
        return self.tick

    def _ordered(self, image_ids: set[str]) -> list[str]:
        """In upload order: ids are random, so sorting them would make replayed draws pick other images."""
        return [image_id for image_id in self.data if image_id in image_ids]

    def _live(self) -> list[str]:
        return self._ordered(self.active | self.deactivated)

    def _create(self, node: int, name: str) -> str:
        created = self.http.post(
            f"{self.urls[node]}/v2/images", json={"name": name, "container_format": "bare", "disk_format": "raw"}
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def _upload(self, node: int, payload: bytes) -> None:
        image_id = self._create(node, "sm")
        uploaded = self.http.put(
            f"{self.urls[node]}/v2/images/{image_id}/file",
            content=payload,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert uploaded.status_code == 204, uploaded.text
        self.data[image_id] = payload
        self.active.add(image_id)

    def _wait_settled(self, node: int, image_id: str) -> None:
        """Poll until the image is cached on the node and its queue is empty (the worker is asynchronous)."""
        client = self.clients[node]
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            state = client.list()
            if state.is_cached(image_id) and not state.queued:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{image_id} not cached with an empty queue on {self.urls[node]}: {state}")
            time.sleep(POLL_INTERVAL)

    def _became_cached(self, node: int, image_id: str) -> None:
        self._wait_settled(node, image_id)
        self.caches[node][image_id] = Entry(size=len(self.data[image_id]), hits=0, tick=self._now())

    def _lru_order(self, node: int) -> list[str]:
        """The node's cached ids, least recently accessed first."""
        return sorted(self.caches[node], key=lambda image_id: self.caches[node][image_id].tick)

    def _holders(self, image_id: str) -> set[str]:
        return {self.urls[node] for node in range(NODES) if image_id in self.caches[node]}

    # -- rules -----------------------------------------------------------------------------------------------

    @initialize(node=st.integers(0, NODES - 1), payloads=st.lists(IMAGE_BYTES, min_size=3, max_size=4), data=st.data())
    def create_and_warm(self, node: int, payloads: list[bytes], data: st.DataObject) -> None:
        """Upload a few images, then queue some of them on each node so every run starts with cached entries."""
        for payload in payloads:
            self._upload(node, payload)
        self.no_data = self._create(node, "sm-no-data")
        self.unknown = str(uuid.uuid4())
        images = self._ordered(self.active)
        for warmed in range(NODES):
            order = data.draw(st.permutations(images), label=f"warming order, node {warmed}")
            for image_id in order[: data.draw(st.integers(1, len(order)), label=f"warmed, node {warmed}")]:
                self._queue(warmed, image_id)

    @precondition(lambda self: len(self._live()) < MAX_LIVE_IMAGES and len(self.data) < MAX_IMAGES)
    @rule(node=st.integers(0, NODES - 1), payload=IMAGE_BYTES)
    def upload_image(self, node: int, payload: bytes) -> None:
        self._upload(node, payload)

    @precondition(lambda self: bool(self.active))
    @rule(node=st.integers(0, NODES - 1), data=st.data())
    def queue(self, node: int, data: st.DataObject) -> None:
        """Queue one to four images, one at a time (each waited out, so the LRU order is known)."""
        chosen = data.draw(
            st.lists(st.sampled_from(self._ordered(self.active)), min_size=1, max_size=4), label="queued"
        )
        for image_id in chosen:
            self._queue(node, image_id)

    def _queue(self, node: int, image_id: str) -> None:
        self.clients[node].queue(image_id)
        if image_id not in self.caches[node]:
            self._became_cached(node, image_id)
        else:
            assert not self.clients[node].list().queued  # queueing a cached image changes nothing

    @rule(node=st.integers(0, NODES - 1), data=st.data())
    def queue_rejected(self, node: int, data: st.DataObject) -> None:
        """Deleted and never-created ids: 404 to queue and to download; inactive images: 400 to queue."""
        gone = [*self._ordered(self.deleted), self.unknown]
        inactive = [self.no_data, *self._ordered(self.deactivated)]
        image_id = data.draw(st.sampled_from(gone + inactive), label="rejected image")
        expected = errors.NotFound if image_id in gone else errors.BadRequest
        with pytest.raises(expected):
            self.clients[node].queue(image_id)
        if image_id in gone:
            assert self.http.get(f"{self.urls[node]}/v2/images/{image_id}/file").status_code == 404
            with pytest.raises(errors.NotFound):
                self.clients[node].nodes(image_id)

    # Downloads pick active images only: an admin's download of a deactivated image passes the cache by
    # (Glance 33 behaviour), which this model does not track; test_scenarios covers that case.
    @precondition(lambda self: bool(self.active))
    @rule(node=st.integers(0, NODES - 1), data=st.data())
    def full_download(self, node: int, data: st.DataObject) -> None:
        image_id = data.draw(st.sampled_from(self._ordered(self.active)), label="downloaded image")
        response = self.http.get(f"{self.urls[node]}/v2/images/{image_id}/file")
        assert response.status_code == 200
        assert response.content == self.data[image_id]
        entry = self.caches[node].get(image_id)
        if entry is None:
            event("download filled the cache")
            self._became_cached(node, image_id)  # transparent caching: the download filled this node's cache
        else:
            entry.hits += 1  # served from this node's cache
            event("download served from cache")
            entry.tick = self._now()

    @precondition(lambda self: bool(self.active))
    @rule(node=st.integers(0, NODES - 1), data=st.data())
    def ranged_download(self, node: int, data: st.DataObject) -> None:
        image_id = data.draw(st.sampled_from(self._ordered(self.active)), label="ranged image")
        payload = self.data[image_id]
        first = data.draw(st.integers(0, len(payload) - 1), label="first byte")
        last = data.draw(st.integers(first, len(payload) - 1), label="last byte")
        # Glance honours the old request-side Content-Range as well as Range; neither touches the cache.
        header = data.draw(st.sampled_from(["Range", "Content-Range"]), label="header")
        value = f"bytes={first}-{last}" if header == "Range" else f"bytes {first}-{last}/*"
        response = self.http.get(f"{self.urls[node]}/v2/images/{image_id}/file", headers={header: value})
        assert response.status_code == 206
        assert response.content == payload[first : last + 1]
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(payload)}"
        # A ranged read never fills the cache and never counts a hit: the model does not change.

    @rule(node=st.integers(0, NODES - 1), data=st.data())
    def delete_entry(self, node: int, data: st.DataObject) -> None:
        candidates = [*self._live(), self.no_data, *self._ordered(self.deleted), self.unknown]
        image_id = data.draw(st.sampled_from(candidates), label="deleted entry")
        known_here = image_id in self.caches[node]
        if image_id in self.deleted or image_id == self.unknown:
            assert not known_here  # deleting an image purges every node's cache
            with pytest.raises(errors.NotFound):
                self.clients[node].delete(image_id)
            return
        self.clients[node].delete(image_id)  # idempotent for existing images, cached or not
        self.caches[node].pop(image_id, None)

    @rule(node=st.integers(0, NODES - 1), which=st.sampled_from(["cache", "queue", "both"]))
    def clear(self, node: int, which: str) -> None:
        result = self.clients[node].clear(which)
        expected_cached = len(self.caches[node]) if which in ("cache", "both") else 0
        assert (result.cached, result.queued) == (expected_cached, 0)
        event(f"clear {which} removed {'some' if expected_cached else 'nothing'}")
        if which in ("cache", "both"):
            self.caches[node].clear()

    @rule(node=st.integers(0, NODES - 1))
    def prune(self, node: int) -> None:
        self._prune(node)

    @precondition(lambda self: bool(self._over_limit()))
    @rule(data=st.data())
    def prune_over_limit(self, data: st.DataObject) -> None:
        """Prune a node holding more than max_size (random steps alone rarely get there before a clear)."""
        self._prune(data.draw(st.sampled_from(self._over_limit()), label="node over the limit"))

    def _over_limit(self) -> list[int]:
        return [node for node in range(NODES) if sum(e.size for e in self.caches[node].values()) > MAX_SIZE]

    def _prune(self, node: int) -> None:
        """Least recently accessed first, until the node holds at most max_size bytes."""
        cache = self.caches[node]
        before = [(image_id, cache[image_id].size) for image_id in self._lru_order(node)]
        total = sum(size for _, size in before)
        files = pruned = 0
        for image_id, size in before:
            if total <= MAX_SIZE:
                break
            del cache[image_id]
            files += 1
            pruned += size
            total -= size
        result = self.clients[node].prune()
        assert (result.files, result.bytes) == (files, pruned), f"max_size {MAX_SIZE}, LRU first: {before}"
        event(f"prune removed {min(files, 2)}{'+' if files > 2 else ''} files")

    @rule(node=st.integers(0, NODES - 1))
    def clean(self, node: int) -> None:
        self.clients[node].clean()  # nothing invalid or stalled here: no cached entry may change

    @precondition(lambda self: bool(self.active | self.deactivated))
    @rule(node=st.integers(0, NODES - 1), data=st.data())
    def toggle_status(self, node: int, data: st.DataObject) -> None:
        """Deactivate an active image or reactivate a deactivated one; cache entries stay either way."""
        image_id = data.draw(st.sampled_from(self._live()), label="toggled image")
        action = "reactivate" if image_id in self.deactivated else "deactivate"
        response = self.http.post(f"{self.urls[node]}/v2/images/{image_id}/actions/{action}")
        assert response.status_code == 204, response.text
        if action == "deactivate":
            self.active.discard(image_id)
            self.deactivated.add(image_id)
        else:
            self.deactivated.discard(image_id)
            self.active.add(image_id)

    @precondition(lambda self: bool(self.active | self.deactivated))
    @rule(node=st.integers(0, NODES - 1), data=st.data())
    def delete_image(self, node: int, data: st.DataObject) -> None:
        image_id = data.draw(st.sampled_from(self._live()), label="deleted image")
        response = self.http.delete(f"{self.urls[node]}/v2/images/{image_id}")
        assert response.status_code == 204, response.text
        self.active.discard(image_id)
        self.deactivated.discard(image_id)
        self.deleted.add(image_id)
        for cache in self.caches:  # this server purges a deleted image from every node (README)
            cache.pop(image_id, None)
        with pytest.raises(errors.NotFound):
            self.clients[(node + 1) % NODES].nodes(image_id)  # asked of another node than the deleting one

    # -- invariants ------------------------------------------------------------------------------------------

    @invariant()
    def listings_match_model(self) -> None:
        states: list[CacheState] = [client.list() for client in self.clients]
        for node, state in enumerate(states):
            listed = {image.image_id: (image.size, image.hits) for image in state.cached}
            expected = {image_id: (entry.size, entry.hits) for image_id, entry in self.caches[node].items()}
            assert listed == expected, f"node {node} ({self.urls[node]})"
            # The LRU order prune will follow: last_accessed is the caching time until the first full read.
            by_access = [image.image_id for image in sorted(state.cached, key=lambda image: image.last_accessed or 0)]
            assert by_access == self._lru_order(node), f"node {node} ({self.urls[node]}): last_accessed order"
            assert len(state.cached) == len(listed), f"node {node} lists an image twice"
            assert state.queued == (), f"node {node} ({self.urls[node]})"
            assert all(image.node == self.clients[node].endpoint for image in state.cached)
        # Nodes stay apart: an image shows up in exactly the listings of the nodes that hold it.
        for image_id in self.data:
            listing_holders = {self.urls[node] for node, state in enumerate(states) if state.is_cached(image_id)}
            assert listing_holders == self._holders(image_id), image_id

    @invariant()
    def cache_files_match_model(self) -> None:
        for node, cluster_node in enumerate(self.cluster.nodes):
            assert cluster_node.cache_dir is not None
            files = {path.name for path in cluster_node.cache_dir.iterdir() if path.name in self.data}
            assert files == set(self.caches[node]), f"node {node} ({self.urls[node]})"
            for image_id in files:
                assert (cluster_node.cache_dir / image_id).read_bytes() == self.data[image_id]

    @invariant()
    def nodes_match_model(self) -> None:
        asking = self.clients[self.tick % NODES]  # either node answers for the whole cluster
        # (Deleted and never-created ids are checked where they arise: queue_rejected, delete_image.)
        for image_id in [*self._live(), self.no_data]:
            assert sorted(asking.nodes(image_id)) == sorted(self._holders(image_id)), image_id


ClusterCacheMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # No shrinking: every example costs a real cluster and real requests (~0.5 s), so shrinking a failure
    # would take minutes. The failing run is reported as it is: at most 20 steps, each printed.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
test_api_state_machine = ClusterCacheMachine.TestCase
