"""One table of scenarios, run through both front ends: the ``glance`` CLI and the real ``openstack cache``.

Both call the same command core, so each scenario must give the same rows and the same verdict; they differ only
by ecosystem convention: the JSON keys (``glance``'s snake_case, OSC's column headers, mapped through
``views.HEADERS``), absent values (``null`` / OSC's ``N/A``) and exit statuses (``glance``'s README table;
OSC's 1 for any failure, 3 when nothing succeeded and every failure was a refusal).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glancecache_client.server.runner import ReferenceCluster, run_cluster
from glancecache_client.views import CACHE_COLUMNS, HEADERS
from tests.cli.conftest import GLANCE, clean_env, dead_address, run_on_a_terminal
from tests.cli.test_e2e_cluster import glance
from tests.cli.test_failures import one_line_error_of

from .test_end_to_end import OPENSTACK, base_env, hosts, openstack

# verdict -> (glance's exit status, openstack's exit status)
EXITS = {"ok": (0, 0), "partial": (6, 1), "not found": (4, 1), "refused": (3, 3), "usage": (2, 2)}
KEYS = {header: key for key, header in HEADERS.items()}


@dataclass
class Lab:
    cluster: ReferenceCluster
    env: dict[str, str]
    held: str  # cached on node 0 only
    everywhere: str  # cached on both nodes
    waiting: str  # queued on node 1, whose queue is held


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("home")
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path_factory.mktemp("both")) as cluster:
        held = cluster.upload_image(b"h" * 700, name="held")
        everywhere = cluster.upload_image(b"e" * 900, name="everywhere")
        for urls, image in ((cluster.urls[:1], held), (cluster.urls, everywhere)):
            done = glance(*hosts(urls), "cache-queue", "--wait", "--timeout", "30", "--interval", "0.1", image)
            assert done.returncode == 0, done.stderr
        waiting = cluster.upload_image(b"w" * 500, name="waiting")
        node = cluster.nodes[1].engine
        assert node is not None
        node.hold_queue()  # from now on node 1 leaves what is queued there queued
        queued = glance(*hosts(cluster.urls[1:]), "cache-queue", waiting)
        assert queued.returncode == 0, queued.stderr
        yield Lab(cluster, {**base_env(home), "OS_AUTH_TYPE": "none"}, held, everywhere, waiting)


MISSING = str(uuid.uuid4())
DEAD = dead_address()  # nothing listens there


@dataclass(frozen=True)
class Scenario:
    name: str
    glance: Callable[[Lab], list[str]]  # the glance arguments
    openstack: Callable[[Lab], list[str]]  # the openstack arguments
    verdict: str
    rows: Callable[[Lab], list[dict[str, Any]]] | None = None  # expected rows (glance's keys), or no table


def _waiting_row(lab: Lab) -> dict[str, Any]:
    return {"node": lab.cluster.urls[1], "image_id": lab.waiting, "state": "queued", "size": None}


def _everywhere_rows(lab: Lab) -> list[dict[str, Any]]:
    return [{"node": url, "image_id": lab.everywhere, "state": "cached", "size": 900} for url in lab.cluster.urls]


SCENARIOS = [
    Scenario(
        "list on every node",
        lambda lab: [*hosts(lab.cluster.urls), "cache-list", "-f", "json", "-c", "node", "-c", "image_id",
                     "-c", "state", "-c", "size"],
        lambda lab: ["cache", "list", *hosts(lab.cluster.urls), "-f", "json", "-c", "Node", "-c", "ID",
                     "-c", "State", "-c", "Size"],
        "ok",
        lambda lab: sorted(
            [*_everywhere_rows(lab), {"node": lab.cluster.urls[0], "image_id": lab.held, "state": "cached",
                                      "size": 700}, _waiting_row(lab)],
            key=lambda row: (row["node"], row["image_id"]),
        ),
    ),
    Scenario(
        "list only what is queued",
        lambda lab: [*hosts(lab.cluster.urls), "cache-list", "--state", "queued", "-f", "json", "-c", "node",
                     "-c", "image_id", "-c", "state", "-c", "size"],
        lambda lab: ["cache", "list", "--state", "queued", *hosts(lab.cluster.urls), "-f", "json", "-c", "Node",
                     "-c", "ID", "-c", "State", "-c", "Size"],
        "ok",
        lambda lab: [_waiting_row(lab)],
    ),
    Scenario(
        "list chosen images that are cached (OSC by name), every key kept",
        lambda lab: [*hosts(lab.cluster.urls), "cache-list", "--image", lab.held, "--image", lab.waiting,
                     "--state", "CACHED", "-f", "json"],
        lambda lab: ["cache", "list", "--image", "held", "--image", lab.waiting, "--state", "cached",
                     *hosts(lab.cluster.urls), "-f", "json"],
        "ok",
        lambda lab: [{"node": lab.cluster.urls[0], "image_id": lab.held, "state": "cached", "size": 700}],
    ),
    Scenario(
        "list an image no node holds: no rows, and success",
        lambda lab: [*hosts(lab.cluster.urls), "cache-list", "--image", MISSING, "-f", "json"],
        lambda lab: ["cache", "list", "--image", MISSING, *hosts(lab.cluster.urls), "-f", "json"],
        "ok",
        lambda lab: [],
    ),
    Scenario(
        "nodes of an image: one row per node holding it, whatever the node count",
        lambda lab: [*hosts(lab.cluster.urls), "cache-nodes-list", lab.everywhere, "-f", "json"],
        lambda lab: ["cache", "nodes", "list", lab.everywhere, *hosts(lab.cluster.urls), "-f", "json"],
        "ok",
        lambda lab: sorted(({"image_id": lab.everywhere, "node_url": url} for url in lab.cluster.urls),
                           key=lambda row: row["node_url"]),
    ),
    Scenario(
        "queue an unknown image beside a known one",
        lambda lab: [*hosts(lab.cluster.urls[:1]), "cache-queue", MISSING, lab.held],
        lambda lab: ["cache", "queue", MISSING, lab.held, *hosts(lab.cluster.urls[:1])],
        "partial",
    ),
    Scenario(
        "delete an image no node knows",
        lambda lab: [*hosts(lab.cluster.urls), "cache-delete", MISSING],
        lambda lab: ["cache", "delete", MISSING, *hosts(lab.cluster.urls)],
        "not found",
    ),
    Scenario(
        "prune every node",
        lambda lab: [*hosts(lab.cluster.urls), "cache-prune", "-f", "json"],
        lambda lab: ["cache", "prune", *hosts(lab.cluster.urls), "-f", "json"],
        "ok",
        lambda lab: [{"node": url, "files_pruned": 0, "bytes_pruned": 0} for url in lab.cluster.urls],
    ),
    Scenario(
        "sync dry run: queue where missing, keep where held, change nothing",
        lambda lab: [*hosts(lab.cluster.urls), "cache-sync", lab.held, lab.everywhere, "--dry-run", "-f", "json"],
        lambda lab: ["cache", "sync", lab.held, "everywhere", "--dry-run", *hosts(lab.cluster.urls), "-f", "json"],
        "ok",
        lambda lab: [
            {"node": lab.cluster.urls[0], "image_id": lab.held, "action": "keep"},
            {"node": lab.cluster.urls[1], "image_id": lab.held, "action": "queue"},
            *({"node": url, "image_id": lab.everywhere, "action": "keep"} for url in lab.cluster.urls),
        ],
    ),
    Scenario(
        "sync applied where nothing is missing: every row kept, result ok",
        lambda lab: [*hosts(lab.cluster.urls), "cache-sync", lab.everywhere, "-f", "json"],
        lambda lab: ["cache", "sync", lab.everywhere, *hosts(lab.cluster.urls), "-f", "json"],
        "ok",
        lambda lab: [{"node": url, "image_id": lab.everywhere, "action": "keep", "result": "ok"}
                     for url in lab.cluster.urls],
    ),
    Scenario(
        "sync --exact with a tag no image carries is refused",
        lambda lab: [*hosts(lab.cluster.urls), "cache-sync", "--tag", "no-such-tag", "--exact"],
        lambda lab: ["cache", "sync", "--tag", "no-such-tag", "--exact", *hosts(lab.cluster.urls)],
        "usage",
    ),
    Scenario(
        "sync dry run beside a dead node: the healthy node's rows",
        lambda lab: [*hosts([lab.cluster.urls[0], DEAD]), "cache-sync", lab.everywhere, "--dry-run", "-f", "json"],
        lambda lab: ["cache", "sync", lab.everywhere, "--dry-run", *hosts([lab.cluster.urls[0], DEAD]), "-f",
                     "json"],
        "partial",
        lambda lab: [{"node": lab.cluster.urls[0], "image_id": lab.everywhere, "action": "keep"}],
    ),
    Scenario(
        "summary of every node, a dead one included",
        lambda lab: [*hosts([*lab.cluster.urls, DEAD]), "cache-summary", "-f", "json", "-c", "node",
                     "-c", "cached_images", "-c", "cached_bytes", "-c", "queued_images", "-c", "hits"],
        lambda lab: ["cache", "summary", *hosts([*lab.cluster.urls, DEAD]), "-f", "json", "-c", "Node",
                     "-c", "Cached Images", "-c", "Cached Bytes", "-c", "Queued Images", "-c", "Hits"],
        "partial",
        lambda lab: [
            {"node": lab.cluster.urls[0], "cached_images": 2, "cached_bytes": 1600, "queued_images": 0, "hits": 0},
            # node 1 also holds lab.waiting in its queue
            {"node": lab.cluster.urls[1], "cached_images": 1, "cached_bytes": 900, "queued_images": 1, "hits": 0},
            {"node": f"http://{DEAD}", "cached_images": None, "cached_bytes": None, "queued_images": None,
             "hits": None},
        ],
    ),
]


def _as_glance_rows(text: str, *, osc: bool) -> list[dict[str, Any]]:
    rows = json.loads(text)
    if osc:
        rows = [{KEYS[key]: (None if value == "N/A" else value) for key, value in row.items()} for row in rows]
    return sorted(rows, key=lambda row: tuple(str(value) for value in row.values()))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
@pytest.mark.parametrize("front_end", ["glance", "openstack"])
def test_both_front_ends_agree(lab: Lab, scenario: Scenario, front_end: str) -> None:
    osc = front_end == "openstack"
    done = openstack(lab.env, *scenario.openstack(lab)) if osc else glance(*scenario.glance(lab))
    glance_status, openstack_status = EXITS[scenario.verdict]
    assert done.returncode == (openstack_status if osc else glance_status), done.stderr
    if scenario.rows is not None:
        expected = sorted(scenario.rows(lab), key=lambda row: tuple(str(value) for value in row.values()))
        got = _as_glance_rows(done.stdout, osc=osc)
        if got and len(got[0]) > len(expected[0]):  # every key was asked for: check their order, compare four
            assert list(got[0]) == list(CACHE_COLUMNS)
            got = [{key: row[key] for key in ("node", "image_id", "state", "size")} for row in got]
        assert got == expected


def test_delete_where_one_node_holds_it_succeeds_on_both(tmp_path: Path) -> None:
    # Deleting everywhere an image one node holds: the other node answers 204 (a known image it does not hold).
    # The 404 half of the one delete rule (an image Glance no longer knows) is in tests/library/test_operations.py.
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path) as cluster:
        image = cluster.upload_image(b"d" * 300, name="doomed")
        for front_end in ("glance", "openstack"):
            cached = glance(*hosts(cluster.urls[:1]), "cache-queue", "--wait", "--timeout", "30", image)
            assert cached.returncode == 0, cached.stderr
            if front_end == "glance":
                done = glance(*hosts(cluster.urls), "cache-delete", image)
            else:
                done = openstack({**base_env(tmp_path), "OS_AUTH_TYPE": "none"}, "cache", "delete", image,
                                 *hosts(cluster.urls))
            assert (front_end, done.returncode) == (front_end, 0), done.stderr


# -- scenarios that change the caches: each (scenario, front end) on a fresh 2-node cluster ------------------


@dataclass
class Fresh:
    """A fresh cluster: ``kept`` cached on node 0, ``stray`` cached and ``waiting`` queued (held) on node 1,
    ``tagged``: more active images tagged ``golden`` than one page of GET /v2/images holds."""

    cluster: ReferenceCluster
    env: dict[str, str]
    kept: str
    stray: str
    waiting: str
    tagged: list[str]

    def state(self) -> dict[str, set[str]]:
        """The ids each node holds, cached or queued (a queue a node works on may have moved on), asked of the
        nodes themselves."""
        from glancecache_client import Cluster as Nodes

        with Nodes(self.cluster.urls) as nodes:
            return {r.node: {i.image_id for i in r.value.cached} | set(r.value.queued)
                    for r in nodes.list() if r.value is not None}


PAGE = 25  # Glance's limit_param_default: the reference server pages GET /v2/images as Glance does


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Fresh]:
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path / "data") as cluster:
        kept = cluster.upload_image(b"k" * 400, name="kept")
        stray = cluster.upload_image(b"s" * 300, name="stray")
        waiting = cluster.upload_image(b"w" * 200, name="waiting")
        tagged = [cluster.upload_image(bytes([i]) * 10, name=f"golden-{i}", tags=["golden"]) for i in range(PAGE + 3)]
        cluster.store.create(name="golden-not-active", container_format="bare", disk_format="raw", tags=["golden"])
        for urls, image in (([cluster.urls[0]], kept), ([cluster.urls[1]], stray)):
            done = glance(*hosts(urls), "cache-queue", "--wait", "--timeout", "30", "--interval", "0.1", image)
            assert done.returncode == 0, done.stderr
        engine = cluster.nodes[1].engine
        assert engine is not None
        engine.hold_queue()
        assert glance("-H", cluster.urls[1], "cache-queue", waiting).returncode == 0
        yield Fresh(cluster, {**base_env(tmp_path), "OS_AUTH_TYPE": "none"}, kept, stray, waiting, tagged)


@dataclass(frozen=True)
class Change:
    name: str
    args: Callable[[Fresh], list[str]]  # the options after the command, the same in both front ends
    verdict: str
    rows: Callable[[Fresh], list[dict[str, Any]]] | None  # expected rows (glance's keys)
    after: Callable[[Fresh], list[set[str]]]  # the ids each node holds afterwards, cached or queued
    nodes: Callable[[Fresh], list[str]] = lambda fresh: fresh.cluster.urls
    release: bool = False  # let node 1 cache what is queued (for --wait)


def _rows(node: str, action: str, ids: list[str], result: str | None = "ok") -> list[dict[str, Any]]:
    return [{"node": node, "image_id": i, "action": action, **({} if result is None else {"result": result})}
            for i in ids]


CHANGES = [
    Change(
        "sync applied: queue where missing, waiting until every node holds the set",
        lambda f: [f.kept, "--wait", "--timeout", "30"],
        "ok",
        lambda f: [*_rows(f.cluster.urls[0], "keep", [f.kept]), *_rows(f.cluster.urls[1], "queue", [f.kept])],
        lambda f: [{f.kept}, {f.kept, f.stray, f.waiting}],
        release=True,
    ),
    Change(
        "sync --exact: delete the cached stray, dequeue the queued one, queue the set",
        lambda f: [f.kept, "--exact"],
        "ok",
        lambda f: [*_rows(f.cluster.urls[0], "keep", [f.kept]), *_rows(f.cluster.urls[1], "delete", [f.stray]),
                   *_rows(f.cluster.urls[1], "dequeue", [f.waiting]), *_rows(f.cluster.urls[1], "queue", [f.kept])],
        lambda f: [{f.kept}, {f.kept}],
    ),
    Change(
        "sync --tag over more images than one page of the image list (dry run: nothing changes)",
        lambda f: ["--tag", "golden", "--dry-run"],
        "ok",
        lambda f: [row for url in f.cluster.urls for row in _rows(url, "queue", f.tagged, None)],
        lambda f: [{f.kept}, {f.stray, f.waiting}],
    ),
    Change(
        "sync --exact beside a dead node: the healthy node's rows, applied",
        lambda f: [f.stray, "--exact"],
        "partial",
        lambda f: [*_rows(f.cluster.urls[0], "delete", [f.kept]), *_rows(f.cluster.urls[0], "queue", [f.stray])],
        lambda f: [{f.stray}, {f.stray, f.waiting}],
        lambda f: [f.cluster.urls[0], DEAD],
    ),
    Change(
        "sync --exact with an empty set is refused and changes nothing",
        lambda f: ["--tag", "no-such-tag", "--exact"],
        "usage",
        None,
        lambda f: [{f.kept}, {f.stray, f.waiting}],
    ),
]


@pytest.mark.parametrize("change", CHANGES, ids=[change.name for change in CHANGES])
@pytest.mark.parametrize("front_end", ["glance", "openstack"])
def test_both_front_ends_change_alike(fresh: Fresh, change: Change, front_end: str) -> None:
    osc = front_end == "openstack"
    node_args = hosts(change.nodes(fresh))
    if change.release:
        engine = fresh.cluster.nodes[1].engine
        assert engine is not None
        engine.hold_queue(False)
    if osc:
        done = openstack(fresh.env, "cache", "sync", *change.args(fresh), *node_args, "-f", "json")
    else:
        done = glance(*node_args, "cache-sync", *change.args(fresh), "-f", "json")
    glance_status, openstack_status = EXITS[change.verdict]
    assert done.returncode == (openstack_status if osc else glance_status), done.stderr
    assert "Traceback" not in done.stderr
    if change.rows is not None:
        expected = sorted(change.rows(fresh), key=lambda row: tuple(str(value) for value in row.values()))
        assert _as_glance_rows(done.stdout, osc=osc) == expected
    else:
        assert done.stdout == ""
    assert fresh.state() == dict(zip(fresh.cluster.urls, change.after(fresh), strict=True))


@pytest.mark.parametrize("front_end", ["glance", "openstack"])
def test_summary_human_readable_changes_tables_only(lab: Lab, front_end: str) -> None:
    urls = lab.cluster.urls
    if front_end == "openstack":
        table = openstack(lab.env, "cache", "summary", "--human-readable", *hosts(urls))
        as_json = openstack(lab.env, "cache", "summary", "--human-readable", *hosts(urls), "-f", "json")
    else:
        table = glance(*hosts(urls), "cache-summary", "--human-readable")
        as_json = glance(*hosts(urls), "cache-summary", "--human-readable", "-f", "json")
    assert table.returncode == as_json.returncode == 0, table.stderr + as_json.stderr
    assert "1.6 KiB" in table.stdout and "900 B" in table.stdout and "1600" not in table.stdout
    assert [row["Cached Bytes" if front_end == "openstack" else "cached_bytes"]
            for row in json.loads(as_json.stdout)] == [1600, 900]


@pytest.mark.parametrize("front_end", ["glance", "openstack"])
def test_ctrl_c_in_front_of_nodes_that_never_answer_exits_130_at_once(tmp_path: Path, front_end: str) -> None:
    """Ctrl-C abandons the requests in flight in both front ends (the core's Cluster does): neither waits for
    nodes that have taken the connection and never answer (before, both waited for the request timeout)."""
    with socket.create_server(("127.0.0.1", 0)) as first, socket.create_server(("127.0.0.1", 0)) as second:
        urls = [f"http://127.0.0.1:{server.getsockname()[1]}" for server in (first, second)]
        if front_end == "openstack":
            argv = [OPENSTACK, "cache", "list", *hosts(urls)]  # its requests time out after 30 s
            env = {**base_env(tmp_path), "OS_AUTH_TYPE": "none"}
        else:
            argv = [GLANCE, "--timeout", "60", *hosts(urls), "cache-list"]
            env = clean_env()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        accepted: list[socket.socket] = []
        try:
            for server in (first, second):  # both requests are under way once both nodes have their connection
                server.settimeout(60)
                accepted.append(server.accept()[0])
            time.sleep(0.3)
            interrupted = time.monotonic()
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
            took = time.monotonic() - interrupted
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for connection in accepted:
                connection.close()
    assert process.returncode == 130, stderr
    assert took < 5, took
    assert stdout == "" and "Traceback" not in stderr
    if front_end == "glance":
        assert one_line_error_of(stderr) == "Error: interrupted: requests already sent to nodes may have taken effect"


@pytest.mark.parametrize("command", ["queue", "sync"])
@pytest.mark.parametrize("front_end", ["glance", "openstack"])
def test_wait_counts_what_is_cached_on_a_terminal_and_says_nothing_in_a_pipe(
    tmp_path: Path, front_end: str, command: str
) -> None:
    """``--wait`` counts the (node, image) pairs cached so far on stderr when it is a terminal, in both front
    ends; with stderr on a pipe (a script, a log) it adds nothing there."""
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path / "nodes") as cluster:
        first, second = (cluster.upload_image(bytes([n]) * 600, name=f"wait-{n}") for n in range(2))
        if front_end == "openstack":
            def argv(image: str) -> list[str]:
                return [OPENSTACK, "cache", command, "--wait", "--timeout", "30", *hosts(cluster.urls), image]
            env = {**base_env(tmp_path), "OS_AUTH_TYPE": "none"}
        else:
            def argv(image: str) -> list[str]:
                return [GLANCE, *[arg for url in cluster.urls for arg in ("-H", url)], f"cache-{command}", "--wait",
                        "--timeout", "30", "--interval", "0.1", image]
            env = clean_env()
        status, _stdout, shown = run_on_a_terminal(argv(first), env)
        assert status == 0, shown
        assert b"caching" in shown and b"2/2" in shown and b"Traceback" not in shown
        piped = subprocess.run(argv(second), env=env, capture_output=True, text=True, timeout=60)
        assert piped.returncode == 0, piped.stderr
        assert piped.stderr == ""
