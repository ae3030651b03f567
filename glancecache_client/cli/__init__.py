"""The ``glance`` / ``glancecache`` command line (console scripts ``glancecache_client.cli:main``).

``cli`` is the click group (with every ``cache-*`` command registered); ``main`` runs it. Only click is
imported here: the library, httpx and formatters load when a command actually runs.
"""

from __future__ import annotations

from .commands import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Run the command line with ``sys.argv``; exits with the documented status (see ``glance --help``)."""
    import os
    import sys

    # httpx imports its own command line (rich, pygments: ~50 ms) on `import httpx` when those happen to be
    # installed; we never use it. Marking it absent makes httpx fall back to a stub. No effect if httpx is
    # already loaded.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    cli.main(prog_name=os.path.basename(sys.argv[0]) or "glance")
