"""Input checks done before any request: node endpoints, image ids and timeouts.

A node may be given as ``host``, ``host:port``, ``[v6addr]:port`` or a full URL, possibly with a path prefix
(``http://host/image`` as devstack serves Glance, or ``http://host:9393/cache`` for a separate cache admin
listener). A bare host gets scheme http and port 9292; a full URL keeps its scheme's default port.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from .errors import InvalidInput

__all__ = ["DEFAULT_PORT", "catalog_endpoint", "normalize_endpoint", "validate_image_id", "validate_seconds"]

DEFAULT_PORT = 9292
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EXAMPLE_ID = "3c021162-1e38-461a-a362-e154bf54e241"
# A catalog entry such as http://glance:9292/v2 names the API version; the cache client adds /v2 itself.
_VERSION_SUFFIX = re.compile(r"/v2(\.\d+)?/?$")


def catalog_endpoint(url: str) -> str:
    """A service catalog's (or ``image_endpoint_override``'s) image URL as a node address: without ``/v2``."""
    return _VERSION_SUFFIX.sub("", url.rstrip("/")) or url


def validate_image_id(image_id: str) -> str:
    """Return the id in Glance's canonical (lower-case) form, or raise InvalidInput saying what a valid id is.

    Glance answers 404 for any malformed id; checking first turns a typo into an immediate, clear message and
    keeps ``../`` and friends out of every URL we build.
    """
    if not isinstance(image_id, str) or not image_id.strip():
        raise InvalidInput("empty image id: give an image UUID such as " + _EXAMPLE_ID)
    text = image_id.strip()
    if not _UUID.match(text):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise InvalidInput(
            f"invalid image id {shown!r}: an image id is a UUID of 8-4-4-4-12 hex digits, "
            f"such as {_EXAMPLE_ID}"
        )
    return text.lower()


def image_ids(given: Iterable[str]) -> list[str]:
    """Validated, de-duplicated image ids in their given order; InvalidInput names the first bad one."""
    return list(dict.fromkeys(validate_image_id(text) for text in given))


def normalize_endpoint(value: str, *, default_scheme: str = "http", default_port: int = DEFAULT_PORT) -> str:
    """Turn ``host``, ``host:port`` or a URL into ``scheme://host:port[/prefix]`` without a trailing slash."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidInput("empty node address: give host, host:port or a URL such as http://glance1:9292")
    if "://" not in text:
        text = f"{default_scheme}://{text}"
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket: "http://[fe80::1"
        raise InvalidInput(f"invalid node address {value!r}: use host, host:port or a URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"unsupported scheme in node address {value!r}: use http:// or https://")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(
            f"invalid port in node address {value!r}: use host:port, e.g. glance1:9292"
        ) from None
    host = parts.hostname
    if not host or any(ch in host for ch in " /\\@"):
        raise InvalidInput(f"invalid node address {value!r}: use host, host:port or a URL")
    if parts.query or parts.fragment:
        raise InvalidInput(f"node address {value!r} must not have a query or fragment")
    if port is None and "://" not in value:
        port = default_port  # a bare host means a Glance API node; a full URL keeps its scheme's default
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    return urlunsplit((parts.scheme, netloc.lower(), parts.path.rstrip("/"), "", ""))


def validate_seconds(value: object, name: str = "timeout") -> float:
    """A finite, positive number of seconds, or InvalidInput saying what is allowed (nan, inf, 0 and negative
    values would otherwise mean "never" or "at once" to the layers below)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInput(f"{name} must be a positive, finite number of seconds, not {value!r}")
    return seconds
