"""The image catalogue and the shared image store (a directory standing in for Swift/Ceph).

Owns: image metadata rows (table ``images`` in the shared SQL database, so every node of a cluster sees
the same images) and the image data files ``<images_dir>/<image_id>``. Knows nothing about caching or HTTP.

Public API (used by app.py and engine.py):

- ``Image``: a frozen snapshot of one image's metadata (times are aware UTC datetimes).
- ``ImageStore(db, images_dir)``: ``create``, ``get``, ``list``, ``upload``, ``data_path``, ``iter_data``,
  ``set_status``, ``delete``; the deletion log every node's cache engine reads: ``deletions_after``
  and ``last_deletion`` (``delete`` records each deletion in table ``image_deletions``).
- ``is_image_id(text)``: True for a canonical 36-character UUID; every path built from an image id is
  built only after this check, so no id can escape a directory.
- Errors: ``ImageConflict`` (create with an id that exists, upload when the image is not ``queued``),
  ``ImageNotFound`` (upload / set_status / delete of an unknown id) and ``StorageFull`` (an upload that
  ran out of disk space: ENOSPC, EFBIG or EDQUOT).

Uploads stream to a private temporary file next to the final one while computing the size, the MD5
``checksum`` and the SHA-512 ``os_hash_value`` (a ``DigestingWriter``); the file is fsynced and renamed
into place before the row says ``active``. The status flow is ``queued -> saving -> active``; a failed
upload removes the temporary file and puts the image back to ``queued``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from glancecache_client.server.engine import db as schema
from glancecache_client.server.engine.digesting import DigestingWriter

__all__ = [
    "CHUNK_SIZE",
    "IMAGE_STATUSES",
    "Image",
    "ImageConflict",
    "ImageNotFound",
    "ImageStore",
    "StorageFull",
    "is_image_id",
]

CHUNK_SIZE = 64 * 1024
"""Bytes per read when streaming image data: keeps memory flat whatever the image size."""

IMAGE_STATUSES = frozenset(
    {"queued", "saving", "active", "killed", "deleted", "pending_delete", "deactivated", "uploading", "importing"}
)


DELETION_LOG_RETENTION = 24 * 3600.0
"""Seconds a row of the deletion log is kept. Running engines read it about every second and look for a missing
number for a minute (deletions.DELETION_GAP_WAIT); an engine that starts reads from the newest row and repairs its
cache against the images table, so older rows help no one. A day leaves room for an engine whose database was
unreachable for hours."""


class ImageConflict(Exception):
    """The image is not in a state that allows the operation (or its id is already taken)."""


class ImageNotFound(LookupError):
    """No image has this id (or the id is not a UUID)."""


class StorageFull(Exception):
    """The image data did not fit on the store's disk (or quota); the upload left nothing behind."""

    def __str__(self) -> str:
        return "There is not enough disk space on the image storage media."


# errno values that mean "no room" (glance_store maps ENOSPC and EFBIG; a quota is no room either).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def is_image_id(text: str) -> bool:
    """True when ``text`` is a UUID in its canonical 36-character hyphenated form (any letter case)."""
    if len(text) != 36:
        return False
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Image:
    """One image's metadata as the catalogue holds it."""

    id: str
    name: str | None
    status: str
    visibility: str
    owner: str | None
    container_format: str | None
    disk_format: str | None
    size: int | None
    checksum: str | None  # md5 hex
    os_hash_algo: str | None
    os_hash_value: str | None  # hex digest of os_hash_algo
    protected: bool
    min_disk: int
    min_ram: int
    tags: tuple[str, ...]
    properties: Mapping[str, str] = field(hash=False)
    created_at: datetime
    updated_at: datetime


# Compiled once per store (see ImageStore._deletions_after): every listing reads the deletion log.
_DELETIONS_AFTER = (
    sa.select(schema.image_deletions.c.seq, schema.image_deletions.c.image_id)
    .where(schema.image_deletions.c.seq > sa.bindparam("after"))
    .order_by(schema.image_deletions.c.seq)
)


def _epoch_to_utc(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=timezone.utc)


def _image_from_row(row: sa.Row[Any]) -> Image:
    m = row._mapping
    return Image(
        id=m["id"],
        name=m["name"],
        status=m["status"],
        visibility=m["visibility"],
        owner=m["owner"],
        container_format=m["container_format"],
        disk_format=m["disk_format"],
        size=m["size"],
        checksum=m["checksum"],
        os_hash_algo=m["os_hash_algo"],
        os_hash_value=m["os_hash_value"],
        protected=bool(m["protected"]),
        min_disk=m["min_disk"],
        min_ram=m["min_ram"],
        tags=tuple(json.loads(m["tags"])),
        properties=dict(json.loads(m["properties"])),
        created_at=_epoch_to_utc(m["created_at"]),
        updated_at=_epoch_to_utc(m["updated_at"]),
    )


class ImageStore:
    """The image catalogue (shared SQL table) plus the image data directory. Thread-safe."""

    def __init__(self, db: sa.Engine, images_dir: Path) -> None:
        self._db = db
        self._deletions_sql: tuple[str, bool] | None = None  # (SQL, positional parameters) of _DELETIONS_AFTER
        self._images_dir = Path(images_dir)
        self._images_dir.mkdir(parents=True, exist_ok=True)
        schema.create_tables(db, [schema.images, schema.image_deletions])

    @property
    def images_dir(self) -> Path:
        return self._images_dir

    # -- catalogue -------------------------------------------------------------------------------------

    def create(
        self,
        *,
        image_id: str | None = None,
        name: str | None = None,
        container_format: str | None = None,
        disk_format: str | None = None,
        visibility: str = "shared",
        owner: str | None = None,
        protected: bool = False,
        min_disk: int = 0,
        min_ram: int = 0,
        tags: Sequence[str] = (),
        properties: Mapping[str, str] | None = None,
    ) -> Image:
        """Register a new image in status ``queued``. Raises ValueError for a non-UUID ``image_id`` and
        ImageConflict if the id exists."""
        if image_id is None:
            image_id = str(uuid.uuid4())
        elif not is_image_id(image_id):
            raise ValueError(f"image id {image_id!r} is not a UUID")
        now = time.time()
        values = {
            "id": image_id,
            "name": name,
            "status": "queued",
            "visibility": visibility,
            "owner": owner,
            "container_format": container_format,
            "disk_format": disk_format,
            "size": None,
            "checksum": None,
            "os_hash_algo": None,
            "os_hash_value": None,
            "protected": protected,
            "min_disk": min_disk,
            "min_ram": min_ram,
            "tags": json.dumps(list(dict.fromkeys(tags))),
            "properties": json.dumps(dict(properties or {})),
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._db.begin() as conn:
                conn.execute(sa.insert(schema.images).values(**values))
        except sa.exc.IntegrityError:
            raise ImageConflict(f"image {image_id} already exists") from None
        image = self.get(image_id)
        assert image is not None  # just inserted; only a concurrent delete could remove it
        return image

    def get(self, image_id: str) -> Image | None:
        """The image, or None for an unknown or malformed id."""
        if not is_image_id(image_id):
            return None
        with schema.reading(self._db) as conn:
            row = conn.execute(sa.select(schema.images).where(schema.images.c.id == image_id)).first()
        return None if row is None else _image_from_row(row)

    def list(self) -> list[Image]:
        """All images, newest first (ties by id)."""
        query = sa.select(schema.images).order_by(schema.images.c.created_at.desc(), schema.images.c.id)
        with schema.reading(self._db) as conn:
            return [_image_from_row(row) for row in conn.execute(query)]

    def set_status(self, image_id: str, status: str) -> Image:
        """Change the status (deactivate / reactivate). Raises ValueError for an unknown status."""
        if status not in IMAGE_STATUSES:
            raise ValueError(f"unknown image status {status!r}")
        self._update(image_id, status=status)
        return self._must_get(image_id)

    def delete(self, image_id: str) -> None:
        """Remove the row and the data file. Raises ImageNotFound for an unknown id."""
        if not is_image_id(image_id):
            raise ImageNotFound(image_id)
        with self._db.begin() as conn:
            deleted = conn.execute(sa.delete(schema.images).where(schema.images.c.id == image_id)).rowcount
            if deleted:  # in the same transaction: no node can see the image gone but not the deletion
                now = time.time()
                log = schema.image_deletions
                written = conn.execute(sa.insert(log).values(image_id=image_id, deleted_at=now))
                # Keep the log short, but only below the row just written: the newest row must stay, or SQLite
                # would hand its number out again and an engine that read it would never see the reused one.
                # (A subquery on the same table would be simpler, but MariaDB refuses it in a DELETE.)
                ours = written.inserted_primary_key[0]  # type: ignore[index]  # an INSERT always has one
                old = sa.and_(log.c.deleted_at < now - DELETION_LOG_RETENTION, log.c.seq < ours)
                conn.execute(sa.delete(log).where(old))
        # Readers that already opened the file keep reading it (POSIX); new readers see no image.
        with contextlib.suppress(FileNotFoundError):
            self.data_path(image_id).unlink()
        if not deleted:
            raise ImageNotFound(image_id)

    # -- data ------------------------------------------------------------------------------------------

    def data_path(self, image_id: str) -> Path:
        """Where an active image's bytes are. Raises ValueError for a non-UUID id."""
        if not is_image_id(image_id):
            raise ValueError(f"image id {image_id!r} is not a UUID")
        return self._images_dir / image_id

    def iter_data(self, image_id: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an image's stored bytes. The file is opened on the first ``next()``; a missing file
        raises FileNotFoundError there."""
        path = self.data_path(image_id)
        with path.open("rb") as data:
            while chunk := data.read(chunk_size):
                yield chunk

    def upload(self, image_id: str, chunks: Iterable[bytes]) -> Image:
        """Store the image's data: ``queued -> saving -> active``.

        Raises ImageNotFound for an unknown id, ImageConflict unless the image is ``queued`` (so two
        concurrent uploads cannot both win), StorageFull when the disk has no room for the data. Whatever
        ``chunks`` raises is re-raised; either way the temporary file is removed first and the image is
        back to ``queued``.
        """
        if not is_image_id(image_id):
            raise ImageNotFound(image_id)
        with self._db.begin() as conn:
            claimed = conn.execute(
                sa.update(schema.images)
                .where(schema.images.c.id == image_id, schema.images.c.status == "queued")
                .values(status="saving", updated_at=time.time())
            ).rowcount
        if not claimed:
            if self.get(image_id) is None:
                raise ImageNotFound(image_id)
            raise ImageConflict(f"image {image_id} is not queued: its data can only be uploaded once")
        final = self.data_path(image_id)
        temp = self._images_dir / f".upload-{image_id}-{uuid.uuid4().hex}"
        try:
            with temp.open("xb") as out:
                digest = DigestingWriter(out, name=f"upload-{image_id[:8]}")
                try:
                    for chunk in chunks:
                        digest.write(chunk)
                    digest.close()
                finally:
                    digest.cancel()  # after close() a no-op; otherwise ends the helpers before the file goes
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            with contextlib.suppress(ImageNotFound):
                self._update(image_id, status="queued")
            if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
                raise StorageFull() from exc
            raise
        try:
            self._update(
                image_id,
                status="active",
                size=digest.size,
                checksum=digest.md5_hex(),
                os_hash_algo="sha512",
                os_hash_value=digest.sha512_hex(),
            )
        except ImageNotFound:
            # Deleted while we were writing: the data must not outlive its image.
            with contextlib.suppress(FileNotFoundError):
                final.unlink()
            raise
        return self._must_get(image_id)

    # -- deletion log: how cache engines in every process learn that an image was deleted ---------------

    def deletions_after(self, seq: int, also: Iterable[int] = ()) -> Sequence[tuple[int, str]]:
        """(seq, image_id) of the deletions with a sequence number above ``seq`` or in ``also``, lowest first."""
        extra = sorted(also)
        if not extra:
            return self._deletions_after(seq)
        log = schema.image_deletions
        wanted = sa.or_(log.c.seq > seq, log.c.seq.in_(extra))
        query = sa.select(log.c.seq, log.c.image_id).where(wanted).order_by(log.c.seq)
        with schema.reading(self._db) as conn:
            return [(int(seq), str(image_id)) for seq, image_id in conn.execute(query)]

    def _deletions_after(self, seq: int) -> Sequence[tuple[int, str]]:
        """``deletions_after(seq)`` through the DBAPI cursor (``db.fetch_all``), with SQL compiled once for this
        database: every listing of every node reads the log."""
        if self._deletions_sql is None:
            compiled = _DELETIONS_AFTER.compile(dialect=self._db.dialect)
            self._deletions_sql = (str(compiled), bool(compiled.positional))
        sql, positional = self._deletions_sql
        rows = schema.fetch_all(self._db, sql, (seq,) if positional else {"after": seq})
        return [(int(number), str(image_id)) for number, image_id in rows]

    def last_deletion(self) -> int:
        """The highest deletion sequence number so far (0 if no image was ever deleted)."""
        with schema.reading(self._db) as conn:
            return int(conn.execute(sa.select(sa.func.max(schema.image_deletions.c.seq))).scalar() or 0)

    # -- helpers ---------------------------------------------------------------------------------------

    def _update(self, image_id: str, **values: Any) -> None:
        if not is_image_id(image_id):
            raise ImageNotFound(image_id)
        values["updated_at"] = time.time()
        with self._db.begin() as conn:
            updated = conn.execute(
                sa.update(schema.images).where(schema.images.c.id == image_id).values(**values)
            ).rowcount
        if not updated:
            raise ImageNotFound(image_id)

    def _must_get(self, image_id: str) -> Image:
        image = self.get(image_id)
        if image is None:
            raise ImageNotFound(image_id)
        return image
