"""The installed ``glance`` script against reference nodes behind real TLS terminators (test-time CA).

``--os-cacert``/``OS_CACERT``, ``--insecure`` and ``--os-cert``/``--os-key`` (and their variables) meet real
handshakes; a refused handshake is exit status 5 with one line saying what failed and which option to check.
"""

from __future__ import annotations

import json
from pathlib import Path

from glancecache_client.cli import exitcodes
from tests.tls import HTTPSNodes

from .test_e2e_cluster import assert_no_traceback, glance, hosts

DATA = b"over tls " * 128


def listed_ids(stdout: str) -> dict[str, set[str]]:
    """image ids per node, from ``cache-list -f json`` over several nodes."""
    by_node: dict[str, set[str]] = {}
    for row in json.loads(stdout):
        by_node.setdefault(row["node"], set()).add(row["image_id"])
    return by_node


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


def test_os_cacert_queues_and_lists_on_every_https_node(https_nodes: HTTPSNodes) -> None:
    image = https_nodes.cluster.upload_image(DATA, name="cli-tls")
    ca = str(https_nodes.certs.ca)
    queued = glance("--os-cacert", ca, *hosts(https_nodes.urls), "cache-queue", "--wait", "--timeout", "30",
                    "--interval", "0.1", image)
    assert (queued.returncode, queued.stderr) == (0, ""), queued.stderr
    listed = glance("--os-cacert", ca, *hosts(https_nodes.urls), "cache-list", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    by_node = listed_ids(listed.stdout)
    assert list(by_node) == https_nodes.urls and all(image in ids for ids in by_node.values())


def test_os_cacert_from_the_environment(https_nodes: HTTPSNodes) -> None:
    done = glance(*hosts(https_nodes.urls), "cache-list", "-f", "json", env={"OS_CACERT": str(https_nodes.certs.ca)})
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert isinstance(json.loads(done.stdout), list)


def test_insecure_skips_verification(https_nodes: HTTPSNodes) -> None:
    done = glance("--insecure", *hosts(https_nodes.urls), "cache-list", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("Warning: TLS verification is off") and done.stderr.count("\n") == 1


def test_client_certificate_options_and_variables_for_mutual_tls(https_nodes: HTTPSNodes) -> None:
    certs = https_nodes.certs
    nodes = hosts(https_nodes.mtls_urls)
    options = glance("--os-cacert", str(certs.ca), "--os-cert", str(certs.client_cert), "--os-key",
                     str(certs.client_key), *nodes, "cache-list", "-f", "json")
    assert (options.returncode, options.stderr) == (0, ""), options.stderr
    variables = glance(*nodes, "cache-list", "-f", "json",
                       env={"OS_CACERT": str(certs.ca), "OS_CERT": str(certs.client_cert),
                            "OS_KEY": str(certs.client_key)})
    assert (variables.returncode, variables.stderr) == (0, ""), variables.stderr
    assert listed_ids(options.stdout) == listed_ids(variables.stdout)


def test_untrusted_certificate_exits_5_with_one_line_naming_the_node_and_the_options(https_nodes: HTTPSNodes) -> None:
    node = https_nodes.urls[0]
    done = glance("-H", node, "cache-list")
    assert_no_traceback(done)
    assert (done.returncode, done.stdout) == (exitcodes.UNAVAILABLE, "")
    line = one_error_line(done.stderr)
    assert line.startswith(f"Error: {node}: TLS failed: ") and "certificate verify failed" in line
    assert line.endswith("(check --os-cacert or --insecure)")
    # An unrelated CA is no better.
    other = glance("--os-cacert", str(https_nodes.certs.other_ca), "-H", node, "cache-list")
    assert other.returncode == exitcodes.UNAVAILABLE and "certificate verify failed" in one_error_line(other.stderr)


def test_mutual_tls_without_a_client_certificate_exits_5_and_names_the_options(https_nodes: HTTPSNodes) -> None:
    node = https_nodes.mtls_urls[0]
    done = glance("--os-cacert", str(https_nodes.certs.ca), "-H", node, "cache-list")
    assert_no_traceback(done)
    assert done.returncode == exitcodes.UNAVAILABLE
    line = one_error_line(done.stderr)
    assert line.startswith(f"Error: {node}: TLS failed: ") and "certificate required" in line
    assert line.endswith("check --os-cert and --os-key)")


def test_unreadable_ca_or_certificate_file_is_a_usage_error(https_nodes: HTTPSNodes, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    done = glance("--os-cacert", str(missing), *hosts(https_nodes.urls), "cache-list")
    assert_no_traceback(done)
    assert done.returncode == exitcodes.USAGE
    assert one_error_line(done.stderr) == (
        f"Error: cannot use the CA bundle {missing}: No such file or directory (give a PEM file of CA certificates)"
    )
    certs = https_nodes.certs
    swapped = glance("--os-cacert", str(certs.ca), "--os-cert", str(certs.client_key), "--os-key",
                     str(certs.client_cert), *hosts(https_nodes.mtls_urls), "cache-list")
    assert_no_traceback(swapped)
    assert swapped.returncode == exitcodes.USAGE
    assert one_error_line(swapped.stderr).startswith(f"Error: cannot use the client certificate {certs.client_key}")


def test_a_key_without_its_certificate_is_a_usage_error(https_nodes: HTTPSNodes) -> None:
    certs = https_nodes.certs
    done = glance("--os-cacert", str(certs.ca), "--os-key", str(certs.client_key), *hosts(https_nodes.mtls_urls),
                  "cache-list")
    assert_no_traceback(done)
    assert done.returncode == exitcodes.USAGE
    assert one_error_line(done.stderr) == "Error: --os-key needs --os-cert (the client certificate that key belongs to)"


def test_a_clouds_yaml_cloud_gives_the_node_and_its_tls_files(https_nodes: HTTPSNodes, tmp_path: Path) -> None:
    # auth_type none with auth.endpoint (as OSC users write a noauth cloud), and the cloud's cacert, cert and key.
    certs = https_nodes.certs
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  lab:\n    auth_type: none\n"
        f"    auth:\n      endpoint: {https_nodes.mtls_urls[0]}\n"
        f"    cacert: {certs.ca}\n    cert: {certs.client_cert}\n    key: {certs.client_key}\n"
    )
    done = glance("--os-cloud", "lab", "cache-list", "-f", "json", env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert isinstance(json.loads(done.stdout), list)
