"""Request bodies the cache and image routes do not expect: the reference server answers what real Glance 33
answered (recorded in glance33_bodies.py), and 400 where Glance answers 500. Plus a Hypothesis fuzz of
every cache route: never a 500, never a traceback in the log."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import ADMIN, MEMBER, cached_ids, empty_caches
from .fuzzing import assert_no_tracebacks, fuzz, json_values
from .glance33_bodies import ACCEPT_CASES, CASES, NOT_EXPECTED, TEXT_PLAIN, Case, plain_error
from .test_wire import UNKNOWN, raw_request, split_response


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    # No cache workers: a PUT leaves the image queued, so the cache's state is under the test's control.
    with run_cluster(1, auth="noauth", cache_workers=0, data_dir=tmp_path_factory.mktemp("bodies")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ids(node: ReferenceCluster) -> dict[str, str]:
    queued = node.store.create(name="queued").id
    return {"active": node.upload_image(b"a" * 10), "queued": queued, "unknown": UNKNOWN}


def send(url: str, case: Case, ids: dict[str, str], extra: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    headers = {**case.headers, **(extra or {})}
    if not case.body:
        headers["Content-Length"] = "0"
    raw = raw_request(url, case.method, case.path.format(**ids), headers, case.body)
    status_line, header_list, body = split_response(raw)
    content_type = dict((name.lower(), value) for name, value in header_list).get("content-type", "")
    return int(status_line.split()[1]), content_type, body


@pytest.mark.parametrize("case", CASES, ids=Case.label)
def test_unexpected_bodies_answer_as_glance_33(node: ReferenceCluster, ids: dict[str, str], case: Case) -> None:
    status, content_type, body = send(node.url, case, ids)
    assert status == case.status, body
    if case.message is not None:
        assert content_type == TEXT_PLAIN
        assert body == plain_error(case.status, case.message)


@pytest.mark.parametrize(("case", "content_type", "expected"), ACCEPT_CASES, ids=lambda v: getattr(v, "label", str)())
def test_error_page_follows_accept(
    node: ReferenceCluster, ids: dict[str, str], case: Case, content_type: str, expected: bytes
) -> None:
    assert send(node.url, case, ids) == (case.status, content_type, expected)


def test_a_refused_body_changes_nothing(node: ReferenceCluster, ids: dict[str, str], http: httpx.Client) -> None:
    """The 400 comes before the handler: a malformed clear or prune deletes nothing."""
    empty_caches(node)
    engine = node.nodes[0].engine
    assert engine is not None
    engine.queue(ids["active"])
    for case in (Case("DELETE", "/v2/cache", b"{", 400), Case("POST", "/v2/cache/prune", b"{}", 400),
                 Case("DELETE", "/v2/cache/{active}", b"null", 400)):  # fmt: skip
        assert send(node.url, case, ids)[0] == 400
    assert engine.list_queued() == [ids["active"]]
    assert cached_ids(http, node.url) == []


def test_body_is_judged_before_policy_and_cache_disabled(tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_cluster(1, auth="trusted", data_dir=tmp_path_factory.mktemp("trusted-bodies")) as cluster:
        image = cluster.upload_image(b"m")
        case = Case("PUT", "/v2/cache/{active}", b"{", 400)
        assert send(cluster.url, case, {"active": image}, MEMBER)[0] == 400  # not 403
        assert send(cluster.url, case, {"active": image}, ADMIN)[0] == 400
    with run_cluster(1, auth="noauth", cache_enabled=False, data_dir=tmp_path_factory.mktemp("off-bodies")) as off:
        case = Case("POST", "/v2/cache/prune", b"{}", 400, NOT_EXPECTED)
        assert send(off.url, case, {}) == (400, TEXT_PLAIN, plain_error(400, NOT_EXPECTED))  # not 404


# -- fuzz -----------------------------------------------------------------------------------------------

bodies = st.one_of(st.just(b""), st.binary(max_size=40), json_values(8).map(lambda value: json.dumps(value).encode()))
PATHS = [
    "/v2/cache", "/v2/cache/{active}", "/v2/cache/{queued}", "/v2/cache/{unknown}", "/v2/cache/not-a-uuid",
    "/v2/cache/nodes/{active}", "/v2/cache/clean", "/v2/cache/prune", "/v2/cached_images",
    "/v2/cached_images/{active}", "/v2/queued_images", "/v2/queued_images/{unknown}", "/v2/queued_images/x",
]  # fmt: skip
# Printable ASCII without leading or trailing blanks: an HTTP client may not send those (httpx refuses them).
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(str.strip)


@fuzz(200)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    path=st.sampled_from(PATHS),
    body=bodies,
    content_type=st.none() | st.sampled_from(["application/json", "text/plain", "application/octet-stream"]),
    accept=st.none() | st.sampled_from(["application/json", "*/*", "text/html", "image/png"]),
    target=st.none() | st.sampled_from(["cache", "queue", "", "both"]) | header_text,
)
def test_cache_routes_never_500(
    node: ReferenceCluster,
    ids: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    target: str | None,
) -> None:
    caplog.clear()
    headers = {}
    for name, value in (("Content-Type", content_type), ("Accept", accept), ("x-image-cache-clear-target", target)):
        if value is not None:
            headers[name] = value
    with httpx.Client(timeout=30) as client:
        response = client.request(method, node.url + path.format(**ids), headers=headers, content=body)
    assert response.status_code in (200, 202, 204, 400, 404, 405, 409), response.text
    assert_no_tracebacks(caplog)
