"""KeyedLocks: mutual exclusion per key, and no entry left once a key's lock is unused; SharedRun."""

from __future__ import annotations

import threading
import time

import pytest

from glancecache_client.server.engine.locks import KeyedLocks, SharedRun


def occupy(keys: list[str], inside: list[str], overlap: threading.Event, pause: float) -> None:
    """Run while holding the locks of ``keys``: flag ``overlap`` if another thread is inside with one of them."""
    if any(key in inside for key in keys):
        overlap.set()
    inside.extend(keys)
    time.sleep(pause)
    for key in keys:
        inside.remove(key)


def test_hold_excludes_per_key_and_forgets_the_key() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    overlap = threading.Event()

    def worker(key: str) -> None:
        with locks.hold(key):
            occupy([key], inside, overlap, 0.01)

    threads = [threading.Thread(target=worker, args=(f"k{n % 3}",)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not overlap.is_set()
    assert len(locks) == 0


def test_other_keys_are_independent() -> None:
    locks = KeyedLocks()
    with locks.hold("a"):
        assert locks.try_acquire("b")
        assert len(locks) == 2
        locks.release("b")
    assert len(locks) == 0


def test_try_acquire_fails_while_held_and_keeps_the_holders_entry() -> None:
    locks = KeyedLocks()
    assert locks.try_acquire("a")
    assert not locks.try_acquire("a")
    assert len(locks) == 1
    locks.release("a")
    assert len(locks) == 0
    assert locks.try_acquire("a")
    locks.release("a")


def test_a_waiter_keeps_the_entry_until_it_is_done() -> None:
    locks = KeyedLocks()
    assert locks.try_acquire("a")
    acquired = threading.Event()

    def waiter() -> None:
        with locks.hold("a"):
            acquired.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    assert not acquired.is_set()
    locks.release("a")  # the waiter still counts: the entry (and its lock) must survive this release
    thread.join(5)
    assert acquired.is_set() and len(locks) == 0


def test_hold_all_holds_every_key_and_forgets_them() -> None:
    locks = KeyedLocks()
    with locks.hold_all(["b", "a", "c", "a"]):
        assert len(locks) == 3
        assert not locks.try_acquire("a") and not locks.try_acquire("c")
        assert locks.try_acquire("d")
        locks.release("d")
    assert len(locks) == 0
    with locks.hold_all([]):
        assert len(locks) == 0


def test_hold_all_waits_for_a_holder_of_one_key() -> None:
    locks = KeyedLocks()
    assert locks.try_acquire("b")
    inside = threading.Event()

    def many() -> None:
        with locks.hold_all(["a", "b", "c"]):
            inside.set()

    thread = threading.Thread(target=many)
    thread.start()
    time.sleep(0.05)
    assert not inside.is_set()
    locks.release("b")
    thread.join(5)
    assert inside.is_set() and len(locks) == 0


def test_overlapping_hold_alls_and_single_holds_do_not_deadlock() -> None:
    locks = KeyedLocks()
    keys = [f"k{n}" for n in range(20)]
    inside: list[str] = []
    overlap = threading.Event()

    def take(chosen: list[str]) -> None:
        for _ in range(20):
            with locks.hold_all(chosen):
                occupy(chosen, inside, overlap, 0.001)

    def single(key: str) -> None:
        for _ in range(20):
            with locks.hold(key):
                occupy([key], inside, overlap, 0.001)

    # Daemons: a deadlock fails the test instead of hanging the run.
    threads = [threading.Thread(target=take, args=(list(reversed(keys[:12])),), daemon=True),
               threading.Thread(target=take, args=(keys[6:],), daemon=True),
               threading.Thread(target=single, args=("k8",), daemon=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert not overlap.is_set() and len(locks) == 0


def test_a_shared_run_started_after_each_caller() -> None:
    """Callers arriving during a run wait for the next one and share it; each result reflects its caller's time."""
    state = {"version": 0, "runs": 0}
    first_running, release_first = threading.Event(), threading.Event()

    def build() -> int:
        state["runs"] += 1
        if state["runs"] == 1:
            first_running.set()
            assert release_first.wait(10)
        return state["version"]

    shared = SharedRun(build)
    results: dict[str, int] = {}
    first = threading.Thread(target=lambda: results.__setitem__("first", shared()))
    first.start()
    assert first_running.wait(10)
    state["version"] = 1  # a change made while the first run is under way, before the late callers call
    late = [threading.Thread(target=lambda n=n: results.__setitem__(f"late{n}", shared())) for n in range(5)]
    for thread in late:
        thread.start()
    time.sleep(0.2)  # let every late caller reach its wait (it would be a run of its own otherwise, also correct)
    release_first.set()
    for thread in (first, *late):
        thread.join(10)
    assert results["first"] in (0, 1)
    assert all(results[f"late{n}"] == 1 for n in range(5))  # none got the run that started before its call
    assert state["runs"] == 2  # five late callers, one run between them
    assert shared() == 1 and state["runs"] == 3  # a caller alone runs it itself


def test_a_failed_shared_run_is_not_remembered() -> None:
    calls = []

    def failing() -> int:
        calls.append(1)
        raise OSError("disk gone")

    shared = SharedRun(failing)
    for _ in range(2):
        with pytest.raises(OSError, match="disk gone"):
            shared()
    assert len(calls) == 2  # a failure is not remembered for later callers


def test_callers_waiting_for_a_failed_run_start_their_own() -> None:
    running, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def first_fails() -> int:
        calls.append(1)
        if len(calls) == 1:
            running.set()
            assert release.wait(10)
            raise OSError("database gone")
        return len(calls)

    shared = SharedRun(first_fails)
    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            outcomes[name] = shared()
        except OSError as exc:
            outcomes[name] = exc

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert running.wait(10)
    waiters = [threading.Thread(target=call, args=(f"waiter{n}",)) for n in range(3)]
    for thread in waiters:
        thread.start()
    time.sleep(0.2)  # every waiter reaches its wait for the failing run
    release.set()
    for thread in (first, *waiters):
        thread.join(10)
    assert isinstance(outcomes["first"], OSError)
    assert [outcomes[f"waiter{n}"] for n in range(3)] == [2, 2, 2]  # one new run, shared by the three
    assert len(calls) == 2
