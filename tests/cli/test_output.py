"""Rendering of tables in every format, and -c/--sort-column handling (pure functions, no node)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import click
import pytest
import yaml

from glancecache_client import errors
from glancecache_client.cli import exitcodes
from glancecache_client.cli.output import CliError, OutputSpec, emit, render
from glancecache_client.views import ColumnRows, Table

TABLE = Table(
    ("node", "image_id", "state", "size", "hits", "last_accessed"),
    [
        ("http://g1:9292", "bbb", "cached", 1024, 3, "2026-11-21T23:17:30.761673Z"),
        ("http://g2:9292", "aaa", "queued", None, None, None),
        ("http://g1:9292", "ccc", "cached", 99, 0, None),
    ],
)


def test_json_keeps_integers_and_null():
    data = json.loads(render(TABLE, "json"))
    assert data[0] == {
        "node": "http://g1:9292",
        "image_id": "bbb",
        "state": "cached",
        "size": 1024,
        "hits": 3,
        "last_accessed": "2026-11-21T23:17:30.761673Z",
    }
    assert data[1]["size"] is None and data[1]["last_accessed"] is None
    assert isinstance(data[2]["hits"], int)


def test_yaml_keeps_integers_and_null():
    data = yaml.safe_load(render(TABLE, "yaml"))
    assert data[1] == {
        "node": "http://g2:9292",
        "image_id": "aaa",
        "state": "queued",
        "size": None,
        "hits": None,
        "last_accessed": None,
    }
    assert data[0]["size"] == 1024
    assert data[0]["last_accessed"] == "2026-11-21T23:17:30.761673Z"  # stays a string, not a YAML timestamp
    assert list(data[0]) == list(TABLE.columns)  # key order is the column order


def test_csv_has_a_header_and_blank_for_none():
    rows = list(csv.reader(io.StringIO(render(TABLE, "csv"))))
    assert rows[0] == list(TABLE.columns)
    assert rows[2] == ["http://g2:9292", "aaa", "queued", "", "", ""]


def test_value_is_bare_fields_without_header():
    lines = render(TABLE.select(["image_id", "size"]), "value").splitlines()
    assert lines == ["bbb 1024", "aaa ", "ccc 99"]


def test_table_has_headers_and_blank_cells_and_right_aligned_numbers():
    text = render(TABLE, "table")
    lines = text.splitlines()
    assert lines[0].split() == list(TABLE.columns)
    assert "None" not in text and "N/A" not in text
    size_end = lines[0].index("size") + len("size")
    assert lines[2][:size_end].endswith("1024") and lines[4][:size_end].endswith("99")


def test_empty_json_is_an_empty_list_and_empty_table_prints_nothing(capsys):
    empty = Table(TABLE.columns, [])
    emit(empty, OutputSpec("json"))
    assert json.loads(capsys.readouterr().out) == []
    emit(empty, OutputSpec("table"))
    assert capsys.readouterr().out == ""
    emit(empty, OutputSpec("csv"))
    assert capsys.readouterr().out.strip() == ",".join(TABLE.columns)


def test_columns_are_picked_in_the_order_given(capsys):
    emit(TABLE, OutputSpec("json", columns=("size", "image_id")))
    data = json.loads(capsys.readouterr().out)
    assert [list(row) for row in data] == [["size", "image_id"]] * 3


def test_sort_by_an_integer_column_with_none_first_and_descending(capsys):
    emit(TABLE, OutputSpec("value", columns=("image_id",), sort_columns=("size",)))
    assert capsys.readouterr().out.split() == ["aaa", "ccc", "bbb"]
    emit(TABLE, OutputSpec("value", columns=("image_id",), sort_columns=("size",), descending=True))
    assert capsys.readouterr().out.split() == ["bbb", "ccc", "aaa"]


def test_sort_on_a_column_that_is_not_shown(capsys):
    emit(TABLE, OutputSpec("value", columns=("image_id",), sort_columns=("image_id",)))
    assert capsys.readouterr().out.split() == ["aaa", "bbb", "ccc"]


@pytest.mark.parametrize("spec", [OutputSpec(columns=("bogus",)), OutputSpec(sort_columns=("bogus",))])
def test_unknown_column_is_a_usage_error_naming_the_valid_ones(spec):
    with pytest.raises(CliError) as caught:
        emit(TABLE, spec)
    assert caught.value.exit_code == exitcodes.USAGE
    assert "'bogus'" in caught.value.message and "image_id" in caught.value.message


# -- streaming (finish_streaming) prints what the buffered path (finish + emit) printed -------------------------

CHUNKS = [  # one list of rows per node, the way answers arrive; the second node has nothing
    [
        ("http://g1:9292", "bbb", "cached", 1024, 3, "2026-11-21T23:17:30.761673Z"),
        ("http://g1:9292", 'q"u\\o\u00e9te', "cached", 2**40, 0, None),
    ],
    [],
    [
        ("http://g3:9292", "aaa", "queued", None, None, None),
        ("http://g3:9292", "a, b},\n    {c", "cached", 7, 1, "x y"),  # the json writer's row separator, as text
        ("http://g3:9292", "%s %% \x00 \x1b", "cached", 0, 0, "%(node)s"),  # its value separator and templating
    ],
]
COLUMNS = TABLE.columns


def _streamed(
    capsys: pytest.CaptureFixture[str], spec: OutputSpec, chunks: list, failing: int = 0, rows_of: Callable = iter
) -> tuple[str, int]:
    from glancecache_client.cli.output import finish_streaming
    from glancecache_client.operations import Failure, Success

    items: list = [Success(f"n{i}", rows) for i, rows in enumerate(chunks)]
    for _ in range(failing):
        items.insert(1, Failure("list the cache", errors.ConnectionRefused("refused", node="http://dead:9292")))
    code = 0
    try:
        finish_streaming(iter(items), COLUMNS, rows_of, spec)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    return capsys.readouterr().out, code


def _buffered(capsys: pytest.CaptureFixture[str], spec: OutputSpec, chunks: list) -> str:
    emit(Table(COLUMNS, [row for rows in chunks for row in rows]), spec)
    return capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["json", "yaml", "csv", "value", "table"])
@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"columns": ("image_id", "size")},
        {"columns": ("size",)},
        {"columns": ("size", "node"), "sort_columns": ("size",), "descending": True},
    ],
    ids=["all columns", "two columns", "one column", "sorted (buffered)"],
)
@pytest.mark.parametrize("rows_of", [iter, lambda rows: ColumnRows.of(rows, len(COLUMNS))], ids=["rows", "columns"])
def test_streamed_output_is_the_buffered_output(capsys, fmt, spec, rows_of):
    output = OutputSpec(fmt, **spec)
    streamed, code = _streamed(capsys, output, CHUNKS, rows_of=rows_of)
    assert code == 0
    assert streamed == _buffered(capsys, output, CHUNKS)
    assert streamed  # every format printed something for these rows


@pytest.mark.parametrize("fmt", ["json", "yaml", "csv", "value", "table"])
def test_streamed_output_with_no_rows_is_the_buffered_output(capsys, fmt):
    streamed, code = _streamed(capsys, OutputSpec(fmt), [[], []])
    assert (streamed, code) == (_buffered(capsys, OutputSpec(fmt), [[], []]), 0)


def test_streaming_with_a_failed_node_prints_the_rest_and_exits_partial(capsys):
    streamed, code = _streamed(capsys, OutputSpec("json"), CHUNKS, failing=1)
    assert code == exitcodes.PARTIAL
    assert json.loads(streamed) == json.loads(_buffered(capsys, OutputSpec("json"), CHUNKS))


def test_streaming_when_every_node_failed_prints_no_rows(capsys):
    streamed, code = _streamed(capsys, OutputSpec("json"), [], failing=2)
    assert (streamed, code) == ("", exitcodes.for_error(errors.ConnectionRefused("x")))


def test_streaming_checks_columns_before_asking_any_node(capsys):
    from glancecache_client.cli.output import finish_streaming

    def never():  # the listing generator: must not be started
        raise AssertionError("a node was asked")
        yield

    with pytest.raises(CliError) as info:
        finish_streaming(never(), COLUMNS, lambda rows: rows, OutputSpec("json", columns=("nope",)))
    assert info.value.exit_code == exitcodes.USAGE and "unknown column 'nope'" in info.value.message


# -- cache-list's rows, made straight from each node's JSON, print what the models' rows printed -----------------

_IMAGE = "3c021162-1e38-461a-a362-e154bf54e241"
_ENTRY = {"image_id": _IMAGE, "hits": 3, "last_accessed": 1795302923.43224, "last_modified": 1795302000.5, "size": 1024}
CENTRALIZED = [
    {"id": n, "image_id": f"{n:036d}", "last_accessed": 1795302923.43224 + n / 7, "last_modified": 1795302923.432252,
     "size": 2**33 + n, "hits": n % 3, "checksum": (None, "", "0f" * 16)[n % 3]}
    for n in range(30)
]  # fmt: skip
XATTR = [  # int times; a null time; text json must escape
    {**_ENTRY, "last_accessed": 1795302999, "last_modified": 1795302000},
    {**_ENTRY, "last_accessed": None},
    {**_ENTRY, "last_modified": 0.0, "image_id": 'é "q" \\ %s'},
]
BODIES = [  # one per node, as drivers send them, odd values included
    {"cached_images": [_ENTRY, {**_ENTRY, "image_id": "b" * 36, "hits": 0, "last_accessed": 0}], "queued_images": []},
    {"cached_images": CENTRALIZED, "queued_images": ["q1", _IMAGE]},
    {"cached_images": XATTR, "queued_images": []},
    {"cached_images": [], "queued_images": []},
    {"cached_images": [{**_ENTRY, "size": 5.0}, {**_ENTRY, "hits": 0}], "queued_images": ["z"]},  # the models' path
    {"cached_images": [{**_ENTRY, "last_accessed": 7.0, "last_modified": 7}] * 3, "queued_images": []},
]
NODES = [f"http://g{n}:9292" for n in range(len(BODIES))]


@pytest.mark.parametrize("fmt", ["json", "yaml", "csv", "value", "table"])
@pytest.mark.parametrize(
    "spec",
    [{}, {"columns": ("image_id", "last_accessed", "hits")}, {"columns": ("checksum",)}, {"columns": ("node",)},
     {"columns": ("image_id", "size"), "sort_columns": ("size",), "descending": True}],
    ids=["all columns", "three columns", "checksum", "node", "sorted"],
)  # fmt: skip
def test_rows_from_json_print_what_the_models_printed(capsys, fmt, spec):
    from glancecache_client.cli.output import finish_streaming
    from glancecache_client.models import CacheState
    from glancecache_client.operations import Success
    from glancecache_client.views import CACHE_COLUMNS, cache_rows, cache_table, listing_rows

    output = OutputSpec(fmt, **spec)
    states = [CacheState.from_api(body, node) for body, node in zip(BODIES, NODES, strict=True)]
    emit(cache_table(states), output)
    models = capsys.readouterr().out
    finish_streaming(iter([Success(state.node, state) for state in states]), CACHE_COLUMNS, cache_rows, output)
    assert capsys.readouterr().out == models
    rows = [Success(node, listing_rows(body, node)) for body, node in zip(BODIES, NODES, strict=True)]
    finish_streaming(iter(rows), CACHE_COLUMNS, lambda rows: rows, output)
    assert capsys.readouterr().out == models
    assert models
