"""The table format is tabulate's "simple" table byte for byte: our column-at-a-time writer for plain cells, and
tabulate itself for anything else. tabulate is the oracle here."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from glancecache_client.cli import output
from glancecache_client.cli.output import render
from glancecache_client.views import Table, Value


def tabulates(table: Table) -> str:
    """What the table format printed before it had a writer of its own: tabulate, with the same options."""
    aligns = [output._align(table, index) for index in range(len(table.columns))]
    cells = [["" if value is None else value for value in row] for row in table.rows]
    return tabulate(cells, headers=table.columns, tablefmt="simple", disable_numparse=True, colalign=aligns)


ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
any_text = st.text(max_size=8)  # line breaks, tabs, wide and combining characters, surrounding spaces
cell = st.one_of(st.none(), st.integers(-(10**12), 10**12), ascii_text, any_text)


@st.composite
def tables(draw: st.DrawFn) -> Table:
    width = draw(st.integers(1, 5))
    columns = tuple(draw(st.lists(ascii_text.filter(str.strip), min_size=width, max_size=width)))
    kinds = draw(st.lists(st.sampled_from(["int", "text", "any", "mixed"]), min_size=width, max_size=width))
    by_kind = {
        "int": st.one_of(st.none(), st.integers(0, 10**9)),
        "text": st.one_of(st.none(), ascii_text),
        "any": any_text,
        "mixed": cell,
    }
    rows = draw(st.lists(st.tuples(*(by_kind[kind] for kind in kinds)), min_size=1, max_size=6))
    return Table(columns, rows)


@settings(max_examples=400, deadline=None)
@given(tables())
def test_every_table_is_what_tabulate_writes(table: Table) -> None:
    assert render(table, "table") == tabulates(table)


@pytest.mark.parametrize(
    "rows",
    [
        [("http://g1:9292", "3c021162-1e38-461a-a362-e154bf54e241", "cached", 1024, 0, None)],
        [("a", "", "queued", None, None, None), ("bb", "x", "cached", 7, 12, "2026-11-25T20:00:00.000001Z")],
        [(" lead", "x", "cached", 1, 1, "t"), ("trail ", "y", "cached", 2, 2, "u")],  # tabulate trims: its path
        [("ü", "x", "cached", 1, 1, "t")],  # not ASCII: tabulate's path (it measures wide characters)
        [("two\nlines", "x", "cached", 1, 1, "t")],
    ],
)
def test_listing_shaped_tables(rows: Sequence[tuple[Value, ...]]) -> None:
    table = Table(("node", "image_id", "state", "size", "hits", "last_accessed"), rows)
    assert render(table, "table") == tabulates(table)


def test_plain_tables_do_not_go_through_tabulate(monkeypatch: pytest.MonkeyPatch) -> None:
    import tabulate as module

    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("tabulate was called for a plain table")

    table = Table(("node", "size"), [("http://g1:9292", 5), ("http://g2:9292", None)])
    expected = tabulates(table)
    monkeypatch.setattr(module, "tabulate", refuse)
    assert render(table, "table") == expected
