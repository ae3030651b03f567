"""The server's SQL schema and database engines (SQLAlchemy 2.x Core, no ORM).

Owns: the table definitions of the shared (cluster-wide) database (``images``, ``image_deletions``,
``node_reference``, ``cached_images``), the table of the deprecated per-node ``cache.db``, engine creation for SQLite,
PostgreSQL (``postgresql+psycopg://``) and MariaDB (``mysql+pymysql://``), and race-safe table creation
so several nodes can start against one database at the same moment.

Times are stored as epoch floats (``DOUBLE``): ``time.time()`` does not depend on the process TZ, so the
values are right wherever the server runs (Glance stores naive datetimes and is wrong outside UTC).

SQLite notes: every connection runs in WAL mode with a 30 s busy timeout, and every transaction starts
with ``BEGIN IMMEDIATE``. A deferred transaction that reads before it writes can fail at once with
"database is locked" when another writer got in between; taking the write lock up front makes writers
queue on the busy timeout instead, which is what several threads or node processes sharing one file need.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

__all__ = [
    "cached_images",
    "create_db_engine",
    "create_tables",
    "image_deletions",
    "images",
    "local_cached_images",
    "local_metadata",
    "metadata",
    "node_reference",
    "sqlite_url",
]

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; elsewhere the ids are BIGINT as in Glance.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()
"""Tables of the shared database every node of a cluster points at."""

images = sa.Table(
    "images",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("visibility", sa.String(20), nullable=False),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("container_format", sa.String(32), nullable=True),
    sa.Column("disk_format", sa.String(32), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("checksum", sa.String(32), nullable=True),
    sa.Column("os_hash_algo", sa.String(64), nullable=True),
    sa.Column("os_hash_value", sa.String(128), nullable=True),
    sa.Column("protected", sa.Boolean, nullable=False, default=False),
    sa.Column("min_disk", sa.Integer, nullable=False, default=0),
    sa.Column("min_ram", sa.Integer, nullable=False, default=0),
    sa.Column("tags", sa.Text, nullable=False),  # JSON array of strings
    sa.Column("properties", sa.Text, nullable=False),  # JSON object of string -> string
    sa.Column("created_at", sa.Double, nullable=False),  # epoch seconds
    sa.Column("updated_at", sa.Double, nullable=False),
)

node_reference = sa.Table(
    "node_reference",
    metadata,
    sa.Column("node_reference_id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("node_reference_url", sa.String(255), nullable=False),
    sa.UniqueConstraint("node_reference_url", name="uq_node_reference_node_reference_url"),
)

cached_images = sa.Table(
    "cached_images",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("image_id", sa.String(36), nullable=False),
    sa.Column("last_accessed", sa.Double, nullable=False),
    sa.Column("last_modified", sa.Double, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Column("checksum", sa.String(32), nullable=True),
    sa.Column(
        "node_reference_id",
        _BigId,
        sa.ForeignKey("node_reference.node_reference_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.UniqueConstraint("image_id", "node_reference_id", name="ix_cached_images_image_id_node_reference_id"),
)

image_deletions = sa.Table(
    "image_deletions",
    metadata,
    # In commit order only roughly (concurrent transactions may commit out of order): readers look back.
    sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
    sa.Column("image_id", sa.String(36), nullable=False, index=True),
    sa.Column("deleted_at", sa.Double, nullable=False),  # epoch seconds, for operators
)
"""One row per image deletion, written in the transaction that deletes the image: every node, in any
process, reads it to purge its cache of the image (see ``CacheEngine.sync_deletions``)."""

local_metadata = sa.MetaData()
"""The one table of the deprecated per-node ``sqlite`` driver's ``<cache_dir>/cache.db``."""

local_cached_images = sa.Table(
    "cached_images",
    local_metadata,
    sa.Column("image_id", sa.String(36), primary_key=True),
    sa.Column("last_accessed", sa.Double, nullable=False),
    sa.Column("last_modified", sa.Double, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Column("checksum", sa.String(32), nullable=True),
)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite database file."""
    return f"sqlite:///{path}"


SQLITE_POOL = 64
"""SQLite connections kept open for reuse (and as many more opened for a burst beyond them)."""


def create_db_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///file``, ``postgresql+psycopg://...``, ``mysql+pymysql://...``).

    Thread-safe: the server shares one engine between all request and worker threads.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    # A process serves many nodes, each with its own request threads: 25 listings at once checked out 25
    # connections, and SQLAlchemy's default pool (5, plus 10 closed again after use) made each burst open
    # and configure new connections, or wait for a free one. An idle SQLite connection costs a few descriptors.
    in_memory = parsed.database in (None, "", ":memory:")  # one connection per thread (SingletonThreadPool)
    pool: dict[str, Any] = {} if in_memory else {"pool_size": SQLITE_POOL, "max_overflow": SQLITE_POOL}
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN instead of the sqlite3 module's own logic.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL never corrupts the database; a power cut can only lose the last commits,
            # and the cache engine repairs a lost row (file without row) at its next start.
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # A writer takes the write lock up front (no deadlock upgrading a read lock). A reader must not: in
        # WAL mode readers never block, but BEGIN IMMEDIATE makes every read wait for the one write lock, and
        # sqlite's busy handler sleeps in steps of up to 100 ms; 100 nodes listing at once queued for seconds.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


_READ_ONLY = "glancecache_read_only"


def reading(engine: sa.Engine) -> sa.Connection:
    """A connection for reads only (``with reading(db) as conn: conn.execute(select)``): on SQLite its
    transaction is a plain (deferred) BEGIN, so it never waits for a writer or for another reader."""
    return engine.connect().execution_options(**{_READ_ONLY: True})


def fetch_all(
    engine: sa.Engine, sql: str, parameters: tuple[Any, ...] | dict[str, Any] | None = None
) -> Sequence[tuple[Any, ...]]:
    """The rows of one read-only statement ``sql`` (already compiled for this database), straight from a pooled
    DBAPI connection: on the hot paths (every listing reads the registry and the deletion log) SQLAlchemy's
    connection, transaction and result handling cost several times the query (0.3 ms of a listing's 0.8 ms of
    application time). One statement needs no transaction of its own: SQLite (autocommit, see the connect hook)
    runs it as one read, and PostgreSQL's and MariaDB's implicit transaction is rolled back when the pool takes
    the connection back, as it is after ``reading``."""
    connection = engine.raw_connection()  # the pool's checkout: its pre-ping, where configured, included
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters or ())
            return cursor.fetchall()
        finally:
            cursor.close()
    finally:
        connection.close()  # back to the pool, which rolls back what the statement began


def create_tables(engine: sa.Engine, tables: Sequence[sa.Table]) -> None:
    """Create ``tables`` unless they exist, tolerating another node creating them at the same moment.

    ``create_all(checkfirst=True)`` checks and then creates, so two nodes starting together can both see a
    table missing; the loser's CREATE fails. We then check again: by now the table exists and the second
    pass is a no-op. A real failure (bad credentials, no such database) fails every attempt and is raised.
    """
    target = tables[0].metadata
    attempts = 5
    for attempt in range(attempts):
        try:
            target.create_all(engine, tables=list(tables), checkfirst=True)
            return
        except sa_exc.DatabaseError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
