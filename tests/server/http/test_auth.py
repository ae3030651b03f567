"""The three identity modes: noauth, trusted headers, and keystone with the built-in Identity v3 (real
keystoneauth1 sessions and the real ``openstack`` command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .conftest import ADMIN, MEMBER

UNAUTHORIZED_HTML = (
    "<html>\n <head>\n  <title>401 Unauthorized</title>\n </head>\n <body>\n  <h1>401 Unauthorized</h1>\n"
    "  This server could not verify that you are authorized to access the document you requested. Either you "
    "supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply "
    "the credentials required.<br /><br />\n\n\n\n </body>\n</html>"
)


# -- noauth ------------------------------------------------------------------------------------------


def test_noauth_everyone_is_admin_and_headers_are_ignored(noauth: ReferenceCluster, http: httpx.Client) -> None:
    assert http.get(f"{noauth.url}/v2/cache").status_code == 200
    assert http.get(f"{noauth.url}/v2/cache", headers=MEMBER).status_code == 200
    created = http.post(f"{noauth.url}/v2/images", json={"name": "n"}, headers=MEMBER).json()
    assert created["owner"] is None


# -- trusted -----------------------------------------------------------------------------------------


def test_trusted_without_confirmed_identity_is_401(cluster: ReferenceCluster, http: httpx.Client) -> None:
    for headers in ({}, {"X-Identity-Status": "Invalid", "X-Roles": "admin"}):
        response = http.get(f"{cluster.url}/v2/cache", headers=headers)
        assert response.status_code == 401
        assert response.text == UNAUTHORIZED_HTML
        assert response.headers["content-length"] == "358"
        assert "x-openstack-request-id" not in response.headers
    as_json = http.get(f"{cluster.url}/v2/", headers={"Accept": "application/json"})
    assert as_json.status_code == 401 and as_json.headers["content-length"] == "316"
    assert http.get(f"{cluster.url}/versions").status_code == 200


def test_trusted_roles_are_lowercased_and_project_optional(cluster: ReferenceCluster, http: httpx.Client) -> None:
    assert http.get(f"{cluster.url}/v2/cache", headers={**ADMIN, "X-Roles": "Admin"}).status_code == 200
    no_project = {"X-Identity-Status": "Confirmed", "X-Roles": "admin"}
    assert http.get(f"{cluster.url}/v2/cache", headers=no_project).status_code == 200
    tenant = {"X-Identity-Status": "Confirmed", "X-Roles": "member", "X-Tenant-Id": "p-member"}
    own = cluster.upload_image(b"t", owner="p-member", visibility="private")
    assert http.get(f"{cluster.url}/v2/images/{own}", headers=tenant).status_code == 200


def test_trusted_system_scope_is_refused(cluster: ReferenceCluster, http: httpx.Client) -> None:
    response = http.get(f"{cluster.url}/v2/cache", headers={**ADMIN, "OpenStack-System-Scope": "all"})
    assert response.status_code == 403
    assert "cache_list" in response.text


# -- keystone ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(2, auth="keystone", data_dir=tmp_path_factory.mktemp("keystone")) as cluster:
        yield cluster


def _session(cluster: ReferenceCluster, user: str, password: str, project: str) -> ks_session.Session:
    auth = v3.Password(
        auth_url=cluster.identity_url,
        username=user,
        password=password,
        project_name=project,
        user_domain_name="Default",
        project_domain_name="Default",
    )
    return ks_session.Session(auth=auth)


def test_keystoneauth_password_session_reaches_the_image_service(keystone: ReferenceCluster) -> None:
    session = _session(keystone, "admin", "admin", "admin")
    before = keystone.tokens_issued
    endpoint = session.get_endpoint(service_type="image", interface="public")
    assert endpoint == keystone.urls[0]
    response = session.get("/v2/cache", endpoint_filter={"service_type": "image", "interface": "public"})
    assert response.status_code == 200
    assert response.json() == {"cached_images": [], "queued_images": []}
    session.get("/v2/images", endpoint_filter={"service_type": "image"})
    assert keystone.tokens_issued - before == 1  # one token, reused
    access = session.auth.get_access(session)  # type: ignore[union-attr]
    assert access.project_name == "admin" and "admin" in access.role_names
    assert access.expires is not None


def test_keystone_token_from_one_node_works_on_every_node(keystone: ReferenceCluster, http: httpx.Client) -> None:
    token = _session(keystone, "admin", "admin", "admin").get_token()
    for url in keystone.urls:
        assert http.get(f"{url}/v2/cache", headers={"X-Auth-Token": token}).status_code == 200


def test_keystone_member_is_refused_cache_but_owns_images(keystone: ReferenceCluster, http: httpx.Client) -> None:
    session = _session(keystone, "demo", "demo", "demo")
    token = session.get_token()
    headers = {"X-Auth-Token": token}
    assert http.get(f"{keystone.url}/v2/cache", headers=headers).status_code == 403
    created = http.post(f"{keystone.url}/v2/images", json={"name": "mine"}, headers=headers).json()
    assert created["owner"] == session.get_project_id()


def test_keystone_missing_or_bad_token_is_401(keystone: ReferenceCluster, http: httpx.Client) -> None:
    for headers in ({}, {"X-Auth-Token": "not-a-token"}):
        response = http.get(f"{keystone.url}/v2/cache", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == f'Keystone uri="{keystone.url}/identity"'
        assert response.json()["error"]["code"] == 401


def test_keystone_wrong_password_or_project_is_refused(keystone: ReferenceCluster) -> None:
    with pytest.raises(ks_exceptions.Unauthorized):
        _session(keystone, "admin", "wrong", "admin").get_token()
    with pytest.raises(ks_exceptions.Unauthorized):
        _session(keystone, "demo", "demo", "admin").get_token()


def test_keystone_token_validation_endpoint(keystone: ReferenceCluster, http: httpx.Client) -> None:
    token = _session(keystone, "admin", "admin", "admin").get_token()
    subject = _session(keystone, "demo", "demo", "demo").get_token()
    url = f"{keystone.urls[1]}/identity/v3/auth/tokens"
    response = http.get(url, headers={"X-Auth-Token": token, "X-Subject-Token": subject})
    assert response.status_code == 200
    assert response.headers["x-subject-token"] == subject
    body = response.json()["token"]
    assert body["user"]["name"] == "demo" and [role["name"] for role in body["roles"]] == ["member"]
    assert [service["type"] for service in body["catalog"]] == ["image", "identity"]
    missing = http.get(url, headers={"X-Auth-Token": token, "X-Subject-Token": "nope"})
    assert missing.status_code == 404
    assert http.delete(url, headers={"X-Auth-Token": token, "X-Subject-Token": subject}).status_code == 204
    assert http.get(f"{keystone.url}/v2/images", headers={"X-Auth-Token": subject}).status_code == 401


def test_keystone_version_discovery(keystone: ReferenceCluster, http: httpx.Client) -> None:
    root = http.get(f"{keystone.url}/identity")
    assert root.status_code == 300
    assert root.json()["versions"]["values"][0]["links"][0]["href"] == f"{keystone.url}/identity/v3/"
    assert http.get(f"{keystone.url}/identity/v3").json()["version"]["id"].startswith("v3.")


def test_keystone_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(
        "users:\n"
        "  - name: ops\n    password: s3cret\n    project: infra\n    roles: [admin]\n"
        "  - name: viewer\n    password: v\n    projects: {infra: [reader]}\n"
    )
    with run_cluster(1, auth="keystone", users_file=users, data_dir=tmp_path / "d") as cluster:
        ops = _session(cluster, "ops", "s3cret", "infra")
        ops_endpoint = {"service_type": "image"}
        assert ops.get("/v2/cache", endpoint_filter=ops_endpoint).status_code == 200
        viewer = _session(cluster, "viewer", "v", "infra")
        refused = viewer.get("/v2/cache", endpoint_filter=ops_endpoint, raise_exc=False)
        assert refused.status_code == 403
        with pytest.raises(ks_exceptions.Unauthorized):
            _session(cluster, "admin", "admin", "admin").get_token()  # defaults replaced


OPENSTACK = Path(sys.executable).parent / "openstack"


@pytest.mark.skipif(not OPENSTACK.exists(), reason="openstack command not installed")
def test_real_openstack_command_authenticates(keystone: ReferenceCluster) -> None:
    image_id = keystone.upload_image(b"osc", name="seen-by-osc", visibility="public")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
        "OS_AUTH_URL": keystone.identity_url or "",
        "OS_USERNAME": "admin",
        "OS_PASSWORD": "admin",
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_IDENTITY_API_VERSION": "3",
    }
    result = subprocess.run(
        [str(OPENSTACK), "image", "list", "-f", "json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert image_id in {image["ID"] for image in json.loads(result.stdout)}
