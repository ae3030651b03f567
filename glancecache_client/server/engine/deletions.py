"""The reader of the shared deletion log (table ``image_deletions``) for the cache engines of one process.

Every image deletion, by any node in any process, is a row of the log; every cache engine must purge the image
before its next listing and, without any request, within about a second (see ``CacheEngine.sync_deletions``).
Engines of one process share one ``DeletionLog``: one reader and one polling thread, not one per node. A server
process hosting 25 nodes polled the table 25 times a second (25 threads, ~30 ms of CPU a second while idle) and
read it once more for each listing; 25 listings arriving together now cost two reads, not 25.

The rules the log keeps:

- ``sync()`` returns once a read of the table that *started after the call* has been delivered to every engine,
  so a listing never shows an image deleted (and committed) before the listing began. Callers that arrive while
  a read is under way wait for it and share the next one.
- Each engine is told only of the deletions after the point where it attached (``attach`` reads that point:
  deletions before it are the engine's start-up repair's job), and of each deletion once.
- Concurrent transactions can commit out of order, so number 7 may become visible after 8: a number missing below
  the highest one read is looked for again for ``DELETION_GAP_WAIT`` seconds (a rolled-back insert never comes).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from glancecache_client.server.engine.locks import SharedRun
from glancecache_client.server.engine.store import ImageStore

__all__ = ["DELETION_GAP_WAIT", "DELETION_POLL_INTERVAL", "MAX_DELETION_GAPS", "DeletionLog", "DeletionSubscriber"]

log = logging.getLogger(__name__)

DELETION_POLL_INTERVAL = 1.0
"""Seconds between two reads of the log by its polling thread."""
DELETION_GAP_WAIT = 60.0
"""Seconds a missing deletion sequence number is looked for again. Concurrent transactions can commit out of
order, so number 7 may become visible after 8; a number that never shows up (a rolled-back insert) is given up."""
MAX_DELETION_GAPS = 10_000


class DeletionSubscriber(Protocol):
    """What the log tells of each deletion: a cache engine."""

    node_url: str

    def purge_image(self, image_id: str, seen: str = ...) -> None: ...


class DeletionLog:
    """One process's reader of the deletion log, delivering each deletion to every attached engine."""

    def __init__(self, store: ImageStore, poll_interval: float = DELETION_POLL_INTERVAL) -> None:
        """``poll_interval`` seconds between reads by the polling thread (0: no thread, only ``sync`` reads)."""
        self.store = store
        self.poll_interval = poll_interval
        self._guard = threading.Lock()  # the subscribers and their counts
        # subscriber -> (the sequence number it attached after, deletions delivered to it so far)
        self._subscribers: dict[DeletionSubscriber, list[int]] = {}
        self._read = 0  # the highest sequence number read
        self._gaps: dict[int, float] = {}  # lower numbers not seen yet -> monotonic time first missed
        self._reading = threading.Lock()  # held by a read and by an attach: _read and _gaps are theirs
        self._shared_read = SharedRun(self._read_and_deliver)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- subscribers ---------------------------------------------------------------------------------

    def attach(self, subscriber: DeletionSubscriber) -> None:
        """Deliver to ``subscriber`` every deletion after the last one committed now."""
        with self._reading:
            mark = self.store.last_deletion()
            with self._guard:
                if not self._subscribers:
                    # Nobody needs what lies before: start from here (gaps below it are the repair's job too).
                    self._read, self._gaps = mark, {}
                self._subscribers[subscriber] = [mark, 0]

    def detach(self, subscriber: DeletionSubscriber) -> None:
        """Stop delivering to ``subscriber``; the polling thread stops with the last one."""
        with self._guard:
            self._subscribers.pop(subscriber, None)
            watcher = self._watcher if not self._subscribers else None
            if watcher is not None:
                self._watcher = None
                self._stop.set()
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=5)

    def watch(self) -> None:
        """Start the polling thread, unless it runs or the interval is 0."""
        with self._guard:
            if self._watcher is not None or self.poll_interval <= 0 or not self._subscribers:
                return
            self._stop = threading.Event()
            self._watcher = threading.Thread(target=self._poll, args=(self._stop,), name="cache-deletions",
                                             daemon=True)  # fmt: skip
            self._watcher.start()

    def delivered(self, subscriber: DeletionSubscriber) -> int:
        """How many deletions were delivered to ``subscriber`` so far."""
        with self._guard:
            entry = self._subscribers.get(subscriber)
            return entry[1] if entry is not None else 0

    # -- reading ---------------------------------------------------------------------------------------

    def sync(self) -> None:
        """Return once a read that started after this call has been delivered to every subscriber (``SharedRun``:
        callers arriving while a read is under way share the next one)."""
        self._shared_read()

    def _read_and_deliver(self) -> None:
        """One read of the table, and each new deletion to every subscriber that attached before it (an attach
        waits for both)."""
        with self._reading:
            fresh = self._read_fresh()
            if not fresh:
                return
            with self._guard:
                subscribers = list(self._subscribers.items())
            for subscriber, entry in subscribers:
                for seq, image_id in fresh:
                    if seq <= entry[0]:
                        continue  # deleted before this engine attached: its start-up repair saw to it
                    with self._guard:
                        if subscriber not in self._subscribers:
                            break  # closed meanwhile
                    try:
                        subscriber.purge_image(image_id, seen="in the shared deletion log")
                    except Exception:
                        log.exception("Purging deleted image %s failed (node %s)", image_id, subscriber.node_url)
                    with self._guard:
                        entry[1] += 1

    def _read_fresh(self) -> list[tuple[int, str]]:
        """(seq, image_id) of the deletions not read before (numbers missed earlier included); under _reading."""
        gaps, read = self._gaps, self._read
        rows = self.store.deletions_after(read, gaps)
        fresh = [(seq, image_id) for seq, image_id in rows if seq > read or gaps.pop(seq, None) is not None]
        now = time.monotonic()
        if rows and rows[-1][0] > read:
            seen = {seq for seq, _ in rows}
            for missing in range(read + 1, rows[-1][0]):
                if missing not in seen and len(gaps) < MAX_DELETION_GAPS:
                    gaps[missing] = now
            self._read = rows[-1][0]
        for seq in [seq for seq, since in gaps.items() if now - since > DELETION_GAP_WAIT]:
            del gaps[seq]
        return fresh

    def _poll(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll_interval):
            try:
                self.sync()
            except Exception:
                log.exception("Reading the image deletion log failed; retrying")
