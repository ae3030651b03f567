"""Leaving a Cluster's ``with`` block by an exception (Ctrl-C included) abandons the calls still in flight: their
connections are shut at once, so nothing waits for a node that answers slowly or never."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from glancecache_client import CacheClient, Cluster, errors
from glancecache_client.server.runner import run_cluster


def glancecache_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("glancecache")]


def test_an_exception_leaving_the_block_ends_the_calls_in_flight(tmp_path: Path) -> None:
    # The second node accepts connections (the kernel's backlog does) and never answers.
    with run_cluster(1, auth="noauth", data_dir=tmp_path) as answering, socket.create_server(("127.0.0.1", 0)) as mute:
        silent_url = f"http://127.0.0.1:{mute.getsockname()[1]}"
        started = time.monotonic()
        seen = []
        nodes = [answering.url, silent_url]
        with pytest.raises(RuntimeError, match="stop here"), Cluster(nodes, timeout=60) as cluster:
            for result in cluster.each(lambda client: client.list()):
                seen.append(result)
                raise RuntimeError("stop here")  # while the silent node's request is in flight
        left_after = time.monotonic() - started
        while glancecache_threads() and time.monotonic() < started + 10:
            time.sleep(0.02)
        threads_gone_after = time.monotonic() - started
    assert [result.node for result in seen] == [answering.url] and seen[0].ok
    assert left_after < 3  # not the 60 s timeout of the silent node's request
    assert threads_gone_after < 3  # the abandoned request ended too, rather than waiting for its timeout


def test_leaving_the_block_normally_still_waits_for_the_calls(tmp_path: Path) -> None:
    with run_cluster(2, auth="noauth", data_dir=tmp_path, added_latency=0.5) as nodes:
        finished: list[str] = []

        def listing(client: CacheClient) -> None:
            client.list()
            finished.append(client.endpoint)

        with Cluster(nodes.urls, timeout=10) as cluster:
            iterator = cluster.each(listing)
            next(iterator)  # the first node's result; the second's call is under way
    assert sorted(finished) == sorted(nodes.urls)  # close() waited for it rather than cutting it


def test_abandoned_requests_fail_as_node_errors_not_hangs() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Cluster([url, url.replace("127.0.0.1", "localhost")], timeout=60) as cluster:
            outcome: list[object] = []
            worker = threading.Thread(target=lambda: outcome.append(cluster.list()))
            worker.start()
            time.sleep(0.5)  # both requests are waiting for an answer
            cluster.close(abandon=True)
            worker.join(3)
            assert not worker.is_alive()  # list() returned: its requests ended when their connections were shut
    (listed,) = outcome
    assert isinstance(listed.errors[0].error, errors.GlanceCacheError)  # type: ignore[attr-defined]
