"""The real ``openstack`` command (python-openstackclient 10.5 with this plugin installed) against reference clusters.

One cluster runs in ``keystone`` mode with ``OS_AUTH_URL`` at its built-in identity endpoint (users admin/admin
and demo/demo), the way an operator's clouds.yaml or openrc would point at Keystone. A second one runs without
cache workers, so queued entries stay queued next to cached ones, and is reached with ``--os-auth-type none``.
Independent invocations run concurrently to keep the suite fast.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from glancecache_client.server.runner import ReferenceCluster, run_cluster
from glancecache_client.views import CACHE_COLUMNS, HEADERS

OPENSTACK = str(Path(sys.executable).with_name("openstack"))
MISSING = "11111111-2222-4333-8444-555555555555"

pytestmark = [
    pytest.mark.slow,  # about 25 `openstack` runs of ~1 s CPU each
    pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="the openstack command is not installed"),
]


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self
        return json.loads(self.stdout)


def base_env(home: Path) -> dict[str, str]:
    # A clean environment: no OS_* or clouds.yaml from whoever runs the tests.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C.UTF-8",
            "COLUMNS": "250", "PYTHONWARNINGS": "ignore"}


def keystone_env(home: Path, cluster: ReferenceCluster, user: str = "admin") -> dict[str, str]:
    assert cluster.identity_url
    return {
        **base_env(home),
        "OS_AUTH_URL": cluster.identity_url,
        "OS_USERNAME": user,
        "OS_PASSWORD": user,
        "OS_PROJECT_NAME": user,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_IDENTITY_API_VERSION": "3",
    }


def openstack(env: dict[str, str], *args: str) -> Result:
    done = subprocess.run([OPENSTACK, *args], env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return Result(tuple(args), done.returncode, done.stdout, done.stderr)


def openstack_many(env: dict[str, str], commands: Sequence[Sequence[str]]) -> list[Result]:
    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(lambda args: openstack(env, *args), commands))


def hosts(urls: Sequence[str]) -> list[str]:
    return [arg for url in urls for arg in ("--host", url)]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@dataclass
class Deployment:
    cluster: ReferenceCluster
    env: dict[str, str]
    member_env: dict[str, str]
    cirros: str
    ubuntu: str


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Iterator[Deployment]:
    with run_cluster(nodes=3, auth="keystone", data_dir=tmp_path_factory.mktemp("keystone-cluster")) as cluster:
        yield Deployment(
            cluster=cluster,
            env=keystone_env(home, cluster),
            member_env=keystone_env(home, cluster, "demo"),
            cirros=cluster.upload_image(b"c" * 2000, name="cirros"),
            ubuntu=cluster.upload_image(b"u" * 5000, name="ubuntu", visibility="public"),
        )


@pytest.fixture(scope="module")
def cirros_everywhere(deployment: Deployment) -> str:
    """cirros queued on every node with --wait: when the command returns, every node has it cached."""
    urls = deployment.cluster.urls
    tokens_before = deployment.cluster.tokens_issued
    done = openstack(deployment.env, "cache", "queue", deployment.cirros, *hosts(urls), "--wait", "--timeout", "60")
    assert (done.returncode, done.stderr) == (0, ""), done
    # One token for the whole fan-out (queue on 3 nodes, then polling 3 nodes).
    assert deployment.cluster.tokens_issued - tokens_before == 1
    return deployment.cirros


def test_list_every_formatter_on_every_node(deployment: Deployment, cirros_everywhere: str) -> None:
    urls = deployment.cluster.urls
    table, as_json, as_yaml, as_csv, as_value, selected = openstack_many(
        deployment.env,
        [
            ["cache", "list", *hosts(urls)],
            ["cache", "list", *hosts(urls), "-f", "json"],
            ["cache", "list", *hosts(urls), "-f", "yaml"],
            ["cache", "list", *hosts(urls), "-f", "csv"],
            ["cache", "list", *hosts(urls), "-f", "value", "-c", "Node", "-c", "State"],
            ["cache", "list", *hosts(urls), "-f", "json", "-c", "ID", "-c", "Size", "--sort-column", "Node"],
        ],
    )
    rows = as_json.json()
    assert isinstance(rows, list)
    assert [(r["Node"], r["ID"], r["State"], r["Size"]) for r in rows] == [
        (url, cirros_everywhere, "cached", 2000) for url in urls
    ]
    assert all(r["Last Modified (UTC)"].endswith("Z") and isinstance(r["Hits"], int) for r in rows)
    assert yaml.safe_load(as_yaml.stdout) == rows
    parsed_csv = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(parsed_csv[0]) == [HEADERS[key] for key in CACHE_COLUMNS] and [r["ID"] for r in parsed_csv] == [
        cirros_everywhere
    ] * 3
    assert as_value.stdout.splitlines() == [f"{url} cached" for url in urls]
    assert selected.json() == [{"ID": cirros_everywhere, "Size": 2000}] * 3
    assert table.returncode == 0 and table.stdout.count(cirros_everywhere) == 3 and "| Node " in table.stdout
    assert all(r.stderr == "" for r in (table, as_json, as_yaml, as_csv, as_value, selected))


def test_without_host_warns_and_uses_the_catalog_endpoint(deployment: Deployment, cirros_everywhere: str) -> None:
    done = openstack(deployment.env, "cache", "list", "-f", "json")
    node0 = deployment.cluster.urls[0]  # the catalog's image endpoint, standing in for a load balancer
    rows = done.json()  # still valid JSON on stdout: the warning goes to stderr
    assert isinstance(rows, list) and [row["ID"] for row in rows] == [cirros_everywhere]
    assert rows[0]["Node"] == node0  # the same columns as with --host
    assert done.stderr.startswith(f"Warning: no --host given, so this uses the image endpoint {node0};")
    assert "load-balanced" in done.stderr


def test_clouds_yaml_and_image_endpoint_override_work_unchanged(
    deployment: Deployment, cirros_everywhere: str, tmp_path: Path
) -> None:
    # An operator's clouds.yaml, with image_endpoint_override pinning the default node (OSC's own mechanism).
    node2 = deployment.cluster.urls[2]
    config = tmp_path / "clouds.yaml"
    config.write_text(
        "clouds:\n"
        "  lab:\n"
        f"    auth: {{auth_url: '{deployment.cluster.identity_url}', username: admin, password: admin,\n"
        "           project_name: admin, user_domain_name: Default, project_domain_name: Default}\n"
        "    identity_api_version: 3\n"
        f"    image_endpoint_override: '{node2}'\n"
    )
    env = {**base_env(tmp_path), "OS_CLIENT_CONFIG_FILE": str(config)}
    done = openstack(env, "--os-cloud", "lab", "cache", "list", "-f", "value", "-c", "ID")
    assert (done.returncode, done.stdout) == (0, f"{cirros_everywhere}\n"), done
    assert f"uses the image endpoint {node2};" in done.stderr


def test_nodes_list_names_every_node_holding_the_image(deployment: Deployment, cirros_everywhere: str) -> None:
    done = openstack(deployment.env, "cache", "nodes", "list", cirros_everywhere, "-f", "json")
    assert sorted(row["Node URL"] for row in done.json()) == sorted(deployment.cluster.urls)
    assert done.stderr == ""  # the registry is shared: no load-balancer warning


def test_member_user_gets_a_one_line_403_and_exit_3(deployment: Deployment) -> None:
    node1 = deployment.cluster.urls[1]
    listing, queueing = openstack_many(
        deployment.member_env,
        [["cache", "list", "--host", node1], ["cache", "queue", deployment.ubuntu, "--host", node1]],
    )
    assert listing.returncode == 3 and listing.stdout.strip() == ""
    assert len(listing.stderr.splitlines()) == 1, listing.stderr
    assert listing.stderr.startswith(f"Failed to list the cache on {node1}: HTTP 403 for GET /v2/cache: ")
    assert "No Cache found for None" not in listing.stderr
    assert queueing.returncode == 3
    assert len(queueing.stderr.splitlines()) == 1, queueing.stderr
    assert queueing.stderr.startswith(f"Failed to queue image {deployment.ubuntu} on {node1}: HTTP 403")


def test_queue_goes_on_past_failures_and_accepts_a_name(deployment: Deployment) -> None:
    node2 = deployment.cluster.urls[2]
    done = openstack(deployment.env, "cache", "queue", "ubuntu", MISSING, "no-such-image", "--host", node2,
                     "--wait", "--timeout", "60")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"Failed to queue image no-such-image on {node2}: HTTP 404 for GET /v2/images: ")
    assert lines[0].endswith("no image is named 'no-such-image' (and it is not an image ID)")
    assert lines[1].startswith(f"Failed to queue image {MISSING} on {node2}: HTTP 404 for PUT /v2/cache/{MISSING}")
    assert lines[-1] == "Failed to queue 2 of 3 images"
    listed = openstack(deployment.env, "cache", "list", "--host", node2, "-f", "json", "-c", "ID", "-c", "State")
    assert {"ID": deployment.ubuntu, "State": "cached"} in listed.json()


def test_delete_clean_prune_clear(deployment: Deployment, cirros_everywhere: str) -> None:
    urls = deployment.cluster.urls
    env = deployment.env
    # ubuntu is cached on node 2 only. Glance answers 204 for an existing image that a node does not hold, and
    # 404 only for an image it does not know; a 404 everywhere is the failure to report.
    queued = openstack(env, "cache", "queue", deployment.ubuntu, "--host", urls[2], "--wait", "--timeout", "60")
    assert queued.returncode == 0, queued
    deleted, unknown = openstack_many(
        env,
        [["cache", "delete", deployment.ubuntu, *hosts(urls)], ["cache", "delete", "ubuntu", MISSING, *hosts(urls)]],
    )
    assert (deleted.returncode, deleted.stderr) == (0, ""), deleted
    assert unknown.returncode == 1 and unknown.stderr.endswith("Failed to delete 1 of 2 images\n")
    assert unknown.stderr.count(f"Failed to delete image {MISSING} on ") == 3 and unknown.stderr.count("HTTP 404") == 3

    clean, prune = openstack_many(
        env, [["cache", "clean", *hosts(urls)], ["cache", "prune", *hosts(urls), "-f", "json"]]
    )
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "")
    assert prune.json() == [{"Node": url, "Files Pruned": 0, "Bytes Pruned": 0} for url in urls]

    cleared = openstack(env, "cache", "clear", "--target", "cache", *hosts(urls), "-f", "json")
    assert cleared.json() == [{"Node": url, "Cached Removed": 1, "Queued Removed": 0} for url in urls]
    after = openstack(env, "cache", "list", *hosts(urls), "-f", "json")
    assert after.json() == []


# -- queued rows next to cached ones, reached with --os-auth-type none ----------------------------------------


@dataclass
class Stalled:
    cluster: ReferenceCluster
    env: dict[str, str]
    big: str
    small: str
    queued: str


@pytest.fixture(scope="module")
def stalled(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Iterator[Stalled]:
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path_factory.mktemp("stalled")) as cluster:
        big = cluster.upload_image(b"b" * 3000, name="big")
        small = cluster.upload_image(b"s" * 1000, name="small")
        queued = cluster.upload_image(b"q" * 500, name="queued")
        # Downloading through a node caches the image there.
        with httpx.Client() as http:
            http.get(f"{cluster.urls[0]}/v2/images/{big}/file").raise_for_status()
            http.get(f"{cluster.urls[1]}/v2/images/{small}/file").raise_for_status()
        # A queue entry that no worker picks up (the engine's queue file only), so it stays "queued".
        for node in cluster.nodes:
            assert node.engine is not None and node.engine.legacy_queue(queued)
        env = {**base_env(home), "OS_AUTH_TYPE": "none", "OS_ENDPOINT": cluster.urls[0]}
        yield Stalled(cluster, env, big, small, queued)


# Every column is sorted in the unit tests; here the ones where queued rows hold null, on the real command.
@pytest.mark.parametrize("column", ["Size", "Hits", "Last Accessed (UTC)"])
def test_sort_on_every_column_keeps_every_row(stalled: Stalled, column: str) -> None:
    done = openstack(stalled.env, "cache", "list", *hosts(stalled.cluster.urls), "-f", "json",
                     "--sort-column", column)
    rows = done.json()
    assert isinstance(rows, list) and len(rows) == 4, done  # OSC 10.5 prints nothing for --sort-column Size
    assert "Could not sort" not in done.stderr
    values = [row[column] for row in rows]
    present = [value for value in values if value != "N/A"]  # OSC's own rendering of an absent value
    assert values == ["N/A"] * (len(values) - len(present)) + sorted(present)
    if column == "Size":
        assert [(row["ID"], row["State"]) for row in rows] == [
            (stalled.queued, "queued"), (stalled.queued, "queued"), (stalled.small, "cached"), (stalled.big, "cached")
        ]


def test_auth_type_none_uses_os_endpoint_and_clear_with_both_flags_clears_both(stalled: Stalled) -> None:
    # Runs last in this module: `--cache --queue` must clear both (OSC 10.5's `cached image clear` clears only
    # the queue), here on the node from --os-endpoint, which names the node explicitly: no load-balancer warning.
    done = openstack(stalled.env, "cache", "clear", "--cache", "--queue", "-f", "json")
    assert done.json() == [{"Node": stalled.cluster.urls[0], "Cached Removed": 1, "Queued Removed": 1}]
    assert done.stderr == ""
    left = openstack(stalled.env, "cache", "list", *hosts(stalled.cluster.urls), "-f", "value", "-c", "Node",
                     "-c", "State")
    assert left.stdout.splitlines() == [f"{stalled.cluster.urls[1]} cached", f"{stalled.cluster.urls[1]} queued"]
