from __future__ import annotations

from datetime import datetime, timezone

import pytest

from glancecache_client.models import CachedImage, CacheState, ClearTarget, PruneResult, epoch_to_datetime


def test_epoch_zero_and_missing_are_none_not_1970() -> None:
    assert epoch_to_datetime(0) is None
    assert epoch_to_datetime(0.0) is None
    assert epoch_to_datetime(None) is None


def test_epoch_is_utc_aware() -> None:
    moment = epoch_to_datetime(1795302923.43224)
    assert moment == datetime(2026, 11, 21, 23, 15, 23, 432240, tzinfo=timezone.utc)
    assert moment is not None and moment.utcoffset() is not None


def test_centralized_entry_with_extra_fields() -> None:
    entry = {
        "id": 1,
        "image_id": "x",
        "last_accessed": 1795302923.43224,
        "last_modified": 1795302923.432252,
        "size": 1048576,
        "hits": 0,
        "checksum": None,
        "future_field": [1],
    }
    image = CachedImage.from_api(entry, "http://n1:9292")
    assert (image.image_id, image.size, image.hits, image.checksum, image.node) == (
        "x",
        1048576,
        0,
        None,
        "http://n1:9292",
    )
    assert image.last_modified is not None and image.last_modified.year == 2026


def test_sqlite_entry_shape_and_zero_access() -> None:
    entry = {"image_id": "x", "hits": 3, "last_accessed": 0, "last_modified": 1639389612.596718, "size": 16300544}
    image = CachedImage.from_api(entry, "n")
    assert image.last_accessed is None and image.checksum is None and image.hits == 3


def test_state_from_api_keeps_order_and_node() -> None:
    body = {
        "cached_images": [
            {"image_id": "b", "size": 1, "hits": 0, "last_accessed": 1, "last_modified": 1},
            {"image_id": "a", "size": 2, "hits": 1, "last_accessed": 1, "last_modified": 1},
        ],
        "queued_images": ["q2", "q1"],
    }
    state = CacheState.from_api(body, "n")
    assert [i.image_id for i in state.cached] == ["b", "a"]
    assert state.queued == ("q2", "q1") and state.total_size == 3 and state.is_cached("a")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"cached_images": "x"},
        {"cached_images": [1]},
        {"queued_images": [1]},
        {"cached_images": [{"image_id": 5}]},
        {"cached_images": [{"image_id": "a", "size": "big", "hits": 0}]},
    ],
)
def test_malformed_state_raises_value_error(body: object) -> None:
    with pytest.raises(ValueError):
        CacheState.from_api(body, "n")


def test_prune_result() -> None:
    assert PruneResult.from_api({"total_files_pruned": 2, "total_bytes_pruned": 2097152}, "n") == PruneResult(
        2, 2097152, "n"
    )
    with pytest.raises(ValueError):
        PruneResult.from_api({"total_files_pruned": True}, "n")


@pytest.mark.parametrize(
    ("given", "target", "header"),
    [
        ("both", ClearTarget.BOTH, None),
        ("BOTH", ClearTarget.BOTH, None),
        ("cache", ClearTarget.CACHE, "cache"),
        ("cached", ClearTarget.CACHE, "cache"),
        ("queued", ClearTarget.QUEUE, "queue"),
        (" Queue ", ClearTarget.QUEUE, "queue"),
    ],
)
def test_clear_target_parse(given: str, target: ClearTarget, header: str | None) -> None:
    assert ClearTarget.parse(given) is target
    assert target.header_value == header


def test_clear_target_unknown() -> None:
    with pytest.raises(ValueError, match="unknown clear target 'everything'"):
        ClearTarget.parse("everything")


def test_an_empty_checksum_is_none_and_hostile_values_are_refused() -> None:
    entry = {"image_id": "3c021162-1e38-461a-a362-e154bf54e241", "size": 1, "hits": 0, "checksum": ""}
    assert CachedImage.from_api(entry, "n").checksum is None
    for bad in ({"size": -1}, {"hits": 1.5}, {"last_accessed": 1e20}, {"last_accessed": "nan"},
                {"last_modified": -5}, {"checksum": "\x1b[2J"}, {"image_id": "a\nb"}):  # fmt: skip
        with pytest.raises(ValueError):
            CachedImage.from_api({**entry, **bad}, "n")


_PLAIN = {"image_id": "3c021162-1e38-461a-a362-e154bf54e241", "size": 1024, "hits": 3, "checksum": "ab" * 16,
          "last_accessed": 1795302923.43224, "last_modified": 1795302000}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [{}, {"checksum": ""}, {"checksum": None}, {"last_accessed": 0}, {"last_modified": 0.0}, {"size": 0},
     {"size": 5.0}, {"hits": True}, {"last_accessed": "1795302923.5"}, {"last_accessed": None}, {"size": -1},
     {"hits": 1.5}, {"hits": -1}, {"last_accessed": 1e20}, {"last_accessed": float("nan")},
     {"last_modified": float("inf")}, {"last_modified": -5}, {"checksum": "\x1b[2J"}, {"checksum": 5},
     {"image_id": "a\nb"}, {"image_id": ""}, {"image_id": 7},
     {"last_accessed": 253402300799.0}, {"last_accessed": 253402300798.9}],
)  # fmt: skip
def test_a_listing_builds_each_entry_as_the_full_checks_would(change: dict[str, object]) -> None:
    """CacheState takes a quicker path for the plain shape of an entry: it must accept, build and refuse exactly
    what CachedImage.from_api does, whichever path an entry takes."""
    entry = {**_PLAIN, **change}
    try:
        expected: CachedImage | str = CachedImage.from_api(entry, "n")
    except ValueError as exc:
        expected = str(exc)
    try:
        built: CachedImage | str = CacheState.from_api({"cached_images": [entry], "queued_images": []}, "n").cached[0]
    except ValueError as exc:
        built = str(exc)
    assert built == expected
