"""How failures map to exit statuses, and how a run's outcomes combine."""

from __future__ import annotations

import pytest
from keystoneauth1 import exceptions as ks

from glancecache_client import errors
from glancecache_client.cli import exitcodes

NODE = "http://g1:9292"


def api(cls: type[errors.APIError], status: int) -> errors.APIError:
    return cls(node=NODE, status=status, explanation="x")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidInput("bad id"), 2),
        (api(errors.Unauthorized, 401), 3),
        (api(errors.Forbidden, 403), 3),
        (api(errors.NotFound, 404), 4),
        (errors.UnsupportedFeature(NODE, "pruning", "2.18"), 5),
        (errors.ConnectionRefused("refused", node=NODE), 5),
        (errors.NameResolutionFailed("dns", node=NODE), 5),
        (errors.RequestTimeout("slow", node=NODE), 5),
        (errors.TLSFailure("tls", node=NODE), 5),
        (api(errors.ServerError, 500), 1),
        (api(errors.BadRequest, 400), 1),
        (api(errors.Conflict, 409), 1),
        (api(errors.InvalidResponse, 200), 1),
        (errors.CacheWaitTimeout(NODE, "id", 3), 1),
        (ks.Unauthorized(), 3),
        (ks.ConnectFailure(), 5),
        (RuntimeError("unexpected"), 1),
    ],
)
def test_each_failure_has_its_documented_status(error, code):
    assert exitcodes.for_error(error) == code


def test_combine():
    not_found = api(errors.NotFound, 404)
    refused = errors.ConnectionRefused("refused", node=NODE)
    assert exitcodes.combine(3, []) == 0
    assert exitcodes.combine(0, []) == 0
    assert exitcodes.combine(2, [not_found]) == exitcodes.PARTIAL
    assert exitcodes.combine(0, [not_found, not_found]) == exitcodes.NOT_FOUND
    assert exitcodes.combine(0, [refused]) == exitcodes.UNAVAILABLE
    assert exitcodes.combine(0, [not_found, refused]) == exitcodes.ERROR
