"""The installed ``glance`` script as a subprocess against a real 3-node reference cluster (noauth).

Each test makes its own images and asserts only on them, so tests do not depend on each other's leftovers.
Tests that need queued entries to stay queued stop one node's cache workers from picking new work.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import yaml

from glancecache_client.cli import exitcodes
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import GLANCE, clean_env, dead_address

DATA = b"cache me " * 128  # 1152 bytes


def glance(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GLANCE, *args], capture_output=True, text=True, input=input, env=clean_env(env), timeout=120, check=False
    )


def hosts(urls: list[str]) -> list[str]:
    return [arg for url in urls for arg in ("-H", url)]


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=3, auth="noauth", data_dir=tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.fixture
def fresh(tmp_path) -> Iterator[ReferenceCluster]:
    """A fresh 2-node cluster of its own, for tests that empty caches or hold the queue."""
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path) as running:
        yield running


def hold_queue(cluster: ReferenceCluster) -> None:
    """From now on the nodes' cache workers pick up nothing new: queued entries stay queued."""
    for node in cluster.nodes:
        assert node.engine is not None
        node.engine.hold_queue()


def queue_and_wait(urls: list[str], *image_ids: str) -> None:
    result = glance(*hosts(urls), "cache-queue", "--wait", "--timeout", "30", "--interval", "0.1", *image_ids)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # stderr is no terminal: no progress bar


def listing(urls: list[str], *extra: str) -> list[dict[str, object]]:
    result = glance(*hosts(urls), "cache-list", "-f", "json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_queue_wait_then_list_on_every_node_as_json(cluster):
    image = cluster.upload_image(DATA, name="e2e-json")
    queue_and_wait(cluster.urls, image)
    rows = [row for row in listing(cluster.urls) if row["image_id"] == image]
    assert sorted(row["node"] for row in rows) == sorted(cluster.urls)
    for row in rows:
        assert list(row) == ["node", "image_id", "state", "size", "hits", "last_accessed", "last_modified", "checksum"]
        assert row["state"] == "cached"
        assert row["size"] == len(DATA) and isinstance(row["size"], int)
        assert isinstance(row["hits"], int)
        assert isinstance(row["last_modified"], str) and row["last_modified"].endswith("Z")
        assert "T" in row["last_modified"]


def test_one_node_lists_with_the_same_node_column_as_several(cluster):
    image = cluster.upload_image(DATA, name="e2e-single")
    queue_and_wait(cluster.urls[:1], image)
    rows = listing(cluster.urls[:1])
    assert rows and all(row["node"] == cluster.urls[0] for row in rows)
    assert list(rows[0]) == list(listing(cluster.urls)[0])  # the same keys, in order, as with three nodes
    assert image in {row["image_id"] for row in rows}


def test_every_format_and_column_selection(cluster):
    image = cluster.upload_image(DATA, name="e2e-formats")
    node = cluster.urls[1:2]
    queue_and_wait(node, image)
    base = [*hosts(node), "cache-list", "-c", "image_id", "-c", "size"]
    as_yaml = yaml.safe_load(glance(*base, "-f", "yaml").stdout)
    assert {"image_id": image, "size": len(DATA)} in as_yaml
    as_csv = glance(*base, "-f", "csv").stdout.splitlines()
    assert as_csv[0] == "image_id,size" and f"{image},{len(DATA)}" in as_csv
    assert f"{image} {len(DATA)}" in glance(*base, "-f", "value").stdout.splitlines()
    table = glance(*base).stdout.splitlines()
    assert table[0].split() == ["image_id", "size"] and set(table[1]) <= {"-", " "}
    assert any(line.split() == [image, str(len(DATA))] for line in table[2:])


def test_sort_column(cluster):
    small, big = cluster.upload_image(b"s" * 10, name="small"), cluster.upload_image(b"b" * 5000, name="big")
    node = cluster.urls[2:3]
    queue_and_wait(node, small, big)
    ascending = glance(*hosts(node), "cache-list", "-f", "value", "-c", "image_id", "--sort-column", "size").stdout
    order = [line for line in ascending.split() if line in (small, big)]
    assert order == [small, big]
    descending = glance(*hosts(node), "cache-list", "-f", "json", "--sort-column", "size", "--sort-descending")
    sizes = [row["size"] for row in json.loads(descending.stdout)]
    assert sizes == sorted(sizes, reverse=True)


def test_stdin_pipeline_deletes_what_the_list_printed(cluster):
    image_a, image_b = cluster.upload_image(DATA, name="pipe-a"), cluster.upload_image(DATA, name="pipe-b")
    node = cluster.urls[:1]
    queue_and_wait(node, image_a, image_b)
    pipeline = (
        f"set -o pipefail; {GLANCE} -H {node[0]} cache-list -f value -c image_id | {GLANCE} -H {node[0]} cache-delete -"
    )
    result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert listing(node) == []


def test_delete_of_an_entry_that_is_not_there_exits_4_unless_ignored(cluster):
    absent = str(uuid.uuid4())
    result = glance(*hosts(cluster.urls[:1]), "cache-delete", absent)
    assert result.returncode == exitcodes.NOT_FOUND
    assert result.stderr.startswith(f"Error: cannot delete {absent}: {cluster.urls[0]}: HTTP 404")
    assert len(result.stderr.splitlines()) == 1
    ignored = glance(*hosts(cluster.urls[:1]), "cache-delete", "--ignore-missing", absent)
    assert ignored.returncode == 0, ignored.stderr


def test_delete_on_all_nodes_when_only_one_holds_it_succeeds(cluster):
    # Glance answers 204 for an existing image that a node never cached: deleting everywhere is safe
    image = cluster.upload_image(DATA, name="e2e-delete-everywhere")
    queue_and_wait(cluster.urls[:1], image)
    result = glance(*hosts(cluster.urls), "cache-delete", image)
    assert result.returncode == 0, result.stderr
    assert image not in {row["image_id"] for row in listing(cluster.urls)}


def test_delete_of_an_unknown_image_on_every_node(cluster):
    absent = str(uuid.uuid4())
    result = glance(*hosts(cluster.urls), "cache-delete", absent)
    assert result.returncode == exitcodes.NOT_FOUND
    assert result.stderr.count("HTTP 404") == 3 and "3 of 3 operations failed" in result.stderr
    ignored = glance(*hosts(cluster.urls), "cache-delete", "--ignore-missing", absent)
    assert (ignored.returncode, ignored.stderr) == (0, "")


def test_queue_of_an_unknown_image_exits_4_and_known_ones_are_still_queued(cluster):
    unknown = str(uuid.uuid4())
    only_unknown = glance(*hosts(cluster.urls), "cache-queue", unknown)
    assert only_unknown.returncode == exitcodes.NOT_FOUND
    assert only_unknown.stderr.count("HTTP 404") == 3
    known = cluster.upload_image(DATA, name="e2e-known")
    mixed = glance(
        *hosts(cluster.urls[:1]), "cache-queue", "--wait", "--timeout", "30", "--interval", "0.1", unknown, known
    )
    assert mixed.returncode == exitcodes.PARTIAL
    assert "1 of 2 operations failed" in mixed.stderr
    assert known in {row["image_id"] for row in listing(cluster.urls[:1])}


def test_a_dead_node_still_shows_the_healthy_nodes_rows_and_exits_6(cluster):
    image = cluster.upload_image(DATA, name="e2e-dead")
    queue_and_wait(cluster.urls[:2], image)
    dead = dead_address()
    result = glance(*hosts(cluster.urls[:2]), "--host", dead, "cache-list", "-f", "json")
    assert result.returncode == exitcodes.PARTIAL
    rows = json.loads(result.stdout)
    assert {row["node"] for row in rows if row["image_id"] == image} == set(cluster.urls[:2])
    assert f"http://{dead}: connection refused" in result.stderr
    assert_no_traceback(result)


def test_host_option_after_the_command(cluster):
    first, second = cluster.urls[:2]
    result = glance("-H", first, "cache-list", "-H", second, "-f", "json", "-c", "node")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("[]",) or {row["node"] for row in json.loads(result.stdout)} <= {first, second}


def test_all_nodes_from_the_environment(cluster):
    image = cluster.upload_image(DATA, name="e2e-allnodes")
    queue_and_wait(cluster.urls, image)
    result = glance("--all-nodes", "cache-list", "-f", "json", env={"GLANCECACHE_HOSTS": ",".join(cluster.urls)})
    assert result.returncode == 0, result.stderr
    assert {row["node"] for row in json.loads(result.stdout) if row["image_id"] == image} == set(cluster.urls)


def test_nodes_list_reads_the_centralized_registry(cluster):
    image = cluster.upload_image(DATA, name="e2e-nodes")
    queue_and_wait(cluster.urls[:2], image)
    result = glance(*hosts(cluster.urls[2:]), "cache-nodes-list", image, "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["node_url"] for row in rows} == set(cluster.urls[:2])
    assert all(row["image_id"] == image for row in rows)
    # One row per node holding the image, however many nodes are given (the registry is shared).
    several = json.loads(glance(*hosts(cluster.urls), "cache-nodes-list", image, "-f", "json").stdout)
    assert sorted(row["node_url"] for row in several) == sorted(cluster.urls[:2])


def test_clean_prints_nothing_and_succeeds(cluster):
    result = glance(*hosts(cluster.urls), "cache-clean")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_wait_gives_up_with_exit_1_when_an_image_never_gets_cached(fresh):
    hold_queue(fresh)
    image = fresh.upload_image(DATA, name="never")
    result = glance(*hosts(fresh.urls), "cache-queue", "--wait", "--timeout", "0.5", "--interval", "0.1", image)
    assert result.returncode == exitcodes.ERROR
    assert result.stderr.count(f"image {image} was not cached within 0.5 s") == 2
    assert_no_traceback(result)


def test_clear_reports_counts_per_node_and_accepts_glance_spellings(fresh):
    cached, queued = fresh.upload_image(DATA, name="c"), fresh.upload_image(DATA, name="q")
    queue_and_wait(fresh.urls[:1], cached)  # cached on node 0 only
    hold_queue(fresh)
    assert glance(*hosts(fresh.urls), "cache-queue", queued).returncode == 0  # queued on both
    queued_only = glance(*hosts(fresh.urls), "cache-clear", "--target", "queued", "-f", "json")
    assert queued_only.returncode == 0, queued_only.stderr
    assert json.loads(queued_only.stdout) == [
        {"node": fresh.urls[0], "cached_removed": 0, "queued_removed": 1},
        {"node": fresh.urls[1], "cached_removed": 0, "queued_removed": 1},
    ]
    assert glance(*hosts(fresh.urls), "cache-queue", queued).returncode == 0
    cache_only = glance(*hosts(fresh.urls[:1]), "cache-clear", "--target", "cached", "-f", "json")
    assert json.loads(cache_only.stdout) == [{"node": fresh.urls[0], "cached_removed": 1, "queued_removed": 0}]
    both = glance(*hosts(fresh.urls), "cache-clear")  # not a terminal: no question asked
    assert both.returncode == 0, both.stderr
    lines = both.stdout.splitlines()
    assert lines[0].split() == ["node", "cached_removed", "queued_removed"]
    assert [line.split() for line in lines[2:]] == [[fresh.urls[0], "0", "1"], [fresh.urls[1], "0", "1"]]
    assert listing(fresh.urls) == []


def test_prune_prints_what_it_removed(tmp_path):
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, max_size=1500) as small:
        first, second = small.upload_image(DATA, name="p1"), small.upload_image(DATA, name="p2")
        queue_and_wait(small.urls, first)
        queue_and_wait(small.urls, second)
        result = glance(*hosts(small.urls), "cache-prune", "-f", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [{"node": small.urls[0], "files_pruned": 1, "bytes_pruned": len(DATA)}]
        assert len(listing(small.urls)) == 1
        table = glance(*hosts(small.urls), "cache-prune")
        assert table.stdout.splitlines()[0].split() == ["node", "files_pruned", "bytes_pruned"]


def test_a_node_without_the_cache_api_exits_5(tmp_path):
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, cache_enabled=False) as plain:
        for command in (["cache-list"], ["cache-prune"], ["cache-queue", str(uuid.uuid4())]):
            result = glance(*hosts(plain.urls), *command)
            assert result.returncode == exitcodes.UNAVAILABLE, (command, result.stderr)
            assert "needs Image API v2.14" in result.stderr and len(result.stderr.splitlines()) == 1
            assert_no_traceback(result)


def test_debug_traces_http_on_stderr_only(cluster):
    result = glance("-d", *hosts(cluster.urls[:1]), "cache-list", "-f", "json")
    assert result.returncode == 0
    json.loads(result.stdout)  # stdout stays clean data
    assert "GET " + cluster.urls[0] + "/v2/cache -> 200" in result.stderr


def test_clear_needs_only_the_delete_permission_and_reports_unknown_counts(tmp_path):
    # A policy of {"cache_list": "!"}: a raw DELETE /v2/cache works, so the clear must too; the counts that
    # come from listing are unknown (null), not a reason to fail.
    policy = tmp_path / "policy.json"
    policy.write_text('{"cache_list": "!"}')
    data = tmp_path / "data"
    data.mkdir()
    with run_cluster(nodes=1, auth="noauth", data_dir=data, policy_file=policy) as locked:
        image = locked.upload_image(DATA, name="locked")
        hold_queue(locked)
        assert glance(*hosts(locked.urls), "cache-queue", image).returncode == 0
        result = glance(*hosts(locked.urls), "cache-clear", "-f", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [{"node": locked.urls[0], "cached_removed": None, "queued_removed": None}]
        assert locked.nodes[0].engine is not None and locked.nodes[0].engine.list_queued() == []
