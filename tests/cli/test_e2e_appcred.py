"""The installed ``glance`` with an application credential against a 2-node keystone-mode reference cluster:
options, OS_* variables, name + user, and exit status 3 with one line for a wrong secret or a stray scope."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from glancecache_client.cli import exitcodes
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from ..keystone import APP_CREDENTIAL_ID, APP_CREDENTIAL_SECRET
from .test_e2e_cluster import DATA, assert_no_traceback, glance, hosts


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=2, auth="keystone", data_dir=tmp_path_factory.mktemp("appcred")) as running:
        yield running


def credential_args(cluster: ReferenceCluster, secret: str = APP_CREDENTIAL_SECRET) -> list[str]:
    assert cluster.identity_url
    return [
        "--os-auth-url", cluster.identity_url, "--os-auth-type", "v3applicationcredential",
        "--os-application-credential-id", APP_CREDENTIAL_ID, "--os-application-credential-secret", secret,
    ]  # fmt: skip


def test_options_fetch_one_token_for_every_node(keystone: ReferenceCluster) -> None:
    image = keystone.upload_image(DATA, name="appcred")
    before = keystone.tokens_issued
    queued = glance(
        *credential_args(keystone), *hosts(keystone.urls), "cache-queue", "--wait", "--interval", "0.1",
        "--timeout", "30", image,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    assert keystone.tokens_issued == before + 1
    listed = glance(*credential_args(keystone), *hosts(keystone.urls), "cache-list", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    assert {row["node"] for row in json.loads(listed.stdout) if row["image_id"] == image} == set(keystone.urls)


def test_os_environment_variables(keystone: ReferenceCluster) -> None:
    assert keystone.identity_url
    env = {
        "OS_AUTH_URL": keystone.identity_url,
        "OS_APPLICATION_CREDENTIAL_ID": APP_CREDENTIAL_ID,
        "OS_APPLICATION_CREDENTIAL_SECRET": APP_CREDENTIAL_SECRET,
    }
    # No OS_AUTH_TYPE: a credential id picks the v3applicationcredential plugin, as openstackclient does.
    implied = glance(*hosts(keystone.urls), "cache-list", "-f", "json", env=env)
    assert implied.returncode == 0, implied.stderr
    assert isinstance(json.loads(implied.stdout), list)
    explicit = glance(
        *hosts(keystone.urls), "cache-list", "-f", "json", env={**env, "OS_AUTH_TYPE": "v3applicationcredential"}
    )
    assert explicit.returncode == 0, explicit.stderr


def test_name_and_user_take_the_default_domain(keystone: ReferenceCluster) -> None:
    assert keystone.identity_url
    env = {
        "OS_AUTH_URL": keystone.identity_url,
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_APPLICATION_CREDENTIAL_NAME": "admin-appcred",
        "OS_USERNAME": "admin",
        "OS_APPLICATION_CREDENTIAL_SECRET": APP_CREDENTIAL_SECRET,
    }
    result = glance(*hosts(keystone.urls), "cache-list", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr


def test_wrong_secret_exits_3_with_one_line_and_no_secret(keystone: ReferenceCluster) -> None:
    before = keystone.tokens_issued
    result = glance(*credential_args(keystone, "not-the-secret"), *hosts(keystone.urls), "cache-list")
    assert result.returncode == exitcodes.AUTH
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: authentication at {keystone.identity_url} failed: ")
    assert "HTTP 401" in lines[0] and "--os-application-credential-secret" in lines[0]
    assert "not-the-secret" not in lines[0] and "--os-password" not in lines[0]
    assert_no_traceback(result)
    assert keystone.tokens_issued == before


def test_a_project_option_is_refused_by_keystone_with_exit_3(keystone: ReferenceCluster) -> None:
    result = glance(*credential_args(keystone), "--os-project-name", "admin", *hosts(keystone.urls), "cache-list")
    assert result.returncode == exitcodes.AUTH
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Application credentials cannot request a scope" in lines[0]
    assert "--os-project-*" in lines[0]
