"""The installed ``glance`` against a 2-node reference cluster in keystone mode: every way to authenticate,
and exit status 3 for a wrong password, a missing token and a non-admin user."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from glancecache_client.cli import exitcodes
from glancecache_client.server.runner import ReferenceCluster, run_cluster

from .test_e2e_cluster import DATA, assert_no_traceback, glance, hosts


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    with run_cluster(nodes=2, auth="keystone", data_dir=tmp_path_factory.mktemp("keystone")) as running:
        yield running


def password_args(cluster: ReferenceCluster, user: str = "admin", password: str = "admin", project: str = "admin"):
    return [
        "--os-auth-url", cluster.identity_url, "--os-username", user, "--os-password", password,
        "--os-project-name", project,
    ]  # fmt: skip


def token_for(cluster: ReferenceCluster) -> str:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=cluster.identity_url, username="admin", password="admin", project_name="admin",
        user_domain_id="default", project_domain_id="default",
    )  # fmt: skip
    return str(session.Session(auth=auth).get_token())


def test_password_auth_fetches_one_token_for_every_node(keystone):
    image = keystone.upload_image(DATA, name="ks")
    before = keystone.tokens_issued
    queued = glance(
        *password_args(keystone),
        *hosts(keystone.urls),
        "cache-queue",
        "--wait",
        "--interval",
        "0.1",
        "--timeout",
        "30",
        image,
    )
    assert queued.returncode == 0, queued.stderr
    assert keystone.tokens_issued == before + 1
    listed = glance(*password_args(keystone), *hosts(keystone.urls), "cache-list", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    assert {row["node"] for row in json.loads(listed.stdout) if row["image_id"] == image} == set(keystone.urls)


def test_password_auth_from_os_environment_variables(keystone):
    env = {
        "OS_AUTH_URL": keystone.identity_url, "OS_USERNAME": "admin", "OS_PASSWORD": "admin",
        "OS_PROJECT_NAME": "admin", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
    }  # fmt: skip
    result = glance(*hosts(keystone.urls), "cache-list", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_wrong_password_exits_3_with_one_line_and_no_secret(keystone):
    result = glance(*password_args(keystone, password="not-the-password"), *hosts(keystone.urls), "cache-list")
    assert result.returncode == exitcodes.AUTH
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: authentication at {keystone.identity_url} failed")
    assert "--os-password" in lines[0] and "not-the-password" not in lines[0]
    assert_no_traceback(result)


def test_a_member_is_refused_by_the_admin_only_cache_api_with_exit_3(keystone):
    result = glance(*password_args(keystone, "demo", "demo", "demo"), *hosts(keystone.urls), "cache-list")
    assert result.returncode == exitcodes.AUTH
    assert result.stderr.count("HTTP 403") == 2 and "admin role" in result.stderr


def test_no_credentials_against_a_keystone_node_exits_3_with_a_hint(keystone):
    result = glance(*hosts(keystone.urls[:1]), "cache-list")
    assert result.returncode == exitcodes.AUTH
    assert "HTTP 401" in result.stderr and "--os-auth-url" in result.stderr
    none = glance("--os-auth-type", "none", *hosts(keystone.urls[:1]), "cache-list")
    assert none.returncode == exitcodes.AUTH


def test_a_token_without_auth_url_is_sent_as_is_and_debug_redacts_it(keystone):
    token = token_for(keystone)
    result = glance("-d", "--os-token", token, *hosts(keystone.urls), "cache-list", "-f", "json")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert "GET " in result.stderr and "<redacted>" in result.stderr
    assert token not in result.stderr
    legacy = glance("--os-auth-token", token, "--os-image-url", keystone.urls[0], "cache-list")
    assert legacy.returncode == 0, legacy.stderr


def test_os_cloud_reads_clouds_yaml(keystone, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n"
        "  lab:\n"
        "    auth:\n"
        f"      auth_url: {keystone.identity_url}\n"
        "      username: admin\n"
        "      password: admin\n"
        "      project_name: admin\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
    )
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
    result = glance("--os-cloud", "lab", *hosts(keystone.urls), "cache-list", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)
    wrong = glance("--os-cloud", "nope", *hosts(keystone.urls), "cache-list", env=env)
    assert wrong.returncode == exitcodes.USAGE and "nope" in wrong.stderr


# -- one line and the documented status for every way identity can be wrong (issue 8), clouds.yaml (issue 9) --


def one_line(result) -> str:
    assert_no_traceback(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_a_rejected_token_is_named_in_the_hint(keystone):
    result = glance(*hosts(keystone.urls[:1]), "cache-list", env={"OS_TOKEN": "bogus"})
    assert result.returncode == exitcodes.AUTH
    line = one_line(result)
    assert "HTTP 401" in line and "rejected the token given with --os-token/OS_TOKEN" in line
    assert "give credentials" not in line


def test_a_user_name_without_a_password_is_a_usage_error(keystone):
    env = {"OS_AUTH_URL": keystone.identity_url, "OS_USERNAME": "admin", "OS_PROJECT_NAME": "admin"}
    result = glance(*hosts(keystone.urls[:1]), "cache-list", env=env)
    assert result.returncode == exitcodes.USAGE
    assert "OS_PASSWORD" in one_line(result)


def write_clouds(directory, auth: str, extra: str = "") -> dict[str, str]:
    clouds = directory / "clouds.yaml"
    clouds.write_text("clouds:\n  lab:\n" + extra + "    auth:\n" + auth)
    return {"OS_CLIENT_CONFIG_FILE": str(clouds)}


def lab_auth(keystone: ReferenceCluster, password: bool = True) -> str:
    return (
        f"      auth_url: {keystone.identity_url}\n"
        "      username: admin\n"
        + ("      password: admin\n" if password else "")
        + "      project_name: admin\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
    )


def test_a_cloud_without_a_password_is_a_usage_error(keystone, tmp_path):
    env = write_clouds(tmp_path, lab_auth(keystone, password=False))
    result = glance("--os-cloud", "lab", *hosts(keystone.urls[:1]), "cache-list", env=env)
    assert result.returncode == exitcodes.USAGE
    line = one_line(result)
    assert "lab" in line and "password" in line


def test_secure_yaml_supplies_the_password_and_the_cloud_names_the_node(keystone, tmp_path):
    # No --host: the cloud's image endpoint is the node; the password comes from secure.yaml beside it.
    env = write_clouds(
        tmp_path, lab_auth(keystone, password=False), f"    image_endpoint_override: {keystone.urls[0]}\n"
    )
    secure = tmp_path / "secure.yaml"
    secure.write_text("clouds:\n  lab:\n    auth:\n      password: admin\n")
    env["OS_CLIENT_SECURE_FILE"] = str(secure)
    result = glance("--os-cloud", "lab", "cache-list", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_a_noauth_cloud_with_an_endpoint_reaches_its_node(tmp_path):
    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path / "data") as noauth:
        env = write_clouds(tmp_path, f"      endpoint: {noauth.url}\n", "    auth_type: none\n")
        result = glance("--os-cloud", "lab", "cache-list", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_insecure_keystone_over_tls_prints_one_warning_line(tmp_path):
    from tests.tls import TLSProxy, make_certificates

    certs = make_certificates(tmp_path / "pki")
    with run_cluster(nodes=1, auth="keystone", data_dir=tmp_path / "data") as cluster:
        proxy = TLSProxy(cluster.url, certs)
        try:
            identity = proxy.url + cluster.identity_url.removeprefix(cluster.url)
            result = glance(
                "--insecure", "--os-auth-url", identity, "--os-username", "admin", "--os-password", "admin",
                "--os-project-name", "admin", "-H", proxy.url, "cache-list", "-f", "json",
            )  # fmt: skip
        finally:
            proxy.close()
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Warning: TLS verification is off (--insecure/OS_INSECURE): certificates of the nodes and Keystone are "
        "not checked"
    ]


def test_region_and_endpoint_type_choose_the_catalogs_image_endpoint(keystone):
    # python-glanceclient's --os-region-name and --os-endpoint-type (OSC's OS_INTERFACE too) pick the endpoint.
    env = {
        "OS_AUTH_URL": keystone.identity_url, "OS_USERNAME": "admin", "OS_PASSWORD": "admin",
        "OS_PROJECT_NAME": "admin", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
    }  # fmt: skip
    chosen = glance("--os-region-name", "RegionOne", "--os-endpoint-type", "internal", "cache-list", env=env)
    assert chosen.returncode == 0, chosen.stderr
    assert keystone.urls[0] in chosen.stderr  # the load-balancer warning names the endpoint it used
    for extra_env, args, fragment in (
        ({}, ["--os-region-name", "Nowhere"], "interface public in region Nowhere"),
        ({"OS_REGION_NAME": "Nowhere"}, [], "interface public in region Nowhere"),
        ({"OS_INTERFACE": "bogus"}, [], "interface bogus:"),
    ):
        missing = glance(*args, "cache-list", env={**env, **extra_env})
        assert missing.returncode == exitcodes.USAGE, missing.stderr
        assert missing.stderr.splitlines() == [
            f"Error: the catalog has no image endpoint for {fragment.rstrip(':')}: check --os-region-name and"
            " --os-endpoint-type, or name the nodes with --host HOST"
        ]
        assert_no_traceback(missing)


def test_no_node_uses_the_catalogs_image_endpoint_with_the_load_balancer_warning(keystone):
    # As python-glanceclient does with only OS_* set: the catalog names the image endpoint.
    env = {
        "OS_AUTH_URL": keystone.identity_url, "OS_USERNAME": "admin", "OS_PASSWORD": "admin",
        "OS_PROJECT_NAME": "admin", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
    }  # fmt: skip
    result = glance("cache-list", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(row["node"] == keystone.urls[0] for row in rows)  # the reference catalog names node 0
    assert result.stderr == (
        f"Warning: no --host given, so this uses the image endpoint {keystone.urls[0]}; if it is load-balanced, you"
        " see one arbitrary node's cache. Give --host NODE (repeatable) to choose nodes.\n"
    )
    named = glance("--os-image-url", keystone.urls[1], "cache-list", "-f", "json", env=env)
    assert (named.returncode, named.stderr) == (0, "")  # the endpoint was named: no warning
    nodes_list = glance("cache-nodes-list", str(__import__("uuid").uuid4()), "-f", "json", env=env)
    assert "Warning" not in nodes_list.stderr  # a cluster-wide answer: a load balancer changes nothing
