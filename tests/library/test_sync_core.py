"""The desired-state core (operations.sync) and its tag lookup (CacheClient.images_tagged).

The tag lookup against the real reference server (Glance's paging and tag filter), its defences and the "looked up
once, on one node that answers" rule on scripted nodes. End-to-end runs of both front ends are in
tests/osc/test_both_front_ends.py.
"""

from __future__ import annotations

import httpx
import pytest

from glancecache_client import CacheClient, Cluster, errors, operations
from glancecache_client.server.runner import run_cluster

from .conftest import IMAGE, MODERN, OTHER, FakeNode

NODES = ["http://n0:9292", "http://n1:9292"]


def test_tagged_images_follow_every_page_of_the_real_server() -> None:
    with run_cluster(nodes=1, auth="noauth") as cluster:
        tagged = {cluster.upload_image(b"t", name=f"t{i}", tags=["golden", f"n{i}"]) for i in range(7)}
        cluster.upload_image(b"u", name="untagged")
        cluster.store.create(name="inactive", container_format="bare", disk_format="raw", tags=["golden"])
        requests: list[httpx.Request] = []
        transport = httpx.HTTPTransport()

        def counting(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return transport.handle_request(request)

        with CacheClient(cluster.url, transport=httpx.MockTransport(counting)) as client:
            assert set(client.images_tagged("golden", page_size=2)) == tagged
            (only,) = client.images_tagged("n3")  # every page's own tag: exactly one image
            assert only in tagged
            assert client.images_tagged("nothing") == []
        golden = [r for r in requests if r.url.params.get("tag") == "golden"]
        # 7 images, 2 a page; then the hidden images (os_hidden=true), of which this server has none: one page.
        assert [r.url.params.get("os_hidden") for r in golden] == [None] * 4 + ["true"]


@pytest.mark.parametrize(
    ("following", "message"),
    [("/v2/images?tag=golden&marker=x", "repeats a page"), ("http://elsewhere/v2/images?tag=x", "not a /v2/images")],
)
def test_a_next_link_that_loops_or_leaves_is_refused(following: str, message: str) -> None:
    node = FakeNode()
    node.on("GET", "/versions", 200, MODERN)
    page = {"images": [{"id": IMAGE, "status": "active", "tags": ["golden"]}], "next": following}
    node.on("GET", "/v2/images", 200, page)
    with (
        CacheClient("http://n0:9292", transport=node.transport) as client,
        pytest.raises(errors.InvalidResponse, match=message),
    ):
        client.images_tagged("golden")


def test_tags_are_looked_up_once_on_the_first_node_that_answers() -> None:
    fakes = [FakeNode(), FakeNode()]
    for fake in fakes:
        fake.on("GET", "/versions", 200, MODERN)
        fake.on("GET", "/v2/cache", 200, {"cached_images": [], "queued_images": [OTHER]})
    fakes[0].on("GET", "/v2/images", 503, {"message": "down"})
    fakes[1].on("GET", "/v2/images", 200, {"images": [{"id": IMAGE, "status": "active", "tags": ["golden"]}]})
    by_url = dict(zip(NODES, fakes, strict=True))
    with Cluster(NODES, token="t", transport_factory=lambda url: by_url[url].transport) as cluster:
        outcome = operations.sync(cluster, tags=["golden"], exact=True, dry_run=True)
    assert outcome.ok
    assert [(s.node, s.image_id, s.action, s.result) for s in outcome.items] == [
        (NODES[0], OTHER, "dequeue", None),
        (NODES[0], IMAGE, "queue", None),
        (NODES[1], OTHER, "dequeue", None),
        (NODES[1], IMAGE, "queue", None),
    ]
    # The first node failed at once; the second answered both listings (visible, then hidden images).
    assert (len(fakes[0].calls("GET", "/v2/images")), len(fakes[1].calls("GET", "/v2/images"))) == (1, 2)
    assert all(fake.calls("DELETE") == [] and fake.calls("PUT") == [] for fake in fakes)  # a dry run


def test_an_unknown_desired_set_changes_nothing() -> None:
    fake = FakeNode()
    fake.on("GET", "/versions", 200, MODERN)
    fake.on("GET", "/v2/images", 403, {"message": "no"})
    with Cluster(NODES[:1], token="t", transport_factory=lambda url: fake.transport) as cluster:
        outcome = operations.sync(cluster, [IMAGE], tags=["golden"], exact=True)
    assert [type(f.error) for f in outcome.failures] == [errors.Forbidden] and not outcome.items
    assert fake.calls("GET", "/v2/cache") == [] and fake.calls("DELETE") == []
