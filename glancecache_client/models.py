"""Typed results of the cache API: frozen dataclasses built from Glance's JSON.

Times arrive as epoch seconds (floats); they become UTC-aware datetimes, and an epoch of 0 (Glance's "never")
becomes ``None``, never 1970. Keys that only some drivers send (``id``, ``checksum`` from ``centralized_db``)
are accepted; unknown keys are ignored so newer servers do not break older clients. Anything else a node might
send (a missing list, negative or out-of-range numbers, text with control characters) is a ValueError.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = [
    "EPOCH_LIMIT",
    "CacheState",
    "CachedImage",
    "ClearResult",
    "ClearTarget",
    "NodeSummary",
    "PruneResult",
    "SyncStep",
    "epoch_to_datetime",
]


def epoch_to_datetime(value: object) -> datetime | None:
    """Epoch seconds (int, float or numeric string) to an aware UTC datetime; 0, None and "" to None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected epoch seconds, got {_short(value)}")
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"expected epoch seconds, got {_short(value)}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected epoch seconds, got {_short(value)}")
    if seconds == 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"epoch seconds out of range: {_short(value)}") from None


class ClearTarget(str, enum.Enum):
    """What ``DELETE /v2/cache`` empties. ``BOTH`` is sent as *no header*: Glance 33 rejects the value."""

    BOTH = "both"
    CACHE = "cache"
    QUEUE = "queue"

    @classmethod
    def parse(cls, value: str | ClearTarget) -> ClearTarget:
        """Accept the API's names and Glance's documented spellings ``cached``/``queued``, any case."""
        if isinstance(value, ClearTarget):
            return value
        text = value.strip().lower()
        aliases = {"cached": cls.CACHE, "queued": cls.QUEUE, "all": cls.BOTH}
        if text in aliases:
            return aliases[text]
        try:
            return cls(text)
        except ValueError:
            raise ValueError(
                f"unknown clear target {value!r}: use 'both', 'cache' (or 'cached') or 'queue' (or 'queued')"
            ) from None

    @property
    def header_value(self) -> str | None:
        """The ``x-image-cache-clear-target`` value to send, or None for no header."""
        return None if self is ClearTarget.BOTH else self.value


@dataclass(frozen=True, slots=True)
class CachedImage:
    """One image file held in one node's cache."""

    image_id: str
    size: int
    hits: int
    last_accessed: datetime | None
    last_modified: datetime | None
    checksum: str | None
    node: str

    @classmethod
    def from_api(cls, entry: Mapping[str, object], node: str) -> CachedImage:
        """Build from one ``cached_images[]`` element; raises ValueError on a malformed entry."""
        image_id = entry.get("image_id")
        if not isinstance(image_id, str) or not _printable(image_id):
            raise ValueError(f"cached image entry without a printable string image_id: {_short(dict(entry))}")
        checksum = entry.get("checksum")
        if checksum not in (None, "") and not (isinstance(checksum, str) and _printable(checksum)):
            raise ValueError(f"checksum is not printable text: {_short(checksum)}")
        return cls(
            image_id=image_id,
            size=_as_int(entry.get("size"), "size"),
            hits=_as_int(entry.get("hits"), "hits"),
            last_accessed=epoch_to_datetime(entry.get("last_accessed")),
            last_modified=epoch_to_datetime(entry.get("last_modified")),
            checksum=checksum if isinstance(checksum, str) and checksum else None,
            node=node,
        )


@dataclass(frozen=True, slots=True)
class CacheState:
    """What one node holds: cached images and the ids queued for caching, in the server's order."""

    cached: tuple[CachedImage, ...]
    queued: tuple[str, ...]
    node: str

    @classmethod
    def from_api(cls, body: object, node: str) -> CacheState:
        """Build from a ``GET /v2/cache`` body; raises ValueError when it is not that shape."""
        if not isinstance(body, Mapping) or "cached_images" not in body or "queued_images" not in body:
            raise ValueError("expected a JSON object with cached_images and queued_images")
        cached = body["cached_images"]
        queued = body["queued_images"]
        if not isinstance(cached, Sequence) or isinstance(cached, (str, bytes)):
            raise ValueError("cached_images is not a list")
        if not isinstance(queued, Sequence) or isinstance(queued, (str, bytes)):
            raise ValueError("queued_images is not a list")
        entries = []
        for entry in cached:
            image = _plain_entry(entry, node) if type(entry) is dict else None
            if image is None:  # not the plain shape: the full checks, which also say what is wrong
                if not isinstance(entry, Mapping):
                    raise ValueError(f"cached_images entry is not an object: {_short(entry)}")
                image = CachedImage.from_api(entry, node)
            entries.append(image)
        if not all(isinstance(image_id, str) and _printable(image_id) for image_id in queued):
            raise ValueError("queued_images holds something other than id strings")
        return cls(cached=tuple(entries), queued=tuple(str(i) for i in queued), node=node)

    def is_cached(self, image_id: str) -> bool:
        return any(image.image_id == image_id for image in self.cached)

    @property
    def total_size(self) -> int:
        return sum(image.size for image in self.cached)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``POST /v2/cache/prune`` removed from one node."""

    files: int
    bytes: int
    node: str = ""

    @classmethod
    def from_api(cls, body: object, node: str) -> PruneResult:
        if not isinstance(body, Mapping):
            raise ValueError("expected a JSON object with total_files_pruned and total_bytes_pruned")
        return cls(
            files=_as_int(body.get("total_files_pruned"), "total_files_pruned"),
            bytes=_as_int(body.get("total_bytes_pruned"), "total_bytes_pruned"),
            node=node,
        )


@dataclass(frozen=True, slots=True)
class ClearResult:
    """What a clear removed from one node. Glance's 204 drops its counts, so the client derives them from a
    listing before and after the call (the deprecated endpoints report them directly). A count is None
    (unknown) when the node's policy refuses the listing: the clear itself needs only ``cache_delete``."""

    cached: int | None
    queued: int | None
    node: str = ""


# Epoch seconds below this (year 9999) convert without error; above it, the full path says "out of range".
EPOCH_LIMIT = 253402300799.0
_UTC = timezone.utc


def _plain_entry(entry: dict[str, object], node: str) -> CachedImage | None:
    """:meth:`CachedImage.from_api` for the shape every well-behaved node sends (exact str, int and float types,
    in range), with the same result, at a fraction of its per-entry cost (a listing has 10,000s of entries).
    None for anything else, which then takes the full path: this one never accepts what that one refuses."""
    get = entry.get
    image_id, size, hits, checksum = get("image_id"), get("size"), get("hits"), get("checksum")
    accessed, modified = get("last_accessed"), get("last_modified")
    if not (
        type(image_id) is str
        and image_id
        and image_id.isprintable()
        and type(size) is int
        and size >= 0
        and type(hits) is int
        and hits >= 0
        and (checksum is None or (type(checksum) is str and (not checksum or checksum.isprintable())))
        and type(accessed) in (float, int)
        and 0 <= accessed < EPOCH_LIMIT  # type: ignore[operator]  # NaN fails this too
        and type(modified) in (float, int)
        and 0 <= modified < EPOCH_LIMIT  # type: ignore[operator]
    ):
        return None
    return CachedImage(
        image_id,
        size,
        hits,
        datetime.fromtimestamp(accessed, _UTC) if accessed else None,  # type: ignore[arg-type]
        datetime.fromtimestamp(modified, _UTC) if modified else None,  # type: ignore[arg-type]
        checksum or None,
        node,
    )


def _as_int(value: object, name: str) -> int:
    """A count or size: a non-negative integer (an integral float such as 5.0 too)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} is not a number: {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{name} is not an integer: {_short(value)}")
    if value < 0:
        raise ValueError(f"{name} is negative: {value}")
    return value


def _printable(text: str) -> bool:
    """Text that prints as itself on one line: no control characters (which could also drive a terminal)."""
    return bool(text) and text.isprintable()


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """How one node's cache stands: totals from its listing, or (every count None) the error it gave."""

    node: str
    cached_images: int | None = None
    cached_bytes: int | None = None
    queued_images: int | None = None
    hits: int | None = None
    last_accessed: datetime | None = None
    error: str | None = None

    @classmethod
    def of(cls, state: CacheState) -> NodeSummary:
        accessed = [image.last_accessed for image in state.cached if image.last_accessed is not None]
        return cls(
            node=state.node,
            cached_images=len(state.cached),
            cached_bytes=state.total_size,
            queued_images=len(state.queued),
            hits=sum(image.hits for image in state.cached),
            last_accessed=max(accessed, default=None),
        )


@dataclass(frozen=True, slots=True)
class SyncStep:
    """One step of a sync plan on one node: ``action`` is queue, keep, delete or dequeue. ``result`` is None
    while only planned (a dry run), "ok" once applied, else the one-line error that stopped it."""

    node: str
    image_id: str
    action: str
    result: str | None = None
