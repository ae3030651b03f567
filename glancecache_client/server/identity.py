"""A minimal Identity v3 (Keystone) service, served at ``/identity`` on every node in keystone mode.

Owns: the user directory (domain ``Default``; users, passwords, project roles from a JSON/YAML file or
the defaults admin/admin (admin on project admin) and demo/demo (member on project demo)), the token
table in the cluster's shared database (so a token issued by any node is accepted by every node), and
the HTTP surface real keystoneauth1 and the ``openstack`` command use: version discovery,
``POST /v3/auth/tokens`` (password or token method, project scope by id or name + domain),
``GET|HEAD|DELETE /v3/auth/tokens`` (X-Subject-Token). The catalog lists the cluster as service type
``image`` (public, internal and admin endpoints all the first node, standing in for a load balancer).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .context import RequestContext
from .db import create_tables
from .faults import Reply

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
TOKEN_LIFETIME = 24 * 3600.0
TOKEN_CACHE_SECONDS = 30.0
_ID_NAMESPACE = uuid.UUID("5f0e4d4c-8a0b-4c55-9f56-2f1b6c2a7d11")
IDENTITY_VERSION = "v3.14"
IDENTITY_UPDATED = "2020-04-07T00:00:00Z"


class UsersFileError(ValueError):
    """A users file that cannot be used; the message is one line for the operator."""


def stable_id(kind: str, name: str) -> str:
    """Deterministic ids, so every node (and every process) of a cluster agrees on them."""
    return uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}").hex


@dataclass(frozen=True)
class User:
    name: str
    password: str
    domain: str = DEFAULT_DOMAIN_NAME
    # project name -> role names
    projects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return stable_id("user", f"{self.domain}/{self.name}")


def project_id(name: str, domain: str = DEFAULT_DOMAIN_NAME) -> str:
    return stable_id("project", f"{domain}/{name}")


def domain_id(name: str) -> str:
    return DEFAULT_DOMAIN_ID if name == DEFAULT_DOMAIN_NAME else stable_id("domain", name)


DEFAULT_USERS = (
    User("admin", "admin", projects={"admin": ("admin",)}),
    User("demo", "demo", projects={"demo": ("member",)}),
)


def load_users_file(path: Path | str) -> tuple[User, ...]:
    """Users from a JSON or YAML file: ``{"users": [{"name", "password", "project", "roles"}...]}``.

    A user may instead give ``"projects": {"<project>": ["<role>", ...]}`` and a ``"domain"`` name.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsersFileError(f"cannot read users file {path}: {exc.strerror or exc}") from None
    data: object
    try:
        data = json.loads(text)
    except ValueError:
        try:
            import yaml

            data = yaml.safe_load(text)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsersFileError(f"users file {path} is neither JSON nor YAML: {first}") from None
    entries = data.get("users") if isinstance(data, dict) else None
    if isinstance(entries, dict):
        entries = [{"name": name, **(spec or {})} for name, spec in entries.items()]
    if not isinstance(entries, list) or not entries:
        raise UsersFileError(f"users file {path} must hold a non-empty 'users' list")
    users: list[User] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise UsersFileError(f"users file {path}: every user needs a 'name'")
        name = entry["name"]
        password = entry.get("password")
        if not isinstance(password, str):
            raise UsersFileError(f"users file {path}: user {name!r} needs a string 'password'")
        projects: dict[str, tuple[str, ...]] = {}
        if "projects" in entry:
            if not isinstance(entry["projects"], dict):
                raise UsersFileError(f"users file {path}: 'projects' of user {name!r} must map names to roles")
            for project, roles in entry["projects"].items():
                projects[str(project)] = _roles(roles, path, name)
        if "project" in entry:
            projects[str(entry["project"])] = _roles(entry.get("roles", ["member"]), path, name)
        users.append(User(name, password, str(entry.get("domain", DEFAULT_DOMAIN_NAME)), projects))
    return tuple(users)


def _roles(value: object, path: Path, user: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
        raise UsersFileError(f"users file {path}: roles of user {user!r} must be a list of names")
    return tuple(value)


_metadata = sa.MetaData()
tokens_table = sa.Table(
    "glancecache_identity_tokens",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(255), nullable=False),
    sa.Column("domain_name", sa.String(255), nullable=False),
    sa.Column("project_name", sa.String(255), nullable=True),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("methods", sa.String(255), nullable=False),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Token:
    id: str
    user_name: str
    domain_name: str
    project_name: str | None
    roles: tuple[str, ...]
    methods: tuple[str, ...]
    issued_at: float
    expires_at: float


class IdentityError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IdentityService:
    """Users, tokens and the Identity v3 HTTP surface of one cluster (shared by all its nodes)."""

    def __init__(self, db: Engine, users: tuple[User, ...] = DEFAULT_USERS) -> None:
        self.db = db
        self.users = users
        create_tables(db, [tokens_table])
        self._lock = threading.Lock()
        self._issued = 0
        # Every API request validates its token: a short positive cache spares the shared database
        # (SQLite serialises transactions). A token revoked by another process stays valid here for
        # at most TOKEN_CACHE_SECONDS.
        self._recent: dict[str, tuple[float, Token]] = {}
        # Set by the runner once the nodes listen: the catalog's image endpoint and identity URL.
        self.image_endpoint = ""
        self.identity_endpoint = ""

    @property
    def tokens_issued(self) -> int:
        return self._issued

    # -- tokens ---------------------------------------------------------------------------------------

    def issue(self, user: User, project_name: str | None, methods: tuple[str, ...]) -> Token:
        roles = tuple(user.projects.get(project_name, ())) if project_name is not None else ()
        now = time.time()
        token = Token(
            id=uuid.uuid4().hex + uuid.uuid4().hex,
            user_name=user.name,
            domain_name=user.domain,
            project_name=project_name,
            roles=roles,
            methods=methods,
            issued_at=now,
            expires_at=now + TOKEN_LIFETIME,
        )
        with self.db.begin() as conn:
            conn.execute(
                tokens_table.insert().values(
                    id=token.id,
                    user_name=token.user_name,
                    domain_name=token.domain_name,
                    project_name=token.project_name,
                    roles=",".join(token.roles),
                    methods=",".join(token.methods),
                    issued_at=token.issued_at,
                    expires_at=token.expires_at,
                )
            )
        with self._lock:
            self._issued += 1
        return token

    def lookup(self, token_id: str) -> Token | None:
        if not token_id or len(token_id) > 64:
            return None
        now = time.time()
        with self._lock:
            recent = self._recent.get(token_id)
        if recent is not None and recent[0] > now and recent[1].expires_at > now:
            return recent[1]
        with self.db.connect() as conn:
            row = conn.execute(sa.select(tokens_table).where(tokens_table.c.id == token_id)).first()
        if row is None or row.expires_at <= now:
            return None
        token = Token(
            id=row.id,
            user_name=row.user_name,
            domain_name=row.domain_name,
            project_name=row.project_name,
            roles=tuple(role for role in row.roles.split(",") if role),
            methods=tuple(method for method in row.methods.split(",") if method),
            issued_at=row.issued_at,
            expires_at=row.expires_at,
        )
        with self._lock:
            if len(self._recent) > 10000:
                self._recent.clear()
            self._recent[token_id] = (now + TOKEN_CACHE_SECONDS, token)
        return token

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            self._recent.pop(token_id, None)
        with self.db.begin() as conn:
            result = conn.execute(tokens_table.delete().where(tokens_table.c.id == token_id))
        return bool(result.rowcount)

    def context_for_token(self, token_id: str) -> RequestContext | None:
        token = self.lookup(token_id)
        if token is None:
            return None
        user = self._find_user(token.user_name, token.domain_name)
        return RequestContext(
            user_id=user.id if user else stable_id("user", f"{token.domain_name}/{token.user_name}"),
            project_id=project_id(token.project_name, token.domain_name) if token.project_name else None,
            roles=frozenset(role.lower() for role in token.roles),
        )

    # -- HTTP ------------------------------------------------------------------------------------------

    def public_identity_url(self, environ: Mapping[str, Any]) -> str:
        return self.identity_endpoint or f"{_host_url(environ)}/identity"

    def handle(self, environ: dict[str, Any], path: str) -> Reply:
        """Serve ``path`` (the part after ``/identity``)."""
        method = environ.get("REQUEST_METHOD", "GET")
        base = f"{_host_url(environ)}/identity"
        try:
            if path in ("", "/") and method in ("GET", "HEAD"):
                return _json(300, {"versions": {"values": [self._version(base)]}})
            if path in ("/v3", "/v3/") and method in ("GET", "HEAD"):
                return _json(200, {"version": self._version(base)})
            if path == "/v3/auth/tokens":
                if method == "POST":
                    return self._create_token(environ)
                if method in ("GET", "HEAD"):
                    return self._validate_token(environ, head=method == "HEAD")
                if method == "DELETE":
                    return self._revoke_token(environ)
                raise IdentityError(405, f"The method {method} is not allowed for this resource.")
            raise IdentityError(404, "The resource could not be found.")
        except IdentityError as exc:
            return _keystone_error(exc.status, exc.message)

    @staticmethod
    def _version(base: str) -> dict[str, Any]:
        return {
            "id": IDENTITY_VERSION,
            "status": "stable",
            "updated": IDENTITY_UPDATED,
            "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def _find_user(self, name: str, domain: str) -> User | None:
        for user in self.users:
            if user.name == name and user.domain == domain:
                return user
        return None

    def _user_by_id(self, user_id: str) -> User | None:
        for user in self.users:
            if user.id == user_id:
                return user
        return None

    def _domain_name(self, spec: object) -> str:
        if not isinstance(spec, dict):
            raise IdentityError(400, "A domain (name or id) is required when naming a user or project.")
        if "id" in spec:
            for user in self.users:
                if domain_id(user.domain) == spec["id"]:
                    return user.domain
            raise IdentityError(401, "The request you have made requires authentication.")
        if isinstance(spec.get("name"), str):
            return str(spec["name"])
        raise IdentityError(400, "A domain (name or id) is required when naming a user or project.")

    def _create_token(self, environ: dict[str, Any]) -> Reply:
        body = _read_json(environ)
        auth = body.get("auth") if isinstance(body, dict) else None
        identity = auth.get("identity") if isinstance(auth, dict) else None
        methods = identity.get("methods") if isinstance(identity, dict) else None
        if not isinstance(identity, dict) or not isinstance(methods, list) or not methods:
            raise IdentityError(400, "Expecting to find identity in auth.")
        user: User | None = None
        if "password" in methods:
            spec = (identity.get("password") or {}).get("user")
            if not isinstance(spec, dict) or not isinstance(spec.get("password"), str):
                raise IdentityError(400, "Expecting to find user in password.")
            if "id" in spec:
                user = self._user_by_id(str(spec["id"]))
            elif isinstance(spec.get("name"), str):
                user = self._find_user(spec["name"], self._domain_name(spec.get("domain")))
            if user is None or user.password != spec["password"]:
                raise IdentityError(401, "The request you have made requires authentication.")
        elif "token" in methods:
            spec = identity.get("token") or {}
            previous = self.lookup(str(spec.get("id", ""))) if isinstance(spec, dict) else None
            if previous is None:
                raise IdentityError(401, "The request you have made requires authentication.")
            user = self._find_user(previous.user_name, previous.domain_name)
            if user is None:
                raise IdentityError(401, "The request you have made requires authentication.")
        else:
            raise IdentityError(401, f"Unsupported authentication method: {methods[0]}")
        project_name = self._scoped_project(auth.get("scope"), user) if isinstance(auth, dict) else None
        token = self.issue(user, project_name, tuple(str(m) for m in methods))
        return _json(201, self._token_body(token), [("X-Subject-Token", token.id)])

    def _scoped_project(self, scope: object, user: User) -> str | None:
        if scope is None or scope == "unscoped":
            return None
        project = scope.get("project") if isinstance(scope, dict) else None
        if not isinstance(project, dict):
            raise IdentityError(400, "Only project scope is supported by this identity service.")
        name: str | None = None
        if "id" in project:
            for candidate, _roles in user.projects.items():
                if project_id(candidate, user.domain) == project["id"]:
                    name = candidate
        elif isinstance(project.get("name"), str) and self._domain_name(project.get("domain")) == user.domain:
            name = project["name"]
        if name is None or not user.projects.get(name):
            # Keystone refuses a scope the user holds no role on with 401.
            raise IdentityError(401, "The request you have made requires authentication.")
        return name

    def _validate_token(self, environ: dict[str, Any], *, head: bool) -> Reply:
        caller = self.lookup(str(environ.get("HTTP_X_AUTH_TOKEN", "")))
        if caller is None:
            raise IdentityError(401, "The request you have made requires authentication.")
        subject_id = str(environ.get("HTTP_X_SUBJECT_TOKEN", ""))
        subject = self.lookup(subject_id)
        if subject is None:
            raise IdentityError(404, f"Could not find token: {subject_id}.")
        reply = _json(200, self._token_body(subject), [("X-Subject-Token", subject.id)])
        if head:
            reply.body = b""
        return reply

    def _revoke_token(self, environ: dict[str, Any]) -> Reply:
        if self.lookup(str(environ.get("HTTP_X_AUTH_TOKEN", ""))) is None:
            raise IdentityError(401, "The request you have made requires authentication.")
        subject_id = str(environ.get("HTTP_X_SUBJECT_TOKEN", ""))
        if not self.revoke(subject_id):
            raise IdentityError(404, f"Could not find token: {subject_id}.")
        return Reply(204, [("Content-Length", "0")], b"")

    def _token_body(self, token: Token) -> dict[str, Any]:
        domain = {"id": domain_id(token.domain_name), "name": token.domain_name}
        body: dict[str, Any] = {
            "methods": list(token.methods),
            "user": {
                "domain": domain,
                "id": stable_id("user", f"{token.domain_name}/{token.user_name}"),
                "name": token.user_name,
                "password_expires_at": None,
            },
            "audit_ids": [uuid.uuid5(_ID_NAMESPACE, token.id).hex[:22]],
            "expires_at": _iso(token.expires_at),
            "issued_at": _iso(token.issued_at),
        }
        if token.project_name is not None:
            body["project"] = {
                "domain": domain,
                "id": project_id(token.project_name, token.domain_name),
                "name": token.project_name,
            }
            body["is_domain"] = False
            body["roles"] = [{"id": stable_id("role", role), "name": role} for role in token.roles]
            body["catalog"] = self._catalog()
        return {"token": body}

    def _catalog(self) -> list[dict[str, Any]]:
        def service(kind: str, name: str, url: str) -> dict[str, Any]:
            endpoints = [
                {
                    "id": stable_id("endpoint", f"{kind}/{interface}"),
                    "interface": interface,
                    "region_id": "RegionOne",
                    "region": "RegionOne",
                    "url": url,
                }
                for interface in ("public", "internal", "admin")
            ]
            return {"endpoints": endpoints, "id": stable_id("service", kind), "type": kind, "name": name}

        catalog = [service("image", "glance", self.image_endpoint)]
        if self.identity_endpoint:
            catalog.append(service("identity", "keystone", self.identity_endpoint))
        return catalog


def _host_url(environ: Mapping[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT')}"
    return f"{scheme}://{host}"


def _read_json(environ: dict[str, Any]) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 1024 * 1024:
        raise IdentityError(413, "Request body too large.")
    stream = environ.get("wsgi.input")
    raw = stream.read(length) if stream is not None and length > 0 else b""
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise IdentityError(400, "Malformed JSON in request body.") from None


def _json(status: int, payload: object, extra: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps(payload).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Vary", "X-Auth-Token"),
        *(extra or []),
    ]
    return Reply(status, headers, body)


def _keystone_error(status: int, message: str) -> Reply:
    from http import HTTPStatus

    return _json(status, {"error": {"code": status, "message": message, "title": HTTPStatus(status).phrase}})
