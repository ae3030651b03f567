"""Rendering of tables in every format, and -c/--sort-column handling (pure functions, no node)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from glancecache_client.cli import exitcodes
from glancecache_client.cli.output import CliError, OutputSpec, emit, render
from glancecache_client.views import Table

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
