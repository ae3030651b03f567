from __future__ import annotations

import pytest

from glancecache_client.errors import InvalidInput
from glancecache_client.nodes import normalize_endpoint, validate_image_id


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("glance1", "http://glance1:9292"),
        ("glance1:9393", "http://glance1:9393"),
        ("GLANCE1", "http://glance1:9292"),
        ("http://ctl/image", "http://ctl/image"),
        ("https://ctl/image/", "https://ctl/image"),
        ("http://ctl:9393/cache", "http://ctl:9393/cache"),
        ("[::1]:9292", "http://[::1]:9292"),
        ("10.0.0.5", "http://10.0.0.5:9292"),
    ],
)
def test_normalize_endpoint(given: str, expected: str) -> None:
    assert normalize_endpoint(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty node address"),
        ("ftp://x", "unsupported scheme"),
        ("host:notaport", "invalid port"),
        ("http://h:9292/?a=1", "query or fragment"),
    ],
)
def test_bad_endpoints(given: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        normalize_endpoint(given)


def test_valid_image_id_is_lowercased() -> None:
    assert validate_image_id("3C021162-1E38-461A-A362-E154BF54E241") == "3c021162-1e38-461a-a362-e154bf54e241"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty image id"),
        ("   ", "empty image id"),
        ("not-a-uuid", "invalid image id 'not-a-uuid': an image id is a UUID"),
        ("../../etc/passwd", "invalid image id '../../etc/passwd'"),
        ("3c021162-1e38-461a-a362-e154bf54e241/../x", "invalid image id"),
        ("3c0211621e38461aa362e154bf54e241", "invalid image id"),
    ],
)
def test_bad_image_ids(given: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        validate_image_id(given)
    assert "such as 3c021162-1e38-461a-a362-e154bf54e241" in str(info.value)
    assert isinstance(info.value, ValueError)
