"""glancecache_client: see and manage OpenStack Glance image caches, on one node or many.

Public API::

    from glancecache_client import CacheClient, Cluster

    with Cluster(["glance1", "glance2:9292"], token="...") as cluster:
        for result in cluster.list():
            print(result.node, result.value if result.ok else result.error)

Names are loaded on first use (PEP 562): ``import glancecache_client`` alone imports neither httpx nor
keystoneauth1, so ``glance --help`` and the reference server (a subpackage) do not pay for the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from . import errors
    from .client import CacheClient
    from .cluster import Cluster, ClusterResult, NodeResult
    from .errors import GlanceCacheError
    from .models import CachedImage, CacheState, ClearResult, ClearTarget, PruneResult

__all__ = [
    "CacheClient",
    "CacheState",
    "CachedImage",
    "ClearResult",
    "ClearTarget",
    "Cluster",
    "ClusterResult",
    "GlanceCacheError",
    "NodeResult",
    "PruneResult",
    "__version__",
    "errors",
]

_HOME = {
    "CacheClient": "client",
    "Cluster": "cluster",
    "ClusterResult": "cluster",
    "NodeResult": "cluster",
    "GlanceCacheError": "errors",
    "CachedImage": "models",
    "CacheState": "models",
    "ClearResult": "models",
    "ClearTarget": "models",
    "PruneResult": "models",
}


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module(".errors", __name__)
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
