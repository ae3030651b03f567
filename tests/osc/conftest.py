"""Fixtures for the plugin's unit tests: cliff commands on a fake ``client_manager`` over scripted nodes.

The commands run for real (real cliff parsers and formatters, real Cluster and CacheClient); only the HTTP
answers are scripted, with httpx.MockTransport, so the tests can check the exact requests sent. End-to-end
behaviour against the reference server with the real ``openstack`` command is in test_end_to_end.py, and over
real HTTPS (``https_nodes``, tests/tls.py) in test_tls.py.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cliff import command

from glancecache_client.auth import StaticToken, TokenSource
from osc_plugin.plugin import ImageCacheAPI
from tests.tls import https_nodes  # noqa: F401  (a fixture, for test_tls.py)

IMAGE = "3c021162-1e38-461a-a362-e154bf54e241"
OTHER = "a49e0e60-a9d5-425d-accd-2db1728b865d"
THIRD = "0b5d0f3e-51b4-4c39-9d1c-5b37e2f4b9c1"
NODE_A = "http://node-a:9292"
NODE_B = "http://node-b:9292"
CATALOG = "http://lb.example:9292"

MODERN: dict[str, Any] = {
    "versions": [
        {"id": f"v{v}", "status": "CURRENT" if i == 0 else "SUPPORTED", "links": []}
        for i, v in enumerate(("2.18", "2.17", "2.16", "2.15", "2.14", "2.0"))
    ]
}


def reply(status: int, body: object = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
    )


def cache_body(cached: Sequence[tuple[str, int, int]] = (), queued: Sequence[str] = ()) -> dict[str, Any]:
    """A GET /v2/cache body: cached entries as (image id, size, hits)."""
    return {
        "cached_images": [
            {"image_id": i, "size": s, "hits": h, "last_accessed": 1700000000.5 if h else 0,
             "last_modified": 1699990000}
            for i, s, h in cached
        ],
        "queued_images": list(queued),
    }


@dataclass
class FakeNode:
    """Answers from a route table (successive answers per route, the last one repeated); records requests."""

    url: str
    routes: dict[tuple[str, str], list[httpx.Response]] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.on("GET", "/versions", reply(200, MODERN))

    def on(self, method: str, path: str, *answers: httpx.Response) -> FakeNode:
        self.routes[(method, path)] = list(answers)
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, content=b"404 Not Found\n\nno route\n", headers={"content-type": "text/plain"})
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def calls(self, method: str | None = None, path: str | None = None) -> list[httpx.Request]:
        return [
            r
            for r in self.seen
            if r.url.path != "/versions"
            and (method is None or r.method == method)
            and (path is None or r.url.path == path)
        ]


class FakeAPI(ImageCacheAPI):
    """The real ImageCacheAPI (endpoint resolution, Cluster building and all), with each node's HTTP answered by
    a FakeNode through the Cluster's transport factory and OSC's token stood in for by a static one."""

    def __init__(self, nodes: dict[str, FakeNode], catalog_endpoint: str | None = CATALOG) -> None:
        self.resolved = 0

        def resolve() -> str | None:
            self.resolved += 1
            return catalog_endpoint

        super().__init__(
            session=None,  # type: ignore[arg-type]
            resolve_endpoint=resolve,
            transport_factory=lambda url: httpx.MockTransport(self.node(url).handler),
        )
        self.nodes = nodes

    def token_source(self) -> TokenSource:
        return StaticToken("osc-token")

    def node(self, url: str) -> FakeNode:
        if url not in self.nodes:
            self.nodes[url] = FakeNode(url)
        return self.nodes[url]


class FakeApp:
    """What a cliff command needs from OSC's app: client_manager, stdout, stderr, options."""

    def __init__(self, api: ImageCacheAPI) -> None:
        self.client_manager = type("ClientManager", (), {"image_cache": api})()
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.options = argparse.Namespace(verbose_level=1)


@dataclass
class Harness:
    api: FakeAPI
    app: FakeApp

    def node(self, url: str) -> FakeNode:
        return self.api.node(url)

    def command(self, cls: type[command.Command]) -> command.Command:
        return cls(self.app, None)  # type: ignore[arg-type]

    @property
    def stderr_lines(self) -> list[str]:
        return self.app.stderr.getvalue().splitlines()


@pytest.fixture
def harness() -> Harness:
    api = FakeAPI({})
    return Harness(api=api, app=FakeApp(api))


class ParserError(Exception):
    """The command's parser rejected the arguments (argparse exits; this carries its message)."""


def check_parser(
    cmd: command.Command, arglist: list[str], verifylist: list[tuple[str, Any]]
) -> argparse.Namespace:
    """Parse like OSC's test helper: fail on a parse error, then compare each (attribute, expected) pair."""
    parser = cmd.get_parser("check_parser")
    stderr = io.StringIO()
    parser._print_message = lambda message, file=None: stderr.write(message or "")  # type: ignore[method-assign,assignment]
    try:
        parsed = parser.parse_args(arglist)
    except SystemExit:
        raise ParserError(stderr.getvalue()) from None
    for attr, expected in verifylist:
        assert getattr(parsed, attr) == expected, f"{attr}: {getattr(parsed, attr)!r} != {expected!r}"
    return parsed


def run_display(cmd: command.Command, parsed: argparse.Namespace, app: FakeApp) -> Any:
    """Run a Lister through cliff's own run() (formatters, -c, sorting) and return its stdout, parsed if JSON."""
    cmd.run(parsed)
    text = app.stdout.getvalue()
    return json.loads(text) if parsed.formatter == "json" else text

