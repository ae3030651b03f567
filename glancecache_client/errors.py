"""Every error the library raises, as one small tree.

::

    GlanceCacheError                 base: .node (the node URL, or "" when no node was involved)
    ├── InvalidInput                 bad argument, caught before any request (also a ValueError)
    ├── UnsupportedFeature           the node lacks the API version an operation needs (2.14 / 2.18)
    ├── CacheWaitTimeout             wait_cached() gave up
    ├── TransportError               no HTTP answer at all
    │   ├── ConnectionRefused        nothing listens at host:port
    │   ├── NameResolutionFailed     DNS could not resolve the host
    │   ├── TLSFailure               TLS handshake or certificate verification failed
    │   └── RequestTimeout           connect or read timed out
    └── APIError                     the node answered with an error: .status, .explanation, .request_id
        ├── BadRequest               400
        ├── Unauthorized             401 (token missing, expired or rejected)
        ├── Forbidden                403 (policy denies the caller)
        ├── NotFound                 404
        ├── Conflict                 409 (e.g. nodes list without the centralized registry)
        ├── ServerError              5xx
        └── InvalidResponse          a 2xx whose body is not what the API promises (e.g. invalid JSON)

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
    "Conflict",
    "ConnectionRefused",
    "Forbidden",
    "GlanceCacheError",
    "InvalidInput",
    "InvalidResponse",
    "NameResolutionFailed",
    "NotFound",
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


class CacheWaitTimeout(GlanceCacheError):
    """An image did not appear in the node's cache within the time allowed."""

    def __init__(self, node: str, image_id: str, timeout: float) -> None:
        super().__init__(f"image {image_id} was not cached within {timeout:g} s", node=node)
        self.image_id = image_id
        self.timeout = timeout


class TransportError(GlanceCacheError):
    """The request got no HTTP answer."""


class ConnectionRefused(TransportError):
    """Nothing accepts connections at the node's host and port."""


class NameResolutionFailed(TransportError):
    """The node's host name does not resolve."""


class TLSFailure(TransportError):
    """TLS handshake or certificate verification failed."""


class RequestTimeout(TransportError):
    """Connecting to or reading from the node took longer than the timeout."""


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
    """401: no valid token."""

    status_code = 401


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
    return " ".join(text.split())[:500]
