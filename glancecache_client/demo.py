"""The main job, end to end: a local 3-node reference-server cluster driven by the ``glance`` CLI over real HTTP.

    python -m glancecache_client.demo [--nodes 3] [--keep]

It starts ``glancecache-server --nodes N`` (one shared image store and cache registry, one cache per node),
uploads three 1 MiB images through the image API, then runs the real ``glance`` command against every node at
once: queue and wait until cached, list across nodes, show which nodes hold an image, prune (the cache limit is
2.5 MiB per node, so each node drops its least recently used image), and list again. Every command is printed
before its output, as in a terminal. Exits 0 only if every step succeeded.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

MiB = 1024 * 1024


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _run(argv: list[str], *, stdin: str | None = None) -> str:
    shown = " ".join(shlex.quote(Path(a).name if i == 0 else a) for i, a in enumerate(argv))
    print(f"\n$ {shown}" + (" < ids" if stdin else ""), flush=True)
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"demo: {Path(argv[0]).name} exited {done.returncode}")
    return done.stdout


def _upload(endpoint: str, name: str, data: bytes) -> str:
    with httpx.Client(base_url=endpoint, timeout=60) as http:
        created = http.post("/v2/images", json={"name": name, "container_format": "bare", "disk_format": "raw"})
        created.raise_for_status()
        image_id = str(created.json()["id"])
        http.put(f"/v2/images/{image_id}/file", content=data,
                 headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    return image_id


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the glancecache main job against a local cluster.")
    parser.add_argument("--nodes", type=int, default=3, help="number of reference-server nodes (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and print its path")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="glancecache-demo-")
    server = subprocess.Popen(
        [_bin("glancecache-server"), "--nodes", str(args.nodes), "--port", "0", "--data-dir", data_dir,
         "--image-cache-max-size", str(5 * MiB // 2), "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        urls = [server.stdout.readline().strip() for _ in range(args.nodes)]
        if not all(url.startswith("http") for url in urls):
            raise SystemExit(f"demo: the server did not start (got {urls!r})")
        print(f"reference cluster up: {', '.join(urls)}")
        ids = [_upload(urls[0], f"demo-{n}", bytes([n]) * MiB) for n in range(3)]
        print(f"uploaded 3 images of 1 MiB: {', '.join(ids)}")

        hosts = [arg for url in urls for arg in ("-H", url)]
        glance = _bin("glance")
        env_note = os.environ.get("GLANCECACHE_DEMO_FORMAT", "table")
        _run([glance, *hosts, "cache-queue", "--wait", "--timeout", "60", *ids])
        _run([glance, *hosts, "cache-list", "-f", env_note, "--sort-column", "image_id"])
        _run([glance, "-H", urls[0], "cache-nodes-list", ids[0]])
        _run([glance, *hosts, "cache-prune"])
        listing = _run([glance, *hosts, "cache-list", "-f", "value", "-c", "image_id"])
        _run([glance, *hosts, "cache-delete", "-"], stdin=listing)
        _run([glance, *hosts, "cache-list", "-f", "json"])
        print("\ndemo finished: every command exited 0")
        return 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.keep:
            print(f"data kept in {data_dir}")
        else:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
