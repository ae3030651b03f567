"""Server benchmark: our reference server vs the real Glance 33 (uWSGI, router and http11 fronts), side by side.

Each server runs as its own process on a free loopback port: ours is ``glancecache-server --auth noauth``, Glance 33
is shared/peers/real-glance/start.sh (noauth, centralized_db). Measured on each:

(a) GET /v2/cache round trip on an empty cache (one keep-alive httpx client, median of many);
(b) a 256 MiB image: upload, cache fill through PUT /v2/cache/{id} (polling until cached), cache fill through the
    first full download (which tees into the cache), cache-hit full download, all with curl, each also shown as a
    multiple of ``cat FILE > /dev/null`` on the store file (page cache warm); both fills are the median of
    --repeat fills from an empty entry, after one untimed fill. With Glance measured, a server of ours runs beside
    each Glance front and their samples alternate (``image_timings``), so both meet the same machine load;
(c) peak memory of the server's process tree while it fills a 1 GiB image into its cache (VmHWM reset through
    /proc/PID/clear_refs, sum of VmRSS sampled every 10 ms, PSS from smaps_rollup);
(d) GET /v2/cache and POST /v2/cache/prune with N cache entries (default 1,000): ours gets N tiny images cached by
    a first download through its API; Glance 33 gets them written straight into its cache directory and its
    database's cached_images table (about a second for 10,000; through its API, on SQLite, it caches ~7 images/s,
    one at a time: --glance-load api).

Every transfer of (b) also reports the CPU-seconds of the server's process tree (all threads, from /proc) and of
curl (this process's waited-for children), per 256 MiB.

Dirty pages are written back (sync) before each timed transfer, so no step pays for the previous one's writes.
The two Glance fronts run one after the other on the same port and data directory (the cache registry is keyed by
the node URL), so the entries of (d) are built once: the router phase lists them, the http11 phase lists and prunes
them (prune is measured once for Glance: its front only carries a 40-byte answer).

    .venv/bin/python benchmarks/bench_server.py [--quick] [--skip-glance] [--glance-modes router,http11]
                                                [--entries N] [--repeat N] [--parts abcd] [--glance-entries N]
                                                [--glance-load direct|api]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from tabulate import tabulate

MiB = 1 << 20
PEER = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "real-glance"
RG_VENV = Path(os.environ.get("RG_VENV", "/tmp/real-glance/venv"))
MEMORY_GOAL_MIB = 100.0
RATIO_GOALS = {"fill_download": 0.8, "hit": 0.8}  # issue 11: at most this multiple of Glance 33's best front
# Glance 33 figures measured earlier under uWSGI (best front each), used only with --skip-glance.
EARLIER_GLANCE = {"get_cache": 0.006, "fill_put": 0.6, "fill_download": 0.6, "hit": 0.14, "cat": 0.025}


# -- servers ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server process tree: its URL, the PID to sample and where its store files live."""

    name: str
    url: str
    pid: int
    root: Path

    def store_file(self, image_id: str) -> Path:
        for path in self.root.rglob(image_id):
            if path.is_file() and path.parent.name == "images":
                return path
        raise FileNotFoundError(f"{self.name}: no store file for {image_id} under {self.root}")


@contextlib.contextmanager
def run_ours(root: Path, max_size: int) -> Iterator[Server]:
    script = Path(sys.executable).parent / "glancecache-server"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "glancecache_client.server"]
    argv += ["--port", "0", "--auth", "noauth", "--data-dir", str(root), "--image-cache-max-size", str(max_size)]
    log = (root.parent / f"{root.name}.log").open("w")
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"glancecache-server did not start: {(root.parent / f'{root.name}.log').read_text()}")
        yield Server("ours", url, process.pid, root)
    finally:
        stop_process_group(process)
        log.close()


def stop_process_group(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def run_glance(root: Path, port: int, mode: str, max_size: int) -> Iterator[Server]:
    env = {
        **os.environ,
        "RG_ROOT": str(root),
        "RG_VENV": str(RG_VENV),
        "RG_HTTP_MODE": mode,
        "RG_CACHE_MAX_SIZE": str(max_size),
    }
    args = [str(port), "noauth", "centralized_db"]
    try:  # an interrupted start.sh may already have launched uWSGI: stop.sh (by its pid file) runs regardless
        started = subprocess.run(
            ["bash", str(PEER / "start.sh"), *args], env=env, capture_output=True, text=True, timeout=900
        )
        if started.returncode != 0:
            raise RuntimeError(f"Glance 33 ({mode}) did not start: {started.stderr[-2000:]}")
        pid = int(started.stdout.split()[-1])
        yield Server(f"glance33 ({mode})", f"http://127.0.0.1:{port}", pid, root)
    finally:
        subprocess.run(["bash", str(PEER / "stop.sh"), *args], env=env, capture_output=True, timeout=60)
        # stop.sh escalates to SIGKILL itself; this catches a uWSGI that outlived it or started after an
        # interrupted start.sh, before its pid file existed: only processes running this run's own ini file.
        for leftover in pids_running(str(root / "etc" / "uwsgi.ini")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(leftover, signal.SIGKILL)


def pids_running(argument: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                    if argument.encode() in cmdline.read().split(b"\0"):
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- measuring tools -------------------------------------------------------------------------------------


def children_cpu() -> float:
    """CPU-seconds (user + system) of this process's waited-for children so far (curl, cat)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(root_pid: int) -> float:
    """CPU-seconds (user + system, every thread) spent so far by the live processes of a process tree."""
    total = 0
    for pid in process_tree(root_pid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / CLOCK_TICKS


@dataclass
class CpuSample:
    """CPU-seconds of one transfer on each side: the server's process tree and the client (curl)."""

    server: float
    client: float


def curl(*args: str) -> tuple[int, int, float]:
    """Run curl; returns (HTTP status, bytes downloaded, seconds from curl's own clock)."""
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-H", "Expect:", "-w", "%{http_code} %{size_download} %{time_total}", *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    status, size, seconds = done.stdout.split()
    return int(status), int(size), float(seconds)


def cat_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def process_tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def status_kib(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler:
    """Peak memory of a process tree over a window: sampled sums and the kernel's own high-water marks."""

    def __init__(self, root_pid: int, interval: float = 0.01) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.pids = process_tree(root_pid)
        self.before_rss_kib = sum(status_kib(pid, "VmRSS") for pid in self.pids)
        self.peak_rss_kib = self.before_rss_kib
        self.peak_pss_kib = sum(pss_kib(pid) for pid in self.pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        for pid in self.pids:  # "5" resets VmHWM to the current RSS (proc(5), clear_refs)
            with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as refs:
                refs.write("5")
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        hwm = [status_kib(pid, "VmHWM") for pid in self.pids]
        self.peak_rss_kib = max(self.peak_rss_kib, max(hwm, default=0))

    def _run(self) -> None:
        rounds = 0
        while not self._stop.is_set():
            if rounds % 50 == 0:
                self.pids = process_tree(self.root_pid)
            self.peak_rss_kib = max(self.peak_rss_kib, sum(status_kib(pid, "VmRSS") for pid in self.pids))
            if rounds % 2 == 0:  # smaps_rollup walks the page tables: half as often
                self.peak_pss_kib = max(self.peak_pss_kib, sum(pss_kib(pid) for pid in self.pids))
            rounds += 1
            self._stop.wait(self.interval)


def settle() -> None:
    """Write back dirty pages first, so one measurement does not pay for the previous one's writes."""
    os.sync()
    time.sleep(0.5)


def write_data_file(path: Path, size: int) -> None:
    block = bytearray(os.urandom(MiB))
    with path.open("wb") as out:
        for index in range(size // MiB):
            block[:8] = index.to_bytes(8, "big")  # every MiB differs
            out.write(block)


# -- the measurements ------------------------------------------------------------------------------------


@dataclass
class Results:
    """Figures of one server, keyed by measurement key; notes say how a figure was obtained."""

    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


class Bench:
    def __init__(self, server: Server, args: argparse.Namespace, data: dict[str, Path]) -> None:
        self.server = server
        self.args = args
        self.data = data
        self.http = httpx.Client(base_url=server.url, timeout=900)
        self.results = Results()

    def close(self) -> None:
        self.http.close()

    def log(self, message: str) -> None:
        print(f"  [{self.server.name}] {message}", file=sys.stderr, flush=True)

    # helpers

    def create_image(self, name: str) -> str:
        created = self.http.post("/v2/images", json={"name": name, "container_format": "bare", "disk_format": "raw"})
        created.raise_for_status()
        return str(created.json()["id"])

    def upload_file(self, image_id: str, path: Path) -> float:
        status, _, seconds = curl(
            "-X", "PUT", "-T", str(path), "-H", "Content-Type: application/octet-stream",
            f"{self.server.url}/v2/images/{image_id}/file",
        )  # fmt: skip
        if status != 204:
            raise RuntimeError(f"{self.server.name}: upload of {path.name} answered {status}")
        return seconds

    def cached_ids(self) -> set[str]:
        listing = self.http.get("/v2/cache")
        listing.raise_for_status()
        return {row["image_id"] for row in listing.json()["cached_images"]}

    def wait_cached(self, image_id: str, started: float, timeout: float = 900.0) -> float:
        while time.perf_counter() - started < timeout:
            if image_id in self.cached_ids():
                return time.perf_counter() - started
            time.sleep(0.02)
        raise RuntimeError(f"{self.server.name}: {image_id} not cached after {timeout:g} s")

    def fill_by_queue(self, image_id: str) -> float:
        started = time.perf_counter()
        queued = self.http.put(f"/v2/cache/{image_id}")
        if queued.status_code != 202:
            raise RuntimeError(f"{self.server.name}: PUT /v2/cache answered {queued.status_code}")
        return self.wait_cached(image_id, started)

    def fill_by_download(self, image_id: str, size: int) -> float:
        """Seconds of the first full download (curl's clock), which tees the image into the cache."""
        started = time.perf_counter()
        seconds = self.download(image_id, size)
        try:
            self.wait_cached(image_id, started, timeout=60)
        except RuntimeError:
            self.results.notes["fill_download"] = "not cached"
        return seconds

    def with_cpu(self, transfer: Callable[[], float]) -> tuple[float, CpuSample]:
        """Run ``transfer``; its result and the CPU-seconds the server's process tree and curl spent meanwhile."""
        server, client = tree_cpu(self.server.pid), children_cpu()
        seconds = transfer()
        return seconds, CpuSample(tree_cpu(self.server.pid) - server, children_cpu() - client)

    def record(self, key: str, samples: list[tuple[float, CpuSample]]) -> None:
        """The median seconds of a transfer, and its median CPU-seconds per side scaled to 256 MiB (the --quick
        image is smaller)."""
        scale = 256 / self.args.medium_mib
        values = self.results.values
        values[key] = statistics.median(seconds for seconds, _ in samples)
        values[f"{key}_cpu"] = statistics.median(cpu.server for _, cpu in samples) * scale
        values[f"{key}_client_cpu"] = statistics.median(cpu.client for _, cpu in samples) * scale
        self.log(
            f"{key}: {', '.join(f'{seconds:.3f}' for seconds, _ in samples)} s; CPU-s server "
            f"{', '.join(f'{cpu.server:.3f}' for _, cpu in samples)}, curl "
            f"{', '.join(f'{cpu.client:.3f}' for _, cpu in samples)}"
        )

    def download(self, image_id: str, expected: int) -> float:
        status, size, seconds = curl(f"{self.server.url}/v2/images/{image_id}/file")
        if status != 200 or size != expected:
            raise RuntimeError(f"{self.server.name}: download answered {status} with {size} of {expected} bytes")
        return seconds

    def clear_cache(self) -> None:
        self.http.delete("/v2/cache").raise_for_status()

    # (a)

    def get_cache_round_trip(self) -> None:
        self.clear_cache()
        for _ in range(20):
            self.http.get("/v2/cache").raise_for_status()
        times = []
        for _ in range(self.args.requests):
            started = time.perf_counter()
            self.http.get("/v2/cache")
            times.append(time.perf_counter() - started)
        self.results.values["get_cache"] = statistics.median(times)
        self.log(f"GET /v2/cache median {statistics.median(times) * 1000:.2f} ms")

    # (c)

    def peak_memory_filling(self) -> None:
        path = self.data["large"]
        image_id = self.create_image("bench-large")
        settle()
        with MemorySampler(self.server.pid) as upload_memory:
            self.upload_file(image_id, path)
        settle()
        with MemorySampler(self.server.pid) as fill_memory:
            seconds = self.fill_by_queue(image_id)
        values = self.results.values
        values["rss_before"] = fill_memory.before_rss_kib / 1024
        values["rss_fill"] = fill_memory.peak_rss_kib / 1024
        values["pss_fill"] = fill_memory.peak_pss_kib / 1024
        values["rss_upload"] = upload_memory.peak_rss_kib / 1024
        values["fill_large"] = seconds
        self.log(f"1 GiB-class fill {seconds:.2f} s, peak RSS {values['rss_fill']:.0f} MiB")

    # (b)

    def transfer_parts(self, *, with_b: bool = True) -> None:
        """(a), (c) and (b), those of them in --parts."""
        parts = self.args.parts
        if "a" in parts:
            self.get_cache_round_trip()
        if "c" in parts:
            self.peak_memory_filling()
        if "b" in parts and with_b:
            image_timings([self])

    # (d)

    def build_entries(self, count: int, concurrency: int) -> None:
        self.clear_cache()
        payload = b"e" * 1024
        local = threading.local()

        def one(index: int) -> None:
            http = getattr(local, "http", None)
            if http is None:
                http = local.http = httpx.Client(base_url=self.server.url, timeout=120)
            created = http.post(
                "/v2/images", json={"name": f"entry-{index}", "container_format": "bare", "disk_format": "raw"}
            )
            created.raise_for_status()
            image_id = created.json()["id"]
            uploaded = http.put(
                f"/v2/images/{image_id}/file", content=payload, headers={"Content-Type": "application/octet-stream"}
            )
            uploaded.raise_for_status()
            http.get(f"/v2/images/{image_id}/file").raise_for_status()  # tees into the cache

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(count)))
        deadline = time.monotonic() + 120
        while len(self.cached_ids()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        self.log(f"{count} entries built in {time.perf_counter() - started:.1f} s")

    def load_glance_entries(self, count: int) -> None:
        """Give the running Glance 33 (centralized_db driver) ``count`` cached entries directly, in seconds.

        What its cache holds per cached image (glance/image_cache/drivers/centralized_db.py): a file named by the
        image id in ``image_cache_dir`` and a ``cached_images`` row of its database (image id, size, checksum,
        hits, last_accessed, last_modified) under the ``node_reference`` row of its ``worker_self_reference_url``.
        ``GET /v2/cache`` lists those rows; prune sums the files' sizes and removes the least recently accessed
        entry (file and row) until under ``image_cache_max_size``; neither reads the ``images`` table. Through the
        API, Glance on SQLite caches ~7 images/s one at a time (~25 min for 10,000): this writes the same state in
        seconds, each entry's last_accessed one microsecond after the previous one's, as a first download would.
        """
        self.clear_cache()
        started = time.perf_counter()
        payload = b"e" * 1024
        checksum = hashlib.md5(payload, usedforsecurity=False).hexdigest()
        cache_dir = self.server.root / "cache"
        image_ids = [str(uuid.uuid4()) for _ in range(count)]
        for image_id in image_ids:
            (cache_dir / image_id).write_bytes(payload)
        # SQLAlchemy's text form of a DateTime on SQLite; Glance stores naive UTC (oslo's utcnow).
        base = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=60)
        stamps = [(base + timedelta(microseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f") for i in range(count)]
        with contextlib.closing(sqlite3.connect(self.server.root / "glance.sqlite", timeout=60)) as db, db:
            db.execute("INSERT OR IGNORE INTO node_reference (node_reference_url) VALUES (?)", (self.server.url,))
            (node_id,) = db.execute(
                "SELECT node_reference_id FROM node_reference WHERE node_reference_url = ?", (self.server.url,)
            ).fetchone()
            db.executemany(
                "INSERT INTO cached_images (image_id, last_accessed, last_modified, size, hits, checksum,"
                " node_reference_id) VALUES (?, ?, ?, ?, 0, ?, ?)",
                [
                    (image_id, stamp, stamp, len(payload), checksum, node_id)
                    for image_id, stamp in zip(image_ids, stamps, strict=True)
                ],
            )
        found = len(self.cached_ids())
        if found != count:
            raise RuntimeError(f"{self.server.name}: {found} entries listed after loading {count}")
        seconds = time.perf_counter() - started
        self.log(f"{count} entries loaded into its cache directory and database in {seconds:.1f} s")

    def list_entries(self, count: int) -> None:
        times = []
        for _ in range(self.args.repeat * 4):
            started = time.perf_counter()
            listing = self.http.get("/v2/cache")
            times.append(time.perf_counter() - started)
            found = len(listing.json()["cached_images"])
            if found != count:
                self.results.notes["list"] = f"{found} listed"
        self.results.values["list"] = statistics.median(times)
        self.log(f"list of {count}: {statistics.median(times) * 1000:.1f} ms")

    def prune_entries(self, count: int) -> None:
        started = time.perf_counter()
        pruned = self.http.post("/v2/cache/prune", timeout=600)
        self.results.values["prune"] = time.perf_counter() - started
        pruned.raise_for_status()
        files = pruned.json()["total_files_pruned"]
        if files != count // 2:
            self.results.notes["prune"] = f"pruned {files}"
        self.log(f"prune of {count} -> {files} files: {self.results.values['prune'] * 1000:.1f} ms")


def image_timings(benches: list[Bench]) -> None:
    """(b) on one server, or on several side by side: every sample is taken on each server in turn, the order
    flipped from one round to the next, so that a change in the machine's load (other jobs on a shared VM) falls
    on all of them alike instead of on whichever ran in that minute.

    Both fills are the median of --repeat fills from an empty entry, after one untimed fill: like every transfer
    here a median, one sample swinging by a third on this VM; the untimed first fill keeps the first server from
    paying alone for guest memory and disk paths touched the first time.
    """
    args = benches[0].args
    path = benches[0].data["medium"]
    size = path.stat().st_size
    images = {
        bench: (bench.create_image("bench-fill-put"), bench.create_image("bench-fill-download")) for bench in benches
    }
    settle()
    for bench in benches:
        by_queue, by_download = images[bench]
        bench.results.values["upload"] = bench.upload_file(by_queue, path)
        bench.upload_file(by_download, path)
    settle()
    for bench in benches:
        store_file = bench.server.store_file(images[bench][0])
        cat_seconds(store_file)  # warm the page cache
        bench.results.values["cat"] = statistics.median(cat_seconds(store_file) for _ in range(args.repeat))

    def in_turn(round_number: int) -> list[Bench]:
        return benches if round_number % 2 == 0 else benches[::-1]

    fills: list[tuple[str, int, Callable[[Bench, str], float]]] = [
        ("fill_put", 0, lambda bench, image_id: bench.fill_by_queue(image_id)),
        ("fill_download", 1, lambda bench, image_id: bench.fill_by_download(image_id, size)),
    ]
    for key, which, fill in fills:
        samples: dict[Bench, list[tuple[float, CpuSample]]] = {bench: [] for bench in benches}
        for attempt in range(args.repeat + 1):
            for bench in in_turn(attempt):
                image_id = images[bench][which]
                bench.http.delete(f"/v2/cache/{image_id}").raise_for_status()
                settle()
                sample = bench.with_cpu(functools.partial(fill, bench, image_id))
                if attempt:
                    samples[bench].append(sample)
        settle()
        for bench in benches:
            bench.record(key, samples[bench])
    for bench in benches:
        bench.download(images[bench][0], size)  # warm-up read of the cached file
    hits: dict[Bench, list[tuple[float, CpuSample]]] = {bench: [] for bench in benches}
    for attempt in range(args.repeat):
        for bench in in_turn(attempt):
            image_id = images[bench][0]
            hits[bench].append(bench.with_cpu(functools.partial(bench.download, image_id, size)))
    for bench in benches:
        bench.record("hit", hits[bench])


# -- the run ---------------------------------------------------------------------------------------------


def bench_ours(root: Path, args: argparse.Namespace, data: dict[str, Path], max_size: int) -> Results:
    print("ours: glancecache-server", file=sys.stderr, flush=True)
    with run_ours(root / "ours", max_size) as server:
        bench = Bench(server, args, data)
        try:
            bench.transfer_parts(with_b=not args.glance_modes)  # else (b) runs beside each Glance front
            if "d" in args.parts:
                bench.build_entries(args.entries, concurrency=4)
                bench.list_entries(args.entries)
                bench.prune_entries(args.entries)
        finally:
            bench.close()
        return bench.results


def bench_glance(
    root: Path, args: argparse.Namespace, data: dict[str, Path], max_size: int
) -> tuple[dict[str, Results], dict[str, Results]]:
    """Glance fronts one after the other on one port and data dir: the entries of (d) carry over. (b) runs on each
    front side by side with a server of ours started beside it (``image_timings``). Returns Glance's results and
    ours of (b), by front."""
    port, glance_root, results = free_port(), root / "glance33", {}
    beside: dict[str, Results] = {}
    modes, parts = args.glance_modes, args.parts
    entries = "d" in parts and (args.glance_entries is None or args.entries <= args.glance_entries)

    def load(bench: Bench) -> None:
        if args.glance_load == "api":
            bench.build_entries(args.entries, concurrency=1)  # SQLite: "database is locked"
        else:
            bench.load_glance_entries(args.entries)

    for position, mode in enumerate(modes):
        first, last = position == 0, position == len(modes) - 1
        print(f"glance33: start.sh, RG_HTTP_MODE={mode}", file=sys.stderr, flush=True)
        with run_glance(glance_root, port, mode, max_size) as server:
            bench = Bench(server, args, data)
            try:
                if not first and entries:  # the entries built by the first front
                    bench.list_entries(args.entries)
                if last and entries:
                    if first:
                        load(bench)
                        bench.list_entries(args.entries)
                    bench.prune_entries(args.entries)
                bench.transfer_parts(with_b=False)
                if "b" in parts:
                    print(f"ours beside glance33 ({mode}) for (b)", file=sys.stderr, flush=True)
                    with run_ours(root / f"ours-beside-{mode}", max_size) as our_server:
                        ours = Bench(our_server, args, data)
                        try:
                            image_timings([ours, bench])
                        finally:
                            ours.close()
                        beside[mode] = ours.results
                if first and not last and entries:
                    load(bench)
                    bench.list_entries(args.entries)
            finally:
                bench.close()
            results[mode] = bench.results
    return results, beside


def pair_with_best_front(ours: Results, glance: dict[str, Results], beside: dict[str, Results]) -> None:
    """Give ``ours`` the (b) figures measured beside the Glance front that did best on each, so that every ratio
    compares two servers measured in the same minutes."""
    for key in sorted({key for results in beside.values() for key in results.values}):
        fronts = [mode for mode in beside if key in glance[mode].values]
        if not fronts:
            ours.values[key] = statistics.median(results.values[key] for results in beside.values())
            continue
        best = min(fronts, key=lambda mode: glance[mode].values[key])
        ours.values[key] = beside[best].values[key]
        if len(beside) > 1 and key in RATIO_GOALS:
            ours.notes[key] = f"beside {best}"


ROWS: list[tuple[str, str, str]] = [
    # key, label, kind: "time" (lower is better, shown against cat where it is a 256 MiB transfer), "mib", "info"
    ("get_cache", "(a) GET /v2/cache round trip, empty cache (median)", "time"),
    ("upload", "(b) upload {medium} image (PUT /v2/images/ID/file)", "info"),
    ("fill_put", "(b) cache fill {medium}: PUT /v2/cache/ID until listed", "cat"),
    ("fill_download", "(b) cache fill {medium}: first full download (tee)", "cat"),
    ("hit", "(b) cache-hit full download {medium} (median)", "cat"),
    ("cat", "(b) cat FILE > /dev/null, {medium} store file (median)", "info"),
    ("fill_put_cpu", "(b) server CPU-s per 256 MiB: PUT fill (median)", "cpu"),
    ("fill_download_cpu", "(b) server CPU-s per 256 MiB: tee fill (median)", "cpu"),
    ("fill_download_client_cpu", "(b) curl CPU-s per 256 MiB: tee fill (median)", "info-cpu"),
    ("hit_cpu", "(b) server CPU-s per 256 MiB: cache hit (median)", "cpu"),
    ("hit_client_cpu", "(b) curl CPU-s per 256 MiB: cache hit (median)", "info-cpu"),
    ("fill_large", "(c) cache fill {large}: PUT /v2/cache/ID until listed", "time"),
    ("rss_before", "(c) RSS before the {large} fill (MiB)", "info"),
    ("rss_fill", "(c) peak RSS filling {large} (MiB, process tree)", "mib"),
    ("pss_fill", "(c) peak PSS filling {large} (MiB, process tree)", "info"),
    ("rss_upload", "(c) peak RSS during the {large} upload (MiB)", "info"),
    ("list", "(d) GET /v2/cache with {entries} entries (median)", "time"),
    ("prune", "(d) POST /v2/cache/prune, {entries} entries -> {half}", "time"),
]


def show_seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def show(results: Results | None, key: str, kind: str) -> str:
    if results is None:
        return "skipped"
    if key not in results.values:
        return "-"
    value = results.values[key]
    if kind in ("cpu", "info-cpu"):
        text = f"{value:.3f} CPU-s"
    elif kind in ("mib",) or key.startswith(("rss", "pss")):
        text = f"{value:.0f}"
    else:
        text = show_seconds(value)
    if kind == "cat" and results.values.get("cat"):
        text += f" ({value / results.values['cat']:.1f}x cat)"
    if key in results.notes:
        text += f" [{results.notes[key]}]"
    return text


def table(ours: Results, glance: dict[str, Results | None], args: argparse.Namespace) -> str:
    names = {
        "medium": f"{args.medium_mib} MiB",
        "large": f"{args.large_mib} MiB" if args.large_mib < 1024 else f"{args.large_mib // 1024} GiB",
        "entries": f"{args.entries:,}",
        "half": f"{args.entries // 2:,}",
    }
    rows = []
    for key, label, kind in ROWS:
        if key not in ours.values and all(r is None or key not in r.values for r in glance.values()):
            continue  # a part not run (--parts)
        measured = [r.values[key] for r in glance.values() if r is not None and key in r.values]
        # The earlier figures are for 256 MiB; in --quick only the size-independent one compares.
        earlier = not measured and args.skip_glance and key in EARLIER_GLANCE and (not args.quick or key == "get_cache")
        best = min(measured) if measured else EARLIER_GLANCE[key] if earlier else None
        mine = ours.values.get(key)
        versus = goal = ""
        if mine is not None and not kind.startswith("info"):
            if best:
                versus = f"{mine / best:.2f}x" + (" (earlier figure)" if earlier else "")
            faster = best is not None and mine < best
            if kind == "mib":
                goal = "yes" if mine < MEMORY_GOAL_MIB and (best is None or mine <= best) else "NO"
                goal += f" (<{MEMORY_GOAL_MIB:.0f} MiB)"
            elif best is not None and key in RATIO_GOALS:
                goal = ("yes" if mine <= RATIO_GOALS[key] * best else "NO") + f" (<={RATIO_GOALS[key]}x)"
            elif best is not None:
                goal = "yes" if faster else "NO"
        rows.append(
            [
                label.format(**names),
                show(ours, key, kind),
                show(glance.get("router"), key, kind),
                show(glance.get("http11"), key, kind),
                versus,
                goal,
            ]
        )
    return tabulate(
        rows,
        headers=["measurement", "ours", "glance33 (router)", "glance33 (http11)", "ours vs best glance", "goal met"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--skip-glance", action="store_true", help="measure only our server")
    parser.add_argument("--glance-modes", default="router,http11", help="uWSGI fronts to run (default both)")
    parser.add_argument("--entries", type=int, help="cache entries for (d) (default 1000; --quick 100)")
    parser.add_argument("--repeat", type=int, help="repetitions of the transfers (default 3; --quick 1)")
    parser.add_argument("--parts", default="abcd", help="measurements to run, e.g. 'b' or 'ad' (default abcd)")
    parser.add_argument(
        "--glance-entries", type=int, default=None,
        help="largest --entries that Glance 33 is loaded with for (d) (default: any)",
    )  # fmt: skip
    parser.add_argument(
        "--glance-load", choices=("direct", "api"), default="direct",
        help="how Glance 33 gets the (d) entries: written into its cache directory and database (default, seconds "
             "for 10,000), or through its API like ours (~7 images/s)",
    )  # fmt: skip
    args = parser.parse_args()
    args.medium_mib, args.large_mib = (32, 128) if args.quick else (256, 1024)
    args.entries = args.entries or (100 if args.quick else 1000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.requests = 100 if args.quick else 1000
    args.parts = set(args.parts)
    if not args.parts or not args.parts <= set("abcd"):
        parser.error("--parts takes letters among a, b, c and d")
    args.glance_modes = [] if args.skip_glance else [mode for mode in args.glance_modes.split(",") if mode]
    if any(mode not in ("router", "http11") for mode in args.glance_modes):
        parser.error("--glance-modes takes router and/or http11")
    if args.glance_modes and not (PEER / "start.sh").exists():
        parser.error(f"real Glance peer not found at {PEER}; use --skip-glance")

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    root = Path(tempfile.mkdtemp(prefix="bench-server-"))
    try:
        data = {"medium": root / "medium.bin", "large": root / "large.bin"}
        write_data_file(data["medium"], args.medium_mib * MiB)
        write_data_file(data["large"], args.large_mib * MiB)
        max_size = args.entries * 1024 // 2  # prune keeps half of the (d) entries; fills ignore it (Glance too)
        ours = bench_ours(root, args, data, max_size)
        glance: dict[str, Results | None] = dict.fromkeys(("router", "http11"))
        if args.glance_modes:
            by_front, beside = bench_glance(root, args, data, max_size)
            glance.update(by_front)
            pair_with_best_front(ours, by_front, beside)
    except KeyboardInterrupt:
        print("interrupted: servers stopped, temporary files removed", file=sys.stderr)
        sys.exit(130)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        f"glancecache reference server vs Glance 33 (uWSGI, 1 process x 4 threads), loopback, "
        f"{os.cpu_count()} CPUs; transfers with curl, median of {args.repeat}; GET /v2/cache median of "
        f"{args.requests}; memory summed over each server's process tree (Glance: master, router, worker)"
    )
    print(table(ours, glance, args))
    if args.glance_modes and "b" in args.parts:
        print(
            "(b) a server of ours runs beside each Glance front, their samples taken in turn; ours' (b) figures are "
            "those measured beside the front that did best on each row ('beside ...'), so every ratio compares "
            "two servers measured in the same minutes."
        )
    if args.glance_modes and len(args.glance_modes) > 1:
        print(f"(d) prune is measured once for Glance 33, in its last phase ({args.glance_modes[-1]}).")
    if args.glance_modes and "d" in args.parts:
        if args.glance_entries is not None and args.entries > args.glance_entries:
            print(f"(d) Glance 33 is not loaded with {args.entries:,} entries (more than --glance-entries "
                  f"{args.glance_entries:,}).")  # fmt: skip
        elif args.glance_load == "direct":
            print(
                f"(d) ours gets its {args.entries:,} entries through its API (create, upload, first download); "
                "Glance 33 gets them written straight into its cache directory and cached_images table (through "
                "its API it caches ~7 images/s)."
            )


if __name__ == "__main__":
    main()
