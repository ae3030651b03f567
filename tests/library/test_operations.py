"""The command core (glancecache_client.operations): its rules are tested here, once, for both front ends.

Request shapes on scripted nodes (Cluster's transport factory, no monkeypatching); the clear-without-list rule
against the real reference server with a policy file.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from glancecache_client import Cluster, errors, operations
from glancecache_client.server.runner import run_cluster

from .conftest import IMAGE, MODERN, OTHER, FakeNode

NODES = ["http://n0:9292", "http://n1:9292", "http://n2:9292"]


def scripted(count: int) -> tuple[Cluster, list[FakeNode]]:
    fakes = [FakeNode() for _ in range(count)]
    for fake in fakes:
        fake.on("GET", "/versions", 200, MODERN)
    by_url = dict(zip(NODES, fakes, strict=False))
    cluster = Cluster(NODES[:count], token="t", transport_factory=lambda url: by_url[url].transport)
    return cluster, fakes


# -- deleting an image some nodes answer 404 for: one rule ------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "ignore_missing", "succeeded", "failed"),
    [
        ((204, 404, 404), False, 3, 0),  # removed where held; "not there" elsewhere is the state asked for
        ((404, 404, 404), False, 0, 3),  # no node had it: not found, on every node
        ((404, 404, 404), True, 3, 0),  # --ignore-missing: that is the state asked for too
        ((204, 404, 403), False, 2, 1),  # any other error is a failure
        ((404,), False, 0, 1),  # one node: a 404 is "not found", as glanceclient reports it
    ],
)
def test_delete_rule(answers: tuple[int, ...], ignore_missing: bool, succeeded: int, failed: int) -> None:
    cluster, fakes = scripted(len(answers))
    for fake, status in zip(fakes, answers, strict=True):
        fake.on("DELETE", f"/v2/cache/{IMAGE}", status, {"message": "x"} if status >= 400 else None)
    with cluster:
        outcome = operations.delete(cluster, [IMAGE.upper(), IMAGE], ignore_missing=ignore_missing)
    assert (len(outcome.successes), len(outcome.failures)) == (succeeded, failed)
    assert all(len(fake.calls("DELETE")) == 1 for fake in fakes)  # ids de-duplicated once, in the core
    assert outcome.images == (IMAGE,)


def test_invalid_id_is_refused_before_any_request() -> None:
    cluster, fakes = scripted(2)
    with cluster, pytest.raises(errors.InvalidInput, match="invalid image id 'nope'"):
        operations.queue(cluster, [IMAGE, "nope"])
    assert all(fake.calls("PUT") == [] for fake in fakes)


# -- nodes of an image: one healthy node answers for the cluster --------------------------------------------------


def test_nodes_of_asks_one_node() -> None:
    cluster, fakes = scripted(3)
    for fake in fakes:
        fake.on("GET", f"/v2/cache/nodes/{IMAGE}", 200, NODES[:2])
    with cluster:
        outcome = operations.nodes_of(cluster, IMAGE)
    assert outcome.ok and outcome.values == [NODES[:2]]
    assert [len(fake.calls("GET", f"/v2/cache/nodes/{IMAGE}")) for fake in fakes] == [1, 0, 0]


def test_nodes_of_passes_over_an_unhealthy_node_but_not_a_refusal() -> None:
    cluster, fakes = scripted(3)
    fakes[0].on("GET", f"/v2/cache/nodes/{IMAGE}", 503, {"message": "busy"})
    fakes[1].on("GET", f"/v2/cache/nodes/{IMAGE}", 200, [NODES[2]])
    with cluster:
        outcome = operations.nodes_of(cluster, IMAGE)
    assert outcome.ok and outcome.successes[0].node == NODES[1] and outcome.values == [[NODES[2]]]
    cluster, fakes = scripted(2)
    fakes[0].on("GET", f"/v2/cache/nodes/{IMAGE}", 403, {"message": "policy"})
    with cluster:
        refused = operations.nodes_of(cluster, IMAGE)
    assert refused.refused_only and fakes[1].calls("GET", f"/v2/cache/nodes/{IMAGE}") == []


def test_nodes_of_reports_every_node_when_none_answers() -> None:
    cluster, fakes = scripted(2)
    for fake in fakes:
        fake.on("GET", f"/v2/cache/nodes/{IMAGE}", 500, {"message": "down"})
    with cluster:
        outcome = operations.nodes_of(cluster, IMAGE)
    assert [failure.node for failure in outcome.failures] == NODES[:2] and not outcome.successes


# -- image names: resolved in the library, as OSC resolves them ----------------------------------------------------


def test_names_resolve_on_the_first_node_and_unresolved_ones_are_failures() -> None:
    cluster, fakes = scripted(2)
    found = {"cirros": [IMAGE], "twin": [IMAGE, OTHER], "none": []}

    def images(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"images": [{"id": i} for i in found[request.url.params["name"]]]})

    fakes[0].routes[("GET", "/v2/images")] = images
    for fake in fakes:
        fake.on("PUT", f"/v2/cache/{IMAGE}", 202)
    with cluster:
        outcome = operations.queue(cluster, ["cirros", "twin", "none"], resolve_names=True)
        with pytest.raises(errors.InvalidInput):
            operations.queue(cluster, ["cirros"])  # glanceclient's convention: ids only
    assert [(s.node, s.image) for s in outcome.successes] == [(NODES[0], IMAGE), (NODES[1], IMAGE)]
    assert [(f.image, type(f.error)) for f in outcome.failures] == [
        ("twin", errors.InvalidInput),
        ("none", errors.NotFound),
    ]
    assert fakes[1].calls("GET", "/v2/images") == []
    assert outcome.failed_images == ["twin", "none"]


# -- failure hints: written once ---------------------------------------------------------------------------------


def test_each_failure_carries_its_hint_in_one_line() -> None:
    cluster, fakes = scripted(2)
    fakes[0].on("PUT", f"/v2/cache/{IMAGE}", 403, {"message": "denied"})
    fakes[1].on("PUT", f"/v2/cache/{IMAGE}", 401, {"message": "who"})
    with cluster:
        outcome = operations.queue(cluster, [IMAGE])
    lines = [failure.line for failure in outcome.failures]
    assert lines[0].startswith(f"cannot queue {IMAGE}: {NODES[0]}: HTTP 403") and "admin role" in lines[0]
    assert "--os-token" in lines[1] and all("\n" not in line for line in lines)
    assert outcome.refused_only


# -- clear needs only cache_delete ---------------------------------------------------------------------------------


def test_clear_without_the_list_permission_clears_and_reports_unknown_counts(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"cache_list": "!"}))
    data = tmp_path / "data"
    data.mkdir()
    with run_cluster(nodes=1, auth="noauth", data_dir=data, policy_file=policy, cache_workers=0) as reference:
        image = reference.upload_image(b"x" * 100, name="c")
        with Cluster(reference.urls) as cluster:
            assert operations.queue(cluster, [image]).ok
            assert reference.nodes[0].engine is not None and reference.nodes[0].engine.list_queued() == [image]
            with pytest.raises(errors.Forbidden):
                cluster.clients[reference.urls[0]].list()  # the policy really refuses the listing
            outcome = operations.clear(cluster)
        assert outcome.ok and [(r.cached, r.queued) for r in outcome.values] == [(None, None)]
        assert reference.nodes[0].engine.list_queued() == []  # the clear happened


def test_queue_and_sync_refuse_to_wait_on_a_pre_yoga_node_before_changing_anything(tmp_path: Path) -> None:
    # The core's one wait pre-flight: a node where only glance-cache-prefetcher caches queued images.
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, legacy_only=True, cache_workers=0) as running:
        image = running.upload_image(b"legacy " * 32, name="legacy")
        with Cluster([running.url]) as cluster:
            queued = operations.queue(cluster, [image], wait=True, timeout=60)
            synced = operations.sync(cluster, [image], wait=True, timeout=60)
            assert cluster.list().values[0].queued == ()  # nothing was queued by either
    for outcome, action in ((queued, "queue (nothing queued)"), (synced, "sync (nothing changed)")):
        assert not outcome.successes
        (failure,) = outcome.failures
        assert isinstance(failure.error, errors.CannotWait) and failure.action == action
