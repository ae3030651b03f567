"""What the console scripts run first: a check that the extra they need is installed, in the standard library only.

Each script lives in an optional extra (``glance``/``glancecache`` in ``[cli]``, ``glancecache-server`` in
``[server]``, ``glancecache-exporter`` in ``[exporter]``), but pip installs every script with the bare
distribution. Run without its extra, a script says so in one line with the exact ``pip install`` and exits 2
instead of ending in a ``ModuleNotFoundError`` traceback. The check looks modules up (``find_spec``) without
importing them, so it costs the scripts' start-up nothing measurable.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import NoReturn

__all__ = ["EXTRA_MODULES", "exporter", "missing_module", "require", "server", "usage_exit"]

# The top-level modules each extra brings; a script whose extra lacks any of them cannot run.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cli": ("click", "tabulate", "yaml"),
    "server": ("werkzeug", "waitress", "sqlalchemy", "yaml"),
    "exporter": ("prometheus_client", "click", "tabulate", "yaml"),
}

USAGE = 2  # the exit status of every usage error (README's exit-status table)


def missing_module(extra: str) -> str | None:
    """The first module of ``extra`` that is not installed, or None when the extra is complete."""
    for name in EXTRA_MODULES[extra]:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def install_hint(extra: str) -> str:
    return f"pip install 'glancecache-client[{extra}]'"


def usage_exit(message: str) -> NoReturn:
    """``PROG: message`` as the only line on stderr, then exit 2."""
    print(f"{os.path.basename(sys.argv[0]) or 'glancecache'}: {message}", file=sys.stderr)
    sys.exit(USAGE)


def require(extra: str, what: str) -> None:
    """Return if ``extra`` is installed; otherwise exit 2 with one line naming it and the command to install it."""
    module = missing_module(extra)
    if module is not None:
        usage_exit(f"{what} needs the [{extra}] extra ({module} is not installed): {install_hint(extra)}")


def server() -> NoReturn:
    """The ``glancecache-server`` console script."""
    require("server", "the reference server")
    from .server.__main__ import main

    sys.exit(main())


def exporter() -> NoReturn:
    """The ``glancecache-exporter`` console script."""
    require("exporter", "the Prometheus exporter")
    from .exporter.cli import main

    main()
