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
- ``driver``, ``node_url``; ``add``, ``get``, ``entries``, ``listing``, ``record_hit``, ``remove``,
  ``remove_many``, ``cached_nodes``, ``close``; ``CacheEntry`` is one row; ``CacheEntry.wire(driver)`` gives
  Glance's JSON shape for it. ``listing()`` reads every row for GET /v2/cache (its hot path) as a ``Listing``,
  which gives that shape as dicts (``wire``) or, without building them, as the JSON text itself (``json``).

The registry does not look at files: keeping rows and files consistent is the engine's job.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from glancecache_client.server.engine import db as schema

__all__ = ["CENTRALIZED", "SQLITE", "CacheEntry", "CacheRegistry", "Listing", "RowTexts"]

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


def _as_values(raw: Sequence[Any]) -> _Values:
    """One row's values as the database driver gives them, in CacheEntry's field order (row id None for the
    sqlite driver), in CacheEntry's types."""
    image_id, size, hits, last_accessed, last_modified, checksum, row_id = raw
    return (
        str(image_id),
        int(size),
        int(hits),
        float(last_accessed),
        float(last_modified),
        None if checksum is None else str(checksum),
        None if row_id is None else int(row_id),
    )


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


# -- the listing -----------------------------------------------------------------------------------------
#
# GET /v2/cache of 10,000 entries spent most of its time building a dict per row and having json.dumps walk
# them. A ``Listing`` keeps the rows as the DBAPI returned them, columns already in the wire's key order, and
# writes each entry with one %-template. That text is json.dumps's own only for values whose JSON it can be
# sure of, so ``json`` first checks every column (one pass each, in C) and otherwise falls back to json.dumps
# of ``wire()``: exact ints (%d is int.__repr__, as json's), exact finite floats (%r is float.__repr__, as
# json's; NaN and infinities it spells differently), and strings of printable ASCII without " or \ (what
# json.dumps writes unescaped), with None as null where a column may hold it.

_INT, _FLOAT, _TEXT, _TEXT_OR_NONE = "int", "float", "text", "text or none"

_UNESCAPED = re.compile(r"[ !#-\[\]-~]*")
"""Strings json.dumps (ensure_ascii) writes as they are: printable ASCII except the quote and backslash."""


@dataclass(frozen=True)
class _Shape:
    """One driver's listing: its columns in wire order and the template writing one row of them."""

    keys: tuple[str, ...]
    kinds: tuple[str, ...]
    template: str
    # The same with the last value (a None) written as null: "%.0s" consumes it and writes nothing.
    null_template: str | None = None


def _shape(keys: tuple[str, ...], kinds: tuple[str, ...]) -> _Shape:
    spell = {_INT: "%d", _FLOAT: "%r", _TEXT: '"%s"', _TEXT_OR_NONE: '"%s"'}
    fields = [f'"{key}": {spell[kind]}' for key, kind in zip(keys, kinds, strict=True)]
    template = "{" + ", ".join(fields) + "}"
    null_template = None
    if kinds[-1] == _TEXT_OR_NONE:
        null_template = "{" + ", ".join([*fields[:-1], f'"{keys[-1]}": %.0snull']) + "}"
    return _Shape(keys, kinds, template, null_template)


_SHAPES = {
    CENTRALIZED: _shape(
        ("id", "image_id", "last_accessed", "last_modified", "size", "hits", "checksum"),
        (_INT, _TEXT, _FLOAT, _FLOAT, _INT, _INT, _TEXT_OR_NONE),
    ),
    SQLITE: _shape(
        ("image_id", "hits", "last_accessed", "last_modified", "size"),
        (_TEXT, _INT, _FLOAT, _FLOAT, _INT),
    ),
}


class RowTexts:
    """The JSON text of each row a node's last listing wrote, for the next listing to reuse for rows unchanged.

    Why: a float's repr (shortest round trip) is most of a row's formatting, and clients poll listings that
    change little between two calls. Every entry stays true for good (a row of equal values always has the
    same text, see ``Listing.json``), so readers need no lock and one listing's texts replace another's whole.
    Holds one listing's rows and texts: about 4 MiB per 10,000 entries.
    """

    def __init__(self) -> None:
        self.texts: dict[tuple[Any, ...], str] = {}


@dataclass(frozen=True)
class Listing:
    """This node's rows for a listing, as read (plain tuples, in the wire's key order for ``driver``)."""

    driver: str
    rows: Sequence[tuple[Any, ...]]
    memo: RowTexts | None = None

    def only(self, image_ids: Container[str]) -> Listing:
        """The rows whose image id is in ``image_ids`` (the engine's files present), in the same order."""
        at = _SHAPES[self.driver].keys.index("image_id")
        return Listing(self.driver, [row for row in self.rows if row[at] in image_ids], self.memo)

    def wire(self) -> list[dict[str, object]]:
        """Every row as ``CacheEntry.wire`` shapes it."""
        shape = _SHAPES[self.driver]
        columns = [shape.keys.index(name) for name in ("image_id", "size", "hits", "last_accessed", "last_modified")]
        checksum = shape.keys.index("checksum") if "checksum" in shape.keys else None
        row_id = shape.keys.index("id") if "id" in shape.keys else None
        wired = []
        for row in self.rows:
            values = _as_values(
                [*(row[at] for at in columns), None if checksum is None else row[checksum],
                 None if row_id is None else row[row_id]]
            )  # fmt: skip
            wired.append(_wire(self.driver, values))
        return wired

    def json(self) -> str:
        """``json.dumps(self.wire())``, byte for byte, in a fraction of its time (see the comment above).

        Rows equal to one the memo has take its text: equal values give the same JSON text after ``wire``'s
        conversions (5 and 5.0 are both "5" as an int and "5.0" as a float), except 0.0 and -0.0, so a listing
        with a zero time does not add to the memo.
        """
        rows = self.rows
        if not rows:
            return "[]"
        known = self.memo.texts if self.memo is not None else {}
        texts: list[str | None] | None = None
        if known:
            with contextlib.suppress(TypeError):  # an unhashable value: nothing to reuse (nor will it pass below)
                texts = list(map(known.get, rows))
        if texts is None or None in texts:
            fresh = rows if texts is None else [row for row, text in zip(rows, texts, strict=True) if text is None]
            written = _written(self.driver, fresh)
            if written is None:
                return json.dumps(self.wire())
            new_texts, memorable = written
            if texts is None or len(fresh) == len(rows):
                texts = list(new_texts)
            else:
                pending = iter(new_texts)
                texts = [next(pending) if text is None else text for text in texts]
            if self.memo is not None and memorable:
                self.memo.texts = dict(zip(rows, cast("list[str]", texts), strict=True))
        return "[" + ", ".join(cast("list[str]", texts)) + "]"  # every None was replaced


def _written(driver: str, rows: Sequence[tuple[Any, ...]]) -> tuple[list[str], bool] | None:
    """Each row's JSON text from the driver's template, and whether the texts may be remembered (not if a float
    column held a zero: -0.0 == 0.0 but its text differs); None if a value is not one it spells as json does."""
    shape = _SHAPES[driver]
    nulls, memorable = False, True
    for kind, column in zip(shape.kinds, zip(*rows, strict=True), strict=True):
        values = column
        if kind == _TEXT_OR_NONE and None in column:
            nulls = True
            values = tuple(value for value in column if value is not None)
        if not _plain(kind, values):
            return None
        if kind == _FLOAT and 0.0 in values:
            memorable = False
    template, null_template = shape.template, shape.null_template
    if nulls and null_template is not None:
        return [(template if row[-1] is not None else null_template) % row for row in rows], memorable
    return [template % row for row in rows], memorable


def _plain(kind: str, column: tuple[Any, ...]) -> bool:
    """True if every value of the column has the JSON text its template gives it."""
    types = set(map(type, column))
    if kind == _INT:
        return types <= {int}
    if kind == _FLOAT:
        return types <= {float} and math.isfinite(sum(column))  # a NaN or an infinity makes the sum one too
    return types <= {str} and _UNESCAPED.fullmatch("".join(column)) is not None


class CacheRegistry:
    """Rows of cached images for one node. Thread-safe (one SQLAlchemy engine, short transactions)."""

    def __init__(self, *, driver: str, db: sa.Engine, node_url: str, owns_engine: bool) -> None:
        self.driver = driver
        self.node_url = node_url
        self._db = db
        self._owns_engine = owns_engine
        self._node_id: int | None = None
        self._statements: dict[tuple[str, ...], str] = {}  # SQL of _raw_rows, by columns
        self._row_texts = RowTexts()
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

    def listing(self) -> Listing:
        """This node's rows, in ``entries`` order, for ``[entry.wire(driver) for entry in entries()]``."""
        return Listing(self.driver, self._raw_rows(_SHAPES[self.driver].keys), self._row_texts)

    def by_last_access(self) -> list[tuple[float, float, str, int]]:
        """``(last_accessed, last_modified, image_id, size)`` of each of this node's rows (prune's order is
        theirs, sorted), without building entries."""
        rows = self._raw_rows(("last_accessed", "last_modified", "image_id", "size"))
        return [
            (float(accessed), float(modified), str(image_id), int(size))
            for accessed, modified, image_id, size in rows
        ]

    def _raw_rows(self, keys: tuple[str, ...]) -> Sequence[tuple[Any, ...]]:
        """This node's rows as the DBAPI gives them (``db.fetch_all``): columns ``keys``, in ``entries`` order.
        Listings of 10,000 rows are the case that matters."""
        sql = self._statements.get(keys)
        if sql is None:
            t = self._table
            query = sa.select(*(t.c[key] for key in keys)).where(self._scoped()).order_by(self._entries_order())
            # The node id is the only parameter: an int, safe to write into the SQL as a literal.
            sql = self._statements[keys] = str(
                query.compile(dialect=self._db.dialect, compile_kwargs={"literal_binds": True})
            )
        return schema.fetch_all(self._db, sql)

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
        query = query.order_by(self._entries_order())
        with schema.reading(self._db) as conn:
            rows = conn.execute(query).all()
        for row in rows:
            yield _as_values([*row[:6], row[6] if centralized else None])

    def _entries_order(self) -> sa.ColumnElement[Any]:
        """``entries`` order: centralized by row id (insertion), sqlite by image id."""
        return self._table.c.id if self.driver == CENTRALIZED else self._table.c.image_id
