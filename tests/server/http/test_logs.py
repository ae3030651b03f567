"""The reference server's logs, read from the stderr of a real ``glancecache-server`` process.

One access line per request (node, method, path, status, bytes, seconds, request id, user, project) and
one line per cache event (queued, fill started/finished/failed with bytes, time and reason, prune, clean,
clear), each naming its node; ``--log-format json`` writes one JSON object per line with stable keys.
No token or password ever appears, wherever the client put it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server_process import running

BASE_KEYS = {"time", "level", "logger", "node", "event", "message"}
TRUSTED = {"X-Identity-Status": "Confirmed", "X-Roles": "admin", "X-User-Id": "u-alice", "X-Project-Id": "p-ops"}
OCTETS = {**TRUSTED, "Content-Type": "application/octet-stream"}
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+ \[(?P<node>[^]]+)] (?P<message>.*)$")


def _records(log: str) -> list[dict[str, Any]]:
    records = []
    for line in log.splitlines():
        record = json.loads(line)  # every line is one JSON object: nothing else is written
        assert set(record) >= BASE_KEYS, record
        records.append(record)
    return records


def _events(records: list[dict[str, Any]], name: str, **fields: object) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == name and all(r.get(k) == v for k, v in fields.items())]


def _upload(http: httpx.Client, url: str, data: bytes) -> str:
    image_id: str = http.post(f"{url}/v2/images", json={"container_format": "bare", "disk_format": "raw"},
                              headers=TRUSTED).json()["id"]  # fmt: skip
    assert http.put(f"{url}/v2/images/{image_id}/file", content=data, headers=OCTETS).status_code == 204
    return image_id


def _wait_cached(http: httpx.Client, url: str, image_id: str) -> None:
    deadline = time.monotonic() + 30
    while image_id not in [e["image_id"] for e in http.get(f"{url}/v2/cache", headers=TRUSTED).json()["cached_images"]]:
        assert time.monotonic() < deadline, f"{image_id} not cached on {url}"
        time.sleep(0.05)


def test_json_log_has_an_access_line_per_request_and_every_cache_event(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    args = ["--nodes", "2", "--auth", "trusted", "--data-dir", str(data_dir), "--log-level", "INFO",
            "--log-format", "json", "--image-cache-max-size", "1000"]  # fmt: skip
    responses: list[httpx.Response] = []
    with running(tmp_path / "server.log", *args, nodes=2) as server, httpx.Client(timeout=30) as http:
        http.event_hooks["response"] = [responses.append]
        one, two = server.urls
        good = _upload(http, one, b"g" * 5000)
        bad = _upload(http, one, b"b" * 3000)
        (data_dir / "images" / bad).write_bytes(b"B" * 3000)  # the store now returns bytes that do not verify
        assert http.put(f"{one}/v2/cache/{good}", headers=TRUSTED).status_code == 202
        _wait_cached(http, one, good)
        downloaded = http.get(f"{two}/v2/images/{good}/file", headers=TRUSTED)  # fills node two's cache
        assert downloaded.content == b"g" * 5000
        _wait_cached(http, two, good)
        hit = http.get(f"{two}/v2/images/{good}/file", headers=TRUSTED)  # served from the cache file
        assert hit.content == b"g" * 5000
        # Logged once sent (from the cache file), not when the kept-alive connection closes.
        deadline = time.monotonic() + 5
        while hit.headers["x-openstack-request-id"] not in server.log():
            assert time.monotonic() < deadline, "no access line for the cache hit while its connection is open"
            time.sleep(0.02)
        assert http.get(f"{one}/v2/images/{bad}/file", headers=TRUSTED).status_code == 200
        assert http.get(f"{two}/v2/images/{good}/file", headers={**TRUSTED, "Range": "bytes=10-19"}).status_code == 206
        assert http.head(f"{two}/v2/images/{good}/file", headers=TRUSTED).status_code == 405  # as Glance
        assert http.get(f"{one}/v2/images/no-such-image", headers=TRUSTED).status_code == 404
        assert http.post(f"{two}/v2/cache/prune", headers=TRUSTED).json()["total_files_pruned"] == 1
        assert http.post(f"{one}/v2/cache/clean", headers=TRUSTED).status_code == 200
        assert http.delete(f"{one}/v2/cache", headers=TRUSTED).status_code == 204
        assert server.stop() == 0
        records = _records(server.log())

    # One access line per request, written when the response was complete.
    access = {line["request_id"]: line for line in _events(records, "access")}
    assert len(access) == len(_events(records, "access")) == len(responses)
    for response in responses:
        line = access[response.headers["x-openstack-request-id"]]
        url = str(response.request.url)
        assert line["node"] == url.split("/v2", 1)[0]
        assert (line["method"], line["status"]) == (response.request.method, response.status_code)
        assert line["path"] == response.request.url.path
        assert line["bytes"] == len(response.content)
        assert (line["user"], line["project"]) == ("u-alice", "p-ops")
        assert isinstance(line["seconds"], float) and line["seconds"] >= 0
        assert line["logger"] == "glancecache_client.server.access" and line["level"] == "INFO"
    assert _events(records, "access", path=f"/v2/images/{good}/file", node=two, bytes=5000, status=200)

    # Every engine event names its node.
    assert _events(records, "queued", node=one, image_id=good, via="api")
    for node, trigger in ((one, "queue"), (two, "download")):
        assert _events(records, "fill_started", node=node, image_id=good, trigger=trigger)
        [finished] = _events(records, "fill_finished", node=node, image_id=good)
        assert finished["bytes"] == 5000 and finished["seconds"] >= 0
    [failed] = _events(records, "fill_failed", node=one, image_id=bad)
    assert failed["level"] == "ERROR" and failed["bytes"] == 3000
    assert failed["reason"].startswith("Checksum verification failed (sha512 ")  # the digest a fill verifies
    [prune] = _events(records, "prune", node=two)
    assert (prune["files"], prune["bytes"], prune["remaining_bytes"], prune["max_size"]) == (1, 5000, 0, 1000)
    [clean] = _events(records, "clean", node=one)
    assert clean["invalid_files"] == 1 and clean["stalled_files"] == 0  # the failed fill's file
    assert _events(records, "clear", node=one, target="cache", images=1)
    assert _events(records, "clear", node=one, target="queue", images=0)
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL") and r["event"] != "fill_failed"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_token_or_password_in_the_logs(tmp_path: Path, log_format: str) -> None:
    password, bogus = "pw-7f3a9c1e5d", "gAAAAAbogus-token-4d2b8e"
    users = tmp_path / "users.json"
    alice = {"name": "alice", "password": password, "project": "ops", "roles": ["admin"]}
    users.write_text(json.dumps({"users": [alice]}))
    args = ["--auth", "keystone", "--users-file", str(users), "--data-dir", str(tmp_path / "d"),
            "--log-level", "DEBUG", "--log-format", log_format]  # fmt: skip
    with running(tmp_path / "server.log", *args) as server, httpx.Client(timeout=30) as http:
        url = server.url
        user = {"name": "alice", "domain": {"name": "Default"}, "password": password}
        scope = {"project": {"name": "ops", "domain": {"name": "Default"}}}
        auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}}
        issued = http.post(f"{url}/identity/v3/auth/tokens", json=auth)
        assert issued.status_code == 201
        token = issued.headers["X-Subject-Token"]
        both = {"X-Auth-Token": token, "X-Subject-Token": token}
        requests = [
            (f"/v2/cache?token={token}&password={password}", both, 200),
            (f"/identity/v3/auth/tokens?nocatalog&token={token}", both, 200),
            ("/v2/images", {"X-Auth-Token": bogus}, 401),
            (f"/v2/images?os_token={bogus}", {}, 401),
            # A path with a line break can neither split nor forge a log line.
            ("/v2/images/x%0a2026-01-01 forged", both, 404),
        ]
        for path, headers, status in requests:
            assert http.get(url + path, headers=headers).status_code == status, path
        assert server.stop() == 0
        log = server.log()
    for secret in (token, password, bogus):
        assert secret not in log
    if log_format == "json":
        access = [(r["node"], r["message"]) for r in _records(log) if r["event"] == "access"]
    else:
        lines = [TEXT_LINE.match(line) for line in log.splitlines() if not line.startswith("OS_AUTH_URL=")]
        assert all(lines), log
        access = [(m["node"], m["message"]) for m in lines if m is not None and " request_id=" in m["message"]]
    assert len(access) == 1 + len(requests)
    assert all(node == url for node, _ in access)
    cache = [message for _, message in access if message.startswith("GET /v2/cache 200 ")]
    assert len(cache) == 1 and " user=- " not in cache[0] and " project=- " not in cache[0]
    assert [m for _, m in access if m.startswith("GET /v2/images/x\\x0a2026-01-01 forged 404 ")]


def test_a_client_gone_mid_upload_is_one_line_and_the_upload_rolls_back(tmp_path: Path) -> None:
    # Before: "Unhandled error serving PUT ..." with a traceback of the listener's ConnectionResetError.
    import socket
    from urllib.parse import urlsplit

    args = ["--auth", "trusted", "--data-dir", str(tmp_path / "d"), "--log-level", "INFO", "--log-format", "json"]
    with running(tmp_path / "server.log", *args) as server, httpx.Client(timeout=30) as http:
        url = server.url
        image_id = http.post(f"{url}/v2/images", json={"container_format": "bare", "disk_format": "raw"},
                             headers=TRUSTED).json()["id"]  # fmt: skip
        target = urlsplit(url)
        headers = "".join(f"{name}: {value}\r\n" for name, value in OCTETS.items())
        with socket.create_connection((target.hostname, target.port)) as sock:
            sock.sendall(f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: {target.netloc}\r\n{headers}"
                         f"Content-Length: 1000000\r\n\r\n".encode() + b"x" * 70_000)  # fmt: skip
            time.sleep(0.3)  # the app is reading the body
        deadline = time.monotonic() + 10
        while not _events(_records((tmp_path / "server.log").read_text()), "client_gone"):
            assert time.monotonic() < deadline, "no client_gone line"
            time.sleep(0.05)
        shown = http.get(f"{url}/v2/images/{image_id}", headers=TRUSTED).json()
        assert (shown["status"], shown["size"]) == ("queued", None)  # rolled back: it can be uploaded again
        assert http.put(f"{url}/v2/images/{image_id}/file", content=b"again", headers=OCTETS).status_code == 204
    records = _records((tmp_path / "server.log").read_text())
    gone = _events(records, "client_gone")
    assert len(gone) == 1 and "exception" not in gone[0] and "Traceback" not in gone[0]["message"]
    assert f"PUT /v2/images/{image_id}/file" in gone[0]["message"]
    assert [r for r in records if r["level"] == "ERROR" or "Unhandled" in r["message"]] == []
