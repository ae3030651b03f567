"""Display-neutral tables shared by the ``glance`` CLI and the ``openstack cache`` plugin.

Columns and row building are written once here; each front end only renders. Column names are the
snake_case JSON keys (``-c image_id`` works the same in both). Values are ``str``, ``int`` or ``None``
(never a sentinel string such as "N/A"); times are ISO-8601 UTC with a ``Z`` suffix, which also sorts
correctly as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .models import CacheState, ClearResult, PruneResult

__all__ = [
    "CACHE_COLUMNS",
    "Table",
    "Value",
    "cache_table",
    "clear_table",
    "iso_utc",
    "nodes_table",
    "prune_table",
]

Value = str | int | None

CACHE_COLUMNS = ("image_id", "state", "size", "hits", "last_accessed", "last_modified", "checksum")


@dataclass(frozen=True)
class Table:
    """Named columns and typed rows, ready for any formatter."""

    columns: tuple[str, ...]
    rows: list[tuple[Value, ...]] = field(default_factory=list)

    def select(self, names: Sequence[str]) -> Table:
        """Keep only ``names`` (in that order); raises ValueError naming the valid columns."""
        if not names:
            return self
        index = self._indexes(names, "column")
        return Table(tuple(names), [tuple(row[i] for i in index) for row in self.rows])

    def sorted_by(self, names: Sequence[str], *, descending: bool = False) -> Table:
        """Sort by the named columns; None sorts first. Raises ValueError for an unknown column."""
        if not names:
            return self
        index = self._indexes(names, "sort column")

        def key(row: tuple[Value, ...]) -> tuple[tuple[int, int | str], ...]:
            return tuple(_sort_key(row[i]) for i in index)

        return Table(self.columns, sorted(self.rows, key=key, reverse=descending))

    def _indexes(self, names: Sequence[str], what: str) -> list[int]:
        for name in names:
            if name not in self.columns:
                raise ValueError(f"unknown {what} {name!r}: choose from {', '.join(self.columns)}")
        return [self.columns.index(name) for name in names]

    def as_dicts(self) -> list[dict[str, Value]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _sort_key(value: Value) -> tuple[int, int | str]:
    if value is None:
        return (0, 0)
    if isinstance(value, int):
        return (1, value)
    return (2, value)


def iso_utc(moment: datetime | None) -> str | None:
    """``2026-11-21T23:17:30.761673Z`` for an aware datetime; None stays None."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def _with_node(columns: tuple[str, ...], with_node: bool) -> tuple[str, ...]:
    return ("node", *columns) if with_node else columns


def cache_table(states: Iterable[CacheState], *, with_node: bool = False) -> Table:
    """One row per cached image (state ``cached``) then per queued id (state ``queued``), per node."""
    rows: list[tuple[Value, ...]] = []
    for state in states:
        prefix: tuple[Value, ...] = (state.node,) if with_node else ()
        for image in state.cached:
            rows.append(
                (
                    *prefix,
                    image.image_id,
                    "cached",
                    image.size,
                    image.hits,
                    iso_utc(image.last_accessed),
                    iso_utc(image.last_modified),
                    image.checksum,
                )
            )
        for image_id in state.queued:
            rows.append((*prefix, image_id, "queued", None, None, None, None, None))
    return Table(_with_node(CACHE_COLUMNS, with_node), rows)


def prune_table(results: Iterable[PruneResult], *, with_node: bool = False) -> Table:
    rows: list[tuple[Value, ...]] = [
        ((result.node,) if with_node else ()) + (result.files, result.bytes) for result in results
    ]
    return Table(_with_node(("files_pruned", "bytes_pruned"), with_node), rows)


def clear_table(results: Iterable[ClearResult], *, with_node: bool = False) -> Table:
    rows: list[tuple[Value, ...]] = [
        ((result.node,) if with_node else ()) + (result.cached, result.queued) for result in results
    ]
    return Table(_with_node(("cached_removed", "queued_removed"), with_node), rows)


def nodes_table(image_id: str, node_urls: Iterable[str]) -> Table:
    """Where one image is cached, from the centralized registry."""
    return Table(("image_id", "node_url"), [(image_id, url) for url in node_urls])
