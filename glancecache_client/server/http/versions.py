"""Glance 33's version document and URL/media-type version negotiation.

Owns: the exact ``GET /versions`` list (v2.14/2.16/2.18 only while the cache is enabled, and the
unsorted cache-less order Glance really sends), the pre-Yoga list of a legacy node, and deciding
whether a request path is served (rewritten to ``/v2/...``) or answered with 300 Multiple Choices.
"""

from __future__ import annotations

import json
import re

_WITH_CACHE = [
    ("v2.18", "CURRENT"),
    ("v2.17", "SUPPORTED"),
    ("v2.16", "SUPPORTED"),
    ("v2.15", "SUPPORTED"),
    ("v2.14", "SUPPORTED"),
    ("v2.9", "SUPPORTED"),
]
# Recorded from a real Glance 33 without image_cache_dir: this order is what it sends.
_WITHOUT_CACHE = [("v2.15", "SUPPORTED"), ("v2.9", "SUPPORTED"), ("v2.17", "CURRENT")]
# A pre-Yoga Glance (no cache API): v2.9 is the newest version without multistore.
_LEGACY = [("v2.9", "CURRENT")]
_BASE = [(f"v2.{minor}", "SUPPORTED") for minor in range(7, -1, -1)]

_URL_VERSION = re.compile(r"^/v(\d+)(?:\.(\d+))?(?=/|$)")
_MEDIA_VERSION = re.compile(r"application/vnd\.openstack\.images-(v[\d.]+)")


def version_list(*, cache_enabled: bool, legacy_only: bool = False) -> list[tuple[str, str]]:
    if legacy_only:
        return [*_LEGACY, *_BASE]
    return [*(_WITH_CACHE if cache_enabled else _WITHOUT_CACHE), *_BASE]


def versions_document(host_url: str, versions: list[tuple[str, str]]) -> bytes:
    href = f"{host_url}/v2/"
    doc = {
        "versions": [
            {"id": vid, "status": status, "links": [{"rel": "self", "href": href}]} for vid, status in versions
        ]
    }
    return json.dumps(doc).encode()


def negotiate(path: str, accept: str | None, versions: list[tuple[str, str]]) -> str | None:
    """The ``/v2/...`` path to serve, or None when Glance would answer 300 with the versions document."""
    known = {vid for vid, _ in versions}
    match = _URL_VERSION.match(path)
    if match is not None:
        major, minor = match.group(1), match.group(2)
        rest = path[match.end() :]
        if minor is None:
            return path if major == "2" else None
        return f"/v2{rest}" if f"v{major}.{minor}" in known else None
    if accept:
        media = _MEDIA_VERSION.search(accept)
        if media is not None:
            requested = media.group(1)
            if requested in ("v2", *known):
                return f"/v2{path}"
    return None
