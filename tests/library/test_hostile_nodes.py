"""Property: whatever a node sends, the library answers with a typed result or that node's GlanceCacheError,
never a bare Python exception; and in a Cluster a broken node never hides the healthy ones.

A fake node answers generated garbage (bytes, JSON of every shape, huge, negative and non-finite numbers, wrong
Content-Type and Content-Encoding, HTML with 200, bodies shorter than announced), first through
httpx.MockTransport, then raw over a real loopback socket (tests/library/rawnode.py). Examples are fixed by the
Hypothesis profile of tests/conftest.py, so CI runs the same ones every time.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from glancecache_client import CacheClient, Cluster, errors
from glancecache_client.models import CacheState
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import IMAGE, MODERN
from .rawnode import RawNode, glance_versions_then, http

# -- what a broken node may send --------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e20, -1, -1e20, 1e308, 2**63, 0, 1.5, "1e400", "nan", "-5", "1763767050.76"]),
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "image_id": st.one_of(st.just(IMAGE), st.text(max_size=40), JSON),
        "size": JSON,
        "hits": JSON,
        "last_accessed": JSON,
        "last_modified": JSON,
        "checksum": st.one_of(st.none(), st.text(max_size=40), JSON),
    },
)
CACHE_BODY = st.fixed_dictionaries(
    {},
    optional={
        "cached_images": st.one_of(st.lists(ENTRY, max_size=3), JSON),
        "queued_images": st.one_of(st.lists(st.one_of(st.just(IMAGE), JSON), max_size=3), JSON),
        "total_files_pruned": JSON,
        "total_bytes_pruned": JSON,
        "num_deleted": JSON,
    },
)
VERSIONS_BODY = st.one_of(
    st.fixed_dictionaries(
        {"versions": st.lists(st.fixed_dictionaries({"id": JSON, "status": JSON}), max_size=3) | JSON}
    ),
    JSON,
)


def as_json(values: st.SearchStrategy[object]) -> st.SearchStrategy[bytes]:
    return values.map(lambda value: json.dumps(value).encode())


BODIES = st.one_of(
    as_json(CACHE_BODY),
    as_json(JSON),
    as_json(VERSIONS_BODY),
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"<html><body><h1>It works</h1></body></html>",
            b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON parser's recursion limit
            b'{"cached_images": [{"image_id": "' + IMAGE.encode() + b'", "last_accessed": 1e20}], "queued_images": []}',
            gzip.compress(b'{"cached_images": [], "queued_images": []}'),
            b"\xff\xfe{\x00}\x00",
            b'{"message": "\x1b]0;owned\x07\x1b[2J denied"}',  # terminal escapes in an error explanation
        ]
    ),
)
STATUSES = st.one_of(
    st.sampled_from([200, 202, 204, 300, 301, 302, 400, 401, 403, 404, 409, 413, 500, 503]),
    st.integers(min_value=100, max_value=999),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "text/html", "text/plain", "application/json; charset=nonsense", ""]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)
ENCODINGS = st.sampled_from([None, "gzip", "deflate", "br", "zstd", "identity", "gzip, deflate", "x-nonsense"])


@st.composite
def responses(draw: st.DrawFn) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": draw(CONTENT_TYPES)}
    encoding = draw(ENCODINGS)
    if encoding is not None:
        headers["content-encoding"] = encoding
    return draw(STATUSES), headers, draw(BODIES)


# -- the property ------------------------------------------------------------------------------------------

OPERATIONS: dict[str, Callable[[CacheClient], object]] = {
    "list": lambda client: client.list(),
    "queue": lambda client: client.queue(IMAGE),
    "delete": lambda client: client.delete(IMAGE),
    "clear": lambda client: client.clear(),
    "clean": lambda client: client.clean(),
    "prune": lambda client: client.prune(),
    "nodes": lambda client: client.nodes(IMAGE),
    "wait": lambda client: client.wait_cached(IMAGE, timeout=0.2, interval=0.1),
}


def assert_typed_outcome(client: CacheClient, name: str) -> None:
    """The operation returns, or raises a GlanceCacheError naming the node in one line; nothing else."""
    try:
        value = OPERATIONS[name](client)
    except errors.GlanceCacheError as exc:
        text = str(exc)
        assert exc.node == client.endpoint and text.startswith(client.endpoint), text
        assert text.isprintable(), text  # one line, and nothing that could drive a terminal
        return
    if isinstance(value, CacheState):
        for image in value.cached:
            assert image.size >= 0 and image.hits >= 0 and image.image_id.isprintable()


def mock_client(reply: Callable[[httpx.Request], httpx.Response]) -> CacheClient:
    return CacheClient("http://fuzz:9292", transport=httpx.MockTransport(reply), timeout=5)


@given(answer=responses(), operation=st.sampled_from(sorted(OPERATIONS)))
@example(answer=(200, {"content-type": "application/json", "content-encoding": "gzip"}, b'{"x": 1}'), operation="list")
@example(
    answer=(
        200,
        {"content-type": "application/json"},
        json.dumps({"cached_images": [{"image_id": IMAGE, "last_accessed": 1e20}], "queued_images": []}).encode(),
    ),
    operation="list",
)
def test_any_cache_answer_becomes_a_typed_outcome_over_a_mock_transport(
    answer: tuple[int, dict[str, str], bytes], operation: str
) -> None:
    status, headers, body = answer

    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/versions":
            return httpx.Response(200, json=MODERN)
        return httpx.Response(status, headers=headers, content=body)

    with mock_client(reply) as client:
        assert_typed_outcome(client, operation)


@given(answer=responses(), operation=st.sampled_from(["list", "queue", "prune"]))
def test_any_versions_answer_becomes_a_typed_outcome_over_a_mock_transport(
    answer: tuple[int, dict[str, str], bytes], operation: str
) -> None:
    status, headers, body = answer

    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/versions":
            return httpx.Response(status, headers=headers, content=body)
        return httpx.Response(200, json={"cached_images": [], "queued_images": []})

    with mock_client(reply) as client:
        assert_typed_outcome(client, operation)


# -- over a real socket --------------------------------------------------------------------------------------


@st.composite
def raw_answers(draw: st.DrawFn) -> bytes:
    """Bytes on the wire: garbage, a response with fuzzed parts, or a valid response cut short."""
    kind = draw(st.sampled_from(["garbage", "http", "truncated", "bad-length"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=300))
    status, headers, body = draw(responses())
    encoded = http(
        status if 100 <= status <= 999 else 200,
        body,
        content_type=headers["content-type"],
        **({"Content-Encoding": headers["content-encoding"]} if "content-encoding" in headers else {}),
    )
    if kind == "truncated":
        return encoded[: draw(st.integers(min_value=1, max_value=max(1, len(encoded) - 1)))]
    if kind == "bad-length":
        length = draw(st.one_of(st.integers(min_value=-5, max_value=10_000).map(str), st.text(max_size=5)))
        head, _, rest = encoded.partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-length")]
        return b"\r\n".join(lines) + b"\r\nContent-Length: " + length.encode("utf-8", "replace") + b"\r\n\r\n" + rest
    return encoded


@pytest.fixture(scope="module")
def raw() -> Iterator[RawNode]:
    node = RawNode(lambda method, path: b"")
    yield node
    node.close()


@given(payload=raw_answers(), operation=st.sampled_from(["list", "queue", "delete", "prune", "clean"]))
@example(payload=http(200, b"not gzip at all", content_encoding="gzip"), operation="list")
def test_any_bytes_on_a_real_socket_become_a_typed_outcome(raw: RawNode, payload: bytes, operation: str) -> None:
    raw.answer = glance_versions_then(lambda method, path: payload)
    with CacheClient(raw.url, timeout=5) as client:
        assert_typed_outcome(client, operation)


@given(payload=raw_answers())
def test_any_bytes_as_the_versions_answer_become_a_typed_outcome(raw: RawNode, payload: bytes) -> None:
    raw.answer = lambda method, path: payload
    with CacheClient(raw.url, timeout=5) as client:
        assert_typed_outcome(client, "list")


# -- a cluster keeps the healthy node's results --------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReferenceCluster, str]]:
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path_factory.mktemp("good")) as running:
        image = running.upload_image(b"healthy " * 64, name="healthy")
        with CacheClient(running.url) as client:
            client.queue(image)
            client.wait_cached(image, timeout=30, interval=0.05)
        yield running, image


@given(payload=raw_answers())
@example(payload=http(200, b"not gzip at all", content_encoding="gzip"))
@example(
    payload=http(
        200,
        json.dumps({"cached_images": [{"image_id": IMAGE, "last_accessed": 1e20}], "queued_images": []}).encode(),
    )
)
def test_a_broken_node_never_hides_the_healthy_one(
    good: tuple[ReferenceCluster, str], raw: RawNode, payload: bytes
) -> None:
    running, image = good
    raw.answer = glance_versions_then(lambda method, path: payload)
    with Cluster([running.url, raw.url], timeout=5) as cluster:
        healthy, broken = cluster.list().results
    assert healthy.error is None and healthy.value is not None, healthy.error
    assert healthy.value.is_cached(image)
    if broken.error is not None:
        assert isinstance(broken.error, errors.GlanceCacheError) and broken.error.node == raw.url
