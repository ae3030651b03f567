"""The deletion log: how a cache engine learns that an image was deleted by some other node, in any process.

Each engine here stands for a node of its own process: it is never told about a deletion (no ``purge_image``
call), it only reads the shared ``image_deletions`` table as every node does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine import store as store_module
from glancecache_client.server.engine.deletions import DeletionLog
from glancecache_client.server.engine.store import ImageStore

from .conftest import NodeFactory, active_image

KIB = 1024


def _cached_on_disk(cache_dir: os.PathLike[str], image_id: str) -> list[str]:
    return [
        f"{sub}/{image_id}" for sub in ("", "incomplete", "invalid") if os.path.exists(f"{cache_dir}/{sub}/{image_id}")
    ]


def test_a_deletion_elsewhere_is_purged_at_the_next_listing(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(deletion_poll_interval=0)  # no timer: only the listing reads the log
    cached, queued, kept = (active_image(store, bytes([n]) * 100) for n in range(3))
    for image in (cached, kept):
        assert b"".join(node.engine.caching_iter(image, store.iter_data(image.id)))
    node.engine.legacy_queue(queued.id)
    store.delete(cached.id)
    store.delete(queued.id)
    assert [e["image_id"] for e in node.engine.list_cached()] == [kept.id]
    assert node.engine.list_queued() == []
    assert _cached_on_disk(node.cache_dir, cached.id) == [] and not (node.cache_dir / "queue" / queued.id).exists()
    assert node.registry.get(cached.id) is None


def test_the_timer_purges_without_any_request(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(deletion_poll_interval=0.05)
    image = active_image(store, b"timer" * 100)
    assert b"".join(node.engine.caching_iter(image, store.iter_data(image.id)))
    store.delete(image.id)
    deadline = time.monotonic() + 5
    # The purge removes the file, then the row: wait for both, or the check races the timer's thread.
    while (node.cache_dir / image.id).exists() or node.registry.get(image.id) is not None:
        assert time.monotonic() < deadline, "the deleted image was not purged"
        time.sleep(0.02)


def test_a_fill_that_ends_after_the_deletion_leaves_nothing(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(deletion_poll_interval=0)
    data = os.urandom(200 * KIB)
    image = active_image(store, data, chunk=64 * KIB)
    stream = node.engine.caching_iter(image, store.iter_data(image.id))
    received = next(stream)
    store.delete(image.id)  # the open store file still reads to the end
    node.engine.sync_deletions()  # seen while the fill runs: it is cancelled
    received += b"".join(stream)
    assert received == data
    assert _cached_on_disk(node.cache_dir, image.id) == [] and node.registry.get(image.id) is None


def test_a_fill_that_began_after_the_deletion_was_read_is_not_committed(make_node: NodeFactory,
                                                                        store: ImageStore) -> None:  # fmt: skip
    node = make_node(deletion_poll_interval=0)
    image = active_image(store, b"late" * 1000)
    chunks = store.iter_data(image.id)
    first = next(chunks)  # the store file is open: the download goes on after the delete
    store.delete(image.id)
    assert node.engine.sync_deletions() == 1  # nothing of it here yet
    assert b"".join(node.engine.caching_iter(image, iter([first, *chunks]))) == b"late" * 1000
    assert _cached_on_disk(node.cache_dir, image.id) == [] and node.engine.list_cached() == []


@pytest.mark.parametrize("seen_first", [True, False], ids=["purged-during-fill", "found-at-failure"])
def test_a_queued_fill_failing_because_its_image_went_leaves_nothing(
    make_node: NodeFactory, store: ImageStore, monkeypatch: pytest.MonkeyPatch, seen_first: bool
) -> None:
    node = make_node(deletion_poll_interval=0)
    image = active_image(store, b"q" * 1000)

    def deleted_midway(image_id: str, chunk_size: int = 0) -> Iterator[bytes]:
        yield b"q" * 10
        store.delete(image_id)
        if seen_first:
            node.engine.sync_deletions()
        raise FileNotFoundError(image_id)

    monkeypatch.setattr(store, "iter_data", deleted_midway)
    node.engine.queue(image.id)
    assert node.engine.wait_idle(10)
    assert _cached_on_disk(node.cache_dir, image.id) == [] and node.engine.list_queued() == []


def test_a_hit_under_another_checksum_is_purged_not_served(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(deletion_poll_interval=0)
    image = active_image(store, b"first life")
    assert b"".join(node.engine.caching_iter(image, store.iter_data(image.id)))
    opened = node.engine.open_cached(image.id, image.checksum)
    assert opened is not None
    opened[0].close()
    # The id now names an image with other bytes (deleted and created again; the log not read yet).
    assert node.engine.open_cached(image.id, "0" * 32) is None
    assert _cached_on_disk(node.cache_dir, image.id) == [] and node.registry.get(image.id) is None


def test_a_deletion_committed_out_of_order_is_still_seen(make_node: NodeFactory, store: ImageStore,
                                                         sqlite_db: sa.Engine) -> None:  # fmt: skip
    node = make_node(deletion_poll_interval=0)
    image = active_image(store, b"slow transaction" * 10)
    assert b"".join(node.engine.caching_iter(image, store.iter_data(image.id)))
    log = schema.image_deletions
    with sqlite_db.begin() as conn:  # number 2 becomes visible first; number 1 commits a moment later
        conn.execute(sa.insert(log).values(seq=2, image_id="00000000-0000-4000-8000-000000000000", deleted_at=0))
    assert node.engine.sync_deletions() == 1 and node.engine.is_cached(image.id)
    with sqlite_db.begin() as conn:
        conn.execute(sa.delete(schema.images).where(schema.images.c.id == image.id))
        conn.execute(sa.insert(log).values(seq=1, image_id=image.id, deleted_at=0))
    assert node.engine.sync_deletions() == 1
    assert not node.engine.is_cached(image.id) and _cached_on_disk(node.cache_dir, image.id) == []
    assert node.engine.sync_deletions() == 0  # each deletion is acted on once


def test_a_deletion_made_while_the_node_was_down_is_purged_at_start(make_node: NodeFactory,
                                                                    store: ImageStore) -> None:  # fmt: skip
    first = make_node(name="n")
    image = active_image(store, b"offline" * 100)
    assert b"".join(first.engine.caching_iter(image, store.iter_data(image.id)))
    first.engine.close()
    store.delete(image.id)
    second = make_node(name="n", deletion_poll_interval=0)
    assert not (second.cache_dir / image.id).exists() and second.registry.get(image.id) is None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_two_engines_on_one_shared_database(backend: str, request: pytest.FixtureRequest, make_node: NodeFactory,
                                            tmp_path: Path) -> None:  # fmt: skip
    """Two stores and two engines on one database, as two processes have them."""
    if backend == "sqlite":
        url = schema.sqlite_url(tmp_path / "cluster.db")
    else:
        url = request.getfixturevalue(f"{backend}_url")
    engines = [schema.create_db_engine(url) for _ in range(2)]
    try:
        schema.metadata.drop_all(engines[0], checkfirst=True)
        stores = [ImageStore(db, tmp_path / "images") for db in engines]
        a = make_node(name="a", db=engines[0], image_store=stores[0], deletion_poll_interval=0)
        b = make_node(name="b", db=engines[1], image_store=stores[1], deletion_poll_interval=0)
        image = active_image(stores[0], b"shared" * 100)
        for node in (a, b):
            assert b"".join(node.engine.caching_iter(image, stores[0].iter_data(image.id)))
        stores[0].delete(image.id)
        a.engine.purge_image(image.id)  # what the deleting node's own process does
        assert b.engine.list_cached() == [] and not (b.cache_dir / image.id).exists()
    finally:
        for db in engines:
            db.dispose()


def _counting_reads(store: ImageStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the reads of the deletion log (one entry per read)."""
    reads: list[int] = []
    real = store.deletions_after

    def counted(seq: int, also: Iterable[int] = ()) -> Sequence[tuple[int, str]]:
        reads.append(seq)
        return real(seq, also)

    monkeypatch.setattr(store, "deletions_after", counted)
    return reads


def test_the_engines_of_one_process_share_one_read(make_node: NodeFactory, store: ImageStore,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    shared = DeletionLog(store, poll_interval=0)
    a = make_node(name="a", deletion_log=shared)
    b = make_node(name="b", deletion_log=shared)
    image = active_image(store, b"both" * 100)
    for node in (a, b):
        assert b"".join(node.engine.caching_iter(image, store.iter_data(image.id)))
    reads = _counting_reads(store, monkeypatch)
    store.delete(image.id)  # by a node of another process: nobody here is told but through the log
    assert b.engine.list_cached() == []
    assert len(reads) == 1  # one read purged it from both
    assert not (a.cache_dir / image.id).exists() and not a.engine.is_cached(image.id)
    assert a.engine.sync_deletions() == 0 and b.engine.sync_deletions() == 0  # each deletion acted on once


def test_a_process_polls_the_log_with_one_thread(make_node: NodeFactory, store: ImageStore) -> None:
    shared = DeletionLog(store, poll_interval=0.05)
    nodes = [make_node(name=f"n{number}", deletion_log=shared) for number in range(3)]
    assert sum(thread.name == "cache-deletions" for thread in threading.enumerate()) == 1
    image = active_image(store, b"polled" * 100)
    for node in nodes:
        assert b"".join(node.engine.caching_iter(image, store.iter_data(image.id)))
    store.delete(image.id)
    deadline = time.monotonic() + 5
    while any((node.cache_dir / image.id).exists() or node.registry.get(image.id) for node in nodes):
        assert time.monotonic() < deadline, "the timer did not purge every node"
        time.sleep(0.02)
    for node in nodes:
        node.engine.close()
    assert not any(thread.name == "cache-deletions" for thread in threading.enumerate())  # gone with the last


def test_an_engine_is_told_only_of_deletions_after_it_attached(make_node: NodeFactory, store: ImageStore) -> None:
    shared = DeletionLog(store, poll_interval=0)
    early = make_node(name="early", deletion_log=shared)
    first = active_image(store, b"first" * 100)
    store.delete(first.id)  # before "late" starts: its start-up repair is what would purge it
    late = make_node(name="late", deletion_log=shared)
    second = active_image(store, b"second" * 100)
    store.delete(second.id)
    late.engine.sync_deletions()
    assert shared.delivered(late.engine) == 1  # the second deletion only
    assert shared.delivered(early.engine) == 2


def test_a_listing_waits_for_a_read_that_began_after_it(make_node: NodeFactory, store: ImageStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A read under way when a listing arrives may have missed a deletion committed just before: the listing
    waits for it and then for a read of its own, which it shares with every listing that waited alongside."""
    shared = DeletionLog(store, poll_interval=0)
    nodes = [make_node(name=f"n{number}", deletion_log=shared) for number in range(3)]
    image = active_image(store, b"raced" * 100)
    for node in nodes:
        assert b"".join(node.engine.caching_iter(image, store.iter_data(image.id)))
    reads = _counting_reads(store, monkeypatch)
    counted = store.deletions_after
    entered, release = threading.Event(), threading.Event()

    def first_read_held(seq: int, also: Iterable[int] = ()) -> Sequence[tuple[int, str]]:
        if not entered.is_set():
            rows = counted(seq, also)  # read before the deletion below
            entered.set()
            assert release.wait(10)
            return rows
        return counted(seq, also)

    monkeypatch.setattr(store, "deletions_after", first_read_held)
    early = threading.Thread(target=nodes[0].engine.sync_deletions)
    early.start()
    assert entered.wait(10)
    store.delete(image.id)
    listings: dict[int, list[dict[str, object]]] = {}
    late = [threading.Thread(target=lambda n=n: listings.update({n: nodes[n].engine.list_cached()})) for n in (1, 2)]
    for thread in late:
        thread.start()
    deadline = time.monotonic() + 10
    while len(shared._shared_read._cond._waiters) < 2:  # type: ignore[attr-defined]  # both wait for the read
        assert time.monotonic() < deadline, "the listings did not wait for the read under way"
        time.sleep(0.01)
    release.set()
    for thread in (early, *late):
        thread.join(10)
    assert listings == {1: [], 2: []}
    assert len(reads) == 2  # the held read, and one more for both listings
    assert not any((node.cache_dir / image.id).exists() for node in nodes)


def test_the_log_keeps_a_day_of_deletions(shared_db: sa.Engine, tmp_path: Path) -> None:
    store = ImageStore(shared_db, tmp_path / "images")
    log = schema.image_deletions
    day_old = time.time() - store_module.DELETION_LOG_RETENTION - 60

    def log_rows() -> list[tuple[str, bool]]:
        with shared_db.connect() as conn:
            rows = conn.execute(sa.select(log.c.image_id, log.c.deleted_at).order_by(log.c.seq))
            return [(image_id, deleted_at > day_old + 1) for image_id, deleted_at in rows]

    with shared_db.begin() as conn:  # two deletions of yesterday, one of a minute ago
        for n, when in ((1, day_old), (2, day_old), (3, time.time() - 60)):
            conn.execute(sa.insert(log).values(image_id=f"00000000-0000-4000-8000-00000000000{n}", deleted_at=when))
    image = active_image(store, b"pruned log")
    store.delete(image.id)
    assert log_rows() == [("00000000-0000-4000-8000-000000000003", True), (image.id, True)]
    with shared_db.begin() as conn:  # every row old now: the next deletion removes them all but its own
        conn.execute(sa.update(log).values(deleted_at=day_old))
    other = active_image(store, b"another")
    store.delete(other.id)
    assert log_rows() == [(other.id, True)]
    assert store.last_deletion() > 0
