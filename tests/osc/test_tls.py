"""The real ``openstack`` command over real HTTPS: OSC's ``--os-cacert``, ``--os-cert``/``--os-key`` reach the plugin.

The plugin gets TLS settings from OSC's client manager (``verify``, ``cert``), never from its own options, so these
runs prove that OSC's global options arrive at the library's client. Nodes are noauth reference nodes behind TLS
terminators with a test-time CA (tests/tls.py), reached with ``--os-auth-type none``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.tls import HTTPSNodes

OPENSTACK = str(Path(sys.executable).with_name("openstack"))

pytestmark = [
    pytest.mark.slow,  # three `openstack` runs of ~1 s CPU each
    pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="the openstack command is not installed"),
]


def openstack(home: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: no OS_* or clouds.yaml from whoever runs the tests.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C.UTF-8",
           "PYTHONWARNINGS": "ignore", "OS_AUTH_TYPE": "none", "OS_ENDPOINT": endpoint}
    done = subprocess.run([OPENSTACK, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_osc_tls_options_reach_the_cache_client(https_nodes: HTTPSNodes, tmp_path: Path) -> None:
    image = https_nodes.cluster.upload_image(b"osc over tls " * 100, name="osc-tls")
    for node in https_nodes.cluster.urls:  # downloading through a node caches the image there
        httpx.get(f"{node}/v2/images/{image}/file").raise_for_status()
    certs = https_nodes.certs
    node, mtls_node = https_nodes.urls[0], https_nodes.mtls_urls[0]
    runs = [
        ["--os-cacert", str(certs.ca), "cache", "list", "--host", node, "-f", "json"],
        ["cache", "list", "--host", node, "-f", "json"],  # the system trust store: refused
        ["--os-cacert", str(certs.ca), "--os-cert", str(certs.client_cert), "--os-key", str(certs.client_key),
         "cache", "list", "--host", mtls_node, "-f", "json"],
    ]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        trusted, untrusted, mutual = pool.map(lambda args: openstack(tmp_path, node, *args), runs)

    assert (trusted.returncode, trusted.stderr) == (0, ""), trusted.stderr
    assert image in {row["ID"] for row in json.loads(trusted.stdout)}

    assert untrusted.returncode == 1
    assert untrusted.stderr.splitlines() == [
        untrusted.stderr.splitlines()[0],
        "Failed to list the cache on 1 of 1 node",
    ]
    first = untrusted.stderr.splitlines()[0]
    assert first.startswith(f"Failed to list the cache on {node}: TLS failed: ")
    assert "certificate verify failed" in first and first.endswith("(check --os-cacert or --insecure)")

    assert (mutual.returncode, mutual.stderr) == (0, ""), mutual.stderr
    assert image in {row["ID"] for row in json.loads(mutual.stdout)}
