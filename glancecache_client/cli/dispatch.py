"""Which program answers a ``glance`` command line: ours (the ``cache-*`` commands) or python-glanceclient's.

One console script name serves two programs. The cache commands are ours. Every other command (``image-list``,
``help image-list``, ...) goes to python-glanceclient's shell when it is installed, run in this process with the
same argv, stdin, stdout and exit status, so what it prints is byte for byte what glanceclient alone prints.
``glance help`` shows both sets. The choice is made from argv alone, before click or glanceclient is imported,
so ``glance cache-list --help`` pays for neither.

Finding the command word means skipping the global options written before it, ours and glanceclient's, with
the values of those that take one: every ``--os-*`` option of either program takes a value, and VALUE_OPTIONS
lists the others (tests/install checks this against both real parsers). An option known to neither counts as a
flag; at worst that makes its value look like the command, which then goes to glanceclient, and glanceclient
reports the option as it always has.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import _scripts
from .exitcodes import INTERRUPTED

__all__ = ["VALUE_OPTIONS", "dispatch", "find_command", "takes_value"]

CACHE_PREFIX = "cache-"
HELP_COMMAND = "help"
HELP_OPTIONS = frozenset({"-h", "--help"})
# Global options outside --os-* that take a value: ours (-H/--host, --node-set, --timeout) and
# python-glanceclient 4.13's (--profile, --timeout, --tls-ciphers, --tls-min-version).
VALUE_OPTIONS = frozenset(
    {"-H", "--host", "--node-set", "--timeout", "--profile", "--tls-ciphers", "--tls-min-version"}
)
SHORT_VALUE_LETTERS = frozenset(option[1] for option in VALUE_OPTIONS if len(option) == 2)
COMPLETION_VARIABLES = ("_GLANCE_COMPLETE", "_GLANCECACHE_COMPLETE")  # click's shell completion: ours alone

GLANCECLIENT = "python-glanceclient"
GLANCECLIENT_ABSENT = (
    f"The other glance commands (image-list, image-show, ...) come from {GLANCECLIENT}: "
    f"pip install {GLANCECLIENT} beside this package."
)
GLANCECLIENT_PRESENT = (
    f"{GLANCECLIENT} is installed: its commands (image-list, image-show, ...) run here too; "
    "'glance help' lists them and 'glance help COMMAND' describes one."
)
# How a subcommand entry of glanceclient's help starts ("    cache-list          Get cache state."); ours
# replace those.
GLANCECLIENT_CACHE_ENTRY = "    " + CACHE_PREFIX


def takes_value(option: str) -> bool:
    """Whether global option ``option`` (written without ``=value``) consumes the next argument."""
    return option.startswith(("--os-", "--os_")) or option in VALUE_OPTIONS


def find_command(argv: Sequence[str]) -> int | None:
    """Index in argv of the command word: the first argument that is neither an option nor an option's value."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return index + 1 if index + 1 < len(argv) else None
        if arg.startswith("--"):
            if "=" not in arg and takes_value(arg):
                index += 1
        elif arg.startswith("-") and arg != "-":
            # One short option or a cluster (-dv); -H takes the rest of the word, else the next argument.
            for position, letter in enumerate(arg[1:], start=2):
                if letter in SHORT_VALUE_LETTERS:
                    if position == len(arg):
                        index += 1
                    break
        else:
            return index
        index += 1
    return None


def glanceclient_installed() -> bool:
    return importlib.util.find_spec("glanceclient") is not None


def dispatch() -> NoReturn:
    """Run ``sys.argv`` with the program that owns its command; never returns."""
    prog = os.path.basename(sys.argv[0]) or "glance"
    argv = sys.argv[1:]
    position = find_command(argv)
    word = argv[position] if position is not None else None
    topic = None  # the COMMAND of `glance help COMMAND`
    if position is not None and word == HELP_COMMAND:
        rest = argv[position + 1 :]
        found = find_command(rest)
        topic = rest[found] if found is not None else None

    ours = (word or "").startswith(CACHE_PREFIX) or (topic or "").startswith(CACHE_PREFIX)  # or help cache-list
    if ours or any(name in os.environ for name in COMPLETION_VARIABLES):
        _scripts.require("cli", "the cache commands")
        run_ours(prog, argv)

    has_glanceclient = glanceclient_installed()
    missing = _scripts.missing_module("cli")
    if missing is not None:
        if has_glanceclient:
            run_glanceclient()
        _scripts.usage_exit(
            f"the cache commands need the [cli] extra ({missing} is not installed): {_scripts.install_hint('cli')};"
            f" the other glance commands come from {GLANCECLIENT}: pip install {GLANCECLIENT}"
        )

    if word == HELP_COMMAND and topic is None:
        if has_glanceclient:
            help_of_both(prog, argv)
        run_ours(prog, argv, after=lambda: print(f"\n{GLANCECLIENT_ABSENT}"))
    if word is None:  # options only: help, --version, or click's "missing command"
        run_ours(prog, argv, after=trailer(argv, has_glanceclient))
    if has_glanceclient:
        run_glanceclient()
    # No glanceclient: our one-line "no command" error says where the other commands are.
    run_ours(prog, argv if topic is None else [*argv[: position or 0], topic, "--help"])


def trailer(argv: list[str], has_glanceclient: bool) -> Callable[[], None] | None:
    """What follows our answer to options without a command: after the help, where the other commands are;
    after our version, glanceclient's."""
    if not argv or HELP_OPTIONS & set(argv):
        footer = GLANCECLIENT_PRESENT if has_glanceclient else GLANCECLIENT_ABSENT
        stream = sys.stdout if argv else sys.stderr  # bare `glance`: click shows its help on stderr
        return lambda: print(f"\n{footer}", file=stream)
    if "--version" in argv and has_glanceclient:
        return lambda: print(f"{GLANCECLIENT} {distribution_version(GLANCECLIENT)}")
    return None


def run_ours(prog: str, argv: list[str], after: Callable[[], None] | None = None) -> NoReturn:
    """Run our click group; ``after`` prints a trailer once it has answered (help and version only)."""
    code = run_ours_returning(prog, argv)
    if code == INTERRUPTED:
        # Ctrl-C: the answer is said; end now rather than when the interpreter has joined every request thread
        # (a node's connections are closed by then, but a thread may still wait for a TCP connect or a DNS answer).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    if after is not None:
        sys.stdout.flush()
        after()
    sys.exit(code)


def run_ours_returning(prog: str, argv: list[str]) -> int | str | None:
    # httpx imports its own command line (rich, pygments: ~50 ms) on `import httpx` when those happen to be
    # installed; we never use it. Marking it absent makes httpx fall back to a stub. No effect if httpx is
    # already loaded.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from .commands import cli

    try:
        cli.main(argv, prog_name=prog)
    except SystemExit as exc:
        return exc.code
    return 0


def run_glanceclient() -> NoReturn:
    """python-glanceclient's shell with this very sys.argv, as its own console script runs it."""
    from glanceclient.shell import main

    sys.exit(main())


def help_of_both(prog: str, argv: list[str]) -> NoReturn:
    """``glance help``: our help, then glanceclient's with its cache-* entries left out (ours answer those)."""
    import contextlib
    import io

    code = run_ours_returning(prog, ["--help"])
    if code not in (0, None):
        sys.exit(code)
    from glanceclient.shell import main

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        try:
            code = main()
        except SystemExit as exc:
            code = exc.code
    print(f"\nThe other commands, from {GLANCECLIENT} {distribution_version(GLANCECLIENT)}:\n")
    lines = captured.getvalue().splitlines(keepends=True)
    sys.stdout.write("".join(without_cache_entries(lines)))
    sys.exit(code)


def without_cache_entries(lines: Sequence[str]) -> list[str]:
    """glanceclient's help without its ``cache-*`` subcommand entries and their continuation lines."""
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith(GLANCECLIENT_CACHE_ENTRY):
            skipping = True
            continue
        if skipping and line.startswith(" " * 5):  # the entry's description, wrapped onto further lines
            continue
        skipping = False
        kept.append(line)
    return kept


def distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "(version unknown)"
