"""The JSON-Schema documents Glance serves under ``/v2/schemas/``.

Owns: the schema routes and their bodies. python-glanceclient downloads the image, metadefs namespace and
metadefs resource_type schemas on its first run for an endpoint and falls back to API v1 (where no cache
command exists) when none of them can be fetched, so a node without them breaks ``glance cache-*`` on a fresh
home directory. The bodies in ``schemas/`` are the bytes Glance 33 serves with its default configuration
(recorded from the real server; the interop tier checks they still match), sent as they are.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from .faults import APPLICATION_JSON, Reply
from .request import ApiRequest

# URL path under /v2/schemas/ -> file in schemas/
SCHEMA_FILES = {
    "image": "image.json",
    "images": "images.json",
    "member": "member.json",
    "members": "members.json",
    "metadefs/namespace": "metadefs-namespace.json",
    "metadefs/resource_type": "metadefs-resource_type.json",
}


@cache
def schema_document(name: str) -> bytes:
    # One name per joinpath(): Python 3.10's Traversable protocol promises no more (mypy's 3.10 run checks it).
    return files(__package__).joinpath("schemas").joinpath(SCHEMA_FILES[name]).read_bytes()


def show_schema(req: ApiRequest, name: str) -> Reply:
    body = schema_document(name)
    return Reply(200, [("Content-Type", APPLICATION_JSON), ("Content-Length", str(len(body)))], body)
