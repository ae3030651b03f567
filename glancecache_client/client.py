"""CacheClient: every Glance image-cache endpoint of one node, over one pooled httpx connection.

This is the only code that builds cache URLs or sends cache requests. The node's API versions are
discovered once (``GET /versions``, cached for the client's life; a listing skips it when ``GET /v2/cache`` answers
a valid listing, and 2.18 work fetches them then) so a node without the cache API gives a clear
:class:`~glancecache_client.errors.UnsupportedFeature` instead of a bare 404, and a pre-Yoga node that only has
the deprecated ``cached_images``/``queued_images`` endpoints is served through them transparently.
"""

from __future__ import annotations

import builtins
import functools
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx

from . import errors
from ._version import __version__
from .auth import NoAuth, StaticToken, TokenAuth, TokenSource, token_source_for
from .deadline import bounded, connect_early, deadline_transport, forget_early, passed
from .models import CachedImage, CacheState, ClearResult, ClearTarget, PruneResult
from .nodes import normalize_endpoint, validate_image_id, validate_seconds

if TYPE_CHECKING:
    from keystoneauth1.session import Session

__all__ = ["CACHE_API", "CLEAN_PRUNE_API", "CacheClient"]

T = TypeVar("T")

log = logging.getLogger("glancecache_client.http")

CACHE_API = "2.14"  # GET/PUT/DELETE /v2/cache (Yoga)
CLEAN_PRUNE_API = "2.18"  # POST /v2/cache/clean|prune
_USABLE = {"CURRENT", "SUPPORTED", "EXPERIMENTAL"}
_SECRET_HEADERS = {"x-auth-token", "x-subject-token", "authorization", "x-service-token"}


# One listing parsed at a time, across every client (Cluster.list parses in its worker threads): parsing is CPU work
# under the GIL, so 16 at once is no faster, but holds 16 bodies' worth of JSON objects (10,000 entries: ~5 MB).
_PARSING = threading.Lock()


class _Mode:
    """How this node's cache is reached, decided once by discovery."""

    MODERN = "modern"  # /v2/cache (2.14+)
    LEGACY = "legacy"  # /v2/cached_images + /v2/queued_images (pre-Yoga cachemanage middleware)


class CacheClient:
    """One Glance API node's image cache.

    ``endpoint`` is ``host``, ``host:port`` or a URL (a path prefix such as ``http://host/image`` is kept; a URL
    ending in ``/cache`` is a separate cache admin listener serving the cache endpoints directly under it).
    Identity: ``token=`` (static), ``session=`` (keystoneauth1 Session, token refreshed and the request retried
    once on 401), ``auth=`` (a keystoneauth1 plugin), ``token_source=`` (shared by a Cluster), or none (noauth).

    ``timeout`` (seconds) bounds each request as a whole: connecting, sending and reading the complete answer,
    however slowly the node sends it. Every failure is a :class:`~glancecache_client.errors.GlanceCacheError`
    naming the node, whatever bytes the node sends.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        token: str | None = None,
        session: Session | None = None,
        auth: Any = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        token_source: TokenSource | None = None,
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.timeout = validate_seconds(timeout)
        self._admin_listener = self.endpoint.endswith("/cache")
        self._root = self.endpoint[: -len("/cache")] if self._admin_listener else self.endpoint
        self._cache_base = self.endpoint if self._admin_listener else self.endpoint + "/v2/cache"
        if token_source is None:
            token_source = token_source_for(token=token, session=session, auth=auth, verify=verify, cert=cert)
        self.token_source = token_source
        self._tls = _tls_context(verify, cert) if self.endpoint.startswith("https:") else _plaintext_context()
        self._transport = transport or deadline_transport(verify=self._tls)
        # The httpx client is built at the first request (see _http): a Cluster of 100 nodes then builds them in
        # the nodes' threads, while the token is fetched, not one after another before anything is sent.
        self._http_client: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self._closed = False
        self._versions: frozenset[str] | None = None
        self._mode: str | None = None
        self._discovery_lock = threading.Lock()
        # (thread, deadline) of a connection opened early by that thread, and where to (see _connect_early)
        self._early: tuple[int, float] | None = None
        self._address: tuple[str, int] | None = None

    # -- connecting early (for Cluster) ----------------------------------------------------------------------

    def _connect_early(self) -> None:
        """Open the TCP connection to this node now; the next request of this thread uses it.

        A Cluster calls it in each node's thread while one of them fetches the shared token: the connections
        are then open when the token arrives, rather than opened one after another under the GIL. That request's
        timeout counts from here, so connecting early never extends it; a failure to connect is raised by
        that request, as it would have been. Nothing happens when a connection is open already or the client
        has a transport of its own.
        """
        if self._address is None:
            url = httpx.URL(self.endpoint)  # as httpx gives it to httpcore: no brackets, IDNA, the default port
            self._address = (url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))
        at = time.monotonic() + self.timeout
        with bounded(at):
            if connect_early(self._transport, *self._address, self.timeout):
                self._early = (threading.get_ident(), at)

    def _forget_early(self) -> None:
        """Close the early connection if no request used it."""
        self._early = None
        forget_early(self._transport)

    @property
    def _http(self) -> httpx.Client:
        client = self._http_client
        if client is None:
            with self._http_lock:
                client = self._http_client
                if client is None:
                    client = self._http_client = httpx.Client(
                        auth=TokenAuth(self.token_source),
                        verify=self._tls,
                        timeout=self.timeout,
                        transport=self._transport,
                        headers={"Accept": "application/json", "User-Agent": f"glancecache-client/{__version__}"},
                        follow_redirects=False,
                    )
                    if isinstance(getattr(client, "_cookies", None), httpx.Cookies):
                        client._cookies = _SetCookiesOnly(client._cookies)  # httpx offers no other way to set it
                    if self._closed:
                        client.close()  # closed before its first request: httpx refuses to send, as it always did
        return client

    # -- context management -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._http_lock:
            self._closed = True
            client = self._http_client
        if client is not None:
            client.close()
        else:
            self._transport.close()  # what closing the httpx client would have done

    def __enter__(self) -> CacheClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CacheClient({self.endpoint!r})"

    # -- the cache API --------------------------------------------------------------------------------------

    def list(self) -> CacheState:
        """Cached images and queued ids on this node (``GET /v2/cache``)."""
        return self.listing_later()()

    @overload
    def listing_later(self) -> Callable[[], CacheState]: ...

    @overload
    def listing_later(self, build: Callable[[object, str], T]) -> Callable[[], T]: ...

    def listing_later(self, build: Callable[[object, str], Any] = CacheState.from_api) -> Callable[[], Any]:
        """:meth:`list` in two halves: the requests now, the parsing when the returned function is called.

        A fan-out over large caches fetches every node at once in worker threads but parses (and holds) one listing
        at a time in the thread that writes them out: bodies wait, not 16 parsed listings. The function raises what
        :meth:`list` would. Without discovery yet, ``GET /v2/cache`` is asked straight away: only a 200 carrying a
        valid listing settles that the node is modern (saving discovery's round trip); a refusal (401/403) is
        raised as it is; any other answer goes through discovery and the usual path, so a legacy node, a node
        without the cache or a plain web server gets the same errors as if discovery had come first.

        ``build(body, endpoint)`` makes the result of the decoded body and judges it, raising ValueError (or
        TypeError) when it is not a listing: :meth:`CacheState.from_api` unless another is given, such as
        :func:`glancecache_client.views.listing_rows` (display rows, without a model object per entry), which
        must accept and refuse exactly the bodies ``CacheState.from_api`` does.
        """
        if self._mode is None:
            response = self._send("GET", self._cache_base)
            if response.status_code in (401, 403):
                raise self._api_error(response)  # the credentials or the policy: discovery would change nothing
            if response.status_code == 200:
                return functools.partial(self._first_listing, build, response)
        if self._require(CACHE_API, "listing the cache") == _Mode.LEGACY:
            cached = self._json("GET", self._root + "/v2/cached_images", ok=(200,))
            queued = self._json("GET", self._root + "/v2/queued_images", ok=(200,))
            legacy_body = {
                "cached_images": self._field(cached, "cached_images", "/v2/cached_images"),
                "queued_images": self._field(queued, "queued_images", "/v2/queued_images"),
            }
            state = self._parse(build, legacy_body, "GET", "/v2/cached_images")
            return lambda: state
        return functools.partial(self._parsed_listing, build, self._request("GET", self._cache_base, ok=(200,)))

    def _first_listing(self, build: Callable[[object, str], T], response: httpx.Response) -> T:
        """A 200 to the listing asked before discovery: the node is modern if it is a valid listing, else discover."""
        try:
            with _PARSING:
                state = build(_loads(response.content), self.endpoint)
        except (ValueError, TypeError, OverflowError):
            self._discover()
            return self.listing_later(build)()
        with self._discovery_lock:
            if self._mode is None:
                self._mode = _Mode.MODERN  # the versions are fetched if an operation beyond 2.14 needs them
        return state

    def _parsed_listing(self, build: Callable[[object, str], T], response: httpx.Response) -> T:
        with _PARSING:
            try:
                body = _loads(response.content)
            except ValueError:
                raise self._invalid("GET", "/v2/cache", "the response body is not valid JSON", response) from None
            return self._parse(build, body, "GET", "/v2/cache")

    def queue(self, image_id: str) -> None:
        """Queue an active image for immediate caching on this node (``PUT /v2/cache/{id}``)."""
        image_id = validate_image_id(image_id)
        if self._require(CACHE_API, "queueing an image") == _Mode.LEGACY:
            self._request("PUT", f"{self._root}/v2/queued_images/{image_id}", ok=(200, 204))
            return
        # Yoga answered 200, Zed and later 202: accept both (spec §7.15).
        self._request("PUT", f"{self._cache_base}/{image_id}", ok=(200, 202))

    def delete(self, image_id: str) -> None:
        """Remove an image from this node's cache and queue (``DELETE /v2/cache/{id}``)."""
        image_id = validate_image_id(image_id)
        if self._require(CACHE_API, "deleting a cache entry") == _Mode.LEGACY:
            state = self.list()
            if not state.is_cached(image_id) and image_id not in state.queued:
                raise errors.NotFound(
                    node=self.endpoint,
                    status=404,
                    explanation=f"Image {image_id} is neither cached nor queued.",
                    method="DELETE",
                    path=f"/v2/cached_images/{image_id}",
                )
            self._request("DELETE", f"{self._root}/v2/cached_images/{image_id}", ok=(200, 204))
            self._request("DELETE", f"{self._root}/v2/queued_images/{image_id}", ok=(200, 204))
            return
        self._request("DELETE", f"{self._cache_base}/{image_id}", ok=(200, 204))

    def clear(self, target: str | ClearTarget = ClearTarget.BOTH) -> ClearResult:
        """Empty this node's cache, queue or both, and report how many entries went.

        ``both`` sends no ``x-image-cache-clear-target`` header (Glance 33 rejects the value). Glance's 204 drops
        the counts it computes, so they are derived from a listing before and after.
        """
        try:
            parsed = ClearTarget.parse(target)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc), node=self.endpoint) from None
        if self._require(CACHE_API, "clearing the cache") == _Mode.LEGACY:
            return self._legacy_clear(parsed)
        before = self._listing_if_allowed()
        headers = {}
        if parsed.header_value is not None:
            headers["x-image-cache-clear-target"] = parsed.header_value
        self._request("DELETE", self._cache_base, ok=(200, 204), headers=headers)
        after = self._listing_if_allowed() if before is not None else None
        if before is None or after is None:
            return ClearResult(cached=None, queued=None, node=self.endpoint)
        still_cached = {image.image_id for image in after.cached}
        return ClearResult(
            cached=sum(1 for image in before.cached if image.image_id not in still_cached),
            queued=sum(1 for image_id in before.queued if image_id not in after.queued),
            node=self.endpoint,
        )

    def _listing_if_allowed(self) -> CacheState | None:
        """The listing, or None when the node's policy refuses it (clear needs only cache_delete)."""
        try:
            return self.list()
        except errors.Forbidden:
            return None

    def image_id_named(self, name: str) -> str:
        """The id of the one image called ``name`` (``GET /v2/images?name=``), as OSC resolves image names.

        Raises NotFound when no image has that name and InvalidInput when several do (give the id instead).
        """
        path = "/v2/images"
        body = self._json("GET", str(httpx.URL(f"{self._root}{path}", params={"name": name, "limit": 2})), ok=(200,))
        images = body.get("images") if isinstance(body, dict) else None
        if not isinstance(images, list) or not all(
            isinstance(i, dict) and isinstance(i.get("id"), str) for i in images
        ):
            raise self._invalid("GET", path, "expected a JSON object with a list of images")
        if not images:
            raise errors.NotFound(
                node=self.endpoint,
                status=404,
                explanation=f"no image is named {name!r} (and it is not an image ID)",
                method="GET",
                path=path,
            )
        if len(images) > 1:
            raise errors.InvalidInput(
                f"more than one image is named {name!r}: give the image ID instead", node=self.endpoint
            )
        return validate_image_id(images[0]["id"])

    def images_tagged(self, tag: str, *, page_size: int | None = None) -> builtins.list[str]:
        """The ids of every active image carrying ``tag`` (``GET /v2/images?tag=``), following each ``next`` link,
        hidden images (``os_hidden``) included.

        Glance leaves hidden images out of a listing unless asked for them with ``os_hidden=true``, which then
        lists only those; an operator naming a tag means every image carrying it, so both listings are read.
        Glance pages every listing (25 images by default, at most ``api_limit_max``); ``page_size`` asks for
        another page size (None: the server's default).
        """
        found: dict[str, None] = {}
        for hidden in (False, True):
            params: dict[str, str | int] = {"tag": tag, "status": "active", "visibility": "all"}
            if hidden:
                params["os_hidden"] = "true"
            if page_size is not None:
                params["limit"] = page_size
            found.update(dict.fromkeys(self._tagged_pages(tag, params)))
        return builtins.list(found)

    def _tagged_pages(self, tag: str, params: dict[str, str | int]) -> Iterator[str]:
        path = "/v2/images"
        url: str | None = str(httpx.URL(f"{self._root}{path}", params=params))
        seen: set[str] = set()
        while url is not None:
            if url in seen:  # a node that links back to a page it gave would otherwise loop forever
                raise self._invalid("GET", path, "the 'next' link repeats a page already read")
            seen.add(url)
            body = self._json("GET", url, ok=(200,))
            images = body.get("images") if isinstance(body, dict) else None
            following = body.get("next") if isinstance(body, dict) else None
            if not isinstance(images, list) or not all(
                isinstance(i, dict) and isinstance(i.get("id"), str) for i in images
            ):
                raise self._invalid("GET", path, "expected a JSON object with a list of images")
            if following is not None and not (isinstance(following, str) and following.startswith(path + "?")):
                raise self._invalid("GET", path, "the 'next' link is not a /v2/images query")
            for image in images:
                if image.get("status") == "active" and tag in (image.get("tags") or ()):
                    yield validate_image_id(image["id"])
            url = self._root + following if following and images else None

    def clean(self) -> None:
        """Remove invalid and stalled files from this node's cache (``POST /v2/cache/clean``, API 2.18)."""
        self._require(CLEAN_PRUNE_API, "cleaning the cache")
        self._request("POST", f"{self._cache_base}/clean", ok=(200, 204))

    def prune(self) -> PruneResult:
        """Shrink this node's cache to its configured maximum, least recently used first (API 2.18)."""
        self._require(CLEAN_PRUNE_API, "pruning the cache")
        body = self._json("POST", f"{self._cache_base}/prune", ok=(200,))
        return self._parse(PruneResult.from_api, body, "POST", "/v2/cache/prune")

    def nodes(self, image_id: str) -> builtins.list[str]:
        """URLs of every node holding the image, from the centralized registry (``GET /v2/cache/nodes/{id}``)."""
        image_id = validate_image_id(image_id)
        if self._require(CACHE_API, "listing the nodes that cache an image") == _Mode.LEGACY:
            raise errors.UnsupportedFeature(self.endpoint, "listing the nodes that cache an image", CACHE_API)
        body = self._json("GET", f"{self._cache_base}/nodes/{image_id}", ok=(200,))
        if not isinstance(body, list) or not all(isinstance(url, str) and url.isprintable() for url in body):
            raise self._invalid("GET", "/v2/cache/nodes", "expected a JSON list of node URLs")
        return [str(url) for url in body]

    def wait_cached(self, image_id: str, timeout: float = 300.0, interval: float = 1.0) -> CachedImage:
        """Poll this node's listing until the image is cached; raises CacheWaitTimeout after ``timeout`` s.

        ``timeout`` bounds the whole wait, the requests in it included. On a pre-Yoga node, where only
        glance-cache-prefetcher run from cron caches queued images, raises CannotWait at once.
        """
        image_id = validate_image_id(image_id)
        timeout = validate_seconds(timeout)
        interval = validate_seconds(interval, "interval")
        deadline = time.monotonic() + timeout
        with bounded(deadline):
            while True:
                try:
                    self.check_can_wait()
                    state = self.list()
                except errors.RequestTimeout:
                    if not passed(deadline):
                        raise
                    raise errors.CacheWaitTimeout(self.endpoint, image_id, timeout) from None
                for image in state.cached:
                    if image.image_id == image_id:
                        return image
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise errors.CacheWaitTimeout(self.endpoint, image_id, timeout)
                time.sleep(min(interval, remaining))

    def check_can_wait(self) -> None:
        """Raise CannotWait when waiting for a queued image to be cached is pointless on this node: a pre-Yoga
        node caches queued images only when glance-cache-prefetcher runs (from cron), not on demand."""
        if self._require(CACHE_API, "waiting for an image to be cached") == _Mode.LEGACY:
            raise errors.CannotWait(self.endpoint)

    # -- discovery ----------------------------------------------------------------------------------------

    @property
    def versions(self) -> frozenset[str]:
        """API versions this node advertises as usable, e.g. ``{"2.14", ..., "2.18"}`` (discovered once)."""
        self._discover(versions_needed=True)
        assert self._versions is not None
        return self._versions

    def _discover(self, *, versions_needed: bool = False) -> str:
        """The node's mode, discovered once; ``versions_needed`` also fetches the versions when a direct listing
        (see ``listing_later``) already settled the mode without them."""
        with self._discovery_lock:
            if self._mode is not None and (self._versions is not None or not versions_needed):
                return self._mode
            versions = self._fetch_versions()
            self._versions = versions
            if self._mode is not None:
                return self._mode
            if CACHE_API in versions or self._admin_listener:
                self._mode = _Mode.MODERN
            elif self._has_legacy_endpoints():
                self._mode = _Mode.LEGACY
            else:
                raise errors.UnsupportedFeature(self.endpoint, "the image cache API", CACHE_API)
            return self._mode

    def _fetch_versions(self) -> frozenset[str]:
        """The usable API versions; anything but Glance's versions document means this is no image node."""
        response = self._send("GET", self._root + "/versions", auth=False)
        if response.status_code in (401, 403) or response.status_code >= 500:
            raise self._api_error(response)
        if response.status_code not in (200, 300):
            raise errors.NotAnImageNode(self.endpoint, f"GET /versions answered HTTP {response.status_code}")
        try:
            body = _loads(response.content)
        except ValueError:
            raise errors.NotAnImageNode(self.endpoint, "GET /versions did not answer JSON") from None
        entries = body.get("versions") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not entries:
            raise errors.NotAnImageNode(self.endpoint, "GET /versions did not answer a list of API versions")
        versions = {
            entry["id"].lstrip("v")
            for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and str(entry.get("status")) in _USABLE
        }
        if not any(version == "2" or version.startswith("2.") for version in versions):
            raise errors.NotAnImageNode(self.endpoint, "GET /versions lists no usable Image API v2 version")
        return frozenset(versions)

    def _has_legacy_endpoints(self) -> bool:
        response = self._send("GET", self._root + "/v2/cached_images")
        if response.status_code in (401, 403):
            raise self._api_error(response)
        return response.status_code == 200

    def _require(self, version: str, feature: str) -> str:
        # A modern node has CACHE_API by definition; only later versions need the versions document.
        beyond_cache_api = version != CACHE_API
        mode = self._discover(versions_needed=beyond_cache_api and not self._admin_listener)
        if beyond_cache_api and mode == _Mode.LEGACY:
            raise errors.UnsupportedFeature(self.endpoint, feature, version)
        if beyond_cache_api and not self._admin_listener and version not in (self._versions or ()):
            raise errors.UnsupportedFeature(self.endpoint, feature, version)
        return mode

    # -- deprecated endpoints -----------------------------------------------------------------------------

    def _legacy_clear(self, target: ClearTarget) -> ClearResult:
        cached = queued = 0
        if target in (ClearTarget.BOTH, ClearTarget.CACHE):
            cached = self._num_deleted("/v2/cached_images")
        if target in (ClearTarget.BOTH, ClearTarget.QUEUE):
            queued = self._num_deleted("/v2/queued_images")
        return ClearResult(cached=cached, queued=queued, node=self.endpoint)

    def _num_deleted(self, path: str) -> int:
        body = self._json("DELETE", self._root + path, ok=(200,))
        value = body.get("num_deleted") if isinstance(body, dict) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._invalid("DELETE", path, "expected a JSON object with a count num_deleted")
        return value

    def _field(self, body: object, name: str, path: str) -> object:
        if not isinstance(body, dict) or name not in body:
            raise self._invalid("GET", path, f"expected a JSON object with {name}")
        return body[name]

    # -- HTTP plumbing ------------------------------------------------------------------------------------

    def _json(self, method: str, url: str, *, ok: tuple[int, ...]) -> object:
        response = self._request(method, url, ok=ok)
        try:
            return _loads(response.content)
        except ValueError:
            raise self._invalid(method, _path(url), "the response body is not valid JSON", response) from None

    def _request(
        self, method: str, url: str, *, ok: tuple[int, ...], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        response = self._send(method, url, headers=headers)
        if response.status_code not in ok:
            if response.status_code == 404 and b"not supported at this site" in response.content:
                # The cache is disabled although discovery said otherwise (e.g. config changed since).
                raise errors.UnsupportedFeature(self.endpoint, "the image cache API", CACHE_API)
            raise self._api_error(response)
        return response

    def _send(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, auth: bool = True
    ) -> httpx.Response:
        """One request, its whole body read, within ``timeout`` overall. Every failure becomes this node's
        GlanceCacheError: whatever the node sends, no httpx (or other) exception escapes."""
        started = time.perf_counter()
        request = self._http.build_request(method, url, headers=headers)
        deadline = time.monotonic() + self.timeout
        early = self._early
        if early is not None and early[0] == threading.get_ident():
            self._early = None  # this request takes the early connection: its time counts
            deadline = min(deadline, early[1])
        try:
            with bounded(deadline):
                if auth:
                    response = self._http.send(request, stream=True)
                else:
                    response = self._http.send(request, stream=True, auth=None)
                try:
                    response.read()
                except httpx.DecodingError as exc:
                    encoding = response.headers.get("content-encoding", "")
                    raise self._invalid(
                        method, _path(url), f"the body is not valid {encoding or 'encoded'} data", response
                    ) from exc
                finally:
                    response.close()
        except httpx.TimeoutException as exc:
            raise errors.RequestTimeout(
                f"no complete answer within the {self.timeout:g} s timeout ({_describe(exc)})", node=self.endpoint
            ) from exc
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.endpoint) from exc
        except httpx.HTTPError as exc:  # DecodingError before the body (e.g. in the auth flow)
            raise errors.ProtocolFailure(f"unusable answer: {_describe(exc)}", node=self.endpoint) from exc
        except Exception as exc:
            if not type(exc).__module__.startswith("keystoneauth1"):
                raise
            raise errors.IdentityFailure(
                f"getting a token failed: {_shorten(_describe(exc))}", node=self.endpoint
            ) from exc
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.perf_counter() - started) * 1000
            log.debug(
                "%s %s -> %s in %.1f ms; request headers %s; request id %s",
                method,
                url,
                response.status_code,
                elapsed,
                _redacted(response.request.headers),
                response.headers.get("x-openstack-request-id", "-"),
            )
        return response

    def _api_error(self, response: httpx.Response) -> errors.APIError:
        cls = errors.error_for_status(response.status_code)
        error = cls(
            node=self.endpoint,
            status=response.status_code,
            explanation=errors.explanation_from_body(response.content, response.headers.get("content-type", "")),
            request_id=_request_id(response),
            method=response.request.method,
            path=_path(str(response.request.url)),
        )
        if isinstance(error, errors.Unauthorized):
            error.credentials = _credentials(self.token_source)
        return error

    def _invalid(
        self, method: str, path: str, what: str, response: httpx.Response | None = None
    ) -> errors.InvalidResponse:
        return errors.InvalidResponse(
            node=self.endpoint,
            status=response.status_code if response is not None else 200,
            explanation=what,
            request_id=_request_id(response) if response is not None else None,
            method=method,
            path=path,
        )

    def _parse(self, build: Callable[[object, str], T], body: object, method: str, path: str) -> T:
        try:
            return build(body, self.endpoint)
        except (ValueError, TypeError, OverflowError) as exc:
            raise self._invalid(method, path, f"unexpected response shape: {_shorten(str(exc))}") from None


class _SetCookiesOnly(httpx.Cookies):
    """httpx's cookie jar, which reads a response only when it sets cookies: httpx hands every response to the
    standard library's cookie parser, about a tenth of the client's work for a listing. (Glance sets none, a load
    balancer's session persistence might: those are kept and sent back as before.)"""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


@functools.lru_cache(maxsize=8)
def _tls_context(verify: bool | str, cert: str | tuple[str, str] | None) -> ssl.SSLContext:
    """One TLS context per (verify, cert), shared by every client: loading a CA bundle costs ~50 ms, which a
    16-node Cluster would otherwise pay 16 times before sending anything.

    An unreadable CA bundle or client certificate is InvalidInput naming the file, raised before any request.
    """
    if isinstance(verify, bool):
        context = httpx.create_ssl_context(verify=verify)
    else:
        # A CA file or directory. Built here because httpx 0.28 deprecates verify=<str> with a warning.
        try:
            if os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            else:
                context = ssl.create_default_context(cafile=verify)
        except OSError as exc:  # ssl.SSLError included: not PEM, no certificate in it
            raise errors.InvalidInput(
                f"cannot use the CA bundle {verify}: {_file_problem(exc)} (give a PEM file of CA certificates)"
            ) from None
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        try:
            context.load_cert_chain(certfile, keyfile)
        except OSError as exc:
            with_key = f" with key {keyfile}" if keyfile else ""
            raise errors.InvalidInput(
                f"cannot use the client certificate {certfile}{with_key}: {_file_problem(exc)} "
                "(give a PEM certificate and its unencrypted PEM key)"
            ) from None
    return context


def _file_problem(exc: OSError) -> str:
    """``No such file or directory`` for a missing file, else OpenSSL's reason (``[SSL] PEM lib (_ssl.c:3926)``)."""
    if exc.strerror and not isinstance(exc, ssl.SSLError):
        return exc.strerror
    return _describe(exc)


@functools.lru_cache(maxsize=1)
def _plaintext_context() -> ssl.SSLContext:
    """For http:// endpoints httpx still wants a context; this one loads no CA bundle and is never used."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _loads(content: bytes) -> object:
    """JSON from a node, or ValueError: undecodable bytes, invalid JSON, nesting too deep to parse."""
    try:
        return json.loads(content)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _request_id(response: httpx.Response) -> str | None:
    return errors.printable(response.headers.get("x-openstack-request-id", "")) or None


def _credentials(source: TokenSource) -> str:
    """What a request carried, for Unauthorized.credentials."""
    if isinstance(source, NoAuth):
        return "none"
    if isinstance(source, StaticToken):
        return "token"
    return "keystone"


def _path(url: str) -> str:
    return httpx.URL(url).path


def _redacted(headers: httpx.Headers) -> dict[str, str]:
    return {name: ("<redacted>" if name.lower() in _SECRET_HEADERS else value) for name, value in headers.items()}


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _transport_error(exc: httpx.TransportError, node: str) -> errors.TransportError:
    """Tell refused connections, DNS failures and TLS failures apart, naming the node."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(_describe(item) for item in chain).lower()
    if any(isinstance(item, ssl.SSLError) for item in chain) or "ssl" in text or "certificate" in text:
        return errors.TLSFailure(f"TLS failed: {_describe(exc)} ({_tls_hint(text)})", node=node)
    if isinstance(exc, httpx.ConnectError):
        if any(isinstance(item, ConnectionRefusedError) for item in chain) or "refused" in text:
            return errors.ConnectionRefused(
                "connection refused: nothing listens there (is glance-api running, is the port right?)",
                node=node,
            )
        if any(
            marker in text
            for marker in (
                "name or service not known",
                "nodename nor servname",
                "name resolution",
                "getaddrinfo",
            )
        ):
            return errors.NameResolutionFailed("the host name does not resolve (check the spelling)", node=node)
    if isinstance(exc, httpx.ProtocolError):
        return errors.ProtocolFailure(
            f"the answer is not valid HTTP: {_shorten(_describe(exc))} (is this a Glance API node?)", node=node
        )
    return errors.TransportError(f"request failed: {_describe(exc)}", node=node)


def _tls_hint(text: str) -> str:
    """What to check. An alert received about a certificate means the node refused ours (it requires a client
    certificate it trusts); anything else, typically "certificate verify failed", means we refused the node's."""
    if "alert" in text and ("certificate" in text or "unknown ca" in text):
        return "the node requires a client certificate it trusts: check --os-cert and --os-key"
    return "check --os-cacert or --insecure"
