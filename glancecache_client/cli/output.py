"""Everything the CLI prints: rows on stdout in one of five formats, and failures on stderr as one line each.

``emit`` is the only place that formats data (tabulate, json, yaml and csv are imported here, lazily, so help and
argument parsing stay fast). ``finish`` prints a core Outcome (each failure as one line with the library's hint,
then the rows) and turns it into an exit status. ``error_boundary`` turns any error that escapes a command into one
line on stderr and an exit status: a user never sees a traceback for a failure the library can name.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from . import exitcodes

if TYPE_CHECKING:
    from glancecache_client.operations import Failure, Outcome, Success
    from glancecache_client.views import Table, Value

__all__ = [
    "FORMATS",
    "CliError",
    "OutputSpec",
    "emit",
    "error_boundary",
    "finish",
    "finish_streaming",
    "output_options",
    "render",
]

FORMATS = ("table", "json", "yaml", "csv", "value")
F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A failure shown as one ``Error: ...`` line on stderr, with its own exit status."""

    def __init__(self, message: str, exit_code: int = exitcodes.ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class default


@dataclass(frozen=True)
class OutputSpec:
    """How to print rows: format, chosen columns (in order), sort columns."""

    fmt: str = "table"
    columns: tuple[str, ...] = ()
    sort_columns: tuple[str, ...] = ()
    descending: bool = False


def output_options(command: F) -> F:
    """Add ``-f/-c/--sort-column/--sort-descending`` and pass them to the command as ``output=OutputSpec``."""

    @click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(FORMATS, case_sensitive=False),
        default="table",
        show_default=True,
        help="Output format. json/yaml keep integers and null; value prints bare fields for pipelines.",
    )
    @click.option(
        "-c",
        "--column",
        "columns",
        multiple=True,
        metavar="COLUMN",
        help="Show only this column (repeatable, in order), named as the JSON keys, e.g. -c image_id.",
    )
    @click.option(
        "--sort-column",
        "sort_columns",
        multiple=True,
        metavar="COLUMN",
        help="Sort rows by this column (repeatable: first has priority). Empty values sort first.",
    )
    @click.option("--sort-descending", is_flag=True, help="Sort in descending order.")
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        fmt: str,
        columns: tuple[str, ...],
        sort_columns: tuple[str, ...],
        sort_descending: bool,
        **kwargs: Any,
    ) -> Any:
        spec = OutputSpec(
            fmt.lower(),
            tuple(_column_name(c) for c in columns),
            tuple(_column_name(c) for c in sort_columns),
            sort_descending,
        )
        return command(*args, output=spec, **kwargs)

    return wrapper  # type: ignore[return-value]


def _column_name(text: str) -> str:
    """Accept ``image_id``, ``IMAGE_ID``, ``image-id`` and ``"Image ID"`` alike."""
    return "_".join(text.strip().lower().replace("-", " ").split())


def emit(table: Table, spec: OutputSpec) -> None:
    """Sort, pick columns and print ``table`` on stdout in the requested format."""
    try:
        shown = table.sorted_by(spec.sort_columns, descending=spec.descending).select(spec.columns)
    except ValueError as exc:
        raise CliError(str(exc), exitcodes.USAGE) from None
    if spec.fmt == "table" and not shown.rows:
        return  # as cliff does: an empty table prints nothing (json prints [], csv its header)
    text = render(shown, spec.fmt)
    if text:
        click.echo(text)


def render(table: Table, fmt: str) -> str:
    """The text of ``table`` in one of FORMATS (no trailing newline)."""
    if fmt == "json":
        import json

        return json.dumps(table.as_dicts(), indent=2)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(table.as_dicts(), sort_keys=False, default_flow_style=False).rstrip("\n")
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows([_blank(value) for value in row] for row in table.rows)
        return buffer.getvalue().rstrip("\n")
    if fmt == "value":
        return "\n".join(" ".join(map(_cell_text, row)) for row in table.rows)
    plain = _plain_table(table.columns, table.rows) if table.rows else None
    if plain is not None:
        return plain
    from tabulate import tabulate

    return tabulate(
        [[_blank(value) for value in row] for row in table.rows],
        headers=table.columns,
        tablefmt="simple",
        disable_numparse=True,
        colalign=[_align(table, i) for i in range(len(table.columns))] if table.rows else None,
    )


TABLE_GAP = "  "  # between columns, as tabulate's "simple" format
HEADER_PADDING = 2  # tabulate.MIN_PADDING: a column is at least its header and two more wide


def _plain_table(columns: Sequence[str], rows: Sequence[Sequence[Value]]) -> str | None:
    """tabulate's "simple" table of ``rows`` (``disable_numparse``, ``colalign`` as ``_align``), byte for byte,
    written a column at a time; None when a header or cell is anything but plain ASCII text without surrounding
    spaces, or an int (then tabulate, which also knows wide characters, line breaks and trimming, writes it).

    Why: tabulate inspects and formats each cell in Python, several calls each: 160,000 rows (16 nodes of 10,000
    cached images) took 12 s and 350 MiB. Here a column is checked by C-level passes (one join, isascii,
    isprintable) and padded by map(str.ljust/rjust); each line is stripped at the end, as tabulate's are.
    """
    padded: list[Iterable[str]] = []
    header_cells: list[str] = []
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        kinds = set(map(type, values))
        if not kinds <= {str, int, type(None)}:
            return None
        right = int in kinds and str not in kinds  # _align's rule, read off the kinds rather than every cell again
        texts = list(values) if kinds == {str} else [_cell_text(value) for value in values]
        joined = name + "".join(texts)
        if not (joined.isascii() and joined.isprintable()):
            return None
        if " " in joined and (name != name.strip() or list(map(str.strip, texts)) != texts):
            return None  # tabulate trims cells (PRESERVE_WHITESPACE is off)
        widest = max(map(len, texts))
        width = max(widest, len(name) + HEADER_PADDING)
        pad = str.rjust if right else str.ljust
        padded.append(map(pad, texts, repeat(width)))
        header_cells.append(pad(name, width))
    header = TABLE_GAP.join(header_cells).rstrip()
    rule = TABLE_GAP.join("-" * len(cell) for cell in header_cells)
    return "\n".join(chain((header, rule), map(str.rstrip, map(TABLE_GAP.join, zip(*padded, strict=True)))))


def _cell_text(value: Value) -> str:
    return "" if value is None else value if type(value) is str else str(value)


def _blank(value: Value) -> str | int:
    return "" if value is None else value


def _align(table: Table, index: int) -> str:
    numeric = all(isinstance(row[index], int) or row[index] is None for row in table.rows)
    return "right" if numeric and any(row[index] is not None for row in table.rows) else "left"


# -- failures ---------------------------------------------------------------------------------------------


def finish(
    outcome: Outcome[Any], table: Table | None = None, output: OutputSpec | None = None, *, failed_rows: bool = False
) -> None:
    """Print each failure (one line, with its hint), the rows (unless nothing succeeded: then the errors are the
    whole answer; with ``failed_rows`` rows that carry their own error are printed anyway), a count when several
    outcomes were mixed, and exit with the run's status."""
    for failure in outcome.failures:
        click.echo(f"Error: {failure.line}", err=True)
    if table is not None and output is not None and (outcome.successes or (failed_rows and table.rows)):
        emit(table, output)
    _exit(len(outcome.successes), outcome.failures)


def _exit(succeeded: int, failures: Sequence[Failure]) -> None:
    total = succeeded + len(failures)
    if failures and total > 1:
        click.echo(f"Error: {len(failures)} of {total} operations failed", err=True)
    code = exitcodes.combine(succeeded, [failure.error for failure in failures])
    if code != exitcodes.OK:
        raise click.exceptions.Exit(code)


# -- streaming: rows written as each node's answer arrives -------------------------------------------------


def finish_streaming(
    items: Iterable[Success[Any] | Failure],
    columns: tuple[str, ...],
    rows_of: Callable[[Any], Iterable[tuple[Value, ...]]],
    output: OutputSpec,
) -> None:
    """:func:`finish` for results that arrive one node at a time (``operations.each_listing``), printing the same
    text ``finish`` prints for the whole Outcome, with ``rows_of(value)`` giving each success's rows.

    json, yaml, csv and value are written node by node, so memory holds about one node's answer, not every row of
    every node. A table needs every row for its column widths and ``--sort-column`` needs every row to sort, so
    those two are buffered and printed by :func:`emit`. Columns are checked before anything is asked of a node.
    """
    from glancecache_client.operations import Failure as FailureType
    from glancecache_client.views import Table

    try:
        Table(columns).sorted_by(output.sort_columns).select(output.columns)
    except ValueError as exc:
        raise CliError(str(exc), exitcodes.USAGE) from None
    buffered: list[tuple[Value, ...]] | None = [] if output.fmt == "table" or output.sort_columns else None
    writer = None if buffered is not None else _writer(output.fmt, output.columns or columns, columns)
    succeeded = 0
    failures: list[Failure] = []
    for item in items:
        if isinstance(item, FailureType):
            click.echo(f"Error: {item.line}", err=True)
            failures.append(item)
            continue
        succeeded += 1
        if buffered is not None:
            buffered.extend(rows_of(item.value))
        else:
            assert writer is not None
            writer.write(rows_of(item.value))
    if succeeded and buffered is not None:
        emit(Table(columns, buffered), output)
    elif succeeded and writer is not None:
        writer.close()
    _exit(succeeded, failures)


class _RowWriter:
    """Writes rows of the chosen ``names`` (picked out of ``columns``) to stdout in one format, chunk by chunk,
    as ``render`` would have written them all at once."""

    def __init__(self, names: Sequence[str], columns: Sequence[str]) -> None:
        self.names = tuple(names)
        self._index = [columns.index(name) for name in names]
        self._width = len(columns)
        self.count = 0
        self.out: TextIO = sys.stdout

    def write(self, rows: Iterable[tuple[Value, ...]]) -> None:
        index = self._index
        if index == list(range(len(index))) and len(index) == self._width:
            picked = list(rows)  # every column, in order: nothing to pick
        else:
            picked = [tuple(row[i] for i in index) for row in rows]
        if picked:
            self.out.write(self._text(picked))
        self.count += len(picked)

    def _text(self, rows: list[tuple[Value, ...]]) -> str:
        raise NotImplementedError

    def close(self) -> None:
        self.out.flush()


class _JsonRows(_RowWriter):
    """``json.dumps(rows, indent=2)``, a chunk of rows at a time: the array is opened at the first row and closed
    at the end. A listing has 10,000s of rows, so nothing is done per row in Python: the chunk is taken column by
    column, each column turned into its JSON texts by the cheapest way that gives json's own text, and the chunk
    is one ``str.join`` of those texts and of ``indent=2``'s keys and layout between them.

    A column holding one string (or null) on every row is encoded once, into the layout; a column of plain text
    (printable ASCII without ``"`` or ``\\``, which json writes as it is) is quoted by the layout; a column of
    exact ints is ``str``-ed (json writes ``int.__repr__``); any other column is encoded by the json module's C
    encoder, its values separated by NUL (which an encoded string never holds raw: JSON escapes control
    characters)."""

    def __init__(self, names: Sequence[str], columns: Sequence[str]) -> None:
        super().__init__(names, columns)
        import json

        self._encode = json.JSONEncoder(separators=("\0", ": ")).encode
        self._keys = [json.dumps(name) + ": " for name in self.names]

    def write(self, rows: Iterable[tuple[Value, ...]]) -> None:
        from glancecache_client.views import ColumnRows

        every = rows.columns if isinstance(rows, ColumnRows) else list(zip(*rows, strict=True))
        if not every or not every[0]:
            return
        count = len(every[0])
        layouts = ["{\n    "]  # a row: layouts[0], values[0], layouts[1], values[1], ..., layouts[-1]
        values: list[Iterable[str]] = []
        for number, (key, column) in enumerate(zip(self._keys, [every[i] for i in self._index], strict=True)):
            layouts[-1] += (",\n    " if number else "") + key
            first = column[0]
            if (first is None or type(first) is str) and column.count(first) == len(column):
                layouts[-1] += self._encode(first)
                continue
            if type(first) is str and _plain_text(_joined(column)):
                layouts[-1] += '"'
                values.append(column)  # type: ignore[arg-type]
                layouts.append('"')
            elif type(first) is int and set(map(type, column)) == {int}:
                values.append(_int_texts(column))  # type: ignore[arg-type]
                layouts.append("")
            else:
                values.append(self._encode(list(column))[1:-1].split("\0"))
                layouts.append("")
        layouts[-1] += "\n  }"
        first_row = ("[\n  " if self.count == 0 else ",\n  ") + layouts[0]
        texts: list[Iterable[str]] = [chain((first_row,), repeat(",\n  " + layouts[0]))]
        for value, layout in zip(values, layouts[1:], strict=True):
            texts += (value, repeat(layout))
        if values:  # zip stops with the columns (the layouts repeat)
            self.out.write("".join(chain.from_iterable(zip(*texts, strict=False))))
        else:  # every column the same on every row: no column to stop zip
            self.out.write(first_row + (",\n  " + layouts[0]) * (count - 1))
        self.count += count

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "[]\n")
        super().close()


def _joined(column: Sequence[Value]) -> str | None:
    """The column's strings joined, or None when it holds anything else (a quicker test than every value's type)."""
    try:
        return "".join(column)  # type: ignore[arg-type]
    except TypeError:
        return None


def _int_texts(column: Sequence[int]) -> Iterable[str]:
    """``map(str, column)``, each distinct value converted once when values repeat (hits: a few small counts)."""
    sample = column[:100]
    if len(set(sample)) * 4 > len(sample):  # sizes: nearly all distinct
        return map(str, column)
    return map({value: str(value) for value in set(column)}.__getitem__, column)


def _plain_text(text: str | None) -> bool:
    """Whether json writes ``text`` as it is between quotes: printable ASCII (0x20-0x7e), no quote or backslash."""
    return text is not None and text.isascii() and not text.encode("ascii").translate(None, _JSON_PLAIN)


_JSON_PLAIN = bytes(set(range(0x20, 0x7F)) - set(b'"\\'))


class _YamlRows(_RowWriter):
    """A YAML block sequence, one chunk of items at a time (consecutive sequences concatenate into one)."""

    def _text(self, rows: list[tuple[Value, ...]]) -> str:
        import yaml

        items = [dict(zip(self.names, row, strict=True)) for row in rows]
        text: str = yaml.safe_dump(items, sort_keys=False, default_flow_style=False)
        return text

    def close(self) -> None:
        if not self.count:
            self.out.write("[]\n")
        super().close()


class _CsvRows(_RowWriter):
    def __init__(self, names: Sequence[str], columns: Sequence[str]) -> None:
        super().__init__(names, columns)
        self.out.write(self._csv([self.names]))  # the header, even with no rows, as render writes it

    def _text(self, rows: list[tuple[Value, ...]]) -> str:
        return self._csv([[_blank(value) for value in row] for row in rows])

    @staticmethod
    def _csv(rows: Iterable[Sequence[object]]) -> str:
        import csv
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue()


class _ValueRows(_RowWriter):
    def _text(self, rows: list[tuple[Value, ...]]) -> str:
        return "".join(" ".join(map(_cell_text, row)) + "\n" for row in rows)


def _writer(fmt: str, names: Sequence[str], columns: Sequence[str]) -> _RowWriter:
    kinds: dict[str, type[_RowWriter]] = {"json": _JsonRows, "yaml": _YamlRows, "csv": _CsvRows, "value": _ValueRows}
    return kinds[fmt](names, columns)


@contextmanager
def error_boundary() -> Iterator[None]:
    """Turn library, keystoneauth1 and input errors escaping a command into one line and an exit status."""
    from glancecache_client import errors

    from .config import NodeSetError

    try:
        yield
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except NodeSetError as exc:
        raise CliError(str(exc), exitcodes.USAGE) from None
    except errors.GlanceCacheError as exc:
        from glancecache_client.operations import describe

        raise CliError(describe(exc), exitcodes.for_error(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith("keystoneauth1"):
            from glancecache_client.operations import describe

            raise CliError(f"identity: {describe(exc)}", exitcodes.for_error(exc)) from None
        raise
