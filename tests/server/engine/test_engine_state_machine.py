"""A hypothesis state machine: random sequences of cache operations against a plain Python model.

The engine runs for real (SQLite registry, cache directory, worker pool); after each step the listing,
the queue, the files on disk and the LRU order must equal what the model predicts.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine.engine import CacheEngine
from glancecache_client.server.engine.registry import CacheRegistry
from glancecache_client.server.engine.store import ImageStore, is_image_id

from .conftest import FakeClock

SMALL_CHUNK = 16


@dataclass
class ModelEntry:
    size: int
    hits: int
    tick: int  # logical time of the last access (or of caching, if never read)


class CacheEngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="glancecache-sm-"))
        self.db = schema.create_db_engine(schema.sqlite_url(self.tmp / "shared.db"))
        self.store = ImageStore(self.db, self.tmp / "images")
        self.clock = FakeClock()
        self.engine = self._start_engine()
        self.data: dict[str, bytes] = {}  # every image ever created, by id
        self.status: dict[str, str] = {}  # live images only: "active" or "deactivated"
        self.cached: dict[str, ModelEntry] = {}
        self.queued: set[str] = set()
        self.tick = 0
        self.ids: list[str] = []

    def teardown(self) -> None:
        self.engine.close()
        self.db.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------------

    def _start_engine(self) -> CacheEngine:
        engine = CacheEngine(
            node_url="http://sm",
            cache_dir=self.tmp / "cache",
            store=self.store,
            registry=CacheRegistry.centralized(self.db, "http://sm"),
            max_size=10**9,
            stall_time=86400,
            workers=1,  # one worker caches a restart's queue in list order: the model can follow
            clock=self.clock,
        )
        engine.start()
        return engine

    def _now(self) -> int:
        self.tick += 1
        return self.tick

    def _became_cached(self, image_id: str) -> None:
        self.cached[image_id] = ModelEntry(size=len(self.data[image_id]), hits=0, tick=self._now())
        self.queued.discard(image_id)

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self.ids), label="image_id")

    def _pick_live_active(self, data: st.DataObject) -> str | None:
        live = [i for i in self.ids if self.status.get(i) == "active"]
        return data.draw(st.sampled_from(live), label="active image_id") if live else None

    # -- rules -----------------------------------------------------------------------------------------

    @initialize(payloads=st.lists(st.binary(max_size=200), min_size=2, max_size=4))
    def create_images(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            image = self.store.create(name="sm")
            self.store.upload(image.id, [payload])
            self.data[image.id] = payload
            self.status[image.id] = "active"
            self.ids.append(image.id)
        self.ids.append(str(uuid.uuid4()))  # an id no image ever had

    @rule(data=st.data())
    def queue(self, data: st.DataObject) -> None:
        image_id = self._pick(data)
        self.engine.queue(image_id)
        assert self.engine.wait_idle(10)
        if image_id in self.cached:
            return
        if self.status.get(image_id) == "active":
            self._became_cached(image_id)
        else:
            self.queued.discard(image_id)  # deleted or inactive: the worker drops it

    @rule(data=st.data())
    def legacy_queue(self, data: st.DataObject) -> None:
        image_id = self._pick(data)
        added = self.engine.legacy_queue(image_id)
        expected = image_id not in self.cached and image_id not in self.queued
        assert added == expected
        if expected:
            self.queued.add(image_id)

    @rule(data=st.data())
    def full_download(self, data: st.DataObject) -> None:
        image_id = self._pick_live_active(data)
        if image_id is None:
            return
        image = self.store.get(image_id)
        assert image is not None
        body = b"".join(self.engine.caching_iter(image, self.store.iter_data(image_id, SMALL_CHUNK)))
        assert body == self.data[image_id]
        if image_id not in self.cached:
            self._became_cached(image_id)

    @rule(data=st.data(), keep=st.integers(min_value=1, max_value=6))
    def interrupted_download(self, data: st.DataObject, keep: int) -> None:
        image_id = self._pick_live_active(data)
        if image_id is None:
            return
        image = self.store.get(image_id)
        assert image is not None
        stream = self.engine.caching_iter(image, self.store.iter_data(image_id, SMALL_CHUNK))
        completed = True
        for count, _chunk in enumerate(stream, start=1):
            if count >= keep:
                completed = False
                break
        stream.close()
        if completed and image_id not in self.cached:
            self._became_cached(image_id)

    @rule(data=st.data())
    def read_cached(self, data: st.DataObject) -> None:
        image_id = self._pick(data)
        opened = self.engine.open_cached(image_id)
        if image_id not in self.cached:
            assert opened is None
            return
        assert opened is not None
        stream, size = opened
        with stream:
            assert stream.read() == self.data[image_id]
        assert size == len(self.data[image_id])
        entry = self.cached[image_id]
        entry.hits += 1
        entry.tick = self._now()

    @rule(data=st.data())
    def delete_entry(self, data: st.DataObject) -> None:
        image_id = self._pick(data)
        self.engine.delete(image_id)
        self.cached.pop(image_id, None)
        self.queued.discard(image_id)

    @rule(data=st.data())
    def delete_queued(self, data: st.DataObject) -> None:
        image_id = self._pick(data)
        self.engine.delete_queued(image_id)
        self.queued.discard(image_id)

    @rule(which=st.sampled_from(["cache", "queue", "both"]))
    def clear(self, which: str) -> None:
        if which in ("cache", "both"):
            assert self.engine.delete_all_cached() == len(self.cached)
            self.cached.clear()
        if which in ("queue", "both"):
            assert self.engine.delete_all_queued() == len(self.queued)
            self.queued.clear()

    @rule(data=st.data())
    def prune(self, data: st.DataObject) -> None:
        total = sum(e.size for e in self.cached.values())
        max_size = data.draw(st.integers(min_value=0, max_value=total + 10), label="max_size")
        self.engine.max_size = max_size
        files = pruned = 0
        for image_id, entry in sorted(self.cached.items(), key=lambda item: item[1].tick):
            if total <= max_size:
                break
            del self.cached[image_id]
            files += 1
            pruned += entry.size
            total -= entry.size
        assert self.engine.prune() == (files, pruned)

    @rule()
    def clean(self) -> None:
        self.engine.clean()
        assert list((self.engine.cache_dir / "invalid").iterdir()) == []

    @rule(data=st.data())
    def delete_image(self, data: st.DataObject) -> None:
        live = [i for i in self.ids if i in self.status]
        if not live:
            return
        image_id = data.draw(st.sampled_from(live), label="deleted image")
        self.store.delete(image_id)
        self.engine.purge_image(image_id)
        del self.status[image_id]
        self.cached.pop(image_id, None)
        self.queued.discard(image_id)

    @rule(data=st.data())
    def toggle_status(self, data: st.DataObject) -> None:
        live = [i for i in self.ids if i in self.status]
        if not live:
            return
        image_id = data.draw(st.sampled_from(live), label="toggled image")
        new = "deactivated" if self.status[image_id] == "active" else "active"
        self.store.set_status(image_id, new)
        self.status[image_id] = new

    @rule()
    def restart(self) -> None:
        """A server restart: the new engine repairs nothing (all is consistent) and works off the queue."""
        order = self.engine.list_queued()
        assert set(order) == self.queued
        self.engine.close()
        self.engine = self._start_engine()
        assert self.engine.wait_idle(10)
        for image_id in order:
            if self.status.get(image_id) == "active":
                self._became_cached(image_id)
        self.queued.clear()  # cached now, or dropped because the image is deleted or inactive

    # -- invariants ------------------------------------------------------------------------------------

    @invariant()
    def listing_matches_model(self) -> None:
        listed = {str(e["image_id"]): e for e in self.engine.list_cached()}
        assert set(listed) == set(self.cached)
        for image_id, entry in self.cached.items():
            assert listed[image_id]["hits"] == entry.hits
            assert listed[image_id]["size"] == entry.size
        by_access = sorted(listed, key=lambda i: float(listed[i]["last_accessed"]))  # type: ignore[arg-type]
        assert by_access == sorted(self.cached, key=lambda i: self.cached[i].tick)

    @invariant()
    def queue_matches_model(self) -> None:
        assert set(self.engine.list_queued()) == self.queued

    @invariant()
    def disk_matches_model(self) -> None:
        cache_dir = self.engine.cache_dir
        files = {p.name for p in cache_dir.iterdir() if p.is_file() and is_image_id(p.name)}
        assert files == set(self.cached)
        for image_id in files:
            assert (cache_dir / image_id).read_bytes() == self.data[image_id]
        assert list((cache_dir / "incomplete").iterdir()) == []


CacheEngineMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_engine_state_machine = CacheEngineMachine.TestCase
