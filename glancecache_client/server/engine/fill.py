"""One fill: writing one image into a node's cache, checking the bytes, and committing them, or not.

Owns:

- ``verify``: the one rule deciding whether bytes are an image's bytes. Every fill is checked with it before
  it commits, and so is a file that crash repair finds in the cache without a registry row before it is
  adopted. A mismatch, or nothing to check against, leaves nothing cached.
- ``Fill``: ``incomplete/<id>`` → ``verify`` → rename into place → queue file gone → registry row; or
  ``invalid/`` (deleted instead when the image itself was deleted). It logs ``fill_started``,
  ``fill_finished`` and ``fill_failed``.
- ``FillHost``: the narrow, public interface a fill needs from the engine that runs it (``CacheEngine``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Protocol

from glancecache_client.server.engine.digesting import COPY_CHUNK, DigestingWriter
from glancecache_client.server.logs import event

if TYPE_CHECKING:
    from glancecache_client.server.engine.registry import CacheRegistry
    from glancecache_client.server.engine.store import Image

__all__ = ["ENTRY_DELETED", "IMAGE_DELETED", "Digests", "Fill", "FillHost", "FillPaths", "digest_file", "verify"]

log = logging.getLogger(__name__)

# Why a fill was cancelled (``FillHost.cancellation``): it ends in invalid/ when only its cache entry was
# deleted, and leaves nothing behind when the image itself was deleted.
ENTRY_DELETED = "entry deleted"
IMAGE_DELETED = "image deleted"


@dataclass(frozen=True)
class Digests:
    """What was measured of some bytes: their size and hex MD5 and SHA-512."""

    size: int
    md5: str
    sha512: str


def verify(image: Image, digests: Digests) -> str | None:
    """Why bytes with ``digests`` are not ``image``'s data, or None when they are.

    The image's size must be known and equal. Every checksum it has must match: ``checksum`` (MD5) and
    ``os_hash_value`` (SHA-512; a value in any other algorithm cannot be checked, so it is refused), and at
    least one of them must exist. There is no other rule: fills and crash repair both use this one.
    """
    if image.checksum is None and image.os_hash_value is None:
        return "the image has no checksum to verify against"
    if image.size is None:
        return "the image has no size to verify against"
    if digests.size != image.size:
        return f"size {digests.size} != expected {image.size}"
    if image.checksum is not None and digests.md5 != image.checksum:
        return f"md5 {digests.md5} != expected {image.checksum}"
    if image.os_hash_value is not None:
        algorithm = image.os_hash_algo or "sha512"
        if algorithm != "sha512":
            return f"os_hash_algo {algorithm} cannot be verified"
        if digests.sha512 != image.os_hash_value:
            return "sha512 does not match os_hash_value"
    return None


def digest_file(path: Path) -> Digests:
    """Read ``path`` once and measure it."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha512 = hashlib.sha512()
    size = 0
    with path.open("rb") as data:
        while chunk := data.read(COPY_CHUNK):
            md5.update(chunk)
            sha512.update(chunk)
            size += len(chunk)
    return Digests(size, md5.hexdigest(), sha512.hexdigest())


class FillPaths(NamedTuple):
    """Where one image's fill is written, where it goes when committed, and where when it fails."""

    incomplete: Path
    cached: Path
    invalid: Path


class FillHost(Protocol):
    """What a fill needs from its engine; nothing else of the engine is touched."""

    @property
    def node_url(self) -> str: ...

    @property
    def registry(self) -> CacheRegistry: ...

    def fill_paths(self, image_id: str) -> FillPaths: ...

    def now(self) -> float:
        """The time recorded in a new registry row."""
        ...

    def state_lock(self, image_id: str) -> contextlib.AbstractContextManager[None]:
        """Held while the fill commits; a deletion or purge of the image takes it too."""
        ...

    def cancellation(self, image_id: str) -> str | None:
        """Why this image's running fill was cancelled (``ENTRY_DELETED``, ``IMAGE_DELETED``), or None."""
        ...

    def image_unchanged(self, image: Image) -> bool:
        """True while the catalogue still has ``image`` with the same data (not deleted, id not reused)."""
        ...

    def take_queue_file(self, image_id: str) -> int | None:
        """Remove the image's queue file; a token for ``restore_queue_file`` (None: there was none)."""
        ...

    def restore_queue_file(self, image_id: str, queued_since: int | None) -> None: ...

    def fill_ended(self, image_id: str, *, committed: bool) -> None:
        """Count the outcome and stop tracking the fill (called exactly once per fill)."""
        ...


class Fill:
    """One write of one image into ``incomplete/<id>``; ends committed into the cache or in ``invalid/``.

    The bytes go through a ``DigestingWriter``: for a large image the file write and both digests run on
    helper threads, so the stream that feeds the fill (a client's download) barely waits for them.
    """

    def __init__(self, host: FillHost, image: Image, out: BinaryIO, trigger: str) -> None:
        self.host = host
        self.image = image
        self.paths = host.fill_paths(image.id)
        self.out = out
        self.started = time.monotonic()
        self.inode = os.fstat(out.fileno()).st_ino
        self.digest = DigestingWriter(out, name=f"fill-{image.id[:8]}", direct=True)
        self.open = True
        self._event(logging.INFO, "fill_started", "Started caching image %s (%s)", image.id, trigger,
                    image_id=image.id, trigger=trigger)  # fmt: skip

    def write(self, chunk: bytes) -> None:
        """Hand ``chunk`` to the writer; raises (OSError) if an earlier file write failed."""
        self.digest.write(chunk)

    def digests(self) -> Digests:
        return Digests(self.digest.size, self.digest.md5_hex(), self.digest.sha512_hex())

    def _still_ours(self) -> bool:
        """True while ``incomplete/<id>`` is still the file we are writing (clean() may have removed it)."""
        try:
            return self.paths.incomplete.stat().st_ino == self.inode
        except FileNotFoundError:
            return False

    def finish(self) -> bool:
        """Verify and commit. Never raises: a failure is logged and the file moved to ``invalid/``."""
        if not self.open:
            return False  # already aborted (e.g. a cache write failed mid-stream)
        try:
            self.digest.close()  # waits for the helpers; raises a failed write
            self.out.flush()
            os.fsync(self.out.fileno())
            mismatch = verify(self.image, self.digests())
            if mismatch is not None:
                self.abort(f"Checksum verification failed ({mismatch})", level=logging.ERROR)
                return False
            with self.host.state_lock(self.image.id):
                return self._commit()
        except Exception as exc:
            self.abort(f"an error occurred: {exc!r}", level=logging.ERROR, exc_info=True)
            return False

    def _commit(self) -> bool:
        """Move the verified file into place and record it; under the image's state lock."""
        host, image_id, paths = self.host, self.image.id, self.paths
        cancelled = host.cancellation(image_id)
        if cancelled is not None:
            self.abort(f"{cancelled} during the fill", discard=cancelled == IMAGE_DELETED)
            return False
        if not host.image_unchanged(self.image):
            # Deleted on another node (any process) during the fill; a purge that comes later
            # waits for this state lock and finds the committed entry.
            self.abort(f"{IMAGE_DELETED} during the fill", discard=True)
            return False
        if not self._still_ours():
            self._close(committed=False, reason="its incomplete file was removed (cleaned as stalled?)")
            return False
        os.replace(paths.incomplete, paths.cached)
        _fsync_dir(paths.cached.parent)
        # The queue file goes before the row comes: a listing (which reads rows, then the queue)
        # must never show the image cached and queued at once. Put back if the row cannot be added.
        queued_since = host.take_queue_file(image_id)
        try:
            # False means a row exists already: another process sharing this cache directory
            # committed the same image a moment ago, or a stale row lost its file. Image data
            # never changes and both fills were verified, so the existing row stays as it is.
            host.registry.add(image_id, size=self.digest.size, checksum=self.digest.md5_hex(), now=host.now())
        except Exception as exc:
            with contextlib.suppress(OSError):
                os.replace(paths.cached, paths.invalid)
            host.restore_queue_file(image_id, queued_since)
            reason = f"could not record it in the registry ({exc!r}); file moved to invalid/"
            self._close(committed=False, reason=reason, level=logging.ERROR, exc_info=True)
            return False
        self._close(committed=True)
        return True

    def abort(self, reason: str, *, discard: bool = False, level: int = logging.WARNING,
              exc_info: bool = False) -> None:  # fmt: skip
        """Move the partial file to ``invalid/`` (or, with ``discard``, delete it) and release it."""
        if not self.open:
            return
        discard = discard or self.host.cancellation(self.image.id) == IMAGE_DELETED
        self.digest.cancel()  # the helpers stop touching the file before it moves
        try:
            if self._still_ours():
                if discard:
                    self.paths.incomplete.unlink()
                else:
                    os.replace(self.paths.incomplete, self.paths.invalid)
                    reason += "; partial file moved to invalid/"
        except OSError:
            log.exception("Could not move or remove the partial file of image %s", self.image.id)
        finally:
            self._close(committed=False, reason=reason, level=level, exc_info=exc_info)

    def _close(self, *, committed: bool, reason: str = "", level: int = logging.WARNING,
               exc_info: bool = False) -> None:  # fmt: skip
        """Release the file (and its flock), count and log the outcome, once."""
        if not self.open:
            return
        self.open = False
        self.digest.cancel()  # a no-op after close() or abort(); never leaves a helper behind
        with contextlib.suppress(OSError):
            self.out.close()
        image_id, size = self.image.id, self.digest.size
        seconds = round(time.monotonic() - self.started, 3)
        self.host.fill_ended(image_id, committed=committed)
        if committed:
            self._event(logging.INFO, "fill_finished", "Cached image %s (%d bytes in %.3f s)",
                        image_id, size, seconds, image_id=image_id, bytes=size, seconds=seconds)  # fmt: skip
        else:
            self._event(level, "fill_failed", "Caching image %s failed after %d bytes in %.3f s: %s",
                        image_id, size, seconds, reason, exc_info=exc_info,
                        image_id=image_id, bytes=size, seconds=seconds, reason=reason)  # fmt: skip

    def _event(self, level: int, name: str, message: str, *args: object, exc_info: bool = False,
               **fields: object) -> None:  # fmt: skip
        event(log, level, name, message, *args, node=self.host.node_url, exc_info=exc_info, wrappers=1, **fields)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
