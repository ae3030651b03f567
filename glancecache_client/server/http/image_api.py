"""The image API subset a cache needs, Glance-shaped: create, show, list, upload, download, delete,
deactivate and reactivate.

Owns: image JSON views (Glance 33's key order and ``%Y-%m-%dT%H:%M:%SZ`` times), the download path with
its transparent caching (a full read of a cached image is served from the cache and counts a hit; a full
read of an uncached one is tee'd into the cache by ``engine.caching_iter``; a Range read never touches
the cache and never counts a hit), and purging an image from the caches when it is deleted.
Files are streamed, never read whole into memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlencode

from werkzeug.http import parse_content_range_header, parse_range_header

from .faults import HTTPError, Reply, empty_reply, json_reply
from .request import ApiRequest

if TYPE_CHECKING:
    from ..engine.fill import FileTee
    from ..engine.store import Image

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
TEE_THREAD_ABOVE = 1024 * 1024
"""Images above this size are sent from the store file while a thread of their own reads the same file into the
cache fill of their first download (``CacheEngine.tee_file``), so the digest does not hold up the sending; smaller
ones pass through ``caching_iter`` in one or two chunks, which costs them less than starting that thread."""
IMPORT_METHODS = ("OpenStack-image-import-methods", "glance-direct,web-download,copy-image")
VISIBILITIES = ("public", "private", "shared", "community")
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
READ_ONLY = (
    "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "created_at",
    "updated_at", "self", "file", "schema", "direct_url", "locations", "owner",
)  # fmt: skip


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_view(image: Image) -> dict[str, Any]:
    """Glance's image representation: extra properties first, then the core attributes, then links."""
    view: dict[str, Any] = dict(image.properties)
    view.update(
        {
            "name": image.name,
            "disk_format": image.disk_format,
            "container_format": image.container_format,
            "visibility": image.visibility,
            "size": image.size,
            # Glance 33 reports the byte size of raw images as their virtual size.
            "virtual_size": image.size if image.disk_format == "raw" else None,
            "status": image.status,
            "checksum": image.checksum,
            "protected": image.protected,
            "min_ram": image.min_ram,
            "min_disk": image.min_disk,
            "owner": image.owner,
            "os_hidden": False,
            "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value,
            "id": image.id,
            "created_at": _when(image.created_at),
            "updated_at": _when(image.updated_at),
            "tags": list(image.tags),
            "self": f"/v2/images/{image.id}",
            "file": f"/v2/images/{image.id}/file",
            "schema": "/v2/schemas/image",
        }
    )
    return view


def _not_found(image_id: str) -> HTTPError:
    return HTTPError(404, f"No image found with ID {image_id}")


def _lookup(req: ApiRequest, image_id: str) -> Image:
    image = req.visible_image(image_id)
    if image is None:
        raise _not_found(image_id)
    return image


# -- create / show / list ---------------------------------------------------------------------------------


def create_image(req: ApiRequest) -> Reply:
    from ..engine.store import ImageConflict

    req.node.policy.enforce("add_image", req.ctx.credentials)
    body = req.read_json()
    if not isinstance(body, dict):
        raise HTTPError(400, "Malformed JSON in request body.")
    for key in READ_ONLY:
        if key in body:
            raise HTTPError(403, f"Attribute '{key}' is read-only.")
    visibility = body.get("visibility", "shared")
    if visibility not in VISIBILITIES:
        raise HTTPError(400, f"Invalid visibility value: {visibility}")
    if visibility == "public":
        req.node.policy.enforce("publicize_image", req.ctx.credentials)
    if visibility == "community":
        req.node.policy.enforce("communitize_image", req.ctx.credentials)
    disk_format = body.get("disk_format")
    if disk_format is not None and disk_format not in DISK_FORMATS:
        raise HTTPError(400, f"Invalid value '{disk_format}' for parameter 'disk_format'")
    container_format = body.get("container_format")
    if container_format is not None and container_format not in CONTAINER_FORMATS:
        raise HTTPError(400, f"Invalid value '{container_format}' for parameter 'container_format'")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise HTTPError(400, "Invalid value for parameter 'name': not a string")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise HTTPError(400, "Invalid value for parameter 'tags': expected a list of strings")
    numbers = {}
    for key in ("min_disk", "min_ram"):
        value = body.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise HTTPError(400, f"Invalid value for parameter '{key}': expected a non-negative integer")
        numbers[key] = value
    protected = body.get("protected", False)
    if not isinstance(protected, bool):
        raise HTTPError(400, "Invalid value for parameter 'protected': expected a boolean")
    core = {"id", "name", "visibility", "disk_format", "container_format", "tags", "min_disk", "min_ram",
            "protected", "os_hidden"}  # fmt: skip
    properties: dict[str, str] = {}
    for key, value in body.items():
        if key in core:
            continue
        if not isinstance(value, str):
            raise HTTPError(400, f"Invalid value for property '{key}': additional properties must be strings")
        properties[key] = value
    image_id = body.get("id")
    if image_id is not None and not isinstance(image_id, str):
        raise HTTPError(400, "Invalid value for parameter 'id': expected a UUID string")
    try:
        image = req.node.store.create(
            image_id=image_id,
            name=name,
            container_format=container_format,
            disk_format=disk_format,
            visibility=visibility,
            owner=req.ctx.project_id,
            protected=protected,
            min_disk=numbers["min_disk"],
            min_ram=numbers["min_ram"],
            tags=tags,
            properties=properties,
        )
    except ImageConflict:
        raise HTTPError(409, f"An image with identifier {image_id} already exists") from None
    except ValueError:
        raise HTTPError(400, f"Invalid value for parameter 'id': {image_id} is not a UUID") from None
    location = f"{req.host_url}/v2/images/{image.id}"
    return json_reply(201, image_view(image), [("Location", location), IMPORT_METHODS])


def show_image(req: ApiRequest, image_id: str) -> Reply:
    image = _lookup(req, image_id)
    req.node.policy.enforce("get_image", req.ctx.credentials)
    return json_reply(200, image_view(image))


# Glance's limit_param_default and api_limit_max defaults: a listing is one page of at most this many images.
LIMIT_PARAM_DEFAULT = 25
API_LIMIT_MAX = 1000


def list_images(req: ApiRequest) -> Reply:
    req.node.policy.enforce("get_images", req.ctx.credentials)
    query = req.query()
    filters = dict(query)
    limit = LIMIT_PARAM_DEFAULT  # Glance pages even when no limit is asked for
    if "limit" in filters:
        try:
            limit = int(filters["limit"])
        except ValueError:
            raise HTTPError(400, "limit param must be an integer") from None
        if limit < 0:
            raise HTTPError(400, "limit param must be positive")
    limit = min(limit, API_LIMIT_MAX)
    tags = [value for key, value in query if key == "tag"]  # repeatable; an image must carry every one
    hidden = filters.get("os_hidden", "false").lower() in ("true", "1", "yes", "on")
    wanted_visibility = filters.get("visibility")
    images = []
    for image in req.node.store.list():
        if hidden:
            continue  # this server never hides images
        if wanted_visibility is not None and wanted_visibility != "all":
            if image.visibility != wanted_visibility:
                continue
        elif image.visibility == "community" and image.owner != req.ctx.project_id:
            continue  # Glance lists others' community images only when asked for them
        if not (
            req.ctx.is_admin
            or image.visibility in ("public", "community")
            or (req.ctx.project_id is not None and image.owner == req.ctx.project_id)
        ):
            continue  # fmt: skip
        if any(
            key in filters and str(getattr(image, key)) != filters[key]
            for key in ("name", "status", "owner", "disk_format", "container_format")
        ) or any(tag.strip() not in image.tags for tag in tags):
            continue
        images.append(image)
    marker = filters.get("marker")
    if marker is not None:
        ids = [image.id for image in images]
        if marker not in ids:
            raise HTTPError(400, f"marker {marker} could not be found.")
        images = images[ids.index(marker) + 1 :]
    page: dict[str, Any] = {}
    if len(images) > limit:
        images = images[:limit]
        following = [(k, v) for k, v in query if k != "marker"] + [("marker", images[-1].id)]
        page["next"] = "/v2/images?" + urlencode(following)
    first = "/v2/images" + (f"?{req.query_string}" if req.query_string else "")
    body: dict[str, Any] = {"images": [image_view(image) for image in images], "first": first}
    body.update(page)
    body["schema"] = "/v2/schemas/images"
    return json_reply(200, body)


# -- data -------------------------------------------------------------------------------------------------


def upload_image(req: ApiRequest, image_id: str) -> Reply:
    from ..engine.store import ImageConflict, ImageNotFound, StorageFull

    image = _lookup(req, image_id)
    req.node.policy.enforce("upload_image", req.ctx.credentials)
    content_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        raise HTTPError(415, f"Invalid content type {content_type or None}")
    if image.status != "queued":
        raise HTTPError(409, f"Image status transition from {image.status} to saving is not allowed")
    try:
        req.node.store.upload(image_id, req.iter_body())
    except ImageConflict:
        raise HTTPError(409, "Image status transition from saving to saving is not allowed") from None
    except ImageNotFound:
        raise _not_found(image_id) from None
    except StorageFull as exc:
        # Glance 33's answer, word for word; the image is back to queued and can be uploaded again.
        log.warning("Upload of image %s failed: the image store is out of space", image_id)
        raise HTTPError(413, f"Image storage media is full: {exc}") from None
    return empty_reply(204)


def download_image(req: ApiRequest, image_id: str) -> Reply:
    image = _lookup(req, image_id)
    req.node.policy.enforce("download_image", req.ctx.credentials)
    if image.status == "deactivated" and not req.ctx.is_admin:
        raise HTTPError(403, "The requested image has been deactivated. Image data download is forbidden.")
    if image.status not in ("active", "deactivated") or image.size is None:
        # Glance answers a download of an image without data with 204 and no body.
        return Reply(204, [], b"")
    headers = [("Content-Type", "application/octet-stream")]
    if image.checksum:
        headers.append(("Content-MD5", image.checksum))
    wanted = _requested_range(req, image.size)
    if wanted is not None:
        return _ranged(req, image, headers, *wanted)
    engine = req.node.engine
    # A deactivated image (readable by admins only) is passed through to the store, never served from the
    # cache, as Glance's cache middleware does; the full read still fills the cache below.
    if engine is not None and image.status == "active":
        cached = engine.open_cached(image_id, image.checksum)
        if cached is not None:
            data, size = cached
            headers.append(("Content-Length", str(size)))
            return Reply(200, headers, _FileBody(data, 0, size))
    try:
        data_file = req.node.store.data_path(image_id).open("rb")
    except FileNotFoundError:
        # Deleted between the lookup and the read.
        raise _not_found(image_id) from None
    headers.append(("Content-Length", str(image.size)))
    if engine is None:
        return Reply(200, headers, _FileBody(data_file, 0, image.size))
    if image.size <= TEE_THREAD_ABOVE:
        chunks = _read_chunks(data_file, image.size)
        return Reply(200, headers, _ClosingIterable(engine.caching_iter(image, chunks), data_file))
    # The client is sent the store file itself while the cache fill reads it (engine.tee_file), from when the
    # body is really sent.
    return Reply(200, headers, _FileBody(data_file, 0, image.size, tee=lambda: engine.tee_file(image, data_file)))


def _requested_range(req: ApiRequest, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range request, or None for a full read; 416 if unsatisfiable.

    Parsed by werkzeug; only one range in lower-case ``bytes`` units is served, as before (anything else,
    several ranges included, is a 416).
    """
    header = req.header("Range")
    if header is not None:
        parsed = parse_range_header(header) if header.lstrip().startswith("bytes") else None
        if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
            raise _unsatisfiable(size)
        start, stop = parsed.ranges[0]  # stop is exclusive; a suffix comes as (-length, None)
        if start < 0:
            return max(0, size + start), size - 1
        end = min(stop - 1, size - 1) if stop is not None else size - 1
        if start >= size or start > end:
            raise _unsatisfiable(size)
        return start, end
    content_range = req.header("Content-Range")
    if content_range is not None:
        # Older clients ask for a range with Content-Range on the request; Glance honours it.
        # The total the client claims is never held against its range (the image's size is what counts), so
        # it is only checked for form before werkzeug parses the range with an unknown total.
        span, _, total = content_range.rpartition("/")
        well_formed = span.lstrip().startswith("bytes") and (total.strip() == "*" or total.strip().isdigit())
        asked = parse_content_range_header(f"{span}/*") if well_formed else None
        if asked is None or asked.units != "bytes" or asked.start is None or asked.stop is None:
            raise _unsatisfiable(size)
        start, end = asked.start, asked.stop - 1
        if start >= size or start > end:
            raise _unsatisfiable(size)
        return start, min(end, size - 1)
    return None


def _unsatisfiable(size: int) -> HTTPError:
    return HTTPError(416, "Requested range not satisfiable", headers=[("Content-Range", f"bytes */{size}")])


def _ranged(req: ApiRequest, image: Image, headers: list[tuple[str, str]], start: int, end: int) -> Reply:
    # A Range read never fills the cache and never counts a hit: it reads the store directly.
    try:
        data = req.node.store.data_path(image.id).open("rb")
    except FileNotFoundError:
        raise _not_found(image.id) from None
    length = end - start + 1
    headers.append(("Content-Range", f"bytes {start}-{end}/{image.size}"))
    headers.append(("Content-Length", str(length)))
    return Reply(206, headers, _FileBody(data, start, length))


class _FileBody:
    """An open file plus the slice of it to send, in chunks, and the cache fill that goes with sending it, if any
    (``tee``: started when iterating begins, see ``CacheEngine.tee_file``).

    The fill commits before the last chunk is handed over, so a client that has the whole image also finds it
    cached, and is aborted when the body is closed before that.
    """

    def __init__(self, handle: BinaryIO, offset: int, length: int,
                 tee: Callable[[], FileTee | None] | None = None) -> None:  # fmt: skip
        self.handle = handle
        self.offset = offset
        self.length = length
        self._start_tee = tee
        self.tee: FileTee | None = None

    def close(self) -> None:
        try:
            if self.tee is not None:
                self.tee.close()  # aborts a fill not committed; after sent() a no-op
        finally:
            self.handle.close()

    def __iter__(self) -> Iterator[bytes]:
        start_tee, self._start_tee = self._start_tee, None
        if start_tee is not None:  # the body is being sent: its cache fill begins
            self.tee = start_tee()
        self.handle.seek(self.offset)
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        remaining = self.length
        for chunk in _read_chunks(self.handle, self.length):
            remaining -= len(chunk)
            if not remaining and self.tee is not None:
                self.tee.sent()  # before the last chunk: a client that has it all finds the image cached
            yield chunk


def _read_chunks(handle: BinaryIO, length: int) -> Iterator[bytes]:
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(READ_CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


class _ClosingIterable:
    """A response body that closes its generator (so an aborted download aborts the cache fill) and file."""

    def __init__(self, chunks: Iterator[bytes], resource: BinaryIO) -> None:
        self._chunks = chunks
        self._resource = resource

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._resource.close()


# -- delete and status ------------------------------------------------------------------------------------


def delete_image(req: ApiRequest, image_id: str) -> Reply:
    from ..engine.store import ImageNotFound

    image = _lookup(req, image_id)
    req.node.policy.enforce("delete_image", req.ctx.credentials)
    if image.protected:
        raise HTTPError(403, f"Image {image_id} is protected and cannot be deleted.")
    try:
        req.node.store.delete(image_id)
    except ImageNotFound:
        raise _not_found(image_id) from None
    # Synchronously, before answering: a listing right after the 204 must not show the image.
    for purge in req.node.on_image_deleted:
        try:
            purge(image_id)
        except Exception:
            log.exception("Purging deleted image %s from a cache failed", image_id)
    return empty_reply(204)


def deactivate_image(req: ApiRequest, image_id: str) -> Reply:
    return _set_status(req, image_id, "deactivate", "deactivated")


def reactivate_image(req: ApiRequest, image_id: str) -> Reply:
    return _set_status(req, image_id, "reactivate", "active")


def _set_status(req: ApiRequest, image_id: str, action: str, target: str) -> Reply:
    image = _lookup(req, image_id)
    req.node.policy.enforce(action, req.ctx.credentials)
    if image.status not in ("active", "deactivated"):
        raise HTTPError(403, f"Not allowed to {action} image in status '{image.status}'")
    if image.status != target:
        req.node.store.set_status(image_id, target)
    return empty_reply(204)
