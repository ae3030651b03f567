"""Timeouts bound whole requests and whole waits; nonsense timeouts are InvalidInput; a wait that cannot end
(a pre-Yoga node, where only glance-cache-prefetcher from cron caches queued images) is refused at once."""

from __future__ import annotations

import math
import time

import pytest

from glancecache_client import CacheClient, Cluster, errors
from glancecache_client.server.runner import run_cluster

from .conftest import IMAGE
from .rawnode import VERSIONS, glance_versions_then, http, raw_node

EMPTY = http(200, b'{"cached_images": [], "queued_images": []}')


def test_a_node_that_drips_its_answer_is_cut_off_at_the_timeout() -> None:
    # One byte every 0.2 s: each read succeeds long before a 1 s read timeout, the whole answer takes ~20 s.
    with raw_node(glance_versions_then(lambda method, path: EMPTY), drip=0.2) as node:
        with CacheClient(node.url, timeout=1) as client:
            started = time.monotonic()
            with pytest.raises(errors.RequestTimeout, match="within the 1 s timeout") as caught:
                client.list()
            elapsed = time.monotonic() - started
        assert caught.value.node == node.url
    assert elapsed < 4, f"took {elapsed:.1f} s"


def test_a_node_that_drips_its_headers_is_cut_off_at_the_timeout() -> None:
    slow_head = http(200, VERSIONS)
    with raw_node(lambda method, path: slow_head, drip=0.2) as node:
        with CacheClient(node.url, timeout=1) as client:
            started = time.monotonic()
            with pytest.raises(errors.RequestTimeout):
                client.list()
            assert time.monotonic() - started < 4


def test_the_wait_timeout_bounds_the_requests_inside_the_wait() -> None:
    # Every answer drips: a 1 s wait must not last a 30 s request timeout.
    with raw_node(glance_versions_then(lambda method, path: EMPTY), drip=0.2) as node:
        with Cluster([node.url], timeout=30) as cluster:
            started = time.monotonic()
            failed = cluster.wait_until_cached([(node.url, IMAGE)], timeout=1, interval=0.1)
            elapsed = time.monotonic() - started
        with CacheClient(node.url, timeout=30) as client:
            with pytest.raises(errors.CacheWaitTimeout):
                client.wait_cached(IMAGE, timeout=1, interval=0.1)
    assert isinstance(failed[(node.url, IMAGE)], errors.CacheWaitTimeout)
    assert elapsed < 4, f"took {elapsed:.1f} s"


@pytest.mark.parametrize("bad", [-1, 0, math.nan, math.inf, -math.inf, "5", True])
def test_nonsense_timeouts_are_invalid_input(bad: object) -> None:
    with pytest.raises(errors.InvalidInput, match="timeout"):
        CacheClient("glance1", timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInput, match="timeout"):
        Cluster(["glance1"], timeout=bad)  # type: ignore[arg-type]
    with CacheClient("glance1") as client, pytest.raises(errors.InvalidInput, match="timeout"):
        client.wait_cached(IMAGE, timeout=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "abc\n", "two words", "caf\u00e9"])
def test_a_token_that_cannot_be_a_header_is_invalid_input(token: str) -> None:
    with pytest.raises(errors.InvalidInput, match="token"):
        CacheClient("glance1", token=token)


def test_waiting_on_a_pre_yoga_node_is_refused_at_once(tmp_path) -> None:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path, legacy_only=True, cache_workers=0) as running:
        image = running.upload_image(b"legacy " * 32, name="legacy")
        with CacheClient(running.url) as client:
            client.queue(image)
            started = time.monotonic()
            with pytest.raises(errors.CannotWait, match="glance-cache-prefetcher") as caught:
                client.wait_cached(image, timeout=60)
            assert time.monotonic() - started < 5
            assert isinstance(caught.value, errors.UnsupportedFeature)
        with Cluster([running.url]) as cluster:
            started = time.monotonic()
            failed = cluster.wait_until_cached([(running.url, image)], timeout=60)
            assert time.monotonic() - started < 5
    assert isinstance(failed[(running.url, image)], errors.CannotWait)


def test_a_plain_web_server_is_not_an_image_node() -> None:
    page = http(404, b"<html><body>File not found</body></html>", content_type="text/html")
    with raw_node(lambda method, path: page) as node, CacheClient(node.url) as client:
        with pytest.raises(errors.NotAnImageNode, match="not a Glance image node"):
            client.list()


def test_a_node_answering_an_empty_object_to_everything_is_an_error() -> None:
    with raw_node(lambda method, path: http(200, b"{}")) as node, CacheClient(node.url) as client:
        with pytest.raises(errors.GlanceCacheError):
            client.list()
    answers_empty = glance_versions_then(lambda method, path: http(200, b"{}"))
    with raw_node(answers_empty) as node, CacheClient(node.url) as client:
        with pytest.raises(errors.InvalidResponse, match="cached_images and queued_images"):
            client.list()


def test_a_rejected_static_token_is_named_in_the_error() -> None:
    with raw_node(glance_versions_then(lambda method, path: http(401, b'{"message": "no"}'))) as node:
        with CacheClient(node.url, token="bogus") as client, pytest.raises(errors.Unauthorized) as caught:
            client.list()
    assert caught.value.credentials == "token"


def test_a_session_that_cannot_get_a_token_is_the_nodes_identity_failure() -> None:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    dead = "http://127.0.0.1:9/v3"  # discard port: nothing listens
    broken = session.Session(auth=v3.Password(auth_url=dead, username="u", password="p", project_name="p",
                                              user_domain_id="default", project_domain_id="default"))  # fmt: skip
    with raw_node(glance_versions_then(lambda method, path: EMPTY)) as node:
        with Cluster([node.url], session=broken, timeout=5) as cluster:
            (result,) = cluster.list().results
    assert isinstance(result.error, errors.IdentityFailure), result.error
    assert "getting a token failed" in str(result.error)
