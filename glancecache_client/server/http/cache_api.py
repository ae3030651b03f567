"""The seven cache endpoints of Glance 33 (``/v2/cache...``) and the deprecated cachemanage routes
(``/v2/cached_images``, ``/v2/queued_images``).

Owns: each handler's order of checks, which is part of the contract (spec §1.3):

- ``GET /v2/cache``, ``DELETE /v2/cache``, nodes, clean, prune: policy (403) before "cache disabled"
  (404) before validation (400 for the clear-target header, 409 for nodes without centralized_db);
- ``PUT /v2/cache/{id}``: the caller's image lookup (404) first, then policy, disabled, status (400);
- ``DELETE /v2/cache/{id}``: 404 only when the id is neither a visible image nor in this node's cache or
  queue, then policy, then disabled.

A request body is checked before any handler runs (``ApiRequest.expect_no_body``, as Glance's
deserializer): malformed JSON or a scalar is Glance's 400; a well-formed JSON body, which Glance passes to
a handler that takes none and so answers 500, is a 400 "A body is not expected with this request." here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .faults import HTTPError, Reply, empty_reply, json_reply, json_text_reply
from .request import ApiRequest

if TYPE_CHECKING:
    from ..engine.engine import CacheEngine

DISABLED = "Caching via API is not supported at this site."
BAD_TARGET = "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string."


def _enforce(req: ApiRequest, rule: str) -> None:
    """Glance's ``_enforce``: the policy check, then the cache-enabled check."""
    req.node.policy.enforce(rule, req.ctx.credentials)
    if req.node.engine is None:
        raise HTTPError(404, DISABLED)


def _engine(req: ApiRequest) -> CacheEngine:
    engine = req.node.engine
    if engine is None:  # pragma: no cover - _enforce ran first
        raise HTTPError(404, DISABLED)
    return engine


def _image_not_found(image_id: str) -> HTTPError:
    return HTTPError(404, f"Image {image_id} not found.")


def get_cache(req: ApiRequest) -> Reply:
    _enforce(req, "cache_list")
    engine = _engine(req)
    # The entries come as JSON text already (json.dumps's own, in a fraction of its time for 10,000 of them).
    cached, queued = engine.listing()
    return json_text_reply(200, f'{{"cached_images": {cached}, "queued_images": {json.dumps(queued)}}}')


def clear_cache(req: ApiRequest) -> Reply:
    _enforce(req, "cache_delete")
    engine = _engine(req)
    target = (req.header("x-image-cache-clear-target") or "").strip().lower()
    if target not in ("", "cache", "queue"):
        raise HTTPError(400, BAD_TARGET)
    # Glance computes {cache_deleted, queue_deleted} and then drops them: the reply is an empty 204.
    if target in ("", "cache"):
        engine.delete_all_cached()
    if target in ("", "queue"):
        engine.delete_all_queued()
    return empty_reply(204)


def queue_image(req: ApiRequest, image_id: str) -> Reply:
    image = req.visible_image(image_id)
    if image is None:
        raise _image_not_found(image_id)
    _enforce(req, "cache_image")
    if image.status != "active":
        raise HTTPError(400, "Only images with status active can be targeted for queueing")
    _engine(req).queue(image_id)
    return empty_reply(202)


def delete_cache_entry(req: ApiRequest, image_id: str) -> Reply:
    engine = req.node.engine
    if req.visible_image(image_id) is None:
        known_here = engine is not None and (engine.is_cached(image_id) or engine.is_queued(image_id))
        if not known_here:
            raise _image_not_found(image_id)
    _enforce(req, "cache_delete")
    _engine(req).delete(image_id)
    return empty_reply(204)


def cached_nodes(req: ApiRequest, image_id: str) -> Reply:
    _enforce(req, "list_cached_nodes")
    if req.node.cache_driver != "centralized_db":
        raise HTTPError(409, "Centralized caching is not enabled")
    if req.node.store.get(image_id) is None:
        raise _image_not_found(image_id)
    return json_reply(200, _engine(req).cached_nodes(image_id))


def clean_cache(req: ApiRequest) -> Reply:
    with req.node.clean_lock:
        _enforce(req, "cache_clean")
        _engine(req).clean()
    return empty_reply(200)


def prune_cache(req: ApiRequest) -> Reply:
    with req.node.prune_lock:
        _enforce(req, "cache_prune")
        files, size = _engine(req).prune()
    return json_reply(200, {"total_files_pruned": files, "total_bytes_pruned": size})


# -- the deprecated cachemanage middleware: every reply is 200 JSON ----------------------------------------


def _legacy(req: ApiRequest) -> None:
    req.node.policy.enforce("manage_image_cache", req.ctx.credentials)


def legacy_list_cached(req: ApiRequest) -> Reply:
    _legacy(req)
    return json_text_reply(200, f'{{"cached_images": {_engine(req).list_cached_json()}}}')


def legacy_delete_cached(req: ApiRequest, image_id: str) -> Reply:
    _legacy(req)
    _engine(req).delete(image_id)
    return json_reply(200, None)


def legacy_delete_all_cached(req: ApiRequest) -> Reply:
    _legacy(req)
    return json_reply(200, {"num_deleted": _engine(req).delete_all_cached()})


def legacy_list_queued(req: ApiRequest) -> Reply:
    _legacy(req)
    return json_reply(200, {"queued_images": _engine(req).list_queued()})


def legacy_queue(req: ApiRequest, image_id: str) -> Reply:
    _legacy(req)
    try:
        # Like Glance: a queue file only (no status check, no worker); it stays queued until prefetched.
        _engine(req).legacy_queue(image_id)
    except ValueError:
        # Glance would queue any string; the engine only names files after image UUIDs.
        raise _image_not_found(image_id) from None
    return json_reply(200, None)


def legacy_delete_queued(req: ApiRequest, image_id: str) -> Reply:
    _legacy(req)
    _engine(req).delete_queued(image_id)
    return json_reply(200, None)


def legacy_delete_all_queued(req: ApiRequest) -> Reply:
    _legacy(req)
    return json_reply(200, {"num_deleted": _engine(req).delete_all_queued()})
