"""The OSC plugin contract: names, the version option, make_client on OSC's session, and an import-light module."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pytest
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import noauth, token_endpoint
from keystoneauth1.session import Session

from glancecache_client.auth import NoAuth, SessionTokens
from osc_plugin import plugin

from .conftest import IMAGE


def test_contract_constants() -> None:
    assert plugin.API_NAME == "image_cache"  # "image" would replace OSC's own image client
    assert plugin.API_VERSION_OPTION == "os_image_cache_api_version"
    assert plugin.DEFAULT_API_VERSION in plugin.API_VERSIONS
    assert isinstance(plugin.API_VERSIONS, dict)


def test_entry_points_name_every_command() -> None:
    [extension] = [ep for ep in entry_points(group="openstack.cli.extension") if ep.name == plugin.API_NAME]
    assert extension.value == "osc_plugin.plugin"
    commands = {ep.name: ep.load() for ep in entry_points(group="openstack.image_cache.v2")}
    assert sorted(commands) == [
        "cache_clean", "cache_clear", "cache_delete", "cache_list", "cache_nodes_list", "cache_prune", "cache_queue",
        "cache_summary", "cache_sync",
    ]
    assert all(callable(getattr(cls, "take_action", None)) for cls in commands.values())


def test_version_option_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = plugin.build_option_parser(argparse.ArgumentParser()).parse_args([])
    assert parsed.os_image_cache_api_version == "2"
    monkeypatch.setenv("OS_IMAGE_CACHE_API_VERSION", "2.18")
    parsed = plugin.build_option_parser(argparse.ArgumentParser()).parse_args([])
    assert parsed.os_image_cache_api_version == "2.18"
    parsed = plugin.build_option_parser(argparse.ArgumentParser()).parse_args(["--os-image-cache-api-version", "2"])
    assert parsed.os_image_cache_api_version == "2"


class FakeClientManager:
    """The osc-lib ClientManager attributes make_client reads, recording endpoint lookups."""

    def __init__(self, session: Session, endpoint: str | None = "http://glance.example:9292/v2/",
                 error: Exception | None = None) -> None:
        self.session = session
        self.region_name = "RegionTwo"
        self.interface = "internal"
        self.verify = False
        self.cert = None
        self.lookups: list[tuple[str, dict[str, Any]]] = []
        self._endpoint = endpoint
        self._error = error

    def get_endpoint_for_service_type(self, service_type: str, **kwargs: Any) -> str | None:
        self.lookups.append((service_type, kwargs))
        if self._error:
            raise self._error
        return self._endpoint


def test_make_client_resolves_the_image_endpoint_lazily_and_once() -> None:
    instance = FakeClientManager(Session(auth=token_endpoint.Token("http://x", "tok")))
    api = plugin.make_client(instance)
    assert instance.lookups == []  # --host commands never touch the catalog
    assert api.endpoint == "http://glance.example:9292"  # the version suffix is the client's business
    assert api.endpoint == "http://glance.example:9292"
    assert instance.lookups == [("image", {"region_name": "RegionTwo", "interface": "internal"})]
    assert api.session is instance.session and api.verify is False


@pytest.mark.parametrize("failure", [{"endpoint": None}, {"error": ks_exceptions.EndpointNotFound()}])
def test_missing_image_endpoint_is_a_lookup_error_with_advice(failure: dict[str, Any]) -> None:
    instance = FakeClientManager(Session(), **failure)
    with pytest.raises(LookupError, match=r"no image endpoint in region RegionTwo .*--host NODE.*OVERRIDE"):
        _ = plugin.make_client(instance).endpoint


def test_cluster_shares_the_osc_session_for_tokens() -> None:
    session = Session(auth=token_endpoint.Token("http://x", "tok"))
    with plugin.make_client(FakeClientManager(session)).cluster(["n1", "n2:9393"]) as cluster:
        assert cluster.endpoints == ["http://n1:9292", "http://n2:9393"]
        assert isinstance(cluster.token_source, SessionTokens) and cluster.token_source.session is session
        assert cluster.token_source.get_token() == "tok"
        assert {client.token_source for client in cluster.clients.values()} == {cluster.token_source}


def test_auth_type_none_sends_no_token() -> None:
    api = plugin.make_client(FakeClientManager(Session(auth=noauth.NoAuth(endpoint="http://n1:9292"))))
    with api.cluster(["n1"]) as cluster:
        assert isinstance(cluster.token_source, NoAuth)


def test_plugin_module_imports_nothing_heavy() -> None:
    # OSC imports the plugin module on every start, so it must not pull in the library, httpx or keystoneauth.
    code = (
        "import sys; before = set(sys.modules); import osc_plugin.plugin; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(m for m in new if m not in sys.stdlib_module_names))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['osc_plugin']"


def test_image_ids_are_canonicalised_before_requests() -> None:
    # Sanity for the shared validation the commands rely on (upper-case ids are accepted, sent lower-case).
    from glancecache_client.nodes import validate_image_id

    assert validate_image_id(IMAGE.upper()) == IMAGE
