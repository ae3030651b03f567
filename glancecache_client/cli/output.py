"""Everything the CLI prints: rows on stdout in one of five formats, and failures on stderr as one line each.

``emit`` is the only place that formats data (tabulate, json, yaml and csv are imported here, lazily, so help
and argument parsing stay fast). ``Report`` collects per-node outcomes, prints every failure as one line and
turns the whole run into an exit status. ``error_boundary`` turns any error that escapes a command into one
line on stderr and an exit status: a user never sees a traceback for a failure the library can name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import exitcodes

if TYPE_CHECKING:
    from glancecache_client.cluster import ClusterResult
    from glancecache_client.views import Table, Value

__all__ = [
    "FORMATS",
    "CliError",
    "OutputSpec",
    "Report",
    "emit",
    "error_boundary",
    "output_options",
    "render",
]

FORMATS = ("table", "json", "yaml", "csv", "value")
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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


def describe(error: BaseException) -> str:
    """One line: what went wrong (the library's message names the node) and what to do about it."""
    from glancecache_client import errors

    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, errors.Unauthorized):
        text += _UNAUTHORIZED_HINTS.get(error.credentials, _UNAUTHORIZED_HINTS["none"])
    elif isinstance(error, errors.Forbidden):
        text += " (the cache API is admin-only by default: use an account with the admin role)"
    return text


_UNAUTHORIZED_HINTS = {
    "none": (
        " (give credentials: --os-token, --os-cloud, or --os-auth-url with --os-username/--os-password;"
        " --os-auth-type none for a noauth node)"
    ),
    "token": (
        " (the node rejected the token given with --os-token/OS_TOKEN: it may have expired, been revoked or come"
        " from another cloud; get a fresh one with 'openstack token issue', or authenticate with --os-auth-url"
        " and a password)"
    ),
    "keystone": " (the node rejected the token Keystone issued: is the node using the same Keystone?)",
}


def show_error(error: BaseException, what: str = "") -> None:
    prefix = f"{what}: " if what else ""
    click.echo(f"Error: {prefix}{describe(error)}", err=True)


@dataclass
class Report:
    """Collects every outcome of a run; failures are printed as they are collected."""

    succeeded: int = 0
    failures: list[BaseException] = field(default_factory=list)

    def collect(self, result: ClusterResult[T], what: str = "") -> list[T]:
        """Count ``result``'s nodes, print each node's error, and return the values of the nodes that worked."""
        values: list[T] = []
        for node_result in result:
            if node_result.error is None:
                self.succeeded += 1
                values.append(node_result.value)  # type: ignore[arg-type]
            else:
                self.fail(node_result.error, what)
        return values

    def ok(self, count: int = 1) -> None:
        self.succeeded += count

    def fail(self, error: BaseException, what: str = "") -> None:
        self.failures.append(error)
        show_error(error, what)

    def retract(self, error: BaseException, what: str = "") -> None:
        """An outcome counted as a success turned out to fail (e.g. queued, but never cached)."""
        self.succeeded -= 1
        self.fail(error, what)

    @property
    def exit_code(self) -> int:
        return exitcodes.combine(self.succeeded, self.failures)

    def finish(self) -> None:
        """Exit with the run's status; with several outcomes and some failed, say how many first."""
        code = self.exit_code
        total = self.succeeded + len(self.failures)
        if self.failures and total > 1:
            click.echo(f"Error: {len(self.failures)} of {total} operations failed", err=True)
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
        raise CliError(describe(exc), exitcodes.for_error(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith("keystoneauth1"):
            raise CliError(f"identity: {describe(exc)}", exitcodes.for_error(exc)) from None
        raise
