"""Error responses shaped byte for byte like the ones Glance 33 sends (WebOb 1.8's ``HTTPException`` bodies).

Owns: the ``Reply`` value every handler returns, the Accept negotiation WebOb does for error pages
(``text/html`` for ``*/*`` or a header breaking RFC 7231, JSON for ``application/json``, ``text/plain``
when no Accept is sent; werkzeug matches the ranges, the WebOb-only rules are here) and
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

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_list_header

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
    return json_text_reply(status, json.dumps(payload), extra_headers)


def json_text_reply(status: int, text: str, extra_headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """``json_reply`` for a body already written as JSON text (``json.dumps`` output: ASCII)."""
    body = text.encode()
    headers = [("Content-Type", APPLICATION_JSON), ("Content-Length", str(len(body))), *extra_headers]
    return Reply(status, headers, body)


def empty_reply(status: int, extra_headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """WebOb's default empty response: it still carries ``text/html; charset=UTF-8`` and length 0."""
    return Reply(status, [("Content-Type", TEXT_HTML), ("Content-Length", "0"), *extra_headers], b"")


# RFC 7231 section 5.3.2 grammar, as WebOb 1.8 checks it: a header that does not match it as a whole is
# "invalid", and WebOb then accepts every offer (so an error page is HTML). OWS is only space and tab.
_OWS = "[ \t]*"
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t !-~\x80-\xff])*"'
_VALUE = f"(?:{_TOKEN}|{_QUOTED})"
# media-range with its media-type parameters (none may be named q), then weight and accept-ext.
_MEDIA_RANGE = f"({_TOKEN})/({_TOKEN})((?:{_OWS};{_OWS}(?![qQ]=){_TOKEN}={_VALUE})*)"
_WEIGHT = f"{_OWS};{_OWS}[qQ]=(0(?:\\.[0-9]{{0,3}})?|1(?:\\.0{{0,3}})?)"
_ACCEPT_EXT = f"{_OWS};{_OWS}{_TOKEN}(?:={_VALUE})?"
_ELEMENT = re.compile(f"{_MEDIA_RANGE}(?:{_WEIGHT}(?:{_ACCEPT_EXT})*)?")
# RFC 7230 section 7 list: empty, or ( "," / element ) *( OWS "," [ OWS element ] ).
_ACCEPT_LIST = re.compile(f"(?:,|{_ELEMENT.pattern})(?:{_OWS},(?:{_OWS}{_ELEMENT.pattern})?)*")


def _webob_ranges(accept: str) -> MIMEAccept:
    """The header's media ranges with WebOb's precedence, for werkzeug's matching and quality lookup.

    werkzeug orders ranges by specificity then quality; WebOb by specificity then first appearance, and it
    ignores parameters on ``type/*`` and ``*/*``. Dropping those parameters and every repeat of a range
    before werkzeug sorts makes the two agree.
    """
    ranges: dict[str, float] = {}
    for element in parse_list_header(accept):
        match = _ELEMENT.fullmatch(element)
        assert match is not None  # the whole header matched _ACCEPT_LIST
        range_type, range_sub, params, q = match.groups()
        media_range = f"{range_type}/{range_sub}".lower()
        if range_sub != "*" and params:
            media_range += params
        ranges.setdefault(media_range, 1.0 if q is None else float(q))
    return MIMEAccept(ranges.items())


def negotiate_error_format(accept: str | None) -> str:
    """Which of html/json/plain WebOb 1.8 picks for an error page given the request's Accept header.

    WebOb offers ``text/html`` then ``application/json`` and keeps offer order on equal quality, so
    ``*/*`` gives HTML; an absent or empty Accept (nothing acceptable) gives plain text, and a header
    that breaks the RFC 7231 grammar accepts everything (HTML).
    """
    if not accept:
        return "plain"
    if _ACCEPT_LIST.fullmatch(accept) is None:
        return "html"
    ranges = _webob_ranges(accept)
    html_q, json_q = ranges.quality(_HTML), ranges.quality(_JSON)
    if html_q > 0 and html_q >= json_q:
        return "html"
    return "json" if json_q > 0 else "plain"


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
