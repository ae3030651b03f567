"""Serving the metrics over HTTP: ``/metrics`` in Prometheus' text format, a short page at ``/``, 404 elsewhere.

A threading WSGI server from the standard library, as prometheus-client's own ``start_http_server`` uses, but
run in the caller's thread so that the command stops cleanly on SIGTERM, and quiet: no access log line per
scrape.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["DEFAULT_LISTEN", "bind", "metrics_app", "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:9480"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

LANDING = b"""<html><head><title>glancecache-exporter</title></head>
<body><h1>glancecache-exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>
"""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (every IPv4 address) to (host, port); ValueError otherwise."""
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--listen {text!r}: give HOST:PORT, e.g. {DEFAULT_LISTEN} (or [::1]:9480, or :9480)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"--listen {text!r}: put an IPv6 address in brackets, e.g. [::1]:9480")
    return host or "0.0.0.0", int(port_text)


def metrics_app(registry: CollectorRegistry) -> WsgiApp:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [LANDING]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found: the metrics are at /metrics\n"]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress does not keep the process alive on shutdown


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def bind(listen: tuple[str, int], app: WsgiApp) -> WSGIServer:
    """A server bound to ``listen`` (OSError if the address is taken or not this machine's); call
    ``serve_forever()`` on it."""
    host, port = listen
    server_class = _IPv6Server if ":" in host else _Server
    return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
