"""Exporter benchmark: one /metrics scrape over N reference nodes holding M cached entries each.

The reference cluster runs in this process (its registry and cache directories are seeded directly: M rows and
M small files per node, so building 16,000 entries takes seconds, not a download each); the exporter runs as its
own process, as in production, and is scraped over HTTP like Prometheus does. Rows: 1 node alone, N nodes, and N
nodes plus one node that never answers (the scrape then lasts the --scrape-timeout, not longer). Each row is the
median of --repeat scrapes after one warm-up scrape; "series" counts the samples of the answer; peak RSS is the
exporter's own (VmHWM).

    .venv/bin/python benchmarks/bench_exporter.py [--nodes 16] [--entries 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tabulate import tabulate

from glancecache_client.server.runner import ReferenceCluster, run_cluster

EXPORTER = Path(sys.executable).parent / "glancecache-exporter"
SCRAPE_TIMEOUT = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(cluster: ReferenceCluster, entries: int) -> None:
    for node in cluster.nodes:
        assert node.engine is not None and node.cache_dir is not None
        for _ in range(entries):
            image_id = str(uuid.uuid4())
            (node.cache_dir / image_id).write_bytes(b"x" * 64)
            node.engine.registry.add(image_id, size=64, checksum=None)


@contextmanager
def exporter(hosts: list[str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    args = [arg for host in hosts for arg in ("-H", host)]
    argv = [str(EXPORTER), "--listen", f"127.0.0.1:{port}", "--os-auth-type", "none", *args]
    process = subprocess.Popen([*argv, "--scrape-timeout", str(SCRAPE_TIMEOUT)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(600):
            try:
                httpx.get(url.removesuffix("metrics"), timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(hosts: list[str], live: list[str], repeat: int) -> tuple[float, float, int, int, float]:
    with exporter(hosts) as (url, pid):
        httpx.get(url, timeout=60).raise_for_status()  # warm-up: connections, version discovery
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = httpx.get(url, timeout=60)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
        families = list(text_string_to_metric_families(response.text))
        series = sum(len(family.samples) for family in families)
        slowest = max(  # the slowest answering node of the last scrape, as the exporter measured it
            sample.value
            for family in families
            if family.name == "glance_cache_scrape_duration_seconds"
            for sample in family.samples
            if sample.labels["node"] in live
        )
        return statistics.median(times), slowest, series, len(response.content), peak_rss_mib(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with TemporaryDirectory() as data_dir, run_cluster(nodes=args.nodes, auth="noauth", data_dir=data_dir) as cluster:
        started = time.perf_counter()
        seed(cluster, args.entries)
        print(f"seeded {args.nodes} x {args.entries} entries in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        with socket.create_server(("127.0.0.1", 0)) as silent:
            silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            cases = [
                ("1 node", cluster.urls[:1]),
                (f"{args.nodes} nodes", cluster.urls),
                (f"{args.nodes} nodes + 1 silent", [*cluster.urls, silent_url]),
            ]
            rows = []
            for name, hosts in cases:
                seconds, slowest, series, size, rss = measure(hosts, cluster.urls, args.repeat)
                rows.append(
                    (name, args.entries, f"{seconds * 1000:.0f} ms", f"{slowest * 1000:.0f} ms", series,
                     f"{size / 1024:.0f} KiB", f"{rss:.0f} MiB")
                )  # fmt: skip
    print(
        tabulate(
            rows,
            headers=("scrape", "entries/node", "median scrape", "slowest node", "series", "body", "exporter peak RSS"),
            tablefmt="github",
        )
    )
    print(f"\n(--scrape-timeout {SCRAPE_TIMEOUT:g} s; the silent node's row is bounded by it)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
