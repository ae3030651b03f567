"""Who is calling: the request context and the three ways a node learns it (noauth, trusted, keystone).

Owns: ``RequestContext`` and ``Authenticator``. ``noauth`` makes every caller an admin (what Glance's
noauth flavor plus ``context_is_admin: @`` gives); ``trusted`` reads the headers keystonemiddleware
would set (``X-Identity-Status: Confirmed``, ``X-Roles``, ``X-Project-Id``/``X-Tenant-Id``,
``X-User-Id``, ``OpenStack-System-Scope``) like Glance's ContextMiddleware; ``keystone`` validates
``X-Auth-Token`` against the cluster's token table (see ``identity.py``). A refusal is a 401 shaped
like the component that would refuse it in a real deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .faults import UNAUTHORIZED_TEXT, Reply, error_reply
from .policy import Credentials

if TYPE_CHECKING:
    from .identity import IdentityService


@dataclass(frozen=True)
class RequestContext:
    """The caller of one request."""

    user_id: str | None
    project_id: str | None
    roles: frozenset[str]
    system_scope: bool = False

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles and not self.system_scope

    @property
    def credentials(self) -> Credentials:
        return Credentials(roles=self.roles, system_scope=self.system_scope)


# Glance's noauth context: admin, no user, no project (images created this way have owner null).
NOAUTH_CONTEXT = RequestContext(user_id=None, project_id=None, roles=frozenset({"admin"}))

_KEYSTONE_401 = json.dumps(
    {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }
).encode()


def _header(environ: dict[str, Any], name: str) -> str | None:
    value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value if isinstance(value, str) else None


class Authenticator:
    """Turns a request into a RequestContext, or into the 401 reply its auth mode would send."""

    def __init__(self, mode: str, identity: IdentityService | None = None) -> None:
        if mode == "keystone" and identity is None:
            raise ValueError("keystone mode needs the identity service")
        self.mode = mode
        self.identity = identity

    def authenticate(self, environ: dict[str, Any]) -> RequestContext | None:
        if self.mode == "noauth":
            return NOAUTH_CONTEXT
        if self.mode == "trusted":
            return self._from_trusted_headers(environ)
        assert self.identity is not None
        token = _header(environ, "X-Auth-Token")
        if not token:
            return None
        return self.identity.context_for_token(token)

    @staticmethod
    def _from_trusted_headers(environ: dict[str, Any]) -> RequestContext | None:
        if _header(environ, "X-Identity-Status") != "Confirmed":
            return None
        roles_header = _header(environ, "X-Roles") or ""
        roles = frozenset(role.strip().lower() for role in roles_header.split(",") if role.strip())
        project = _header(environ, "X-Project-Id") or _header(environ, "X-Tenant-Id")
        system_scope = (_header(environ, "OpenStack-System-Scope") or "").strip().lower() == "all"
        return RequestContext(
            user_id=_header(environ, "X-User-Id"),
            project_id=project,
            roles=roles,
            system_scope=system_scope,
        )

    def unauthorized(self, environ: dict[str, Any]) -> Reply:
        if self.mode == "keystone":
            assert self.identity is not None
            # keystonemiddleware's refusal, pointing the client at the identity endpoint.
            host_url = self.identity.public_identity_url(environ)
            headers = [
                ("WWW-Authenticate", f'Keystone uri="{host_url}"'),
                ("Content-Type", "application/json; charset=UTF-8"),
                ("Content-Length", str(len(_KEYSTONE_401))),
            ]
            return Reply(401, headers, _KEYSTONE_401)
        return error_reply(401, UNAUTHORIZED_TEXT, _header(environ, "Accept"))
