"""What a handler sees: the node it runs on (``Node``) and the request being served (``ApiRequest``).

Owns: reading request headers, query and body the way Glance does (``has_body``, the JSON
deserializer's three 400s, and the body check of routes whose handler takes no body), the caller's view of an
image (visibility rules of Glance's image repository) and the per-node services a handler uses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .context import RequestContext
from .faults import HTTPError

if TYPE_CHECKING:
    from ..engine.engine import CacheEngine
    from ..engine.store import Image, ImageStore
    from .policy import Policy

UPLOAD_CHUNK = 1024 * 1024
MAX_JSON_BODY = 1024 * 1024  # image metadata is small; refuse to buffer more than this
# WebOb's transfer codings that make Glance read a body without a Content-Length.
TRANSFER_CODINGS = frozenset({"chunked", "compress", "deflate", "gzip", "identity"})
MALFORMED_JSON = "Malformed JSON in request body."
BODY_NOT_EXPECTED = "A body is not expected with this request."


@dataclass
class Node:
    """The services behind one node's WSGI application."""

    store: ImageStore
    engine: CacheEngine | None  # None when the cache is disabled (no image_cache_dir)
    policy: Policy
    cache_driver: str = "centralized_db"
    legacy_only: bool = False
    # Called with an image id after the image is deleted (purges it from the caches of the cluster).
    on_image_deleted: list[Callable[[str], None]] = field(default_factory=list)
    # Glance takes its glance-cache-clean / -prune locks before the policy check; so do we (per node).
    clean_lock: threading.Lock = field(default_factory=threading.Lock)
    prune_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cache_enabled(self) -> bool:
        return self.engine is not None


class Request:
    """What every route reads of a request (the image and cache APIs and the identity service alike): headers,
    the query, the body as a stream, and the URL the client addressed."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()

    def header(self, name: str) -> str | None:
        key = name.upper().replace("-", "_")
        # CGI keeps these two without the HTTP_ prefix.
        value = self.environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key)
        return value if isinstance(value, str) else None

    @property
    def accept(self) -> str | None:
        return self.header("Accept")

    @property
    def host_url(self) -> str:
        return host_url(self.environ)

    @property
    def query_string(self) -> str:
        return str(self.environ.get("QUERY_STRING", ""))

    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    def content_length(self) -> int | None:
        text = self.header("Content-Length")
        if text is None or not text.strip():
            return None
        try:
            return int(text)
        except ValueError:
            raise HTTPError(400, "Invalid Content-Length header.") from None

    def has_body(self) -> bool:
        """Glance's ``JSONRequestDeserializer.has_body``: a transfer coding counts only on POST, PUT and
        PATCH; otherwise a Content-Length above zero."""
        coding = (self.header("Transfer-Encoding") or "").strip().lower()
        if coding in TRANSFER_CODINGS and self.method in ("POST", "PUT", "PATCH"):
            return True
        length = self.content_length()
        return length is not None and length > 0

    def iter_body(self, chunk_size: int = UPLOAD_CHUNK) -> Iterator[bytes]:
        """Stream the request body (Content-Length bounded, or to EOF for chunked input)."""
        stream = self.environ["wsgi.input"]
        remaining = self.content_length()
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            chunk = stream.read(want)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

class ApiRequest(Request):
    """One request to the image or cache API, after authentication; its body is read by Glance's rules."""

    def __init__(self, environ: dict[str, Any], ctx: RequestContext, node: Node, path: str) -> None:
        super().__init__(environ)
        self.ctx = ctx
        self.node = node
        self.path = path

    def read_json(self) -> Any:
        """The body as Glance's JSON deserializer reads it: 400 "Body expected in request." without one,
        "Malformed JSON in request body." for bytes that are not UTF-8 JSON, and "Unexpected body type.
        Expected list/dict." for a bare scalar; a dict or a list otherwise."""
        if not self.has_body():
            raise HTTPError(400, "Body expected in request.")
        return self._decode_json(self._read_limited())

    def expect_no_body(self, *, rejected: bool, handled: bool = True) -> None:
        """The body check of Glance's ``wsgi.Resource`` for a route whose handler takes no body.

        ``rejected`` (``body_reject`` in Glance's router): any body is a 400 "A body is not expected with
        this request.". Otherwise the JSON deserializer runs first (400 for malformed JSON or a scalar, as
        in Glance), and a well-formed body then gets the same 400 where Glance hands it to a handler that
        takes none and answers 500. With ``handled=False`` (the method is not allowed: a 405 follows) a
        well-formed body passes, as it does in Glance.
        """
        if not self.has_body():
            return
        if rejected:
            raise HTTPError(400, BODY_NOT_EXPECTED)
        self._decode_json(self._read_limited())
        if handled:
            raise HTTPError(400, BODY_NOT_EXPECTED)

    def _read_limited(self) -> bytes:
        length = self.content_length()
        if length is not None and length > MAX_JSON_BODY:
            raise HTTPError(413, f"Request body of {length} bytes is larger than {MAX_JSON_BODY} bytes.")
        raw = b""
        for chunk in self.iter_body():
            raw += chunk
            if len(raw) > MAX_JSON_BODY:
                raise HTTPError(413, f"Request body is larger than {MAX_JSON_BODY} bytes.")
        return raw

    @staticmethod
    def _decode_json(raw: bytes) -> Any:
        try:
            # Strict UTF-8 first, as oslo's jsonutils does: a byte-order mark is malformed JSON.
            value = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise HTTPError(400, MALFORMED_JSON) from None
        if not isinstance(value, (dict, list)):
            raise HTTPError(400, "Unexpected body type. Expected list/dict.")
        return value

    def visible_image(self, image_id: str) -> Image | None:
        """The image as the caller may see it: admins see all, others their own and public/community."""
        image = self.node.store.get(image_id)
        if image is None:
            return None
        if self.ctx.is_admin or image.visibility in ("public", "community"):
            return image
        if self.ctx.project_id is not None and image.owner == self.ctx.project_id:
            return image
        return None


def host_url(environ: Mapping[str, Any]) -> str:
    """``scheme://host[:port]`` as the client addressed us (Glance builds its hrefs from the Host header)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if not host:
        host = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    return f"{scheme}://{host}"
