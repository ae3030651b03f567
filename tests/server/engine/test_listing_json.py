"""GET /v2/cache writes its entries as JSON text straight from the rows (``Listing.json``): that text must be
``json.dumps`` of the dict payload the server built before, byte for byte, on both drivers and every backend."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from glancecache_client.server.engine import registry as registry_module
from glancecache_client.server.engine.registry import CENTRALIZED, SQLITE, CacheRegistry, Listing, RowTexts

from .conftest import NodeFactory

# Times as the registry may hold them: odd floats json writes in exponent form or with many digits, integral
# values (written "5.0"), the smallest and largest doubles, negative zero.
ODD_TIMES = [1e16, 1.5e16, 0.1, 1 / 3, 5.0, 0.0, -0.0, 1e-7, 5e-324, 1.7976931348623157e308, 1_700_000_000.1234567]
ODD_SIZES = [0, 1, 2**31, 2**53 + 1, 2**63 - 1]


def _old_body(registry: CacheRegistry) -> str:
    """The listing as the server wrote it before: json.dumps of CacheEntry.wire dicts of every entry."""
    return json.dumps([entry.wire(registry.driver) for entry in registry.entries()])


def _fill_oddly(registry: CacheRegistry, count: int = 12, times: list[float] = ODD_TIMES) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for index, image_id in enumerate(ids):
        checksum = None if index % 3 == 0 else uuid.uuid4().hex
        stamp = times[index % len(times)]
        assert registry.add(image_id, size=ODD_SIZES[index % len(ODD_SIZES)], checksum=checksum, now=stamp)
        if index % 2:
            assert registry.record_hit(image_id, now=times[(index * 5) % len(times)])
    return ids


def test_centralized_listing_text_is_json_dumps_of_the_entries(shared_db: sa.Engine) -> None:
    registry = CacheRegistry.centralized(shared_db, "http://a")
    other = CacheRegistry.centralized(shared_db, "http://b")
    assert registry.listing().json() == _old_body(registry) == "[]"
    _fill_oddly(other, 3)  # another node's rows are not this node's listing
    ids = _fill_oddly(registry)
    listing = registry.listing()
    assert listing.json() == _old_body(registry)
    assert [row["image_id"] for row in json.loads(listing.json())] == ids  # insertion order
    assert any(row["checksum"] is None for row in json.loads(listing.json()))
    kept = set(ids[1::2])
    only_kept = [entry.wire(CENTRALIZED) for entry in registry.entries() if entry.image_id in kept]
    assert listing.only(kept).json() == json.dumps(only_kept)


def test_sqlite_driver_listing_text_is_json_dumps_of_the_entries(tmp_path: Path) -> None:
    registry = CacheRegistry.per_node_sqlite(tmp_path / "cache.db")
    try:
        assert registry.listing().json() == _old_body(registry) == "[]"
        ids = _fill_oddly(registry)
        assert registry.listing().json() == _old_body(registry)
        assert [row["image_id"] for row in json.loads(registry.listing().json())] == sorted(ids)
        assert registry.listing().only(set()).json() == "[]"
    finally:
        registry.close()


def test_plain_rows_are_written_without_building_dicts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fast path is the one taken for the rows a cache really holds (else the tests above prove little)."""
    registry = CacheRegistry.per_node_sqlite(tmp_path / "cache.db")
    try:
        _fill_oddly(registry)
        expected = _old_body(registry)

        def no_dicts(self: Listing) -> list[dict[str, object]]:
            raise AssertionError("fell back to json.dumps of dicts")

        monkeypatch.setattr(Listing, "wire", no_dicts)
        assert registry.listing().json() == expected
    finally:
        registry.close()


def test_values_the_template_cannot_spell_fall_back_to_json_dumps() -> None:
    image_id = str(uuid.uuid4())
    cases: list[tuple[str, tuple[Any, ...]]] = [
        (SQLITE, ('quote"d', 1, 2.0, 3.0, 4)),
        (SQLITE, ("back\\slash", 1, 2.0, 3.0, 4)),
        (SQLITE, ("tab\there", 1, 2.0, 3.0, 4)),
        (SQLITE, ("caf\u00e9", 1, 2.0, 3.0, 4)),
        (SQLITE, (image_id, 1, float("nan"), 3.0, 4)),
        (SQLITE, (image_id, 1, 2.0, float("-inf"), 4)),
        (SQLITE, (image_id, 1, 2, 3, 4)),  # integers where floats belong: json writes float(2) as 2.0
        (SQLITE, (image_id, 1.0, 2.0, 3.0, 4)),
        (SQLITE, (image_id, True, 2.0, 3.0, 4)),
        (SQLITE, (image_id, "7", 2.0, 3.0, 4)),  # int("7") before; "%d" would raise
        (SQLITE, (image_id, 1, Decimal("2.5"), 3.0, Decimal(4))),
        (CENTRALIZED, (1, image_id, 2.0, 3.0, 4, 5, "\u2603")),
        (CENTRALIZED, (1, image_id, 2.0, 3.0, 4, 5, 'sum"')),
        (CENTRALIZED, (1, image_id, 2.0, 3.0, 4, 5, None)),
        (CENTRALIZED, (1, image_id, 1e300 * 10, 3.0, 4, 5, "abc")),
    ]
    for driver, row in cases:
        plain = (row[0], 1, 2.0, 3.0, 4) if driver == SQLITE else (2, image_id, 2.0, 3.0, 4, 5, None)
        listing = Listing(driver, [plain, row, plain])
        assert listing.json() == json.dumps(listing.wire()), (driver, row)


_times = st.one_of(st.floats(), st.integers(-(2**53), 2**53), st.sampled_from(ODD_TIMES))
_ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(-1e18, 1e18))
_texts = st.one_of(st.text(max_size=40), st.uuids().map(str), st.uuids().map(lambda u: u.hex))


@given(
    st.lists(st.tuples(_texts, _ints, _times, _times, _ints), max_size=8),
    st.lists(st.tuples(_ints, _texts, _times, _times, _ints, _ints, st.one_of(st.none(), _texts)), max_size=8),
)
def test_any_rows_give_json_dumps_of_their_dicts(
    sqlite_rows: list[tuple[Any, ...]], centralized_rows: list[tuple[Any, ...]]
) -> None:
    for driver, rows in ((SQLITE, sqlite_rows), (CENTRALIZED, centralized_rows)):
        listing = Listing(driver, rows)
        assert listing.json() == json.dumps(listing.wire())


def test_a_listing_reuses_the_texts_of_rows_unchanged_since_the_last(
    monkeypatch: pytest.MonkeyPatch, shared_db: sa.Engine
) -> None:
    registry = CacheRegistry.centralized(shared_db, "http://a")
    ids = _fill_oddly(registry, times=[time for time in ODD_TIMES if time])  # a zero time is never remembered
    assert registry.listing().json() == _old_body(registry)
    written: list[int] = []
    real_written = registry_module._written

    def counting(driver: str, rows: list[tuple[Any, ...]]) -> Any:
        written.append(len(rows))
        return real_written(driver, rows)

    monkeypatch.setattr(registry_module, "_written", counting)
    assert registry.listing().json() == _old_body(registry)
    assert registry.record_hit(ids[4], now=1_800_000_000.5)
    registry.add(str(uuid.uuid4()), size=3, checksum=None, now=2.5)
    assert registry.listing().json() == _old_body(registry)
    assert written == [2]  # nothing new the second time, then the row hit and the row added


def test_rows_equal_to_remembered_ones_get_the_text_their_own_values_give() -> None:
    """5 and 5.0 and True are equal keys and write alike after wire's int()/float(); 0.0 and -0.0 do not."""
    image_id = str(uuid.uuid4())
    memo = RowTexts()
    listings = [
        [(image_id, 1, 5.0, 0.5, 4)],
        [(image_id, True, 5, 0.5, 4.0)],  # equal to the first row: a memo hit, and the same text
        [(image_id, 1, 0.0, 0.5, 4)],
        [(image_id, 1, -0.0, 0.5, 4)],  # equal to the previous row, but "-0.0"
        [(image_id, 1, 0.0, 0.5, 4)],
    ]
    for rows in listings:
        listing = Listing(SQLITE, rows, memo)
        assert listing.json() == json.dumps(listing.wire()), rows
    assert memo.texts  # the memo was in use


_pooled_times = st.sampled_from([0.0, -0.0, 5.0, 5, 1e16, 0.1, float("nan"), True])
_pooled_ints = st.sampled_from([0, 1, 1.0, True, False, 2**53])


@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(["a", "b"]), _pooled_ints, _pooled_times, _pooled_times, _pooled_ints)),
        max_size=6,
    )
)
def test_listings_sharing_a_memo_give_json_dumps_of_their_dicts(listings: list[list[tuple[Any, ...]]]) -> None:
    memo = RowTexts()
    for rows in listings:
        listing = Listing(SQLITE, rows, memo)
        assert listing.json() == json.dumps(listing.wire())


def test_listing_wire_is_what_entries_give(tmp_path: Path, sqlite_db: sa.Engine) -> None:
    per_node = CacheRegistry.per_node_sqlite(tmp_path / "node" / "cache.db")
    try:
        for registry in (per_node, CacheRegistry.centralized(sqlite_db, "http://a")):
            _fill_oddly(registry)
            assert registry.listing().wire() == [entry.wire(registry.driver) for entry in registry.entries()]
    finally:
        per_node.close()


@pytest.mark.parametrize("driver", [CENTRALIZED, SQLITE])
def test_engine_listing_text_matches_list_cached(make_node: NodeFactory, driver: str) -> None:
    node = make_node(driver=driver, workers=0)
    assert node.engine.listing() == ("[]", [])
    ids = _fill_oddly(node.registry, 6)
    for image_id in ids[:4]:
        (node.cache_dir / image_id).write_bytes(b"x")  # the last two rows have no file: not listed
    cached, queued = node.engine.listing()
    assert cached == json.dumps(node.engine.list_cached()) == node.engine.list_cached_json()
    assert sorted(row["image_id"] for row in json.loads(cached)) == sorted(ids[:4])
    assert queued == []


def test_unescaped_pattern_matches_what_json_leaves_alone() -> None:
    for code in range(0x300):
        char = chr(code)
        plain = registry_module._UNESCAPED.fullmatch(char) is not None
        assert plain == (json.dumps(char) == f'"{char}"'), hex(code)
