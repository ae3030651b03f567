"""Every error the library raises, as one small tree.

::

    GlanceCacheError                 base: .node (the node URL, or "" when no node was involved)
    ├── InvalidInput                 bad argument, caught before any request (also a ValueError)
    ├── UnsupportedFeature           the node lacks the API version an operation needs (2.14 / 2.18)
    │   ├── NotAnImageNode           the address answers, but not as a Glance image API node
    │   └── CannotWait               a pre-Yoga node: nothing caches a queued image on demand
    ├── CacheWaitTimeout             wait_cached() gave up
    ├── IdentityFailure              getting a token from keystoneauth1 failed (the cause is keystoneauth1's error)
    ├── TransportError               no HTTP answer at all
    │   ├── ConnectionRefused        nothing listens at host:port
    │   ├── NameResolutionFailed     DNS could not resolve the host
    │   ├── TLSFailure               TLS handshake or certificate verification failed
    │   ├── RequestTimeout           no complete answer within the timeout (connect, send and whole response)
    │   └── ProtocolFailure          the node's bytes are not HTTP, or a body is cut short
    └── APIError                     the node answered with an error: .status, .explanation, .request_id
        ├── BadRequest               400
        ├── Unauthorized             401 (token missing, expired or rejected)
        ├── Forbidden                403 (policy denies the caller)
        ├── NotFound                 404
        ├── Conflict                 409 (e.g. nodes list without the centralized registry)
        ├── ServerError              5xx
        └── InvalidResponse          a 2xx whose body is not what the API promises (bad JSON, shape, encoding)

Every error's ``str()`` is one line naming the node, what went wrong and, for HTTP errors, the status, the
server's explanation and the request id.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "APIError",
    "BadRequest",
    "CacheWaitTimeout",
    "CannotWait",
    "Conflict",
    "ConnectionRefused",
    "Forbidden",
    "GlanceCacheError",
    "IdentityFailure",
    "InvalidInput",
    "InvalidResponse",
    "NameResolutionFailed",
    "NotAnImageNode",
    "NotFound",
    "ProtocolFailure",
    "RequestTimeout",
    "ServerError",
    "TLSFailure",
    "TransportError",
    "Unauthorized",
    "UnsupportedFeature",
    "error_for_status",
    "explanation_from_body",
]


class GlanceCacheError(Exception):
    """Base of every error raised by glancecache_client."""

    def __init__(self, message: str, *, node: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.node = node

    def __str__(self) -> str:
        return f"{self.node}: {self.message}" if self.node else self.message


class InvalidInput(GlanceCacheError, ValueError):
    """An argument is malformed (image id, clear target, endpoint); raised before any request is sent."""


class UnsupportedFeature(GlanceCacheError):
    """The node does not advertise the Image API version an operation needs."""

    def __init__(self, node: str, feature: str, version: str) -> None:
        super().__init__(
            f"{feature} needs Image API v{version}, which this node does not advertise in GET /versions "
            f"(enable image_cache_dir on it, or upgrade Glance)",
            node=node,
        )
        self.feature = feature
        self.version = version


class NotAnImageNode(UnsupportedFeature):
    """Something answers at the address, but its ``GET /versions`` is not a Glance Image API's (e.g. a plain
    web server, or the wrong port)."""

    def __init__(self, node: str, what: str) -> None:
        GlanceCacheError.__init__(
            self,
            f"not a Glance image node: {what} (check the host, port and path prefix of the Glance API)",
            node=node,
        )
        self.feature = "the Image API"
        self.version = "2"


class CannotWait(UnsupportedFeature):
    """Waiting for an image to be cached on a pre-Yoga node (deprecated cache endpoints only): there a queued
    image is cached only when glance-cache-prefetcher runs (usually from cron), so a wait could last hours."""

    def __init__(self, node: str) -> None:
        GlanceCacheError.__init__(
            self,
            "cannot wait for caching on this pre-Yoga node: only glance-cache-prefetcher run from cron caches "
            "queued images here (queue without waiting, or run glance-cache-prefetcher on the node)",
            node=node,
        )
        self.feature = "waiting for an image to be cached"
        self.version = "2.14"


class CacheWaitTimeout(GlanceCacheError):
    """An image did not appear in the node's cache within the time allowed."""

    def __init__(self, node: str, image_id: str, timeout: float) -> None:
        super().__init__(f"image {image_id} was not cached within {timeout:g} s", node=node)
        self.image_id = image_id
        self.timeout = timeout


class IdentityFailure(GlanceCacheError):
    """A session could not get a token during a request (Keystone unreachable, credentials refused); the
    keystoneauth1 exception is ``__cause__``."""


class TransportError(GlanceCacheError):
    """The request got no HTTP answer."""


class ConnectionRefused(TransportError):
    """Nothing accepts connections at the node's host and port."""


class NameResolutionFailed(TransportError):
    """The node's host name does not resolve."""


class TLSFailure(TransportError):
    """TLS handshake or certificate verification failed."""


class RequestTimeout(TransportError):
    """The whole request (connect, send, and the complete response) took longer than the timeout."""


class ProtocolFailure(TransportError):
    """The node's answer is not well-formed HTTP (garbage bytes, a body shorter than announced, a bad header)."""


class APIError(GlanceCacheError):
    """The node answered with an HTTP error status."""

    status_code: ClassVar[int | None] = None

    def __init__(
        self,
        *,
        node: str,
        status: int,
        explanation: str,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.explanation = explanation
        self.request_id = request_id
        self.method = method
        self.path = path
        where = f" for {method} {path}" if method else ""
        detail = f": {explanation}" if explanation else ""
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"HTTP {status}{where}{detail}{rid}", node=node)


class BadRequest(APIError):
    """400: the server refused the request as malformed (e.g. a non-active image queued)."""

    status_code = 400


class Unauthorized(APIError):
    """401: no valid token. ``credentials`` says what was sent: ``"none"``, ``"token"`` (a static token) or
    ``"keystone"`` (a token from a keystoneauth1 session), so a front end can say what to fix."""

    status_code = 401
    credentials: str = "none"


class Forbidden(APIError):
    """403: the policy denies the caller this operation."""

    status_code = 403


class NotFound(APIError):
    """404: unknown image, or the route does not exist on this node."""

    status_code = 404


class Conflict(APIError):
    """409: e.g. the nodes list on a node without the centralized cache registry."""

    status_code = 409


class ServerError(APIError):
    """5xx: the node failed."""


class InvalidResponse(APIError):
    """A success status whose body is not what the API promises."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def error_for_status(status: int) -> type[APIError]:
    """The APIError subclass for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)


_TAG = re.compile(r"<[^>]+>")


def explanation_from_body(body: bytes, content_type: str) -> str:
    """The server's explanation from a webob-style error body (JSON, text/plain or HTML), as one line.

    Glance renders ``{"message": "...<br /><br />\\n\\n\\n", "code": ..., "title": ...}`` for JSON, and
    ``"404 Not Found\\n\\nImage X not found.\\n\\n   "`` or an HTML page otherwise.
    """
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        import json

        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            nested = data.get("error")
            inner = nested if isinstance(nested, dict) else data
            message = inner.get("message") or inner.get("title") or ""
            text = str(message)
    elif "html" in content_type:
        body_part = re.search(r"<body>(.*)</body>", text, re.S)
        text = body_part.group(1) if body_part else text
        text = re.sub(r"<h1>.*?</h1>", "", text, flags=re.S)
    else:
        # text/plain: "404 Not Found\n\nImage X not found.\n\n   " -> drop the status line
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1 and re.match(r"^\d{3} ", lines[0]):
            lines = lines[1:]
        text = " ".join(lines)
    text = _TAG.sub(" ", text)
    return printable(" ".join(text.split()))[:500]


def printable(text: str) -> str:
    """``text`` without control characters: what a node sends must not drive the user's terminal."""
    return "".join(ch for ch in text if ch.isprintable())
