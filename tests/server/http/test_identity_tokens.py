"""The built-in Identity service's token table as the nodes of one process use it: one database read answers
every request arriving at once with a token new to this process, and a revocation is never undone by a read
that was under way when it happened."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.http.identity import DEFAULT_USERS, IdentityService, Token


@pytest.fixture
def identity(tmp_path: Path) -> Iterator[IdentityService]:
    db = schema.create_db_engine(schema.sqlite_url(tmp_path / "identity.db"))
    yield IdentityService(db)
    db.dispose()


def _held_reads(identity: IdentityService, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], threading.Event]:
    """Count the database reads of tokens; the first one waits for the returned event once it has its row."""
    reads: list[str] = []
    release = threading.Event()
    real: Callable[[str, float], Token | None] = identity._read_token

    def held(token_id: str, now: float) -> Token | None:
        token = real(token_id, now)
        reads.append(token_id)
        if len(reads) == 1:
            assert release.wait(10)
        return token

    monkeypatch.setattr(identity, "_read_token", held)
    return reads, release


def _waiting(identity: IdentityService, token_id: str) -> int:
    """How many lookups wait for the read of ``token_id`` under way."""
    pending = identity._reading.get(token_id)
    return len(pending._condition._waiters) if pending is not None else 0  # type: ignore[attr-defined]


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_requests_arriving_together_with_a_new_token_share_one_read(
    identity: IdentityService, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = identity.issue(DEFAULT_USERS[0], "admin", ("password",))
    reads, release = _held_reads(identity, monkeypatch)
    found: list[Token | None] = []
    threads = [threading.Thread(target=lambda: found.append(identity.lookup(token.id))) for _ in range(10)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: _waiting(identity, token.id) == 9, "the other lookups did not wait for the read under way")
    release.set()
    for thread in threads:
        thread.join(10)
    assert found == [token] * 10
    assert reads == [token.id]
    assert identity.lookup(token.id) == token and reads == [token.id]  # and now from memory


def test_a_read_under_way_at_a_revocation_does_not_keep_the_token(
    identity: IdentityService, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = identity.issue(DEFAULT_USERS[0], "admin", ("password",))
    reads, release = _held_reads(identity, monkeypatch)
    found: list[Token | None] = []
    reader = threading.Thread(target=lambda: found.append(identity.lookup(token.id)))
    reader.start()
    _wait_until(lambda: len(reads) == 1, "the lookup did not read the token")
    assert identity.revoke(token.id)  # the row is gone, but the read above already has it
    assert identity.lookup(token.id) is None  # a lookup after the revocation reads again: it does not wait
    release.set()
    reader.join(10)
    assert found == [token]  # it began before the revocation
    assert identity.lookup(token.id) is None  # but it did not put the token back in memory
    assert identity.context_for_token(token.id) is None


def test_a_failed_read_is_not_shared(identity: IdentityService, monkeypatch: pytest.MonkeyPatch) -> None:
    token = identity.issue(DEFAULT_USERS[0], "admin", ("password",))
    real = identity._read_token
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def first_fails(token_id: str, now: float) -> Token | None:
        calls.append(token_id)
        if len(calls) == 1:
            started.set()
            assert release.wait(10)
            raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))
        return real(token_id, now)

    monkeypatch.setattr(identity, "_read_token", first_fails)
    outcomes: list[object] = []

    def lookup() -> None:
        try:
            outcomes.append(identity.lookup(token.id))
        except sa.exc.OperationalError as exc:
            outcomes.append(exc)

    first = threading.Thread(target=lookup)
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lookup)
    second.start()
    _wait_until(lambda: _waiting(identity, token.id) == 1, "the second lookup did not wait for the first read")
    release.set()
    for thread in (first, second):
        thread.join(10)
    assert sorted(map(type, outcomes), key=str) == sorted([sa.exc.OperationalError, Token], key=str)
    assert len(calls) == 2  # the waiter read again rather than fail with the first read's error
