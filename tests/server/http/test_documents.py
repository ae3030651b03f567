"""The operator's policy and users files: JSON or YAML, and one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from glancecache_client.server.http.identity import UsersFileError, load_users_file
from glancecache_client.server.http.policy import PolicyError, load_policy_file


def test_policy_file_in_json_yaml_or_empty(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"cache_list": "role:admin"}')
    (tmp_path / "p.yaml").write_text("cache_list: 'role:admin'\n")
    (tmp_path / "empty.yaml").write_text("# nothing of our own\n")
    expected = {"cache_list": "role:admin"}
    assert load_policy_file(tmp_path / "p.json") == load_policy_file(tmp_path / "p.yaml") == expected
    assert load_policy_file(tmp_path / "empty.yaml") == {}


def test_users_file_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  - {name: ops, password: s3cret, project: ops, roles: [admin]}\n")
    (user,) = load_users_file(path)
    assert user.name == "ops"


@pytest.mark.parametrize(
    ("load", "error", "what"),
    [(load_policy_file, PolicyError, "policy file"), (load_users_file, UsersFileError, "users file")],
)
def test_unreadable_or_unparsable_files_are_one_line_errors(tmp_path: Path, load, error, what: str) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(error, match=f"^cannot read {what} {missing}: No such file or directory$"):
        load(missing)
    garbage = tmp_path / "garbage"
    garbage.write_text("{not: [json, nor yaml\n")
    with pytest.raises(error) as caught:
        load(garbage)
    assert str(caught.value).startswith(f"{what} {garbage} is neither JSON nor YAML: ")
    assert "\n" not in str(caught.value)
