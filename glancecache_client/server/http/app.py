"""The WSGI application of one node: version negotiation, authentication, routing, and sending replies.

Owns: the route table (werkzeug ``Map``/``Rule``; each path names its methods in the order Glance's
``Allow`` header lists them), the request pipeline in Glance's order (``/versions`` and 300 replies
before authentication, 401 before routing, ``x-openstack-request-id`` on every reply that passed the
context middleware), GET-with-a-body rejection, the optional cache admin listener's ``/cache`` routes,
streaming bodies (files in chunks), and the access log: one line per request once its
response is finished (node, method, path without the query, status, bytes sent, seconds, request id, user and
project; never a header or query value, so never a token). Handlers live in ``image_api``, ``cache_api``
and ``schema_api``; error pages in ``faults``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule

from ..logs import ACCESS_LOGGER, event
from . import cache_api, image_api, schema_api
from .context import Authenticator, RequestContext
from .faults import NOT_FOUND_TEXT, SERVER_ERROR_TEXT, HTTPError, Reply, error_reply
from .request import ApiRequest, Node, Request, host_url
from .versions import negotiate, version_list, versions_document

if TYPE_CHECKING:
    from .identity import IdentityService

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)
CONTEXT_KEY = "glancecache.context"  # the authenticated caller, for the access line

Handler = Callable[..., Reply]
# resource name -> {method: handler}, in the order Glance's Allow header lists the methods.
Resources = dict[str, dict[str, Handler]]

IMAGE_RESOURCES: Resources = {
    "images": {"GET": image_api.list_images, "POST": image_api.create_image},
    "image": {"GET": image_api.show_image, "DELETE": image_api.delete_image},
    "image_file": {"GET": image_api.download_image, "PUT": image_api.upload_image},
    "image_deactivate": {"POST": image_api.deactivate_image},
    "image_reactivate": {"POST": image_api.reactivate_image},
    "schema": {"GET": schema_api.show_schema},
}
CACHE_RESOURCES: Resources = {
    "cache": {"GET": cache_api.get_cache, "DELETE": cache_api.clear_cache},
    "cache_entry": {"DELETE": cache_api.delete_cache_entry, "PUT": cache_api.queue_image},
    "cache_nodes": {"GET": cache_api.cached_nodes},
    "cache_clean": {"POST": cache_api.clean_cache},
    "cache_prune": {"POST": cache_api.prune_cache},
}
# The cachemanage middleware only intercepts the methods it knows; others fall through to a 404.
LEGACY_RESOURCES: Resources = {
    "legacy_cached": {"GET": cache_api.legacy_list_cached, "DELETE": cache_api.legacy_delete_all_cached},
    "legacy_cached_entry": {"DELETE": cache_api.legacy_delete_cached},
    "legacy_queued": {"GET": cache_api.legacy_list_queued, "DELETE": cache_api.legacy_delete_all_queued},
    "legacy_queued_entry": {"PUT": cache_api.legacy_queue, "DELETE": cache_api.legacy_delete_queued},
}
# Glance's body_reject routes: any body is a 400.
BODY_REJECTED = {
    ("cache", "GET"), ("cache_nodes", "GET"), ("image", "GET"), ("image", "DELETE"), ("image_file", "GET"),
    ("image_deactivate", "POST"), ("image_reactivate", "POST"), ("schema", "GET"),
}  # fmt: skip
# Handlers that read (or, for the image list, ignore) the body themselves; every other route takes none.
OWN_BODY = {("images", "GET"), ("images", "POST"), ("image_file", "PUT")}

# (path, resource) pairs; werkzeug Rules are bound to one Map, so each app builds its own.
_IMAGE_PATHS = [
    ("/v2/images", "images"),
    ("/v2/images/<image_id>", "image"),
    ("/v2/images/<image_id>/file", "image_file"),
    ("/v2/images/<image_id>/actions/deactivate", "image_deactivate"),
    ("/v2/images/<image_id>/actions/reactivate", "image_reactivate"),
]
_LEGACY_PATHS = [
    ("/v2/cached_images", "legacy_cached"),
    ("/v2/cached_images/<image_id>", "legacy_cached_entry"),
    ("/v2/queued_images", "legacy_queued"),
    ("/v2/queued_images/<image_id>", "legacy_queued_entry"),
]


def _cache_rules(prefix: str) -> list[Rule]:
    # Static segments win over <image_id> in werkzeug as in Routes: /cache/clean is never an image id.
    return [
        Rule(f"{prefix}/cache", endpoint="cache"),
        Rule(f"{prefix}/cache/<image_id>", endpoint="cache_entry"),
        Rule(f"{prefix}/cache/nodes/<image_id>", endpoint="cache_nodes"),
        Rule(f"{prefix}/cache/clean", endpoint="cache_clean"),
        Rule(f"{prefix}/cache/prune", endpoint="cache_prune"),
    ]


def _map(rules: list[Rule]) -> Map:
    return Map(rules, strict_slashes=True, merge_slashes=False, redirect_defaults=False)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


class GlanceApp:
    """One node's Glance-compatible API (or, with ``admin_listener``, its cache admin listener)."""

    def __init__(
        self,
        node: Node,
        authenticator: Authenticator,
        *,
        identity: IdentityService | None = None,
        admin_listener: bool = False,
        added_latency: float = 0.0,
    ) -> None:
        self.node = node
        self.authenticator = authenticator
        self.identity = identity
        self.admin_listener = admin_listener
        self.added_latency = added_latency
        self.versions = version_list(cache_enabled=node.cache_enabled, legacy_only=node.legacy_only)
        self.resources: Resources = {}
        rules: list[Rule] = []
        if admin_listener:
            rules += _cache_rules("")
            self.resources.update(CACHE_RESOURCES)
        else:
            rules += [Rule(path, endpoint=name) for path, name in _IMAGE_PATHS]
            rules += [
                Rule(f"/v2/schemas/{name}", endpoint="schema", defaults={"name": name})
                for name in schema_api.SCHEMA_FILES
            ]
            self.resources.update(IMAGE_RESOURCES)
            if not node.legacy_only:
                rules += _cache_rules("/v2")
                self.resources.update(CACHE_RESOURCES)
            # The cachemanage filter is only in the pipeline of a node with a cache.
            if node.cache_enabled:
                rules += [Rule(path, endpoint=name) for path, name in _LEGACY_PATHS]
                self.resources.update(LEGACY_RESOURCES)
        self.urls = _map(rules).bind("localhost")

    # -- WSGI ------------------------------------------------------------------------------------------

    def node_name(self, environ: dict[str, Any]) -> str:
        """How log lines name this node: its self-reference URL (a node without a cache has none: then the
        URL the client addressed)."""
        engine = self.node.engine
        return engine.node_url if engine is not None else _printable(host_url(environ))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        try:
            reply = self.respond(environ)
        except ConnectionError as exc:
            # The client went away while the request was being read (the listener raises ConnectionResetError
            # from the body stream). Nobody is left to answer; the handler's own clean-up rolled back what it
            # had begun (an upload's image is queued again). One line, no traceback: a client leaving is normal.
            event(log, logging.WARNING, "client_gone", "%s %s: %s", environ.get("REQUEST_METHOD"),
                  environ.get("PATH_INFO"), exc, node=self.node_name(environ))  # fmt: skip
            raise
        except Exception:
            log.exception("Unhandled error serving %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            reply = error_reply(500, SERVER_ERROR_TEXT, environ.get("HTTP_ACCEPT"))
            reply.headers.append(("x-openstack-request-id", new_request_id()))
        start_response(reply.status_line, reply.headers)
        access = _AccessLine(self.node_name(environ), environ, reply, started)
        if environ.get("REQUEST_METHOD") == "HEAD":
            _close_quietly(reply)
            access.finish()
            return []
        if isinstance(reply.body, bytes):
            # A one-item list, so that the server still frames a body without Content-Length by its length.
            return _LoggedBytes(reply.body, access)
        # Files too (cache hits, Range reads) are iterated, never handed to wsgi.file_wrapper: see the listener's
        # docstring for why. A first download's fill commits before its last chunk is handed over.
        return _CountingIterator(iter(reply.body), getattr(reply.body, "close", lambda: None), access)

    # -- pipeline --------------------------------------------------------------------------------------

    def respond(self, environ: dict[str, Any]) -> Reply:
        if self.added_latency:
            time.sleep(self.added_latency)
        path: str = environ.get("PATH_INFO", "") or "/"
        accept = environ.get("HTTP_ACCEPT")
        if self.identity is not None and (path == "/identity" or path.startswith("/identity/")):
            reply = self.identity.handle(Request(environ), path[len("/identity") :])
            reply.headers.append(("x-openstack-request-id", new_request_id()))
            return reply
        if path == "/versions":
            return self._versions_reply(environ, 200)
        if self.admin_listener:
            api_path = path
        elif path == "/":
            return self._versions_reply(environ, 300)
        else:
            negotiated = negotiate(path, accept, self.versions)
            if negotiated is None:
                return self._versions_reply(environ, 300)
            api_path = negotiated
        ctx = self.authenticator.authenticate(environ)
        if ctx is None:
            return self.authenticator.unauthorized(environ)
        environ[CONTEXT_KEY] = ctx
        request_id = new_request_id()
        try:
            reply = self._route(ApiRequest(environ, ctx, self.node, api_path), api_path)
        except HTTPError as exc:
            reply = exc.reply(accept)
        reply.headers.append(("x-openstack-request-id", request_id))
        return reply

    def _versions_reply(self, environ: dict[str, Any], status: int) -> Reply:
        body = versions_document(host_url(environ), self.versions)
        return Reply(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body)

    def _route(self, req: ApiRequest, path: str) -> Reply:
        if path == "/v2" and not self.admin_listener:
            # Glance redirects the bare major version to its (non-existent) root document.
            location = f"{req.host_url}/v2/"
            return Reply(302, [("Content-Type", "text/plain; charset=utf8"), ("Location", location)], b"")
        try:
            resource, args = self.urls.match(path, method=None)
        except NotFound:
            raise HTTPError(404, NOT_FOUND_TEXT) from None
        handlers = self.resources[str(resource)]
        handler = handlers.get(req.method)
        if handler is None and str(resource).startswith("legacy_"):
            raise HTTPError(404, NOT_FOUND_TEXT)
        if (str(resource), req.method) not in OWN_BODY:
            # Before the handler (and before a 405), as Glance's deserializer runs first.
            req.expect_no_body(rejected=(str(resource), req.method) in BODY_REJECTED, handled=handler is not None)
        if handler is None:
            allow = ", ".join(handlers)
            return error_reply(
                405,
                f"The method {req.method} is not allowed for this resource.",
                req.accept,
                router_tail=True,
                extra_headers=[("Allow", allow)],
            )
        return handler(req, **args)


class _AccessLine:
    """The access log line of one request, written once when the server is done with the response."""

    def __init__(self, node: str, environ: dict[str, Any], reply: Reply, started: float) -> None:
        self.node = node
        self.environ = environ
        self.reply = reply
        self.started = started
        self.sent = 0
        self._written = False

    def finish(self) -> None:
        if self._written:
            return
        self._written = True
        if not access_log.isEnabledFor(logging.INFO):
            return  # the line's fields cost a request more than its log call
        environ, seconds = self.environ, round(time.monotonic() - self.started, 6)
        ctx = environ.get(CONTEXT_KEY)
        user = ctx.user_id if isinstance(ctx, RequestContext) else None
        project = ctx.project_id if isinstance(ctx, RequestContext) else None
        method = _printable(str(environ.get("REQUEST_METHOD", "")))
        # The path only: query values (and every header) may carry a token or a password.
        path = _printable(str(environ.get("PATH_INFO", "")))
        request_id = self.reply.header("x-openstack-request-id")
        event(access_log, logging.INFO, "access", "%s %s %d %d bytes %.3f s request_id=%s user=%s project=%s client=%s",
              method, path, self.reply.status, self.sent, seconds, request_id or "-", user or "-", project or "-",
              environ.get("REMOTE_ADDR") or "-",
              node=self.node, method=method, path=path, status=self.reply.status, bytes=self.sent, seconds=seconds,
              request_id=request_id, user=user, project=project, client=environ.get("REMOTE_ADDR"))  # fmt: skip


class _CountingIterator:
    """Iterate ``chunks`` counting the bytes; on ``close`` (the response is done, complete or aborted)
    release the body and write the access line."""

    def __init__(self, chunks: Iterator[bytes], close: Callable[[], None], access: _AccessLine) -> None:
        self._chunks = chunks
        self._close = close
        self._access = access

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self._access.sent += len(chunk)
        return chunk

    def close(self) -> None:
        try:
            self._close()
        finally:
            self._access.finish()


class _LoggedBytes(list[bytes]):
    def __init__(self, body: bytes, access: _AccessLine) -> None:
        super().__init__([body])
        self._access = access

    def close(self) -> None:
        self._access.sent = len(self[0])
        self._access.finish()


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so a request can never forge or split a log line."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _close_quietly(reply: Reply) -> None:
    close = getattr(reply.body, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("Closing a response body failed")
