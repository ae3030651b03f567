"""Per-key locks that exist only while someone holds or waits for them.

Owns: ``KeyedLocks`` (``hold`` one key, ``hold_all`` of many, ``try_acquire``/``release``). The engine locks per
image id, and ids are unbounded over a node's life (every image ever queued or downloaded), so a plain ``dict`` of
locks would only grow. Each entry counts its users (the holder and every waiter) and is dropped when the count
returns to zero, when no thread can be relying on it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class KeyedLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """How many keys have a lock right now (held or waited for)."""
        with self._guard:
            return len(self._entries)

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the key's lock for the ``with`` block, waiting for it if needed."""
        lock = self._enter(key)
        try:
            with lock:
                yield
        finally:
            self._leave(key)

    @contextlib.contextmanager
    def hold_all(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold the locks of every key for the ``with`` block, taken one after another in sorted order.

        Two threads holding overlapping sets this way cannot deadlock (both take the common keys in one order);
        neither can one that holds a single key with ``hold``. Cheaper than a ``hold`` per key: prune takes
        hundreds at once.
        """
        ordered = sorted(set(keys))
        with self._guard:
            locks = [self._enter_guarded(key) for key in ordered]
        taken: list[threading.Lock] = []
        try:
            for lock in locks:
                lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            with self._guard:
                for key in ordered:
                    self._leave_guarded(key)

    def try_acquire(self, key: str) -> bool:
        """Take the key's lock if it is free; True if taken (then ``release`` it exactly once)."""
        if self._enter(key).acquire(blocking=False):
            return True
        self._leave(key)
        return False

    def release(self, key: str) -> None:
        with self._guard:
            lock = self._entries[key].lock
        lock.release()
        self._leave(key)

    def _enter(self, key: str) -> threading.Lock:
        with self._guard:
            return self._enter_guarded(key)

    def _leave(self, key: str) -> None:
        with self._guard:
            self._leave_guarded(key)

    def _enter_guarded(self, key: str) -> threading.Lock:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        return entry.lock

    def _leave_guarded(self, key: str) -> None:
        entry = self._entries[key]
        entry.users -= 1
        if entry.users == 0:
            del self._entries[key]
