"""The ``glance`` / ``glancecache`` command line (console scripts ``glancecache_client.cli:main``).

``main`` runs a command line: dispatch.py decides from argv whether our cache commands answer it or
python-glanceclient's shell does, and says in one line what to install when the needed part is missing.
``cli`` is the click group (with every ``cache-*`` command registered), loaded on first use, so that
importing this package needs neither click nor the ``[cli]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .commands import cli

__all__ = ["cli", "main"]


def __getattr__(name: str) -> Any:
    if name == "cli":
        from .commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> NoReturn:
    """Run ``sys.argv``; exits with the documented status (see ``glance --help``)."""
    from .dispatch import dispatch

    dispatch()
