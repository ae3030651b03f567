"""A fill computes only the strongest digest the image records, and still refuses any byte that does not match it."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine.digesting import COPY_CHUNK, DigestingWriter
from glancecache_client.server.engine.fill import fill_digests
from glancecache_client.server.engine.store import Image, ImageStore

from .conftest import NodeFactory, active_image

KIB = 1024


def _with(image: Image, **changes: object) -> Image:
    return Image(**{**image.__dict__, **changes})


def _recorded(store: ImageStore, image: Image, **changes: object) -> Image:
    """The catalogue's record of ``image`` changed (as an older or foreign Glance may have written it)."""
    with store._db.begin() as conn:
        conn.execute(sa.update(schema.images).where(schema.images.c.id == image.id).values(**changes))
    changed = store.get(image.id)
    assert changed is not None
    return changed


def test_a_glance_image_is_verified_by_its_sha512_alone(store: ImageStore) -> None:
    image = active_image(store, b"payload")
    assert (image.checksum, image.os_hash_algo) == (hashlib.md5(b"payload").hexdigest(), "sha512")
    assert fill_digests(image) == ("sha512",)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"os_hash_value": None, "os_hash_algo": None}, ("md5",)),  # a legacy image: md5 is all it has
        ({"checksum": None}, ("md5", "sha512")),  # the row needs an md5, the image has none: computed
        ({"os_hash_algo": "sha256", "os_hash_value": hashlib.sha256(b"payload").hexdigest()}, ("sha256",)),
        ({"os_hash_algo": None}, ("sha512",)),  # Glance's default algorithm
        ({"os_hash_algo": "no-such-hash"}, ("md5",)),
    ],
)
def test_the_digests_follow_what_the_image_records(
    store: ImageStore, changes: dict[str, object], expected: tuple[str, ...]
) -> None:
    assert fill_digests(_with(active_image(store, b"payload"), **changes)) == expected


@pytest.mark.parametrize("size", [100, 3 * COPY_CHUNK + 5])  # inline, and through the helper threads
def test_the_writer_computes_only_the_digests_asked_for(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    with (tmp_path / "out").open("wb") as out:
        writer = DigestingWriter(out, algorithms=("sha512",))
        writer.write(data)
        writer.close()
    assert writer.algorithms == ("sha512",)
    assert writer.sha512_hex() == hashlib.sha512(data).hexdigest()
    with pytest.raises(KeyError):
        writer.md5_hex()
    assert (tmp_path / "out").read_bytes() == data


@pytest.mark.parametrize("size", [4 * KIB, 3 * COPY_CHUNK])
def test_a_corrupted_fill_is_refused_by_sha512_alone(
    make_node: NodeFactory, store: ImageStore, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    node = make_node()
    image = active_image(store, b"A" * size)
    store.data_path(image.id).write_bytes(b"A" * (size - 1) + b"B")  # one byte differs, same size
    with caplog.at_level(logging.ERROR, logger="glancecache_client.server.engine"):
        node.engine.queue(image.id)
        assert node.engine.wait_idle(10)
    assert "sha512 does not match os_hash_value" in caplog.text
    assert not node.engine.is_cached(image.id) and node.registry.get(image.id) is None
    assert (node.cache_dir / "invalid" / image.id).exists()


def test_the_cached_row_still_carries_the_md5(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    data = os.urandom(2 * COPY_CHUNK + 7)
    image = active_image(store, data)
    node.engine.queue(image.id)
    assert node.engine.wait_idle(10)
    entry = node.registry.get(image.id)
    assert entry is not None and entry.checksum == hashlib.md5(data).hexdigest() == image.checksum


def test_an_image_without_checksum_gets_the_md5_of_its_data(make_node: NodeFactory, store: ImageStore) -> None:
    node = make_node()
    only_sha512 = _recorded(store, active_image(store, b"payload"), checksum=None)
    assert b"".join(node.engine.caching_iter(only_sha512, iter([b"pay", b"load"]))) == b"payload"
    entry = node.registry.get(only_sha512.id)
    assert entry is not None and entry.checksum == hashlib.md5(b"payload").hexdigest()


def test_an_image_whose_only_digest_cannot_be_computed_is_not_cached(
    make_node: NodeFactory, store: ImageStore, caplog: pytest.LogCaptureFixture
) -> None:
    node = make_node()
    image = _recorded(store, active_image(store, b"payload"), checksum=None, os_hash_algo="no-such-hash")
    with caplog.at_level(logging.ERROR, logger="glancecache_client.server.engine"):
        assert b"".join(node.engine.caching_iter(image, iter([b"payload"]))) == b"payload"
    assert "which this server cannot compute" in caplog.text
    assert not node.engine.is_cached(image.id)
