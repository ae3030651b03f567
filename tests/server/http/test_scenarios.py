"""Acceptance scenarios S1..S50 (upstream-test-scenarios.md §3) against real nodes over real HTTP."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import ADMIN, MEMBER, cached_ids, listing, wait_cached, write_policy

UNKNOWN = "00000000-0000-4000-8000-000000000000"
CLEAR = "x-image-cache-clear-target"
REAL_GLANCE = Path(os.environ.get("RG_VENV", "/tmp/real-glance/venv")) / "bin" / "glance"


def _queue_and_wait(http: httpx.Client, url: str, image_id: str) -> dict[str, object]:
    assert http.put(f"{url}/v2/cache/{image_id}", headers=ADMIN).status_code == 202
    return wait_cached(http, url, image_id)


def _five_calls(http: httpx.Client, url: str, image_id: str, headers: dict[str, str]) -> list[int]:
    return [
        http.get(f"{url}/v2/cache", headers=headers).status_code,
        http.put(f"{url}/v2/cache/{image_id}", headers=headers).status_code,
        http.delete(f"{url}/v2/cache/{image_id}", headers=headers).status_code,
        http.delete(f"{url}/v2/cache", headers=headers).status_code,
        http.delete(f"{url}/v2/cache", headers={**headers, CLEAR: "both"}).status_code,
    ]


# -- A. core contract --------------------------------------------------------------------------------


def test_s01_member_cannot_list(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.get(f"{cluster.url}/v2/cache", headers=MEMBER)
    assert response.status_code == 403
    assert "You are not authorized to complete cache_list action." in response.text


def test_s02_admin_lists_empty_cache(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.get(f"{cluster.url}/v2/cache", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"cached_images": [], "queued_images": []}


def test_s03_queue_unknown_non_uuid_is_404(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.put(f"{cluster.url}/v2/cache/non-existing-image-id", headers=ADMIN)
    assert response.status_code == 404
    assert "Image non-existing-image-id not found." in response.text


def test_s04_queue_queued_image_is_400(cluster: ReferenceCluster, http: httpx.Client) -> None:
    queued = cluster.store.create(name="q", disk_format="raw", container_format="bare").id
    response = http.put(f"{cluster.url}/v2/cache/{queued}", headers=ADMIN)
    assert response.status_code == 400
    assert "Only images with status active can be targeted for queueing" in response.text


def test_s05_admin_queues_other_projects_private_image(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"m" * 1024, owner="p-member", visibility="private")
    response = http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN)
    assert response.status_code == 202
    assert response.content == b""
    wait_cached(http, cluster.url, image_id)


def test_s06_entry_fields_after_queue(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"s" * 1024)
    body = _queue_and_wait(http, cluster.url, image_id)
    assert body["queued_images"] == []
    [entry] = body["cached_images"]  # type: ignore[misc]
    assert entry["image_id"] == image_id
    assert entry["size"] == 1024
    assert entry["hits"] == 0
    assert isinstance(entry["last_accessed"], float) and isinstance(entry["last_modified"], float)
    assert abs(entry["last_modified"] - time.time()) < 60


def test_s07_clear_all(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"c" * 100)
    _queue_and_wait(http, cluster.url, image_id)
    cluster.nodes[0].engine.legacy_queue(cluster.upload_image(b"q" * 10))  # type: ignore[union-attr]
    response = http.delete(f"{cluster.url}/v2/cache", headers=ADMIN)
    assert response.status_code == 204 and response.content == b""
    assert listing(http, cluster.url) == {"cached_images": [], "queued_images": []}


def test_s08_clear_invalid_target_is_400(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, CLEAR: "invalid"})
    assert response.status_code == 400


def test_s09_per_node_state_and_clear(cluster: ReferenceCluster, http: httpx.Client) -> None:
    left, right = cluster.urls
    image_id = cluster.upload_image(b"r" * 2048)
    _queue_and_wait(http, left, image_id)
    _queue_and_wait(http, right, image_id)
    assert image_id in cached_ids(http, right)
    assert http.delete(f"{right}/v2/cache", headers=ADMIN).status_code == 204
    assert listing(http, right) == {"cached_images": [], "queued_images": []}
    assert image_id in cached_ids(http, left)
    assert http.delete(f"{left}/v2/cache", headers=ADMIN).status_code == 204
    assert listing(http, left) == {"cached_images": [], "queued_images": []}


def test_s10_caching_on_one_node_does_not_show_on_another(cluster: ReferenceCluster, http: httpx.Client) -> None:
    left, right = cluster.urls
    image_id = cluster.upload_image(b"x" * 512)
    _queue_and_wait(http, left, image_id)
    assert image_id in cached_ids(http, left)
    assert image_id not in cached_ids(http, right)


def test_s11_client_contract_statuses(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"k" * 64)
    # No microversion header anywhere; one given is ignored.
    headers = {**ADMIN, "OpenStack-API-Version": "image 9.99"}
    assert http.put(f"{cluster.url}/v2/cache/{image_id}", headers=headers).status_code == 202
    listed = http.get(f"{cluster.url}/v2/cache", headers=headers)
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert "openstack-api-version" not in listed.headers
    assert http.delete(f"{cluster.url}/v2/cache/{image_id}", headers=headers).status_code == 204
    assert http.delete(f"{cluster.url}/v2/cache", headers=headers).status_code == 204


# -- B. per-entry delete, targeted clear, image deletion ---------------------------------------------


def test_s12_delete_cached_entry(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"123456789")
    _queue_and_wait(http, cluster.url, image_id)
    assert http.delete(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 204
    assert listing(http, cluster.url)["cached_images"] == []


def test_s13_delete_unknown_entry_is_404(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.delete(f"{cluster.url}/v2/cache/non-existing-image-id", headers=ADMIN)
    assert response.status_code == 404


def test_s14_clear_target_both_is_400(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, CLEAR: "both"})
    assert response.status_code == 400
    assert "If provided &#x27;x-image-cache-clear-target&#x27; must be" in response.text


def test_s15_clear_target_cache(cluster: ReferenceCluster, http: httpx.Client) -> None:
    first, second = cluster.upload_image(b"1" * 10), cluster.upload_image(b"2" * 20)
    _queue_and_wait(http, cluster.url, first)
    body = _queue_and_wait(http, cluster.url, second)
    assert len(body["cached_images"]) == 2 and body["queued_images"] == []  # type: ignore[arg-type]
    queued = cluster.upload_image(b"3")
    cluster.nodes[0].engine.legacy_queue(queued)  # type: ignore[union-attr]
    assert http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, CLEAR: "cache"}).status_code == 204
    assert listing(http, cluster.url) == {"cached_images": [], "queued_images": [queued]}


def test_s16_clear_target_queue(cluster: ReferenceCluster, http: httpx.Client) -> None:
    cached = cluster.upload_image(b"c" * 10)
    _queue_and_wait(http, cluster.url, cached)
    engine = cluster.nodes[0].engine
    assert engine is not None
    queued = [cluster.upload_image(b"q" * 5), cluster.upload_image(b"w" * 5)]
    for image_id in queued:
        engine.legacy_queue(image_id)
    assert sorted(listing(http, cluster.url)["queued_images"]) == sorted(queued)
    assert http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, CLEAR: "queue"}).status_code == 204
    body = listing(http, cluster.url)
    assert body["queued_images"] == []
    assert [entry["image_id"] for entry in body["cached_images"]] == [cached]


def test_s17_queue_then_listed(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"l" * 300)
    assert http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 202
    deadline = time.monotonic() + 10
    while True:
        body = listing(http, cluster.url)
        ids = body["queued_images"] + [entry["image_id"] for entry in body["cached_images"]]
        if ids:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert ids == [image_id]


def test_s18_clear_cached_and_queued(cluster: ReferenceCluster, http: httpx.Client) -> None:
    _queue_and_wait(http, cluster.url, cluster.upload_image(b"a" * 10))
    cluster.nodes[0].engine.legacy_queue(cluster.upload_image(b"b"))  # type: ignore[union-attr]
    body = listing(http, cluster.url)
    assert len(body["cached_images"]) + len(body["queued_images"]) == 2
    assert http.delete(f"{cluster.url}/v2/cache", headers=ADMIN).status_code == 204
    assert listing(http, cluster.url) == {"cached_images": [], "queued_images": []}


def test_s19_deleting_image_purges_cache_synchronously(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"d" * 4096)
    _queue_and_wait(http, cluster.url, image_id)
    _queue_and_wait(http, cluster.urls[1], image_id)
    assert http.delete(f"{cluster.url}/v2/images/{image_id}", headers=ADMIN).status_code == 204
    assert listing(http, cluster.url) == {"cached_images": [], "queued_images": []}
    # The cluster purges every node's copy, not only the one that served the delete.
    assert listing(http, cluster.urls[1]) == {"cached_images": [], "queued_images": []}


def test_s20_delete_entry_of_deleted_image_still_in_queue(cluster: ReferenceCluster, http: httpx.Client) -> None:
    engine = cluster.nodes[0].engine
    assert engine is not None
    # Queued, with no image in the catalogue. (A deletion is seen by every node and purges the queue, so
    # an id the catalogue never had is the way left to reach this state.)
    image_id = str(uuid.uuid4())
    engine.legacy_queue(image_id)
    assert image_id in listing(http, cluster.url)["queued_images"]
    assert http.delete(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 204
    assert listing(http, cluster.url) == {"cached_images": [], "queued_images": []}
    assert http.delete(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 404


def test_s21_delete_entry_of_uncached_image_is_204(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"n" * 10)
    assert http.delete(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 204
    assert http.delete(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 204


def test_s22_queue_already_cached_image(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"p" * 100)
    before = _queue_and_wait(http, cluster.url, image_id)
    assert http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN).status_code == 202
    cluster.nodes[0].engine.wait_idle(10)  # type: ignore[union-attr]
    after = listing(http, cluster.url)
    assert [entry["image_id"] for entry in after["cached_images"]] == [image_id]
    assert after == before


@pytest.mark.parametrize("status", ["saving", "queued", "pending_delete", "deactivated", "importing", "uploading"])
def test_s23_queue_non_active_is_400(cluster: ReferenceCluster, http: httpx.Client, status: str) -> None:
    image_id = cluster.upload_image(b"s" * 10)
    cluster.store.set_status(image_id, status)
    response = http.put(f"{cluster.url}/v2/cache/{image_id}", headers=ADMIN)
    assert response.status_code == 400
    assert listing(http, cluster.url) == {"cached_images": [], "queued_images": []}


# -- C. authorization and the enabled/disabled matrix ------------------------------------------------


def test_s24_cache_disabled_is_404(disabled_cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = disabled_cluster.upload_image(b"a" * 10)
    assert _five_calls(http, disabled_cluster.url, image_id, ADMIN) == [404] * 5
    response = http.get(f"{disabled_cluster.url}/v2/cache", headers=ADMIN)
    assert "Caching via API is not supported at this site." in response.text


def test_s25_disabled_and_policy_denies_is_403(tmp_path: Path, http: httpx.Client) -> None:
    deny = {rule: "!" for rule in ("cache_list", "cache_image", "cache_delete")}
    policy = write_policy(tmp_path / "policy.json", deny)
    with run_cluster(1, auth="noauth", cache_enabled=False, policy_file=policy, data_dir=tmp_path / "d") as off:
        image_id = off.upload_image(b"a" * 10)
        assert _five_calls(http, off.url, image_id, {}) == [403] * 5


def test_s26_member_gets_403_even_for_target_both(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"a" * 10, owner="p-member", visibility="private")
    assert _five_calls(http, cluster.url, image_id, MEMBER) == [403] * 5


def test_s27_clean_and_prune_disabled_are_404(disabled_cluster: ReferenceCluster, http: httpx.Client) -> None:
    assert http.post(f"{disabled_cluster.url}/v2/cache/clean", headers=ADMIN).status_code == 404
    assert http.post(f"{disabled_cluster.url}/v2/cache/prune", headers=ADMIN).status_code == 404


def test_s28_error_order(cluster: ReferenceCluster, disabled_cluster: ReferenceCluster, http: httpx.Client) -> None:
    url = cluster.url
    own = cluster.upload_image(b"o" * 10, owner="p-member", visibility="private")
    others = cluster.upload_image(b"x" * 10, owner="p-admin", visibility="private")
    # queue: lookup (404) -> policy (403)
    assert http.put(f"{url}/v2/cache/{UNKNOWN}", headers=MEMBER).status_code == 404
    assert http.put(f"{url}/v2/cache/{others}", headers=MEMBER).status_code == 404
    assert http.put(f"{url}/v2/cache/{own}", headers=MEMBER).status_code == 403
    # delete-entry: an invisible image present in the cache reaches the policy check
    _queue_and_wait(http, url, others)
    assert http.delete(f"{url}/v2/cache/{others}", headers=MEMBER).status_code == 403
    assert http.delete(f"{url}/v2/cache/{UNKNOWN}", headers=MEMBER).status_code == 404
    # clear: policy (403) before the header (400)
    assert http.delete(f"{url}/v2/cache", headers={**MEMBER, CLEAR: "bad"}).status_code == 403
    # disabled: enabled (404) before header (400), lookup before enabled for queue
    off = disabled_cluster.url
    assert http.delete(f"{off}/v2/cache", headers={**ADMIN, CLEAR: "bad"}).status_code == 404
    queued = disabled_cluster.store.create(name="q").id
    assert http.put(f"{off}/v2/cache/{queued}", headers=ADMIN).status_code == 404
    assert "Caching via API" in http.put(f"{off}/v2/cache/{queued}", headers=ADMIN).text
    assert "Image" in http.put(f"{off}/v2/cache/{UNKNOWN}", headers=ADMIN).text
    # nodes: policy (403) before lookup (404)
    assert http.get(f"{url}/v2/cache/nodes/{UNKNOWN}", headers=MEMBER).status_code == 403


# -- D. nodes ----------------------------------------------------------------------------------------


def test_s29_nodes_with_sqlite_driver_is_409(sqlite_cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = sqlite_cluster.upload_image(b"a" * 10)
    response = http.get(f"{sqlite_cluster.url}/v2/cache/nodes/{image_id}", headers=ADMIN)
    assert response.status_code == 409
    assert "Centralized caching is not enabled" in response.text
    assert http.get(f"{sqlite_cluster.url}/v2/cache/nodes/{UNKNOWN}", headers=ADMIN).status_code == 409


def test_s30_nodes_lists_self_reference_urls(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id, other = cluster.upload_image(b"n" * 10), cluster.upload_image(b"o" * 10)
    nodes_url = f"{cluster.url}/v2/cache/nodes"
    assert http.get(f"{nodes_url}/{image_id}", headers=ADMIN).json() == []
    _queue_and_wait(http, cluster.url, image_id)
    response = http.get(f"{nodes_url}/{image_id}", headers=ADMIN)
    assert response.status_code == 200 and response.json() == [cluster.url]
    _queue_and_wait(http, cluster.urls[1], image_id)
    assert sorted(http.get(f"{nodes_url}/{image_id}", headers=ADMIN).json()) == sorted(cluster.urls)
    assert http.get(f"{nodes_url}/{other}", headers=ADMIN).json() == []


def test_s31_nodes_unknown_and_malformed_are_404(cluster: ReferenceCluster, http: httpx.Client) -> None:
    for image_id in (UNKNOWN, "not-a-valid-uuid"):
        response = http.get(f"{cluster.url}/v2/cache/nodes/{image_id}", headers=ADMIN)
        assert response.status_code == 404
        assert f"Image {image_id} not found." in response.text


def test_s32_nodes_policy_by_role(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"r" * 10)
    url = f"{cluster.url}/v2/cache/nodes/{image_id}"
    assert http.get(url, headers=ADMIN).status_code == 200
    for roles in ("reader", "member", ""):
        headers = {**ADMIN, "X-Roles": roles}
        assert http.get(url, headers=headers).status_code == 403, roles


# -- E. clean and prune ------------------------------------------------------------------------------


def test_s33_clean_removes_invalid_and_stalled_files(cluster: ReferenceCluster, http: httpx.Client) -> None:
    cache_dir = cluster.nodes[0].cache_dir
    assert cache_dir is not None
    invalid = cache_dir / "invalid" / cluster.upload_image(b"i")
    stalled = cache_dir / "incomplete" / cluster.upload_image(b"s")
    recent = cache_dir / "incomplete" / cluster.upload_image(b"r")
    for path in (invalid, stalled, recent):
        path.write_bytes(b"partial")
    old = time.time() - 2 * 86400
    os.utime(stalled, (old, old))
    response = http.post(f"{cluster.url}/v2/cache/clean", headers=ADMIN)
    assert response.status_code == 200
    assert response.content == b"" and response.headers["content-length"] == "0"
    assert not invalid.exists() and not stalled.exists() and recent.exists()
    recent.unlink()


def test_s34_clean_refused_removes_nothing(cluster: ReferenceCluster, http: httpx.Client) -> None:
    cache_dir = cluster.nodes[0].cache_dir
    assert cache_dir is not None
    invalid = cache_dir / "invalid" / cluster.upload_image(b"i")
    invalid.write_bytes(b"bad")
    response = http.post(f"{cluster.url}/v2/cache/clean", headers=MEMBER)
    assert response.status_code == 403
    assert "cache_clean" in response.text
    assert invalid.exists()
    invalid.unlink()


def test_s35_prune_under_limit(cluster: ReferenceCluster, http: httpx.Client) -> None:
    _queue_and_wait(http, cluster.url, cluster.upload_image(b"a" * 100))
    response = http.post(f"{cluster.url}/v2/cache/prune", headers=ADMIN)
    assert response.status_code == 200
    assert response.content == b'{"total_files_pruned": 0, "total_bytes_pruned": 0}'


def test_s36_prune_to_max_size(tmp_path: Path, http: httpx.Client) -> None:
    with run_cluster(1, auth="noauth", max_size=102400, data_dir=tmp_path) as small:
        ids = [small.upload_image(bytes([n]) * 10240) for n in range(15)]
        for image_id in ids:
            assert http.put(f"{small.url}/v2/cache/{image_id}").status_code == 202
        small.nodes[0].engine.wait_idle(20)  # type: ignore[union-attr]
        assert len(listing(http, small.url, {})["cached_images"]) == 15
        response = http.post(f"{small.url}/v2/cache/prune")
        assert response.status_code == 200
        result = response.json()
        remaining = listing(http, small.url, {})["cached_images"]
        assert result == {"total_files_pruned": 15 - len(remaining), "total_bytes_pruned": 10240 * 5}
        assert len(remaining) == 10


def test_s37_prune_is_lru_and_max_zero_empties(tmp_path: Path, http: httpx.Client) -> None:
    with run_cluster(1, auth="noauth", max_size=2 * 1000, data_dir=tmp_path / "a") as lru:
        first, second, third = (lru.upload_image(bytes([n]) * 1000) for n in range(3))
        for image_id in (first, second, third):
            assert http.put(f"{lru.url}/v2/cache/{image_id}").status_code == 202
            lru.nodes[0].engine.wait_idle(10)  # type: ignore[union-attr]
            time.sleep(0.01)
        assert http.get(f"{lru.url}/v2/images/{first}/file").content == bytes([0]) * 1000  # a hit
        assert http.post(f"{lru.url}/v2/cache/prune").json() == {
            "total_files_pruned": 1,
            "total_bytes_pruned": 1000,
        }
        assert sorted(cached_ids(http, lru.url)) == sorted([first, third])
    with run_cluster(1, auth="noauth", max_size=0, data_dir=tmp_path / "b") as zero:
        for image_id in (zero.upload_image(b"a" * 10), zero.upload_image(b"b" * 20)):
            http.put(f"{zero.url}/v2/cache/{image_id}")
        zero.nodes[0].engine.wait_idle(10)  # type: ignore[union-attr]
        assert http.post(f"{zero.url}/v2/cache/prune").json() == {"total_files_pruned": 2, "total_bytes_pruned": 30}
        assert cached_ids(http, zero.url) == []


def test_s38_prune_refused(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.post(f"{cluster.url}/v2/cache/prune", headers=MEMBER)
    assert response.status_code == 403
    assert "You are not authorized to complete cache_prune action." in response.text


def test_s39_concurrent_clean_and_prune_all_succeed(cluster: ReferenceCluster) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def call(path: str) -> None:
        with httpx.Client(timeout=30) as client:
            status = client.post(f"{cluster.url}/v2/cache/{path}", headers=ADMIN).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call, args=(path,)) for path in ("clean", "prune") * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8


# -- F. transparent caching and hits -----------------------------------------------------------------


def test_s40_full_download_caches(cluster: ReferenceCluster, http: httpx.Client) -> None:
    data = os.urandom(200_000)
    image_id = cluster.upload_image(data)
    response = http.get(f"{cluster.url}/v2/images/{image_id}/file", headers=ADMIN)
    assert response.status_code == 200 and response.content == data
    wait_cached(http, cluster.url, image_id)


def test_s41_range_download_not_cached(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"ABCDEFGHIJ")
    url = f"{cluster.url}/v2/images/{image_id}/file"
    response = http.get(url, headers={**ADMIN, "Range": "bytes=3-5"})
    assert response.status_code == 206 and response.content == b"DEF"
    assert response.headers["content-range"] == "bytes 3-5/10"
    legacy = http.get(url, headers={**ADMIN, "Content-Range": "bytes 3-5/*"})
    assert legacy.status_code == 206 and legacy.content == b"DEF"
    assert cached_ids(http, cluster.url) == []


def test_s42_hits_count_full_downloads(cluster: ReferenceCluster, http: httpx.Client) -> None:
    data = b"hit" * 1000
    image_id = cluster.upload_image(data)
    body = _queue_and_wait(http, cluster.url, image_id)
    assert body["cached_images"][0]["hits"] == 0  # type: ignore[index]
    for expected in (1, 2):
        assert http.get(f"{cluster.url}/v2/images/{image_id}/file", headers=ADMIN).content == data
        assert listing(http, cluster.url)["cached_images"][0]["hits"] == expected
    assert (
        http.get(f"{cluster.url}/v2/images/{image_id}/file", headers={**ADMIN, "Range": "bytes=0-1"}).status_code == 206
    )
    assert listing(http, cluster.url)["cached_images"][0]["hits"] == 2


def test_s43_refused_download_does_not_cache(tmp_path: Path, http: httpx.Client) -> None:
    policy = write_policy(tmp_path / "policy.json", {"download_image": "!"})
    with run_cluster(1, auth="noauth", policy_file=policy, data_dir=tmp_path / "d") as node:
        image_id = node.upload_image(b"secret" * 100)
        response = http.get(f"{node.url}/v2/images/{image_id}/file")
        assert response.status_code == 403
        assert "download_image" in response.text
        assert cached_ids(http, node.url) == []
        assert http.delete(f"{node.url}/v2/images/{image_id}").status_code == 204
        assert listing(http, node.url, {}) == {"cached_images": [], "queued_images": []}


# -- G. versions and client behaviour ----------------------------------------------------------------


def test_s44_versions_with_and_without_cache(
    cluster: ReferenceCluster, disabled_cluster: ReferenceCluster, http: httpx.Client
) -> None:
    enabled = {v["id"]: v["status"] for v in http.get(f"{cluster.url}/versions").json()["versions"]}
    assert enabled["v2.14"] == "SUPPORTED" and enabled["v2.16"] == "SUPPORTED"
    assert enabled["v2.17"] == "SUPPORTED" and enabled["v2.18"] == "CURRENT"
    disabled = {v["id"]: v["status"] for v in http.get(f"{disabled_cluster.url}/versions").json()["versions"]}
    assert not {"v2.14", "v2.16", "v2.18"} & set(disabled)
    assert disabled["v2.17"] == "CURRENT"


def _real_glance(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REAL_GLANCE), "--os-image-url", url, "--os-auth-token", "fake", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{REAL_GLANCE.parent}:{os.environ['PATH']}"},
    )


needs_glanceclient = pytest.mark.skipif(not REAL_GLANCE.exists(), reason="python-glanceclient peer not installed")


@needs_glanceclient
def test_s45_glanceclient_refuses_without_v214(tmp_path: Path) -> None:
    with run_cluster(1, auth="noauth", cache_enabled=False, data_dir=tmp_path) as off:
        result = _real_glance(off.url, "cache-list")
    assert result.returncode == 1
    assert "Glance does not support image caching API (v2.14)" in result.stderr


@needs_glanceclient
def test_s46_glanceclient_wire_format(noauth: ReferenceCluster, http: httpx.Client) -> None:
    engine = noauth.nodes[0].engine
    assert engine is not None
    cached = noauth.upload_image(b"c" * 100)
    assert _real_glance(noauth.url, "cache-queue", cached).returncode == 0
    wait_cached(http, noauth.url, cached)
    queued = noauth.upload_image(b"q")
    engine.legacy_queue(queued)
    assert _real_glance(noauth.url, "cache-clear", "--target", "queue").returncode == 0
    assert listing(http, noauth.url, {})["queued_images"] == []
    assert cached_ids(http, noauth.url) == [cached]
    engine.legacy_queue(queued)
    assert _real_glance(noauth.url, "cache-clear").returncode == 0  # "both" = no header
    assert listing(http, noauth.url, {}) == {"cached_images": [], "queued_images": []}


@needs_glanceclient
def test_s47_glanceclient_shell_output(noauth: ReferenceCluster, http: httpx.Client) -> None:
    cached = noauth.upload_image(b"x" * 1048576)
    assert _real_glance(noauth.url, "cache-queue", cached).returncode == 0
    wait_cached(http, noauth.url, cached)
    queued = noauth.upload_image(b"q")
    noauth.nodes[0].engine.legacy_queue(queued)  # type: ignore[union-attr]
    result = _real_glance(noauth.url, "cache-list")
    assert result.returncode == 0, result.stderr
    header = " ".join(result.stdout.splitlines()[1].split())
    assert header == "| ID | State | Last Accessed (UTC) | Last Modified (UTC) | Size | Hits |"
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert "cached" in rows[cached] and "1048576" in rows[cached]
    assert rows[queued].count("N/A") == 4
    unknown = _real_glance(noauth.url, "cache-queue", UNKNOWN)
    assert unknown.stderr.strip() == (
        f"'HTTP 404 Not Found: Image {UNKNOWN} not found.': Unable to queue image '{UNKNOWN}' for caching."
    )


# -- H. minor and legacy -----------------------------------------------------------------------------


def test_s48_wrong_methods_get_405_with_allow(cluster: ReferenceCluster, http: httpx.Client) -> None:
    image_id = cluster.upload_image(b"a")
    url = cluster.url
    expectations = [
        ("POST", "/v2/cache", "GET, DELETE"),
        ("PUT", "/v2/cache", "GET, DELETE"),
        ("PATCH", "/v2/cache", "GET, DELETE"),
        ("GET", f"/v2/cache/{image_id}", "DELETE, PUT"),
        ("POST", f"/v2/cache/{image_id}", "DELETE, PUT"),
        ("GET", "/v2/cache/nodes", "DELETE, PUT"),
        ("POST", f"/v2/cache/nodes/{image_id}", "GET"),
        ("DELETE", f"/v2/cache/nodes/{image_id}", "GET"),
    ]
    for path in ("/v2/cache/clean", "/v2/cache/prune"):
        expectations += [(method, path, "POST") for method in ("GET", "PUT", "DELETE")]
    for method, path, allow in expectations:
        response = http.request(method, url + path, headers=ADMIN)
        assert (response.status_code, response.headers.get("allow")) == (405, allow), (method, path)
    # PUT /v2/cache/nodes queues an image called "nodes".
    nodes = http.put(f"{url}/v2/cache/nodes", headers=ADMIN)
    assert nodes.status_code == 404 and "Image nodes not found." in nodes.text


def test_s49_clear_target_is_case_insensitive(cluster: ReferenceCluster, http: httpx.Client) -> None:
    engine = cluster.nodes[0].engine
    assert engine is not None
    cached = cluster.upload_image(b"c" * 10)
    _queue_and_wait(http, cluster.url, cached)
    queued = cluster.upload_image(b"q")
    engine.legacy_queue(queued)
    assert http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, CLEAR: "Queue"}).status_code == 204
    assert listing(http, cluster.url)["queued_images"] == []
    assert http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, CLEAR: "CACHE"}).status_code == 204
    assert cached_ids(http, cluster.url) == []
    _queue_and_wait(http, cluster.url, cached)
    engine.legacy_queue(queued)
    assert http.delete(f"{cluster.url}/v2/cache", headers={**ADMIN, CLEAR: ""}).status_code == 204
    assert listing(http, cluster.url) == {"cached_images": [], "queued_images": []}


def test_s50_legacy_endpoints(cluster: ReferenceCluster, http: httpx.Client) -> None:
    url = cluster.url
    image_id = cluster.upload_image(b"legacy" * 10)
    queued = http.put(f"{url}/v2/queued_images/{image_id}", headers=ADMIN)
    assert (queued.status_code, queued.content) == (200, b"null")
    assert http.get(f"{url}/v2/queued_images", headers=ADMIN).json() == {"queued_images": [image_id]}
    time.sleep(0.3)
    assert cached_ids(http, url) == []  # no worker: it stays queued
    deleted = http.delete(f"{url}/v2/queued_images/{image_id}", headers=ADMIN)
    assert (deleted.status_code, deleted.content) == (200, b"null")
    http.put(f"{url}/v2/queued_images/{image_id}", headers=ADMIN)
    assert http.delete(f"{url}/v2/queued_images", headers=ADMIN).json() == {"num_deleted": 1}
    _queue_and_wait(http, url, image_id)
    listed = http.get(f"{url}/v2/cached_images", headers=ADMIN)
    assert listed.status_code == 200
    assert [entry["image_id"] for entry in listed.json()["cached_images"]] == [image_id]
    assert http.delete(f"{url}/v2/cached_images/{image_id}", headers=ADMIN).content == b"null"
    _queue_and_wait(http, url, image_id)
    assert http.delete(f"{url}/v2/cached_images", headers=ADMIN).json() == {"num_deleted": 1}
    for method, path in [("GET", "/v2/cached_images"), ("PUT", f"/v2/queued_images/{image_id}"),
                         ("DELETE", "/v2/queued_images")]:  # fmt: skip
        refused = http.request(method, url + path, headers=MEMBER)
        assert refused.status_code == 403
        assert "You are not authorized to complete manage_image_cache action." in refused.text


def test_admin_download_of_deactivated_image_passes_through_and_fills(tmp_path: Path) -> None:
    """Glance 33: an admin reads a deactivated image from the store (never from the cache) and the full read
    still fills the cache; a ranged read gets 206. (Found by the HTTP state machine.)"""
    with run_cluster(nodes=1, auth="trusted", data_dir=tmp_path) as cluster, httpx.Client(timeout=30) as http:
        url = cluster.urls[0]
        image_id = cluster.upload_image(b"0123456789" * 100)
        assert http.post(f"{url}/v2/images/{image_id}/actions/deactivate", headers=ADMIN).status_code == 204
        member = http.get(f"{url}/v2/images/{image_id}/file", headers=MEMBER)
        assert member.status_code in (403, 404)
        ranged = http.get(f"{url}/v2/images/{image_id}/file", headers={**ADMIN, "Range": "bytes=2-4"})
        assert (ranged.status_code, ranged.content) == (206, b"234")
        full = http.get(f"{url}/v2/images/{image_id}/file", headers=ADMIN)
        assert (full.status_code, full.content) == (200, b"0123456789" * 100)
        entry = wait_cached(http, url, image_id)["cached_images"][0]
        again = http.get(f"{url}/v2/images/{image_id}/file", headers=ADMIN)
        assert again.status_code == 200 and again.content == b"0123456789" * 100
        assert listing(http, url)["cached_images"][0]["hits"] == entry["hits"]  # not served from the cache
