"""Policy defaults, the rule language and policy-file overrides (JSON and YAML) over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from glancecache_client.server.config import ConfigError
from glancecache_client.server.http.policy import Credentials, Policy, PolicyError, load_policy_file
from glancecache_client.server.runner import run_cluster

from .conftest import ADMIN, MEMBER

CACHE_RULES = ("cache_list", "cache_image", "cache_delete", "cache_clean", "cache_prune", "list_cached_nodes",
               "manage_image_cache")  # fmt: skip


def creds(*roles: str, system: bool = False) -> Credentials:
    return Credentials(roles=frozenset(roles), system_scope=system)


def test_cache_rules_default_to_admin_only() -> None:
    policy = Policy()
    for rule in CACHE_RULES:
        assert policy.allows(rule, creds("admin"))
        for roles in (("member",), ("reader",), ()):
            assert not policy.allows(rule, creds(*roles)), (rule, roles)
        assert not policy.allows(rule, creds("admin", system=True))


def test_rule_language() -> None:
    policy = Policy(
        {
            "always": "@",
            "never": "!",
            "either": "role:a or role:b",
            "both": "role:a and role:b",
            "negated": "not role:a",
            "grouped": "(role:a or role:b) and not role:c",
            "indirect": "rule:either",
            "cycle": "rule:cycle",
            "dangling": "rule:no_such_rule",
            "empty": "",
        }
    )
    assert policy.allows("always", creds()) and not policy.allows("never", creds("admin"))
    assert policy.allows("either", creds("b")) and not policy.allows("either", creds("c"))
    assert policy.allows("both", creds("a", "b")) and not policy.allows("both", creds("a"))
    assert policy.allows("negated", creds()) and not policy.allows("negated", creds("a"))
    assert policy.allows("grouped", creds("a")) and not policy.allows("grouped", creds("a", "c"))
    assert policy.allows("indirect", creds("a"))
    assert not policy.allows("cycle", creds("admin")) and not policy.allows("dangling", creds("admin"))
    assert policy.allows("empty", creds())


@pytest.mark.parametrize("text", ["role:", "user:bob", "(role:a", "role:a or", "role:a role:b"])
def test_bad_rules_are_refused_with_the_rule_name(text: str) -> None:
    with pytest.raises(PolicyError, match="'cache_list'"):
        Policy({"cache_list": text})


def test_policy_file_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"cache_list": "role:member or rule:context_is_admin"}')
    (tmp_path / "p.yaml").write_text('cache_list: "@"\n# comment\ncache_prune: "!"\n')
    assert load_policy_file(tmp_path / "p.json") == {"cache_list": "role:member or rule:context_is_admin"}
    assert load_policy_file(tmp_path / "p.yaml") == {"cache_list": "@", "cache_prune": "!"}
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    with pytest.raises(PolicyError, match="mapping"):
        load_policy_file(tmp_path / "bad.yaml")


def test_policy_file_overrides_over_http(tmp_path: Path, http: httpx.Client) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'cache_list: "role:member or rule:context_is_admin"\ncache_prune: "!"\ncontext_is_admin: "role:superuser"\n'
    )
    with run_cluster(1, auth="trusted", policy_file=policy, data_dir=tmp_path / "d") as cluster:
        url = cluster.url
        assert http.get(f"{url}/v2/cache", headers=MEMBER).status_code == 200
        # context_is_admin now means role:superuser: plain admins lose the other cache rules...
        assert http.post(f"{url}/v2/cache/clean", headers=ADMIN).status_code == 403
        superuser = {**ADMIN, "X-Roles": "superuser"}
        assert http.post(f"{url}/v2/cache/clean", headers=superuser).status_code == 200
        # ... and "!" refuses everyone.
        refused = http.post(f"{url}/v2/cache/prune", headers=superuser)
        assert refused.status_code == 403
        assert "You are not authorized to complete cache_prune action." in refused.text


def test_bad_policy_file_is_a_config_error(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"cache_list": "owner:me"}')
    with pytest.raises(ConfigError) as caught, run_cluster(1, policy_file=policy, data_dir=tmp_path / "d"):
        pass
    message = str(caught.value)
    assert "\n" not in message and "cache_list" in message and "owner:me" in message
