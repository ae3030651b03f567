"""Rows straight from a node's JSON (views.listing_rows, iso_column, operations.each_listing_rows): the same rows,
times and errors as the models' path, whatever a node sends."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

import pytest

from glancecache_client import operations
from glancecache_client.models import EPOCH_LIMIT, CacheState, epoch_to_datetime
from glancecache_client.views import CACHE_COLUMNS, ColumnRows, cache_rows, iso_column, iso_utc, listing_rows

from .conftest import IMAGE, OTHER
from .test_operations import scripted

NODE = "http://n0:9292"


def _datetime_text(epoch: object) -> str | None:
    return iso_utc(epoch_to_datetime(epoch))


# -- times: the text datetime writes, for every epoch -----------------------------------------------------------


def _edge_epochs() -> list[float | int]:
    edges: list[float | int] = [0, 0.0, -0.0, 1, 5e-324, 1e-7, 4.9e-7, 5e-7, 5.1e-7, 0.5, 0.9999995, 0.99999949,
                                1795302923.43224, 1795302923.432252, 1639578364.65118, 1795626355.0030477,
                                EPOCH_LIMIT - 1, math.nextafter(EPOCH_LIMIT, 0), 253402300798.9999995,
                                86399.9999996, 3599.9999996, 59.9999996, 951782399.9999996]  # fmt: skip
    for whole in (0, 1, 59, 3599, 86399, 951782400, 1795302923, 4102444799, 253402300000):
        for fraction in (0.0, 1 / 128, 3 / 128, 5 / 128, 0.5, 0.9999995, 0.0000005, 0.0000015, 0.9999994):
            value = whole + fraction
            edges += (value, math.nextafter(value, 0), math.nextafter(value, math.inf))
        edges.append(whole)  # an int, as the xattr driver sends
    return [edge for edge in edges if 0 <= edge < EPOCH_LIMIT]


def _random_epochs(count: int) -> list[float | int]:
    chance = random.Random(11)
    values: list[float | int] = []
    for _ in range(count):
        kind = chance.random()
        if kind < 0.5:  # recent times, as time.time() gives them
            values.append(chance.uniform(1.5e9, 2.0e9))
        elif kind < 0.7:
            values.append(chance.uniform(0, EPOCH_LIMIT))
        elif kind < 0.8:
            values.append(chance.randrange(0, int(EPOCH_LIMIT)))
        elif kind < 0.9:  # fractions at a microsecond's half, where rounding decides
            values.append(chance.randrange(0, 2**31) + (chance.randrange(10**6) + 0.5) / 1e6)
        else:
            values.append(chance.randrange(0, 2**31) + chance.choice((0.9999995, 0.0000005, 0.25)))
    return values


@pytest.mark.parametrize("epochs", [_edge_epochs(), _random_epochs(100_000)], ids=["edges", "random"])
def test_each_time_is_the_text_datetime_writes(epochs: list[float | int]) -> None:
    expected = [_datetime_text(epoch) for epoch in epochs]
    assert iso_column(epochs) == expected
    for epoch, text in zip(epochs, expected, strict=True):  # alone too: a column of whole seconds, of one zero...
        assert iso_column([epoch]) == [text], epoch
    assert all(text is None or text.endswith("Z") for text in expected)


def test_never_is_none_and_a_column_of_whole_seconds_has_no_fraction() -> None:
    assert iso_column([None, 0, 0.0, 1, 2.5, None]) == [
        None, None, None, "1970-01-01T00:00:01Z", "1970-01-01T00:00:02.500000Z", None
    ]  # fmt: skip
    assert iso_column([]) == []
    assert iso_column([None]) == [None]


@pytest.mark.parametrize(
    "odd",
    [-1, -0.5, -1e-300, math.nan, math.inf, -math.inf, EPOCH_LIMIT, 1e20, 10**30, -(10**30), True, False, "1795302923",
     "", [], {}],
)  # fmt: skip
def test_a_column_with_anything_else_is_refused_whole(odd: object) -> None:
    assert iso_column([1795302923.5, odd, 7]) is None


# -- rows: the models' rows, whichever path a body takes --------------------------------------------------------

SQLITE = {"image_id": IMAGE, "hits": 3, "last_accessed": 1795302923.43224, "last_modified": 1795302000.5,
          "size": 1024}  # fmt: skip
CENTRALIZED = {"id": 7, "image_id": OTHER, "last_accessed": 1795302923.43224, "last_modified": 1795302923.432252,
               "size": 1048576, "hits": 0, "checksum": None}  # fmt: skip
XATTR = {"image_id": "e6a5c1a4-8a8c-4c43-9d30-4b1b1c7e2f0e", "last_modified": 1795302000, "last_accessed": 1795302999,
         "size": 5, "hits": 12}  # fmt: skip

NO_QUEUE: list[str] = []
PLAIN_BODIES = {
    "sqlite": {"cached_images": [SQLITE, {**SQLITE, "image_id": OTHER, "hits": 0}], "queued_images": NO_QUEUE},
    "centralized_db": {
        "cached_images": [CENTRALIZED, {**CENTRALIZED, "checksum": "ab" * 16}],
        "queued_images": [IMAGE],
    },
    "xattr (int times)": {"cached_images": [XATTR], "queued_images": NO_QUEUE},
    "never accessed": {
        "cached_images": [{**SQLITE, "last_accessed": 0}, {**SQLITE, "last_accessed": 0.0}],
        "queued_images": NO_QUEUE,
    },
    "null times": {
        "cached_images": [{**SQLITE, "last_accessed": None}, {**CENTRALIZED, "last_modified": None}],
        "queued_images": NO_QUEUE,
    },
    "equal times": {"cached_images": [{**SQLITE, "last_modified": SQLITE["last_accessed"]}], "queued_images": []},
    "empty checksum": {"cached_images": [{**CENTRALIZED, "checksum": ""}, CENTRALIZED], "queued_images": []},
    "unicode and quotes": {"cached_images": [{**SQLITE, "image_id": 'é"\\x'}], "queued_images": ["ü"]},
    "queued only": {"cached_images": [], "queued_images": [IMAGE, OTHER]},
    "empty": {"cached_images": [], "queued_images": []},
    "unknown keys": {"cached_images": [{**SQLITE, "new": [1]}], "queued_images": [], "next": None},
}


def _without(key: str) -> dict[str, object]:
    return {"cached_images": [{k: v for k, v in SQLITE.items() if k != key}], "queued_images": []}


# What only the models may judge: accepted (converted) or refused there, never here.
ODD_ENTRIES = [{"size": 5.0}, {"hits": True}, {"size": -1}, {"hits": 1.5}, {"last_accessed": "1795302923.5"},
               {"last_accessed": ""}, {"last_modified": -5}, {"last_modified": math.nan}, {"last_accessed": 1e20},
               {"last_accessed": EPOCH_LIMIT}, {"checksum": "\x1b[2J"}, {"checksum": 5}, {"image_id": "a\nb"},
               {"image_id": ""}, {"image_id": 7}, {"image_id": None}, {"size": None}, {"hits": "3"}]  # fmt: skip
ODD_BODIES: dict[str, object] = {
    f"entry {change}": {"cached_images": [SQLITE, {**SQLITE, **change}], "queued_images": []}
    for change in ODD_ENTRIES
}
ODD_BODIES.update({
    "missing size": _without("size"),
    "missing image_id": _without("image_id"),
    "missing time": _without("last_accessed"),  # the models make it None; no driver omits it
    "entry not an object": {"cached_images": [SQLITE, [1]], "queued_images": []},
    "queued id not text": {"cached_images": [], "queued_images": [7]},
    "queued id empty": {"cached_images": [], "queued_images": [""]},
    "queued id with a newline": {"cached_images": [], "queued_images": ["a\nb"]},
    "no queued list": {"cached_images": []},
    "cached not a list": {"cached_images": "x", "queued_images": []},
    "a tuple of entries": {"cached_images": (SQLITE,), "queued_images": ()},
    "not an object": [SQLITE],
})  # fmt: skip


def _models(body: object) -> list[tuple[object, ...]] | str:
    try:
        return list(cache_rows(CacheState.from_api(body, NODE)))
    except ValueError as exc:
        return str(exc)


def _rows(body: object) -> list[tuple[object, ...]] | str:
    try:
        return list(listing_rows(body, NODE))
    except ValueError as exc:
        return str(exc)


@pytest.mark.parametrize("body", PLAIN_BODIES.values(), ids=PLAIN_BODIES.keys())
def test_a_plain_body_is_read_by_columns_into_the_models_rows(body: object) -> None:
    from glancecache_client.views import _plain_rows

    assert _plain_rows(body, NODE) is not None  # the column path took it (else this test would prove nothing)
    assert _rows(body) == _models(body)


@pytest.mark.parametrize("body", ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_any_other_body_gets_the_models_rows_or_their_error(body: object) -> None:
    from glancecache_client.views import _plain_rows

    assert _plain_rows(body, NODE) is None
    assert _rows(body) == _models(body)


def test_a_large_listing_is_the_models_rows() -> None:
    chance = random.Random(3)
    entries = [
        {"image_id": f"{index:08x}-0000-4000-8000-000000000000", "hits": chance.randrange(20),
         "last_accessed": chance.uniform(1.7e9, 1.8e9), "last_modified": chance.choice((0, 1.7e9 + index)),
         "size": chance.randrange(2**40), **({"checksum": chance.choice((None, "", "0f" * 16))} if index % 3 else {})}
        for index in range(20_000)
    ]  # fmt: skip
    body = {"cached_images": entries, "queued_images": [f"q{index}" for index in range(100)]}
    assert _rows(body) == _models(body)


def test_column_rows_behave_as_a_list_of_rows() -> None:
    rows = listing_rows(PLAIN_BODIES["centralized_db"], NODE)
    as_list = _models(PLAIN_BODIES["centralized_db"])
    assert isinstance(as_list, list)
    assert len(rows) == 3 and rows == as_list and as_list == rows and list(rows) == as_list
    assert rows[0] == as_list[0] and rows[-1] == as_list[-1] and rows[1:] == as_list[1:]
    assert rows.where(CACHE_COLUMNS.index("state"), "queued".__eq__) == as_list[2:]
    assert len(ColumnRows.of([], len(CACHE_COLUMNS))) == 0 and ColumnRows.of([], 8) == []
    assert rows != as_list[:2] and rows != "x"


# -- the core's row listings: each_listing's answers, as rows ----------------------------------------------------


@pytest.mark.parametrize(
    ("state", "images"), [(None, ()), ("cached", ()), ("queued", ()), (None, (IMAGE,)), ("queued", (OTHER, IMAGE))]
)
def test_each_listing_rows_is_each_listing_as_rows(state: str | None, images: tuple[str, ...]) -> None:
    bodies = [PLAIN_BODIES["centralized_db"], ODD_BODIES["entry {'size': 5.0}"], ODD_BODIES["entry {'hits': True}"]]
    cluster, fakes = scripted(3)
    for fake, body in zip(fakes, bodies, strict=True):
        fake.on("GET", "/v2/cache", 200, body)
    with cluster:
        models = list(operations.each_listing(cluster, state=state, images=images))
        rows = list(operations.each_listing_rows(cluster, state=state, images=images))
        outcome = operations.list_rows(cluster, state=state, images=images)
    assert [type(item) for item in rows] == [type(item) for item in models]
    assert [item.node for item in rows] == [item.node for item in models]
    for item, model in zip(rows, models, strict=True):
        if isinstance(model, operations.Failure):
            assert isinstance(item, operations.Failure) and item.line == model.line
        else:
            assert isinstance(item, operations.Success) and item.value == list(cache_rows(model.value))
    assert [success.value for success in outcome.successes] == [item.value for item in rows if not
                                                               isinstance(item, operations.Failure)]  # fmt: skip


def test_a_node_whose_body_is_no_listing_fails_alike_on_both_paths() -> None:
    cluster, fakes = scripted(2)
    fakes[0].on("GET", "/v2/cache", 200, {"cached_images": [{"image_id": 7}], "queued_images": []})
    fakes[1].on("GET", "/v2/cache", 200, PLAIN_BODIES["sqlite"])
    with cluster:
        models = list(operations.each_listing(cluster))
        rows = list(operations.each_listing_rows(cluster))
    assert isinstance(models[0], operations.Failure) and isinstance(rows[0], operations.Failure)
    assert rows[0].line == models[0].line
    assert isinstance(rows[1], operations.Success) and isinstance(models[1], operations.Success)
    assert rows[1].value == list(cache_rows(models[1].value))


def test_datetime_agrees_on_the_epoch_limit() -> None:
    assert datetime.fromtimestamp(math.nextafter(EPOCH_LIMIT, 0), timezone.utc).year == 9999
