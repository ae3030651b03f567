"""Cluster purge and logging benchmark: what the deletion log and the access log cost, and how soon a purge lands.

Two ``glancecache-server`` processes (A and B) share a data directory and a database (SQLite in the data
directory, or ``--registry-url``). Measured:

(a) purge: an image cached on B is deleted through A; whether B's first listing after the 204 already omits it
    (a listing reads the log first), and the time until B's cache file is gone with no request to B (B's
    deletion-log timer, every ~1 s);
(b) GET /v2/cache (reads the deletion log first) and a cache-hit GET of a 4 KiB image on B, median of
    --repeat round trips over one keep-alive connection, with B logging at WARNING (no access lines) and at
    INFO (an access line per request) in text and in json.

    .venv/bin/python benchmarks/bench_purge_and_logs.py [--registry-url URL] [--repeat 300] [--purges 10]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tabulate import tabulate

SCRIPT = Path(sys.executable).parent / "glancecache-server"


@contextlib.contextmanager
def server(data_dir: Path, *extra: str) -> Iterator[str]:
    argv = [str(SCRIPT), "--port", "0", "--auth", "noauth", "--data-dir", str(data_dir), *extra]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            if not url.startswith("http"):
                raise SystemExit(f"glancecache-server did not start (exit {process.poll()})")
            yield url
        finally:
            process.terminate()
            process.wait(30)


def upload(http: httpx.Client, url: str, data: bytes) -> str:
    image_id: str = http.post(f"{url}/v2/images", json={"container_format": "bare", "disk_format": "raw"}).json()["id"]
    http.put(f"{url}/v2/images/{image_id}/file", content=data, headers={"Content-Type": "application/octet-stream"})
    return image_id


def cached_ids(http: httpx.Client, url: str) -> list[str]:
    return [entry["image_id"] for entry in http.get(f"{url}/v2/cache").json()["cached_images"]]


def median_ms(http: httpx.Client, url: str, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = http.get(url)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(samples) * 1000


def node_dir(data_dir: Path, url: str) -> Path:
    return data_dir / "nodes" / url.split("://", 1)[1].replace(":", "-") / "cache"


def purges(data_dir: Path, registry: list[str], count: int) -> list[list[str]]:
    deletes, file_gone, first_listing_clean = [], [], 0
    with server(data_dir, *registry) as a, server(data_dir, *registry) as b, httpx.Client(timeout=30) as http:
        for _ in range(count):
            image_id = upload(http, a, b"p" * 4096)
            http.get(f"{b}/v2/images/{image_id}/file").raise_for_status()
            path = node_dir(data_dir, b) / image_id
            while image_id not in cached_ids(http, b):
                time.sleep(0.01)
            started = time.perf_counter()
            http.delete(f"{a}/v2/images/{image_id}").raise_for_status()
            deletes.append(time.perf_counter() - started)
            first_listing_clean += image_id not in cached_ids(http, b)
            while path.exists():  # B's timer; the listing above may have purged it already
                time.sleep(0.005)
        for _ in range(count):  # the timer alone, no request to B
            image_id = upload(http, a, b"q" * 4096)
            http.get(f"{b}/v2/images/{image_id}/file").raise_for_status()
            path = node_dir(data_dir, b) / image_id
            while not path.exists():
                time.sleep(0.01)
            started = time.perf_counter()
            http.delete(f"{a}/v2/images/{image_id}").raise_for_status()
            while path.exists():
                time.sleep(0.005)
            file_gone.append(time.perf_counter() - started)
    return [
        ["DELETE on A (204)", f"{statistics.median(deletes) * 1000:.1f}", f"{max(deletes) * 1000:.1f}"],
        ["first listing on B omits it", f"{first_listing_clean}/{count}", ""],
        ["B's file gone (no request)", f"{statistics.median(file_gone) * 1000:.0f}", f"{max(file_gone) * 1000:.0f}"],
    ]


def round_trips(data_dir: Path, registry: list[str], repeat: int) -> list[list[str]]:
    rows = []
    for label, extra in (("WARNING", []), ("INFO text", ["--log-level", "INFO"]),
                         ("INFO json", ["--log-level", "INFO", "--log-format", "json"])):  # fmt: skip
        with server(data_dir, *registry, *extra) as b, httpx.Client(timeout=30) as http:
            image_id = upload(http, b, b"h" * 4096)
            http.get(f"{b}/v2/images/{image_id}/file").raise_for_status()
            while image_id not in cached_ids(http, b):
                time.sleep(0.01)
            listing = median_ms(http, f"{b}/v2/cache", repeat)
            hit = median_ms(http, f"{b}/v2/images/{image_id}/file", repeat)
            rows.append([label, f"{listing:.2f}", f"{hit:.2f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry-url", help="shared database (default: SQLite in the data directory)")
    parser.add_argument("--repeat", type=int, default=300, help="round trips per median (default 300)")
    parser.add_argument("--purges", type=int, default=10, help="images deleted per purge measurement (default 10)")
    args = parser.parse_args()
    registry = ["--registry-url", args.registry_url] if args.registry_url else []
    with tempfile.TemporaryDirectory() as tmp:
        rows = purges(Path(tmp) / "p", registry, args.purges)
        print(tabulate(rows, headers=["after DELETE on A", "median ms", "max ms"]))
        print()
        rows = round_trips(Path(tmp) / "r", registry, args.repeat)
        print(tabulate(rows, headers=["B logs at", "GET /v2/cache ms", "cache hit 4 KiB ms"]))


if __name__ == "__main__":
    main()
