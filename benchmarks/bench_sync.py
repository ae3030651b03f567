"""``glance cache-sync`` and ``cache-summary`` over many reference nodes, as whole commands.

A reference cluster (``--nodes``, default 8) serves ``--images`` active images tagged ``golden`` (default 100: four
of Glance's default 25-image pages). Cases, each a fresh ``glance`` process, median of ``--repeat`` runs:

* ``sync --dry-run``: the tag lookup (every page, once) and one listing per node; nothing changes.
* ``sync`` (first): plan and queue every image on every node.
* ``sync`` (converged): every row ``keep``; what a cron job pays each time once the caches are right.
* ``summary``: one listing per node.

Usage: .venv/bin/python benchmarks/bench_sync.py [--nodes 8] [--images 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from glancecache_client.server.runner import run_cluster

GLANCE = str(Path(sys.executable).parent / "glance")


def timed(*args: str) -> tuple[float, list[dict[str, object]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCECACHE_"))}
    started = time.perf_counter()
    done = subprocess.run([GLANCE, *args, "-f", "json"], capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"glance {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    rows: list[tuple[str, float, int]] = []
    with run_cluster(nodes=options.nodes, auth="noauth", max_size=1 << 40) as cluster:
        for index in range(options.images):
            cluster.upload_image(b"g" * 64, name=f"golden-{index}", tags=["golden"])
        hosts = [arg for url in cluster.urls for arg in ("-H", url)]
        sync = [*hosts, "cache-sync", "--tag", "golden"]
        cases = [("sync --dry-run", [*sync, "--dry-run"]), ("sync (first: queue all)", sync),
                 ("sync (converged: keep all)", sync), ("summary", [*hosts, "cache-summary"])]
        for name, args in cases:
            runs = [timed(*args) for _ in range(1 if name.startswith("sync (first") else options.repeat)]
            rows.append((name, statistics.median(seconds for seconds, _ in runs), len(runs[-1][1])))
    print(f"{options.nodes} nodes, {options.images} tagged images ({time.strftime('%Y-%m-%d')})")
    print(f"{'case':<28} {'median s':>9} {'rows':>6}")
    for name, seconds, count in rows:
        print(f"{name:<28} {seconds:>9.3f} {count:>6}")


if __name__ == "__main__":
    main()
