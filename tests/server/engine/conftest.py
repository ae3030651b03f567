"""Fixtures for the storage half of the reference server: real SQLite files, PostgreSQL and MariaDB.

PostgreSQL and MariaDB get a private database per test session (``gc_engine_<random>``), created and
dropped here, so parallel runs never see each other's rows; each test starts from freshly created tables.
A server that does not answer skips its tests with the reason; any other failure is an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine.deletions import DeletionLog
from glancecache_client.server.engine.engine import CacheEngine
from glancecache_client.server.engine.registry import CacheRegistry
from glancecache_client.server.engine.store import Image, ImageStore

from ..databases import private_database


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    yield from private_database("postgresql", "gc_engine")


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    yield from private_database("mariadb", "gc_engine")


def _fresh_tables(engine: sa.Engine) -> None:
    schema.metadata.drop_all(engine, checkfirst=True)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = schema.create_db_engine(schema.sqlite_url(tmp_path / "shared.db"))
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """The cluster's shared database on each supported backend, with no tables in it yet."""
    if request.param == "sqlite":
        url = schema.sqlite_url(tmp_path / "shared.db")
    else:
        url = request.getfixturevalue(f"{request.param}_url")
    engine = schema.create_db_engine(url)
    _fresh_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(sqlite_db: sa.Engine, tmp_path: Path) -> ImageStore:
    return ImageStore(sqlite_db, tmp_path / "images")


class FakeClock:
    """A clock that moves one second per reading, so access order never ties."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@dataclass
class Node:
    engine: CacheEngine
    cache_dir: Path
    registry: CacheRegistry


NodeFactory = Callable[..., Node]


@pytest.fixture
def make_node(tmp_path: Path, sqlite_db: sa.Engine, store: ImageStore) -> Iterator[NodeFactory]:
    """Build and start cache engines; every one is closed at teardown."""
    started: list[CacheEngine] = []

    def factory(
        *,
        driver: str = "centralized_db",
        name: str = "node-a",
        max_size: int = 10 * 1024**3,
        stall_time: int = 86400,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
        db: sa.Engine | None = None,
        image_store: ImageStore | None = None,
        start: bool = True,
        deletion_poll_interval: float = 1.0,
        deletion_log: DeletionLog | None = None,
    ) -> Node:
        cache_dir = tmp_path / name / "cache"
        node_url = f"http://{name}"
        if driver == "centralized_db":
            registry = CacheRegistry.centralized(db or sqlite_db, node_url)
        else:
            registry = CacheRegistry.per_node_sqlite(cache_dir / "cache.db", node_url)
        engine = CacheEngine(
            node_url=node_url,
            cache_dir=cache_dir,
            store=image_store or store,
            registry=registry,
            max_size=max_size,
            stall_time=stall_time,
            workers=workers,
            clock=clock,
            deletion_poll_interval=deletion_poll_interval,
            deletion_log=deletion_log,
        )
        started.append(engine)
        if start:
            engine.start()
        return Node(engine, cache_dir, registry)

    yield factory
    for engine in started:
        engine.close()


def active_image(store: ImageStore, data: bytes, *, chunk: int = 4096) -> Image:
    """Create and upload an image; returns it in status active."""
    image = store.create(name="test", container_format="bare", disk_format="raw")
    return store.upload(image.id, (data[i : i + chunk] for i in range(0, len(data), chunk)))
