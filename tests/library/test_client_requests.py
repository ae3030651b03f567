"""Request shapes and error mapping of CacheClient, against a scripted node (httpx.MockTransport)."""

from __future__ import annotations

import pytest

from glancecache_client import CacheClient, errors
from glancecache_client.auth import SessionTokens, StaticToken

from .conftest import IMAGE, NO_CACHE, NO_CLEAN, OTHER, FakeNode

ENTRY = {
    "id": 1,
    "image_id": IMAGE,
    "last_accessed": 1795302923.4,
    "last_modified": 1795302923.4,
    "size": 9,
    "hits": 0,
    "checksum": None,
}


def client_for(node: FakeNode, endpoint: str = "http://n1:9292", **kw: object) -> CacheClient:
    return CacheClient(endpoint, transport=node.transport, **kw)  # type: ignore[arg-type]


def test_list_sends_accept_json_and_token(node: FakeNode) -> None:
    node.on("GET", "/v2/cache", 200, {"cached_images": [ENTRY], "queued_images": [OTHER]})
    with client_for(node, token="tok") as client:
        state = client.list()
    assert state.node == "http://n1:9292" and state.queued == (OTHER,) and state.cached[0].size == 9
    request = node.calls("GET", "/v2/cache")[0]
    assert request.headers["accept"] == "application/json"
    assert request.headers["x-auth-token"] == "tok"
    assert "openstack-api-version" not in request.headers


def test_discovery_happens_once_per_client(node: FakeNode) -> None:
    node.on("GET", "/v2/cache", 200, {"cached_images": [], "queued_images": []})
    node.on("PUT", f"/v2/cache/{IMAGE}", 202)
    node.on("DELETE", f"/v2/cache/{IMAGE}", 204)
    with client_for(node) as client:
        client.queue(IMAGE)
        client.list()
        client.delete(IMAGE)
        client.list()
    assert len(node.calls("GET", "/versions")) == 1
    assert "x-auth-token" not in node.calls("GET", "/versions")[0].headers


def test_a_listing_needs_no_discovery_round_trip(node: FakeNode) -> None:
    # A 200 listing proves the cache API is there; the versions are fetched (once) only for API 2.18 work.
    node.on("GET", "/v2/cache", 200, {"cached_images": [ENTRY], "queued_images": []})
    node.on("POST", "/v2/cache/prune", 200, {"total_files_pruned": 0, "total_bytes_pruned": 0})
    with client_for(node) as client:
        client.list()
        client.list()
        assert node.calls("GET", "/versions") == []
        client.prune()
        client.prune()
    assert len(node.calls("GET", "/versions")) == 1
    assert [request.url.path for request in node.calls("GET")][:2] == ["/v2/cache", "/v2/cache"]


def test_queue_is_put_without_body(node: FakeNode) -> None:
    node.on("PUT", f"/v2/cache/{IMAGE}", 202)
    with client_for(node) as client:
        client.queue(IMAGE.upper())
    request = node.calls("PUT")[0]
    assert request.url.path == f"/v2/cache/{IMAGE}"
    assert request.content == b""


@pytest.mark.parametrize("status", [200, 202])
def test_queue_accepts_yoga_and_zed_statuses(node: FakeNode, status: int) -> None:
    node.on("PUT", f"/v2/cache/{IMAGE}", status)
    with client_for(node) as client:
        client.queue(IMAGE)


@pytest.mark.parametrize(
    ("target", "header"),
    [("both", None), ("cache", "cache"), ("queue", "queue"), ("cached", "cache"), ("queued", "queue")],
)
def test_clear_header(node: FakeNode, target: str, header: str | None) -> None:
    listings = iter(
        [
            {"cached_images": [ENTRY], "queued_images": [OTHER]},
            {
                "cached_images": [] if header != "queue" else [ENTRY],
                "queued_images": [] if header != "cache" else [OTHER],
            },
        ]
    )
    node.routes[("GET", "/v2/cache")] = lambda _: __import__("httpx").Response(200, json=next(listings))
    node.on("DELETE", "/v2/cache", 204)
    with client_for(node) as client:
        result = client.clear(target)
    request = node.calls("DELETE", "/v2/cache")[0]
    assert request.headers.get("x-image-cache-clear-target") == header
    assert (result.cached, result.queued) == {None: (1, 1), "cache": (1, 0), "queue": (0, 1)}[header]


def test_clean_prune_nodes_paths(node: FakeNode) -> None:
    node.on("POST", "/v2/cache/clean", 200, b"")
    node.on("POST", "/v2/cache/prune", 200, {"total_files_pruned": 5, "total_bytes_pruned": 51200})
    node.on("GET", f"/v2/cache/nodes/{IMAGE}", 200, ["http://n1:9292", "http://n2:9292"])
    with client_for(node) as client:
        client.clean()
        assert (client.prune().files, client.prune().bytes) == (5, 51200)
        assert client.nodes(IMAGE) == ["http://n1:9292", "http://n2:9292"]
    assert node.calls("POST", "/v2/cache/prune")[0].content == b""


def test_path_prefix_is_kept(node: FakeNode) -> None:
    node.routes.clear()
    node.on(
        "GET",
        "/image/versions",
        200,
        {"versions": [{"id": "v2.18", "status": "CURRENT"}, {"id": "v2.14", "status": "SUPPORTED"}]},
    )
    node.on("GET", "/image/v2/cache", 200, {"cached_images": [], "queued_images": []})
    with client_for(node, "http://ctl/image") as client:
        assert client.list().cached == ()
        assert "2.18" in client.versions
    assert [(r.url.host, r.url.path) for r in node.seen] == [("ctl", "/image/v2/cache"), ("ctl", "/image/versions")]


def test_cache_admin_listener_paths(node: FakeNode) -> None:
    node.on("GET", "/cache", 200, {"cached_images": [], "queued_images": [IMAGE]})
    node.on("PUT", f"/cache/{IMAGE}", 202)
    node.on("POST", "/cache/prune", 200, {"total_files_pruned": 0, "total_bytes_pruned": 0})
    with client_for(node, "http://n1:9393/cache") as client:
        assert client.list().queued == (IMAGE,)
        client.queue(IMAGE)
        client.prune()
    # A cache admin listener serves the whole cache API: nothing to discover once its listing answered.
    assert [r.url.path for r in node.seen] == ["/cache", f"/cache/{IMAGE}", "/cache/prune"]


def test_no_cache_api_is_unsupported_feature(node: FakeNode) -> None:
    node.on("GET", "/versions", 200, NO_CACHE)
    with client_for(node) as client, pytest.raises(errors.UnsupportedFeature) as info:
        client.list()
    assert info.value.version == "2.14" and info.value.node == "http://n1:9292"
    assert "needs Image API v2.14" in str(info.value)
    assert len(node.calls("GET", "/v2/cache")) == 1  # the direct listing's 404; discovery then explains it


def test_clean_needs_2_18(node: FakeNode) -> None:
    node.on("GET", "/versions", 200, NO_CLEAN)
    with client_for(node) as client:
        for call in (client.clean, client.prune):
            with pytest.raises(errors.UnsupportedFeature, match="v2.18"):
                call()
    assert node.calls("POST") == []


def test_legacy_node_served_through_deprecated_endpoints(node: FakeNode) -> None:
    node.on("GET", "/versions", 200, NO_CACHE)
    node.on("GET", "/v2/cached_images", 200, {"cached_images": [ENTRY]})
    node.on("GET", "/v2/queued_images", 200, {"queued_images": [OTHER]})
    node.on("PUT", f"/v2/queued_images/{OTHER}", 200, b"null")
    node.on("DELETE", "/v2/cached_images", 200, {"num_deleted": 1})
    node.on("DELETE", "/v2/queued_images", 200, {"num_deleted": 1})
    with client_for(node) as client:
        state = client.list()
        assert state.is_cached(IMAGE) and state.queued == (OTHER,)
        client.queue(OTHER)
        result = client.clear("both")
        assert (result.cached, result.queued) == (1, 1)
        with pytest.raises(errors.UnsupportedFeature):
            client.prune()
        with pytest.raises(errors.UnsupportedFeature):
            client.nodes(IMAGE)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequest),
        (401, errors.Unauthorized),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (500, errors.ServerError),
        (503, errors.ServerError),
    ],
)
def test_http_errors_are_typed_with_context(node: FakeNode, status: int, cls: type[errors.APIError]) -> None:
    node.on(
        "PUT",
        f"/v2/cache/{IMAGE}",
        status,
        {"message": "Image X not found.<br /><br />\n\n\n", "code": f"{status} Whatever", "title": "Whatever"},
        **{"x-openstack-request-id": "req-123"},
    )
    with client_for(node) as client, pytest.raises(cls) as info:
        client.queue(IMAGE)
    error = info.value
    assert (error.status, error.request_id, error.node) == (status, "req-123", "http://n1:9292")
    assert error.explanation == "Image X not found."
    assert str(error) == (
        f"http://n1:9292: HTTP {status} for PUT /v2/cache/{IMAGE}: Image X not found. (request id req-123)"
    )


def test_plain_text_and_html_error_bodies(node: FakeNode) -> None:
    node.on(
        "DELETE",
        f"/v2/cache/{IMAGE}",
        404,
        "404 Not Found\n\nImage x not found.\n\n   ",
        **{"content-type": "text/plain"},
    )
    node.on(
        "GET",
        "/v2/cache",
        403,
        "<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 Forbidden</h1>\n"
        "  You are not authorized to complete cache_list action.<br /><br />\n\n\n\n </body>\n</html>",
        **{"content-type": "text/html; charset=UTF-8"},
    )
    with client_for(node) as client:
        with pytest.raises(errors.NotFound) as nf:
            client.delete(IMAGE)
        with pytest.raises(errors.Forbidden) as fb:
            client.list()
    assert nf.value.explanation == "Image x not found."
    assert fb.value.explanation == "You are not authorized to complete cache_list action."


def test_invalid_json_is_invalid_response(node: FakeNode) -> None:
    node.on("GET", "/v2/cache", 200, b"{not json", **{"content-type": "application/json"})
    node.on("POST", "/v2/cache/prune", 200, {"total_files_pruned": "many"})
    with client_for(node) as client:
        with pytest.raises(errors.InvalidResponse, match="not valid JSON"):
            client.list()
        with pytest.raises(errors.InvalidResponse, match="unexpected response shape"):
            client.prune()


def test_disabled_cache_404_after_discovery_is_unsupported(node: FakeNode) -> None:
    node.on(
        "GET",
        "/v2/cache",
        404,
        "404 Not Found\n\nCaching via API is not supported at this site.\n\n   ",
        **{"content-type": "text/plain"},
    )
    with client_for(node) as client, pytest.raises(errors.UnsupportedFeature):
        client.list()


@pytest.mark.parametrize("bad", ["", "not-a-uuid", "../etc", f"{IMAGE}/../x"])
def test_bad_ids_rejected_before_any_request(node: FakeNode, bad: str) -> None:
    with client_for(node) as client:
        for call in (client.queue, client.delete, client.nodes):
            with pytest.raises(errors.InvalidInput, match="image id"):
                call(bad)
    assert node.seen == []


def test_unknown_clear_target_rejected_before_any_request(node: FakeNode) -> None:
    with client_for(node) as client, pytest.raises(errors.InvalidInput, match="unknown clear target 'all-of-it'"):
        client.clear("all-of-it")
    assert node.seen == []


class RotatingSession:
    """Stands in for keystoneauth1.session.Session's token API (get_token / invalidate)."""

    def __init__(self) -> None:
        self.issued = 0

    def get_token(self) -> str:
        self.issued += 1
        return f"token-{self.issued}"

    def invalidate(self) -> bool:
        return True


def test_401_refreshes_token_and_retries_once(node: FakeNode) -> None:
    import httpx

    sent: list[str | None] = []

    def cache(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("x-auth-token"))  # the same Request object is re-sent, so copy now
        if request.headers.get("x-auth-token") == "token-1":
            return httpx.Response(401, text="expired")
        return httpx.Response(200, json={"cached_images": [], "queued_images": []})

    node.routes[("GET", "/v2/cache")] = cache
    session = RotatingSession()
    with client_for(node, token_source=SessionTokens(session)) as client:  # type: ignore[arg-type]
        client.list()
    assert sent == ["token-1", "token-2"]


def test_401_with_static_token_is_not_retried(node: FakeNode) -> None:
    node.on("GET", "/v2/cache", 401, "nope", **{"content-type": "text/plain"})
    with client_for(node, token_source=StaticToken("t")) as client, pytest.raises(errors.Unauthorized):
        client.list()
    assert len(node.calls("GET", "/v2/cache")) == 1


def test_debug_log_redacts_tokens(node: FakeNode, caplog: pytest.LogCaptureFixture) -> None:
    node.on("GET", "/v2/cache", 200, {"cached_images": [], "queued_images": []}, **{"x-openstack-request-id": "req-9"})
    caplog.set_level("DEBUG", logger="glancecache_client.http")
    with client_for(node, token="s3cret-token") as client:
        client.list()
    text = caplog.text
    assert "GET http://n1:9292/v2/cache -> 200 in" in text and "req-9" in text
    assert "s3cret-token" not in text and "<redacted>" in text


def test_only_one_identity_argument() -> None:
    with pytest.raises(errors.InvalidInput, match="only one of"):
        CacheClient("n1", token="t", auth=object())


def test_a_cookie_a_node_sets_is_sent_back(node: FakeNode) -> None:
    # Glance sets no cookie; a load balancer keeping a client on one node may. The client reads only answers
    # that set one (httpx would parse every answer for cookies), and still sends them back.
    listing = {"cached_images": [], "queued_images": []}
    node.on("GET", "/v2/cache", 200, listing, **{"set-cookie": "SERVERID=ctl2; Path=/"})
    node.on("PUT", f"/v2/cache/{IMAGE}", 202)
    node.on("DELETE", f"/v2/cache/{IMAGE}", 204)
    with client_for(node, token="tok") as client:
        client.queue(IMAGE)
        client.list()
        client.delete(IMAGE)
    assert "cookie" not in node.calls("PUT")[0].headers
    assert node.calls("DELETE")[0].headers["cookie"] == "SERVERID=ctl2"
