"""Large caches: `glance cache-list` over 16 nodes holding 10,000 cached entries each, as a whole command.

The goal (issue 11): `glance cache-list -f json` over 16 such nodes takes no longer than python-glanceclient 4.13's
`glance cache-list` over ONE of them, measured in the same run, with peak RSS under 150 MiB.

The "16 nodes" are one reference server (its own process, noauth, the sqlite cache driver) listening on 0.0.0.0 and
reached as 127.0.0.1 ... 127.0.0.16, so every address answers the same 10,000 entries. The entries are written
straight into the running node's registry (``cache.db``) and cache directory rather than through the API (Glance's
own rate would take minutes). Every command runs as a child process; its peak RSS is GNU time's
"Maximum resident set size" when /usr/bin/time exists, else ru_maxrss from os.wait4 (the same figure).
glanceclient is the real-glance peer's (/tmp/real-glance/venv/bin/glance, or --glanceclient PATH). "client CPU s" is
the command's own user + system time: the rest of the wall time is waiting, mostly for the one server process that
builds every listing (16 listings of 10,000 entries are 16 times its GET /v2/cache time, one after another under
its GIL).

    .venv/bin/python benchmarks/bench_large_cache.py [--entries 10000] [--nodes 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from tabulate import tabulate

from glancecache_client.server.engine import db as schema

BIN = Path(sys.executable).parent
GLANCECLIENT = Path("/tmp/real-glance/venv/bin/glance")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


def fill(data_dir: Path, entries: int) -> None:
    """Give the running node its entries: one registry row and one (empty) cache file each, the rows written in
    one transaction into its ``cache.db`` (SQLite lets the server read while we write)."""
    (cache_dir,) = data_dir.glob("nodes/*/cache")
    now = time.time()
    rows = []
    for index in range(entries):
        image_id = str(uuid.uuid4())
        (cache_dir / image_id).touch()
        rows.append(
            {
                "image_id": image_id,
                "last_accessed": now - index,
                "last_modified": now - 2 * index,
                "size": 1024 * (index + 1),
                "hits": index % 17,
                "checksum": hashlib.md5(image_id.encode()).hexdigest(),  # Glance's checksum is md5
            }
        )
    engine = schema.create_db_engine(schema.sqlite_url(cache_dir / "cache.db"))
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.local_cached_images), rows)
    engine.dispose()


@contextlib.contextmanager
def server(data_dir: Path, port: int) -> Iterator[None]:
    argv = [str(BIN / "glancecache-server"), "--bind", "0.0.0.0", "--port", str(port), "--data-dir", str(data_dir),
            "--cache-driver", "sqlite", "--log-level", "error"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        assert process.stdout is not None
        if not process.stdout.readline().startswith("http"):
            raise SystemExit(f"glancecache-server did not start (exit {process.poll()})")
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB, bytes on stdout, CPU seconds) of one run, which must succeed."""
    gnu_time = shutil.which("time", path="/usr/bin")
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as report:
        command = [gnu_time, "-v", "-o", report.name, *argv] if gnu_time else argv
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, env=env)
        assert child.stderr is not None
        errors = child.stderr.read()
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv[:3])}... failed: {errors.decode(errors='replace')[-500:]}")
        rss = usage.ru_maxrss / 1024
        if gnu_time:
            for line in report.read().splitlines():
                if "Maximum resident set size" in line:
                    rss = int(line.rsplit(":", 1)[1]) / 1024
        return wall, rss, os.fstat(out.fileno()).st_size, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000, help="cached entries per node (default 10000)")
    parser.add_argument("--nodes", type=int, default=16, help="addresses 127.0.0.1 ... (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the median is shown")
    parser.add_argument("--glanceclient", type=Path, default=GLANCECLIENT, help="python-glanceclient's glance")
    args = parser.parse_args()

    env = {key: value for key, value in os.environ.items() if not key.startswith("OS_")}
    env.pop("GLANCECACHE_HOSTS", None)
    # Measure ours as installed: pip writes bytecode at install time (glanceclient's venv has it), but an editable
    # checkout run with PYTHONDONTWRITEBYTECODE=1 would compile every module of ours on every run (~50 ms of CPU).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(schema.__file__).parents[2])], check=True)
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        urls = [f"http://127.0.0.{index + 1}:{port}" for index in range(args.nodes)]
        ours = [str(BIN / "glance"), "--os-auth-type", "none"]
        runs = {
            ("ours", 1, "json"): [*ours, "-H", urls[0], "cache-list", "-f", "json"],
            ("ours", 1, "table"): [*ours, "-H", urls[0], "cache-list"],
            ("ours", args.nodes, "json"): [*ours, *(a for u in urls for a in ("-H", u)), "cache-list", "-f", "json"],
            ("ours", args.nodes, "table"): [*ours, *(a for u in urls for a in ("-H", u)), "cache-list"],
        }
        if args.glanceclient.exists():
            runs[("python-glanceclient 4.13", 1, "table")] = [
                str(args.glanceclient), "--os-image-url", urls[0], "--os-auth-token", "fake", "cache-list"
            ]  # fmt: skip
        else:
            print(f"(no {args.glanceclient}: python-glanceclient is not measured)", file=sys.stderr)
        figures: dict[tuple[str, int, str], list[tuple[float, float, int, float]]] = {key: [] for key in runs}
        with server(Path(data_dir), port):
            fill(Path(data_dir), args.entries)
            for argv in runs.values():
                timed(argv, env)  # warm-up: imports in the page cache, the server's listing path
            for _ in range(args.repeat):  # interleaved, so a noisy moment on the machine hits every command
                for key, argv in runs.items():
                    figures[key].append(timed(argv, env))
    glance_key = ("python-glanceclient 4.13", 1, "table")
    reference = statistics.median(sample[0] for sample in figures[glance_key]) if glance_key in figures else None
    rows = []
    for (who, nodes, fmt), samples in figures.items():
        wall = statistics.median(sample[0] for sample in samples)
        rss = max(sample[1] for sample in samples)
        cpu = statistics.median(sample[3] for sample in samples)
        goal = ""
        if (who, nodes, fmt) == ("ours", args.nodes, "json") and reference is not None:
            met = wall <= reference and rss < 150
            goal = f"<= glanceclient on 1 node, < 150 MiB: {'MET' if met else 'MISSED'}"
        rows.append([who, nodes, f"{nodes * args.entries:,}", fmt, f"{wall:.2f}",
                     f"{wall / reference:.2f}x" if reference else "", f"{cpu:.2f}", f"{rss:.0f}",
                     f"{samples[0][2] / 2**20:.1f}", goal])  # fmt: skip
    print(f"whole `cache-list` commands, {args.entries:,} cached entries per node, median of {args.repeat} "
          "(peak RSS: the highest run)")  # fmt: skip
    print(tabulate(rows, headers=["client", "nodes", "rows", "format", "wall s", "vs glanceclient",
                                  "client CPU s", "peak RSS MiB", "stdout MiB", "goal"]))  # fmt: skip


if __name__ == "__main__":
    main()
