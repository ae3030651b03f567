"""The command core's cluster-wide answers: ``nodes_of`` (one node asked) against asking every node.

``glance -H n1 ... -H nN cache-nodes-list ID`` used to ask every node (N requests, N x the rows); the core asks the
first node that answers. A local reference cluster (noauth, ``--nodes N``, run in this process) adds a latency
to every answer, standing in for a WAN; each repetition uses fresh clients, so discovery (``GET /versions``) is
counted too. Printed: median wall time and HTTP requests per call, and the rows a front end would print.

    .venv/bin/python benchmarks/bench_core.py [--nodes 8] [--latency 0.05] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from glancecache_client import Cluster, operations
from glancecache_client.server.runner import run_cluster


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that counts what it sends."""

    def __init__(self, sent: list[int]) -> None:
        super().__init__()
        self.sent = sent

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent[0] += 1
        return super().handle_request(request)


def measure(urls: list[str], call: Callable[[Cluster], int], repeat: int) -> tuple[float, float, int]:
    """(median seconds, median requests, rows) of ``call`` on fresh clients."""
    seconds: list[float] = []
    requests: list[int] = []
    rows = 0
    for _ in range(repeat):
        sent = [0]
        with Cluster(urls, transport_factory=lambda _url, sent=sent: CountingTransport(sent)) as cluster:
            start = time.perf_counter()
            rows = call(cluster)
            seconds.append(time.perf_counter() - start)
        requests.append(sent[0])
    return statistics.median(seconds), statistics.median(requests), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, run_cluster(
        nodes=args.nodes, auth="noauth", data_dir=Path(data), added_latency=args.latency
    ) as reference:
        image = reference.upload_image(b"x" * 1000, name="bench")
        with Cluster(reference.urls[:2]) as cluster:
            assert operations.queue(cluster, [image], wait=True, timeout=60, interval=0.1).ok

        def every_node(cluster: Cluster) -> int:  # what the CLI did before the core
            return sum(len(urls) for urls in cluster.nodes(image).values)

        def one_node(cluster: Cluster) -> int:
            return sum(len(urls) for urls in operations.nodes_of(cluster, image).values)

        print(f"nodes-of-an-image on {args.nodes} nodes, {args.latency * 1000:.0f} ms added latency, "
              f"median of {args.repeat}")
        print(f"{'approach':<24}{'seconds':>10}{'requests':>10}{'rows':>8}")
        for name, call in (("ask every node (before)", every_node), ("operations.nodes_of", one_node)):
            median, sent, rows = measure(reference.urls, call, args.repeat)
            print(f"{name:<24}{median:>10.3f}{sent:>10.0f}{rows:>8}")


if __name__ == "__main__":
    main()
