"""The cache registry on real databases: centralized_db on SQLite, PostgreSQL and MariaDB; per-node sqlite."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine.registry import CacheEntry, CacheRegistry


def _ids(n: int) -> list[str]:
    return sorted(str(uuid.uuid4()) for _ in range(n))


def test_tables_and_unique_constraints_exist(shared_db: sa.Engine) -> None:
    CacheRegistry.centralized(shared_db, "http://a")
    inspector = sa.inspect(shared_db)
    assert {"node_reference", "cached_images"} <= set(inspector.get_table_names())
    columns = [c["name"] for c in inspector.get_columns("cached_images")]
    assert columns == ["id", "image_id", "last_accessed", "last_modified", "size", "hits", "checksum",
                       "node_reference_id"]
    assert [c["name"] for c in inspector.get_columns("node_reference")] == ["node_reference_id",
                                                                            "node_reference_url"]


def test_node_registration_is_idempotent(shared_db: sa.Engine) -> None:
    first = CacheRegistry.centralized(shared_db, "http://a")
    again = CacheRegistry.centralized(shared_db, "http://a")
    CacheRegistry.centralized(shared_db, "http://b")
    with shared_db.connect() as conn:
        urls = conn.execute(sa.select(schema.node_reference.c.node_reference_url)).scalars().all()
    assert sorted(urls) == ["http://a", "http://b"]
    image_id = str(uuid.uuid4())
    assert first.add(image_id, size=9, checksum=None, now=100.0)
    assert again.get(image_id) is not None  # same URL, same node


def test_concurrent_start_of_many_nodes(shared_db: sa.Engine) -> None:
    """Nodes starting together against an empty database: tables and node rows are created once."""
    gate = threading.Barrier(6)
    errors: list[BaseException] = []

    def start(n: int) -> None:
        gate.wait()
        try:
            CacheRegistry.centralized(shared_db, f"http://node{n % 3}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with shared_db.connect() as conn:
        urls = conn.execute(sa.select(schema.node_reference.c.node_reference_url)).scalars().all()
    assert sorted(urls) == ["http://node0", "http://node1", "http://node2"]


def test_add_get_remove_and_duplicates(shared_db: sa.Engine) -> None:
    registry = CacheRegistry.centralized(shared_db, "http://a")
    image_id = str(uuid.uuid4())
    assert registry.get(image_id) is None
    assert registry.add(image_id, size=10240, checksum="0" * 32, now=1795304657.7660108)
    assert not registry.add(image_id, size=1, checksum=None, now=1.0)  # unique (image_id, node)
    entry = registry.get(image_id)
    assert entry is not None
    assert (entry.size, entry.hits, entry.checksum) == (10240, 0, "0" * 32)
    assert entry.last_accessed == entry.last_modified == 1795304657.7660108  # DOUBLE keeps microseconds
    assert registry.remove(image_id)
    assert not registry.remove(image_id)
    assert registry.get(image_id) is None


def test_rows_are_per_node_and_cached_nodes_spans_nodes(shared_db: sa.Engine) -> None:
    a = CacheRegistry.centralized(shared_db, "http://a")
    b = CacheRegistry.centralized(shared_db, "http://b")
    shared, only_a = _ids(2)
    assert a.add(shared, size=1, checksum=None) and b.add(shared, size=1, checksum=None)
    assert a.add(only_a, size=2, checksum=None)
    assert {e.image_id for e in a.entries()} == {shared, only_a}
    assert [e.image_id for e in b.entries()] == [shared]
    assert a.cached_nodes(shared) == ["http://a", "http://b"]
    assert b.cached_nodes(only_a) == ["http://a"]
    assert a.cached_nodes(str(uuid.uuid4())) == []
    b.remove(only_a)  # b has no such row: a's row must stay
    assert a.get(only_a) is not None
    b.remove(shared)
    assert a.cached_nodes(shared) == ["http://a"]
    c = CacheRegistry.centralized(shared_db, "http://c")
    assert c.entries() == []


def test_hits_are_atomic_under_threads(shared_db: sa.Engine) -> None:
    registry = CacheRegistry.centralized(shared_db, "http://a")
    image_id = str(uuid.uuid4())
    registry.add(image_id, size=9, checksum=None, now=10.0)
    assert not registry.record_hit(str(uuid.uuid4()), now=11.0)

    def hit() -> None:
        for _ in range(5):
            assert registry.record_hit(image_id, now=20.0)

    threads = [threading.Thread(target=hit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entry = registry.get(image_id)
    assert entry is not None
    assert entry.hits == 50
    assert (entry.last_accessed, entry.last_modified) == (20.0, 10.0)


def test_centralized_wire_shape_in_insertion_order(shared_db: sa.Engine) -> None:
    registry = CacheRegistry.centralized(shared_db, "http://a")
    ids = _ids(3)
    for image_id in reversed(ids):
        registry.add(image_id, size=5, checksum="c" * 32, now=3.5)
    entries = registry.entries()
    assert [e.image_id for e in entries] == list(reversed(ids))
    wire = entries[0].wire(registry.driver)
    assert list(wire) == ["id", "image_id", "last_accessed", "last_modified", "size", "hits", "checksum"]
    assert wire["id"] == entries[0].row_id and isinstance(wire["id"], int)
    assert (wire["last_accessed"], wire["size"], wire["hits"], wire["checksum"]) == (3.5, 5, 0, "c" * 32)


def test_per_node_sqlite_driver(tmp_path: Path) -> None:
    registry = CacheRegistry.per_node_sqlite(tmp_path / "cache" / "cache.db", "http://a")
    try:
        assert registry.driver == "sqlite"
        ids = _ids(3)
        for image_id in reversed(ids):
            assert registry.add(image_id, size=7, checksum="d" * 32, now=42.25)
        assert not registry.add(ids[0], size=7, checksum=None)
        entries = registry.entries()
        assert [e.image_id for e in entries] == ids  # ORDER BY image_id
        assert list(entries[0].wire("sqlite")) == ["image_id", "hits", "last_accessed", "last_modified", "size"]
        assert entries[0].wire("sqlite") == {"image_id": ids[0], "hits": 0, "last_accessed": 42.25,
                                             "last_modified": 42.25, "size": 7}
        assert registry.record_hit(ids[1], now=50.0)
        assert registry.cached_nodes(ids[1]) == ["http://a"]
        assert registry.cached_nodes(str(uuid.uuid4())) == []
    finally:
        registry.close()
    reopened = CacheRegistry.per_node_sqlite(tmp_path / "cache" / "cache.db")
    try:
        hit = reopened.get(ids[1])
        assert hit is not None and (hit.hits, hit.last_accessed) == (1, 50.0)
    finally:
        reopened.close()


def test_entry_is_a_value() -> None:
    entry = CacheEntry(image_id="x", size=1, hits=2, last_accessed=3.0, last_modified=4.0, checksum=None)
    assert entry.wire("sqlite") == {"image_id": "x", "hits": 2, "last_accessed": 3.0, "last_modified": 4.0,
                                    "size": 1}
