"""Identity for tests against the reference server's built-in identity endpoint: a real keystoneauth1 password
session (users admin, demo) and the documented default application credential."""

from __future__ import annotations

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

# The reference server's default application credential (admin's "admin-appcred", role admin on project admin),
# as README and identity.py's docstring document it.
APP_CREDENTIAL_ID = "fa60edfe1fc85d5ebc1131ed35872fab"
APP_CREDENTIAL_SECRET = "admin-appcred-secret"


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
