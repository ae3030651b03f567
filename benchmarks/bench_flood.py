"""Connection-flood benchmark: how a normal request fares while idle and slowloris connections are held open.

For ours (``glancecache-server --auth noauth``, default listener limits) and the real Glance 33 (uWSGI router front,
shared/peers/real-glance, noauth) in the same run, each in its own process on a free loopback port, for each load
level (idle connections / slowloris connections: the start of a ``GET /v2/cache`` and then one header byte every
second, never finished): open them (non-blocking connects, bounded wait), let the server settle 2 s, then time
--probes fresh-connection ``GET /v2/cache`` requests (5 s timeout each) and sum VmRSS over the server's process
tree. A level that the server cannot hold shows how many connections the kernel completed and "no answer".

Everything is on 127.0.0.1, the counts are bounded and every socket and server is closed at the end.

    .venv/bin/python benchmarks/bench_flood.py [--levels 1100/0,10000/0,0/10000,5000/5000] [--skip-glance]
                                               [--probes N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.flood

from bench_server import RG_VENV, Server, free_port, process_tree, run_glance, run_ours, status_kib

from tests.flood import Flood, probe, raise_nofile

LATENCY_GOAL = 1.0
RSS_GOAL_MIB = 200.0


def tree_rss_mib(pid: int) -> float:
    return sum(status_kib(p, "VmRSS") for p in process_tree(pid)) / 1024


def measure(server: Server, idle: int, slow: int, probes: int) -> list[str]:
    port = int(server.url.rsplit(":", 1)[1])
    with Flood(port, idle=idle, slow=slow, drip=1.0, connect_wait=10.0) as flood:
        time.sleep(2)
        latencies = [probe(port, timeout=5.0) for _ in range(probes)]
        rss = tree_rss_mib(server.pid)
        held = f"{len(flood.idle):,} / {len(flood.slow):,}"
    answered = [latency for latency in latencies if latency is not None]
    if answered:
        median = f"{statistics.median(answered) * 1000:.1f} ms"
        worst = "no answer in 5 s" if len(answered) < len(latencies) else f"{max(answered) * 1000:.1f} ms"
    else:
        median = worst = "no answer in 5 s"
    met = len(answered) == len(latencies) and max(answered) < LATENCY_GOAL and rss < RSS_GOAL_MIB
    return [server.name, f"{idle:,} / {slow:,}", held, median, worst, f"{rss:.0f}", "yes" if met else "NO"]


def levels(text: str) -> list[tuple[int, int]]:
    found = []
    for item in text.split(","):
        idle, _, slow = item.partition("/")
        found.append((int(idle), int(slow or 0)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=levels, default=levels("0/0,1100/0,10000/0,0/10000,5000/5000"),
                        help="IDLE/SLOWLORIS connection counts, comma-separated")  # fmt: skip
    parser.add_argument("--skip-glance", action="store_true", help="measure only our server")
    parser.add_argument("--probes", type=int, default=5, help="GET /v2/cache requests per level (default 5)")
    args = parser.parse_args()
    limit = raise_nofile()  # the servers started below inherit it
    need = max(idle + slow for idle, slow in args.levels) + 100
    if limit < need:
        print(f"bench_flood: the open-file limit {limit} cannot hold {need} connections", file=sys.stderr)
        return 2
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        servers: list[Callable[[], AbstractContextManager[Server]]] = [lambda: run_ours(Path(tmp) / "ours", 1 << 30)]
        if not args.skip_glance:
            if not (RG_VENV / "bin" / "glance").exists():
                print(f"bench_flood: no Glance 33 venv at {RG_VENV}; use --skip-glance", file=sys.stderr)
                return 2
            servers.append(lambda: run_glance(Path(tmp) / "glance", free_port(), "router", 1 << 30))
        for start in servers:
            with start() as server:
                for idle, slow in args.levels:
                    print(f"{server.name}: {idle} idle / {slow} slowloris", file=sys.stderr, flush=True)
                    rows.append(measure(server, idle, slow, args.probes))
    print(
        f"\nGET /v2/cache on a fresh connection while connections are held (loopback, {args.probes} probes per level, "
        f"goal: every answer < {LATENCY_GOAL:.0f} s and RSS < {RSS_GOAL_MIB:.0f} MiB)"
    )
    headers = ["server", "asked idle / slow", "held idle / slow", "median", "worst", "RSS MiB", "goal met"]
    print(tabulate(rows, headers=headers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
