"""The ``glance`` command group: global options, one-line usage errors, and the cache-commands-only notice.

The group callback only records options (``Settings`` in ``ctx.obj``, see settings.py); the Cluster is built
when a command runs, because ``--host`` may also be written after the command.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._version import __version__
from . import exitcodes
from .settings import NodeChoice, Settings

__all__ = ["SECONDS", "TIMEOUT_HELP", "cli", "node_options"]

F = TypeVar("F", bound=Callable[..., Any])

# Shown only when python-glanceclient is not installed: otherwise dispatch.py hands it every other command.
OTHER_COMMANDS_HINT = (
    "this glance provides the image-cache commands only; python-glanceclient provides the others here "
    "(pip install python-glanceclient), or use 'openstack image ...' (python-openstackclient)"
)

COMPLETION_HELP = """\b
Shell completion (use _GLANCECACHE_COMPLETE for the glancecache name):
  bash: eval "$(_GLANCE_COMPLETE=bash_source glance)"   in ~/.bashrc
  zsh:  eval "$(_GLANCE_COMPLETE=zsh_source glance)"    in ~/.zshrc
  fish: _GLANCE_COMPLETE=fish_source glance > ~/.config/fish/completions/glance.fish"""

EXAMPLES_HELP = """\b
Examples:
  glance --host glance1 cache-list
  glance -H glance1 -H glance2:9292 cache-queue 3c021162-1e38-461a-a362-e154bf54e241 --wait
  glance --all-nodes cache-list -f value -c image_id | glance --all-nodes cache-delete --ignore-missing -"""


def node_options(command: F) -> F:
    """``--host/-H``, ``--all-nodes`` and ``--node-set``, passed on as ``nodes=NodeChoice``.

    Used on the group (Glance's documented ``glance --host=<HOST> cache-list``) and on every command.
    """
    import functools

    @click.option(
        "-H",
        "--host",
        "hosts",
        multiple=True,
        metavar="HOST",
        help="Node to act on: host, host:port or URL (repeatable; bare hosts get port 9292).",
    )
    @click.option(
        "--all-nodes",
        is_flag=True,
        help="Act on every node of GLANCECACHE_HOSTS (comma-separated), else of the configured node set.",
    )
    @click.option(
        "--node-set",
        metavar="NAME",
        envvar="GLANCECACHE_NODE_SET",
        help="With --all-nodes: this named set from the config file (implies --all-nodes).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, hosts: tuple[str, ...], all_nodes: bool, node_set: str | None, **kwargs: Any) -> Any:
        return command(*args, nodes=NodeChoice(hosts, all_nodes, node_set), **kwargs)

    return wrapper  # type: ignore[return-value]


class Seconds(click.ParamType):  # type: ignore[type-arg,unused-ignore]  # generic from click 8.2
    """A positive, finite number of seconds (``nan``, ``inf``, 0 and negative values are usage errors)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{value!r} is not a positive, finite number of seconds", param, ctx)
        return seconds


SECONDS = Seconds()

TIMEOUT_HELP = (
    "Seconds each HTTP request may take as a whole: connecting, sending and reading the complete answer "
    "(a node that sends slowly is cut off too)."
)


class Interrupted(click.ClickException):
    """Ctrl-C: one line and exit status 130 (128 + SIGINT), as shells report an interrupted command."""

    exit_code = exitcodes.INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted: requests already sent to nodes may have taken effect")


# -- the group ------------------------------------------------------------------------------------------


class CacheGroup(click.Group):
    """A group whose usage errors are one line, and which explains that it has only the cache commands."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None and not ctx.resilient_parsing:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1, cutoff=0.85)
            suggestion = f"did you mean '{close[0]}'? Otherwise " if close else ""
            raise click.UsageError(f"no command '{name}': {suggestion}{OTHER_COMMANDS_HINT}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else exitcodes.OK
        except click.UsageError as exc:
            code = _show_usage_error(exc)
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except click.exceptions.Abort as exc:
            if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):  # Ctrl-C while parsing
                Interrupted().show()
                code = exitcodes.INTERRUPTED
            else:  # EOF at a confirmation prompt
                click.echo("Aborted.", err=True)
                code = exitcodes.ERROR
        except KeyboardInterrupt:
            Interrupted().show()
            code = exitcodes.INTERRUPTED
        if standalone_mode:
            sys.exit(code)
        return code


def _show_usage_error(exc: click.UsageError) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `glance`: the help is the answer
        exc.show()
        return exc.exit_code
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    message = " ".join(exc.format_message().split())
    click.echo(f"Error: {message}{hint}", err=True)
    return exc.exit_code


def _identity_option(name: str, envvar: str, help_text: str, *, hidden: bool = False) -> Callable[[F], F]:
    return click.option(name, envvar=envvar, show_envvar=True, metavar="TEXT", help=help_text, hidden=hidden)


IDENTITY_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--os-auth-url", "OS_AUTH_URL", "Keystone URL, e.g. https://keystone.example.com/v3."),
    ("--os-username", "OS_USERNAME", "User name for password authentication."),
    ("--os-user-id", "OS_USER_ID", "User id (instead of --os-username)."),
    ("--os-password", "OS_PASSWORD", "Password."),
    ("--os-project-name", "OS_PROJECT_NAME", "Project to scope the token to."),
    ("--os-project-id", "OS_PROJECT_ID", "Project id (instead of --os-project-name)."),
    ("--os-user-domain-name", "OS_USER_DOMAIN_NAME", "Domain of the user."),
    ("--os-user-domain-id", "OS_USER_DOMAIN_ID", "Domain id of the user."),
    ("--os-project-domain-name", "OS_PROJECT_DOMAIN_NAME", "Domain of the project."),
    ("--os-project-domain-id", "OS_PROJECT_DOMAIN_ID", "Domain id of the project."),
    ("--os-application-credential-id", "OS_APPLICATION_CREDENTIAL_ID", "Application credential id."),
    ("--os-application-credential-name", "OS_APPLICATION_CREDENTIAL_NAME", "Application credential name."),
    ("--os-application-credential-secret", "OS_APPLICATION_CREDENTIAL_SECRET", "Application credential secret."),
)


def identity_options(command: F) -> F:
    for name, envvar, help_text in reversed(IDENTITY_OPTIONS):
        command = _identity_option(name, envvar, help_text)(command)
    return command


@click.group(
    cls=CacheGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\n\n".join((EXAMPLES_HELP, exitcodes.HELP, COMPLETION_HELP)),
)
@click.version_option(__version__, "--version", message="%(prog)s (glancecache-client) %(version)s")
@node_options
@click.option(
    "--os-image-url",
    envvar="OS_IMAGE_URL",
    show_envvar=True,
    metavar="URL",
    help=(
        "The node to use when no --host is given (python-glanceclient compatibility); without either, the Keystone"
        " catalog's image endpoint."
    ),
)
@click.option(
    "--os-auth-type",
    envvar="OS_AUTH_TYPE",
    show_envvar=True,
    metavar="TYPE",
    help="keystoneauth1 plugin: password, token, v3applicationcredential, ... or none (noauth nodes).",
)
@click.option("--os-cloud", envvar="OS_CLOUD", show_envvar=True, metavar="NAME", help="Cloud from clouds.yaml.")
@click.option(
    "--os-region-name",
    envvar="OS_REGION_NAME",
    show_envvar=True,
    metavar="NAME",
    help="Region of the catalog's image endpoint (used when no node is named).",
)
@click.option(
    "--os-endpoint-type",
    "--os-interface",
    "os_endpoint_type",
    envvar=["OS_ENDPOINT_TYPE", "OS_INTERFACE"],
    show_envvar=True,
    metavar="TYPE",
    help="Interface of the catalog's image endpoint: public (the default), internal or admin.",
)
@click.option(
    "--os-token",
    envvar="OS_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="A token to send as is (no --os-auth-url) or to rescope (with --os-auth-url).",
)
@click.option("--os-auth-token", envvar="OS_AUTH_TOKEN", hidden=True)
@identity_options
@click.option(
    "--os-default-domain",
    envvar="OS_DEFAULT_DOMAIN",
    show_envvar=True,
    default="default",
    metavar="ID",
    help="Domain id used for user and project when no domain option is given.  [default: default]",
)
@click.option(
    "--insecure",
    is_flag=True,
    envvar="OS_INSECURE",
    show_envvar=True,
    help="Do not verify the nodes' or Keystone's TLS certificates (OS_INSECURE=true as in OSC).",
)
@click.option("--os-cacert", envvar="OS_CACERT", show_envvar=True, metavar="PATH", help="CA bundle for TLS.")
@click.option("--os-cert", envvar="OS_CERT", show_envvar=True, metavar="PATH", help="Client certificate for TLS.")
@click.option("--os-key", envvar="OS_KEY", show_envvar=True, metavar="PATH", help="Client certificate key for TLS.")
@click.option("--timeout", type=SECONDS, default=30.0, show_default=True, help=TIMEOUT_HELP)
@click.option("--os-image-api-version", hidden=True)  # accepted and ignored: the cache API is always v2
@click.option("-d", "--debug", is_flag=True, help="Trace HTTP requests on stderr (tokens redacted).")
@click.pass_context
def cli(ctx: click.Context, /, nodes: NodeChoice, **options: Any) -> None:
    """See and manage the Glance image cache of one node or all of them.

    Pick nodes with --host (before or after the command, repeatable) or --all-nodes; with several nodes every
    command runs on all of them at once. Rows always start with a node column. With no node given, the image
    endpoint of --os-image-url or the Keystone catalog is used, with a warning that a load balancer shows one
    arbitrary node.
    """
    identity = {
        name[2:].replace("-", "_").removeprefix("os_"): options[name[2:].replace("-", "_")]
        for name, _, _ in IDENTITY_OPTIONS
    }
    ctx.obj = Settings(
        nodes=nodes,
        image_url=options["os_image_url"],
        auth_type=options["os_auth_type"],
        cloud=options["os_cloud"],
        region=options["os_region_name"],
        endpoint_type=options["os_endpoint_type"],
        token=options["os_token"] or options["os_auth_token"],
        identity=identity,
        default_domain=options["os_default_domain"],
        insecure=options["insecure"],
        cacert=options["os_cacert"],
        cert=options["os_cert"],
        key=options["os_key"],
        timeout=options["timeout"],
        debug=options["debug"],
    )
