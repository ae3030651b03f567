"""One library scenario, run against any Glance-compatible node, reduced to a transcript of observations.

The reference server's tests and the opt-in Glance 33 interop tier both run it, and the interop tier asserts the two
transcripts are equal: that is what "the library behaves identically against a real Glance 33 node" means here.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from glancecache_client import CacheClient, errors

Transcript = list[tuple[str, object]]


def create_image(endpoint: str, data: bytes | None, name: str) -> str:
    """Create (and upload, unless data is None) an image through the image API, as an operator would."""
    with httpx.Client(base_url=endpoint, timeout=30) as http:
        created = http.post("/v2/images", json={"name": name, "container_format": "bare", "disk_format": "raw"})
        assert created.status_code == 201, created.text
        image_id = str(created.json()["id"])
        if data is not None:
            uploaded = http.put(
                f"/v2/images/{image_id}/file", content=data, headers={"Content-Type": "application/octet-stream"}
            )
            assert uploaded.status_code == 204, uploaded.text
        return image_id


def download(endpoint: str, image_id: str) -> bytes:
    with httpx.Client(base_url=endpoint, timeout=30) as http:
        response = http.get(f"/v2/images/{image_id}/file")
        assert response.status_code == 200
        return response.content


def outcome(call: object) -> str:
    """Run a zero-argument call; name its error class (with status) or 'ok'."""
    try:
        call()  # type: ignore[operator]
    except errors.APIError as exc:
        return f"{type(exc).__name__} {exc.status}"
    except errors.GlanceCacheError as exc:
        return type(exc).__name__
    return "ok"


def wait_for(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def hits_of(client: CacheClient, image_id: str) -> int | None:
    return next((i.hits for i in client.list().cached if i.image_id == image_id), None)


def run_scenario(endpoint: str) -> Transcript:
    """Exercise every CacheClient operation on a fresh node; return what was observed, normalized."""
    notes: Transcript = []
    data_a, data_b = b"A" * 1024, bytes(range(256)) * 8
    unknown = str(uuid.uuid4())
    with CacheClient(endpoint, timeout=30) as client:
        notes.append(("versions", sorted({"2.14", "2.16", "2.18"} & client.versions)))
        state = client.list()
        notes.append(("empty", (len(state.cached), len(state.queued))))
        image_a = create_image(endpoint, data_a, "roundtrip-a")
        image_b = create_image(endpoint, data_b, "roundtrip-b")
        image_q = create_image(endpoint, None, "roundtrip-queued")

        notes.append(("queue A", outcome(lambda: client.queue(image_a))))
        cached = client.wait_cached(image_a, timeout=30, interval=0.1)
        now = datetime.now(timezone.utc)
        notes.append(("A cached", (cached.size, cached.hits, cached.node == client.endpoint)))
        notes.append(("A checksum absent or md5", cached.checksum in (None, hashlib.md5(data_a).hexdigest())))
        assert cached.last_modified is not None
        notes.append(("A modified recently, in UTC", abs(cached.last_modified - now) < timedelta(minutes=2)))
        notes.append(("queue A again", outcome(lambda: client.queue(image_a))))
        state = client.list()
        notes.append(("listing after queue", ([i.image_id == image_a for i in state.cached], list(state.queued))))
        notes.append(("nodes A", client.nodes(image_a) == [endpoint]))
        notes.append(("nodes B", client.nodes(image_b)))
        notes.append(("nodes unknown", outcome(lambda: client.nodes(unknown))))
        notes.append(("queue non-active", outcome(lambda: client.queue(image_q))))
        notes.append(("queue unknown", outcome(lambda: client.queue(unknown))))
        notes.append(("delete unknown", outcome(lambda: client.delete(unknown))))
        notes.append(("delete existing uncached", outcome(lambda: client.delete(image_b))))
        notes.append(("queue malformed", outcome(lambda: client.queue("not-a-uuid"))))

        assert download(endpoint, image_b) == data_b
        notes.append(("download fills cache", wait_for(lambda: client.list().is_cached(image_b))))
        assert download(endpoint, image_b) == data_b
        # Glance counts a hit only after the response body has gone out, so a listing sent at once may not see it
        # yet: wait (boundedly) for the count, then record what was seen.
        wait_for(lambda: hits_of(client, image_b) == 1, timeout=10)
        notes.append(("hits after one cached read", hits_of(client, image_b)))

        prune = client.prune()
        notes.append(("prune under limit", (prune.files, prune.bytes)))
        notes.append(("clean", outcome(client.clean)))
        cleared = client.clear("queue")
        notes.append(("clear queue", (cleared.cached, cleared.queued)))
        cleared = client.clear("cache")
        notes.append(("clear cache", (cleared.cached, cleared.queued)))
        state = client.list()
        notes.append(("after clears", (len(state.cached), len(state.queued))))
        cleared = client.clear("both")
        notes.append(("clear both", (cleared.cached, cleared.queued)))
        notes.append(("delete after clear", outcome(lambda: client.delete(image_a))))
        notes.append(("clear bad target", outcome(lambda: client.clear("everything"))))
    return notes
