"""What real Glance 33 (uWSGI, noauth, cache enabled) answers to request bodies a route does not expect.

Recorded by sending each request to shared/peers/real-glance (tests/interop/test_bodies_vs_glance33.py sends
them again and compares). Glance runs its JSON deserializer before any handler, check or lookup: malformed
JSON is a 400 even for an unknown image, a bare scalar is a 400 of its own, the Content-Type is ignored,
and ``body_reject`` routes refuse any body. A well-formed JSON body on a handler that takes none reaches
the handler as an unexpected argument: Glance answers 500 there (``glance_500``), the reference server 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MALFORMED = "Malformed JSON in request body."
SCALAR = "Unexpected body type. Expected list/dict."
NOT_EXPECTED = "A body is not expected with this request."
BODY_EXPECTED = "Body expected in request."
TEXT_PLAIN = "text/plain; charset=UTF-8"


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # {active}, {queued} and {unknown} stand for image ids
    body: bytes
    status: int  # Glance's status (for glance_500 cases: ours, Glance's is 500)
    message: str | None = None  # the error text; None for a success
    headers: dict[str, str] = field(default_factory=dict)
    glance_500: bool = False

    def label(self) -> str:
        extra = f" {self.headers}" if self.headers else ""
        return f"{self.method} {self.path} {self.body[:16]!r}{extra}"


def plain_error(status: int, message: str) -> bytes:
    """WebOb's text/plain error page (no Accept header)."""
    phrase = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
    tail = " \n\n " if status == 405 else "\n\n   "  # the router's 405 page ends differently
    return f"{status} {phrase}\n\n{message}{tail}".encode()


CACHE_MUTATIONS = [
    ("POST", "/v2/cache/prune"),
    ("POST", "/v2/cache/clean"),
    ("PUT", "/v2/cache/{active}"),
    ("DELETE", "/v2/cache"),
    ("DELETE", "/v2/cache/{active}"),
]
CASES: list[Case] = []
for _method, _path in CACHE_MUTATIONS:
    CASES += [
        Case(_method, _path, b"{", 400, MALFORMED),
        Case(_method, _path, b"not json", 400, MALFORMED),
        Case(_method, _path, b"\xff\xfe", 400, MALFORMED),
        Case(_method, _path, b"null", 400, SCALAR),
        Case(_method, _path, b'"s"', 400, SCALAR),
        Case(_method, _path, b"1", 400, SCALAR),
        Case(_method, _path, b"{", 400, MALFORMED, {"Content-Type": "application/json"}),
        Case(_method, _path, b"null", 400, SCALAR, {"Content-Type": "text/plain"}),
        Case(_method, _path, b"{}", 400, NOT_EXPECTED, glance_500=True),
        Case(_method, _path, b"[]", 400, NOT_EXPECTED, glance_500=True),
        Case(_method, _path, b'{"x":1}', 400, NOT_EXPECTED, {"Content-Type": "application/json"}, glance_500=True),
    ]
CASES += [
    # JSON as oslo reads it: strict UTF-8 (a byte-order mark is malformed), one document, NaN allowed.
    Case("POST", "/v2/cache/prune", b"\xef\xbb\xbf{}", 400, MALFORMED),
    Case("POST", "/v2/cache/prune", b" ", 400, MALFORMED),
    Case("POST", "/v2/cache/prune", b'{"a":1} x', 400, MALFORMED),
    Case("POST", "/v2/cache/prune", b"true", 400, SCALAR),
    Case("POST", "/v2/cache/prune", b"1.5", 400, SCALAR),
    Case("POST", "/v2/cache/prune", b"NaN", 400, SCALAR),
    Case("POST", "/v2/cache/prune", b'"\\ud800"', 400, SCALAR),
    Case("POST", "/v2/cache/prune", b'{"a": NaN}', 400, NOT_EXPECTED, glance_500=True),
    Case("POST", "/v2/cache/prune", b"[" * 5000 + b"]" * 5000, 400, MALFORMED, glance_500=True),
    # The body is judged before the image lookup, the status check and the clear-target header.
    Case("PUT", "/v2/cache/{unknown}", b"{", 400, MALFORMED),
    Case("PUT", "/v2/cache/{queued}", b"{", 400, MALFORMED),
    Case("DELETE", "/v2/cache/{unknown}", b"{", 400, MALFORMED),
    Case("PUT", "/v2/cache/{unknown}", b"{}", 400, NOT_EXPECTED, glance_500=True),
    Case("DELETE", "/v2/cache", b"{", 400, MALFORMED, {"x-image-cache-clear-target": "bogus"}),
    Case("DELETE", "/v2/cache", b"{}", 400, NOT_EXPECTED, {"x-image-cache-clear-target": "bogus"}, glance_500=True),
    # body_reject routes.
    Case("GET", "/v2/cache", b"{", 400, NOT_EXPECTED),
    Case("GET", "/v2/cache/nodes/{active}", b"null", 400, NOT_EXPECTED),
    Case("GET", "/v2/images/{active}", b"{}", 400, NOT_EXPECTED),
    Case("DELETE", "/v2/images/{unknown}", b"{", 400, NOT_EXPECTED),
    Case("GET", "/v2/images/{active}/file", b"{}", 400, NOT_EXPECTED),
    Case("POST", "/v2/images/{active}/actions/reactivate", b"{}", 400, NOT_EXPECTED),
    Case("GET", "/v2/schemas/image", b"{", 400, NOT_EXPECTED),
    # A method that is not allowed still has its body read first; a well-formed one gets the 405.
    Case("POST", "/v2/cache", b"{", 400, MALFORMED),
    Case("PATCH", "/v2/cache/prune", b"null", 400, SCALAR),
    Case("PUT", "/v2/images", b"{", 400, MALFORMED),
    Case("POST", "/v2/cache", b"{}", 405, "The method POST is not allowed for this resource."),
    # The deprecated cachemanage routes have the same deserializer.
    Case("GET", "/v2/cached_images", b"{", 400, MALFORMED),
    Case("DELETE", "/v2/queued_images", b"null", 400, SCALAR),
    Case("PUT", "/v2/queued_images/{active}", b"{", 400, MALFORMED),
    Case("GET", "/v2/queued_images", b"{}", 400, NOT_EXPECTED, glance_500=True),
    # Image create reads its own body.
    Case("POST", "/v2/images", b"null", 400, SCALAR, {"Content-Type": "application/json"}),
    Case("POST", "/v2/images", b"{", 400, MALFORMED, {"Content-Type": "application/json"}),
    Case("POST", "/v2/images", b"", 400, BODY_EXPECTED, {"Content-Type": "application/json"}),
    Case("POST", "/v2/images", b"[]", 400, MALFORMED, {"Content-Type": "application/json"}, glance_500=True),
    # Empty bodies are no bodies.
    Case("POST", "/v2/cache/prune", b"", 200),
    Case("POST", "/v2/cache/clean", b"", 200),
    Case("PUT", "/v2/cache/{active}", b"", 202),
    Case("DELETE", "/v2/cache/{active}", b"", 204),
    Case("DELETE", "/v2/cache", b"", 204),
]
# The error page follows the Accept header, as every other error does: (case, Content-Type, body).
ACCEPT_CASES = [
    (
        Case("POST", "/v2/cache/prune", b"{", 400, MALFORMED, {"Accept": "application/json"}),
        "application/json",
        b'{"message": "Malformed JSON in request body.<br /><br />\\n\\n\\n", "code": "400 Bad Request", '
        b'"title": "Bad Request"}',
    ),
    (
        Case("POST", "/v2/cache/clean", b"null", 400, SCALAR, {"Accept": "*/*"}),
        "text/html; charset=UTF-8",
        b"<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  <h1>400 Bad Request</h1>\n"
        b"  Unexpected body type. Expected list/dict.<br /><br />\n\n\n\n </body>\n</html>",
    ),
]
