"""Large fills commit before their bytes are durable and make them durable right after (``fill.DURABLE_LATER``):
listed and served at once, their ``incomplete/`` name (flock-ed) kept until the fsyncs return; a crash in between
has the next start verify the entry again; a failed flush drops it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from glancecache_client.server.engine import fill as fill_module
from glancecache_client.server.engine.store import ImageStore

from .conftest import NodeFactory, active_image

KIB = 1024


@pytest.fixture(autouse=True)
def small_durable_later(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill_module, "DURABLE_LATER", 64 * KIB)  # these tests' images are "large"


class HeldFsync:
    """os.fsync that waits for ``release`` on the descriptors of one file (by inode); others pass."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inode: int | None = None
        self.waiting = threading.Event()
        self.release = threading.Event()
        self.error: OSError | None = None
        real = os.fsync

        def fsync(fd: int) -> None:
            if self.inode is not None and os.fstat(fd).st_ino == self.inode:
                self.waiting.set()
                assert self.release.wait(30)
                if self.error is not None:
                    raise self.error
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


def test_a_large_fill_is_listed_and_served_before_its_flush_returns(
    make_node: NodeFactory, store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node()
    data = os.urandom(300 * KIB)
    image = active_image(store, data)
    held = HeldFsync(monkeypatch)
    incomplete = node.cache_dir / "incomplete" / image.id
    original_link = os.link

    def link(source: Path, target: Path) -> None:  # learn the fill's inode as it is linked into place
        held.inode = os.stat(source).st_ino
        original_link(source, target)

    monkeypatch.setattr(os, "link", link)
    node.engine.queue(image.id)
    assert held.waiting.wait(30)  # committed; the worker is flushing it
    assert node.engine.is_cached(image.id) and node.registry.get(image.id) is not None
    opened = node.engine.open_cached(image.id)
    assert opened is not None
    with opened[0] as handle:
        assert handle.read() == data
    assert incomplete.exists() and incomplete.stat().st_ino == (node.cache_dir / image.id).stat().st_ino
    held.release.set()
    assert node.engine.wait_idle(10)
    assert not incomplete.exists()  # durable: the name that said otherwise is gone
    assert node.engine.is_cached(image.id)
    assert node.engine.stats()["fills_committed"] == 1


def test_a_failed_flush_drops_the_entry(
    make_node: NodeFactory, store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node()
    image = active_image(store, os.urandom(200 * KIB))
    held = HeldFsync(monkeypatch)
    held.error = OSError(5, "Input/output error")
    original_link = os.link

    def link(source: Path, target: Path) -> None:
        held.inode = os.stat(source).st_ino
        original_link(source, target)

    monkeypatch.setattr(os, "link", link)
    held.release.set()
    node.engine.queue(image.id)
    assert node.engine.wait_idle(10)
    assert not node.engine.is_cached(image.id) and node.registry.get(image.id) is None
    assert (node.cache_dir / "invalid" / image.id).exists()
    assert os.listdir(node.cache_dir / "incomplete") == []
    assert node.engine.stats()["fills_failed"] == 1


@pytest.mark.parametrize("intact", [True, False], ids=["bytes-intact", "bytes-lost"])
def test_start_verifies_an_entry_whose_flush_never_returned(
    make_node: NodeFactory, store: ImageStore, intact: bool
) -> None:
    first = make_node(name="n")
    data = os.urandom(200 * KIB)
    image = active_image(store, data)
    first.engine.queue(image.id)
    assert first.engine.wait_idle(10) and first.engine.is_cached(image.id)
    first.engine.close()
    cached = first.cache_dir / image.id
    incomplete = first.cache_dir / "incomplete" / image.id
    os.link(cached, incomplete)  # as a crash between the commit and the end of the flush leaves it (unlocked)
    if not intact:
        with cached.open("r+b") as out:  # the device lost the last write: zeros where the data was
            out.seek(100 * KIB)
            out.write(bytes(4 * KIB))

    second = make_node(name="n")
    assert os.listdir(second.cache_dir / "incomplete") == []
    if intact:
        assert second.engine.is_cached(image.id)
        assert cached.read_bytes() == data
    else:
        assert not second.engine.is_cached(image.id) and second.registry.get(image.id) is None
        assert (second.cache_dir / "invalid" / image.id).exists()


def test_start_leaves_an_entry_being_flushed_by_a_live_writer(
    make_node: NodeFactory, store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process sharing the cache directory is flushing the entry: its flock says so, and a start here
    neither verifies nor touches it."""
    import fcntl

    first = make_node(name="n")
    image = active_image(store, os.urandom(200 * KIB))
    first.engine.queue(image.id)
    assert first.engine.wait_idle(10)
    first.engine.close()
    cached = first.cache_dir / image.id
    incomplete = first.cache_dir / "incomplete" / image.id
    os.link(cached, incomplete)
    with cached.open("r+b") as out:
        out.write(b"not verified by the start")
    fd = os.open(incomplete, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the live writer
        second = make_node(name="n")
        assert second.engine.is_cached(image.id) and incomplete.exists()
    finally:
        os.close(fd)


def test_clean_verifies_an_unconfirmed_entry_before_removing_its_stalled_name(
    make_node: NodeFactory, store: ImageStore
) -> None:
    """Another process sharing the cache directory died before its flush returned and has not started again: the
    stalled ``incomplete/`` name that clean() removes first has the entry verified, as a start would."""
    node = make_node(stall_time=60)
    kept, lost = (active_image(store, os.urandom(200 * KIB)) for _ in range(2))
    for image in (kept, lost):
        node.engine.queue(image.id)
    assert node.engine.wait_idle(10)
    with (node.cache_dir / lost.id).open("r+b") as out:
        out.write(bytes(4 * KIB))
    long_ago = time.time() - 3600
    for image in (kept, lost):
        incomplete = node.cache_dir / "incomplete" / image.id
        os.link(node.cache_dir / image.id, incomplete)
        os.utime(incomplete, (long_ago, long_ago))  # the entry's too: one inode
    node.engine.clean()
    assert os.listdir(node.cache_dir / "incomplete") == []
    assert node.engine.is_cached(kept.id)
    assert not node.engine.is_cached(lost.id) and (node.cache_dir / "invalid" / lost.id).exists()
