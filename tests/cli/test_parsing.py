"""Parsing, help and one-line error messages, through click's CliRunner (no Glance node needed)."""

from __future__ import annotations

import re

import pytest

from glancecache_client.cli import cli, exitcodes

from .conftest import dead_address, one_line_error

COMMANDS = [
    "cache-list",
    "cache-queue",
    "cache-delete",
    "cache-clear",
    "cache-clean",
    "cache-prune",
    "cache-nodes-list",
    "cache-sync",  # beyond glanceclient's: desired state, and how each node stands
    "cache-summary",
]
IMAGE = "3c021162-1e38-461a-a362-e154bf54e241"


def test_the_group_has_exactly_the_glanceclient_cache_commands(invoke):
    assert sorted(c for c in cli.list_commands(None) if c != "help") == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_own_help_with_a_runnable_example(invoke, command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: glance {command} ")
    examples = re.findall(r"^\s+(glance .*)$", result.stdout, re.M)
    assert examples, result.stdout
    assert any(f" {command}" in line for line in examples)
    # the example lines parse: the command name and every option they use exist
    assert "--host" in result.stdout


def test_glanceclient_style_help_command_still_works(invoke):
    result = invoke("help", "cache-queue")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: glance cache-queue ")


def test_top_level_help_documents_exit_codes_and_completion(invoke):
    result = invoke("--help")
    assert result.exit_code == 0
    for code in range(7):
        assert re.search(rf"^\s+{code}  \S", result.stdout, re.M), code
    assert "_GLANCE_COMPLETE=bash_source" in result.stdout
    assert "zsh_source" in result.stdout and "fish_source" in result.stdout


def test_exit_code_constants_match_the_documentation():
    assert (exitcodes.OK, exitcodes.ERROR, exitcodes.USAGE, exitcodes.AUTH) == (0, 1, 2, 3)
    assert (exitcodes.NOT_FOUND, exitcodes.UNAVAILABLE, exitcodes.PARTIAL) == (4, 5, 6)


def test_version(invoke):
    from glancecache_client._version import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"glance (glancecache-client) {__version__}"


def test_a_glanceclient_command_says_this_glance_has_only_cache_commands(invoke):
    result = invoke("image-list")
    assert result.exit_code == exitcodes.USAGE
    line = one_line_error(result)
    assert "'image-list'" in line and "cache commands only" in line and "openstack image" in line


def test_a_misspelt_command_gets_a_suggestion(invoke):
    line = one_line_error(invoke("cache-lst"))
    assert "did you mean 'cache-list'" in line


def test_unknown_option_is_one_line_with_exit_2(invoke):
    result = invoke("--host", "g1", "cache-list", "--bogus")
    assert result.exit_code == exitcodes.USAGE
    line = one_line_error(result)
    assert "--bogus" in line and "glance cache-list --help" in line


def test_unknown_format_is_a_usage_error(invoke):
    result = invoke("-H", "g1", "cache-list", "-f", "xml")
    assert result.exit_code == 2
    assert "xml" in one_line_error(result)


def test_list_filters_refuse_bad_values_before_asking_any_node(invoke):
    dead = dead_address()  # an answer from no node: the filters are checked first
    bad_image = invoke("-H", dead, "cache-list", "--image", "not-an-id")
    assert bad_image.exit_code == exitcodes.USAGE
    assert "not-an-id" in one_line_error(bad_image) and "refused" not in bad_image.stderr
    bad_state = invoke("-H", dead, "cache-list", "--state", "cooking")
    assert bad_state.exit_code == exitcodes.USAGE
    assert "cooking" in one_line_error(bad_state)
    bad_column = invoke("-H", dead, "cache-list", "-c", "colour", "-f", "json")
    assert bad_column.exit_code == exitcodes.USAGE
    assert "colour" in one_line_error(bad_column) and "refused" not in bad_column.stderr


def test_no_node_given_is_a_usage_error(invoke):
    result = invoke("cache-list")
    assert result.exit_code == 2
    assert one_line_error(result) == (
        "Error: no node given: use --host HOST (repeatable), --all-nodes or --os-image-url URL, or Keystone "
        "credentials whose catalog has an image endpoint"
    )


@pytest.mark.parametrize("bad", ["ftp://g1", "g1:notaport", "http://g1/x?y=1"])
def test_a_malformed_host_is_a_usage_error(invoke, bad):
    result = invoke("--host", bad, "cache-list")
    assert result.exit_code == 2
    assert bad in one_line_error(result)


@pytest.mark.parametrize("command", ["cache-queue", "cache-delete", "cache-nodes-list"])
def test_a_non_uuid_image_id_is_refused_before_any_request(invoke, command):
    # the host is unreachable: the id check must come first, so this is a usage error, not exit 5
    result = invoke("--host", dead_address(), command, "not-an-id")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "'not-an-id'" in line and "UUID" in line


def test_missing_image_ids_is_a_usage_error(invoke):
    result = invoke("--host", "g1", "cache-queue")
    assert result.exit_code == 2
    assert "IMAGE_ID" in one_line_error(result)


def test_dash_must_be_the_only_id(invoke):
    result = invoke("--host", "g1", "cache-delete", IMAGE, "-")
    assert result.exit_code == 2
    assert "only IMAGE_ID" in one_line_error(result)


def test_stdin_ids_are_validated_line_by_line(invoke):
    result = invoke("--host", dead_address(), "cache-delete", "-", input=f"{IMAGE}\nbogus\n")
    assert result.exit_code == 2
    assert "'bogus'" in one_line_error(result)


@pytest.mark.parametrize("command", ["cache-queue", "cache-delete"])
def test_empty_stdin_means_nothing_to_do(invoke, command):
    result = invoke("--host", dead_address(), command, "-", input="\n\n")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "nothing to" in result.stderr


def test_unknown_clear_target_is_a_usage_error(invoke):
    result = invoke("--host", "g1", "cache-clear", "--target", "everything")
    assert result.exit_code == 2
    assert "everything" in one_line_error(result)


@pytest.mark.parametrize("command", ["cache-list", "cache-clean", "cache-prune"])
def test_an_unreachable_node_exits_5_with_one_line(invoke, command):
    address = dead_address()
    result = invoke("--os-auth-type", "none", "--host", address, command)
    assert result.exit_code == exitcodes.UNAVAILABLE
    line = one_line_error(result)
    assert f"http://{address}" in line and "connection refused" in line
    assert result.stdout == ""


def test_host_after_the_command_joins_the_hosts_before_it(invoke):
    first, second = dead_address(), dead_address()
    result = invoke("-H", first, "cache-list", "-H", second)
    assert result.exit_code == exitcodes.UNAVAILABLE
    assert f"http://{first}" in result.stderr and f"http://{second}" in result.stderr
    assert "2 of 2 operations failed" in result.stderr


def test_os_image_url_is_the_node_when_no_host_is_given(invoke):
    address = dead_address()
    result = invoke("--os-image-url", f"http://{address}", "--os-auth-token", "x", "cache-list")
    assert result.exit_code == exitcodes.UNAVAILABLE
    assert f"http://{address}" in result.stderr


def test_os_image_url_from_the_environment(invoke):
    address = dead_address()
    result = invoke("cache-list", env={"OS_IMAGE_URL": f"http://{address}"})
    assert result.exit_code == exitcodes.UNAVAILABLE
    assert f"http://{address}" in result.stderr


def test_unresolvable_host_names_the_node(invoke):
    result = invoke("--host", "no-such-host.invalid", "cache-list")
    assert result.exit_code == exitcodes.UNAVAILABLE
    line = one_line_error(result)
    assert "no-such-host.invalid" in line


def test_unknown_auth_type_is_a_usage_error(invoke):
    result = invoke("--os-auth-type", "kerberos-magic", "--host", "g1", "cache-list")
    assert result.exit_code == 2
    assert "kerberos-magic" in one_line_error(result)


def test_password_auth_without_auth_url_names_the_missing_option(invoke):
    result = invoke("--os-auth-type", "password", "--os-username", "u", "--host", "g1", "cache-list")
    assert result.exit_code == 2
    assert "--os-auth-url" in one_line_error(result)


def test_unreachable_keystone_exits_5(invoke):
    keystone = dead_address()
    result = invoke(
        "--os-auth-url",
        f"http://{keystone}/v3",
        "--os-username",
        "admin",
        "--os-password",
        "secret",
        "--os-project-name",
        "admin",
        "--host",
        "g1",
        "cache-list",
    )
    assert result.exit_code == exitcodes.UNAVAILABLE
    line = one_line_error(result)
    assert keystone in line and "secret" not in line


def test_unknown_cloud_is_a_usage_error(invoke, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  other:\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n")
    result = invoke("--os-cloud", "missing", "--host", "g1", "cache-list", env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert result.exit_code == 2
    assert "missing" in one_line_error(result)


def test_all_nodes_without_any_node_set_says_how_to_define_one(invoke):
    result = invoke("--all-nodes", "cache-list")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "GLANCECACHE_HOSTS" in line and "[nodesets.NAME]" in line


def test_all_nodes_uses_glancecache_hosts(invoke):
    first, second = dead_address(), dead_address()
    result = invoke("--all-nodes", "cache-list", env={"GLANCECACHE_HOSTS": f"{first}, {second}"})
    assert result.exit_code == exitcodes.UNAVAILABLE
    assert f"http://{first}" in result.stderr and f"http://{second}" in result.stderr


def test_all_nodes_uses_the_default_node_set_of_the_config_file(invoke, tmp_path):
    first, second, third = dead_address(), dead_address(), dead_address()
    config = tmp_path / "nodes.toml"
    config.write_text(
        f'default = "prod"\n[nodesets.prod]\nhosts = ["{first}", "{second}"]\n'
        f'[nodesets.lab]\nhosts = ["http://{third}"]\n'
    )
    env = {"GLANCECACHE_CONFIG": str(config)}
    result = invoke("cache-list", "--all-nodes", env=env)
    assert f"http://{first}" in result.stderr and f"http://{second}" in result.stderr
    assert third not in result.stderr
    lab = invoke("--node-set", "lab", "cache-list", env=env)
    assert f"http://{third}" in lab.stderr and first not in lab.stderr
    # an explicit --node-set wins over GLANCECACHE_HOSTS; --all-nodes alone prefers the variable
    both = invoke("--node-set", "lab", "cache-list", env={**env, "GLANCECACHE_HOSTS": first})
    assert f"http://{third}" in both.stderr and first not in both.stderr
    plain = invoke("--all-nodes", "cache-list", env={**env, "GLANCECACHE_HOSTS": first})
    assert f"http://{first}" in plain.stderr and second not in plain.stderr


def test_unknown_node_set_lists_the_known_ones(invoke, tmp_path):
    config = tmp_path / "nodes.toml"
    config.write_text('[nodesets.prod]\nhosts = ["g1"]\n')
    result = invoke("--node-set", "staging", "cache-list", env={"GLANCECACHE_CONFIG": str(config)})
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "'staging'" in line and "prod" in line


def test_invalid_config_file_is_one_line(invoke, tmp_path):
    config = tmp_path / "nodes.toml"
    config.write_text("[nodesets.prod\nhosts = ")
    result = invoke("--all-nodes", "cache-list", env={"GLANCECACHE_CONFIG": str(config)})
    assert result.exit_code == 2
    assert "not valid TOML" in one_line_error(result)


def test_clear_never_asks_when_stdin_is_not_a_terminal(invoke):
    # CliRunner's stdin is not a terminal: no prompt, straight to the (unreachable) node
    result = invoke("--host", dead_address(), "cache-clear")
    assert result.exit_code == exitcodes.UNAVAILABLE
    assert "[y/N]" not in result.stderr + result.stdout


@pytest.fixture
def on_a_terminal(monkeypatch):
    from glancecache_client.cli import commands

    monkeypatch.setattr(commands, "stdin_is_terminal", lambda: True)


def test_clear_on_a_terminal_asks_and_no_means_nothing_is_sent(invoke, on_a_terminal):
    address = dead_address()
    result = invoke("--host", address, "cache-clear", "--target", "queued", input="n\n")
    assert "Empty the queue on http://" + address + "?" in result.stderr
    assert result.exit_code == exitcodes.ERROR
    assert "nothing cleared" in result.stderr
    assert "connection refused" not in result.stderr  # no request was made


def test_clear_on_a_terminal_goes_ahead_on_yes(invoke, on_a_terminal):
    result = invoke("--host", dead_address(), "cache-clear", input="y\n")
    assert "Empty the cache and the queue" in result.stderr
    assert result.exit_code == exitcodes.UNAVAILABLE  # it went on to the (unreachable) node


def test_clear_with_yes_does_not_ask_even_on_a_terminal(invoke, on_a_terminal):
    result = invoke("--host", dead_address(), "cache-clear", "--yes")
    assert "Empty" not in result.stderr
    assert result.exit_code == exitcodes.UNAVAILABLE


def test_unreachable_keystone_is_one_line_exit_5() -> None:
    """keystoneauth1's own warnings must not add lines; the error names the auth URL and what to check."""
    import subprocess

    from .conftest import GLANCE, clean_env

    auth_url = f"http://{dead_address()}/v3"
    done = subprocess.run(
        [GLANCE, "--os-auth-url", auth_url, "--os-username", "u", "--os-password", "p", "--os-project-name", "p",
         "-H", dead_address(), "cache-list"],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 5
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Error: authentication at {auth_url} failed: ")
    assert "connection refused (check --os-auth-url)" in lines[0] and "HTTPConnectionPool" not in lines[0]
