"""The image catalogue and shared image store, on a real SQLite file and a real directory."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine.store import ImageConflict, ImageNotFound, ImageStore, is_image_id

from .conftest import active_image


def test_create_generates_uuid4_and_starts_queued(store: ImageStore) -> None:
    image = store.create(name="cirros", container_format="bare", disk_format="qcow2", tags=["a", "b", "a"],
                         properties={"os_distro": "cirros"}, owner="p1", visibility="private")
    assert uuid.UUID(image.id).version == 4
    assert image.status == "queued"
    assert (image.name, image.container_format, image.disk_format) == ("cirros", "bare", "qcow2")
    assert image.tags == ("a", "b")
    assert dict(image.properties) == {"os_distro": "cirros"}
    assert (image.owner, image.visibility) == ("p1", "private")
    assert image.size is None and image.checksum is None and image.os_hash_value is None
    assert image.created_at.tzinfo == timezone.utc
    assert store.get(image.id) == image


def test_create_with_given_id_and_conflict(store: ImageStore) -> None:
    image_id = str(uuid.uuid4())
    assert store.create(image_id=image_id).id == image_id
    with pytest.raises(ImageConflict):
        store.create(image_id=image_id)
    with pytest.raises(ValueError, match="not a UUID"):
        store.create(image_id="../etc/passwd")


def test_get_unknown_and_malformed_ids(store: ImageStore) -> None:
    assert store.get(str(uuid.uuid4())) is None
    assert store.get("not-a-valid-uuid") is None
    assert store.get("../" * 12) is None


def test_is_image_id() -> None:
    assert is_image_id("0fc85dbe-a995-4577-8629-6eaaa1d314eb")
    assert is_image_id("0FC85DBE-A995-4577-8629-6EAAA1D314EB")
    for bad in ("", "nodes", "0fc85dbea99545778629eaaa1d314eb1", "{0fc85dbe-a995-4577-8629-6eaaa1d314eb}",
                "0fc85dbe-a995-4577-8629-6eaaa1d314e/", "../../../../../../../../../../etc/passwd"):
        assert not is_image_id(bad), bad


def test_upload_streams_hashes_and_activates(store: ImageStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    image = active_image(store, data, chunk=65536)
    assert image.status == "active"
    assert image.size == len(data)
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert image.os_hash_algo == "sha512"
    assert image.os_hash_value == hashlib.sha512(data).hexdigest()
    assert store.data_path(image.id).read_bytes() == data
    assert b"".join(store.iter_data(image.id)) == data
    assert all(len(chunk) <= 65536 for chunk in store.iter_data(image.id))
    assert not [p for p in store.images_dir.iterdir() if p.name.startswith(".upload-")]


def test_upload_passes_through_saving(store: ImageStore) -> None:
    image = store.create()
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        current = store.get(image.id)
        assert current is not None
        seen.append(current.status)
        yield b"x"

    store.upload(image.id, chunks())
    assert seen == ["saving"]


def test_failed_upload_leaves_no_data_and_image_queued(store: ImageStore) -> None:
    image = store.create()

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("client went away")

    with pytest.raises(OSError, match="client went away"):
        store.upload(image.id, broken())
    after = store.get(image.id)
    assert after is not None and after.status == "queued" and after.size is None
    assert list(store.images_dir.iterdir()) == []
    assert store.upload(image.id, [b"retry"]).status == "active"


def test_upload_only_once_and_only_known(store: ImageStore) -> None:
    image = active_image(store, b"IMAGEDATA")
    with pytest.raises(ImageConflict):
        store.upload(image.id, [b"again"])
    assert store.data_path(image.id).read_bytes() == b"IMAGEDATA"
    with pytest.raises(ImageNotFound):
        store.upload(str(uuid.uuid4()), [b"x"])


def test_concurrent_uploads_one_wins(store: ImageStore) -> None:
    image = store.create()
    gate = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def upload(n: int) -> None:
        gate.wait()
        try:
            store.upload(image.id, [bytes([n]) * 1000])
            result = "ok"
        except ImageConflict:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    final = store.get(image.id)
    assert final is not None and final.checksum == hashlib.md5(store.data_path(image.id).read_bytes()).hexdigest()


def test_set_status_and_delete(store: ImageStore) -> None:
    image = active_image(store, b"abc")
    assert store.set_status(image.id, "deactivated").status == "deactivated"
    assert store.set_status(image.id, "active").status == "active"
    with pytest.raises(ValueError, match="unknown image status"):
        store.set_status(image.id, "sleepy")
    store.delete(image.id)
    assert store.get(image.id) is None
    assert not store.data_path(image.id).exists()
    with pytest.raises(ImageNotFound):
        store.delete(image.id)
    with pytest.raises(ImageNotFound):
        store.set_status(image.id, "active")


def test_list_newest_first(store: ImageStore) -> None:
    ids = [store.create(name=str(n)).id for n in range(3)]
    assert [image.id for image in store.list()] == list(reversed(ids))


def test_data_path_refuses_non_uuid(store: ImageStore) -> None:
    with pytest.raises(ValueError):
        store.data_path("../../x")


def test_two_stores_share_one_catalogue(sqlite_db: sa.Engine, tmp_path: Path) -> None:
    first = ImageStore(sqlite_db, tmp_path / "images")
    second = ImageStore(sqlite_db, tmp_path / "images")  # a second node: the tables exist already
    image = active_image(first, b"shared")
    seen = second.get(image.id)
    assert seen is not None and seen.status == "active"
    assert b"".join(second.iter_data(image.id)) == b"shared"


def test_reads_do_not_wait_for_a_writer(store: ImageStore, sqlite_db: sa.Engine) -> None:
    """A listing's reads (the catalogue, the deletion log) go on while another thread holds the write lock:
    100 nodes of one process listing at once must not queue behind each other or behind an upload."""
    image = store.create(name="seen")
    done: list[object] = []
    with sqlite_db.begin() as writer:  # BEGIN IMMEDIATE: holds SQLite's one write lock until the block ends
        writer.execute(sa.text("SELECT 1"))
        reader = threading.Thread(target=lambda: done.extend([store.get(image.id), store.deletions_after(0)]))
        reader.start()
        reader.join(timeout=5)  # hang detection only: with the old BEGIN IMMEDIATE reads waited 30 s
        assert not reader.is_alive(), "a read waited for the writer"
    assert done == [image, []]


def test_a_burst_of_requests_reuses_its_sqlite_connections(sqlite_db: sa.Engine) -> None:
    """25 nodes of one process answering at once hold 25 connections; the next burst finds them open again
    (SQLAlchemy's default pool kept 5 and closed the rest, so every burst opened and configured new ones)."""
    opened: list[object] = []
    sa.event.listen(sqlite_db, "connect", lambda connection, record: opened.append(connection))
    for _burst in range(2):
        with contextlib.ExitStack() as held:
            for _ in range(25):
                held.enter_context(schema.reading(sqlite_db)).execute(sa.text("SELECT 1"))
    assert len(opened) == 25
