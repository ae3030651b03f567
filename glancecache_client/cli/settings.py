"""What the global options mean: which nodes a command acts on, and where its tokens come from.

``Settings`` (kept in ``ctx.obj`` by the group) is the composition root: ``open_cluster`` resolves nodes
(``--host``, ``--all-nodes``, ``--os-image-url``, else the catalog's image endpoint), authenticates once
(keystoneauth1 session, clouds.yaml, static token or none) and builds the library's Cluster. Library modules, httpx
and keystoneauth1 are imported inside the methods so that ``--help`` and argument parsing load click alone.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from . import exitcodes
from .output import CliError

if TYPE_CHECKING:
    from glancecache_client.auth import TokenSource
    from glancecache_client.cluster import Cluster

__all__ = ["NodeChoice", "Settings"]


@dataclass(frozen=True)
class NodeChoice:
    """The node options as given at one level (before or after the command)."""

    hosts: tuple[str, ...] = ()
    all_nodes: bool = False
    node_set: str | None = None

    def merged(self, later: NodeChoice) -> NodeChoice:
        return NodeChoice(
            self.hosts + later.hosts,
            self.all_nodes or later.all_nodes,
            later.node_set or self.node_set,
        )


@dataclass
class Settings:
    """Global options, kept until a command asks for its Cluster."""

    nodes: NodeChoice
    image_url: str | None = None
    auth_type: str | None = None
    cloud: str | None = None
    region: str | None = None
    endpoint_type: str | None = None
    token: str | None = None
    identity: dict[str, str | None] = field(default_factory=dict)
    default_domain: str | None = "default"
    insecure: bool = False
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    timeout: float = 30.0
    debug: bool = False

    # -- nodes -----------------------------------------------------------------------------------------

    def endpoints(self, command_nodes: NodeChoice) -> list[str]:
        """The nodes named for this command (``--host``, ``--all-nodes``, ``--os-image-url``), as given: the
        library checks and normalises them, once. Empty when none was named (the catalog may still have one)."""
        from .config import hosts_from_env, load_node_set

        choice = self.nodes.merged(command_nodes)
        hosts = list(choice.hosts)
        if choice.all_nodes or choice.node_set:
            env_hosts = hosts_from_env()
            hosts += env_hosts if env_hosts and not choice.node_set else load_node_set(choice.node_set)
        if not hosts and self.image_url:
            hosts = [self.image_url]  # python-glanceclient compatibility: --os-image-url / OS_IMAGE_URL
        return hosts

    def catalog_endpoint(self, source: TokenSource) -> str:
        """The catalog's image endpoint, as python-glanceclient and OSC use it when no node is named."""
        from glancecache_client import auth
        from glancecache_client.nodes import catalog_endpoint

        from .output import error_boundary

        if not isinstance(source, auth.SessionTokens):
            raise _no_node()
        # As python-glanceclient: --os-endpoint-type (default public) and --os-region-name pick the endpoint.
        interface = self.endpoint_type or "public"
        from keystoneauth1.exceptions import EndpointNotFound

        with error_boundary():  # a failed login is an identity error, not a missing endpoint
            try:
                found = source.session.get_endpoint(service_type="image", interface=interface, region_name=self.region)
            except EndpointNotFound:  # raised by newer keystoneauth1; older ones return None
                found = None
        if not found:
            where = f"interface {interface}" + (f" in region {self.region}" if self.region else "")
            raise CliError(
                f"the catalog has no image endpoint for {where}: check --os-region-name and --os-endpoint-type,"
                " or name the nodes with --host HOST",
                exitcodes.USAGE,
            )
        return catalog_endpoint(str(found))

    # -- identity --------------------------------------------------------------------------------------

    @property
    def verify(self) -> bool | str:
        if self.insecure:
            return False
        return self.cacert or True

    @property
    def client_cert(self) -> str | tuple[str, str] | None:
        if self.key and not self.cert:
            raise CliError("--os-key needs --os-cert (the client certificate that key belongs to)", exitcodes.USAGE)
        if self.cert and self.key:
            return (self.cert, self.key)
        return self.cert

    def token_source(self) -> TokenSource:
        """Where tokens come from, authenticated once up front so one token serves every node."""
        from glancecache_client import auth

        auth_type = (self.auth_type or "").strip().lower()
        if auth_type in ("none", "noauth"):
            return auth.NoAuth()
        auth_url = self.identity.get("auth_url")
        if self.cloud:
            region = self._cloud_region()
            if str(region.config.get("auth_type") or "").lower() in ("none", "noauth"):
                return auth.NoAuth()
            source: TokenSource = auth.SessionTokens(self._cloud_session(region))
        elif self.token and not auth_url:
            return auth.StaticToken(self.token)
        elif auth_url or auth_type:
            auth_type = self._plugin_name(auth_type)
            source = auth.SessionTokens(self._keystone_session(auth_type))
        else:
            return auth.NoAuth()  # nothing given: a noauth node works; a keystone one answers 401 with a hint
        self._authenticate(source, auth_type)
        return source

    def _plugin_name(self, auth_type: str) -> str:
        """The keystoneauth1 plugin: as given, else guessed from the options as python-openstackclient does."""
        if auth_type:
            return auth_type
        if self.token:
            return "token"
        if self.identity.get("application_credential_id") or self.identity.get("application_credential_secret"):
            return "v3applicationcredential"
        return "password"

    def _keystone_session(self, auth_type: str) -> Any:
        from glancecache_client import auth

        options: dict[str, object] = dict(self.identity)
        options["token"] = self.token
        if self.default_domain and auth_type in _DEFAULT_DOMAIN_PLUGINS:
            # As python-openstackclient does: v3 needs domains, and most clouds keep users in "default".
            # That also serves an application credential named with --os-username; and a stray
            # --os-project-name then reaches Keystone, whose "cannot request a scope" says more than
            # keystoneauth1 asking for a project domain.
            if not (options.get("user_domain_name") or options.get("user_domain_id")):
                options["user_domain_id"] = self.default_domain
            if not (options.get("project_domain_name") or options.get("project_domain_id")):
                options["project_domain_id"] = self.default_domain
        # An unreadable CA or certificate file is InvalidInput: the error boundary makes it exit 2.
        session = auth.keystone_session(
            auth_type, options, verify=self.verify, cert=self.client_cert, timeout=self.timeout
        )
        if auth_type in ("password", "v3password") and not self.identity.get("password"):
            # keystoneauth1 would fail later with a bare Exception and a traceback.
            raise CliError(
                "no password given: set --os-password or OS_PASSWORD (or use --os-token, or --os-cloud with a "
                "clouds.yaml cloud)",
                exitcodes.USAGE,
            )
        return session

    def _cloud_region(self) -> Any:
        """The cloud's settings, read by OpenStack's own loader (openstacksdk's openstack.config): clouds.yaml
        wherever OSC finds it (``OS_CLIENT_CONFIG_FILE``, ./, ~/.config/openstack/, /etc/openstack/), merged with
        secure.yaml. A cloud's image endpoint (``image_endpoint_override``, ``image_endpoint``, or ``auth.endpoint``
        with ``auth_type: none``) is the node when no --host is given; its TLS settings apply unless overridden."""
        try:
            from openstack import config as os_config
        except ImportError:
            raise CliError(
                "--os-cloud needs openstacksdk (pip install 'glancecache-client[cli]') to read clouds.yaml; "
                "or give --os-auth-url, --os-username and --os-password",
                exitcodes.USAGE,
            ) from None
        try:
            region = os_config.OpenStackConfig().get_one(cloud=self.cloud)
            endpoint = region.get_endpoint("image")
        except Exception as exc:  # openstack.config raises its own exception tree for a bad clouds.yaml
            raise CliError(f"--os-cloud {self.cloud}: {' '.join(str(exc).split())}", exitcodes.USAGE) from None
        if not self.image_url and endpoint:
            self.image_url = str(endpoint)
        if not self.insecure and not self.cacert:
            verify = region.config.get("verify", True)
            self.insecure = verify is False
            self.cacert = region.config.get("cacert") or None
        if not self.cert and region.config.get("cert"):
            self.cert = str(region.config["cert"])
            self.key = self.key or region.config.get("key") or None
        return region

    def _cloud_session(self, region: Any) -> Any:
        auth_type = str(region.config.get("auth_type") or "password").lower()
        if auth_type in ("password", "v3password") and not region.config.get("auth", {}).get("password"):
            raise CliError(
                f"--os-cloud {self.cloud}: the cloud has no password: add one to its auth section in clouds.yaml "
                "or secure.yaml, or set OS_PASSWORD",
                exitcodes.USAGE,
            )
        try:
            return region.get_session()
        except Exception as exc:  # openstack.config's errors for an unusable auth section
            raise CliError(f"--os-cloud {self.cloud}: {' '.join(str(exc).split())}", exitcodes.USAGE) from None

    def _authenticate(self, source: TokenSource, auth_type: str) -> None:
        from .output import error_boundary

        auth_url = self.identity.get("auth_url") or (f"cloud {self.cloud}" if self.cloud else "keystone")
        with error_boundary():
            try:
                source.get_token()
            except Exception as exc:
                if type(exc) is Exception:  # keystoneauth1's "... is a required attribute" for a missing option
                    raise CliError(
                        f"authentication at {auth_url} cannot start: {exc} (give it with the --os-* options "
                        "or OS_* variables)",
                        exitcodes.USAGE,
                    ) from None
                if not type(exc).__module__.startswith("keystoneauth1"):
                    raise
                code = exitcodes.for_error(exc)
                if code != exitcodes.AUTH:
                    hint = " (check --os-auth-url)"
                elif auth_type == "v3applicationcredential":
                    hint = (
                        " (check --os-application-credential-id, or --os-application-credential-name with"
                        " --os-username, and --os-application-credential-secret, or OS_* variables; a credential"
                        " carries its own project, so give no --os-project-* option)"
                    )
                else:
                    hint = " (check --os-username/--os-password, --os-project-name and the domains, or OS_* variables)"
                message = _short_keystone_message(exc)
                raise CliError(f"authentication at {auth_url} failed: {message}{hint}", code) from None

    # -- composition -------------------------------------------------------------------------------------

    def open_cluster(
        self, command_nodes: NodeChoice, *, transport_factory: Callable[[str], Any] | None = None, warn: bool = True
    ) -> Cluster:
        """The Cluster a command (or the exporter) works on; raises CliError (one line, exit status) for anything
        wrong, whoever calls it.

        With no node named, the catalog's image endpoint is used, with the one-line load-balancer warning
        (unless ``warn`` is False: for answers every node shares). ``transport_factory`` goes to the Cluster.
        """
        from .output import error_boundary

        with error_boundary():
            return self._open_cluster(command_nodes, transport_factory, warn)

    def _open_cluster(
        self, command_nodes: NodeChoice, transport_factory: Callable[[str], Any] | None, warn: bool
    ) -> Cluster:
        if self.debug:
            _enable_debug_log()
        else:
            _silence_library_warnings()
        # urllib3 (under keystoneauth1) warns on every unverified request, two lines each; the one line below
        # says it once.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        # Usage errors first, before the HTTP stack loads; except that clouds.yaml may name the node
        # (image_endpoint_override), which is known only once the cloud is read.
        endpoints = [] if self.cloud else self.endpoints(command_nodes)
        if not endpoints and not self.cloud and not self.identity.get("auth_url"):
            raise _no_node()  # nothing to read a catalog from
        source = self.token_source()
        endpoints = endpoints or self.endpoints(command_nodes)
        if not endpoints:
            endpoint = self.catalog_endpoint(source)
            if warn:
                from glancecache_client.operations import catalog_warning

                click.echo(catalog_warning(endpoint), err=True)
            endpoints = [endpoint]
        if self.insecure:
            click.echo(
                "Warning: TLS verification is off (--insecure/OS_INSECURE): certificates of the nodes and "
                "Keystone are not checked",
                err=True,
            )

        from glancecache_client.cluster import Cluster

        # (The library loads no CA bundle for plain-http nodes, so a local cache-list does not pay for TLS.)
        return Cluster(
            endpoints,
            token_source=source,
            verify=self.verify,
            cert=self.client_cert,
            timeout=self.timeout,
            transport_factory=transport_factory,
        )


def _no_node() -> CliError:
    return CliError(
        "no node given: use --host HOST (repeatable), --all-nodes or --os-image-url URL, or Keystone credentials "
        "whose catalog has an image endpoint",
        exitcodes.USAGE,
    )


_DEFAULT_DOMAIN_PLUGINS = ("password", "v3password", "token", "v3token", "v3applicationcredential")


def _short_keystone_message(exc: BaseException) -> str:
    """keystoneauth1's text, cut before urllib3's retry details (which repeat the URL and say nothing new)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    for noise in (": HTTPConnectionPool(", ": HTTPSConnectionPool("):
        head, found, _ = message.partition(noise)
        if found:
            return head + (": connection refused" if "refused" in message.lower() else "")
    return message


def _silence_library_warnings() -> None:
    """keystoneauth1 logs warnings (e.g. "Failed to discover available identity versions") that would add a
    second line to the one-line error; without --debug the error itself says what matters."""
    import logging

    logging.getLogger("keystoneauth").addHandler(logging.NullHandler())
    logging.getLogger("keystoneauth").propagate = False


def _enable_debug_log() -> None:
    """HTTP trace on stderr. The library and keystoneauth1 redact tokens and never log passwords."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("DEBUG %(name)s: %(message)s"))
    for name in ("glancecache_client", "keystoneauth"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
