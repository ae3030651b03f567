"""Report what every node caches, and which nodes could not answer.

Usage: python cache_report.py NODE [NODE ...]     (NODE: host, host:port or URL)

Identity comes from OS_TOKEN when set, else the nodes are reached without a token (noauth nodes).
Exits 1 when any node failed, after printing what the healthy nodes hold.
"""

from __future__ import annotations

import os
import sys

from glancecache_client import Cluster


def main(nodes: list[str]) -> int:
    with Cluster(nodes, token=os.environ.get("OS_TOKEN")) as cluster:
        results = cluster.list()  # every node at once; a failing node never hides the others
    for result in results:
        if result.ok and result.value is not None:
            state = result.value
            print(f"{result.node}: {len(state.cached)} cached ({state.total_size} bytes), {len(state.queued)} queued")
        else:
            print(f"{result.node}: FAILED: {result.error}")
    return 0 if results.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
