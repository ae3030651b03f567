"""The JSON output contract (docs/schemas/glancecache-rows/1/): real ``-f json`` output validates against it.

A 2-node reference cluster holds a cached image on both nodes and a queued one on node 2. Each row-printing
command of ``glance`` runs on one node and on both, and ``openstack cache`` on both; every document must validate
against its command's schema (``openstack``'s rows after mapping OSC's headers back to the keys, and ``N/A`` back
to null). The schemas are also checked against the columns the code declares (a new column needs a new schema
version), and shown to reject what the contract forbids.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

from glancecache_client.server.runner import ReferenceCluster, run_cluster
from glancecache_client.views import (
    CACHE_COLUMNS,
    HEADERS,
    clear_table,
    nodes_table,
    prune_table,
    summary_table,
    sync_table,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "glancecache-rows" / "1"
BIN = Path(sys.executable).parent
ROW_COMMANDS = ("cache-list", "cache-clear", "cache-prune", "cache-nodes-list", "cache-sync", "cache-summary")


def validator(command: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{command}.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCECACHE_"))}
    env.update(HOME=str(home), GLANCECACHE_CONFIG=str(home / "no-nodes.toml"), PYTHONWARNINGS="ignore")
    return env


def run_json(home: Path, program: str, *args: str) -> Any:
    done = subprocess.run([str(BIN / program), *args], capture_output=True, text=True, timeout=120,
                          env=clean_env(home), check=False)
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout)


def hosts(flag: str, urls: list[str]) -> list[str]:
    return [arg for url in urls for arg in (flag, url)]


@dataclass
class Reference:
    """The running cluster, a clean HOME, an image cached on both nodes and one queued on node 2."""

    cluster: ReferenceCluster
    home: Path
    cached: str
    queued: str

    def glance(self, urls: list[str], *args: str) -> Any:
        return run_json(self.home, "glance", *hosts("-H", urls), *args, "-f", "json")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    home = tmp_path_factory.mktemp("home")
    with run_cluster(nodes=2, auth="noauth", data_dir=tmp_path_factory.mktemp("rows")) as cluster:
        cached = cluster.upload_image(b"c" * 2048, name="cached")
        queued = cluster.upload_image(b"q" * 512, name="queued")
        urls = cluster.urls
        done = subprocess.run(
            [str(BIN / "glance"), *hosts("-H", urls), "cache-queue", "--wait", "--timeout", "30", "--interval",
             "0.1", cached], capture_output=True, text=True, timeout=60, env=clean_env(home), check=False)
        assert done.returncode == 0, done.stderr
        engine = cluster.nodes[1].engine
        assert engine is not None
        engine.hold_queue()  # node 2's workers pick up nothing new: `queued` stays queued there
        done = subprocess.run([str(BIN / "glance"), "-H", urls[1], "cache-queue", queued], capture_output=True,
                              text=True, timeout=60, env=clean_env(home), check=False)
        assert done.returncode == 0, done.stderr
        yield Reference(cluster, home, cached, queued)


def assert_valid(command: str, document: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(command).iter_errors(document)]
    assert not errors, (command, errors, document)


@pytest.mark.parametrize("several", [False, True], ids=["one-node", "two-nodes"])
def test_glance_rows_validate(reference: Reference, several: bool) -> None:
    urls = reference.cluster.urls if several else reference.cluster.urls[1:]
    listed = reference.glance(urls, "cache-list")
    assert {(row["image_id"], row["state"]) for row in listed} >= {(reference.cached, "cached"),
                                                                    (reference.queued, "queued")}
    assert all(next(iter(row)) == "node" for row in listed)  # the same shape for one node as for several
    assert_valid("cache-list", listed)
    assert_valid("cache-nodes-list", reference.glance(urls, "cache-nodes-list", reference.cached))
    assert_valid("cache-prune", reference.glance(urls, "cache-prune"))
    planned = reference.glance(urls, "cache-sync", reference.cached, reference.queued, "--dry-run")
    assert {row["action"] for row in planned} >= {"keep"} and all("result" not in row for row in planned)
    assert_valid("cache-sync", planned)
    assert_valid("cache-sync", reference.glance(urls, "cache-sync", reference.cached))  # applied: all kept
    assert_valid("cache-summary", reference.glance(urls, "cache-summary"))


def test_failed_rows_validate(reference: Reference) -> None:
    """A dead node's summary row and a failed sync step are rows too (each with its one-line error)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    done = subprocess.run([str(BIN / "glance"), "-H", reference.cluster.urls[0], "-H", dead, "cache-summary",
                           "-f", "json"], capture_output=True, text=True, timeout=60, env=clean_env(reference.home),
                          check=False)
    assert done.returncode == 6, done.stderr
    rows = json.loads(done.stdout)
    assert rows[1]["error"] and rows[1]["cached_images"] is None
    assert_valid("cache-summary", rows)
    missing = "0b5d0f3e-51b4-4c39-9d1c-5b37e2f4b9c1"  # no such image: queueing it fails on the node
    done = subprocess.run([str(BIN / "glance"), "-H", reference.cluster.urls[0], "cache-sync", missing,
                           reference.cached, "-f", "json"], capture_output=True, text=True, timeout=60,
                          env=clean_env(reference.home), check=False)
    assert done.returncode == 6, done.stderr
    steps = json.loads(done.stdout)
    assert [row["result"] == "ok" for row in steps] == [False, True]
    assert_valid("cache-sync", steps)


@pytest.mark.slow
def test_openstack_rows_validate(reference: Reference) -> None:
    if not (BIN / "openstack").exists():
        pytest.skip("the openstack command is not installed")
    args = [*hosts("--host", reference.cluster.urls), "-f", "json", "--os-auth-type", "none",
            "--os-endpoint", reference.cluster.urls[0]]
    listed = as_keys(run_json(reference.home, "openstack", "cache", "list", *args))
    assert {row["state"] for row in listed} == {"cached", "queued"}
    assert_valid("cache-list", listed)
    assert_valid("cache-nodes-list", as_keys(run_json(reference.home, "openstack", "cache", "nodes", "list",
                                                      reference.cached, *args)))
    assert_valid("cache-prune", as_keys(run_json(reference.home, "openstack", "cache", "prune", *args)))
    assert_valid("cache-sync", as_keys(run_json(reference.home, "openstack", "cache", "sync", reference.cached,
                                                "--dry-run", *args)))
    assert_valid("cache-summary", as_keys(run_json(reference.home, "openstack", "cache", "summary", *args)))


def as_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """openstack's rows (OSC's headers, N/A for absent) in glance's terms: the one view layer names both."""
    keys = {header: key for key, header in HEADERS.items()}
    return [{keys[header]: (None if value == "N/A" else value) for header, value in row.items()} for row in rows]


def test_clear_rows_validate_last(reference: Reference) -> None:
    """Runs last in this module (it empties the caches): one node, then both."""
    one = reference.glance(reference.cluster.urls[1:], "cache-clear", "--yes")
    assert one == [{"node": reference.cluster.urls[1], "cached_removed": 1, "queued_removed": 1}]
    assert_valid("cache-clear", one)
    assert_valid("cache-clear", reference.glance(reference.cluster.urls, "cache-clear", "--yes"))


def test_schemas_are_valid_and_cover_exactly_the_declared_columns() -> None:
    declared = {
        "cache-list": CACHE_COLUMNS,
        "cache-clear": clear_table(()).columns,
        "cache-prune": prune_table(()).columns,
        "cache-nodes-list": nodes_table("x", ()).columns,
        "cache-sync": sync_table((), applied=True).columns,
        "cache-summary": summary_table(()).columns,
    }
    optional = {"cache-sync": ["result"]}  # present only once the plan was applied (not with --dry-run)
    assert sorted(path.stem for path in SCHEMAS.glob("*.json")) == sorted(ROW_COMMANDS)
    for command, columns in declared.items():
        schema = validator(command).schema
        Draft202012Validator.check_schema(schema)
        assert schema["$id"] == f"urn:glancecache-rows:1:{command}"
        assert schema["title"].startswith("glancecache-rows/1: ")
        row = schema["items"]
        assert list(row["properties"]) == list(columns)
        assert row["required"] == [c for c in columns if c not in optional.get(command, [])]
        assert row["additionalProperties"] is False


CACHED_ROW = {
    "node": "http://ctl1:9292", "image_id": "3c021162-1e38-461a-a362-e154bf54e241", "state": "cached", "size": 10,
    "hits": 0,
    "last_accessed": None, "last_modified": "2026-11-25T15:16:53.006173Z", "checksum": "0" * 32,
}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"size": "10"}, id="size-as-string"),
        pytest.param({"last_modified": "2026-11-25T15:16:53+00:00"}, id="time-without-Z"),
        pytest.param({"state": "queued"}, id="queued-row-with-a-size"),
        pytest.param({"image_id": "not-a-uuid"}, id="id-not-a-uuid"),
        pytest.param({"extra": 1}, id="undeclared-key"),
        pytest.param({"node": "ctl1"}, id="node-not-a-url"),
    ],
)
def test_schema_rejects_what_the_contract_forbids(change: dict[str, Any]) -> None:
    assert validator("cache-list").is_valid([CACHED_ROW])
    with pytest.raises(ValidationError):
        validator("cache-list").validate([{**CACHED_ROW, **change}])


def test_schema_requires_every_column_and_an_array() -> None:
    row = dict(CACHED_ROW)
    del row["checksum"]
    assert not validator("cache-list").is_valid([row])
    assert not validator("cache-list").is_valid(CACHED_ROW)
    assert not validator("cache-prune").is_valid([{"node": "http://n:9292", "files_pruned": -1, "bytes_pruned": 0}])
    without_node = dict(CACHED_ROW)
    del without_node["node"]
    assert not validator("cache-list").is_valid([without_node])  # node is always there
