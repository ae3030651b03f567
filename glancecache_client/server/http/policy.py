"""Authorization rules: Glance's cache and image policies, their defaults, and a policy-file override.

Owns: the rule table (``cache_list`` ... ``manage_image_cache`` default to ``role:admin``, as Glance's
``rule:context_is_admin``), the small oslo.policy-like check language this server understands
(``role:X``, ``@`` (always), ``!`` (never), ``rule:other``, joined with ``or`` / ``and``, ``not``,
parentheses) and loading overrides from a JSON or YAML file. The 403 text is Glance's:
"You are not authorized to complete <rule> action."
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .documents import read_json_or_yaml
from .faults import HTTPError

ADMIN = "role:admin"
MEMBER_OR_ADMIN = "role:admin or role:member"
READER_OR_ABOVE = "role:admin or role:member or role:reader"

DEFAULT_RULES: dict[str, str] = {
    "context_is_admin": ADMIN,
    # Cache API (glance/policies/cache.py) and the nodes listing (glance/policies/image.py).
    "cache_list": "rule:context_is_admin",
    "cache_image": "rule:context_is_admin",
    "cache_delete": "rule:context_is_admin",
    "cache_clean": "rule:context_is_admin",
    "cache_prune": "rule:context_is_admin",
    "list_cached_nodes": "rule:context_is_admin",
    "manage_image_cache": "rule:context_is_admin",
    # The image API subset this server implements (project members manage their own images).
    "add_image": MEMBER_OR_ADMIN,
    "get_image": READER_OR_ABOVE,
    "get_images": READER_OR_ABOVE,
    "upload_image": MEMBER_OR_ADMIN,
    "download_image": READER_OR_ABOVE,
    "delete_image": MEMBER_OR_ADMIN,
    "publicize_image": "rule:context_is_admin",
    "communitize_image": MEMBER_OR_ADMIN,
    "deactivate": "rule:context_is_admin",
    "reactivate": "rule:context_is_admin",
}


class PolicyError(ValueError):
    """A policy file or rule that cannot be used; the message is one line for the operator."""


@dataclass(frozen=True)
class Credentials:
    """What a rule is checked against: the caller's (lower-cased) roles and scope."""

    roles: frozenset[str]
    system_scope: bool = False


Check = Callable[[Credentials, "Policy", frozenset[str]], bool]

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - the pattern matches any non-space run
            break
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def compile_rule(name: str, text: str) -> Check:
    """Parse ``text`` into a check function; raise PolicyError naming the rule on bad syntax."""
    tokens = _tokenize(text)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        token = tokens[position]
        position += 1
        return token

    def parse_or() -> Check:
        parts = [parse_and()]
        while (peek() or "").lower() == "or":
            take()
            parts.append(parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda creds, policy, seen: any(part(creds, policy, seen) for part in parts)

    def parse_and() -> Check:
        parts = [parse_not()]
        while (peek() or "").lower() == "and":
            take()
            parts.append(parse_not())
        if len(parts) == 1:
            return parts[0]
        return lambda creds, policy, seen: all(part(creds, policy, seen) for part in parts)

    def parse_not() -> Check:
        if (peek() or "").lower() == "not":
            take()
            inner = parse_not()
            return lambda creds, policy, seen: not inner(creds, policy, seen)
        return parse_atom()

    def parse_atom() -> Check:
        token = peek()
        if token is None:
            raise PolicyError(f"policy rule {name!r} is incomplete: {text!r}")
        take()
        if token == "(":
            inner = parse_or()
            if peek() != ")":
                raise PolicyError(f"policy rule {name!r} has an unbalanced '(': {text!r}")
            take()
            return inner
        if token == "@":
            return lambda creds, policy, seen: True
        if token == "!":
            return lambda creds, policy, seen: False
        kind, _, value = token.partition(":")
        if kind == "role" and value:
            role = value.lower()
            return lambda creds, policy, seen: role in creds.roles
        if kind == "rule" and value:
            return lambda creds, policy, seen: policy.check_rule(value, creds, seen)
        raise PolicyError(f"policy rule {name!r} uses {token!r}; supported: role:X, rule:NAME, @, !, and/or/not")

    if not tokens:
        # oslo.policy treats an empty rule as "always allow".
        return lambda creds, policy, seen: True
    check = parse_or()
    if position != len(tokens):
        raise PolicyError(f"policy rule {name!r} has unexpected {tokens[position]!r}: {text!r}")
    return check


class Policy:
    """The effective rule table of one server; ``enforce`` raises Glance's 403."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        rules = dict(DEFAULT_RULES)
        rules.update(overrides or {})
        self.rules = rules
        self._compiled = {name: compile_rule(name, text) for name, text in rules.items()}

    @classmethod
    def from_file(cls, path: Path | str | None) -> Policy:
        if path is None:
            return cls()
        return cls(load_policy_file(Path(path)))

    def check_rule(self, name: str, creds: Credentials, seen: frozenset[str] = frozenset()) -> bool:
        if name in seen:
            return False  # a reference cycle never grants anything
        compiled = self._compiled.get(name)
        if compiled is None:
            return False  # oslo.policy: an unknown rule referenced by rule:X fails closed
        return compiled(creds, self, seen | {name})

    def allows(self, name: str, creds: Credentials) -> bool:
        # All of these rules are project-scoped in Glance: a system-scoped token is refused.
        if creds.system_scope:
            return False
        return self.check_rule(name, creds)

    def enforce(self, name: str, creds: Credentials) -> None:
        if not self.allows(name, creds):
            raise HTTPError(403, f"You are not authorized to complete {name} action.")


def load_policy_file(path: Path) -> dict[str, str]:
    """Read a JSON or YAML mapping of rule name to check string; PolicyError on anything else."""
    data = read_json_or_yaml(path, "policy file", PolicyError)
    if data is None:  # an empty file, or YAML holding only comments: no rules of its own
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path} must hold a mapping of rule name to rule")
    rules: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PolicyError(f"policy file {path}: rule {key!r} must map a name to a string")
        rules[key] = value
    # Compile now so a typo is reported at start-up, not on the first request.
    for key, value in rules.items():
        compile_rule(key, value)
    return rules
