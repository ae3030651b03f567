"""Fan-out benchmark: Cluster.list() over 16 nodes vs CacheClient.list() on one node.

Every node of a local reference-server cluster (keystone identity mode, so real token requests happen) answers
each request after an added latency of 100 ms, standing in for a WAN between an operator and a DCN site. The
cluster runs as its own process (``glancecache-server --nodes N``), as remote nodes would: in this process its
16 servers would compete with the client for the GIL and count against the client's time. Token requests are
counted on the client side, where keystoneauth1 asks for each one. Each repetition starts cold: a new
keystoneauth1 session (so a new token) and new clients (so discovery again).
The goal (issue: foundation) is 16 nodes within 1.3x the time of one node, with exactly one token request.
A plain loop over the nodes, one after another (what a shell loop over `glance --os-image-url` does), is the
baseline.

    .venv/bin/python benchmarks/bench_fanout.py [--nodes 16] [--latency 0.1] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from tabulate import tabulate

from glancecache_client import CacheClient, Cluster


@contextlib.contextmanager
def server_process(nodes: int, latency: float) -> Iterator[list[str]]:
    """A keystone-mode reference cluster in its own process; yields the node URLs."""
    script = Path(sys.executable).parent / "glancecache-server"
    with tempfile.TemporaryDirectory() as data_dir:
        argv = [str(script), "--nodes", str(nodes), "--port", "0", "--auth", "keystone", "--data-dir", data_dir]
        argv += ["--added-latency", str(latency), "--log-level", "warning"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   start_new_session=True)  # fmt: skip
        try:
            assert process.stdout is not None
            urls = [process.stdout.readline().strip() for _ in range(nodes)]
            if not all(url.startswith("http") for url in urls):
                raise SystemExit(f"glancecache-server did not start (exit {process.poll()})")
            yield urls
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


class CountingPassword(v3.Password):  # type: ignore[misc]
    """keystoneauth1's password plugin, counting the token requests it makes."""

    requests = 0

    def get_auth_ref(self, session: Any, **kwargs: Any) -> Any:
        CountingPassword.requests += 1
        return super().get_auth_ref(session, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every request (default 0.1)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with server_process(args.nodes, args.latency) as urls:
        identity_url = f"{urls[0]}/identity/v3"

        def new_session() -> ks_session.Session:
            auth = CountingPassword(
                auth_url=identity_url,
                username="admin",
                password="admin",
                project_name="admin",
                user_domain_name="Default",
                project_domain_name="Default",
            )
            return ks_session.Session(auth=auth)

        def one_node() -> None:
            with CacheClient(urls[0], session=new_session()) as client:
                client.list()

        def fan_out() -> None:
            with Cluster(urls, session=new_session()) as nodes:
                result = nodes.list()
                assert result.ok, result.errors

        def sequential() -> None:
            session = new_session()
            for url in urls:
                with CacheClient(url, session=session) as client:
                    client.list()

        def measure(run: Callable[[], None]) -> tuple[float, float]:
            times, tokens = [], []
            run()  # warm-up: imports, connection set-up in the server
            for _ in range(args.repeat):
                issued = CountingPassword.requests
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)
                tokens.append(CountingPassword.requests - issued)
            return statistics.median(times), statistics.median(tokens)

        single, single_tokens = measure(one_node)
        fanned, fanned_tokens = measure(fan_out)
        looped, looped_tokens = measure(sequential)
    rows = [
        ["CacheClient.list(), 1 node", f"{single:.3f}", "1.00x", f"{single_tokens:g}", ""],
        [
            f"Cluster.list(), {args.nodes} nodes",
            f"{fanned:.3f}",
            f"{fanned / single:.2f}x",
            f"{fanned_tokens:g}",
            "<= 1.30x, 1 token " + ("MET" if fanned / single <= 1.3 and fanned_tokens == 1 else "MISSED"),
        ],
        [
            f"sequential loop, {args.nodes} nodes (baseline)",
            f"{looped:.3f}",
            f"{looped / single:.2f}x",
            f"{looped_tokens:g}",
            "",
        ],
    ]
    print(f"cold list() with {args.latency * 1000:.0f} ms added latency per request, median of {args.repeat}")
    print(tabulate(rows, headers=["scenario", "seconds", "vs 1 node", "token requests", "goal"]))


if __name__ == "__main__":
    main()
