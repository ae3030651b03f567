"""The cache registry: which images are cached on which node, with hits and access times (SQLAlchemy Core).

Two drivers, as in Glance:

- ``centralized_db``: tables ``node_reference`` and ``cached_images`` in the cluster's shared database
  (SQLite file, PostgreSQL or MariaDB). Every node registers its URL once; each query is scoped to this
  node's ``node_reference_id``, except ``cached_nodes`` which looks across all nodes.
- ``sqlite`` (deprecated in Glance): a ``cache.db`` inside the node's cache directory, one row per image.

Times are epoch floats from the caller's clock (``time.time()``), so they are right whatever the server's TZ
(Glance 33 stores naive datetimes and is off by the UTC offset outside UTC).

Public API (the cache engine is the only caller):

- ``CacheRegistry.centralized(db, node_url)`` / ``CacheRegistry.per_node_sqlite(path)``
- ``driver``, ``node_url``; ``add``, ``get``, ``entries``, ``wire_entries``, ``record_hit``, ``remove``,
  ``remove_many``, ``cached_nodes``, ``close``; ``CacheEntry`` is one row; ``CacheEntry.wire(driver)`` gives
  Glance's JSON shape for it (``wire_entries`` gives the same for every row without building entries:
  listing's hot path).

The registry does not look at files: keeping rows and files consistent is the engine's job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from glancecache_client.server.engine import db as schema

__all__ = ["CENTRALIZED", "SQLITE", "CacheEntry", "CacheRegistry"]

CENTRALIZED = "centralized_db"
SQLITE = "sqlite"


@dataclass(frozen=True)
class CacheEntry:
    """One cached image on this node. ``row_id`` is the ``cached_images.id`` (None for the sqlite driver)."""

    image_id: str
    size: int
    hits: int
    last_accessed: float
    last_modified: float
    checksum: str | None
    row_id: int | None = None

    def wire(self, driver: str) -> dict[str, object]:
        """The entry exactly as Glance 33 lists it for ``driver`` (key order included)."""
        values = (self.image_id, self.size, self.hits, self.last_accessed, self.last_modified, self.checksum)
        return _wire(driver, (*values, self.row_id))


_Values = tuple[str, int, int, float, float, str | None, int | None]
"""One row as CacheEntry's fields, in their order: image_id, size, hits, last_accessed, last_modified,
checksum, row_id."""


def _wire(driver: str, values: _Values) -> dict[str, object]:
    image_id, size, hits, last_accessed, last_modified, checksum, row_id = values
    if driver == CENTRALIZED:
        return {
            "id": row_id,
            "image_id": image_id,
            "last_accessed": last_accessed,
            "last_modified": last_modified,
            "size": size,
            "hits": hits,
            "checksum": checksum,
        }
    return {
        "image_id": image_id,
        "hits": hits,
        "last_accessed": last_accessed,
        "last_modified": last_modified,
        "size": size,
    }


class CacheRegistry:
    """Rows of cached images for one node. Thread-safe (one SQLAlchemy engine, short transactions)."""

    def __init__(self, *, driver: str, db: sa.Engine, node_url: str, owns_engine: bool) -> None:
        self.driver = driver
        self.node_url = node_url
        self._db = db
        self._owns_engine = owns_engine
        self._node_id: int | None = None
        if driver == CENTRALIZED:
            self._table = schema.cached_images
            schema.create_tables(db, [schema.node_reference, schema.cached_images])
            self._node_id = self._register_node(node_url)
        elif driver == SQLITE:
            self._table = schema.local_cached_images
            schema.create_tables(db, [schema.local_cached_images])
        else:
            raise ValueError(f"unknown cache registry driver {driver!r}")

    @classmethod
    def centralized(cls, db: sa.Engine, node_url: str) -> CacheRegistry:
        """Rows in the shared database, scoped to the node identified by ``node_url``."""
        if not node_url:
            raise ValueError("the centralized_db cache registry needs this node's URL (worker_self_reference_url)")
        return cls(driver=CENTRALIZED, db=db, node_url=node_url, owns_engine=False)

    @classmethod
    def per_node_sqlite(cls, path: Path, node_url: str = "") -> CacheRegistry:
        """Rows in a private SQLite file (Glance's ``<cache_dir>/cache.db``)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = schema.create_db_engine(schema.sqlite_url(Path(path)))
        return cls(driver=SQLITE, db=engine, node_url=node_url, owns_engine=True)

    def close(self) -> None:
        """Release pooled connections of an engine this registry created (a shared engine is left alone)."""
        if self._owns_engine:
            self._db.dispose()

    # -- node identity ---------------------------------------------------------------------------------

    def _register_node(self, url: str) -> int:
        nodes = schema.node_reference
        find = sa.select(nodes.c.node_reference_id).where(nodes.c.node_reference_url == url)
        for _ in range(5):
            with schema.reading(self._db) as conn:
                found = conn.execute(find).scalar()
            if found is not None:
                return int(found)
            try:
                with self._db.begin() as conn:
                    conn.execute(sa.insert(nodes).values(node_reference_url=url))
            except sa_exc.IntegrityError:
                pass  # another process registered the same URL first: read its row
        raise RuntimeError(f"could not register cache node {url!r} in node_reference")

    def _scoped(self) -> sa.ColumnElement[bool]:
        """The WHERE clause limiting a query to this node's rows."""
        if self._node_id is None:
            return sa.true()
        return schema.cached_images.c.node_reference_id == self._node_id

    # -- rows ------------------------------------------------------------------------------------------

    def add(self, image_id: str, *, size: int, checksum: str | None, now: float | None = None) -> bool:
        """Record a newly cached image (hits 0, accessed = modified = now). False if already recorded."""
        stamp = time.time() if now is None else now
        values: dict[str, object] = {
            "image_id": image_id,
            "last_accessed": stamp,
            "last_modified": stamp,
            "size": size,
            "hits": 0,
            "checksum": checksum,
        }
        if self._node_id is not None:
            values["node_reference_id"] = self._node_id
        try:
            with self._db.begin() as conn:
                conn.execute(sa.insert(self._table).values(**values))
        except sa_exc.IntegrityError:
            return False
        return True

    def get(self, image_id: str) -> CacheEntry | None:
        for values in self._values(self._table.c.image_id == image_id):
            return CacheEntry(*values)
        return None

    def entries(self) -> list[CacheEntry]:
        """This node's rows: centralized in row-id (insertion) order, sqlite ordered by image_id."""
        return [CacheEntry(*values) for values in self._values()]

    def wire_entries(self) -> list[dict[str, object]]:
        """``[entry.wire(driver) for entry in entries()]``, built straight from the row tuples."""
        driver = self.driver
        return [_wire(driver, values) for values in self._values()]

    def record_hit(self, image_id: str, now: float | None = None, checksum: str | None = None) -> bool:
        """hits + 1 and last_accessed = now, atomically in SQL. False if the image has no row (or, with
        ``checksum``, no row with that checksum)."""
        stamp = time.time() if now is None else now
        statement = sa.update(self._table).where(self._table.c.image_id == image_id, self._scoped())
        if checksum is not None:
            statement = statement.where(self._table.c.checksum == checksum)
        statement = statement.values(hits=self._table.c.hits + 1, last_accessed=stamp)
        with self._db.begin() as conn:
            return bool(conn.execute(statement).rowcount)

    def remove(self, image_id: str) -> bool:
        """Delete this node's row for the image. False if there was none."""
        statement = sa.delete(self._table).where(self._table.c.image_id == image_id, self._scoped())
        with self._db.begin() as conn:
            return bool(conn.execute(statement).rowcount)

    def remove_many(self, image_ids: list[str]) -> int:
        """``remove`` for every id, in one transaction (prune's hot path). Returns how many rows went."""
        if not image_ids:
            return 0
        statement = sa.delete(self._table).where(self._table.c.image_id.in_(image_ids), self._scoped())
        with self._db.begin() as conn:
            return int(conn.execute(statement).rowcount)

    def cached_nodes(self, image_id: str) -> list[str]:
        """URLs of every node holding a row for the image (centralized); this node or nothing (sqlite)."""
        if self.driver != CENTRALIZED:
            return [self.node_url] if self.get(image_id) is not None else []
        nodes, rows = schema.node_reference, schema.cached_images
        query = (
            sa.select(nodes.c.node_reference_url)
            .join(rows, rows.c.node_reference_id == nodes.c.node_reference_id)
            .where(rows.c.image_id == image_id)
            .order_by(nodes.c.node_reference_url)
        )
        with schema.reading(self._db) as conn:
            return [str(url) for url in conn.execute(query).scalars()]

    def _values(self, where: sa.ColumnElement[bool] | None = None) -> Iterator[_Values]:
        """This node's rows (those matching ``where``) as CacheEntry field tuples, in ``entries`` order.

        Selects the columns by position and unpacks plain tuples: building mappings per row cost more than
        the query itself in listings of thousands of entries.
        """
        t = self._table
        centralized = self.driver == CENTRALIZED
        columns = [t.c.image_id, t.c.size, t.c.hits, t.c.last_accessed, t.c.last_modified, t.c.checksum]
        if centralized:
            columns.append(t.c.id)
        query = sa.select(*columns).where(self._scoped())
        if where is not None:
            query = query.where(where)
        query = query.order_by(t.c.id if centralized else t.c.image_id)
        with schema.reading(self._db) as conn:
            rows = conn.execute(query).all()
        for row in rows:
            image_id, size, hits, last_accessed, last_modified, checksum = row[:6]
            yield (
                str(image_id),
                int(size),
                int(hits),
                float(last_accessed),
                float(last_modified),
                None if checksum is None else str(checksum),
                int(row[6]) if centralized else None,
            )
