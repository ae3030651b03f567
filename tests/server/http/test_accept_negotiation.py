"""Error-page format negotiation agrees with WebOb 1.8.11, the library Glance 33 builds its error pages with.

``webob_accept_choices.json`` maps Accept headers to the format (html/json/plain) real WebOb 1.8.11 chose
with Glance's offers ``['text/html', 'application/json']``. It samples a 36,478-header corpus recorded from
WebOb (every media-range combination of up to three items drawn from 26 well- and ill-formed ranges): all
the one- and two-item headers the old regex negotiation got wrong, 700 of its three-item misses, 300
headers it already got right, and 15 hand-written headers (accept-ext parameters, repeated ranges,
parameters on wildcards, quoted commas) whose answers were taken from WebOb the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glancecache_client.server.http.faults import negotiate_error_format

WEBOB_CHOICES: dict[str, str] = json.loads((Path(__file__).parent / "webob_accept_choices.json").read_text())


@pytest.mark.parametrize(("accept", "expected"), sorted(WEBOB_CHOICES.items()))
def test_matches_webob(accept: str, expected: str) -> None:
    assert negotiate_error_format(accept) == expected


def test_sample_covers_every_format_and_rule() -> None:
    """The data file still exercises each branch: all three formats and invalid headers (HTML)."""
    assert set(WEBOB_CHOICES.values()) == {"html", "json", "plain"}
    assert WEBOB_CHOICES["application/json;q=abc"] == "html"  # invalid header: every offer acceptable
    assert WEBOB_CHOICES["text/html;q=0,text/html,application/json;q=0.1"] == "json"  # first appearance wins


def test_absent_accept_is_plain_text() -> None:
    # webob.exc reads a missing Accept as "", a valid header that accepts nothing.
    assert negotiate_error_format(None) == "plain"
    assert negotiate_error_format("") == "plain"
