"""Cold start of our ``glance`` against python-glanceclient 4.13's, side by side in one run.

Cases (each a fresh process, as a user meets it):

* ``help``: ``glance cache-list --help`` (ours) vs ``glance help cache-list`` (glanceclient: its
  ``cache-list --help`` prints the global help instead). Goal: ours <= 0.2x.
* ``cache-list``: a whole ``glance --os-image-url URL --os-auth-token fake cache-list`` against one local node,
  the same arguments for both tools. Goal: ours <= 0.35x.

Runs alternate between the two tools (ours, theirs, ours, ...) so machine load hits both alike; the median
wall time and the median peak RSS of each (through GNU time, where installed) are reported. The node is the
real Glance 33 peer on 127.0.0.1:9392 when it answers, else a reference node started here (``--url`` picks
another).

Usage: .venv/bin/python benchmarks/bench_cli.py [--repeat 15] [--glanceclient PATH] [--url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_GLANCECLIENT = "/tmp/real-glance/venv/bin/glance"
DEFAULT_URL = "http://127.0.0.1:9392"
GNU_TIME = "/usr/bin/time"


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Case:
    name: str
    ours: list[str]
    theirs: list[str]
    goal: float  # the largest acceptable ours/theirs ratio


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCECACHE_"))}
    env["COLUMNS"] = "100"
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, NaN without GNU time) of one process; fails loudly if the command fails.

    The peak comes from GNU time running the command as *its* child. Measured as a child of this process, it
    would be this process's own peak: Linux folds the memory a vfork'ed child had before exec (ours) into its
    ru_maxrss, which is how earlier runs printed 23-48 MiB for a command that peaks at 16 MiB.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as report:
        wrapped = [GNU_TIME, "-f", "%M", "-o", report.name, *argv] if os.access(GNU_TIME, os.X_OK) else argv
        started = time.perf_counter()
        done = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"benchmark command failed ({done.returncode}): {' '.join(argv)}\n{done.stderr}")
        peak_kib = report.read().strip() if wrapped is not argv else ""
    return elapsed, int(peak_kib) / 1024 if peak_kib else math.nan


def measure(case: Case, repeat: int, env: dict[str, str]) -> tuple[Samples, Samples]:
    ours, theirs = Samples(), Samples()
    run_once(case.ours, env)  # warm the page cache (and glanceclient's schema cache) once each
    run_once(case.theirs, env)
    for _ in range(repeat):
        for argv, samples in ((case.ours, ours), (case.theirs, theirs)):
            seconds, peak = run_once(argv, env)
            samples.seconds.append(seconds)
            samples.peak_mib.append(peak)
    return ours, theirs


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/versions", timeout=2) as response:
            return bool(response.status in (200, 300))
    except OSError as exc:
        return getattr(exc, "code", None) == 300  # urllib raises HTTPError for Glance's 300 Multiple Choices


@contextlib.contextmanager
def node(url: str | None) -> Iterator[tuple[str, str]]:
    """The node to list: the given URL, the real Glance peer if it answers, else a local reference node."""
    if url:
        yield url, "given"
        return
    if reachable(DEFAULT_URL):
        yield DEFAULT_URL, "real Glance 33 peer"
        return
    from glancecache_client.server.runner import run_cluster

    with run_cluster(nodes=1, auth="noauth") as cluster:
        yield cluster.urls[0], "reference server (in this process)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="counted runs per tool and case (default 15)")
    parser.add_argument("--glanceclient", default=DEFAULT_GLANCECLIENT, help="python-glanceclient's glance")
    parser.add_argument("--ours", default=str(Path(sys.executable).parent / "glance"), help="our glance")
    parser.add_argument("--url", help=f"the node for cache-list (default {DEFAULT_URL} or a reference node)")
    args = parser.parse_args()
    for path in (args.ours, args.glanceclient):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"not an executable: {path} (see --ours / --glanceclient)")

    env = clean_env()
    with node(args.url) as (url, where):
        list_args = ["--os-image-url", url, "--os-auth-token", "fake", "cache-list"]
        cases = [
            Case(
                "help (cache-list)", [args.ours, "cache-list", "--help"], [args.glanceclient, "help", "cache-list"], 0.2
            ),
            Case("cache-list, 1 local node", [args.ours, *list_args], [args.glanceclient, *list_args], 0.35),
        ]
        results = [(case, *measure(case, args.repeat, env)) for case in cases]

    print(f"glance cold start: ours vs python-glanceclient, median of {args.repeat} alternating runs")
    print(f"node for cache-list: {url} ({where})")
    print()
    header = f"{'case':<26} {'ours s':>8} {'glanceclient s':>15} {'ratio':>7} {'goal':>6}  {'met':<4}"
    header += f" {'ours MiB':>9} {'theirs MiB':>11}"
    print(header)
    print("-" * len(header))
    for case, ours, theirs in results:
        ratio = ours.median / theirs.median
        print(
            f"{case.name:<26} {ours.median:>8.3f} {theirs.median:>15.3f} {ratio:>6.2f}x {case.goal:>5.2f}x"
            f"  {'yes' if ratio <= case.goal else 'NO':<4}"
            f" {statistics.median(ours.peak_mib):>9.1f} {statistics.median(theirs.peak_mib):>11.1f}"
        )
    print()
    for case, ours, theirs in results:
        print(
            f"{case.name}: ours {min(ours.seconds):.3f}-{max(ours.seconds):.3f} s,"
            f" glanceclient {min(theirs.seconds):.3f}-{max(theirs.seconds):.3f} s (min-max)"
        )


if __name__ == "__main__":
    main()
