"""``glance cache-summary`` and ``cache-sync`` as subprocesses against a real 2-node reference cluster.

The scenarios both front ends share are in tests/osc/test_both_front_ends.py; these check what only the ``glance``
side shows: the summary's values against each node's own listing, a dead node's error row, ``--human-readable``,
and ``cache-sync`` reading ids from stdin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from glancecache_client import Cluster as Nodes
from glancecache_client.server.runner import ReferenceCluster, run_cluster
from glancecache_client.views import iso_utc

from .conftest import dead_address
from .test_e2e_cluster import assert_no_traceback, glance, hosts, queue_and_wait


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path_factory.mktemp("summary")) as running:
        big = running.upload_image(b"b" * (3 * 1024 * 1024 + 512 * 1024), name="big")
        small = running.upload_image(b"s" * 700, name="small")
        queue_and_wait(running.urls, big)
        queue_and_wait(running.urls[:1], small)
        for _ in range(2):  # two hits on node 0's cached copy
            assert httpx.get(f"{running.urls[0]}/v2/images/{big}/file").status_code == 200
        engine = running.nodes[1].engine
        assert engine is not None
        engine.hold_queue()
        assert glance("-H", running.urls[1], "cache-queue", small).returncode == 0  # stays queued on node 1
        yield running


def test_summary_matches_each_nodes_listing(cluster: ReferenceCluster) -> None:
    done = glance(*hosts(cluster.urls), "cache-summary", "-f", "json")
    assert done.returncode == 0, done.stderr
    with Nodes(cluster.urls) as nodes:
        states = {result.node: result.value for result in nodes.list()}
    rows = json.loads(done.stdout)
    assert [row["node"] for row in rows] == cluster.urls
    for row in rows:
        state = states[row["node"]]
        assert state is not None
        accessed = [image.last_accessed for image in state.cached if image.last_accessed]
        assert row == {
            "node": row["node"],
            "cached_images": len(state.cached),
            "cached_bytes": sum(image.size for image in state.cached),
            "queued_images": len(state.queued),
            "hits": sum(image.hits for image in state.cached),
            "last_accessed": iso_utc(max(accessed)) if accessed else None,
            "error": None,
        }
    first, second = rows
    assert (first["cached_images"], first["queued_images"], first["hits"]) == (2, 0, 2)
    assert (second["cached_images"], second["queued_images"], second["cached_bytes"]) == (1, 1, 3670016)


def test_summary_human_readable_in_tables_only(cluster: ReferenceCluster) -> None:
    table = glance(*hosts(cluster.urls[1:]), "cache-summary", "--human-readable")
    assert table.returncode == 0, table.stderr
    assert "3.5 MiB" in table.stdout and "3670016" not in table.stdout
    as_json = glance(*hosts(cluster.urls[1:]), "cache-summary", "--human-readable", "-f", "json")
    assert json.loads(as_json.stdout)[0]["cached_bytes"] == 3670016  # machine formats keep integers


def test_summary_dead_node_gets_its_row_and_the_status_reports_it() -> None:
    dead = dead_address()
    with run_cluster(nodes=1, auth="noauth") as alive:
        done = glance(*hosts([alive.url, dead]), "cache-summary", "-f", "json")
    assert done.returncode == 6, done.stderr
    assert_no_traceback(done)
    healthy, failed = json.loads(done.stdout)
    assert healthy["error"] is None and healthy["cached_images"] == 0
    assert failed["node"] == f"http://{dead}"
    assert failed["cached_images"] is None and failed["last_accessed"] is None
    assert dead in failed["error"] and "\n" not in failed["error"]
    assert failed["error"] in done.stderr  # also said on stderr, once per failing node
    alone = glance("-H", dead, "cache-summary", "-f", "json")
    assert alone.returncode == 5  # all failed: the failure's own status (unreachable)
    assert [row["node"] for row in json.loads(alone.stdout)] == [f"http://{dead}"]


def test_sync_reads_ids_from_stdin_and_needs_something_to_sync(cluster: ReferenceCluster) -> None:
    with Nodes(cluster.urls[:1]) as nodes:
        big = next(iter(nodes.list().values[0].cached)).image_id
    done = glance(*hosts(cluster.urls[:1]), "cache-sync", "-", "--dry-run", "-f", "value", input=f"{big}\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [cluster.urls[0], big, "keep"]
    nothing = glance(*hosts(cluster.urls[:1]), "cache-sync")
    assert nothing.returncode == 2 and "give IMAGE_IDs" in nothing.stderr
    empty = glance(*hosts(cluster.urls[:1]), "cache-sync", "-", "--exact", input="")
    assert empty.returncode == 2 and "refusing --exact" in empty.stderr
    bad = glance(*hosts(cluster.urls[:1]), "cache-sync", "not-an-id")
    assert bad.returncode == 2 and "invalid image id" in bad.stderr
    assert_no_traceback(bad)
