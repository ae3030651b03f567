"""The real ``openstack`` command with ``--os-auth-type v3applicationcredential`` against a keystone-mode reference
cluster: the plugin gets its token (and, without --host, the catalog's image endpoint) from an application
credential exactly as from a password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from keystoneauth1.identity import v3

from glancecache_client import Cluster as CacheCluster
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from ..keystone import APP_CREDENTIAL_ID, APP_CREDENTIAL_SECRET
from .test_end_to_end import OPENSTACK, base_env, hosts, openstack, openstack_many

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="the openstack command is not installed"),
]


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReferenceCluster, str]]:
    """A 2-node keystone cluster with one image cached on both nodes."""
    with run_cluster(nodes=2, auth="keystone", data_dir=tmp_path_factory.mktemp("osc-appcred")) as cluster:
        image = cluster.upload_image(b"a" * 3000, name="appcred")
        auth = v3.ApplicationCredential(
            auth_url=cluster.identity_url,
            application_credential_id=APP_CREDENTIAL_ID,
            application_credential_secret=APP_CREDENTIAL_SECRET,
        )
        with CacheCluster(cluster.urls, auth=auth) as nodes:
            assert nodes.queue(image).ok
            assert nodes.wait_cached(image, timeout=30, interval=0.1).ok
        yield cluster, image


def test_cache_list_with_an_application_credential(cached: tuple[ReferenceCluster, str], tmp_path: Path) -> None:
    cluster, image = cached
    assert cluster.identity_url
    options = [
        "--os-auth-type", "v3applicationcredential", "--os-auth-url", cluster.identity_url,
        "--os-application-credential-id", APP_CREDENTIAL_ID,
        "--os-application-credential-secret", APP_CREDENTIAL_SECRET,
        "--os-identity-api-version", "3",
    ]  # fmt: skip
    from_env = {
        **base_env(tmp_path),
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_AUTH_URL": cluster.identity_url,
        "OS_APPLICATION_CREDENTIAL_ID": APP_CREDENTIAL_ID,
        "OS_APPLICATION_CREDENTIAL_SECRET": APP_CREDENTIAL_SECRET,
        "OS_IDENTITY_API_VERSION": "3",
    }
    tokens_before = cluster.tokens_issued
    every_node, catalog = openstack_many(
        from_env,
        [
            [*options, "cache", "list", *hosts(cluster.urls), "-f", "json"],
            # No --host: the image endpoint comes from the catalog of the credential's token.
            ["cache", "list", "-f", "json"],
        ],
    )
    rows = every_node.json()
    assert [(row["Node"], row["ID"], row["State"], row["Size"]) for row in rows] == [
        (url, image, "cached", 3000) for url in cluster.urls
    ]
    assert every_node.stderr == ""
    assert [row["ID"] for row in catalog.json()] == [image]
    assert catalog.stderr.startswith(f"Warning: no --host given, so this uses the image endpoint {cluster.urls[0]};")
    # One token per `openstack` run, shared by both nodes of the fan-out.
    assert cluster.tokens_issued - tokens_before == 2


def test_a_wrong_secret_fails_authentication(cached: tuple[ReferenceCluster, str], tmp_path: Path) -> None:
    cluster, _ = cached
    assert cluster.identity_url
    env = {
        **base_env(tmp_path),
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_AUTH_URL": cluster.identity_url,
        "OS_APPLICATION_CREDENTIAL_ID": APP_CREDENTIAL_ID,
        "OS_APPLICATION_CREDENTIAL_SECRET": "not-the-secret",
        "OS_IDENTITY_API_VERSION": "3",
    }
    done = openstack(env, "cache", "list", *hosts(cluster.urls), "-f", "json")  # (it checks for no traceback)
    assert (done.returncode, done.stdout) == (1, "")
    # OSC's own report of Keystone's refusal, one line; the secret is not echoed.
    assert done.stderr.startswith("The request you have made requires authentication. (HTTP 401)")
    assert done.stderr.count("\n") == 1 and "not-the-secret" not in done.stderr
