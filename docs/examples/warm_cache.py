"""Cache one image on every node before a rollout, and wait until each node holds it.

Usage: python warm_cache.py IMAGE_ID NODE [NODE ...]

Exits 0 when every node holds the image, 1 (naming the nodes) when any did not within five minutes.
"""

from __future__ import annotations

import os
import sys

from glancecache_client import Cluster


def main(image_id: str, nodes: list[str]) -> int:
    with Cluster(nodes, token=os.environ.get("OS_TOKEN")) as cluster:
        queued = cluster.queue(image_id)
        waiting = [(result.node, image_id) for result in queued if result.ok]
        failed = {result.node: result.error for result in queued.errors}
        not_cached = cluster.wait_until_cached(waiting, timeout=300, interval=1.0)
        failed.update({node: error for (node, _), error in not_cached.items()})
    for node in cluster.endpoints:
        print(f"{node}: {'cached' if node not in failed else f'NOT cached: {failed[node]}'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
