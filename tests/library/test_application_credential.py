"""The library with a real keystoneauth1 application credential against a keystone-mode reference cluster: one
token serves every node, and a wrong secret raises keystoneauth1's Unauthorized."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from glancecache_client import CacheClient, Cluster, errors
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from ..keystone import APP_CREDENTIAL_ID, APP_CREDENTIAL_SECRET


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=3, auth="keystone", data_dir=tmp_path_factory.mktemp("appcred")) as cluster:
        yield cluster


def application_credential(cluster: ReferenceCluster, secret: str = APP_CREDENTIAL_SECRET) -> v3.ApplicationCredential:
    assert cluster.identity_url
    return v3.ApplicationCredential(
        auth_url=cluster.identity_url, application_credential_id=APP_CREDENTIAL_ID, application_credential_secret=secret
    )


def test_one_application_credential_token_for_every_node(keystone: ReferenceCluster) -> None:
    image = keystone.upload_image(b"appcred" * 200, name="appcred")
    session = ks_session.Session(auth=application_credential(keystone))
    before = keystone.tokens_issued
    with Cluster(keystone.urls, session=session) as fan_out:
        assert fan_out.queue(image).ok
        waited = fan_out.wait_cached(image, timeout=30, interval=0.1)
        assert [result.value.size for result in waited if result.value is not None] == [1400] * 3
        listing = fan_out.list()
        assert listing.ok and all(state.is_cached(image) for state in listing.values)
        assert fan_out.clear("cache").ok
    assert keystone.tokens_issued - before == 1
    # The session's token is the credential's: scoped to its project, with its role.
    access = session.auth.get_access(session)  # type: ignore[union-attr]
    assert access.project_name == "admin" and access.role_names == ["admin"]


def test_cache_client_with_the_auth_plugin(keystone: ReferenceCluster) -> None:
    with CacheClient(keystone.urls[1], auth=application_credential(keystone)) as client:
        assert client.list().cached == ()


def test_a_wrong_secret_is_refused_by_keystone(keystone: ReferenceCluster) -> None:
    before = keystone.tokens_issued
    with CacheClient(keystone.urls[0], auth=application_credential(keystone, "wrong")) as client:
        with pytest.raises(errors.IdentityFailure) as caught:
            client.list()
    # The library raises only its own errors; keystoneauth1's refusal is the cause.
    assert isinstance(caught.value.__cause__, ks_exceptions.Unauthorized)
    assert caught.value.node == keystone.urls[0]
    assert keystone.tokens_issued == before
