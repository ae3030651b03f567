"""Our three front ends against a real cloud: Keystone 30 and Glance 33 behind keystonemiddleware.

The ``glance`` CLI and the real ``openstack`` command with our plugin (both from this virtualenv, as
subprocesses in a clean environment) and the library with real keystoneauth1 sessions each log in with a
password, an application credential, a pre-issued token and ``--os-cloud`` (the peer's clouds.yaml), and do real
cache work: an image uploaded through Glance's image API is queued, waited for until cached, found in the listing
and deleted from the cache; what Glance itself then holds is checked with the admin's own calls. The member user
``demo`` gets one line naming the 403 and exit status 3 from both commands, and a ``Forbidden`` from the library,
and nothing cached is lost.

    GLANCECACHE_INTEROP=1 .venv/bin/pytest tests/interop/test_real_cloud.py -q
"""

from __future__ import annotations

import json
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glancecache_client import CacheClient, Cluster, errors

from .conftest import interop_enabled
from .real_cloud import BIN, RealCloud, peer_missing, start_real_cloud, stop_real_cloud

pytestmark = [
    pytest.mark.slow,  # one peer start (~15 s) and about 25 command runs: about a minute in all
    # The first test's set-up starts the peer, which builds its virtualenv from PyPI where it is missing (CI);
    # every command and request below has its own timeout, so a hang still ends well before this.
    pytest.mark.timeout(900),
]

WAIT = 60.0  # seconds: a 6 KiB image is cached within about a second here; this only catches a hang


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Credentials:
    token: str  # from `openstack token issue`
    app_cred_id: str  # from `openstack application credential create`
    app_cred_secret: str


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCloud]:
    enabled, reason = interop_enabled()
    if not enabled:
        pytest.skip(reason)
    missing = peer_missing()
    if missing:
        pytest.skip(missing)
    try:
        real = start_real_cloud(tmp_path_factory.mktemp("real-cloud"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield real
    finally:
        stop_real_cloud(real)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def run(home: Path, tool: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run our ``glance`` or ``openstack`` in a clean environment: no OS_* or clouds.yaml of whoever runs the tests."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8", "COLUMNS": "250",
             "PYTHONWARNINGS": "ignore", **(env or {})}
    done = subprocess.run([str(BIN / tool), *args], env=clean, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def creds(cloud: RealCloud, home: Path) -> Credentials:
    admin = cloud.password_env("admin")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two `openstack` starts of ~1 s CPU each
        issuing = pool.submit(run, home, "openstack", "token", "issue", "-f", "value", "-c", "id", env=admin)
        creating = pool.submit(run, home, "openstack", "application", "credential", "create", "glancecache-interop",
                               "-f", "json", env=admin)
        issued, created = issuing.result(), creating.result()
    assert issued.returncode == 0, issued
    assert created.returncode == 0, created
    app_cred = json.loads(created.stdout)
    return Credentials(issued.stdout.strip(), app_cred["ID"], app_cred["Secret"])


def wait_cached_by_glance(cloud: RealCloud, image_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while image_id not in cloud.cached_ids():
        assert time.monotonic() < deadline, f"{image_id} not cached by Glance within {WAIT} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cached_image(cloud: RealCloud) -> str:
    """An image the admin has cached, for the member user to be refused on."""
    image_id = cloud.create_image("member-target", b"held by the admin " * 300)
    cloud.queue_as_admin(image_id)
    wait_cached_by_glance(cloud, image_id)
    return image_id


def image_content(label: str) -> bytes:
    return f"{label} ".encode() * (6144 // (len(label) + 1))


def row_for(rows: list[dict[str, Any]], image_id: str) -> dict[str, Any]:
    """The listing row of ``image_id``, its keys lowercased (so it reads the same whatever a front end's headers)."""
    found = [{key.lower(): value for key, value in row.items()} for row in rows if image_id in row.values()]
    assert len(found) == 1, f"{image_id} should be listed once in {rows}"
    return found[0]


def assert_gone(cloud: RealCloud, image_id: str) -> None:
    state = cloud.cache()
    listed = [entry["image_id"] for entry in state["cached_images"]] + state["queued_images"]
    assert image_id not in listed, state


# -- the two commands, every way of logging in ---------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    """How one front end is told who it is: global options, OS_* variables, and whether --host names the node."""

    options: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    host: bool = True


def cli_login(kind: str, cloud: RealCloud, creds: Credentials) -> Login:
    if kind == "password":
        return Login(("--os-auth-url", cloud.keystone_url, "--os-username", "admin", "--os-password", "admin",
                      "--os-project-name", "admin", "--os-user-domain-name", "Default",
                      "--os-project-domain-name", "Default"))
    if kind == "application credential":
        return Login(("--os-auth-url", cloud.keystone_url, "--os-auth-type", "v3applicationcredential",
                      "--os-application-credential-id", creds.app_cred_id,
                      "--os-application-credential-secret", creds.app_cred_secret))
    if kind == "token":
        return Login(("--os-token", creds.token))  # the token as issued, straight to the node
    assert kind == "cloud"
    return Login(("--os-cloud", "rk-admin"), (("OS_CLIENT_CONFIG_FILE", str(cloud.clouds_yaml)),))


def osc_login(kind: str, cloud: RealCloud, creds: Credentials) -> Login:
    if kind == "password":
        return Login(env=tuple(cloud.password_env("admin").items()))
    if kind == "application credential":
        return Login(env=(("OS_AUTH_URL", cloud.keystone_url), ("OS_AUTH_TYPE", "v3applicationcredential"),
                          ("OS_APPLICATION_CREDENTIAL_ID", creds.app_cred_id),
                          ("OS_APPLICATION_CREDENTIAL_SECRET", creds.app_cred_secret)))
    if kind == "token":
        return Login(("--os-auth-type", "token", "--os-token", creds.token, "--os-auth-url", cloud.keystone_url,
                      "--os-project-name", "admin", "--os-project-domain-name", "Default"))
    assert kind == "cloud"
    # No --host: the image endpoint comes from the catalog, as for any OSC command.
    return Login(("--os-cloud", "rk-admin"), (("OS_CLIENT_CONFIG_FILE", str(cloud.clouds_yaml)),), host=False)


LOGINS = ["password", "application credential", "token", "cloud"]


@pytest.mark.parametrize("kind", LOGINS)
@pytest.mark.parametrize("tool", ["glance", "openstack"])
def test_command_does_cache_work(cloud: RealCloud, creds: Credentials, home: Path, tool: str, kind: str) -> None:
    login = (cli_login if tool == "glance" else osc_login)(kind, cloud, creds)
    content = image_content(f"{tool} {kind}")
    image_id = cloud.create_image(f"{tool}-{kind}", content)

    def command(verb: str, *args: str) -> Result:
        """`glance [login] --host NODE cache-VERB ARGS` or `openstack [login] cache VERB ARGS [--host NODE]`."""
        if tool == "glance":
            argv = (*login.options, "--host", cloud.glance_url, f"cache-{verb}", *args)
        else:
            argv = (*login.options, "cache", verb, *args, *(("--host", cloud.glance_url) if login.host else ()))
        return run(home, tool, *argv, env=dict(login.env))

    queued = command("queue", "--wait", "--timeout", str(WAIT), image_id)
    assert queued.returncode == 0, queued
    assert image_id in cloud.cached_ids()

    listed = command("list", "-f", "json")
    assert listed.returncode == 0, listed
    row = row_for(json.loads(listed.stdout), image_id)
    assert (row["state"], row["size"]) == ("cached", len(content))
    if not login.host:  # the catalog's image endpoint, with the load-balancer warning naming it
        assert f"uses the image endpoint {cloud.glance_url};" in listed.stderr

    deleted = command("delete", image_id)
    assert deleted.returncode == 0, deleted
    if login.host:
        assert deleted.stderr == ""
    assert_gone(cloud, image_id)


def test_glance_cli_without_a_node_given(cloud: RealCloud, home: Path) -> None:
    """Only OS_* (or --os-cloud) and no --host: `glance` uses the catalog's image endpoint, as python-glanceclient
    does, and says in one line on stderr that a load-balanced endpoint shows one arbitrary node's cache."""
    image_id = cloud.create_image("catalog", b"via the catalog " * 100)
    cloud.queue_as_admin(image_id)
    wait_cached_by_glance(cloud, image_id)
    for options, env in (
        ((), cloud.password_env("admin")),
        (("--os-cloud", "rk-admin"), {"OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)}),
    ):
        listed = run(home, "glance", *options, "cache-list", "-f", "json", env=env)
        assert listed.returncode == 0, listed
        row = row_for(json.loads(listed.stdout), image_id)
        assert (row["state"], row["node"]) == ("cached", cloud.glance_url)
        warning = f"Warning: no --host given, so this uses the image endpoint {cloud.glance_url};"
        assert listed.stderr.startswith(warning), listed
        assert len(listed.stderr.splitlines()) == 1


# -- the library, with real keystoneauth1 sessions ----------------------------------------------------------


def library_identity(kind: str, cloud: RealCloud, creds: Credentials) -> tuple[str, dict[str, Any]]:
    """(node URL, identity keyword arguments of Cluster/CacheClient) for one way of logging in."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    if kind == "password":
        auth = v3.Password(auth_url=cloud.keystone_url, username="admin", password="admin", project_name="admin",
                           user_domain_id="default", project_domain_id="default")
        return cloud.glance_url, {"session": session.Session(auth=auth)}
    if kind == "application credential":
        auth = v3.ApplicationCredential(auth_url=cloud.keystone_url, application_credential_id=creds.app_cred_id,
                                        application_credential_secret=creds.app_cred_secret)
        return cloud.glance_url, {"auth": auth}
    if kind == "token":
        return cloud.glance_url, {"token": creds.token}
    assert kind == "cloud"
    from openstack import config

    with warnings.catch_warnings():
        # openstacksdk 4.22 warns that InfluxDB metrics are deprecated on every get_one, configured or not.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        region = config.OpenStackConfig(config_files=[str(cloud.clouds_yaml)]).get_one(cloud="rk-admin")
    keystone_session = region.get_session()
    # The node from the catalog, as an operator's script would find it.
    endpoint = keystone_session.get_endpoint(service_type="image", interface="public")
    return str(endpoint), {"session": keystone_session}


@pytest.mark.parametrize("kind", LOGINS)
def test_library_does_cache_work(cloud: RealCloud, creds: Credentials, kind: str) -> None:
    endpoint, identity = library_identity(kind, cloud, creds)
    assert endpoint.rstrip("/") == cloud.glance_url
    content = image_content(f"library {kind}")
    image_id = cloud.create_image(f"library-{kind}", content)

    with Cluster([endpoint], timeout=60, **identity) as cluster:
        cluster.queue(image_id).raise_first()
        cached = cluster.wait_cached(image_id, timeout=WAIT, interval=0.2)
        cached.raise_first()
        assert [(entry.image_id, entry.size) for entry in cached.values] == [(image_id, len(content))]

        listing = cluster.list()
        listing.raise_first()
        [state] = listing.values
        assert [entry.size for entry in state.cached if entry.image_id == image_id] == [len(content)]
        assert image_id not in state.queued

        cluster.delete(image_id).raise_first()
        assert image_id not in [entry.image_id for entry in cluster.list().values[0].cached]
    assert_gone(cloud, image_id)


# -- the member user: refused, in one line, exit 3, nothing lost ---------------------------------------------


@pytest.mark.parametrize(
    ("tool", "args", "action"),
    [
        ("glance", ("--host", "{node}", "cache-list"), "cache_list"),
        ("glance", ("--host", "{node}", "cache-delete", "{image}"), "cache_delete"),
        ("openstack", ("cache", "list", "--host", "{node}"), "cache_list"),
        ("openstack", ("cache", "delete", "{image}", "--host", "{node}"), "cache_delete"),
    ],
    ids=["glance cache-list", "glance cache-delete", "openstack cache list", "openstack cache delete"],
)
def test_member_user_is_refused_in_one_line_with_exit_3(
    cloud: RealCloud, cached_image: str, home: Path, tool: str, args: tuple[str, ...], action: str
) -> None:
    argv = [arg.format(node=cloud.glance_url, image=cached_image) for arg in args]
    done = run(home, tool, *argv, env=cloud.password_env("demo"))
    assert done.returncode == 3, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "HTTP 403" in lines[0] and f"not authorized to complete {action} action" in lines[0], lines[0]
    assert cached_image in cloud.cached_ids()


def test_wrong_password_is_one_line(cloud: RealCloud, home: Path) -> None:
    """Keystone refuses the login: `glance` says so in one line with exit 3; the plugin answers exactly as
    OSC's own commands do (OSC authenticates before any command of ours runs)."""
    wrong = {**cloud.password_env("admin"), "OS_PASSWORD": "wrong"}
    ours = run(home, "glance", "--host", cloud.glance_url, "cache-list", env=wrong)
    assert ours.returncode == 3, ours
    [line] = ours.stderr.splitlines()
    assert line.startswith(f"Error: authentication at {cloud.keystone_url} failed: ") and "(HTTP 401)" in line

    plugin = run(home, "openstack", "cache", "list", "--host", cloud.glance_url, env=wrong)
    osc_own = run(home, "openstack", "image", "list", env=wrong)
    assert plugin.returncode == osc_own.returncode != 0, (plugin, osc_own)
    assert len(plugin.stderr.splitlines()) == 1 and "(HTTP 401)" in plugin.stderr, plugin.stderr


def test_member_user_gets_a_typed_forbidden_from_the_library(cloud: RealCloud, cached_image: str) -> None:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    demo = v3.Password(auth_url=cloud.keystone_url, username="demo", password="demo", project_name="demo",
                       user_domain_id="default", project_domain_id="default")
    calls: list[Callable[[CacheClient], object]] = [
        lambda node: node.list(),
        lambda node: node.delete(cached_image),
    ]
    with CacheClient(cloud.glance_url, session=session.Session(auth=demo), timeout=60) as node:
        for call in calls:
            with pytest.raises(errors.Forbidden) as refused:
                call(node)
            assert (refused.value.status, refused.value.node) == (403, cloud.glance_url)
            assert "not authorized" in refused.value.explanation
    with Cluster([cloud.glance_url], auth=demo) as cluster:
        [failed] = cluster.list().errors
        assert isinstance(failed.error, errors.Forbidden)
    assert cached_image in cloud.cached_ids()
