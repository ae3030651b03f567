"""Hostile input to the built-in Identity v3 service: whatever arrives, the answer is a Keystone-shaped 4xx
(400 for a malformed request, 401 for bad credentials), never a 500 and never a traceback in the log.

Real HTTP to a real keystone-mode node; Hypothesis with a fixed, derandomized profile (quick and the same
on every run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .fuzzing import assert_no_tracebacks, fuzz
from .fuzzing import json_values as any_json

FUZZ = fuzz(150)
json_values = any_json(12)
METHOD_NAMES = st.sampled_from(["password", "token", "application_credential", "totp", "", "PASSWORD"])


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The well-formed shape most of the time, any JSON value (or absent) otherwise."""
    return st.one_of(value, value, json_values)


def _domain() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional={"id": _maybe(st.just("default")), "name": _maybe(st.just("Default"))})


def _scope() -> st.SearchStrategy[Any]:
    project = st.fixed_dictionaries(
        {},
        optional={
            "id": _maybe(st.text(max_size=40)),
            "name": _maybe(st.sampled_from(["admin", "demo", "nope"])),
            "domain": _maybe(_domain()),
        },
    )
    return _maybe(st.fixed_dictionaries({}, optional={"project": _maybe(project), "domain": json_values}))


def _user() -> st.SearchStrategy[Any]:
    return _maybe(
        st.fixed_dictionaries(
            {},
            optional={
                "name": _maybe(st.sampled_from(["admin", "demo", "ghost"])),
                "id": json_values,
                "password": _maybe(st.sampled_from(["admin", "wrong", "\ud800", "admin\x00"])),
                "domain": _maybe(_domain()),
            },
        )
    )


auth_bodies = st.fixed_dictionaries(
    {},
    optional={
        "auth": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "identity": _maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "methods": _maybe(st.lists(_maybe(METHOD_NAMES), max_size=3)),
                                "password": _maybe(st.fixed_dictionaries({}, optional={"user": _user()})),
                                "token": _maybe(st.fixed_dictionaries({}, optional={"id": json_values})),
                                "application_credential": _maybe(
                                    st.fixed_dictionaries(
                                        {},
                                        optional={
                                            "id": json_values,
                                            "name": _maybe(st.just("admin-appcred")),
                                            "secret": _maybe(st.sampled_from(["admin-appcred-secret", "x", "\udc80"])),
                                            "user": _user(),
                                        },
                                    )
                                ),
                            },
                        )
                    ),
                    "scope": _scope(),
                },
            )
        )
    },
)
raw_bodies = st.one_of(
    auth_bodies.map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b'{"auth": NaN}'),
)
# Field values as a client may send them (HTTP strips blanks at either end, so none are generated).
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
).map(lambda text: text.strip(" "))
PATHS = ["/identity", "/identity/", "/identity/v3", "/identity/v3/", "/identity/v3/auth/tokens", "/identity/v3/x"]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(1, auth="keystone", data_dir=tmp_path_factory.mktemp("fuzz-keystone")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def _keystone_error(response: httpx.Response) -> None:
    assert response.status_code != 500, response.text
    if response.status_code >= 400 and response.request.method != "HEAD":
        error = response.json()["error"]
        assert error["code"] == response.status_code and isinstance(error["message"], str)


def test_the_reported_attribute_error_is_a_400(keystone: ReferenceCluster, client: httpx.Client) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": "x"}}}
    response = client.post(f"{keystone.identity_url}/auth/tokens", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["title"] == "Bad Request"


def test_wrong_password_is_401_and_good_one_201(keystone: ReferenceCluster, client: httpx.Client) -> None:
    def body(password: str) -> dict[str, Any]:
        user = {"name": "admin", "domain": {"id": "default"}, "password": password}
        return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}

    assert client.post(f"{keystone.identity_url}/auth/tokens", json=body("wrong")).status_code == 401
    assert client.post(f"{keystone.identity_url}/auth/tokens", json=body("admin")).status_code == 201


@FUZZ
@given(body=raw_bodies, content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; x"]))
def test_token_requests_never_500(
    keystone: ReferenceCluster, client: httpx.Client, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str
) -> None:
    caplog.clear()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(f"{keystone.urls[0]}/identity/v3/auth/tokens", content=body, headers=headers)
    _keystone_error(response)
    assert response.status_code in (201, 400, 401, 413), response.text
    assert_no_tracebacks(caplog)


@FUZZ
@given(
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PATHS),
    auth_token=st.none() | header_values | st.just("0" * 64),
    subject_token=st.none() | header_values | st.just("f" * 64),
    body=st.none() | raw_bodies,
)
def test_every_identity_route_never_500(
    keystone: ReferenceCluster,
    client: httpx.Client,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    auth_token: str | None,
    subject_token: str | None,
    body: bytes | None,
) -> None:
    caplog.clear()
    headers: list[tuple[bytes, bytes]] = []  # latin-1 bytes: any octet a client can put in a header
    if auth_token is not None:
        headers.append((b"X-Auth-Token", auth_token.encode("latin-1")))
    if subject_token is not None:
        headers.append((b"X-Subject-Token", subject_token.encode("latin-1")))
    response = client.request(method, keystone.urls[0] + path, headers=headers, content=body)
    _keystone_error(response)
    assert_no_tracebacks(caplog)


def test_identity_reads_requests_through_the_shared_request_helpers() -> None:
    # One way to read headers, the addressed URL and the body, for every route: identity has no copy of its own.
    from pathlib import Path

    from glancecache_client.server.http import identity

    source = Path(identity.__file__).read_text()
    for raw_access in ('environ.get("HTTP_', "wsgi.input", "CONTENT_LENGTH", "HTTP_HOST", "SERVER_NAME"):
        assert raw_access not in source, raw_access
