"""The OpenStackClient plugin contract for ``openstack cache ...``, and nothing else.

OSC imports this module on *every* ``openstack`` start (even ``--version`` and ``--help``), so it imports only the
standard library; glancecache_client and keystoneauth1 load inside functions, when a cache command runs.

``API_NAME`` is ``image_cache``, never ``image``: OSC does ``setattr(ClientManager, API_NAME, ...)``, so ``image``
would replace OSC's own image client. Commands live in the entry-point group ``openstack.image_cache.v2``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    import httpx
    from keystoneauth1.session import Session

    from glancecache_client import Cluster
    from glancecache_client.auth import TokenSource

__all__ = [
    "API_NAME",
    "API_VERSIONS",
    "API_VERSION_OPTION",
    "DEFAULT_API_VERSION",
    "ImageCacheAPI",
    "build_option_parser",
    "make_client",
]

API_NAME = "image_cache"
API_VERSION_OPTION = "os_image_cache_api_version"
DEFAULT_API_VERSION = "2"
API_VERSIONS = {"2": "glancecache_client.Cluster"}


class ImageCacheAPI:
    """What ``client_manager.image_cache`` is: OSC's keystoneauth session plus the image endpoint.

    The endpoint is resolved only when a command runs without ``--host`` (so ``--host`` never needs the catalog).
    Every Cluster built here shares the one session, so one token serves every node. ``endpoint_is_explicit``:
    the endpoint was named on the command line (``--os-endpoint``/``OS_ENDPOINT``), so no load-balancer
    warning. ``transport_factory`` (None: the library's own) reaches every Cluster: tests and embedders use it.
    """

    def __init__(
        self,
        session: Session,
        resolve_endpoint: Callable[[], str | None],
        *,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        region_name: str | None = None,
        endpoint_is_explicit: bool = False,
        transport_factory: Callable[[str], httpx.BaseTransport] | None = None,
    ) -> None:
        self.session = session
        self.endpoint_is_explicit = endpoint_is_explicit
        self.transport_factory = transport_factory
        self.verify = verify
        self.cert = cert
        self.region_name = region_name
        self._resolve_endpoint = resolve_endpoint
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        """The image endpoint from ``image_endpoint_override`` or the service catalog; LookupError if none."""
        if self._endpoint is None:
            from keystoneauth1 import exceptions as ks_exceptions

            try:
                found = self._resolve_endpoint()
            except ks_exceptions.EndpointNotFound:
                found = None
            if not found:
                region = f" in region {self.region_name}" if self.region_name else ""
                raise LookupError(
                    f"no image endpoint{region} in the service catalog: give --host NODE, or set "
                    f"image_endpoint_override (OS_IMAGE_ENDPOINT_OVERRIDE)"
                )
            from glancecache_client.nodes import catalog_endpoint

            self._endpoint = catalog_endpoint(found)
        return self._endpoint

    def token_source(self) -> TokenSource:
        """OSC's session as the library's token source (no token at all under ``--os-auth-type none``)."""
        from keystoneauth1 import noauth

        from glancecache_client.auth import NoAuth, SessionTokens

        auth = getattr(self.session, "auth", None)
        return NoAuth() if auth is None or isinstance(auth, noauth.NoAuth) else SessionTokens(self.session)

    def cluster(self, hosts: Sequence[str]) -> Cluster:
        """A Cluster over ``hosts`` authenticated by OSC's session."""
        from glancecache_client import Cluster

        return Cluster(
            hosts,
            token_source=self.token_source(),
            verify=self.verify,
            cert=self.cert,
            transport_factory=self.transport_factory,
        )


def make_client(instance: Any) -> ImageCacheAPI:
    """OSC's client factory: called once, on the first ``client_manager.image_cache`` access."""

    def resolve() -> str | None:
        endpoint = instance.get_endpoint_for_service_type(
            "image", region_name=instance.region_name, interface=instance.interface
        )
        return str(endpoint) if endpoint else None

    config = instance.get_configuration() if hasattr(instance, "get_configuration") else {}
    auth_options = config.get("auth") or {}
    # --os-endpoint/OS_ENDPOINT names the node itself (image_endpoint_override, like the catalog, is a default).
    explicit = bool(auth_options.get("endpoint") or config.get("endpoint"))
    return ImageCacheAPI(
        instance.session,
        resolve,
        verify=instance.verify,
        cert=instance.cert,
        region_name=instance.region_name,
        endpoint_is_explicit=explicit,
    )


def build_option_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The one global option: the plugin's API version (per-command ``--host`` lives on the commands)."""
    parser.add_argument(
        "--os-image-cache-api-version",
        metavar="<image-cache-api-version>",
        default=os.environ.get("OS_IMAGE_CACHE_API_VERSION", DEFAULT_API_VERSION),
        help=f"Image cache API version, default={DEFAULT_API_VERSION} (Env: OS_IMAGE_CACHE_API_VERSION)",
    )
    return parser
