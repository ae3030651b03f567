"""Prune removes its entries' rows in batches (one transaction each), and still leaves rows and files consistent."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine import engine as engine_module
from glancecache_client.server.engine.registry import CacheRegistry
from glancecache_client.server.engine.store import ImageStore

from .conftest import FakeClock, NodeFactory, active_image


def test_remove_many_removes_only_this_nodes_rows(shared_db: sa.Engine) -> None:
    here, there = CacheRegistry.centralized(shared_db, "http://a"), CacheRegistry.centralized(shared_db, "http://b")
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for image_id in ids:
        assert here.add(image_id, size=1, checksum=None) and there.add(image_id, size=1, checksum=None)
    assert here.remove_many([*ids[:3], str(uuid.uuid4())]) == 3
    assert sorted(entry.image_id for entry in here.entries()) == sorted(ids[3:])
    assert len(there.entries()) == 5  # the other node's rows of the same images stay
    assert here.remove_many([]) == 0


def test_remove_many_on_the_per_node_sqlite_driver(tmp_path: Path) -> None:
    registry = CacheRegistry.per_node_sqlite(tmp_path / "cache.db")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for image_id in ids:
        registry.add(image_id, size=1, checksum=None)
    assert registry.remove_many(ids[:2]) == 2
    assert [entry.image_id for entry in registry.entries()] == ids[2:]
    registry.close()


@pytest.mark.parametrize("driver", ["centralized_db", "sqlite"])
def test_prune_over_several_batches_keeps_rows_and_files_together(
    make_node: NodeFactory, store: ImageStore, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    monkeypatch.setattr(engine_module, "_DELETE_BATCH", 3)  # 7 victims: batches of 3, 3 and 1
    node = make_node(driver=driver, max_size=3 * 100, clock=FakeClock())
    images = [active_image(store, bytes([n]) * 100) for n in range(10)]
    for image in images:
        node.engine.queue(image.id)
        assert node.engine.wait_idle(10)
    (node.cache_dir / "queue" / images[0].id).touch()  # a leftover queue file of a cached entry goes too
    assert node.engine.list_queued() == [images[0].id]
    assert node.engine.prune() == (7, 700)
    kept = sorted(image.id for image in images[7:])
    assert sorted(row["image_id"] for row in node.engine.list_cached()) == kept
    assert sorted(entry.image_id for entry in node.registry.entries()) == kept
    assert sorted(p.name for p in node.cache_dir.iterdir() if p.is_file() and not p.name.startswith("cache.db")) == kept
    assert node.engine.list_queued() == []


@pytest.mark.parametrize("driver", ["centralized_db", "sqlite"])
def test_clear_over_several_batches_removes_every_entry_and_stray_file_but_not_the_queue(
    make_node: NodeFactory, store: ImageStore, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    monkeypatch.setattr(engine_module, "_DELETE_BATCH", 2)  # 5 entries and a stray file: batches of 2, 2 and 2
    commits: list[int] = []
    remove_many = CacheRegistry.remove_many

    def counted(self: CacheRegistry, image_ids: list[str]) -> int:
        commits.append(len(image_ids))
        return remove_many(self, image_ids)

    monkeypatch.setattr(CacheRegistry, "remove_many", counted)
    node = make_node(driver=driver)
    images = [active_image(store, bytes([n]) * 100) for n in range(5)]
    for image in images:
        node.engine.queue(image.id)
        assert node.engine.wait_idle(10)
    stray = str(uuid.uuid4())
    (node.cache_dir / stray).write_bytes(b"left by a crash")
    waiting = active_image(store, b"queued")
    node.engine.hold_queue()
    node.engine.queue(waiting.id)
    assert node.engine.delete_all_cached() == 6
    assert commits == [2, 2, 2]  # one transaction per batch, not per entry
    assert node.engine.list_cached() == [] and node.registry.entries() == []
    assert [p.name for p in node.cache_dir.iterdir() if p.is_file() and not p.name.startswith("cache.db")] == []
    assert node.engine.list_queued() == [waiting.id]  # clearing the cache leaves the queue alone
