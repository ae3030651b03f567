"""Start and stop a cluster of reference nodes in this process (one HTTP listener per node, see ``http.listener``).

Owns: ``run_cluster`` / ``start_cluster`` and the ``ReferenceCluster`` they give: N nodes, each on its own port
(port 0 = ephemeral) with its own cache directory, cache engine and self-reference URL, all sharing one
image store and one database (``<data_dir>/glance.sqlite`` or ``registry_url``) that holds the images,
the centralized cache registry and the identity tokens; optional cache admin listeners; clean shutdown.

Layout under ``data_dir``: ``glance.sqlite``, ``images/``, ``nodes/<host>-<port>/cache/``. Several processes
form one cluster when they share both ``data_dir`` (image data) and the database.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError, ServerSettings, parse_host_port
from .http.listener import Limits, Listener, LoopThread

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .engine.engine import CacheEngine
    from .engine.store import ImageStore
    from .http.app import GlanceApp
    from .http.context import Authenticator
    from .http.identity import IdentityService
    from .http.policy import Policy

log = logging.getLogger(__name__)


@dataclass
class ClusterNode:
    """One node of a running cluster."""

    index: int
    url: str
    engine: CacheEngine | None
    app: GlanceApp
    cache_dir: Path | None
    admin_url: str | None = None


@dataclass
class ReferenceCluster:
    """A running cluster (see ``run_cluster``)."""

    settings: ServerSettings
    data_dir: Path
    db: sa.Engine
    store: ImageStore
    limits: Limits = field(default_factory=Limits)
    nodes: list[ClusterNode] = field(default_factory=list)
    identity: IdentityService | None = None
    _listeners: list[Listener] = field(default_factory=list)
    _remove_data_dir: bool = False
    _closed: bool = False

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def admin_urls(self) -> list[str]:
        return [node.admin_url for node in self.nodes if node.admin_url is not None]

    @property
    def identity_url(self) -> str | None:
        """``.../identity/v3`` of node 0 in keystone mode (the OS_AUTH_URL), else None."""
        return f"{self.nodes[0].url}/identity/v3" if self.identity is not None else None

    @property
    def tokens_issued(self) -> int:
        return self.identity.tokens_issued if self.identity is not None else 0

    def upload_image(self, data: bytes, **kw: Any) -> str:
        """Create an image (bare/raw unless given) and upload ``data`` through the store; returns its id."""
        kw.setdefault("container_format", "bare")
        kw.setdefault("disk_format", "raw")
        image = self.store.create(**kw)
        self.store.upload(image.id, [data])
        return image.id

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            try:
                listener.stop()
            except Exception:
                log.exception("Stopping the listener on port %d failed", listener.port)
        for node in self.nodes:
            if node.engine is not None:
                try:
                    node.engine.close()
                except Exception:
                    log.exception("Closing the cache engine of %s failed", node.url)
        self.db.dispose()
        if self._remove_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _node_cache_dir(settings: ServerSettings, data_dir: Path, index: int, url: str) -> Path:
    if settings.cache_dir is not None:
        return settings.cache_dir if settings.nodes == 1 else settings.cache_dir / f"node-{index}"
    # Named after the node's address, so several processes sharing one data_dir never share a cache
    # directory, and a node restarted on the same port finds its cache again.
    host_port = url.split("://", 1)[1].replace("[", "").replace("]", "").replace(":", "-")
    return data_dir / "nodes" / host_port / "cache"


def start_cluster(settings: ServerSettings, limits: Limits | None = None) -> ReferenceCluster:
    """Start every node of ``settings`` and return the running cluster (call ``close()`` when done).

    ``limits`` are the listeners' connection timeouts and limit (``Limits()`` defaults when None).
    """
    import sqlalchemy as sa

    from .engine.db import create_db_engine, sqlite_url
    from .engine.store import ImageStore
    from .http.policy import Policy, PolicyError

    settings.validate()
    try:
        policy = Policy.from_file(settings.policy_file)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None

    remove_data_dir = settings.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="glancecache-")) if remove_data_dir else Path(settings.data_dir or "")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data directory {data_dir}: {exc.strerror or exc}") from None
    db_url = settings.registry_url or sqlite_url(data_dir / "glance.sqlite")
    try:
        db = create_db_engine(db_url)
        store = ImageStore(db, data_dir / "images")
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        if remove_data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot use the database {sa.make_url(db_url).render_as_string()}: {first}") from None
    cluster = ReferenceCluster(settings, data_dir, db, store, limits or Limits(), _remove_data_dir=remove_data_dir)
    try:
        _start_nodes(cluster, policy)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _start_nodes(cluster: ReferenceCluster, policy: Policy) -> None:
    from .engine.deletions import DeletionLog
    from .engine.engine import CacheEngine
    from .engine.registry import CacheRegistry
    from .http.app import GlanceApp
    from .http.context import Authenticator
    from .http.identity import DEFAULT_USERS, IdentityService, UsersFileError, load_users_file
    from .http.request import Node

    settings = cluster.settings
    if settings.auth == "keystone":
        try:
            users = load_users_file(settings.users_file) if settings.users_file else DEFAULT_USERS
        except UsersFileError as exc:
            raise ConfigError(str(exc)) from None
        cluster.identity = IdentityService(cluster.db, users)
    authenticator: Authenticator = Authenticator(settings.auth, cluster.identity)

    listeners: list[Listener] = []
    admin_listeners: list[Listener | None] = []
    loop = LoopThread()  # every listener of this process on one event loop (see LoopThread)
    admin_host, admin_port = (
        parse_host_port(settings.cache_admin_bind, "--cache-admin-bind") if settings.cache_admin_bind else ("", 0)
    )
    for index in range(settings.nodes):
        port = settings.port + index if settings.port else 0
        listener = Listener(settings.bind, port, settings.threads, cluster.limits, loop)
        listeners.append(listener)
        cluster._listeners.append(listener)
        admin: Listener | None = None
        if settings.cache_admin_bind:
            admin_port_here = admin_port + index if admin_port else 0
            admin = Listener(admin_host, admin_port_here, settings.threads, cluster.limits, loop)
            cluster._listeners.append(admin)
        admin_listeners.append(admin)

    engines: list[CacheEngine] = []
    # One reader (and one polling thread) of the shared deletion log for every node of this process.
    deletion_log = DeletionLog(cluster.store)
    for index, listener in enumerate(listeners):
        url = listener.url
        engine: CacheEngine | None = None
        cache_dir: Path | None = None
        if settings.cache_enabled:
            cache_dir = _node_cache_dir(settings, cluster.data_dir, index, settings.self_reference_url or url)
            cache_dir.mkdir(parents=True, exist_ok=True)
            self_url = settings.self_reference_url or url
            if settings.cache_driver == "centralized_db":
                registry = CacheRegistry.centralized(cluster.db, self_url)
            else:
                registry = CacheRegistry.per_node_sqlite(cache_dir / settings.sqlite_db, self_url)
            engine = CacheEngine(
                node_url=self_url,
                cache_dir=cache_dir,
                store=cluster.store,
                registry=registry,
                max_size=settings.max_size,
                stall_time=settings.stall_time,
                workers=settings.cache_workers,
                deletion_log=deletion_log,
            )
            engine.start()
            engines.append(engine)
        node = Node(
            store=cluster.store,
            engine=engine,
            policy=policy,
            cache_driver=settings.cache_driver,
            legacy_only=settings.legacy_only,
        )
        app = GlanceApp(node, authenticator, identity=cluster.identity, added_latency=settings.added_latency)
        admin = admin_listeners[index]
        cluster.nodes.append(ClusterNode(index, url, engine, app, cache_dir, admin.url if admin is not None else None))
    # Deleting an image on any node purges it from every cache of this process's cluster.
    for cluster_node in cluster.nodes:
        cluster_node.app.node.on_image_deleted.extend(engine.purge_image for engine in engines)
    if cluster.identity is not None:
        cluster.identity.image_endpoint = cluster.nodes[0].url
        cluster.identity.identity_endpoint = f"{cluster.nodes[0].url}/identity"
    for cluster_node, listener, admin in zip(cluster.nodes, listeners, admin_listeners, strict=True):
        listener.start(cluster_node.app)
        if admin is not None:
            admin_app = GlanceApp(
                cluster_node.app.node, authenticator, admin_listener=True, added_latency=settings.added_latency
            )
            admin.start(admin_app)


@contextlib.contextmanager
def run_cluster(
    nodes: int = 1, *, settings: ServerSettings | None = None, limits: Limits | None = None, **options: Any
) -> Iterator[ReferenceCluster]:
    """Run ``nodes`` reference nodes for the duration of the ``with`` block.

    Options are ``ServerSettings`` fields (``bind``, ``port`` (default 0 here: ephemeral), ``data_dir``,
    ``auth``, ``cache_driver``, ``cache_enabled``, ``max_size``, ``stall_time``, ``registry_url``,
    ``policy_file``, ``users_file``, ``cache_admin_bind``, ``legacy_only``, ``added_latency``, ...);
    ``limits`` are the listeners' connection timeouts and limit. Raises ConfigError for bad settings.
    """
    if settings is None:
        options.setdefault("port", 0)
        for key in ("data_dir", "policy_file", "users_file", "cache_dir"):
            if options.get(key) is not None:
                options[key] = Path(options[key])
        try:
            settings = ServerSettings(nodes=nodes, **options)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None
    cluster = start_cluster(settings, limits)
    try:
        yield cluster
    finally:
        cluster.close()
