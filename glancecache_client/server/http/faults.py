"""Error responses shaped byte for byte like the ones Glance 33 sends (WebOb 1.8's ``HTTPException`` bodies).

Owns: the ``Reply`` value every handler returns, the Accept negotiation WebOb does for error pages
(``text/html`` for ``*/*``, JSON for ``application/json``, ``text/plain`` when no Accept is sent) and
the three body templates, with exact Content-Length. Two tails exist on the wire: handler errors end
``<br /><br />\\n\\n\\n`` and router 405s end `` <br /><br />\\n`` (recorded in glance33-traffic.md).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

# Glance lets WebOb pick among these two offers; anything else (or no Accept header at all) is plain text.
_HTML = "text/html"
_JSON = "application/json"

TEXT_HTML = "text/html; charset=UTF-8"
TEXT_PLAIN = "text/plain; charset=UTF-8"
APPLICATION_JSON = "application/json"

UNAUTHORIZED_TEXT = (
    "This server could not verify that you are authorized to access the document you requested. "
    "Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand "
    "how to supply the credentials required."
)
NOT_FOUND_TEXT = "The resource could not be found."
SERVER_ERROR_TEXT = "The server has either erred or is incapable of performing the requested operation."


@dataclass
class Reply:
    """A finished HTTP response: status code, ordered headers and a body (bytes or an iterable of bytes)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""
    # Set for a body that is an open file to be sent with wsgi.file_wrapper (sendfile-like fast path).
    file: Any = None

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def json_reply(status: int, payload: object, extra_headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """A JSON success body serialized the way Glance does (``json.dumps`` defaults: ``", "`` and ``": "``)."""
    body = json.dumps(payload).encode()
    headers = [("Content-Type", APPLICATION_JSON), ("Content-Length", str(len(body))), *extra_headers]
    return Reply(status, headers, body)


def empty_reply(status: int, extra_headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """WebOb's default empty response: it still carries ``text/html; charset=UTF-8`` and length 0."""
    return Reply(status, [("Content-Type", TEXT_HTML), ("Content-Length", "0"), *extra_headers], b"")


_MEDIA_RANGE = re.compile(r"^\s*([^\s;/]+)/([^\s;/]+)\s*((?:;[^,]*)?)$")
_QVALUE = re.compile(r";\s*q\s*=\s*([0-9.]+)", re.IGNORECASE)


def negotiate_error_format(accept: str | None) -> str:
    """Which of html/json/plain WebOb picks for an error page given the request's Accept header.

    WebOb offers ``text/html`` then ``application/json`` and keeps offer order on equal quality, so
    ``*/*`` gives HTML; an absent or empty Accept (nothing acceptable) gives plain text.
    """
    if accept is None or not accept.strip():
        return "plain"
    best: dict[str, float] = {}
    for offer in (_HTML, _JSON):
        offer_type, offer_sub = offer.split("/")
        quality: float | None = None
        specificity = -1
        for part in accept.split(","):
            match = _MEDIA_RANGE.match(part)
            if match is None:
                # An unparsable header is "invalid": WebOb then accepts every offer.
                return "html"
            rtype, rsub, params = match.group(1).lower(), match.group(2).lower(), match.group(3)
            if rtype == "*" and rsub == "*":
                spec = 0
            elif rtype == offer_type and rsub == "*":
                spec = 1
            elif rtype == offer_type and rsub == offer_sub:
                spec = 2
            else:
                continue
            q_match = _QVALUE.search(params)
            q = float(q_match.group(1)) if q_match else 1.0
            if spec > specificity:
                specificity, quality = spec, q
        if quality is not None and quality > 0:
            best[offer] = quality
    if not best:
        return "plain"
    top = max(best.values())
    for offer in (_HTML, _JSON):
        if best.get(offer) == top:
            return "html" if offer == _HTML else "json"
    return "plain"  # pragma: no cover - unreachable


def error_reply(
    status: int,
    explanation: str,
    accept: str | None,
    *,
    router_tail: bool = False,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Reply:
    """A WebOb-identical error page for ``status`` with ``explanation`` in the format ``accept`` selects.

    ``router_tail`` selects the shorter tail WebOb's own 405 (from the Routes mapper) carries.
    """
    title = HTTPStatus(status).phrase
    status_line = f"{status} {title}"
    tail_html = " <br /><br />\n" if router_tail else "<br /><br />\n\n\n"
    fmt = negotiate_error_format(accept)
    if fmt == "json":
        content = json.dumps({"message": explanation + tail_html, "code": status_line, "title": title})
        content_type = APPLICATION_JSON
    elif fmt == "html":
        content = (
            f"<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n"
            f"  <h1>{status_line}</h1>\n  {html.escape(explanation)}{tail_html}\n </body>\n</html>"
        )
        content_type = TEXT_HTML
    else:
        # WebOb strips tags after turning newlines into spaces: each <br /> becomes a newline.
        tail_plain = " \n\n " if router_tail else "\n\n   "
        content = f"{status_line}\n\n{explanation}{tail_plain}"
        content_type = TEXT_PLAIN
    body = content.encode()
    headers = [*extra_headers, ("Content-Length", str(len(body))), ("Content-Type", content_type)]
    return Reply(status, headers, body)


class HTTPError(Exception):
    """Raised by handlers to end a request with a Glance-shaped error page."""

    def __init__(self, status: int, explanation: str, *, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(explanation)
        self.status = status
        self.explanation = explanation
        self.headers = list(headers)

    def reply(self, accept: str | None) -> Reply:
        return error_reply(self.status, self.explanation, accept, extra_headers=self.headers)
