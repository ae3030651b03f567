"""``glancecache-exporter``: every node's image cache as Prometheus metrics.

``collector`` asks the nodes (the library's per-node CacheClients, concurrently, each within a deadline) and
turns their answers into metric families on every scrape; ``exposition`` serves them over HTTP; ``cli`` is the
command line, which takes the node and identity options of ``glance``. Only ``cli`` imports click, and nothing
here is imported by the library itself.
"""

from __future__ import annotations

__all__: list[str] = []
