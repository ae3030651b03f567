"""The library's TLS options against real HTTPS: reference nodes behind TLS terminators with a test-time CA.

``verify=`` (a CA file, the system trust, False) and ``cert=`` (mutual TLS) meet real handshakes; a refused
handshake is the distinct TLSFailure naming the node and saying what to check.
"""

from __future__ import annotations

import pytest

from glancecache_client import CacheClient, Cluster, errors
from tests.tls import HTTPSNodes

DATA = b"tls " * 256


def test_ca_file_lists_and_queues_on_every_https_node(https_nodes: HTTPSNodes) -> None:
    image = https_nodes.cluster.upload_image(DATA, name="tls-queue")
    proxies = [https_nodes.proxy(url) for url in https_nodes.urls]
    accepted_before = [proxy.connections for proxy in proxies]
    with Cluster(https_nodes.urls, verify=str(https_nodes.certs.ca)) as cluster:
        assert cluster.queue(image).ok
        waited = cluster.wait_cached(image, timeout=30, interval=0.05)
        assert waited.ok, waited.errors
        listed = cluster.list()
    assert listed.ok, listed.errors
    assert [state.node for state in listed.values] == https_nodes.urls
    assert all(state.is_cached(image) for state in listed.values)
    # Discovery, queue, polling and listing all went over one kept-alive TLS connection per node.
    assert [proxy.connections for proxy in proxies] == [before + 1 for before in accepted_before]


def test_system_trust_refuses_the_test_ca_with_a_tls_error_per_node(https_nodes: HTTPSNodes) -> None:
    with Cluster(https_nodes.urls) as cluster:  # verify=True: the system (certifi) trust store
        listed = cluster.list()
    assert [result.node for result in listed.errors] == https_nodes.urls
    for result in listed.errors:
        assert isinstance(result.error, errors.TLSFailure)
        message = str(result.error)
        assert message.startswith(f"{result.node}: TLS failed: ")
        assert "certificate verify failed" in message and "check --os-cacert or --insecure" in message


def test_an_unrelated_ca_is_refused_the_same_way(https_nodes: HTTPSNodes) -> None:
    node = https_nodes.urls[0]
    with CacheClient(node, verify=str(https_nodes.certs.other_ca)) as client, pytest.raises(errors.TLSFailure) as info:
        client.list()
    assert info.value.node == node and "certificate verify failed" in str(info.value)
    assert "unknown ca" in https_nodes.proxy(node).handshake_errors[-1]  # the server saw the client give up


def test_verify_false_skips_verification(https_nodes: HTTPSNodes) -> None:
    with Cluster(https_nodes.urls, verify=False) as cluster:
        listed = cluster.list()
    assert listed.ok, listed.errors


def test_mutual_tls_without_a_client_certificate_is_a_tls_error(https_nodes: HTTPSNodes) -> None:
    node = https_nodes.mtls_urls[0]
    with CacheClient(node, verify=str(https_nodes.certs.ca)) as client, pytest.raises(errors.TLSFailure) as info:
        client.list()
    assert info.value.node == node
    # TLS 1.3: the node refuses after the client's Finished, so the refusal is an alert read with the response.
    assert "certificate required" in str(info.value)
    assert "check --os-cert and --os-key" in str(info.value)


@pytest.mark.parametrize("form", ["pair", "combined"])
def test_mutual_tls_with_a_client_certificate_works(https_nodes: HTTPSNodes, form: str) -> None:
    certs = https_nodes.certs
    cert = (str(certs.client_cert), str(certs.client_key)) if form == "pair" else str(certs.client_combined)
    with Cluster(https_nodes.mtls_urls, verify=str(certs.ca), cert=cert) as cluster:
        listed = cluster.list()
    assert listed.ok, listed.errors
    assert [state.node for state in listed.values] == https_nodes.mtls_urls


def test_unreadable_tls_files_are_invalid_input_before_any_request(https_nodes: HTTPSNodes, tmp_path) -> None:
    node = https_nodes.urls[0]
    missing = tmp_path / "missing.pem"
    with pytest.raises(errors.InvalidInput, match=f"cannot use the CA bundle {missing}: No such file"):
        CacheClient(node, verify=str(missing))
    certs = https_nodes.certs
    with pytest.raises(errors.InvalidInput, match="cannot use the client certificate .* key values mismatch"):
        CacheClient(node, verify=str(certs.ca), cert=(str(certs.client_cert), str(certs.server_key)))
