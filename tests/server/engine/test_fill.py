"""The one checksum rule (``fill.verify``), the same for every fill and for crash repair, and the fill's interface.

The rule is tested here once, as a table. The two tests after it show that both of its users (a fill, and
``start()`` adopting a file left without a registry row) follow it where they used to differ.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine import fill as fill_module
from glancecache_client.server.engine.fill import Digests, digest_file, verify
from glancecache_client.server.engine.store import Image, ImageStore

from .conftest import NodeFactory, active_image

DATA = b"verify me" * 100
GOOD = Digests(len(DATA), {"md5": hashlib.md5(DATA).hexdigest(), "sha512": hashlib.sha512(DATA).hexdigest()})
SHA512_ONLY = Digests(len(DATA), {"sha512": GOOD.hexdigests["sha512"]})
MD5_ONLY = Digests(len(DATA), {"md5": GOOD.hexdigests["md5"]})
OTHER = b"verify mE" * 100


def _image(store: ImageStore, **changes: object) -> Image:
    return dataclasses.replace(active_image(store, DATA), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "digests", "refused_because"),
    [
        ({}, GOOD, None),
        ({"os_hash_value": None, "os_hash_algo": None}, GOOD, None),  # MD5 alone is enough
        ({"checksum": None}, GOOD, None),  # SHA-512 alone is enough
        ({}, dataclasses.replace(GOOD, size=GOOD.size - 1), "size 899 != expected 900"),
        ({}, Digests(len(DATA), {**GOOD.hexdigests, "md5": hashlib.md5(OTHER).hexdigest()}), "md5 "),
        ({}, Digests(len(DATA), {**GOOD.hexdigests, "sha512": hashlib.sha512(OTHER).hexdigest()}), "sha512 does not"),
        ({}, SHA512_ONLY, None),  # what a fill of a Glance image measures
        ({}, MD5_ONLY, "sha512 (the image's os_hash_algo) was not measured"),
        ({"checksum": None}, MD5_ONLY, "sha512 (the image's os_hash_algo) was not measured"),
        ({"checksum": None, "os_hash_value": None}, GOOD, "no checksum to verify against"),
        ({"size": None}, GOOD, "no size to verify against"),
        ({"os_hash_algo": "sha256"}, GOOD, "sha256 (the image's os_hash_algo) was not measured"),
        ({"os_hash_algo": "no-such-hash"}, MD5_ONLY, None),  # MD5 stands in for a hash this Python lacks
        ({"os_hash_algo": "no-such-hash", "checksum": None}, GOOD, "which this server cannot compute"),
    ],
)
def test_verify(store: ImageStore, changes: dict[str, object], digests: Digests, refused_because: str | None) -> None:
    reason = verify(_image(store, **changes), digests)
    if refused_because is None:
        assert reason is None
    else:
        assert reason is not None and refused_because in reason


def test_digest_file_measures_what_a_fill_measures(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA)
    assert digest_file(path, ("md5", "sha512")) == GOOD


def _set_image_row(db: sa.Engine, image_id: str, **values: object) -> None:
    with db.begin() as connection:
        connection.execute(sa.update(schema.images).where(schema.images.c.id == image_id).values(**values))


def test_a_fill_checks_the_os_hash_algo_the_image_names(
    make_node: NodeFactory, store: ImageStore, sqlite_db: sa.Engine
) -> None:
    # Before the one rule, a fill ignored an os_hash_value in another algorithm and cached on MD5 alone. Now it
    # measures that algorithm: the SHA-512 value recorded under "sha256" does not match, so nothing is cached.
    node = make_node()
    image = active_image(store, DATA)
    _set_image_row(sqlite_db, image.id, os_hash_algo="sha256")
    node.engine.queue(image.id)
    assert node.engine.wait_idle(10)
    assert node.engine.list_cached() == [] and node.registry.get(image.id) is None
    assert (node.cache_dir / "invalid" / image.id).read_bytes() == DATA


def test_repair_adopts_a_file_that_verifies_by_sha512_alone(
    make_node: NodeFactory, store: ImageStore, sqlite_db: sa.Engine
) -> None:
    # Before the one rule, crash repair wanted an MD5 checksum and threw away a file whose SHA-512 verified,
    # while a fill cached the same bytes.
    first = make_node(name="n")
    image = active_image(store, DATA)
    _set_image_row(sqlite_db, image.id, checksum=None)
    first.engine.close()
    (first.cache_dir / image.id).write_bytes(DATA)  # a crash between rename and row insert
    garbage = active_image(store, OTHER)
    _set_image_row(sqlite_db, garbage.id, checksum=None)
    (first.cache_dir / garbage.id).write_bytes(DATA)  # the wrong bytes under its name
    second = make_node(name="n")
    assert second.engine.wait_idle(10)
    assert [entry["image_id"] for entry in second.engine.list_cached()] == [image.id]
    assert os.listdir(second.cache_dir / "invalid") == [garbage.id]


def test_a_fill_touches_only_the_public_interface_of_its_host() -> None:
    # The fill owns its commit step and reaches its engine only through FillHost: no private member.
    tree = ast.parse(Path(fill_module.__file__).read_text())
    private = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and (
            (isinstance(node.value, ast.Attribute) and node.value.attr == "host")
            or (isinstance(node.value, ast.Name) and node.value.id == "host")
        )
    }
    assert private == set()
    members = {name for name in dir(fill_module.FillHost) if not name.startswith("_")}
    assert members == {
        "node_url", "registry", "fill_paths", "now", "state_lock", "cancellation", "image_unchanged",
        "take_queue_file", "restore_queue_file", "fill_ended",
    }  # fmt: skip
