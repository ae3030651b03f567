"""Application credentials on the built-in Identity v3: Keystone's ``application_credential`` auth method over
real HTTP, the credential's project and roles bounding the token on every node, and users-file validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from glancecache_client.server.config import ConfigError
from glancecache_client.server.http.identity import UsersFileError, load_users_file
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from ...keystone import APP_CREDENTIAL_ID, APP_CREDENTIAL_SECRET

USERS = """\
users:
  - name: ops
    password: ops-password
    projects: {infra: [admin, member], lab: [reader]}
    application_credentials:
      - {name: ci-admin, secret: admin-secret, project: infra, roles: [admin]}
      - {name: ci-member, secret: member-secret, project: infra, roles: [member]}
      - {name: pinned, id: pinned-credential-1, secret: pinned-secret, project: infra}
  - name: other
    password: other-password
    project: infra
    roles: [member]
    application_credentials:
      - {name: ci-admin, secret: other-secret, project: infra}
"""

REFUSED = {
    "error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}
}
SCOPE_REFUSED = {
    "error": {
        "code": 401,
        "message": "Error authenticating with application credential: Application credentials cannot request a scope.",
        "title": "Unauthorized",
    }
}


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(2, auth="keystone", data_dir=tmp_path_factory.mktemp("appcred-defaults")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    home = tmp_path_factory.mktemp("appcred-ops")
    users = home / "users.yaml"
    users.write_text(USERS)
    with run_cluster(2, auth="keystone", users_file=users, data_dir=home / "data") as cluster:
        yield cluster


def tokens_url(cluster: ReferenceCluster, node: int = 0) -> str:
    return f"{cluster.urls[node]}/identity/v3/auth/tokens"


def by_id(credential_id: str, secret: str) -> dict[str, Any]:
    return {"id": credential_id, "secret": secret}


def request(credential: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A POST /v3/auth/tokens body for the application_credential method, as keystoneauth1 sends it."""
    identity = {"methods": ["application_credential"], "application_credential": credential}
    return {"auth": {"identity": identity, **extra}}


def issue(
    http: httpx.Client, cluster: ReferenceCluster, credential: dict[str, Any], node: int = 0
) -> tuple[str, dict[str, Any]]:
    response = http.post(tokens_url(cluster, node), json=request(credential))
    assert response.status_code == 201, response.text
    token: dict[str, Any] = response.json()["token"]
    return response.headers["x-subject-token"], token


def by_id_for(cluster: ReferenceCluster, http: httpx.Client, name: str, secret: str) -> dict[str, Any]:
    """``{"id", "secret"}`` of one of ops' credentials, its id learnt the way a user would (name + user)."""
    named = {"name": name, "secret": secret, "user": {"name": "ops", "domain": {"id": "default"}}}
    credential_id = issue(http, cluster, named)[1]["application_credential"]["id"]
    return by_id(credential_id, secret)


def password_token(
    http: httpx.Client, cluster: ReferenceCluster, user: str, password: str, project: str
) -> dict[str, Any]:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"id": "default"}}},
            },
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }
    }
    response = http.post(tokens_url(cluster), json=body)
    assert response.status_code == 201, response.text
    token: dict[str, Any] = response.json()["token"]
    return token


def test_documented_default_credential_by_id_gives_an_admin_token_for_every_node(
    defaults: ReferenceCluster, http: httpx.Client
) -> None:
    token_id, token = issue(http, defaults, by_id(APP_CREDENTIAL_ID, APP_CREDENTIAL_SECRET), node=1)
    assert token["methods"] == ["application_credential"]
    assert token["application_credential"] == {"id": APP_CREDENTIAL_ID, "name": "admin-appcred", "restricted": True}
    assert token["user"]["name"] == "admin" and token["project"]["name"] == "admin"
    assert [role["name"] for role in token["roles"]] == ["admin"]
    assert [service["type"] for service in token["catalog"]] == ["image", "identity"]
    # Issued by node 1, accepted by both nodes (the token table is cluster-wide).
    for url in defaults.urls:
        response = http.get(f"{url}/v2/cache", headers={"X-Auth-Token": token_id})
        assert response.status_code == 200, response.text


def test_by_name_and_user_name_or_user_id(ops: ReferenceCluster, http: httpx.Client) -> None:
    ops_user_id = password_token(http, ops, "ops", "ops-password", "infra")["user"]["id"]
    by_user_name = {
        "name": "ci-admin",
        "secret": "admin-secret",
        "user": {"name": "ops", "domain": {"name": "Default"}},
    }
    by_user_id = {"name": "ci-admin", "secret": "admin-secret", "user": {"id": ops_user_id}}
    first = issue(http, ops, by_user_name)[1]
    second = issue(http, ops, by_user_id)[1]
    for token in (first, second):
        assert (token["user"]["id"], token["user"]["name"]) == (ops_user_id, "ops")
        assert token["application_credential"]["name"] == "ci-admin"
        assert token["project"]["name"] == "infra"
    assert first["application_credential"]["id"] == second["application_credential"]["id"]
    # Two users may each own a credential of that name: the user picks which one (and its secret).
    other = issue(
        http, ops, {**by_user_name, "secret": "other-secret", "user": {"name": "other", "domain": {"id": "default"}}}
    )[1]
    assert other["user"]["name"] == "other"
    assert other["application_credential"]["id"] != first["application_credential"]["id"]


def test_an_explicit_id_from_the_users_file(ops: ReferenceCluster, http: httpx.Client) -> None:
    token = issue(http, ops, by_id("pinned-credential-1", "pinned-secret"))[1]
    assert token["application_credential"] == {"id": "pinned-credential-1", "name": "pinned", "restricted": True}
    # Given no roles, the credential carries all of the user's roles on its project, as Keystone's does.
    assert sorted(role["name"] for role in token["roles"]) == ["admin", "member"]


@pytest.mark.parametrize(
    "credential",
    [
        by_id(APP_CREDENTIAL_ID, "wrong-secret"),
        by_id(APP_CREDENTIAL_ID, "wrong-sécret"),
        by_id("0" * 32, APP_CREDENTIAL_SECRET),
        {"id": APP_CREDENTIAL_ID},
        {"name": "admin-appcred", "secret": "wrong-secret", "user": {"name": "admin", "domain": {"id": "default"}}},
        {
            "name": "no-such-credential",
            "secret": APP_CREDENTIAL_SECRET,
            "user": {"name": "admin", "domain": {"id": "default"}},
        },
        # The right id and secret, claimed for another user.
        {**by_id(APP_CREDENTIAL_ID, APP_CREDENTIAL_SECRET), "user": {"name": "demo", "domain": {"id": "default"}}},
    ],
    ids=[
        "wrong-secret",
        "non-ascii-secret",
        "unknown-id",
        "no-secret",
        "name-wrong-secret",
        "unknown-name",
        "someone-elses",
    ],
)
def test_wrong_secret_or_unknown_credential_is_keystones_401(
    defaults: ReferenceCluster, http: httpx.Client, credential: dict[str, Any]
) -> None:
    response = http.post(tokens_url(defaults), json=request(credential))
    assert response.status_code == 401
    assert response.json() == REFUSED
    assert "x-subject-token" not in response.headers


def test_a_malformed_credential_is_400(defaults: ReferenceCluster, http: httpx.Client) -> None:
    no_id_or_name = http.post(tokens_url(defaults), json=request({"secret": APP_CREDENTIAL_SECRET}))
    assert no_id_or_name.status_code == 400 and no_id_or_name.json()["error"]["code"] == 400
    name_without_user = http.post(tokens_url(defaults), json=request({"name": "admin-appcred", "secret": "x"}))
    assert name_without_user.status_code == 400


@pytest.mark.parametrize(
    "scope",
    [
        {"project": {"name": "admin", "domain": {"id": "default"}}},  # even the credential's own project
        {"project": {"name": "demo", "domain": {"id": "default"}}},
        "unscoped",
    ],
)
def test_a_requested_scope_is_refused_as_keystone_does(
    defaults: ReferenceCluster, http: httpx.Client, scope: object
) -> None:
    credential = by_id(APP_CREDENTIAL_ID, APP_CREDENTIAL_SECRET)
    response = http.post(tokens_url(defaults), json=request(credential, scope=scope))
    assert response.status_code == 401
    assert response.json() == SCOPE_REFUSED


def test_keystoneauth_with_a_project_is_refused(defaults: ReferenceCluster) -> None:
    auth = v3.ApplicationCredential(
        auth_url=defaults.identity_url,
        application_credential_id=APP_CREDENTIAL_ID,
        application_credential_secret=APP_CREDENTIAL_SECRET,
        project_name="admin",
        project_domain_id="default",
    )
    with pytest.raises(ks_exceptions.Unauthorized, match="cannot request a scope"):
        ks_session.Session(auth=auth).get_token()


def test_a_member_only_credential_is_refused_the_admin_cache_api(ops: ReferenceCluster, http: httpx.Client) -> None:
    member_token, token = issue(http, ops, by_id_for(ops, http, "ci-member", "member-secret"))
    assert [role["name"] for role in token["roles"]] == ["member"]
    admin_token = issue(http, ops, by_id_for(ops, http, "ci-admin", "admin-secret"))[0]
    for url in ops.urls:
        member = {"X-Auth-Token": member_token}
        refused = http.get(f"{url}/v2/cache", headers=member)
        assert refused.status_code == 403, refused.text
        assert "cache_list" in refused.text
        assert http.get(f"{url}/v2/images", headers=member).status_code == 200  # authenticated, just not admin
        assert http.get(f"{url}/v2/cache", headers={"X-Auth-Token": admin_token}).status_code == 200
    # The same user's password token carries both roles: the credential, not the user, limited the first one.
    assert {role["name"] for role in password_token(http, ops, "ops", "ops-password", "infra")["roles"]} == {
        "admin",
        "member",
    }


def test_a_token_from_a_credential_cannot_be_widened_by_the_token_method(
    ops: ReferenceCluster, http: httpx.Client
) -> None:
    member_token = issue(http, ops, by_id_for(ops, http, "ci-member", "member-secret"))[0]
    token_method = {"methods": ["token"], "token": {"id": member_token}}
    rescoped = http.post(
        tokens_url(ops),
        json={"auth": {"identity": token_method, "scope": {"project": {"name": "infra", "domain": {"id": "default"}}}}},
    )
    assert rescoped.status_code == 401 and rescoped.json() == SCOPE_REFUSED
    renewed = http.post(tokens_url(ops, 1), json={"auth": {"identity": token_method}})
    assert renewed.status_code == 201, renewed.text
    body = renewed.json()["token"]
    assert [role["name"] for role in body["roles"]] == ["member"]
    assert body["application_credential"]["name"] == "ci-member"
    assert body["methods"] == ["token", "application_credential"]
    cache = http.get(f"{ops.urls[0]}/v2/cache", headers={"X-Auth-Token": renewed.headers["x-subject-token"]})
    assert cache.status_code == 403


def test_validation_shows_the_credential(ops: ReferenceCluster, http: httpx.Client) -> None:
    subject, issued = issue(http, ops, by_id("pinned-credential-1", "pinned-secret"))
    validated = http.get(tokens_url(ops, 1), headers={"X-Auth-Token": subject, "X-Subject-Token": subject})
    assert validated.status_code == 200
    assert validated.json()["token"]["application_credential"] == issued["application_credential"]


# -- the users file ---------------------------------------------------------------------------------------


def test_users_file_credentials_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(USERS)
    ops, other = load_users_file(path)
    assert [(c.name, c.project, c.roles) for c in ops.application_credentials] == [
        ("ci-admin", "infra", ("admin",)),
        ("ci-member", "infra", ("member",)),
        ("pinned", "infra", ("admin", "member")),
    ]
    assert ops.application_credentials[2].id == "pinned-credential-1"
    # Derived ids are stable (every node and every run agrees) and differ between owners of one name.
    again = load_users_file(path)
    assert [c.id for c in again[0].application_credentials] == [c.id for c in ops.application_credentials]
    assert ops.application_credentials[0].id != other.application_credentials[0].id


def _user(credentials: str, projects: str = "{infra: [admin, member]}") -> str:
    user = f"  - name: ops\n    password: p\n    projects: {projects}\n    application_credentials: {credentials}\n"
    return "users:\n" + user


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (_user("{name: ci}"), ["'application_credentials' of user 'ops' must be a list"]),
        (_user("[{secret: s, project: infra}]"), ["every application credential of user 'ops' needs a 'name'"]),
        (_user("[{name: ci, project: infra}]"), ["application credential 'ci' of user 'ops'", "'secret'"]),
        (_user("[{name: ci, secret: s}]"), ["'ci'", "needs a 'project'", "infra"]),
        (
            _user("[{name: ci, secret: s, project: lab}]", projects="{infra: [admin], lab: []}"),
            ["'ci'", "needs a 'project'", "(the user's projects: infra)"],
        ),
        (_user("[{name: ci, secret: s, project: infra, roles: [reader]}]"), ["'ci'", "'infra'", "not reader"]),
        (_user("[{name: ci, secret: s, project: infra, roles: []}]"), ["'ci'", "at least one role"]),
        (_user("[{name: ci, secret: s, project: infra, roles: 7}]"), ["roles", "list of names"]),
        (
            _user("[{name: ci, secret: s, project: infra}, {name: ci, secret: t, project: infra}]"),
            ["'ci'", "defined twice"],
        ),
        (_user("[{name: ci, secret: s, project: infra, id: 42}]"), ["'ci'", "'id' must be a string"]),
        (
            _user("[{name: a, secret: s, project: infra, id: same}, {name: b, secret: t, project: infra, id: same}]"),
            ["application credential id 'same' is used twice"],
        ),
    ],
    ids=[
        "not-a-list",
        "no-name",
        "no-secret",
        "no-project",
        "project-without-roles",
        "role-beyond-the-user",
        "no-roles",
        "roles-not-a-list",
        "duplicate-name",
        "id-not-a-string",
        "duplicate-id",
    ],
)
def test_users_file_errors_are_one_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(text)
    with pytest.raises(UsersFileError) as info:
        load_users_file(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"users file {path}")
    for fragment in fragments:
        assert fragment in message


def test_a_bad_users_file_stops_the_server_with_the_same_line(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(
        '{"users": [{"name": "ops", "password": "p", "project": "infra", "roles": ["member"],'
        ' "application_credentials": [{"name": "ci", "secret": "s", "project": "infra", "roles": ["admin"]}]}]}'
    )
    with pytest.raises(
        ConfigError, match=r"application credential 'ci' of user 'ops' may only carry roles .* not admin"
    ):
        with run_cluster(1, auth="keystone", users_file=path, data_dir=tmp_path / "data"):
            pass
