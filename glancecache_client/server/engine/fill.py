"""One fill: writing one image into a node's cache, checking the bytes, and committing them, or not.

Owns:

- ``verify``: the one rule deciding whether bytes are an image's bytes. Every fill is checked with it before
  it commits, and so is a file that crash repair finds in the cache without a registry row before it is
  adopted. A mismatch, or nothing to check against, leaves nothing cached.
- ``Fill``: ``incomplete/<id>`` → ``verify`` → fsync → rename into place → queue file gone → registry row; or
  ``invalid/`` (deleted instead when the image itself was deleted). A large fill (``DURABLE_LATER``) commits
  before its bytes are durable and makes them durable right after (see ``Fill``). It logs ``fill_started``,
  ``fill_finished`` and ``fill_failed``.
- ``FileTee``: the fill of a first full download that is sent straight from the store file: a thread reads
  the same file into a ``Fill`` while it is sent, and commits only once the sender says the download is
  complete (an aborted download aborts the fill).
- ``FillHost``: the narrow, public interface a fill needs from the engine that runs it (``CacheEngine``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Protocol

from glancecache_client.server.engine.digesting import COPY_CHUNK, DigestingWriter
from glancecache_client.server.logs import event

if TYPE_CHECKING:
    from glancecache_client.server.engine.registry import CacheRegistry
    from glancecache_client.server.engine.store import Image

__all__ = [
    "DURABLE_LATER",
    "ENTRY_DELETED",
    "IMAGE_DELETED",
    "Digests",
    "FileTee",
    "Fill",
    "FillHost",
    "FillPaths",
    "digest_file",
    "fill_digests",
    "fsync_dir",
    "recorded_md5",
    "verify",
]

log = logging.getLogger(__name__)

DURABLE_LATER = 16 * 1024 * 1024
"""Fills of images at least this large commit before their bytes are durable (see ``Fill``); smaller ones after."""

# Why a fill was cancelled (``FillHost.cancellation``): it ends in invalid/ when only its cache entry was
# deleted, and leaves nothing behind when the image itself was deleted.
ENTRY_DELETED = "entry deleted"
IMAGE_DELETED = "image deleted"


@dataclass(frozen=True)
class Digests:
    """What was measured of some bytes: their size and hex digests by algorithm (``fill_digests`` says which)."""

    size: int
    hexdigests: Mapping[str, str]

    @property
    def md5(self) -> str | None:
        return self.hexdigests.get("md5")


def fill_digests(image: Image) -> tuple[str, ...]:
    """The digests measured of bytes that may be ``image``'s: only the strongest it records, where that can stand
    alone.

    Why: hashing is most of a fill's CPU (per 256 MiB about 0.36 CPU-s for MD5, 0.31 for SHA-512 here), and on a
    busy node the fill of a first download competes with the download itself. A Glance 33 image records
    ``checksum`` (MD5) and ``os_hash_algo``/``os_hash_value`` (SHA-512 unless Glance's ``hashing_algorithm`` says
    otherwise): bytes whose size and ``os_hash_value`` match the record are the recorded image, so its MD5 adds no
    assurance and the cached row takes ``checksum`` from the image record. MD5 is measured as well where the
    image has no ``checksum`` (the row records the data's own), and alone where the image has no
    ``os_hash_value`` this Python can compute.
    """
    algorithm = image.os_hash_algo or "sha512"
    if image.os_hash_value is None or algorithm not in hashlib.algorithms_available:
        return ("md5",)
    if algorithm == "md5" or image.checksum is None:
        return tuple(dict.fromkeys(("md5", algorithm)))
    return (algorithm,)


def verify(image: Image, digests: Digests) -> str | None:
    """Why bytes with ``digests`` are not ``image``'s data, or None when they are.

    The one rule, for fills and crash repair alike (both measure what ``fill_digests`` says). The image's size
    must be known and equal. Its ``os_hash_value``, when this Python can compute its ``os_hash_algo``, must have
    been measured and match; its ``checksum`` (MD5) must match where it was measured; and at least one recorded
    digest must have been checked. An image with nothing checkable is refused.
    """
    if image.checksum is None and image.os_hash_value is None:
        return "the image has no checksum to verify against"
    if image.size is None:
        return "the image has no size to verify against"
    if digests.size != image.size:
        return f"size {digests.size} != expected {image.size}"
    checked = False
    algorithm = image.os_hash_algo or "sha512"
    if image.os_hash_value is not None and algorithm in hashlib.algorithms_available:
        measured = digests.hexdigests.get(algorithm)
        if measured is None:
            return f"{algorithm} (the image's os_hash_algo) was not measured"
        if measured != image.os_hash_value:
            return f"{algorithm} does not match os_hash_value"
        checked = True
    if image.checksum is not None and digests.md5 is not None:
        if digests.md5 != image.checksum:
            return f"md5 {digests.md5} != expected {image.checksum}"
        checked = True
    if checked:
        return None
    if image.os_hash_value is not None:
        return f"the image records only an {algorithm} os_hash_value, which this server cannot compute"
    return "no digest the image records was measured"


def recorded_md5(image: Image, digests: Digests) -> str | None:
    """The MD5 a cache row records for verified bytes: measured, or (verified through a stronger digest) the
    image's own ``checksum``."""
    return digests.md5 or image.checksum


def digest_file(path: Path, algorithms: Sequence[str]) -> Digests:
    """Read ``path`` once and measure it with ``algorithms``."""
    hashes = {algorithm: hashlib.new(algorithm, usedforsecurity=False) for algorithm in algorithms}
    size = 0
    with path.open("rb") as data:
        while chunk := data.read(COPY_CHUNK):
            for digest in hashes.values():
                digest.update(chunk)
            size += len(chunk)
    return Digests(size, {algorithm: digest.hexdigest() for algorithm, digest in hashes.items()})


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

    The bytes go through a ``DigestingWriter``: for a large image the file write and the digests run on
    helper threads, so the stream that feeds the fill (a client's download) barely waits for them.

    Durability: a small fill is fsynced before it is renamed into place and recorded. A fill of ``DURABLE_LATER``
    bytes or more is verified, hard-linked into place and recorded first, and made durable after (fsync of the
    file and of the cache directory); only then does its ``incomplete/`` name go and its flock end. Why: on a disk
    whose cache must be flushed, making 256 MiB durable took 0.4-0.9 s beyond the hashing (a virtio disk: dd
    with fsync 0.92-1.16 s), and a first download's last bytes wait for the commit. Nothing unverified is ever
    served, and a crash before the data is durable leaves the ``incomplete/`` name, unlocked, beside the entry:
    the engine's start verifies such an entry's bytes again and drops it if they do not match. (Why that name
    is there whenever the entry is: it was created before the entry's link, and the filesystem's journal keeps
    name operations in order.) A failed flush drops the entry at once.
    """

    def __init__(self, host: FillHost, image: Image, out: BinaryIO, trigger: str) -> None:
        self.host = host
        self.image = image
        self.paths = host.fill_paths(image.id)
        self.out = out
        self.started = time.monotonic()
        self.inode = os.fstat(out.fileno()).st_ino
        self.digest = DigestingWriter(out, name=f"fill-{image.id[:8]}", direct=True, algorithms=fill_digests(image))
        self.durable_later = image.size is not None and image.size >= DURABLE_LATER
        self.open = True
        self._event(logging.INFO, "fill_started", "Started caching image %s (%s)", image.id, trigger,
                    image_id=image.id, trigger=trigger)  # fmt: skip

    def write(self, chunk: bytes) -> None:
        """Hand ``chunk`` to the writer; raises (OSError) if an earlier file write failed."""
        self.digest.write(chunk)

    def digests(self) -> Digests:
        algorithms = self.digest.algorithms
        return Digests(self.digest.size, {algorithm: self.digest.hexdigest(algorithm) for algorithm in algorithms})

    def _still_ours(self) -> bool:
        """True while ``incomplete/<id>`` is still the file we are writing (clean() may have removed it)."""
        try:
            return self.paths.incomplete.stat().st_ino == self.inode
        except FileNotFoundError:
            return False

    def finish(self, on_commit: Callable[[], None] | None = None) -> bool:
        """Verify and commit; ``on_commit`` is called once the entry is recorded (before a ``durable_later`` fill
        is made durable). Never raises: a failure is logged and the file moved to ``invalid/``."""
        if not self.open:
            return False  # already aborted (e.g. a cache write failed mid-stream)
        try:
            self.digest.close()  # waits for the helpers; raises a failed write
            self.out.flush()  # the file is whole from here on (a direct write's last page went through ``out``)
            if not self.durable_later:
                os.fsync(self.out.fileno())
            mismatch = verify(self.image, self.digests())
            if mismatch is not None:
                self.abort(f"Checksum verification failed ({mismatch})", level=logging.ERROR)
                return False
            with self.host.state_lock(self.image.id):
                committed = self._commit()
        except Exception as exc:
            self.abort(f"an error occurred: {exc!r}", level=logging.ERROR, exc_info=True)
            return False
        if not committed:
            return False
        if on_commit is not None:
            on_commit()
        return self._make_durable() if self.durable_later else True

    def _commit(self) -> bool:
        """Move the verified file into place and record it; under the image's state lock. A ``durable_later``
        fill stays open (``_make_durable`` closes it)."""
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
        if self.durable_later:
            # Linked, not renamed: the incomplete/ name stays (flock-ed) until the bytes are durable.
            with contextlib.suppress(FileExistsError):  # committed by another process a moment ago: its file stays
                os.link(paths.incomplete, paths.cached)
        else:
            os.replace(paths.incomplete, paths.cached)
            fsync_dir(paths.cached.parent)
        # The queue file goes before the row comes: a listing (which reads rows, then the queue)
        # must never show the image cached and queued at once. Put back if the row cannot be added.
        queued_since = host.take_queue_file(image_id)
        try:
            # False means a row exists already: another process sharing this cache directory
            # committed the same image a moment ago, or a stale row lost its file. Image data
            # never changes and both fills were verified, so the existing row stays as it is.
            checksum = recorded_md5(self.image, self.digests())
            host.registry.add(image_id, size=self.digest.size, checksum=checksum, now=host.now())
        except Exception as exc:
            with contextlib.suppress(OSError):
                os.replace(paths.cached, paths.invalid)
            host.restore_queue_file(image_id, queued_since)
            reason = f"could not record it in the registry ({exc!r}); file moved to invalid/"
            self._close(committed=False, reason=reason, level=logging.ERROR, exc_info=True)
            return False
        if not self.durable_later:
            self._close(committed=True)
        return True

    def _make_durable(self) -> bool:
        """After a ``durable_later`` commit: fsync the file and the cache directory, then drop the incomplete/
        name. If that fails, the entry's bytes may not survive a crash: it is dropped (row, then file to
        invalid/). Never raises."""
        paths = self.paths
        try:
            os.fsync(self.out.fileno())
            fsync_dir(paths.cached.parent)
        except OSError as exc:
            with self.host.state_lock(self.image.id):
                with contextlib.suppress(OSError):
                    if paths.cached.stat().st_ino == self.inode:
                        self.host.registry.remove(self.image.id)
                        os.replace(paths.cached, paths.invalid)
                with contextlib.suppress(OSError):
                    if self._still_ours():
                        paths.incomplete.unlink()
            self._close(committed=False, reason=f"its data could not be made durable ({exc}); entry dropped",
                        level=logging.ERROR)  # fmt: skip
            return False
        with contextlib.suppress(OSError):
            if self._still_ours():
                paths.incomplete.unlink()
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


def fsync_dir(directory: Path) -> None:
    """fsync(2) a directory: the names created, renamed or removed in it are durable once it returns."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


CLIENT_GONE = "the client closed the download early"


class FileTee:
    """The cache fill of a first full download whose bytes go to the client straight from the store file.

    Why: teeing the download through one thread (read a chunk, hand it to the fill, hand it to the socket) holds
    every chunk's sending up behind its digest. Here the client is sent the store file by the server while a
    thread of this object reads the same file (its own descriptor, ``pread``: the sender's file position is
    untouched) into a ``Fill``, which writes and digests it as any fill does. The two run side by side, on both
    cores; what couples them is the end:

    - ``sent()``: the sender has sent all but the last bytes of the answer (it holds them back, so a client
      that has the whole image also finds it listed): the fill is verified and committed, and ``sent``
      returns once it is committed or has ended otherwise (a ``durable_later`` fill is made durable after).
    - ``close()``: the answer ended otherwise (the client left, an error): the fill is aborted, as a download
      closed early aborts the fill of ``caching_iter``; after ``sent()`` a no-op. Every tee must be closed.

    A fill that fails (disk, verification) never disturbs the download. ``release`` is called once the fill has
    ended (the engine's fill lock of the image), by the tee's thread.
    """

    def __init__(self, fill: Fill, source_fd: int, size: int, release: Callable[[], None]) -> None:
        self.fill = fill
        self.committed = False  # the fill recorded its entry (a durable_later one is dropped after if its flush fails)
        self._fd = source_fd  # owned: closed by the thread when it ends
        self._size = size
        self._release = release
        self._lock = threading.Lock()
        self._outcome: str | None = None  # "" once sent; the abort reason otherwise
        self._decided = threading.Event()
        self._settled = threading.Event()  # the fill is committed, or has ended
        self._thread = threading.Thread(target=self._run, name=f"tee-{fill.image.id[:8]}", daemon=True)
        self._thread.start()

    def sent(self) -> None:
        """The download is complete (but for what the sender holds back): verify and commit, then return."""
        self._decide("")
        self._settled.wait()

    def close(self) -> None:
        """The download ended: without ``sent()``, abort the fill and wait for it to end; after ``sent()`` a no-op
        (a ``durable_later`` fill may still be flushing: the connection's next request must not wait for it).
        Never raises."""
        with self._lock:
            after_sent = self._outcome == ""
        if after_sent:
            return
        self._decide(CLIENT_GONE)
        self._thread.join()

    def _on_commit(self) -> None:
        self.committed = True
        self._settled.set()

    def _decide(self, outcome: str) -> None:
        with self._lock:
            if self._outcome is None:
                self._outcome = outcome
                self._decided.set()

    def _run(self) -> None:
        fill = self.fill
        try:
            offset = 0
            try:
                # Until the whole image is read, or the download is abandoned: a download sent before the fill
                # has read it all ("" outcome: the sending outruns the digests) is read to its end.
                while offset < self._size and fill.open and not self._outcome:
                    chunk = os.pread(self._fd, min(COPY_CHUNK, self._size - offset), offset)
                    if not chunk:
                        break  # a short store file: verification refuses the size
                    try:
                        fill.write(chunk)
                    except OSError as exc:
                        fill.abort(f"the cache write failed: {exc}")
                    offset += len(chunk)
            except Exception as exc:
                fill.abort(f"the store read failed: {exc!r}")
            self._decided.wait()
            if self._outcome:
                fill.abort(self._outcome)
            else:
                fill.finish(on_commit=self._on_commit)  # a no-op after an abort above
        except BaseException:
            log.exception("The cache fill of image %s failed unexpectedly", fill.image.id)
            with contextlib.suppress(Exception):
                fill.abort("an unexpected error in the fill", level=logging.ERROR)
        finally:
            self._settled.set()
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._release()
