"""The exporter as its users run it: the installed ``glancecache-exporter`` script as a subprocess, serving
real HTTP, in front of a real reference cluster plus one dead node and one node that never answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from glancecache_client.nodes import normalize_endpoint
from glancecache_client.server.runner import ReferenceCluster, run_cluster
from tests.cli.conftest import clean_env, dead_address

EXPORTER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), ".venv", "bin", "glancecache-exporter"
)
SCRAPE_TIMEOUT = 1.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_node() -> Iterator[str]:
    """A node that accepts connections (the kernel completes them) and never reads or answers a byte."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@dataclass
class Exporter:
    process: subprocess.Popen[str]
    url: str
    nodes: list[str] = field(default_factory=list)  # the node labels, as given with -H
    stderr: str = ""  # everything it logged, once it has stopped

    def scrape(self) -> tuple[Samples, float]:
        """Every sample of one /metrics scrape, parsed by prometheus-client's own parser, and its wall time."""
        started = time.monotonic()
        response = httpx.get(f"{self.url}/metrics", timeout=30)
        elapsed = time.monotonic() - started
        response.raise_for_status()
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples, elapsed


@contextmanager
def running_exporter(*args: str, env: dict[str, str] | None = None) -> Iterator[Exporter]:
    """The exporter on a free loopback port, ready to scrape; stopped with SIGTERM (and checked to exit 0)."""
    port = free_port()
    process = subprocess.Popen(
        [EXPORTER, "--listen", f"127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
    )
    url = f"http://127.0.0.1:{port}"
    running = Exporter(process, url)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the exporter did not start listening within 30 s"
                time.sleep(0.05)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError("the exporter did not stop within 10 s of SIGTERM") from None
        running.stderr = stderr
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=3, auth="noauth", data_dir=tmp_path_factory.mktemp("exporter")) as running:
        yield running


@pytest.fixture(scope="module")
def exporter(cluster: ReferenceCluster) -> Iterator[Exporter]:
    """The exporter over the three live nodes, one dead address and one silent node, in that order."""
    with silent_node() as silent:
        hosts = [normalize_endpoint(url) for url in (*cluster.urls, dead_address(), silent)]
        args = [arg for host in hosts for arg in ("-H", host)]
        with running_exporter(*args, "--os-auth-type", "none", "--scrape-timeout", str(SCRAPE_TIMEOUT)) as running:
            running.nodes = hosts
            yield running
