"""Display-neutral tables shared by the ``glance`` CLI and the ``openstack cache`` plugin.

Columns and row building are written once here; each front end only renders. Every column has two names: its
snake_case JSON key (``image_id``, what ``glance -c`` and JSON output use) and its header in OSC's language
(``ID``, as OSC's own ``openstack cached image list`` shows it), so neither front end spells a column itself.
Values are ``str``, ``int`` or ``None`` (never a sentinel string; a front end renders None as its ecosystem
does); times are ISO-8601 UTC with a ``Z`` suffix, which also sorts correctly as text. The ``node`` column is
always there, whether one node was asked or fifty, so a script's columns never depend on the cloud.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from itertools import chain, compress, repeat
from operator import floordiv, itemgetter, mod, mul, sub
from typing import cast, overload

from .models import EPOCH_LIMIT, CacheState, ClearResult, NodeSummary, PruneResult, SyncStep

__all__ = [
    "CACHE_COLUMNS",
    "HEADERS",
    "ColumnRows",
    "Table",
    "Value",
    "cache_rows",
    "cache_table",
    "clear_table",
    "human_size",
    "iso_utc",
    "listing_rows",
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


class ColumnRows(Sequence[tuple[Value, ...]]):
    """Rows held as their columns: a read-only sequence of row tuples, as a list of them would be, built (and
    kept) a column at a time. ``columns`` gives them as built to a writer that works by column (the json one),
    which would otherwise transpose the rows back at the cost of making them."""

    __slots__ = ("columns",)

    def __init__(self, columns: Sequence[Sequence[Value]]) -> None:
        self.columns = tuple(columns)  # of one length

    @classmethod
    def of(cls, rows: Iterable[tuple[Value, ...]], width: int) -> ColumnRows:
        return cls(list(zip(*rows, strict=True)) or [()] * width)

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def __iter__(self) -> Iterator[tuple[Value, ...]]:
        return zip(*self.columns, strict=True)

    @overload
    def __getitem__(self, index: int) -> tuple[Value, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> ColumnRows: ...

    def __getitem__(self, index: int | slice) -> tuple[Value, ...] | ColumnRows:
        if isinstance(index, slice):
            return ColumnRows([column[index] for column in self.columns])
        return tuple(column[index] for column in self.columns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which have none

    def __repr__(self) -> str:
        return f"ColumnRows({list(self)!r})"

    def where(self, column: int, keep: Callable[[Value], bool]) -> ColumnRows:
        """The rows whose value in ``column`` passes ``keep``, in order."""
        selected = list(map(keep, self.columns[column]))
        return ColumnRows([list(compress(values, selected)) for values in self.columns])


def listing_rows(body: object, node: str) -> ColumnRows:
    """The rows of :func:`cache_rows` (CACHE_COLUMNS) for one node's ``GET /v2/cache`` body, equal to
    ``list(cache_rows(CacheState.from_api(body, node)))``, and the same ValueError for a body that is not a
    listing.

    A listing has 10,000s of entries, and a model object per entry (then a row per model) is most of a large
    ``cache-list``'s time: a body of the shape nodes send is turned into rows column by column instead, each
    column checked and converted by C-level passes, with the same rows value for value. Any other body takes the
    models' path, which also says what is wrong with it.
    """
    rows = _plain_rows(body, node)
    if rows is None:
        rows = ColumnRows.of(cache_rows(CacheState.from_api(body, node)), len(CACHE_COLUMNS))
    return rows


def _plain_rows(body: object, node: str) -> ColumnRows | None:
    """The rows of a plain body, or None when anything in it is not plain (then only the models may judge it).

    Plain is what ``models._plain_entry`` takes, a column at a time: exact JSON types (so no ``bool``, no float
    size), printable non-empty ids, non-negative counts, times within :func:`iso_column`'s range, a null, empty or
    printable checksum, every key but ``checksum`` present.
    """
    if type(body) is not dict:
        return None
    cached, queued = body.get("cached_images"), body.get("queued_images")
    if type(cached) is not list or type(queued) is not list or not set(map(type, cached)) <= {dict}:
        return None
    try:  # every entry has these (a missing one is the models' to judge)
        image_ids, sizes, hits, accessed, modified = (list(map(itemgetter(key), cached)) for key in _KEYS)
    except KeyError:
        return None
    checksums = list(map(dict.get, cached, repeat("checksum")))  # only centralized_db sends one
    if not (
        _ids(image_ids)
        and _ids(queued)
        and _counts(sizes)
        and _counts(hits)
        and set(map(type, checksums)) <= {str, type(None)}
        and _printable("".join(filter(None, cast("list[str | None]", checksums))))
    ):
        return None
    accessed_texts = iso_column(accessed)
    # An image never read since it was cached has both times equal (a fresh cache: all of them): one conversion.
    modified_texts = accessed_texts if modified == accessed else iso_column(modified)
    if accessed_texts is None or modified_texts is None:
        return None
    if "" in checksums:
        checksums = [checksum or None for checksum in checksums]  # an empty checksum is None, as in the models
    columns = cast(
        "list[list[Value]]",
        [[node] * len(cached), image_ids, ["cached"] * len(cached), sizes, hits, accessed_texts, modified_texts,
         checksums],
    )  # fmt: skip
    if queued:  # then a row per queued id: node, id, "queued", and nothing else
        count = len(queued)
        queued_columns = [[node] * count, queued, ["queued"] * count, *[[None] * count] * 5]
        columns = [values + more for values, more in zip(columns, queued_columns, strict=True)]
    return ColumnRows(columns)


_KEYS = ("image_id", "size", "hits", "last_accessed", "last_modified")


def _ids(values: list[object]) -> bool:
    try:
        text = "".join(cast("list[str]", values))  # a TypeError for anything but text
    except TypeError:
        return False
    return "" not in values and _printable(text)


def _counts(values: list[object]) -> bool:
    return set(map(type, values)) <= {int} and (not values or min(cast("list[int]", values)) >= 0)


def _printable(text: str) -> bool:
    """``text.isprintable()``, quicker for ASCII (ids and checksums are): no control character (0x00-0x1f, 0x7f)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return text.isprintable()


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def iso_column(epochs: Sequence[object]) -> list[str | None] | None:
    """``iso_utc(epoch_to_datetime(epoch))`` for every epoch of a column, where each is a null or an int or float
    in ``[0, EPOCH_LIMIT)``: 0 and null (Glance's "never") give None. None (for the whole column) when any epoch is
    something else, such as a string, a bool, NaN, a negative or a year past 9999.

    The same text as datetime's, from the same arithmetic, done a column at a time by C-level passes rather
    than two datetime calls per value (most of a large listing's time otherwise). ``datetime.fromtimestamp``
    splits the float with modf, rounds the fraction's microseconds half to even, carries a rounded-up million
    into the second, then writes the second as a UTC date and time; here each hour's ``YYYY-MM-DDTHH:`` is
    written once, minutes and seconds come from a table of 3,600, and one ``%`` writes every value.
    """
    kinds = set(map(type, epochs))
    if not kinds <= {int, float, type(None)}:
        return None
    if not epochs:
        return []
    floats = kinds <= {float, type(None)}
    blank = not all(epochs)  # a None or a 0, to be None, written meanwhile as a 0
    numbers = cast("Sequence[float]", [epoch or (0.0 if floats else 0) for epoch in epochs] if blank else epochs)
    try:  # trunc, modf's integral part (float's own method when it can: a third cheaper than int()); NaN raises
        seconds = list(map(float.__trunc__ if floats else int, numbers))
    except (ValueError, OverflowError):
        return None
    if min(numbers) < 0 or max(numbers) >= EPOCH_LIMIT:  # exact comparisons, now that no NaN is left
        return None
    # modf's fractional part is exactly number - trunc(number), a float even for an int (0 * 1e6), whose
    # microseconds float.__round__ (round(), without its method lookup) rounds half to even, as datetime does.
    micros = list(map(float.__round__, map(mul, map(sub, numbers, seconds), repeat(1e6))))
    if 1_000_000 in micros:  # a fraction of .9999995 or more rounds up into the next second
        for index, micro in enumerate(micros):
            if micro == 1_000_000:
                micros[index] = 0
                seconds[index] += 1
    hours = list(map(floordiv, seconds, repeat(3600)))
    prefixes = {hour: _hour_prefix(hour) for hour in set(hours)}
    if 0 in micros:  # a whole second, which isoformat writes without a fraction (%.0s writes nothing of the 0)
        template = "\0".join([_WITH_MICROS if micro else _WHOLE_SECOND for micro in micros])
    else:
        template = "\0".join([_WITH_MICROS] * len(micros))
    values = zip(
        map(prefixes.__getitem__, hours),
        map(_minutes_seconds().__getitem__, map(mod, seconds, repeat(3600))),
        micros,
        strict=True,
    )
    texts = cast("list[str | None]", (template % tuple(chain.from_iterable(values))).split("\0"))
    if blank:
        return [text if epoch else None for epoch, text in zip(epochs, texts, strict=True)]
    return texts


_WITH_MICROS = "%s%s.%06dZ"
_WHOLE_SECOND = "%s%s%.0sZ"
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _hour_prefix(hour: int) -> str:
    """``YYYY-MM-DDTHH:`` of an hour since the epoch."""
    day, hour_of_day = divmod(hour, 24)
    return f"{date.fromordinal(_EPOCH_DAY + day).isoformat()}T{hour_of_day:02d}:"


@functools.cache
def _minutes_seconds() -> list[str]:
    """``MM:SS`` for each second of an hour."""
    return [f"{minute:02d}:{second:02d}" for minute in range(60) for second in range(60)]


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
