"""How ``glance`` finds the command word in argv, before it knows whose command it is.

These run in this environment without python-glanceclient; test_coexistence.py checks the option lists
against glanceclient's own parser and runs the hand-over for real.
"""

from __future__ import annotations

import click
import pytest

from glancecache_client.cli import cli
from glancecache_client.cli.dispatch import find_command, takes_value, without_cache_entries

ID = "3c021162-1e38-461a-a362-e154bf54e241"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["cache-list"], "cache-list"),
        (["image-list", "--limit", "1"], "image-list"),
        (["--os-image-url", "http://g1:9292", "--os-auth-token", "t", "cache-list"], "cache-list"),
        (["--os-image-url=http://g1:9292", "image-list"], "image-list"),
        (["--os_image_url", "http://g1:9292", "image-list"], "image-list"),  # glanceclient's legacy spelling
        (["-H", "glance1", "-H", "glance2", "cache-queue", ID], "cache-queue"),
        (["-Hglance1", "cache-list"], "cache-list"),
        (["-dH", "glance1", "cache-list"], "cache-list"),
        (["-d", "-v", "--get-schema", "image-list"], "image-list"),  # flags of either program
        (["--timeout", "5", "--profile", "key", "--tls-min-version", "1.3", "image-show", ID], "image-show"),
        (["--all-nodes", "--node-set", "prod", "cache-list"], "cache-list"),
        (["--os-image-api-version", "2", "help", "image-list"], "help"),
        (["--", "cache-list"], "cache-list"),
        (["--help"], None),
        (["--os-cloud", "prod"], None),
        ([], None),
    ],
)
def test_the_command_word_is_found_past_global_options(argv: list[str], command: str | None):
    position = find_command(argv)
    assert (argv[position] if position is not None else None) == command


def test_our_global_options_are_told_apart_by_whether_they_take_a_value():
    # A new option on the click group that takes a value but is not --os-* must be added to VALUE_OPTIONS.
    ctx = click.Context(cli, info_name="glance")
    options = [param for param in cli.get_params(ctx) if isinstance(param, click.Option)]
    assert len(options) > 20
    for option in options:
        for name in (*option.opts, *option.secondary_opts):
            assert takes_value(name) == (not option.is_flag and not option.count), name


def test_glanceclients_cache_entries_leave_its_help_and_nothing_else_does():
    lines = [
        "Positional arguments:\n",
        "    add-location        Add location to an image which is in `queued` state\n",
        "                        only.\n",
        "    cache-clear         Clear all images from cache, queue or both\n",
        "    cache-nodes-list    List node reference URLs where an image is cached,\n",
        "                        wrapped.\n",
        "    explain             Describe a specific model.\n",
        "\n",
    ]
    assert without_cache_entries(lines) == [lines[0], lines[1], lines[2], lines[6], lines[7]]
