"""A real keystoneauth1 session against the reference server's built-in identity endpoint (users admin, demo)."""

from __future__ import annotations

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3


def password_session(identity_url: str | None, user: str = "admin") -> ks_session.Session:
    """Password auth as ``user`` (password = user name, project = user name, domain Default)."""
    assert identity_url, "the cluster runs without --auth keystone"
    auth = v3.Password(
        auth_url=identity_url,
        username=user,
        password=user,
        project_name=user,
        user_domain_name="Default",
        project_domain_name="Default",
    )
    return ks_session.Session(auth=auth)
