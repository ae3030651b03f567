"""Prune every node's cache with a Keystone password login, one token for every node.

Usage: python keystone_prune.py NODE [NODE ...]
with OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME (and optionally OS_USER_DOMAIN_NAME,
OS_PROJECT_DOMAIN_NAME, OS_CACERT) set as for any OpenStack client.
"""

from __future__ import annotations

import os
import sys

from keystoneauth1 import loading, session

from glancecache_client import Cluster, errors


def keystone_session() -> session.Session:
    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=os.environ["OS_AUTH_URL"],
        username=os.environ["OS_USERNAME"],
        password=os.environ["OS_PASSWORD"],
        project_name=os.environ["OS_PROJECT_NAME"],
        user_domain_name=os.environ.get("OS_USER_DOMAIN_NAME", "Default"),
        project_domain_name=os.environ.get("OS_PROJECT_DOMAIN_NAME", "Default"),
    )
    return session.Session(auth=auth, verify=os.environ.get("OS_CACERT") or True)


def main(nodes: list[str]) -> int:
    with Cluster(nodes, session=keystone_session()) as cluster:
        results = cluster.prune()
    status = 0
    for result in results:
        if isinstance(result.error, (errors.Unauthorized, errors.Forbidden)):
            print(f"{result.node}: refused ({result.error.status}): this user may not manage the cache")
            status = 3
        elif result.error is not None:
            print(f"{result.node}: FAILED: {result.error}")
            status = status or 1
        elif result.value is not None:
            print(f"{result.node}: pruned {result.value.files} files, {result.value.bytes} bytes")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
