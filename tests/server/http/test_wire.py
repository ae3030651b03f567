"""Byte-level checks against the recorded Glance 33 traffic (glance33-traffic.md): documents, error
bodies in their three formats, header names and the status codes of the image data path."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

from glancecache_client.server.http.image_api import CONTAINER_FORMATS, DISK_FORMATS
from glancecache_client.server.runner import ReferenceCluster

from .conftest import ADMIN, CAPTURES, MEMBER, wait_cached

UNKNOWN = "00000000-0000-4000-8000-000000000000"
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def raw_request(url: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """Send one HTTP/1.1 request over a plain socket and return the raw response bytes."""
    parts = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    for name, value in (headers or {}).items():
        if name.lower() == "host":
            lines[1] = f"Host: {value}"
        else:
            lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def split_response(raw: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in header_lines]
    return status, headers, body  # type: ignore[return-value]


def captured_versions(first_id: str) -> bytes:
    if not CAPTURES.exists():
        pytest.skip("recorded traffic not available")
    for line in CAPTURES.read_text().splitlines():
        if line.startswith(f'{{"versions": [{{"id": "{first_id}"'):
            return line.encode()
    raise AssertionError(f"no versions document starting with {first_id} in the capture")


# -- versions and negotiation ------------------------------------------------------------------------


def test_versions_document_is_byte_identical(cluster: ReferenceCluster) -> None:
    expected = captured_versions("v2.18")
    for path, status_line in (("/versions", "HTTP/1.1 200 OK"), ("/", "HTTP/1.1 300 Multiple Choices")):
        status, headers, body = split_response(
            raw_request(cluster.url, "GET", path, {"Host": "127.0.0.1:9292", "Accept": "*/*"})
        )
        assert status == status_line
        assert body == expected
        names = [name for name, _ in headers]
        assert ("Content-Type", "application/json") in headers
        assert ("Content-Length", "1473") in headers
        assert "x-openstack-request-id" not in names


def test_versions_document_without_cache_is_byte_identical(disabled_cluster: ReferenceCluster) -> None:
    expected = captured_versions("v2.15")  # Glance's own unsorted order: 2.15, 2.9, 2.17 CURRENT, 2.7...
    _, _, body = split_response(raw_request(disabled_cluster.url, "GET", "/versions", {"Host": "127.0.0.1:9296"}))
    assert body == expected


def test_versions_hrefs_follow_the_host(cluster: ReferenceCluster, http: httpx.Client) -> None:
    body = http.get(f"{cluster.url}/versions", headers={"Host": "glance.example:1234"}).json()
    assert {link["href"] for v in body["versions"] for link in v["links"]} == {"http://glance.example:1234/v2/"}


@pytest.mark.parametrize("path", ["/v2.13/cache", "/v2.19/cache", "/v3/cache", "/cache", "/v1/images"])
def test_unknown_versions_get_300(cluster: ReferenceCluster, http: httpx.Client, path: str) -> None:
    response = http.get(cluster.url + path, headers=ADMIN)
    assert response.status_code == 300
    assert response.json()["versions"][0]["id"] == "v2.18"
    assert "x-openstack-request-id" not in response.headers


@pytest.mark.parametrize("path", ["/v2.14/cache", "/v2.16/cache", "/v2.18/cache", "/v2.0/cache"])
def test_url_versions_are_rewritten(cluster: ReferenceCluster, http: httpx.Client, path: str) -> None:
    response = http.get(cluster.url + path, headers=ADMIN)
    assert response.status_code == 200
    assert response.content == b'{"cached_images": [], "queued_images": []}'
    assert REQUEST_ID.match(response.headers["x-openstack-request-id"])


def test_url_version_rewrite_reaches_post_handlers(cluster: ReferenceCluster, http: httpx.Client) -> None:
    assert http.post(f"{cluster.url}/v2.14/cache/prune", headers=ADMIN).status_code == 200


def test_cache_versions_not_accepted_without_cache(disabled_cluster: ReferenceCluster, http: httpx.Client) -> None:
    assert http.get(f"{disabled_cluster.url}/v2.16/cache", headers=ADMIN).status_code == 300
    assert http.get(f"{disabled_cluster.url}/v2.15/images", headers=ADMIN).status_code == 200


def test_media_type_versioning(cluster: ReferenceCluster, http: httpx.Client) -> None:
    headers = {**ADMIN, "Accept": "application/vnd.openstack.images-v2.14"}
    response = http.get(f"{cluster.url}/cache", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"cached_images": [], "queued_images": []}


def test_v2_redirects_and_v2_root_is_404(cluster: ReferenceCluster, http: httpx.Client) -> None:
    redirect = http.get(f"{cluster.url}/v2", headers=ADMIN)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == f"{cluster.url}/v2/"
    assert redirect.headers["content-type"] == "text/plain; charset=utf8"
    root = http.get(f"{cluster.url}/v2/", headers={**ADMIN, "Accept": "application/json"})
    assert root.status_code == 404
    assert root.content == (
        b'{"message": "The resource could not be found.<br /><br />\\n\\n\\n", '
        b'"code": "404 Not Found", "title": "Not Found"}'
    )
    assert http.get(f"{cluster.url}/v2/cache/", headers=ADMIN).status_code == 404


# -- error bodies ------------------------------------------------------------------------------------

NOT_FOUND_HTML = (
    "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n"
    f"  Image {UNKNOWN} not found.<br /><br />\n\n\n\n </body>\n</html>"
)


def test_error_body_html_by_default(cluster: ReferenceCluster) -> None:
    status, headers, body = split_response(
        raw_request(cluster.url, "PUT", f"/v2/cache/{UNKNOWN}", {**ADMIN, "Accept": "*/*"})
    )
    assert status == "HTTP/1.1 404 Not Found"
    assert body.decode() == NOT_FOUND_HTML
    assert ("Content-Length", "175") in headers  # as recorded
    assert ("Content-Type", "text/html; charset=UTF-8") in headers
    [(_, request_id)] = [(n, v) for n, v in headers if n == "x-openstack-request-id"]
    assert REQUEST_ID.match(request_id)


def test_error_body_json_with_accept_json(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.put(f"{cluster.url}/v2/cache/{UNKNOWN}", headers={**ADMIN, "Accept": "application/json"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"message": "Image 00000000-0000-4000-8000-000000000000 not found.<br /><br />\\n\\n\\n", '
        b'"code": "404 Not Found", "title": "Not Found"}'
    )
    assert response.headers["content-length"] == "133"


def test_error_body_plain_without_accept(cluster: ReferenceCluster) -> None:
    _, headers, body = split_response(raw_request(cluster.url, "PUT", "/v2/cache/not-a-uuid", ADMIN))
    assert body == b"404 Not Found\n\nImage not-a-uuid not found.\n\n   "
    assert ("Content-Type", "text/plain; charset=UTF-8") in headers


def test_clear_target_400_escapes_quotes_in_html_only(cluster: ReferenceCluster, http: httpx.Client) -> None:
    html = http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, "x-image-cache-clear-target": "both"})
    assert html.headers["content-length"] == "238"
    assert "If provided &#x27;x-image-cache-clear-target&#x27; must be &#x27;cache&#x27;" in html.text
    as_json = http.delete(
        f"{cluster.url}/v2/cache",
        headers={**ADMIN, "x-image-cache-clear-target": "invalid", "Accept": "application/json"},
    )
    assert as_json.headers["content-length"] == "166"
    assert as_json.json()["message"].startswith("If provided 'x-image-cache-clear-target' must be 'cache'")


def test_405_bodies(cluster: ReferenceCluster, http: httpx.Client) -> None:
    html = http.get(f"{cluster.url}/v2/cache/clean", headers=ADMIN)
    assert html.headers["content-length"] == "187"
    assert html.text.endswith("  The method GET is not allowed for this resource. <br /><br />\n\n </body>\n</html>")
    as_json = http.get(f"{cluster.url}/v2/cache/clean", headers={**ADMIN, "Accept": "application/json"})
    assert as_json.content == (
        b'{"message": "The method GET is not allowed for this resource. <br /><br />\\n", '
        b'"code": "405 Method Not Allowed", "title": "Method Not Allowed"}'
    )
    _, _, plain = split_response(raw_request(cluster.url, "GET", "/v2/cache/clean", ADMIN))
    assert plain == b"405 Method Not Allowed\n\nThe method GET is not allowed for this resource. \n\n "
    patch = http.patch(f"{cluster.url}/v2/cache", headers=ADMIN)
    assert patch.headers["content-length"] == "189" and patch.headers["allow"] == "GET, DELETE"


def test_get_with_body_is_400(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"b")
    for path in ("/v2/cache", f"/v2/cache/nodes/{image_id}"):
        response = http.request("GET", cluster.url + path, headers={**ADMIN, "Content-Type": "application/json"},
                                content=b"{}")  # fmt: skip
        assert response.status_code == 400
        assert response.headers["content-length"] == "167"
        assert "A body is not expected with this request.<br /><br />" in response.text


def test_json_bodies_on_put_prune_and_clean_are_400(cluster: ReferenceCluster, http: httpx.Client) -> None:
    # Glance 33 answers these with 500 (the body reaches a handler that takes none); the reference
    # server answers 400 and runs nothing (glance33_bodies.py has the full table).
    image_id = cluster.upload_image(b"x" * 10)
    json_headers = {**ADMIN, "Content-Type": "application/json"}
    for response in (
        http.put(f"{cluster.url}/v2/cache/{image_id}", headers=json_headers, content=b'{"x":1}'),
        http.post(f"{cluster.url}/v2/cache/prune", headers=json_headers, content=b"{}"),
        http.post(f"{cluster.url}/v2/cache/clean", headers=json_headers, content=b"{}"),
    ):
        assert response.status_code == 400
        assert "A body is not expected with this request.<br /><br />" in response.text


def test_empty_replies_carry_webob_defaults(cluster: ReferenceCluster) -> None:
    image_id = cluster.upload_image(b"e" * 10)
    for method, path, status in (
        ("PUT", f"/v2/cache/{image_id}", "HTTP/1.1 202 Accepted"),
        ("DELETE", f"/v2/cache/{image_id}", "HTTP/1.1 204 No Content"),
        ("POST", "/v2/cache/clean", "HTTP/1.1 200 OK"),
    ):
        got_status, headers, body = split_response(raw_request(cluster.url, method, path, ADMIN))
        assert got_status == status
        assert ("Content-Type", "text/html; charset=UTF-8") in headers
        assert body == b""
        # Glance also sends Content-Length: 0 on its 204s; RFC 9110 forbids it there and our listener drops it.
        assert dict(headers).get("Content-Length") == (None if "204" in status else "0")


def test_cache_listing_wire_shape_centralized(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"w" * 1024)
    http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN)
    body = wait_cached(http, cluster.url, image_id)
    [entry] = body["cached_images"]
    assert list(entry) == ["id", "image_id", "last_accessed", "last_modified", "size", "hits", "checksum"]
    nodes = http.get(f"{cluster.url}/v2/cache/nodes/{image_id}", headers=ADMIN)
    assert nodes.content == json.dumps([cluster.url]).encode()


def test_cache_listing_wire_shape_sqlite(sqlite_cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = sqlite_cluster.upload_image(b"w" * 1024)
    http.put(f"{sqlite_cluster.url}/v2/cache/{image_id}", headers=ADMIN)
    [entry] = wait_cached(http, sqlite_cluster.url, image_id)["cached_images"]
    assert list(entry) == ["image_id", "hits", "last_accessed", "last_modified", "size"]


@pytest.mark.parametrize("which", ["cluster", "sqlite_cluster"])
def test_cache_listing_bodies_are_json_dumps_of_the_engine_lists(
    which: str, request: pytest.FixtureRequest, http: httpx.Client
) -> None:
    """The listing is written as text straight from the rows: byte for byte what json.dumps of the lists gives."""
    cluster: ReferenceCluster = request.getfixturevalue(which)
    engine = cluster.nodes[0].engine
    assert engine is not None
    cached = [cluster.upload_image(bytes([n]) * 100) for n in range(3)]
    for image_id in cached:
        http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN)
        wait_cached(http, cluster.url, image_id)
    queued = cluster.upload_image(b"q" * 10)
    engine.legacy_queue(queued)  # a queue file only: it stays queued
    try:
        for _ in range(2):  # the second listing reuses the first one's texts
            listing = http.get(f"{cluster.url}/v2/cache", headers=ADMIN)
            expected = json.dumps({"cached_images": engine.list_cached(), "queued_images": [queued]}).encode()
            assert listing.content == expected
            assert listing.headers["Content-Length"] == str(len(expected))
            legacy = http.get(f"{cluster.url}/v2/cached_images", headers=ADMIN)
            assert legacy.content == json.dumps({"cached_images": engine.list_cached()}).encode()
        assert set(cached) <= {entry["image_id"] for entry in listing.json()["cached_images"]}
    finally:
        engine.delete_queued(queued)
        for image_id in cached:
            engine.delete(image_id)


# -- images and the data path ------------------------------------------------------------------------


def test_image_create_shape_matches_glance(noauth: ReferenceCluster, http: httpx.Client) -> None:
    response = http.post(
        f"{noauth.url}/v2/images", json={"name": "A", "disk_format": "raw", "container_format": "bare"}
    )
    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "name", "disk_format", "container_format", "visibility", "size", "virtual_size", "status", "checksum",
        "protected", "min_ram", "min_disk", "owner", "os_hidden", "os_hash_algo", "os_hash_value", "id",
        "created_at", "updated_at", "tags", "self", "file", "schema",
    ]  # fmt: skip
    assert (body["status"], body["visibility"], body["owner"], body["size"]) == ("queued", "shared", None, None)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["created_at"])
    assert response.headers["location"] == f"{noauth.url}/v2/images/{body['id']}"
    assert response.headers["openstack-image-import-methods"] == "glance-direct,web-download,copy-image"
    data = os.urandom(1000)
    upload = http.put(
        f"{noauth.url}/v2/images/{body['id']}/file",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 204
    shown = http.get(f"{noauth.url}/v2/images/{body['id']}").json()
    assert (shown["status"], shown["size"], shown["os_hash_algo"]) == ("active", 1000, "sha512")
    assert http.get(f"{noauth.url}/v2/images/{body['id']}/file").content == data


SCHEMA_NAMES = {
    "image": "image",
    "images": "images",
    "member": "member",
    "members": "members",
    "metadefs/namespace": "namespace",
    "metadefs/resource_type": "resource_type_association",
}


@pytest.mark.parametrize(("path", "name"), SCHEMA_NAMES.items())
def test_schemas_are_served_as_json(noauth: ReferenceCluster, http: httpx.Client, path: str, name: str) -> None:
    # python-glanceclient falls back to API v1 (which has no cache commands) when it cannot fetch these.
    response = http.get(f"{noauth.url}/v2/schemas/{path}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["name"] == name


def test_image_schema_describes_the_images_served(noauth: ReferenceCluster, http: httpx.Client) -> None:
    schema = http.get(f"{noauth.url}/v2/schemas/image").json()["properties"]
    image = http.get(f"{noauth.url}/v2/images/{noauth.upload_image(b'schema')}").json()
    assert set(image) <= set(schema)
    assert schema["disk_format"]["enum"] == [None, *DISK_FORMATS]
    assert schema["container_format"]["enum"] == [None, *CONTAINER_FORMATS]


def test_unknown_schema_is_404_and_schemas_are_read_only(noauth: ReferenceCluster, http: httpx.Client) -> None:
    assert http.get(f"{noauth.url}/v2/schemas/nothing").status_code == 404
    assert http.get(f"{noauth.url}/v2/schemas").status_code == 404
    posted = http.post(f"{noauth.url}/v2/schemas/image")
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET")


def test_image_list_filters_and_paging(noauth: ReferenceCluster, http: httpx.Client) -> None:
    ids = [noauth.upload_image(b"l", name="paged") for _ in range(3)]
    by_name = http.get(f"{noauth.url}/v2/images", params={"name": "paged"}).json()
    assert sorted(image["id"] for image in by_name["images"]) == sorted(ids)
    assert by_name["first"] == "/v2/images?name=paged" and by_name["schema"] == "/v2/schemas/images"
    first_page = http.get(f"{noauth.url}/v2/images", params={"name": "paged", "limit": 2}).json()
    assert len(first_page["images"]) == 2
    rest = http.get(noauth.url + first_page["next"]).json()
    assert {i["id"] for i in first_page["images"] + rest["images"]} == set(ids)
    hidden = http.get(f"{noauth.url}/v2/images?os_hidden=True").content
    assert hidden == b'{"images": [], "first": "/v2/images?os_hidden=True", "schema": "/v2/schemas/images"}'


def test_image_not_found_message(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.get(f"{cluster.url}/v2/images/{UNKNOWN}", headers={**ADMIN, "Accept": "application/json"})
    assert response.status_code == 404
    assert response.json()["message"] == f"No image found with ID {UNKNOWN}<br /><br />\n\n\n"


def test_member_cannot_see_other_projects_images(cluster: ReferenceCluster, http: httpx.Client) -> None:
    private = cluster.upload_image(b"p", owner="p-admin", visibility="private")
    own = cluster.upload_image(b"o", owner="p-member", visibility="private")
    assert http.get(f"{cluster.url}/v2/images/{private}/file", headers=MEMBER).status_code == 404
    assert http.get(f"{cluster.url}/v2/images/{own}/file", headers=MEMBER).status_code == 200
    listed = {image["id"] for image in http.get(f"{cluster.url}/v2/images", headers=MEMBER).json()["images"]}
    assert own in listed and private not in listed


def test_download_headers_store_cache_and_range(cluster: ReferenceCluster) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    image_id = cluster.upload_image(data)
    for source in ("store", "cache"):
        status, headers, body = split_response(raw_request(cluster.url, "GET", f"/v2/images/{image_id}/file", ADMIN))
        assert status == "HTTP/1.1 200 OK", source
        assert body == data
        names = dict(headers)
        assert names["Content-Type"] == "application/octet-stream"
        assert names["Content-Length"] == str(len(data))
        assert len(names["Content-MD5"]) == 32
    status, headers, body = split_response(
        raw_request(cluster.url, "GET", f"/v2/images/{image_id}/file", {**ADMIN, "Range": "bytes=0-9"})
    )
    assert status == "HTTP/1.1 206 Partial Content"
    assert dict(headers)["Content-Range"] == f"bytes 0-9/{len(data)}"
    assert body == data[:10]


def test_range_suffix_open_and_unsatisfiable(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"0123456789")
    url = f"{cluster.url}/v2/images/{image_id}/file"
    assert http.get(url, headers={**ADMIN, "Range": "bytes=-3"}).content == b"789"
    assert http.get(url, headers={**ADMIN, "Range": "bytes=7-"}).content == b"789"
    bad = http.get(url, headers={**ADMIN, "Range": "bytes=20-30"})
    assert bad.status_code == 416 and bad.headers["content-range"] == "bytes */10"


def test_queued_image_download_is_204(cluster: ReferenceCluster, http: httpx.Client) -> None:
    queued = cluster.store.create(name="nodata").id
    response = http.get(f"{cluster.url}/v2/images/{queued}/file", headers=ADMIN)
    assert response.status_code == 204 and response.content == b""


def test_deactivate_and_reactivate(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"d" * 10, owner="p-member", visibility="private")
    assert http.post(f"{cluster.url}/v2/images/{image_id}/actions/deactivate", headers=MEMBER).status_code == 403
    assert http.post(f"{cluster.url}/v2/images/{image_id}/actions/deactivate", headers=ADMIN).status_code == 204
    assert http.get(f"{cluster.url}/v2/images/{image_id}", headers=ADMIN).json()["status"] == "deactivated"
    assert http.get(f"{cluster.url}/v2/images/{image_id}/file", headers=MEMBER).status_code == 403
    assert http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 400
    assert http.post(f"{cluster.url}/v2/images/{image_id}/actions/reactivate", headers=ADMIN).status_code == 204
    assert http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 202


def test_large_cache_hit_streams_exact_bytes(cluster: ReferenceCluster, http: httpx.Client) -> None:
    data = os.urandom(8 * 1024 * 1024 + 17)
    image_id = cluster.upload_image(data)
    http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN)
    wait_cached(http, cluster.url, image_id)
    with http.stream("GET", f"{cluster.url}/v2/images/{image_id}/file", headers=ADMIN) as response:
        received = b"".join(response.iter_bytes())
    assert received == data


def test_large_first_download_is_cached_when_the_client_has_it(cluster: ReferenceCluster,
                                                                 http: httpx.Client) -> None:  # fmt: skip
    """Above 1 MiB the first download is sent from the store file while a thread fills the cache from the same
    file: the fill commits before the last bytes go out, so a client holding the whole image finds it listed at once."""
    data = os.urandom(6 * 1024 * 1024 + 123)
    image_id = cluster.upload_image(data)
    response = http.get(f"{cluster.url}/v2/images/{image_id}/file", headers=ADMIN)
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert image_id in http.get(f"{cluster.url}/v2/cache", headers=ADMIN).text  # no waiting
    cache_dir = cluster.nodes[0].cache_dir
    assert cache_dir is not None and (cache_dir / image_id).read_bytes() == data


def test_a_large_first_download_ends_before_the_fill_is_durable(cluster: ReferenceCluster, http: httpx.Client,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A fill of DURABLE_LATER bytes or more commits before its flush: the client has the whole image, and finds it
    listed, while the flush is still under way (held here until the client has checked)."""
    from glancecache_client.server.engine import fill as fill_module

    monkeypatch.setattr(fill_module, "DURABLE_LATER", 2 * 1024 * 1024)
    data = os.urandom(3 * 1024 * 1024 + 5)
    image_id = cluster.upload_image(data)
    cache_dir = cluster.nodes[0].cache_dir
    assert cache_dir is not None
    flushing, flushed = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        cached = cache_dir / image_id
        if cached.exists() and os.path.samefile(f"/proc/self/fd/{fd}", cached):
            flushing.set()
            assert flushed.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    try:
        response = http.get(f"{cluster.url}/v2/images/{image_id}/file", headers=ADMIN)
        assert response.status_code == 200 and response.content == data
        assert flushing.is_set()  # the download ended while the fill's flush waits
        assert image_id in http.get(f"{cluster.url}/v2/cache", headers=ADMIN).text  # on the same connection
        assert (cache_dir / "incomplete" / image_id).exists()  # not durable yet
    finally:
        flushed.set()
    deadline = time.monotonic() + 10
    while (cache_dir / "incomplete" / image_id).exists():
        assert time.monotonic() < deadline, "the fill never finished making its data durable"
        time.sleep(0.02)
    assert (cache_dir / image_id).read_bytes() == data


def test_aborted_download_leaves_nothing_cached(cluster: ReferenceCluster, http: httpx.Client) -> None:
    data = os.urandom(32 * 1024 * 1024)  # far more than the socket buffers hold
    image_id = cluster.upload_image(data)
    engine = cluster.nodes[0].engine
    assert engine is not None
    failed_before = engine.stats()["fills_failed"]
    parts = urlsplit(cluster.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        request = f"GET /v2/images/{image_id}/file HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        request += "".join(f"{k}: {v}\r\n" for k, v in ADMIN.items()) + "\r\n"
        sock.sendall(request.encode())
        sock.recv(65536)  # read a little, then hang up
    deadline = time.monotonic() + 10
    while engine.stats()["fills_failed"] == failed_before:
        assert time.monotonic() < deadline, "the aborted fill was never abandoned"
        time.sleep(0.05)
    assert not engine.is_cached(image_id)
    # A complete download afterwards caches it properly.
    assert http.get(f"{cluster.url}/v2/images/{image_id}/file", headers=ADMIN).content == data
    wait_cached(http, cluster.url, image_id)


def test_oversized_json_body_is_refused(noauth: ReferenceCluster, http: httpx.Client) -> None:
    response = http.post(f"{noauth.url}/v2/images", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert response.status_code == 413
    malformed = http.post(f"{noauth.url}/v2/images", content=b"{not json")
    assert malformed.status_code == 400 and "Malformed JSON in request body." in malformed.text


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Range": "bytes = 2 - 4"}, b"234"),
        ({"Range": "bytes=0-99999"}, b"0123456789"),
        ({"Range": "bytes=-0"}, None),
        ({"Range": "bytes=-"}, None),
        ({"Range": "bytes=0-1,3-4"}, None),  # several ranges are not served
        ({"Range": "BYTES=0-1"}, None),
        ({"Range": "items=0-1"}, None),
        ({"Range": "bytes=4-2"}, None),
        ({"Content-Range": "bytes 2-4/*"}, b"234"),
        ({"Content-Range": "bytes 8-99/3"}, b"89"),  # the total the client claims is not checked
        ({"Content-Range": "bytes 2-4/x"}, None),
        ({"Content-Range": "bytes */10"}, None),
        ({"Content-Range": "bytes 4-2/10"}, None),
    ],
)
def test_range_and_content_range_forms(
    cluster: ReferenceCluster, http: httpx.Client, headers: dict[str, str], expected: bytes | None
) -> None:
    # werkzeug parses both headers; what is served for each form stays what it was with the regexes before.
    image_id = cluster.upload_image(b"0123456789")
    answer = http.get(f"{cluster.url}/v2/images/{image_id}/file", headers={**ADMIN, **headers})
    if expected is None:
        assert (answer.status_code, answer.headers["content-range"]) == (416, "bytes */10")
    else:
        assert (answer.status_code, answer.content) == (206, expected)


def test_pipelined_requests_are_answered_in_order_on_one_connection(noauth_cluster: ReferenceCluster) -> None:
    """Requests sent before the answers to the earlier ones (in one write, and one more while the first are
    answered) get their answers in order; the connection stays usable and closes when asked."""
    parts = urlsplit(noauth_cluster.url)
    head = f"Host: {parts.netloc}\r\nAccept: application/json\r\n"
    ask = [f"GET /versions HTTP/1.1\r\n{head}\r\n", f"GET /v2/cache HTTP/1.1\r\n{head}\r\n",
           f"GET /v2/images/{UNKNOWN} HTTP/1.1\r\n{head}\r\n"]  # fmt: skip
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall("".join(ask).encode())
        first = sock.recv(65536)
        sock.sendall(f"GET /v2/cache HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
        chunks = [first]
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", b"".join(chunks))
    assert statuses == [b"200", b"200", b"404", b"200"]
