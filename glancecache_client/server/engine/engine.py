"""The per-node image-cache engine: Glance's cache directory layout, queue, worker pool, fills, prune, clean.

Directory layout (as Glance)::

    <cache_dir>/<image_id>             complete cache entries
    <cache_dir>/incomplete/<image_id>  a fill in progress (exclusively created, flock-ed by its writer;
                                       made as ``.<image_id>.<random>`` and linked into place locked)
    <cache_dir>/invalid/<image_id>     failed, aborted or unverifiable fills (removed by clean())
    <cache_dir>/queue/<image_id>       zero-byte "please cache" markers, listed by mtime
    <cache_dir>/.locks/                lock files serialising prune and clean across processes

Public API (used by the http side and the runner): ``CacheEngine`` with ``start``, ``close``, ``listing``,
``list_cached``, ``list_cached_json``, ``list_queued``, ``is_cached``, ``is_queued``, ``queue``, ``legacy_queue``,
``delete``, ``delete_queued``, ``delete_all_cached``, ``delete_all_queued``, ``clean``, ``prune``, ``cached_nodes``,
``open_cached``, ``caching_iter``, ``purge_image``, ``sync_deletions``, ``wait_idle`` and ``stats``; the attribute
``driver``.
A fill (``fill.Fill``) reaches the engine only through ``fill.FillHost``: ``fill_paths``, ``now``, ``state_lock``,
``cancellation``, ``image_unchanged``, ``take_queue_file``, ``restore_queue_file`` and ``fill_ended``.
Every event (queued, fill started/finished/failed, deleted, purged, prune, clean, clear, repairs) is logged
through ``logs.event`` with this node's URL.

Rules, and where we deliberately differ from Glance 33:

- An image is *cached* when its file ``<cache_dir>/<id>`` exists **and** the registry has this node's row.
- A fill (``fill.Fill``) writes to ``incomplete/<id>`` (created with O_EXCL and held under ``flock``), checks
  the bytes with ``fill.verify`` (size and the strongest digest the image records, see ``fill.fill_digests``),
  fsyncs, renames into place, removes the queue file and only then inserts the row. A fill of
  ``fill.DURABLE_LATER`` bytes or more is hard-linked into place and recorded before its fsync, keeping its
  ``incomplete/`` name (still flock-ed) until the fsync returns; ``start()`` verifies again an entry that still
  has an abandoned ``incomplete/`` name (a crash came before its bytes were known to be durable). For a large
  image the file write and the digest run on helper threads of the fill (``digesting.DigestingWriter``), so a
  download feeding it is not slowed by them; the file is written with O_DIRECT where the filesystem takes it,
  which keeps fills from competing with the digest for CPU and from pushing hot pages out of memory (the first
  hit then reads from disk).
  A mismatch, an error or the consumer closing the stream early (GeneratorExit) moves the file to
  ``invalid/`` and records nothing. An image without any checksum it can check is not cached.
- One writer per image per node: an in-process lock per image plus the exclusive ``incomplete/`` file, so
  processes sharing a cache directory are also safe. A download that finds a fill running is passed through.
  (Across processes, a fill starting in the instant between another's rename and row insert can verify and
  commit the same bytes once more: harmless, the existing row is kept.)
- ``queue`` is a no-op for a cached image (Glance re-downloads it). Queued ids go to a pool of worker
  threads that logs and survives every failure (Glance's single worker thread dies on the first one).
  A worker never waits behind a download filling the same image: it leaves the id queued and the
  download re-submits it when it ends without having cached it (e.g. the client went away).
  When the worker finds the image deleted or no longer ``active`` it drops the queue file (nothing could
  ever fill it; queueing it again is the way to retry after a reactivation). When the fill itself fails
  (store error, checksum mismatch) the queue file stays, so the failure stays visible in
  ``queued_images``; ``queue`` again or the next ``start()`` retries it.
- ``delete``/``purge_image``/``delete_all_cached``/``prune`` cancel a fill of the same image running in
  this process: it ends in ``invalid/`` instead of resurrecting the entry (after ``purge_image``, the image
  is gone: the partial file is deleted instead).
- Deletions made by any node, in any process, reach every engine through the shared deletion log
  (``ImageStore.deletions_after``, read by a ``deletions.DeletionLog`` that the engines of one process share):
  ``sync_deletions`` purges them, on a timer and before each listing, and ``start()`` purges entries whose
  image went while the engine was down. A fill commits only if the
  catalogue still has its image with the same checksum, checked under the image's state lock that a purge
  also takes, so a fill racing a deletion elsewhere either sees it or is purged right after.
- Prune counts only tracked entries (row and file), so files the registry does not know about can never
  make it loop (Glance 33 spins forever on them). Files named like image ids without a row are repaired
  by ``start()``/``clean()``: adopted if their bytes pass ``fill.verify`` (the rule every fill passes), otherwise
  moved to ``invalid/``. Files whose names are not image ids (``cache.db``, an operator's notes) are never
  counted, listed or deleted.
- Crash repair (``start()`` and ``clean()``): rows whose file is gone are deleted, files without rows are
  adopted or invalidated, queue files of cached images are removed; ``start()`` also deletes
  ``incomplete/`` files no live writer holds (the flock tells), then re-submits the queue.
- Engine methods given an id that is not a UUID never touch the filesystem: queries answer "not there"
  (False, None, ``[]``), deletes are no-ops, and only ``queue``/``legacy_queue`` raise ValueError.
- Hits: ``open_cached`` (a full read) counts one hit and sets ``last_accessed``; Range reads must not use it.
- Times are epoch floats from ``clock`` (``time.time`` by default): correct whatever the process TZ.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import queue as queue_module
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from glancecache_client.server.engine.deletions import DELETION_POLL_INTERVAL, DeletionLog
from glancecache_client.server.engine.digesting import COPY_CHUNK
from glancecache_client.server.engine.fill import (
    ENTRY_DELETED,
    IMAGE_DELETED,
    FileTee,
    Fill,
    FillPaths,
    digest_file,
    fill_digests,
    fsync_dir,
    recorded_md5,
    verify,
)
from glancecache_client.server.engine.locks import KeyedLocks, SharedRun
from glancecache_client.server.engine.registry import CacheRegistry, Listing
from glancecache_client.server.engine.store import Image, ImageStore, is_image_id
from glancecache_client.server.logs import event

__all__ = ["CacheEngine"]

log = logging.getLogger(__name__)

_DELETE_BATCH = 500  # entries whose rows one prune or clear transaction removes (and whose state locks it holds)
_UNLINK_THREADS = 8  # concurrent unlinks of prune and clear (see _delete_batch)


class CacheEngine:
    """The image cache of one node. Thread-safe; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        node_url: str,
        cache_dir: Path,
        store: ImageStore,
        registry: CacheRegistry,
        max_size: int,
        stall_time: int,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
        deletion_poll_interval: float = DELETION_POLL_INTERVAL,
        deletion_log: DeletionLog | None = None,
    ) -> None:
        """``deletion_log``: the reader of the deletion log shared by the engines of this process (see
        ``deletions``); without it the engine gets one of its own, polling every ``deletion_poll_interval``
        seconds (0: only listings read the log)."""
        self.node_url = node_url
        self.cache_dir = Path(cache_dir)
        self.store = store
        self.registry = registry
        self.driver = registry.driver
        self.max_size = max_size
        self.stall_time = stall_time
        self._worker_count = max(0, workers)  # 0: queued ids stay queued (a stable queue for tests)
        self._held = False
        self._clock = clock
        self._incomplete_dir = self.cache_dir / "incomplete"
        self._invalid_dir = self.cache_dir / "invalid"
        self._queue_dir = self.cache_dir / "queue"
        self._locks_dir = self.cache_dir / ".locks"

        self._guard = threading.Lock()
        self._idle = threading.Condition(self._guard)
        # GET /v2/cache requests arriving together share one listing built after they came (see SharedRun).
        self._shared_listing = SharedRun(self._build_listing)
        # Per image id: one fill at a time (held for the whole fill) and state changes (brief). Both forget
        # an id once nobody uses its lock, so a long-lived node does not keep a lock per image ever seen.
        self._fill_locks = KeyedLocks()
        self._state_locks = KeyedLocks()
        # Image id -> None, or why it was cancelled (ENTRY_DELETED, IMAGE_DELETED), for each fill of this
        # engine that has not ended yet.
        self._running_fills: dict[str, str | None] = {}
        self._deletion_log = deletion_log or DeletionLog(store, deletion_poll_interval)
        self._named_locks = {"clean": threading.Lock(), "prune": threading.Lock()}
        self._tasks: queue_module.Queue[str | None] = queue_module.Queue()
        self._waiting: set[str] = set()
        self._deferred: set[str] = set()  # queued ids a worker found busy: re-submitted on release
        self._outstanding = 0
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._counters = {"fills_started": 0, "fills_committed": 0, "fills_failed": 0}

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the layout, repair what a crash left behind, start the workers and re-submit the queue."""
        for directory in (self.cache_dir, self._incomplete_dir, self._invalid_dir, self._queue_dir, self._locks_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Deletions from here on are read from the log; the repair below catches those made before.
        self._deletion_log.attach(self)
        with self._exclusive("clean"):
            for path in self._files(self._incomplete_dir):
                if self._remove_if_abandoned(path, settle=self._confirm_unsynced_entry):
                    self._event(logging.INFO, "repaired", "Removed abandoned partial file %s", path)
            self._repair()
        self._stopping = False
        if not self._threads:
            for number in range(self._worker_count):
                thread = threading.Thread(target=self._work, name=f"cache-worker-{number}", daemon=True)
                thread.start()
                self._threads.append(thread)
        for image_id in self.list_queued():
            self._submit(image_id)
        self._deletion_log.watch()

    def close(self) -> None:
        """Stop the workers (a fill in progress gets a few seconds) and release the registry."""
        self._stopping = True  # ids still waiting are skipped: their queue files survive for the next start
        self._deletion_log.detach(self)
        threads, self._threads = self._threads, []
        for _ in threads:
            self._tasks.put(None)
        for thread in threads:
            thread.join(timeout=5)
        self.registry.close()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no queued id is waiting for or being processed by a worker. For tests."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout=timeout)

    def stats(self) -> dict[str, int]:
        """Counters since start: fills started, committed and failed (including aborted ones); and, right
        now, how many per-image records exist (locks held or awaited, running fills): 0 on an idle engine."""
        with self._guard:
            counters = dict(self._counters)
            running = len(self._running_fills)
        return {**counters, "ids_in_use": running + len(self._fill_locks) + len(self._state_locks)}

    # -- listing ---------------------------------------------------------------------------------------

    def listing(self) -> tuple[str, list[str]]:
        """GET /v2/cache: the JSON text of ``list_cached()`` (byte for byte ``json.dumps`` of it, see
        ``Listing.json``) and ``list_queued()``, after one read of the deletion log, not two: that read is a third
        of a small listing's work, and a server hosting 100 nodes answers 100 listings at once. Requests arriving
        together share one listing built after they came."""
        text, queued = self._shared_listing()
        return text, list(queued)

    def _build_listing(self) -> tuple[str, tuple[str, ...]]:
        self.sync_deletions()
        return self._cached_listing().json(), tuple(self._queued_ids())

    def list_cached(self) -> list[dict[str, object]]:
        """This node's entries in Glance 33's wire shape for the driver (see ``CacheEntry.wire``)."""
        self.sync_deletions()
        return self._cached_listing().wire()

    def list_cached_json(self) -> str:
        """``list_cached()`` as JSON text, as ``listing`` writes it."""
        self.sync_deletions()
        return self._cached_listing().json()

    def list_queued(self) -> list[str]:
        """Queued image ids, oldest queue file first (ties by id)."""
        self.sync_deletions()
        return self._queued_ids()

    def _cached_listing(self) -> Listing:
        listing = self.registry.listing()
        # Scanned after the query: a fill renames its file before inserting its row, so every row read
        # above whose entry still exists has its file seen here.
        return listing.only(self._file_names(self.cache_dir))

    def _queued_ids(self) -> list[str]:
        found: list[tuple[int, str]] = []
        for path in self._files(self._queue_dir):
            if is_image_id(path.name):
                with contextlib.suppress(FileNotFoundError):
                    found.append((path.stat().st_mtime_ns, path.name))
        return [image_id for _, image_id in sorted(found)]

    def is_cached(self, image_id: str) -> bool:
        if not is_image_id(image_id):
            return False
        return self._cached_path(image_id).is_file() and self.registry.get(image_id) is not None

    def is_queued(self, image_id: str) -> bool:
        return is_image_id(image_id) and self._queue_path(image_id).is_file()

    def cached_nodes(self, image_id: str) -> list[str]:
        """Every node URL with a row for the image (centralized_db); for sqlite, this node if cached."""
        if not is_image_id(image_id):
            return []
        return self.registry.cached_nodes(image_id)

    # -- queue -----------------------------------------------------------------------------------------

    def queue(self, image_id: str) -> None:
        """Queue the image and hand it to the worker pool; a no-op when it is already cached."""
        if self._write_queue_file(image_id, "api") or self.is_queued(image_id):
            self._submit(image_id)

    def legacy_queue(self, image_id: str) -> bool:
        """Write the queue file only (``PUT /v2/queued_images/{id}``); False if cached or already queued."""
        return self._write_queue_file(image_id, "legacy")

    def _write_queue_file(self, image_id: str, via: str) -> bool:
        if not is_image_id(image_id):
            raise ValueError(f"image id {image_id!r} is not a UUID")
        if self.is_cached(image_id):
            return False
        try:
            with self._queue_path(image_id).open("xb"):
                pass
        except FileExistsError:
            return False
        self._event(logging.INFO, "queued", "Queued image %s (%s)", image_id, via, image_id=image_id, via=via)
        return True

    def delete_queued(self, image_id: str) -> None:
        if is_image_id(image_id) and self._unlink(self._queue_path(image_id)):
            self._event(logging.INFO, "dequeued", "Removed image %s from the queue", image_id, image_id=image_id)

    def delete_all_queued(self) -> int:
        removed = 0
        for path in self._files(self._queue_dir):
            if is_image_id(path.name) and self._unlink(path):
                removed += 1
        self._event(logging.INFO, "clear", "Cleared the queue: %d images", removed, target="queue", images=removed)
        return removed

    # -- delete ----------------------------------------------------------------------------------------

    def delete(self, image_id: str) -> None:
        """Remove the cached file, this node's row and the queue file; cancel a running fill. Idempotent."""
        if self._delete(image_id, ENTRY_DELETED):
            self._event(logging.INFO, "deleted", "Deleted image %s from the cache", image_id, image_id=image_id)

    def _delete(self, image_id: str, why: str) -> bool:
        """``delete`` without the log line; True if there was anything to delete."""
        if not is_image_id(image_id):
            return False
        with self.state_lock(image_id):
            found = self._cancel_fill(image_id, why)
            found = self._unlink(self._cached_path(image_id)) or found
            found = self.registry.remove(image_id) or found
            found = self._unlink(self._queue_path(image_id)) or found
            if why == IMAGE_DELETED:
                found = self._unlink(self._invalid_path(image_id)) or found
        return found

    def _delete_entries(self, image_ids: list[str], queued: set[str], *, announce: bool, name: str) -> None:
        """``delete`` for each of ``image_ids`` (valid ids), ``_DELETE_BATCH`` at a time (see ``_delete_batch``),
        with ``_UNLINK_THREADS`` threads named ``name`` removing the files."""
        with ThreadPoolExecutor(_UNLINK_THREADS, thread_name_prefix=name) as pool:
            for start in range(0, len(image_ids), _DELETE_BATCH):
                self._delete_batch(image_ids[start : start + _DELETE_BATCH], pool, queued, announce=announce)

    def _delete_batch(
        self, image_ids: list[str], pool: ThreadPoolExecutor, queued: set[str], *, announce: bool
    ) -> None:
        """``delete`` for each of ``image_ids`` (valid ids), with their rows removed in one transaction; with
        ``announce``, a ``deleted`` event each.

        Why: prune and clear remove thousands of entries, and one transaction per row (a commit each) was most of
        their time (clearing 10,000 entries took 5.5 s, now 0.5 s). Every id's state lock is held from its file's
        removal to its row's, as in ``delete``, so no fill of one of them can commit in between. Taking many of
        them is safe: ``hold_all`` takes them in sorted order, and every other holder of a state lock holds only
        that one or takes its set the same way. ``queued`` are the names in ``queue/`` when prune began: a queue
        file cannot appear for an image while it is cached (``queue`` is a no-op then), so only those can need
        removing (clear passes none: clearing the queue is its own target).
        """
        with self._state_locks.hold_all(image_ids):
            with self._guard:
                for image_id in image_ids:
                    self._cancel_fill_guarded(image_id, ENTRY_DELETED)
            for image_id in image_ids:
                if image_id in queued:
                    self._unlink(self._queue_path(image_id))
            # Concurrently: unlink(2) of a file that was fsynced (every committed entry) waits for the filesystem
            # (ext4 frees its blocks), one after another; eight at once share the waits. Each thread takes a
            # slice rather than a task per file: a future per file cost as much again in this process's CPU.
            # (5,000 files, ext4 on this VM: 0.44 s in a row, 0.34 s a future each, 0.18 s in eight slices.)
            paths = [os.path.join(self.cache_dir, image_id) for image_id in image_ids]
            list(pool.map(self._unlink_each, [paths[start::_UNLINK_THREADS] for start in range(_UNLINK_THREADS)]))
            self.registry.remove_many(image_ids)
        if announce:
            for image_id in image_ids:
                self._event(logging.INFO, "deleted", "Deleted image %s from the cache", image_id, image_id=image_id)

    def purge_image(self, image_id: str, seen: str = "on this node's cluster") -> None:
        """The image was deleted from the catalogue: drop everything this node holds for it, a fill in
        progress included (it leaves nothing behind)."""
        if self._delete(image_id, IMAGE_DELETED):
            self._event(logging.INFO, "purged", "Purged deleted image %s from the cache (deletion seen %s)",
                        image_id, seen, image_id=image_id, seen=seen)  # fmt: skip

    def sync_deletions(self) -> int:
        """Purge every image deleted since the last read of the log, on any node in any process. Returns how many
        deletions reached this engine meanwhile. Runs on a timer and before every listing, so a node never lists
        an image another process deleted. (Serving one is ruled out before: a download looks the image up first,
        and ``open_cached`` checks the checksum.) The engines of one process share the read (``DeletionLog``).
        """
        before = self._deletion_log.delivered(self)
        self._deletion_log.sync()
        return self._deletion_log.delivered(self) - before

    def delete_all_cached(self) -> int:
        """Remove every cached image of this node (tracked or stray id-named files). Returns how many.

        In batches, as prune deletes (``_delete_entries``), without a ``deleted`` event each; queue files stay.
        """
        image_ids = {entry.image_id for entry in self.registry.entries()}
        image_ids.update(path.name for path in self._files(self.cache_dir) if is_image_id(path.name))
        self._delete_entries(sorted(image_ids), set(), announce=False, name="clear-unlink")
        self._event(logging.INFO, "clear", "Cleared the cache: %d images", len(image_ids), target="cache",
                    images=len(image_ids))  # fmt: skip
        return len(image_ids)

    # -- reading and filling ---------------------------------------------------------------------------

    def open_cached(self, image_id: str, checksum: str | None = None) -> tuple[BinaryIO, int] | None:
        """Open a cached image for a full read: counts a hit and sets last_accessed. None if not cached.

        With ``checksum`` (the image's md5 now), an entry cached under another checksum is not served but
        purged: the image was deleted and its id created again, on a node whose deletion log read is still
        to come. (The caller has just found the image in the catalogue, so it is not deleted.)
        """
        if not is_image_id(image_id):
            return None
        try:
            data: BinaryIO = self._cached_path(image_id).open("rb")
        except FileNotFoundError:
            return None
        # A file without a row is not a cache entry (a crash leftover awaiting repair): not served.
        if not self.registry.record_hit(image_id, now=self._clock(), checksum=checksum):
            data.close()
            entry = self.registry.get(image_id) if checksum is not None else None
            if entry is not None and entry.checksum != checksum:
                self.purge_image(image_id, seen="at a hit: its id names a new image")
            return None
        return data, os.fstat(data.fileno()).st_size

    def caching_iter(self, image: Image, chunks: Iterator[bytes]) -> Generator[bytes, None, None]:
        """Pass a full store download through, writing it into the cache on the way.

        Errors of ``chunks`` (the store) propagate to the consumer. Cache-side failures (disk, checksum
        mismatch) are logged and never disturb the stream. If the image is cached or another fill of it
        is running, the chunks are just passed through. The consumer must ``close()`` the generator when
        it stops early (WSGI servers do): that is how a client disconnect sends the partial file to
        ``invalid/`` and frees the image for the next fill.
        """
        image_id = image.id
        if not is_image_id(image_id) or self.is_cached(image_id):
            yield from chunks
            return
        if not self._fill_locks.try_acquire(image_id):
            yield from chunks
            return
        try:
            fill = None if self.is_cached(image_id) else self._begin_fill(image, "download")
            if fill is None:
                yield from chunks
                return
            try:
                for chunk in chunks:
                    if fill.open:
                        try:
                            fill.write(chunk)
                        except OSError as exc:
                            fill.abort(f"the cache write failed: {exc}")
                    yield chunk
            except GeneratorExit:
                fill.abort("the client closed the download early")
                raise
            except BaseException as exc:
                fill.abort(f"the store read failed: {exc!r}")
                raise
            fill.finish()
        finally:
            self._release_fill_lock(image_id)

    def tee_file(self, image: Image, source: BinaryIO) -> FileTee | None:
        """Fill the cache from ``source`` (the image's open store file) while the caller sends that same file to
        a client: ``caching_iter`` for a download sent from the store file (see ``FileTee``; the caller must end
        it with ``sent()`` or ``close()``). None, and nothing to end, where ``caching_iter`` would just pass the bytes
        through: the image is cached, or another fill of it runs (here or in another process)."""
        image_id = image.id
        if not is_image_id(image_id) or image.size is None or self.is_cached(image_id):
            return None
        if not self._fill_locks.try_acquire(image_id):
            return None
        fill: Fill | None = None
        fd = -1
        try:
            fd = os.dup(source.fileno())  # the tee's own: the sender closes its file when it likes
            if not self.is_cached(image_id):
                fill = self._begin_fill(image, "download")
        finally:
            if fill is None:
                if fd >= 0:
                    os.close(fd)
                self._release_fill_lock(image_id)
        if fill is None:
            return None
        return FileTee(fill, fd, image.size, lambda: self._release_fill_lock(image_id))

    # -- prune and clean -------------------------------------------------------------------------------

    def prune(self) -> tuple[int, int]:
        """Remove least-recently-accessed entries until the cached size is <= max_size.

        Returns (files, bytes) removed. Only tracked entries count, so it always ends.
        """
        with self._exclusive("prune"):
            candidates = self.registry.by_last_access()
            present = self._file_names(self.cache_dir)  # after the query, as in list_cached
            candidates = [candidate for candidate in candidates if candidate[2] in present]
            total = sum(size for _, _, _, size in candidates)
            files = pruned = 0
            victims = []
            for _, _, image_id, size in sorted(candidates):
                if total <= self.max_size:
                    break
                victims.append(image_id)
                files += 1
                pruned += size
                total -= size
            queued = self._file_names(self._queue_dir) if victims else set()
            self._delete_entries(victims, queued, announce=True, name="prune-unlink")
            self._event(logging.INFO, "prune", "Pruned %d cached images (%d bytes); %d bytes remain cached (max %d)",
                        files, pruned, total, self.max_size, files=files, bytes=pruned, remaining_bytes=total,
                        max_size=self.max_size)  # fmt: skip
            return files, pruned

    def clean(self) -> None:
        """Delete ``invalid/`` files and ``incomplete/`` files untouched for stall_time; repair leftovers."""
        with self._exclusive("clean"):
            invalid = sum(self._unlink(path) for path in self._files(self._invalid_dir))
            stalled = 0
            older_than = time.time() - self.stall_time
            for path in self._files(self._incomplete_dir):
                try:
                    if path.stat().st_mtime < older_than:
                        # An unconfirmed large fill (its process died before the fsync) must not lose the name that
                        # says so: its entry is verified first, as start() does.
                        fd = os.open(path, os.O_RDONLY)
                        try:
                            self._confirm_unsynced_entry(path, fd)
                        finally:
                            os.close(fd)
                        stalled += self._unlink(path)
                except FileNotFoundError:
                    continue
            self._repair()
        self._event(logging.INFO, "clean", "Cleaned the cache: %d invalid and %d stalled files removed",
                    invalid, stalled, invalid_files=invalid, stalled_files=stalled)  # fmt: skip

    # -- worker pool -----------------------------------------------------------------------------------

    def hold_queue(self, held: bool = True) -> None:
        """Stop (or, with False, resume) handing queued ids to the workers; queue files stay as they are.

        For test authors who need entries that stay in ``queued_images``, as Glance's own functional tests get by
        patching its worker out. Resuming submits everything still queued.
        """
        self._held = held
        if not held:
            for image_id in self.list_queued():
                self._submit(image_id)

    def _submit(self, image_id: str) -> None:
        if self._held or not self._worker_count:
            return
        with self._guard:
            if image_id in self._waiting:
                return
            self._waiting.add(image_id)
            self._outstanding += 1
        self._tasks.put(image_id)

    def _work(self) -> None:
        while True:
            image_id = self._tasks.get()
            if image_id is None:
                return
            with self._guard:
                self._waiting.discard(image_id)
            try:
                if not self._stopping:
                    self._cache_queued(image_id)
            except Exception:
                self._event(logging.ERROR, "fill_failed", "Caching queued image %s failed", image_id,
                            exc_info=True, image_id=image_id)  # fmt: skip
            finally:
                with self._guard:
                    self._outstanding -= 1
                    if self._outstanding == 0:
                        self._idle.notify_all()

    def _cache_queued(self, image_id: str) -> None:
        if not self.is_queued(image_id):
            return  # dequeued (or cached by a download) before a worker got to it
        image = self.store.get(image_id)
        if image is None or image.status != "active":
            state = "deleted" if image is None else f"not active ({image.status})"
            self._event(logging.WARNING, "dequeued", "Image %s is %s; dropping it from the cache queue", image_id,
                        state, image_id=image_id, reason=f"image {state}")  # fmt: skip
            self._unlink(self._queue_path(image_id))
            return
        if not self._fill_locks.try_acquire(image_id):
            # A download (or another worker) is filling it. Rather than tie up this worker behind a
            # possibly slow client, ask the holder to re-submit the id when it lets go.
            with self._guard:
                self._deferred.add(image_id)
            if not self._fill_locks.try_acquire(image_id):
                return
            with self._guard:
                self._deferred.discard(image_id)
        try:
            if self.is_cached(image_id):
                self._unlink(self._queue_path(image_id))
                return
            fill = self._begin_fill(image, "queue")
            if fill is None:
                if self.is_cached(image_id):
                    self._unlink(self._queue_path(image_id))
                else:
                    self._event(logging.INFO, "fill_skipped",
                                "Image %s is being cached by another process; leaving it queued", image_id,
                                image_id=image_id)  # fmt: skip
                return
            try:
                for chunk in self.store.iter_data(image_id, COPY_CHUNK):
                    fill.write(chunk)
            except Exception as exc:
                if self.store.get(image_id) is None:  # deleted meanwhile: nothing to keep or retry
                    fill.abort(f"{IMAGE_DELETED} during the fill", discard=True)
                    self._unlink(self._queue_path(image_id))
                    return
                fill.abort(f"the store read failed: {exc!r}; it stays queued", level=logging.ERROR)
                return
            if not fill.finish():
                self._event(logging.ERROR, "still_queued", "Caching queued image %s failed; it stays queued",
                            image_id, image_id=image_id)  # fmt: skip
        finally:
            self._release_fill_lock(image_id)

    # -- fills -----------------------------------------------------------------------------------------

    def _begin_fill(self, image: Image, trigger: str) -> Fill | None:
        """Create ``incomplete/<id>`` exclusively. None if another live writer (process) holds it."""
        image_id = image.id
        path = self._incomplete_path(image_id)
        # Tracked from before the file exists, so a delete from now on cancels this fill; the caller holds
        # the image's fill lock, so no other fill of this engine tracks the same id.
        with self._guard:
            self._running_fills[image_id] = None
        fill = self._create_fill(image, path, trigger)
        if fill is None:
            self._forget_fill(image_id)
        return fill

    def _create_fill(self, image: Image, path: Path, trigger: str) -> Fill | None:
        image_id = image.id
        for attempt in range(2):
            try:
                out = self._create_locked(path)
            except FileExistsError:
                if attempt == 0 and self._remove_if_abandoned(path):
                    continue
                return None
            except OSError:
                self._event(logging.ERROR, "fill_failed", "Cannot create %s; image %s is not cached this time",
                            path, image_id, exc_info=True, image_id=image_id)  # fmt: skip
                return None
            if self.is_cached(image_id):
                # Another process committed it between our check and our create.
                self._unlink(path)
                out.close()
                return None
            self._count("fills_started")
            return Fill(self, image, out, trigger)
        return None

    @staticmethod
    def _create_locked(path: Path) -> BinaryIO:
        """Create ``path`` exclusively and already flock-ed; FileExistsError if it exists.

        The file is made under a private name, locked, then hard-linked into place: another process can
        never find ``path`` unlocked in the instant between create and flock and remove it as abandoned.
        """
        private = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # brand new: nobody else can hold it
            try:
                os.link(private, path)
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
                # No hard links on this filesystem: create in place, then lock (a brief unlocked instant).
                os.close(fd)
                fd = -1
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return os.fdopen(fd, "wb")
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                private.unlink()

    def _remove_if_abandoned(self, path: Path, settle: Callable[[Path, int], None] | None = None) -> bool:
        """Unlink an ``incomplete/`` file no live writer holds (its flock is free). True if removed.

        ``settle(path, fd)`` is called first, with the flock held (at start: ``_confirm_unsynced_entry``)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return False
                raise
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_ino == os.fstat(fd).st_ino:
                    if settle is not None:
                        settle(path, fd)
                    path.unlink()
            return True
        finally:
            os.close(fd)

    def _confirm_unsynced_entry(self, path: Path, fd: int) -> None:
        """An abandoned ``incomplete/<id>`` that is also the cache entry ``<id>`` (the same inode) is a fill that
        committed before its bytes were durable and never said they were (``fill.Fill``, ``DURABLE_LATER``): a
        crash came first. Its bytes are verified again, and made durable if they pass; otherwise the entry goes
        (row, then file to invalid/)."""
        image_id = path.name
        cached = self._cached_path(image_id)
        try:
            if not is_image_id(image_id) or cached.stat().st_ino != os.fstat(fd).st_ino:
                return
        except FileNotFoundError:
            return
        image = self.store.get(image_id)
        with self.state_lock(image_id):
            intact = (
                image is not None
                and image.status == "active"
                and verify(image, digest_file(cached, fill_digests(image))) is None
            )
            if intact:
                os.fsync(fd)
                fsync_dir(self.cache_dir)
                self._event(logging.INFO, "repaired", "Verified cached image %s, whose fill ended before its data "
                            "was known to be on disk", image_id, image_id=image_id)  # fmt: skip
                return
            self.registry.remove(image_id)
            os.replace(cached, self._invalid_path(image_id))
        self._event(logging.WARNING, "repaired", "Dropped cached image %s: its fill ended before its data was known "
                    "to be on disk, and the data does not verify (or the image is gone)", image_id,
                    image_id=image_id)  # fmt: skip

    # -- repair ----------------------------------------------------------------------------------------

    def _repair(self) -> None:
        """Make rows, files and queue agree again after a crash, and with the catalogue after deletions
        this engine did not see (made while it was down). The caller holds the clean lock."""
        for entry in self.registry.entries():
            image = self.store.get(entry.image_id)
            if image is None or image.checksum not in (None, entry.checksum):  # deleted, or its id reused
                self.purge_image(entry.image_id, seen="in the image catalogue")
            elif not self._cached_path(entry.image_id).is_file():
                with self.state_lock(entry.image_id):
                    if not self._cached_path(entry.image_id).is_file():
                        self.registry.remove(entry.image_id)
                        self._event(logging.WARNING, "repaired", "Removed the registry row of image %s: its file "
                                    "is gone", entry.image_id, image_id=entry.image_id)  # fmt: skip
        for path in self._files(self.cache_dir):
            if is_image_id(path.name) and self.registry.get(path.name) is None:
                with self.state_lock(path.name):
                    if path.is_file() and self.registry.get(path.name) is None:
                        self._adopt_or_invalidate(path)
        for path in self._files(self._queue_dir):
            if self.is_cached(path.name):
                self._unlink(path)

    def _adopt_or_invalidate(self, path: Path) -> None:
        """Adopt a cache file left without a registry row if its bytes ``verify`` as its active image's."""
        image_id = path.name
        image = self.store.get(image_id)
        if image is not None and image.status == "active":
            digests = digest_file(path, fill_digests(image))
            if verify(image, digests) is None:
                self.registry.add(image_id, size=digests.size, checksum=recorded_md5(image, digests),
                                  now=path.stat().st_mtime)
                self._event(logging.INFO, "repaired", "Adopted cached file of image %s left without a registry row",
                            image_id, image_id=image_id)  # fmt: skip
                return
        os.replace(path, self._invalid_path(image_id))
        self._event(logging.WARNING, "repaired", "Moved unverifiable cache file %s to invalid/", path,
                    image_id=image_id)  # fmt: skip

    # -- paths, locks, small helpers -------------------------------------------------------------------

    def _cached_path(self, image_id: str) -> Path:
        return self.cache_dir / image_id

    def _incomplete_path(self, image_id: str) -> Path:
        return self._incomplete_dir / image_id

    def _invalid_path(self, image_id: str) -> Path:
        return self._invalid_dir / image_id

    def _queue_path(self, image_id: str) -> Path:
        return self._queue_dir / image_id

    def take_queue_file(self, image_id: str) -> int | None:
        """Remove the image's queue file; its mtime (ns) if there was one, for ``restore_queue_file``."""
        path = self._queue_path(image_id)
        try:
            queued_since = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        return queued_since if self._unlink(path) else None

    def restore_queue_file(self, image_id: str, queued_since: int | None) -> None:
        """Put back a queue file taken by ``take_queue_file``, at its old place in the queue order."""
        if queued_since is None:
            return
        path = self._queue_path(image_id)
        try:
            with path.open("xb"):
                pass
            os.utime(path, ns=(queued_since, queued_since))
        except FileExistsError:
            pass  # queued again meanwhile: that queue entry stands
        except OSError:
            log.exception("Could not put image %s back into the cache queue", image_id)

    def _release_fill_lock(self, image_id: str) -> None:
        self._fill_locks.release(image_id)
        with self._guard:
            deferred = image_id in self._deferred
            self._deferred.discard(image_id)
        if deferred and not self.is_cached(image_id) and self.is_queued(image_id):
            self._submit(image_id)

    # -- what a fill needs (fill.FillHost) -------------------------------------------------------------

    def fill_paths(self, image_id: str) -> FillPaths:
        return FillPaths(self._incomplete_path(image_id), self._cached_path(image_id), self._invalid_path(image_id))

    def now(self) -> float:
        return self._clock()

    def fill_ended(self, image_id: str, *, committed: bool) -> None:
        self._count("fills_committed" if committed else "fills_failed")
        self._forget_fill(image_id)

    def state_lock(self, image_id: str) -> contextlib.AbstractContextManager[None]:
        return self._state_locks.hold(image_id)

    def _cancel_fill(self, image_id: str, why: str) -> bool:
        """Make a running fill of the image end without an entry (``why`` decides where its file goes).
        True if there was one."""
        with self._guard:
            return self._cancel_fill_guarded(image_id, why)

    def _cancel_fill_guarded(self, image_id: str, why: str) -> bool:
        """``_cancel_fill`` for a caller holding ``_guard``."""
        if image_id not in self._running_fills:
            return False
        if self._running_fills[image_id] != IMAGE_DELETED:  # the stronger cancellation stays
            self._running_fills[image_id] = why
        return True

    def cancellation(self, image_id: str) -> str | None:
        with self._guard:
            return self._running_fills.get(image_id)

    def image_unchanged(self, image: Image) -> bool:
        """True while the catalogue still has ``image`` with the same data (not deleted, id not reused)."""
        current = self.store.get(image.id)
        return current is not None and current.checksum == image.checksum

    def _event(self, level: int, name: str, message: str, *args: object, exc_info: bool = False,
               **fields: object) -> None:  # fmt: skip
        event(log, level, name, message, *args, node=self.node_url, exc_info=exc_info, wrappers=1, **fields)

    def _forget_fill(self, image_id: str) -> None:
        with self._guard:
            self._running_fills.pop(image_id, None)

    def _count(self, counter: str) -> None:
        with self._guard:
            self._counters[counter] += 1

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        """Serialise ``name`` (clean / prune) between threads and between processes sharing the cache."""
        with self._named_locks[name]:
            self._locks_dir.mkdir(parents=True, exist_ok=True)
            with (self._locks_dir / f"glance-cache-{name}").open("a") as lock_file:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
                yield

    @staticmethod
    def _files(directory: Path) -> list[Path]:
        """Regular files directly in ``directory`` (empty if it does not exist)."""
        try:
            with os.scandir(directory) as entries:
                return [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    @staticmethod
    def _file_names(directory: Path) -> set[str]:
        """Names of the files in ``directory`` (symlinks to files count, as for ``Path.is_file``): one
        directory scan instead of a stat per cache entry."""
        try:
            with os.scandir(directory) as entries:
                return {e.name for e in entries if e.is_file()}
        except FileNotFoundError:
            return set()

    @classmethod
    def _unlink_each(cls, paths: list[str]) -> None:
        for path in paths:
            cls._unlink(path)

    @staticmethod
    def _unlink(path: Path | str) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError:
            log.exception("Could not delete %s", path)
            return False
        return True
