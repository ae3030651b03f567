"""A minimal Identity v3 (Keystone) service, served at ``/identity`` on every node in keystone mode.

Owns: the user directory (domain ``Default``; users, passwords, project roles and application credentials
from a JSON/YAML file or the defaults admin/admin (admin on project admin) and demo/demo (member on project
demo)), the token table in the cluster's shared database (so a token issued by any node is accepted by every
node), and the HTTP surface real keystoneauth1 and the ``openstack`` command use: version discovery,
``POST /v3/auth/tokens`` (password, token or application_credential method; project scope by id or name +
domain), ``GET|HEAD|DELETE /v3/auth/tokens`` (X-Subject-Token). The catalog lists the cluster as service type
``image`` (public, internal and admin endpoints all the first node, standing in for a load balancer).

Application credentials behave as Keystone's: authenticate by ``id`` + ``secret``, or by ``name`` + ``secret``
+ ``user`` (``{"id"}`` or ``{"name", "domain"}``); the token is scoped to the credential's project with the
credential's roles only, and a request that also names a scope is refused (401). The default users carry one
well-known credential for tests and demos: admin's ``admin-appcred``, secret ``admin-appcred-secret``, id
``fa60edfe1fc85d5ebc1131ed35872fab``, role admin on project admin.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..engine.db import create_tables, reading
from .context import RequestContext
from .documents import read_json_or_yaml
from .faults import HTTPError, Reply
from .request import Request, host_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
TOKEN_LIFETIME = 24 * 3600.0
TOKEN_CACHE_SECONDS = 30.0
_ID_NAMESPACE = uuid.UUID("5f0e4d4c-8a0b-4c55-9f56-2f1b6c2a7d11")
IDENTITY_VERSION = "v3.14"
IDENTITY_UPDATED = "2020-04-07T00:00:00Z"
# Keystone's ApplicationCredentialAuthError text for a request that names a scope.
AUTH_METHODS = ("password", "token", "application_credential")
# Tokens are 64 hex digits; the pattern is a little wider so a foreign-looking id is simply unknown.
_TOKEN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
APP_CRED_SCOPE_REFUSED = (
    "Error authenticating with application credential: Application credentials cannot request a scope."
)


class UsersFileError(ValueError):
    """A users file that cannot be used; the message is one line for the operator."""


def stable_id(kind: str, name: str) -> str:
    """Deterministic ids, so every node (and every process) of a cluster agrees on them."""
    return uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}").hex


@dataclass(frozen=True)
class ApplicationCredential:
    """A user's delegation to an application: a secret bound to one of the user's projects and a subset of
    the user's roles there (never more than the user holds)."""

    id: str
    name: str
    secret: str
    project: str
    roles: tuple[str, ...]


def application_credential(
    user: str,
    name: str,
    secret: str,
    project: str,
    roles: tuple[str, ...],
    *,
    domain: str = DEFAULT_DOMAIN_NAME,
    id: str | None = None,
) -> ApplicationCredential:
    """A credential whose id, unless given, is derived from owner and name (the same on every node)."""
    cred_id = id if id is not None else stable_id("application_credential", f"{domain}/{user}/{name}")
    return ApplicationCredential(cred_id, name, secret, project, roles)


@dataclass(frozen=True)
class User:
    name: str
    password: str
    domain: str = DEFAULT_DOMAIN_NAME
    # project name -> role names
    projects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    application_credentials: tuple[ApplicationCredential, ...] = ()

    @property
    def id(self) -> str:
        return stable_id("user", f"{self.domain}/{self.name}")


def project_id(name: str, domain: str = DEFAULT_DOMAIN_NAME) -> str:
    return stable_id("project", f"{domain}/{name}")


def domain_id(name: str) -> str:
    return DEFAULT_DOMAIN_ID if name == DEFAULT_DOMAIN_NAME else stable_id("domain", name)


DEFAULT_APPLICATION_CREDENTIAL = application_credential(
    "admin", "admin-appcred", "admin-appcred-secret", "admin", ("admin",)
)
DEFAULT_USERS = (
    User("admin", "admin", projects={"admin": ("admin",)}, application_credentials=(DEFAULT_APPLICATION_CREDENTIAL,)),
    User("demo", "demo", projects={"demo": ("member",)}),
)


def load_users_file(path: Path | str) -> tuple[User, ...]:
    """Users from a JSON or YAML file: ``{"users": [{"name", "password", "project", "roles"}...]}``.

    A user may instead give ``"projects": {"<project>": ["<role>", ...]}`` and a ``"domain"`` name, and
    ``"application_credentials": [{"name", "secret", "project", "roles", "id"}...]`` (``roles`` defaults to all
    of the user's roles on that project, as Keystone's; ``id`` defaults to a stable id from user and name).
    """
    path = Path(path)
    data = read_json_or_yaml(path, "users file", UsersFileError)
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
        domain = str(entry.get("domain", DEFAULT_DOMAIN_NAME))
        credentials = _application_credentials(entry.get("application_credentials", []), path, name, domain, projects)
        users.append(User(name, password, domain, projects, credentials))
    ids = [credential.id for user in users for credential in user.application_credentials]
    duplicates = sorted({cred_id for cred_id in ids if ids.count(cred_id) > 1})
    if duplicates:
        raise UsersFileError(f"users file {path}: application credential id {duplicates[0]!r} is used twice")
    return tuple(users)


def _application_credentials(
    value: object, path: Path, user: str, domain: str, projects: Mapping[str, tuple[str, ...]]
) -> tuple[ApplicationCredential, ...]:
    if not isinstance(value, list):
        raise UsersFileError(f"users file {path}: 'application_credentials' of user {user!r} must be a list")
    credentials: list[ApplicationCredential] = []
    for spec in value:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise UsersFileError(f"users file {path}: every application credential of user {user!r} needs a 'name'")
        where = f"users file {path}: application credential {spec['name']!r} of user {user!r}"
        if any(known.name == spec["name"] for known in credentials):
            raise UsersFileError(f"{where} is defined twice")
        secret = spec.get("secret")
        if not isinstance(secret, str) or not secret:
            raise UsersFileError(f"{where} needs a non-empty string 'secret'")
        project = spec.get("project")
        if not isinstance(project, str) or not projects.get(project):
            held = ", ".join(sorted(name for name, roles in projects.items() if roles)) or "none"
            raise UsersFileError(f"{where} needs a 'project' the user has roles on (the user's projects: {held})")
        held_roles = projects[project]
        # Keystone's default: a credential created without roles gets all of the user's roles on the project.
        roles = _roles(spec["roles"], path, user) if "roles" in spec else held_roles
        extra = [role for role in roles if role not in held_roles]
        if extra:
            raise UsersFileError(
                f"{where} may only carry roles the user has on project {project!r} "
                f"({', '.join(held_roles)}), not {', '.join(extra)}"
            )
        if not roles:
            raise UsersFileError(f"{where} needs at least one role")
        cred_id = spec.get("id")
        # The token table stores the id in a 64-character column.
        if cred_id is not None and (not isinstance(cred_id, str) or not 0 < len(cred_id) <= 64):
            raise UsersFileError(f"{where}: 'id' must be a string of 1 to 64 characters")
        credentials.append(
            application_credential(user, spec["name"], secret, project, roles, domain=domain, id=cred_id)
        )
    return tuple(credentials)


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
    # Set when the token came from an application credential: its project and roles bound the token.
    sa.Column("application_credential_id", sa.String(64), nullable=True),
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
    application_credential_id: str | None = None


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
        # Token id -> the database read under way for it: the nodes of a process all get a new token's first
        # requests at once (a cold fan-out: 25 listings), and one read answers them all, not 25.
        self._reading: dict[str, Future[Token | None]] = {}
        # Counts revocations, so that a read which began before one never puts the token back in _recent.
        self._revocations = 0
        # Token id -> (the Token looked up, the users then, its caller): spares each request two uuid5 hashes and
        # two scans of the users while lookup gives that same Token object (from _recent).
        self._contexts: dict[str, tuple[Token, tuple[User, ...], RequestContext]] = {}
        # Set by the runner once the nodes listen: the catalog's image endpoint and identity URL.
        self.image_endpoint = ""
        self.identity_endpoint = ""

    @property
    def tokens_issued(self) -> int:
        return self._issued

    # -- tokens ---------------------------------------------------------------------------------------

    def issue(
        self,
        user: User,
        project_name: str | None,
        methods: tuple[str, ...],
        credential: ApplicationCredential | None = None,
    ) -> Token:
        if credential is not None:
            project_name, roles = credential.project, credential.roles
        else:
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
            application_credential_id=credential.id if credential is not None else None,
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
                    application_credential_id=token.application_credential_id,
                )
            )
        with self._lock:
            self._issued += 1
        return token

    def lookup(self, token_id: str) -> Token | None:
        if not _TOKEN_ID.fullmatch(token_id):
            return None  # never a token of ours; and a NUL or lone surrogate must not reach the database
        now = time.time()
        with self._lock:
            recent = self._recent.get(token_id)
            if recent is not None and recent[0] > now and recent[1].expires_at > now:
                return recent[1]
            pending = self._reading.get(token_id)
            if pending is None:
                pending = self._reading[token_id] = Future()
                revocations = self._revocations
                leader = True
            else:
                leader = False
        if not leader:
            try:
                token = pending.result()
            except Exception:
                return self._read_token(token_id, time.time())  # that read failed: try one of our own
            return token if token is None or token.expires_at > time.time() else None
        try:
            token = self._read_token(token_id, now)
        except BaseException as exc:
            with self._lock:
                if self._reading.get(token_id) is pending:
                    del self._reading[token_id]
            pending.set_exception(exc)
            raise
        with self._lock:
            if self._reading.get(token_id) is pending:
                del self._reading[token_id]
            if token is not None and revocations == self._revocations:
                if len(self._recent) > 10000:
                    self._recent.clear()
                self._recent[token_id] = (now + TOKEN_CACHE_SECONDS, token)
        pending.set_result(token)
        return token

    def _read_token(self, token_id: str, now: float) -> Token | None:
        # A plain read: SQLite's write lock (the engine's default BEGIN IMMEDIATE) would queue every request
        # of every node behind each other and behind any writer.
        with reading(self.db) as conn:
            row = conn.execute(sa.select(tokens_table).where(tokens_table.c.id == token_id)).first()
        if row is None or row.expires_at <= now:
            return None
        return Token(
            id=row.id,
            user_name=row.user_name,
            domain_name=row.domain_name,
            project_name=row.project_name,
            roles=tuple(role for role in row.roles.split(",") if role),
            methods=tuple(method for method in row.methods.split(",") if method),
            issued_at=row.issued_at,
            expires_at=row.expires_at,
            application_credential_id=row.application_credential_id,
        )

    def revoke(self, token_id: str) -> bool:
        if not _TOKEN_ID.fullmatch(token_id):
            return False
        with self._lock:
            self._recent.pop(token_id, None)
            self._reading.pop(token_id, None)  # later lookups read again rather than wait for an earlier read
            self._revocations += 1
        with self.db.begin() as conn:
            result = conn.execute(tokens_table.delete().where(tokens_table.c.id == token_id))
        return bool(result.rowcount)

    def context_for_token(self, token_id: str) -> RequestContext | None:
        token = self.lookup(token_id)
        if token is None:
            return None
        known = self._contexts.get(token_id)
        if known is not None and known[0] is token and known[1] is self.users:
            return known[2]  # the same token and the same users: the same caller
        if (
            token.application_credential_id is not None
            and self._credential_by_id(token.application_credential_id) is None
        ):
            return None  # as in Keystone, a credential that no longer exists takes its tokens with it
        user = self._find_user(token.user_name, token.domain_name)
        context = RequestContext(
            user_id=user.id if user else stable_id("user", f"{token.domain_name}/{token.user_name}"),
            project_id=project_id(token.project_name, token.domain_name) if token.project_name else None,
            roles=frozenset(role.lower() for role in token.roles),
        )
        with self._lock:
            if len(self._contexts) > 10000:
                self._contexts.clear()
            self._contexts[token_id] = (token, self.users, context)
        return context

    # -- HTTP ------------------------------------------------------------------------------------------

    def public_identity_url(self, environ: Mapping[str, Any]) -> str:
        return self.identity_endpoint or f"{host_url(environ)}/identity"

    def handle(self, req: Request, path: str) -> Reply:
        """Serve ``path`` (the part after ``/identity``)."""
        method = req.method
        base = f"{req.host_url}/identity"
        try:
            if path in ("", "/") and method in ("GET", "HEAD"):
                return _json(300, {"versions": {"values": [self._version(base)]}})
            if path in ("/v3", "/v3/") and method in ("GET", "HEAD"):
                return _json(200, {"version": self._version(base)})
            if path == "/v3/auth/tokens":
                if method == "POST":
                    return self._create_token(req)
                if method in ("GET", "HEAD"):
                    return self._validate_token(req, head=method == "HEAD")
                if method == "DELETE":
                    return self._revoke_token(req)
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

    def _credential_by_id(self, credential_id: str) -> tuple[User, ApplicationCredential] | None:
        for user in self.users:
            for credential in user.application_credentials:
                if credential.id == credential_id:
                    return user, credential
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

    def _create_token(self, req: Request) -> Reply:
        body = _read_json(req)
        auth = _object(body.get("auth") if isinstance(body, dict) else None, "auth")
        identity = _object(auth.get("identity"), "auth/identity")
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
            raise IdentityError(400, "Invalid input for field 'identity/methods': expected a list of method names.")
        unsupported = [m for m in methods if m not in AUTH_METHODS]
        if unsupported:
            raise IdentityError(401, f"Unsupported authentication method: {unsupported[0]}")
        for method in methods:
            _object(identity.get(method), f"identity/{method}")
        if auth.get("scope") not in (None, "unscoped"):
            _object(auth["scope"], "auth/scope")
        user: User | None = None
        credential: ApplicationCredential | None = None
        if "application_credential" in methods:
            # Keystone refuses any scope before it even checks the secret: the credential carries its own.
            if "scope" in auth:
                raise IdentityError(401, APP_CRED_SCOPE_REFUSED)
            user, credential = self._authenticate_application_credential(identity["application_credential"])
        elif "password" in methods:
            spec = identity["password"].get("user")
            if not isinstance(spec, dict) or not isinstance(spec.get("password"), str):
                raise IdentityError(400, "Expecting to find user in password.")
            if "id" in spec:
                user = self._user_by_id(str(spec["id"]))
            elif isinstance(spec.get("name"), str):
                user = self._find_user(spec["name"], self._domain_name(spec.get("domain")))
            if user is None or not _same_secret(user.password, spec["password"]):
                raise IdentityError(401, "The request you have made requires authentication.")
        else:  # "token": the only method left
            previous = self.lookup(str(identity["token"].get("id", "")))
            if previous is None:
                raise IdentityError(401, "The request you have made requires authentication.")
            user = self._find_user(previous.user_name, previous.domain_name)
            if user is None:
                raise IdentityError(401, "The request you have made requires authentication.")
            # As Keystone does, the new token lists the methods that proved the identity in the first place.
            methods = [*methods, *(m for m in previous.methods if m not in methods)]
            if previous.application_credential_id is not None:
                # A token from an application credential stays bound to it: re-issuing must never widen
                # it to the user's own projects and roles.
                found = self._credential_by_id(previous.application_credential_id)
                if found is None:
                    raise IdentityError(401, "The request you have made requires authentication.")
                if "scope" in auth:
                    raise IdentityError(401, APP_CRED_SCOPE_REFUSED)
                credential = found[1]
        project_name = self._scoped_project(auth.get("scope"), user) if credential is None else None
        token = self.issue(user, project_name, tuple(dict.fromkeys(methods)), credential)
        return _json(201, self._token_body(token), [("X-Subject-Token", token.id)])

    def _authenticate_application_credential(self, spec: object) -> tuple[User, ApplicationCredential]:
        """The owner and credential named by ``spec`` (id, or name + user), if its secret matches."""
        if not isinstance(spec, dict):
            raise IdentityError(400, "Expecting to find application_credential in identity.")
        found: tuple[User, ApplicationCredential] | None = None
        if spec.get("id"):
            found = self._credential_by_id(str(spec["id"]))
            owner_spec = spec.get("user")
            if found is not None and isinstance(owner_spec, dict) and self._named_user(owner_spec) != found[0]:
                found = None  # the credential of somebody else
        elif isinstance(spec.get("name"), str):
            owner = self._named_user(spec.get("user"))
            if owner is not None:
                named = (c for c in owner.application_credentials if c.name == spec["name"])
                found = next(((owner, credential) for credential in named), None)
        else:
            raise IdentityError(400, "Expecting to find id or name in application credential.")
        secret = spec.get("secret")
        # One answer for an unknown credential and a wrong secret, as Keystone gives.
        if found is None or not isinstance(secret, str) or not _same_secret(found[1].secret, secret):
            raise IdentityError(401, "The request you have made requires authentication.")
        return found

    def _named_user(self, spec: object) -> User | None:
        """The user of ``{"id": ...}`` or ``{"name": ..., "domain": {...}}``."""
        if not isinstance(spec, dict):
            raise IdentityError(400, "Expecting to find user in application credential.")
        if "id" in spec:
            return self._user_by_id(str(spec["id"]))
        if isinstance(spec.get("name"), str):
            return self._find_user(spec["name"], self._domain_name(spec.get("domain")))
        raise IdentityError(400, "Expecting to find id or name in user.")

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

    def _validate_token(self, req: Request, *, head: bool) -> Reply:
        caller = self.lookup(req.header("X-Auth-Token") or "")
        if caller is None:
            raise IdentityError(401, "The request you have made requires authentication.")
        subject_id = req.header("X-Subject-Token") or ""
        subject = self.lookup(subject_id)
        if subject is None:
            raise IdentityError(404, f"Could not find token: {subject_id}.")
        reply = _json(200, self._token_body(subject), [("X-Subject-Token", subject.id)])
        if head:
            reply.body = b""
        return reply

    def _revoke_token(self, req: Request) -> Reply:
        if self.lookup(req.header("X-Auth-Token") or "") is None:
            raise IdentityError(401, "The request you have made requires authentication.")
        subject_id = req.header("X-Subject-Token") or ""
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
        if token.application_credential_id is not None:
            found = self._credential_by_id(token.application_credential_id)
            body["application_credential"] = {
                "id": token.application_credential_id,
                "name": found[1].name if found is not None else None,
                # Keystone's "unrestricted" credentials may create more credentials and trusts; this
                # service offers neither, so every credential is a restricted one.
                "restricted": True,
            }
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


def _object(value: object, field: str) -> dict[str, Any]:
    """``value`` if it is a JSON object; otherwise Keystone's schema-validation 400."""
    if not isinstance(value, dict):
        raise IdentityError(400, f"Invalid input for field '{field}': expected an object.")
    return value


def _same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison; surrogatepass because JSON may carry lone surrogates."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def _read_json(req: Request) -> Any:
    """The body by Keystone's rules: none reads as ``null``, more than 1 MiB is a 413."""
    try:
        length = req.content_length() or 0
    except HTTPError:
        length = 0
    if length > 1024 * 1024:
        raise IdentityError(413, "Request body too large.")
    raw = b"".join(req.iter_body()) if length > 0 else b""
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError):
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
