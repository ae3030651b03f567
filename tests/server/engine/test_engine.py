"""The per-node cache engine on a real SQLite registry and a real cache directory."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine.engine import CacheEngine
from glancecache_client.server.engine.store import Image, ImageStore

from .conftest import FakeClock, NodeFactory, active_image

KIB = 1024


def _tree(root: Path) -> dict[str, int]:
    """Every file under root with its size (a snapshot to prove nothing changed)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def _download(engine: CacheEngine, image: Image, store: ImageStore) -> bytes:
    return b"".join(engine.caching_iter(image, store.iter_data(image.id)))


def _cache(engine: CacheEngine, image_id: str) -> None:
    engine.queue(image_id)
    assert engine.wait_idle(10)
    assert engine.is_cached(image_id)


def _ids(engine: CacheEngine) -> list[str]:
    return [str(entry["image_id"]) for entry in engine.list_cached()]


# -- layout, queue and worker pool -----------------------------------------------------------------------


def test_start_creates_glance_layout(make_node: NodeFactory) -> None:
    node = make_node()
    for sub in ("incomplete", "invalid", "queue"):
        assert (node.cache_dir / sub).is_dir()
    assert node.engine.list_cached() == [] and node.engine.list_queued() == []
    assert node.engine.driver == "centralized_db"


def test_queue_caches_at_once_with_verified_entry(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"IMAGEDATA")
    before = time.time()
    _cache(node.engine, image.id)
    [entry] = node.engine.list_cached()
    assert list(entry) == ["id", "image_id", "last_accessed", "last_modified", "size", "hits", "checksum"]
    assert entry["image_id"] == image.id and entry["size"] == 9 and entry["hits"] == 0
    assert entry["checksum"] == hashlib.md5(b"IMAGEDATA").hexdigest()
    assert isinstance(entry["last_modified"], float) and before <= entry["last_modified"] <= time.time()
    assert entry["last_accessed"] == entry["last_modified"]
    assert node.engine.list_queued() == []
    assert (node.cache_dir / image.id).read_bytes() == b"IMAGEDATA"
    assert os.listdir(node.cache_dir / "incomplete") == [] and os.listdir(node.cache_dir / "invalid") == []


def test_queue_of_cached_image_does_not_download_again(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"x" * 5000)
    _cache(node.engine, image.id)
    inode = (node.cache_dir / image.id).stat().st_ino
    for _ in range(3):
        node.engine.queue(image.id)
    assert node.engine.wait_idle(10)
    assert (node.cache_dir / image.id).stat().st_ino == inode
    assert node.engine.stats()["fills_started"] == 1
    assert node.engine.list_queued() == [] and len(node.engine.list_cached()) == 1


def test_fifty_concurrent_queues_and_downloads_fill_once(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(workers=4)
    data = os.urandom(2 * 1024 * KIB)
    image = active_image(store, data, chunk=64 * KIB)
    gate = threading.Barrier(50)
    bodies: list[bytes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def queue() -> None:
        gate.wait()
        node.engine.queue(image.id)

    def download() -> None:
        gate.wait()
        try:
            body = _download(node.engine, image, store)
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            bodies.append(body)

    threads = [threading.Thread(target=queue if n % 2 else download) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert node.engine.wait_idle(20)
    assert errors == []
    assert len(bodies) == 25 and all(body == data for body in bodies)
    stats = node.engine.stats()
    assert (stats["fills_started"], stats["fills_committed"], stats["fills_failed"]) == (1, 1, 0)
    assert _ids(node.engine) == [image.id]
    assert (node.cache_dir / image.id).read_bytes() == data
    assert node.engine.list_queued() == []
    assert stats["ids_in_use"] == 0


def test_idle_engine_keeps_no_per_image_state(make_node: NodeFactory, store: ImageStore) -> None:
    # Ids are unbounded over a node's life: locks and fill records must go when their image is left alone.
    node = make_node(workers=2)
    images = [active_image(store, os.urandom(KIB)) for _ in range(20)]
    for image in images[:10]:
        node.engine.queue(image.id)
    for image in images[10:]:
        stream = node.engine.caching_iter(image, store.iter_data(image.id))
        next(stream)
        stream.close()  # a client gone mid-download
    assert node.engine.wait_idle(10)
    node.engine.delete(images[0].id)
    node.engine.delete_all_cached()
    assert node.engine.stats()["ids_in_use"] == 0
    assert node.engine.stats()["fills_committed"] == 10


def test_worker_pool_survives_failures(make_node: NodeFactory, store: ImageStore,
                                       caplog: pytest.LogCaptureFixture) -> None:
    node = make_node(workers=2)
    broken = [active_image(store, f"broken{n}".encode()) for n in range(6)]
    for image in broken:
        store.data_path(image.id).unlink()  # the backend lost the data: every fetch fails
    with caplog.at_level(logging.ERROR, logger="glancecache_client.server.engine.engine"):
        for image in broken:
            node.engine.queue(image.id)
        assert node.engine.wait_idle(10)
    assert sum("stays queued" in r.getMessage() for r in caplog.records) == 6
    # A failed fill stays queued (visible to the operator, retried by queue() or the next start()).
    assert sorted(node.engine.list_queued()) == sorted(i.id for i in broken)
    good = active_image(store, b"fine")
    _cache(node.engine, good.id)
    assert node.engine.stats()["fills_failed"] == 6


def test_deleted_or_inactive_image_is_dropped_from_queue(make_node: NodeFactory, store: ImageStore,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    node = make_node()
    gone = active_image(store, b"gone")
    sleepy = active_image(store, b"sleepy")
    node.engine.legacy_queue(gone.id)
    node.engine.legacy_queue(sleepy.id)
    store.delete(gone.id)
    store.set_status(sleepy.id, "deactivated")
    with caplog.at_level(logging.WARNING, logger="glancecache_client.server.engine.engine"):
        node.engine.queue(gone.id)
        node.engine.queue(sleepy.id)
        assert node.engine.wait_idle(10)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"Image {gone.id} is deleted" in messages
    assert f"Image {sleepy.id} is not active (deactivated)" in messages
    assert node.engine.list_queued() == [] and node.engine.list_cached() == []


def test_legacy_queue_only_writes_the_queue_file(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"legacy")
    assert node.engine.legacy_queue(image.id)
    assert not node.engine.legacy_queue(image.id)
    time.sleep(0.2)
    assert node.engine.list_queued() == [image.id] and node.engine.list_cached() == []
    assert node.engine.is_queued(image.id)


def test_queue_survives_restart(make_node: NodeFactory, store: ImageStore) -> None:
    first = make_node(name="n")
    image = active_image(store, b"later")
    first.engine.legacy_queue(image.id)
    first.engine.close()
    second = make_node(name="n")  # same cache dir and node URL: start() re-submits the queue
    assert second.engine.wait_idle(10)
    assert _ids(second.engine) == [image.id] and second.engine.list_queued() == []


def test_list_queued_by_mtime_then_id(make_node: NodeFactory) -> None:
    node = make_node()
    ids = sorted(str(uuid.uuid4()) for _ in range(4))
    mtimes = {ids[0]: 300, ids[1]: 100, ids[2]: 200, ids[3]: 100}
    for image_id, mtime in mtimes.items():
        node.engine.legacy_queue(image_id)
        os.utime(node.cache_dir / "queue" / image_id, (mtime, mtime))
    (node.cache_dir / "queue" / "README").write_text("not an image")
    assert node.engine.list_queued() == [ids[1], ids[3], ids[2], ids[0]]


# -- verification and aborted fills ----------------------------------------------------------------------


def test_checksum_mismatch_goes_to_invalid_without_row(make_node: NodeFactory, store: ImageStore,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    node = make_node()
    image = active_image(store, b"A" * 4096)
    store.data_path(image.id).write_bytes(b"B" * 4096)  # same size, different bytes
    with caplog.at_level(logging.ERROR, logger="glancecache_client.server.engine.engine"):
        node.engine.queue(image.id)
        assert node.engine.wait_idle(10)
    assert "Checksum verification failed" in caplog.text
    assert (node.cache_dir / "invalid" / image.id).read_bytes() == b"B" * 4096
    assert not (node.cache_dir / image.id).exists()
    assert node.engine.list_cached() == [] and node.registry.get(image.id) is None
    assert node.engine.list_queued() == [image.id]


def test_sha512_is_checked_too(make_node: NodeFactory, store: ImageStore) -> None:
    """A wrong os_hash_value alone (md5 right) is enough to refuse the fill."""
    node = make_node()
    image = active_image(store, b"payload")
    lying = Image(**{**image.__dict__, "os_hash_value": hashlib.sha512(b"other").hexdigest()})
    assert _download(node.engine, lying, store) == b"payload"  # the client still gets the store's bytes
    assert not node.engine.is_cached(image.id)
    assert (node.cache_dir / "invalid" / image.id).exists()


def test_image_without_checksum_is_not_cached(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"payload")
    unverifiable = Image(**{**image.__dict__, "checksum": None, "os_hash_value": None})
    assert _download(node.engine, unverifiable, store) == b"payload"
    assert not node.engine.is_cached(image.id)


def test_download_fills_cache_while_streaming(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    data = os.urandom(300 * KIB)
    image = active_image(store, data, chunk=64 * KIB)
    assert _download(node.engine, image, store) == data
    assert _ids(node.engine) == [image.id]
    assert (node.cache_dir / image.id).read_bytes() == data


def test_file_tee_reads_the_whole_image_when_the_send_ends_first(make_node: NodeFactory, store: ImageStore) -> None:
    """A download sent from the store file may end before the fill has read and digested the store file: the fill
    still reads it to its end, and commits."""
    node = make_node()
    data = os.urandom(5 * 1024 * KIB)  # several of the tee's reads
    image = active_image(store, data, chunk=1024 * KIB)
    with store.data_path(image.id).open("rb") as source:
        tee = node.engine.tee_file(image, source)
        assert tee is not None
        assert node.engine.tee_file(image, source) is None  # one fill at a time; the second just sends
        tee.sent()  # at once: the fill has read little or nothing yet
        tee.close()  # a no-op after sent()
    assert tee.committed and _ids(node.engine) == [image.id]
    assert (node.cache_dir / image.id).read_bytes() == data
    assert node.engine.tee_file(image, source) is None  # cached now
    assert node.engine.stats()["ids_in_use"] == 0


@pytest.mark.parametrize("size", [0, 1000, 3 * 1024 * KIB], ids=["empty", "small", "large"])
def test_file_tee_closed_early_caches_nothing(make_node: NodeFactory, store: ImageStore, size: int) -> None:
    node = make_node()
    image = active_image(store, os.urandom(size), chunk=1024 * KIB)
    with store.data_path(image.id).open("rb") as source:
        tee = node.engine.tee_file(image, source)
        assert tee is not None
        tee.close()  # the client went away
    assert not tee.committed and not node.engine.is_cached(image.id) and node.registry.get(image.id) is None
    assert os.listdir(node.cache_dir / "incomplete") == []
    assert node.engine.stats()["fills_failed"] == 1 and node.engine.stats()["ids_in_use"] == 0


def test_file_tee_of_a_store_file_that_does_not_match_caches_nothing(make_node: NodeFactory,
                                                                      store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, os.urandom(2 * 1024 * KIB), chunk=1024 * KIB)
    with store.data_path(image.id).open("r+b") as source:
        source.seek(1234)
        source.write(b"X")  # the store file went bad after its digests were recorded
        source.flush()
        tee = node.engine.tee_file(image, source)
        assert tee is not None
        tee.sent()
    assert not tee.committed and not node.engine.is_cached(image.id)
    assert (node.cache_dir / "invalid" / image.id).stat().st_size == 2 * 1024 * KIB


def test_file_body_commits_its_fill_before_the_last_chunk(make_node: NodeFactory, store: ImageStore) -> None:
    """A first download's body, iterated: the fill commits before the last chunk is handed over, and a body closed
    before its end aborts the fill."""
    from glancecache_client.server.http.image_api import _FileBody

    node = make_node()
    data = os.urandom(3 * 1024 * KIB + 5)
    image = active_image(store, data, chunk=1024 * KIB)
    with store.data_path(image.id).open("rb") as early:
        body = _FileBody(early, 0, len(data), tee=lambda: node.engine.tee_file(image, early))
        chunks = iter(body)
        next(chunks)
        body.close()  # the client went away after the first chunk
    assert not node.engine.is_cached(image.id) and node.engine.stats()["fills_failed"] == 1
    handle = store.data_path(image.id).open("rb")
    body = _FileBody(handle, 0, len(data), tee=lambda: node.engine.tee_file(image, handle))
    received = []
    for chunk in body:
        received.append(chunk)
        if len(received) == 4:  # the last chunk: the fill has committed already
            assert node.engine.is_cached(image.id)
    body.close()
    assert b"".join(received) == data and (node.cache_dir / image.id).read_bytes() == data


def test_client_disconnect_moves_partial_file_to_invalid(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    data = os.urandom(300 * KIB)
    image = active_image(store, data, chunk=64 * KIB)
    stream = node.engine.caching_iter(image, store.iter_data(image.id))
    assert len(next(stream)) == 64 * KIB
    stream.close()  # GeneratorExit inside the tee
    assert (node.cache_dir / "invalid" / image.id).stat().st_size == 64 * KIB
    assert os.listdir(node.cache_dir / "incomplete") == []
    assert not node.engine.is_cached(image.id) and node.registry.get(image.id) is None
    # the lock was released: a later full download caches it
    assert _download(node.engine, image, store) == data
    assert node.engine.is_cached(image.id)


def test_store_error_mid_stream_reaches_client_and_caches_nothing(make_node: NodeFactory,
                                                                  store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"0123456789")

    def failing() -> Iterator[bytes]:
        yield b"01234"
        raise OSError("backend read failed")

    with pytest.raises(OSError, match="backend read failed"):
        b"".join(node.engine.caching_iter(image, failing()))
    assert (node.cache_dir / "invalid" / image.id).read_bytes() == b"01234"
    assert node.registry.get(image.id) is None


def test_cache_write_failure_never_disturbs_the_download(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"payload" * 1000)
    incomplete = node.cache_dir / "incomplete"
    incomplete.rmdir()
    incomplete.write_text("not a directory")  # every attempt to open incomplete/<id> now fails
    assert _download(node.engine, image, store) == b"payload" * 1000
    assert not node.engine.is_cached(image.id)


def test_delete_during_fill_cancels_it(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    data = os.urandom(200 * KIB)
    image = active_image(store, data, chunk=64 * KIB)
    stream = node.engine.caching_iter(image, store.iter_data(image.id))
    received = next(stream)
    node.engine.delete(image.id)
    received += b"".join(stream)
    assert received == data
    assert not node.engine.is_cached(image.id) and node.registry.get(image.id) is None
    assert (node.cache_dir / "invalid" / image.id).exists()
    # The cancellation belonged to that fill only: the next download caches the image.
    assert _download(node.engine, image, store) == data
    assert node.engine.is_cached(image.id) and node.engine.stats()["ids_in_use"] == 0


def test_worker_is_not_held_by_a_slow_download(make_node: NodeFactory, store: ImageStore) -> None:
    """A queued image being filled by a stalled download does not tie up a worker; when the download
    is abandoned, the queued image is retried and cached."""
    node = make_node(workers=1)
    slow = active_image(store, os.urandom(200 * KIB), chunk=64 * KIB)
    other = active_image(store, b"other")
    stream = node.engine.caching_iter(slow, store.iter_data(slow.id))
    next(stream)  # the client reads one chunk, then stalls
    node.engine.queue(slow.id)
    node.engine.queue(other.id)
    assert node.engine.wait_idle(10)  # the single worker was free to cache the other image
    assert _ids(node.engine) == [other.id] and node.engine.list_queued() == [slow.id]
    stream.close()  # the client goes away: its partial fill is dropped, the queued id is retried
    assert node.engine.wait_idle(10)
    assert sorted(_ids(node.engine)) == sorted([other.id, slow.id])
    assert node.engine.list_queued() == []


def test_download_passes_through_while_another_process_writes(make_node: NodeFactory,
                                                              store: ImageStore) -> None:
    """A live writer elsewhere holds incomplete/<id> (open and flock-ed): nobody else touches it."""
    node = make_node()
    image = active_image(store, b"busy" * 100)
    partial = node.cache_dir / "incomplete" / image.id
    with partial.open("wb") as other_writer:
        fcntl.flock(other_writer.fileno(), fcntl.LOCK_EX)
        other_writer.write(b"bu")
        other_writer.flush()
        assert _download(node.engine, image, store) == b"busy" * 100
        node.engine.queue(image.id)
        assert node.engine.wait_idle(10)
        assert partial.read_bytes() == b"bu"
        assert not node.engine.is_cached(image.id) and node.engine.list_queued() == [image.id]
        node.engine.start()  # a restart of *this* process must not remove another's live file
        # start() re-submits the queue: let that attempt end while the other writer still holds its file.
        assert node.engine.wait_idle(10)
        assert partial.exists()
        assert node.engine.stats()["fills_started"] == 0


# -- reads and hits --------------------------------------------------------------------------------------


def test_open_cached_counts_hits_and_access_time(make_node: NodeFactory, store: ImageStore) -> None:
    clock = FakeClock()
    node = make_node(clock=clock)
    image = active_image(store, b"IMAGEDATA")
    _cache(node.engine, image.id)
    [cached] = node.engine.list_cached()
    for expected_hits in (1, 2):
        opened = node.engine.open_cached(image.id)
        assert opened is not None
        data, size = opened
        with data:
            assert (data.read(), size) == (b"IMAGEDATA", 9)
        [entry] = node.engine.list_cached()
        assert entry["hits"] == expected_hits
        assert entry["last_modified"] == cached["last_modified"]
        assert entry["last_accessed"] == clock.now
    assert node.engine.open_cached(str(uuid.uuid4())) is None


def test_file_without_row_is_not_served(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"orphan")
    (node.cache_dir / image.id).write_bytes(b"orphan")
    assert node.engine.open_cached(image.id) is None
    assert not node.engine.is_cached(image.id) and node.engine.list_cached() == []


# -- delete and clear ------------------------------------------------------------------------------------


def test_delete_is_idempotent_and_removes_everything(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"abc")
    _cache(node.engine, image.id)
    (node.cache_dir / "queue" / image.id).touch()
    node.engine.delete(image.id)
    assert not (node.cache_dir / image.id).exists()
    assert node.registry.get(image.id) is None and node.engine.list_queued() == []
    node.engine.delete(image.id)
    node.engine.delete(str(uuid.uuid4()))


def test_purge_image_removes_cache_and_queue(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    cached, queued = active_image(store, b"c"), active_image(store, b"q")
    _cache(node.engine, cached.id)
    node.engine.legacy_queue(queued.id)
    for image in (cached, queued):
        store.delete(image.id)
        node.engine.purge_image(image.id)
    assert node.engine.list_cached() == [] and node.engine.list_queued() == []


def test_clear_cache_and_queue_counts(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    cached = [active_image(store, bytes([n]) * 10) for n in range(3)]
    for image in cached:
        _cache(node.engine, image.id)
    queued = [str(uuid.uuid4()) for _ in range(2)]
    for image_id in queued:
        node.engine.legacy_queue(image_id)
    node.engine.delete_queued(queued[0])
    assert node.engine.list_queued() == [queued[1]]
    assert node.engine.delete_all_queued() == 1
    assert node.engine.delete_all_cached() == 3
    assert node.engine.list_cached() == [] and node.engine.list_queued() == []
    assert [p for p in node.cache_dir.iterdir() if p.is_file()] == []
    assert node.engine.delete_all_cached() == 0 and node.engine.delete_all_queued() == 0


def test_non_uuid_ids_never_touch_the_filesystem(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"keep")
    _cache(node.engine, image.id)
    (node.cache_dir / "etc").mkdir()
    (node.cache_dir / "etc" / "passwd").write_text("root")
    before = _tree(node.cache_dir.parent)
    bad_ids = ["../etc/passwd", "etc", "queue", "cache.db", "", "nodes", image.id + "/", f"../{image.id}"]
    for bad in bad_ids:
        assert not node.engine.is_cached(bad) and not node.engine.is_queued(bad)
        assert node.engine.open_cached(bad) is None
        assert node.engine.cached_nodes(bad) == []
        node.engine.delete(bad)
        node.engine.delete_queued(bad)
        node.engine.purge_image(bad)
        with pytest.raises(ValueError, match="not a UUID"):
            node.engine.queue(bad)
        with pytest.raises(ValueError, match="not a UUID"):
            node.engine.legacy_queue(bad)
    assert _tree(node.cache_dir.parent) == before


# -- prune ------------------------------------------------------------------------------------------------


def test_prune_fifteen_images_like_upstream(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(max_size=100 * KIB, clock=FakeClock())
    assert node.engine.prune() == (0, 0)
    images = [active_image(store, bytes([n]) * 10 * KIB) for n in range(15)]
    for image in images:
        _cache(node.engine, image.id)
    assert len(node.engine.list_cached()) == 15
    assert node.engine.prune() == (5, 51200)
    assert sorted(_ids(node.engine)) == sorted(i.id for i in images[5:])  # the five oldest went
    assert sum(1 for p in node.cache_dir.iterdir() if p.is_file()) == 10
    assert node.engine.prune() == (0, 0)


def test_prune_least_recently_accessed_first(make_node: NodeFactory, store: ImageStore) -> None:
    """Glance's unit test_prune: 10 x 1 KiB cached and read, plus a newer unread #99; max 5 KiB."""
    node = make_node(max_size=5 * KIB, clock=FakeClock())
    images = [active_image(store, bytes([n]) * KIB) for n in range(10)]
    for image in images:
        _cache(node.engine, image.id)
    for image in images:
        opened = node.engine.open_cached(image.id)
        assert opened is not None
        opened[0].close()
    newest = active_image(store, b"\x63" * KIB)
    _cache(node.engine, newest.id)  # never read: counts as accessed when cached
    assert node.engine.prune() == (6, 6 * KIB)
    assert sorted(_ids(node.engine)) == sorted([i.id for i in images[6:]] + [newest.id])


def test_prune_uses_last_access_not_cache_time(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(max_size=2 * KIB, clock=FakeClock())
    first, second, third = (active_image(store, bytes([n]) * KIB) for n in range(3))
    for image in (first, second, third):
        _cache(node.engine, image.id)
    opened = node.engine.open_cached(first.id)  # the oldest entry becomes the most recently used
    assert opened is not None
    opened[0].close()
    assert node.engine.prune() == (1, KIB)
    assert sorted(_ids(node.engine)) == sorted([first.id, third.id])


def test_prune_to_zero(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(max_size=0)
    for n in range(3):
        _cache(node.engine, active_image(store, bytes([n]) * 100).id)
    assert node.engine.prune() == (3, 300)
    assert node.engine.list_cached() == []


def test_prune_terminates_with_untracked_files(make_node: NodeFactory, store: ImageStore) -> None:
    """Glance 33 spins forever here: a 100-byte untracked file with max 5 bytes."""
    node = make_node(max_size=5)
    stray = node.cache_dir / "operator-notes.txt"
    stray.write_bytes(b"n" * 100)
    orphan = node.cache_dir / str(uuid.uuid4())
    orphan.write_bytes(b"o" * 100)
    image = active_image(store, b"t" * 10)
    _cache(node.engine, image.id)
    done: list[tuple[int, int]] = []
    worker = threading.Thread(target=lambda: done.append(node.engine.prune()), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done == [(1, 10)]
    assert stray.read_bytes() == b"n" * 100  # never counted, never deleted
    assert node.engine.prune() == (0, 0)


def test_concurrent_prunes_are_serialised(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(max_size=100 * KIB, clock=FakeClock())
    for n in range(15):
        _cache(node.engine, active_image(store, bytes([n]) * 10 * KIB).id)
    results: list[tuple[int, int]] = []
    gate = threading.Barrier(8)

    def prune() -> None:
        gate.wait()
        results.append(node.engine.prune())

    threads = [threading.Thread(target=prune) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Serialised: exactly one prune found work; no entry was counted twice.
    assert sorted(results) == [(0, 0)] * 7 + [(5, 51200)]


# -- clean and crash repair -------------------------------------------------------------------------------


def test_clean_removes_invalid_and_stalled_files(make_node: NodeFactory) -> None:
    node = make_node(stall_time=86400)
    (node.cache_dir / "invalid" / "invalid-image-id").write_bytes(b"x")
    stalled = node.cache_dir / "incomplete" / "stalled-image-id"
    stalled.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stalled, (two_days_ago, two_days_ago))
    recent = node.cache_dir / "incomplete" / "recent-image-id"
    recent.write_bytes(b"x")
    node.engine.clean()
    assert os.listdir(node.cache_dir / "invalid") == []
    assert os.listdir(node.cache_dir / "incomplete") == ["recent-image-id"]


def test_clean_with_zero_stall_time_removes_all_incomplete(make_node: NodeFactory) -> None:
    node = make_node(stall_time=0)
    old = node.cache_dir / "incomplete" / str(uuid.uuid4())
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 5, time.time() - 5))
    node.engine.clean()
    assert os.listdir(node.cache_dir / "incomplete") == []


def test_concurrent_cleans_all_succeed(make_node: NodeFactory) -> None:
    node = make_node()
    for n in range(50):
        (node.cache_dir / "invalid" / f"f{n}").write_bytes(b"x")
    errors: list[BaseException] = []

    def clean() -> None:
        try:
            node.engine.clean()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=clean) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and os.listdir(node.cache_dir / "invalid") == []


def test_start_repairs_a_crash(make_node: NodeFactory, store: ImageStore) -> None:
    first = make_node(name="n")
    kept, lost, adopted, corrupt, queued_cached = (active_image(store, bytes([n]) * 50) for n in range(5))
    for image in (kept, lost, queued_cached):
        _cache(first.engine, image.id)
    first.engine.close()
    cache = first.cache_dir
    (cache / lost.id).unlink()  # row without file
    (cache / adopted.id).write_bytes(bytes([2]) * 50)  # crash between rename and insert: a verified file
    (cache / corrupt.id).write_bytes(b"garbage")  # file without row whose bytes do not verify
    (cache / "incomplete" / str(uuid.uuid4())).write_bytes(b"half")  # a fill that died with its process
    (cache / "queue" / queued_cached.id).touch()  # crash between insert and queue-file removal

    second = make_node(name="n")
    assert second.engine.wait_idle(10)
    assert sorted(_ids(second.engine)) == sorted([kept.id, adopted.id, queued_cached.id])
    assert second.registry.get(lost.id) is None
    assert (cache / "invalid" / corrupt.id).read_bytes() == b"garbage"
    assert os.listdir(cache / "incomplete") == []
    assert second.engine.list_queued() == []
    opened = second.engine.open_cached(adopted.id)
    assert opened is not None
    with opened[0] as data:
        assert data.read() == bytes([2]) * 50


def test_clean_repairs_rows_without_files(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    image = active_image(store, b"soon gone")
    _cache(node.engine, image.id)
    (node.cache_dir / image.id).unlink()
    assert node.engine.list_cached() == []  # never listed without its file
    node.engine.clean()
    assert node.registry.get(image.id) is None
    _cache(node.engine, image.id)  # and it can be cached again


# -- drivers, nodes, time zones ---------------------------------------------------------------------------


def test_sqlite_driver_wire_shape_and_order(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node(driver="sqlite")
    assert node.engine.driver == "sqlite"
    images = [active_image(store, bytes([n]) * 20) for n in range(3)]
    for image in images:
        _cache(node.engine, image.id)
    listed = node.engine.list_cached()
    assert [e["image_id"] for e in listed] == sorted(i.id for i in images)
    assert all(list(e) == ["image_id", "hits", "last_accessed", "last_modified", "size"] for e in listed)
    assert (node.cache_dir / "cache.db").is_file()
    assert node.engine.prune() == (0, 0)  # cache.db is never counted


def test_cached_nodes_across_nodes(make_node: NodeFactory, store: ImageStore) -> None:
    a, b = make_node(name="a"), make_node(name="b")
    image = active_image(store, b"everywhere")
    other = active_image(store, b"nowhere")
    assert a.engine.cached_nodes(image.id) == []
    _cache(a.engine, image.id)
    _cache(b.engine, image.id)
    assert a.engine.cached_nodes(image.id) == ["http://a", "http://b"]
    assert a.engine.cached_nodes(other.id) == []
    assert b.engine.delete_all_cached() == 1
    assert _ids(a.engine) == [image.id] and b.engine.list_cached() == []
    assert b.engine.cached_nodes(image.id) == ["http://a"]


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
def test_timestamps_are_right_whatever_the_tz(make_node: NodeFactory, store: ImageStore, zone: str) -> None:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        assert time.timezone != 0 or time.daylight  # the zone really is not UTC
        node = make_node()
        image = active_image(store, b"tz")
        before = time.time()
        _cache(node.engine, image.id)
        opened = node.engine.open_cached(image.id)
        assert opened is not None
        opened[0].close()
        after = time.time()
        [entry] = node.engine.list_cached()
        assert isinstance(entry["last_modified"], float) and isinstance(entry["last_accessed"], float)
        assert before <= entry["last_modified"] <= entry["last_accessed"] <= after
        assert before - 1 <= image.created_at.timestamp() <= after
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_close_stops_the_workers(make_node: NodeFactory) -> None:
    node = make_node(workers=3)
    workers = list(node.engine._threads)
    assert len(workers) == 3 and all(t.is_alive() for t in workers)
    node.engine.close()
    assert not any(t.is_alive() for t in workers)
    node.engine.close()  # twice is harmless


# -- several processes, several backends ------------------------------------------------------------------

_PROCESS_SCRIPT = """
import json, sys, threading, time
from pathlib import Path
from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine.engine import CacheEngine
from glancecache_client.server.engine.registry import CacheRegistry
from glancecache_client.server.engine.store import ImageStore

root, image_id, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
database = schema.create_db_engine(schema.sqlite_url(root / "shared.db"))
store = ImageStore(database, root / "images")
engine = CacheEngine(node_url="http://shared-host", cache_dir=root / "cache", store=store,
                     registry=CacheRegistry.centralized(database, "http://shared-host"),
                     max_size=10**9, stall_time=86400)
engine.start()
image = store.get(image_id)
while not go.exists():
    time.sleep(0.005)
bodies = []
def download():
    bodies.append(b"".join(engine.caching_iter(image, store.iter_data(image_id))))
threads = [threading.Thread(target=download) for _ in range(10)]
for t in threads: t.start()
for t in threads: t.join()
engine.close()
print(json.dumps({"ok": all(b == store.data_path(image_id).read_bytes() for b in bodies), **engine.stats()}))
"""


def test_two_processes_sharing_a_cache_dir(tmp_path: Path, store: ImageStore) -> None:
    """Two server processes (say two API workers on one host) download one image at the same moment."""
    data = os.urandom(4 * 1024 * KIB)
    image = active_image(store, data, chunk=64 * KIB)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _PROCESS_SCRIPT, str(tmp_path), image.id, str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["ok"] for r in results)
    assert all(r["fills_failed"] == 0 for r in results)
    assert 1 <= sum(r["fills_committed"] for r in results) <= 2
    cache = tmp_path / "cache"
    assert (cache / image.id).read_bytes() == data
    assert os.listdir(cache / "incomplete") == [] and os.listdir(cache / "invalid") == []


def test_two_nodes_on_every_backend(shared_db: sa.Engine, make_node: NodeFactory, tmp_path: Path) -> None:
    catalogue = ImageStore(shared_db, tmp_path / "shared-images")
    a = make_node(name="a", db=shared_db, image_store=catalogue, clock=FakeClock())
    b = make_node(name="b", db=shared_db, image_store=catalogue, clock=FakeClock())
    image = active_image(catalogue, b"IMAGEDATA")
    _cache(a.engine, image.id)
    assert b.engine.list_cached() == []
    assert a.engine.cached_nodes(image.id) == ["http://a"]
    _cache(b.engine, image.id)
    assert b.engine.cached_nodes(image.id) == ["http://a", "http://b"]
    opened = b.engine.open_cached(image.id)
    assert opened is not None
    opened[0].close()
    [on_a], [on_b] = a.engine.list_cached(), b.engine.list_cached()
    assert (on_a["hits"], on_b["hits"]) == (0, 1)
    b.engine.max_size = 0
    assert b.engine.prune() == (1, 9)
    assert a.engine.cached_nodes(image.id) == ["http://a"]
    catalogue.delete(image.id)
    a.engine.purge_image(image.id)
    assert a.engine.cached_nodes(image.id) == []


def test_zero_workers_keep_the_queue_and_hold_resumes(tmp_path: Path) -> None:
    from glancecache_client.server.runner import run_cluster

    with run_cluster(nodes=1, data_dir=tmp_path, cache_workers=0) as cluster:
        engine = cluster.nodes[0].engine
        assert engine is not None
        image_id = cluster.upload_image(b"q" * 100)
        engine.queue(image_id)
        assert engine.list_queued() == [image_id] and not engine.is_cached(image_id)

    with run_cluster(nodes=1, data_dir=tmp_path / "held") as cluster:
        engine = cluster.nodes[0].engine
        assert engine is not None
        image_id = cluster.upload_image(b"h" * 100)
        engine.hold_queue()
        engine.queue(image_id)
        assert engine.wait_idle(5) and engine.list_queued() == [image_id]
        engine.hold_queue(False)
        assert engine.wait_idle(10) and engine.is_cached(image_id) and engine.list_queued() == []
