"""Per-key locks that exist only while someone holds or waits for them, and calls that share one run.

Owns: ``KeyedLocks`` (``hold`` one key, ``hold_all`` of many, ``try_acquire``/``release``) and ``SharedRun``.
The engine locks per image id, and ids are unbounded over a node's life (every image ever queued or downloaded),
so a plain ``dict`` of locks would only grow. Each entry counts its users (the holder and every waiter) and is
dropped when the count returns to zero, when no thread can be relying on it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


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


class SharedRun(Generic[T]):
    """Callers arriving together share one run of a function: each gets the result of a run that started after
    it called, so it sees every change made before its call, and overlapping callers cost one run more, not one
    each. One run at a time. A run that fails is shared by no one: its caller gets the exception, and callers
    waiting for it start a run of their own.

    Why: a listing of 10,000 entries costs tens of milliseconds of CPU, and every listing reads the deletion log;
    callers asking at once (an exporter's scrape and an operator's fan-out, or one server standing in for many
    nodes) would otherwise each do that work, all finishing together at the end."""

    def __init__(self, function: Callable[[], T]) -> None:
        self._function = function
        self._cond = threading.Condition()
        self._running = False
        self._started = 0  # runs started so far; the one under way (if any) is number _started
        self._finished = 0  # the number of the last run that succeeded
        self._result: list[T] = []  # its result

    def __call__(self) -> T:
        with self._cond:
            needed = self._started + 1  # the first run that starts after this call
            while self._finished < needed:
                if not self._running:
                    break
                self._cond.wait()
            else:
                return self._result[0]
            self._running = True
            self._started += 1
            number = self._started
        try:
            result = self._function()
        except BaseException:
            with self._cond:
                self._running = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._running = False
            self._finished = number
            self._result[:] = [result]
            self._cond.notify_all()
        return result
