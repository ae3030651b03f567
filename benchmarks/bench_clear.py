"""Clearing a large cache: ``DELETE /v2/cache`` (target ``cache``) on a reference node holding 10,000 cached
entries, in its own process, over real HTTP.

The entries are written straight into the node's registry and cache directory, as ``bench_large_cache.py`` does
(through the API, 10,000 fills take minutes). Each measurement starts from a freshly loaded node. No goal: the
figures show what batching the deletions (one transaction and one set of state locks per 500 entries, eight
unlinks at a time) does, against the one transaction per entry clear used before.

    .venv/bin/python benchmarks/bench_clear.py [--entries 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from bench_large_cache import fill, free_port, server
from tabulate import tabulate


def measure(entries: int) -> float:
    """Seconds of one clear of ``entries`` cached entries, on a node loaded for it."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        with server(Path(data_dir), port), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            fill(Path(data_dir), entries)
            listed = http.get("/v2/cache").json()["cached_images"]
            assert len(listed) == entries, len(listed)
            started = time.perf_counter()
            answer = http.delete("/v2/cache", headers={"x-image-cache-clear-target": "cache"})
            seconds = time.perf_counter() - started
            answer.raise_for_status()
            assert http.get("/v2/cache").json()["cached_images"] == []
            return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000, help="cached entries (default 10000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    samples = [measure(args.entries) for _ in range(args.repeat)]
    rows = [[f"DELETE /v2/cache (clear target cache), {args.entries:,} entries", f"{statistics.median(samples):.3f}",
             ", ".join(f"{sample:.3f}" for sample in samples)]]  # fmt: skip
    print(f"reference server, its own process, entries written straight into its registry; median of {args.repeat}")
    print(tabulate(rows, headers=["measurement", "seconds", "samples"]))


if __name__ == "__main__":
    main()
