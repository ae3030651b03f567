"""Identity: where the X-Auth-Token for each request comes from.

Three token sources, all thread-safe so one can serve every node of a :class:`~glancecache_client.Cluster`:
``NoAuth`` (noauth servers: no header), ``StaticToken`` (a token you already have), and ``SessionTokens``
(a keystoneauth1 ``Session`` with any auth plugin: the token is fetched once, shared, and refreshed when a node
answers 401). keystoneauth1 is imported only here and only when a session is actually built.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx

if TYPE_CHECKING:
    from keystoneauth1.session import Session

__all__ = [
    "NoAuth",
    "SessionTokens",
    "StaticToken",
    "TokenAuth",
    "TokenSource",
    "keystone_session",
    "token_source_for",
]


class TokenSource(Protocol):
    """Gives the token to send (None: send none) and can be told that a token was rejected."""

    def get_token(self) -> str | None: ...

    def invalidate(self) -> bool:
        """Forget the current token; True if asking again may give a different one."""
        ...


class NoAuth:
    """For noauth deployments: no X-Auth-Token header at all."""

    def get_token(self) -> str | None:
        return None

    def invalidate(self) -> bool:
        return False


class StaticToken:
    """A token obtained elsewhere; it cannot be refreshed. InvalidInput for a token that cannot be an HTTP header
    value (a pasted line break, spaces, non-ASCII), before anything is sent."""

    def __init__(self, token: str) -> None:
        if not isinstance(token, str) or not token or not all("!" <= ch <= "~" for ch in token):
            from .errors import InvalidInput

            raise InvalidInput(
                "the token contains a line break, space or other character a token cannot have "
                "(copy it again, without the line end)"
            )
        self._token = token

    def get_token(self) -> str | None:
        return self._token

    def invalidate(self) -> bool:
        return False


class SessionTokens:
    """Tokens from a keystoneauth1 Session. One fetch serves every caller until a node rejects it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._token: str | None = None

    @property
    def has_token(self) -> bool:
        """Whether a token is at hand (no request to Keystone needed to get one)."""
        return self._token is not None

    def get_token(self) -> str | None:
        with self._lock:
            if self._token is None:
                token = self.session.get_token()
                self._token = str(token) if token else None
            return self._token

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
            return bool(self.session.invalidate())


class TokenAuth(httpx.Auth):
    """httpx auth flow: send the token, and on 401 refresh it and retry the request once."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # sync_auth_flow, not auth_flow: fetching a token is blocking I/O (keystoneauth1 uses requests).
        token = self.source.get_token()
        if token:
            request.headers["X-Auth-Token"] = token
        response = yield request
        if response.status_code == 401 and self.source.invalidate():
            fresh = self.source.get_token()
            if fresh and fresh != token:
                request.headers["X-Auth-Token"] = fresh
                yield request


def token_source_for(
    *,
    token: str | None = None,
    session: Session | None = None,
    auth: Any = None,
    verify: bool | str = True,
    cert: str | tuple[str, str] | None = None,
) -> TokenSource:
    """Pick the token source for the identity arguments CacheClient and Cluster accept."""
    given = [name for name, value in (("token", token), ("session", session), ("auth", auth)) if value]
    if len(given) > 1:
        from .errors import InvalidInput

        raise InvalidInput(f"give only one of token=, session= or auth= (got {', '.join(given)})")
    if token:
        return StaticToken(token)
    if session is not None:
        return SessionTokens(session)
    if auth is not None:
        from keystoneauth1.session import Session as KeystoneSession

        return SessionTokens(KeystoneSession(auth=auth, verify=verify, cert=cert))
    return NoAuth()


def keystone_session(
    auth_type: str,
    options: Mapping[str, object],
    *,
    verify: bool | str = True,
    cert: str | tuple[str, str] | None = None,
    timeout: float | None = None,
) -> Session:
    """A keystoneauth1 Session for any auth plugin by name (``password``, ``v3applicationcredential``, ...).

    ``options`` are the plugin's option names (``auth_url``, ``username``, ``project_name``,
    ``user_domain_name``...); unset (None/empty) ones are dropped. Raises InvalidInput for an unknown plugin
    or a missing required option, naming it.
    """
    from keystoneauth1 import exceptions as ks_exceptions
    from keystoneauth1 import loading
    from keystoneauth1.session import Session as KeystoneSession

    from .errors import InvalidInput

    try:
        loader: Any = loading.get_plugin_loader(auth_type)
    except ks_exceptions.NoMatchingPlugin:
        raise InvalidInput(
            f"unknown auth type {auth_type!r}: use password, token, v3applicationcredential or none"
        ) from None
    known = {opt.dest for opt in loader.get_options()}
    given = {key: value for key, value in options.items() if value not in (None, "") and key in known}
    try:
        plugin = loader.load_from_options(**given)
    except ks_exceptions.MissingRequiredOptions as exc:
        names = ", ".join("--os-" + opt.dest.replace("_", "-") for opt in exc.options)
        raise InvalidInput(f"auth type {auth_type!r} needs {names}") from None
    return KeystoneSession(auth=plugin, verify=verify, cert=cert, timeout=timeout)
