"""Fixtures for library tests: a scripted fake Glance node for request-shape checks (httpx.MockTransport), and
``https_nodes`` (tests/tls.py): reference nodes behind real TLS terminators."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.tls import https_nodes  # noqa: F401  (a fixture: noauth nodes behind real TLS, for test_tls.py)

IMAGE = "3c021162-1e38-461a-a362-e154bf54e241"
OTHER = "a49e0e60-a9d5-425d-accd-2db1728b865d"


def versions_doc(*ids: str) -> dict[str, object]:
    return {
        "versions": [
            {"id": f"v{v}", "status": "CURRENT" if i == 0 else "SUPPORTED", "links": []} for i, v in enumerate(ids)
        ]
    }


MODERN = versions_doc("2.18", "2.17", "2.16", "2.15", "2.14", "2.9", "2.0")
NO_CLEAN = versions_doc("2.17", "2.16", "2.15", "2.14", "2.0")
NO_CACHE = versions_doc("2.15", "2.9", "2.17", "2.0")


@dataclass
class FakeNode:
    """Answers requests from a route table and records every request it saw."""

    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, status: int = 200, body: object = None, **headers: str) -> None:
        def reply(_: httpx.Request) -> httpx.Response:
            if body is None:
                return httpx.Response(status, headers=headers)
            if isinstance(body, (bytes, str)):
                return httpx.Response(status, content=body, headers=headers)
            return httpx.Response(
                status, content=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
            )

        self.routes[(method, path)] = reply

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return httpx.Response(404, content=b"no route", headers={"content-type": "text/plain"})
        return route(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def calls(self, method: str | None = None, path: str | None = None) -> list[httpx.Request]:
        return [r for r in self.seen if (method is None or r.method == method) and (path is None or r.url.path == path)]


@pytest.fixture
def node() -> FakeNode:
    fake = FakeNode()
    fake.on("GET", "/versions", 200, MODERN)
    return fake
