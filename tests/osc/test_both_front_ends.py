"""One table of scenarios, run through both front ends: the ``glance`` CLI and the real ``openstack cache``.

Both call the same command core, so each scenario must give the same rows and the same verdict; they differ only
by ecosystem convention: the JSON keys (``glance``'s snake_case, OSC's column headers, mapped through
``views.HEADERS``), absent values (``null`` / OSC's ``N/A``) and exit statuses (``glance``'s README table;
OSC's 1 for any failure, 3 when nothing succeeded and every failure was a refusal).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glancecache_client.server.runner import Cluster, run_cluster
from glancecache_client.views import CACHE_COLUMNS, HEADERS
from tests.cli.test_e2e_cluster import glance

from .test_end_to_end import base_env, hosts, openstack

# verdict -> (glance's exit status, openstack's exit status)
EXITS = {"ok": (0, 0), "partial": (6, 1), "not found": (4, 1), "refused": (3, 3)}
KEYS = {header: key for key, header in HEADERS.items()}


@dataclass
class Lab:
    cluster: Cluster
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
