"""Display-neutral tables shared by the ``glance`` CLI and the ``openstack cache`` plugin.

Columns and row building are written once here; each front end only renders. Every column has two names: its
snake_case JSON key (``image_id``, what ``glance -c`` and JSON output use) and its header in OSC's language
(``ID``, as OSC's own ``openstack cached image list`` shows it), so neither front end spells a column itself.
Values are ``str``, ``int`` or ``None`` (never a sentinel string; a front end renders None as its ecosystem
does); times are ISO-8601 UTC with a ``Z`` suffix, which also sorts correctly as text. The ``node`` column is
always there, whether one node was asked or fifty, so a script's columns never depend on the cloud.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .models import CacheState, ClearResult, NodeSummary, PruneResult, SyncStep

__all__ = [
    "CACHE_COLUMNS",
    "HEADERS",
    "Table",
    "Value",
    "cache_rows",
    "cache_table",
    "clear_table",
    "human_size",
    "iso_utc",
    "nodes_table",
    "prune_table",
    "summary_table",
    "sync_table",
]

Value = str | int | None

_UTC = timezone.utc

CACHE_COLUMNS = ("node", "image_id", "state", "size", "hits", "last_accessed", "last_modified", "checksum")

# Each JSON key's header in the plugin: OSC's own for the columns `openstack cached image list` has.
HEADERS = {
    "node": "Node",
    "image_id": "ID",
    "state": "State",
    "size": "Size",
    "hits": "Hits",
    "last_accessed": "Last Accessed (UTC)",
    "last_modified": "Last Modified (UTC)",
    "checksum": "Checksum",
    "files_pruned": "Files Pruned",
    "bytes_pruned": "Bytes Pruned",
    "cached_removed": "Cached Removed",
    "queued_removed": "Queued Removed",
    "node_url": "Node URL",
    "action": "Action",
    "result": "Result",
    "cached_images": "Cached Images",
    "cached_bytes": "Cached Bytes",
    "queued_images": "Queued Images",
    "error": "Error",
}


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


def cache_table(states: Iterable[CacheState]) -> Table:
    """One row per cached image (state ``cached``) then per queued id (state ``queued``), per node."""
    return Table(CACHE_COLUMNS, [row for state in states for row in cache_rows(state)])


def cache_rows(state: CacheState) -> Iterator[tuple[Value, ...]]:
    """One node's rows of :func:`cache_table` (CACHE_COLUMNS), for writing a node's rows as they arrive."""
    node = state.node
    for image in state.cached:
        accessed, modified = image.last_accessed, image.last_modified
        # iso_utc, inlined for the common case (a listing has 10,000s of rows): a UTC time's "+00:00" becomes "Z"
        yield (
            node,
            image.image_id,
            "cached",
            image.size,
            image.hits,
            accessed.isoformat()[:-6] + "Z" if accessed is not None and accessed.tzinfo is _UTC else iso_utc(accessed),
            modified.isoformat()[:-6] + "Z" if modified is not None and modified.tzinfo is _UTC else iso_utc(modified),
            image.checksum,
        )
    for image_id in state.queued:
        yield (node, image_id, "queued", None, None, None, None, None)


def prune_table(results: Iterable[PruneResult]) -> Table:
    rows: list[tuple[Value, ...]] = [(result.node, result.files, result.bytes) for result in results]
    return Table(("node", "files_pruned", "bytes_pruned"), rows)


def clear_table(results: Iterable[ClearResult]) -> Table:
    """Counts per node; a count is None when the node would not let us list (the clear still happened)."""
    rows: list[tuple[Value, ...]] = [(result.node, result.cached, result.queued) for result in results]
    return Table(("node", "cached_removed", "queued_removed"), rows)


def nodes_table(image_id: str, node_urls: Iterable[str]) -> Table:
    """Where one image is cached, from the centralized registry: one row per node holding it (the rows are
    already per node, so this table has ``node_url`` and no separate ``node`` column)."""
    return Table(("image_id", "node_url"), [(image_id, url) for url in dict.fromkeys(node_urls)])


SYNC_COLUMNS = ("node", "image_id", "action")
SUMMARY_COLUMNS = ("node", "cached_images", "cached_bytes", "queued_images", "hits", "last_accessed", "error")


def sync_table(steps: Iterable[SyncStep], *, applied: bool) -> Table:
    """One row per (node, image) step of a sync plan; a ``result`` column only once the plan was applied."""
    if not applied:
        return Table(SYNC_COLUMNS, [(step.node, step.image_id, step.action) for step in steps])
    rows: list[tuple[Value, ...]] = [(step.node, step.image_id, step.action, step.result) for step in steps]
    return Table((*SYNC_COLUMNS, "result"), rows)


def summary_table(summaries: Iterable[NodeSummary], *, human_readable: bool = False) -> Table:
    """One row per node, failed ones included (counts None, ``error`` set). ``human_readable`` (tables only:
    machine formats keep integers) shows the bytes in KiB/MiB/GiB."""
    rows: list[tuple[Value, ...]] = [
        (
            summary.node,
            summary.cached_images,
            human_size(summary.cached_bytes) if human_readable else summary.cached_bytes,
            summary.queued_images,
            summary.hits,
            iso_utc(summary.last_accessed),
            summary.error,
        )
        for summary in summaries
    ]
    return Table(SUMMARY_COLUMNS, rows)


def human_size(size: int | None) -> str | None:
    """``1536`` -> ``1.5 KiB`` (binary units, one decimal; bytes below 1 KiB as ``700 B``); None stays None."""
    if size is None:
        return None
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
