"""Everything the CLI prints: rows on stdout in one of five formats, and failures on stderr as one line each.

``emit`` is the only place that formats data (tabulate, json, yaml and csv are imported here, lazily, so help and
argument parsing stay fast). ``finish`` prints a core Outcome (each failure as one line with the library's hint,
then the rows) and turns it into an exit status. ``error_boundary`` turns any error that escapes a command into one
line on stderr and an exit status: a user never sees a traceback for a failure the library can name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import exitcodes

if TYPE_CHECKING:
    from glancecache_client.operations import Outcome
    from glancecache_client.views import Table, Value

__all__ = [
    "FORMATS",
    "CliError",
    "OutputSpec",
    "emit",
    "error_boundary",
    "finish",
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
        return "\n".join(" ".join(str(_blank(value)) for value in row) for row in table.rows)
    from tabulate import tabulate

    return tabulate(
        [[_blank(value) for value in row] for row in table.rows],
        headers=table.columns,
        tablefmt="simple",
        disable_numparse=True,
        colalign=[_align(table, i) for i in range(len(table.columns))] if table.rows else None,
    )


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
    total = len(outcome.successes) + len(outcome.failures)
    if outcome.failures and total > 1:
        click.echo(f"Error: {len(outcome.failures)} of {total} operations failed", err=True)
    code = exitcodes.combine(len(outcome.successes), [failure.error for failure in outcome.failures])
    if code != exitcodes.OK:
        raise click.exceptions.Exit(code)


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
